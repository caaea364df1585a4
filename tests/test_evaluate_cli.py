"""`voxpop evaluate` end to end on a small real bundle (real Preprocessor, real ONNX members, real
ONNX Runtime) and real tweets, through the Typer app."""

from __future__ import annotations

import csv
import hashlib
import json
import shutil
import subprocess
import sys

import pandas as pd
import pytest
from sklearn import metrics as skm
from typer.testing import CliRunner

from bundle_factory import (  # noqa: F401
    bundle_dir,
    held_out_texts,
    rewrite_manifest,
    tweet_preprocessor,
    tweet_rows,
)
from voxpop.ensemble import Ensemble
from voxpop.serving_cli import app

LABELS = ["negative", "neutral", "positive"]


def run(*args: str):
    return CliRunner().invoke(app, ["evaluate", *map(str, args)])


@pytest.fixture(scope="module")
def bundle(tmp_path_factory, bundle_dir, tweet_rows):
    """The factory bundle plus a recorded baseline_train.csv (600 of the preprocessor's rows).
    CSVs here quote every field: 1,564 tweets hold a bare carriage return, which pandas' default
    writer leaves unquoted and its reader then splits into two rows."""
    copy = tmp_path_factory.mktemp("eval") / "bundle"
    shutil.copytree(bundle_dir, copy)
    tweet_rows.iloc[:600][["text", "label"]].to_csv(
        copy / "baseline_train.csv", index=False, quoting=csv.QUOTE_ALL
    )
    files = json.loads((copy / "ensemble.json").read_text())["files"]
    files["baseline_train.csv"] = hashlib.sha256(
        (copy / "baseline_train.csv").read_bytes()
    ).hexdigest()
    rewrite_manifest(copy, baseline_train="baseline_train.csv", files=files)
    return copy


@pytest.fixture(scope="module")
def external(tmp_path_factory, tweet_rows):
    """300 held-out tweets with label words of another case and 7 rows labelled 'irrelevant'."""
    rows = tweet_rows.iloc[1500:1800].reset_index(drop=True)
    labels = rows["label"].str.upper().to_numpy(dtype=object)
    labels[[3, 50, 51, 120, 200, 201, 299]] = "irrelevant"
    path = tmp_path_factory.mktemp("ext") / "airline.csv"
    pd.DataFrame({"tweet": rows["text"], "sentiment": labels}).to_csv(
        path, index=False, quoting=csv.QUOTE_ALL
    )
    return path


