"""Model families: the registry, config handling, padding-aware layers and pretrained vectors."""

from __future__ import annotations

import keras
import numpy as np
import pytest

import voxpop.models as vm
from voxpop.models import layers as vl

TINY = {
    "embed_dim": 8,
    "units": 8,
    "head_units": [8],
    "filters": 8,
    "ff_dim": 16,
    "attention_units": 8,
    "feature_units": 4,
}


def test_registry_lists_every_family_and_each_builds_the_contract_interface():
    assert set(vm.FAMILIES) == {
        "lstm",
        "bilstm",
        "stacked_bilstm",
        "gru",
        "bigru",
        "attention",
        "cnn",
        "bigram",
        "tfidf",
        "tfidf_fusion",
        "tfidf_nb",
        "transformer",
        "fusion",
        "sentence",
    }
    for family in vm.FAMILIES:
        model = vm.build(
            family, TINY, n_tokens=50, n_classes=4, n_features=3, n_buckets=64, sentence_dim=12
        )
        names = [t.name for t in model.inputs]
        expected = {
            "tokens": ["tokens"],
            "grams": ["grams", "gram_weights"],
            "sentence": ["sentence_embedding"],
        }[vm.FAMILIES[family].reads]
        assert names == expected + (["features"] if vm.uses_features(family) else [])
        # dynamic batch and sequence; a sentence embedding is one vector per row
        assert model.inputs[0].shape == (
            (None, 12) if names == ["sentence_embedding"] else (None, None)
        )
        assert model.output_shape == (None, 4)
        assert model.layers[-1].name == "probs"


def test_unknown_family_and_unknown_key_are_refused_with_the_valid_choices():
    with pytest.raises(ValueError, match=r"'lstn' is not valid \(valid: lstm, bilstm"):
        vm.build("lstn", {}, n_tokens=10, n_classes=2)
    with pytest.raises(ValueError, match=r"unknown key\(s\) unitz \(valid: .*units"):
        vm.build("lstm", {"unitz": 3}, n_tokens=10, n_classes=2)
    with pytest.raises(ValueError, match="'cell': 'rnn' is not valid"):
        vm.build("attention", {"cell": "rnn"}, n_tokens=10, n_classes=2)
    with pytest.raises(ValueError, match="'encoder': 'fusion' is not valid"):
        vm.build("fusion", {"encoder": "fusion"}, n_tokens=10, n_classes=2, n_features=2)
    with pytest.raises(ValueError, match="needs dense features"):
        vm.build("fusion", {}, n_tokens=10, n_classes=2, n_features=0)
    with pytest.raises(ValueError, match="'encoder': 'tfidf' is not valid"):
        vm.build("fusion", {"encoder": "tfidf"}, n_tokens=10, n_classes=2, n_features=2)
    with pytest.raises(ValueError, match="fitted without n-grams"):
        vm.build("tfidf", {}, n_tokens=10, n_classes=2, n_buckets=0)
    with pytest.raises(ValueError, match="tune with --sentence-encoder"):
        vm.build("sentence", {}, n_tokens=10, n_classes=2)


def test_tfidf_is_a_linear_model_of_the_weighted_grams():
    """No head: probs = softmax(W2 (sum_i w_i E[g_i]) + b), so padding (weight 0) changes nothing
    and scaling all weights of a row scales its logits."""
    model = vm.build("tfidf", {"embed_dim": 4}, n_tokens=2, n_classes=3, n_buckets=32)
    rng = np.random.default_rng(0)
    grams = rng.integers(1, 32, (5, 6)).astype("int32")
    weights = rng.random((5, 6)).astype("float32")
    probs = model.predict({"grams": grams, "gram_weights": weights}, verbose=0)
    padded = model.predict(
        {
            "grams": np.pad(grams, ((0, 0), (0, 3))),
            "gram_weights": np.pad(weights, ((0, 0), (0, 3))),
        },
        verbose=0,
    )
    np.testing.assert_allclose(padded, probs, atol=1e-6)
    table = model.get_layer("gram_embedding").get_weights()[0]
    dense_w, dense_b = model.get_layer("probs").get_weights()
    logits = np.einsum("bn,bnd->bd", weights, table[grams]) @ dense_w + dense_b
    expected = np.exp(logits - logits.max(1, keepdims=True))
    np.testing.assert_allclose(probs, expected / expected.sum(1, keepdims=True), atol=1e-5)


