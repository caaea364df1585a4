"""The Preprocessor: raw texts (+ the user's numeric columns) -> model inputs, stored as JSON."""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
from pydantic import Field, model_validator

from voxpop.data.atomic import write_json
from voxpop.data.errors import VoxpopError
from voxpop.data.features import ANALYSIS, FEATURE_NAMES, StandardScaler, engineered_features
from voxpop.data.ngrams import HashedNgrams, NgramsRecord
from voxpop.data.options import MAX_LEN, MAX_LEN_PERCENTILE, MAX_TOKENS, MIN_FREQ
from voxpop.data.records import MAX_NAME_CHARS, FiniteFloat, Name, Record, load_json
from voxpop.data.sentence import MAX_LENGTH, TOKEN_INPUTS, SentenceTokenizer
from voxpop.data.text import (
    LEGACY_PATTERNS,
    TOKENIZERS,
    CleaningOptions,
    TokenBatch,
    Tokenizer,
    blocks,
)
from voxpop.data.vocab import Vocabulary, pad_sequences

# 2 names the tokenizer (`tokenizer`); 1 stored its pattern (`tokenizer_pattern`) and still loads
# when the pattern is one voxpop wrote.
FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)
# A 30,000-token vocabulary is ~1 MB of JSON; a bundle may come from someone else, so a file far
# larger than any real vocabulary is refused before it is parsed into memory.
MAX_JSON_BYTES = 256 * 1024 * 1024
# Bounds on what a preprocessor may hold, checked at fit and before a loaded file allocates
# anything (generous for real use): tokens per row (MAX_LEN, in `options`: tweets need ~40, long
# documents a few thousand), vocabulary ids (30,000 by default), labels, user feature columns.
MAX_VOCABULARY = 1_000_000
MAX_LABELS = 10_000
MAX_USER_FEATURES = 10_000
SIDES = ("pre", "post")
# Every model input the Preprocessor makes, with its ONNX/numpy dtype.
INPUT_DTYPES = {
    "tokens": "int32",
    "features": "float32",
    "grams": "int32",
    "gram_weights": "float32",
    **TOKEN_INPUTS,
}
# The largest tokenizer.json a preprocessor may carry (all-MiniLM-L6-v2's is 0.5 MB).
MAX_SENTENCE_TOKENIZER_BYTES = 64 * 1024 * 1024


