"""Keras 3 GRU -> fused ONNX GRU: parity with Keras on real tweets, no Loop left, clear refusals."""

from __future__ import annotations

import re

import keras
import numpy as np
import onnx
import onnxruntime as ort
import pytest
import tensorflow as tf
import tf2onnx

from voxpop.data.errors import VoxpopError
from voxpop.export.gru import fuse_gru_loops

layers = keras.layers
ops = keras.ops

MAX_LEN = 40
ROWS = 256
EMBED = UNITS = 16


@pytest.fixture(scope="module")
def encoded(tweets_sample):
    """256 real tweets as int32 token ids, pre-padded with 0 (PAD=0, OOV=1), and the vocab size."""
    texts = tweets_sample["text"].astype(str).tolist()[:ROWS]
    tokenized = [re.findall(r"\w+|[^\w\s]", text.lower()) for text in texts]
    vocab = {word: i + 2 for i, word in enumerate(sorted({w for t in tokenized for w in t}))}
    tokens = np.zeros((len(tokenized), MAX_LEN), dtype=np.int32)
    for row, words in enumerate(tokenized):
        ids = [vocab[w] for w in words][-MAX_LEN:]
        if ids:
            tokens[row, MAX_LEN - len(ids) :] = ids
    return tokens, len(vocab) + 2


def _one_way(embedded, tokens):
    return layers.GRU(UNITS, dropout=0.2, recurrent_dropout=0.2)(embedded)


def _one_way_reset_before_no_bias(embedded, tokens):
    return layers.GRU(UNITS, reset_after=False, use_bias=False)(embedded)


def _bidirectional(embedded, tokens):
    return layers.Bidirectional(layers.GRU(UNITS))(embedded)


def _attention_pooling(embedded, tokens):
    """return_sequences=True, pooled by attention that ignores padding through tokens != 0."""
    sequence = layers.GRU(UNITS, return_sequences=True)(embedded)
    scores = ops.squeeze(layers.Dense(1)(sequence), axis=-1)
    scores = ops.where(ops.not_equal(tokens, 0), scores, -1e9)
    weights = ops.expand_dims(ops.softmax(scores, axis=-1), axis=-1)
    return ops.sum(sequence * weights, axis=1)


def _stacked_pair(embedded, tokens):
    sequence = layers.Bidirectional(layers.GRU(UNITS, return_sequences=True))(embedded)
    return layers.GRU(UNITS, reset_after=False, go_backwards=True)(sequence)


# encoder name -> (encoder, number of one-way GRU layers it holds)
ENCODERS = {
    "one_way": (_one_way, 1),
    "one_way_reset_before_no_bias": (_one_way_reset_before_no_bias, 1),
    "bidirectional": (_bidirectional, 2),
    "attention_pooling": (_attention_pooling, 1),
    "stacked_pair": (_stacked_pair, 3),
}


def _build(encoder, n_tokens, *, mask_zero=False):
    keras.backend.clear_session()  # layer names restart (gru, gru_1, ...) and memory is freed
    keras.utils.set_random_seed(0)
    tokens = keras.Input((None,), dtype="int32", name="tokens")
    embedded = layers.Embedding(n_tokens, EMBED, mask_zero=mask_zero)(tokens)
    probs = layers.Dense(3, activation="softmax", name="probs")(encoder(embedded, tokens))
    model = keras.Model(tokens, probs)
    _randomize_biases(model)
    return model


def _randomize_biases(model):
    """Biases start at zero; random ones make parity check their layout (input vs recurrent)."""
    rng = np.random.default_rng(0)
    for weight in model.weights:
        if weight.path.endswith("bias"):
            weight.assign(rng.normal(0.0, 0.5, weight.shape).astype("float32"))


def _to_onnx(model):
    signature = (tf.TensorSpec([None, None], tf.int32, name="tokens"),)
    onnx_model, _ = tf2onnx.convert.from_keras(model, input_signature=signature, opset=17)
    return onnx_model


def _run(onnx_model, tokens):
    session = ort.InferenceSession(
        onnx_model.SerializeToString(), providers=["CPUExecutionProvider"]
    )
    return session.run(["probs"], {"tokens": tokens})[0]


@pytest.mark.parametrize("name", list(ENCODERS))
def test_gru_becomes_fused_op_with_parity(name, encoded):
    tokens, n_tokens = encoded
    encoder, n_grus = ENCODERS[name]
    model = _build(encoder, n_tokens)

    fused = fuse_gru_loops(_to_onnx(model), model)

    onnx.checker.check_model(fused)
    op_types = [node.op_type for node in fused.graph.node]
    assert "Loop" not in op_types
    assert op_types.count("GRU") == n_grus
    assert all(n.name.endswith("/fused_gru") for n in fused.graph.node if n.op_type == "GRU")
    assert (tokens == 0).any(axis=1).mean() > 0.5  # most rows really carry pre-padding
    expected = model.predict(tokens, batch_size=ROWS, verbose=0)
    got = _run(fused, tokens)
    assert got.shape == expected.shape == (ROWS, 3)
    assert np.abs(got - expected).max() <= 1e-5
    assert np.array_equal(got.argmax(axis=1), expected.argmax(axis=1))


def test_model_without_gru_is_returned_unchanged(encoded):
    _, n_tokens = encoded
    model = _build(lambda embedded, tokens: layers.GlobalAveragePooling1D()(embedded), n_tokens)
    onnx_model = _to_onnx(model)
    before = onnx_model.SerializeToString()

    assert fuse_gru_loops(onnx_model, model).SerializeToString() == before


def test_masked_gru_is_refused_with_the_reason(encoded):
    _, n_tokens = encoded
    model = _build(_one_way, n_tokens, mask_zero=True)

    with pytest.raises(VoxpopError, match=r"GRU layer 'gru'.*mask_zero"):
        fuse_gru_loops(_to_onnx(model), model)


def test_unsupported_activation_is_refused_listing_valid_ones(encoded):
    _, n_tokens = encoded
    model = _build(
        lambda embedded, tokens: layers.GRU(UNITS, activation="gelu")(embedded), n_tokens
    )

    with pytest.raises(VoxpopError, match=r"activation 'gelu'.*valid: sigmoid, tanh, relu"):
        fuse_gru_loops(onnx.ModelProto(), model)
