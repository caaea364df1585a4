"""Cleaning, tokenizer, vocabulary, padding and the engineered features."""

from __future__ import annotations

import re

import numpy as np
import pytest

from voxpop.data.features import (
    FEATURE_NAMES,
    StandardScaler,
    engineered_features,
    text_features,
    vader_lexicon,
)
from voxpop.data.text import TOKEN_PATTERN, CleaningOptions, Tokenizer, clean
from voxpop.data.vocab import OOV, PAD, Vocabulary, pad_sequences


def test_default_tokens_for_a_tweet():
    tokens = Tokenizer(CleaningOptions())(
        "Sooo HAPPY @bob!!! #GreatDay2015 http://t.co/x 3.5 :) :-( <3 😀 don't"
    )
    assert tokens == [
        "soo",
        "happy",
        "<user>",
        "!",
        "!",
        "<hashtag>",
        "great",
        "day",
        "<num>",
        "<url>",
        "<num>",
        ":)",
        ":-(",
        "<3",
        "😀",
        "don't",
    ]


def test_each_cleaning_option_can_be_switched_off():
    off = CleaningOptions(
        lowercase=False,
        replace_urls=False,
        replace_mentions=False,
        replace_numbers=False,
        split_hashtags=False,
        squeeze_repeats=False,
        keep_emoji=False,
    )
    tokens = Tokenizer(off)("Sooo @bob #Great_Day http://t.co/x 1000 😀 :P")
    assert tokens == ["Sooo", "@bob", "#Great_Day", "http://t.co/x", "1000", ":P"]


def test_hashtags_split_on_camel_case_underscores_and_digits():
    assert clean("#hash_tagsRock #Win2015", CleaningOptions(lowercase=False)).split() == [
        "<hashtag>",
        "hash",
        "tags",
        "Rock",
        "<hashtag>",
        "Win",
        "<num>",
    ]


@pytest.mark.parametrize("data, rows", [("tweets_df", 3000), ("newsgroups_df", 1200)])
def test_chunked_tokenizer_equals_plain_findall_on_real_texts(request, data, rows):
    # The fast path (plain words skip the regex; all texts cleaned joined) must give exactly what
    # re.findall gives, on short tweets and on long newsgroup posts.
    texts = request.getfixturevalue(data)["text"].sample(n=rows, random_state=1).tolist()
    options = CleaningOptions()
    pattern = re.compile(TOKEN_PATTERN)
    assert Tokenizer(options).tokenize_many(texts) == [
        pattern.findall(clean(t, options)) for t in texts
    ]


def test_vocabulary_keeps_frequent_tokens_in_frequency_order():
    vocab = Vocabulary.build(["b", "a", "b", "c", "a", "b", "d"], max_tokens=4, min_freq=2)
    assert vocab.tokens == ["b", "a"] and len(vocab) == 4
    assert vocab.ids(["a", "b", "zzz", "c"]).tolist() == [3, 2, OOV, OOV]
    assert Vocabulary.build(["b", "a", "b", "c", "a", "b"], max_tokens=3, min_freq=1).tokens == [
        "b"
    ]


@pytest.mark.parametrize(
    "padding, truncating, expected",
    [
        ("pre", "post", [[0, 0, 5], [1, 2, 3]]),
        ("post", "post", [[5, 0, 0], [1, 2, 3]]),
        ("pre", "pre", [[0, 0, 5], [2, 3, 4]]),
    ],
)
def test_padding_and_truncating_sides(padding, truncating, expected):
    ids, offsets = np.array([5, 1, 2, 3, 4]), np.array([0, 1, 5])
    out = pad_sequences(ids, offsets, max_len=3, padding=padding, truncating=truncating)
    assert out.dtype == np.int32 and out.tolist() == expected and PAD == 0


def test_padding_matches_a_row_by_row_loop_on_random_lengths():
    rng = np.random.default_rng(0)
    lengths = rng.integers(0, 9, size=200)
    offsets = np.r_[0, np.cumsum(lengths)]
    ids = rng.integers(2, 100, size=offsets[-1])
    for padding in ("pre", "post"):
        for truncating in ("pre", "post"):
            out = pad_sequences(ids, offsets, max_len=5, padding=padding, truncating=truncating)
            for row, (a, b) in enumerate(zip(offsets[:-1], offsets[1:])):
                seq = ids[a:b].tolist()
                seq = seq[:5] if truncating == "post" else seq[-5:]
                pad = [0] * (5 - len(seq))
                assert out[row].tolist() == (pad + seq if padding == "pre" else seq + pad)


