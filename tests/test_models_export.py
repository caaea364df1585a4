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

TINY = {
    "embed_dim": 16,
    "units": 16,
    "head_units": [16],
    "attention_units": 16,
    "filters": 16,
    "ff_dim": 32,
    "feature_units": 8,
}
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
RECURRENT = {
    "lstm": (1, 0),
    "bilstm": (1, 0),
    "stacked_bilstm": (2, 0),
    "attention": (1, 0),
    "fusion": (1, 0),
    "gru": (0, 1),
    "bigru": (0, 1),
    "attention_gru": (0, 1),
}


@pytest.fixture(scope="module")
def encoded(tweets_df):
    """256 stratified real tweets, encoded with the project's Preprocessor fitted on 2,000 others."""
    from voxpop.data import Preprocessor

    tweets = tweets_df
    sample = tweets.groupby("label", group_keys=False).sample(
        frac=2256 / len(tweets), random_state=1
    )
    sample = sample.sample(frac=1.0, random_state=1)
    fit_rows, test_rows = sample.iloc[256:], sample.iloc[:256]
    pre = Preprocessor(max_len=40, ngram_buckets=2**14).fit(
        fit_rows.text.tolist(), fit_rows.label.tolist()
    )
    return pre, pre.encode(test_rows.text.tolist())


@pytest.fixture(scope="module")
def exported(encoded):
    """case id -> (keras model, onnx model), each built and converted once."""
    pre, _ = encoded
    configure(seed=0)
    out = {}
    for case, (family, overrides) in CASES.items():
        model = vm.build(
            family,
            {**TINY, **overrides},
            n_tokens=pre.n_tokens,
            n_classes=3,
            n_features=pre.n_features,
            n_buckets=pre.n_buckets,
        )
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
    session = ort.InferenceSession(
        onnx_model.SerializeToString(), providers=["CPUExecutionProvider"]
    )
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
    graph = helper.make_graph(
        [loop], "member", [helper.make_tensor_value_info("n", TensorProto.INT64, [])], []
    )
    with pytest.raises(VoxpopError, match="1 Loop op"):
        rnn_fusion(helper.make_model(graph))


# -- the exact rewrites of voxpop.export.optimize, proven per family against Keras ---------------
def _padded(inputs: dict, extra: int) -> dict:
    """The rows with `extra` more columns of pre-padding in `tokens` (if they have tokens)."""
    out = dict(inputs)
    if "tokens" in out:
        out["tokens"] = np.pad(inputs["tokens"], ((0, 0), (extra, 0)))
    return out


@pytest.mark.parametrize("case", CASES)
def test_each_family_claims_padding_invariance_exactly_when_it_holds(case, exported, encoded):
    """A family's `padding_invariant` is what its Keras model does: the same probabilities with 12
    more columns of padding (within 1e-5), or clearly different ones. The padding token's
    embedding is set large first (an untrained recurrent layer forgets small inputs), which a
    family that masks padding must ignore all the same."""
    family, overrides = CASES[case]
    model, _ = exported[case]
    if "tokens" not in [t.name for t in model.inputs]:  # n-gram families: nothing to trim
        assert not vm.padding_invariant(family)
        return
    model = keras.models.clone_model(model)
    model.set_weights(exported[case][0].get_weights())
    table = model.get_layer("embedding")
    weights = table.get_weights()[0]
    weights[0] = 2.0
    table.set_weights([weights])
    feed = {t.name: encoded[1][t.name] for t in model.inputs}
    diff = np.abs(
        model.predict(_padded(feed, 12), verbose=0) - model.predict(feed, verbose=0)
    ).max()
    assert (diff <= 1e-5) == vm.padding_invariant(family, {**TINY, **overrides}), diff
    assert diff <= 1e-5 or diff > 1e-4  # ten times the tolerance at least


