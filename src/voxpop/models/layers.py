"""Custom layers, registered for saving so `load_model(path, safe_mode=True)` needs no custom objects.

Padding is handled with explicit masks computed from `tokens != 0` (PAD = 0), never Keras masking:
`Embedding(mask_zero=True)` makes tf2onnx emit slow ONNX `Loop` ops instead of fused LSTM ops.
"""

from __future__ import annotations

import keras
from keras import ops

_NEG = -1e9  # added to scores of padded positions; large enough to vanish after softmax


@keras.saving.register_keras_serializable("voxpop")
def gelu_tanh(x):
    """gelu in its tanh form: exact gelu becomes an `Erfc` node that ONNX Runtime rejects."""
    return keras.activations.gelu(x, approximate=True)


@keras.saving.register_keras_serializable("voxpop")
class PaddingMask(keras.layers.Layer):
    """tokens int [batch, seq] -> float mask [batch, seq]: 1 for a real token, 0 for padding."""

    def call(self, tokens):
        return ops.cast(ops.not_equal(tokens, 0), self.compute_dtype)


@keras.saving.register_keras_serializable("voxpop")
class KeyMask(keras.layers.Layer):
    """float mask [batch, seq] -> bool attention mask [batch, seq, seq]: every query may attend to
    every real (non-padding) key."""

    def call(self, mask):
        keys = ops.expand_dims(ops.cast(mask, "bool"), 1)
        return ops.logical_and(keys, ops.ones_like(ops.expand_dims(ops.cast(mask, "bool"), 2)))


@keras.saving.register_keras_serializable("voxpop")
class ApplyMask(keras.layers.Layer):
    """[sequence [batch, seq, dim], mask [batch, seq]] -> the sequence with padded steps zeroed."""

    def call(self, inputs):
        sequence, mask = inputs
        return sequence * ops.expand_dims(mask, -1)


@keras.saving.register_keras_serializable("voxpop")
class MaskedMaxPooling(keras.layers.Layer):
    """Global max over the real steps only; a row without any real step pools to zeros."""

    def call(self, inputs):
        sequence, mask = inputs
        mask = ops.expand_dims(mask, -1)
        pooled = ops.max(sequence + (1.0 - mask) * _NEG, axis=1)
        return pooled * ops.minimum(ops.sum(mask, axis=1), 1.0)


@keras.saving.register_keras_serializable("voxpop")
class MaskedMeanPooling(keras.layers.Layer):
    """Mean over the real steps only; a row without any real step pools to zeros."""

    def call(self, inputs):
        sequence, mask = inputs
        mask = ops.expand_dims(mask, -1)
        return ops.sum(sequence * mask, axis=1) / ops.maximum(ops.sum(mask, axis=1), 1.0)


@keras.saving.register_keras_serializable("voxpop")
class MaskedAttentionPooling(keras.layers.Layer):
    """Additive attention pooling (score = v . tanh(W h)) with padded steps given zero weight."""

    def __init__(self, units: int = 64, **kwargs):
        super().__init__(**kwargs)
        self.units = units

    def build(self, input_shape):
        dim = input_shape[0][-1]
        self.proj = self.add_weight(
            name="proj", shape=(dim, self.units), initializer="glorot_uniform"
        )
        self.bias = self.add_weight(name="bias", shape=(self.units,), initializer="zeros")
        self.score = self.add_weight(
            name="score", shape=(self.units, 1), initializer="glorot_uniform"
        )

    def call(self, inputs):
        sequence, mask = inputs
        scores = ops.matmul(ops.tanh(ops.matmul(sequence, self.proj) + self.bias), self.score)
        scores = scores + (1.0 - ops.expand_dims(mask, -1)) * _NEG
        weights = ops.softmax(scores, axis=1)
        return ops.sum(weights * sequence, axis=1)

    def get_config(self):
        return {**super().get_config(), "units": self.units}


@keras.saving.register_keras_serializable("voxpop")
class PositionEmbedding(keras.layers.Layer):
    """Adds a learned position vector to each step; accepts any sequence length up to `max_len`."""

    def __init__(self, max_len: int = 512, **kwargs):
        super().__init__(**kwargs)
        self.max_len = max_len

    def build(self, input_shape):
        self.positions = self.add_weight(
            name="positions", shape=(self.max_len, input_shape[-1]), initializer="glorot_uniform"
        )

    def call(self, sequence):
        length = ops.shape(sequence)[1]
        return sequence + ops.expand_dims(self.positions[:length], 0)

    def get_config(self):
        return {**super().get_config(), "max_len": self.max_len}


@keras.saving.register_keras_serializable("voxpop")
class HashedBigrams(keras.layers.Layer):
    """tokens int [batch, seq] -> bigram ids int [batch, seq] in [0, buckets).

    Step i holds the id of the bigram (token i-1, token i): 1 + a hash of the pair modulo
    buckets - 1; 0 (padding) where either token is padding, and at the first step.
    """

    # A prime multiplier spreads the pairs over the buckets; int64 keeps the product exact.
    MULTIPLIER = 1_000_003

    def __init__(self, buckets: int, **kwargs):
        super().__init__(**kwargs)
        self.buckets = buckets

    def call(self, tokens):
        tokens = ops.cast(tokens, "int64")
        previous = ops.pad(tokens[:, :-1], [[0, 0], [1, 0]])
        hashed = 1 + ops.mod(previous * self.MULTIPLIER + tokens, self.buckets - 1)
        real = ops.logical_and(ops.not_equal(previous, 0), ops.not_equal(tokens, 0))
        return ops.cast(ops.where(real, hashed, 0), "int32")

    def get_config(self):
        return {**super().get_config(), "buckets": self.buckets}


@keras.saving.register_keras_serializable("voxpop")
class WeightedSum(keras.layers.Layer):
    """(vectors [batch, n, dim], weights [batch, n]) -> sum_i weights_i * vectors_i [batch, dim].

    With one embedding row per hashed n-gram and its TF-IDF weight, this is a sparse matrix
    product: a linear model on the TF-IDF vector. Padding has weight 0, so it adds nothing.
    """

    def call(self, inputs):
        vectors, weights = inputs
        return ops.sum(vectors * ops.expand_dims(weights, -1), axis=1)