def test_at_least_twenty_features_with_values_counted_by_hand():
    assert len(FEATURE_NAMES) >= 20
    f = text_features("I LOVE it!! Sooo good :) 😀 @bob #win http://t.co 42 but NOT bad?")
    expected = {
        "n_exclaim": 2,
        "n_question": 1,
        "n_emoji": 1,
        "n_emoticons": 1,
        "n_hashtags": 1,
        "n_mentions": 1,
        "n_urls": 1,
        "n_digits": 2,
        "n_numbers": 1,
        "n_elongated": 1,
        "n_allcaps_words": 2,
        "n_negations": 1,
    }  # "I" is too short
    assert {k: f[k] for k in expected} == expected
    assert f["n_chars"] == len("I LOVE it!! Sooo good :) 😀 @bob #win http://t.co 42 but NOT bad?")
    lexicon = vader_lexicon()
    # Hashtags are split into words ("#win" -> <hashtag> win), so "win" is scored too.
    assert f["lex_pos_sum"] == pytest.approx(
        lexicon["love"] + lexicon["good"] + lexicon[":)"] + lexicon["win"]
    )
    assert f["lex_neg_sum"] == pytest.approx(lexicon["bad"])
    assert 0 < f["lex_compound"] < 1


def test_features_are_never_all_zero_for_real_tweets(tweets_df):
    features = engineered_features(tweets_df["text"].head(500))
    assert features.shape == (500, len(FEATURE_NAMES))
    assert (np.abs(features).sum(axis=1) > 0).all() and np.isfinite(features).all()
    # A positive word scores above a negative one.
    good, bad = engineered_features(["what a great flight", "what a terrible flight"])
    compound = FEATURE_NAMES.index("lex_compound")
    assert good[compound] > 0 > bad[compound]


def test_vader_scores_apply_its_negation_and_but_rules_that_lexicon_sums_miss():
    """The lexicon sums see the same words in both texts; VADER's analyzer reads the negation and
    weights the clause after "but"."""
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    assert len(vader_lexicon()) > 7000
    texts = ["The plot is good.", "The plot is not good.", "Good actors, but the plot is dull."]
    good, negated, but = (dict(zip(FEATURE_NAMES, row)) for row in engineered_features(texts))
    assert good["lex_pos_sum"] == negated["lex_pos_sum"] > 0
    assert good["vader_compound"] > 0 > negated["vader_compound"]
    assert but["vader_compound"] < 0 and but["vader_neg"] > but["vader_pos"]
    reference = SentimentIntensityAnalyzer().polarity_scores(texts[2])
    assert [but[f"vader_{k}"] for k in ("compound", "pos", "neg")] == [
        reference[k] for k in ("compound", "pos", "neg")
    ]


def test_vader_reads_only_the_opening_of_a_long_text():
    """Its cost grows with the square of the length: a long text is scored on its opening."""
    from voxpop.data.vader import VADER_MAX_CHARS

    opening = "What a wonderful, delightful film. "
    long_text = opening * (VADER_MAX_CHARS // len(opening)) + "Awful, terrible, hateful. " * 5000
    scored = text_features(long_text)
    assert scored["vader_compound"] == text_features(long_text[:VADER_MAX_CHARS])["vader_compound"]
    assert scored["vader_compound"] > 0 > scored["lex_compound"]


def test_scaler_uses_training_statistics_and_maps_constant_columns_to_std_one():
    train = np.array([[1.0, 5.0], [3.0, 5.0]])
    scaler = StandardScaler().fit(train)
    np.testing.assert_allclose(scaler.means, [2.0, 5.0])
    np.testing.assert_allclose(scaler.stds, [1.0, 1.0])
    np.testing.assert_allclose(scaler.transform(np.array([[4.0, 7.0]])), [[2.0, 2.0]])
    shuffled = StandardScaler().fit(train[::-1])
    assert np.array_equal(shuffled.means, scaler.means) and np.array_equal(
        shuffled.stds, scaler.stds
    )


def test_batch_features_equal_features_computed_one_text_at_a_time(tweets_df):
    texts = tweets_df["text"].sample(n=300, random_state=2).tolist() + ["", "\n", "A\nBBB sooo"]
    one_by_one = np.vstack([engineered_features([t]) for t in texts])
    np.testing.assert_array_equal(engineered_features(texts), one_by_one)
