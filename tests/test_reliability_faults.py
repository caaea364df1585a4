"""Faults: processes killed mid-work leave nothing half-written at their target, and a rerun (or
`voxpop tune --resume`) finishes the work. Real subprocesses of the `voxpop` CLI, real signals.

Already proven elsewhere: Ctrl-C of tune then --resume (test_tune_resume.py); a crashing trial
retried per --max-failures and marked in the leaderboard (test_tune_local.py); an error mid-stream
of predict leaves no output (test_predict_cli.py).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import psutil
import pytest
from typer.testing import CliRunner

from bundle_factory import bundle_dir, held_out_texts, tweet_preprocessor, tweet_rows  # noqa: F401
from test_export_bundle import run_dir  # noqa: F401  (a tiny real run: 4 small Keras models)
from test_tune_support import checkpoints, metrics, sample_table, space_file
from voxpop.data.atomic import atomic_path
from voxpop.serving_cli.app import app

VOXPOP = str(Path(sys.executable).with_name("voxpop"))
REPO = Path(__file__).resolve().parents[1]


def _wait_for(condition, process: subprocess.Popen, *, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert process.poll() is None, (
            f"the process ended (code {process.returncode}) before {what}"
        )
        assert time.monotonic() < deadline, f"no {what} within {timeout} s"
        time.sleep(0.2)


def _kill_tree(process: subprocess.Popen, sig: int) -> None:
    """Send `sig` to the process group started for `process`, wait, then SIGKILL whatever of its
    descendants is left (Ray's raylet and gcs_server can outlive a killed driver)."""
    try:
        descendants = psutil.Process(process.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        descendants = []
    os.killpg(process.pid, sig)
    try:
        process.wait(timeout=120)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    for proc in descendants:
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            pass


def _temporaries(target: Path) -> list[Path]:
    return sorted(target.parent.glob(f".{target.name}.*.tmp"))


# -- predict ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_predict_killed_mid_stream_leaves_no_output_and_a_rerun_completes(
    tmp_path, bundle_dir, held_out_texts, sig
):
    texts = [t.replace("\r", " ") for t in held_out_texts] * 120  # 60,000 real tweets
    source = tmp_path / "in.csv"
    pd.DataFrame({"text": texts}).to_csv(source, index=False)
    target = tmp_path / "out" / "preds.csv"
    target.parent.mkdir()
    command = [
        VOXPOP,
        "predict",
        str(bundle_dir),
        str(source),
        "--out",
        str(target),
        "--batch-size",
        "500",
        "--device",
        "cpu",
    ]
    process = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    try:
        # killed once some chunks are written to the temporary file, long before the end
        _wait_for(
            lambda: any(p.stat().st_size > 10_000 for p in _temporaries(target)),
            process,
            timeout=60,
            what="partial output",
        )
    finally:
        _kill_tree(process, sig)
    assert process.returncode == -sig
    assert not target.exists()
    # what a killed process cannot clean up: its hidden temporary (never read as output)
    assert [p.name.startswith(".preds.csv.") for p in target.parent.iterdir()] == [True]

    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert len(pd.read_csv(target)) == len(texts)
    assert [p.name for p in target.parent.iterdir()] == ["preds.csv"]  # the stale one removed


def _killed_at(command: list[str], delay: float) -> int:
    """Start `command`, SIGKILL it (and its children) after `delay` seconds; its return code."""
    process = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    try:
        process.wait(timeout=delay)
    except subprocess.TimeoutExpired:
        pass
    finally:
        if process.poll() is None:
            _kill_tree(process, signal.SIGKILL)
    return process.returncode


KILL_DELAYS_S = (0.3, 1.5, 3.0)  # from start-up to mid-write; and a seeded random one
RANDOM_KILLS = 1


def test_predict_killed_at_any_moment_keeps_the_old_output_or_writes_the_new(
    tmp_path, bundle_dir, held_out_texts
):
    import random

    texts = [t.replace("\r", " ") for t in held_out_texts] * 20  # 10,000 real tweets
    source = tmp_path / "in.csv"
    pd.DataFrame({"text": texts}).to_csv(source, index=False)
    target = tmp_path / "preds.csv"
    old = b"label,confidence,empty_text\nold,1.0,False\n"
    target.write_bytes(old)
    command = [
        VOXPOP,
        "predict",
        str(bundle_dir),
        str(source),
        "--out",
        str(target),
        "--batch-size",
        "500",
        "--device",
        "cpu",
    ]
    delays = [*KILL_DELAYS_S, *(random.Random(16).uniform(0.2, 4.0) for _ in range(RANDOM_KILLS))]
    outcomes = []
    for delay in delays:
        code = _killed_at(command, delay)
        content = target.read_bytes()
        if content != old:  # the new output, whole (a kill after the rename, at exit, is fine)
            assert code in (0, -signal.SIGKILL), (delay, code)
            assert len(pd.read_csv(target)) == len(texts), (delay, code)
            target.write_bytes(old)
        outcomes.append(code)
    assert -signal.SIGKILL in outcomes  # at least one kill landed mid-run
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert len(pd.read_csv(target)) == len(texts)
    # the temporaries of the killed runs were removed by the rerun (their writers are gone)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv", "preds.csv"]


_SWAP_LOOP = """
import sys
from pathlib import Path
from voxpop.data.atomic import atomic_path
target = Path(sys.argv[1])
generation = 0
while True:
    generation += 1
    with atomic_path(target) as tmp:
        tmp.mkdir()
        for i in range(40):
            (tmp / f"part{i}.txt").write_text(str(generation) * 1000)
"""


def test_a_directory_replaced_in_a_loop_and_killed_at_random_is_always_whole(tmp_path):
    """The writer's own guarantee for directories (bundles, prepared run data): a SIGKILL at any
    moment, even between the moves of a replacement, leaves one whole generation at the target."""
    import random

    target = tmp_path / "bundle"
    command = [sys.executable, "-c", _SWAP_LOOP, str(target)]
    rng = random.Random(6)
    for _ in range(6):
        process = subprocess.Popen(
            command, env={**os.environ, "PYTHONPATH": str(REPO / "src")}, start_new_session=True
        )
        _wait_for(target.is_dir, process, timeout=30, what="first generation")
        time.sleep(rng.uniform(0.0, 0.5))
        _kill_tree(process, signal.SIGKILL)
        parts = sorted(target.iterdir())  # the target is never missing: swapped in one step
        assert len(parts) == 40
        assert len({p.read_text() for p in parts}) == 1  # one generation, every file whole
    with atomic_path(target) as tmp:  # the next write removes what the killed writers left
        tmp.mkdir()
    assert [p.name for p in tmp_path.iterdir()] == ["bundle"]


# -- export ----------------------------------------------------------------------------------------
@pytest.mark.slow
def test_export_killed_during_conversion_leaves_no_bundle_and_a_rerun_succeeds(tmp_path, run_dir):
    target = tmp_path / "bundle"
    command = [VOXPOP, "export", str(run_dir), "--out", str(target), "--size", "3"]
    process = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    try:  # the first member converted: conversion of the next ones is under way
        _wait_for(
            lambda: any(p.glob("members/*.onnx") for p in _temporaries(target)),
            process,
            timeout=300,
            what="member converted",
        )
    finally:
        _kill_tree(process, signal.SIGKILL)
    assert process.returncode == -signal.SIGKILL
    assert not target.exists()

    result = CliRunner().invoke(app, ["export", str(run_dir), "--out", str(target), "--size", "3"])
    assert result.exit_code == 0, result.output
    from voxpop.ensemble import Ensemble

    ensemble = Ensemble.load(target)  # verifies every sha256
    assert len(ensemble.predict(["what a great flight"]).labels) == 1


@pytest.mark.slow
def test_export_killed_while_replacing_a_bundle_keeps_the_old_one_whole(tmp_path, run_dir):
    from voxpop.ensemble import Ensemble

    target = tmp_path / "bundle"
    first = CliRunner().invoke(app, ["export", str(run_dir), "--out", str(target), "--size", "2"])
    assert first.exit_code == 0, first.output
    old_manifest = (target / "ensemble.json").read_text()
    command = [VOXPOP, "export", str(run_dir), "--out", str(target), "--size", "3", "--force"]
    process = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    try:  # the first member of the new bundle converted: the old one is still the target
        _wait_for(
            lambda: any(p.glob("members/*.onnx") for p in _temporaries(target)),
            process,
            timeout=300,
            what="member converted",
        )
    finally:
        _kill_tree(process, signal.SIGKILL)
    assert (target / "ensemble.json").read_text() == old_manifest
    Ensemble.load(target)  # every sha256 of the old bundle still verifies
    again = CliRunner().invoke(app, command[1:])
    assert again.exit_code == 0, again.output
    assert (target / "ensemble.json").read_text() != old_manifest
    assert [p.name for p in tmp_path.iterdir()] == ["bundle"]  # no temporary, no old copy left


# -- tune ----------------------------------------------------------------------------------------
TRIALS = 4
# Tune's experiment state records a trial as finished shortly after its last report.
RECORDING_MARGIN_S = 2.0


def _recorded_as_finished(run_dir: Path) -> dict[str, float]:
    """trial_id -> `ended` of the trials that reported before Tune last saved its experiment
    state (experiment_state-*.json; Tune saves it at most every 10 s unless interrupted cleanly,
    so a SIGKILL loses what happened since)."""
    saved = max((p.stat().st_mtime for p in run_dir.glob("experiment_state-*.json")), default=0.0)
    records = (metrics(c) for c in checkpoints(run_dir))
    return {r["trial_id"]: r["ended"] for r in records if r["ended"] < saved - RECORDING_MARGIN_S}


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_tune_killed_mid_run_resumes_keeping_finished_trials(tweets_df, tmp_path, sig):
    from voxpop.tune_spaces.runner import TuneOptions, run_tuning

    data = sample_table(tweets_df, tmp_path)
    space = space_file(tmp_path, "tiny_cnn", family="cnn", filters=8)
    storage, name = tmp_path / "runs", "killed"
    run_dir = storage / name
    process = subprocess.Popen(
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
            "--num-cpus",
            "2",
            "--storage",
            str(storage),
            "--name",
            name,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:  # killed once a finished trial is in Tune's saved state, before all trials are done
        _wait_for(
            lambda: _recorded_as_finished(run_dir),
            process,
            timeout=400,
            what="finished trial recorded by Tune",
        )
    finally:
        _kill_tree(process, sig)
    finished = _recorded_as_finished(run_dir)
    assert 1 <= len(finished) < TRIALS

    outcome = run_tuning(
        TuneOptions(data=None, storage=storage, name=name, resume=True, spaces=(space,), num_cpus=2)
    )

    assert len(outcome.leaderboard) == TRIALS
    assert [row["error"] for row in outcome.leaderboard] == [None] * TRIALS
    records = {metrics(c)["trial_id"]: metrics(c) for c in checkpoints(run_dir)}
    assert len(records) == TRIALS
    for trial_id, ended in finished.items():  # kept: the same checkpoint, not trained again
        assert records[trial_id]["ended"] == ended
