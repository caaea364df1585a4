"""The graph alone (issue 20, section 2): the fused ONNX graph as export now writes it, beside the
fused graph as export wrote it before voxpop.export.optimize (the same Keras members converted and
fused without the rewrites) and a plain tf.function of the same Keras members, at batch 64 and
1024, on the same encoded rows in one run; ONNX Runtime's optimisation levels on the graph, with
the optimised model saved and reloaded; the fraction of the float32 GEMM peak at 1024.

Bundle: a `voxpop demo` directory (its bundle and the run directory it was exported from).
Rows: the airline tweets (the external set, never trained on), the first --rows.

Run: .venv/bin/python bench/bench_graph.py [--demo-dir voxpop-demo] [--rows 8192]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from bench_inference import (
    best_of,
    gemm_peak_gflops,
    graph_flops,
    in_batches,
    keras_members,
)
from common import record

BATCHES = (64, 1024)
LEVELS = ("ORT_ENABLE_BASIC", "ORT_ENABLE_EXTENDED", "ORT_ENABLE_ALL")


def fused_before(run_dir: Path, manifest, opset: int):
    """The fused graph as export wrote it before the rewrites: members converted and fused only."""
    from voxpop.export.convert import to_onnx
    from voxpop.export.fuse import fuse_members

    models = keras_members(run_dir, manifest)
    onnx_models = {m.id: to_onnx(model, opset=opset) for m, model in zip(manifest.members, models)}
    return models, fuse_members(onnx_models, [m.weight for m in manifest.members])


def session(model_bytes: bytes, level: str = "ORT_ENABLE_ALL", *, save_to: str | None = None):
    """A session with the options voxpop's own take (voxpop.ensemble.sessions.open_session: all
    cores, one inter-op thread, no spinning), at optimisation `level`."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, level)
    options.intra_op_num_threads = os.cpu_count() or 1
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if save_to:
        options.optimized_model_filepath = save_to
    return ort.InferenceSession(
        model_bytes, sess_options=options, providers=["CPUExecutionProvider"]
    )


def runner(sess):
    names = [i.name for i in sess.get_inputs()]
    return lambda batch: sess.run(["probs"], {n: batch[n] for n in names})[0]


def tf_function_vote(models, weights, encoded: dict):
    """Each Keras member inside one compiled function with a fixed input signature (any number
    of rows, any width but the features'); the vote."""
    import tensorflow as tf

    from voxpop.data import INPUT_DTYPES

    names = sorted({t.name for m in models for t in m.inputs})
    signature = [
        tf.TensorSpec(
            [None, encoded[n].shape[1] if n == "features" else None], INPUT_DTYPES[n], name=n
        )
        for n in names
    ]
    total = float(np.sum(weights))

    @tf.function(input_signature=signature, reduce_retracing=True)
    def vote(*xs):
        feed = dict(zip(names, xs))
        probs = [
            w / total * m({t.name: feed[t.name] for t in m.inputs}, training=False)
            for m, w in zip(models, weights)
        ]
        return tf.add_n(probs)

    return lambda batch: vote(*[batch[n] for n in names]).numpy()


