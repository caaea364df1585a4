"""Ensemble.load(...).predict(...) on a real bundle (real Preprocessor, real ONNX graphs, real ORT)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from bundle_factory import bundle_dir, held_out_texts, tweet_preprocessor, tweet_rows  # noqa: F401 (fixtures)
from voxpop.data.errors import VoxpopError
from voxpop.ensemble import Ensemble
from voxpop.ensemble.sessions import split_threads
from voxpop.ensemble.voting import hard_vote


def _numpy_member(bundle, member_id: str, inputs: dict) -> np.ndarray:
    """The member graph computed in numpy from its own initializers: an independent forward."""
    model = onnx.load(bundle / "members" / f"{member_id}.onnx")
    w = {init.name: numpy_helper.to_array(init) for init in model.graph.initializer}
    logits = w["embedding"][inputs["tokens"]].mean(axis=1) @ w["dense"]
    if "feature_dense" in w:
        logits = logits + inputs["features"] @ w["feature_dense"]
    logits = logits + w["bias"]
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    return exp / exp.sum(axis=1, keepdims=True)


@pytest.fixture(scope="module")
def separate(bundle_dir):
    ensemble = Ensemble.load(bundle_dir, device="cpu", threads=2, fused=False)
    yield ensemble
    ensemble.close()


@pytest.fixture(scope="module")
def fused(bundle_dir):
    return Ensemble.load(bundle_dir, device="cpu", threads=2)


def test_members_equal_an_independent_numpy_forward(separate, bundle_dir, held_out_texts):
    prediction = separate.predict(held_out_texts, voting="soft")
    inputs = separate.encode(held_out_texts)
    for member_id in ["m1", "m2", "m3"]:
        expected = _numpy_member(bundle_dir, member_id, inputs)
        np.testing.assert_allclose(prediction.member_probs[member_id], expected, atol=1e-5)
    mean = np.mean([prediction.member_probs[m] for m in ["m1", "m2", "m3"]], axis=0)
    np.testing.assert_allclose(prediction.probs, mean, atol=1e-6)
    assert prediction.labels == [separate.labels[i] for i in mean.argmax(axis=1)]
    np.testing.assert_allclose(prediction.confidence, mean.max(axis=1), atol=1e-6)
    assert len(set(prediction.labels)) > 1  # the members do not all collapse onto one class


def test_fused_graph_equals_separate_sessions_and_python_vote(fused, separate, held_out_texts):
    assert fused.runs_fused(voting="weighted")
    assert not fused.runs_fused(voting="soft")  # bundle weights 3,2,1 are not equal
    assert not fused.runs_fused(voting="weighted", members=["m1", "m2"])
    assert fused.runs_fused(voting="soft", weights=[6, 4, 2])  # same weights, other scale
    one_session = fused.predict(held_out_texts, voting="weighted")
    assert one_session.member_probs == {}
    by_member = separate.predict(held_out_texts, voting="weighted")
    np.testing.assert_allclose(one_session.probs, by_member.probs, atol=1e-5)
    stacked = np.stack([by_member.member_probs[m] for m in ["m1", "m2", "m3"]])
    np.testing.assert_allclose(
        by_member.probs, np.tensordot([0.5, 1 / 3, 1 / 6], stacked, axes=1), atol=1e-6
    )
    assert one_session.labels == by_member.labels


def test_hard_voting_on_a_member_subset(fused, separate, held_out_texts):
    all_members = separate.predict(held_out_texts, voting="soft")
    subset = fused.predict(held_out_texts, voting="hard", members=["m3", "m1"])
    assert list(subset.member_probs) == ["m3", "m1"]
    labels, share = hard_vote([all_members.member_probs["m3"], all_members.member_probs["m1"]])
    assert subset.label_ids.tolist() == labels.tolist()
    np.testing.assert_allclose(subset.confidence, share, atol=1e-6)
    assert set(np.round(subset.confidence, 6)) <= {0.5, 1.0}


def test_encode_makes_only_the_inputs_of_the_chosen_members(separate, held_out_texts):
    """Features (VADER's analyzer among them) cost time: members that read only tokens skip them."""
    readers = {m.id: m.inputs for m in separate.manifest.members}
    token_only = [m for m, inputs in readers.items() if inputs == ["tokens"]]
    assert token_only and len(token_only) < len(readers)
    assert set(separate.encode(held_out_texts[:5], members=token_only)) == {"tokens"}
    assert set(separate.encode(held_out_texts[:5])) == {"tokens", "features"}


def test_vote_of_given_member_probabilities_equals_predicting_with_those_members(
    separate, held_out_texts
):
    every = separate.predict(held_out_texts, voting="weighted")
    for voting in ("weighted", "soft", "hard"):
        subset = separate.predict(held_out_texts, voting=voting, members=["m1", "m3"])
        probs, label_ids = separate.vote_of(
            {m: every.member_probs[m] for m in ("m1", "m3")}, voting=voting
        )
        np.testing.assert_allclose(probs, subset.probs, atol=1e-6)
        assert label_ids.tolist() == subset.label_ids.tolist()


def test_every_vote_from_one_run_of_the_members_equals_predicting_each_vote(
    bundle_dir, separate, held_out_texts
):
    inputs = separate.encode(held_out_texts)
    votes = separate.predict_votes(inputs, votings=["soft", "hard", "weighted"])
    assert list(votes) == ["soft", "hard", "weighted"]
    for rule, prediction in votes.items():
        each = separate.predict_encoded(inputs, voting=rule)
        np.testing.assert_array_equal(prediction.probs, each.probs)
        assert prediction.label_ids.tolist() == each.label_ids.tolist()
        assert prediction.labels == each.labels
        for member_id, probs in each.member_probs.items():
            np.testing.assert_array_equal(prediction.member_probs[member_id], probs)
    # the members ran as often for the three votes as for one: count their sessions' runs
    runs = []
    for session in separate._member_sessions.values():

        def counted(*args, _run=session.run, **kwargs):
            runs.append(1)
            return _run(*args, **kwargs)

        session.run = counted
    try:
        separate.predict_encoded(inputs, voting="soft")
        for_one_vote, runs[:] = len(runs), []
        separate.predict_votes(inputs, votings=["soft", "hard", "weighted"])
    finally:
        for session in separate._member_sessions.values():
            del session.run
    assert for_one_vote >= 3 and len(runs) == for_one_vote


def test_a_fused_graph_without_member_outputs_runs_the_members_for_every_vote(
    fused, separate, held_out_texts
):
    """Bundles exported before the fused graph gave member outputs: predict_votes runs the
    members' own sessions, with the same results."""
    assert fused.manifest.fused.member_max_abs_diff is None
    inputs = fused.encode(held_out_texts)
    votes = fused.predict_votes(inputs, votings=["soft", "weighted"])
    expected = separate.predict_votes(inputs, votings=["soft", "weighted"])
    assert set(fused._member_sessions) == {"m1", "m2", "m3"}
    for rule, prediction in votes.items():
        np.testing.assert_array_equal(prediction.probs, expected[rule].probs)
        assert prediction.member_probs.keys() == expected[rule].member_probs.keys()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            {"members": ["m9"]},
            r"--members: m9 must be distinct ids of this bundle \(choose from m1, m2, m3\)",
        ),
        ({"members": ["m1", "m1"]}, "must be distinct"),
        (
            {"voting": "median"},
            r"--voting: unknown voting 'median' \(choose from soft, hard, weighted, stack\)",
        ),
        ({"weights": [1, 2]}, "--weights: got 2 weights for 3 members"),
    ],
)
def test_bad_options_are_user_errors(fused, options, message):
    with pytest.raises(VoxpopError, match=message):
        fused.predict(["hello"], **options)


