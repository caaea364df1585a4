"""Bagged members (voxpop.export.bagged) of a bagged run written without Ray (the run directory's
fixtures, real Keras fold models on 400 built-in tweets): the run stores each configuration's
out-of-fold probabilities, bags are chosen on them, and a bag becomes one ONNX graph equal to the
mean of its fold models. A real `voxpop tune --folds` run is tested in test_tune_bagging."""

from __future__ import annotations

import numpy as np
import pytest

from voxpop.data import Preprocessor, split_rows
from voxpop.data.builtin import load_tweets
from voxpop.data.errors import VoxpopError
from voxpop.data.rundir import add_checkpoint, read_run, write_bags, write_fixture_run

FOLDS = 3
CONFIGS = {"c000": 1e-2, "c001": 1e-7}  # learning rates: the first learns, the second cannot


@pytest.fixture(scope="module")
def bagged_run(tmp_path_factory):
    from voxpop.models import build, runtime, training

    runtime.configure(threads=1, seed=0)
    tweets = load_tweets().sample(400, random_state=0).reset_index(drop=True)
    split = split_rows(tweets["label"].to_numpy(), seed=0)
    run_dir = tmp_path_factory.mktemp("runs") / "bagged"
    data = write_fixture_run(
        run_dir,
        texts=tweets["text"],
        labels=tweets["label"],
        split=split,
        preprocessor=Preprocessor(max_len=16, engineered_features=False, ngrams=False),
        folds=FOLDS,
    )
    for config_id, rate in CONFIGS.items():
        config = {"family": "cnn", "filters": 8, "embed_dim": 8, "learning_rate": rate}
        for fold in range(FOLDS):
            train, y_train, held_out, y_held_out = data.for_fold(fold)
            model = build(
                "cnn", config, n_tokens=data.n_tokens, n_classes=len(data.labels), n_features=0
            )
            fitted = training.fit(
                model,
                train=train,
                y_train=y_train,
                val=held_out,
                y_val=y_held_out,
                config=config,
                epochs=3,
            )
            probs = model.predict({"tokens": held_out["tokens"]}, verbose=0)
            add_checkpoint(
                run_dir,
                trial_id=f"{config_id}_f{fold}",
                index=0,
                model=model,
                val_probs=probs,
                metrics={
                    "config_id": config_id,
                    "fold": fold,
                    "folds": FOLDS,
                    "space": "cnn",
                    "family": "cnn",
                    "config": config,
                    "epoch": fitted.best_epoch,
                    **fitted.best_metrics,
                },
            )
    assert write_bags(run_dir) == list(CONFIGS)
    return read_run(run_dir)


def test_the_run_reads_back_its_bags_and_out_of_fold_rows(bagged_run):
    run = bagged_run
    assert run.bagged and [bag.config_id for bag in run.bags] == list(CONFIGS)
    n_rows = len(run.split.train) + len(run.split.val)
    assert len(run.fold_rows) == len(run.y_oof) == n_rows
    for bag in run.bags:
        oof = run.out_of_fold(bag.config_id)
        assert oof.shape == (n_rows, len(run.preprocessor.labels))
        for fold, checkpoint in enumerate(bag.checkpoints):
            assert checkpoint.metrics["fold"] == fold
            np.testing.assert_array_equal(
                oof[run.fold_rows["fold"] == fold], checkpoint.val_probs()
            )
    with pytest.raises(VoxpopError, match="no complete bag 'c009'"):
        run.out_of_fold("c009")


def test_bags_are_chosen_and_weighted_on_their_out_of_fold_rows(bagged_run):
    from voxpop.export.bagged import select_bags

    choice = select_bags(bagged_run, size=2)
    assert choice.oof_macro_f1["c000"] > choice.oof_macro_f1["c001"]
    assert choice.bags[0].config_id == "c000"
    assert choice.weights[0] == max(choice.weights)  # pick counts


def test_a_bag_is_one_graph_equal_to_the_mean_of_its_fold_models(bagged_run):
    from voxpop.export.bagged import bagged_member

    run = bagged_run
    inputs = run.encode(run.rows("val"))
    composed, proof = bagged_member(run.bag("c000"), parity_inputs=inputs)
    assert proof["max_abs_diff"] < 1e-5 and proof["rows"] == len(run.split.val)
    assert [i.name for i in composed.graph.input] == ["tokens"]
    assert [o.name for o in composed.graph.output] == ["probs"]
    # the K fold graphs, each once, averaged by the final vote node
    prefixes = {node.name.split("/")[0] for node in composed.graph.node if "/" in node.name}
    assert prefixes == {f"fold{fold}" for fold in range(FOLDS)}


def test_export_refuses_a_bagged_run_with_the_reason(bagged_run, tmp_path):
    from voxpop.export.bundle import export_bundle

    with pytest.raises(VoxpopError, match="a bagged run"):
        export_bundle(bagged_run.path, tmp_path / "bundle")
    assert not (tmp_path / "bundle").exists()
