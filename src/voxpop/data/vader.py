"""VADER's sentiment scores (Hutto & Gilbert 2014) for many texts at once, equal to vaderSentiment's.

`vader_scores(texts)` returns, per text, what `SentimentIntensityAnalyzer().polarity_scores` returns
for its opening (compound, pos, neg), bit for bit (tests/test_data_encoders.py compares them on
thousands of real texts and on texts made to hit every rule). The analyzer applies its rules one
word at a time in Python and rebuilds the lowered word list for every rule it checks, so its time
grows with the square of a text's length: about 40 us per tweet, the larger part of encoding.

This port is written by hand because no library computes VADER in bulk. It keeps the analyzer's
own data (its lexicon, emoji descriptions, booster words, negations and idioms are read from the
installed vaderSentiment) and its rules, in the same order and with the same floating-point
operations, but over arrays of all the words of a batch at once:
1. each text's emoji become their descriptions and the text is split on whitespace (one split for
   the whole batch); each distinct word is stripped of punctuation and lowered once;
2. every rule reads its word and up to three words before and two after, so a rule is one numpy
   expression over the flat word array with shifted copies of it;
3. the sums per text are `np.bincount`, which adds in word order as the analyzer's loops do.
The "but" rule is the analyzer's own function, run on the (few) texts that contain "but": its
result depends on a quirk (`list.index` finds the first equal score) that only it reproduces
without doubt. Python 3.12 changed `sum()` of floats to a compensated sum; the port keeps 3.11's
plain sum (so the scores, and the bundles trained on them, do not depend on the Python version).
"""

from __future__ import annotations

import importlib.util
import string
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from voxpop.data.errors import VoxpopError
from voxpop.data.text import items_per_text

# The analyzer's time grows with the square of a text's length (measured: 0.03 s at 5,000
# characters, 7.7 s at 80,000), so voxpop scores the opening of a text only; the port keeps the cap
# so that its scores stay those of the analyzer.
VADER_MAX_CHARS = 1000
_PUNCTUATION = string.punctuation


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


@dataclass(frozen=True)
class _Rules:
    """The analyzer's data, as the port reads it."""

    lexicon: dict[str, float]
    boosters: dict[str, float]
    lexicon_index: pd.Index  # the same words, for lookups of many words at once
    booster_index: pd.Index
    negation_index: pd.Index
    idioms: dict[tuple[str, ...], float]  # SPECIAL_CASES of two or three words, split
    booster_phrases: dict[tuple[str, ...], float]  # the boosters of two words ("kind of")
    emoji: np.ndarray  # bool per code point: the analyzer replaces it by its description
    describe_emoji: dict[int, str]  # str.translate table: code point -> " " + description
    n_scalar: float
    c_incr: float
    but_check: object  # SentimentIntensityAnalyzer._but_check


@lru_cache(maxsize=1)
def _rules() -> _Rules:
    vader_lexicon_path()  # a clear error when the package is missing
    from vaderSentiment import vaderSentiment as vs

    analyzer = vs.SentimentIntensityAnalyzer()
    # The analyzer looks emoji up one character at a time: longer keys never match.
    emoji = {ord(key): " " + text for key, text in analyzer.emojis.items() if len(key) == 1}
    is_emoji = np.zeros(0x110000, dtype=bool)
    is_emoji[list(emoji)] = True
    return _Rules(
        lexicon=analyzer.lexicon,
        boosters=dict(vs.BOOSTER_DICT),
        idioms={tuple(k.split(" ")): v for k, v in vs.SPECIAL_CASES.items() if " " in k},
        booster_phrases={tuple(k.split(" ")): v for k, v in vs.BOOSTER_DICT.items() if " " in k},
        lexicon_index=pd.Index(list(analyzer.lexicon), dtype=object),
        booster_index=pd.Index(list(vs.BOOSTER_DICT), dtype=object),
        negation_index=pd.Index(sorted(set(vs.NEGATE)), dtype=object),
        emoji=is_emoji,
        describe_emoji=emoji,
        n_scalar=vs.N_SCALAR,
        c_incr=vs.C_INCR,
        but_check=vs.SentimentIntensityAnalyzer._but_check,
    )


