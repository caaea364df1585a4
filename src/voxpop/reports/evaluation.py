"""Everything a report shows, computed from arrays into one plain, JSON-ready dict.

The core (`build_report`) needs only true labels and each model's probabilities, so it is tested
without a bundle; `voxpop.reports.bundle_eval` gets those arrays from an Ensemble.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

import numpy as np

from voxpop.ensemble.metrics import ECE_BINS, classification_metrics, confidence_bins, macro_f1
from voxpop.reports.options import HARDEST
from voxpop.reports.significance import vote_comparisons
from voxpop.reports.warnings import find_warnings

SCHEMA_VERSION = 1
MOSTLY_OOV = 0.5  # a text is "mostly out-of-vocabulary" above this share of unknown tokens


@dataclass(frozen=True)
class ModelOutput:
    """One model's answers on the evaluated rows: probabilities [n, C] and predicted class ids
    (default: argmax; a hard vote's prediction is its vote winner, not the probability argmax)."""

    probs: np.ndarray
    pred: np.ndarray | None = None

    def predicted(self) -> np.ndarray:
        """Predicted class ids, int64 [n]."""
        if self.pred is not None:
            return np.asarray(self.pred, dtype=np.int64)
        return np.asarray(self.probs).argmax(axis=1).astype(np.int64)

    def confidence(self) -> np.ndarray:
        """Probability the model gives its predicted class, float64 [n]."""
        probs = np.asarray(self.probs, dtype=np.float64)
        return probs[np.arange(len(probs)), self.predicted()]


def model_metrics(y_true: np.ndarray, output: ModelOutput, labels: list[str]) -> dict:
    """classification_metrics plus the row-normalised confusion matrix, the classes the model
    predicts at all, and reliability-diagram bins."""
    pred = output.predicted()
    metrics = classification_metrics(y_true, pred, output.probs, labels)
    counts = np.asarray(metrics["confusion_matrix"], dtype=np.float64)
    row_totals = counts.sum(axis=1, keepdims=True)
    metrics["confusion_matrix_normalized"] = np.divide(
        counts, row_totals, out=np.zeros_like(counts), where=row_totals > 0
    ).tolist()
    metrics["predicted_classes"] = [labels[i] for i in np.unique(pred).tolist()]
    metrics["reliability"] = reliability_bins(y_true, output)
    return metrics


def reliability_bins(y_true: np.ndarray, output: ModelOutput, *, n_bins: int = ECE_BINS) -> list:
    """Per confidence bin (same bins as the ECE): rows, mean confidence and accuracy."""
    confidence = output.confidence()
    correct = output.predicted() == np.asarray(y_true)
    bins = confidence_bins(confidence, n_bins=n_bins)
    result = []
    for index in range(n_bins):
        in_bin = bins == index
        result.append(
            {
                "lower": index / n_bins,
                "upper": (index + 1) / n_bins,
                "rows": int(in_bin.sum()),
                "confidence": float(confidence[in_bin].mean()) if in_bin.any() else None,
                "accuracy": float(correct[in_bin].mean()) if in_bin.any() else None,
            }
        )
    return result


def member_agreement(
    y_true: np.ndarray,
    members: dict[str, ModelOutput],
    votes: dict[str, ModelOutput],
    n_classes: int,
) -> dict:
    """Pairwise share of rows where two members predict the same class, and per vote how often it
    overrules the member that scores best here (and whether that helped or hurt)."""
    ids = list(members)
    preds = {member_id: output.predicted() for member_id, output in members.items()}
    matrix = np.eye(len(ids))
    for (i, a), (j, b) in combinations(enumerate(ids), 2):
        matrix[i, j] = matrix[j, i] = float((preds[a] == preds[b]).mean())
    result = {"members": ids, "pairwise": matrix.tolist(), "vote_overrules_best_member": {}}
    if not ids:
        return result
    best = max(ids, key=lambda member_id: macro_f1(y_true, preds[member_id], n_classes))
    best_right = preds[best] == y_true
    for rule, output in votes.items():
        vote_pred = output.predicted()
        overruled = vote_pred != preds[best]
        result["vote_overrules_best_member"][rule] = {
            "best_member": best,
            "rate": float(overruled.mean()),
            "vote_right_member_wrong": int((overruled & ~best_right & (vote_pred == y_true)).sum()),
            "vote_wrong_member_right": int((overruled & best_right).sum()),
        }
    return result


def member_contributions(
    y_true: np.ndarray, vote: ModelOutput, without_member: dict[str, ModelOutput], n_classes: int
) -> dict:
    """What each member adds to the primary vote here: member id -> {"macro_f1_without": the
    vote's macro-F1 with that member left out, "adds": the vote's macro-F1 minus that}."""
    with_all = macro_f1(y_true, vote.predicted(), n_classes)
    result = {}
    for member_id, output in without_member.items():
        without = macro_f1(y_true, output.predicted(), n_classes)
        result[member_id] = {"macro_f1_without": without, "adds": with_all - without}
    return result


def oov_summary(oov_rates: np.ndarray | None) -> dict | None:
    """Out-of-vocabulary share per text, summarised; None when unknown."""
    if oov_rates is None:
        return None
    rates = np.asarray(oov_rates, dtype=np.float64)
    return {
        "mean_rate": float(rates.mean()) if len(rates) else 0.0,
        "mostly_oov_threshold": MOSTLY_OOV,
        "share_mostly_oov": float((rates > MOSTLY_OOV).mean()) if len(rates) else 0.0,
        "per_text": [round(float(rate), 4) for rate in rates],
    }


def hardest_examples(
    y_true: np.ndarray,
    output: ModelOutput,
    *,
    texts: list[str],
    ids: list[str],
    labels: list[str],
    limit: int,
    oov_rates: np.ndarray | None = None,
) -> list[dict]:
    """The `limit` wrong predictions made with the highest confidence, most confident first."""
    pred = output.predicted()
    confidence = output.confidence()
    wrong = np.flatnonzero(pred != y_true)
    order = wrong[np.argsort(-confidence[wrong], kind="stable")][:limit]
    return [
        {
            "id": str(ids[i]),
            "text": texts[i],
            "true": labels[y_true[i]],
            "predicted": labels[pred[i]],
            "confidence": float(confidence[i]),
            "oov_rate": None if oov_rates is None else float(oov_rates[i]),
        }
        for i in order.tolist()
    ]


def build_report(
    *,
    y_true: np.ndarray,
    labels: list[str],
    votes: dict[str, ModelOutput],
    members: dict[str, ModelOutput],
    baselines: dict[str, ModelOutput],
    texts: list[str],
    ids: list[str],
    primary: str,
    oov_rates: np.ndarray | None = None,
    hardest: int = HARDEST,
    data: dict | None = None,
    without_member: dict[str, ModelOutput] | None = None,
) -> dict:
    """The whole report as one JSON-ready dict with stable keys.

    `votes`, `members` and `baselines` map a name to that model's outputs on the evaluated rows
    (all aligned with `y_true`, `texts`, `ids`); `primary` names the vote whose hardest examples
    are listed. `data` is the caller's account of the input (rows, label mapping).
    `without_member` maps a member id to the primary vote's outputs with that member left out.
    """
    if primary not in votes:
        raise ValueError(f"primary vote {primary!r} not among {sorted(votes)}")
    y_true = np.asarray(y_true, dtype=np.int64)
    sections = {"votes": votes, "members": members, "baselines": baselines}
    report = {
        "schema_version": SCHEMA_VERSION,
        "labels": list(labels),
        "data": data or {},
        "primary": primary,
        **{
            section: {
                name: model_metrics(y_true, output, labels) for name, output in models.items()
            }
            for section, models in sections.items()
        },
        "agreement": member_agreement(y_true, members, votes, len(labels)),
        "comparisons": vote_comparisons(
            y_true,
            n_classes=len(labels),
            **{
                section: {name: output.predicted() for name, output in models.items()}
                for section, models in sections.items()
            },
        ),
        "member_contributions": member_contributions(
            y_true, votes[primary], without_member or {}, len(labels)
        ),
        "oov": oov_summary(oov_rates),
        "hardest": hardest_examples(
            y_true,
            votes[primary],
            texts=texts,
            ids=ids,
            labels=labels,
            limit=hardest,
            oov_rates=oov_rates,
        ),
    }
    report["warnings"] = find_warnings(report)
    return report
