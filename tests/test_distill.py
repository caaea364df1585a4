"""`voxpop distill` end to end on real tweets: a real teacher bundle (bundle_factory: a real
Preprocessor, three members and a fused graph), a closed-form student fitted to its soft
probabilities, exported with the same proofs as `voxpop export` and loaded back."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from bundle_factory import tweet_rows, write_bundle  # noqa: F401 (fixtures)
from voxpop.serving_cli.app import app

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def bundle_dir(tmp_path_factory, tweet_rows):
    """The teacher: bundle_factory's three members and fused graph, on a real Preprocessor with
    4,096 n-gram buckets (the students' tables stay small, so the test takes seconds)."""
    from voxpop.data import Preprocessor

    train = tweet_rows.iloc[:1500]
    pre = Preprocessor(max_tokens=3000, max_len=32, ngram_buckets=2**12).fit(
        train["text"].tolist(), train["label"].astype(str).tolist()
    )
    return write_bundle(
        tmp_path_factory.mktemp("teacher") / "bundle",
        pre,
        check_texts=tweet_rows["text"].iloc[1900:1932].astype(str).tolist(),
    )


@pytest.fixture(scope="module")
def tables(tmp_path_factory, tweet_rows):
    """1,200 labelled tweets the teacher's preprocessor was fitted on; 300 unlabelled others."""
    folder = tmp_path_factory.mktemp("distill")
    labelled, unlabelled = folder / "train.csv", folder / "more.csv"
    tweet_rows.iloc[:1200][["text", "label"]].to_csv(labelled, index=False)
    tweet_rows.iloc[1500:1800][["text"]].to_csv(unlabelled, index=False)
    return labelled, unlabelled


@pytest.fixture(scope="module")
def student(bundle_dir, tables, tmp_path_factory):
    labelled, unlabelled = tables
    out = tmp_path_factory.mktemp("student") / "student"
    result = invoke(
        "distill", bundle_dir, "--data", labelled, "--unlabelled", unlabelled, "--out", out
    )
    assert result.exit_code == 0, result.output
    return out, result.output


def test_student_is_a_proven_one_member_bundle_that_follows_its_teacher(
    bundle_dir, student, tweet_rows
):
    from voxpop.ensemble import Ensemble

    out, output = student
    manifest = json.loads((out / "ensemble.json").read_text())
    assert len(manifest["members"]) == 1
    member = manifest["members"][0]
    assert member["family"] in ("tfidf", "tfidf_fusion")
    assert member["parity"]["max_abs_diff"] <= 1e-5 and member["parity"]["argmax_agreement"] == 1.0
    assert f"student {member['family']} distilled on 1,260 texts" in output  # 960 + 300
    assert "held-out macro-F1 (240 rows of --data): teacher " in output
    # Loading verifies checksums and runs the graph on the check rows.
    loaded, teacher = Ensemble.load(out), Ensemble.load(bundle_dir)
    texts = tweet_rows["text"].iloc[1800:].astype(str).tolist()  # seen by neither
    taught = teacher.predict(texts, voting=teacher.manifest.voting.default).label_ids
    learned = loaded.predict(texts).label_ids
    agreement = float(np.mean(taught == learned))
    majority = np.bincount(taught).max() / len(taught)
    assert agreement > majority + 0.1, (agreement, majority)


def test_unlabelled_texts_are_distilled_on_and_a_student_family_can_be_chosen(
    bundle_dir, tables, tmp_path
):
    labelled, _ = tables
    result = invoke(
        "distill", bundle_dir, "--data", labelled, "--out", tmp_path / "s", "--family", "tfidf"
    )
    assert result.exit_code == 0, result.output
    assert "student tfidf distilled on 960 texts" in result.output
    assert "(tried: tfidf " in result.output and "tfidf_fusion" not in result.output


def test_val_rows_score_student_and_teacher_and_are_never_distilled_on(
    bundle_dir, tables, tweet_rows, tmp_path
):
    from voxpop.ensemble import Ensemble
    from voxpop.ensemble.metrics import macro_f1
    from voxpop.export.options import STUDENT_FAMILIES

    labelled, _ = tables
    val_rows = tweet_rows.iloc[1800:2000]
    val = tmp_path / "val.csv"
    val_rows[["text", "label"]].to_csv(val, index=False)
    out = tmp_path / "s"
    result = invoke("distill", bundle_dir, "--data", labelled, "--val", val, "--out", out)
    assert result.exit_code == 0, result.output
    assert "distilled on 1,200 texts" in result.output  # every --data row
    assert "held-out macro-F1 (200 rows of --val): teacher " in result.output
    # The teacher's printed score is its macro-F1 on exactly the --val rows.
    teacher = Ensemble.load(bundle_dir)
    predicted = teacher.predict(
        val_rows["text"].astype(str).tolist(), voting=teacher.manifest.voting.default
    ).label_ids
    truth = teacher.preprocessor.encode_labels(val_rows["label"].astype(str))
    expected = macro_f1(truth, predicted, len(teacher.labels))
    assert f"teacher {expected:.4f}," in result.output
    # The --val rows are the student run's validation split: its check rows come from them.
    manifest = json.loads((out / "ensemble.json").read_text())
    assert manifest["check_rows"]["texts"][0] == val_rows["text"].iloc[0]
    # Chosen among the students: the fastest within 1 point of the best one tried.
    tried = result.output.split("(tried: ")[1].split(")")[0]
    scores = {name: float(score) for name, score in (p.split() for p in tried.split(", "))}
    best = max(scores.values())
    fastest_close = next(f for f in STUDENT_FAMILIES if f in scores and scores[f] >= best - 0.01)
    assert f"student {fastest_close} distilled" in result.output


def test_each_long_step_is_told_as_it_starts(bundle_dir, tables, tmp_path):
    from voxpop.export.distill import distill_bundle

    labelled, unlabelled = tables
    steps = []
    distill_bundle(
        bundle_dir,
        tmp_path / "s",
        data=labelled,
        unlabelled=[unlabelled],
        family="tfidf",
        on_step=steps.append,
    )
    assert steps == [
        "the teacher's weighted vote on 1,500 texts",  # 960 + 300 distilled on, 240 scored
        "fitting student tfidf on 1,260 texts",
        "exporting student tfidf with export's proofs",
    ]


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["--family", "cnn"],
            "--family: 'cnn' cannot be distilled into (choose from tfidf, tfidf_fusion)",
        ),
        (["--text-col", "body"], "body"),
    ],
)
def test_bad_options_are_one_error_line(bundle_dir, tables, tmp_path, args, message):
    labelled, _ = tables
    result = invoke("distill", bundle_dir, "--data", labelled, "--out", tmp_path / "s", *args)
    assert result.exit_code == 2
    assert result.stderr.startswith("error: ") and message in result.stderr
    assert "Traceback" not in result.output
    assert not (tmp_path / "s").exists()
