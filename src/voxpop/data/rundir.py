"""The tuning run directory (DESIGN.md section 3): its layout, its reader and its writers.

`voxpop tune --storage DIR --name NAME` makes `RUN = DIR/NAME/`, Ray Tune's experiment directory,
with voxpop's files beside Ray's own:

    RUN/voxpop/preprocess.json        the Preprocessor, fitted on the training rows only
    RUN/voxpop/split.json             row positions into data.parquet (and their ids) per split
    RUN/voxpop/data.parquet           every input row in file order: id, text, label, split, then
                                      the feature columns
    RUN/voxpop/arrays.npz             the encoded train and val rows the trials train on (not test);
                                      with a sentence encoder also their pooled embeddings
                                      (`train_sentence_embedding`, `val_sentence_embedding`),
                                      computed once by the driver
    RUN/voxpop/sentence_encoder.onnx  with `--sentence-encoder`: the encoder's ONNX graph with
                                      its pooling (`voxpop.models.sentence.pooled_encoder`), what
                                      export composes with each head
    RUN/voxpop/job.json               the command's options, package versions, creation time
    RUN/TRIAL/checkpoint_N/           each reported checkpoint: model.keras, metrics.json and
                                      val_probs.npy (validation probabilities in split order)

This is the only module that names those files or reads and writes them: the tuner writes through
`write_prepared` and `write_checkpoint`, export reads through `read_run`, and tests and bench
scripts build runs without Ray through `write_fixture_run` and `add_checkpoint`. It imports neither
Keras nor Ray: a model is saved through its own `.save(path)`, and whoever loads one gets its path
(`Checkpoint.model_path`).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from voxpop.data.atomic import atomic_path, write_json
from voxpop.data.errors import VoxpopError
from voxpop.data.options import METRICS
from voxpop.data.preprocess import Preprocessor
from voxpop.data.sentence import EMBEDDING_INPUT, TOKEN_INPUTS
from voxpop.data.split import Split

VOXPOP_DIR = "voxpop"
PREPROCESS_FILE = "preprocess.json"
SPLIT_FILE = "split.json"
DATA_FILE = "data.parquet"
ARRAYS_FILE = "arrays.npz"
JOB_FILE = "job.json"
MODEL_FILE = "model.keras"
METRICS_FILE = "metrics.json"
VAL_PROBS_FILE = "val_probs.npy"
LOG_FILE = "tune.log"  # RUN/tune.log: Ray's and the trials' own output (TensorFlow, Keras)
SENTENCE_ENCODER_FILE = "sentence_encoder.onnx"
# Ray Tune's name for a trial's reported checkpoints: RUN/TRIAL/checkpoint_000000, ...
CHECKPOINT_PREFIX = "checkpoint_"
FILE_NAMES = (PREPROCESS_FILE, SPLIT_FILE, DATA_FILE, ARRAYS_FILE, JOB_FILE, MODEL_FILE,
              METRICS_FILE, VAL_PROBS_FILE, LOG_FILE, SENTENCE_ENCODER_FILE)
PREPARED_FILES = (PREPROCESS_FILE, SPLIT_FILE, DATA_FILE)  # what export reads of RUN/voxpop/
CHECKPOINT_FILES = (METRICS_FILE, MODEL_FILE, VAL_PROBS_FILE)

DATA_COLUMNS = ("id", "text", "label", "split")  # then the user's feature columns
SPLITS = ("train", "val", "test")
TRAINED_SPLITS = ("train", "val")  # encoded into arrays.npz; test rows never reach a trial
# METRICS (from `options`): metric name -> +1 when higher is better, -1 when lower is better


# --------------------------------------------------------------------------- the rows
def data_rows(*, ids, texts, labels, splits, features: np.ndarray | None = None,
              feature_cols: tuple[str, ...] = ()) -> pd.DataFrame:
    """Rows in the form of data.parquet: `id, text, label, split`, then one column per feature."""
    frame = pd.DataFrame({"id": ids, "text": texts, "label": labels, "split": splits})
    for i, column in enumerate(feature_cols):
        frame[column] = features[:, i]
    return frame


def feature_columns(rows: pd.DataFrame) -> list[str]:
    return [column for column in rows.columns if column not in DATA_COLUMNS]


def row_features(rows: pd.DataFrame) -> np.ndarray | None:
    """The rows' feature columns as float32 [n, k], or None when the run has none."""
    columns = feature_columns(rows)
    return rows[columns].to_numpy(np.float32) if columns else None


