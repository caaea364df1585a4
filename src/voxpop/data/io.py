"""Reading labelled text tables (CSV, TSV, Parquet, JSON Lines, stdin) into aligned arrays.

Every reader streams the file in chunks and hands pandas frames to one builder (`_build_table`),
so the checks and conversions are the same for every format. Row numbers in error messages count
data rows from 1 (the header is not a row); `Table.rows` holds the same rows 0-based.
"""

from __future__ import annotations

import codecs
import io
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from voxpop.data.errors import VoxpopError

FORMATS_BY_SUFFIX = {".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".parquet": "parquet",
                     ".pq": "parquet", ".jsonl": "jsonl", ".ndjson": "jsonl"}
STDIN = "-"


@dataclass(frozen=True)
class ReadReport:
    """What reading a table found: rows read, empty/null texts, bytes that were not UTF-8."""

    n_rows: int = 0
    n_empty_texts: int = 0
    n_replaced_bytes: int = 0
    warnings: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, *, n_rows: int, n_empty_texts: int, n_replaced_bytes: int) -> ReadReport:
        """A report whose warnings say what was kept or replaced."""
        warnings = []
        if n_empty_texts:
            warnings.append(f"{n_empty_texts} empty or null texts (kept as empty strings)")
        if n_replaced_bytes:
            warnings.append(f"{n_replaced_bytes} bytes that are not UTF-8 (replaced by U+FFFD)")
        return cls(n_rows=n_rows, n_empty_texts=n_empty_texts, n_replaced_bytes=n_replaced_bytes,
                   warnings=warnings)

    def summary(self, source: str) -> str:
        """One line for a user, e.g. `data.csv: 120 rows, 2 empty texts, 3 bytes replaced`."""
        return (f"{source}: {self.n_rows} rows, {self.n_empty_texts} empty texts, "
                f"{self.n_replaced_bytes} undecodable bytes replaced")


@dataclass(frozen=True)
class Table:
    """Rows of one table, aligned by position: texts[i], labels[i], features[i], ids[i], rows[i]."""

    texts: list[str]
    labels: np.ndarray | None
    features: np.ndarray | None
    ids: np.ndarray
    rows: np.ndarray
    source: str
    report: ReadReport

    def __len__(self) -> int:
        return len(self.texts)


@dataclass(frozen=True)
class _Columns:
    source: str
    text_col: str
    label_col: str | None
    feature_cols: tuple[str, ...]
    id_col: str | None

    def needed(self) -> list[str]:
        cols = [self.text_col, self.label_col, *self.feature_cols, self.id_col]
        return list(dict.fromkeys(c for c in cols if c is not None))


def read_table(path, *, text_col: str = "text", label_col: str | None = None,
               feature_cols: Sequence[str] = (), id_col: str | None = None,
               format: str | None = None, require_classes: int = 0) -> Table:
    """Read a whole table. `require_classes=2` makes a label column with fewer classes an error.

    Example: `read_table("tweets.csv", label_col="label", require_classes=2)`.
    """
    chunks = list(iter_table_chunks(path, chunk_rows=100_000, text_col=text_col,
                                    label_col=label_col, feature_cols=feature_cols,
                                    id_col=id_col, format=format))
    table = _concat(chunks)
    if id_col is not None:
        _check_unique_ids(table, id_col)
    if label_col is not None and require_classes:
        _check_classes(table, label_col, require_classes)
    return table


