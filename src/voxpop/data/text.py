"""Tweet-aware text cleaning and the regex tokenizer.

Cleaning rewrites a text with special tokens (<url>, <user>, <num>, <hashtag>) and light
normalisation; the tokenizer then finds words, special tokens, emoticons, emoji and punctuation.
Both are plain regular expressions, so the same code gives the same tokens at training and serving.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

import numpy as np

from voxpop.data.errors import VoxpopError

URL = r"(?:https?://|www\.)\S+"
# Patterns start with a literal or class, and look behind only after it: Python's re scans much
# faster that way than with a leading look-behind.
MENTION = r"@(?<!\w@)\w+"
HASHTAG = r"#(?<!\w#)(\w+)"
NUMBER = r"\d(?<![\w.<]\d)\d*(?:[.,:]\d+)*(?!\w)"
EMOTICON = (r"(?:[<>]?[:;=][\-o*']?[)\](\[dDpP/\\|}{@3oO]|[)\](\[dDpP/\\|}{@][\-o*']?[:;=][<>]?"
            r"|</?3)(?![\w])")
# Pictographs, dingbats, symbols, flags and skin-tone modifiers: one token per code point.
EMOJI = ("[\U0001F000-\U0001FAFF\U0001FC00-\U0001FFFF\u2600-\u27BF\u2B00-\u2BFF\u2300-\u23FF"
         "\u2190-\u21FF\u3030\u303D\u3297\u3299]")
SPECIAL = r"<(?:url|user|num|hashtag)>"
WORD = r"[^\W\d_]+(?:['’][^\W\d_]+)*"

# The default token pattern; alternatives are tried in this order.
TOKEN_PATTERN = "|".join([SPECIAL, EMOTICON, URL, MENTION, r"#(?<!\w#)\w+", WORD,
                          r"\d+(?:[.,:]\d+)*", EMOJI, r"[^\w\s]"])

# Tokenizers by name. preprocess.json stores the name, never a pattern: a bundle may come from
# someone else, and a pattern compiled as given could backtrack for hours on ordinary text. A name
# is a promise of the same tokens forever: a tokenizer that splits differently gets a new name.
TOKENIZERS = {"voxpop-tweet-v1": TOKEN_PATTERN}
DEFAULT_TOKENIZER = "voxpop-tweet-v1"
# Files written before tokenizers had names stored the pattern itself; the exact patterns that
# voxpop wrote (by sha256 of the pattern) load as their names, any other pattern is refused.
LEGACY_PATTERNS = {"56968d549757116907e3c9ed81af9e9a139967105203ee197912214266680e77":
                   "voxpop-tweet-v1"}

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
        return cls([t for tokens in token_lists for t in tokens], np.cumsum(lengths, dtype=np.int64))

    def lists(self) -> list[list[str]]:
        """One token list per text."""
        bounds = self.offsets.tolist()
        return [self.tokens[a:b] for a, b in zip(bounds[:-1], bounds[1:])]


class Tokenizer:
    """Cleaning followed by a regex `findall` with the token pattern of the named tokenizer
    (one of TOKENIZERS)."""

    def __init__(self, options: CleaningOptions, name: str = DEFAULT_TOKENIZER):
        if name not in TOKENIZERS:
            raise VoxpopError(f"unknown tokenizer {name!r} (this voxpop has "
                              f"{', '.join(TOKENIZERS)})")
        self.options = options
        self.name = name
        self.pattern = TOKENIZERS[name]
        self._regex = re.compile(self.pattern)

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
        return [token for chunk in clean(text, self.options).split()
                for token in ((chunk,) if chunk.isalpha() else findall(chunk))]

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