@dataclass(frozen=True)
class TrialData:
    """What every trial trains on, prepared once by the tuning driver: the encoded training and
    validation rows (never test rows) and the preprocessor's sizes. Ray's object store ships it
    to the trials (`voxpop.tune_spaces.trainable.train_trial`)."""

    train: dict[str, np.ndarray]  # model inputs by name, as `Preprocessor.encode` makes them
    val: dict[str, np.ndarray]
    y_train: np.ndarray  # class ids
    y_val: np.ndarray
    labels: list[str]
    n_tokens: int
    n_features: int
    n_buckets: int
    # The token of each id, for spaces that load pretrained word vectors (`embeddings_file`).
    vocabulary: list[str]
    sentence_dim: int = 0  # width of the `sentence_embedding` input; 0 without a sentence encoder

    @classmethod
    def encode(cls, preprocessor: Preprocessor, rows: pd.DataFrame, *,
               embed=None) -> TrialData:
        """Encode the train and val rows of `rows` (the data.parquet form) with `preprocessor`.

        With a sentence encoder, `embed(texts) -> float32 [n, dim]` gives each row's pooled
        embedding (`sentence_embedding`), which the heads train on instead of the word pieces.
        """
        arrays = {}
        features = row_features(rows)
        inputs = _trained_inputs(preprocessor)
        for name in TRAINED_SPLITS:
            part = (rows["split"] == name).to_numpy()
            if not part.any():
                raise VoxpopError(f"the {name} split has no rows (DATA has {len(rows)} rows)")
            texts = rows["text"][part].tolist()
            encoded = preprocessor.encode(texts, None if features is None else features[part],
                                          inputs=inputs)
            if embed is not None:
                encoded[EMBEDDING_INPUT] = np.asarray(embed(texts), dtype=np.float32)
            arrays.update({f"{name}_{key}": array for key, array in encoded.items()})
            arrays[f"y_{name}"] = preprocessor.encode_labels(rows["label"][part].to_numpy())
        return cls._of(preprocessor, arrays)

    @classmethod
    def _of(cls, preprocessor: Preprocessor, arrays: dict[str, np.ndarray]) -> TrialData:
        names = _trained_inputs(preprocessor)
        if f"train_{EMBEDDING_INPUT}" in arrays:
            names.append(EMBEDDING_INPUT)
        inputs = {name: {key: arrays[f"{name}_{key}"] for key in names}
                  for name in TRAINED_SPLITS}
        return cls(
            train=inputs["train"], val=inputs["val"], y_train=arrays["y_train"],
            y_val=arrays["y_val"], labels=list(preprocessor.labels),
            n_tokens=int(preprocessor.n_tokens), n_features=int(preprocessor.n_features),
            n_buckets=int(preprocessor.n_buckets),
            vocabulary=["<pad>", "<oov>", *preprocessor.vocabulary.tokens],
            sentence_dim=int(inputs["train"][EMBEDDING_INPUT].shape[1])
            if EMBEDDING_INPUT in inputs["train"] else 0,
        )

    def arrays(self) -> dict[str, np.ndarray]:
        """The arrays.npz form: `train_<input>`, `val_<input>`, `y_train`, `y_val`."""
        arrays = {}
        for name in TRAINED_SPLITS:
            arrays.update({f"{name}_{key}": array for key, array in getattr(self, name).items()})
            arrays[f"y_{name}"] = getattr(self, f"y_{name}")
        return arrays


def _trained_inputs(preprocessor: Preprocessor) -> list[str]:
    """The preprocessor's inputs a trial trains on: not the sentence encoder's word pieces (the
    heads read the embeddings computed from them once)."""
    return [name for name in preprocessor.input_names if name not in TOKEN_INPUTS]


# --------------------------------------------------------------------------- writing
@contextlib.contextmanager
def new_run_dir(run_dir: Path) -> Iterator[Path]:
    """Create the directory of a new run; if what runs inside fails before anything is written
    into it, remove it again, so that the same name can be used once the cause is fixed."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True)
    try:
        yield run_dir
    except BaseException:
        run_dir.rmdir()
        raise


def write_prepared(run_dir: Path, *, preprocessor: Preprocessor, rows: pd.DataFrame,
                   data: TrialData, job: dict, sentence_encoder: bytes | None = None) -> None:
    """Write `RUN/voxpop/` (atomically: it appears complete or not at all); `sentence_encoder`:
    the serialized ONNX graph that made the rows' sentence embeddings."""
    with atomic_path(Path(run_dir) / VOXPOP_DIR) as tmp:
        tmp.mkdir(parents=True)
        if sentence_encoder is not None:
            (tmp / SENTENCE_ENCODER_FILE).write_bytes(sentence_encoder)
        preprocessor.to_json(tmp / PREPROCESS_FILE)
        write_json(tmp / SPLIT_FILE, _split_json(rows))
        rows.to_parquet(tmp / DATA_FILE, index=False)
        np.savez(tmp / ARRAYS_FILE, **data.arrays())
        write_json(tmp / JOB_FILE, job)


