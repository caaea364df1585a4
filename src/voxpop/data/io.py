"""Reading labelled text tables (CSV, TSV, Parquet, JSON Lines, stdin) into aligned arrays.

Every reader streams the file in chunks of plain columns (`_Chunk`) and hands them to one builder
(`_build_table`), so the checks and conversions are the same for every format:

- Rows are strict. A CSV/TSV row whose field count differs from the header's, a quote that is
  never closed or is followed by more text, a JSON line that is not an object or lacks a column
  that is read, and a header (or object) naming a column twice are errors naming the file and line.
- A blank line is a row whose every field is empty, as a blank line on stdin is: an empty text
  (counted, and flagged by predict); a label, id or feature is then missing, an error naming it.
- Labels follow one rule in every format (`canonical_label`): surrounding whitespace is dropped, a
  number written with a fraction or an exponent takes its shortest form (`1.0`, ` 1.00`, JSON
  `1.0` and a Parquet double 1.0 are all the label `1`; `2.50` is `2.5`), booleans are
  `True`/`False` (as pandas writes them to CSV); anything else is kept as written (`01` stays).
- Texts and ids are kept as written (a JSON number as its literal text).

Row numbers in messages count data rows from 1 (the header is not a row) and come with the line
where the row starts (Parquet has rows only); `Table.rows` holds the rows 0-based.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import re
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd

from voxpop.data.errors import VoxpopError
from voxpop.data.options import FORMATS, FORMATS_BY_SUFFIX, TEXT_COL

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
        return cls(
            n_rows=n_rows,
            n_empty_texts=n_empty_texts,
            n_replaced_bytes=n_replaced_bytes,
            warnings=warnings,
        )

    def summary(self, source: str) -> str:
        """One line for a user, e.g. `data.csv: 120 rows, 2 empty texts, 3 bytes replaced`."""
        return (
            f"{source}: {self.n_rows} rows, {self.n_empty_texts} empty texts, "
            f"{self.n_replaced_bytes} undecodable bytes replaced"
        )


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


def read_table(
    path,
    *,
    text_col: str = TEXT_COL,
    label_col: str | None = None,
    feature_cols: Sequence[str] = (),
    id_col: str | None = None,
    format: str | None = None,
    require_classes: int = 0,
) -> Table:
    """Read a whole table. `require_classes=2` makes a label column with fewer classes an error.

    Example: `read_table("tweets.csv", label_col="label", require_classes=2)`.
    """
    chunks = list(
        iter_table_chunks(
            path,
            chunk_rows=100_000,
            text_col=text_col,
            label_col=label_col,
            feature_cols=feature_cols,
            id_col=id_col,
            format=format,
        )
    )
    table = _concat(chunks)
    if id_col is not None:
        _check_unique_ids(table, id_col)
    if label_col is not None and require_classes:
        _check_classes(table, label_col, require_classes)
    return table


def iter_table_chunks(
    path,
    *,
    chunk_rows: int,
    text_col: str = TEXT_COL,
    label_col: str | None = None,
    feature_cols: Sequence[str] = (),
    id_col: str | None = None,
    format: str | None = None,
) -> Iterator[Table]:
    """Yield `Table`s of at most `chunk_rows` rows in file order; `"-"` reads texts from stdin.

    Each chunk's `report` counts that chunk (replaced bytes are counted as the decoder reads
    ahead, so the per-chunk split is approximate; the sum over chunks is exact).
    """
    if chunk_rows < 1:
        raise VoxpopError(f"chunk_rows must be >= 1 (got {chunk_rows})")
    if str(path) == STDIN:
        _check_stdin_reads_texts_only(format, [label_col, id_col, *feature_cols])
        yield from _stdin_chunks(chunk_rows)
        return
    path = Path(path)
    fmt = _format_of(path, format)
    if path.is_dir():
        raise VoxpopError(f"{path}: is a directory, not a table file")
    if not path.is_file():
        raise VoxpopError(f"{path}: file not found")
    if fmt != "parquet":
        _refuse_utf16(path)
    columns = _Columns(str(path), text_col, label_col, tuple(feature_cols), id_col)
    offset = 0
    chunks = _READERS[fmt](path, chunk_rows, columns)
    while True:
        try:
            chunk = next(chunks)
        except StopIteration:
            break
        except OSError as err:  # unreadable (permissions, I/O error): the user's environment
            raise VoxpopError(f"{path}: cannot read ({err.strerror or err})") from None
        table = _build_table(chunk, columns, offset=offset)
        yield table
        offset += len(table)
    if offset == 0:
        raise VoxpopError(f"{path}: the table has no rows")


_UTF16_BOMS = {
    codecs.BOM_UTF32_LE: "UTF-32",
    codecs.BOM_UTF32_BE: "UTF-32",
    codecs.BOM_UTF16_LE: "UTF-16",
    codecs.BOM_UTF16_BE: "UTF-16",
}


def _refuse_utf16(path: Path, head: bytes | None = None) -> None:
    """A text file saved as UTF-16/32 (Excel's "Unicode text") would read as garbage: refuse it."""
    if head is None:
        try:
            with open(path, "rb") as handle:
                head = handle.read(4)
        except OSError as err:
            raise VoxpopError(f"{path}: cannot read ({err.strerror or err})") from None
    for bom, name in _UTF16_BOMS.items():  # UTF-32 first: its LE mark starts like UTF-16's
        if head.startswith(bom):
            raise VoxpopError(f"{path}: the file is {name} text; save it as UTF-8")


def _format_of(path: Path, format: str | None) -> str:
    """The table format: `format` (the CLI's --format) when given, else the file's extension."""
    if format is not None:
        if format.lower() not in FORMATS:
            raise VoxpopError(
                f"--format {format!r} is not a table format (choose from {', '.join(FORMATS)})"
            )
        return format.lower()
    fmt = FORMATS_BY_SUFFIX.get(path.suffix.lower())
    if fmt is None:
        raise VoxpopError(
            f"{path}: cannot tell the table format from the extension "
            f"{path.suffix or '(none)'!r} (known: {', '.join(FORMATS_BY_SUFFIX)}); "
            f"name it with --format {'|'.join(FORMATS)}"
        )
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


def _text_handle(binary, *, newline: str = "") -> tuple[io.TextIOWrapper, _ReplacementCounter]:
    """Text decoded from `binary` as UTF-8 (BOM skipped, bad bytes replaced and counted); lines
    end at LF, CRLF or CR with newline="", at LF alone with newline="\n"."""
    counter = _ReplacementCounter(binary)
    text = io.TextIOWrapper(
        io.BufferedReader(counter), encoding="utf-8-sig", errors="replace", newline=newline
    )
    return text, counter


# --- one reader per format, each yielding _Chunks ------------------------------------------------


@dataclass
class _Chunk:
    """Rows of one chunk as plain columns: each column read -> one value per row (str, None for
    an empty or null field, or a Parquet scalar), with the line each row starts on."""

    values: dict[str, list]
    lines: list[int] | None  # None: the format has no lines (Parquet)
    replaced: int = 0
    blank: frozenset[int] = frozenset()  # rows that were blank lines


class _ChunkBuilder:
    """Collects rows of the columns read; `take()` hands them over as a `_Chunk`."""

    def __init__(self, names: list[str]):
        self.names = names
        self._reset()

    def _reset(self) -> None:
        self.values = {name: [] for name in self.names}
        self.lines: list[int] = []
        self.blank: set[int] = set()

    def add(self, line: int, row: Sequence | None) -> None:
        """One row: its values in `names` order, or None for a blank line."""
        if row is None:
            self.blank.add(len(self.lines))
            row = [None] * len(self.names)
        for name, value in zip(self.names, row):
            self.values[name].append(value)
        self.lines.append(line)

    def __len__(self) -> int:
        return len(self.lines)

    def take(self, replaced: int) -> _Chunk:
        chunk = _Chunk(self.values, self.lines, replaced, frozenset(self.blank))
        self._reset()
        return chunk


# The standard library's csv reader, not pandas: pandas' C parser pads a short row with empty
# fields, silently drops the extra field of a long row (or, on the first data row, takes the first
# column as the index and shifts every column), and gives no line numbers. csv in strict mode
# yields each record with the line it ends on, and refuses a stray quote.
FIELD_LIMIT = 2**26  # characters in one field: beyond this it is a quote never closed, not a text
# Stands for a CR inside an unquoted field of an LF file while csv parses it (csv would end the
# row there); decoded text never holds a lone surrogate, so the swap back is exact.
_CR = "\udfff"
_SEP_NAMES = {",": "CSV", "\t": "TSV"}


def _delimited(sep: str) -> Callable:
    def read(path: Path, chunk_rows: int, columns: _Columns) -> Iterator[_Chunk]:
        csv.field_size_limit(FIELD_LIMIT)
        with open(path, "rb") as binary:
            lf_only = _lf_only(binary)
            handle, counter = _text_handle(binary, newline="\n" if lf_only else "")
            lines = (line.replace("\r", _CR) for line in handle) if lf_only else handle
            records = _records(csv.reader(lines, delimiter=sep, strict=True), path, sep)
            _, header = next(records, (1, None))
            if header is None:
                raise VoxpopError(f"{path}: the file is empty (expected a header row)")
            if not header:
                raise VoxpopError(f"{path}: line 1 is blank (expected the header row)")
            header = [name.replace(_CR, "\r") for name in header]
            _check_columns(header, columns)
            needed = columns.needed()
            picks = [header.index(name) for name in needed]
            builder = _ChunkBuilder(needed)
            for line, fields in records:
                if fields and len(fields) != len(header):
                    raise VoxpopError(
                        f"{path}: line {line} has {len(fields)} field(s), but the header has "
                        f"{len(header)} ({_SEP_NAMES[sep]} fields are separated by "
                        f"{sep!r}; quote a text that holds one)"
                    )
                row = None
                if fields:
                    row = [fields[i] for i in picks]
                    if lf_only:
                        row = [value.replace(_CR, "\r") for value in row]
                builder.add(line, row)
                if len(builder) == chunk_rows:
                    yield builder.take(counter.take())
            if len(builder):
                yield builder.take(counter.take())

    return read


def _records(reader, path: Path, sep: str) -> Iterator[tuple[int, list[str]]]:
    """`(line the record starts on, fields)`; a csv error names the line its record starts on."""
    start = 1
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as err:
            raise VoxpopError(f"{path}: line {start}: {_csv_problem(str(err))}") from None
        yield start, fields
        start = reader.line_num + 1


def _csv_problem(message: str) -> str:
    if "unexpected end of data" in message:
        return (
            'a quote opened in this row is never closed (a text that starts with " must end with ")'
        )
    if "expected after" in message:
        return (
            f'a quoted field is followed by more text ({message}): a stray " in this row '
            'or one above it? (a quote inside a quoted text is written "")'
        )
    if "field larger than field limit" in message:
        return f"a field longer than {FIELD_LIMIT:,} characters (a quote never closed?)"
    return message


def _lf_only(binary) -> bool:
    """True when the header line ends in LF alone: every CR is then text, not the end of a row.

    pandas writes a carriage return inside a text without quotes (1,564 of the shared tweets hold
    one); in a file whose lines end in LF alone such a CR is text, not the end of a row.
    """
    header = binary.readline()
    binary.seek(0)
    return header.endswith(b"\n") and not header.endswith(b"\r\n")


def _first_line(err: Exception) -> str:
    return str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__


class _RefusedJson(ValueError):
    pass


def _unique_keys(pairs: list[tuple[str, object]]) -> dict:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        twice = next(key for key, count in Counter(key for key, _ in pairs).items() if count > 1)
        raise _RefusedJson(f"key {twice!r} appears more than once in one object")
    return obj


def _no_constant(name: str):
    raise _RefusedJson(f"{name} is not a JSON value (use null)")


def _read_jsonl(path: Path, chunk_rows: int, columns: _Columns) -> Iterator[_Chunk]:
    needed = columns.needed()
    builder = _ChunkBuilder(needed)
    with open(path, "rb") as binary:
        handle, counter = _text_handle(binary, newline="\n")
        seen_object = False
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                builder.add(number, None)
            else:
                obj = _json_object(line, path, number)
                seen_object = True
                absent = [name for name in needed if name not in obj]
                if absent:
                    raise VoxpopError(
                        f"{path}: line {number}: column '{absent[0]}' missing "
                        f"(the object holds: {_listed(list(obj))})"
                    )
                builder.add(number, [_json_value(obj[name], path, number, name) for name in needed])
            if len(builder) == chunk_rows:
                yield builder.take(counter.take())
        if not seen_object:
            raise VoxpopError(
                f"{path}: no JSON object, only blank lines (expected one object per line)"
                if len(builder)
                else f"{path}: the file is empty (expected one JSON object per line)"
            )
        if len(builder):
            yield builder.take(counter.take())


# Numbers as their literal text, so a text, id or label is read as written.
_JSON = json.JSONDecoder(
    object_pairs_hook=_unique_keys, parse_int=str, parse_float=str, parse_constant=_no_constant
)


def _json_object(line: str, path: Path, number: int) -> dict:
    try:
        obj = _JSON.decode(line)
    except json.JSONDecodeError as err:
        raise VoxpopError(
            f"{path}: line {number}: not valid JSON ({err.msg}, column {err.colno})"
        ) from None
    except _RefusedJson as err:
        raise VoxpopError(f"{path}: line {number}: {err}") from None
    except RecursionError:
        raise VoxpopError(f"{path}: line {number}: JSON nested too deeply") from None
    if not isinstance(obj, dict):
        raise VoxpopError(
            f"{path}: line {number}: not a JSON object (JSON Lines holds one "
            'object per line, e.g. {"text": "..."})'
        )
    return obj


def _json_value(value, path: Path, number: int, name: str):
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return str(value)
    kind = "an object" if isinstance(value, dict) else "a list"
    raise VoxpopError(
        f"{path}: line {number}, column '{name}': {kind} is not a value "
        "(expected a string, number, boolean or null)"
    )


# Arrow type names a column may have, by its role.
_STRINGS = ("string", "large_string", "string_view")
_INTEGERS = ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64")
_NUMBERS = (*_INTEGERS, "halffloat", "float", "double", "bool")
_PARQUET_KINDS = {
    "text": (*_STRINGS, "binary", "large_binary", "null"),
    "label": (*_STRINGS, *_NUMBERS),
    "feature": _NUMBERS,
    "id": (*_STRINGS, *_INTEGERS),
}


def _read_parquet(path: Path, chunk_rows: int, columns: _Columns) -> Iterator[_Chunk]:
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
    except Exception as err:  # pyarrow raises several types for a file that is not Parquet
        raise VoxpopError(f"{path}: not a valid Parquet file ({_first_line(err)})") from None
    schema = parquet.schema_arrow
    _check_columns(list(schema.names), columns)
    _check_parquet_types(schema, columns)
    needed = columns.needed()
    batches = parquet.iter_batches(batch_size=chunk_rows, columns=needed)
    while True:
        try:
            batch = next(batches)
        except StopIteration:
            return
        except Exception as err:  # a corrupt row group: pyarrow raises OSError or ArrowInvalid
            raise VoxpopError(f"{path}: not a valid Parquet file ({_first_line(err)})") from None
        yield _Chunk({name: batch.column(name).to_pylist() for name in needed}, None)


def _check_parquet_types(schema, columns: _Columns) -> None:
    roles = [("text", columns.text_col), ("label", columns.label_col), ("id", columns.id_col)]
    roles += [("feature", c) for c in columns.feature_cols]
    for role, name in roles:
        if name is None:
            continue
        arrow_type = schema.field(name).type
        kind = str(arrow_type.value_type if hasattr(arrow_type, "value_type") else arrow_type)
        if kind not in _PARQUET_KINDS[role]:
            raise VoxpopError(
                f"{columns.source}: column '{name}' has Parquet type {arrow_type}, "
                f"but a {role} column must be one of: {', '.join(_PARQUET_KINDS[role])}"
            )


_READERS = {
    "csv": _delimited(","),
    "tsv": _delimited("\t"),
    "jsonl": _read_jsonl,
    "parquet": _read_parquet,
}


def _check_stdin_reads_texts_only(format: str | None, columns: list[str | None]) -> None:
    """stdin ('-') is one text per line: a format or columns asked of it would be ignored."""
    if format is not None:
        raise VoxpopError(
            f"--format {format}: stdin ('-') is read as one text per line; give "
            "the table as a file to read it by its format"
        )
    named = [column for column in columns if column is not None]
    if named:
        raise VoxpopError(
            f"<stdin>: '-' is one text per line, without the column(s) "
            f"{', '.join(named)}; give a table file (CSV, TSV, Parquet or JSON "
            "Lines) that holds them"
        )


def _stdin_chunks(chunk_rows: int) -> Iterator[Table]:
    handle, counter = _text_handle(sys.stdin.buffer)
    columns = _Columns("<stdin>", "text", None, (), None)
    builder = _ChunkBuilder(["text"])
    offset = 0
    for number, line in enumerate(handle, start=1):
        builder.add(number, [line.rstrip("\r\n")])
        if len(builder) == chunk_rows:
            yield _build_table(builder.take(counter.take()), columns, offset=offset)
            offset += chunk_rows
    if len(builder):
        yield _build_table(builder.take(counter.take()), columns, offset=offset)
    elif offset == 0:
        raise VoxpopError("<stdin>: no input lines (expected one text per line)")


# --- from plain columns to a Table: the checks every format shares -------------------------------


def _listed(names: list[str], most: int = 20) -> str:
    shown = ", ".join(str(name) for name in names[:most])
    return (shown + f", ... ({len(names) - most} more)") if len(names) > most else (shown or "none")


def _check_columns(names: list[str], columns: _Columns) -> None:
    names = [str(name) for name in names]
    twice = [name for name, count in Counter(names).items() if count > 1]
    if twice:
        raise VoxpopError(
            f"{columns.source}: column {twice[0]!r} appears more than once in the "
            "header (every column needs its own name)"
        )
    for name in columns.needed():
        if name not in names:
            raise VoxpopError(
                f"{columns.source}: column '{name}' not found (columns: {_listed(names)})"
            )


def _where(columns: _Columns, chunk: _Chunk, rows: np.ndarray, i: int) -> str:
    row = int(rows[i]) + 1
    if chunk.lines is None:
        return f"row {row}"
    return f"line {chunk.lines[i]} (row {row}{', a blank line' if i in chunk.blank else ''})"


def _build_table(chunk: _Chunk, columns: _Columns, *, offset: int) -> Table:
    texts, n_empty, text_replaced = _texts(chunk.values[columns.text_col])
    rows = np.arange(offset, offset + len(texts), dtype=np.int64)
    labels = None
    if columns.label_col is not None:
        labels = _strings(chunk, columns, columns.label_col, rows, "label", canonical_label)
    features = None
    if columns.feature_cols:
        features = np.column_stack(
            [_numbers(chunk, columns, c, rows) for c in columns.feature_cols]
        ).astype(np.float32)
    if columns.id_col is not None:
        ids = _strings(chunk, columns, columns.id_col, rows, "id", _as_written)
    else:
        ids = rows.astype(str).astype(object)
    report = ReadReport.of(
        n_rows=len(texts), n_empty_texts=n_empty, n_replaced_bytes=chunk.replaced + text_replaced
    )
    return Table(
        texts=texts,
        labels=labels,
        features=features,
        ids=ids,
        rows=rows,
        source=columns.source,
        report=report,
    )


def _texts(values: list) -> tuple[list[str], int, int]:
    """Null -> "" (counted); bytes (Parquet binary) decoded with replacement (counted)."""
    texts, replaced = [], 0
    for value in values:
        if value is None:
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


def _strings(
    chunk: _Chunk, columns: _Columns, name: str, rows: np.ndarray, what: str, convert: Callable
) -> np.ndarray:
    converted = [convert(value) for value in chunk.values[name]]
    missing = [i for i, value in enumerate(converted) if value is None or value == ""]
    if missing:
        raise VoxpopError(
            f"{columns.source}: {_where(columns, chunk, rows, missing[0])}, "
            f"column '{name}': missing {what} ({len(missing)} rows in this chunk "
            "have none)"
        )
    return np.array(converted, dtype=object)


# A number with a fraction or an exponent (1.0, 2.50, .5, 1e3): the forms a tool may give an
# integer or a number label. Plain digits (1, 01, +1) are not touched: they are kept as written.
_DECIMAL = re.compile(r"[+-]?(?:\d+\.\d*|\.\d+|\d+(?:\.\d*)?[eE][+-]?\d+)(?:[eE][+-]?\d+)?")


def canonical_label(value) -> str | None:
    """The label `value` stands for, the same whatever the file format; None when missing.

    Whitespace around it is dropped; a number with a fraction or an exponent takes its shortest
    form (`1.0` -> `1`, `2.50` -> `2.5`, `1e3` -> `1000`); booleans are `True`/`False`; anything
    else is kept as written.
    """
    if value is None:
        return None
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value != value:  # NaN: a null
            return None
        text = repr(value)
    else:
        text = str(value).strip()
    if not _DECIMAL.fullmatch(text):
        return text
    number = Decimal(text)
    if not -40 <= number.adjusted() <= 40:  # keep 1e999999999 as text rather than expand it
        return text
    if number == number.to_integral_value():
        return str(int(number))
    return format(number.normalize(), "f")


def _as_written(value) -> str | None:
    """Ids: kept as written; Parquet integers as their digits."""
    if value is None or isinstance(value, str):
        return value
    return str(value)


def _numbers(chunk: _Chunk, columns: _Columns, name: str, rows: np.ndarray) -> np.ndarray:
    series = pd.Series(chunk.values[name], dtype=object)
    values = pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    bad = ~np.isfinite(values)
    if bad.any():
        i = int(np.argmax(bad))
        shown = series.iloc[i]
        problem = (
            "missing value" if shown is None or shown == "" else f"{shown!r} is not a finite number"
        )
        raise VoxpopError(
            f"{columns.source}: {_where(columns, chunk, rows, i)}, column '{name}': "
            f"{problem} (feature columns must be numeric)"
        )
    return values


def _concat(chunks: list[Table]) -> Table:
    first = chunks[0]
    if len(chunks) == 1:
        return first
    reports = [c.report for c in chunks]
    report = ReadReport.of(
        n_rows=sum(r.n_rows for r in reports),
        n_empty_texts=sum(r.n_empty_texts for r in reports),
        n_replaced_bytes=sum(r.n_replaced_bytes for r in reports),
    )
    return Table(
        texts=[t for c in chunks for t in c.texts],
        labels=None if first.labels is None else np.concatenate([c.labels for c in chunks]),
        features=None if first.features is None else np.concatenate([c.features for c in chunks]),
        ids=np.concatenate([c.ids for c in chunks]),
        rows=np.concatenate([c.rows for c in chunks]),
        source=first.source,
        report=report,
    )


def _check_unique_ids(table: Table, id_col: str) -> None:
    ids = table.ids.astype(str)
    unique, counts = np.unique(ids, return_counts=True)
    if (counts > 1).any():
        dup = str(unique[np.argmax(counts > 1)])
        rows = np.flatnonzero(ids == dup)[:2] + 1
        raise VoxpopError(
            f"{table.source}: column '{id_col}': id {dup!r} appears more than once "
            f"(rows {rows[0]} and {rows[1]}); ids must be unique"
        )


def _check_classes(table: Table, label_col: str, require_classes: int) -> None:
    classes = sorted(set(table.labels.tolist()))
    if len(classes) < require_classes:
        raise VoxpopError(
            f"{table.source}: column '{label_col}' has {len(classes)} class(es) "
            f"({', '.join(classes)}); training needs at least {require_classes}"
        )


MAX_TEXT_FILE_BYTES = 16 * 2**20  # a space file or a label map is a few hundred bytes


def read_text_file(path, *, what: str) -> str:
    """A small text file the user names (a space file, a label map) as str: UTF-8 (a BOM is
    skipped), or a VoxpopError naming the file, and the line of the first byte that is not UTF-8.

    Example: `read_text_file("labels.json", what="label map")`.
    """
    path = Path(path)
    if path.is_dir():
        raise VoxpopError(f"{path}: is a directory, not a {what}")
    if not path.is_file():
        raise VoxpopError(f"{path}: {what} not found")
    try:
        if path.stat().st_size > MAX_TEXT_FILE_BYTES:
            raise VoxpopError(
                f"{path}: {path.stat().st_size:,} bytes is too large for a {what} "
                f"(at most {MAX_TEXT_FILE_BYTES:,})"
            )
        data = path.read_bytes()
    except OSError as err:
        raise VoxpopError(f"{path}: cannot read ({err.strerror or err})") from None
    _refuse_utf16(path, data[:4])
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise VoxpopError(
            f"{path}: a {what} must be UTF-8 text; line {line} holds byte "
            f"0x{data[err.start]:02x}, which is not (save it as UTF-8)"
        ) from None