def test_tfidf_fusion_is_one_linear_model_of_the_weighted_grams_and_the_features():
    """feature_units 0: the features enter the output layer as they are, beside the n-gram sum,
    so the logits are W2 [sum_i w_i E[g_i], features] + b."""
    model = vm.build(
        "tfidf_fusion", {"embed_dim": 3}, n_tokens=2, n_classes=3, n_features=4, n_buckets=32
    )
    rng = np.random.default_rng(1)
    grams = rng.integers(1, 32, (5, 6)).astype("int32")
    weights = rng.random((5, 6)).astype("float32")
    features = rng.normal(size=(5, 4)).astype("float32")
    probs = model.predict(
        {"grams": grams, "gram_weights": weights, "features": features}, verbose=0
    )
    table = model.get_layer("gram_embedding").get_weights()[0]
    dense_w, dense_b = model.get_layer("probs").get_weights()
    assert dense_w.shape == (3 + 4, 3) and len(model.trainable_weights) == 3
    logits = (
        np.hstack([np.einsum("bn,bnd->bd", weights, table[grams]), features]) @ dense_w + dense_b
    )
    expected = np.exp(logits - logits.max(1, keepdims=True))
    np.testing.assert_allclose(probs, expected / expected.sum(1, keepdims=True), atol=1e-5)
    hidden = vm.build(
        "tfidf_fusion", {"feature_units": 5}, n_tokens=2, n_classes=3, n_features=4, n_buckets=32
    )
    assert hidden.get_layer("probs").get_weights()[0].shape == (3 + 5, 3)


def test_training_keys_and_other_families_keys_are_ignored_by_build():
    model = vm.build(
        "cnn",
        {**TINY, "learning_rate": 0.1, "units": 99, "family": "cnn"},
        n_tokens=10,
        n_classes=2,
    )
    assert model.count_params() == vm.build("cnn", TINY, n_tokens=10, n_classes=2).count_params()


def test_fusion_takes_the_keys_of_its_encoder():
    config = {**TINY, "encoder": "cnn", "kernel_sizes": [2], "filters": 5}
    model = vm.build("fusion", config, n_tokens=10, n_classes=2, n_features=3)
    assert [layer.filters for layer in model.layers if isinstance(layer, keras.layers.Conv1D)] == [
        5
    ]
    assert vm.default_config("fusion", encoder="cnn")["kernel_sizes"] == [2, 3, 4]


def test_default_config_is_a_fresh_copy():
    config = vm.default_config("cnn")
    config["kernel_sizes"].append(99)
    assert 99 not in vm.default_config("cnn")["kernel_sizes"]
    assert vm.default_config("fusion")["units"] == vm.default_config("bilstm")["units"]


def test_cnn_output_does_not_depend_on_the_amount_of_padding():
    rng = np.random.default_rng(0)
    texts = [rng.integers(2, 50, size=n) for n in (3, 7, 12)]

    def pre_pad(max_len):
        out = np.zeros((len(texts), max_len), dtype="int32")
        for row, ids in enumerate(texts):
            out[row, max_len - len(ids) :] = ids
        return out

    model = vm.build("cnn", TINY, n_tokens=50, n_classes=3)
    short, long = model.predict(pre_pad(12), verbose=0), model.predict(pre_pad(40), verbose=0)
    np.testing.assert_allclose(short, long, atol=1e-6)


def test_hashed_bigrams_match_a_direct_computation_and_skip_padding():
    tokens = np.array([[0, 0, 5, 7, 9], [3, 4, 0, 2, 2]], dtype="int32")
    buckets = 101
    ids = np.asarray(vl.HashedBigrams(buckets)(tokens))
    expected = np.zeros_like(tokens)
    for row in range(tokens.shape[0]):
        for step in range(1, tokens.shape[1]):
            prev, cur = int(tokens[row, step - 1]), int(tokens[row, step])
            if prev and cur:
                expected[row, step] = 1 + (prev * 1_000_003 + cur) % (buckets - 1)
    np.testing.assert_array_equal(ids, expected)
    assert ids[0, :3].tolist() == [0, 0, 0]  # padding and the first real token start no bigram


