"""Today's encoders, frozen as the reference the fast ones must equal array for array.

A verbatim copy of voxpop/data/text.py, features.py (without the scaler) and ngrams.py (without
JSON) at commit 8459b39, before encoding was made fast (issue 20). Kept inside the tests only, as
the oracle: bundles exported before that commit were trained on exactly these arrays, so the fast
encoders must reproduce them on any text (real rows, hostile ones). Do not edit it to follow the
package: it is the specification.
"""

from __future__ import annotations

import importlib.util
import math
import re
import zlib
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from voxpop.data.errors import VoxpopError

# --- text.py --------------------------------------------------------------------------------

URL = r"(?:https?://|www\.)\S+"
# Patterns start with a literal or class, and look behind only after it: Python's re scans much
# faster that way than with a leading look-behind.
MENTION = r"@(?<!\w@)\w+"
HASHTAG = r"#(?<!\w#)(\w+)"
NUMBER = r"\d(?<![\w.<]\d)\d*(?:[.,:]\d+)*(?!\w)"
EMOTICON = (
    r"(?:[<>]?[:;=][\-o*']?[)\](\[dDpP/\\|}{@3oO]|[)\](\[dDpP/\\|}{@][\-o*']?[:;=][<>]?"
    r"|</?3)(?![\w])"
)
# Pictographs, dingbats, symbols, flags and skin-tone modifiers: one token per code point.
EMOJI = (
    "[\U0001f000-\U0001faff\U0001fc00-\U0001ffff\u2600-\u27bf\u2b00-\u2bff\u2300-\u23ff"
    "\u2190-\u21ff\u3030\u303d\u3297\u3299]"
)
SPECIAL = r"<(?:url|user|num|hashtag)>"
WORD = r"[^\W\d_]+(?:['’][^\W\d_]+)*"

# The token pattern is stored in preprocess.json; alternatives are tried in this order.
TOKEN_PATTERN = "|".join(
    [SPECIAL, EMOTICON, URL, MENTION, r"#(?<!\w#)\w+", WORD, r"\d+(?:[.,:]\d+)*", EMOJI, r"[^\w\s]"]
)

_URL = re.compile(URL)
_MENTION = re.compile(MENTION)
_HASHTAG = re.compile(HASHTAG)
_NUMBER = re.compile(NUMBER)
_EMOJI = re.compile(EMOJI)
_REPEATS = re.compile(r"(\D)\1\1+")
_CAMEL = re.compile(r"(?<=[a-z])(?=[A-Z])|(?<=[A-Za-z])(?=\d)|(?<=\d)(?=[A-Za-z])|_+")
_VARIATION_SELECTORS = re.compile("[\ufe0e\ufe0f\u200d]")


def _split_hashtag(match: re.Match) -> str:
    return " <hashtag> " + _CAMEL.sub(" ", match.group(1)) + " "


@dataclass(frozen=True)
class CleaningOptions:
    """Which normalisations `clean` applies (the Preprocessor's cleaning keywords)."""

    lowercase: bool = True
    replace_urls: bool = True
    replace_mentions: bool = True
    replace_numbers: bool = True
    split_hashtags: bool = True
    squeeze_repeats: bool = True
    keep_emoji: bool = True

    def to_json(self) -> dict:
        return asdict(self)


def clean(text: str, options: CleaningOptions) -> str:
    """Apply the cleaning steps in a fixed order (URLs before numbers: URLs contain digits).

    Example: `clean("Sooo happy @bob #GreatDay http://x.co", CleaningOptions()).split()`
    -> `["soo", "happy", "<user>", "<hashtag>", "great", "day", "<url>"]`.
    """
    if options.replace_urls:
        text = _URL.sub(" <url> ", text)
    if options.replace_mentions:
        text = _MENTION.sub(" <user> ", text)
    if options.split_hashtags:
        text = _HASHTAG.sub(_split_hashtag, text)
    if options.replace_numbers:
        text = _NUMBER.sub(" <num> ", text)
    if options.squeeze_repeats:
        text = _REPEATS.sub(r"\1\1", text)
    text = _VARIATION_SELECTORS.sub("", text)
    if not options.keep_emoji:
        text = _EMOJI.sub(" ", text)
    if options.lowercase:
        text = text.lower()
    return text


