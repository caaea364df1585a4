"""Checks on a converted member: Keras/ONNX Runtime parity, and recurrent layers fused (no Loop)."""

from __future__ import annotations

from collections import Counter

import numpy as np

from voxpop.data.errors import VoxpopError

_RECURRENT_OPS = {"lstm": "LSTM", "gru": "GRU", "loop": "Loop"}


def parity(
    model, onnx_model, inputs: dict, *, batch_size: int = 256, trims_padding: bool = False
) -> dict:
    """Run the Keras model and the ONNX model (ONNX Runtime, CPU) on the same encoded rows, the
    ONNX model as the ensemble runs it (rows by length: `voxpop.ensemble.sessions.run_by_length`,
    so a graph that trims its padding is proven trimmed). `model` may be a list of Keras models
    (a bag's fold models): the ONNX model is then proven against the mean of their probabilities.

    `inputs` is a dict from `Preprocessor.encode`; keys a model does not take are ignored.
    Returns {max_abs_diff, argmax_agreement, rows, onnx_probs}: export's fused proof reuses
    onnx_probs rather than run the member again (a sentence member's encoder is most of it).
    """
    import onnxruntime as ort

    from voxpop.ensemble.sessions import length_key, run_by_length

    session = ort.InferenceSession(
        onnx_model.SerializeToString(), providers=["CPUExecutionProvider"]
    )
    feed = {arg.name: inputs[arg.name] for arg in session.get_inputs()}
    onnx_probs = run_by_length(session, feed, key=length_key(feed, trims_tokens=trims_padding))
    models = model if isinstance(model, list) else [model]
    keras_probs = np.mean(
        [
            np.asarray(
                m.predict(
                    {tensor.name: inputs[tensor.name] for tensor in m.inputs},
                    batch_size=batch_size,
                    verbose=0,
                ),
                np.float64,
            )
            for m in models
        ],
        axis=0,
    )
    return {
        "max_abs_diff": float(np.abs(onnx_probs - keras_probs).max()),
        "argmax_agreement": float(np.mean(onnx_probs.argmax(1) == keras_probs.argmax(1))),
        "rows": int(len(keras_probs)),
        "onnx_probs": onnx_probs,
    }


def rnn_fusion(onnx_model) -> dict:
    """Count fused `LSTM`/`GRU` ops and `Loop` ops (also inside subgraphs): {"lstm", "gru", "loop"}.

    A Loop in a voxpop member means a recurrent layer was not fused (up to 10x slower in ONNX
    Runtime), so it raises VoxpopError.
    """
    counts = Counter(node.op_type for node in _all_nodes(onnx_model.graph))
    found = {key: counts[op] for key, op in _RECURRENT_OPS.items()}
    if found["loop"]:
        raise VoxpopError(
            f"ONNX graph {onnx_model.graph.name!r} has {found['loop']} Loop op(s): a recurrent layer "
            "was not fused into an ONNX LSTM/GRU op (use an LSTM family, or a GRU fusing rewrite)"
        )
    return found


def _all_nodes(graph):
    for node in graph.node:
        yield node
        for attribute in node.attribute:
            for subgraph in [attribute.g, *attribute.graphs]:
                yield from _all_nodes(subgraph)
