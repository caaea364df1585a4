"""Greedy ensemble selection on hand-made validation probabilities (binary, p = P(class 1))."""

from __future__ import annotations

import numpy as np
import pytest

from voxpop.ensemble.metrics import macro_f1
from voxpop.ensemble.selection import greedy_selection

Y = np.array([1, 0, 0, 1, 0, 1, 1])
# A: wrong on rows 0 and 6 (class 1 read as 0), mildly right on row 4.
A = [0.40, 0.10, 0.20, 0.80, 0.40, 0.80, 0.45]
# B: right on rows 0 and 6, strongly wrong on row 1, wrong on row 4.
B = [0.90, 0.80, 0.20, 0.80, 0.65, 0.80, 0.90]


def binary(p1) -> np.ndarray:
    p1 = np.asarray(p1, dtype=np.float64)
    return np.stack([1 - p1, p1], axis=1)


def soft_f1(probs: list[np.ndarray], weights: list[float], y=Y) -> float:
    """Val macro-F1 of the weighted soft vote, computed independently of the selection code."""
    mean = np.average(np.stack(probs), axis=0, weights=weights)
    return macro_f1(y, mean.argmax(axis=1), probs[0].shape[1])


def test_hand_made_case_is_what_the_test_claims():
    # A alone beats B alone; A+B beats A; 2A+B is perfect and A+2B is not.
    a, b = binary(A), binary(B)
    assert soft_f1([a], [1]) > soft_f1([b], [1])
    assert soft_f1([a, b], [1, 1]) > soft_f1([a], [1])
    assert soft_f1([a, b], [2, 1]) == 1.0
    assert soft_f1([a, b], [1, 2]) < 1.0


def test_starts_from_best_single_member_and_repicks_it():
    # B is candidate 0, A candidate 1: the search must still start from A.
    selection = greedy_selection([binary(B), binary(A)], Y, max_members=5, max_picks=25)
    assert selection.picks == [1, 0, 1]
    assert selection.order == [1, 0]
    assert selection.weights == [2.0, 1.0]
    assert selection.score == 1.0
    # picks continue past the best prefix; the shortest best prefix is kept
    assert len(selection.history) == 25
    assert [step["pick"] for step in selection.history[:3]] == [1, 0, 1]
    assert selection.history[0]["score"] == pytest.approx(soft_f1([binary(A)], [1]))


def test_ties_prefer_an_already_picked_member_then_the_lowest_index():
    twin = binary(A)
    selection = greedy_selection([binary(B), twin, twin.copy()], Y, max_picks=5)
    # candidates 1 and 2 tie everywhere: 1 (lowest index) first, then re-picks of 1 beat 2
    assert selection.history[0]["pick"] == 1
    assert 2 not in [step["pick"] for step in selection.history]
    assert selection.picks == [1, 0, 1]


def test_max_members_limits_distinct_members():
    selection = greedy_selection([binary(B), binary(A)], Y, max_members=1, max_picks=4)
    assert selection.order == [1]
    assert [step["pick"] for step in selection.history] == [1, 1, 1, 1]
    assert selection.picks == [1]  # re-picks do not change the score: shortest prefix
    assert selection.weights == [1.0]


def test_three_classes_weights_are_pick_counts():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, size=200)
    members = [rng.dirichlet(np.ones(3), size=200) for _ in range(6)]
    members[3][np.arange(200), y] += 0.6  # one clearly good member
    members = [m / m.sum(axis=1, keepdims=True) for m in members]
    selection = greedy_selection(members, y, max_members=3, max_picks=10)
    assert selection.order[0] == 3
    assert len(selection.order) <= 3
    assert sum(selection.weights) == len(selection.picks)
    weights = [selection.picks.count(i) for i in selection.order]
    assert selection.score == pytest.approx(
        soft_f1([members[i] for i in selection.order], weights, y)
    )
    assert selection.score == max(step["score"] for step in selection.history)