class Preprocessor:
    """Cleaning, tokenizer, vocabulary, padding, label list, scaled dense features and hashed
    TF-IDF n-grams.

    Fit on the training split only; `encode` then turns any texts into
    `{"tokens": int32 [n, max_len], "features": float32 [n, n_features]}` and, with `ngrams`,
    `"grams"` (int32 [n, width]) and `"gram_weights"` (float32 [n, width]); see `ngrams.py`;
    and with a `sentence_tokenizer` (a pretrained sentence encoder's, `voxpop.data.sentence`),
    `"input_ids"`/`"attention_mask"` (int64 [n, word pieces]).

    Example:
        pre = Preprocessor(max_len=40).fit(train.texts, train.labels)
        arrays = pre.encode(["what a great flight :)"])
        pre.to_json("preprocess.json")
    """

    def __init__(
        self,
        *,
        lowercase=True,
        replace_urls=True,
        replace_mentions=True,
        replace_numbers=True,
        split_hashtags=True,
        squeeze_repeats=True,
        keep_emoji=True,
        max_tokens=MAX_TOKENS,
        min_freq=MIN_FREQ,
        max_len=None,
        max_len_percentile=MAX_LEN_PERCENTILE,
        padding="pre",
        truncating="post",
        engineered_features=True,
        ngrams=True,
        ngram_buckets=2**20,
        sentence_tokenizer: SentenceTokenizer | None = None,
    ):
        self.cleaning = CleaningOptions(
            lowercase=lowercase,
            replace_urls=replace_urls,
            replace_mentions=replace_mentions,
            replace_numbers=replace_numbers,
            split_hashtags=split_hashtags,
            squeeze_repeats=squeeze_repeats,
            keep_emoji=keep_emoji,
        )
        self.max_tokens = max_tokens
        self.min_freq = min_freq
        self.max_len_option = max_len
        self.max_len_percentile = max_len_percentile
        self.padding = _choice("padding", padding, SIDES)
        self.truncating = _choice("truncating", truncating, SIDES)
        self.engineered_features = engineered_features
        self.ngram_buckets = ngram_buckets if ngrams else None  # None: no n-grams
        self.tokenizer = Tokenizer(self.cleaning)
        self.sentence_tokenizer = sentence_tokenizer  # not fitted: the pretrained model's own
        # Fitted state, set by fit() or from_json().
        self.vocabulary: Vocabulary | None = None
        self.max_len: int | None = None
        self.labels: list[str] = []
        self.user_feature_names: list[str] = []
        self.scaler = StandardScaler()
        self.ngrams: HashedNgrams | None = None
        self.fingerprint: str | None = None

    # --- fitting ---------------------------------------------------------------------------------

    def fit(self, texts, labels, features=None, feature_names=()) -> Preprocessor:
        """Fit vocabulary, max_len, label list and scaler on the TRAINING rows only."""
        texts = _as_texts(texts)
        labels = np.asarray(labels).astype(str)
        _check_lengths(texts, labels, features, feature_names)
        self.labels = sorted(set(labels.tolist()))
        if len(self.labels) < 2:
            raise VoxpopError(
                f"training labels have {len(self.labels)} class(es) "
                f"({', '.join(self.labels)}); a classifier needs at least 2"
            )
        if len(self.labels) > MAX_LABELS:
            raise VoxpopError(
                f"training labels have {len(self.labels)} classes; voxpop handles at "
                f"most {MAX_LABELS}"
            )
        if self.max_tokens > MAX_VOCABULARY:
            raise VoxpopError(f"max_tokens must be <= {MAX_VOCABULARY} (got {self.max_tokens})")
        row_blocks = blocks(texts)
        batches = [self.tokenizer.tokenize_batch(texts[rows]) for rows in row_blocks]
        self.vocabulary = Vocabulary.build(
            itertools.chain.from_iterable(b.tokens for b in batches),
            max_tokens=self.max_tokens,
            min_freq=self.min_freq,
        )
        self.max_len = self._fit_max_len(np.concatenate([b.lengths for b in batches]))
        self.user_feature_names = [str(n) for n in feature_names]
        if features is not None:
            features = np.asarray(features, dtype=np.float64).reshape(len(texts), -1)
        self.scaler.fit(
            np.vstack(
                [
                    self._raw_features(
                        texts[rows], None if features is None else features[rows], batch
                    )
                    for rows, batch in zip(row_blocks, batches)
                ]
            )
        )
        if self.ngram_buckets is not None:
            self.ngrams = HashedNgrams(buckets=self.ngram_buckets).fit(texts)
        self.fingerprint = training_fingerprint(texts, labels)
        return self

    def _fit_max_len(self, lengths: list[int]) -> int:
        if self.max_len_option is not None:
            if not 1 <= int(self.max_len_option) <= MAX_LEN:
                raise VoxpopError(
                    f"max_len must be between 1 and {MAX_LEN} (got {self.max_len_option})"
                )
            return int(self.max_len_option)
        if not 0 < self.max_len_percentile <= 100:
            raise VoxpopError(
                f"max_len_percentile must be in (0, 100] (got {self.max_len_percentile})"
            )
        return min(MAX_LEN, max(1, math.ceil(np.percentile(lengths, self.max_len_percentile))))

    # --- encoding --------------------------------------------------------------------------------

    def encode(self, texts, features=None, *, inputs=None) -> dict[str, np.ndarray]:
        """{"tokens": int32 [n, max_len] (PAD=0, OOV=1), "features": float32 [n, n_features]} and,
        when fitted with n-grams, "grams"/"gram_weights". `inputs` (names) limits the work to the
        inputs asked for; the default is all of `.input_names`."""
        self._check_fitted()
        wanted = self.input_names if inputs is None else list(inputs)
        unknown = sorted(set(wanted) - set(self.input_names))
        if unknown:
            raise VoxpopError(
                f"input(s) {', '.join(unknown)} are not made by this preprocessor "
                f"(it makes {', '.join(self.input_names)})"
            )
        texts = _as_texts(texts)
        if features is not None or self.user_feature_names:
            _check_lengths(texts, None, features, self.user_feature_names)
            features = np.asarray(features, dtype=np.float64).reshape(len(texts), -1)
        n = len(texts)
        encoded: dict[str, np.ndarray] = {}
        if "grams" in wanted or "gram_weights" in wanted:  # filled block by block, cut at the end
            encoded["grams"] = np.zeros((n, self.ngrams.max_grams), dtype=np.int32)
            encoded["gram_weights"] = np.zeros((n, self.ngrams.max_grams), dtype=np.float32)
        width = 1
        for rows in blocks(texts):
            part = self._encode_block(
                texts[rows], None if features is None else features[rows], wanted
            )
            for name, block in part.items():
                if name not in encoded:
                    encoded[name] = np.empty((n, block.shape[1]), dtype=block.dtype)
                encoded[name][rows] = block
            if "grams" in encoded:
                width = max(
                    width,
                    self.ngrams.transform_into(
                        texts[rows], encoded["grams"][rows], encoded["gram_weights"][rows]
                    ),
                )
        if "grams" in encoded and width < self.ngrams.max_grams:  # as wide as the longest row
            encoded["grams"] = encoded["grams"][:, :width].copy()
            encoded["gram_weights"] = encoded["gram_weights"][:, :width].copy()
        if TOKEN_INPUTS.keys() & set(wanted):  # all rows at once: padded to the call's longest
            encoded.update(self.sentence_tokenizer.encode(texts))
        return {name: encoded[name] for name in INPUT_DTYPES if name in encoded}

    def _encode_block(self, texts: list[str], features, wanted: list[str]) -> dict[str, np.ndarray]:
        """tokens and features of a block of rows (encode writes its grams in place)."""
        encoded = {}
        if "tokens" in wanted or "features" in wanted:
            batch = self.tokenizer.tokenize_batch(texts)
        if "tokens" in wanted:
            ids = self.vocabulary.ids(batch.uniques)[batch.codes]
            encoded["tokens"] = pad_sequences(
                ids,
                batch.offsets,
                max_len=self.max_len,
                padding=self.padding,
                truncating=self.truncating,
            )
        if "features" in wanted:
            encoded["features"] = self.scaler.transform(self._raw_features(texts, features, batch))
        return encoded

    def _raw_features(self, texts: list[str], features, batch: TokenBatch) -> np.ndarray:
        # The features read texts through the default tokenizer: reuse our tokens when we are it.
        same = self.cleaning == ANALYSIS.options and self.tokenizer.pattern == ANALYSIS.pattern
        parts = (
            [engineered_features(texts, batch if same else None)]
            if self.engineered_features
            else []
        )
        if self.user_feature_names:
            parts.append(np.asarray(features, dtype=np.float64).reshape(len(texts), -1))
        return np.hstack(parts) if parts else np.zeros((len(texts), 0))

    def encode_labels(self, labels) -> np.ndarray:
        """int64 [n] positions in `.labels`; an unknown label is a VoxpopError."""
        self._check_fitted()
        index = {label: i for i, label in enumerate(self.labels)}
        values = np.asarray(labels).astype(str)
        unknown = sorted(set(values.tolist()) - index.keys())
        if unknown:
            raise VoxpopError(
                f"unknown label(s) {', '.join(map(repr, unknown[:5]))} "
                f"(this model knows: {', '.join(self.labels)})"
            )
        return np.fromiter((index[v] for v in values), dtype=np.int64, count=len(values))

    # --- fitted facts ----------------------------------------------------------------------------

    @property
    def n_tokens(self) -> int:
        """Vocabulary size including PAD and OOV."""
        self._check_fitted()
        return len(self.vocabulary)

    @property
    def feature_names(self) -> list[str]:
        """Engineered feature names, then the user's feature columns."""
        engineered = list(FEATURE_NAMES) if self.engineered_features else []
        return engineered + self.user_feature_names

    @property
    def n_features(self) -> int:
        return len(self.feature_names)

    @property
    def n_buckets(self) -> int:
        """Hashed n-gram ids are in [0, n_buckets) (0 = padding); 0 without n-grams."""
        return self.ngrams.buckets if self.ngrams is not None else 0

    @property
    def input_names(self) -> list[str]:
        """The model inputs `encode` makes."""
        return [
            name
            for name in INPUT_DTYPES
            if (self.ngrams is not None or name not in ("grams", "gram_weights"))
            and (self.sentence_tokenizer is not None or name not in TOKEN_INPUTS)
        ]

    def _check_fitted(self) -> None:
        if self.vocabulary is None:
            raise VoxpopError(
                "the Preprocessor is not fitted: call fit() or load it with from_json()"
            )

    # --- JSON ------------------------------------------------------------------------------------

    def to_dict(self) -> dict:
        """Plain-JSON form of options and fitted state."""
        self._check_fitted()
        return {
            "format_version": FORMAT_VERSION,
            "cleaning": self.cleaning.to_json(),
            "tokenizer": self.tokenizer.name,
            "max_tokens": self.max_tokens,
            "min_freq": self.min_freq,
            "max_len_option": self.max_len_option,
            "max_len_percentile": self.max_len_percentile,
            "max_len": self.max_len,
            "padding": self.padding,
            "truncating": self.truncating,
            "pad_id": 0,
            "oov_id": 1,
            "vocabulary": self.vocabulary.tokens,
            "labels": self.labels,
            "engineered_features": self.engineered_features,
            "feature_names": self.feature_names,
            "user_feature_names": self.user_feature_names,
            "feature_means": self.scaler.means.tolist(),
            "feature_stds": self.scaler.stds.tolist(),
            "ngrams": self.ngrams.to_dict() if self.ngrams is not None else None,
            "fingerprint": self.fingerprint,
            # only when set, so files without one stay as earlier voxpops wrote them
            **(
                {"sentence_tokenizer": self.sentence_tokenizer.to_dict()}
                if self.sentence_tokenizer is not None
                else {}
            ),
        }

    def to_json(self, path) -> None:
        """Write preprocess.json atomically."""
        write_json(path, self.to_dict())

    @classmethod
    def from_dict(cls, data: dict, *, source: str = "preprocess.json") -> Preprocessor:
        """What `to_dict` wrote, validated (PreprocessRecord: types, bounds, consistency) before
        anything is allocated; VoxpopError naming `source` and the first bad field."""
        if not isinstance(data, dict):
            raise VoxpopError(f"{source}: expected a JSON object at the top level")
        version = data.get("format_version")
        if version not in READABLE_VERSIONS or isinstance(version, bool):
            raise VoxpopError(
                f"{source}: format_version {version!r} is not supported (this voxpop "
                f"reads {' and '.join(map(str, READABLE_VERSIONS))})"
            )
        record = PreprocessRecord.from_value(data, source=source)
        pre = cls(
            **record.cleaning.model_dump(),
            max_tokens=record.max_tokens,
            min_freq=record.min_freq,
            max_len=record.max_len_option,
            max_len_percentile=record.max_len_percentile,
            padding=record.padding,
            truncating=record.truncating,
            engineered_features=record.engineered_features,
            ngrams=record.ngrams is not None,
            ngram_buckets=record.ngrams.buckets if record.ngrams else 2**20,
        )
        pre.tokenizer = Tokenizer(pre.cleaning, record.tokenizer_name)
        pre.vocabulary = Vocabulary(record.vocabulary)
        pre.max_len = record.max_len
        pre.labels = list(record.labels)
        pre.user_feature_names = list(record.user_feature_names)
        _check_engineered_names(pre, record.feature_names, source)
        pre.scaler = StandardScaler(record.feature_means, record.feature_stds)
        pre.fingerprint = record.fingerprint
        if record.ngrams is not None:
            pre.ngrams = HashedNgrams.from_dict(record.ngrams, source=source)
        if record.sentence_tokenizer is not None:
            pre.sentence_tokenizer = SentenceTokenizer(
                record.sentence_tokenizer.tokenizer,
                max_length=record.sentence_tokenizer.max_length,
                source=f"{source}: sentence_tokenizer",
            )
        return pre

    @classmethod
    def from_json_bytes(cls, data: bytes, *, source: str) -> Preprocessor:
        """`from_json` for the file's bytes already read (e.g. verified against a checksum)."""
        if len(data) > MAX_JSON_BYTES:
            raise VoxpopError(
                f"{source}: {len(data)} bytes is larger than a preprocessor file may "
                f"be ({MAX_JSON_BYTES})"
            )
        return cls.from_dict(load_json(data, source=source), source=source)

    @classmethod
    def from_json(cls, path) -> Preprocessor:
        """Load what `to_json` wrote; encodes exactly as the saved Preprocessor did."""
        path = Path(path)
        try:
            size = path.stat().st_size
            if size > MAX_JSON_BYTES:
                raise VoxpopError(
                    f"{path}: {size} bytes is larger than a preprocessor file may be "
                    f"({MAX_JSON_BYTES})"
                )
            data = path.read_bytes()
        except FileNotFoundError:
            raise VoxpopError(f"{path}: file not found") from None
        return cls.from_json_bytes(data, source=str(path))


