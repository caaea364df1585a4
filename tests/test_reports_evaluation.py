"""The report's figures equal scikit-learn's and independent numpy computations on the same
predictions; baselines are real scikit-learn models on real tweets."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from voxpop.reports.baselines import fit_tfidf, majority_baseline, tfidf_output
from voxpop.reports.evaluation import ModelOutput, build_report

LABELS = ["negative", "neutral", "positive"]


def noisy_probs(rng, y, strength):
    logits = rng.normal(size=(len(y), len(LABELS)))
    logits[np.arange(len(y)), y] += strength
    probs = np.exp(logits)
    return probs / probs.sum(axis=1, keepdims=True)


@pytest.fixture
def case():
    rng = np.random.default_rng(7)
    y = rng.choice(3, size=300, p=[0.5, 0.35, 0.15])
    members = {
        "m1": ModelOutput(noisy_probs(rng, y, 2.0)),
        "m2": ModelOutput(noisy_probs(rng, y, 1.0)),
        "m3": ModelOutput(noisy_probs(rng, y, 0.5)),
    }
    soft = np.mean([m.probs for m in members.values()], axis=0)
    hard_pred = np.array(
        [
            np.bincount(col, minlength=3).argmax()
            for col in np.stack([m.predicted() for m in members.values()], 1)
        ]
    )
    votes = {"soft": ModelOutput(soft), "hard": ModelOutput(soft, pred=hard_pred)}
    baselines = {"majority": majority_baseline(y, n_rows=len(y), n_classes=3)}
    texts = [f"text {i}" for i in range(len(y))]
    report = build_report(
        y_true=y,
        labels=LABELS,
        votes=votes,
        members=members,
        baselines=baselines,
        texts=texts,
        ids=[f"id{i}" for i in range(len(y))],
        primary="soft",
        hardest=5,
    )
    return y, members, votes, report


@pytest.mark.parametrize(
    "section, name",
    [("votes", "soft"), ("votes", "hard"), ("members", "m2"), ("baselines", "majority")],
)
def test_metrics_equal_scikit_learn(case, section, name):
    y, members, votes, report = case
    output = {**members, **votes}.get(name) or majority_baseline(y, n_rows=len(y), n_classes=3)
    pred, probs = output.predicted(), output.probs
    got = report[section][name]
    assert got["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    assert got["macro_f1"] == pytest.approx(
        skm.f1_score(y, pred, average="macro", labels=[0, 1, 2])
    )
    assert got["weighted_f1"] == pytest.approx(skm.f1_score(y, pred, average="weighted"))
    assert got["log_loss"] == pytest.approx(skm.log_loss(y, probs, labels=[0, 1, 2]), rel=1e-6)
    precision, recall, f1, support = skm.precision_recall_fscore_support(
        y, pred, labels=[0, 1, 2], zero_division=0
    )
    for i, label in enumerate(LABELS):
        assert got["per_class"][label] == pytest.approx(
            {"precision": precision[i], "recall": recall[i], "f1": f1[i], "support": support[i]}
        )
    matrix = skm.confusion_matrix(y, pred, labels=[0, 1, 2])
    assert got["confusion_matrix"] == matrix.tolist()
    assert np.allclose(
        got["confusion_matrix_normalized"], matrix / matrix.sum(axis=1, keepdims=True)
    )


def test_hard_vote_uses_its_own_prediction_not_the_probability_argmax(case):
    y, _, votes, report = case
    assert report["votes"]["hard"]["accuracy"] == pytest.approx((votes["hard"].pred == y).mean())
    assert report["baselines"]["majority"]["predicted_classes"] == ["negative"]


def test_reliability_bins_account_for_every_row_and_reproduce_the_ece(case):
    y, _, votes, report = case
    bins = report["votes"]["soft"]["reliability"]
    assert sum(b["rows"] for b in bins) == len(y)
    ece = sum(b["rows"] * abs(b["accuracy"] - b["confidence"]) for b in bins if b["rows"]) / len(y)
    assert ece == pytest.approx(report["votes"]["soft"]["ece"])


def test_agreement_and_overrule_counts(case):
    y, members, votes, report = case
    agreement = report["agreement"]
    p1, p3 = members["m1"].predicted(), members["m3"].predicted()
    assert agreement["members"] == ["m1", "m2", "m3"]
    assert agreement["pairwise"][0][2] == pytest.approx((p1 == p3).mean())
    assert agreement["pairwise"][1][1] == 1.0
    overrule = agreement["vote_overrules_best_member"]["soft"]
    soft = votes["soft"].predicted()
    assert overrule["best_member"] == "m1"  # strongest signal
    assert overrule["rate"] == pytest.approx((soft != p1).mean())
    assert overrule["vote_right_member_wrong"] == int(((soft == y) & (p1 != y)).sum())
    assert overrule["vote_wrong_member_right"] == int(((soft != y) & (p1 == y)).sum())


def test_hardest_examples_are_the_most_confident_wrong_ones(case):
    y, _, votes, report = case
    soft = votes["soft"]
    wrong = np.flatnonzero(soft.predicted() != y)
    expected = wrong[np.argsort(-soft.probs.max(axis=1)[wrong])][:5]
    assert [e["id"] for e in report["hardest"]] == [f"id{i}" for i in expected]
    first = report["hardest"][0]
    assert first["true"] != first["predicted"]
    assert first["confidence"] == pytest.approx(soft.probs[expected[0]].max())


def test_majority_baseline_uses_training_priors():
    output = majority_baseline(np.array([2, 2, 1, 2]), n_rows=3, n_classes=3)
    assert output.predicted().tolist() == [2, 2, 2]
    assert output.probs[0].tolist() == [0.0, 0.25, 0.75]


@pytest.mark.parametrize(
    "data, rows, n_classes", [("tweets_df", 1200, 3), ("newsgroups_df", 600, 20)]
)
def test_tfidf_baseline_beats_majority_on_real_texts(request, data, rows, n_classes):
    # 3 classes of short tweets, and 20 of long newsgroup posts; the last quarter is the test part
    sample = request.getfixturevalue(data).sample(n=rows, random_state=0)
    labels = sorted(sample["label"].unique())
    assert len(labels) == n_classes
    y = sample["label"].map(labels.index).to_numpy()
    texts = sample["text"].tolist()
    n_test = rows // 4
    train, test = slice(0, rows - n_test), slice(rows - n_test, None)
    output = tfidf_output(fit_tfidf(texts[train], y[train]), texts[test], n_classes=n_classes)
    assert output.probs.shape == (n_test, n_classes)
    assert np.allclose(output.probs.sum(axis=1), 1.0)
    majority = majority_baseline(y[train], n_rows=n_test, n_classes=n_classes)
    f1 = skm.f1_score(y[test], output.predicted(), average="macro")
    assert f1 > skm.f1_score(y[test], majority.predicted(), average="macro") + 0.2


def test_tfidf_baseline_gives_zero_probability_to_classes_missing_from_training():
    texts = ["good great fine", "bad awful poor", "good fine nice", "awful bad horrid"] * 3
    y = np.array([2, 0, 2, 0] * 3)
    output = tfidf_output(fit_tfidf(texts, y), ["great good", "poor bad"], n_classes=3)
    assert output.probs[:, 1].tolist() == [0.0, 0.0]
    assert output.predicted().tolist() == [2, 0]
