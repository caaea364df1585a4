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
_ELONGATED = re.compile(r"([^\W\d_])\1\1")
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


def text_features(text: str, lexicon: dict[str, float]) -> list[float]:
    """The `FEATURE_NAMES` values of one raw text."""
    counts = {"url": 0, "mention": 0, "hashtag": 0, "emoticon": 0, "number": 0, "word": 0,
              "emoji": 0, "punct": 0}
    words: list[str] = []
    pos = neg = 0.0
    n_pos = n_neg = 0
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
    lowered = [w.lower() for w in words]
    for word in lowered:
        valence = lexicon.get(word, 0.0)
        if valence > 0:
            pos, n_pos = pos + valence, n_pos + 1
        elif valence < 0:
            neg, n_neg = neg + valence, n_neg + 1
    n_chars, n_words = len(text), len(words)
    n_letters = sum(map(len, words))
    n_tokens = sum(counts.values()) - counts["word"] + n_words
    total = pos + neg
    return [
        n_chars, n_tokens, n_words, n_letters / max(n_words, 1),
        len(set(lowered)) / max(n_words, 1),
        sum(map(str.isupper, text)) / max(n_letters, 1),
        sum(1 for w in words if len(w) > 1 and w.isupper()),
        text.count("!"), text.count("?"), text.count("..."),
        counts["punct"] / max(n_chars, 1),
        sum(1 for w in words if _ELONGATED.search(w)),
        counts["emoji"], counts["emoticon"], counts["hashtag"], counts["mention"], counts["url"],
        sum(map(str.isdigit, text)), counts["number"],
        sum(1 for w in lowered if w in NEGATIONS or w.endswith(("n't", "n’t"))),
        pos, neg, total / math.sqrt(total * total + VADER_ALPHA),
        n_pos / max(n_words, 1), n_neg / max(n_words, 1),
        text.count("\ufffd"),
    ]


def engineered_features(texts) -> np.ndarray:
    """float64 [n, len(FEATURE_NAMES)] for raw texts."""
    lexicon = vader_lexicon()
    rows = [text_features(t, lexicon) for t in texts]
    return np.asarray(rows, dtype=np.float64).reshape(len(rows), len(FEATURE_NAMES))


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