def test_report_figures_equal_scikit_learn_on_an_independent_prediction(tmp_path, bundle, external):
    result = run(
        bundle,
        external,
        "--out",
        tmp_path / "r",
        "--text-col",
        "tweet",
        "--label-col",
        "sentiment",
        "--hardest",
        "5",
    )
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    assert sorted(p.name for p in (tmp_path / "r").iterdir()) == [
        "confusion_matrix.png",
        "per_class_f1.png",
        "reliability.png",
        "report.html",
        "report.json",
        "report.md",
    ]

    data = report["data"]
    assert (data["n_rows"], data["n_evaluated"], data["n_unmapped"]) == (300, 293, 7)
    assert data["unmapped_labels"] == {"irrelevant": 7}
    assert data["unmapped_rows"] == [3, 50, 51, 120, 200, 201, 299]

    frame = pd.read_csv(external)
    kept = frame["sentiment"] != "irrelevant"
    y = frame.loc[kept, "sentiment"].str.lower().map(LABELS.index).to_numpy()
    ensemble = Ensemble.load(bundle, fused=False)
    for rule in ("soft", "hard", "weighted"):
        prediction = ensemble.predict(frame.loc[kept, "tweet"].tolist(), voting=rule)
        got = report["votes"][rule]
        assert got["macro_f1"] == pytest.approx(
            skm.f1_score(y, prediction.label_ids, average="macro")
        )
        assert got["confusion_matrix"] == skm.confusion_matrix(y, prediction.label_ids).tolist()
    member = prediction.member_probs["m2"]
    assert report["members"]["m2"]["log_loss"] == pytest.approx(skm.log_loss(y, member), rel=1e-5)
    assert report["primary"] == "weighted"  # the bundle's default vote
    assert set(report["baselines"]) == {"majority", "tfidf_logreg"}
    assert report["data"]["baseline_train"].endswith("baseline_train.csv")
    assert len(report["hardest"]) == 5
    for name in ("soft vote", "member m3", "baseline tfidf_logreg"):
        assert name in result.stdout
    manifest = json.loads((bundle / "ensemble.json").read_text())
    families = {m["id"]: m["family"] for m in manifest["members"]}
    assert report["data"]["member_families"] == families
    assert f"member m3 ({families['m3']})" in result.stdout

    # What each member adds: the weighted vote re-run without it, by an independent prediction.
    texts = frame.loc[kept, "tweet"].tolist()
    for left_out in ("m1", "m2", "m3"):
        others = [m for m in ("m1", "m2", "m3") if m != left_out]
        without = ensemble.predict(texts, voting="weighted", members=others).label_ids
        expected = skm.f1_score(y, without, average="macro")
        got = report["member_contributions"][left_out]
        assert got["macro_f1_without"] == pytest.approx(expected)
        assert got["adds"] == pytest.approx(report["votes"]["weighted"]["macro_f1"] - expected)
    # Each vote against the best member here and the TF-IDF baseline, with a bootstrap interval.
    best = max(report["members"], key=lambda m: report["members"][m]["macro_f1"])
    against = {(c["vote"], c["against"]) for c in report["comparisons"]}
    assert against == {
        (rule, rival)
        for rule in ("weighted", "soft", "hard")
        for rival in (f"best member {best}", "baseline tfidf_logreg")
    }
    for c in report["comparisons"]:
        assert c["ci95"][0] <= c["difference"] <= c["ci95"][1]
        line = (
            f"  {c['vote']} vote - {c['against']}: {c['difference']:+.4f} "
            f"[{c['ci95'][0]:+.4f}, {c['ci95'][1]:+.4f}] {c['verdict']}"
        )
        assert (line in result.stdout.splitlines()) == (c["vote"] == "weighted")
    assert "macro-F1 gaps [95% interval]:" in result.stdout
    markdown = (tmp_path / "r" / "report.md").read_text()
    assert "## Is the vote better?" in markdown and "## What each member adds" in markdown


def test_label_map_and_several_inputs_write_a_summary(tmp_path, bundle, external):
    other = tmp_path / "other.csv"
    frame = pd.read_csv(external)
    frame["sentiment"] = frame["sentiment"].replace({"POSITIVE": "pos", "NEGATIVE": "neg"})
    frame.to_csv(other, index=False, quoting=csv.QUOTE_ALL)
    result = run(
        bundle,
        external,
        other,
        "--out",
        tmp_path / "r",
        "--text-col",
        "tweet",
        "--label-col",
        "sentiment",
        "--label-map",
        "pos=positive,neg=negative",
        "--voting",
        "soft",
        "--no-baseline",
        "--report-format",
        "json",
    )
    assert result.exit_code == 0, result.output
    first = json.loads((tmp_path / "r" / "airline" / "report.json").read_text())
    second = json.loads((tmp_path / "r" / "other" / "report.json").read_text())
    assert second["data"]["mapping"] == {"NEUTRAL": "neutral", "neg": "negative", "pos": "positive"}
    assert second["votes"]["soft"] == first["votes"]["soft"]  # same rows, same labels once mapped
    assert list(first["votes"]) == ["soft"] and list(first["baselines"]) == ["majority"]
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert [row["input"] for row in summary["inputs"]] == ["airline", "other"]
    assert not (tmp_path / "r" / "airline" / "report.md").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["--voting", "soft,majority"],
            "error: --voting: majority not valid (choose from soft, hard, weighted, stack, comma-separated)",
        ),
        (
            ["--label-map", "irrelevant=spam"],
            "error: --label-map: target label(s) 'spam' are not in the bundle (bundle labels: "
            "negative, neutral, positive)",
        ),
        (["--label-col", "mood"], "error: {input}: column 'mood'"),
        (
            ["--report-format", "pdf"],
            "error: --report-format: pdf not valid (choose from md, html, json",
        ),
        (
            ["--format", "xlsx"],
            "error: --format 'xlsx' is not a table format (choose from csv, tsv, parquet, jsonl)",
        ),
    ],
)
def test_bad_options_are_one_line_errors(tmp_path, bundle, external, args, message):
    base = ["--text-col", "tweet", "--label-col", "sentiment", "--no-baseline"]
    result = run(bundle, external, "--out", tmp_path / "r", *base, *args)
    assert result.exit_code == 2
    assert result.stderr.startswith(message.format(input=external))
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()


