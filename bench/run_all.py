"""Run every benchmark in turn (about 2.5 hours on 2 cores); each writes bench/results/NAME.json
and rebuilds bench/RESULTS.md. `make bench` runs this; run one script alone to refresh one table.

Order matters: `bench_quality.py` runs `voxpop demo` and the other tuning runs into a work
directory, `bench_selection.py` compares strategies on those runs, and `bench_inference.py` times
the bundle that demo exported.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent
QUALITY_DEMO = "/tmp/voxpop-bench-quality/demo"
SCRIPTS = [
    ["bench_cli.py"],
    ["bench_encode.py"],
    ["bench_families.py", "--epochs", "2"],
    ["bench_tune.py"],
    ["bench_export.py"],
    ["bench_predict.py"],
    ["bench_load.py"],
    ["bench_quality.py"],
    ["bench_selection.py"],
    ["bench_inference.py", "--demo-dir", QUALITY_DEMO],
    ["bench_graph.py", "--demo-dir", QUALITY_DEMO],
    ["bench_speed_goals.py", "--demo-dir", QUALITY_DEMO],
    ["bench_sentence_runs.py", "--demo-dir", QUALITY_DEMO],
    ["bench_demo.py"],
]

if __name__ == "__main__":
    for script, *args in SCRIPTS:
        print(f"== {script} {' '.join(args)}", flush=True)
        subprocess.run([sys.executable, str(BENCH / script), *args], check=True, cwd=BENCH.parent)
