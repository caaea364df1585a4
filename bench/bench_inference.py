"""Inference speed of a real exported ensemble: voxpop (ONNX Runtime) against Keras, and the
fused graph's achieved GFLOP/s against this machine's float32 matrix-multiply peak.

Bundle: the one `voxpop demo` writes (5 members tuned on the built-in tweets), and the Keras
checkpoints it was exported from (same run directory), so both sides compute the same vote.
Rows: 20,000 real tweets (the airline external set, repeated if needed); batch size 1 runs on the
first 100 rows only (Keras' per-call overhead would take an hour on 20,000).

Paths, each on the same encoded rows (tokenization timed separately):
- voxpop fused fp32: one ONNX Runtime session running all members and the vote;
- voxpop fused int8: the same graph after dynamic int8 quantization;
- voxpop separate: one session per member, the vote in numpy;
- Keras model.predict of each member, averaged with the same weights;
- tf.function: each member called inside one compiled function with a fixed input signature.
Also the CLI end to end (`voxpop predict` on a 20,000-row CSV, subprocess) and the share of its
time spent in tokenization, and cold starts of `voxpop --help` and of a one-line stdin predict.

--encoding-only measures the encoding part alone (results/inference_encoding.json): the bundle's
inputs encoded by voxpop and by today's encoders before issue 20 (tests/legacy_encoders.py), the
fused graph on those inputs, and `voxpop predict` end to end, also run from --baseline-src (the
`src` of an older checkout, e.g. `git archive 8459b39 src | tar -x -C /tmp/base`) on the same
bundle and rows, so before and after come from one run.

Run: .venv/bin/python bench/bench_inference.py [--demo-dir voxpop-demo] [--rows 20000]
     [--encoding-only [--baseline-src /tmp/base/src]]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from common import Timer, record

BATCHES = (1, 64, 1024)
BATCH1_ROWS = 100
VOXPOP = str(Path(sys.executable).parent / "voxpop")


def best_of(work, repeats: int = 3) -> float:
    best = float("inf")
    for _ in range(repeats):
        with Timer() as timer:
            work()
        best = min(best, timer.seconds)
    return best


def in_batches(run_batch, inputs: dict, batch: int, rows: int):
    def work():
        for start in range(0, rows, batch):
            run_batch({k: v[start : start + batch] for k, v in inputs.items()})

    return work


def gemm_peak_gflops(n: int = 2048) -> float:
    """numpy float32 n x n matrix multiply, best of 5: the machine's practical peak."""
    a = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
    b = np.random.default_rng(1).standard_normal((n, n), dtype=np.float32)
    a @ b
    seconds = best_of(lambda: a @ b, repeats=5)
    return 2 * n**3 / seconds / 1e9


def graph_flops(model_path: Path, *, input_shapes: dict[str, tuple[int, int]]) -> float:
    """Multiply-add FLOPs of one forward pass (MatMul, Gemm, Conv, LSTM, GRU) at fixed shapes.
    The n-gram members' gather and weighted sum are memory traffic, not counted."""
    import onnx
    from onnx import shape_inference

    model = onnx.load(str(model_path))
    for graph_input in model.graph.input:
        dims = graph_input.type.tensor_type.shape.dim
        for dim, value in zip(dims, input_shapes[graph_input.name]):
            dim.ClearField("dim_param")
            dim.dim_value = value
    model = shape_inference.infer_shapes(model)
    shapes = {}
    for info in list(model.graph.value_info) + list(model.graph.input) + list(model.graph.output):
        shapes[info.name] = [d.dim_value for d in info.type.tensor_type.shape.dim]
    for init in model.graph.initializer:
        shapes[init.name] = list(init.dims)
    flops = 0.0
    for node in model.graph.node:
        ins = [shapes.get(name) for name in node.input]
        outs = [shapes.get(name) for name in node.output]
        if node.op_type in ("MatMul", "Gemm") and ins[0] and ins[1] and all(ins[0]) and all(ins[1]):
            flops += 2 * np.prod(ins[0]) * ins[1][-1]
        elif node.op_type == "Conv" and outs[0] and ins[1] and all(outs[0]) and all(ins[1]):
            flops += 2 * np.prod(outs[0]) * np.prod(ins[1][1:])
        elif node.op_type in ("LSTM", "GRU") and ins[0] and ins[2] and all(ins[0]):
            steps, rows, width = ins[0]
            dirs, gates_h, hidden = ins[2]
            flops += 2 * dirs * gates_h * (width + hidden) * steps * rows
    return float(flops)