def iter_table_chunks(path, *, chunk_rows: int, text_col: str = "text",
                      label_col: str | None = None, feature_cols: Sequence[str] = (),
                      id_col: str | None = None, format: str | None = None) -> Iterator[Table]:
    """Yield `Table`s of at most `chunk_rows` rows in file order; `"-"` reads texts from stdin.

    Each chunk's `report` counts that chunk (replaced bytes are counted as the decoder reads
    ahead, so the per-chunk split is approximate; the sum over chunks is exact).
    """
    if chunk_rows < 1:
        raise VoxpopError(f"chunk_rows must be >= 1 (got {chunk_rows})")
    if str(path) == STDIN:
        yield from _stdin_chunks(chunk_rows)
        return
    path = Path(path)
    fmt = _format_of(path, format)
    if not path.is_file():
        raise VoxpopError(f"{path}: file not found")
    columns = _Columns(str(path), text_col, label_col, tuple(feature_cols), id_col)
    offset = 0
    for frame, replaced in _READERS[fmt](path, chunk_rows, columns):
        if offset == 0:
            _check_columns(frame, columns)
        yield _build_table(frame, columns, offset=offset, replaced=replaced)
        offset += len(frame)
    if offset == 0:
        raise VoxpopError(f"{path}: the table has no rows")


def _format_of(path: Path, format: str | None) -> str:
    valid = sorted(set(FORMATS_BY_SUFFIX.values()))
    if format is not None:
        if format not in valid:
            raise VoxpopError(f"format '{format}' is not supported (choose from: {', '.join(valid)})")
        return format
    fmt = FORMATS_BY_SUFFIX.get(path.suffix.lower())
    if fmt is None:
        raise VoxpopError(f"{path}: cannot tell the format from the extension '{path.suffix}' "
                          f"(use one of {', '.join(FORMATS_BY_SUFFIX)} or give format= one of "
                          f"{', '.join(valid)})")
    return fmt


# --- decoding: bytes that are not UTF-8 are replaced by U+FFFD and counted -----------------------

_COUNTING = threading.local()


def _count_and_replace(err: UnicodeDecodeError) -> tuple[str, int]:
    _COUNTING.n += err.end - err.start
    return "\ufffd", err.end


codecs.register_error("voxpop-count-replace", _count_and_replace)


class _ReplacementCounter(io.RawIOBase):
    """Passes bytes through unchanged while counting those that UTF-8 cannot decode."""

    def __init__(self, binary):
        self._binary = binary
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="voxpop-count-replace")
        self.replaced = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self._binary.read(len(buffer))
        buffer[: len(data)] = data
        _COUNTING.n = 0
        self._decoder.decode(data, final=not data)
        self.replaced += _COUNTING.n
        return len(data)

    def take(self) -> int:
        """Bytes replaced since the last call."""
        replaced, self.replaced = self.replaced, 0
        return replaced


def _text_handle(binary) -> tuple[io.TextIOWrapper, _ReplacementCounter]:
    counter = _ReplacementCounter(binary)
    text = io.TextIOWrapper(io.BufferedReader(counter), encoding="utf-8-sig", errors="replace",
                            newline="")
    return text, counter


# --- one reader per format, each yielding (frame, replaced bytes) --------------------------------

def _delimited(sep: str) -> Callable:
    def read(path: Path, chunk_rows: int, columns: _Columns):
        with open(path, "rb") as binary:
            lineterminator = _line_terminator(binary)
            handle, counter = _text_handle(binary)
            try:
                # Everything as str and only empty fields as null: "NA" or "null" is a real text.
                reader = pd.read_csv(handle, sep=sep, dtype=str, keep_default_na=False,
                                     na_values=[""], chunksize=chunk_rows,
                                     lineterminator=lineterminator)
                for frame in reader:
                    yield frame, counter.take()
            except pd.errors.EmptyDataError:
                raise VoxpopError(f"{path}: the file is empty (expected a header row)") from None
            except pd.errors.ParserError as err:
                raise VoxpopError(f"{path}: not a valid {_SEP_NAMES[sep]} file "
                                  f"({_first_line(err)})") from None
    return read


_SEP_NAMES = {",": "CSV", "\t": "TSV"}


def _line_terminator(binary) -> str | None:
    """"\n" when the header line ends in LF alone, else None (pandas: CR, LF or CRLF).

    pandas writes a carriage return inside a text without quotes (1,564 of the shared tweets hold
    one); in a file whose lines end in LF alone such a CR is text, not the end of a row.
    """
    header = binary.readline()
    binary.seek(0)
    return "\n" if header.endswith(b"\n") and not header.endswith(b"\r\n") else None


