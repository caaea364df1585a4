"""Inference speed of voxpop predict on real tweets: fused graph vs separate sessions, fp32 vs
int8, the share of time spent tokenizing, the end-to-end CLI, and whether length bucketing keeps
probabilities within 1e-5.

No exported bundle is needed: a bundle of LSTM members (one ONNX LSTM op each, the shape of the
recurrent members tf2onnx exports) with random weights is built by tests/bundle_factory.py around a
real Preprocessor fitted on other real tweets. Random weights change no timing.

    nice .venv/bin/python bench/bench_predict.py [--rows 20000] [--members 5] [--dim 64]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from common import BENCH, DATASETS, Timer, record

sys.path.insert(0, str(BENCH.parent / "tests"))
from bundle_factory import onnx_probs, write_bundle  # noqa: E402
from voxpop.data import Preprocessor  # noqa: E402
from voxpop.ensemble import Ensemble  # noqa: E402
from voxpop.ensemble.bundle import read_manifest, write_manifest  # noqa: E402

REPO = BENCH.parent


def quantized_copy(bundle: Path, out: Path) -> Path:
    """The bundle with every ONNX file dynamically quantized to int8 (check rows and sha256s
    rewritten by the bundle's owner, as export does)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    shutil.copytree(bundle, out)
    manifest = read_manifest(bundle)
    graphs = [m.file for m in manifest.members] + ([manifest.fused.file] if manifest.fused else [])
    for relative in graphs:
        quantize_dynamic(bundle / relative, out / relative, weight_type=QuantType.QInt8)
    inputs = Preprocessor.from_json(out / manifest.preprocess).encode(manifest.check_rows.texts)
    probs = {m.id: onnx_probs(out / m.file, inputs) for m in manifest.members}
    check_rows = manifest.check_rows.model_copy(update={"probs": probs})
    write_manifest(
        out, manifest.model_copy(update={"quantization": "int8", "check_rows": check_rows})
    )
    return out


def batches(n_rows: int, batch_size: int):
    return [slice(start, min(start + batch_size, n_rows)) for start in range(0, n_rows, batch_size)]


def time_encode(ensemble: Ensemble, texts: list[str], batch_size: int):
    with Timer() as timer:
        encoded = [ensemble.encode(texts[part]) for part in batches(len(texts), batch_size)]
    return encoded, timer.seconds


def time_forward(ensemble: Ensemble, encoded: list[dict], *, voting: str) -> float:
    ensemble.predict_encoded({k: v[:8] for k, v in encoded[0].items()}, voting=voting)  # warm-up
    with Timer() as timer:
        for inputs in encoded:
            ensemble.predict_encoded(inputs, voting=voting)
    return timer.seconds


def bucketing_max_diff(ensemble: Ensemble, encoded: list[dict], member: str) -> float:
    """Max |p_bucketed - p_full| for one member: rows sorted by length, each batch's leading
    (pre-)padding trimmed to its longest row."""
    tokens = np.concatenate([inputs["tokens"] for inputs in encoded])
    features = np.concatenate([inputs["features"] for inputs in encoded])
    full = ensemble.predict_encoded({"tokens": tokens, "features": features}, members=[member])
    lengths = (tokens != 0).sum(axis=1)
    order = np.argsort(lengths, kind="stable")
    bucketed = np.empty_like(full.probs)
    for part in batches(len(order), 256):
        rows = order[part]
        keep = max(int(lengths[rows].max()), 1)
        trimmed = {"tokens": np.ascontiguousarray(tokens[rows, -keep:]), "features": features[rows]}
        bucketed[rows] = ensemble.predict_encoded(trimmed, members=[member]).probs
    return float(np.abs(bucketed - full.probs).max())


def time_cli(bundle: Path, source: Path, target: Path) -> float:
    command = [
        str(REPO / ".venv" / "bin" / "voxpop"),
        "predict",
        str(bundle),
        str(source),
        "--out",
        str(target),
    ]
    with Timer() as timer:
        subprocess.run(command, check=True, capture_output=True)
    return timer.seconds


def time_one_line_stdin(bundle: Path, repeats: int = 3) -> float:
    command = [str(REPO / ".venv" / "bin" / "voxpop"), "predict", str(bundle), "-"]
    seconds = []
    for _ in range(repeats):
        with Timer() as timer:
            subprocess.run(command, input=b"what a great flight\n", check=True, capture_output=True)
        seconds.append(timer.seconds)
    return float(np.median(seconds))


def rates(seconds: float, n_rows: int) -> dict:
    return {
        "seconds": round(seconds, 3),
        "rows_per_s": round(n_rows / seconds, 1),
        "ms_per_row": round(1000 * seconds / n_rows, 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--members", type=int, default=5)
    parser.add_argument("--dim", type=int, default=64, help="embedding and LSTM width")
    parser.add_argument("--batch-size", type=int, default=2048)
    args = parser.parse_args()

    tweets = pd.read_csv(DATASETS / "tweet_sentiment.csv").sample(frac=1.0, random_state=0)
    fit_rows, bench_rows = tweets.iloc[: len(tweets) - args.rows], tweets.iloc[-args.rows :]
    texts = bench_rows["text"].astype(str).tolist()
    work = Path(tempfile.mkdtemp(prefix="voxpop-bench-"))
    try:
        preprocessor = Preprocessor().fit(
            fit_rows["text"].astype(str).tolist(), fit_rows["label"].astype(str).tolist()
        )
        fp32 = write_bundle(
            work / "fp32", preprocessor, n_members=args.members, encoder="lstm", dim=args.dim
        )
        int8 = quantized_copy(fp32, work / "int8")
        results = {
            "rows": args.rows,
            "members": args.members,
            "member": f"embedding {args.dim} -> ONNX LSTM {args.dim} -> dense",
            "max_len": preprocessor.max_len,
            "vocabulary": preprocessor.n_tokens,
            "batch_size": args.batch_size,
            "load_average_at_start": os.getloadavg(),
        }
        fused = Ensemble.load(fp32, device="cpu")
        encoded, encode_seconds = time_encode(fused, texts, args.batch_size)
        results["tokenization"] = rates(encode_seconds, args.rows)
        for name, bundle in {"fp32": fp32, "int8": int8}.items():
            for mode, use_fused in {"fused": True, "separate": False}.items():
                ensemble = Ensemble.load(bundle, device="cpu", fused=use_fused)
                seconds = time_forward(ensemble, encoded, voting="weighted")
                results[f"{mode}_{name}"] = rates(seconds, args.rows)
                results[f"{mode}_{name}"]["with_tokenization"] = rates(
                    seconds + encode_seconds, args.rows
                )
                ensemble.close()
        results["tokenization_fraction_fused_fp32"] = round(
            encode_seconds / (encode_seconds + results["fused_fp32"]["seconds"]), 3
        )
        results["file_mb"] = {
            name: round(sum(p.stat().st_size for p in (b / "members").glob("*.onnx")) / 1e6, 2)
            for name, b in {"fp32": fp32, "int8": int8}.items()
        }
        separate = Ensemble.load(fp32, device="cpu", fused=False)
        results["bucketing_max_abs_diff_lstm_member"] = bucketing_max_diff(separate, encoded, "m1")
        source = work / "tweets.csv"
        bench_rows[["text"]].to_csv(source, index=False)
        results["cli_end_to_end"] = rates(time_cli(fp32, source, work / "out.csv"), args.rows)
        results["cli_one_line_stdin_seconds"] = round(time_one_line_stdin(fp32), 3)
        results["load_average_at_end"] = os.getloadavg()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(results, indent=2))
    record(
        "predict",
        results,
        summary_md=summary(results),
        command="nice .venv/bin/python bench/bench_predict.py " + " ".join(sys.argv[1:]),
    )


def summary(r: dict) -> str:
    lines = [
        f"{r['rows']:,} real tweets, {r['members']} members ({r['member']}), max_len {r['max_len']}, "
        f"batch {r['batch_size']}, load average at start {r['load_average_at_start'][0]:.1f}.\n",
        "| path | rows/s | ms/row | rows/s incl. tokenization |",
        "| --- | --- | --- | --- |",
    ]
    for key in ["fused_fp32", "separate_fp32", "fused_int8", "separate_int8"]:
        lines.append(
            f"| {key} | {r[key]['rows_per_s']:,.0f} | {r[key]['ms_per_row']} | "
            f"{r[key]['with_tokenization']['rows_per_s']:,.0f} |"
        )
    lines += [
        "",
        f"Tokenization: {r['tokenization']['rows_per_s']:,.0f} rows/s, "
        f"{r['tokenization_fraction_fused_fp32']:.0%} of fused fp32 time. "
        f"CLI end to end (CSV in, CSV out): {r['cli_end_to_end']['rows_per_s']:,.0f} rows/s. "
        f"One-line stdin predict: {r['cli_one_line_stdin_seconds']} s. "
        f"Length bucketing max |Δp| on an LSTM member: {r['bucketing_max_abs_diff_lstm_member']:.2e}.",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
