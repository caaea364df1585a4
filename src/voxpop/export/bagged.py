"""Bagged members of a run tuned with `--folds K` (the run directory's bags: `voxpop.data.rundir`).

A bagged member is one ONNX graph: the configuration's K fold models side by side on the shared
inputs, its `probs` the mean of theirs (`voxpop.export.fuse.fuse_members` with equal weights),
proven against the mean of the K Keras models. Bags are chosen and weighted by greedy ensemble
selection on their out-of-fold probabilities: every train and val row, each scored by the fold
model that did not train on it, far more rows than one validation split.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from voxpop.data.errors import VoxpopError
from voxpop.data.rundir import Bag, Run
from voxpop.ensemble.selection import greedy_selection
from voxpop.export.options import DEFAULT_OPSET


@dataclass
class BagChoice:
    """The chosen bags (best first by out-of-fold macro-F1) with their greedy weights (pick
    counts, as `voxpop.export.select`'s)."""

    bags: list[Bag]
    weights: list[float]
    oof_macro_f1: dict[str, float]  # every complete bag's, by config id


def select_bags(run: Run, *, size: int, max_picks: int = 25) -> BagChoice:
    """Greedy selection (with replacement) among the run's complete bags on their out-of-fold
    rows, at most `size` distinct bags."""
    from voxpop.ensemble.metrics import macro_f1

    bags = run.bags
    if not bags:
        raise VoxpopError(f"{run.path}: no bag has a checkpoint for every fold")
    oof = [bag.out_of_fold() for bag in bags]
    n_classes = oof[0].shape[1]
    scores = {
        bag.config_id: float(macro_f1(run.y_oof, probs.argmax(1), n_classes))
        for bag, probs in zip(bags, oof)
    }
    selection = greedy_selection(oof, run.y_oof, max_members=size, max_picks=max_picks)
    picked = dict(zip(selection.order, selection.weights))  # candidate index -> pick count
    chosen = sorted(picked, key=lambda i: -scores[bags[i].config_id])
    weights = [float(picked[i]) for i in chosen]
    return BagChoice(bags=[bags[i] for i in chosen], weights=weights, oof_macro_f1=scores)


def bagged_member(
    bag: Bag,
    *,
    parity_inputs: dict[str, np.ndarray],
    opset: int = DEFAULT_OPSET,
    parity_tol: float = 1e-5,
):
    """`(onnx model, parity)`: the bag's K fold models composed into one graph whose `probs`
    are their mean, and its parity with the mean of the Keras models on `parity_inputs`
    ({max_abs_diff, argmax_agreement, rows}). VoxpopError when it exceeds `parity_tol`."""
    from voxpop.export.checks import rnn_fusion
    from voxpop.export.convert import to_onnx
    from voxpop.export.fuse import fuse_members
    from voxpop.models import load_model

    models = [load_model(checkpoint.model_path) for checkpoint in bag.checkpoints]
    folds = {f"fold{fold}": to_onnx(model, opset=opset) for fold, model in enumerate(models)}
    for graph in folds.values():
        rnn_fusion(graph)
    composed = fuse_members(folds, [1.0] * len(folds))
    composed.graph.name = f"voxpop_bag_{bag.config_id}"
    keras_mean = np.mean(
        [
            model.predict({t.name: parity_inputs[t.name] for t in model.inputs}, verbose=0)
            for model in models
        ],
        axis=0,
    )
    probs = _onnx_probs(composed, parity_inputs)
    proof = {
        "max_abs_diff": float(np.abs(probs - keras_mean).max()),
        "argmax_agreement": float(np.mean(probs.argmax(1) == keras_mean.argmax(1))),
        "rows": int(len(probs)),
    }
    if proof["max_abs_diff"] > parity_tol or proof["argmax_agreement"] < 1.0:
        raise VoxpopError(
            f"bag {bag.config_id}: its composed graph differs from the mean of its "
            f"{len(models)} Keras fold models by {proof['max_abs_diff']:.2e} "
            f"(limit {parity_tol:g})"
        )
    return composed, proof


def _onnx_probs(model, inputs: dict[str, np.ndarray]) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(["probs"], {i.name: inputs[i.name] for i in session.get_inputs()})[0]
