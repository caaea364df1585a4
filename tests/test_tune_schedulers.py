"""The schedulers at work on a tiny real job (an embedded Ray, 2,000 real tweets, a small CNN): ASHA
stops a trial that trails at its first rung, PBT replaces a trailing trial by a copy of a leading
one with a mutated learning rate."""

from __future__ import annotations

from test_tune_support import (  # noqa: F401 (fixtures)
    LEARNS,
    STALLS,
    TINY_CNN,
    data,
    ray_local,
    space_file,
    trial_epochs,
)
from voxpop.tune_spaces.runner import TuneOptions, run_tuning

# Rungs count training rows: below one epoch's 1,400 rows, so that rungs fall at every epoch as
# they did when they counted epochs (tests/test_tune_budget.py tests a grace of several epochs).
ONE_EPOCH_GRACE = 1000


def test_asha_stops_the_trial_that_trails_at_the_first_rung(ray_local, data, tmp_path):
    # One trial at a time, the learning one first: it sets the rungs (epochs 1 and 2 of 3), and
    # the stalled one, below it at epoch 1, is stopped there.
    options = TuneOptions(
        data=data,
        scheduler="asha",
        samples=1,
        max_epochs=3,
        max_concurrent=1,
        spaces=(
            space_file(tmp_path, "learns", **TINY_CNN, learning_rate=LEARNS),
            space_file(tmp_path, "stalls", **TINY_CNN, learning_rate=STALLS),
        ),
        keep_checkpoints=3,
        grace_rows=ONE_EPOCH_GRACE,
        storage=tmp_path / "runs",
        name="asha",
    )
    board = {row["space"]: row for row in run_tuning(options).leaderboard}
    assert (board["learns"]["state"], board["learns"]["epochs_run"]) == ("finished", 3)
    assert (board["stalls"]["state"], board["stalls"]["epochs_run"]) == ("stopped", 1)
    assert board["stalls"]["error"] is None
    assert board["stalls"]["val_macro_f1"] < trial_epochs(board["learns"])[0]["val_macro_f1"]


def test_pbt_replaces_the_trailing_trial_by_a_mutated_copy_of_the_leader(ray_local, data, tmp_path):
    # Two trials from one space (the seed draws one of each learning rate) on a Ray with room for
    # one at a time: PBT pauses a trial at each epoch while the other waits, so they take turns,
    # and whichever goes first, the stalled one meets the leader's score by its second epoch.
    space = space_file(tmp_path, "cnn_lr", **TINY_CNN, learning_rate={"choice": [LEARNS, STALLS]})
    options = TuneOptions(
        data=data,
        scheduler="pbt",
        samples=2,
        max_epochs=3,
        cpus_per_trial=2,
        spaces=(space,),
        keep_checkpoints=3,
        grace_rows=ONE_EPOCH_GRACE,
        storage=tmp_path / "runs",
        name="pbt",
        seed=1,
    )
    board = run_tuning(options).leaderboard
    assert [row["error"] for row in board] == [None, None]
    histories = [trial_epochs(row) for row in board]
    first_rates = sorted(h[0]["config"]["learning_rate"] for h in histories)
    assert first_rates == [STALLS, LEARNS], "seed 1 no longer draws one trial of each rate"
    stalled = next(h for h in histories if h[0]["config"]["learning_rate"] == STALLS)
    # Exploited: from some epoch on it continues a checkpoint (the leader's) with a learning rate
    # PBT mutated from the leader's (x0.8, x1.2 or resampled), and it learns.
    mutated = [r for r in stalled if r["config"]["learning_rate"] != STALLS]
    assert mutated, [(r["epoch"], r["restored_from"]) for r in stalled]
    assert all(r["restored_from"] > 0 for r in mutated)
    assert mutated[0]["config"]["learning_rate"] != LEARNS
    assert mutated[-1]["val_macro_f1"] > stalled[0]["val_macro_f1"]
    # Each row is its own trial, by the id its checkpoints carry (which export groups by), also
    # when the exploited trial ends right after restoring the leader's last checkpoint: Ray then
    # keeps the leader's last result, its trial id included, as the trial's own, and may have
    # emptied its result.json (tests/test_tune_local.py forces that case).
    assert len({row["trial_id"] for row in board}) == 2
    for row, history in zip(board, histories):
        assert {record["trial_id"] for record in history} == {row["trial_id"]}
