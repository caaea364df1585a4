"""run_by_length: the rows a graph sees in each ONNX Runtime run, seen from inside a real session
by a graph that reports the width of its inputs."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
from onnx import TensorProto, helper

from voxpop.ensemble.sessions import SENTENCE_RUN_ROWS, length_key, run_by_length


def _width_reporter() -> bytes:
    """probs[row] = (columns of attention_mask, the row's mask sum, columns of input_ids), so a
    run shows the width it was given and each row its own length."""
    width_of = []
    nodes = []
    for name in ("attention_mask", "input_ids"):
        nodes += [
            helper.make_node("Shape", [name], [f"{name}/shape"]),
            helper.make_node("Gather", [f"{name}/shape", "one"], [f"{name}/width"], axis=0),
            helper.make_node("Cast", [f"{name}/width"], [f"{name}/widthf"], to=TensorProto.FLOAT),
            # the width on every row: 0 * (the row's sum) + width
            helper.make_node("Mul", ["length", "zero"], [f"{name}/zeros"]),
            helper.make_node("Add", [f"{name}/zeros", f"{name}/widthf"], [f"{name}/column"]),
        ]
        width_of.append(f"{name}/column")
    nodes = [
        helper.make_node("Cast", ["attention_mask"], ["maskf"], to=TensorProto.FLOAT),
        helper.make_node("ReduceSum", ["maskf", "axis1"], ["length"], keepdims=1),
        *nodes,
        helper.make_node("Concat", [width_of[0], "length", width_of[1]], ["probs"], axis=1),
    ]
    graph = helper.make_graph(
        nodes,
        "width_reporter",
        [
            helper.make_tensor_value_info(name, TensorProto.INT64, ["batch", "pieces"])
            for name in ("input_ids", "attention_mask")
        ],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["batch", 3])],
        initializer=[
            helper.make_tensor("one", TensorProto.INT64, [], [1]),
            helper.make_tensor("axis1", TensorProto.INT64, [1], [1]),
            helper.make_tensor("zero", TensorProto.FLOAT, [], [0.0]),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


def test_a_sentence_encoders_runs_see_word_pieces_only_to_their_longest_row():
    session = ort.InferenceSession(_width_reporter(), providers=["CPUExecutionProvider"])
    lengths = np.random.default_rng(0).permutation(np.arange(1, 2 * SENTENCE_RUN_ROWS + 1))
    mask = (np.arange(128) < lengths[:, None]).astype(np.int64)  # the batch padded to 128
    feeds = {"input_ids": mask * 7, "attention_mask": mask}
    key = length_key(feeds, trims_tokens=False)
    seen = run_by_length(session, feeds, key=key)
    assert np.array_equal(seen[:, 1], lengths)  # every row back in its place
    # Rows run SENTENCE_RUN_ROWS at a time in length order, each run padded to its longest row:
    # the shortest half at width SENTENCE_RUN_ROWS, the rest at twice that (not 128).
    expected = np.where(lengths <= SENTENCE_RUN_ROWS, SENTENCE_RUN_ROWS, 2 * SENTENCE_RUN_ROWS)
    assert np.array_equal(seen[:, 0], expected)
    assert np.array_equal(seen[:, 2], expected)


def test_a_graph_with_a_sentence_encoder_runs_by_word_pieces_whatever_else_it_reads():
    # The encoder costs a hundred times what n-gram and token members do: its lengths decide.
    feeds = {name: np.ones((2, 3)) for name in ("tokens", "grams", "gram_weights")}
    assert length_key(feeds, trims_tokens=True) == "tokens"
    feeds["attention_mask"] = np.ones((2, 3))
    assert length_key(feeds, trims_tokens=True) == "attention_mask"
