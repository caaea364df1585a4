"""Each warning fires on a constructed case and stays quiet on a healthy one."""

from __future__ import annotations

import numpy as np
import pytest

from voxpop.reports.baselines import majority_baseline
from voxpop.reports.evaluation import ModelOutput, build_report

LABELS = ["a", "b", "c", "d"]
N = 400


def one_hot_probs(pred, confidence=0.7):
    probs = np.full((len(pred), len(LABELS)), (1 - confidence) / (len(LABELS) - 1))
    probs[np.arange(len(pred)), pred] = confidence
    return probs


def corrupt(y, share, seed):
    """y with `share` of the rows moved to another class."""
    rng = np.random.default_rng(seed)
    pred = y.copy()
    flip = rng.random(len(y)) < share
    pred[flip] = (y[flip] + rng.integers(1, len(LABELS), flip.sum())) % len(LABELS)
    return pred


def report_for(member_preds, vote_pred, *, oov_rates=None, tfidf_pred=None):
    y = np.arange(N) % len(LABELS)
    members = {f"m{i}": ModelOutput(one_hot_probs(p)) for i, p in enumerate(member_preds)}
    baselines = {"majority": majority_baseline(y[:7], n_rows=N, n_classes=len(LABELS))}
    if tfidf_pred is not None:
        baselines["tfidf_logreg"] = ModelOutput(one_hot_probs(tfidf_pred))
    return build_report(
        y_true=y,
        labels=LABELS,
        members=members,
        votes={"soft": ModelOutput(one_hot_probs(vote_pred))},
        baselines=baselines,
        texts=[""] * N,
        ids=[str(i) for i in range(N)],
        primary="soft",
        oov_rates=oov_rates,
    )


def checks(report):
    return sorted({w["check"] for w in report["warnings"]})


@pytest.fixture
def y():
    return np.arange(N) % len(LABELS)


def test_healthy_ensemble_has_no_warnings(y):
    report = report_for(
        [corrupt(y, 0.3, 1), corrupt(y, 0.35, 2)], corrupt(y, 0.2, 3), oov_rates=np.full(N, 0.1)
    )
    assert report["warnings"] == []


def test_member_predicting_fewer_than_half_the_classes(y):
    collapsed = np.where(y == 0, 0, 1)  # 2 of 4 classes is still "half": no warning
    assert "collapsed" not in checks(report_for([corrupt(y, 0.3, 1), collapsed], y))
    collapsed = np.zeros(N, dtype=np.int64)  # one class only
    report = report_for([corrupt(y, 0.3, 1), collapsed], y)
    assert checks(report) == ["collapsed", "near_majority"]
    assert report["warnings"][0]["message"] == "member m1 predicts only 1 of 4 classes (a)"


def test_macro_f1_within_five_points_of_majority(y):
    majority_f1 = report_for([y], y)["baselines"]["majority"]["macro_f1"]
    report = report_for([y, corrupt(y, 0.9, 4)], y)
    near = [w["message"] for w in report["warnings"] if w["check"] == "near_majority"]
    assert report["members"]["m1"]["macro_f1"] < majority_f1 + 0.05
    assert near == [
        f"member m1 macro-F1 {report['members']['m1']['macro_f1']:.3f} is within 0.05 "
        f"of the majority-class baseline ({majority_f1:.3f})"
    ]


def test_vote_worse_than_best_member(y):
    report = report_for([corrupt(y, 0.1, 1), corrupt(y, 0.3, 2)], corrupt(y, 0.25, 3))
    assert checks(report) == ["vote_below_best_member"]
    vote_f1, best_f1 = report["votes"]["soft"]["macro_f1"], report["members"]["m0"]["macro_f1"]
    assert vote_f1 < best_f1
    assert report["warnings"][0]["message"] == (
        f"soft vote macro-F1 {vote_f1:.3f} is below its best member m0 ({best_f1:.3f})"
    )


def test_vote_beaten_by_the_tfidf_baseline_beyond_the_noise(y):
    members, vote = [corrupt(y, 0.3, 1), corrupt(y, 0.35, 2)], corrupt(y, 0.2, 3)
    close = report_for(members, vote, tfidf_pred=corrupt(y, 0.18, 4))  # a gap within noise
    assert "vote_worse_than_baseline" not in checks(close)
    report = report_for(members, vote, tfidf_pred=corrupt(y, 0.05, 4))
    assert checks(report) == ["vote_worse_than_baseline"]
    gap = next(c for c in report["comparisons"] if c["against"] == "baseline tfidf_logreg")
    assert gap["ci95"][1] < 0
    assert report["warnings"][0]["message"] == (
        f"soft vote scores below baseline tfidf_logreg beyond the noise: {gap['difference']:+.3f} "
        f"macro-F1 (95% interval [{gap['ci95'][0]:+.3f}, {gap['ci95'][1]:+.3f}])"
    )


def test_many_texts_mostly_out_of_vocabulary(y):
    rates = np.where(np.arange(N) < N * 0.4, 0.8, 0.05)  # 40% of texts are 80% unknown words
    report = report_for([corrupt(y, 0.3, 1)], corrupt(y, 0.2, 3), oov_rates=rates)
    assert checks(report) == ["domain_shift"]
    assert report["warnings"][0]["message"].startswith("40% of texts are more than 50% out-of-voc")
    few = np.where(np.arange(N) < N * 0.1, 0.8, 0.05)
    assert report_for([corrupt(y, 0.3, 1)], corrupt(y, 0.2, 3), oov_rates=few)["warnings"] == []
