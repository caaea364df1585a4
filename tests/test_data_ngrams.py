"""Hashed TF-IDF n-grams: scikit-learn's TF-IDF weights, the heaviest-first cut, JSON round trip."""

from __future__ import annotations

import json
import math
import zlib
from collections import Counter

import numpy as np
import pytest

from voxpop.data import Preprocessor, VoxpopError
from voxpop.data.ngrams import _PAIR, HashedNgrams, _mix, _string_hashes


@pytest.fixture(scope="module")
def tweets(tweets_df) -> list[str]:
    return tweets_df.text.sample(400, random_state=5).tolist()


def reference_weights(fit_texts, texts, buckets: int) -> list[dict[tuple[int, int], float]]:
    """Per row {(block, bucket): weight}, computed the slow, obvious way: scikit-learn's own
    analyzers list the grams, each gram string is hashed to its bucket, then sublinear tf, smooth
    idf over documents with min_df=2, and an L2 norm per block."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    analyzers = [
        TfidfVectorizer(ngram_range=(1, 2)).build_analyzer(),
        TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5)).build_analyzer(),
    ]

    def bucket(block: int, gram: str) -> int:
        if block == 0:  # word unigram or "w1 w2" bigram
            words = [
                _mix(np.array([zlib.crc32(w.encode())], dtype=np.uint64)) for w in gram.split(" ")
            ]
            value = words[0] if len(words) == 1 else _mix((words[0] * _PAIR) ^ words[1])
        else:
            codes = np.array([ord(c) for c in gram], dtype=np.uint64)
            value = _string_hashes(codes, np.array([0]), np.array([len(gram)]))
        return int(value[0] % np.uint64(buckets - 1)) + 1

    def counts(text: str) -> Counter:
        return Counter(
            (block, bucket(block, gram))
            for block, analyze in enumerate(analyzers)
            for gram in analyze(text)
        )

    df = Counter(b for text in fit_texts for b in {b for _, b in counts(text)})
    idf = {b: math.log((1 + len(fit_texts)) / (1 + n)) + 1 for b, n in df.items() if n >= 2}
    rows = []
    for text in texts:
        raw = {
            key: (1 + math.log(tf)) * idf[key[1]]
            for key, tf in counts(text).items()
            if key[1] in idf
        }
        norms = {
            block: math.sqrt(sum(w * w for (k, _), w in raw.items() if k == block))
            for block in (0, 1)
        }
        rows.append({key: w / norms[key[0]] for key, w in raw.items()})
    return rows


def test_weights_are_tfidf_of_scikit_learns_word_and_char_wb_grams(tweets):
    """Each row holds exactly the reference weights: the same grams scikit-learn's analyzers find
    (word 1-2, char_wb 2-5), the same buckets, TF-IDF per block as TfidfVectorizer computes it."""
    fit_texts, texts = tweets[:300], tweets[300:]
    grams = HashedNgrams(buckets=2**18, max_grams=10_000).fit(fit_texts)
    ids, weights = grams.transform(texts)
    expected = reference_weights(fit_texts, texts, 2**18)
    assert int((grams.idf > 0).sum()) > 2000  # a real vocabulary, not a handful of grams
    for row, reference in enumerate(expected):
        kept = weights[row] > 0
        assert sorted(ids[row][kept].tolist()) == sorted(b for _, b in reference), f"row {row}"
        # idf is stored to 4 decimals
        np.testing.assert_allclose(
            np.sort(weights[row][kept]), np.sort(list(reference.values())), rtol=2e-4, atol=1e-6
        )
    assert ids.dtype == np.int32 and weights.dtype == np.float32
    assert (ids[~(weights > 0)] == 0).all()


def test_word_grams_alone_are_exactly_scikit_learns(tweets):
    """The 751 word grams of this corpus do not collide: every weight is scikit-learn's."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    fit_texts, texts = tweets[:300], tweets[300:]
    grams = HashedNgrams(buckets=2**26, char_ngrams=None, max_grams=10_000).fit(fit_texts)
    weights = grams.transform(texts)[1]
    matrix = (
        TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=2)
        .fit(fit_texts)
        .transform(texts)
        .tocsr()
    )
    assert int((grams.idf > 0).sum()) == matrix.shape[1]
    for row in range(len(texts)):
        np.testing.assert_allclose(
            np.sort(weights[row][weights[row] > 0]), np.sort(matrix[row].data), rtol=2e-4, atol=1e-6
        )


