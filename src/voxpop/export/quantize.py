"""Dynamic int8 quantization of ONNX files, where it pays, and ONNX Runtime scoring used to judge it.

Dynamic int8 quantizes a weight once and every activation per call: it pays where one weight
matrix is applied many times per row (a recurrent cell at every step: ONNX Runtime's guidance is
dynamic int8 for RNN and MatMul), and loses where the per-call quantization costs more than the
smaller product saves. Measured per member on a demo bundle (bench/RESULTS.md, graph; two runs):
a CNN is 2-4x slower in int8 (ConvInteger) in every run; an LSTM member gains at batch 64 and
about breaks even at 1024; the n-gram members (bigram, tfidf_fusion) went either way between the
runs. So int8 is offered to the members with a recurrent op only: their recurrent ops, matrix
products and lookups.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

RECURRENT_OPS = ("LSTM", "GRU")
INT8_OPS = (*RECURRENT_OPS, "MatMul", "Gemm", "Gather")  # never Conv


def int8_pays(model) -> bool:
    """Whether dynamic int8 is offered for this member's graph: it holds a recurrent op."""
    return any(node.op_type in RECURRENT_OPS for node in model.graph.node)


def quantize_int8(source: Path, target: Path, *, nodes: list[str] | None = None) -> None:
    """Write `source` with the weights of its INT8_OPS dynamically quantized to int8 (LSTM ->
    DynamicQuantizeLSTM, MatMul -> MatMulInteger); `nodes`: only the nodes of these names."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(
        model_input=source,
        model_output=target,
        weight_type=QuantType.QInt8,
        op_types_to_quantize=list(INT8_OPS),
        nodes_to_quantize=nodes,
    )


def onnx_probs(
    model_path: Path,
    inputs: dict[str, np.ndarray],
    *,
    threads: int = 1,
    output: str = "probs",
    trims_padding: bool = False,
) -> np.ndarray:
    """The model's `output` for `inputs` (onnx_outputs of that one output)."""
    return onnx_outputs(
        model_path, inputs, threads=threads, outputs=[output], trims_padding=trims_padding
    )[0]


def onnx_outputs(
    model_path: Path,
    inputs: dict[str, np.ndarray],
    *,
    outputs: list[str],
    threads: int = 1,
    trims_padding: bool = False,
) -> list[np.ndarray]:
    """The model's `outputs` for `inputs` from one pass over the rows (fed by name: only the
    inputs the graph declares), run as the ensemble runs it
    (`voxpop.ensemble.sessions.run_outputs_by_length`)."""
    import onnxruntime as ort

    from voxpop.ensemble.sessions import length_key, run_outputs_by_length

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads  # several members must not oversubscribe the cores
    session = ort.InferenceSession(
        str(model_path), sess_options=options, providers=["CPUExecutionProvider"]
    )
    feed = {i.name: inputs[i.name] for i in session.get_inputs()}
    return run_outputs_by_length(
        session, feed, key=length_key(feed, trims_tokens=trims_padding), outputs=outputs
    )
