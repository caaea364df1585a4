"""Classification metrics in numpy, equal to scikit-learn's (which serving must not import).

The one implementation of these figures for serving and reports: `voxpop.models` may import
nothing of voxpop and uses scikit-learn's own F1 (tests hold both to scikit-learn). Labels are
class indices 0..n_classes-1. A class with no true and no predicted rows gets precision/recall/F1
0, as scikit-learn does with `labels=range(n_classes)` and its default `zero_division`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

ECE_BINS = 15


def confusion_matrix(y_true, y_pred, n_classes: int) -> np.ndarray:
    """Counts [true class, predicted class] as int64 [n_classes, n_classes]."""
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(y_pred, dtype=np.int64)
    flat = np.bincount(y_true * n_classes + y_pred, minlength=n_classes * n_classes)
    return flat.reshape(n_classes, n_classes)


def _safe_divide(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    # scikit-learn's zero_division="warn" behaves as 0 where the denominator is 0.
    out = np.zeros_like(numerator, dtype=np.float64)
    np.divide(numerator, denominator, out=out, where=denominator > 0)
    return out


def _f1(true_pos: np.ndarray, support: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    # F1 = 2tp / (2tp + fp + fn): defined (as 0) even where precision or recall is not.
    return _safe_divide(2 * true_pos.astype(np.float64), (support + predicted).astype(np.float64))


def per_class_scores(y_true, y_pred, n_classes: int) -> dict[str, np.ndarray]:
    """precision, recall, f1 (float64 [n_classes]) and support (int64 [n_classes])."""
    matrix = confusion_matrix(y_true, y_pred, n_classes)
    true_pos = np.diag(matrix).astype(np.float64)
    support = matrix.sum(axis=1)
    predicted = matrix.sum(axis=0)
    precision = _safe_divide(true_pos, predicted.astype(np.float64))
    recall = _safe_divide(true_pos, support.astype(np.float64))
    return {
        "precision": precision,
        "recall": recall,
        "f1": _f1(true_pos, support, predicted),
        "support": support,
    }


def macro_f1(y_true, y_pred, n_classes: int):
    """Unweighted mean of the per-class F1 over all n_classes classes.

    For label arrays [n] a float; for [k, n] (k label rows, such as bootstrap resamples) the
    macro-F1 of each row, float64 [k], computed at once.
    """
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(y_pred, dtype=np.int64)
    rows, preds = (y_true[None], y_pred[None]) if y_true.ndim == 1 else (y_true, y_pred)
    # Class c of row r counts at index r * n_classes + c: one bincount for all rows.
    offset = np.arange(len(rows))[:, None] * n_classes

    def counts(ids: np.ndarray) -> np.ndarray:
        return np.bincount(ids.ravel(), minlength=len(rows) * n_classes).reshape(-1, n_classes)

    true_pos = counts((offset + rows)[preds == rows])
    scores = _f1(true_pos, counts(offset + rows), counts(offset + preds)).mean(axis=1)
    return float(scores[0]) if y_true.ndim == 1 else scores


def log_loss(y_true, probs) -> float:
    """Mean negative log probability of the true class, clipped to [eps, 1-eps] of probs' dtype."""
    probs = np.asarray(probs)
    if not np.issubdtype(probs.dtype, np.floating):
        probs = probs.astype(np.float64)
    eps = np.finfo(probs.dtype).eps
    true_probs = probs[np.arange(len(probs)), np.asarray(y_true, dtype=np.int64)]
    return float(-np.log(np.clip(true_probs, eps, 1 - eps)).mean())


def confidence_bins(confidence, *, n_bins: int = ECE_BINS) -> np.ndarray:
    """The calibration bin of each confidence, int64 [n]: bins are (i/n_bins, (i+1)/n_bins], the
    first also holds 0 (the ECE's and the reliability diagram's)."""
    confidence = np.asarray(confidence, dtype=np.float64)
    return np.clip(np.ceil(confidence * n_bins).astype(np.int64) - 1, 0, n_bins - 1)


def expected_calibration_error(y_true, probs, *, n_bins: int = ECE_BINS) -> float:
    """ECE: the row-weighted mean |accuracy - confidence| over equal-width confidence bins
    (`confidence_bins`); confidence is the top probability."""
    probs = np.asarray(probs, dtype=np.float64)
    confidence = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == np.asarray(y_true)).astype(np.float64)
    bins = confidence_bins(confidence, n_bins=n_bins)
    gap_per_bin = np.bincount(bins, weights=correct - confidence, minlength=n_bins)
    return float(np.abs(gap_per_bin).sum() / max(len(probs), 1))


def classification_metrics(y_true, y_pred, probs=None, labels: Sequence[str] | None = None) -> dict:
    """Accuracy, macro/weighted F1, per-class scores, confusion matrix, and (given probs)
    log loss and ECE, as a JSON-ready dict.

    `y_true`/`y_pred` are class indices; `labels` names the classes (default "0".."C-1",
    C taken from probs, else from the largest index seen).
    """
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(y_pred, dtype=np.int64)
    n_classes = _n_classes(y_true, y_pred, probs, labels)
    labels = list(labels) if labels is not None else [str(i) for i in range(n_classes)]
    scores = per_class_scores(y_true, y_pred, n_classes)
    support = scores["support"]
    result = {
        "n_rows": int(len(y_true)),
        "accuracy": float((y_true == y_pred).mean()) if len(y_true) else 0.0,
        "macro_f1": float(scores["f1"].mean()),
        "weighted_f1": float((scores["f1"] * support).sum() / max(support.sum(), 1)),
        "per_class": {
            label: {
                "precision": float(scores["precision"][i]),
                "recall": float(scores["recall"][i]),
                "f1": float(scores["f1"][i]),
                "support": int(support[i]),
            }
            for i, label in enumerate(labels)
        },
        "labels": labels,
        "confusion_matrix": confusion_matrix(y_true, y_pred, n_classes).tolist(),
    }
    if probs is not None:
        result["log_loss"] = log_loss(y_true, probs)
        result["ece"] = expected_calibration_error(y_true, probs)
    return result


def _n_classes(y_true, y_pred, probs, labels) -> int:
    if labels is not None:
        return len(labels)
    if probs is not None:
        return int(np.shape(probs)[1])
    return int(max(y_true.max(initial=-1), y_pred.max(initial=-1)) + 1)