class CleaningRecord(Record):
    """The `cleaning` object of preprocess.json (CleaningOptions)."""

    lowercase: bool
    replace_urls: bool
    replace_mentions: bool
    replace_numbers: bool
    split_hashtags: bool
    squeeze_repeats: bool
    keep_emoji: bool


class SentenceTokenizerRecord(Record):
    """The `sentence_tokenizer` object of preprocess.json: a Hugging Face tokenizer.json (checked
    by `tokenizers` itself when loaded) and the word pieces kept per text."""

    max_length: Annotated[int, Field(ge=2, le=MAX_LENGTH)]
    tokenizer: dict

    @model_validator(mode="after")
    def _bounded(self) -> SentenceTokenizerRecord:
        if len(json.dumps(self.tokenizer)) > MAX_SENTENCE_TOKENIZER_BYTES:
            raise ValueError(f"tokenizer: larger than {MAX_SENTENCE_TOKENIZER_BYTES} bytes")
        return self


Side = Literal["pre", "post"]
Token = Annotated[str, Field(min_length=1, max_length=MAX_NAME_CHARS)]
Names = Annotated[list[Name], Field(max_length=len(FEATURE_NAMES) + MAX_USER_FEATURES)]
Numbers = Annotated[list[FiniteFloat], Field(max_length=len(FEATURE_NAMES) + MAX_USER_FEATURES)]


