"""Preparing a tuning run's data once, in the driver, and writing `RUN/voxpop/`.

`RUN/voxpop/` holds `preprocess.json` (fitted on the training rows only), `split.json` (row
positions into `data.parquet`, and the ids, of train/val/test), `data.parquet` (`id, text, label,
split` + feature columns), `arrays.npz` (the encoded train and val arrays the trials train on;
test rows are never encoded for the trials) and `job.json` (the options and package versions).
"""

from __future__ import annotations

import importlib.metadata
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from voxpop.data.atomic import atomic_path, write_json
from voxpop.data.errors import VoxpopError

VOXPOP_DIR = "voxpop"
SPLITS = ("train", "val", "test")
# The default split when the user gives no --val/--test file (fractions of DATA's rows).
VAL_SIZE, TEST_SIZE = 0.15, 0.15
VERSIONED_PACKAGES = ("voxpop", "ray", "tensorflow-cpu", "tensorflow", "keras", "numpy", "pandas")


@dataclass(frozen=True)
class TableSource:
    """Where the rows come from: DATA, and optional separate validation and test files."""

    data: Path
    val: Path | None = None
    test: Path | None = None
    text_col: str = "text"
    label_col: str = "label"
    feature_cols: tuple[str, ...] = ()


def prepare_run_data(source: TableSource, *, seed: int, out_dir: Path, job: dict,
                     preprocessor_options: dict | None = None) -> dict:
    """Read, split, fit the Preprocessor on train, encode, and write `out_dir` (atomically).

    `preprocessor_options` are `Preprocessor` keywords (max_len, max_tokens, min_freq, ...).

    Returns the trial data (see `trainable.train_trial`).
    """
    frame = _labelled_rows(source, seed=seed)
    from voxpop.data import Preprocessor

    features = _features(frame, source.feature_cols)
    train = (frame["split"] == "train").to_numpy()
    preprocessor = Preprocessor(**(preprocessor_options or {})).fit(
        frame["text"][train].tolist(), frame["label"][train].to_numpy(),
        features=None if features is None else features[train],
        feature_names=source.feature_cols,
    )
    arrays = _encode(preprocessor, frame, features)
    with atomic_path(out_dir) as tmp:
        tmp.mkdir(parents=True)
        preprocessor.to_json(tmp / "preprocess.json")
        write_json(tmp / "split.json", _split_json(frame))
        frame.to_parquet(tmp / "data.parquet", index=False)
        np.savez(tmp / "arrays.npz", **arrays)
        write_json(tmp / "job.json", {**job, "versions": _versions(),
                                      "created": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                               time.gmtime())})
    return _trial_data(preprocessor, arrays)


def load_run_data(out_dir: Path) -> dict:
    """The trial data of a prepared run (for `--resume`): preprocess.json and arrays.npz."""
    from voxpop.data import Preprocessor

    if not (out_dir / "arrays.npz").is_file():
        raise VoxpopError(f"{out_dir}: no arrays.npz; is this a voxpop tuning run directory?")
    preprocessor = Preprocessor.from_json(out_dir / "preprocess.json")
    with np.load(out_dir / "arrays.npz", allow_pickle=False) as stored:
        arrays = {key: stored[key] for key in stored.files}
    return _trial_data(preprocessor, arrays)


def _labelled_rows(source: TableSource, *, seed: int) -> pd.DataFrame:
    """One frame `id, text, label, split` (+ feature columns) of every row, in file order."""
    from voxpop.data import read_table, split_rows

    def read(path: Path, **checks):
        return read_table(path, text_col=source.text_col, label_col=source.label_col,
                          feature_cols=source.feature_cols, **checks)

    main = read(source.data, require_classes=2)
    split = split_rows(main.labels, ids=main.ids, seed=seed,
                       val_size=0 if source.val else VAL_SIZE,
                       test_size=0 if source.test else TEST_SIZE)
    names = np.empty(len(main), dtype=object)
    for name in SPLITS:
        names[getattr(split, name)] = name
    frames = [_frame(main, names, source.feature_cols)]
    for name in ("val", "test"):
        path = getattr(source, name)
        if path:
            table = read(path)
            frames.append(_frame(table, np.full(len(table), name, dtype=object),
                                 source.feature_cols))
    return pd.concat(frames, ignore_index=True)


def _frame(table, split_names: np.ndarray, feature_cols: tuple[str, ...]) -> pd.DataFrame:
    frame = pd.DataFrame({"id": table.ids, "text": table.texts, "label": table.labels,
                          "split": split_names})
    for i, column in enumerate(feature_cols):
        frame[column] = table.features[:, i]
    return frame


def _features(frame: pd.DataFrame, feature_cols: tuple[str, ...]) -> np.ndarray | None:
    return frame[list(feature_cols)].to_numpy(np.float32) if feature_cols else None


def _encode(preprocessor, frame: pd.DataFrame, features) -> dict[str, np.ndarray]:
    arrays = {}
    for name in ("train", "val"):
        rows = (frame["split"] == name).to_numpy()
        if not rows.any():
            raise VoxpopError(f"the {name} split has no rows (DATA has {len(frame)} rows)")
        encoded = preprocessor.encode(frame["text"][rows].tolist(),
                                      None if features is None else features[rows])
        arrays.update({f"{name}_{key}": array for key, array in encoded.items()})
        arrays[f"y_{name}"] = preprocessor.encode_labels(frame["label"][rows].to_numpy())
    return arrays


def _trial_data(preprocessor, arrays: dict[str, np.ndarray]) -> dict:
    return {
        **{split: {key: arrays[f"{split}_{key}"] for key in preprocessor.input_names}
           for split in ("train", "val")},
        "y_train": arrays["y_train"],
        "y_val": arrays["y_val"],
        "labels": list(preprocessor.labels),
        "n_tokens": int(preprocessor.n_tokens),
        "n_features": int(preprocessor.n_features),
        "n_buckets": int(preprocessor.n_buckets),
        # The token of each id, for spaces that load pretrained word vectors (`embeddings_file`).
        "vocabulary": ["<pad>", "<oov>", *preprocessor.vocabulary.tokens],
    }


def _split_json(frame: pd.DataFrame) -> dict:
    """Row positions into data.parquet per split, and the same rows' ids."""
    positions = {name: np.flatnonzero(frame["split"].to_numpy() == name) for name in SPLITS}
    return {**{name: rows.tolist() for name, rows in positions.items()},
            "ids": {name: frame["id"].to_numpy()[rows].astype(str).tolist()
                    for name, rows in positions.items()}}


def _versions() -> dict:
    versions = {"python": platform.python_version(), "platform": sys.platform}
    for package in VERSIONED_PACKAGES:
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions
