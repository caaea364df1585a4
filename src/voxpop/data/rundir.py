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
    RUN/voxpop/embeddings.json        with pretrained word vectors (--embeddings, space key
    RUN/voxpop/embeddings_N.npy       `embeddings`): each source's coverage, and its vectors
                                      matched to the vocabulary (float32 [n_tokens, dim])
    RUN/TRIAL/checkpoint_N/           each reported checkpoint: model.keras, metrics.json and
                                      val_probs.npy (validation probabilities in split order)

With k-fold bagging (`voxpop tune --folds K`), the "out-of-fold rows" are every train row, then
every val row, each in split order; each sampled configuration (`config_id`, e.g. `c003`) is
trained as K trials, fold F's on the out-of-fold rows outside fold F, scored (and stopped early)
on those inside it, whose probabilities are its checkpoints' val_probs.npy (in out-of-fold row
order); its metrics.json holds `config_id`, `fold` and `folds`. After tuning:

    RUN/voxpop/folds.parquet          the out-of-fold rows, in order: row (position in
                                      data.parquet), id, label, fold (0..K-1, stratified, seeded)
    RUN/voxpop/bags.json              {"folds": K, "rows": n, "labels": [...], "bags": [{config_id,
                                      space, family, config, oof: "oof/ID.npy", checkpoints:
                                      [each fold's best checkpoint by val macro-F1, relative to
                                      RUN, in fold order]}], "incomplete": [config ids lacking a
                                      fold's checkpoint]}
    RUN/voxpop/oof/CONFIG_ID.npy      float32 [n, classes]: each row's probabilities by the fold
                                      model that did not train on it (out-of-fold rows' order)

A bagged member is the mean of its K fold models' probabilities; `Run.bags` and
`Run.out_of_fold(config_id)` read them, `Run.y_oof` holds the out-of-fold rows' class ids.

This is the only module that names those files or reads and writes them: the tuner writes through
`write_prepared` and `write_checkpoint`, export reads through `read_run`, and tests and bench
scripts build runs without Ray through `write_fixture_run` and `add_checkpoint`. It imports neither
Keras nor Ray: a model is saved through its own `.save(path)`, and whoever loads one gets its path
(`Checkpoint.model_path`).

RUN may be a local folder or on a pyarrow file system (`--storage s3://bucket/runs`, for clusters;
`voxpop.data.storage`). There `write_prepared` uploads `RUN/voxpop/` file by file, preprocess.json
last (every reader needs it, so a run whose upload broke off reads as unprepared), and `read_run`
copies what export reads into a local temporary folder: the prepared files and each checkpoint's
metrics and validation probabilities, and a checkpoint's model when it is first asked for.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import tempfile
import weakref
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd

from voxpop.data.atomic import atomic_path, write_json
from voxpop.data.errors import VoxpopError
from voxpop.data.options import METRICS
from voxpop.data.preprocess import Preprocessor
from voxpop.data.sentence import EMBEDDING_INPUT, TOKEN_INPUTS
from voxpop.data.split import Split, fold_ids
from voxpop.data.storage import Location, locate
from voxpop.data.vectors import MatchedVectors

VOXPOP_DIR = "voxpop"
PREPROCESS_FILE = "preprocess.json"
SPLIT_FILE = "split.json"
DATA_FILE = "data.parquet"
ARRAYS_FILE = "arrays.npz"
JOB_FILE = "job.json"
EMBEDDINGS_FILE = "embeddings.json"
EMBEDDINGS_MATRIX = "embeddings_{}.npy"  # one per source, numbered in embeddings.json's order
MODEL_FILE = "model.keras"
METRICS_FILE = "metrics.json"
VAL_PROBS_FILE = "val_probs.npy"
FOLDS_FILE = "folds.parquet"
BAGS_FILE = "bags.json"
OOF_DIR = "oof"
LOG_FILE = "tune.log"  # RUN/tune.log: Ray's and the trials' own output (TensorFlow, Keras)
SENTENCE_ENCODER_FILE = "sentence_encoder.onnx"
# Ray Tune's name for a trial's reported checkpoints: RUN/TRIAL/checkpoint_000000, ...
CHECKPOINT_PREFIX = "checkpoint_"
FILE_NAMES = (
    PREPROCESS_FILE,
    SPLIT_FILE,
    DATA_FILE,
    ARRAYS_FILE,
    JOB_FILE,
    EMBEDDINGS_FILE,
    MODEL_FILE,
    METRICS_FILE,
    VAL_PROBS_FILE,
    FOLDS_FILE,
    BAGS_FILE,
    LOG_FILE,
    SENTENCE_ENCODER_FILE,
)
PREPARED_FILES = (PREPROCESS_FILE, SPLIT_FILE, DATA_FILE)  # what export reads of RUN/voxpop/
PREPARED_UPLOAD_ORDER = (JOB_FILE, ARRAYS_FILE, DATA_FILE, SPLIT_FILE, PREPROCESS_FILE)
CHECKPOINT_FILES = (METRICS_FILE, MODEL_FILE, VAL_PROBS_FILE)

DATA_COLUMNS = ("id", "text", "label", "split")  # then the user's feature columns
SPLITS = ("train", "val", "test")
TRAINED_SPLITS = ("train", "val")  # encoded into arrays.npz; test rows never reach a trial
# METRICS (from `options`): metric name -> +1 when higher is better, -1 when lower is better


# --------------------------------------------------------------------------- the rows
def data_rows(
    *,
    ids,
    texts,
    labels,
    splits,
    features: np.ndarray | None = None,
    feature_cols: tuple[str, ...] = (),
) -> pd.DataFrame:
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


def _stack_rows(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Rows of two encoded parts one after the other. An n-gram input is as wide as its part's
    longest row (`grams`, `gram_weights`), so the narrower part is padded with zeros, the
    padding of every input voxpop encodes."""
    if first.ndim == 2 and first.shape[1] != second.shape[1]:
        width = max(first.shape[1], second.shape[1])
        first, second = (
            np.pad(part, ((0, 0), (0, width - part.shape[1]))) for part in (first, second)
        )
    return np.concatenate([first, second])


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
    # Pretrained word vectors matched to the vocabulary once, by source (the `embeddings` key's
    # canonical value: a name or an absolute path); a trial starts its embedding from one.
    vectors: dict[str, MatchedVectors] = field(default_factory=dict)
    sentence_dim: int = 0  # width of the `sentence_embedding` input; 0 without a sentence encoder
    # k-fold bagging: the fold of each out-of-fold row (train rows, then val rows); None: no bag
    folds: np.ndarray | None = None

    @property
    def n_folds(self) -> int:
        return 0 if self.folds is None else int(self.folds.max()) + 1

    def for_fold(self, fold: int | None) -> tuple[dict, np.ndarray, dict, np.ndarray]:
        """`(train inputs, y_train, val inputs, y_val)` of a trial: the train and val splits, or
        for fold `fold` of a bagged run the out-of-fold rows outside the fold and inside it."""
        if fold is None:
            return self.train, self.y_train, self.val, self.y_val
        if not 0 <= fold < self.n_folds:
            raise ValueError(f"fold {fold} is not one of this run's {self.n_folds} folds")
        pooled = {key: _stack_rows(self.train[key], self.val[key]) for key in self.train}
        y_pooled = np.concatenate([self.y_train, self.y_val])
        inside = self.folds == fold
        return (
            {key: array[~inside] for key, array in pooled.items()},
            y_pooled[~inside],
            {key: array[inside] for key, array in pooled.items()},
            y_pooled[inside],
        )

    def rows_per_epoch(self, *, bagged: bool) -> int:
        """Training rows of one epoch of a trial (of the smallest fold's trial, when bagged)."""
        if not bagged:
            return len(self.y_train)
        return len(self.folds) - int(np.bincount(self.folds).max())

    @classmethod
    def encode(
        cls,
        preprocessor: Preprocessor,
        rows: pd.DataFrame,
        *,
        folds: int = 0,
        seed: int = 42,
        embed=None,
    ) -> TrialData:
        """Encode the train and val rows of `rows` (the data.parquet form) with `preprocessor`;
        with `folds` (k-fold bagging) assign the out-of-fold rows to stratified folds.

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
            encoded = preprocessor.encode(
                texts, None if features is None else features[part], inputs=inputs
            )
            if embed is not None:
                encoded[EMBEDDING_INPUT] = np.asarray(embed(texts), dtype=np.float32)
            arrays.update({f"{name}_{key}": array for key, array in encoded.items()})
            arrays[f"y_{name}"] = preprocessor.encode_labels(rows["label"][part].to_numpy())
        assigned = None
        if folds:
            pooled = np.concatenate([arrays["y_train"], arrays["y_val"]])
            assigned = fold_ids(np.asarray(preprocessor.labels)[pooled], folds=folds, seed=seed)
        return cls._of(preprocessor, arrays, folds=assigned)

    @classmethod
    def _of(
        cls,
        preprocessor: Preprocessor,
        arrays: dict[str, np.ndarray],
        vectors: dict[str, MatchedVectors] | None = None,
        *,
        folds: np.ndarray | None = None,
    ) -> TrialData:
        names = _trained_inputs(preprocessor)
        if f"train_{EMBEDDING_INPUT}" in arrays:
            names.append(EMBEDDING_INPUT)
        inputs = {name: {key: arrays[f"{name}_{key}"] for key in names} for name in TRAINED_SPLITS}
        return cls(
            train=inputs["train"],
            val=inputs["val"],
            y_train=arrays["y_train"],
            y_val=arrays["y_val"],
            labels=list(preprocessor.labels),
            n_tokens=int(preprocessor.n_tokens),
            n_features=int(preprocessor.n_features),
            n_buckets=int(preprocessor.n_buckets),
            vectors=vectors or {},
            folds=folds,
            sentence_dim=int(inputs["train"][EMBEDDING_INPUT].shape[1])
            if EMBEDDING_INPUT in inputs["train"]
            else 0,
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
def new_run_dir(run_dir: str | Path | Location) -> Iterator[Location]:
    """Create the directory of a new run; if what runs inside fails before anything is written
    into it, remove it again, so that the same name can be used once the cause is fixed."""
    location = locate(run_dir)
    if location.local is None:
        location.make_dirs()
    else:
        location.local.mkdir(parents=True)
    try:
        yield location
    except BaseException:
        if location.local is None:
            location.remove_tree()
        else:
            location.local.rmdir()
        raise


def write_prepared(
    run_dir: str | Path | Location,
    *,
    preprocessor: Preprocessor,
    rows: pd.DataFrame,
    data: TrialData,
    job: dict,
    sentence_encoder: bytes | None = None,
) -> None:
    """Write `RUN/voxpop/`: locally atomically (it appears complete or not at all); on a remote
    file system file by file, preprocess.json last. `sentence_encoder`: the serialized ONNX graph
    that made the rows' sentence embeddings."""
    location = locate(run_dir)
    if location.local is not None:
        with atomic_path(location.local / VOXPOP_DIR) as tmp:
            tmp.mkdir(parents=True)
            _write_prepared_files(
                tmp,
                preprocessor=preprocessor,
                rows=rows,
                data=data,
                job=job,
                sentence_encoder=sentence_encoder,
            )
        return
    with tempfile.TemporaryDirectory(prefix="voxpop-prepared-") as tmp:
        written = _write_prepared_files(
            Path(tmp),
            preprocessor=preprocessor,
            rows=rows,
            data=data,
            job=job,
            sentence_encoder=sentence_encoder,
        )
        for name in [*written, *PREPARED_UPLOAD_ORDER]:
            location.child(VOXPOP_DIR, name).upload(Path(tmp) / name)


def _write_prepared_files(
    folder: Path,
    *,
    preprocessor: Preprocessor,
    rows: pd.DataFrame,
    data: TrialData,
    job: dict,
    sentence_encoder: bytes | None = None,
) -> list[str]:
    """Write the prepared files into `folder`; returns the names of the optional ones (the
    folds of a bagged run, the vectors, the sentence encoder), which an upload sends before
    PREPARED_UPLOAD_ORDER's."""
    optional = []
    if sentence_encoder is not None:
        (folder / SENTENCE_ENCODER_FILE).write_bytes(sentence_encoder)
        optional.append(SENTENCE_ENCODER_FILE)
    preprocessor.to_json(folder / PREPROCESS_FILE)
    write_json(folder / SPLIT_FILE, _split_json(rows))
    rows.to_parquet(folder / DATA_FILE, index=False)
    np.savez(folder / ARRAYS_FILE, **data.arrays())
    write_json(folder / JOB_FILE, job)
    if data.folds is not None:
        _fold_rows(rows, data.folds).to_parquet(folder / FOLDS_FILE, index=False)
        optional.append(FOLDS_FILE)
    return optional + (_write_vectors(folder, data.vectors) if data.vectors else [])


def _write_vectors(folder: Path, vectors: dict[str, MatchedVectors]) -> list[str]:
    records = []
    for number, matched in enumerate(vectors.values()):
        name = EMBEDDINGS_MATRIX.format(number)
        np.save(folder / name, matched.matrix, allow_pickle=False)
        records.append({"file": name, **matched.record()})
    write_json(folder / EMBEDDINGS_FILE, {"embeddings": records})
    return [record["file"] for record in records] + [EMBEDDINGS_FILE]


def _fold_rows(rows: pd.DataFrame, folds: np.ndarray) -> pd.DataFrame:
    """folds.parquet: the out-of-fold rows (train, then val, in split order) and their folds."""
    positions = np.concatenate(
        [np.flatnonzero(rows["split"].to_numpy() == name) for name in TRAINED_SPLITS]
    )
    return pd.DataFrame(
        {
            "row": positions,
            "id": rows["id"].to_numpy()[positions].astype(str),
            "label": rows["label"].to_numpy()[positions].astype(str),
            "fold": folds.astype(np.int8),
        }
    )


def _split_json(rows: pd.DataFrame) -> dict:
    """Row positions into data.parquet per split, and the same rows' ids."""
    positions = {name: np.flatnonzero(rows["split"].to_numpy() == name) for name in SPLITS}
    return {
        **{name: part.tolist() for name, part in positions.items()},
        "ids": {
            name: rows["id"].to_numpy()[part].astype(str).tolist()
            for name, part in positions.items()
        },
    }


def write_checkpoint(directory: Path, *, metrics: dict, val_probs: np.ndarray, model=None) -> None:
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

    path: Path  # a local folder (of a remote run: a local copy, see `remote`)
    metrics: dict
    remote: Location | None = None  # where the checkpoint is, when its run is on remote storage

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
        """The saved Keras model as a local file (load it with `voxpop.models.load_model`); of a
        run on remote storage, copied into the local copy when first asked for."""
        path = self.path / MODEL_FILE
        if self.remote is not None and not path.is_file():
            self.remote.child(MODEL_FILE).download(path)
        return path

    def score(self, metric: str) -> float:
        """The metric signed so that higher is better."""
        return METRICS[metric] * float(self.metrics[metric])

    def val_probs(self) -> np.ndarray:
        return np.load(self.path / VAL_PROBS_FILE, allow_pickle=False)


@dataclass(frozen=True)
class Bag:
    """One sampled configuration of a bagged run (`--folds K`): its K fold models' checkpoints
    (each fold's best by val macro-F1, in fold order) and its out-of-fold probabilities."""

    config_id: str
    space: str
    family: str
    config: dict
    checkpoints: list[Checkpoint]
    oof_path: Path

    def out_of_fold(self) -> np.ndarray:
        """float32 [out-of-fold rows, classes], in folds.parquet's row order."""
        return np.load(self.oof_path, allow_pickle=False)


@dataclass(frozen=True)
class Run:
    """A tuning run directory: its checkpoints and the data its trials were trained on."""

    path: Path  # a local folder (of a run on remote storage: a temporary local copy)
    checkpoints: list[Checkpoint]
    source: str  # where the run is: an absolute local path or a URI (s3://bucket/runs/NAME)

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

    @property
    def bagged(self) -> bool:
        """Tuned with --folds: its trials are fold models of bags (see `bags`)."""
        return (self.voxpop_dir / FOLDS_FILE).is_file()

    @cached_property
    def fold_rows(self) -> pd.DataFrame:
        """The out-of-fold rows of a bagged run, in order: row, id, label, fold."""
        if not self.bagged:
            raise VoxpopError(f"{self.path}: not a bagged run (tune it with --folds K)")
        return pd.read_parquet(self.voxpop_dir / FOLDS_FILE)

    @cached_property
    def y_oof(self) -> np.ndarray:
        """Class ids of the out-of-fold rows (the labels `out_of_fold` is scored against)."""
        return self.preprocessor.encode_labels(self.fold_rows["label"].astype(str).to_numpy())

    @cached_property
    def bags(self) -> list[Bag]:
        """The configurations whose every fold has a checkpoint, by config id (bags.json)."""
        path = self.voxpop_dir / BAGS_FILE
        if not path.is_file():
            raise VoxpopError(
                f"{self.path}: no {VOXPOP_DIR}/{BAGS_FILE} (not a bagged run, or "
                "its tuning did not finish: `voxpop tune --resume` writes it)"
            )
        index = json.loads(path.read_text())
        return [
            Bag(
                config_id=bag["config_id"],
                space=bag["space"],
                family=bag["family"],
                config=bag["config"],
                oof_path=self.voxpop_dir / bag["oof"],
                checkpoints=[read_checkpoint(self.path / c) for c in bag["checkpoints"]],
            )
            for bag in index["bags"]
        ]

    def bag(self, config_id: str) -> Bag:
        for bag in self.bags:
            if bag.config_id == config_id:
                return bag
        raise VoxpopError(
            f"{self.path}: no complete bag {config_id!r} (bags: "
            f"{', '.join(b.config_id for b in self.bags) or 'none'})"
        )

    def out_of_fold(self, config_id: str) -> np.ndarray:
        """Configuration `config_id`'s out-of-fold probabilities: float32 [rows, classes], each
        row by the fold model that did not train on it, in `fold_rows` order."""
        return self.bag(config_id).out_of_fold()

    def copy_preprocess(self, target: Path) -> None:
        """Copy the run's preprocess.json, byte for byte, to `target` (a bundle's)."""
        Path(target).write_bytes(self.preprocess_path.read_bytes())


def read_run(run_dir: str | Path | Location) -> Run:
    """The run at `run_dir` (a local path or a URI); a VoxpopError names what is missing."""
    location = locate(run_dir)
    if location.local is None:
        return _read_remote_run(location)
    path = Path(run_dir) if isinstance(run_dir, str | Path) else location.local
    if not path.is_dir():
        raise VoxpopError(f"{path}: run directory not found")
    for name in PREPARED_FILES:
        if not (path / VOXPOP_DIR / name).is_file():
            raise _unprepared(path, name)
    checkpoints = [read_checkpoint(p) for p in checkpoint_paths(path)]
    if not checkpoints:
        raise _no_checkpoints(path)
    return Run(path=path, checkpoints=checkpoints, source=str(path.resolve()))


def _read_remote_run(location: Location) -> Run:
    """A run on remote storage, read through a local copy of what export reads (model files
    follow on demand, `Checkpoint.model_path`); the copy is removed with the Run."""
    if not location.is_dir():
        raise VoxpopError(f"{location}: run directory not found")
    files = set(location.files())
    for name in PREPARED_FILES:
        if f"{VOXPOP_DIR}/{name}" not in files:
            raise _unprepared(location, name)
    directories = _checkpoint_dirs(files)
    if not directories:
        raise _no_checkpoints(location)
    cache = Path(tempfile.mkdtemp(prefix="voxpop-run-"))
    try:
        for name in PREPARED_FILES:
            location.child(VOXPOP_DIR, name).download(cache / VOXPOP_DIR / name)
        if f"{VOXPOP_DIR}/{SENTENCE_ENCODER_FILE}" in files:  # export composes it with each head
            location.child(VOXPOP_DIR, SENTENCE_ENCODER_FILE).download(
                cache / VOXPOP_DIR / SENTENCE_ENCODER_FILE
            )
        checkpoints = []
        for directory in directories:
            remote = location.child(directory)
            missing = [name for name in CHECKPOINT_FILES if f"{directory}/{name}" not in files]
            if missing:
                raise VoxpopError(f"{remote}: checkpoint lacks {', '.join(missing)}")
            for name in (METRICS_FILE, VAL_PROBS_FILE):
                remote.child(name).download(cache / directory / name)
            checkpoints.append(
                Checkpoint(
                    path=cache / directory, metrics=read_metrics(cache / directory), remote=remote
                )
            )
    except BaseException:
        shutil.rmtree(cache, ignore_errors=True)
        raise
    run = Run(path=cache, checkpoints=checkpoints, source=location.uri)
    weakref.finalize(run, shutil.rmtree, cache, ignore_errors=True)
    return run


def _unprepared(where, name: str) -> VoxpopError:
    return VoxpopError(
        f"{where}: {VOXPOP_DIR}/{name} missing (not a run written by `voxpop tune`?)"
    )


def _no_checkpoints(where) -> VoxpopError:
    return VoxpopError(f"{where}: no checkpoints found (*/{CHECKPOINT_PREFIX}*/{METRICS_FILE})")


def log_path(run_dir: str | Path | Location) -> Path:
    """The run's log file (see LOG_FILE), a file on this machine: trial processes append to it.
    A remote run's is kept in the temporary folder, under the run's name and a hash of its URI,
    until `upload_log` copies it into the run."""
    location = locate(run_dir)
    if location.local is not None:
        return location.local / LOG_FILE
    digest = hashlib.sha256(location.uri.encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / "voxpop-logs" / f"{location.name}-{digest}" / LOG_FILE


def upload_log(run_dir: str | Path | Location) -> None:
    """Copy a remote run's log file (`log_path`) to RUN/tune.log; a local run's is there already,
    and a run that was removed (nothing to resume) gets none."""
    location = locate(run_dir)
    local_log = log_path(location)
    if location.local is None and local_log.is_file() and location.is_dir():
        location.child(LOG_FILE).upload(local_log)


def checkpoint_paths(run_dir: Path) -> list[Path]:
    """Every reported checkpoint directory of the local run's trials, sorted."""
    pattern = f"*/{CHECKPOINT_PREFIX}*/{METRICS_FILE}"
    return [metrics.parent for metrics in sorted(Path(run_dir).glob(pattern))]


def _checkpoint_dirs(files: set[str]) -> list[str]:
    """`TRIAL/checkpoint_N` of every checkpoint among a run's files (paths relative to it)."""
    parts = (PurePosixPath(name).parts for name in files)
    return sorted(
        f"{trial}/{checkpoint}"
        for trial, checkpoint, name in (p for p in parts if len(p) == 3)
        if checkpoint.startswith(CHECKPOINT_PREFIX) and name == METRICS_FILE
    )


def run_exists(run_dir: str | Path | Location) -> bool:
    return locate(run_dir).exists()


def remove_if_no_checkpoints(run_dir: str | Path | Location) -> bool:
    """Remove a run directory in which no trial left a checkpoint (a run that failed to start,
    or whose every trial failed), so that its name can be used again; True when removed."""
    location = locate(run_dir)
    if location.local is not None:
        if checkpoint_paths(location.local):
            return False
        shutil.rmtree(location.local, ignore_errors=True)
        return True
    if _checkpoint_dirs(set(location.files())):
        return False
    location.remove_tree()
    return True


def read_checkpoint(path: str | Path) -> Checkpoint:
    """The checkpoint in local directory `path`; a VoxpopError names a missing or unreadable
    file."""
    path = Path(path)
    missing = [name for name in CHECKPOINT_FILES if not (path / name).is_file()]
    if missing:
        raise VoxpopError(f"{path}: checkpoint lacks {', '.join(missing)}")
    return Checkpoint(path=path, metrics=read_metrics(path))


def read_metrics(path: str | Path) -> dict:
    """metrics.json of the checkpoint in local directory `path` (while Ray may still be copying
    its other files)."""
    try:
        return json.loads((Path(path) / METRICS_FILE).read_text())
    except json.JSONDecodeError as err:
        raise VoxpopError(f"{Path(path) / METRICS_FILE}: not valid JSON ({err})") from None


def read_trial_data(run_dir: str | Path | Location) -> TrialData:
    """The trial data of a prepared run (to resume it): its preprocessor and arrays."""
    prepared = locate(run_dir).child(VOXPOP_DIR)
    if not prepared.child(ARRAYS_FILE).is_file():
        raise VoxpopError(f"{prepared}: no {ARRAYS_FILE}; is this a voxpop tuning run directory?")
    preprocess = prepared.child(PREPROCESS_FILE)
    preprocessor = (
        Preprocessor.from_json(preprocess.local)
        if preprocess.local is not None
        else Preprocessor.from_json_bytes(preprocess.read_bytes(), source=str(preprocess))
    )
    vectors = read_vectors(run_dir)
    for matched in vectors.values():
        if matched.matrix.shape[0] != preprocessor.n_tokens:
            raise VoxpopError(
                f"{prepared}: the vectors of {matched.source} have "
                f"{matched.matrix.shape[0]} rows for {preprocessor.n_tokens} tokens"
            )
    folds = None
    if prepared.child(FOLDS_FILE).is_file():
        with prepared.child(FOLDS_FILE).open() as handle:
            folds = pd.read_parquet(handle)["fold"].to_numpy(np.int8)
    return TrialData._of(preprocessor, read_arrays(run_dir), vectors, folds=folds)


def write_bags(run_dir: Path) -> list[str]:
    """After a bagged run's trials: assemble each configuration's out-of-fold probabilities from
    its folds' best checkpoints into `oof/CONFIG_ID.npy` and index them in bags.json (replacing
    what an earlier, interrupted call wrote). Returns the complete bags' config ids."""
    run = read_run(run_dir)
    folds = run.fold_rows["fold"].to_numpy()
    n_folds = int(folds.max()) + 1
    best: dict[str, dict[int, Checkpoint]] = {}
    for checkpoint in run.checkpoints:
        if "config_id" not in checkpoint.metrics:
            continue
        fold_best = best.setdefault(checkpoint.metrics["config_id"], {})
        fold = int(checkpoint.metrics["fold"])
        if fold not in fold_best or checkpoint.score("val_macro_f1") > fold_best[fold].score(
            "val_macro_f1"
        ):
            fold_best[fold] = checkpoint
    complete = sorted(c for c, by_fold in best.items() if len(by_fold) == n_folds)
    bags = []
    oof_dir = run.voxpop_dir / OOF_DIR
    oof_dir.mkdir(exist_ok=True)
    for config_id in complete:
        by_fold = [best[config_id][fold] for fold in range(n_folds)]
        parts = [checkpoint.val_probs() for checkpoint in by_fold]
        oof = np.zeros((len(folds), parts[0].shape[1]), dtype=np.float32)
        for fold, probs in enumerate(parts):
            if len(probs) != int((folds == fold).sum()):
                raise VoxpopError(
                    f"{by_fold[fold].path}: {len(probs)} probability rows, but "
                    f"fold {fold} has {int((folds == fold).sum())} rows"
                )
            oof[folds == fold] = probs
        with atomic_path(oof_dir / f"{config_id}.npy") as tmp, open(tmp, "wb") as file:
            np.save(file, oof)  # a file object: np.save would add .npy to the temporary's name
        first = by_fold[0]
        bags.append(
            {
                "config_id": config_id,
                "space": first.metrics["space"],
                "family": first.family,
                "config": first.config,
                "oof": f"{OOF_DIR}/{config_id}.npy",
                "checkpoints": [str(c.path.relative_to(run.path)) for c in by_fold],
            }
        )
    write_json(
        run.voxpop_dir / BAGS_FILE,
        {
            "folds": n_folds,
            "rows": len(folds),
            "labels": list(run.preprocessor.labels),
            "bags": bags,
            "incomplete": sorted(set(best) - set(complete)),
        },
    )
    return complete


def read_vectors(run_dir: str | Path | Location) -> dict[str, MatchedVectors]:
    """The run's pretrained word vectors by source, as matched when it was prepared (none: {})."""
    prepared = locate(run_dir).child(VOXPOP_DIR)
    if not prepared.child(EMBEDDINGS_FILE).is_file():
        return {}
    records = json.loads(prepared.child(EMBEDDINGS_FILE).read_bytes())["embeddings"]
    vectors = {}
    for number, record in enumerate(records):
        with prepared.child(EMBEDDINGS_MATRIX.format(number)).open() as handle:
            vectors[record["source"]] = MatchedVectors.from_record(
                record, np.load(handle, allow_pickle=False)
            )
    return vectors


def read_arrays(run_dir: str | Path | Location) -> dict[str, np.ndarray]:
    """arrays.npz of a prepared run, by name (see `TrialData.arrays`)."""
    location = locate(run_dir).child(VOXPOP_DIR, ARRAYS_FILE)
    with location.open() as handle, np.load(handle, allow_pickle=False) as stored:
        return {key: stored[key] for key in stored.files}


def read_job(run_dir: str | Path | Location) -> dict:
    """job.json of a run: the command, its options, the package versions."""
    location = locate(run_dir).child(VOXPOP_DIR, JOB_FILE)
    if not location.is_file():
        raise VoxpopError(f"{location} not found; is {run_dir} a voxpop tuning run?")
    return json.loads(location.read_bytes())


# --------------------------------------------------------------------------- fixtures
def write_fixture_run(
    run_dir: Path, *, texts, labels, split: Split, preprocessor: Preprocessor, folds: int = 0
) -> TrialData:
    """The prepared part of a run as `voxpop tune` writes it, without Ray, for tests and bench
    scripts: `preprocessor` (unfitted) is fitted on the training rows of `split`; add the
    checkpoints with `add_checkpoint` (and with `folds`, a bagged run's, then `write_bags`).
    Returns the trial data to train models on."""
    labels = np.asarray(labels, dtype=object)
    splits = np.empty(len(labels), dtype=object)
    for name in SPLITS:
        splits[getattr(split, name)] = name
    rows = data_rows(
        ids=np.arange(len(labels)).astype(str), texts=list(texts), labels=labels, splits=splits
    )
    train = rows.iloc[split.train]
    preprocessor.fit(train["text"].tolist(), train["label"].to_numpy())
    data = TrialData.encode(preprocessor, rows, folds=folds)
    Path(run_dir).mkdir(parents=True, exist_ok=True)
    write_prepared(
        run_dir,
        preprocessor=preprocessor,
        rows=rows,
        data=data,
        job={"command": "written without Ray (a test or bench fixture)"},
    )
    return data


def add_checkpoint(
    run_dir: Path, *, trial_id: str, index: int, metrics: dict, val_probs: np.ndarray, model=None
) -> Checkpoint:
    """Write a checkpoint where Ray Tune puts trial `trial_id`'s `index`-th one (a fixture; see
    `write_checkpoint` for `model`)."""
    path = Path(run_dir) / trial_id / f"{CHECKPOINT_PREFIX}{index:06d}"
    path.mkdir(parents=True)
    record = {"trial_id": trial_id, **metrics}
    write_checkpoint(path, metrics=record, val_probs=val_probs, model=model)
    return Checkpoint(path=path, metrics=record)