@pytest.mark.parametrize("case", CASES)
def test_optimized_graph_matches_keras_on_real_rows(case, exported, encoded):
    """optimize_member (index guards dropped; token padding trimmed where the family allows) keeps
    the probabilities within 1e-5 on real rows run by length, with extra padding to trim."""
    import copy

    from voxpop.ensemble.sessions import length_key, run_by_length
    from voxpop.export.optimize import optimize_member

    family, overrides = CASES[case]
    model, onnx_model = exported[case]
    optimized = copy.deepcopy(onnx_model)
    trims = optimize_member(
        optimized, padding_invariant=vm.padding_invariant(family, {**TINY, **overrides})
    )
    assert trims == (vm.padding_invariant(family, {**TINY, **overrides}))
    assert not any(node.op_type == "Less" for node in optimized.graph.node)  # guards gone
    feed = _padded({t.name: encoded[1][t.name] for t in model.inputs}, 12)
    session = ort.InferenceSession(
        optimized.SerializeToString(), providers=["CPUExecutionProvider"]
    )
    got = run_by_length(session, feed, key=length_key(feed, trims_tokens=trims), rows_per_run=32)
    np.testing.assert_allclose(got, model.predict(feed, verbose=0), atol=1e-5, rtol=0)


def test_trimmed_graph_reads_only_the_columns_of_the_longest_row(exported, encoded):
    import copy

    from onnx import helper

    from voxpop.export.optimize import trim_token_padding

    _, onnx_model = exported["cnn"]
    trimmed = copy.deepcopy(onnx_model)
    assert trim_token_padding(trimmed)
    trimmed.graph.output.append(helper.make_empty_tensor_value_info("tokens/trimmed"))
    session = ort.InferenceSession(trimmed.SerializeToString(), providers=["CPUExecutionProvider"])
    tokens = encoded[1]["tokens"][:50]
    lengths = (tokens != 0).sum(axis=1)
    shorter = np.pad(tokens, ((0, 0), (5, 0)))
    seen = session.run(["tokens/trimmed"], {"tokens": shorter})[0]
    assert seen.shape == (50, lengths.max())
    np.testing.assert_array_equal(seen, tokens[:, tokens.shape[1] - lengths.max() :])
    empty = np.zeros((3, 40), np.int32)  # no real token anywhere: every column is kept
    assert session.run(["tokens/trimmed"], {"tokens": empty})[0].shape == (3, 40)


def test_merged_gram_lookups_give_the_fused_graph_s_probabilities(exported, encoded):
    """The three n-gram families fused, their lookups merged into one Gather: same vote."""
    import copy

    from voxpop.export.fuse import fuse_members
    from voxpop.export.optimize import merge_gram_lookups, optimize_member

    members = {
        case: copy.deepcopy(exported[case][1]) for case in ("tfidf", "tfidf_fusion", "tfidf_nb")
    }
    for member in members.values():
        optimize_member(member, padding_invariant=False)
    fused = fuse_members(members, [3.0, 2.0, 1.0])
    merged = copy.deepcopy(fused)
    assert merge_gram_lookups(merged) == 3
    gathers = [n for n in merged.graph.node if n.op_type == "Gather" and n.input[1] == "grams"]
    assert len(gathers) == 1
    feed = {name: encoded[1][name] for name in ("grams", "gram_weights", "features")}

    def probs(model):
        session = ort.InferenceSession(
            model.SerializeToString(), providers=["CPUExecutionProvider"]
        )
        return session.run(["probs"], {i.name: feed[i.name] for i in session.get_inputs()})[0]

    np.testing.assert_allclose(probs(merged), probs(fused), atol=1e-6, rtol=0)


def test_int8_is_offered_for_recurrent_members_only_and_never_quantizes_a_convolution(
    exported, encoded, tmp_path
):
    """Dynamic int8 pays for recurrent cells (a weight used at every step), not for convolutions
    or n-gram lookups (bench/RESULTS.md, graph): `int8_pays` offers it exactly to the families with
    an LSTM or GRU op, and `quantize_int8` leaves a convolution in float."""
    import onnx

    from voxpop.export.quantize import int8_pays, onnx_probs, quantize_int8

    assert {case for case, (_, model) in exported.items() if int8_pays(model)} == set(RECURRENT)
    for case in ("bilstm", "cnn"):
        source, target = tmp_path / f"{case}.onnx", tmp_path / f"{case}.int8.onnx"
        onnx.save_model(exported[case][1], source)
        quantize_int8(source, target)
        ops = {node.op_type for node in onnx.load_model(target).graph.node}
        assert "ConvInteger" not in ops
        assert ("DynamicQuantizeLSTM" in ops) == (case == "bilstm")
        feed = {name: encoded[1][name] for name in ("tokens",)}
        np.testing.assert_allclose(onnx_probs(target, feed), onnx_probs(source, feed), atol=0.05)
