"""Start-up: the wall time of `voxpop --help` and `voxpop spaces` as a user runs them (a new
process each time), beside a bare Typer app's `--help` (two commands, nothing imported) and an
empty Python start, in the same run: the bare app is what any Typer CLI costs on this machine, so
the ratio voxpop/bare is the figure that travels to another machine.

The commands run in turn (voxpop, bare, ..., one warm-up round first) so that a machine whose speed
drifts slows all of them alike; each figure is min / median / max over --runs, and the ratio is the
median of the per-round ratios. Also recorded: the heavy modules `voxpop --help` imports (none).

    nice .venv/bin/python bench/bench_cli.py [--runs 15]
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

from common import BENCH, record

VOXPOP = str(Path(sys.executable).with_name("voxpop"))
SRC = str(BENCH.parent / "src")
BARE_TYPER_APP = '''
import typer

app = typer.Typer(add_completion=False)


@app.command()
def hello(name: str = typer.Option("world", help="Who to greet.")) -> None:
    """Greet someone."""


@app.command()
def bye() -> None:
    """Say goodbye."""


app()
'''
HEAVY = (
    "numpy",
    "pandas",
    "onnx",
    "onnxruntime",
    "pydantic",
    "tensorflow",
    "keras",
    "ray",
    "sklearn",
    "pyarrow",
    "tf2onnx",
)


def wall_seconds(command: list[str], env: dict) -> float:
    start = time.perf_counter()
    subprocess.run(
        command, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    return time.perf_counter() - start


def spread(values: list[float]) -> dict:
    return {"min": min(values), "median": statistics.median(values), "max": max(values)}


def heavy_modules_of_help(env: dict) -> list[str]:
    probe = (
        "import sys, contextlib, io\n"
        "from voxpop.serving_cli import main\n"
        "sys.argv = ['voxpop', '--help']\n"
        "with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
        "    main()\n"
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True
    )
    return [name for name in out.stdout.strip().split(",") if name]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    env = {**os.environ, "PYTHONPATH": SRC}  # this checkout's sources, as the tests use them
    with tempfile.TemporaryDirectory() as work:
        bare = Path(work) / "bare_typer_app.py"
        bare.write_text(BARE_TYPER_APP)
        commands = {
            "voxpop --help": [VOXPOP, "--help"],
            "bare Typer app --help": [sys.executable, str(bare), "--help"],
            "voxpop spaces": [VOXPOP, "spaces"],
            "python -c pass": [sys.executable, "-c", "pass"],
        }
        times: dict[str, list[float]] = {name: [] for name in commands}
        for round_ in range(args.runs + 1):
            for name, command in commands.items():
                seconds = wall_seconds(command, env)
                if round_:  # round 0 warms the file cache
                    times[name].append(seconds)
    ratios = [
        cli / bare for cli, bare in zip(times["voxpop --help"], times["bare Typer app --help"])
    ]
    results = {name: spread(values) for name, values in times.items()}
    results["ratio voxpop/bare (--help)"] = spread(ratios)
    results["heavy modules imported by voxpop --help"] = heavy_modules_of_help(env)
    results["runs"] = args.runs
    rows = ["| command | wall s min | median | max |", "| --- | --- | --- | --- |"]
    rows += [
        f"| `{name}` | {r['min']:.3f} | {r['median']:.3f} | {r['max']:.3f} |"
        for name, r in results.items()
        if isinstance(r, dict) and name in commands
    ]
    ratio = results["ratio voxpop/bare (--help)"]
    summary = "\n".join(
        [
            f"Start-up of the command line, {args.runs} runs each in turn after one warm-up round "
            "(a new process per run):",
            "",
            *rows,
            "",
            f"`voxpop --help` / a bare Typer app's `--help`, round by round: median "
            f"{ratio['median']:.2f}x (min {ratio['min']:.2f}, max {ratio['max']:.2f}). Heavy "
            f"modules `voxpop --help` imports: "
            f"{', '.join(results['heavy modules imported by voxpop --help']) or 'none'} (of "
            f"{', '.join(HEAVY)}).",
        ]
    )
    record("cli", results, summary_md=summary, command=f"bench/bench_cli.py --runs {args.runs}")
    print(summary)


if __name__ == "__main__":
    main()
