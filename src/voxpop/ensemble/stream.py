"""Predicting a table chunk by chunk: one output frame per input chunk, written as it comes.

Memory stays bounded by the chunk size whatever the file size: each chunk is encoded, predicted,
turned into rows and appended to the output file before the next chunk is read (with a pipelined
ensemble, the next chunk is read and encoded while this one is predicted: two chunks in flight).
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from voxpop.data.errors import VoxpopError
from voxpop.data.io import FORMATS_BY_SUFFIX
from voxpop.data.terminal import STDOUT, printable
from voxpop.ensemble.ensemble import Ensemble, Prediction


@dataclass(frozen=True)
class OutputColumns:
    """Which optional columns a prediction table gets."""

    with_ids: bool = False
    top_k: int = 0
    probs: bool = False
    per_member: bool = False


def prediction_frame(
    prediction: Prediction,
    *,
    labels: Sequence[str],
    texts: Sequence[str],
    ids: np.ndarray | None,
    columns: OutputColumns,
) -> pd.DataFrame:
    """Rows in input order: [id], label, confidence, [label_i, prob_i], [prob_<label>],
    [label_<member>], empty_text."""
    out: dict[str, object] = {}
    if columns.with_ids:
        out["id"] = ids
    out["label"] = prediction.labels
    out["confidence"] = prediction.confidence
    if columns.top_k:
        # The predicted label ranks first even where hard voting broke a tie in vote shares.
        rank_key = prediction.probs.copy()
        rank_key[np.arange(len(rank_key)), prediction.label_ids] = np.inf
        order = np.argsort(-rank_key, axis=1, kind="stable")[:, : columns.top_k]
        label_array = np.asarray(labels, dtype=object)
        for rank in range(columns.top_k):
            out[f"label_{rank + 1}"] = label_array[order[:, rank]]
            out[f"prob_{rank + 1}"] = np.take_along_axis(
                prediction.probs, order[:, rank : rank + 1], axis=1
            )[:, 0]
    if columns.probs:
        for i, label in enumerate(labels):
            out[f"prob_{label}"] = prediction.probs[:, i]
    if columns.per_member:
        label_array = np.asarray(labels, dtype=object)
        for member_id, member_probs in prediction.member_probs.items():
            out[f"label_{member_id}"] = label_array[member_probs.argmax(axis=1)]
    # not text.strip() without copying the text
    out["empty_text"] = np.fromiter(
        (not text or text.isspace() for text in texts), dtype=bool, count=len(texts)
    )
    return pd.DataFrame(out)


def predict_chunks(
    ensemble: Ensemble,
    chunks: Iterable,
    *,
    columns: OutputColumns,
    voting: str,
    weights=None,
    members=None,
) -> Iterator[pd.DataFrame]:
    """For each `voxpop.data.Table` chunk, its prediction frame, in input order.

    preprocess -> forward -> postprocess. With an ensemble loaded with `pipeline=True`, a worker
    thread encodes the next chunk while ONNX Runtime (which releases the GIL) runs this one, on
    the core the ensemble kept for it.
    """

    def encode(table) -> dict[str, np.ndarray]:
        return ensemble.encode(table.texts, table.features, members=members)

    def frame(table, inputs: dict[str, np.ndarray]) -> pd.DataFrame:
        prediction = ensemble.predict_encoded(
            inputs, voting=voting, weights=weights, members=members
        )
        return prediction_frame(
            prediction, labels=ensemble.labels, texts=table.texts, ids=table.ids, columns=columns
        )

    if not ensemble.pipeline:
        for table in chunks:
            yield frame(table, encode(table))
        return
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="voxpop-encode") as worker:
        pending = None  # (table, its inputs being encoded)
        for table in chunks:
            encoding = worker.submit(encode, table)
            if pending is not None:
                yield frame(pending[0], pending[1].result())
            pending = (table, encoding)
        if pending is not None:
            yield frame(pending[0], pending[1].result())


def output_format(path: Path | None) -> str:
    """Format named by the output file's extension; CSV for stdout (path None)."""
    if path is None:
        return "csv"
    # The extensions a table is read by are the ones predictions are written by.
    fmt = FORMATS_BY_SUFFIX.get(path.suffix.lower())
    if fmt is None:
        raise VoxpopError(
            f"--out {path}: unknown extension '{path.suffix}' "
            f"(use one of {', '.join(FORMATS_BY_SUFFIX)})"
        )
    return fmt


class _TextWriter:
    """CSV, TSV or JSON Lines appended chunk by chunk to a file or stdout.

    On a terminal, control characters in the text columns (ids, labels) are written escaped, so a
    hostile id or label cannot drive the terminal; to a file or a pipe the data is written as it is.
    """

    def __init__(self, path: Path | None, *, fmt: str):
        self.fmt, self.path, self.first = fmt, path, True
        self.handle = sys.stdout if path is None else open(path, "w", encoding="utf-8", newline="")
        self.terminal = path is None and _isatty(sys.stdout)

    def write(self, frame: pd.DataFrame) -> None:
        if self.terminal:
            frame = _printable_frame(frame)
        try:
            if self.fmt == "jsonl":
                self.handle.write(frame.to_json(orient="records", lines=True, force_ascii=False))
            else:
                sep = "\t" if self.fmt == "tsv" else ","
                frame.to_csv(
                    self.handle, sep=sep, index=False, header=self.first, lineterminator="\n"
                )
        except OSError as err:  # a full disk or a closed pipe: say which file
            err.filename = err.filename or (STDOUT if self.path is None else str(self.path))
            raise
        self.first = False

    def close(self) -> None:
        try:
            self.handle.flush()
            if self.path is not None:
                self.handle.close()
        except OSError as err:
            if self.path is not None:
                with contextlib.suppress(OSError):
                    self.handle.close()
            err.filename = err.filename or (STDOUT if self.path is None else str(self.path))
            raise


def _isatty(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _printable_frame(frame: pd.DataFrame) -> pd.DataFrame:
    text_columns = [
        name
        for name in frame.columns
        if frame[name].dtype == object or pd.api.types.is_string_dtype(frame[name])
    ]
    if not text_columns:
        return frame
    frame = frame.copy()
    for name in text_columns:
        frame[name] = [
            printable(value) if isinstance(value, str) else value for value in frame[name]
        ]
    frame.columns = [printable(str(name)) for name in frame.columns]
    return frame


class _ParquetWriter:
    """One row group per chunk, so the rows never all sit in memory."""

    def __init__(self, path: Path, *, fmt: str = "parquet"):
        self.path, self.writer, self.schema = path, None, None

    def write(self, frame: pd.DataFrame) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        if self.writer is None:
            self.schema = pa.Schema.from_pandas(frame, preserve_index=False)
            self.writer = pq.ParquetWriter(self.path, self.schema)
        self.writer.write_table(
            pa.Table.from_pandas(frame, schema=self.schema, preserve_index=False)
        )

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


WRITERS = {"csv": _TextWriter, "tsv": _TextWriter, "jsonl": _TextWriter, "parquet": _ParquetWriter}


def open_writer(fmt: str, path: Path | None):
    """A writer with `.write(frame)` and `.close()` for `fmt`, to `path` or stdout (None)."""
    return WRITERS[fmt](path, fmt=fmt)
