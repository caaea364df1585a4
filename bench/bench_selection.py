"""Which vote over which members: selection strategies compared on the held-out test splits.

Every strategy chooses among the same candidates (`voxpop export`'s: each trial's best checkpoint
above the candidate floor) and sees only validation rows; the test rows score them afterwards.
The runs are the ones `bench_quality.py` tuned (tweets and rotten tomatoes over three seeds each,
20 newsgroups), so the comparison spans 7 splits instead of one.

Strategies:
- greedy weighted: voxpop's default (greedy selection with replacement, pick counts as weights)
- greedy soft: the same members, equal weights
- best single: the best candidate by val macro-F1
- soft all: every candidate, equal weights
- log-loss weights: weights on the simplex minimising the validation log loss of the mean

Run: .venv/bin/python bench/bench_selection.py [--work /tmp/voxpop-bench-quality]
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
from scipy.optimize import minimize

from common import record
from voxpop.data.rundir import read_run
from voxpop.ensemble.metrics import macro_f1
from voxpop.export.select import select_members

RUNS = [
    "demo/runs/demo",
    "tweets-seed43/runs/demo",
    "tweets-seed44/runs/demo",
    "rotten-seed42/runs/rt",
    "rotten-seed43/runs/rt",
    "rotten-seed44/runs/rt",
    "newsgroups/runs/ng",
]
SIZE = {"demo": 6, "rt": 4, "ng": 4}  # bench_quality.py's --size per task


def log_loss_weights(val_probs: list[np.ndarray], y_val: np.ndarray) -> np.ndarray:
    """Simplex weights (softmax of free parameters) minimising the val log loss of the mean."""
    stacked = np.stack(val_probs).astype(np.float64)

    def loss(params):
        weights = np.exp(params - params.max())
        mean = np.tensordot(weights / weights.sum(), stacked, axes=1)
        return -np.log(np.clip(mean[np.arange(len(y_val)), y_val], 1e-12, 1)).mean()

    params = minimize(loss, np.zeros(len(stacked)), method="L-BFGS-B").x
    weights = np.exp(params - params.max())
    return weights / weights.sum()


def strategies(run, size: int) -> dict[str, dict]:
    """Strategy name -> {checkpoint name: weight}, all chosen on validation rows."""
    greedy = select_members(
        run.checkpoints, run.y_val, method="greedy", size=size, metric="val_macro_f1"
    )
    candidates = select_members(
        run.checkpoints, run.y_val, method="top", size=len(run.checkpoints), metric="val_macro_f1"
    ).members
    weights = log_loss_weights([c.val_probs() for c in candidates], run.y_val)
    return {
        "greedy weighted": {c.name: w for c, w in zip(greedy.members, greedy.weights)},
        "greedy soft": {c.name: 1.0 for c in greedy.members},
        "best single": {candidates[0].name: 1.0},
        "soft all": {c.name: 1.0 for c in candidates},
        "log-loss weights": {c.name: float(w) for c, w in zip(candidates, weights)},
    }


def test_scores(run, size: int) -> dict[str, float]:
    from voxpop.models import load_model

    chosen = strategies(run, size)
    rows = run.rows("test")
    y_test = run.preprocessor.encode_labels(rows["label"].astype(str).to_numpy())
    inputs = run.encode(rows)
    by_name = {c.name: c for c in run.checkpoints}
    probs = {}
    for name in sorted({n for weights in chosen.values() for n in weights}):
        model = load_model(by_name[name].model_path)
        probs[name] = model.predict(
            {i.name: inputs[i.name] for i in model.inputs}, verbose=0, batch_size=512
        )
    n_classes = len(run.preprocessor.labels)
    scores = {}
    for strategy, weights in chosen.items():
        total = sum(weights.values())
        mean = sum(w * probs[name] for name, w in weights.items()) / total
        scores[strategy] = round(macro_f1(y_test, mean.argmax(axis=1), n_classes), 4)
    return scores


def summary(results: dict) -> str:
    names = list(next(iter(results.values())))
    lines = [
        "Test macro-F1 of each strategy, all chosen on validation rows among the same "
        "candidates; the runs of `bench_quality.py`.\n",
        "| run | " + " | ".join(names) + " |",
        "|" + " --- |" * (len(names) + 1),
    ]
    for run, scores in results.items():
        best = max(scores.values())
        lines.append(
            f"| {run} | "
            + " | ".join(f"**{scores[n]}**" if scores[n] == best else str(scores[n]) for n in names)
            + " |"
        )
    means = {n: np.mean([scores[n] for scores in results.values()]) for n in names}
    default = means["greedy weighted"]
    lines.append("| mean | " + " | ".join(f"{m:.4f}" for m in means.values()) + " |")
    lines.append(
        "| mean - greedy weighted | "
        + " | ".join(f"{m - default:+.4f}" for m in means.values())
        + " |"
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/voxpop-bench-quality"))
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    results = {}
    for relative in RUNS:
        run = read_run(args.work / relative)
        results[relative] = test_scores(run, SIZE[run.path.name])
        print(relative, results[relative], flush=True)
    record("selection", results, summary_md=summary(results), command="bench/bench_selection.py")


if __name__ == "__main__":
    main()
