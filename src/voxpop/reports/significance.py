"""Is a vote really better than its best member or the TF-IDF baseline, or is the gap noise?

A test set of a few thousand rows moves macro-F1 by about a point from one sample to the next, so
a report states each difference with a 95% interval from a paired bootstrap: the evaluated rows
are resampled with replacement, both models are scored on the same resample, and the interval is
taken from the resampled differences (Koehn 2004; Berg-Kirkpatrick et al. 2012).
"""

from __future__ import annotations

import numpy as np

from voxpop.ensemble.metrics import macro_f1

RESAMPLES = 1000
SEED = 0
CHUNK = 50  # resamples scored at once (one `macro_f1` call): CHUNK x n_rows indices in memory


def bootstrap_scores(
    y_true, preds: dict, n_classes: int, *, resamples: int = RESAMPLES, seed: int = SEED
) -> dict:
    """Each model's macro-F1 on the same `resamples` resamples of the rows: name -> float [resamples].

    `preds` maps names to predicted class ids aligned with `y_true`. The same seed draws the same
    resamples, so differences between models are paired.
    """
    y_true = np.asarray(y_true, dtype=np.int64)
    preds = {name: np.asarray(pred, dtype=np.int64) for name, pred in preds.items()}
    rng = np.random.default_rng(seed)
    scores = {name: [] for name in preds}
    for start in range(0, resamples, CHUNK):
        rows = rng.integers(0, len(y_true), size=(min(CHUNK, resamples - start), len(y_true)))
        for name, pred in preds.items():
            scores[name].append(macro_f1(y_true[rows], pred[rows], n_classes))
    return {name: np.concatenate(parts) for name, parts in scores.items()}


def paired_difference(y_true, pred_a, pred_b, resampled: np.ndarray, n_classes: int) -> dict:
    """macro-F1(a) - macro-F1(b) on the rows, with its 95% interval from `resampled`, the same
    difference on each resample (from `bootstrap_scores`).

    Returns {"difference", "ci95": [low, high], "share_a_better"} where `share_a_better` is the
    share of resamples on which a scored strictly higher.
    """
    low, high = np.quantile(resampled, [0.025, 0.975])
    return {
        "difference": macro_f1(y_true, pred_a, n_classes) - macro_f1(y_true, pred_b, n_classes),
        "ci95": [float(low), float(high)],
        "share_a_better": float((resampled > 0).mean()),
    }


def verdict(comparison: dict) -> str:
    """'better', 'worse' or 'within noise': whether the 95% interval excludes zero."""
    low, high = comparison["ci95"]
    return "better" if low > 0 else "worse" if high < 0 else "within noise"


def vote_comparisons(
    y_true, *, votes: dict, members: dict, baselines: dict, n_classes: int
) -> list[dict]:
    """Each vote against the member that scores best on these rows and against every baseline
    but the majority class. `votes`, `members`, `baselines` map names to predicted class ids."""
    y_true = np.asarray(y_true, dtype=np.int64)
    rivals = {}
    if members:
        best = max(members, key=lambda name: macro_f1(y_true, members[name], n_classes))
        rivals[f"best member {best}"] = members[best]
    rivals.update(
        {f"baseline {name}": pred for name, pred in baselines.items() if name != "majority"}
    )
    scores = bootstrap_scores(y_true, {**votes, **rivals}, n_classes)
    result = []
    for vote, vote_pred in votes.items():
        for rival, rival_pred in rivals.items():
            comparison = paired_difference(
                y_true, vote_pred, rival_pred, scores[vote] - scores[rival], n_classes
            )
            result.append(
                {"vote": vote, "against": rival, **comparison, "verdict": verdict(comparison)}
            )
    return result