# Texts are cleaned and tokenized as one joined string: one regex call per step for the whole
# batch instead of one per text. The separator is its own whitespace-delimited chunk; the patterns
# never match across whitespace, so each text gets exactly the tokens it would get alone.
_SEPARATOR = "\ue000"  # private use: not a letter, digit, space or emoji


@dataclass(frozen=True)
class TokenBatch:
    """The tokens of many texts, flat: text i has tokens[offsets[i]:offsets[i + 1]]."""

    tokens: list[str]
    offsets: np.ndarray  # int64 [n + 1]

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    @classmethod
    def from_lists(cls, token_lists: list[list[str]]) -> TokenBatch:
        lengths = [0] + [len(tokens) for tokens in token_lists]
        return cls(
            [t for tokens in token_lists for t in tokens], np.cumsum(lengths, dtype=np.int64)
        )

    def lists(self) -> list[list[str]]:
        """One token list per text."""
        bounds = self.offsets.tolist()
        return [self.tokens[a:b] for a, b in zip(bounds[:-1], bounds[1:])]


class Tokenizer:
    """Cleaning followed by a regex `findall` with one token pattern."""

    def __init__(self, options: CleaningOptions, pattern: str = TOKEN_PATTERN):
        self.options = options
        self.pattern = pattern
        self._regex = re.compile(pattern)

    def __call__(self, text: str) -> list[str]:
        """Tokens of one raw text."""
        return self.tokenize_batch([text]).tokens

    def tokenize_many(self, texts) -> list[list[str]]:
        """Tokens of each raw text, in order."""
        return self.tokenize_batch(texts).lists()

    def tokenize_batch(self, texts) -> TokenBatch:
        """Tokens of all texts as one `TokenBatch`."""
        texts = list(texts)
        if _SEPARATOR in "".join(texts):  # a text holds the separator: one text at a time
            return TokenBatch.from_lists([self._tokenize_one(t) for t in texts])
        return self._tokenize_joined(texts)

    def _tokenize_one(self, text: str) -> list[str]:
        findall = self._regex.findall
        return [
            token
            for chunk in clean(text, self.options).split()
            for token in ((chunk,) if chunk.isalpha() else findall(chunk))
        ]

    def _tokenize_joined(self, texts: list[str]) -> TokenBatch:
        joined = clean(f"\n{_SEPARATOR}\n".join(texts), self.options)
        tokens: list[str] = []
        offsets = [0]
        append, extend, findall = tokens.append, tokens.extend, self._regex.findall
        for chunk in joined.split():
            if chunk.isalpha():  # most chunks are plain words: no regex needed
                append(chunk)
            elif chunk == _SEPARATOR:
                offsets.append(len(tokens))
            else:
                extend(findall(chunk))
        offsets.append(len(tokens))
        return TokenBatch(tokens, np.asarray(offsets[: len(texts) + 1], dtype=np.int64))


# --- features.py ----------------------------------------------------------------------------

# Words of two or more capitals (ASCII and Latin-1); the look-behind comes after the first letter
# because Python's re scans much faster that way.
_CAPITALS = "A-Z\u00c0-\u00d6\u00d8-\u00de"
_ALLCAPS = re.compile(rf"[{_CAPITALS}](?<![^\W\d_][{_CAPITALS}])[{_CAPITALS}]+(?![^\W\d_])")
_WORD = re.compile(WORD)
_EMOTICON = re.compile(EMOTICON)
_EMOJI = re.compile(EMOJI)
NEGATIONS = frozenset(
    {
        "not",
        "no",
        "never",
        "none",
        "nobody",
        "nothing",
        "neither",
        "nor",
        "nowhere",
        "cannot",
        "without",
        "aint",
        "dont",
        "cant",
        "wont",
        "isnt",
        "wasnt",
        "didnt",
        "doesnt",
        "shouldnt",
        "wouldnt",
        "couldnt",
    }
)
# VADER's normalisation constant: compound = s / sqrt(s^2 + alpha).
VADER_ALPHA = 15.0
# VADER's analyzer is written for sentences and its time grows with the square of a text's length
# (measured: 0.03 s at 5,000 characters, 7.7 s at 80,000), so it reads the opening of a text only.
VADER_MAX_CHARS = 1000
# The features read the text as the default tokenizer sees it: special tokens for URLs, mentions,
# hashtags and numbers, emoticons and emoji as tokens, lower-cased words.
ANALYSIS = Tokenizer(CleaningOptions())
_SPECIAL_KINDS = {"<url>": "url", "<user>": "mention", "<hashtag>": "hashtag", "<num>": "number"}
KINDS = ("word", "url", "mention", "hashtag", "number", "emoticon", "emoji", "punct")