def _first_line(err: Exception) -> str:
    return str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__


def _read_jsonl(path: Path, chunk_rows: int, columns: _Columns):
    with open(path, "rb") as binary:
        handle, counter = _text_handle(binary)
        try:
            reader = pd.read_json(handle, lines=True, chunksize=chunk_rows, dtype=False,
                                  convert_dates=False, keep_default_dates=False, precise_float=True)
            for frame in reader:
                yield frame, counter.take()
        except ValueError as err:
            raise VoxpopError(f"{path}: not valid JSON Lines ({_first_line(err)})") from None


_PARQUET_KINDS = {
    "text": ("string", "large_string", "string_view", "binary", "large_binary", "null"),
    "label": ("string", "large_string", "string_view", "int8", "int16", "int32", "int64",
              "uint8", "uint16", "uint32", "uint64", "bool"),
    "feature": ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
                "halffloat", "float", "double", "bool"),
    "id": ("string", "large_string", "string_view", "int8", "int16", "int32", "int64",
           "uint8", "uint16", "uint32", "uint64"),
}


def _read_parquet(path: Path, chunk_rows: int, columns: _Columns):
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
    except Exception as err:  # pyarrow raises several types for a file that is not Parquet
        raise VoxpopError(f"{path}: not a valid Parquet file ({_first_line(err)})") from None
    schema = parquet.schema_arrow
    _check_columns(pd.DataFrame(columns=schema.names), columns)
    _check_parquet_types(schema, columns)
    for batch in parquet.iter_batches(batch_size=chunk_rows, columns=columns.needed()):
        yield batch.to_pandas(), 0


def _check_parquet_types(schema, columns: _Columns) -> None:
    roles = [("text", columns.text_col), ("label", columns.label_col), ("id", columns.id_col)]
    roles += [("feature", c) for c in columns.feature_cols]
    for role, name in roles:
        if name is None:
            continue
        arrow_type = schema.field(name).type
        kind = str(arrow_type.value_type if hasattr(arrow_type, "value_type") else arrow_type)
        if kind not in _PARQUET_KINDS[role]:
            raise VoxpopError(f"{columns.source}: column '{name}' has Parquet type {arrow_type}, "
                              f"but a {role} column must be one of: {', '.join(_PARQUET_KINDS[role])}")


_READERS = {"csv": _delimited(","), "tsv": _delimited("\t"), "jsonl": _read_jsonl,
            "parquet": _read_parquet}


def _stdin_chunks(chunk_rows: int) -> Iterator[Table]:
    handle, counter = _text_handle(sys.stdin.buffer)
    columns = _Columns("<stdin>", "text", None, (), None)
    lines: list[str] = []
    offset = 0
    for line in handle:
        lines.append(line.rstrip("\r\n"))
        if len(lines) == chunk_rows:
            yield _build_table(pd.DataFrame({"text": lines}), columns, offset=offset,
                               replaced=counter.take())
            offset, lines = offset + len(lines), []
    if lines:
        yield _build_table(pd.DataFrame({"text": lines}), columns, offset=offset,
                           replaced=counter.take())
    elif offset == 0:
        raise VoxpopError("<stdin>: no input lines (expected one text per line)")


# --- from a pandas frame to a Table: the checks every format shares ------------------------------

def _check_columns(frame: pd.DataFrame, columns: _Columns) -> None:
    present = [str(c) for c in frame.columns]
    for name in columns.needed():
        if name not in present:
            raise VoxpopError(f"{columns.source}: column '{name}' not found "
                              f"(columns: {', '.join(present) or 'none'})")


