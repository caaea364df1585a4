"""Stacking (`voxpop export --combine stack`): a multinomial logistic regression (scikit-learn, at
export only) over the members' log-probabilities, scored honestly against the weighted vote and
written as numbers (the manifest's `Stacker`) and as nodes of the fused graph.

The stacker learns from the rows `stacking_rows` gives: the validation rows, whose
probabilities every checkpoint stores, or of a bagged run (`--folds K`) the out-of-fold rows,
every train and val row, whose probabilities every bag stores. Those rows also chose the members
and their greedy weights, so
scoring either combination on them would flatter it: `fit_stacker` scores both the stacker and a
greedy weighted vote by cross-validation over those rows (each fold's held-out rows predicted by
a combination fitted on the other folds), and the stacker becomes the bundle's default only when
it scores higher there.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from onnx import TensorProto, helper, numpy_helper

from voxpop.data.errors import VoxpopError
from voxpop.ensemble.manifest import STACK_OUTPUT, Stacker
from voxpop.ensemble.metrics import macro_f1
from voxpop.ensemble.selection import greedy_selection
from voxpop.ensemble.voting import soft_vote, stack_features

FOLDS = 5
C = 1.0  # scikit-learn's default inverse regularisation: the features are only M x C columns
CLIP = 1e-7  # log(max(p, CLIP)): a member's 0 probability must not be -inf
MAX_PICKS = 25  # greedy picks per fold, as export's selection makes


@dataclass(frozen=True)
class StackRows:
    """What the stacker learns from: each member's probabilities [n, C] (bundle member order) on
    the same rows, their true class ids, and which rows they are (`Stacker.fit_on`)."""

    member_probs: list[np.ndarray]
    y: np.ndarray
    fit_on: str


def stacking_rows(run, members) -> StackRows:
    """The rows to fit the stacker on: the validation probabilities each checkpoint stores (in
    split order), or of a bagged run the out-of-fold probabilities of each bag (`members` are
    then `voxpop.export.bagged.BagCandidate`s, whose `val_probs()` are those)."""
    if run.bagged:
        y, fit_on = run.y_oof, "out_of_fold"
    else:
        y, fit_on = run.y_val, "validation"
    return StackRows(member_probs=[c.val_probs() for c in members], y=np.asarray(y), fit_on=fit_on)


def fit_stacker(rows: StackRows, *, n_classes: int, folds: int = FOLDS, C: float = C) -> Stacker:
    """The stacker fitted on all of `rows`, with its and the greedy weighted vote's
    cross-validated macro-F1 over them. VoxpopError when a class has too few rows to
    cross-validate."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    y = np.asarray(rows.y, dtype=np.int64)
    counts = np.bincount(y, minlength=n_classes)
    folds = min(folds, int(counts.min()))
    if folds < 2:
        raise VoxpopError(
            f"--combine stack: the {rows.fit_on} rows hold {int(counts.min())} row(s) "
            f"of class {int(counts.argmin())}; cross-validating a stacker needs at "
            "least 2 of every class"
        )
    features = stack_features(rows.member_probs, CLIP)
    model = LogisticRegression(C=C, max_iter=2000)
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=0)
    held_out_stack = cross_val_predict(model, features, y, cv=splitter)
    held_out_vote = _cross_validated_vote(rows.member_probs, y, splitter)
    model.fit(features, y)
    coef, intercept = model.coef_, model.intercept_
    if coef.shape[0] == 1:  # scikit-learn keeps one row for two classes: logits (0, x.w + b)
        coef, intercept = np.vstack([np.zeros_like(coef), coef]), np.concatenate([[0.0], intercept])
    return Stacker(
        fit_on=rows.fit_on,
        rows=len(y),
        folds=folds,
        C=C,
        clip=CLIP,
        coef=coef.astype(np.float64).tolist(),
        intercept=intercept.astype(np.float64).tolist(),
        cv_macro_f1={
            "stack": macro_f1(y, held_out_stack, n_classes),
            "weighted": macro_f1(y, held_out_vote, n_classes),
        },
    )


def _cross_validated_vote(member_probs: list[np.ndarray], y: np.ndarray, splitter) -> np.ndarray:
    """Each row's label from a greedy weighted vote whose weights were chosen on the other folds."""
    predicted = np.empty(len(y), dtype=np.int64)
    for train, test in splitter.split(member_probs[0], y):
        selection = greedy_selection(
            [p[train] for p in member_probs],
            y[train],
            max_members=len(member_probs),
            max_picks=MAX_PICKS,
        )
        chosen = [member_probs[i][test] for i in selection.order]
        predicted[test] = soft_vote(chosen, selection.weights).argmax(axis=1)
    return predicted


def stack_wins(stacker: Stacker) -> bool:
    """Whether the stacker is the bundle's default: strictly better held-out macro-F1."""
    return stacker.cv_macro_f1["stack"] > stacker.cv_macro_f1["weighted"]


def stack_nodes(member_outputs: list[str], stacker: Stacker):
    """ONNX nodes and initializers computing STACK_OUTPUT from the members' probability outputs
    (same order as the stacker's features): Max with the clip, Log, Concat, MatMul, Add, Softmax
    (ops of every opset voxpop exports)."""
    clip = "stack/clip"
    initializers = [
        helper.make_tensor(clip, TensorProto.FLOAT, [], [stacker.clip]),
        numpy_helper.from_array(np.asarray(stacker.coef, np.float32).T.copy(), "stack/coef"),
        numpy_helper.from_array(np.asarray(stacker.intercept, np.float32), "stack/intercept"),
    ]
    nodes, logs = [], []
    for i, output in enumerate(member_outputs):
        nodes += [
            helper.make_node("Max", [output, clip], [f"stack/clipped_{i}"]),
            helper.make_node("Log", [f"stack/clipped_{i}"], [f"stack/log_{i}"]),
        ]
        logs.append(f"stack/log_{i}")
    nodes += [
        helper.make_node("Concat", logs, ["stack/features"], axis=1),
        helper.make_node("MatMul", ["stack/features", "stack/coef"], ["stack/product"]),
        helper.make_node("Add", ["stack/product", "stack/intercept"], ["stack/logits"]),
        helper.make_node("Softmax", ["stack/logits"], [STACK_OUTPUT], axis=-1, name="stack"),
    ]
    return nodes, initializers