FEATURE_NAMES = (
    "n_chars",
    "n_tokens",
    "n_words",
    "mean_word_len",
    "type_token_ratio",
    "upper_ratio",
    "n_allcaps_words",
    "n_exclaim",
    "n_question",
    "n_ellipsis",
    "punct_density",
    "n_elongated",
    "n_emoji",
    "n_emoticons",
    "n_hashtags",
    "n_mentions",
    "n_urls",
    "n_digits",
    "n_numbers",
    "n_negations",
    "lex_pos_sum",
    "lex_neg_sum",
    "lex_compound",
    "lex_pos_ratio",
    "lex_neg_ratio",
    "n_replacement_chars",
    "vader_compound",
    "vader_pos",
    "vader_neg",
)


def vader_lexicon_path() -> Path:
    """`vader_lexicon.txt` inside the installed vaderSentiment package."""
    spec = importlib.util.find_spec("vaderSentiment")
    if spec is None or not spec.submodule_search_locations:
        raise VoxpopError(
            "the package vaderSentiment is not installed (pip install vaderSentiment)"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "vader_lexicon.txt"
    if not path.is_file():
        raise VoxpopError(f"{path}: VADER lexicon file missing from the vaderSentiment package")
    return path


@lru_cache(maxsize=1)
def vader_lexicon() -> dict[str, float]:
    """Token -> mean valence (-4..4) from the VADER lexicon (tab separated: token, mean, ...)."""
    lexicon: dict[str, float] = {}
    for line in vader_lexicon_path().read_text(encoding="utf-8").splitlines():
        token, valence, *_ = line.split("\t") + ["", ""]
        if token and valence:
            lexicon.setdefault(token.lower(), float(valence))
    return lexicon


@lru_cache(maxsize=1)
def _vader_analyzer():
    vader_lexicon_path()  # a clear error when the package is missing
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    return SentimentIntensityAnalyzer()


def _vader_scores(texts: list[str]) -> dict[str, np.ndarray]:
    """VADER's own scores of the first VADER_MAX_CHARS characters of each raw text (Hutto &
    Gilbert 2014). Its rules (negation within three words, "but", boosters, capitals, "!") are
    what the plain lexicon sums miss."""
    score = _vader_analyzer().polarity_scores
    values = np.array(
        [
            [s["compound"], s["pos"], s["neg"]]
            for s in (score(text[:VADER_MAX_CHARS]) for text in texts)
        ],
        dtype=np.float64,
    ).reshape(len(texts), 3)
    return {"vader_compound": values[:, 0], "vader_pos": values[:, 1], "vader_neg": values[:, 2]}


def _token_kind(token: str) -> str:
    if token in _SPECIAL_KINDS:
        return _SPECIAL_KINDS[token]
    for kind, regex in (("emoticon", _EMOTICON), ("word", _WORD), ("emoji", _EMOJI)):
        if regex.fullmatch(token):
            return kind
    return "punct"


def _token_features(batch: TokenBatch, lexicon: dict[str, float]) -> dict[str, np.ndarray]:
    """Per-text sums over the analysis tokens, vectorised: each distinct token is described once
    (kind, valence, negation), then numpy adds the descriptions up per text."""
    n = len(batch.offsets) - 1
    codes, uniques = pd.factorize(np.asarray(batch.tokens, dtype=object))
    distinct = uniques.tolist()
    kinds = [_token_kind(t) for t in distinct]
    is_word = np.array([k == "word" for k in kinds], dtype=bool)
    valence = np.array(
        [
            lexicon.get(t, 0.0) if k in ("word", "emoticon") else 0.0
            for t, k in zip(distinct, kinds)
        ],
        dtype=np.float64,
    )
    negation = np.array(
        [
            k == "word" and (t in NEGATIONS or t.endswith(("n't", "n’t")))
            for t, k in zip(distinct, kinds)
        ],
        dtype=np.float64,
    )
    owner = np.repeat(np.arange(n), batch.lengths)

    def per_text(values: np.ndarray) -> np.ndarray:
        return np.bincount(owner, weights=values[codes], minlength=n)

    columns = {
        f"n_{kind}": per_text(np.array([k == kind for k in kinds], dtype=np.float64))
        for kind in KINDS
    }
    columns["n_letters"] = per_text(
        np.where(is_word, [len(t) for t in distinct], 0).astype(np.float64)
    )
    words = is_word[codes]
    pairs = np.sort(owner[words] * max(len(distinct), 1) + codes[words])  # (text, word) pairs
    first_seen = np.r_[True, pairs[1:] != pairs[:-1]] if len(pairs) else np.zeros(0, dtype=bool)
    columns["n_distinct_words"] = np.bincount(
        pairs[first_seen] // max(len(distinct), 1), minlength=n
    )
    columns["lex_pos_sum"] = per_text(np.maximum(valence, 0.0))
    columns["lex_neg_sum"] = per_text(np.minimum(valence, 0.0))
    columns["n_lex_pos"] = per_text((valence > 0).astype(np.float64) * is_word)
    columns["n_lex_neg"] = per_text((valence < 0).astype(np.float64) * is_word)
    columns["n_negations"] = per_text(negation)
    columns["n_tokens"] = batch.lengths.astype(np.float64)
    return columns


def _matches_per_text(regex: re.Pattern, texts: list[str]) -> np.ndarray:
    """How many times `regex` matches in each text (one scan of the joined texts)."""
    starts = np.cumsum([0] + [len(t) + 1 for t in texts[:-1]])
    positions = [m.start() for m in regex.finditer("\n".join(texts))]
    owners = np.searchsorted(starts, positions, side="right") - 1
    return np.bincount(owners, minlength=len(texts)).astype(np.float64)


def _elongation_starts(points: np.ndarray, letters: np.ndarray, owner: np.ndarray) -> np.ndarray:
    """bool per code point: the third letter of a run of one letter repeated 3+ times ("sooo")."""
    triple = np.zeros(len(points), dtype=bool)
    if len(points) >= 3:
        triple[2:] = (
            (points[2:] == points[1:-1])
            & (points[1:-1] == points[:-2])
            & letters[2:]
            & (owner[2:] == owner[:-2])
        )
    return triple & ~np.r_[False, triple[:-1]]


@lru_cache(maxsize=1)
def _char_tables() -> tuple[np.ndarray, np.ndarray]:
    # str.isupper / str.isalpha for every code point of the Basic Multilingual Plane (letters
    # outside it are rare enough to ignore).
    chars = [chr(c) for c in range(0x10000)]
    return (
        np.fromiter(map(str.isupper, chars), dtype=bool, count=len(chars)),
        np.fromiter(map(str.isalpha, chars), dtype=bool, count=len(chars)),
    )


def _char_counts(texts: list[str]) -> dict[str, np.ndarray]:
    """Per-text character counts, vectorised over the code points of all texts at once."""
    lengths = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))
    points = np.frombuffer("".join(texts).encode("utf-32-le"), dtype=np.uint32)
    owner = np.repeat(np.arange(len(texts)), lengths)

    def per_text(mask: np.ndarray) -> np.ndarray:
        return np.bincount(owner[mask], minlength=len(texts)).astype(np.float64)

    bmp = points < 0x10000
    upper_table, letter_table = _char_tables()
    upper = np.zeros(len(points), dtype=bool)
    upper[bmp] = upper_table[points[bmp]]
    letters = np.zeros(len(points), dtype=bool)
    letters[bmp] = letter_table[points[bmp]]
    return {
        "n_elongated": per_text(_elongation_starts(points, letters, owner)),
        "n_chars": lengths.astype(np.float64),
        "n_upper": per_text(upper),
        "n_letters_raw": per_text(letters),
        "n_digits": per_text((points >= 48) & (points <= 57)),
        "n_exclaim": per_text(points == ord("!")),
        "n_question": per_text(points == ord("?")),
        "n_replacement_chars": per_text(points == 0xFFFD),
    }


