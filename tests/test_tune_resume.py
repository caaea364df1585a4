"""`voxpop tune --resume`: a run interrupted after its first trials finishes them all, without
running the finished ones again."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

from test_tune_support import checkpoints, metrics, sample_table, space_file
from voxpop.tune_spaces.runner import TuneOptions, run_tuning

VOXPOP = str(Path(sys.executable).with_name("voxpop"))
TRIALS = 6


def _interrupt_after_first_trial(command: list[str], run_dir: Path, timeout: float = 300) -> None:
    """Run `command` (one trial at a time); once a second trial has a checkpoint, so the first
    one is certainly finished and recorded, press Ctrl-C."""
    process = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    deadline = time.monotonic() + timeout
    try:
        while len(checkpoints(run_dir)) < 2 and process.poll() is None:
            assert time.monotonic() < deadline, "no trial finished in time"
            time.sleep(0.5)
        process.send_signal(signal.SIGINT)
        process.wait(timeout=120)
    finally:
        _kill_leftovers(process)


def _kill_leftovers(process: subprocess.Popen) -> None:
    """The interrupted driver's Ray processes, if it left any: ours, killed by pid."""
    try:
        children = psutil.Process(process.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        children = []
    for proc in [*children]:
        proc.kill()
    if process.poll() is None:
        os.kill(process.pid, signal.SIGKILL)
        process.wait()


def test_resume_runs_only_the_unfinished_trials(tweets_df, tmp_path):
    data = sample_table(tweets_df, tmp_path)
    space = space_file(tmp_path, "tiny_cnn", family="cnn", filters=8)
    storage, name = tmp_path / "runs", "resumed"
    run_dir = storage / name
    _interrupt_after_first_trial(
        [
            VOXPOP,
            "tune",
            str(data),
            "--space",
            space,
            "--samples",
            str(TRIALS),
            "--max-epochs",
            "1",
            "--scheduler",
            "fifo",
            "--max-concurrent",
            "1",
            "--storage",
            str(storage),
            "--name",
            name,
        ],
        run_dir,
    )
    before = sorted((metrics(c) for c in checkpoints(run_dir)), key=lambda r: r["ended"])
    assert 2 <= len(before) < TRIALS
    # The last one reported, but Tune may not have recorded it as finished before Ctrl-C.
    finished = {r["trial_id"]: r["ended"] for r in before[:-1]}

    outcome = run_tuning(
        TuneOptions(
            data=None, storage=storage, name=name, resume=True, spaces=(space,), max_epochs=5
        )
    )  # the run's 1 is kept

    assert len(outcome.leaderboard) == TRIALS
    assert [row["error"] for row in outcome.leaderboard] == [None] * TRIALS
    records = {metrics(c)["trial_id"]: metrics(c) for c in checkpoints(run_dir)}
    assert len(records) == TRIALS
    assert {r["epoch"] for r in records.values()} == {1}
    for trial_id, ended in finished.items():  # untouched: same checkpoint, reported once
        assert records[trial_id]["ended"] == ended
    for result_file in run_dir.glob("*/result.json"):
        trial_id = json.loads(result_file.read_text().splitlines()[0])["trial_id"]
        if trial_id in finished:
            assert len(result_file.read_text().splitlines()) == 1
