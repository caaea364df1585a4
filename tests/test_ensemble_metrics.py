"""voxpop.ensemble.metrics against scikit-learn (the reference) on random and edge-case labels."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from voxpop.ensemble.metrics import (
    classification_metrics,
    expected_calibration_error,
    macro_f1,
)


def _random_case(seed: int, n_rows: int = 500, n_classes: int = 4):
    rng = np.random.default_rng(seed)
    probs = rng.dirichlet(np.ones(n_classes), size=n_rows).astype(np.float32)
    y_true = rng.integers(0, n_classes, n_rows)
    # predictions correlated with the truth, so scores are not all near chance
    y_pred = np.where(rng.random(n_rows) < 0.6, y_true, probs.argmax(axis=1))
    return y_true, y_pred, probs


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_classification_metrics_equal_sklearn(seed):
    y_true, y_pred, probs = _random_case(seed)
    labels = ["a", "b", "c", "d"]
    got = classification_metrics(y_true, y_pred, probs, labels)
    classes = list(range(4))
    assert got["accuracy"] == pytest.approx(skm.accuracy_score(y_true, y_pred), abs=1e-12)
    assert got["macro_f1"] == pytest.approx(
        skm.f1_score(y_true, y_pred, average="macro", labels=classes), abs=1e-12
    )
    assert got["weighted_f1"] == pytest.approx(
        skm.f1_score(y_true, y_pred, average="weighted", labels=classes), abs=1e-12
    )
    precision, recall, f1, support = skm.precision_recall_fscore_support(
        y_true, y_pred, labels=classes, zero_division=0
    )
    for i, label in enumerate(labels):
        row = got["per_class"][label]
        assert row["precision"] == pytest.approx(precision[i], abs=1e-12)
        assert row["recall"] == pytest.approx(recall[i], abs=1e-12)
        assert row["f1"] == pytest.approx(f1[i], abs=1e-12)
        assert row["support"] == support[i]
    assert got["confusion_matrix"] == skm.confusion_matrix(y_true, y_pred, labels=classes).tolist()
    probs64 = probs.astype(np.float64)
    probs64 /= probs64.sum(axis=1, keepdims=True)
    assert got["log_loss"] == pytest.approx(skm.log_loss(y_true, probs64, labels=classes), rel=1e-5)


def test_macro_f1_counts_absent_classes_as_zero_like_sklearn():
    y_true = np.array([0, 0, 1, 1, 1])
    y_pred = np.array([0, 1, 1, 1, 0])  # class 2 never seen nor predicted
    expected = skm.f1_score(y_true, y_pred, average="macro", labels=[0, 1, 2], zero_division=0)
    assert macro_f1(y_true, y_pred, 3) == pytest.approx(expected, abs=1e-12)
    assert macro_f1(y_true, y_pred, 3) < macro_f1(y_true, y_pred, 2)


def test_macro_f1_of_label_rows_scores_each_row_like_sklearn_also_with_absent_classes():
    # The bootstrap of a report scores many resamples at once this way.
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, size=(6, 40))
    pred = rng.integers(0, 4, size=(6, 40))
    y[0] = np.where(y[0] == 3, 0, y[0])  # class 3 absent from the truth of row 0 ...
    pred[1] = np.where(pred[1] == 2, 1, pred[1])  # ... and class 2 never predicted in row 1
    expected = [
        skm.f1_score(y[i], pred[i], average="macro", labels=range(5), zero_division=0)
        for i in range(6)
    ]  # class 4 appears nowhere
    np.testing.assert_allclose(macro_f1(y, pred, 5), expected, rtol=0, atol=1e-12)


def test_log_loss_clips_zero_probability_like_sklearn():
    y_true = np.array([0, 1])
    probs = np.array([[1.0, 0.0], [1.0, 0.0]])
    got = classification_metrics(y_true, np.array([0, 0]), probs, ["x", "y"])["log_loss"]
    assert got == pytest.approx(skm.log_loss(y_true, probs), rel=1e-9)
    assert np.isfinite(got)


def test_ece_equals_direct_binned_computation():
    y_true, _, probs = _random_case(3, n_rows=2000, n_classes=3)
    confidence = probs.max(axis=1).astype(np.float64)
    correct = probs.argmax(axis=1) == y_true
    edges = np.linspace(0, 1, 16)
    expected = 0.0
    for low, high in zip(edges[:-1], edges[1:]):
        in_bin = (confidence > low) & (confidence <= high)
        if in_bin.any():
            expected += in_bin.mean() * abs(correct[in_bin].mean() - confidence[in_bin].mean())
    assert expected_calibration_error(y_true, probs) == pytest.approx(expected, abs=1e-9)
    perfectly_calibrated = np.array([[1.0, 0.0], [0.0, 1.0]])
    assert expected_calibration_error(np.array([0, 1]), perfectly_calibrated) == 0.0