def engineered_features(texts, analysis: TokenBatch | None = None) -> np.ndarray:
    """float64 [n, len(FEATURE_NAMES)] for raw texts, columns in `FEATURE_NAMES` order.

    `analysis` may pass `ANALYSIS.tokenize_batch(texts)` when the caller already has it.
    """
    texts = list(texts)
    if analysis is None:
        analysis = ANALYSIS.tokenize_batch(texts)
    columns = _token_features(analysis, vader_lexicon())
    columns.update(_char_counts(texts))
    columns.update(_vader_scores(texts))
    per_word = np.maximum(columns["n_word"], 1)
    total = columns["lex_pos_sum"] + columns["lex_neg_sum"]
    columns.update(
        {
            "n_words": columns["n_word"],
            "n_emoticons": columns["n_emoticon"],
            "n_hashtags": columns["n_hashtag"],
            "n_mentions": columns["n_mention"],
            "n_urls": columns["n_url"],
            "n_numbers": columns["n_number"],
            "mean_word_len": columns["n_letters"] / per_word,
            "type_token_ratio": columns["n_distinct_words"] / per_word,
            "upper_ratio": columns["n_upper"] / np.maximum(columns["n_letters_raw"], 1),
            "punct_density": columns["n_punct"] / np.maximum(columns["n_chars"], 1),
            "n_ellipsis": np.array([t.count("...") for t in texts], dtype=np.float64),
            "n_allcaps_words": _matches_per_text(_ALLCAPS, texts),
            "lex_compound": total / np.sqrt(total * total + VADER_ALPHA),
            "lex_pos_ratio": columns["n_lex_pos"] / per_word,
            "lex_neg_ratio": columns["n_lex_neg"] / per_word,
        }
    )
    return np.column_stack([columns[name] for name in FEATURE_NAMES]).reshape(
        len(texts), len(FEATURE_NAMES)
    )


