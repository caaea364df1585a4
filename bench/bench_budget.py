"""Training budgets on small data: the old budget (epochs, ASHA's rung at one epoch) against the
new one (early stopping with patience, ASHA's grace in training rows, a time budget for the job)
(writes bench/results/budget.json).

On a 4,000-training-row sample of rotten tomatoes and of the tweets (stratified, seed 0; the
default 70/15/15 split of 5,714 rows), the same spaces and samples (CNN, bag of bigrams, BiLSTM;
2 samples each, seed 7) are tuned twice:
- old: --max-epochs 4, ASHA with its grace at one epoch's rows, no early stopping, no time
  budget (the issue's "new user" run);
- new: the defaults (max epochs from the rows, --patience 3, --grace-rows 50,000) and
  --time-budget NEW_BUDGET_S.
Each run's best neural trial (by val macro-F1; its best checkpoint) is scored on the test split
beside TF-IDF + logistic regression trained on the same training rows (reports.baselines).

Run: .venv/bin/python bench/bench_budget.py [rotten_tomatoes] [tweet_sentiment]
(about 10 minutes per data set on 2 cores)
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from common import DATASETS, RESULTS, record
from voxpop.data.rundir import read_checkpoint, read_run
from voxpop.ensemble.metrics import macro_f1
from voxpop.tune_spaces.cluster import start_ray, stop_ray
from voxpop.tune_spaces.runner import TuneOptions, run_tuning

TRAIN_ROWS = 4000
SPACES = ("cnn", "bigram", "bilstm")
SAMPLES = 2
# The old rungs (epochs 1 and 2 of 4, as ASHA's grace of 1 epoch gave) in rows: the split holds
# 3,999 training rows, so rungs at 3,500 x 2^k fall at epochs 1 and 2 (14,000 only at epoch 4,
# the end); a grace of 4,000 would first judge at epoch 2.
OLD_GRACE_ROWS = 3500
NEW_BUDGET_S = 270.0
SETS = ("rotten_tomatoes", "tweet_sentiment")


def _sample(name: str, directory: Path) -> Path:
    table = pd.read_csv(DATASETS / f"{name}.csv")[["text", "label"]]
    rows = round(TRAIN_ROWS / 0.7)
    sample = table.groupby("label").sample(frac=rows / len(table), random_state=0)
    path = directory / f"{name}_{TRAIN_ROWS}.parquet"
    sample.sample(frac=1.0, random_state=0).to_parquet(path, index=False)
    return path


def _best_neural(run_dir: Path, board: list[dict]) -> dict:
    """The best trial by val macro-F1 (every family here is neural), scored on the test split."""
    from voxpop.models import load_model

    best = next(row for row in board if row["val_macro_f1"] is not None)
    run = read_run(run_dir)
    checkpoints = [c for c in run.checkpoints if c.trial_id == best["trial_id"]]
    checkpoint = max(checkpoints, key=lambda c: c.metrics["val_macro_f1"])
    test = run.rows("test")
    inputs = run.encode(test)
    model = load_model(read_checkpoint(checkpoint.path).model_path)
    probs = model.predict({t.name: inputs[t.name] for t in model.inputs}, verbose=0)
    y_test = run.preprocessor.encode_labels(test["label"].astype(str).to_numpy())
    n_classes = len(run.preprocessor.labels)
    return {
        "family": best["family"],
        "epoch": best["epoch"],
        "epochs_run": best["epochs_run"],
        "val_macro_f1": round(best["val_macro_f1"], 4),
        "test_macro_f1": round(macro_f1(y_test, probs.argmax(1), n_classes), 4),
    }


def _tfidf(run_dir: Path) -> float:
    from voxpop.reports.baselines import fit_tfidf

    run = read_run(run_dir)
    train, test = run.rows("train"), run.rows("test")
    labels = run.preprocessor
    model = fit_tfidf(
        train["text"].tolist(), labels.encode_labels(train["label"].astype(str).to_numpy())
    )
    y_test = labels.encode_labels(test["label"].astype(str).to_numpy())
    return round(macro_f1(y_test, model.predict(test["text"].tolist()), len(labels.labels)), 4)


def _tune(data: Path, work: Path, name: str, **options) -> tuple[dict, Path]:
    started = time.monotonic()
    outcome = run_tuning(
        TuneOptions(
            data=data,
            spaces=SPACES,
            samples=SAMPLES,
            seed=7,
            scheduler="asha",
            storage=work / "runs",
            name=name,
            **options,
        )
    )
    wall = time.monotonic() - started
    board = outcome.leaderboard
    states: dict[str, int] = {}
    for row in board:
        states[row["state"]] = states.get(row["state"], 0) + 1
    per_family = {}
    for row in board:
        if row["val_macro_f1"] is not None:
            per_family[row["family"]] = max(
                per_family.get(row["family"], 0), round(row["val_macro_f1"], 4)
            )
    return {
        "wall_s": round(wall, 1),
        "trials": len(board),
        "states": states,
        "epochs_trained": sum(row["epochs_run"] for row in board),
        "best_val_macro_f1_by_family": per_family,
        "best_neural": _best_neural(outcome.run_dir, board),
    }, outcome.run_dir


def bench_set(name: str) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-budget-") as tmp:
        work = Path(tmp)
        data = _sample(name, work)
        old, run_dir = _tune(data, work, "old", max_epochs=4, patience=0, grace_rows=OLD_GRACE_ROWS)
        new, _ = _tune(data, work, "new", time_budget=NEW_BUDGET_S)
        tfidf = _tfidf(run_dir)
        train_rows = len(read_run(run_dir).rows("train"))
    for result in (old, new):
        result["gap_to_tfidf"] = round(result["best_neural"]["test_macro_f1"] - tfidf, 4)
    return {"train_rows": train_rows, "tfidf_test_macro_f1": tfidf, "old": old, "new": new}


def _summary(results: dict) -> str:
    lines = [
        "Training budgets on 4,000 training rows (one seed; test macro-F1 of the best "
        "neural trial by val, and TF-IDF + LR on the same rows). old: --max-epochs 4, ASHA "
        "rung at one epoch, no early stopping; new: --patience 3, ASHA grace 50,000 rows, "
        f"epochs from the rows, --time-budget {NEW_BUDGET_S:g}.",
        "",
        "| set | budget | wall s | trials: states | epochs | best neural (family, epoch) | "
        "val F1 | test F1 | TF-IDF test F1 | gap |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, result in results.items():
        for budget in ("old", "new"):
            r = result[budget]
            best = r["best_neural"]
            states = ", ".join(f"{n} {s}" for s, n in sorted(r["states"].items()))
            lines.append(
                f"| {name} | {budget} | {r['wall_s']:.0f} | {states} | "
                f"{r['epochs_trained']} | {best['family']} ({best['epoch']}) | "
                f"{best['val_macro_f1']:.3f} | {best['test_macro_f1']:.3f} | "
                f"{result['tfidf_test_macro_f1']:.3f} | {r['gap_to_tfidf']:+.3f} |"
            )
    return "\n".join(lines)


def main() -> None:
    names = sys.argv[1:] or list(SETS)
    previous = RESULTS / "budget.json"
    results = {}
    if previous.exists():
        import json

        results = json.loads(previous.read_text())["results"]
    assert start_ray(num_cpus=2)
    try:
        for name in names:
            results[name] = bench_set(name)
            record(
                "budget",
                results,
                summary_md=_summary(results),
                command="python bench/bench_budget.py " + " ".join(names),
            )
            print(_summary(results), flush=True)
    finally:
        stop_ray()


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
