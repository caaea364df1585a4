"""Hashed TF-IDF n-grams: the sparse input of the `tfidf` model family.

Word 1-2 grams (scikit-learn's default token pattern) and character 2-5 grams inside each
whitespace-separated word padded with spaces (scikit-learn's `char_wb`), both of the lowercased
raw text, are hashed into `buckets` ids (crc32 and a polynomial hash, in numpy), so the feature
space needs no stored vocabulary. Weights are TfidfVectorizer(sublinear_tf=True, min_df=2)'s over
the hashed ids, with each of the two blocks L2-normalised per row, as in a union of two
vectorizers: a linear layer on them is a TF-IDF logistic regression, and the bundle carries it as
an ONNX member like any other. The idf vector is the only fitted state.

The raw text, not the Preprocessor's cleaned tokens, on purpose: measured on the demo split, the
cleaned tokens cost the TF-IDF model 1.3 points of test macro-F1 (mentions, numbers and URLs carry
signal), and a member that reads the text differently errs differently from the token models.

Each row becomes `grams` (int32 bucket ids, 0 = padding) and `gram_weights` (float32, 0 on
padding), padded to the longest row of the batch and cut to the `max_grams` heaviest grams.
"""

from __future__ import annotations

import math
import re
import zlib
from typing import Annotated

import numpy as np
from pydantic import Field, model_validator

from voxpop.data.errors import VoxpopError
from voxpop.data.records import Record

_WORD = re.compile(r"(?u)\b\w\w+\b")  # scikit-learn's default token pattern
_POLY = np.uint64(0x100000001B3)  # FNV-1's 64-bit prime, the base of the string polynomial
_PAIR = np.uint64(0x9E3779B97F4A7C15)  # Fibonacci hashing constant: spreads a pair's bits
# Without an explicit max_grams, rows keep at most this many grams: long documents (newsgroup posts
# have ~8,000 at the 99th percentile) would otherwise make the training arrays gigabytes wide,
# and the cut grams are each row's lightest.
MAX_GRAMS_CAP = 4096
# Bounds a loaded file must keep (generous for real use; a hostile file must not make voxpop
# allocate gigabytes): 2**24 buckets are a 64 MB idf table (the default is 2**20); rows keep at
# most MAX_GRAMS grams (8 bytes each); char grams of at most MAX_CHAR_GRAM characters.
MAX_BUCKETS = 2**24
MAX_GRAMS = 65536
MAX_CHAR_GRAM = 16