def text_features(text: str) -> dict[str, float]:
    """The features of one raw text by name (for inspection and tests)."""
    return dict(zip(FEATURE_NAMES, engineered_features([text])[0].tolist()))


# --- ngrams.py ------------------------------------------------------------------------------

_NGRAM_WORD = re.compile(r"(?u)\b\w\w+\b")  # scikit-learn's default token pattern
_POLY = np.uint64(0x100000001B3)  # FNV-1's 64-bit prime, the base of the string polynomial
_PAIR = np.uint64(0x9E3779B97F4A7C15)  # Fibonacci hashing constant: spreads a pair's bits
# Without an explicit max_grams, rows keep at most this many grams: long documents (newsgroup posts
# have ~8,000 at the 99th percentile) would otherwise make the training arrays gigabytes wide,
# and the cut grams are each row's lightest.
MAX_GRAMS_CAP = 4096


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
            words, word_rows = _flatten([_NGRAM_WORD.findall(text) for text in lowered])
            distinct, positions = _distinct(words)
            hashes = np.fromiter(
                (zlib.crc32(word.encode("utf-8", "surrogatepass")) for word in distinct),
                dtype=np.uint64,
                count=len(distinct),
            )
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
        codes = np.frombuffer(
            "".join(padded).encode("utf-32-le", "surrogatepass"), dtype=np.uint32
        ).astype(np.uint64)
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
    positions = np.fromiter(
        (index.setdefault(item, len(index)) for item in items), dtype=np.int64, count=len(items)
    )
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


