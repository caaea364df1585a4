"""Tweet-aware text cleaning and the regex tokenizer.

Cleaning rewrites a text with special tokens (<url>, <user>, <num>, <hashtag>) and light
normalisation; the tokenizer then finds words, special tokens, emoticons, emoji and punctuation.
Both are plain regular expressions, so the same code gives the same tokens at training and serving.

Every encoder (the tokenizer, the engineered features, the hashed n-grams) reads at most the first
MAX_TEXT_CHARS characters of a text (`opening`), at training and at serving alike.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from voxpop.data.errors import VoxpopError

# What each encoder reads of a text, so that memory per row is bounded whatever the text. Every
# text of the shared data sets is shorter (the longest, a newsgroup post, has 66,536 characters),
# so this changes no real row. Measured (bench/bench_encode.py, long text): a 30 MB text encodes
# as its first 100,000 characters with a peak of 20 MB more memory, where reading it whole took
# 2.85 GB in issue 16 and 9.4 GB here (the repeat-squeezing regex backtracking over one run).
MAX_TEXT_CHARS = 100_000


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

# The default token pattern; alternatives are tried in this order.
TOKEN_PATTERN = "|".join(
    [SPECIAL, EMOTICON, URL, MENTION, r"#(?<!\w#)\w+", WORD, r"\d+(?:[.,:]\d+)*", EMOJI, r"[^\w\s]"]
)

# Tokenizers by name. preprocess.json stores the name, never a pattern: a bundle may come from
# someone else, and a pattern compiled as given could backtrack for hours on ordinary text. A name
# is a promise of the same tokens forever: a tokenizer that splits differently gets a new name.
TOKENIZERS = {"voxpop-tweet-v1": TOKEN_PATTERN}
DEFAULT_TOKENIZER = "voxpop-tweet-v1"
# Files written before tokenizers had names stored the pattern itself; the exact patterns that
# voxpop wrote (by sha256 of the pattern) load as their names, any other pattern is refused.
LEGACY_PATTERNS = {
    "56968d549757116907e3c9ed81af9e9a139967105203ee197912214266680e77": "voxpop-tweet-v1"
}

_URL = re.compile(URL)
_MENTION = re.compile(MENTION)
_HASHTAG = re.compile(HASHTAG)
_NUMBER = re.compile(NUMBER)
_EMOJI = re.compile(EMOJI)
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


def opening(texts) -> list[str]:
    """The first MAX_TEXT_CHARS characters of each text: what the encoders read."""
    return [text[:MAX_TEXT_CHARS] for text in texts]


# Encoding and fitting work through the rows in blocks of about this many characters (about 1,000
# tweets): the intermediate arrays (a few per character) stay small and in the CPU caches whatever
# the number of rows. Measured on 40,000 tweets: 2**17 encodes 10% faster than 2**18 and 30%
# faster than 2**20; smaller blocks pay numpy's per-call costs more often.
BLOCK_CHARS = 2**17


def blocks(texts: list[str], max_chars: int = BLOCK_CHARS) -> list[slice]:
    """Consecutive slices of `texts` holding about `max_chars` characters each (of their
    openings; a longer text is a block of its own), covering all texts in order."""
    lengths = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))
    ends = np.cumsum(np.minimum(lengths, MAX_TEXT_CHARS) + 1)
    total = int(ends[-1]) if len(ends) else 0
    cuts = np.searchsorted(ends, np.arange(max_chars, total, max_chars), side="right")
    bounds = [0, *sorted(set(cuts.tolist()) - {0, len(texts)}), len(texts)]
    return [slice(a, b) for a, b in zip(bounds[:-1], bounds[1:])]


def squeeze_repeats(text: str) -> str:
    """Runs of three or more of one character other than a decimal digit cut to two ("soooo" ->
    "soo"), as `re.sub(r"(\D)\1\1+", r"\1\1", text)`, in numpy: that regex backtracks over
    a run one character at a time (a run of 30 million characters took 2.85 GB)."""
    points = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    third = np.zeros(len(points), dtype=bool)
    third[2:] = (points[2:] == points[1:-1]) & (points[1:-1] == points[:-2])
    if not third.any():
        return text
    # \d is Unicode's decimal digits (str.isdecimal), checked once per repeated character.
    repeated = np.unique(points[third])
    digits = repeated[[chr(c).isdecimal() for c in repeated.tolist()]]
    if len(digits):
        third &= ~np.isin(points, digits)
    return points[~third].tobytes().decode("utf-32-le", "surrogatepass")


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
        text = squeeze_repeats(text)
    text = _VARIATION_SELECTORS.sub("", text)
    if not options.keep_emoji:
        text = _EMOJI.sub(" ", text)
    if options.lowercase:
        text = text.lower()
    return text


# Texts are cleaned and tokenized as one joined string: one regex call per step for the whole
# batch instead of one per text. The separator is its own whitespace-delimited chunk; the patterns
# never match across whitespace, so each text gets exactly the tokens it would get alone.
SEPARATOR = "\ue000"  # private use: not a letter, digit, space or emoji
_JOIN = f"\n{SEPARATOR}\n"


def items_per_text(
    texts: list[str], items: Callable[[str], list[str]]
) -> tuple[np.ndarray, np.ndarray]:
    """`items(text)` for every text, flat (an object array), and the row of each item (int64).

    `items` runs once, on the texts joined by SEPARATOR between newlines, and must return the
    separator as an item of its own and find nothing across whitespace (str.split, or a findall
    whose matches hold no whitespace and that matches the separator alone). A batch where a text
    holds the separator runs text by text.
    """
    joined = _JOIN.join(texts)
    if joined.count(SEPARATOR) != max(len(texts) - 1, 0):
        lists = [items(text) for text in texts]
        lengths = np.fromiter(map(len, lists), dtype=np.int64, count=len(lists))
        flat = _object_array([item for part in lists for item in part])
        return flat, np.repeat(np.arange(len(texts)), lengths)
    found = items(joined)
    # Where the separators are (list.index compares in C, and finds each after the previous).
    positions = np.empty(len(texts) + 1, dtype=np.int64)
    positions[0], positions[-1], index, start = -1, len(found), found.index, 0
    for i in range(1, len(texts)):
        positions[i] = start = index(SEPARATOR, start)
        start += 1
    flat = np.delete(_object_array(found), positions[1:-1])
    return flat, np.repeat(np.arange(len(texts)), np.diff(positions) - 1)


def _object_array(items: list[str]) -> np.ndarray:
    """A 1-D object array of the strings (for pandas' hashing and numpy's gathers)."""
    return np.fromiter(items, dtype=object, count=len(items))


@dataclass(frozen=True)
class TokenBatch:
    """The tokens of many texts, flat: text i has tokens[offsets[i]:offsets[i + 1]], and token j is
    uniques[codes[j]] (the vocabulary and the features describe each distinct token once)."""

    codes: np.ndarray  # int64 [total]
    uniques: np.ndarray  # object [distinct]: str, in first-seen order
    offsets: np.ndarray  # int64 [n + 1]

    @property
    def tokens(self) -> np.ndarray:
        """object [total]: every token, in order."""
        return self.uniques[self.codes]

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def lists(self) -> list[list[str]]:
        """One token list per text."""
        bounds = self.offsets.tolist()
        tokens = self.tokens.tolist()
        return [tokens[a:b] for a, b in zip(bounds[:-1], bounds[1:])]


class Tokenizer:
    """Cleaning followed by a regex `findall` with the token pattern of the named tokenizer
    (one of TOKENIZERS), on the opening (MAX_TEXT_CHARS) of each text."""

    def __init__(self, options: CleaningOptions, name: str = DEFAULT_TOKENIZER):
        if name not in TOKENIZERS:
            raise VoxpopError(
                f"unknown tokenizer {name!r} (this voxpop has {', '.join(TOKENIZERS)})"
            )
        self.options = options
        self.name = name
        self.pattern = TOKENIZERS[name]
        self._regex = re.compile(self.pattern)

    def __call__(self, text: str) -> list[str]:
        """Tokens of one raw text."""
        return self.tokenize_batch([text]).tokens.tolist()

    def tokenize_many(self, texts) -> list[list[str]]:
        """Tokens of each raw text, in order."""
        return self.tokenize_batch(texts).lists()

    def tokenize_batch(self, texts) -> TokenBatch:
        """Tokens of all texts as one `TokenBatch`: the cleaned texts are split on whitespace, and
        each distinct chunk is tokenized once (most are plain words, which need no regex:
        measured half the time of one findall over the whole text), then repeated."""
        texts = opening(texts)
        chunks, rows = items_per_text(texts, self._chunks)
        chunk_codes, distinct = pd.factorize(chunks)
        findall = self._regex.findall
        chunk_tokens = [
            [chunk] if chunk.isalpha() else findall(chunk) for chunk in distinct.tolist()
        ]
        per_chunk = np.fromiter(map(len, chunk_tokens), dtype=np.int64, count=len(chunk_tokens))
        token_codes, uniques = pd.factorize(
            _object_array([token for tokens in chunk_tokens for token in tokens])
        )
        per_occurrence, codes = expand(per_chunk, token_codes, chunk_codes)
        counts = np.bincount(np.repeat(rows, per_occurrence), minlength=len(texts))
        return TokenBatch(codes, uniques, np.concatenate([[0], np.cumsum(counts)]).astype(np.int64))

    def _chunks(self, text: str) -> list[str]:
        return clean(text, self.options).split()


def expand(per_distinct: np.ndarray, flat: np.ndarray, positions: np.ndarray):
    """Per-distinct-item lists (their lengths, and their items flat) repeated for every occurrence
    (the distinct item of each, `positions`): (length per occurrence, items flat)."""
    per_item = per_distinct[positions]
    starts = np.cumsum(per_distinct) - per_distinct
    within = np.arange(per_item.sum()) - np.repeat(np.cumsum(per_item) - per_item, per_item)
    return per_item, flat[np.repeat(starts[positions], per_item) + within]
