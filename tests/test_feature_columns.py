"""A bundle tuned with `--feature-cols`, end to end: a real tiny run (one TF-IDF + features trial, one
lbfgs solve, on 2,000 real tweets with a numeric column `signal` that carries the label), exported,
then `predict`, `evaluate` and `bench` read the column by the name the bundle records, or by the
name `--feature-cols` gives. The column must really reach the model: the same rows score far
worse with its values shuffled."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from test_tune_support import sample_table
from voxpop.serving_cli.app import app

runner = CliRunner()
LABELS = ("negative", "neutral", "positive")


def invoke(*args):
    return runner.invoke(app, [str(arg) for arg in args])


def with_signal(frame, seed: int):
    """The rows with `signal`: the label's position plus noise, so it predicts the label well."""
    rng = np.random.default_rng(seed)
    position = frame["label"].map({label: i for i, label in enumerate(LABELS)}).to_numpy()
    return frame.assign(signal=position + rng.normal(0, 0.3, len(frame)))


@pytest.fixture(scope="module")
def tuned(tweets_df, tmp_path_factory):
    work = tmp_path_factory.mktemp("features")
    import pandas as pd

    train = with_signal(pd.read_parquet(sample_table(tweets_df, work)), seed=0)
    train.to_csv(work / "train.csv", index=False)
    external = with_signal(tweets_df.sample(n=300, random_state=7), seed=1)
    result = invoke(
        "tune",
        work / "train.csv",
        "--space",
        "tfidf_fusion",
        "--feature-cols",
        "signal",
        "--samples",
        1,
        "--max-epochs",
        1,
        "--storage",
        work / "runs",
        "--name",
        "f",
        "--num-cpus",
        2,
    )
    assert result.exit_code == 0, result.output
    result = invoke("export", work / "runs" / "f", "--out", work / "bundle", "--size", 1)
    assert result.exit_code == 0, result.output
    return work, work / "bundle", external


def evaluate(bundle, table, out, *options) -> dict:
    result = invoke(
        "evaluate",
        bundle,
        table,
        "--out",
        out,
        "--no-baseline",
        "--voting",
        "soft",
        "--report-format",
        "json",
        *options,
    )
    assert result.exit_code == 0, result.output
    return json.loads((out / "report.json").read_text())


def vote_f1(report: dict) -> float:
    return report["votes"]["soft"]["macro_f1"]


def test_evaluate_reads_the_bundles_feature_column_by_name(tuned):
    work, bundle, external = tuned
    external.to_csv(work / "external.csv", index=False)
    shuffled = external.assign(signal=np.random.default_rng(2).permutation(external["signal"]))
    shuffled.to_csv(work / "shuffled.csv", index=False)
    right = evaluate(bundle, work / "external.csv", work / "right")
    wrong = evaluate(bundle, work / "shuffled.csv", work / "wrong")
    assert vote_f1(right) > 0.8 and vote_f1(wrong) < vote_f1(right) - 0.2


def test_feature_cols_names_a_column_the_table_calls_otherwise(tuned):
    work, bundle, external = tuned
    # A TSV named .txt, read with --format: the options of every command that reads a table.
    external.rename(columns={"signal": "score"}).to_csv(work / "renamed.txt", sep="\t", index=False)
    external.to_csv(work / "external.csv", index=False)
    renamed = evaluate(
        bundle, work / "renamed.txt", work / "renamed", "--feature-cols", "score", "--format", "tsv"
    )
    default = evaluate(bundle, work / "external.csv", work / "default")
    assert renamed["votes"] == default["votes"]


def test_predict_and_bench_read_the_feature_column_too(tuned):
    work, bundle, external = tuned
    external[["text", "signal"]].to_parquet(work / "new.parquet")
    result = invoke("predict", bundle, work / "new.parquet", "--out", work / "labels.csv")
    assert result.exit_code == 0, result.output
    import pandas as pd

    predicted = pd.read_csv(work / "labels.csv")["label"].to_numpy()
    assert np.mean(predicted == external["label"].to_numpy()) > 0.8
    result = invoke("bench", bundle, work / "new.parquet", "--rows", 200, "--repeats", 1)
    assert result.exit_code == 0, result.output
    assert "encoding" in result.output


@pytest.mark.parametrize(
    "options, message",
    [
        ([], "error: {table}: column 'signal' not found (columns: text, label)"),
        (
            ["--feature-cols", "a,b"],
            "error: --feature-cols: 2 column(s) given (a, b), but the "
            "bundle was tuned with 1 (signal)",
        ),
    ],
)
def test_a_missing_feature_column_is_one_line_naming_it(tuned, options, message):
    work, bundle, external = tuned
    table = work / "no_signal.csv"
    external[["text", "label"]].to_csv(table, index=False)
    for command in (
        ["evaluate", bundle, table, "--out", work / "r", "--no-baseline"],
        ["predict", bundle, table],
        ["bench", bundle, table],
    ):
        result = invoke(*command, *options)
        assert result.exit_code == 2, result.output
        assert result.stderr.strip() == message.format(table=table), command