def test_the_cut_keeps_each_rows_heaviest_grams_with_the_uncut_norm(tweets):
    full = HashedNgrams(buckets=2**18, max_grams=10_000).fit(tweets)
    cut = HashedNgrams(buckets=2**18, max_grams=25).fit(tweets)
    full_ids, full_weights = full.transform(tweets[:50])
    cut_ids, cut_weights = cut.transform(tweets[:50])
    assert cut_ids.shape[1] == 25 < full_ids.shape[1]
    for row in range(50):
        heaviest = np.sort(full_weights[row])[::-1][:25]
        np.testing.assert_allclose(np.sort(cut_weights[row])[::-1], heaviest, rtol=1e-6)


def test_max_grams_defaults_to_a_percentile_of_the_training_rows(tweets):
    grams = HashedNgrams(buckets=2**18, max_grams_percentile=50).fit(tweets)
    kept = (grams.transform(tweets)[1] > 0).sum(axis=1)
    assert grams.max_grams == int(
        np.ceil(
            np.percentile(
                (
                    HashedNgrams(buckets=2**18, max_grams=10_000).fit(tweets).transform(tweets)[1]
                    > 0
                ).sum(1),
                50,
            )
        )
    )
    assert kept.max() == grams.max_grams


def test_grams_seen_in_fewer_than_min_df_training_rows_get_no_weight():
    grams = HashedNgrams(buckets=2**20, char_ngrams=(3, 3), min_df=2).fit(
        ["good flight", "good crew", "zzqx"]
    )
    ids, weights = grams.transform(["zzqx", "good"])
    assert (weights[0] == 0).all()  # every gram of "zzqx" was in one training row only
    assert (weights[1] > 0).sum() >= 4  # "good" and its char grams were in two


def test_json_round_trip_encodes_bit_for_bit(tweets):
    grams = HashedNgrams(buckets=2**18).fit(tweets[:300])
    again = HashedNgrams.from_dict(json.loads(json.dumps(grams.to_dict())))
    for mine, theirs in zip(grams.transform(tweets[300:]), again.transform(tweets[300:])):
        np.testing.assert_array_equal(mine, theirs)


def test_bad_options_and_tables_are_refused():
    with pytest.raises(VoxpopError, match="word_ngrams may reach bigrams at most"):
        HashedNgrams(word_ngrams=(1, 3))
    with pytest.raises(VoxpopError, match="char_ngrams must be"):
        HashedNgrams(char_ngrams=(4, 2))
    data = HashedNgrams(buckets=64).fit(["a b c", "a b d"]).to_dict()
    data["idf_buckets"] = [999]
    data["idf_values"] = [1.0]
    with pytest.raises(VoxpopError, match="inconsistent"):
        HashedNgrams.from_dict(data)


def test_preprocessor_makes_the_inputs_asked_for(tweets):
    labels = ["a", "b"] * 200
    pre = Preprocessor(ngram_buckets=2**16).fit(tweets, labels)
    assert pre.input_names == ["tokens", "features", "grams", "gram_weights"]
    assert pre.n_buckets == 2**16
    assert set(pre.encode(tweets[:5], inputs=["tokens"])) == {"tokens"}
    both = pre.encode(tweets[:5])
    assert set(both) == set(pre.input_names) and both["grams"].max() < 2**16
    with pytest.raises(VoxpopError, match="not made by this preprocessor"):
        pre.encode(tweets[:5], inputs=["pixels"])
    without = Preprocessor(ngrams=False).fit(tweets, labels)
    assert without.input_names == ["tokens", "features"] and without.n_buckets == 0


def test_a_preprocessor_file_from_before_ngrams_loads_and_makes_no_grams(tweets, tmp_path):
    pre = Preprocessor(ngram_buckets=2**16).fit(tweets, ["a", "b"] * 200)
    data = pre.to_dict()
    del data["ngrams"]
    path = tmp_path / "preprocess.json"
    path.write_text(json.dumps(data))
    old = Preprocessor.from_json(path)
    assert old.input_names == ["tokens", "features"]
    np.testing.assert_array_equal(
        old.encode(tweets[:9])["tokens"], pre.encode(tweets[:9])["tokens"]
    )
