"""Making Keras 3 GRU layers export as fused ONNX `GRU` ops (work in progress: see issue 3)."""

from __future__ import annotations


def fuse_gru_loops(onnx_model, keras_model):
    """Return `onnx_model` with the Loop that tf2onnx emits for each Keras GRU replaced by a fused
    ONNX GRU op. Pass-through until the rewrite lands."""
    return onnx_model
