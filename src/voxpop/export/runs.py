"""Reading a tuning run directory as plain files (no Ray): checkpoints and the run's data.

Layout (docs/ARCHITECTURE.md): `RUN/*/checkpoint_*/{metrics.json, model.keras, val_probs.npy}`
and `RUN/voxpop/{preprocess.json, split.json, data.parquet}`. `data.parquet` holds every input
row in file order (`id, text, label, split` + feature columns); `split.json` holds row positions,
and the validation positions, in their order, are the rows of every `val_probs.npy`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from voxpop.data.errors import VoxpopError

DATA_COLUMNS = ("id", "text", "label", "split")
CHECKPOINT_FILES = ("metrics.json", "model.keras", "val_probs.npy")

# metric name -> +1 when higher is better, -1 when lower is better
METRICS = {"val_macro_f1": 1, "val_accuracy": 1, "val_loss": -1}


@dataclass(frozen=True)
class Checkpoint:
    """One reported checkpoint of one trial, with its metrics.json read."""

    path: Path
    metrics: dict

    @property
    def trial_id(self) -> str:
        return str(self.metrics.get("trial_id", self.path.parent.name))

    @property
    def family(self) -> str:
        return self.metrics["family"]

    @property
    def config(self) -> dict:
        return self.metrics.get("config", {})

    @property
    def name(self) -> str:
        """Readable and unique within the run: trial directory / checkpoint directory."""
        return f"{self.path.parent.name}/{self.path.name}"

    def score(self, metric: str) -> float:
        """The metric signed so that higher is better."""
        return METRICS[metric] * float(self.metrics[metric])

    def val_probs(self) -> np.ndarray:
        return np.load(self.path / "val_probs.npy", allow_pickle=False)

    def load_model(self):
        """The Keras model, loaded with safe_mode=True (voxpop's custom layers registered)."""
        import keras

        import voxpop.models  # noqa: F401  (registers the custom layers and losses)

        return keras.models.load_model(self.path / "model.keras", safe_mode=True)


@dataclass(frozen=True)
class Run:
    """A tuning run directory: its checkpoints and the data its trials were trained on."""

    path: Path
    checkpoints: list[Checkpoint]

    @property
    def voxpop_dir(self) -> Path:
        return self.path / "voxpop"

    @property
    def preprocess_path(self) -> Path:
        return self.voxpop_dir / "preprocess.json"

    @cached_property
    def preprocessor(self):
        from voxpop.data import Preprocessor

        return Preprocessor.from_json(self.preprocess_path)

    @cached_property
    def data(self) -> pd.DataFrame:
        return pd.read_parquet(self.voxpop_dir / "data.parquet")

    @cached_property
    def split(self):
        from voxpop.data import Split

        return Split.from_json(json.loads((self.voxpop_dir / "split.json").read_text()))

    @property
    def feature_cols(self) -> list[str]:
        return [c for c in self.data.columns if c not in DATA_COLUMNS]

    def rows(self, part: str) -> pd.DataFrame:
        """The data rows of one split part ("train", "val", "test") in split order."""
        positions = np.asarray(getattr(self.split, part), dtype=np.int64)
        rows = self.data.iloc[positions]
        if not (rows["split"] == part).all():
            raise VoxpopError(
                f"{self.voxpop_dir}: split.json and data.parquet disagree on the {part} rows"
            )
        return rows

    def encode(self, rows: pd.DataFrame) -> dict[str, np.ndarray]:
        """Model inputs for `rows`, by the run's own preprocessor."""
        features = rows[self.feature_cols].to_numpy(np.float32) if self.feature_cols else None
        return self.preprocessor.encode(rows["text"].tolist(), features=features)

    @cached_property
    def y_val(self) -> np.ndarray:
        return self.preprocessor.encode_labels(self.rows("val")["label"].astype(str).to_numpy())


def read_run(run_dir: str | Path) -> Run:
    """The run at `run_dir`; a VoxpopError names what is missing."""
    path = Path(run_dir)
    if not path.is_dir():
        raise VoxpopError(f"{path}: run directory not found")
    for name in ("preprocess.json", "split.json", "data.parquet"):
        if not (path / "voxpop" / name).is_file():
            raise VoxpopError(
                f"{path}: voxpop/{name} missing (not a run written by `voxpop tune`?)"
            )
    checkpoints = [_read_checkpoint(p.parent) for p in sorted(path.glob("*/checkpoint_*/metrics.json"))]
    if not checkpoints:
        raise VoxpopError(f"{path}: no checkpoints found (*/checkpoint_*/metrics.json)")
    return Run(path=path, checkpoints=checkpoints)


def _read_checkpoint(path: Path) -> Checkpoint:
    missing = [name for name in CHECKPOINT_FILES if not (path / name).is_file()]
    if missing:
        raise VoxpopError(f"{path}: checkpoint lacks {', '.join(missing)}")
    try:
        metrics = json.loads((path / "metrics.json").read_text())
    except json.JSONDecodeError as err:
        raise VoxpopError(f"{path / 'metrics.json'}: not valid JSON ({err})") from None
    return Checkpoint(path=path, metrics=metrics)