def test_devices_say_where_onnx_runtime_really_runs(bundle_dir, fused, onnxruntime_runs_cuda):
    assert fused.device == "cpu"
    assert Ensemble.load(bundle_dir, device="auto").device == (
        "cuda" if onnxruntime_runs_cuda else "cpu"
    )
    if onnxruntime_runs_cuda:
        assert Ensemble.load(bundle_dir, device="cuda").device == "cuda"
    else:
        with pytest.raises(VoxpopError, match="--device cuda: no usable GPU"):
            Ensemble.load(bundle_dir, device="cuda")
    with pytest.raises(
        VoxpopError, match=r"--device: unknown device 'tpu' \(choose from auto, cpu, cuda\)"
    ):
        Ensemble.load(bundle_dir, device="tpu")


def test_threads_are_split_across_member_sessions(bundle_dir):
    assert split_threads(8, 3) == 2 and split_threads(2, 5) == 1 and split_threads(4, 1) == 4
    ensemble = Ensemble.load(bundle_dir, device="cpu", threads=4, fused=False)
    ensemble.predict(["a tweet"], voting="soft")
    per_session = [
        s.get_session_options().intra_op_num_threads for s in ensemble._member_sessions.values()
    ]
    ensemble.close()
    assert per_session == [1, 1, 1]  # 3 sessions side by side on 4 threads: 4 // 3


def test_pipelined_chunks_equal_one_chunk_at_a_time_in_input_order(
    bundle_dir, held_out_texts, tmp_path
):
    """predict_chunks with the encoding of the next chunk overlapping the graph of this one gives
    the frames the plain loop gives, in order; the sessions leave one thread to the encoder."""
    import pandas as pd

    from voxpop.data import iter_table_chunks
    from voxpop.ensemble.stream import OutputColumns, predict_chunks

    source = tmp_path / "texts.csv"
    pd.DataFrame({"id": [f"row{i}" for i in range(95)], "text": held_out_texts[:95]}).to_csv(
        source, index=False
    )
    columns = OutputColumns(with_ids=True, top_k=2, probs=True)
    plain = Ensemble.load(bundle_dir, device="cpu", threads=3)
    pipelined = Ensemble.load(bundle_dir, device="cpu", threads=3, pipeline=True)
    assert pipelined._fused_session.get_session_options().intra_op_num_threads == 2
    assert plain._fused_session.get_session_options().intra_op_num_threads == 3
    assert not Ensemble.load(bundle_dir, device="cpu", threads=1, pipeline=True).pipeline
    frames = {}
    for name, ensemble in (("plain", plain), ("pipelined", pipelined)):
        chunks = iter_table_chunks(
            source, chunk_rows=10, text_col="text", id_col="id", feature_cols=()
        )
        frames[name] = list(predict_chunks(ensemble, chunks, columns=columns, voting="weighted"))
    assert len(frames["pipelined"]) == 10
    pd.testing.assert_frame_equal(pd.concat(frames["pipelined"]), pd.concat(frames["plain"]))
    assert pd.concat(frames["pipelined"])["id"].tolist() == [f"row{i}" for i in range(95)]