class PreprocessRecord(Record):
    """preprocess.json as `Preprocessor.to_dict` writes it, with the bounds a loaded file must
    keep (MAX_LEN, MAX_VOCABULARY, MAX_LABELS, MAX_USER_FEATURES, and ngrams.py's)."""

    format_version: Literal[1, 2]
    cleaning: CleaningRecord
    tokenizer: Name | None = None  # format 2
    tokenizer_pattern: Annotated[str, Field(max_length=100_000)] | None = None  # format 1
    max_tokens: Annotated[int, Field(ge=3, le=MAX_VOCABULARY)]
    min_freq: Annotated[int, Field(ge=1, le=2**31)]
    max_len_option: Annotated[int, Field(ge=1, le=MAX_LEN)] | None
    max_len_percentile: Annotated[float, Field(gt=0, le=100)]
    max_len: Annotated[int, Field(ge=1, le=MAX_LEN)]
    padding: Side
    truncating: Side
    pad_id: Literal[0]
    oov_id: Literal[1]
    vocabulary: Annotated[list[Token], Field(max_length=MAX_VOCABULARY - 2)]
    labels: Annotated[list[Name], Field(min_length=2, max_length=MAX_LABELS)]
    engineered_features: bool
    feature_names: Names
    user_feature_names: Annotated[list[Name], Field(max_length=MAX_USER_FEATURES)]
    feature_means: Numbers
    feature_stds: Annotated[
        list[Annotated[float, Field(gt=0, allow_inf_nan=False)]],
        Field(max_length=len(FEATURE_NAMES) + MAX_USER_FEATURES),
    ]
    ngrams: NgramsRecord | None = None  # absent in files written before n-grams existed
    fingerprint: Annotated[str, Field(pattern="^[0-9a-f]{64}$")] | None
    sentence_tokenizer: SentenceTokenizerRecord | None = None  # a sentence encoder's, if any

    @property
    def tokenizer_name(self) -> str:
        """The tokenizer's name (format 1's pattern mapped through LEGACY_PATTERNS)."""
        if self.tokenizer is not None:
            return self.tokenizer
        return LEGACY_PATTERNS[_pattern_sha256(self.tokenizer_pattern)]

    @model_validator(mode="after")
    def _consistent(self) -> PreprocessRecord:
        self._check_tokenizer()
        try:  # one call for the whole vocabulary: a validator per token costs 5 ms per 30,000
            "".join(self.vocabulary).encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError(
                "vocabulary: a token holds a lone surrogate (not valid Unicode)"
            ) from None
        if len(self.vocabulary) > self.max_tokens - 2:
            raise ValueError(
                f"vocabulary: {len(self.vocabulary)} tokens, more than max_tokens "
                f"{self.max_tokens} allows (PAD and OOV count)"
            )
        for name, values in (
            ("vocabulary", self.vocabulary),
            ("labels", self.labels),
            ("feature_names", self.feature_names),
        ):
            if len(set(values)) != len(values):
                raise ValueError(f"{name}: an entry appears twice")
        if self.labels != sorted(self.labels):
            raise ValueError("labels: not sorted (voxpop stores them sorted)")
        if (
            self.feature_names[len(self.feature_names) - len(self.user_feature_names) :]
            != self.user_feature_names
        ):
            raise ValueError("feature_names: must end with user_feature_names")
        for name in ("feature_means", "feature_stds"):
            if len(getattr(self, name)) != len(self.feature_names):
                raise ValueError(
                    f"{name}: {len(getattr(self, name))} values for "
                    f"{len(self.feature_names)} feature_names"
                )
        return self

    def _check_tokenizer(self) -> None:
        if self.format_version == 2:
            if self.tokenizer_pattern is not None or self.tokenizer is None:
                raise ValueError("tokenizer: format 2 names its tokenizer (no tokenizer_pattern)")
            if self.tokenizer not in TOKENIZERS:
                raise ValueError(
                    f"tokenizer: unknown tokenizer {self.tokenizer[:100]!r} (this "
                    f"voxpop has {', '.join(TOKENIZERS)})"
                )
            return
        if self.tokenizer is not None or self.tokenizer_pattern is None:
            raise ValueError("tokenizer_pattern: format 1 stores its tokenizer's pattern")
        if _pattern_sha256(self.tokenizer_pattern) not in LEGACY_PATTERNS:
            raise ValueError(
                "tokenizer_pattern: not a pattern voxpop wrote; a bundle may not "
                "carry its own regular expression (tokenizers are named: "
                f"{', '.join(TOKENIZERS)})"
            )


