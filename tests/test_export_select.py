"""Member selection among checkpoints (top / greedy / diverse) with reasons, on hand-made
validation probabilities (no models needed: selection reads each checkpoint's metrics and
validation probabilities)."""

from __future__ import annotations

import numpy as np
import pytest

from voxpop.data.errors import VoxpopError
from voxpop.data.rundir import Checkpoint, add_checkpoint
from voxpop.export.select import select_members

Y = np.array([0, 1, 2, 0, 1, 2, 0, 1, 2, 0])


def one_hot(predictions, n_classes: int) -> np.ndarray:
    probs = np.full((len(predictions), n_classes), 0.2 / (n_classes - 1), dtype=np.float32)
    probs[np.arange(len(predictions)), predictions] = 0.8
    return probs


def checkpoint(tmp_path, trial, epoch, family, predictions, f1, n_classes=3) -> Checkpoint:
    metrics = {
        "family": family,
        "epoch": epoch,
        "val_macro_f1": f1,
        "val_accuracy": f1,
        "val_loss": 1 - f1,
    }
    return add_checkpoint(
        tmp_path,
        trial_id=trial,
        index=epoch,
        metrics=metrics,
        val_probs=one_hot(predictions, n_classes),
    )


@pytest.fixture
def checkpoints(tmp_path):
    perfect = list(Y)
    return [
        checkpoint(tmp_path, "a", 0, "lstm", [0, 1, 2, 0, 1, 2, 0, 1, 2, 1], 0.90),
        checkpoint(tmp_path, "a", 1, "lstm", perfect, 0.95),  # trial a's best
        checkpoint(tmp_path, "b", 0, "lstm", [0, 1, 2, 0, 1, 2, 0, 1, 2, 2], 0.92),  # like a
        checkpoint(tmp_path, "c", 0, "cnn", [0, 1, 2, 0, 1, 2, 1, 2, 0, 0], 0.70),
        checkpoint(tmp_path, "d", 0, "lstm", [1, 2, 0, 1, 2, 0, 0, 1, 2, 0], 0.60),  # disagrees
        checkpoint(tmp_path, "e", 0, "cnn", [0, 0, 0, 0, 0, 0, 0, 0, 0, 0], 0.47),  # collapsed
    ]


def test_top_takes_the_best_checkpoint_per_trial(checkpoints):
    choice = select_members(checkpoints, Y, method="top", size=2, metric="val_macro_f1")
    assert [c.name for c in choice.members] == ["a/checkpoint_000001", "b/checkpoint_000000"]
    assert choice.weights == [1.0, 1.0]
    assert choice.reasons["a/checkpoint_000000"].startswith("not selected: a/checkpoint_000001")
    assert choice.reasons["c/checkpoint_000000"] == (
        "not selected: rank 3 by val_macro_f1, beyond --size 2"
    )
    assert set(choice.reasons) == {c.name for c in checkpoints}


def test_top_by_loss_ranks_lowest_first(checkpoints):
    choice = select_members(checkpoints, Y, method="top", size=1, metric="val_loss")
    assert [c.name for c in choice.members] == ["a/checkpoint_000001"]


def test_diverse_skips_a_same_family_lookalike(checkpoints):
    choice = select_members(checkpoints, Y, method="diverse", size=3, metric="val_macro_f1")
    names = [c.name for c in choice.members]
    # b is an lstm agreeing with a on 90% of rows: skipped; c is a new family; d disagrees
    assert names == ["a/checkpoint_000001", "c/checkpoint_000000", "d/checkpoint_000000"]
    assert "agrees on 90%" in choice.reasons["b/checkpoint_000000"]
    assert choice.reasons["c/checkpoint_000000"] == "selected: a family not yet chosen"


@pytest.mark.parametrize("method", ["top", "greedy", "diverse"])
def test_a_trial_not_halfway_from_the_majority_class_to_the_best_is_no_candidate(
    checkpoints, method
):
    # Y's majority class (0, 4 of 10 rows) scores macro-F1 0.190: the floor is 0.570.
    choice = select_members(checkpoints, Y, method=method, size=5, metric="val_macro_f1")
    assert "e/checkpoint_000000" not in [c.name for c in choice.members]
    assert choice.reasons["e/checkpoint_000000"] == (
        "not selected: val macro-F1 0.470 is not halfway from the majority class's (0.190) to "
        "the best trial's (0.950)"
    )
    if method == "top":  # d, at 0.60, is still a candidate
        assert "d/checkpoint_000000" in [c.name for c in choice.members]


def test_on_two_classes_a_member_above_half_the_best_can_still_be_too_weak(tmp_path):
    # The rotten tomatoes case: the majority class alone scores 0.375, a one-epoch CNN 0.49.
    y = np.array([0] * 6 + [1] * 4)
    strong = checkpoint(tmp_path, "s", 0, "tfidf", [0] * 6 + [1] * 4, 0.78, n_classes=2)
    weak = checkpoint(tmp_path, "w", 0, "cnn", [0] * 9 + [1], 0.49, n_classes=2)
    choice = select_members([strong, weak], y, method="greedy", size=2, metric="val_macro_f1")
    assert [c.name for c in choice.members] == ["s/checkpoint_000000"]
    assert choice.reasons["w/checkpoint_000000"].startswith(
        "not selected: val macro-F1 0.490 is not halfway from the majority class's (0.375)"
    )


def test_greedy_reasons_and_picks(checkpoints):
    choice = select_members(checkpoints, Y, method="greedy", size=3, metric="val_macro_f1")
    # the perfect member alone is never beaten: one member, one pick
    assert [c.name for c in choice.members] == ["a/checkpoint_000001"]
    assert choice.picks == [0] and choice.weights == [1.0]
    assert (
        choice.reasons["a/checkpoint_000001"] == "selected: picked 1 of 1 times by greedy selection"
    )
    assert choice.reasons["d/checkpoint_000000"].startswith("not selected")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"method": "best"}, "--select: unknown method 'best' (choose from top, greedy, diverse)"),
        (
            {"metric": "f2"},
            "--metric: unknown metric 'f2' (choose from val_macro_f1, val_accuracy, val_loss)",
        ),
        ({"size": 0}, "--size: must be at least 1, got 0"),
    ],
)
def test_bad_options(checkpoints, options, message):
    kwargs = {"method": "top", "size": 2, "metric": "val_macro_f1", **options}
    with pytest.raises(VoxpopError) as err:
        select_members(checkpoints, Y, **kwargs)
    assert str(err.value) == message
