"""Bagged members of a run tuned with `--folds K` (the run directory's bags: `voxpop.data.rundir`).

A bagged member is one ONNX graph: the configuration's K fold models side by side on the shared
inputs, its `probs` the mean of theirs (`compose_folds`, by `voxpop.export.fuse.fuse_members`
with equal weights); `voxpop export` proves it against the mean of the K Keras models. Export
selects among bags as among checkpoints (`voxpop.export.select`), each bag seen through a
`BagCandidate`: its out-of-fold probabilities in place of a checkpoint's validation ones, so
greedy selection, its weights and a stacker use every train and val row, each scored by the
fold model that did not train on it, far more rows than one validation split.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from voxpop.data.errors import VoxpopError
from voxpop.data.options import METRICS
from voxpop.data.rundir import Bag, Run
from voxpop.ensemble.metrics import log_loss, macro_f1

FOLD_PREFIX = "fold"  # a fold model's nodes in the composed graph: fold0/..., fold1/...


@dataclass(frozen=True)
class BagCandidate:
    """A bag as export's selection sees a candidate (the interface of a run's `Checkpoint`):
    `val_probs()` are its out-of-fold probabilities, `metrics` its out-of-fold scores under the
    checkpoint metrics' names."""

    bag: Bag
    metrics: dict

    @property
    def name(self) -> str:
        return self.bag.config_id

    @property
    def trial_id(self) -> str:
        return self.bag.config_id

    @property
    def family(self) -> str:
        return self.bag.family

    @property
    def config(self) -> dict:
        return self.bag.config

    @property
    def folds(self) -> int:
        return len(self.bag.checkpoints)

    @property
    def model_paths(self) -> list[Path]:
        """Its fold models' Keras files, in fold order."""
        return [checkpoint.model_path for checkpoint in self.bag.checkpoints]

    def score(self, metric: str) -> float:
        return METRICS[metric] * float(self.metrics[metric])

    def val_probs(self) -> np.ndarray:
        return self.bag.out_of_fold()


def bag_candidates(run: Run) -> list[BagCandidate]:
    """The run's complete bags, each scored on its out-of-fold rows (`run.y_oof`)."""
    bags = run.bags
    if not bags:
        raise VoxpopError(
            f"{run.path}: no configuration has a checkpoint for every fold (a bagged run "
            "whose tuning did not finish: `voxpop tune --resume` runs the missing folds)"
        )
    y = run.y_oof
    candidates = []
    for bag in bags:
        probs = bag.out_of_fold()
        if len(probs) != len(y):
            raise VoxpopError(
                f"{bag.oof_path}: {len(probs)} out-of-fold rows, but the run has {len(y)}"
            )
        predicted = probs.argmax(axis=1)
        metrics = {
            "val_macro_f1": float(macro_f1(y, predicted, probs.shape[1])),
            "val_accuracy": float(np.mean(predicted == y)),
            "val_loss": float(log_loss(y, probs)),
        }
        candidates.append(BagCandidate(bag=bag, metrics=metrics))
    return candidates


def compose_folds(graphs: list, *, name: str):
    """One ONNX model whose `probs` is the mean of the fold graphs' (inputs shared by name)."""
    from voxpop.export.fuse import fuse_members

    composed = fuse_members(
        {f"{FOLD_PREFIX}{fold}": graph for fold, graph in enumerate(graphs)}, [1.0] * len(graphs)
    )
    composed.graph.name = name
    return composed
