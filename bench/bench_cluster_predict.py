"""Ray Data batch predict (`voxpop predict --address`, `voxpop.batch.raydata.predict_frames`)
against the local command's loop (`data.iter_table_chunks` + `ensemble.stream.predict_chunks`) on
the same rows of real tweets: rows/s with 1 and 2 workers against 1 and 2 local threads, and Ray
Data's cost per row.

In one process: the embedded Ray (2 CPUs) starts once (its start-up is timed apart), then every
configuration runs in turn, --repeats times, medians kept, so that a shared machine's drift slows
all of them alike. A Ray run includes starting its actors (each loads the bundle) and the read
tasks; a local run includes loading the bundle. Frames are produced, not written (writing is the
same code in both). The rows are one Parquet file for the local loop and the same rows as four
Parquet files for Ray Data (a read task per file). The bundle is tests/bundle_factory.py's LSTM
bundle around a Preprocessor fitted on other real tweets (random weights change no timing).

    nice .venv/bin/python bench/bench_cluster_predict.py [--rows 50000] [--repeats 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from common import BENCH, DATASETS, record

sys.path.insert(0, str(BENCH.parent / "tests"))
from bundle_factory import write_bundle  # noqa: E402
from voxpop.batch.raydata import PredictSpec, ReadSpec, input_files, predict_frames  # noqa: E402
from voxpop.data import Preprocessor, iter_table_chunks  # noqa: E402
from voxpop.ensemble import Ensemble  # noqa: E402
from voxpop.ensemble.stream import OutputColumns, predict_chunks  # noqa: E402
from voxpop.tune_spaces.cluster import start_ray, stop_ray  # noqa: E402

FILES = 4
VOTE = {"voting": "weighted", "weights": None, "members": None}


def local_rows(bundle: Path, source: Path, *, threads: int, batch_size: int) -> list:
    ensemble = Ensemble.load(bundle, device="cpu", threads=threads, pipeline=True)
    chunks = iter_table_chunks(source, chunk_rows=batch_size)
    return list(predict_chunks(ensemble, chunks, columns=OutputColumns(), **VOTE))


def ray_rows(bundle: Path, folder: Path, *, workers: int, batch_size: int) -> list:
    read = ReadSpec(
        text_col="text", id_col=None, feature_cols=(), format=None, chunk_rows=batch_size
    )
    spec = PredictSpec(
        bundle=str(bundle), trust=None, fused=True, vote_options=VOTE, columns=OutputColumns()
    )
    found = {"replaced_bytes": 0, "empty_texts": 0}
    return list(
        predict_frames(
            input_files(str(folder)), read=read, predict=spec, workers=workers, found=found
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=2048)
    args = parser.parse_args()

    tweets = pd.read_csv(DATASETS / "tweet_sentiment.csv").sample(frac=1.0, random_state=0)
    fit_rows, pool = tweets[:5000], tweets[5000:]["text"].astype(str)
    texts = pool.sample(args.rows, replace=True, random_state=1).tolist()
    with tempfile.TemporaryDirectory(prefix="bench-cluster-") as tmp:
        work = Path(tmp)
        preprocessor = Preprocessor().fit(
            fit_rows["text"].astype(str).tolist(), fit_rows["label"].astype(str).tolist()
        )
        bundle = write_bundle(work / "bundle", preprocessor, n_members=3, encoder="lstm", dim=32)
        rows = pd.DataFrame({"text": texts})
        rows.to_parquet(work / "all.parquet", index=False)
        folder = work / "parts"
        folder.mkdir()
        size = -(-len(rows) // FILES)
        for i in range(FILES):
            rows[i * size : (i + 1) * size].to_parquet(folder / f"part{i}.parquet", index=False)
        tiny = work / "tiny"  # a run's fixed cost: actors' start, bundle loads, the read tasks
        tiny.mkdir()
        for i in range(FILES):
            rows[i : i + 1].to_parquet(tiny / f"part{i}.parquet", index=False)

        started = time.perf_counter()
        start_ray(address="local", num_cpus=2)
        startup = time.perf_counter() - started
        b = args.batch_size
        configs = {
            "local, 1 thread": lambda: local_rows(
                bundle, work / "all.parquet", threads=1, batch_size=b
            ),
            "local, 2 threads": lambda: local_rows(
                bundle, work / "all.parquet", threads=2, batch_size=b
            ),
            "Ray Data, 1 worker": lambda: ray_rows(bundle, folder, workers=1, batch_size=b),
            "Ray Data, 2 workers": lambda: ray_rows(bundle, folder, workers=2, batch_size=b),
            "Ray Data, 1 worker, 4 rows": lambda: ray_rows(bundle, tiny, workers=1, batch_size=b),
            "Ray Data, 2 workers, 4 rows": lambda: ray_rows(bundle, tiny, workers=2, batch_size=b),
        }
        seconds = {name: [] for name in configs}
        outputs = {}
        try:
            for _ in range(args.repeats):
                for name, run in configs.items():
                    started = time.perf_counter()
                    outputs[name] = pd.concat(run(), ignore_index=True)
                    seconds[name].append(time.perf_counter() - started)
        finally:
            stop_ray()
    reference = outputs["local, 1 thread"]
    same = all(
        frame["label"].equals(reference["label"])
        for name, frame in outputs.items()
        if not name.endswith("4 rows")
    )
    medians = {name: statistics.median(values) for name, values in seconds.items()}
    results = {
        "rows": args.rows,
        "files": FILES,
        "batch_size": args.batch_size,
        "bundle": "3 LSTM members, dim 32, fused graph",
        "labels_identical": same,
        "ray_startup_s": round(startup, 2),
        "seconds": seconds,
        "load_1min": os.getloadavg()[0],
        "configs": {},
    }
    for name, value in medians.items():
        if name.endswith("4 rows"):
            continue
        local = medians[
            "local, 1 thread" if name.endswith(("1 thread", "1 worker")) else "local, 2 threads"
        ]
        fixed = medians.get(f"{name}, 4 rows", 0.0)  # Ray only
        results["configs"][name] = {
            "median_s": round(value, 2),
            "rows_per_s": round(args.rows / value),
            "vs_local_same_cores": round(local / value, 3),
            "fixed_s": round(fixed, 2),
            "rows_per_s_after_fixed": round(args.rows / (value - fixed)),
            "extra_us_per_row_vs_local_same_cores": round(
                (value - fixed - local) / args.rows * 1e6, 1
            ),
        }
    record(
        "cluster_predict",
        results,
        summary_md=summary(results),
        command=f"python bench/bench_cluster_predict.py --rows {args.rows} "
        f"--repeats {args.repeats}",
    )
    print(summary(results))


def summary(r: dict) -> str:
    lines = [
        f"{r['rows']:,} tweets (the same rows for each: four Parquet files for Ray Data, one for "
        f"the local loop), {r['bundle']}; median of {len(next(iter(r['seconds'].values())))} runs "
        f"in one process, interleaved; labels identical: {r['labels_identical']}. Embedded Ray "
        f"(2 CPUs) start-up, once, not in the figures: {r['ray_startup_s']} s.",
        "",
        "| configuration | median s | rows/s | speed vs local on the same cores | fixed s "
        "(a 4-row run) | rows/s after the fixed cost | Ray Data's µs per row beyond local's |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, c in r["configs"].items():
        lines.append(
            f"| {name} | {c['median_s']} | {c['rows_per_s']:,} | "
            f"{c['vs_local_same_cores']} | {c['fixed_s']} | "
            f"{c['rows_per_s_after_fixed']:,} | "
            f"{c['extra_us_per_row_vs_local_same_cores']} |"
        )
    lines += [
        "",
        f"2 cores shared with other engineers' work (1-minute load {r['load_1min']:.1f} "
        "at the end), so the ratios are rough; 2 workers share the 2 cores with the "
        "driver and the read tasks. A Ray run's time includes its actors' start (each "
        "loads the bundle).",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
