"""Dynamic int8 quantization of ONNX files, and ONNX Runtime scoring used to judge it."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def quantize_int8(source: Path, target: Path) -> None:
    """Write `source` with its weights dynamically quantized to int8 (LSTM -> DynamicQuantizeLSTM)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(model_input=source, model_output=target, weight_type=QuantType.QInt8)


def onnx_probs(model_path: Path, inputs: dict[str, np.ndarray], *, threads: int = 1,
               trims_padding: bool = False) -> np.ndarray:
    """The model's `probs` for `inputs` (fed by name: only the inputs the graph declares), run as
    the ensemble runs it (`voxpop.ensemble.sessions.run_by_length`)."""
    import onnxruntime as ort

    from voxpop.ensemble.sessions import length_key, run_by_length

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads  # several members must not oversubscribe the cores
    session = ort.InferenceSession(
        str(model_path), sess_options=options, providers=["CPUExecutionProvider"]
    )
    feed = {i.name: inputs[i.name] for i in session.get_inputs()}
    return run_by_length(session, feed, key=length_key(feed, trims_tokens=trims_padding))
