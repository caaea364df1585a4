"""Voting semantics on hand-made member outputs (DESIGN.md "Voting semantics")."""

from __future__ import annotations

import numpy as np
import pytest

from voxpop.data.errors import VoxpopError
from voxpop.ensemble.voting import hard_vote, soft_vote, vote

# 3 members, 4 rows, 3 classes
MEMBERS = np.array(
    [
        [[0.6, 0.3, 0.1], [0.2, 0.5, 0.3], [0.5, 0.4, 0.1], [0.1, 0.1, 0.8]],
        [[0.1, 0.8, 0.1], [0.3, 0.3, 0.4], [0.1, 0.2, 0.7], [0.2, 0.5, 0.3]],
        [[0.5, 0.4, 0.1], [0.6, 0.2, 0.2], [0.3, 0.6, 0.1], [0.3, 0.3, 0.4]],
    ],
    dtype=np.float32,
)


def test_soft_vote_is_the_mean_and_weighted_vote_the_weighted_mean():
    np.testing.assert_allclose(soft_vote(MEMBERS), MEMBERS.mean(axis=0), atol=1e-7)
    weighted = soft_vote(MEMBERS, [3.0, 1.0, 0.0])
    np.testing.assert_allclose(weighted, (3 * MEMBERS[0] + MEMBERS[1]) / 4, atol=1e-7)
    probs, labels = vote(list(MEMBERS), voting="weighted", weights=[3.0, 1.0, 0.0])
    assert labels.tolist() == [0, 1, 0, 2]
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-6)


def test_hard_vote_majority_and_vote_share():
    # row 0 votes 0,1,0 -> class 0 with 2/3; row 3 votes 2,1,2 -> class 2 with 2/3
    labels, share = hard_vote(MEMBERS)
    assert labels[0] == 0 and labels[3] == 2
    assert share[0] == pytest.approx(2 / 3) and share[3] == pytest.approx(2 / 3)


def test_hard_vote_tie_goes_to_highest_summed_probability():
    # row 2 votes 0,2,1: a three-way tie; summed probs 0.9, 1.2, 0.9 -> class 1
    labels, share = hard_vote(MEMBERS)
    assert labels[2] == 1
    assert share[2] == pytest.approx(1 / 3)
    # row 1 votes 1,2,0: summed probs 1.1, 1.0, 0.9 -> class 0
    assert labels[1] == 0


def test_hard_vote_tie_on_votes_and_probability_goes_to_lowest_index():
    members = np.array([[[0.2, 0.3, 0.5]], [[0.2, 0.5, 0.3]]], dtype=np.float32)
    labels, share = hard_vote(members)  # votes 2 and 1, summed probs 0.8 and 0.8
    assert labels.tolist() == [1]
    assert share.tolist() == [pytest.approx(0.5)]


def test_hard_vote_weights_break_ties_and_float_weights_tie():
    members = MEMBERS[:, 2:3]  # votes 0, 2, 1
    labels, share = hard_vote(members, [1.0, 2.0, 1.0])
    assert labels.tolist() == [2] and share[0] == pytest.approx(0.5)
    # 0.1 + 0.2 == 0.3 only approximately: still a tie between classes 0 and 1
    members = np.array([[[0.9, 0.1]], [[0.6, 0.4]], [[0.1, 0.9]]], dtype=np.float32)
    labels, _ = hard_vote(members, [0.1, 0.2, 0.3])
    # votes: class 0 = 0.30000000000000004, class 1 = 0.3; summed probs 0.33 vs 0.36 -> class 1
    assert labels.tolist() == [1]


def test_member_subset_equals_voting_on_those_members_only():
    subset = MEMBERS[[0, 2]]
    probs, labels = vote(subset, voting="soft")
    np.testing.assert_allclose(probs, (MEMBERS[0] + MEMBERS[2]) / 2, atol=1e-7)
    assert labels.tolist() == (MEMBERS[0] + MEMBERS[2]).argmax(axis=1).tolist()


def test_hard_vote_agrees_with_sklearn_majority_when_no_ties():
    rng = np.random.default_rng(0)
    members = rng.dirichlet(np.ones(3), size=(5, 300)).astype(np.float32)
    labels, share = hard_vote(members)
    votes = np.stack([np.bincount(col, minlength=3) for col in members.argmax(axis=2).T])
    clear = np.sort(votes, axis=1)[:, -1] > np.sort(votes, axis=1)[:, -2]
    assert clear.sum() > 100
    assert (labels[clear] == votes[clear].argmax(axis=1)).all()
    np.testing.assert_allclose(share, votes.max(axis=1) / 5, atol=1e-6)


@pytest.mark.parametrize(
    ("weights", "message"),
    [([1.0, 2.0], "2 weights for 3 members"), ([1.0, -1.0, 1.0], ">= 0"), ([0, 0, 0], "not all 0")],
)
def test_bad_weights_are_user_errors(weights, message):
    with pytest.raises(VoxpopError, match=message):
        vote(MEMBERS, voting="soft", weights=weights)


def test_unknown_voting_lists_the_choices():
    with pytest.raises(VoxpopError, match="soft, hard, weighted"):
        vote(MEMBERS, voting="median")
