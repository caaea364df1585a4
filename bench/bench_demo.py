"""`voxpop demo` and `voxpop demo --quick` from nothing, timed per stage: issue 19 asks for the
full demo under 15 minutes on 2 cores and the quick one under 5, with the gain shown.

Each demo runs as a subprocess into a fresh directory; its stages are the commands it prints
(`$ voxpop tune ...`, `$ voxpop export ...`, `$ voxpop evaluate ...`), each timed from its line to
the next, the data preparation before the first. The sentence encoder's embedding (inside tune)
is the time tune prints for it. Macro-F1 of the bundle's default vote and of TF-IDF + LR come
from the demo's own evaluation reports.

Run: .venv/bin/python bench/bench_demo.py [--work DIR] [--record demo]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import record

VOXPOP = [sys.executable, "-m", "voxpop"]
EMBEDDED = re.compile(r"sentence encoder: ([\d,]+) texts embedded in (\d+) s")
PLANS = {"full": [], "quick": ["--quick"]}


def run_demo(out: Path, flags: list[str]) -> dict:
    """Run one demo into `out`; seconds per stage, in all, and the embedding's."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    started = time.perf_counter()
    marks = [("data", started)]
    embedding = None
    with subprocess.Popen(
        [*VOXPOP, "demo", "--out", str(out), *flags],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    ) as demo:
        for line in demo.stdout:
            if line.startswith("$ voxpop "):
                marks.append((line.split()[2], time.perf_counter()))
            elif found := EMBEDDED.search(line):
                embedding = int(found.group(2))
    if demo.returncode != 0:
        raise SystemExit(f"voxpop demo {' '.join(flags)} failed (exit {demo.returncode})")
    ended = time.perf_counter()
    stages = {
        name: round(end - begin, 1)
        for (name, begin), (_, end) in zip(marks, [*marks[1:], ("end", ended)])
    }
    return {"seconds": round(ended - started, 1), "stages": stages, "embedding_s": embedding}


def scores(out: Path) -> dict:
    """Per evaluated set: the default vote's macro-F1 and TF-IDF + LR's, from the reports."""
    found = {}
    for report in sorted((out / "reports").glob("*/report.json")):
        data = json.loads(report.read_text())
        found[report.parent.name] = {
            "vote": data["primary"],
            "vote_macro_f1": round(data["votes"][data["primary"]]["macro_f1"], 4),
            "tfidf_macro_f1": round(data["baselines"]["tfidf_logreg"]["macro_f1"], 4),
        }
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=None, help="Default: a temporary directory.")
    parser.add_argument("--record", default="demo")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-demo-"))
    load_start = os.getloadavg()
    results = {}
    for plan, flags in PLANS.items():
        out = work / plan
        shutil.rmtree(out, ignore_errors=True)
        results[plan] = {**run_demo(out, flags), "macro_f1": scores(out)}
        print(plan, json.dumps(results[plan]), flush=True)
    load_end = os.getloadavg()
    results["loadavg"] = [round(load_start[0], 2), round(load_end[0], 2)]

    lines = [
        f"`voxpop demo` and `voxpop demo --quick`, each from nothing into a fresh directory, "
        f"{os.cpu_count()} cores; load average {load_start[0]:.1f} at start, {load_end[0]:.1f} at "
        "end. Stages are the commands the demo prints, each timed to the next; the embedding "
        "(every training and validation text through the sentence encoder, once) is part of tune.\n",
        "| demo | minutes | goal | data | tune (embedding) | export | evaluate | test: vote / "
        "TF-IDF | airline: vote / TF-IDF |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for plan, goal in (("full", 15), ("quick", 5)):
        got = results[plan]
        stages = got["stages"]
        f1 = got["macro_f1"]
        minutes = got["seconds"] / 60
        lines.append(
            f"| {plan} | {minutes:.1f} | < {goal} ({'met' if minutes < goal else 'not met'}) | "
            f"{stages.get('data', 0):.0f} s | {stages.get('tune', 0):.0f} s "
            f"({got['embedding_s'] or 0} s) | {stages.get('export', 0):.0f} s | "
            f"{stages.get('evaluate', 0):.0f} s | "
            + " | ".join(
                f"{f1[name]['vote_macro_f1']:.4f} / {f1[name]['tfidf_macro_f1']:.4f}"
                for name in ("test_split", "airline_tweets")
            )
            + " |"
        )
    record(
        args.record,
        results,
        summary_md="\n".join(lines) + "\n",
        command="bench/bench_demo.py"
        + (f" --record {args.record}" if args.record != "demo" else ""),
    )


if __name__ == "__main__":
    main()
