"""k-fold bagging (`voxpop tune --folds K`) on a tiny real job (an embedded Ray, 2,000 real
tweets, TF-IDF + logistic regression fold models): each sampled configuration is K fold trials of
one configuration, and the run stores every train and val row's out-of-fold probabilities, each
from the fold model that did not train on it."""

from __future__ import annotations

import numpy as np
import pytest

from test_tune_support import sample_table, space_file
from voxpop.data.errors import VoxpopError
from voxpop.data.rundir import read_run
from voxpop.tune_spaces.cluster import start_ray, stop_ray
from voxpop.tune_spaces.runner import TuneOptions, run_tuning, validate
from voxpop.tune_spaces.schedulers import bagged_search

FOLDS = 3


@pytest.fixture(scope="module")
def bagged_run(tweets_df, tmp_path_factory):
    work = tmp_path_factory.mktemp("bagging")
    # C is sampled: the folds of one bag must share the draw.
    space = space_file(work, "lr", family="tfidf", C={"loguniform": [0.5, 8.0]})
    options = TuneOptions(
        data=sample_table(tweets_df, work),
        spaces=(space,),
        samples=1,
        folds=FOLDS,
        scheduler="fifo",
        storage=work / "runs",
        name="bagged",
    )
    assert start_ray(num_cpus=2)
    try:
        outcome = run_tuning(options)
    finally:
        stop_ray()
    return outcome


def test_a_configuration_is_k_fold_trials_of_one_draw(bagged_run):
    board = bagged_run.leaderboard
    assert [row["error"] for row in board] == [None] * FOLDS
    assert {row["config_id"] for row in board} == {"c000"}
    assert sorted(row["fold"] for row in board) == list(range(FOLDS))
    assert len({row["params"]["C"] for row in board}) == 1


def test_each_sample_is_drawn_once_for_all_its_folds(tmp_path):
    space = space_file(tmp_path, "lr", family="tfidf", C={"loguniform": [0.5, 8.0]})
    options = TuneOptions(data=None, spaces=(space, "cnn"), samples=3, folds=FOLDS, seed=5)
    param_space, _, num_samples = bagged_search(validate(options), options)
    grid = param_space["bag"]["grid_search"]
    assert num_samples == 1 and len(grid) == 2 * 3 * FOLDS
    draws = {}
    for trial in grid:  # a configuration's folds side by side, each with the one draw
        draws.setdefault(trial["config_id"], []).append((trial["fold"], trial["space"]))
    assert list(draws) == [f"c{i:03d}" for i in range(6)]
    for folds in draws.values():
        assert [fold for fold, _ in folds] == list(range(FOLDS))
        assert all(space == folds[0][1] for _, space in folds)
    drawn_c = [folds[0][1]["lr"]["C"] for config_id, folds in draws.items() if "lr" in folds[0][1]]
    assert len(set(drawn_c)) == 3 and all(0.5 <= c <= 8.0 for c in drawn_c)
    assert bagged_search(validate(options), options)[0] == param_space  # seeded


def test_out_of_fold_probabilities_cover_every_training_row_once(bagged_run):
    run = read_run(bagged_run.run_dir)
    rows = run.fold_rows
    expected = np.concatenate([run.split.train, run.split.val])
    assert np.array_equal(rows["row"].to_numpy(), expected)
    assert list(rows["id"]) == run.data["id"].astype(str).to_numpy()[expected].tolist()
    assert np.bincount(rows["fold"], minlength=FOLDS).min() >= len(rows) // FOLDS - 3
    assert [bag.config_id for bag in run.bags] == ["c000"]
    for bag in run.bags:
        oof = run.out_of_fold(bag.config_id)
        assert oof.dtype == np.float32 and oof.shape == (len(rows), len(run.preprocessor.labels))
        np.testing.assert_allclose(oof.sum(axis=1), 1.0, atol=1e-4)
        assert [c.metrics["fold"] for c in bag.checkpoints] == list(range(FOLDS))
        for fold, checkpoint in enumerate(bag.checkpoints):
            assert checkpoint.config == bag.config
            inside = rows["fold"].to_numpy() == fold
            assert np.array_equal(oof[inside], checkpoint.val_probs())
        # Out of fold, the rows score as unseen rows do: far below what the models fit on.
        oof_accuracy = np.mean(oof.argmax(1) == run.y_oof)
        assert 0.5 < oof_accuracy < 0.9, oof_accuracy


def test_a_fold_model_predicts_its_held_out_rows_as_stored(bagged_run):
    from voxpop.models import load_model

    run = read_run(bagged_run.run_dir)
    checkpoint = run.bags[0].checkpoints[1]
    held_out = run.fold_rows["fold"].to_numpy() == 1
    inputs = run.encode(run.data.iloc[run.fold_rows["row"].to_numpy()[held_out]])
    model = load_model(checkpoint.model_path)
    probs = model.predict({t.name: inputs[t.name] for t in model.inputs}, verbose=0)
    np.testing.assert_allclose(probs, checkpoint.val_probs(), atol=1e-5)
    training = run.encode(run.data.iloc[run.fold_rows["row"].to_numpy()[~held_out]])
    fitted = model.predict({t.name: training[t.name] for t in model.inputs}, verbose=0)
    assert (
        np.mean(fitted.argmax(1) == run.y_oof[~held_out])
        > np.mean(probs.argmax(1) == run.y_oof[held_out]) + 0.05
    )  # it trained on those, not these


@pytest.mark.parametrize(
    "options, message",
    [
        ({"folds": 1}, "--folds must be 0"),
        ({"folds": 3, "scheduler": "pbt"}, "--folds needs --search random"),
        ({"folds": 3, "search": "optuna"}, "--folds needs --search random"),
    ],
)
def test_folds_refused_where_a_bag_cannot_be_made(options, message):
    with pytest.raises(VoxpopError, match=message):
        validate(TuneOptions(data=None, spaces=("cnn",), **options))


# slow (81 s): the bagged export and predict are covered in the default run by
# test_export_bagged on a factory-made bagged run; this one goes through the CLI after a real tune.
@pytest.mark.slow
def test_the_tuned_bagged_run_exports_and_predicts_end_to_end(bagged_run, tmp_path):
    """`voxpop tune --folds` -> `voxpop export` -> `voxpop predict`: the bag is the member."""
    from typer.testing import CliRunner

    from voxpop.ensemble.bundle import read_manifest
    from voxpop.serving_cli.app import app

    bundle = tmp_path / "bundle"
    exported = CliRunner().invoke(app, ["export", str(bagged_run.run_dir), "--out", str(bundle)])
    assert exported.exit_code == 0, exported.output
    manifest = read_manifest(bundle)
    run = read_run(bagged_run.run_dir)
    assert [m.bag.config_id for m in manifest.members] == ["c000"]
    assert manifest.members[0].bag.folds == FOLDS
    assert manifest.selection.on == "out_of_fold" and manifest.selection.rows == len(run.y_oof)
    texts = tmp_path / "new.csv"
    run.rows("test")[["text"]].to_csv(texts, index=False)
    predicted = CliRunner().invoke(
        app, ["predict", str(bundle), str(texts), "--out", str(tmp_path / "p.csv")]
    )
    assert predicted.exit_code == 0, predicted.output
    assert len((tmp_path / "p.csv").read_text().splitlines()) == len(run.split.test) + 1
