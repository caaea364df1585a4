"""Dense features computed from the raw text, and the standard scaler fitted on training rows.

Every text gets real values (counts and ratios of its own characters, words, emoji, emoticons,
hashtags, mentions, URLs, negations, and VADER lexicon scores), so new texts at serving time are
described exactly as training texts were.
"""

from __future__ import annotations

import importlib.util
import math
import re
from functools import lru_cache
from pathlib import Path

import numpy as np

from voxpop.data.errors import VoxpopError
from voxpop.data.text import EMOJI, EMOTICON, MENTION, URL, WORD

# One pass over the raw text classifies each piece; the group name says what it is.
_PIECES = re.compile("|".join([
    f"(?P<url>{URL})", f"(?P<mention>{MENTION})", r"(?P<hashtag>#(?<!\w#)\w+)",
    f"(?P<emoticon>{EMOTICON})", r"(?P<number>\d+(?:[.,:]\d+)*)", f"(?P<word>{WORD})",
    f"(?P<emoji>{EMOJI})", r"(?P<punct>[^\w\s])",
]))
# Runs of one letter three or more times ("sooo"): elongation for emphasis.
_ELONGATED = re.compile(r"([^\W\d_])\1\1+")
NEGATIONS = frozenset({"not", "no", "never", "none", "nobody", "nothing", "neither", "nor",
                       "nowhere", "cannot", "without", "aint", "dont", "cant", "wont", "isnt",
                       "wasnt", "didnt", "doesnt", "shouldnt", "wouldnt", "couldnt"})
# VADER's normalisation constant: compound = s / sqrt(s^2 + alpha).
VADER_ALPHA = 15.0

FEATURE_NAMES = (
    "n_chars", "n_tokens", "n_words", "mean_word_len", "type_token_ratio", "upper_ratio",
    "n_allcaps_words", "n_exclaim", "n_question", "n_ellipsis", "punct_density", "n_elongated",
    "n_emoji", "n_emoticons", "n_hashtags", "n_mentions", "n_urls", "n_digits", "n_numbers",
    "n_negations", "lex_pos_sum", "lex_neg_sum", "lex_compound", "lex_pos_ratio",
    "lex_neg_ratio", "n_replacement_chars",
)


def vader_lexicon_path() -> Path:
    """`vader_lexicon.txt` inside the installed vaderSentiment package (not imported: it pulls
    in `requests`)."""
    spec = importlib.util.find_spec("vaderSentiment")
    if spec is None or not spec.submodule_search_locations:
        raise VoxpopError("the package vaderSentiment is not installed (pip install vaderSentiment)")
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


def _word_features(text: str, lexicon: dict[str, float]) -> tuple:
    """Features that need the text's pieces (words, emoticons, hashtags, ...): a Python loop."""
    counts = dict.fromkeys(("url", "mention", "hashtag", "emoticon", "number", "word", "emoji",
                            "punct"), 0)
    words: list[str] = []
    pos = neg = 0.0
    for chunk in text.split():
        if chunk.isalpha():  # the common case, without the regex (see text.findall_by_chunk)
            words.append(chunk)
            continue
        for match in _PIECES.finditer(chunk):
            kind = match.lastgroup
            counts[kind] += 1
            if kind == "word":
                words.append(match.group())
            elif kind == "emoticon":
                valence = lexicon.get(match.group().lower(), 0.0)
                pos, neg = pos + max(valence, 0.0), neg + min(valence, 0.0)
    lowered = text.lower()
    lowered_words = [w.lower() for w in words]
    valences = [v for v in map(lexicon.get, lowered_words) if v]
    positive = [v for v in valences if v > 0]
    pos += sum(positive)
    neg += sum(valences) - sum(positive)
    n_words = len(words)
    n_letters = sum(map(len, words))
    total = pos + neg
    per_word = max(n_words, 1)
    return (
        n_words, n_letters, n_letters / per_word, len(set(lowered_words)) / per_word,
        sum(1 for w in words if len(w) > 1 and w.isupper()),
        text.count("..."), counts["punct"], len(_ELONGATED.findall(text)),
        counts["emoji"], counts["emoticon"], counts["hashtag"], counts["mention"], counts["url"],
        counts["number"],
        sum(1 for w in lowered_words if w in NEGATIONS) + lowered.count("n't") + lowered.count("n’t"),
        pos, neg, total / math.sqrt(total * total + VADER_ALPHA),
        len(positive) / per_word, (len(valences) - len(positive)) / per_word,
        sum(counts.values()) - counts["word"] + n_words,
    )


_WORD_COLUMNS = ("n_words", "n_letters", "mean_word_len", "type_token_ratio", "n_allcaps_words",
                 "n_ellipsis", "n_punct", "n_elongated", "n_emoji", "n_emoticons", "n_hashtags",
                 "n_mentions", "n_urls", "n_numbers", "n_negations", "lex_pos_sum",
                 "lex_neg_sum", "lex_compound", "lex_pos_ratio", "lex_neg_ratio", "n_tokens")


@lru_cache(maxsize=1)
def _upper_table() -> np.ndarray:
    # str.isupper for every code point of the Basic Multilingual Plane (uppercase letters outside
    # it are rare enough to ignore).
    return np.array([chr(c).isupper() for c in range(0x10000)], dtype=bool)


def _char_counts(texts: list[str]) -> dict[str, np.ndarray]:
    """Per-text character counts, vectorised over the code points of all texts at once."""
    lengths = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))
    points = np.frombuffer("".join(texts).encode("utf-32-le"), dtype=np.uint32)
    owner = np.repeat(np.arange(len(texts)), lengths)

    def per_text(mask: np.ndarray) -> np.ndarray:
        return np.bincount(owner[mask], minlength=len(texts)).astype(np.float64)

    bmp = points < 0x10000
    upper = np.zeros(len(points), dtype=bool)
    upper[bmp] = _upper_table()[points[bmp]]
    return {
        "n_chars": lengths.astype(np.float64),
        "n_upper": per_text(upper),
        "n_digits": per_text((points >= 48) & (points <= 57)),
        "n_exclaim": per_text(points == ord("!")),
        "n_question": per_text(points == ord("?")),
        "n_replacement_chars": per_text(points == 0xFFFD),
    }


def engineered_features(texts) -> np.ndarray:
    """float64 [n, len(FEATURE_NAMES)] for raw texts, columns in `FEATURE_NAMES` order."""
    texts = list(texts)
    lexicon = vader_lexicon()
    words = np.asarray([_word_features(t, lexicon) for t in texts], dtype=np.float64)
    columns = dict(zip(_WORD_COLUMNS, words.reshape(len(texts), len(_WORD_COLUMNS)).T))
    columns.update(_char_counts(texts))
    columns["upper_ratio"] = columns["n_upper"] / np.maximum(columns["n_letters"], 1)
    columns["punct_density"] = columns["n_punct"] / np.maximum(columns["n_chars"], 1)
    return np.column_stack([columns[name] for name in FEATURE_NAMES]).reshape(
        len(texts), len(FEATURE_NAMES))


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
