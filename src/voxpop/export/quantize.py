"""Dynamic int8 quantization of ONNX files, and ONNX Runtime scoring used to judge it."""

from __future__ import annotations

from pathlib import Path

import numpy as np

# Rows per ONNX Runtime call of a graph that holds a sentence encoder (reads `input_ids`): its
# attention over 2,000 validation rows of 128 word pieces at once would hold gigabytes. Other
# graphs score all rows in one call (int8 graphs quantize their activations per call).
SCORING_BATCH = 256


def quantize_int8(source: Path, target: Path) -> None:
    """Write `source` with its weights dynamically quantized to int8 (LSTM -> DynamicQuantizeLSTM)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(model_input=source, model_output=target, weight_type=QuantType.QInt8)


def onnx_probs(model_path: Path, inputs: dict[str, np.ndarray], *, threads: int = 1,
               output: str = "probs") -> np.ndarray:
    """The model's `output` for `inputs` (fed by name: only the inputs the graph declares)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads  # several members must not oversubscribe the cores
    session = ort.InferenceSession(
        str(model_path), sess_options=options, providers=["CPUExecutionProvider"]
    )
    return probs_in_batches(session, {i.name: inputs[i.name] for i in session.get_inputs()},
                            output=output)


def probs_in_batches(session, feed: dict[str, np.ndarray], *, output: str = "probs") -> np.ndarray:
    """The session's `output` for the rows of `feed`: SCORING_BATCH rows per call for a graph
    that reads `input_ids`, else one call."""
    if "input_ids" not in feed:
        return session.run([output], feed)[0]
    rows = len(feed["input_ids"])
    return np.concatenate([
        session.run([output], {name: array[start:start + SCORING_BATCH]
                               for name, array in feed.items()})[0]
        for start in range(0, max(rows, 1), SCORING_BATCH)])
