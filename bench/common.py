"""Shared by the bench scripts: machine facts, and recording a result as JSON + in RESULTS.md.

Every script writes `bench/results/<name>.json` through `record()`, which also rebuilds
`bench/RESULTS.md` from all the JSON files, so the Markdown is always what was last measured.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results"
DATASETS = Path(os.environ.get("VOXPOP_DATASETS", BENCH.parents[1] / "shared" / "datasets"))
sys.path.insert(0, str(BENCH.parent / "src"))

from voxpop.data.atomic import write_json, write_text  # noqa: E402


def machine() -> dict:
    """Cores, CPU model, memory and versions: stated in every result."""
    cpu_model = "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    mem_gib = None
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        kib = int(meminfo.read_text().split("MemTotal:")[1].split()[0])
        mem_gib = round(kib / 2**20, 1)
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=BENCH
    ).stdout.strip()
    return {
        "cores": os.cpu_count(),
        "cpu_model": cpu_model,
        "memory_gib": mem_gib,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "commit": commit,
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }


def record(name: str, results: dict, *, summary_md: str, command: str) -> Path:
    """Write results/<name>.json (with machine facts) and rebuild RESULTS.md."""
    payload = {
        "name": name,
        "command": command,
        "machine": machine(),
        "results": results,
        "summary_md": summary_md,
    }
    path = RESULTS / f"{name}.json"
    RESULTS.mkdir(exist_ok=True)
    write_json(path, payload)
    rebuild_results_md()
    return path


def rebuild_results_md() -> None:
    parts = [
        "# Benchmark results\n",
        "Rebuilt by `bench/common.py` from `bench/results/*.json`; each section says the "
        "command that produced it and the machine it ran on.\n",
    ]
    for path in sorted(RESULTS.glob("*.json")):
        data = json.loads(path.read_text())
        if "summary_md" not in data:
            continue
        m = data["machine"]
        parts.append(f"## {data['name']}\n")
        parts.append(
            f"`{data['command']}` — {m['cores']} cores, {m['cpu_model']}, "
            f"{m['memory_gib']} GiB, Python {m['python']}, commit {m['commit']}, {m['date']}\n"
        )
        parts.append(data["summary_md"].rstrip() + "\n")
    write_text(BENCH / "RESULTS.md", "\n".join(parts))


class Timer:
    """`with Timer() as t: ...` then `t.seconds`."""

    def __enter__(self):
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self._start


def stratified_sample(file: str, *, rows: int, seed: int):
    """About `rows` rows of the shared set `file` (text, label), stratified by label and shuffled
    with `seed`, and their split (val 20%, test 20%, `voxpop.data.split_rows`)."""
    import pandas as pd

    from voxpop.data import split_rows

    df = pd.read_csv(DATASETS / file, usecols=["text", "label"], keep_default_na=False)
    df = (
        df.groupby("label")
        .sample(frac=rows / len(df), random_state=seed)
        .sample(frac=1.0, random_state=seed)
        .reset_index(drop=True)
    )
    split = split_rows(df["label"].astype(str).to_numpy(), val_size=0.2, test_size=0.2, seed=seed)
    return df, split


def best_rate(step, rows: int, repeats: int) -> float:
    """Rows per second of `step()` (which handles `rows` rows): the best of `repeats` timed calls
    after one warm-up."""
    step()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        step()
        times.append(time.perf_counter() - started)
    return rows / min(times)
