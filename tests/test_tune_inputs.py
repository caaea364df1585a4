"""What the trials are built from: the preprocessing flags of `voxpop tune`, and pretrained word
vectors named by a space file (frozen here, so the trained model must still hold them)."""

from __future__ import annotations

import numpy as np
import yaml
from test_tune_support import checkpoints, sample_table
from typer.testing import CliRunner

from voxpop.data import rundir
from voxpop.models import load_model
from voxpop.serving_cli.app import app

DIM = 8


def test_preprocessing_flags_and_frozen_pretrained_vectors_reach_the_trials(tweets_df, tmp_path):
    data = sample_table(tweets_df, tmp_path)
    rng = np.random.default_rng(0)
    words = ["the", "flight", "great", "not", "car", "google", "love", "delayed"]
    vectors = {word: rng.normal(size=DIM).round(4) for word in words}
    glove = tmp_path / "vectors.txt"
    glove.write_text("".join(f"{w} {' '.join(map(str, v))}\n" for w, v in vectors.items()))
    space = tmp_path / "pretrained.yaml"
    space.write_text(yaml.safe_dump({"family": "cnn", "filters": 8, "embed_dim": DIM,
                                     "embeddings_file": str(glove), "embeddings_trainable": False,
                                     "batch_size": 64}))

    result = CliRunner().invoke(app, ["tune", str(data), "--space", str(space), "--samples", "1",
                                      "--max-epochs", "1", "--scheduler", "fifo", "--storage",
                                      str(tmp_path / "runs"), "--name", "glove", "--num-cpus", "2",
                                      "--max-len", "20", "--min-freq", "3", "--max-tokens", "500"])
    assert result.exit_code == 0, result.output

    run = tmp_path / "runs" / "glove"
    (checkpoint,) = [rundir.read_checkpoint(path) for path in checkpoints(run)]
    recorded = checkpoint.metrics["config"]
    assert "vocabulary" not in recorded  # build-time input only, never in the recorded config
    pre = rundir.read_run(run).preprocessor
    assert (pre.max_len, pre.n_tokens) == (20, 500)
    arrays = rundir.read_arrays(run)
    assert arrays["train_tokens"].shape[1] == 20
    model = load_model(checkpoint.model_path)
    table = model.get_layer("embedding").get_weights()[0]
    covered = [w for w in words if w in pre.vocabulary.tokens]
    assert len(covered) >= 4
    for word in covered:
        row = pre.vocabulary.tokens.index(word) + 2  # ids 0 and 1 are PAD and OOV
        np.testing.assert_allclose(table[row], vectors[word], atol=1e-6)