def _build_table(frame: pd.DataFrame, columns: _Columns, *, offset: int, replaced: int) -> Table:
    rows = np.arange(offset, offset + len(frame), dtype=np.int64)
    texts, n_empty, text_replaced = _texts(frame[columns.text_col])
    labels = None
    if columns.label_col is not None:
        labels = _strings(frame[columns.label_col], columns, columns.label_col, rows, "label")
    features = None
    if columns.feature_cols:
        features = np.column_stack(
            [_numbers(frame[c], columns, c, rows) for c in columns.feature_cols]
        ).astype(np.float32)
    if columns.id_col is not None:
        ids = _strings(frame[columns.id_col], columns, columns.id_col, rows, "id")
    else:
        ids = rows.astype(str).astype(object)
    report = ReadReport.of(n_rows=len(frame), n_empty_texts=n_empty,
                           n_replaced_bytes=replaced + text_replaced)
    return Table(texts=texts, labels=labels, features=features, ids=ids, rows=rows,
                 source=columns.source, report=report)


def _texts(series: pd.Series) -> tuple[list[str], int, int]:
    """Null -> "" (counted); bytes (Parquet binary) decoded with replacement (counted)."""
    texts, replaced = [], 0
    for value in series.tolist():
        if value is None or (isinstance(value, float) and np.isnan(value)):
            value = ""
        elif isinstance(value, bytes):
            _COUNTING.n = 0
            value = value.decode("utf-8", errors="voxpop-count-replace")
            replaced += _COUNTING.n
        elif not isinstance(value, str):
            value = str(value)
        texts.append(value)
    n_empty = sum(1 for t in texts if not t)
    return texts, n_empty, replaced


def _strings(series: pd.Series, columns: _Columns, name: str, rows: np.ndarray,
             what: str) -> np.ndarray:
    missing = series.isna().to_numpy()
    if missing.any():
        row = int(rows[np.argmax(missing)]) + 1
        raise VoxpopError(f"{columns.source}: row {row}, column '{name}': missing {what} "
                          f"({int(missing.sum())} rows in this chunk have none)")
    return np.array([_as_str(v) for v in series.tolist()], dtype=object)


def _as_str(value) -> str:
    # Integer labels written as floats by some tools (3.0) are the integer 3.
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _numbers(series: pd.Series, columns: _Columns, name: str, rows: np.ndarray) -> np.ndarray:
    values = pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    bad = ~np.isfinite(values)
    if bad.any():
        i = int(np.argmax(bad))
        shown = series.iloc[i]
        problem = "missing value" if pd.isna(shown) else f"{shown!r} is not a finite number"
        raise VoxpopError(f"{columns.source}: row {int(rows[i]) + 1}, column '{name}': {problem} "
                          f"(feature columns must be numeric)")
    return values


def _concat(chunks: list[Table]) -> Table:
    first = chunks[0]
    if len(chunks) == 1:
        return first
    reports = [c.report for c in chunks]
    report = ReadReport.of(n_rows=sum(r.n_rows for r in reports),
                           n_empty_texts=sum(r.n_empty_texts for r in reports),
                           n_replaced_bytes=sum(r.n_replaced_bytes for r in reports))
    return Table(
        texts=[t for c in chunks for t in c.texts],
        labels=None if first.labels is None else np.concatenate([c.labels for c in chunks]),
        features=None if first.features is None else np.concatenate([c.features for c in chunks]),
        ids=np.concatenate([c.ids for c in chunks]),
        rows=np.concatenate([c.rows for c in chunks]),
        source=first.source, report=report)


def _check_unique_ids(table: Table, id_col: str) -> None:
    ids = table.ids.astype(str)
    unique, counts = np.unique(ids, return_counts=True)
    if (counts > 1).any():
        dup = str(unique[np.argmax(counts > 1)])
        rows = np.flatnonzero(ids == dup)[:2] + 1
        raise VoxpopError(f"{table.source}: column '{id_col}': id {dup!r} appears more than once "
                          f"(rows {rows[0]} and {rows[1]}); ids must be unique")


def _check_classes(table: Table, label_col: str, require_classes: int) -> None:
    classes = sorted(set(table.labels.tolist()))
    if len(classes) < require_classes:
        raise VoxpopError(f"{table.source}: column '{label_col}' has {len(classes)} class(es) "
                          f"({', '.join(classes)}); training needs at least {require_classes}")
