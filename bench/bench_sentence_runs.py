"""How a sentence encoder's rows are run, before and after, on the same rows in one run:

- the fused graph of a bundle with two `sentence` members, with each member's copy of the frozen
  encoder (as export wrote it before `voxpop.export.optimize.share_common_subgraphs`) beside the
  graph that computes the encoder once, with the session options and length-sorted runs of
  `voxpop predict`; the outputs compared. Skipped for a bundle with fewer than two.
- tune's embedding of every training and validation text (`voxpop.models.sentence.Embedder`):
  texts sorted by characters in runs of 64, each padded to its longest (before), against runs of
  32 by word-piece count, each cut to its longest (now); the embeddings compared.

Bundle: a `voxpop demo` directory (the full demo usually picks both of its sentence trials).
Rows: the airline tweets (never trained on), the first --rows; for the embedding, the run's first
--embed-rows training texts.

Run: .venv/bin/python bench/bench_sentence_runs.py [--demo-dir voxpop-demo] [--rows 1024]
     [--embed-rows 2000]
"""

from __future__ import annotations

import argparse
import collections
import os
import time
from pathlib import Path

import numpy as np
import onnx
import pandas as pd

from common import record

THREADS = os.cpu_count() or 1


def fused_graphs(bundle: Path, manifest) -> dict[str, onnx.ModelProto]:
    """{"encoder per member": the members fused and their n-gram lookups merged (export before),
    "encoder shared": the same with every rewrite export now makes}."""
    from voxpop.export.fuse import fuse_members
    from voxpop.export.optimize import merge_gram_lookups, optimize_fused

    models = {m.id: onnx.load_model(bundle / m.file) for m in manifest.members}
    weights = [m.weight for m in manifest.members]
    before = fuse_members(models, weights)
    merge_gram_lookups(before)
    now = fuse_members(models, weights)
    optimize_fused(now)
    return {"encoder per member": before, "encoder shared": now}


def embed_before(embedder, texts: list[str], tokenize, batch_size: int = 64) -> np.ndarray:
    """Tune's embedding before 24b3bf4: runs of `batch_size` texts by characters, each padded to
    its longest text."""
    order = np.argsort([len(text) for text in texts], kind="stable")
    parts = [
        embedder.embed_inputs(tokenize([texts[i] for i in order[start : start + batch_size]]))
        for start in range(0, len(texts), batch_size)
    ]
    embeddings = np.empty((len(texts), parts[0].shape[1]), np.float32)
    embeddings[order] = np.concatenate(parts)
    return embeddings


def shared_graph(demo_dir: Path, rows: int, repeats: int) -> dict | None:
    """The fused graph with the encoder per member and shared: rows/s, sizes, outputs compared."""
    from voxpop.ensemble import Ensemble
    from voxpop.ensemble.sessions import length_key, open_session, run_by_length

    bundle = demo_dir / "bundle"
    ensemble = Ensemble.load(bundle, device="cpu")
    manifest = ensemble.manifest
    families = [m.family for m in manifest.members]
    if families.count("sentence") < 2:
        print(f"{bundle}: {families.count('sentence')} sentence member(s): no graph to share")
        return None
    texts = pd.read_csv(demo_dir / "data" / "airline_tweets.csv")["text"].astype(str)
    encoded = ensemble.encode(texts.tolist()[:rows])
    trims = any(m.trims_padding for m in manifest.members)
    results, probs = {}, {}
    for name, model in fused_graphs(bundle, manifest).items():
        data = model.SerializeToString()
        started = time.perf_counter()
        session = open_session(data, source=name, device="cpu", intra_op_threads=THREADS)
        load_s = time.perf_counter() - started
        feeds = {i.name: encoded[i.name] for i in session.get_inputs()}
        key = length_key(feeds, trims_tokens=trims)
        run_by_length(session, {k: v[:64] for k, v in feeds.items()}, key=key)  # warm-up
        seconds = []
        for _ in range(repeats):
            started = time.perf_counter()
            probs[name] = run_by_length(session, feeds, key=key)
            seconds.append(time.perf_counter() - started)
        ops = collections.Counter(node.op_type for node in model.graph.node)
        results[name] = {
            "nodes": len(model.graph.node),
            "layer_norms": ops["LayerNormalization"],
            "mb": round(len(data) / 2**20, 1),
            "session_load_s": round(load_s, 2),
            "rows_per_s": round(len(encoded["input_ids"]) / min(seconds), 1),
            "seconds": [round(s, 3) for s in seconds],
        }
        print(name, results[name], flush=True)
    before, now = results["encoder per member"], results["encoder shared"]
    return {
        "rows": len(encoded["input_ids"]),
        "members": families,
        "graphs": results,
        "speedup": round(now["rows_per_s"] / before["rows_per_s"], 2),
        "max_abs_diff": float(np.abs(probs["encoder per member"] - probs["encoder shared"]).max()),
    }