def test_bigram_output_does_not_depend_on_the_amount_of_padding():
    tokens = np.array([[0, 0, 0, 5, 7, 9]], dtype="int32")
    model = vm.build("bigram", {**TINY, "buckets": 64}, n_tokens=50, n_classes=3)
    np.testing.assert_allclose(
        model.predict(tokens, verbose=0), model.predict(tokens[:, 2:], verbose=0), atol=1e-6
    )


def test_masked_poolings_use_only_real_steps():
    rng = np.random.default_rng(1)
    sequence = rng.normal(size=(2, 5, 3)).astype("float32")
    mask = np.array([[0, 0, 1, 1, 1], [0, 0, 0, 0, 0]], dtype="float32")
    mean = np.asarray(vl.MaskedMeanPooling()([sequence, mask]))
    np.testing.assert_allclose(mean[0], sequence[0, 2:].mean(0), atol=1e-6)
    np.testing.assert_allclose(mean[1], 0.0)
    top = np.asarray(vl.MaskedMaxPooling()([sequence, mask]))
    np.testing.assert_allclose(top[0], sequence[0, 2:].max(0), atol=1e-6)
    np.testing.assert_allclose(top[1], 0.0)
    attention = vl.MaskedAttentionPooling(4)
    pooled = np.asarray(attention([sequence, mask]))
    changed = sequence.copy()
    changed[0, :2] = 100.0  # padded steps: must not change the result
    np.testing.assert_allclose(np.asarray(attention([changed, mask]))[0], pooled[0], atol=1e-6)


def test_position_embedding_accepts_any_length_up_to_its_maximum():
    layer = vl.PositionEmbedding(max_len=10)
    zeros = np.zeros((1, 10, 4), dtype="float32")
    full = np.asarray(layer(zeros))
    np.testing.assert_allclose(np.asarray(layer(zeros[:, :6])), full[:, :6])


def _trained_embedding(family: str, *, freeze: bool, vectors: np.ndarray) -> np.ndarray:
    """The token embedding of a model started from `vectors` after one epoch on random rows."""
    from voxpop.models import training

    rng = np.random.default_rng(0)
    config = {
        **TINY,
        "embed_dim": vectors.shape[1],
        "embeddings": "vectors.txt",
        "freeze_embeddings": freeze,
        "batch_size": 16,
        "learning_rate": 0.05,
    }
    model = vm.build(family, config, n_tokens=len(vectors), n_classes=2, embeddings=vectors)
    embedding = model.get_layer("embedding")
    np.testing.assert_array_equal(embedding.get_weights()[0], vectors)
    assert bool(embedding.trainable_weights) is not freeze
    rows = {"tokens": rng.integers(1, len(vectors), (64, 6)).astype("int32")}
    labels = (rows["tokens"][:, 0] % 2).astype("int64")
    training.fit(model, train=rows, y_train=labels, val=rows, y_val=labels, config=config, epochs=1)
    return embedding.get_weights()[0]


def test_pretrained_vectors_start_the_embedding_frozen_or_fine_tuned():
    vectors = np.random.default_rng(1).normal(0, 0.5, (12, 6)).astype("float32")
    vectors[0] = 0.0
    np.testing.assert_array_equal(_trained_embedding("cnn", freeze=True, vectors=vectors), vectors)
    tuned = _trained_embedding("cnn", freeze=False, vectors=vectors)
    assert np.abs(tuned - vectors).max() > 1e-4


def test_build_refuses_vectors_that_do_not_fit_the_embedding():
    vectors = np.zeros((4, 3), dtype="float32")
    config = {**TINY, "embed_dim": 3, "embeddings": "glove-6b-50d"}
    with pytest.raises(ValueError, match="build got no matrix"):
        vm.build("lstm", config, n_tokens=4, n_classes=2)
    with pytest.raises(ValueError, match="build got a matrix"):
        vm.build(
            "lstm", {**config, "embeddings": None}, n_tokens=4, n_classes=2, embeddings=vectors
        )
    with pytest.raises(
        ValueError, match="are 4 x 3, but the embedding is n_tokens=5 x embed_dim=3"
    ):
        vm.build("lstm", config, n_tokens=5, n_classes=2, embeddings=vectors)
    # a family that reads n-grams has no token embedding: vectors change nothing
    vm.build("tfidf", config, n_tokens=4, n_classes=2, n_buckets=64)
