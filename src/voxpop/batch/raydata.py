"""`voxpop predict --address`: the local command's prediction, spread over a Ray cluster with
Ray Data.

The driver lists the input files (a file, a folder's table files or a glob, sorted by name). A
Ray Data read stage gives each file to a task that reads it in chunks with voxpop's own reader
(`voxpop.data.iter_table_chunks`), so rows, checks and error messages are the local command's;
a pool of `workers` predictor actors, each holding the bundle's ONNX Runtime sessions on one
core, encodes and predicts the chunks. Ray Data keeps the input order (`preserve_order`), and the
driver receives each chunk's prediction frame in turn for the local command's writers.

Why not Ray's own `read_csv`/`read_parquet`: pyarrow's CSV reader infers types (an id `007`
becomes 7) and parses quoting differently from the local command, whose rows this one must match
row for row.

Every node reads the bundle and the input files at the paths given: with a cluster of several
machines they must be on storage every node sees.
"""

from __future__ import annotations

import glob
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from voxpop.data.errors import VoxpopError
from voxpop.data.options import FORMATS_BY_SUFFIX

# Columns of the frames between the read stage and the predictors (not the output's).
_TEXT, _ID, _REPLACED = "__text", "__id", "__replaced_bytes"
_FEATURE = "__feature_{}"
# Columns the predictors add for the driver's warnings, dropped before writing.
_EMPTY = "__empty_text"
SHARED_NOTE = "BUNDLE and INPUT must be at the same path on every node (a shared folder)"


@dataclass(frozen=True)
class ReadSpec:
    """How each input file is read (the local command's options)."""

    text_col: str
    id_col: str | None
    feature_cols: tuple[str, ...]
    format: str | None
    chunk_rows: int


@dataclass(frozen=True)
class PredictSpec:
    """How each chunk is predicted and which columns its frame gets."""

    bundle: str
    trust: str | None
    fused: bool
    vote_options: dict
    columns: object  # voxpop.ensemble.stream.OutputColumns


def input_files(input: str) -> list[Path]:
    """The files INPUT names: a table file, a folder's table files (by extension), or a glob;
    sorted by name. None found is a VoxpopError."""
    path = Path(input)
    if path.is_dir():
        files = [p for p in path.iterdir() if p.is_file() and p.suffix.lower() in FORMATS_BY_SUFFIX]
    elif path.is_file():
        files = [path]
    else:
        files = [Path(p) for p in glob.glob(input) if Path(p).is_file()]
    if not files:
        what = "holds no table files (" + ", ".join(FORMATS_BY_SUFFIX) + ")" if path.is_dir() \
            else "file not found (nor files matching it as a glob)"
        raise VoxpopError(f"{input}: {what}")
    return sorted(file.resolve() for file in files)


def predict_frames(files: list[Path], *, read: ReadSpec, predict: PredictSpec, workers: int,
                   found: dict) -> Iterator[pd.DataFrame]:
    """Each chunk's prediction frame, in input order (the files in turn), computed by `workers`
    predictor actors on the Ray that this process has joined. `found` sums the chunks'
    `replaced_bytes` and `empty_texts` as they arrive."""
    import ray.data

    context = ray.data.DataContext.get_current()
    context.execution_options.preserve_order = True
    context.enable_progress_bars = False
    listing = ray.data.from_items([{"path": str(file)} for file in files],
                                  override_num_blocks=len(files))
    # The reads take no core of their own: the predictors hold one each, and a read that waited
    # for a free core would never start.
    chunks = listing.map_batches(_read_file, batch_size=1, batch_format="pandas", num_cpus=0,
                                 fn_kwargs={"read": read})
    frames = chunks.map_batches(_Predictor, batch_size=read.chunk_rows, batch_format="pandas",
                                concurrency=workers, num_cpus=1,
                                fn_constructor_kwargs={"predict": predict})
    # A failed task's traceback is logged by Ray Data before its exception reaches this loop,
    # which raises it (a VoxpopError as one line): the log would only repeat it.
    logging.getLogger("ray.data").setLevel(logging.CRITICAL)
    try:
        # Arrow to pandas here, not Ray's pandas batches (Arrow-backed columns): the frames are
        # then the local command's, dtypes included, for the same writers.
        for batch in frames.iter_batches(batch_size=None, batch_format="pyarrow"):
            frame = batch.to_pandas()
            found["replaced_bytes"] += int(frame.pop(_REPLACED).sum())
            found["empty_texts"] += int(frame.pop(_EMPTY).sum())
            yield frame
    except Exception as err:  # a worker's VoxpopError arrives wrapped in Ray's exceptions
        cause = _voxpop_cause(err)
        if cause is None:
            raise
        raise VoxpopError(str(cause)) from None


def _read_file(batch: pd.DataFrame, *, read: ReadSpec) -> Iterator[pd.DataFrame]:
    """The chunks of one file (a batch of one path) as frames of text, id, features and the
    bytes reading replaced."""
    from voxpop.data import iter_table_chunks

    for path in batch["path"]:
        for table in iter_table_chunks(path, chunk_rows=read.chunk_rows, text_col=read.text_col,
                                       id_col=read.id_col, feature_cols=read.feature_cols,
                                       format=read.format):
            columns = {_TEXT: table.texts, _ID: table.ids.astype(str)}
            if table.features is not None:
                columns.update({_FEATURE.format(i): table.features[:, i]
                                for i in range(table.features.shape[1])})
            replaced = np.zeros(len(table), dtype=np.int64)
            replaced[0] = table.report.n_replaced_bytes
            columns[_REPLACED] = replaced
            yield pd.DataFrame(columns)


class _Predictor:
    """One Ray Data actor: the bundle loaded once (one core, no pipelining), then a prediction
    frame per batch of read rows."""

    def __init__(self, *, predict: PredictSpec):
        from voxpop.ensemble import Ensemble

        self.spec = predict
        self.ensemble = Ensemble.load(predict.bundle, device="cpu", threads=1,
                                      fused=predict.fused, trust=predict.trust)

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        from voxpop.ensemble.stream import prediction_frame

        texts = batch[_TEXT].tolist()
        feature_names = [name for name in batch.columns if name.startswith("__feature_")]
        features = (batch[feature_names].to_numpy(dtype=np.float32) if feature_names else None)
        members = self.spec.vote_options.get("members")
        inputs = self.ensemble.encode(texts, features, members=members)
        prediction = self.ensemble.predict_encoded(inputs, **self.spec.vote_options)
        frame = prediction_frame(prediction, labels=self.ensemble.labels, texts=texts,
                                 ids=batch[_ID].to_numpy(dtype=object), columns=self.spec.columns)
        frame[_REPLACED] = batch[_REPLACED].to_numpy()
        frame[_EMPTY] = np.fromiter((not text for text in texts), dtype=bool, count=len(texts))
        return frame


def _voxpop_cause(err: BaseException) -> VoxpopError | None:
    """The VoxpopError a Ray task raised, through Ray's wrappers (RayTaskError's `cause`,
    UserCodeException's chain)."""
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        inner = getattr(err, "cause", None)  # RayTaskError(VoxpopError) is a VoxpopError too
        if inner is None and isinstance(err, VoxpopError):
            return err
        err = inner or err.__cause__ or err.__context__
    return None
