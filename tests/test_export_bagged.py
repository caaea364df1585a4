"""Bagged members (voxpop.export.bagged) of a bagged run written without Ray (the run directory's
fixtures, real Keras fold models on 400 built-in tweets): the run stores each configuration's
out-of-fold probabilities, `voxpop export` chooses bags on them and writes a bundle whose members
are bags, each one ONNX graph equal to the mean of its fold models, with a stacker fitted on the
out-of-fold rows and the cost budget applied to bags. A real `voxpop tune --folds` run is tested
in test_tune_bagging."""

from __future__ import annotations

import numpy as np
import pytest

from run_factory import train_bags
from voxpop.data import Preprocessor, split_rows
from voxpop.data.builtin import load_tweets
from voxpop.data.errors import VoxpopError
from voxpop.data.rundir import read_run, write_fixture_run

FOLDS = 3
# (filters, learning rate): c000 and c002 learn, c001 cannot (a floor candidate, never chosen)
CONFIGS = {"c000": (8, 1e-2), "c001": (8, 1e-7), "c002": (16, 5e-3)}


@pytest.fixture(scope="module")
def bagged_run(tmp_path_factory):
    from voxpop.models import runtime

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
    configs = {
        config_id: (
            "cnn",
            {"filters": filters, "embed_dim": 8, "learning_rate": rate, "seed": 0},
            3,
        )
        for config_id, (filters, rate) in CONFIGS.items()
    }
    assert train_bags(run_dir, data, configs) == list(CONFIGS)
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


def test_bags_are_candidates_scored_on_their_out_of_fold_rows(bagged_run):
    from voxpop.ensemble.metrics import macro_f1
    from voxpop.export.bagged import bag_candidates

    candidates = {c.name: c for c in bag_candidates(bagged_run)}
    assert list(candidates) == list(CONFIGS)
    for config_id, candidate in candidates.items():
        oof = bagged_run.out_of_fold(config_id)
        np.testing.assert_array_equal(candidate.val_probs(), oof)
        assert candidate.metrics["val_macro_f1"] == pytest.approx(
            macro_f1(bagged_run.y_oof, oof.argmax(1), oof.shape[1])
        )
        assert candidate.folds == FOLDS and len(candidate.model_paths) == FOLDS
    assert candidates["c000"].score("val_macro_f1") > candidates["c001"].score("val_macro_f1")


@pytest.fixture(scope="module")
def bagged_bundle(bagged_run, tmp_path_factory):
    """`voxpop export` of the bagged run, stacked and under a (generous) cost budget."""
    from typer.testing import CliRunner

    from voxpop.serving_cli.app import app

    out = tmp_path_factory.mktemp("bundles") / "bagged"
    result = CliRunner().invoke(
        app,
        [
            "export",
            str(bagged_run.path),
            "--out",
            str(out),
            "--combine",
            "stack",
            "--max-ms-per-row",
            "1000",
        ],
    )
    assert result.exit_code == 0, result.output
    assert f"bags of {FOLDS} fold models" in result.output
    assert "out-of-fold macro-F1 weighted" in result.output
    return out


def test_export_writes_bags_chosen_on_the_out_of_fold_rows(bagged_run, bagged_bundle):
    from voxpop.ensemble.bundle import read_manifest

    manifest = read_manifest(bagged_bundle)
    n_oof = len(bagged_run.split.train) + len(bagged_run.split.val)
    assert manifest.selection.on == "out_of_fold" and manifest.selection.rows == n_oof
    chosen = [m.bag.config_id for m in manifest.members]
    assert chosen and "c001" not in chosen  # the bag that cannot learn is below the floor
    for member in manifest.members:
        bag = bagged_run.bag(member.bag.config_id)
        assert member.bag.folds == FOLDS and member.kind == f"cnn, bag of {FOLDS}"
        assert member.bag.checkpoints == [c.name for c in bag.checkpoints]
        assert member.checkpoint is None and member.trial_id == member.bag.config_id
        assert member.parity.max_abs_diff < 1e-5 and member.parity.argmax_agreement == 1.0
    assert sum(manifest.voting.weights) > 0
    report = (bagged_bundle / "export_report.md").read_text()
    assert f"on {n_oof:,} out-of-fold rows (train + val) only" in report
    assert "c001" in report  # every bag is listed with why it was or was not chosen


def test_a_bag_member_gives_the_mean_of_its_fold_models(bagged_run, bagged_bundle):
    from voxpop.ensemble import Ensemble
    from voxpop.models import load_model

    test = bagged_run.rows("test")
    ensemble = Ensemble.load(bagged_bundle, device="cpu", threads=1, fused=False)
    prediction = ensemble.predict(test["text"].astype(str).tolist(), voting="weighted")
    assert len(prediction.labels) == len(test)
    inputs = bagged_run.encode(test)
    for member in ensemble.manifest.members:
        models = [
            load_model(c.model_path) for c in bagged_run.bag(member.bag.config_id).checkpoints
        ]
        keras_mean = np.mean(
            [m.predict({"tokens": inputs["tokens"]}, verbose=0) for m in models], axis=0
        )
        np.testing.assert_allclose(prediction.member_probs[member.id], keras_mean, atol=1e-5)
    ensemble.close()


def test_the_stacker_and_the_budget_use_the_bags(bagged_run, bagged_bundle):
    from voxpop.ensemble import Ensemble

    ensemble = Ensemble.load(bagged_bundle, device="cpu", threads=1)  # fused: vote and stack
    manifest = ensemble.manifest
    stacker = manifest.stacker
    assert stacker.fit_on == "out_of_fold" and stacker.rows == manifest.selection.rows
    assert len(stacker.coef[0]) == len(manifest.members) * len(manifest.labels)
    texts = bagged_run.rows("test")["text"].astype(str).tolist()
    stacked = ensemble.predict(texts, voting="stack")
    np.testing.assert_allclose(stacked.probs.sum(axis=1), 1.0, atol=1e-5)
    cost = manifest.selection.cost
    assert sorted(cost.members_ms) == sorted(manifest.member_ids)
    assert cost.total_ms <= cost.max_ms_per_row
    ensemble.close()


def test_info_names_the_members_as_bags(bagged_bundle):
    from typer.testing import CliRunner

    from voxpop.serving_cli.app import app

    shown = CliRunner().invoke(app, ["info", str(bagged_bundle)])
    assert shown.exit_code == 0, shown.output
    assert f"cnn, bag of {FOLDS}" in shown.output and "out-of-fold macro-F1" in shown.output
    assert "logistic regression on" in shown.output and "out-of-fold rows" in shown.output


def test_no_budget_fits_is_refused_naming_the_cheapest_bag(bagged_run, tmp_path):
    from voxpop.export.bundle import export_bundle

    with pytest.raises(VoxpopError, match=r"no candidate fits; the cheapest, c00\d,"):
        export_bundle(bagged_run.path, tmp_path / "bundle", max_ms_per_row=1e-9)
    assert not (tmp_path / "bundle").exists()
