"""`voxpop export` of a demo's tuning run, this checkout against an older source tree in turn:
seconds per export (the demo's own options) and whether the two bundles prove the same.

Made to measure export's proofs on a run with sentence heads (each runs the transformer over the
parity rows): how much the fused proof saves by reusing each member's parity probabilities.
Each export is a fresh process; the trees alternate (now, before, now, ...) so that drift in the
machine's speed falls on both. tf2onnx names its nodes differently from one process to the next,
so the bundles are compared by what export proved (parity and fused differences), not by bytes.

Run: .venv/bin/python bench/bench_export_demo.py --demo-dir voxpop-demo --baseline-src OLD/src
     [--baseline-commit SHA] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from common import Timer, record

SRC = Path(__file__).resolve().parents[1] / "src"


def export(src: Path, run: Path, out: Path) -> float:
    """Seconds of one `voxpop export` (the demo's options) run from the tree `src`."""
    with Timer() as timer:
        subprocess.run(
            [sys.executable, "-m", "voxpop", "export", str(run), "--out", str(out)]
            + ["--size", "6", "--select", "greedy", "--force"],
            check=True,
            capture_output=True,
            env={**os.environ, "PYTHONPATH": str(src)},
        )
    return timer.seconds


def proofs(bundle: Path) -> dict:
    """What export proved: each member's parity and the fused graph's differences."""
    manifest = json.loads((bundle / "ensemble.json").read_text())
    return {
        "members": [(m["family"], m["parity"]) for m in manifest["members"]],
        "fused": manifest["fused"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demo-dir", type=Path, default=Path("voxpop-demo"))
    parser.add_argument("--baseline-src", type=Path, required=True)
    parser.add_argument("--baseline-commit", default="")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    run = args.demo_dir / "runs" / "demo"
    work = Path(tempfile.mkdtemp(prefix="bench-export-demo-"))
    trees = {"now": SRC, "before": args.baseline_src.resolve()}
    seconds = {name: [] for name in trees}
    load_start = os.getloadavg()
    for _ in range(args.repeats):
        for name, src in trees.items():
            seconds[name].append(round(export(src, run, work / name), 1))
            print(name, seconds[name][-1], flush=True)
    load_end = os.getloadavg()
    same = proofs(work / "now") == proofs(work / "before")
    members = [family for family, _ in proofs(work / "now")["members"]]
    median = {name: statistics.median(values) for name, values in seconds.items()}
    results = {
        "run": str(run),
        "members": members,
        "seconds": seconds,
        "median_s": median,
        "before_over_now": round(median["before"] / median["now"], 2),
        "same_proofs": same,
        "loadavg": [round(load_start[0], 2), round(load_end[0], 2)],
    }
    print(json.dumps(results, indent=1))
    before = f"{args.baseline_src}" + (
        f" (commit {args.baseline_commit})" if args.baseline_commit else ""
    )
    summary = "\n".join(
        [
            f"`voxpop export RUN --size 6 --select greedy` of {run} ({len(members)} members: "
            f"{', '.join(members)}), a fresh process each, this checkout and {before} in turn, "
            f"{args.repeats} each; {os.cpu_count()} cores, load average {load_start[0]:.1f} at "
            f"start, {load_end[0]:.1f} at end.\n",
            "| tree | seconds (each run) | median |",
            "| --- | --- | --- |",
            *(
                f"| {name} | {', '.join(f'{s:.1f}' for s in seconds[name])} | {median[name]:.1f} |"
                for name in trees
            ),
            "",
            f"Before / now: {results['before_over_now']}x. Same proofs (every member's parity, "
            f"the fused graph's differences): {same}.",
            "",
        ]
    )
    record(
        "export_demo",
        results,
        summary_md=summary,
        command=f"bench/bench_export_demo.py --demo-dir {args.demo_dir} --baseline-src "
        f"{args.baseline_src} --repeats {args.repeats}",
    )


if __name__ == "__main__":
    main()