def _split_json(rows: pd.DataFrame) -> dict:
    """Row positions into data.parquet per split, and the same rows' ids."""
    positions = {name: np.flatnonzero(rows["split"].to_numpy() == name) for name in SPLITS}
    return {**{name: part.tolist() for name, part in positions.items()},
            "ids": {name: rows["id"].to_numpy()[part].astype(str).tolist()
                    for name, part in positions.items()}}


def write_checkpoint(directory: Path, *, metrics: dict, val_probs: np.ndarray,
                     model=None) -> None:
    """One checkpoint's files in `directory` (which must exist). `model` is anything with Keras'
    `.save(path)`; a test fixture may leave it out where only selection reads the checkpoint."""
    directory = Path(directory)
    if model is not None:
        model.save(directory / MODEL_FILE)
    write_json(directory / METRICS_FILE, metrics)
    np.save(directory / VAL_PROBS_FILE, np.asarray(val_probs, dtype=np.float32))


# --------------------------------------------------------------------------- reading
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

    @property
    def model_path(self) -> Path:
        """The saved Keras model (load it with `voxpop.models.load_model`)."""
        return self.path / MODEL_FILE

    def score(self, metric: str) -> float:
        """The metric signed so that higher is better."""
        return METRICS[metric] * float(self.metrics[metric])

    def val_probs(self) -> np.ndarray:
        return np.load(self.path / VAL_PROBS_FILE, allow_pickle=False)


@dataclass(frozen=True)
class Run:
    """A tuning run directory: its checkpoints and the data its trials were trained on."""

    path: Path
    checkpoints: list[Checkpoint]

    @property
    def voxpop_dir(self) -> Path:
        return self.path / VOXPOP_DIR

    @property
    def preprocess_path(self) -> Path:
        return self.voxpop_dir / PREPROCESS_FILE

    @cached_property
    def preprocessor(self) -> Preprocessor:
        return Preprocessor.from_json(self.preprocess_path)

    @cached_property
    def data(self) -> pd.DataFrame:
        """Every input row in file order (`id, text, label, split`, then the feature columns)."""
        return pd.read_parquet(self.voxpop_dir / DATA_FILE)

    @cached_property
    def split(self) -> Split:
        return Split.from_json(json.loads((self.voxpop_dir / SPLIT_FILE).read_text()))

    @property
    def feature_cols(self) -> list[str]:
        return feature_columns(self.data)

    def rows(self, part: str) -> pd.DataFrame:
        """The data rows of one split part ("train", "val", "test") in split order."""
        positions = np.asarray(getattr(self.split, part), dtype=np.int64)
        rows = self.data.iloc[positions]
        if not (rows["split"] == part).all():
            raise VoxpopError(
                f"{self.voxpop_dir}: {SPLIT_FILE} and {DATA_FILE} disagree on the {part} rows"
            )
        return rows

    def encode(self, rows: pd.DataFrame) -> dict[str, np.ndarray]:
        """Model inputs for `rows`, by the run's own preprocessor."""
        return self.preprocessor.encode(rows["text"].tolist(), features=row_features(rows))

    @cached_property
    def y_val(self) -> np.ndarray:
        return self.preprocessor.encode_labels(self.rows("val")["label"].astype(str).to_numpy())

    @property
    def sentence_encoder_path(self) -> Path | None:
        """The run's pooled sentence encoder (ONNX), or None when it has none."""
        path = self.voxpop_dir / SENTENCE_ENCODER_FILE
        return path if path.is_file() else None

    def copy_preprocess(self, target: Path) -> None:
        """Copy the run's preprocess.json, byte for byte, to `target` (a bundle's)."""
        Path(target).write_bytes(self.preprocess_path.read_bytes())


def read_run(run_dir: str | Path) -> Run:
    """The run at `run_dir`; a VoxpopError names what is missing."""
    path = Path(run_dir)
    if not path.is_dir():
        raise VoxpopError(f"{path}: run directory not found")
    for name in PREPARED_FILES:
        if not (path / VOXPOP_DIR / name).is_file():
            raise VoxpopError(
                f"{path}: {VOXPOP_DIR}/{name} missing (not a run written by `voxpop tune`?)"
            )
    checkpoints = [read_checkpoint(p) for p in checkpoint_paths(path)]
    if not checkpoints:
        raise VoxpopError(
            f"{path}: no checkpoints found (*/{CHECKPOINT_PREFIX}*/{METRICS_FILE})"
        )
    return Run(path=path, checkpoints=checkpoints)


