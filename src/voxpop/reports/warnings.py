"""Warnings shown at the top of a report: each check reads the report dict and returns messages.

Thresholds are module constants so the report can state them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

NEAR_MAJORITY_MARGIN = 0.05  # macro-F1 this close to the majority baseline earns nothing
MOSTLY_OOV_SHARE = 0.25  # above this share of mostly-unknown texts, suspect a domain shift
MAJORITY = "majority"


def _models(report: dict, sections=("votes", "members", "baselines")) -> Iterator[tuple[str, dict]]:
    for section in sections:
        for name, metrics in report.get(section, {}).items():
            yield f"{section[:-1]} {name}", metrics


def collapsed_models(report: dict) -> list[str]:
    """A model that predicts fewer than half of the classes (rounded up, at least 2)."""
    n_classes = len(report["labels"])
    needed = max(2, math.ceil(n_classes / 2))
    return [
        f"{name} predicts only {len(metrics['predicted_classes'])} of {n_classes} classes "
        f"({', '.join(metrics['predicted_classes'])})"
        for name, metrics in _models(report)
        if name != f"baseline {MAJORITY}" and len(metrics["predicted_classes"]) < needed
    ]


def near_majority(report: dict) -> list[str]:
    """A vote or member whose macro-F1 is within NEAR_MAJORITY_MARGIN of the majority class."""
    majority = report.get("baselines", {}).get(MAJORITY)
    if majority is None:
        return []
    floor = majority["macro_f1"] + NEAR_MAJORITY_MARGIN
    return [
        f"{name} macro-F1 {metrics['macro_f1']:.3f} is within {NEAR_MAJORITY_MARGIN} of the "
        f"majority-class baseline ({majority['macro_f1']:.3f})"
        for name, metrics in _models(report, ("votes", "members"))
        if metrics["macro_f1"] < floor
    ]


def vote_below_best_member(report: dict) -> list[str]:
    """A voting rule that scores a lower macro-F1 than its best member."""
    members = report.get("members", {})
    if not members:
        return []
    best = max(members, key=lambda member_id: members[member_id]["macro_f1"])
    best_f1 = members[best]["macro_f1"]
    return [
        f"{rule} vote macro-F1 {metrics['macro_f1']:.3f} is below its best member {best} "
        f"({best_f1:.3f})"
        for rule, metrics in report.get("votes", {}).items()
        if metrics["macro_f1"] < best_f1
    ]


def vote_worse_than_baseline(report: dict) -> list[str]:
    """A vote that a baseline beats by more than the noise (the bootstrap interval of the gap
    lies below zero): the ensemble does not earn its cost on this set."""
    return [
        f"{c['vote']} vote scores below {c['against']} beyond the noise: {c['difference']:+.3f} "
        f"macro-F1 (95% interval [{c['ci95'][0]:+.3f}, {c['ci95'][1]:+.3f}])"
        for c in report.get("comparisons", [])
        if c["against"].startswith("baseline ") and c["verdict"] == "worse"
    ]


def domain_shift(report: dict) -> list[str]:
    """Many texts made mostly of words the vocabulary does not know."""
    oov = report.get("oov")
    if not oov or oov["share_mostly_oov"] <= MOSTLY_OOV_SHARE:
        return []
    return [
        f"{oov['share_mostly_oov']:.0%} of texts are more than {oov['mostly_oov_threshold']:.0%} "
        f"out-of-vocabulary (mean OOV rate {oov['mean_rate']:.0%}): likely a domain shift"
    ]


CHECKS: dict[str, Callable[[dict], list[str]]] = {
    "collapsed": collapsed_models,
    "near_majority": near_majority,
    "vote_below_best_member": vote_below_best_member,
    "vote_worse_than_baseline": vote_worse_than_baseline,
    "domain_shift": domain_shift,
}


def find_warnings(report: dict) -> list[dict]:
    """Every check's messages as [{"check": name, "message": text}], in CHECKS order."""
    return [
        {"check": check, "message": message}
        for check, run in CHECKS.items()
        for message in run(report)
    ]
