"""Export speed and what it buys: seconds to export one member (convert + parity + graph check),
fused graph vs separate ONNX Runtime sessions (rows/s), int8 vs fp32 (size, speed, val macro-F1).

A small run directory is built from real tweets (no Ray: the files `voxpop tune` writes), with
one-epoch members of several families at their default sizes, then exported twice (fp32, int8).

    nice .venv/bin/python bench/bench_export.py [--rows 4000] [--batch 256]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from common import DATASETS, Timer, record

FAMILIES = ("lstm", "cnn", "fusion")


def build_run(run: Path, rows: int) -> None:
    """A run directory as `voxpop tune` writes it (voxpop.data.rundir's fixture writer): the
    prepared data and one one-epoch checkpoint per family."""
    from voxpop.data import Preprocessor, split_rows
    from voxpop.data.rundir import add_checkpoint, write_fixture_run
    from voxpop.models import build
    from voxpop.models.runtime import configure
    from voxpop.models.training import fit

    configure(threads=2)
    tweets = pd.read_csv(DATASETS / "tweet_sentiment.csv")
    df = (
        tweets.groupby("label")
        .sample(frac=rows / len(tweets), random_state=0)
        .reset_index(drop=True)
    )
    split = split_rows(df["label"].to_numpy(), seed=0)
    data = write_fixture_run(
        run, texts=df["text"], labels=df["label"], split=split, preprocessor=Preprocessor()
    )
    for seed, family in enumerate(FAMILIES):
        config = {"seed": seed}
        model = build(
            family,
            config,
            n_tokens=data.n_tokens,
            n_classes=len(data.labels),
            n_features=data.n_features,
        )
        result = fit(
            model,
            train=data.train,
            y_train=data.y_train,
            val=data.val,
            y_val=data.y_val,
            config=config,
            epochs=1,
        )
        val_probs = np.asarray(model.predict(data.val, verbose=0), dtype=np.float32)
        add_checkpoint(
            run,
            trial_id=f"trial_{family}",
            index=0,
            model=model,
            val_probs=val_probs,
            metrics={"family": family, "config": config, **result.best_metrics},
        )


def timed_export(run: Path, out: Path, **options) -> tuple[float, list[float]]:
    """Total seconds and seconds per member (convert + parity + graph check)."""
    from voxpop.export import export_bundle

    stamps = [time.perf_counter()]
    with Timer() as total:
        export_bundle(
            run,
            out,
            select="top",
            size=len(FAMILIES),
            on_member=lambda *_: stamps.append(time.perf_counter()),
            **options,
        )
    return total.seconds, list(np.diff(stamps))


def rows_per_second(paths: list[Path], inputs: dict, batch: int, repeats: int = 3) -> float:
    """Best of `repeats` passes over all rows, each path in its own session (2 threads)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    sessions = [
        ort.InferenceSession(str(p), options, providers=["CPUExecutionProvider"]) for p in paths
    ]
    n = len(next(iter(inputs.values())))
    best = float("inf")
    for _ in range(repeats):
        with Timer() as timer:
            for start in range(0, n, batch):
                for session in sessions:
                    feed = {
                        i.name: inputs[i.name][start : start + batch] for i in session.get_inputs()
                    }
                    session.run(["probs"], feed)
        best = min(best, timer.seconds)
    return n / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=4000, help="tweets in the run (stratified)")
    parser.add_argument("--batch", type=int, default=256, help="rows per ONNX Runtime call")
    args = parser.parse_args()
    from voxpop.data import Preprocessor
    from voxpop.data.rundir import read_run
    from voxpop.ensemble.bundle import read_manifest

    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        with Timer() as training:
            build_run(run, args.rows)
        fp32_seconds, per_member = timed_export(run, Path(tmp) / "fp32")
        int8_seconds, _ = timed_export(run, Path(tmp) / "int8", quantize="int8")
        fp32, int8 = Path(tmp) / "fp32", Path(tmp) / "int8"
        manifest = read_manifest(fp32)
        check = read_manifest(int8).quantization_check
        data = read_run(run).data
        inputs = Preprocessor.from_json(fp32 / "preprocess.json").encode(data["text"].tolist())
        members = [fp32 / m.file for m in manifest.members]
        results = {
            "rows_in_run": args.rows,
            "rows_timed": len(data),
            "batch": args.batch,
            "training_seconds": round(training.seconds, 1),
            "export_seconds_fp32": round(fp32_seconds, 2),
            "export_seconds_int8": round(int8_seconds, 2),
            "seconds_per_member": {
                m.family: round(s, 2) for m, s in zip(manifest.members, per_member)
            },
            "parity_max_abs_diff": {m.family: m.parity.max_abs_diff for m in manifest.members},
            "rows_per_second": {
                "separate_sessions_fp32": round(rows_per_second(members, inputs, args.batch)),
                "fused_fp32": round(rows_per_second([fp32 / "fused.onnx"], inputs, args.batch)),
                "fused_int8": round(rows_per_second([int8 / "fused.onnx"], inputs, args.batch)),
            },
            "fused_bytes": {
                "fp32": (fp32 / "fused.onnx").stat().st_size,
                "int8": (int8 / "fused.onnx").stat().st_size,
            },
            "val_macro_f1": check.val_macro_f1,
            "int8_kept": check.kept,
        }
    speed = results["rows_per_second"]
    summary = (
        f"{args.rows} real tweets, members {', '.join(FAMILIES)} (default sizes, 1 epoch).\n\n"
        f"| measure | value |\n| --- | --- |\n"
        + "".join(
            f"| export seconds, {fam} member | {s} |\n"
            for fam, s in results["seconds_per_member"].items()
        )
        + f"| export seconds, whole bundle fp32 / int8 | {results['export_seconds_fp32']} / "
        f"{results['export_seconds_int8']} |\n"
        f"| rows/s separate sessions / fused fp32 / fused int8 | {speed['separate_sessions_fp32']} / "
        f"{speed['fused_fp32']} / {speed['fused_int8']} |\n"
        f"| fused.onnx bytes fp32 / int8 | {results['fused_bytes']['fp32']:,} / {results['fused_bytes']['int8']:,} |\n"
        f"| val macro-F1 fp32 / int8 | {check.val_macro_f1['fp32']:.4f} / {check.val_macro_f1['int8']:.4f} |\n"
    )
    path = record(
        "export",
        results,
        summary_md=summary,
        command=f"nice .venv/bin/python bench/bench_export.py --rows {args.rows} --batch {args.batch}",
    )
    print(path.read_text())


if __name__ == "__main__":
    main()
