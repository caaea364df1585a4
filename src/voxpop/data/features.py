"""Dense features computed from the raw text, and the standard scaler fitted on training rows.

Every text gets real values (counts and ratios of its own characters, words, emoji, emoticons,
hashtags, mentions, URLs, negations, VADER lexicon sums, and the scores of VADER's rule-based
analyzer), so new texts at serving time are described exactly as training texts were.
"""

from __future__ import annotations

import re
from functools import lru_cache

import numpy as np
import pandas as pd

from voxpop.data.text import EMOJI, EMOTICON, WORD, CleaningOptions, TokenBatch, Tokenizer, opening
from voxpop.data.vader import vader_lexicon_path, vader_scores

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


@lru_cache(maxsize=1)
def vader_lexicon() -> dict[str, float]:
    """Token -> mean valence (-4..4) from the VADER lexicon (tab separated: token, mean, ...)."""
    lexicon: dict[str, float] = {}
    for line in vader_lexicon_path().read_text(encoding="utf-8").splitlines():
        token, valence, *_ = line.split("\t") + ["", ""]
        if token and valence:
            lexicon.setdefault(token.lower(), float(valence))
    return lexicon


def _token_kind(token: str) -> str:
    if token.isalpha():  # most tokens: letters only are a WORD and never an emoticon or special
        return "word"
    if token in _SPECIAL_KINDS:
        return _SPECIAL_KINDS[token]
    for kind, regex in (("emoticon", _EMOTICON), ("word", _WORD), ("emoji", _EMOJI)):
        if regex.fullmatch(token):
            return kind
    return "punct"


@lru_cache(maxsize=1)
def _lexicon_index() -> tuple[pd.Index, np.ndarray]:
    """The lexicon's tokens (to look many up at once in C) and their valences."""
    lexicon = vader_lexicon()
    return pd.Index(list(lexicon), dtype=object), np.fromiter(lexicon.values(), dtype=np.float64)


def _token_features(batch: TokenBatch) -> dict[str, np.ndarray]:
    """Per-text sums over the analysis tokens, vectorised: each distinct token is described once
    (kind, valence, negation), then numpy adds the descriptions up per text."""
    n = len(batch.offsets) - 1
    codes, uniques = batch.codes, batch.uniques
    distinct = uniques.tolist()
    kinds = np.array([KINDS.index(_token_kind(t)) for t in distinct], dtype=np.int64)
    is_word = kinds == KINDS.index("word")
    index, valences = _lexicon_index()
    found = index.get_indexer(pd.Index(uniques, dtype=object))
    scored = (found >= 0) & (is_word | (kinds == KINDS.index("emoticon")))
    valence = np.where(scored, valences[found], 0.0)
    negation = is_word & np.array(
        [t in NEGATIONS or t.endswith(("n't", "n’t")) for t in distinct], dtype=bool
    )
    # Counts (whole numbers: any order of addition gives the same sums) in one table, added up
    # per text as differences of running totals over the tokens.
    counted = {f"n_{kind}": kinds == k for k, kind in enumerate(KINDS)}
    counted.update(
        {
            "n_letters": np.where(
                is_word, np.fromiter(map(len, distinct), dtype=np.int64, count=len(distinct)), 0
            ),
            "n_lex_pos": (valence > 0) & is_word,
            "n_lex_neg": (valence < 0) & is_word,
            "n_negations": negation,
        }
    )
    table = np.vstack(
        [values.astype(np.int64) for values in counted.values()]
    )  # [column, distinct]
    running = np.zeros((len(counted), len(codes) + 1), dtype=np.int64)
    np.cumsum(table[:, codes], axis=1, out=running[:, 1:])
    sums = (running[:, batch.offsets[1:]] - running[:, batch.offsets[:-1]]).astype(np.float64)
    columns = dict(zip(counted, sums))
    owner = np.repeat(np.arange(n), batch.lengths)
    words = is_word[codes]
    pairs = np.sort(owner[words] * max(len(distinct), 1) + codes[words])  # (text, word) pairs
    first_seen = np.r_[True, pairs[1:] != pairs[:-1]] if len(pairs) else np.zeros(0, dtype=bool)
    columns["n_distinct_words"] = np.bincount(
        pairs[first_seen] // max(len(distinct), 1), minlength=n
    )
    # Valences are not whole numbers: added in token order, as bincount does.
    columns["lex_pos_sum"] = np.bincount(
        owner, weights=np.maximum(valence, 0.0)[codes], minlength=n
    )
    columns["lex_neg_sum"] = np.bincount(
        owner, weights=np.minimum(valence, 0.0)[codes], minlength=n
    )
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
    points = np.frombuffer("".join(texts).encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
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
    """float64 [n, len(FEATURE_NAMES)] for raw texts (their first MAX_TEXT_CHARS characters),
    columns in `FEATURE_NAMES` order.

    `analysis` may pass `ANALYSIS.tokenize_batch(texts)` when the caller already has it.
    """
    texts = opening(texts)
    if analysis is None:
        analysis = ANALYSIS.tokenize_batch(texts)
    columns = _token_features(analysis)
    columns.update(_char_counts(texts))
    # VADER's own scores (Hutto & Gilbert 2014): its rules (negation within three words, "but",
    # boosters, capitals, "!") are what the plain lexicon sums miss.
    columns.update(zip(("vader_compound", "vader_pos", "vader_neg"), vader_scores(texts).T))
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


class StandardScaler:
    """(x - mean) / std per column, fitted on training rows; a constant column gets std 1."""

    def __init__(self, means=None, stds=None):
        self.means = None if means is None else np.asarray(means, dtype=np.float64)
        self.stds = None if stds is None else np.asarray(stds, dtype=np.float64)

    def fit(self, x: np.ndarray) -> StandardScaler:
        # Sorting each column first makes the sums independent of row order (bit for bit).
        ordered = np.sort(np.asarray(x, dtype=np.float64), axis=0)
        self.means = ordered.mean(axis=0) if len(ordered) else np.zeros(ordered.shape[1])
        squared = np.sort((ordered - self.means) ** 2, axis=0)
        stds = np.sqrt(squared.mean(axis=0)) if len(ordered) else np.ones(ordered.shape[1])
        self.stds = np.where(stds > 0, stds, 1.0)
        return self

    def transform(self, x: np.ndarray) -> np.ndarray:
        """float32 scaled copy of x."""
        return ((np.asarray(x, dtype=np.float64) - self.means) / self.stds).astype(np.float32)
