"""Paired bootstrap of macro-F1 differences: the figures a report gives for 'is the vote better?'."""

from __future__ import annotations

import numpy as np
import pytest

from voxpop.ensemble.metrics import macro_f1
from voxpop.reports.evaluation import ModelOutput, build_report
from voxpop.reports.render import write_report
from voxpop.reports.significance import (
    RESAMPLES,
    SEED,
    bootstrap_scores,
    paired_difference,
    vote_comparisons,
)


def paired_bootstrap(y_true, pred_a, pred_b, n_classes, *, resamples=RESAMPLES, seed=SEED):
    """macro-F1(a) - macro-F1(b) with its interval, as a report compares two models."""
    scores = bootstrap_scores(
        y_true, {"a": pred_a, "b": pred_b}, n_classes, resamples=resamples, seed=seed
    )
    return paired_difference(y_true, pred_a, pred_b, scores["a"] - scores["b"], n_classes)


def noisy(y, accuracy, n_classes, rng):
    """Predictions equal to y on about `accuracy` of the rows, a random class elsewhere."""
    keep = rng.random(len(y)) < accuracy
    return np.where(keep, y, rng.integers(0, n_classes, len(y)))


def test_a_clearly_better_model_is_better_and_the_interval_holds_the_difference():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 3, 2000)
    strong, weak = noisy(y, 0.9, 3, rng), noisy(y, 0.6, 3, rng)
    result = paired_bootstrap(y, strong, weak, 3)
    assert result["difference"] == pytest.approx(macro_f1(y, strong, 3) - macro_f1(y, weak, 3))
    low, high = result["ci95"]
    assert 0 < low < result["difference"] < high
    assert result["share_a_better"] == 1.0
    swapped = paired_bootstrap(y, weak, strong, 3)
    assert swapped["ci95"][1] < 0 and swapped["share_a_better"] == 0.0


def test_near_equal_models_are_within_noise_and_identical_ones_differ_by_zero():
    rng = np.random.default_rng(2)
    y = rng.integers(0, 3, 500)
    a, b = noisy(y, 0.7, 3, rng), noisy(y, 0.7, 3, rng)
    result = paired_bootstrap(y, a, b, 3)
    assert result["ci95"][0] < 0 < result["ci95"][1]
    same = paired_bootstrap(y, a, a, 3)
    assert same["difference"] == 0 and same["ci95"] == [0.0, 0.0] and same["share_a_better"] == 0


def test_the_seed_fixes_the_resamples():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 3, 300)
    a, b = noisy(y, 0.8, 3, rng), noisy(y, 0.7, 3, rng)
    assert paired_bootstrap(y, a, b, 3, seed=5) == paired_bootstrap(y, a, b, 3, seed=5)
    assert (
        paired_bootstrap(y, a, b, 3, seed=5)["ci95"] != paired_bootstrap(y, a, b, 3, seed=6)["ci95"]
    )


def test_each_vote_is_compared_with_the_best_member_here_and_the_baselines_but_majority():
    rng = np.random.default_rng(4)
    y = rng.integers(0, 3, 800)
    members = {"m1": noisy(y, 0.5, 3, rng), "m2": noisy(y, 0.8, 3, rng)}
    comparisons = vote_comparisons(
        y,
        n_classes=3,
        votes={"soft": noisy(y, 0.85, 3, rng), "hard": noisy(y, 0.3, 3, rng)},
        members=members,
        baselines={"majority": np.zeros(800, dtype=int), "tfidf_logreg": noisy(y, 0.75, 3, rng)},
    )
    assert [(c["vote"], c["against"]) for c in comparisons] == [
        ("soft", "best member m2"),
        ("soft", "baseline tfidf_logreg"),
        ("hard", "best member m2"),
        ("hard", "baseline tfidf_logreg"),
    ]
    assert comparisons[2]["verdict"] == "worse"  # hard at 30% vs m2 at 80%
    assert comparisons[1]["difference"] > 0


def test_the_report_states_each_comparison(tmp_path):
    rng = np.random.default_rng(5)
    y = rng.integers(0, 3, 600)

    def output(accuracy):
        return ModelOutput(np.eye(3)[noisy(y, accuracy, 3, rng)] * 0.8 + 0.2 / 3)

    report = build_report(
        y_true=y,
        labels=["a", "b", "c"],
        votes={"soft": output(0.95)},
        members={"m1": output(0.5)},
        baselines={"tfidf_logreg": output(0.5)},
        texts=[str(i) for i in range(600)],
        ids=[str(i) for i in range(600)],
        primary="soft",
    )
    assert [c["verdict"] for c in report["comparisons"]] == ["better", "better"]
    write_report(report, tmp_path, formats=["md"], title="t")
    markdown = (tmp_path / "report.md").read_text()
    first = report["comparisons"][0]
    assert "## Is the vote better?" in markdown
    assert (
        f"| soft | best member m1 | {first['difference']:+.4f} | "
        f"[{first['ci95'][0]:+.4f}, {first['ci95'][1]:+.4f}] | 100% | better |"
    ) in markdown


def test_member_contributions_are_the_vote_minus_the_vote_without_that_member():
    rng = np.random.default_rng(6)
    y = rng.integers(0, 3, 400)

    def output(accuracy):
        return ModelOutput(np.eye(3)[noisy(y, accuracy, 3, rng)])

    vote, without_m1, without_m2 = output(0.8), output(0.6), output(0.85)
    report = build_report(
        y_true=y,
        labels=["a", "b", "c"],
        votes={"soft": vote},
        members={"m1": output(0.7), "m2": output(0.7)},
        baselines={},
        texts=[""] * 400,
        ids=[str(i) for i in range(400)],
        primary="soft",
        without_member={"m1": without_m1, "m2": without_m2},
    )
    contributions = report["member_contributions"]
    for member_id, without in (("m1", without_m1), ("m2", without_m2)):
        expected = macro_f1(y, without.predicted(), 3)
        assert contributions[member_id]["macro_f1_without"] == pytest.approx(expected)
        assert contributions[member_id]["adds"] == pytest.approx(
            macro_f1(y, vote.predicted(), 3) - expected
        )
    assert contributions["m1"]["adds"] > 0 > contributions["m2"]["adds"]
