"""Tuning throughput and scheduler savings on this machine (writes bench/results/tune.json).

1. A fixed small job (4 tiny LSTM trials x 2 epochs, FIFO, same seed so the same configs) with
   1 and then 2 concurrent trials: wall time, trials per hour, mean CPU utilisation.
2. ASHA against FIFO on the same 4 sampled configs (same seed) for up to 3 epochs: epochs
   trained in total and the best validation macro-F1 of each.

Data: a stratified 2,000-row sample of ../shared/datasets/tweet_sentiment.csv (seed 0).
Run: .venv/bin/python bench/bench_tune.py   (about 5-10 minutes on 2 cores)
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import pandas as pd
import psutil
import yaml

from common import DATASETS, Timer, record
from voxpop.tune_spaces.runner import TuneOptions, run_tuning

SPACE = {
    "family": "lstm",
    "units": 16,
    "embed_dim": 16,
    "batch_size": 64,
    "learning_rate": {"loguniform": [5e-4, 5e-3]},
    "head_dropout": {"uniform": [0.1, 0.5]},
}
TRIALS = 4


def _sample(directory: Path) -> Path:
    tweets = pd.read_csv(DATASETS / "tweet_sentiment.csv")
    sample = tweets.groupby("label").sample(frac=2000 / len(tweets), random_state=0)
    path = directory / "tweets_2000.parquet"
    sample[["text", "label"]].to_parquet(path, index=False)
    return path


def _run(work: Path, name: str, **options) -> dict:
    """One tuning run with CPU utilisation sampled over its wall time."""
    psutil.cpu_percent()  # starts the measuring interval
    with Timer() as timer:
        outcome = run_tuning(
            TuneOptions(
                data=work / "tweets_2000.parquet",
                spaces=(str(work / "tiny_lstm.yaml"),),
                samples=TRIALS,
                storage=work / "runs",
                name=name,
                cpus_per_trial=1,
                seed=7,
                **options,
            )
        )
    board = outcome.leaderboard
    return {
        "wall_s": round(timer.seconds, 1),
        "trials": len(board),
        "failed": sum(1 for row in board if row["error"]),
        "trials_per_hour": round(len(board) / timer.seconds * 3600, 1),
        "epochs_trained": sum(row["epochs_run"] for row in board),
        "best_val_macro_f1": round(max(row["val_macro_f1"] or 0 for row in board), 4),
        "cpu_percent_mean": psutil.cpu_percent(),
        "load_avg_1min_end": round(psutil.getloadavg()[0], 2),
    }


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench-tune-") as tmp:
        work = Path(tmp)
        _sample(work)
        (work / "tiny_lstm.yaml").write_text(yaml.safe_dump(SPACE))
        concurrency = {
            k: _run(work, f"conc{k}", max_epochs=2, scheduler="fifo", max_concurrent=k)
            for k in (1, 2)
        }
        schedulers = {
            s: _run(work, s, max_epochs=3, scheduler=s, max_concurrent=2) for s in ("fifo", "asha")
        }
    results = {
        "data": "tweet_sentiment.csv, stratified 2,000 rows (seed 0), 70/15/15 split",
        "space": SPACE,
        "trials": TRIALS,
        "concurrency": concurrency,
        "schedulers": schedulers,
        "finished": time.strftime("%H:%M:%S"),
    }
    c1, c2 = concurrency[1], concurrency[2]
    fifo, asha = schedulers["fifo"], schedulers["asha"]
    summary = "\n".join(
        [
            "| job | wall s | trials/h | epochs | best val macro-F1 | CPU % |",
            "| --- | --- | --- | --- | --- | --- |",
            *(
                f"| {label} | {r['wall_s']} | {r['trials_per_hour']} | {r['epochs_trained']} | "
                f"{r['best_val_macro_f1']} | {r['cpu_percent_mean']} |"
                for label, r in (
                    ("4 trials x 2 epochs, 1 at a time", c1),
                    ("4 trials x 2 epochs, 2 at a time", c2),
                    ("FIFO, 4 trials x 3 epochs", fifo),
                    ("ASHA, same 4 configs, <=3 epochs", asha),
                )
            ),
            "",
            "The machine is shared with other work: CPU % and load are system-wide.",
        ]
    )
    record("tune", results, summary_md=summary, command="python bench/bench_tune.py")
    print(summary)


if __name__ == "__main__":
    main()
