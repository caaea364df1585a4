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
import pandas as pd
from pydantic import Field, model_validator

from voxpop.data.errors import VoxpopError
from voxpop.data.records import Record
from voxpop.data.text import blocks, expand, items_per_text, opening

# scikit-learn's default token pattern, (?u)\b\w\w+\b: a greedy \w\w+ matches whole runs of word
# characters, so the \b are implied (and it is a third faster).
_WORD = re.compile(r"\w\w+")
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

    def __init__(
        self,
        *,
        buckets=2**18,
        word_ngrams=(1, 2),
        char_ngrams=(2, 5),
        min_df=2,
        max_grams=None,
        max_grams_percentile=99.0,
    ):
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
        texts = list(texts)
        n_docs = len(texts)
        df = np.zeros(self.buckets, dtype=np.int64)
        entries = []  # per block of rows: (grams per row, bucket of each gram)
        for rows in blocks(texts):
            row_block, ids, _ = self._counts(texts[rows])
            df += np.bincount(self._distinct_in_rows(row_block, ids), minlength=self.buckets)
            entries.append(
                (
                    np.bincount(row_block >> 1, minlength=rows.stop - rows.start),
                    ids.astype(np.int32),
                )
            )
        idf = np.log((1.0 + n_docs) / (1.0 + df)) + 1.0
        # Rounded to 4 decimals so that the JSON form (see to_dict) round-trips bit for bit.
        self.idf = np.where(df >= self.min_df, np.round(idf, 4), 0.0).astype(np.float32)
        self.idf[0] = 0.0
        kept_per_row = np.concatenate(
            [np.zeros(0, dtype=np.int64)]
            + [
                np.bincount(
                    np.repeat(np.arange(len(per_row)), per_row)[self.idf[ids] > 0],
                    minlength=len(per_row),
                )
                for per_row, ids in entries
            ]
        )
        if self.max_grams_option is not None:
            self.max_grams = int(self.max_grams_option)
        else:
            percentile = math.ceil(np.percentile(kept_per_row, self.max_grams_percentile))
            self.max_grams = max(1, min(percentile, MAX_GRAMS_CAP))
        if self.max_grams < 1:
            raise VoxpopError(f"max_grams must be >= 1 (got {self.max_grams_option})")
        return self

    def _distinct_in_rows(self, row_block: np.ndarray, ids: np.ndarray) -> np.ndarray:
        """The buckets of the distinct (row, bucket) pairs: a bucket in both blocks of a row
        counts once. Each row's buckets are two sorted runs (word, char): timsort merges them."""
        keys = np.sort((row_block >> 1) * self.buckets + ids, kind="stable")
        return (
            keys[np.concatenate([[True], keys[1:] != keys[:-1]])] % self.buckets
            if len(keys)
            else ids
        )

    # --- transforming ----------------------------------------------------------------------------

    def transform(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """(`grams` int32 [n, width], `gram_weights` float32 [n, width]), width <= max_grams."""
        n = len(texts)
        grams = np.zeros((n, self.max_grams or 1), dtype=np.int32)
        gram_weights = np.zeros((n, self.max_grams or 1), dtype=np.float32)
        width = self.transform_into(texts, grams, gram_weights)
        if width == grams.shape[1]:
            return grams, gram_weights
        return grams[:, :width].copy(), gram_weights[:, :width].copy()

    def transform_into(self, texts: list[str], grams: np.ndarray, gram_weights: np.ndarray) -> int:
        """Write what `transform` returns into the first columns of zero-filled `grams` and
        `gram_weights` ([n, max_grams] or views of such rows); returns its width (at least 1)."""
        if self.idf is None:
            raise VoxpopError("the n-gram hasher is not fitted: call fit() first")
        n = len(texts)
        # Grams of a bucket with idf 0 (seen in fewer than min_df training texts) weigh 0: they are
        # dropped before counting, which leaves less to sort.
        row_block, ids, counts = self._counts(texts, kept=self.idf > 0)
        # Sublinear tf: 1 + log(count), which is 1 for the many grams seen once.
        weights = self.idf[ids].astype(np.float64)
        repeated = np.flatnonzero(counts > 1)
        weights[repeated] = (1.0 + np.log(counts[repeated])) * self.idf[ids[repeated]]
        rows = row_block >> 1
        # Each block of a row has unit L2 norm, as in a union of two TfidfVectorizers; the norms
        # are those of the whole row, before any cut.
        norms = np.sqrt(np.bincount(row_block, weights=weights * weights, minlength=2 * n))
        weights = weights / norms[row_block]
        per_row = np.bincount(rows, minlength=n)
        # Position of each gram in its row: rank = index - index of the row's first gram.
        rank = np.arange(len(rows)) - (np.cumsum(per_row) - per_row)[rows]
        keep = slice(None)
        if per_row.max(initial=0) > self.max_grams:
            over = np.flatnonzero(per_row[rows] > self.max_grams)
            # Heaviest grams first within each row that is too long, so the cut below keeps the
            # heaviest. A row's entries are contiguous (sorted by row), so reordering in place works.
            order = over[np.lexsort((-weights[over], rows[over]))]
            ids[over], weights[over] = ids[order], weights[order]
            keep = np.flatnonzero(rank < self.max_grams)
        grams[rows[keep], rank[keep]] = ids[keep]
        gram_weights[rows[keep], rank[keep]] = weights[keep]
        return int(min(self.max_grams, per_row.max(initial=0))) or 1

    def _counts(self, texts: list[str], kept: np.ndarray | None = None):
        """Distinct (row, block, bucket) triples with their counts, sorted in that order, as
        (row * 2 + block, bucket, count); block 0 is the word grams, 1 the char grams (a bucket
        may hold one of each: they are kept apart). `kept` (bool per bucket) drops the others."""
        lowered = [text.lower() for text in opening(texts)]
        # Words and char_wb grams both lie inside whitespace-separated chunks: each distinct
        # chunk is read once, then its grams are repeated for each of its occurrences.
        chunks, chunk_rows = items_per_text(lowered, str.split)
        codes, distinct = pd.factorize(chunks)
        distinct = distinct.tolist()
        keys = [np.zeros(0, dtype=np.int64)]
        if self.word_ngrams:
            rows, ids = self._word_grams(distinct, codes, chunk_rows, kept)
            keys.append(((rows * 2) << self._id_bits) | ids)
        if self.char_ngrams:
            rows, ids = self._char_grams(distinct, codes, chunk_rows, kept)
            keys.append(((rows * 2 + 1) << self._id_bits) | ids)
        # The keys come in three runs in row order (unigrams, bigrams, char grams): a stable sort
        # (timsort, which merges runs) is twice as fast here as numpy's default quicksort
        # (measured on 2,048 tweets, 340 keys each).
        keys = np.sort(np.concatenate(keys), kind="stable")
        starts = (
            np.flatnonzero(np.concatenate([[True], keys[1:] != keys[:-1]]))
            if len(keys)
            else np.zeros(0, dtype=np.int64)
        )
        counts = np.diff(np.append(starts, len(keys)))
        keys = keys[starts]
        row_block, ids = keys >> self._id_bits, keys & ((1 << self._id_bits) - 1)
        return row_block, ids, counts

    @property
    def _id_bits(self) -> int:
        """Bits of a bucket id: a sort key is (row * 2 + block) << _id_bits | bucket."""
        return (self.buckets - 1).bit_length()

    def _word_grams(
        self, chunks: list[str], codes: np.ndarray, chunk_rows: np.ndarray, kept: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(row, bucket) of every word unigram, then of every bigram (each in row order), from
        the distinct chunks and the chunk id and row of each occurrence."""
        # Most chunks are one word (alphanumeric); the others are searched, once each.
        words = [
            [chunk] if chunk.isalnum() and len(chunk) > 1 else _WORD.findall(chunk)
            for chunk in chunks
        ]
        per_chunk = np.fromiter(map(len, words), dtype=np.int64, count=len(words))
        # crc32 of each word (zlib's C code), mixed.
        hashes = _mix(
            np.fromiter(
                (
                    zlib.crc32(word.encode("utf-8", "surrogatepass"))
                    for chunk_words in words
                    for word in chunk_words
                ),
                dtype=np.uint64,
                count=int(per_chunk.sum()),
            )
        )
        per_occurrence, hashes = expand(per_chunk, hashes, codes)
        rows = np.repeat(chunk_rows, per_occurrence)  # the words of each text, in order
        parts = []
        if self.word_ngrams[0] == 1:
            parts.append((rows, self._bucket(hashes)))
        if self.word_ngrams[1] == 2 and len(hashes) > 1:
            same_row = np.flatnonzero(rows[1:] == rows[:-1])
            parts.append(
                (
                    rows[same_row],
                    self._bucket(_mix((hashes[same_row] * _PAIR) ^ hashes[same_row + 1])),
                )
            )
        if kept is not None:
            parts = [(part_rows[kept[ids]], ids[kept[ids]]) for part_rows, ids in parts]
        return (
            np.concatenate([np.zeros(0, dtype=np.int64)] + [r for r, _ in parts]),
            np.concatenate([np.zeros(0, dtype=np.int64)] + [i for _, i in parts]),
        )

    def _char_grams(
        self, chunks: list[str], codes: np.ndarray, chunk_rows: np.ndarray, kept: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(row, bucket) of every char_wb gram, in row order (as _word_grams)."""
        per_distinct, hashes = self._char_gram_hashes(chunks)
        buckets = self._bucket(hashes)
        if kept is not None:
            owner = np.repeat(np.arange(len(per_distinct)), per_distinct)[kept[buckets]]
            per_distinct, buckets = (
                np.bincount(owner, minlength=len(per_distinct)),
                buckets[kept[buckets]],
            )
        per_chunk, buckets = expand(per_distinct, buckets, codes)
        return np.repeat(chunk_rows, per_chunk), buckets

    def _bucket(self, hashes: np.ndarray) -> np.ndarray:
        """Bucket id in [1, buckets) of each hash (0 is padding)."""
        return (hashes % np.uint64(self.buckets - 1)).astype(np.int64) + 1

    def _char_gram_hashes(self, words: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Per word, how many char_wb grams it has; and all their hashes, grouped by word."""
        padded = [f" {word} " for word in words]
        lengths = np.fromiter(map(len, padded), dtype=np.int64, count=len(padded))
        low, high = self.char_ngrams
        # Zeros after the last word, so that every prefix below reads inside the array.
        codes = np.frombuffer(
            "".join(padded).encode("utf-32-le", "surrogatepass"), dtype=np.uint32
        ).astype(np.uint64)
        codes = np.concatenate([codes, np.zeros(high, dtype=np.uint64)])
        ends = np.cumsum(lengths)
        owner = np.repeat(np.arange(len(words)), lengths)
        room = ends[owner] - np.arange(len(owner))  # code points left in the word
        # One column per gram size, and one for a padded word shorter than every size (one gram,
        # the whole word, once, as scikit-learn's char_wb): a row per code point, so that taking
        # the valid cells row by row leaves each word's grams together.
        hashes = np.zeros((len(owner), high - low + 2), dtype=np.uint64)
        valid = np.zeros(hashes.shape, dtype=bool)
        short = np.zeros(len(owner), dtype=bool)
        short[(ends - lengths)[lengths < low]] = True
        # prefix[p] is the polynomial hash of the `size` code points from p (as _string_hashes).
        prefix = np.zeros(len(owner), dtype=np.uint64)
        for size in range(1, high + 1):
            prefix = prefix * _POLY + codes[size - 1 : size - 1 + len(owner)]
            length_term = np.uint64(size * int(_PAIR) % 2**64)  # the length folded in, wrapping
            if size >= low:
                hashes[:, size - low] = prefix + length_term
                valid[:, size - low] = room >= size
            elif short.any():
                whole = short & (room == size)
                hashes[whole, -1] = prefix[whole] + length_term
                valid[whole, -1] = True
        return np.bincount(owner, weights=valid.sum(axis=1), minlength=len(words)).astype(
            np.int64
        ), _mix(hashes[valid])

    # --- JSON ------------------------------------------------------------------------------------

    def to_dict(self) -> dict:
        if self.idf is None:
            raise VoxpopError("the n-gram hasher is not fitted: call fit() first")
        # Only the kept buckets, as [bucket, idf] pairs: most of the table is zeros.
        kept = np.flatnonzero(self.idf)
        return {
            "buckets": self.buckets,
            "word_ngrams": self.word_ngrams and list(self.word_ngrams),
            "char_ngrams": self.char_ngrams and list(self.char_ngrams),
            "min_df": self.min_df,
            "max_grams_option": self.max_grams_option,
            "max_grams_percentile": self.max_grams_percentile,
            "max_grams": self.max_grams,
            "idf_buckets": kept.tolist(),
            "idf_values": [round(float(v), 4) for v in self.idf[kept]],
        }

    @classmethod
    def from_dict(cls, data: dict, *, source: str = "ngrams") -> HashedNgrams:
        """What `to_dict` wrote, validated (NgramsRecord) before anything is allocated."""
        record = (
            data if isinstance(data, NgramsRecord) else NgramsRecord.from_value(data, source=source)
        )
        grams = cls(
            buckets=record.buckets,
            word_ngrams=record.word_ngrams,
            char_ngrams=record.char_ngrams,
            min_df=record.min_df,
            max_grams=record.max_grams_option,
            max_grams_percentile=record.max_grams_percentile,
        )
        grams.idf = np.zeros(grams.buckets, dtype=np.float32)
        grams.idf[np.asarray(record.idf_buckets, dtype=np.int64)] = record.idf_values
        grams.max_grams = record.max_grams
        return grams


GramSizes = Annotated[
    list[Annotated[int, Field(ge=1, le=MAX_CHAR_GRAM)]], Field(min_length=2, max_length=2)
]


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
            raise ValueError(
                f"ngram idf table is inconsistent: {len(self.idf_buckets)} buckets, "
                f"{len(self.idf_values)} values"
            )
        if self.idf_buckets and max(self.idf_buckets) >= self.buckets:
            raise ValueError(
                f"ngram idf table is inconsistent with its bucket count "
                f"({max(self.idf_buckets)} >= {self.buckets})"
            )
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
