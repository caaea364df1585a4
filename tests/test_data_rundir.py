"""The tuning run directory's owner (voxpop.data.rundir): what its writers write, its reader reads
back, on the built-in tweets, without Ray (a run of `voxpop tune` is tested in test_tune_local)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from voxpop.data import Preprocessor, split_rows
from voxpop.data.builtin import load_tweets
from voxpop.data.errors import VoxpopError
from voxpop.data.rundir import (
    Run,
    TrialData,
    add_checkpoint,
    new_run_dir,
    read_checkpoint,
    read_job,
    read_run,
    read_trial_data,
    write_fixture_run,
    write_prepared,
)
from voxpop.data.vectors import match_vectors


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    tweets = load_tweets().sample(300, random_state=0).reset_index(drop=True)
    split = split_rows(tweets["label"].to_numpy(), seed=0)
    run_dir = tmp_path_factory.mktemp("runs") / "fixture"
    data = write_fixture_run(
        run_dir,
        texts=tweets["text"],
        labels=tweets["label"],
        split=split,
        preprocessor=Preprocessor(max_len=16, engineered_features=False, ngrams=False),
    )
    return run_dir, tweets, split, data


def test_the_trial_data_reads_back_as_written_and_holds_no_test_rows(prepared):
    run_dir, _, split, data = prepared
    stored = read_trial_data(run_dir)
    assert stored.arrays().keys() == data.arrays().keys()
    assert not any("test" in key for key in stored.arrays())
    for key, array in data.arrays().items():
        np.testing.assert_array_equal(stored.arrays()[key], array)
    assert (stored.labels, stored.n_tokens, stored.vectors) == (data.labels, data.n_tokens, {})
    assert len(stored.y_train) == len(split.train) and len(stored.y_val) == len(split.val)
    assert read_job(run_dir)["command"].startswith("written without Ray")


def test_matched_word_vectors_are_kept_beside_the_trial_data_and_read_back(prepared, tmp_path):
    source, _, _, data = prepared
    run = Run(
        path=source, checkpoints=[], source=str(source)
    )  # the prepared part, read as export reads it
    tokens = run.preprocessor.vocabulary.tokens
    vectors = tmp_path / "vectors.txt"
    vectors.write_text("".join(f"{token} {i} {-i}\n" for i, token in enumerate(tokens[:10])))
    matched = match_vectors(str(vectors), tokens, seed=1)
    (tmp_path / "run").mkdir()
    write_prepared(
        tmp_path / "run",
        preprocessor=run.preprocessor,
        rows=run.data,
        data=dataclasses.replace(data, vectors={matched.source: matched}),
        job={},
    )
    (stored,) = read_trial_data(tmp_path / "run").vectors.values()
    np.testing.assert_array_equal(stored.matrix, matched.matrix)
    assert stored.record() == matched.record()
    assert (stored.covered, stored.tokens) == (10, len(tokens))
    # a plain .npy (read without pickle) beside a JSON record of the coverage
    assert sorted(p.name for p in (tmp_path / "run" / "voxpop").glob("embeddings*")) == [
        "embeddings.json",
        "embeddings_0.npy",
    ]


def test_a_run_reads_its_rows_in_split_order_and_its_checkpoints(prepared, tmp_path):
    import shutil

    source, tweets, split, data = prepared
    run_dir = tmp_path / "run"
    shutil.copytree(source, run_dir)
    probs = np.eye(len(data.labels), dtype=np.float32)[data.y_val]
    metrics = {"family": "cnn", "epoch": 1, "val_macro_f1": 1.0}
    written = add_checkpoint(run_dir, trial_id="t1", index=0, metrics=metrics, val_probs=probs)
    with pytest.raises(VoxpopError, match="checkpoint lacks model.keras"):
        read_run(run_dir)  # selection can read a checkpoint without a model; export cannot

    from voxpop.models import build, load_model

    model = build(
        "cnn",
        {"embed_dim": 4, "filters": 4, "head_units": []},
        n_tokens=data.n_tokens,
        n_classes=len(data.labels),
    )
    add_checkpoint(run_dir, trial_id="t2", index=3, metrics=metrics, val_probs=probs, model=model)
    shutil.rmtree(written.path.parent)
    run = read_run(run_dir)
    (checkpoint,) = run.checkpoints
    assert checkpoint == read_checkpoint(run_dir / "t2" / checkpoint.path.name)
    assert (checkpoint.name, checkpoint.trial_id, checkpoint.family) == (
        "t2/checkpoint_000003",
        "t2",
        "cnn",
    )
    assert load_model(checkpoint.model_path).output_shape == (None, len(data.labels))
    np.testing.assert_array_equal(checkpoint.val_probs(), probs)
    test_rows = run.rows("test")
    assert test_rows["text"].tolist() == tweets["text"].iloc[split.test].tolist()
    assert (test_rows["split"] == "test").all()
    np.testing.assert_array_equal(run.y_val, data.y_val)
    np.testing.assert_array_equal(run.encode(run.rows("val"))["tokens"], data.val["tokens"])


def test_a_run_missing_its_prepared_files_or_checkpoints_is_named(tmp_path, prepared):
    with pytest.raises(VoxpopError, match="run directory not found"):
        read_run(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(VoxpopError, match=r"voxpop/preprocess.json missing \(not a run written"):
        read_run(tmp_path / "empty")
    with pytest.raises(VoxpopError, match="no checkpoints found"):
        read_run(prepared[0])
    with pytest.raises(VoxpopError, match="arrays.npz; is this a voxpop tuning run directory"):
        read_trial_data(tmp_path / "empty")


def test_a_new_run_directory_is_removed_again_when_preparing_fails(tmp_path):
    run_dir = tmp_path / "storage" / "bad"
    with pytest.raises(VoxpopError), new_run_dir(run_dir):
        assert run_dir.is_dir()
        raise VoxpopError("bad data")
    assert not run_dir.exists() and (tmp_path / "storage").is_dir()


def test_a_fold_pools_train_and_val_n_grams_of_different_widths():
    """`grams` is as wide as its part's longest row: train and val differ, and a fold's rows
    mix both (a 4,000-tweet bagged run failed here before the narrower part was padded)."""
    tweets = load_tweets().sample(300, random_state=1).reset_index(drop=True)
    split = split_rows(tweets["label"].to_numpy(), seed=0)
    preprocessor = Preprocessor(max_len=16, engineered_features=False)
    preprocessor.fit(tweets["text"].iloc[split.train].tolist(), tweets["label"].iloc[split.train])
    rows = tweets.assign(split="train", id=np.arange(len(tweets)).astype(str))
    rows.loc[split.val, "split"] = "val"
    rows.loc[split.test, "split"] = "test"
    rows.loc[split.val[0], "text"] = "ok"  # val holds a short row; cut val to short rows only
    short = rows[(rows["split"] != "val") | (rows["text"].str.len() < 40)]
    data = TrialData.encode(preprocessor, short, folds=3)
    assert data.train["grams"].shape[1] > data.val["grams"].shape[1]
    n = len(data.y_train) + len(data.y_val)
    seen = 0
    for fold in range(3):
        train, y_train, held_out, y_held_out = data.for_fold(fold)
        assert train["grams"].shape[1] == held_out["grams"].shape[1]
        assert len(y_train) + len(y_held_out) == n
        seen += len(y_held_out)
        pooled_val = held_out["grams"][held_out["gram_weights"] == 0]
        assert (pooled_val == 0).all()  # the padding added is padding: bucket 0, weight 0
    assert seen == n
