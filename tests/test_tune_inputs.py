"""What the trials are built from: the preprocessing flags of `voxpop tune`, and pretrained word
vectors (`--embeddings`, frozen here, so the trained model and its exported ONNX graph must still
hold them), through tune, export and predict."""

from __future__ import annotations

import numpy as np
import onnx
import onnx.numpy_helper
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from test_tune_support import checkpoints, sample_table
from voxpop.data import rundir
from voxpop.ensemble.bundle import read_manifest
from voxpop.models import load_model
from voxpop.serving_cli.app import app

DIM = 8
WORDS = ["the", "flight", "great", "not", "car", "google", "love", "delayed"]


def _invoke(*args):
    result = CliRunner().invoke(app, [str(arg) for arg in args])
    assert result.exit_code == 0, result.output
    return result.output


def test_preprocessing_flags_and_frozen_pretrained_vectors_reach_the_trials_and_the_bundle(
    tweets_df, tmp_path
):
    data = sample_table(tweets_df, tmp_path)
    rng = np.random.default_rng(0)
    vectors = {word: rng.normal(size=DIM).round(4) for word in WORDS}
    glove = tmp_path / "vectors.txt"
    glove.write_text("".join(f"{w} {' '.join(map(str, v))}\n" for w, v in vectors.items()))
    space = tmp_path / "cnn.yaml"  # a sampled embed_dim: the vectors' width replaces it
    space.write_text(
        yaml.safe_dump(
            {"family": "cnn", "filters": 8, "batch_size": 64, "embed_dim": {"choice": [16, 32]}}
        )
    )

    output = _invoke(
        "tune",
        data,
        "--space",
        space,
        "--samples",
        1,
        "--max-epochs",
        1,
        "--scheduler",
        "fifo",
        "--storage",
        tmp_path / "runs",
        "--name",
        "glove",
        "--num-cpus",
        2,
        "--max-len",
        20,
        "--min-freq",
        3,
        "--max-tokens",
        500,
        "--embeddings",
        glove,
        "--freeze-embeddings",
    )

    run = tmp_path / "runs" / "glove"
    pre = rundir.read_run(run).preprocessor
    assert (pre.max_len, pre.n_tokens) == (20, 500)
    assert rundir.read_arrays(run)["train_tokens"].shape[1] == 20
    covered = [w for w in WORDS if w in pre.vocabulary.tokens]
    assert len(covered) >= 4
    (stored,) = rundir.read_vectors(run).values()  # matched once, kept in the run
    assert (stored.source, stored.covered, stored.dim) == (str(glove), len(covered), DIM)
    assert f"{DIM}-dim vectors for {len(covered)} of 498 vocabulary tokens" in output

    (checkpoint,) = [rundir.read_checkpoint(path) for path in checkpoints(run)]
    recorded = checkpoint.metrics["config"]
    assert (recorded["embeddings"], recorded["freeze_embeddings"], recorded["embed_dim"]) == (
        str(glove),
        True,
        DIM,
    )
    table = load_model(checkpoint.model_path).get_layer("embedding").get_weights()[0]
    np.testing.assert_array_equal(table, stored.matrix)  # frozen: as matched, after training
    for word in covered:
        row = pre.vocabulary.tokens.index(word) + 2  # ids 0 and 1 are PAD and OOV
        np.testing.assert_allclose(table[row], vectors[word], atol=1e-6)

    # The bundle needs nothing new: the vectors are the member's embedding initializer.
    bundle = tmp_path / "bundle"
    _invoke("export", run, "--out", bundle, "--size", 1, "--no-fuse")
    (member,) = read_manifest(bundle).members
    graph = onnx.load(bundle / member.file).graph
    initializers = [onnx.numpy_helper.to_array(t) for t in graph.initializer]
    assert any(
        array.shape == table.shape and np.array_equal(array, table) for array in initializers
    )
    texts = tmp_path / "texts.csv"
    pd.DataFrame({"text": ["the flight was delayed", "great car, love it"]}).to_csv(
        texts, index=False
    )
    _invoke("predict", bundle, texts, "--out", tmp_path / "predictions.csv")
    predicted = pd.read_csv(tmp_path / "predictions.csv")
    assert len(predicted) == 2 and set(predicted["label"]) <= set(pre.labels)


def test_bad_embeddings_options_are_one_error_line_before_ray_starts(tweets_df, tmp_path):
    data = sample_table(tweets_df, tmp_path)
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    fixed = tmp_path / "fixed.yaml"
    fixed.write_text(yaml.safe_dump({"family": "cnn", "embed_dim": 16}))
    fifty = tmp_path / "fifty.txt"
    fifty.write_text("the " + " ".join(["0.1"] * 50) + "\n")
    cases = {
        (tmp_path / "absent.txt", ()): "no such file",
        (empty, ()): "empty (no vectors)",
        (fifty, ("--space", fixed)): "embed_dim 16 is fixed, but",
        (fifty, ("--space", "tfidf")): "no family of the spaces tfidf has a token embedding",
    }
    for (vectors, extra), message in cases.items():
        result = CliRunner().invoke(
            app,
            [
                "tune",
                str(data),
                "--embeddings",
                str(vectors),
                *map(str, extra),
                "--storage",
                str(tmp_path / "runs"),
            ],
        )
        assert result.exit_code == 2, result.output
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], lines
    result = CliRunner().invoke(app, ["tune", str(data), "--freeze-embeddings"])
    assert result.exit_code == 2 and "--freeze-embeddings needs --embeddings" in result.output
    assert not (tmp_path / "runs").exists()


@pytest.mark.slow  # reads GloVe's 400,000 words (the glove extra) and starts Ray: 1-4 min
def test_tune_with_the_named_glove_vectors(tweets_df, tmp_path):
    data = sample_table(tweets_df, tmp_path)
    output = _invoke(
        "tune",
        data,
        "--space",
        "cnn",
        "--samples",
        1,
        "--max-epochs",
        1,
        "--scheduler",
        "fifo",
        "--storage",
        tmp_path / "runs",
        "--name",
        "g",
        "--num-cpus",
        2,
        "--embeddings",
        "glove-6b-50d",
        "--freeze-embeddings",
    )
    assert "embeddings glove-6b-50d: 50-dim vectors for" in output
    run = tmp_path / "runs" / "g"
    (stored,) = rundir.read_vectors(run).values()
    assert stored.form == "named" and stored.coverage > 0.8  # tweets are mostly English words
    (checkpoint,) = [rundir.read_checkpoint(path) for path in checkpoints(run)]
    assert checkpoint.config["embed_dim"] == 50
    table = load_model(checkpoint.model_path).get_layer("embedding").get_weights()[0]
    row = rundir.read_run(run).preprocessor.vocabulary.tokens.index("the") + 2
    # glove.6B.50d.txt's first line: the 0.418 0.24968 -0.41242 0.1217 0.34527 ...
    np.testing.assert_allclose(table[row, :5], [0.418, 0.24968, -0.41242, 0.1217, 0.34527])