def vader_scores(texts: list[str]) -> np.ndarray:
    """float64 [n, 3]: VADER's (compound, pos, neg) of the first VADER_MAX_CHARS characters of each
    text, rounded as the analyzer rounds them (4 and 3 decimals)."""
    rules = _rules()
    texts, words, rows = _words(rules, [text[:VADER_MAX_CHARS] for text in texts])
    n = len(texts)
    scores = np.zeros((n, 3), dtype=np.float64)
    if not len(words):
        return scores
    sentiments = _Sentiments(rules, words, rows, n).scores()
    # Counted in the text with its emoji described, as the analyzer counts (two descriptions hold "!").
    exclaims = np.array([text.count("!") for text in texts], dtype=np.int64)
    questions = np.array([text.count("?") for text in texts], dtype=np.int64)
    n_words = np.bincount(rows, minlength=n)
    sum_s = np.bincount(rows, weights=sentiments, minlength=n)
    # _punctuation_emphasis: up to 4 "!" add 0.292 each; 2 or 3 "?" add 0.18 each, more add 0.96.
    emphasis = np.minimum(exclaims, 4).astype(np.float64) * 0.292 + np.where(
        questions > 1, np.where(questions <= 3, questions.astype(np.float64) * 0.18, 0.96), 0.0
    )
    sum_s = np.where(sum_s > 0, sum_s + emphasis, np.where(sum_s < 0, sum_s - emphasis, sum_s))
    compound = np.clip(sum_s / np.sqrt(sum_s * sum_s + 15), -1.0, 1.0)
    positive, negative = sentiments > 0, sentiments < 0
    pos_sum = np.bincount(rows[positive], weights=sentiments[positive] + 1, minlength=n)
    neg_sum = np.bincount(rows[negative], weights=sentiments[negative] - 1, minlength=n)
    neutral = np.bincount(rows[sentiments == 0], minlength=n)
    more_pos, more_neg = pos_sum > np.abs(neg_sum), pos_sum < np.abs(neg_sum)
    pos_sum = np.where(more_pos, pos_sum + emphasis, pos_sum)
    neg_sum = np.where(more_neg, neg_sum - emphasis, neg_sum)
    total = pos_sum + np.abs(neg_sum) + neutral
    scored = n_words > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        values = np.column_stack([compound, np.abs(pos_sum / total), np.abs(neg_sum / total)])
    for column, digits in ((0, 4), (1, 3), (2, 3)):
        scores[scored, column] = python_round(values[scored, column], digits)
    return scores


def python_round(values: np.ndarray, digits: int) -> np.ndarray:
    """round(v, digits) of each value, as Python rounds (the exact binary value rounded half to
    even, then the nearest double), as the analyzer does. numpy's round scales first and can land
    on the other side of a tie: where the scaled value is within 1e-6 of one (far more than its
    rounding error), Python's round decides."""
    scale = 10.0**digits
    scaled = values * scale
    out = np.rint(scaled) / scale
    near_tie = np.flatnonzero(np.abs(scaled - np.floor(scaled) - 0.5) < 1e-6)
    out[near_tie] = [round(v, digits) for v in values[near_tie].tolist()]
    return out


