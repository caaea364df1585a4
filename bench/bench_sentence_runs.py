"""A bundle with two `sentence` members: the fused graph with each member's copy of the frozen
encoder (as export wrote it before `voxpop.export.optimize.share_common_subgraphs`) beside the
fused graph that computes the encoder once, on the same encoded rows in one run, with the same
session options and length-sorted runs as `voxpop predict`; the outputs compared.

Bundle: a `voxpop demo` directory whose bundle holds two sentence members (the full demo usually
picks both of its sentence trials). Rows: the airline tweets (never trained on), the first --rows.

Run: .venv/bin/python bench/bench_shared_encoder.py [--demo-dir voxpop-demo] [--rows 1024]
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demo-dir", type=Path, default=Path("voxpop-demo"))
    parser.add_argument("--rows", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    from voxpop.ensemble import Ensemble
    from voxpop.ensemble.sessions import length_key, open_session, run_by_length

    bundle = args.demo_dir / "bundle"
    ensemble = Ensemble.load(bundle, device="cpu")
    manifest = ensemble.manifest
    families = [m.family for m in manifest.members]
    if families.count("sentence") < 2:
        raise SystemExit(f"{bundle}: {families.count('sentence')} sentence member(s); needs 2")
    texts = pd.read_csv(args.demo_dir / "data" / "airline_tweets.csv")["text"].astype(str)
    texts = texts.tolist()[: args.rows]
    encoded = ensemble.encode(texts)
    trims = any(m.trims_padding for m in manifest.members)
    threads = os.cpu_count() or 1

    results, probs = {}, {}
    for name, model in fused_graphs(bundle, manifest).items():
        data = model.SerializeToString()
        started = time.perf_counter()
        session = open_session(data, source=name, device="cpu", intra_op_threads=threads)
        load_s = time.perf_counter() - started
        feeds = {i.name: encoded[i.name] for i in session.get_inputs()}
        key = length_key(feeds, trims_tokens=trims)
        run_by_length(session, {k: v[:64] for k, v in feeds.items()}, key=key)  # warm-up
        seconds = []
        for _ in range(args.repeats):
            started = time.perf_counter()
            probs[name] = run_by_length(session, feeds, key=key)
            seconds.append(time.perf_counter() - started)
        ops = collections.Counter(node.op_type for node in model.graph.node)
        results[name] = {
            "nodes": len(model.graph.node),
            "layer_norms": ops["LayerNormalization"],
            "mb": round(len(data) / 2**20, 1),
            "session_load_s": round(load_s, 2),
            "rows_per_s": round(len(texts) / min(seconds), 1),
            "seconds": [round(s, 3) for s in seconds],
        }
        print(name, results[name], flush=True)
    before, now = results["encoder per member"], results["encoder shared"]
    diff = float(np.abs(probs["encoder per member"] - probs["encoder shared"]).max())
    summary = {
        "rows": len(texts),
        "members": families,
        "graphs": results,
        "speedup": round(now["rows_per_s"] / before["rows_per_s"], 2),
        "max_abs_diff": diff,
        "threads": threads,
        "loadavg": [round(v, 2) for v in os.getloadavg()],
    }
    lines = [
        f"{len(texts):,} airline tweets, bundle {bundle} ({len(families)} members: "
        f"{', '.join(families)}), fused graph only (inputs encoded beforehand), best of "
        f"{args.repeats}, {threads} threads, rows sorted by length as `voxpop predict` runs them.\n",
        "| fused graph | nodes | LayerNormalization nodes | MB | session load s | rows/s |",
        "| --- | --- | --- | --- | --- | --- |",
        *(
            f"| {name} | {r['nodes']} | {r['layer_norms']} | {r['mb']} | "
            f"{r['session_load_s']} | {r['rows_per_s']:,} |"
            for name, r in results.items()
        ),
        "",
        f"Shared / per member: {summary['speedup']}x rows/s; outputs max abs diff {diff:.1e}.",
    ]
    print("\n".join(lines))
    record(
        "shared_encoder",
        summary,
        summary_md="\n".join(lines),
        command=f"bench/bench_shared_encoder.py --demo-dir {args.demo_dir} --rows {args.rows}",
    )


if __name__ == "__main__":
    main()