class HashedNgrams:
    """TF-IDF weights of hashed word and char_wb n-grams, fitted (idf, max_grams) on training rows.

    Example:
        grams = HashedNgrams(buckets=2**18).fit(train_texts)
        ids, weights = grams.transform(texts)
    """

    def __init__(self, *, buckets=2**18, word_ngrams=(1, 2), char_ngrams=(2, 5), min_df=2,
                 max_grams=None, max_grams_percentile=99.0):
        """`word_ngrams`/`char_ngrams`: (low, high) sizes, or None for no grams of that kind."""
        if buckets < 2:
            raise VoxpopError(f"ngram buckets must be >= 2 (got {buckets})")
        self.buckets = int(buckets)
        self.word_ngrams = _sizes("word_ngrams", word_ngrams)
        self.char_ngrams = _sizes("char_ngrams", char_ngrams)
        if self.word_ngrams and self.word_ngrams[1] > 2:
            raise VoxpopError(f"word_ngrams may reach bigrams at most (got {self.word_ngrams})")
        if not (self.word_ngrams or self.char_ngrams):
            raise VoxpopError("word_ngrams and char_ngrams are both None: no grams to hash")
        self.min_df = int(min_df)
        self.max_grams_option = max_grams
        self.max_grams_percentile = float(max_grams_percentile)
        # Fitted state, set by fit() or from_dict().
        self.idf: np.ndarray | None = None  # float32 [buckets]; 0 = never kept (df < min_df)
        self.max_grams: int | None = None

    # --- fitting ---------------------------------------------------------------------------------

    def fit(self, texts: list[str]) -> HashedNgrams:
        rows, _, ids, _ = self._counts(texts)
        n_docs = len(texts)
        # Documents per bucket: a bucket in both blocks of a row counts once. (A sort and a diff:
        # numpy's np.unique without counts hashes, measured 4x slower on 12M keys.)
        keys = np.sort(rows * self.buckets + ids)
        distinct = keys[np.concatenate([[True], keys[1:] != keys[:-1]])]
        df = np.bincount(distinct % self.buckets, minlength=self.buckets)
        idf = np.log((1.0 + n_docs) / (1.0 + df)) + 1.0
        # Rounded to 4 decimals so that the JSON form (see to_dict) round-trips bit for bit.
        self.idf = np.where(df >= self.min_df, np.round(idf, 4), 0.0).astype(np.float32)
        self.idf[0] = 0.0
        kept_per_row = np.bincount(rows[self.idf[ids] > 0], minlength=n_docs)
        if self.max_grams_option is not None:
            self.max_grams = int(self.max_grams_option)
        else:
            percentile = math.ceil(np.percentile(kept_per_row, self.max_grams_percentile))
            self.max_grams = max(1, min(percentile, MAX_GRAMS_CAP))
        if self.max_grams < 1:
            raise VoxpopError(f"max_grams must be >= 1 (got {self.max_grams_option})")
        return self

    # --- transforming ----------------------------------------------------------------------------

    def transform(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """(`grams` int32 [n, width], `gram_weights` float32 [n, width]), width <= max_grams."""
        if self.idf is None:
            raise VoxpopError("the n-gram hasher is not fitted: call fit() first")
        n = len(texts)
        rows, blocks, ids, counts = self._counts(texts)
        weights = (1.0 + np.log(counts)) * self.idf[ids]
        kept = weights > 0
        rows, blocks, ids, weights = rows[kept], blocks[kept], ids[kept], weights[kept]
        # Each block of a row has unit L2 norm, as in a union of two TfidfVectorizers; the norms
        # are those of the whole row, before any cut.
        norms = np.sqrt(np.bincount(rows * 2 + blocks, weights=weights * weights, minlength=2 * n))
        weights = weights / norms[rows * 2 + blocks]
        per_row = np.bincount(rows, minlength=n)
        over = np.flatnonzero(per_row[rows] > self.max_grams)
        if len(over):
            # Heaviest grams first within each row that is too long, so the cut below keeps the
            # heaviest. A row's entries are contiguous (sorted by row), so reordering in place works.
            order = over[np.lexsort((-weights[over], rows[over]))]
            ids[over], weights[over] = ids[order], weights[order]
        rank = np.arange(len(rows)) - np.repeat(np.cumsum(per_row) - per_row, per_row)
        keep = rank < self.max_grams
        width = int(min(self.max_grams, per_row.max(initial=0))) or 1
        grams = np.zeros((n, width), dtype=np.int32)
        gram_weights = np.zeros((n, width), dtype=np.float32)
        grams[rows[keep], rank[keep]] = ids[keep]
        gram_weights[rows[keep], rank[keep]] = weights[keep]
        return grams, gram_weights

    def _counts(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Distinct (row, block, bucket) triples with their counts, sorted in that order; block 0 is
        the word grams, 1 the char grams (a bucket may hold one of each: they are kept apart)."""
        lowered = [text.lower() for text in texts]
        parts_rows, parts_hashes, parts_blocks = [], [], []

        def add(rows: np.ndarray, hashes: np.ndarray, block: int) -> None:
            parts_rows.append(rows)
            parts_hashes.append(hashes)
            parts_blocks.append(np.full(len(rows), block, dtype=np.int64))

        if self.word_ngrams:
            words, word_rows = _flatten([_WORD.findall(text) for text in lowered])
            distinct, positions = _distinct(words)
            hashes = np.fromiter((zlib.crc32(word.encode("utf-8", "surrogatepass"))
                                  for word in distinct), dtype=np.uint64, count=len(distinct))
            hashes = _mix(hashes)[positions]
            if self.word_ngrams[0] == 1:
                add(word_rows, hashes, 0)
            if self.word_ngrams[1] == 2 and len(words) > 1:
                same_row = word_rows[1:] == word_rows[:-1]
                add(word_rows[1:][same_row], _mix((hashes[:-1] * _PAIR) ^ hashes[1:])[same_row], 0)
        if self.char_ngrams:
            chunks, chunk_rows = _flatten([text.split() for text in lowered])
            distinct, positions = _distinct(chunks)
            per_distinct, flat = self._char_gram_hashes(distinct)
            per_chunk, hashes = _gather(per_distinct, flat, positions)
            add(np.repeat(chunk_rows, per_chunk), hashes, 1)
        rows = np.concatenate([np.zeros(0, dtype=np.int64), *parts_rows])
        hashes = np.concatenate([np.zeros(0, dtype=np.uint64), *parts_hashes])
        blocks = np.concatenate([np.zeros(0, dtype=np.int64), *parts_blocks])
        ids = (hashes % np.uint64(self.buckets - 1)).astype(np.int64) + 1
        keys, counts = np.unique((rows * 2 + blocks) * self.buckets + ids, return_counts=True)
        return keys // (2 * self.buckets), (keys // self.buckets) % 2, keys % self.buckets, counts

    def _char_gram_hashes(self, words: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Per word, how many char_wb grams it has; and all their hashes, grouped by word."""
        padded = [f" {word} " for word in words]
        lengths = np.fromiter(map(len, padded), dtype=np.int64, count=len(padded))
        codes = np.frombuffer("".join(padded).encode("utf-32-le", "surrogatepass"),
                              dtype=np.uint32).astype(np.uint64)
        starts = np.cumsum(lengths) - lengths
        owner = np.repeat(np.arange(len(words)), lengths)
        offset = np.arange(len(codes)) - starts[owner]
        owners, hashes = [], []
        low, high = self.char_ngrams
        for size in range(low, high + 1):
            begins = np.flatnonzero(offset + size <= lengths[owner])
            owners.append(owner[begins])
            hashes.append(_string_hashes(codes, begins, np.full(len(begins), size)))
        # As scikit-learn's char_wb: a padded word shorter than every size is one gram, once.
        short = np.flatnonzero(lengths < low)
        owners.append(short)
        hashes.append(_string_hashes(codes, starts[short], lengths[short]))
        owners = np.concatenate(owners)
        order = np.argsort(owners, kind="stable")
        return np.bincount(owners, minlength=len(words)), np.concatenate(hashes)[order]

    # --- JSON ------------------------------------------------------------------------------------

    def to_dict(self) -> dict:
        if self.idf is None:
            raise VoxpopError("the n-gram hasher is not fitted: call fit() first")
        # Only the kept buckets, as [bucket, idf] pairs: most of the table is zeros.
        kept = np.flatnonzero(self.idf)
        return {"buckets": self.buckets, "word_ngrams": self.word_ngrams and list(self.word_ngrams),
                "char_ngrams": self.char_ngrams and list(self.char_ngrams), "min_df": self.min_df,
                "max_grams_option": self.max_grams_option,
                "max_grams_percentile": self.max_grams_percentile, "max_grams": self.max_grams,
                "idf_buckets": kept.tolist(),
                "idf_values": [round(float(v), 4) for v in self.idf[kept]]}

    @classmethod
    def from_dict(cls, data: dict, *, source: str = "ngrams") -> HashedNgrams:
        """What `to_dict` wrote, validated (NgramsRecord) before anything is allocated."""
        record = data if isinstance(data, NgramsRecord) else NgramsRecord.from_value(data, source=source)
        grams = cls(buckets=record.buckets, word_ngrams=record.word_ngrams,
                    char_ngrams=record.char_ngrams, min_df=record.min_df,
                    max_grams=record.max_grams_option,
                    max_grams_percentile=record.max_grams_percentile)
        grams.idf = np.zeros(grams.buckets, dtype=np.float32)
        grams.idf[np.asarray(record.idf_buckets, dtype=np.int64)] = record.idf_values
        grams.max_grams = record.max_grams
        return grams


GramSizes = Annotated[list[Annotated[int, Field(ge=1, le=MAX_CHAR_GRAM)]],
                      Field(min_length=2, max_length=2)]


class NgramsRecord(Record):
    """The `ngrams` object of preprocess.json (HashedNgrams.to_dict), with its bounds."""

    buckets: Annotated[int, Field(ge=2, le=MAX_BUCKETS)]
    word_ngrams: GramSizes | None
    char_ngrams: GramSizes | None
    min_df: Annotated[int, Field(ge=1, le=2**31)]
    max_grams_option: Annotated[int, Field(ge=1, le=MAX_GRAMS)] | None
    max_grams_percentile: Annotated[float, Field(gt=0, le=100)]
    max_grams: Annotated[int, Field(ge=1, le=MAX_GRAMS)]
    idf_buckets: Annotated[list[Annotated[int, Field(ge=1)]], Field(max_length=MAX_BUCKETS)]
    idf_values: Annotated[list[Annotated[float, Field(gt=0)]], Field(max_length=MAX_BUCKETS)]

    @model_validator(mode="after")
    def _consistent(self) -> NgramsRecord:
        for option, sizes in (("word_ngrams", self.word_ngrams), ("char_ngrams", self.char_ngrams)):
            if sizes is not None and sizes[0] > sizes[1]:
                raise ValueError(f"{option}: low {sizes[0]} is above high {sizes[1]}")
        if self.word_ngrams is not None and self.word_ngrams[1] > 2:
            raise ValueError(f"word_ngrams may reach bigrams at most (got {self.word_ngrams})")
        if self.word_ngrams is None and self.char_ngrams is None:
            raise ValueError("word_ngrams and char_ngrams are both null: no grams to hash")
        if len(self.idf_buckets) != len(self.idf_values):
            raise ValueError(f"ngram idf table is inconsistent: {len(self.idf_buckets)} buckets, "
                             f"{len(self.idf_values)} values")
        if self.idf_buckets and max(self.idf_buckets) >= self.buckets:
            raise ValueError(f"ngram idf table is inconsistent with its bucket count "
                             f"({max(self.idf_buckets)} >= {self.buckets})")
        if len(set(self.idf_buckets)) != len(self.idf_buckets):
            raise ValueError("ngram idf table lists a bucket twice")
        return self


def _sizes(option: str, sizes) -> tuple[int, int] | None:
    if sizes is None:
        return None
    low, high = (int(n) for n in sizes)
    if not 1 <= low <= high:
        raise VoxpopError(f"{option} must be (low, high) with 1 <= low <= high (got {(low, high)})")
    return low, high


def _flatten(lists: list[list[str]]) -> tuple[list[str], np.ndarray]:
    """All items flat, and the row of each."""
    lengths = np.fromiter(map(len, lists), dtype=np.int64, count=len(lists))
    return [item for items in lists for item in items], np.repeat(np.arange(len(lists)), lengths)


def _distinct(items: list[str]) -> tuple[list[str], np.ndarray]:
    """The distinct items in first-seen order, and the position of each item among them."""
    index: dict[str, int] = {}
    positions = np.fromiter((index.setdefault(item, len(index)) for item in items),
                            dtype=np.int64, count=len(items))
    return list(index), positions


def _gather(per_distinct: np.ndarray, flat: np.ndarray, positions: np.ndarray):
    """Expand per-distinct-item hash lists (counts + flat) to every occurrence (counts + flat)."""
    per_item = per_distinct[positions]
    starts = np.cumsum(per_distinct) - per_distinct
    within = np.arange(per_item.sum()) - np.repeat(np.cumsum(per_item) - per_item, per_item)
    return per_item, flat[np.repeat(starts[positions], per_item) + within]


def _string_hashes(codes: np.ndarray, begins: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """Hash of each code-point string codes[b:b + s]: a polynomial (uint64, wrapping) with the
    length folded in, so equal strings hash equal wherever they occur."""
    hashes = np.zeros(len(begins), dtype=np.uint64)
    for k in range(int(sizes.max(initial=0))):
        active = k < sizes
        hashes[active] = hashes[active] * _POLY + codes[begins[active] + k]
    return _mix(hashes + sizes.astype(np.uint64) * _PAIR)


def _mix(hashes: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: every input bit reaches every output bit before the modulo."""
    hashes = hashes ^ (hashes >> np.uint64(30))
    hashes = hashes * np.uint64(0xBF58476D1CE4E5B9)
    hashes = hashes ^ (hashes >> np.uint64(27))
    hashes = hashes * np.uint64(0x94D049BB133111EB)
    return hashes ^ (hashes >> np.uint64(31))
