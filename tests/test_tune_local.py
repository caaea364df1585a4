"""`voxpop tune` on an embedded Ray (one instance for the module): real trials on real tweets."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
import pytest
from sklearn.metrics import f1_score
from typer.testing import CliRunner

from test_tune_support import METRICS_KEYS, checkpoints, metrics, sample_table, space_file
from voxpop.data import rundir
from voxpop.models import load_model
from voxpop.serving_cli.app import app
from voxpop.tune_spaces.cluster import start_ray, stop_ray

runner = CliRunner()
MAX_EPOCHS = 2


@pytest.fixture(scope="module")
def ray_local():
    import ray

    assert start_ray(num_cpus=2, num_gpus=0)  # no GPUs, on any machine
    yield ray
    stop_ray()


@pytest.fixture(scope="module")
def data_file(tweets_df, tmp_path_factory):
    return sample_table(tweets_df, tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="module")
def local_run(ray_local, data_file, tmp_path_factory):
    """`voxpop tune`: 2 spaces x 2 samples x 2 epochs, one CPU per trial. The CNN space's trials
    fail once after their first epoch and are retried (--max-failures 1). FIFO, so every trial
    runs both epochs (ASHA is measured in bench/bench_tune.py)."""
    from ray import tune

    from voxpop.tune_spaces.runner import leaderboard
    from voxpop.tune_spaces.trainable import train_trial

    work = tmp_path_factory.mktemp("local")
    flaky_cnn = space_file(work, "tiny_cnn", family="cnn", filters=16, fail_on_first_attempt=True)
    lstm = space_file(work, "tiny_lstm", family="lstm", units=16)
    result = runner.invoke(
        app,
        [
            "tune",
            str(data_file),
            "--space",
            flaky_cnn,
            "--space",
            lstm,
            "--samples",
            "2",
            "--max-epochs",
            str(MAX_EPOCHS),
            "--scheduler",
            "fifo",
            "--cpus-per-trial",
            "1",
            "--max-failures",
            "1",
            "--keep-checkpoints",
            "2",
            "--storage",
            str(work / "runs"),
            "--name",
            "local",
        ],
    )
    assert result.exit_code == 0, result.output
    run_dir = work / "runs" / "local"
    # Ray's own tools read the run directory too: the leaderboard again, from Tuner.restore.
    grid = tune.Tuner.restore(str(run_dir), trainable=train_trial).get_results()
    return result.output, run_dir, leaderboard(grid, max_epochs=MAX_EPOCHS)


def test_run_directory_holds_the_prepared_data(local_run, data_file):
    _, run_dir, _ = local_run
    run = rundir.read_run(run_dir)
    frame = run.data
    source = pd.read_parquet(data_file)
    assert list(frame.columns) == ["id", "text", "label", "split"]
    assert frame["text"].tolist() == source["text"].tolist()

    split = run.split
    all_rows = np.concatenate([split.train, split.val, split.test])
    assert sorted(all_rows.tolist()) == list(range(len(source)))  # disjoint and complete
    assert (frame["split"].to_numpy()[split.test] == "test").all()

    arrays = rundir.read_arrays(run_dir)
    assert not any("test" in key for key in arrays)  # test rows never reach trials
    assert len(arrays["y_train"]) == len(split.train)
    assert len(arrays["y_val"]) == len(split.val)
    preprocessor = run.preprocessor
    val_texts = frame["text"].to_numpy()[split.val].tolist()
    np.testing.assert_array_equal(arrays["val_tokens"], preprocessor.encode(val_texts)["tokens"])
    job = rundir.read_job(run_dir)
    assert job["options"]["samples"] == 2 and job["options"]["scheduler"] == "fifo"
    assert {"voxpop", "ray", "keras", "numpy"} <= set(job["versions"])


def test_leaderboard_has_every_trial_sorted_by_val_macro_f1(local_run):
    output, run_dir, board = local_run
    assert len(board) == 4
    assert sorted(row["space"] for row in board) == ["tiny_cnn"] * 2 + ["tiny_lstm"] * 2
    scores = [row["val_macro_f1"] for row in board]
    assert scores == sorted(scores, reverse=True)
    assert all(row["error"] is None and 1 <= row["epoch"] <= MAX_EPOCHS for row in board)
    assert [row["state"] for row in board] == ["finished"] * 4
    printed_ids = [
        line.split("│")[2].strip() for line in output.splitlines() if line.startswith("│")
    ]
    assert printed_ids == [row["trial_id"] for row in board]  # the printed table, same order
    assert f"Next: voxpop export {run_dir}" in output


def test_leaderboard_row_survives_ray_losing_a_restored_trials_history(local_run):
    # What Ray 2.60 leaves for a trial PBT restored from another's checkpoint and that ended
    # without reporting again: result.json emptied (its logger copied a lagging storage copy over
    # the driver's) and the donor's last result, donor's id included, as the trial's metrics.
    import dataclasses

    from ray import tune

    from voxpop.tune_spaces.runner import leaderboard
    from voxpop.tune_spaces.trainable import train_trial

    _, run_dir, board = local_run
    grid = list(tune.Tuner.restore(str(run_dir), trainable=train_trial).get_results())
    donor, restored = grid[0], grid[1]
    lost = dataclasses.replace(
        restored, metrics_dataframe=pd.DataFrame(), metrics=dict(donor.metrics)
    )
    rows = {row["trial_dir"]: row for row in leaderboard([donor, lost], max_epochs=MAX_EPOCHS)}
    kept = {row["trial_dir"]: row for row in board}
    assert len({row["trial_id"] for row in rows.values()}) == 2
    for trial_dir, row in rows.items():
        assert row["trial_id"] == kept[trial_dir]["trial_id"]
        assert row["val_macro_f1"] == pytest.approx(kept[trial_dir]["val_macro_f1"])
        assert row["epochs_run"] == kept[trial_dir]["epochs_run"]


def test_failed_first_attempts_are_retried_from_their_checkpoint(local_run):
    output, run_dir, board = local_run
    retried = [row for row in board if row["space"] == "tiny_cnn"]
    assert [row["restarts"] for row in retried] == [1, 1]
    assert output.count("ok after 1 restart(s)") == 2
    for row in retried:
        records = sorted(
            (metrics(c) for c in checkpoints(run_dir) if c.parent == Path(row["trial_dir"])),
            key=lambda r: r["epoch"],
        )
        assert [(r["epoch"], r["restored_from"]) for r in records] == [(1, 0), (2, 1)]


def test_every_checkpoint_loads_and_its_metrics_match_its_val_probs(local_run):
    _, run_dir, _ = local_run
    found = [rundir.read_checkpoint(path) for path in checkpoints(run_dir)]
    data = rundir.read_trial_data(run_dir)
    y_val = data.y_val
    trials = {ckpt.path.parent for ckpt in found}
    assert len(trials) == 4
    for trial in trials:  # CheckpointConfig keeps the best 2 per trial
        assert 1 <= len([c for c in found if c.path.parent == trial]) <= 2
    for ckpt in found:
        record = ckpt.metrics
        assert METRICS_KEYS <= set(record)
        assert set(record["val_per_class_f1"]) == {"negative", "neutral", "positive"}
        probs = ckpt.val_probs()
        assert probs.shape == (len(y_val), 3)
        np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-4)
        expected = f1_score(y_val, probs.argmax(axis=1), average="macro", labels=[0, 1, 2])
        assert record["val_macro_f1"] == pytest.approx(expected, abs=1e-6)
        model = load_model(ckpt.model_path)
        assert model.output_shape == (None, 3)
    best = max(found, key=lambda c: c.metrics["val_macro_f1"])
    model = load_model(best.model_path)
    reloaded = model.predict({t.name: data.val[t.name] for t in model.inputs}, verbose=0)
    np.testing.assert_allclose(reloaded, best.val_probs(), atol=1e-5)


def test_embedded_ray_listens_on_loopback_only(ray_local):
    ray_pids = psutil.Process().children(recursive=True)
    listening = [
        (proc.name(), conn.laddr.ip, conn.laddr.port)
        for proc in ray_pids
        for conn in _connections(proc)
        if conn.status == psutil.CONN_LISTEN
    ]
    assert len(listening) >= 3  # gcs, raylet, object manager, ...
    assert all(_is_loopback(ip) for _, ip, _ in listening), listening


def _is_loopback(ip: str) -> bool:
    address = ipaddress.ip_address(ip)
    return (getattr(address, "ipv4_mapped", None) or address).is_loopback


def _connections(proc: psutil.Process):
    try:
        return proc.net_connections(kind="inet")
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return []


def test_every_trial_failing_exits_non_zero_with_the_first_error(ray_local, data_file, tmp_path):
    # a value only Keras refuses (an unknown loss is refused before Ray starts: test_reliability_boundary)
    broken = space_file(tmp_path, "broken", family="cnn", head_units=[-5])
    result = runner.invoke(
        app,
        [
            "tune",
            str(data_file),
            "--space",
            broken,
            "--samples",
            "1",
            "--max-epochs",
            "1",
            "--storage",
            str(tmp_path / "runs"),
            "--name",
            "broken",
        ],
    )
    assert result.exit_code == 2
    assert "error: every trial failed (1); first error:" in result.output
    assert "expected a positive integer" in result.output
    assert not (tmp_path / "runs" / "broken").exists()  # nothing blocks the fixed command


def test_gpus_per_trial_refused_when_the_cluster_has_no_gpus(ray_local, data_file, tmp_path):
    result = runner.invoke(
        app,
        [
            "tune",
            str(data_file),
            "--gpus-per-trial",
            "0.5",
            "--storage",
            str(tmp_path),
            "--name",
            "g",
        ],
    )
    assert result.exit_code == 2
    assert "--gpus-per-trial 0.5: the Ray cluster advertises no GPUs" in result.output
    assert not (tmp_path / "g").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--space", "nope"], "unknown search space 'nope' (valid: lstm, bilstm,"),
        (
            ["--scheduler", "median"],
            "--scheduler 'median' is not valid (valid: asha, hyperband, pbt, fifo)",
        ),
        (["--search", "grid"], "--search 'grid' is not valid (valid: random, optuna)"),
        (["--samples", "0"], "--samples must be positive"),
        (["--format", "xlsx"], "--format 'xlsx' is not a table format (choose from csv, tsv, "),
        (
            ["--scheduler", "pbt", "--space", "cnn", "--space", "lstm"],
            "pbt needs exactly one --space",
        ),
    ],
)
def test_bad_options_exit_2_naming_the_option(tmp_path, args, message):
    result = runner.invoke(app, ["tune", "data.csv", "--storage", str(tmp_path), *args])
    assert result.exit_code == 2
    assert message in result.output


def test_resume_of_a_missing_run_and_a_reused_name_are_refused(tmp_path):
    result = runner.invoke(app, ["tune", "--resume", "--storage", str(tmp_path), "--name", "x"])
    assert (
        result.exit_code == 2 and "--resume:" in result.output and "does not exist" in result.output
    )
    (tmp_path / "x").mkdir()
    result = runner.invoke(app, ["tune", "d.csv", "--storage", str(tmp_path), "--name", "x"])
    assert result.exit_code == 2 and "already exists: use --resume" in result.output
