"""Training budgets that follow the data, on tiny real jobs (an embedded Ray, 2,000 real tweets,
1,399 of them training rows): early stopping inside a trial keeps its best epoch's checkpoint;
ASHA's rungs count training rows, so no trial is stopped before the grace rows; --time-budget
ends the whole job."""

from __future__ import annotations

import time

import numpy as np
import pytest

from test_tune_support import (  # noqa: F401 (fixtures)
    LEARNS,
    STALLS,
    TINY_CNN,
    data,
    ray_local,
    space_file,
    trial_epochs,
)
from voxpop.data.split import fold_ids
from voxpop.tune_spaces.options import MAX_EPOCHS, MIN_EPOCHS, epochs_for
from voxpop.tune_spaces.runner import TuneOptions, run_tuning, trial_seconds

TRAIN_ROWS = 1399  # the training split of the 2,000-row sample (70%, class by class)


def test_patience_ends_the_trial_and_keeps_its_best_epoch(ray_local, data, tmp_path):
    # A fast learning rate overfits 1,399 rows within a few epochs; patience 1 ends the trial at
    # the first epoch that does not beat the best, long before 12. One checkpoint is kept by
    # score (Ray also keeps the latest, to resume from): the best epoch's.
    options = TuneOptions(
        data=data,
        scheduler="fifo",
        samples=1,
        max_epochs=12,
        patience=1,
        spaces=(space_file(tmp_path, "fast", **TINY_CNN, learning_rate=3e-2),),
        keep_checkpoints=1,
        storage=tmp_path / "runs",
        name="patience",
    )
    (row,) = run_tuning(options).leaderboard
    assert row["state"] == "converged", row
    assert row["epochs_run"] < 12
    assert row["epochs_run"] == row["epoch"] + 1  # one epoch without gain after the best
    kept = {record["epoch"]: record for record in trial_epochs(row)}
    assert set(kept) == {row["epoch"], row["epochs_run"]}
    assert kept[row["epoch"]]["val_macro_f1"] == row["val_macro_f1"]
    assert kept[row["epochs_run"]]["stop_reason"] == "patience"
    assert kept[row["epoch"]]["rows_seen"] == row["epoch"] * TRAIN_ROWS


# slow (23 s): ASHA stopping a trailing trial at its rung is test_tune_schedulers' in the
# default run; this one checks that the rung counts rows.
@pytest.mark.slow
def test_asha_judges_no_trial_before_the_grace_rows(ray_local, data, tmp_path):
    # Grace 2.5 epochs of rows: the one rung falls at 3,000 rows, reached at epoch 3. The stalled
    # trial runs after the learning one (one at a time), trails it there, and is stopped at
    # epoch 3, not at epoch 1 as with a rung of one epoch (test_tune_schedulers).
    grace = 3000
    options = TuneOptions(
        data=data,
        scheduler="asha",
        samples=1,
        max_epochs=4,
        patience=0,
        max_concurrent=1,
        grace_rows=grace,
        keep_checkpoints=4,
        storage=tmp_path / "runs",
        name="asha",
        spaces=(
            space_file(tmp_path, "learns", **TINY_CNN, learning_rate=LEARNS),
            space_file(tmp_path, "stalls", **TINY_CNN, learning_rate=STALLS),
        ),
    )
    board = {row["space"]: row for row in run_tuning(options).leaderboard}
    assert (board["learns"]["state"], board["learns"]["epochs_run"]) == ("finished", 4)
    stalled = board["stalls"]
    assert (stalled["state"], stalled["epochs_run"]) == ("stopped", 3)
    assert stalled["rows_seen"] == 3 * TRAIN_ROWS >= grace > 2 * TRAIN_ROWS
    assert [r["rows_seen"] for r in trial_epochs(stalled)] == [
        TRAIN_ROWS,
        2 * TRAIN_ROWS,
        3 * TRAIN_ROWS,
    ]


# slow (61 s: a 60 s budget); the budget's share per trial is test_budget_arithmetic's.
@pytest.mark.slow
def test_time_budget_ends_the_job(ray_local, data, tmp_path):
    # Eight trials of up to 50 epochs would take many minutes; a 60 s budget gives each trial
    # 60 x 2 / 8 s, TensorFlow's start included (~20 s on a busy machine): every trial ends after
    # an epoch or a few, out of time, or is cut by Tune, or never starts.
    budget = 60.0
    options = TuneOptions(
        data=data,
        scheduler="fifo",
        samples=8,
        max_epochs=50,
        patience=0,
        time_budget=budget,
        keep_checkpoints=1,
        storage=tmp_path / "runs",
        name="budget",
        spaces=(space_file(tmp_path, "cnn", **TINY_CNN, learning_rate=LEARNS),),
    )
    started = time.monotonic()
    board = run_tuning(options).leaderboard
    took = time.monotonic() - started
    assert took < budget + 90, took  # preparing the data, Tune's start and end (a busy machine)
    assert not [row for row in board if row["state"] == "finished"], board
    assert any(row["state"] == "out of time" for row in board), [
        (row["state"], row["epochs_run"]) for row in board
    ]
    assert all(row["epochs_run"] < 50 for row in board)


def test_budget_arithmetic():
    # Epochs follow the rows: at least MIN_EPOCHS on large data, at most MAX_EPOCHS on small.
    assert epochs_for(10**7) == MIN_EPOCHS and epochs_for(10) == MAX_EPOCHS
    assert epochs_for(4000) > epochs_for(16000) >= MIN_EPOCHS
    options = TuneOptions(data=None, time_budget=600)
    assert trial_seconds(options, slots=2, trials=8) == 150
    assert trial_seconds(options, slots=4, trials=2) == 600
    assert trial_seconds(TuneOptions(data=None), slots=2, trials=8) is None


def test_folds_are_stratified_and_seeded():
    labels = np.array(["a"] * 50 + ["b"] * 13 + ["c"] * 7)
    folds = fold_ids(labels, folds=5, seed=3)
    assert np.array_equal(folds, fold_ids(labels, folds=5, seed=3))
    for cls in "abc":
        counts = np.bincount(folds[labels == cls], minlength=5)
        assert counts.max() - counts.min() <= 1, (cls, counts)