def tune_embedding(demo_dir: Path, rows: int, repeats: int) -> dict:
    """Embedder.embed now against `embed_before` on the run's first training texts."""
    from voxpop.data.rundir import read_run
    from voxpop.models.sentence import Embedder

    run = read_run(demo_dir / "runs" / "demo")
    texts = run.rows("train")["text"].astype(str).tolist()[:rows]
    embedder = Embedder(onnx.load_model(run.sentence_encoder_path), threads=THREADS)

    def tokenize(batch):
        return run.preprocessor.encode(batch, inputs=["input_ids", "attention_mask"])

    results, embeddings = {}, {}
    for name, embed in (("before", embed_before), ("now", Embedder.embed)):
        seconds = []
        for _ in range(repeats):
            started = time.perf_counter()
            embeddings[name] = embed(embedder, texts, tokenize)
            seconds.append(time.perf_counter() - started)
        results[name] = round(len(texts) / min(seconds), 1)
        print("embedding", name, results[name], "rows/s", flush=True)
    return {
        "rows": len(texts),
        "rows_per_s": results,
        "speedup": round(results["now"] / results["before"], 2),
        "max_abs_diff": float(np.abs(embeddings["before"] - embeddings["now"]).max()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demo-dir", type=Path, default=Path("voxpop-demo"))
    parser.add_argument("--rows", type=int, default=1024)
    parser.add_argument("--embed-rows", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    graph = shared_graph(args.demo_dir, args.rows, args.repeats)
    embedding = tune_embedding(args.demo_dir, args.embed_rows, args.repeats)
    lines = [
        f"{THREADS} threads, best of {args.repeats}; load average {os.getloadavg()[0]:.1f} at "
        "the end (ratios are of one run).\n"
    ]
    if graph:
        lines += [
            f"Fused graph only (inputs encoded beforehand), {graph['rows']:,} airline tweets, "
            f"bundle {args.demo_dir / 'bundle'} ({len(graph['members'])} members: "
            f"{', '.join(graph['members'])}), rows sorted by length as `voxpop predict` runs "
            "them:\n",
            "| fused graph | nodes | LayerNormalization nodes | MB | session load s | rows/s |",
            "| --- | --- | --- | --- | --- | --- |",
            *(
                f"| {name} | {r['nodes']} | {r['layer_norms']} | {r['mb']} | "
                f"{r['session_load_s']} | {r['rows_per_s']:,} |"
                for name, r in graph["graphs"].items()
            ),
            "",
            f"Shared / per member: {graph['speedup']}x rows/s; outputs max abs diff "
            f"{graph['max_abs_diff']:.1e}.\n",
        ]
    lines += [
        f"Tune's embedding of the run's first {embedding['rows']:,} training tweets: before "
        f"(runs of 64 by characters, each padded to its longest) "
        f"{embedding['rows_per_s']['before']:,} rows/s, now (runs of 32 by word pieces, each "
        f"cut to its longest) {embedding['rows_per_s']['now']:,} rows/s: "
        f"{embedding['speedup']}x; embeddings max abs diff {embedding['max_abs_diff']:.1e}.",
    ]
    print("\n".join(lines))
    record(
        "sentence_runs",
        {"fused_graph": graph, "tune_embedding": embedding, "threads": THREADS},
        summary_md="\n".join(lines),
        command=f"bench/bench_sentence_runs.py --demo-dir {args.demo_dir} --rows {args.rows} "
        f"--embed-rows {args.embed_rows}",
    )


if __name__ == "__main__":
    main()
