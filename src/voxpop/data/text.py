"""Tweet-aware text cleaning and the regex tokenizer.

Cleaning rewrites a text with special tokens (<url>, <user>, <num>, <hashtag>) and light
normalisation; the tokenizer then finds words, special tokens, emoticons, emoji and punctuation.
Both are plain regular expressions, so the same code gives the same tokens at training and serving.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

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

# The token pattern is stored in preprocess.json; alternatives are tried in this order.
TOKEN_PATTERN = "|".join([SPECIAL, EMOTICON, URL, MENTION, r"#(?<!\w#)\w+", WORD,
                          r"\d+(?:[.,:]\d+)*", EMOJI, r"[^\w\s]"])

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

    Example: `clean("Sooo happy @bob #GreatDay http://x.co", CleaningOptions())`
    -> `"soo happy  <user>   <hashtag> great day   <url> "`.
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


class Tokenizer:
    """Cleaning followed by `re.findall` with one token pattern."""

    def __init__(self, options: CleaningOptions, pattern: str = TOKEN_PATTERN):
        self.options = options
        self.pattern = pattern
        self._regex = re.compile(pattern)

    def __call__(self, text: str) -> list[str]:
        """Tokens of one raw text."""
        return findall_by_chunk(self._regex, clean(text, self.options))

    def tokenize_many(self, texts) -> list[list[str]]:
        """Tokens of each raw text, in order."""
        regex, options = self._regex, self.options
        return [findall_by_chunk(regex, clean(t, options)) for t in texts]


def findall_by_chunk(regex: re.Pattern, text: str) -> list[str]:
    """`regex.findall(text)` for patterns whose matches never span whitespace, 3-4x faster.

    Most whitespace-separated chunks are plain words (one match), so only the others go through
    the regex; the look-arounds see whitespace either way, so the result is the same.
    """
    tokens: list[str] = []
    for chunk in text.split():
        if chunk.isalpha():
            tokens.append(chunk)
        else:
            tokens.extend(regex.findall(chunk))
    return tokens