def test_out_naming_an_existing_file_is_a_one_line_error_before_any_work(
    tmp_path, bundle, external
):
    target = tmp_path / "report.txt"
    target.write_text("keep me")
    result = run(
        bundle,
        external,
        "--out",
        target,
        "--text-col",
        "tweet",
        "--label-col",
        "sentiment",
        "--no-baseline",
    )
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {target}: exists and is not a folder")
    assert target.read_text() == "keep me"


def test_a_rerun_into_the_same_folder_leaves_only_its_own_reports(tmp_path, bundle, external):
    out = tmp_path / "r"
    options = [
        "--text-col",
        "tweet",
        "--label-col",
        "sentiment",
        "--no-baseline",
        "--voting",
        "soft",
    ]
    other = tmp_path / "other.csv"
    shutil.copyfile(external, other)
    assert run(bundle, external, other, "--out", out, *options).exit_code == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "airline",
        "other",
        "summary.json",
        "summary.md",
    ]
    (out / "notes.txt").write_text("the user's own")

    # One input now: the inputs' folders and the summary are stale; the user's file stays.
    assert run(bundle, external, "--out", out, *options).exit_code == 0
    plots = ["confusion_matrix.png", "per_class_f1.png", "reliability.png"]
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["notes.txt", *plots, "report.html", "report.json", "report.md"]
    )

    # Fewer formats: the earlier run's Markdown and HTML go.
    assert run(bundle, external, "--out", out, *options, "--report-format", "json").exit_code == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(["notes.txt", *plots, "report.json"])
    assert (out / "notes.txt").read_text() == "the user's own"


def test_no_label_matching_the_bundle_says_how_to_map(tmp_path, bundle, external):
    frame = pd.read_csv(external).assign(sentiment="joy")
    path = tmp_path / "emotions.csv"
    frame.to_csv(path, index=False, quoting=csv.QUOTE_ALL)
    result = run(
        bundle,
        path,
        "--out",
        tmp_path / "r",
        "--text-col",
        "tweet",
        "--label-col",
        "sentiment",
        "--no-baseline",
    )
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        f"error: {path}: no label maps onto the bundle's labels (found 'joy'; bundle labels: "
        "negative, neutral, positive); map them with --label-map external=bundle_label,..."
    )


def test_help_explains_every_option():
    result = CliRunner().invoke(app, ["evaluate", "--help"])
    assert result.exit_code == 0
    for option in (
        "--out",
        "--text-col",
        "--label-col",
        "--label-map",
        "--voting",
        "--baseline",
        "--baseline-train",
        "--format",
        "--report-format",
        "--feature-cols",
        "--hardest",
        "Example:",
    ):
        assert option in result.stdout


def test_evaluate_imports_no_tensorflow_or_ray(tmp_path, bundle, external):
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from voxpop.serving_cli import app\n"
        f"r = CliRunner().invoke(app, ['evaluate', {str(bundle)!r}, {str(external)!r}, '--out', "
        f"{str(tmp_path / 'r')!r}, '--text-col', 'tweet', '--label-col', 'sentiment', "
        "'--no-baseline', '--voting', 'soft'])\n"
        "assert r.exit_code == 0, r.output\n"
        "print(','.join(m for m in ('tensorflow', 'keras', 'ray', 'tf2onnx') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ""
