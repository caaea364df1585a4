"""Soft, hard and weighted voting over member probabilities (scikit-learn VotingClassifier semantics).

`member_probs` is a sequence of M arrays [n, C] (or one array [M, n, C]); `weights` has M entries
(None = all 1). Every voter returns `(probs, label_ids)`: for soft/weighted `probs` is the weighted
mean of the member probabilities; for hard it is each class's weighted vote share, so the
confidence (probs at the label) is the winning vote share. "stack" is no vote of weights but a
stacker's multinomial logistic regression over the member log-probabilities (`stack_probs`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from voxpop.data.errors import VoxpopError

# Weighted vote counts closer than this (relative to the total weight) count as a tie, so that
# float weights such as 0.1 + 0.2 vs 0.3 tie as a user expects.
_TIE_TOLERANCE = 1e-9


def _stack(member_probs) -> np.ndarray:
    stacked = np.asarray(
        member_probs if isinstance(member_probs, np.ndarray) else list(member_probs)
    )
    if stacked.ndim != 3 or stacked.shape[0] == 0:
        raise ValueError(
            f"member_probs must be M arrays [n, C] with M >= 1, got shape {stacked.shape}"
        )
    return stacked


def check_weights(weights: Sequence[float] | None, n_members: int) -> np.ndarray:
    """Weights as float64 [n_members] (None -> all 1); VoxpopError for a wrong count or values."""
    if weights is None:
        return np.ones(n_members, dtype=np.float64)
    weights = np.asarray(weights, dtype=np.float64)
    if weights.shape != (n_members,):
        raise VoxpopError(f"--weights: got {weights.size} weights for {n_members} members")
    if not np.all(np.isfinite(weights)) or (weights < 0).any() or weights.sum() <= 0:
        raise VoxpopError("--weights: weights must be finite, >= 0, and not all 0")
    return weights


def soft_vote(member_probs, weights: Sequence[float] | None = None) -> np.ndarray:
    """Weighted mean of the member probabilities, float32 [n, C]."""
    stacked = _stack(member_probs)
    w = check_weights(weights, len(stacked))
    mean = np.tensordot(w / w.sum(), stacked.astype(np.float64), axes=1)
    return mean.astype(np.float32)


def hard_vote(
    member_probs, weights: Sequence[float] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Each member votes its argmax with its weight; returns (label_ids int64 [n], vote share [n]).

    A tie in weighted votes goes to the tied class with the highest weighted summed probability,
    then to the lowest class index.
    """
    shares, label_ids = _hard(member_probs, weights)
    return label_ids, shares[np.arange(len(label_ids)), label_ids]


def _hard(member_probs, weights) -> tuple[np.ndarray, np.ndarray]:
    stacked = _stack(member_probs)
    w = check_weights(weights, len(stacked))
    n_classes = stacked.shape[2]
    one_hot = np.eye(n_classes, dtype=np.float64)[stacked.argmax(axis=2)]  # [M, n, C]
    votes = np.tensordot(w, one_hot, axes=1)  # [n, C]
    summed_probs = np.tensordot(w, stacked.astype(np.float64), axes=1)
    tied = votes >= votes.max(axis=1, keepdims=True) - _TIE_TOLERANCE * w.sum()
    # argmax returns the first (lowest) index among equal summed probabilities.
    label_ids = np.where(tied, summed_probs, -np.inf).argmax(axis=1)
    return (votes / w.sum()).astype(np.float32), label_ids.astype(np.int64)


def stack_features(member_probs, clip: float) -> np.ndarray:
    """The stacker's inputs float64 [n, M * C]: each member's log(max(p, clip)), side by side in
    member order."""
    stacked = _stack(member_probs).astype(np.float64)
    logs = np.log(np.maximum(stacked, clip))
    return logs.transpose(1, 0, 2).reshape(stacked.shape[1], -1)


def stack_probs(member_probs, stacker) -> np.ndarray:
    """softmax(features @ coef.T + intercept), float32 [n, C]; `stacker` has `coef` [C, M * C],
    `intercept` [C] and `clip` (a manifest `Stacker`, or export's fitted one)."""
    logits = stack_features(member_probs, stacker.clip) @ np.asarray(
        stacker.coef, np.float64
    ).T + np.asarray(stacker.intercept, np.float64)
    logits -= logits.max(axis=1, keepdims=True)
    exp = np.exp(logits)
    return (exp / exp.sum(axis=1, keepdims=True)).astype(np.float32)


def _soft_voter(member_probs, weights, stacker=None) -> tuple[np.ndarray, np.ndarray]:
    probs = soft_vote(member_probs, weights)
    return probs, probs.argmax(axis=1).astype(np.int64)


def _hard_voter(member_probs, weights, stacker=None) -> tuple[np.ndarray, np.ndarray]:
    return _hard(member_probs, weights)


def _stack_voter(member_probs, weights, stacker=None) -> tuple[np.ndarray, np.ndarray]:
    if stacker is None:
        raise VoxpopError(
            "--voting stack: this bundle has no stacker (export it with --combine stack)"
        )
    if weights is not None:
        raise VoxpopError("--voting stack: takes no --weights (the stacker has its own)")
    probs = stack_probs(member_probs, stacker)
    return probs, probs.argmax(axis=1).astype(np.int64)


# name -> (member_probs, weights, stacker) -> (probs, label_ids): the voting rules, in the order
# every list of them shows. "weighted" is soft voting whose weights the caller fills in (the
# user's, else the bundle's greedy-selection weights); "stack" needs the bundle's stacker.
VOTERS: dict[str, Callable] = {
    "soft": _soft_voter,
    "hard": _hard_voter,
    "weighted": _soft_voter,
    "stack": _stack_voter,
}


def vote(member_probs, *, voting: str, weights: Sequence[float] | None = None, stacker=None):
    """(probs float32 [n, C], label_ids int64 [n]) for the voting named `voting`."""
    if voting not in VOTERS:
        raise VoxpopError(f"--voting: unknown voting {voting!r} (choose from {', '.join(VOTERS)})")
    return VOTERS[voting](member_probs, weights, stacker)
