"""What `voxpop tune` prints, what it logs, and what its driver imports: a tiny real run (one CNN
space, two trials of two epochs on 2,000 real tweets, an embedded Ray) in a fresh interpreter,
through CliRunner, with the interpreter's own stdout and stderr watched too."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pandas as pd

from test_tune_support import sample_table, space_file
from voxpop.data import rundir

PROGRESS = re.compile(
    r"^tune: (\d)/2 trials done, (\d) running, (\d) failed; best val macro-F1 "
    r"(-|0\.\d{4}); \S+ elapsed(, about \S+ left)?$",
    re.MULTILINE,
)


def test_tune_prints_progress_lines_and_sends_ray_and_tensorflow_output_to_the_run_log(
    tweets_df, tmp_path
):
    # a CSV named .txt, read with --format (as every command that reads a table can)
    data = tmp_path / "tweets.txt"
    pd.read_parquet(sample_table(tweets_df, tmp_path)).to_csv(data, index=False)
    space = space_file(tmp_path, "tiny", family="cnn", filters=8)
    args = [
        "tune",
        str(data),
        "--format",
        "csv",
        "--space",
        space,
        "--samples",
        "2",
        "--max-epochs",
        "2",
        "--scheduler",
        "fifo",
        "--storage",
        str(tmp_path / "runs"),
        "--name",
        "tiny",
    ]
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from voxpop.serving_cli import app\n"
        f"result = CliRunner().invoke(app, {args!r})\n"
        "print(result.output)\n"
        "print('exit code', result.exit_code)\n"
        "print('driver imported', [m for m in ('tensorflow', 'keras') if m in sys.modules])\n"
    )
    # as from a user's shell: an earlier embedded Ray in this pytest process set RAY_AUTH_MODE
    env = {key: value for key, value in os.environ.items() if key != "RAY_AUTH_MODE"}
    # TensorFlow's info notes on (voxpop's default level 2 hides them), as a user may ask: they
    # must reach the run's log, not the terminal.
    env["TF_CPP_MIN_LOG_LEVEL"] = "0"
    run = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=900, env=env
    )
    shown = run.stdout + run.stderr  # the CLI's output and anything that escaped it
    assert "exit code 0" in run.stdout, shown
    assert "driver imported []" in run.stdout  # TensorFlow runs in the trials only

    log = rundir.log_path(tmp_path / "runs" / "tiny")
    assert f"Ray's and TensorFlow's own output: {log}" in shown
    progress = PROGRESS.findall(shown)
    assert len(progress) >= 2, shown
    assert progress[-1][:4] == ("2", "0", "0", progress[-1][3]) and progress[-1][3] != "-"
    assert "Leaderboard (best validation macro-F1 first)" in shown
    # Neither Ray's status table nor its forwarded worker lines, nor TensorFlow's logs...
    for noise in (
        "== Status ==",
        "Trial name",
        "(train_trial pid=",
        "Checkpoint successfully",
        "absl",
        "oneDNN",
        "retracing",
        "Token authentication",
    ):
        assert noise not in shown, noise
    # ... which are in the run's log instead: the driver's Ray records and each trial's output.
    text = log.read_text()
    assert "Token authentication is enabled" in text  # Ray, at start-up (before the run existed)
    assert "Total run time" in text  # Ray Tune, at the end
    assert text.count("--- trial ") == 2
    assert text.count("Checkpoint successfully created") == 4  # 2 trials x 2 epochs
    # TensorFlow's start-up notes, as many as this machine's TensorFlow writes (they depend on the
    # CPU's instruction sets): what a bare import prints at the same level, the log holds.
    bare = subprocess.run(
        [sys.executable, "-c", "import tensorflow"], capture_output=True, text=True, env=env
    ).stderr
    for note in ("absl", "oneDNN", "cpu_feature_guard"):
        assert (note in text) == (note in bare), (note, bare)


def test_send_output_to_points_the_processes_file_descriptors_at_the_log(tmp_path):
    """C++ code (TensorFlow's logs) writes to file descriptors 1 and 2, not to sys.stderr: both
    must reach the run's log, after what the file held, and nothing of it the terminal."""
    log = tmp_path / "tune.log"
    log.write_text("earlier line\n")
    code = (
        "import os, sys\n"
        "from voxpop.tune_spaces.logs import send_output_to\n"
        "print('before', flush=True)\n"
        f"send_output_to({str(log)!r})\n"
        "os.write(1, b'fd one\\n')\n"
        "os.write(2, b'fd two\\n')\n"
        "print('python stdout', flush=True)\n"
        "print('python stderr', file=sys.stderr, flush=True)\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert run.stdout == "before\n" and run.stderr == ""
    assert log.read_text().splitlines() == [
        "earlier line",
        "fd one",
        "fd two",
        "python stdout",
        "python stderr",
    ]