def log_path(run_dir: str | Path) -> Path:
    """The run's log file (see LOG_FILE)."""
    return Path(run_dir) / LOG_FILE


def checkpoint_paths(run_dir: Path) -> list[Path]:
    """Every reported checkpoint directory of the run's trials, sorted."""
    pattern = f"*/{CHECKPOINT_PREFIX}*/{METRICS_FILE}"
    return [metrics.parent for metrics in sorted(Path(run_dir).glob(pattern))]


def read_checkpoint(path: str | Path) -> Checkpoint:
    """The checkpoint in directory `path`; a VoxpopError names a missing or unreadable file."""
    path = Path(path)
    missing = [name for name in CHECKPOINT_FILES if not (path / name).is_file()]
    if missing:
        raise VoxpopError(f"{path}: checkpoint lacks {', '.join(missing)}")
    return Checkpoint(path=path, metrics=read_metrics(path))


def read_metrics(path: str | Path) -> dict:
    """metrics.json of the checkpoint in directory `path` (while Ray may still be copying its
    other files)."""
    try:
        return json.loads((Path(path) / METRICS_FILE).read_text())
    except json.JSONDecodeError as err:
        raise VoxpopError(f"{Path(path) / METRICS_FILE}: not valid JSON ({err})") from None


def read_trial_data(run_dir: Path) -> TrialData:
    """The trial data of a prepared run (to resume it): its preprocessor and arrays."""
    prepared = Path(run_dir) / VOXPOP_DIR
    if not (prepared / ARRAYS_FILE).is_file():
        raise VoxpopError(f"{prepared}: no {ARRAYS_FILE}; is this a voxpop tuning run directory?")
    return TrialData._of(Preprocessor.from_json(prepared / PREPROCESS_FILE), read_arrays(run_dir))


def read_arrays(run_dir: Path) -> dict[str, np.ndarray]:
    """arrays.npz of a prepared run, by name (see `TrialData.arrays`)."""
    with np.load(Path(run_dir) / VOXPOP_DIR / ARRAYS_FILE, allow_pickle=False) as stored:
        return {key: stored[key] for key in stored.files}


def read_job(run_dir: Path) -> dict:
    """job.json of a run: the command, its options, the package versions."""
    path = Path(run_dir) / VOXPOP_DIR / JOB_FILE
    if not path.is_file():
        raise VoxpopError(f"{path} not found; is {run_dir} a voxpop tuning run?")
    return json.loads(path.read_text())


# --------------------------------------------------------------------------- fixtures
def write_fixture_run(run_dir: Path, *, texts, labels, split: Split,
                      preprocessor: Preprocessor) -> TrialData:
    """The prepared part of a run as `voxpop tune` writes it, without Ray, for tests and bench
    scripts: `preprocessor` (unfitted) is fitted on the training rows of `split`; add the
    checkpoints with `add_checkpoint`. Returns the trial data to train models on."""
    labels = np.asarray(labels, dtype=object)
    splits = np.empty(len(labels), dtype=object)
    for name in SPLITS:
        splits[getattr(split, name)] = name
    rows = data_rows(ids=np.arange(len(labels)).astype(str), texts=list(texts), labels=labels,
                     splits=splits)
    train = rows.iloc[split.train]
    preprocessor.fit(train["text"].tolist(), train["label"].to_numpy())
    data = TrialData.encode(preprocessor, rows)
    Path(run_dir).mkdir(parents=True, exist_ok=True)
    write_prepared(run_dir, preprocessor=preprocessor, rows=rows, data=data,
                   job={"command": "written without Ray (a test or bench fixture)"})
    return data


def add_checkpoint(run_dir: Path, *, trial_id: str, index: int, metrics: dict,
                   val_probs: np.ndarray, model=None) -> Checkpoint:
    """Write a checkpoint where Ray Tune puts trial `trial_id`'s `index`-th one (a fixture; see
    `write_checkpoint` for `model`)."""
    path = Path(run_dir) / trial_id / f"{CHECKPOINT_PREFIX}{index:06d}"
    path.mkdir(parents=True)
    record = {"trial_id": trial_id, **metrics}
    write_checkpoint(path, metrics=record, val_probs=val_probs, model=model)
    return Checkpoint(path=path, metrics=record)