def int8_members(bundle: Path, manifest, encoded: dict, n_tokens: int, n_classes: int) -> dict:
    """Each member alone, fp32 against dynamic int8 of every op (what export did before:
    ConvInteger, quantized lookups) and against int8 where export now offers it (int8_pays,
    INT8_OPS), rows/s at each batch; plus an LSTM member (64 units, tests/bundle_factory) since a
    quick demo bundle has no recurrent member."""
    import sys

    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from voxpop.export.quantize import int8_pays, quantize_int8

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from bundle_factory import member_model

    sources = {f"{m.id} ({m.family})": bundle / m.file for m in manifest.members}
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        lstm = Path(tmp) / "lstm.onnx"
        onnx.save_model(
            member_model(
                n_tokens=n_tokens,
                n_classes=n_classes,
                n_features=0,
                seed=0,
                use_features=False,
                encoder="lstm",
                dim=64,
            ),
            lstm,
        )
        sources["lstm 64 units (bundle_factory)"] = lstm
        for name, source in sources.items():
            files = {"fp32": source}
            files["int8, every op"] = Path(tmp) / f"{len(out)}_all.onnx"
            quantize_dynamic(source, files["int8, every op"], weight_type=QuantType.QInt8)
            offered = int8_pays(onnx.load_model(source))
            if offered:
                files["int8, where export offers it"] = Path(tmp) / f"{len(out)}_offered.onnx"
                quantize_int8(source, files["int8, where export offers it"])
            out[name] = {"offered": offered}
            for version, path in files.items():
                run = runner(session(path.read_bytes()))
                rates = {}
                for batch in BATCHES:
                    in_batches(run, encoded, batch, 2 * batch)()
                    seconds = best_of(
                        in_batches(run, encoded, batch, len(encoded["tokens"])), repeats=2
                    )
                    rates[str(batch)] = round(len(encoded["tokens"]) / seconds, 1)
                out[name][version] = rates
                print(name, version, rates, flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demo-dir", type=Path, default=Path("voxpop-demo"))
    parser.add_argument("--rows", type=int, default=8192)
    args = parser.parse_args()
    bundle, run_dir = args.demo_dir / "bundle", args.demo_dir / "runs" / "demo"
    from voxpop.ensemble import Ensemble
    from voxpop.ensemble.bundle import read_manifest

    load_at_start = os.getloadavg()
    manifest = read_manifest(bundle)
    texts = pd.read_csv(args.demo_dir / "data" / "airline_tweets.csv")["text"].astype(str).tolist()
    texts = (texts * (args.rows // len(texts) + 1))[: args.rows]
    now = Ensemble.load(bundle, fused=True, device="cpu")
    encoded = now.encode(texts)
    models, before = fused_before(run_dir, manifest, manifest.opset)
    weights = np.asarray([m.weight for m in manifest.members])
    paths = {
        "fused graph, export now (rows by length)": lambda b: (
            now.predict_encoded(b, voting="weighted").probs
        ),
        "fused graph, export before": runner(session(before.SerializeToString())),
        "tf.function of the Keras members": tf_function_vote(models, weights, encoded),
    }
    part = {k: v[:1024] for k, v in encoded.items()}
    reference = paths["tf.function of the Keras members"](part)
    max_diff = {name: float(np.abs(run(part) - reference).max()) for name, run in paths.items()}

    # The paths in turn, best of 3 passes each: load that comes and goes hits all of them.
    speed: dict[str, dict[int, float]] = {name: {} for name in paths}
    for batch in BATCHES:
        for run in paths.values():
            in_batches(run, encoded, batch, min(len(texts), 2 * batch))()  # warm-up
        passes = {name: [] for name in paths}
        for _ in range(3):
            for name, run in paths.items():
                passes[name].append(best_of(in_batches(run, encoded, batch, len(texts)), repeats=1))
        for name, seconds in passes.items():
            speed[name][batch] = round(len(texts) / min(seconds), 1)
            print(name, batch, speed[name][batch], flush=True)

    # ONNX Runtime's levels on the graph export now writes, and the optimised model saved and
    # reloaded (what saving it at export would give): load time and rows/s at 1024.
    fused_bytes = (bundle / "fused.onnx").read_bytes()
    levels = {}
    with tempfile.TemporaryDirectory() as tmp:
        for level in LEVELS:
            started = time.perf_counter()
            sess = session(fused_bytes, level, save_to=f"{tmp}/{level}.onnx")
            load_s = time.perf_counter() - started
            seconds = best_of(in_batches(runner(sess), encoded, 1024, len(texts)), repeats=3)
            levels[level] = {
                "load_s": round(load_s, 3),
                "rows_per_s_1024": round(len(texts) / seconds, 1),
            }
        saved = Path(f"{tmp}/ORT_ENABLE_EXTENDED.onnx").read_bytes()
        started = time.perf_counter()
        sess = session(saved, "ORT_ENABLE_ALL")
        load_s = time.perf_counter() - started
        seconds = best_of(in_batches(runner(sess), encoded, 1024, len(texts)), repeats=3)
        levels["saved EXTENDED, reloaded at ALL"] = {
            "load_s": round(load_s, 3),
            "rows_per_s_1024": round(len(texts) / seconds, 1),
            "max_abs_diff": float(
                np.abs(runner(sess)(part) - runner(session(fused_bytes))(part)).max()
            ),
        }

    int8 = int8_members(
        bundle,
        manifest,
        {k: v[:4096] for k, v in encoded.items()},
        now.preprocessor.n_tokens,
        len(now.labels),
    )
    # Useful FLOPs at the encoded width, counted on the graph before the rewrites (the trimmed
    # graph's widths are only known when it runs; trimming saves FLOPs, it adds none).
    with tempfile.TemporaryDirectory() as tmp:
        import onnx

        onnx.save_model(before, f"{tmp}/before.onnx")
        flops = graph_flops(
            Path(f"{tmp}/before.onnx"),
            input_shapes={n: (1024, a.shape[1]) for n, a in encoded.items()},
        )
    peak = gemm_peak_gflops()
    achieved = flops / 1024 * speed["fused graph, export now (rows by length)"][1024] / 1e9
    load_at_end = os.getloadavg()
    results = {
        "rows": len(texts),
        "members": [m.family for m in manifest.members],
        "trims_padding": {m.id: m.trims_padding for m in manifest.members},
        "rows_per_s": {name: {str(b): v for b, v in s.items()} for name, s in speed.items()},
        "max_abs_diff_vs_tf_function": max_diff,
        "ort_levels": levels,
        "int8_members": int8,
        "gflop_per_row": round(flops / 1024 / 1e9, 5),
        "achieved_gflops_1024": round(achieved, 2),
        "numpy_gemm_peak_gflops": round(peak, 1),
        "fraction_of_peak": round(achieved / peak, 3),
        "loadavg_start": [round(v, 2) for v in load_at_start],
        "loadavg_end": [round(v, 2) for v in load_at_end],
    }
    tf_rates = speed["tf.function of the Keras members"]
    lines = [
        f"{len(texts):,} airline tweets, bundle {args.demo_dir}/bundle ({len(models)} members: "
        f"{', '.join(results['members'])}; padding trimmed: "
        f"{', '.join(m.family for m in manifest.members if m.trims_padding) or 'none'}); "
        f"rows/s, best of 3 after a warm-up, {os.cpu_count()} cores; load average "
        f"{load_at_start[0]:.1f} at start, {load_at_end[0]:.1f} at end (a shared machine: "
        "the ratios, measured in one run, matter more than the rates).\n",
        "| path | "
        + " | ".join(f"batch {b}" for b in BATCHES)
        + " | vs tf.function | max abs diff vs tf.function |",
        "| --- |" + " --- |" * (len(BATCHES) + 2),
    ]
    for name in paths:
        ratios = " / ".join(f"{speed[name][b] / tf_rates[b]:.2f}x" for b in BATCHES)
        lines.append(
            f"| {name} | "
            + " | ".join(f"{speed[name][b]:,.0f}" for b in BATCHES)
            + f" | {ratios} | {max_diff[name]:.1e} |"
        )
    lines += [
        "",
        "| ONNX Runtime level (graph export now writes, batch 1024) | session load s | rows/s |",
        "| --- | --- | --- |",
    ]
    lines += [
        f"| {level} | {v['load_s']} | {v['rows_per_s_1024']:,.0f} |" for level, v in levels.items()
    ]
    lines += [
        "",
        "Dynamic int8, each member alone (4,096 rows), rows/s at batch "
        + " / ".join(map(str, BATCHES))
        + ":\n",
        "| member | fp32 | int8, every op (before) | int8 where export offers it |",
        "| --- | --- | --- | --- |",
    ]
    for name, row in int8.items():
        cells = [
            " / ".join(f"{row[v][str(b)]:,.0f}" for b in BATCHES) if v in row else "not offered"
            for v in ("fp32", "int8, every op", "int8, where export offers it")
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += [
        "",
        f"- {results['gflop_per_row'] * 1e3:.2f} MFLOP per row (useful: MatMul, Gemm, Conv, "
        f"LSTM, GRU at the encoded width); {results['achieved_gflops_1024']} GFLOP/s at batch "
        f"1024 against a numpy float32 GEMM peak of {results['numpy_gemm_peak_gflops']} "
        f"GFLOP/s measured in the same run ({100 * results['fraction_of_peak']:.0f}%).",
    ]
    print("\n".join(lines))
    record(
        "graph",
        results,
        summary_md="\n".join(lines),
        command=f"bench/bench_graph.py --demo-dir {args.demo_dir} --rows {args.rows}",
    )


if __name__ == "__main__":
    main()
