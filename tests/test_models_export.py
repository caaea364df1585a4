"""Export-friendliness of every model family, on 256 real encoded tweets.

Each family is built tiny (embed 16, units 16) and converted once (module-scoped fixture); the
tests then check ONNX Runtime parity with Keras, fused recurrent ops without Loop, and a `.keras`
round trip with safe_mode=True and no custom objects.
"""

from __future__ import annotations

import keras
import numpy as np
import onnxruntime as ort
import pytest

import voxpop.models as vm
from voxpop.export.checks import parity, rnn_fusion
from voxpop.export.convert import to_onnx
from voxpop.models.runtime import configure

TINY = {"embed_dim": 16, "units": 16, "head_units": [16], "attention_units": 16, "filters": 16,
        "ff_dim": 32, "feature_units": 8}
CASES = {  # case id -> (family, config overrides)
    "lstm": ("lstm", {}),
    "bilstm": ("bilstm", {}),
    "stacked_bilstm": ("stacked_bilstm", {"units": [16, 8]}),
    "gru": ("gru", {}),
    "bigru": ("bigru", {}),
    "attention": ("attention", {}),
    "attention_gru": ("attention", {"cell": "gru"}),
    "cnn": ("cnn", {}),
    "bigram": ("bigram", {"buckets": 512}),
    "tfidf": ("tfidf", {"embed_dim": 8}),
    "tfidf_fusion": ("tfidf_fusion", {"embed_dim": 8, "feature_units": 0}),
    "tfidf_nb": ("tfidf_nb", {}),
    "transformer": ("transformer", {"num_blocks": 2}),
    "fusion": ("fusion", {"encoder": "bilstm"}),
}
# case id -> (ONNX LSTM ops the graph must hold, GRU layers it has); a bidirectional LSTM is one op
RECURRENT = {"lstm": (1, 0), "bilstm": (1, 0), "stacked_bilstm": (2, 0), "attention": (1, 0),
             "fusion": (1, 0), "gru": (0, 1), "bigru": (0, 1), "attention_gru": (0, 1)}


@pytest.fixture(scope="module")
def encoded(tweets_df):
    """256 stratified real tweets, encoded with the project's Preprocessor fitted on 2,000 others."""
    from voxpop.data import Preprocessor

    tweets = tweets_df
    sample = tweets.groupby("label", group_keys=False).sample(frac=2256 / len(tweets), random_state=1)
    sample = sample.sample(frac=1.0, random_state=1)
    fit_rows, test_rows = sample.iloc[256:], sample.iloc[:256]
    pre = Preprocessor(max_len=40, ngram_buckets=2**14).fit(fit_rows.text.tolist(),
                                                              fit_rows.label.tolist())
    return pre, pre.encode(test_rows.text.tolist())


@pytest.fixture(scope="module")
def exported(encoded):
    """case id -> (keras model, onnx model), each built and converted once."""
    pre, _ = encoded
    configure(seed=0)
    out = {}
    for case, (family, overrides) in CASES.items():
        model = vm.build(family, {**TINY, **overrides}, n_tokens=pre.n_tokens, n_classes=3,
                         n_features=pre.n_features, n_buckets=pre.n_buckets)
        out[case] = (model, to_onnx(model, opset=17))
    return out


def test_every_family_the_mixed_space_samples_is_proven_here():
    """`voxpop tune --space mixed` may pick any of these families: each must be a case above,
    so that its parity and fused recurrent ops (GRU ones too) are checked."""
    from voxpop.tune_spaces import get_space

    assert set(get_space("mixed")["family"].categories) <= {family for family, _ in CASES.values()}


@pytest.mark.parametrize("case", CASES)
def test_onnx_runtime_matches_keras_on_real_rows(case, exported, encoded):
    model, onnx_model = exported[case]
    report = parity(model, onnx_model, encoded[1])
    assert report["rows"] == 256
    assert report["max_abs_diff"] < 1e-5
    assert report["argmax_agreement"] == 1.0


@pytest.mark.parametrize("case", CASES)
def test_onnx_graph_has_named_dynamic_inputs_and_probs_output(case, exported, encoded):
    model, onnx_model = exported[case]
    inputs = {i.name: i for i in onnx_model.graph.input}
    assert set(inputs) == {t.name for t in model.inputs}
    sequence = "grams" if "grams" in inputs else "tokens"
    dims = [d.dim_param or d.dim_value for d in inputs[sequence].type.tensor_type.shape.dim]
    assert all(isinstance(d, str) for d in dims), f"{sequence} axes must be dynamic, got {dims}"
    assert [o.name for o in onnx_model.graph.output] == ["probs"]
    # A different batch size and sequence length than the model was traced with.
    session = ort.InferenceSession(onnx_model.SerializeToString(), providers=["CPUExecutionProvider"])
    feed = {name: encoded[1][name][:7] for name in inputs}
    for name in ("tokens", "grams", "gram_weights"):
        if name in feed:
            feed[name] = feed[name][:, -13:]
    probs = session.run(["probs"], feed)[0]
    assert probs.shape == (7, 3)
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)


@pytest.mark.parametrize("case", [c for c in RECURRENT if RECURRENT[c][1] == 0])
def test_lstm_families_export_fused_lstm_without_loop(case, exported):
    lstm_ops, _ = RECURRENT[case]
    assert rnn_fusion(exported[case][1]) == {"lstm": lstm_ops, "gru": 0, "loop": 0}


@pytest.mark.parametrize("case", [c for c in RECURRENT if RECURRENT[c][1]])
def test_gru_families_export_fused_gru_without_loop(case, exported):
    # voxpop.export.gru may emit one GRU op per direction of a bidirectional layer.
    counts = rnn_fusion(exported[case][1])
    assert counts["gru"] >= 1 and counts["lstm"] == 0 and counts["loop"] == 0


@pytest.mark.parametrize("case", CASES)
def test_keras_file_reloads_in_safe_mode_with_same_outputs(case, exported, encoded, tmp_path):
    model, _ = exported[case]
    path = tmp_path / f"{case}.keras"
    model.save(path)
    loaded = keras.models.load_model(path, safe_mode=True)
    feed = {t.name: encoded[1][t.name] for t in model.inputs}
    np.testing.assert_array_equal(loaded.predict(feed, verbose=0), model.predict(feed, verbose=0))


def test_rnn_fusion_refuses_a_graph_with_loop():
    from onnx import TensorProto, helper

    from voxpop.data.errors import VoxpopError

    body = helper.make_graph([], "body", [], [])
    loop = helper.make_node("Loop", ["n", ""], [], body=body)
    graph = helper.make_graph([loop], "member", [helper.make_tensor_value_info("n", TensorProto.INT64, [])], [])
    with pytest.raises(VoxpopError, match="1 Loop op"):
        rnn_fusion(helper.make_model(graph))