def keras_members(run_dir: Path, manifest):
    from voxpop.data.rundir import read_checkpoint
    from voxpop.models import load_model

    return [
        load_model(read_checkpoint(run_dir / m.checkpoint).model_path) for m in manifest.members
    ]


def cli_predict_seconds(bundle: Path, source: Path, out: Path, src: Path | None = None) -> float:
    """Wall seconds of `voxpop predict BUNDLE SOURCE --out OUT` in a subprocess (from `src`)."""
    env = {**os.environ, "PYTHONPATH": str(src)} if src else None
    with Timer() as cli:
        subprocess.run(
            [VOXPOP, "predict", str(bundle), str(source), "--out", str(out)],
            check=True,
            capture_output=True,
            env=env,
        )
    return cli.seconds


def encoding_only(args, bundle: Path, manifest: dict, texts: list[str]) -> None:
    """The encoding part: voxpop's and today's encoders on the bundle's inputs, the fused graph,
    and `voxpop predict` end to end (now and from --baseline-src), in one run."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    import legacy_encoders
    from voxpop.ensemble import Ensemble

    fused = Ensemble.load(bundle, fused=True)
    needed = sorted({name for m in manifest["members"] for name in m["inputs"]})
    fused.encode(texts[:100])  # warm up: lazy tables, imports
    encode_s = min(best_of(lambda: fused.encode(texts), repeats=1) for _ in range(2))
    encoded = fused.encode(texts)
    before_s = best_of(
        lambda: legacy_encoders.encode(fused.preprocessor, texts, inputs=needed), repeats=2
    )
    before = legacy_encoders.encode(fused.preprocessor, texts, inputs=needed)
    same = all(np.array_equal(encoded[k], before[k]) for k in encoded)
    graph_s = best_of(
        in_batches(
            lambda b: fused.predict_encoded(b, voting="weighted"), encoded, 2048, len(texts)
        ),
        repeats=2,
    )
    results = {
        "rows": len(texts),
        "members": [m["family"] for m in manifest["members"]],
        "inputs": needed,
        "encode_rows_per_s": round(len(texts) / encode_s),
        "encode_rows_per_s_before": round(len(texts) / before_s),
        "encode_speedup": round(before_s / encode_s, 2),
        "arrays_equal_to_before": same,
        "fused_graph_rows_per_s_batch_2048": round(len(texts) / graph_s),
    }
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "texts.csv"
        pd.DataFrame({"text": texts}).to_csv(source, index=False, quoting=1)
        runs = {"now": None, "before": args.baseline_src}
        seconds = {name: [] for name, src in runs.items() if name == "now" or src}
        for _ in range(3):  # alternately, best of 3: the machine is shared
            for name in seconds:
                seconds[name].append(
                    cli_predict_seconds(bundle, source, Path(tmp) / "p.csv", runs[name])
                )
    for name, values in seconds.items():
        suffix = "" if name == "now" else "_before"
        results[f"cli_predict_rows_per_s{suffix}"] = round(len(texts) / min(values), 1)
        results[f"encoding_share_of_cli{suffix}"] = round(
            (encode_s if name == "now" else before_s) / min(values), 3
        )
    print(json.dumps(results, indent=1))
    lines = [
        f"{len(texts):,} airline tweets, bundle of {len(manifest['members'])} members "
        f"({', '.join(results['members'])}; inputs {', '.join(needed)}), one encode call; "
        "before: today's encoders before issue 20 (tests/legacy_encoders.py) in the same run"
        + (
            f", and `voxpop predict` from {args.baseline_src} (commit 8459b39)"
            if args.baseline_src
            else ""
        )
        + "; CLI best of 3, alternating.\n",
        "| measure | before | now |",
        "| --- | --- | --- |",
        f"| encoding, rows/s | {results['encode_rows_per_s_before']:,} | {results['encode_rows_per_s']:,} "
        f"({results['encode_speedup']}x; arrays equal: {same}) |",
        f"| fused graph alone, rows/s (batch 2048) | | {results['fused_graph_rows_per_s_batch_2048']:,} |",
    ]
    if "cli_predict_rows_per_s_before" in results:
        lines.append(
            f"| `voxpop predict` CSV to CSV, rows/s | {results['cli_predict_rows_per_s_before']:,} | "
            f"{results['cli_predict_rows_per_s']:,} |"
        )
        lines.append(
            f"| encoding time / CLI time | {100 * results['encoding_share_of_cli_before']:.0f}% | "
            f"{100 * results['encoding_share_of_cli']:.0f}% |"
        )
    else:
        lines.append(
            f"| `voxpop predict` CSV to CSV, rows/s | | {results['cli_predict_rows_per_s']:,} |"
        )
        lines.append(
            f"| encoding time / CLI time | | {100 * results['encoding_share_of_cli']:.0f}% |"
        )
    lines.append(
        "\nNow `voxpop predict` encodes the next chunk while the graph runs this one (one "
        "of the threads encodes, the session gets the others), so the encoding share is "
        "the encoding's time over the whole run's, not time added to it."
    )
    record(
        "inference_encoding",
        results,
        summary_md="\n".join(lines),
        command=f"bench/bench_inference.py --encoding-only --demo-dir {args.demo_dir} --rows {args.rows}"
        + (f" --baseline-src {args.baseline_src}" if args.baseline_src else ""),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demo-dir", type=Path, default=Path("voxpop-demo"))
    parser.add_argument("--rows", type=int, default=20000)
    parser.add_argument("--encoding-only", action="store_true")
    parser.add_argument("--baseline-src", type=Path, default=None)
    args = parser.parse_args()
    bundle, run_dir = args.demo_dir / "bundle", args.demo_dir / "runs" / "demo"
    from voxpop.ensemble.bundle import read_manifest

    manifest = read_manifest(bundle)
    weights = np.asarray([m.weight for m in manifest.members], dtype=np.float64)
    texts = pd.read_csv(args.demo_dir / "data" / "airline_tweets.csv")["text"].astype(str).tolist()
    texts = (texts * (args.rows // len(texts) + 1))[: args.rows]
    if args.encoding_only:
        return encoding_only(args, bundle, manifest, texts)

    from voxpop.ensemble import Ensemble
    from voxpop.export.quantize import quantize_int8

    fused = Ensemble.load(bundle, fused=True)
    separate = Ensemble.load(bundle, fused=False)
    with Timer() as tokenize:
        encoded = fused.encode(texts)
    results = {
        "rows": len(texts),
        "members": [m.family for m in manifest.members],
        "seq_len": int(encoded["tokens"].shape[1]),
        "tokenization_rows_per_s": round(len(texts) / tokenize.seconds),
    }

    import onnxruntime as ort

    int8_path = Path(tempfile.mkdtemp()) / "fused_int8.onnx"
    quantize_int8(bundle / "fused.onnx", int8_path)
    options = ort.SessionOptions()
    int8 = ort.InferenceSession(str(int8_path), options, providers=["CPUExecutionProvider"])
    int8_names = [i.name for i in int8.get_inputs()]

    import tensorflow as tf

    models = keras_members(run_dir, manifest)

    def keras_vote(batch_inputs):
        rows = len(next(iter(batch_inputs.values())))
        probs = [
            m.predict({t.name: batch_inputs[t.name] for t in m.inputs}, verbose=0, batch_size=rows)
            for m in models
        ]
        return np.average(np.stack(probs), axis=0, weights=weights)

    from voxpop.data import INPUT_DTYPES

    compiled = []
    for m in models:
        names = [t.name for t in m.inputs]
        signature = [
            tf.TensorSpec([None, *t.shape[1:]], INPUT_DTYPES[t.name], name=t.name) for t in m.inputs
        ]
        compiled.append(
            tf.function(
                lambda *xs, m=m, names=names: m(dict(zip(names, xs)), training=False),
                input_signature=signature,
                reduce_retracing=True,
            )
        )

    def tf_function_vote(batch_inputs):
        probs = [
            fn(*[batch_inputs[t.name] for t in m.inputs]).numpy() for m, fn in zip(models, compiled)
        ]
        return np.average(np.stack(probs), axis=0, weights=weights)

    paths = {
        "voxpop fused fp32": lambda b: fused.predict_encoded(b, voting="weighted"),
        "voxpop fused int8": lambda b: int8.run(["probs"], {n: b[n] for n in int8_names}),
        "voxpop separate sessions": lambda b: separate.predict_encoded(b, voting="weighted"),
        "keras model.predict": keras_vote,
        "tf.function": tf_function_vote,
    }
    speed = {}
    for batch in BATCHES:
        rows = BATCH1_ROWS if batch == 1 else len(texts)
        for name, run_batch in paths.items():
            work = in_batches(run_batch, encoded, batch, rows)
            in_batches(run_batch, encoded, batch, min(rows, 2 * batch))()  # warm-up
            seconds = best_of(work, repeats=1 if batch == 1 else 2)
            speed[f"{name} @ batch {batch}"] = {
                "rows": rows,
                "rows_per_s": round(rows / seconds, 1),
                "ms_per_row": round(1000 * seconds / rows, 4),
            }
            print(name, batch, speed[f"{name} @ batch {batch}"], flush=True)
    results["speed"] = speed

    # Parity of the two sides on the first 1,000 rows (they must compute the same vote).
    part = {k: v[:1000] for k, v in encoded.items()}
    results["max_abs_diff_voxpop_vs_keras"] = float(
        np.abs(fused.predict_encoded(part, voting="weighted").probs - keras_vote(part)).max()
    )

    flops = graph_flops(
        bundle / "fused.onnx",
        input_shapes={name: (1024, array.shape[1]) for name, array in encoded.items()},
    )
    fused_rate = speed["voxpop fused fp32 @ batch 1024"]["rows_per_s"]
    results["fused_gflop_per_1024_rows"] = round(flops / 1e9, 3)
    results["fused_achieved_gflops"] = round(flops / 1024 * fused_rate / 1e9, 2)
    results["numpy_gemm_peak_gflops"] = round(gemm_peak_gflops(), 1)
    results["fraction_of_peak"] = round(
        results["fused_achieved_gflops"] / results["numpy_gemm_peak_gflops"], 3
    )

    # The CLI end to end, and cold starts.
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "texts.csv"
        pd.DataFrame({"text": texts}).to_csv(source, index=False, quoting=1)
        with Timer() as cli:
            subprocess.run(
                [VOXPOP, "predict", str(bundle), str(source), "--out", f"{tmp}/p.csv"],
                check=True,
                capture_output=True,
            )
    results["cli_predict_rows_per_s"] = round(len(texts) / cli.seconds, 1)
    results["tokenization_share_of_cli"] = round(tokenize.seconds / cli.seconds, 3)
    results["cold_start_help_s"] = round(
        best_of(lambda: subprocess.run([VOXPOP, "--help"], check=True, capture_output=True)), 2
    )
    results["cold_start_predict_one_line_s"] = round(
        best_of(
            lambda: subprocess.run(
                [VOXPOP, "predict", str(bundle), "-"],
                input=b"my flight was delayed again\n",
                check=True,
                capture_output=True,
            )
        ),
        2,
    )
    print(json.dumps({k: v for k, v in results.items() if k != "speed"}, indent=1))

    lines = [
        f"{len(texts):,} airline tweets (batch 1: first {BATCH1_ROWS}), bundle of "
        f"{len(models)} members ({', '.join(results['members'])}), sequence length "
        f"{results['seq_len']}; rows/s, best of 2 passes after a warm-up.\n",
        "| path | " + " | ".join(f"batch {b}" for b in BATCHES) + " |",
        "| --- |" + " --- |" * len(BATCHES),
    ]
    for name in paths:
        lines.append(
            f"| {name} | "
            + " | ".join(f"{speed[f'{name} @ batch {b}']['rows_per_s']:,.0f}" for b in BATCHES)
            + " |"
        )
    lines += [
        "",
        f"- voxpop vs Keras vote: max |diff| {results['max_abs_diff_voxpop_vs_keras']:.1e} on 1,000 rows.",
        f"- fused graph: {results['fused_gflop_per_1024_rows']} GFLOP per 1,024 rows, "
        f"{results['fused_achieved_gflops']} GFLOP/s achieved vs numpy float32 GEMM peak "
        f"{results['numpy_gemm_peak_gflops']} GFLOP/s ({100 * results['fraction_of_peak']:.1f}%).",
        f"- tokenization: {results['tokenization_rows_per_s']:,} rows/s; `voxpop predict` CSV to CSV "
        f"end to end: {results['cli_predict_rows_per_s']:,} rows/s, tokenization "
        f"{100 * results['tokenization_share_of_cli']:.0f}% of it.",
        f"- cold start: `voxpop --help` {results['cold_start_help_s']} s; one line on stdin "
        f"through `voxpop predict` {results['cold_start_predict_one_line_s']} s.",
    ]
    record(
        "inference",
        results,
        summary_md="\n".join(lines),
        command=f"bench/bench_inference.py --demo-dir {args.demo_dir} --rows {args.rows}",
    )


if __name__ == "__main__":
    main()
