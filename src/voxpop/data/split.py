"""Stratified, seeded train/validation/test split of row positions (numpy only)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from voxpop.data.errors import VoxpopError


@dataclass(frozen=True)
class Split:
    """Row positions (np.int64, ascending) of the training, validation and test rows."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray

    def to_json(self) -> dict:
        """Plain dict form: {"train": [...], "val": [...], "test": [...]}."""
        return {name: getattr(self, name).tolist() for name in ("train", "val", "test")}

    @classmethod
    def from_json(cls, data: dict) -> Split:
        """Inverse of `to_json`."""
        try:
            return cls(
                **{
                    name: np.asarray(data[name], dtype=np.int64)
                    for name in ("train", "val", "test")
                }
            )
        except KeyError as err:
            raise VoxpopError(f"split: key {err} missing (expected train, val, test)") from None


def split_rows(
    labels, *, val_size: float = 0.15, test_size: float = 0.15, seed: int = 42, ids=None
) -> Split:
    """Split row positions per class, so every split keeps the class proportions.

    With `ids` (one per row) the rows of each class are ordered by id before the seeded shuffle,
    so which split a row lands in depends on its id and label only, not on the input order.
    Example: `split = split_rows(table.labels, ids=table.ids, seed=0)`.
    """
    labels = np.asarray(labels).astype(str)
    _check_sizes(val_size, test_size)
    classes = np.unique(labels)
    if len(classes) < 2:
        raise VoxpopError(
            f"labels have {len(classes)} class(es) ({', '.join(classes)}); "
            "a split for training needs at least 2"
        )
    order = (
        np.argsort(np.asarray(ids).astype(str), kind="stable")
        if ids is not None
        else np.arange(len(labels))
    )
    rng = np.random.default_rng(seed)
    parts: dict[str, list[np.ndarray]] = {"train": [], "val": [], "test": []}
    for cls in classes:
        members = order[labels[order] == cls]
        n_val, n_test = _class_sizes(cls, len(members), val_size, test_size)
        shuffled = rng.permutation(members)
        parts["val"].append(shuffled[:n_val])
        parts["test"].append(shuffled[n_val : n_val + n_test])
        parts["train"].append(shuffled[n_val + n_test :])
    return Split(**{name: np.sort(np.concatenate(p)).astype(np.int64) for name, p in parts.items()})


def _check_sizes(val_size: float, test_size: float) -> None:
    for name, size in (("val_size", val_size), ("test_size", test_size)):
        if not 0 <= size < 1:
            raise VoxpopError(f"{name} must be in [0, 1) (got {size})")
    if val_size + test_size >= 1:
        raise VoxpopError(f"val_size + test_size must be below 1 (got {val_size + test_size:g})")


def _class_sizes(cls: str, n: int, val_size: float, test_size: float) -> tuple[int, int]:
    # Each requested split gets at least one row of every class, and train keeps at least one.
    n_val = max(1, round(n * val_size)) if val_size > 0 else 0
    n_test = max(1, round(n * test_size)) if test_size > 0 else 0
    if n - n_val - n_test < 1:
        raise VoxpopError(
            f"class '{cls}' has only {n} row(s); val_size={val_size:g} and "
            f"test_size={test_size:g} need at least {n_val + n_test + 1}"
        )
    return n_val, n_test


def fold_ids(labels, *, folds: int, seed: int = 42) -> np.ndarray:
    """Stratified k-fold assignment: the fold (0..folds-1, int8) of each row, each class's rows
    shuffled (seeded) and dealt to the folds in turn, so every fold keeps the class proportions.
    Every class needs at least `folds` rows (each fold's training rows must hold every class)."""
    labels = np.asarray(labels).astype(str)
    if folds < 2:
        raise VoxpopError(f"--folds must be at least 2 (got {folds})")
    rng = np.random.default_rng(seed)
    assigned = np.empty(len(labels), dtype=np.int8)
    for cls in np.unique(labels):
        members = np.flatnonzero(labels == cls)
        if len(members) < folds:
            raise VoxpopError(
                f"class '{cls}' has only {len(members)} training and validation "
                f"row(s); --folds {folds} needs at least {folds}"
            )
        start = rng.integers(folds)  # which fold takes a class's remainder varies by class
        assigned[rng.permutation(members)] = (start + np.arange(len(members))) % folds
    return assigned
