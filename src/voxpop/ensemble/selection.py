"""Greedy ensemble selection (Caruana et al. 2004), on stored validation probabilities.

Forward selection with replacement: start from the best single member, then repeatedly add the
member (possibly one already chosen) whose addition gives the best validation macro-F1 of the soft
vote (mean of the picked members' probabilities, a member counted once per pick). Picks continue
up to `max_picks` even when the score dips, and the best-scoring prefix is kept, so the search can
walk through a flat or worse step to a better ensemble. A member's weight is its pick count.

Tie rule (deterministic): among candidates with the same score, a member already in the ensemble
wins (it keeps the ensemble small), then the lowest candidate index. Among prefixes with the same
score, the shortest is kept. Callers pass candidates ranked best first, so the lowest index is
also the better single member.

With `fits` (a cost budget), a candidate is added only if the ensemble with it still fits.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from voxpop.ensemble.metrics import macro_f1


@dataclass(frozen=True)
class Selection:
    """The kept ensemble: `order` (distinct candidate indices, first-pick order), `weights` (pick
    counts aligned with `order`), `history` (one {"pick", "score"} per pick made, beyond the kept
    prefix too), `score` (val macro-F1 of the kept prefix's soft vote), `picks` (the kept prefix)."""

    order: list[int]
    weights: list[float]
    history: list[dict]
    score: float
    picks: list[int]


def greedy_selection(
    val_probs: list[np.ndarray],
    y_val,
    *,
    max_members: int = 5,
    max_picks: int = 25,
    fits: Callable[[set[int]], bool] | None = None,
) -> Selection:
    """Select members by greedy forward selection with replacement, maximising val macro-F1.

    `val_probs[i]` is candidate i's [n_val, n_classes] probabilities; `y_val` the class indices.
    At most `max_members` distinct members and `max_picks` picks; see the module doc for ties.
    `fits(distinct candidate indices)`: whether such an ensemble is within budget (some single
    candidate must fit).
    """
    if not val_probs:
        raise ValueError("greedy_selection needs at least one candidate")
    stacked = np.stack([np.asarray(p, dtype=np.float64) for p in val_probs])
    y_val = np.asarray(y_val, dtype=np.int64)
    n_classes = stacked.shape[2]

    def score_of(prob_sum: np.ndarray) -> float:
        return macro_f1(y_val, prob_sum.argmax(axis=1), n_classes)

    total = np.zeros_like(stacked[0])
    picks: list[int] = []
    history: list[dict] = []
    for _ in range(max_picks):
        allowed = _allowed_candidates(picks, len(stacked), max_members)
        if fits is not None:
            allowed = [i for i in allowed if fits(set(picks) | {i})]
        if not allowed:
            raise ValueError("greedy_selection: no candidate fits the budget")
        scored = [(score_of(total + stacked[i]), i in picks, -i) for i in allowed]
        score, _, neg_index = max(scored)
        picks.append(-neg_index)
        total += stacked[-neg_index]
        history.append({"pick": -neg_index, "score": score})

    best_len = 1 + int(np.argmax([step["score"] for step in history]))  # first = shortest
    kept = picks[:best_len]
    order = list(dict.fromkeys(kept))
    return Selection(
        order=order,
        weights=[float(kept.count(i)) for i in order],
        history=history,
        score=history[best_len - 1]["score"],
        picks=kept,
    )


def _allowed_candidates(picks: list[int], n_candidates: int, max_members: int) -> list[int]:
    # Once max_members distinct members are in, only re-picks of those are allowed.
    if len(set(picks)) >= max_members:
        return sorted(set(picks))
    return list(range(n_candidates))