# --- preprocess.py's fit and encode (engineered features, no user columns), on the options and
# fitted state of a voxpop Preprocessor ----------------------------------------------------------


def fitted_state(pre, texts: list[str]) -> dict:
    """What Preprocessor.fit computed from these texts with `pre`'s options: vocabulary, max_len,
    scaler, n-gram idf and max_grams."""
    from collections import Counter

    batch = Tokenizer(CleaningOptions(**pre.cleaning.to_json())).tokenize_batch(texts)
    counts = Counter(batch.tokens)
    kept = sorted(
        (t for t, n in counts.items() if n >= pre.min_freq), key=lambda t: (-counts[t], t)
    )
    if pre.max_len_option is not None:
        max_len = int(pre.max_len_option)
    else:
        max_len = max(1, math.ceil(np.percentile(batch.lengths, pre.max_len_percentile)))
    raw = (
        engineered_features(texts, batch) if pre.engineered_features else np.zeros((len(texts), 0))
    )
    ordered = np.sort(raw, axis=0)
    means = ordered.mean(axis=0)
    stds = np.sqrt(np.sort((ordered - means) ** 2, axis=0).mean(axis=0))
    state = {
        "vocabulary": kept[: pre.max_tokens - 2],
        "max_len": max_len,
        "means": means,
        "stds": np.where(stds > 0, stds, 1.0),
    }
    if pre.ngram_buckets is not None:
        grams = HashedNgrams(buckets=pre.ngram_buckets).fit(texts)
        state.update(idf=grams.idf, max_grams=grams.max_grams)
    return state


def pad_sequences(
    ids: np.ndarray, offsets: np.ndarray, *, max_len: int, padding: str, truncating: str
) -> np.ndarray:
    """vocab.py's pad_sequences."""
    lengths = np.diff(offsets)
    kept = np.minimum(lengths, max_len)
    source_start = offsets[:-1] + (lengths - kept if truncating == "pre" else 0)
    target_start = max_len - kept if padding == "pre" else np.zeros_like(kept)
    within = np.arange(kept.sum()) - np.repeat(np.cumsum(kept) - kept, kept)
    out = np.full((len(kept), max_len), 0, dtype=np.int32)
    rows = np.repeat(np.arange(len(kept)), kept)
    out[rows, np.repeat(target_start, kept) + within] = ids[np.repeat(source_start, kept) + within]
    return out


def encode(pre, texts: list[str], inputs=None) -> dict[str, np.ndarray]:
    """Preprocessor.encode(texts, inputs=inputs) for a Preprocessor without user feature columns."""
    wanted = pre.input_names if inputs is None else list(inputs)
    encoded = {}
    if "tokens" in wanted or "features" in wanted:
        batch = Tokenizer(CleaningOptions(**pre.cleaning.to_json())).tokenize_batch(texts)
    if "tokens" in wanted:
        index = pd.Index(pre.vocabulary.tokens, dtype=object)
        positions = index.get_indexer(np.asarray(batch.tokens, dtype=object))
        ids = np.where(positions < 0, 1, positions + 2).astype(np.int32)
        encoded["tokens"] = pad_sequences(
            ids, batch.offsets, max_len=pre.max_len, padding=pre.padding, truncating=pre.truncating
        )
    if "features" in wanted:
        raw = (
            engineered_features(texts, batch)
            if pre.engineered_features
            else np.zeros((len(texts), 0))
        )
        encoded["features"] = ((raw - pre.scaler.means) / pre.scaler.stds).astype(np.float32)
    if pre.ngrams is not None and ("grams" in wanted or "gram_weights" in wanted):
        grams = HashedNgrams(
            buckets=pre.ngrams.buckets,
            word_ngrams=pre.ngrams.word_ngrams,
            char_ngrams=pre.ngrams.char_ngrams,
            min_df=pre.ngrams.min_df,
        )
        grams.idf, grams.max_grams = pre.ngrams.idf, pre.ngrams.max_grams
        encoded["grams"], encoded["gram_weights"] = grams.transform(texts)
    return encoded
