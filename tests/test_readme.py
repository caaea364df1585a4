"""Every README command block marked runnable works as written, on small real data."""

from __future__ import annotations

import csv
import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd

README = Path(__file__).resolve().parents[1] / "README.md"
MARKER = re.compile(r"<!-- runnable[^>]*-->\s*```bash\n(.*?)```", re.S)


def runnable_blocks() -> list[str]:
    return MARKER.findall(README.read_text(encoding="utf-8"))


def test_readme_has_a_runnable_quick_start():
    blocks = runnable_blocks()
    assert len(blocks) == 1
    for word in ("voxpop tune", "voxpop export", "voxpop predict", "voxpop evaluate"):
        assert word in blocks[0]


def command_table() -> dict[str, str]:
    """The README's command table: `voxpop COMMAND` -> the text of its row."""
    rows = re.findall(
        r"^\| `voxpop ([a-z]+)[^|]*\| (.*) \|$", README.read_text(encoding="utf-8"), re.MULTILINE
    )
    return {command: row for command, row in rows}


def test_every_option_the_command_table_names_is_in_the_commands_help():
    from typer.testing import CliRunner

    from voxpop.serving_cli import app

    table = command_table()
    assert {
        "tune",
        "spaces",
        "export",
        "info",
        "predict",
        "evaluate",
        "keygen",
        "demo",
        "bench",
    } <= set(table)
    for command, row in table.items():
        help_text = CliRunner().invoke(app, [command, "--help"], env={"COLUMNS": "200"}).output
        for option in set(re.findall(r"--[a-z][a-z-]*", row)):
            assert option in help_text, f"README: voxpop {command} {option} is not an option"


def test_quick_start_runs_as_written(tmp_path, tweets_df):
    sample = tweets_df.groupby("label").sample(n=200, random_state=5)
    sample[["text", "label"]].to_csv(tmp_path / "my.csv", index=False, quoting=csv.QUOTE_ALL)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    for block in runnable_blocks():
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", block],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
        )
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    predictions = pd.read_csv(tmp_path / "predictions.csv")
    assert len(predictions) == len(sample)
    assert set(predictions["label"]) <= {"negative", "neutral", "positive"}
    assert {"label_1", "prob_1", "label_2", "prob_2"} <= set(predictions.columns)
    assert (tmp_path / "mine-report" / "report.json").exists()
    assert (tmp_path / "mine-bundle" / "ensemble.json").exists()
