"""Keras -> ONNX with tf2onnx, on CPU, with the input and output names the ensemble expects."""

from __future__ import annotations

from voxpop.data import INPUT_DTYPES
from voxpop.data.errors import VoxpopError
from voxpop.data.sentence import EMBEDDING_INPUT
from voxpop.export.options import DEFAULT_OPSET, MAX_OPSET, MIN_OPSET


def to_onnx(model, *, opset: int = DEFAULT_OPSET):
    """Convert a voxpop Keras model to an `onnx.ModelProto`.

    Inputs keep the names and dtypes of `voxpop.data.INPUT_DTYPES` (`tokens`, `features`,
    `grams`, `gram_weights`: whichever the model takes; a sentence head's `sentence_embedding`,
    float32); the output is `probs`; batch and sequence axes stay dynamic. LSTM layers
    become fused ONNX `LSTM` ops; GRU layers are fused by `voxpop.export.gru.fuse_gru_loops`.
    """
    import tensorflow as tf
    import tf2onnx

    from voxpop.export.gru import fuse_gru_loops

    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise VoxpopError(f"opset {opset} is not supported (valid: {MIN_OPSET} to {MAX_OPSET})")
    signature = [_input_spec(tf, tensor) for tensor in model.inputs]
    names = [spec.name for spec in signature]

    @tf.function(input_signature=signature)
    def serve(*inputs):
        return {"probs": model(dict(zip(names, inputs)), training=False)}

    with tf.device("/CPU:0"):
        onnx_model, _ = tf2onnx.convert.from_function(serve, input_signature=signature, opset=opset)
    return fuse_gru_loops(onnx_model, model)


def _input_spec(tf, tensor):
    name = tensor.name
    dtypes = {**INPUT_DTYPES, EMBEDDING_INPUT: "float32"}
    if name not in dtypes:
        raise VoxpopError(f"model input {name!r} is not valid (valid: {', '.join(dtypes)})")
    return tf.TensorSpec([None, *tensor.shape[1:]], dtypes[name], name=name)
