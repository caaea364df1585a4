"""Load: `voxpop predict` (a subprocess, as a user runs it) on 1,000,000 rows made from real tweets.

Is the input streamed? Peak RSS of the predict process is polled with psutil every 0.5 s and
compared with its RSS after the first chunk; throughput is read from the growth of the output
(the temporary file predict writes before renaming it into place: one line per row), and the
rows/s of the first and the last 10% of the rows are compared (the issue asks: within 10%?), per
second of wall time and per second of the process's own CPU time (on a machine shared with other
work, only the second measures predict alone).

The bundle is tests/bundle_factory.py's: 3 small members (embedding mean -> dense) and a fused
graph around a real Preprocessor fitted on 1,500 other real tweets, so the figures measure reading,
encoding and writing at scale rather than a big model (bench_predict.py times models).

    nice .venv/bin/python bench/bench_load.py [--rows 1000000] [--batch-size 8192]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import psutil

from common import BENCH, DATASETS, record

sys.path.insert(0, str(BENCH.parent / "tests"))
from bundle_factory import write_bundle  # noqa: E402
from voxpop.data import Preprocessor  # noqa: E402

VOXPOP = str(Path(sys.executable).with_name("voxpop"))
POLL_SECONDS = 0.5
WORK = Path("/tmp/voxpop_bench_load")


def input_csv(n_rows: int) -> Path:
    """`id,text` rows drawn with replacement from the real tweets (seed 0), written once."""
    path = WORK / f"tweets_{n_rows}.csv"
    if not path.exists():
        tweets = pd.read_csv(DATASETS / "tweet_sentiment.csv")["text"].astype(str)
        rng = np.random.default_rng(0)
        texts = tweets.to_numpy()[rng.integers(0, len(tweets), n_rows)]
        pd.DataFrame({"id": np.arange(n_rows).astype(str), "text": texts}).to_csv(path, index=False)
    return path


def bundle() -> Path:
    path = WORK / "bundle"
    if not path.exists():
        tweets = pd.read_csv(DATASETS / "tweet_sentiment.csv").sample(n=1500, random_state=1)
        preprocessor = Preprocessor(max_tokens=3000, max_len=32).fit(
            tweets["text"].astype(str).tolist(), tweets["label"].astype(str).tolist()
        )
        write_bundle(path, preprocessor)
    return path


def _output_file(target: Path) -> Path | None:
    """The file predict is writing: its temporary sibling until the rename, then the target."""
    partial = sorted(target.parent.glob(f".{target.name}.*.tmp"))
    return partial[0] if partial else (target if target.exists() else None)


def _count_lines(path: Path | None, offset: int, lines: int) -> tuple[int, int]:
    """Lines in `path` counted incrementally from `offset` (the writer only appends)."""
    if path is None:
        return offset, lines
    try:
        with open(path, "rb") as handle:
            handle.seek(offset)
            chunk = handle.read()
    except FileNotFoundError:
        return offset, lines
    return offset + len(chunk), lines + chunk.count(b"\n")


def run_predict(source: Path, target: Path, *, batch_size: int) -> dict:
    """Run predict, polling RSS and output rows; return the samples and the exit status."""
    target.unlink(missing_ok=True)
    command = [
        VOXPOP,
        "predict",
        str(bundle()),
        str(source),
        "--id-col",
        "id",
        "--out",
        str(target),
        "--batch-size",
        str(batch_size),
        "--device",
        "cpu",
    ]
    started = time.monotonic()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    watched = psutil.Process(process.pid)
    samples, offset, lines, current = [], 0, 0, None
    while process.poll() is None:
        try:
            rss = watched.memory_info().rss
            times = watched.cpu_times()
        except psutil.NoSuchProcess:
            break
        current = _output_file(target) or current  # after the rename: the same bytes, renamed
        offset, lines = _count_lines(current, offset, lines)
        samples.append(
            (
                time.monotonic() - started,
                rss,
                max(lines - 1, 0),  # minus the header
                times.user + times.system,
            )
        )
        time.sleep(POLL_SECONDS)
    offset, lines = _count_lines(target, offset, lines)  # the rows written after the last poll
    samples.append((time.monotonic() - started, samples[-1][1], max(lines - 1, 0), samples[-1][3]))
    stderr = process.stderr.read().decode()
    return {
        "returncode": process.returncode,
        "seconds": time.monotonic() - started,
        "samples": samples,
        "stderr_tail": stderr.strip().splitlines()[-2:],
        "command": command,
    }


def rate_between(samples: list[tuple], low: int, high: int, *, clock: int = 0) -> float:
    """Rows per second of `clock` (0: wall, 3: the process's CPU time) over a window holding the
    output's growth from `low` to `high` rows: from the last sample at or below `low` to the
    first at or past `high`."""
    start = [s for s in samples if s[2] <= low][-1]
    end = next(s for s in samples if s[2] >= high)
    return (end[2] - start[2]) / (end[clock] - start[clock])


def summarise(run: dict, *, n_rows: int) -> dict:
    samples = run["samples"]
    tenth = n_rows // 10
    first_output = next(s[2] for s in samples if s[2] > 0)  # start-up and first chunk excluded
    first = rate_between(samples, first_output, first_output + tenth)
    last = rate_between(samples, n_rows - tenth, n_rows)
    # on a shared machine wall time also measures the neighbours: CPU time is the process's own
    first_cpu = rate_between(samples, first_output, first_output + tenth, clock=3)
    last_cpu = rate_between(samples, n_rows - tenth, n_rows, clock=3)
    after_first_chunk = next(s[1] for s in samples if s[2] > 0)
    peak = max(s[1] for s in samples)
    mib = 2**20
    return {
        "seconds": round(run["seconds"], 1),
        "rows_per_s_overall": round(n_rows / run["seconds"], 1),
        "rows_per_s_first_10pct": round(first, 1),
        "rows_per_s_last_10pct": round(last, 1),
        "last_vs_first": round(last / first, 3),
        "rows_per_cpu_s_first_10pct": round(first_cpu, 1),
        "rows_per_cpu_s_last_10pct": round(last_cpu, 1),
        "cpu_last_vs_first": round(last_cpu / first_cpu, 3),
        "rss_mib_after_first_chunk": round(after_first_chunk / mib, 1),
        "peak_rss_mib": round(peak / mib, 1),
        "peak_vs_first_chunk": round(peak / after_first_chunk, 3),
        "rss_mib_by_decile": [
            round(max((s[1] for s in samples if s[2] <= n_rows * d / 10), default=0) / mib, 1)
            for d in range(1, 11)
        ],
    }


# What tests/test_reliability_*.py inject (kept here so RESULTS.md lists inputs and faults beside
# the load figures; the tests assert the outcomes).
FAULTS = [
    "SIGKILL of `voxpop predict` mid-stream: no file at --out, no temporary left behind",
    "SIGKILL of `voxpop export` during ONNX conversion: no bundle at --out, a rerun succeeds",
    "SIGTERM / SIGKILL of `voxpop tune` after the first finished trial: --resume finishes, "
    "finished trials kept",
]
INPUTS = [
    "missing / directory / empty / header-only file",
    "missing text or label column",
    "';'-separated file read as CSV",
    "one-class labels and a class too small for the split",
    "non-UTF-8 bytes",
    "null texts",
    "a 1 MB text",
    "Parquet text column of type double",
    "unknown --space/--voting/--select and family",
    "--out in a missing directory or under a file",
    "not-a-bundle, newer schema_version, swapped and truncated member, oversized preprocess.json",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--batch-size", type=int, default=8192)
    args = parser.parse_args()
    WORK.mkdir(exist_ok=True)
    source = input_csv(args.rows)
    target = WORK / "predictions.csv"
    load_average = os.getloadavg()
    run = run_predict(source, target, batch_size=args.batch_size)
    if run["returncode"] != 0:
        raise SystemExit(f"predict failed ({run['returncode']}): {run['stderr_tail']}")
    written = sum(1 for _ in open(target, "rb")) - 1
    assert written == args.rows, f"{written} rows written for {args.rows}"
    results = {
        "rows": args.rows,
        "batch_size": args.batch_size,
        "input_mib": round(source.stat().st_size / 2**20, 1),
        "bundle": "3 members (embedding 8 mean -> dense) + fused graph, max_len 32",
        "load_average_at_start": [round(x, 2) for x in load_average],
        **summarise(run, n_rows=args.rows),
        "inputs_tried": INPUTS,
        "faults_injected": FAULTS,
    }
    record(
        "load",
        results,
        summary_md=summary(results),
        command="nice .venv/bin/python bench/bench_load.py " + " ".join(sys.argv[1:]),
    )
    print(summary(results))


def summary(r: dict) -> str:
    def within(ratio: float) -> str:
        return "within" if abs(ratio - 1) <= 0.10 else "NOT within"

    lines = [
        f"`voxpop predict` (subprocess, --batch-size {r['batch_size']}) on {r['rows']:,} real-tweet "
        f"rows ({r['input_mib']} MiB CSV), bundle: {r['bundle']}; load average at start "
        f"{r['load_average_at_start'][0]} on a shared machine.\n",
        "| measure | value |",
        "|---|---|",
        f"| wall time | {r['seconds']} s ({r['rows_per_s_overall']:,} rows/s) |",
        f"| rows/s, first 10% of rows | {r['rows_per_s_first_10pct']:,} |",
        f"| rows/s, last 10% of rows | {r['rows_per_s_last_10pct']:,} |",
        f"| last / first (wall) | {r['last_vs_first']} ({within(r['last_vs_first'])} 10%) |",
        f"| rows per CPU-second, first / last 10% | {r['rows_per_cpu_s_first_10pct']:,} / "
        f"{r['rows_per_cpu_s_last_10pct']:,} |",
        f"| last / first (CPU time) | {r['cpu_last_vs_first']} ({within(r['cpu_last_vs_first'])} 10%) |",
        f"| RSS after the first chunk | {r['rss_mib_after_first_chunk']} MiB |",
        f"| peak RSS | {r['peak_rss_mib']} MiB ({r['peak_vs_first_chunk']}x the first chunk's) |",
        f"| peak RSS by decile of rows (MiB) | {', '.join(map(str, r['rss_mib_by_decile']))} |",
        "",
        "Bad inputs tried (tests/test_reliability_input.py, each a one-line `error:` and exit 2 "
        "or, for bytes/nulls/1 MB text, a normal result): " + "; ".join(r["inputs_tried"]) + ".",
        "",
        "Faults injected (tests/test_reliability_faults.py): "
        + "; ".join(r["faults_injected"])
        + ".",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
