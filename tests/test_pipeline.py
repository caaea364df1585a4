"""The whole pipeline as a user runs it: `voxpop tune` -> `export` -> `predict` -> `evaluate`.

Real Ray, real training (tiny models, two epochs), real tf2onnx, real ONNX Runtime, real data: a
binary model tuned on rotten tomatoes snippets (fresh / rotten), then predicted and evaluated on
UCI sentences from other domains (imdb, amazon, yelp; positive / negative, mapped with
--label-map), from the samples in tests/data. The strongest check is end-to-end parity: the
probabilities `voxpop predict` writes for raw texts equal the weighted vote of the tuned Keras
checkpoints run on the same texts.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from conftest import sample
from voxpop.serving_cli.app import app

runner = CliRunner()
LABEL_MAP = {"positive": "fresh", "negative": "rotten"}  # UCI's labels -> the bundle's


def invoke(*args) -> str:
    result = runner.invoke(app, [str(arg) for arg in args])
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture(scope="module")
def reviews() -> dict[str, pd.DataFrame]:
    """3,000 rotten tomatoes snippets to tune on; 600 UCI sentences (100 per label and source) as
    the 'new' data, from other domains."""
    train = sample("rotten_tomatoes")
    new = sample("uci_sentences").groupby(["source", "label"]).sample(n=100, random_state=3)
    new = new.sample(frac=1, random_state=3)
    return {
        "train": train.assign(review_id=[f"r{i:04d}" for i in range(len(train))]),
        "new": new.assign(review_id=[f"u{i:04d}" for i in range(len(new))]),
    }


@pytest.fixture(scope="module")
def pipeline(reviews, tmp_path_factory) -> dict[str, Path]:
    work = tmp_path_factory.mktemp("pipeline")
    train_csv, new_csv = work / "train.csv", work / "new.csv"
    for frame, path in ((reviews["train"], train_csv), (reviews["new"], new_csv)):
        frame[["review_id", "text", "label"]].to_csv(path, index=False, quoting=csv.QUOTE_ALL)
    label_map = ",".join(f"{external}={ours}" for external, ours in LABEL_MAP.items())
    spaces = []
    for family, extra in (("cnn", {"filters": 16}), ("bigram", {"buckets": 4096})):
        space = work / f"{family}.yaml"
        space.write_text(
            yaml.safe_dump(
                {
                    "family": family,
                    "embed_dim": 16,
                    "batch_size": 64,
                    # fast enough for two epochs on 2,100 rows to clear
                    # the export's candidate floor beside TF-IDF
                    "learning_rate": {"loguniform": [6e-3, 1e-2]},
                    **extra,
                }
            )
        )
        spaces += ["--space", space]
    spaces += ["--space", "tfidf"]  # the named space: one lbfgs solve on the n-gram inputs

    tune_output = invoke(
        "tune",
        train_csv,
        *spaces,
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
        "p",
        "--num-cpus",
        2,
    )
    run_dir = work / "runs" / "p"
    # top 3 of 3 trials: every family, token and n-gram readers, is a member
    invoke("export", run_dir, "--out", work / "bundle", "--size", 3, "--select", "top")
    invoke(
        "predict",
        work / "bundle",
        new_csv,
        "--id-col",
        "review_id",
        "--probs",
        "--voting",
        "weighted",
        "--out",
        work / "predictions.csv",
    )
    invoke(
        "evaluate",
        work / "bundle",
        new_csv,
        "--out",
        work / "report",
        "--no-baseline",
        "--label-map",
        label_map,
    )
    # A bundle of the n-gram member alone: no member reads tokens.
    invoke(
        "export",
        run_dir,
        "--out",
        work / "grams_bundle",
        "--size",
        1,
        "--select",
        "top",
        "--no-fuse",
    )
    invoke(
        "evaluate",
        work / "grams_bundle",
        new_csv,
        "--out",
        work / "grams_report",
        "--no-baseline",
        "--label-map",
        label_map,
    )
    return {
        "work": work,
        "run": run_dir,
        "bundle": work / "bundle",
        "new": new_csv,
        "tune_output": tune_output,
    }


def test_tune_prints_a_leaderboard_and_the_export_command(pipeline):
    assert "voxpop export" in pipeline["tune_output"]
    from voxpop.data.rundir import read_run

    assert len(read_run(pipeline["run"]).checkpoints) == 3


def test_predictions_equal_the_weighted_vote_of_the_keras_checkpoints(pipeline, reviews):
    from voxpop.data.rundir import read_checkpoint, read_run
    from voxpop.models import load_model

    manifest = json.loads((pipeline["bundle"] / "ensemble.json").read_text())
    assert sorted(m["family"] for m in manifest["members"]) == ["bigram", "cnn", "tfidf"]
    # The TF-IDF member reads the n-gram inputs, declared with their dtypes beside the tokens.
    tfidf = next(m for m in manifest["members"] if m["family"] == "tfidf")
    assert tfidf["inputs"] == ["grams", "gram_weights"]
    assert sorted(manifest["inputs"], key=lambda spec: spec["name"]) == [
        {"name": "gram_weights", "dtype": "float32", "shape": ["batch", "grams"]},
        {"name": "grams", "dtype": "int32", "shape": ["batch", "grams"]},
        {"name": "tokens", "dtype": "int32", "shape": ["batch", "seq"]},
    ]
    assert manifest["labels"] == ["fresh", "rotten"]
    predictions = pd.read_csv(pipeline["work"] / "predictions.csv")
    new = reviews["new"]
    # One row per input row, in input order, with the input's ids.
    assert predictions["id"].tolist() == new["review_id"].tolist()

    # Independently: encode the raw texts with the run's preprocessor, run each selected Keras
    # checkpoint, and take the weighted mean with the manifest's weights.
    pre = read_run(pipeline["run"]).preprocessor
    encoded = pre.encode(new["text"].tolist())
    votes, weights = [], []
    for member in manifest["members"]:
        model = load_model(read_checkpoint(pipeline["run"] / member["checkpoint"]).model_path)
        inputs = {name: encoded[name] for name in member["inputs"]}
        votes.append(model.predict(inputs, verbose=0))
        weights.append(member["weight"])
    expected = np.average(np.stack(votes), axis=0, weights=weights)
    written = predictions[[f"prob_{label}" for label in manifest["labels"]]].to_numpy()
    np.testing.assert_allclose(written, expected, atol=1e-5)
    assert predictions["label"].tolist() == [manifest["labels"][i] for i in expected.argmax(1)]


def test_evaluate_scores_the_same_predictions_as_scikit_learn(pipeline, reviews):
    from sklearn.metrics import f1_score

    report = json.loads((pipeline["work"] / "report" / "report.json").read_text())
    predictions = pd.read_csv(pipeline["work"] / "predictions.csv")
    assert report["data"]["mapping"] == LABEL_MAP and report["data"]["n_evaluated"] == 600
    truth = reviews["new"]["label"].map(LABEL_MAP)
    expected = f1_score(truth, predictions["label"], average="macro")
    assert report["votes"]["weighted"]["macro_f1"] == pytest.approx(expected, abs=1e-9)
    # a model of movie snippets still says something about amazon and yelp sentences
    assert expected > 0.55
    assert (pipeline["work"] / "report" / "report.html").stat().st_size > 10_000


def test_a_bundle_of_n_gram_members_only_is_evaluated_without_a_vocabulary(pipeline, reviews):
    from sklearn.metrics import f1_score

    manifest = json.loads((pipeline["work"] / "grams_bundle" / "ensemble.json").read_text())
    assert [m["family"] for m in manifest["members"]] == ["tfidf"]  # the best trial here
    report = json.loads((pipeline["work"] / "grams_report" / "report.json").read_text())
    assert report["oov"] is None and report["member_contributions"] == {}
    member = report["members"]["m1"]
    assert report["votes"]["soft"]["macro_f1"] == member["macro_f1"]
    written = pipeline["work"] / "grams_predictions.csv"
    invoke("predict", pipeline["work"] / "grams_bundle", pipeline["new"], "--out", written)
    labels = pd.read_csv(written)["label"]
    expected = f1_score(reviews["new"]["label"].map(LABEL_MAP), labels, average="macro")
    assert member["macro_f1"] == pytest.approx(expected, abs=1e-9)
