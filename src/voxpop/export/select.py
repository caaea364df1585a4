"""Choosing ensemble members among a run's checkpoints, on validation data only (or among a
bagged run's bags, `voxpop.export.bagged.BagCandidate`, on their out-of-fold rows: the same
interface, `val_probs()` and `metrics` of those rows).

Candidates are the best checkpoint of each trial (by `metric`), ranked best first, if its
validation macro-F1 gets at least halfway from the majority-class baseline to the best candidate's.
Every checkpoint gets a one-line reason for being selected or not, for the export report.
With a cost budget (`export.cost.Budget`, from --max-ms-per-row), every method keeps only
ensembles whose measured cost per row fits.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from voxpop.data.errors import VoxpopError
from voxpop.data.rundir import METRICS, Checkpoint
from voxpop.ensemble.metrics import macro_f1
from voxpop.ensemble.selection import greedy_selection

MAX_PICKS = 25
# `diverse`: a candidate of a family already chosen must agree (argmax) with every chosen member
# on less than this share of validation rows.
DIVERSE_MAX_AGREEMENT = 0.9
# A trial ASHA stopped after one epoch, or a model collapsed onto a few classes, is no candidate:
# its near-uniform probabilities only smooth the vote, a prior shift that greedy selection
# exploits on validation rows (measured: a 0.25 macro-F1 member picked 10 times of 16 on 20
# newsgroups, where the soft vote then fell below the best member's). The floor is measured from
# the majority-class baseline, not from zero: on two classes that baseline alone scores 0.37, and
# a 0.49 member (half the best would be 0.39) was picked 3 times of 14 on rotten tomatoes.
MIN_SHARE_OF_GAIN = 0.5


@dataclass
class Choice:
    """Selected members (best first) with weights; `picks` the greedy pick sequence (indices into
    `members`); `reasons` maps every checkpoint name to why it was or was not selected."""

    members: list[Checkpoint]
    weights: list[float]
    picks: list[int]
    reasons: dict[str, str] = field(default_factory=dict)
    budget: object = None  # export.cost.Budget when --max-ms-per-row chose under a budget


def check_selection(*, method: str, size: int, metric: str) -> None:
    """VoxpopError for an unknown method or metric, or a size below 1."""
    if method not in SELECTORS:
        raise VoxpopError(
            f"--select: unknown method {method!r} (choose from {', '.join(SELECTORS)})"
        )
    if metric not in METRICS:
        raise VoxpopError(f"--metric: unknown metric {metric!r} (choose from {', '.join(METRICS)})")
    if size < 1:
        raise VoxpopError(f"--size: must be at least 1, got {size}")


def candidates_of(checkpoints: list[Checkpoint], y_val, *, metric: str):
    """(the candidates: each trial's best checkpoint above the floor, best first; the reasons of
    the checkpoints left out)."""
    candidates, reasons = _best_per_trial(checkpoints, metric)
    candidates, weak = _without_weak(candidates, np.asarray(y_val))
    return candidates, {**reasons, **weak}


def select_members(
    checkpoints: list[Checkpoint], y_val, *, method: str, size: int, metric: str, budget=None
) -> Choice:
    """Select up to `size` members by `method` (a key of SELECTORS); with `budget` (an
    `export.cost.Budget` measured on the candidates), only ensembles that fit it."""
    check_selection(method=method, size=size, metric=metric)
    candidates, reasons = candidates_of(checkpoints, y_val, metric=metric)
    if budget is not None:
        budget.check_any_fits([c.name for c in candidates])
    choice = SELECTORS[method](
        candidates, np.asarray(y_val), size=size, metric=metric, budget=budget
    )
    choice.reasons = {**reasons, **choice.reasons}
    choice.budget = budget
    return choice


def _over_reason(budget, names: list[str]) -> str | None:
    """Why the ensemble of `names` is refused by the budget, or None when it fits."""
    if budget is None or budget.fits(names):
        return None
    return (
        f"not selected: with it the ensemble would cost {budget.costs.of(names):.3f} ms per "
        f"row, over --max-ms-per-row {budget.max_ms_per_row:g}"
    )


def _within_budget(candidates, budget, *, size: int):
    """Up to `size` candidates in order, each kept if it fits the budget beside those kept:
    (kept, {name: reason for those the budget skipped})."""
    members, reasons = [], {}
    for c in candidates:
        if len(members) == size:
            break
        over = _over_reason(budget, [m.name for m in members] + [c.name])
        if over:
            reasons[c.name] = over
        else:
            members.append(c)
    return members, reasons


def _best_per_trial(checkpoints: list[Checkpoint], metric: str):
    ranked = sorted(checkpoints, key=lambda c: (-c.score(metric), c.name))
    best: dict[str, Checkpoint] = {}
    reasons = {}
    for checkpoint in ranked:
        if checkpoint.trial_id in best:
            winner = best[checkpoint.trial_id]
            reasons[checkpoint.name] = (
                f"not selected: {winner.name} is its trial's best by {metric}"
            )
        else:
            best[checkpoint.trial_id] = checkpoint
    return list(best.values()), reasons


def _without_weak(candidates: list[Checkpoint], y_val: np.ndarray):
    n_classes = len(candidates[0].val_probs()[0])
    majority = macro_f1(y_val, np.full(len(y_val), np.bincount(y_val).argmax()), n_classes)
    best = max(c.metrics["val_macro_f1"] for c in candidates)
    floor = majority + MIN_SHARE_OF_GAIN * (best - majority)
    reasons = {
        c.name: f"not selected: val macro-F1 {c.metrics['val_macro_f1']:.3f} is not "
        f"halfway from the majority class's ({majority:.3f}) to the best trial's "
        f"({best:.3f})"
        for c in candidates
        if c.metrics["val_macro_f1"] < floor
    }
    return [c for c in candidates if c.name not in reasons], reasons


def _top(candidates, y_val, *, size, metric, budget=None) -> Choice:
    members, over = _within_budget(candidates, budget, size=size)
    rank = {c.name: i for i, c in enumerate(candidates, start=1)}
    reasons = {c.name: f"selected: rank {rank[c.name]} by {metric}" for c in members}
    for c in candidates:
        reasons.setdefault(
            c.name,
            over.get(
                c.name, f"not selected: rank {rank[c.name]} by {metric}, beyond --size {size}"
            ),
        )
    return Choice(members, [1.0] * len(members), list(range(len(members))), reasons)


def _greedy(candidates, y_val, *, size, metric, budget=None) -> Choice:
    fits = (
        None
        if budget is None
        else (lambda indices: budget.fits([candidates[i].name for i in indices]))
    )
    selection = greedy_selection(
        [c.val_probs() for c in candidates],
        y_val,
        max_members=size,
        max_picks=MAX_PICKS,
        fits=fits,
    )
    members = [candidates[i] for i in selection.order]
    position = {candidate_index: k for k, candidate_index in enumerate(selection.order)}
    reasons = {}
    for i, c in enumerate(candidates):
        if i in position:
            count = selection.picks.count(i)
            reasons[c.name] = (
                f"selected: picked {count} of {len(selection.picks)} times by greedy selection"
            )
        else:
            reasons[c.name] = "not selected: adding it never gave the best val macro-F1 of the vote"
    kept = [c.name for c in members]
    for c in candidates:
        over = None if c in members else _over_reason(budget, kept + [c.name])
        if over:  # the budget, not the score, kept it out
            reasons[c.name] = over
    picks = [position[i] for i in selection.picks]
    return Choice(members, selection.weights, picks, reasons)


def _diverse(candidates, y_val, *, size, metric, budget=None) -> Choice:
    predictions = {c.name: c.val_probs().argmax(axis=1) for c in candidates}
    members: list[Checkpoint] = []
    reasons = {}
    for c in candidates:
        over = _over_reason(budget, [m.name for m in members] + [c.name])
        if over and len(members) < size:
            reasons[c.name] = over
            continue
        if len(members) == size:
            reasons[c.name] = f"not selected: --size {size} members already chosen"
            continue
        agreement = max(
            (float(np.mean(predictions[c.name] == predictions[m.name])) for m in members),
            default=0.0,
        )
        new_family = all(m.family != c.family for m in members)
        if new_family or agreement < DIVERSE_MAX_AGREEMENT:
            members.append(c)
            why = (
                "a family not yet chosen" if new_family else f"max argmax agreement {agreement:.2f}"
            )
            reasons[c.name] = f"selected: {why}"
        else:
            reasons[c.name] = (
                f"not selected: same family as a chosen member and agrees on {agreement:.0%} "
                f"of validation rows (must be below {DIVERSE_MAX_AGREEMENT:.0%})"
            )
    return Choice(members, [1.0] * len(members), list(range(len(members))), reasons)


SELECTORS: dict[str, Callable[..., Choice]] = {"top": _top, "greedy": _greedy, "diverse": _diverse}