def _pattern_sha256(pattern: str) -> str:
    return hashlib.sha256(pattern.encode("utf-8", "surrogatepass")).hexdigest()


def training_fingerprint(texts, labels) -> str:
    """sha256 of the training texts and labels in row order (JSON lines of [text, label])."""
    digest = hashlib.sha256()
    for text, label in zip(texts, labels):
        # surrogatepass: a lone surrogate (JSON can carry one) is hashed, not an error
        digest.update(
            json.dumps([text, str(label)], ensure_ascii=False).encode("utf-8", "surrogatepass")
            + b"\n"
        )
    return digest.hexdigest()


def _as_texts(texts) -> list[str]:
    # Callers may hand over a pandas column: a missing text (None/NaN) is the empty text.
    return [t if isinstance(t, str) else "" if t is None or t != t else str(t) for t in texts]


def _choice(option: str, value: str, valid: tuple[str, ...]) -> str:
    if value not in valid:
        raise VoxpopError(f"{option} must be one of {', '.join(valid)} (got {value!r})")
    return value


def _check_engineered_names(pre: Preprocessor, saved: list[str], source: str) -> None:
    # The models were trained on the saved columns; computing other ones would feed them
    # features they never saw (or the wrong width).
    if list(saved) == pre.feature_names:
        return
    differing = sorted(set(pre.feature_names) ^ set(saved))
    raise VoxpopError(
        f"{source}: its models were trained on {len(saved)} features, but this voxpop "
        f"computes {pre.n_features} ({', '.join(differing) or 'in another order'}); "
        "tune again with this voxpop, or use the voxpop that made the file"
    )


def _check_lengths(texts, labels, features, feature_names) -> None:
    n = len(texts)
    if labels is not None and len(labels) != n:
        raise VoxpopError(f"{len(labels)} labels for {n} texts: they must be aligned row by row")
    if feature_names and features is None:
        raise VoxpopError(
            f"feature columns {', '.join(feature_names)} expected but no features given"
        )
    if features is not None:
        shape = np.shape(features)
        if len(shape) != 2 or shape[0] != n or shape[1] != len(feature_names):
            raise VoxpopError(
                f"features have shape {shape}; expected ({n}, {len(feature_names)}) "
                f"for columns {', '.join(feature_names) or '(none given)'}"
            )
        finite = np.isfinite(np.asarray(features, dtype=np.float64))
        if not finite.all():
            row, col = np.argwhere(~finite)[0]
            raise VoxpopError(
                f"row {row + 1}, feature column '{feature_names[col]}': value is not "
                "a finite number"
            )
