"""Ray Data batch predict (`voxpop predict --address local --workers N`) against the local command
on the same rows of real tweets: rows/s with 1 and 2 workers, and Ray Data's cost per row.

The same rows are written once as one Parquet file (what the local command reads) and as four
Parquet files of a folder (what Ray Data reads, a file per read task); every command runs as a
user runs it (a new process; the Ray runs start their embedded Ray, whose start-up is timed apart
by a run on 4 rows and subtracted for the per-row figure). The bundle is tests/bundle_factory.py's
LSTM bundle around a Preprocessor fitted on other real tweets (random weights change no timing).
Each configuration runs --repeats times in turn (local, 1 worker, 2 workers, ...); medians kept.

    nice .venv/bin/python bench/bench_cluster_predict.py [--rows 200000] [--repeats 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
from common import BENCH, DATASETS, record

sys.path.insert(0, str(BENCH.parent / "tests"))
from bundle_factory import write_bundle  # noqa: E402

from voxpop.data import Preprocessor  # noqa: E402

VOXPOP = str(Path(sys.executable).with_name("voxpop"))
FILES = 4


def wall(command: list[str]) -> float:
    env = {**os.environ, "PYTHONPATH": str(BENCH.parent / "src")}
    start = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=2048)
    args = parser.parse_args()

    tweets = pd.read_csv(DATASETS / "tweet_sentiment.csv").sample(frac=1.0, random_state=0)
    fit_rows, pool = tweets[:5000], tweets[5000:]["text"].astype(str)
    texts = pool.sample(args.rows, replace=True, random_state=1).tolist()
    with tempfile.TemporaryDirectory(prefix="bench-cluster-") as tmp:
        work = Path(tmp)
        preprocessor = Preprocessor().fit(fit_rows["text"].astype(str).tolist(),
                                          fit_rows["label"].astype(str).tolist())
        bundle = write_bundle(work / "bundle", preprocessor, n_members=3, encoder="lstm", dim=32)
        rows = pd.DataFrame({"text": texts})
        rows.to_parquet(work / "all.parquet", index=False)
        folder = work / "parts"
        folder.mkdir()
        size = -(-len(rows) // FILES)
        for i in range(FILES):
            rows[i * size:(i + 1) * size].to_parquet(folder / f"part{i}.parquet", index=False)
        pd.DataFrame({"text": texts[:4]}).to_parquet(work / "tiny.parquet", index=False)

        batch = ["--batch-size", str(args.batch_size)]
        commands = {
            "local (no Ray, --threads 2)": [VOXPOP, "predict", str(bundle), str(work / "all.parquet"),
                                            *batch, "--threads", "2", "--out", str(work / "l.parquet")],
            "Ray Data, 1 worker": [VOXPOP, "predict", str(bundle), str(folder), *batch,
                                   "--address", "local", "--workers", "1", "--out", str(work / "r1.parquet")],
            "Ray Data, 2 workers": [VOXPOP, "predict", str(bundle), str(folder), *batch,
                                    "--address", "local", "--workers", "2", "--out", str(work / "r2.parquet")],
            "Ray start-up and shutdown (4 rows, 2 workers)": [
                VOXPOP, "predict", str(bundle), str(work / "tiny.parquet"), "--address", "local",
                "--workers", "2", "--out", str(work / "t.parquet")],
        }
        seconds = {name: [] for name in commands}
        for _ in range(args.repeats):
            for name, command in commands.items():
                seconds[name].append(wall(command))
        same = all(pd.read_parquet(work / "l.parquet").equals(pd.read_parquet(work / f"{n}.parquet"))
                   for n in ("r1", "r2"))

    medians = {name: statistics.median(values) for name, values in seconds.items()}
    startup = medians["Ray start-up and shutdown (4 rows, 2 workers)"]
    local = medians["local (no Ray, --threads 2)"]
    results = {"rows": args.rows, "files": FILES, "batch_size": args.batch_size,
               "bundle": "3 LSTM members, dim 32, fused", "outputs_identical": same,
               "seconds": seconds, "median_seconds": medians, "ray_startup_s": startup,
               "load_1min": os.getloadavg()[0], "configs": {}}
    for name, value in medians.items():
        if name.startswith("Ray start"):
            continue
        net = value - startup if name.startswith("Ray Data") else value
        results["configs"][name] = {
            "wall_s": round(value, 2), "rows_per_s": round(args.rows / value),
            "rows_per_s_without_ray_startup": round(args.rows / net) if net > 0 else None,
            "wall_vs_local": round(value / local, 3),
            "extra_us_per_row_vs_local": round((net - local) / args.rows * 1e6, 2),
        }
    record("cluster_predict", results, summary_md=summary(results),
           command=f"python bench/bench_cluster_predict.py --rows {args.rows} --repeats {args.repeats}")
    print(summary(results))


def summary(r: dict) -> str:
    lines = [f"{r['rows']:,} tweets, the same rows for every command ({r['files']} Parquet files "
             f"for Ray Data, one for the local command), {r['bundle']}; median of "
             f"{len(next(iter(r['seconds'].values())))} runs, each a new process; outputs "
             f"identical: {r['outputs_identical']}. Embedded Ray start-up and shutdown: "
             f"{r['ray_startup_s']:.1f} s (subtracted in the third column).", "",
             "| command | wall s | rows/s | rows/s without Ray start-up | wall / local | "
             "extra µs per row vs local |", "| --- | --- | --- | --- | --- | --- |"]
    for name, c in r["configs"].items():
        lines.append(f"| {name} | {c['wall_s']} | {c['rows_per_s']:,} | "
                     f"{c['rows_per_s_without_ray_startup'] or '-'} | {c['wall_vs_local']} | "
                     f"{c['extra_us_per_row_vs_local']} |")
    lines += ["", f"2 cores shared with other work (1-minute load {r['load_1min']:.1f} at the end): "
              "2 workers compete with the driver's reading and writing for the same 2 cores."]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