def _words(rules: _Rules, texts: list[str]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(the texts with their emoji described, every whitespace-separated word of them flat (object
    array), and the row of each word). The analyzer puts a space before a description unless one
    precedes it, and none after: " " + description splits into the same words."""
    points = np.frombuffer("\n".join(texts).encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    emoji = np.flatnonzero(rules.emoji[points])
    if len(emoji):  # describe the emoji of the texts that hold some (str.translate: one pass each)
        ends = np.cumsum(np.fromiter(map(len, texts), dtype=np.int64, count=len(texts)) + 1)
        texts = list(texts)
        for row in np.unique(np.searchsorted(ends, emoji, side="right")).tolist():
            texts[row] = texts[row].translate(rules.describe_emoji)
    words, rows = items_per_text(texts, str.split)
    return texts, words, rows


class _Sentiments:
    """The valence of every word (polarity_scores' loop and sentiment_valence), as arrays."""

    def __init__(self, rules: _Rules, words: np.ndarray, rows: np.ndarray, n_texts: int):
        self.rules = rules
        self.raw_codes, raw = pd.factorize(words)
        # _strip_punc_if_word, then the lowered word and whether it is all capitals: Python's own
        # str methods (the analyzer's), once per distinct word.
        self.stripped = np.array(
            [w if len(s) <= 2 else s for w in raw.tolist() for s in (w.strip(_PUNCTUATION),)],
            dtype=object,
        )
        stripped = self.stripped.tolist()
        lowered, self.lowered_words = pd.factorize(
            np.array([w.lower() for w in stripped], dtype=object)
        )
        self.codes = lowered[self.raw_codes]  # lowered word id of each word
        self.upper = np.array([w.isupper() for w in stripped], dtype=bool)[self.raw_codes]
        self.rows, self.n_texts = rows, n_texts
        starts = np.searchsorted(rows, np.arange(n_texts))
        self.position = np.arange(len(rows)) - starts[rows]
        n_words = np.bincount(rows, minlength=n_texts)
        self.length = n_words[rows]
        n_upper = np.bincount(rows, weights=self.upper, minlength=n_texts)
        # allcap_differential: some but not all words are ALL CAPS.
        self.cap_differential = ((n_words - n_upper > 0) & (n_words - n_upper < n_words))[rows]
        self._word_properties()

    def _word_properties(self) -> None:
        """Per lowered word (and one more entry, `self.none`, for "no word there")."""
        rules = self.rules
        self._index = words = pd.Index(self.lowered_words, dtype=object)
        self._ids: dict[str, int] = {}
        self.none = len(words)

        def lookup(index: pd.Index, table: dict[str, float]) -> tuple[np.ndarray, np.ndarray]:
            found = np.append(index.get_indexer(words), -1)
            values = np.asarray(list(table.values()), dtype=np.float64)[found]
            return found >= 0, np.where(found >= 0, values, 0.0)

        self.in_lexicon, self.valence = lookup(rules.lexicon_index, rules.lexicon)
        self.is_booster, self.booster = lookup(rules.booster_index, rules.boosters)
        # negated([word]): a negation word, or any word holding "n't".
        self.negated = np.append(rules.negation_index.get_indexer(words) >= 0, False)
        self.negated[:-1] |= np.array(["n't" in w for w in words.tolist()], dtype=bool)

    def id_of(self, word: str) -> int:
        """The lowered word id of `word`, -1 when no text of the batch holds it."""
        if word not in self._ids:
            try:
                self._ids[word] = int(self._index.get_loc(word))
            except KeyError:
                self._ids[word] = -1
        return self._ids[word]

    def is_(self, ids: np.ndarray, *words: str) -> np.ndarray:
        """bool per entry of `ids` (lowered word ids): the word is one of `words`."""
        hits = np.zeros(len(ids), dtype=bool)
        for word in words:
            if self.id_of(word) >= 0:
                hits |= ids == self.id_of(word)
        return hits

    def near(self, values: np.ndarray, at: np.ndarray, by: int, fill) -> np.ndarray:
        """values of the word `by` places after (negative: before) each word `at`, in the same
        text; `fill` where that is past either end."""
        target = self.position[at] + by
        inside = (target >= 0) & (target < self.length[at])
        out = np.full(len(at), fill, dtype=values.dtype)
        out[inside] = values[at[inside] + by]
        return out

    def scores(self) -> np.ndarray:
        """The sentiment of each word, after the "but" rule."""
        rules, code, none = self.rules, self.codes, self.none
        # polarity_scores: boosters and "kind" before "of" score 0; so does a word outside the
        # lexicon. Only the other words (`at`) go through sentiment_valence's rules.
        kind_of = self.is_(code, "kind") & self.is_(
            self.near(code, np.arange(len(code)), 1, none), "of"
        )
        at = np.flatnonzero(self.in_lexicon[code] & ~self.is_booster[code] & ~kind_of)
        word = code[at]
        p1, p2, p3 = (self.near(code, at, -k, none) for k in (1, 2, 3))
        n1, n2 = self.near(code, at, 1, none), self.near(code, at, 2, none)
        i, cap = self.position[at], self.cap_differential[at]
        v = self.valence[word]
        v = np.where(self.is_(word, "no") & self.in_lexicon[n1], 0.0, v)
        after_no = (
            self.is_(p1, "no")
            | self.is_(p2, "no")
            | (self.is_(p3, "no") & self.is_(p1, "or", "nor"))
        )
        v = np.where(after_no, self.valence[word] * rules.n_scalar, v)
        v = np.where(self.upper[at] & cap, np.where(v > 0, v + rules.c_incr, v - rules.c_incr), v)
        for start, before in enumerate((p1, p2, p3)):
            active = (i > start) & ~self.in_lexicon[before]
            # scalar_inc_dec: a booster before the word raises (lowers) its strength.
            booster = self.is_booster[before]
            upper = self.near(self.upper, at, -(start + 1), False)
            s = np.where(booster, self.booster[before], 0.0)
            s = np.where(booster & (v < 0), s * -1, s)
            s = np.where(
                booster & upper & cap, np.where(v > 0, s + rules.c_incr, s - rules.c_incr), s
            )
            if start > 0:
                s = np.where(s != 0, s * (0.95 if start == 1 else 0.9), s)
            v = np.where(active, v + s, v)
            v = np.where(active, self._negation_check(v, start, p1, p2, p3), v)
            if start == 2:
                v = np.where(active, self._special_idioms(v, word, p1, p2, p3, n1, n2), v)
        # _least_check
        least = ~self.in_lexicon[p1] & self.is_(p1, "least")
        v = np.where((i > 1) & least & ~self.is_(p2, "at", "very"), v * rules.n_scalar, v)
        v = np.where((i == 1) & least, v * rules.n_scalar, v)
        sentiments = np.zeros(len(code), dtype=np.float64)
        sentiments[at] = v
        return self._but_rule(sentiments)

    def _negation_check(self, v, start: int, p1, p2, p3) -> np.ndarray:
        n_scalar = self.rules.n_scalar
        if start == 0:
            return np.where(self.negated[p1], v * n_scalar, v)
        if start == 1:
            never_so = self.is_(p2, "never") & self.is_(p1, "so", "this")
            without_doubt = self.is_(p2, "without") & self.is_(p1, "doubt")
            negated = self.negated[p2]
        else:
            never_so = (self.is_(p3, "never") & self.is_(p2, "so", "this")) | self.is_(
                p1, "so", "this"
            )
            without_doubt = self.is_(p3, "without") & (
                self.is_(p2, "doubt") | self.is_(p1, "doubt")
            )
            negated = self.negated[p3]
        return np.where(never_so, v * 1.25, np.where(~without_doubt & negated, v * n_scalar, v))

    def _special_idioms(self, v, code, p1, p2, p3, n1, n2) -> np.ndarray:
        """_special_idioms_check: idioms of 2-3 words set the valence; "kind of"-like boosters
        before the word add to it. Words hold no whitespace, so "a b" equals an idiom exactly
        when the words equal its words."""
        rules = self.rules

        def matches(sequence, phrase: tuple[str, ...]) -> np.ndarray | None:
            if len(phrase) != len(sequence) or min(map(self.id_of, phrase)) < 0:
                return None
            hit = np.ones(len(code), dtype=bool)
            for ids, part in zip(sequence, phrase):
                hit &= ids == self.id_of(part)
            return hit

        out, done = v.copy(), np.zeros(len(code), dtype=bool)
        for sequence in ((p1, code), (p2, p1, code), (p2, p1), (p3, p2, p1), (p3, p2)):
            for phrase, value in rules.idioms.items():
                hit = matches(sequence, phrase)
                if hit is not None:
                    hit &= ~done
                    out[hit], done = value, done | hit
        for sequence in ((code, n1), (code, n1, n2)):  # n1/n2 are "no word" past the end
            for phrase, value in rules.idioms.items():
                hit = matches(sequence, phrase)
                if hit is not None:
                    out[hit] = value
        for sequence in ((p3, p2, p1), (p3, p2), (p2, p1)):
            for phrase, value in rules.booster_phrases.items():
                hit = matches(sequence, phrase)
                if hit is not None:
                    out[hit] = out[hit] + value
        return out

    def _but_rule(self, sentiments: np.ndarray) -> np.ndarray:
        """_but_check, by the analyzer's own function, on the texts holding the word "but"."""
        but = self.is_(self.codes, "but")
        if not but.any():
            return sentiments
        out = sentiments.copy()
        starts = np.searchsorted(self.rows, np.arange(self.n_texts + 1))
        for row in np.unique(self.rows[but]).tolist():
            a, b = starts[row], starts[row + 1]
            words = self.stripped[self.raw_codes[a:b]].tolist()
            out[a:b] = self.rules.but_check(words, out[a:b].tolist())
        return out
