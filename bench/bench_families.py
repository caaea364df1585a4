"""Test macro-F1, epochs and seconds per epoch of every model family, trained briefly on CPU,
beside TF-IDF + logistic regression and the majority class measured in the same run.

Data: ../shared/datasets/tweet_sentiment.csv, stratified split (seed 42): 15% test, 15% validation
(the best epoch is chosen on it), 70% training. Every family is judged on the same test rows.
Run: nice .venv/bin/python bench/bench_families.py [--epochs 2] [--families lstm,cnn]
Writes bench/results/families.json (with machine facts) and rebuilds bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

from common import DATASETS, record
from voxpop.data import Preprocessor
from voxpop.data.split import split_rows
from voxpop.ensemble.metrics import macro_f1

# Modest sizes so that all families finish within ~15 minutes on 2 loaded cores.
MODEL = {
    "embed_dim": 64,
    "units": 32,
    "attention_units": 32,
    "filters": 64,
    "ff_dim": 64,
    "head_units": [32],
    "num_blocks": 1,
}
TRAINING = {"learning_rate": 2e-3, "batch_size": 128, "imbalance": "balanced", "seed": 42}
CASES = {
    "lstm": {},
    "bilstm": {},
    "stacked_bilstm": {"units": [32, 32]},
    "gru": {},
    "bigru": {},
    "attention": {},
    "cnn": {},
    "transformer": {},
    "fusion": {"encoder": "cnn"},
}


def baselines(texts, y, split, n_classes) -> dict:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline, make_union

    train = np.concatenate([split.train, split.val])
    start = time.perf_counter()
    tfidf = make_pipeline(
        make_union(
            TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=2),
            TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True, min_df=2),
        ),
        LogisticRegression(C=4, class_weight="balanced", max_iter=2000),
    ).fit(texts[train], y[train])
    seconds = time.perf_counter() - start
    majority = np.bincount(y[train]).argmax()
    return {
        "tfidf_logreg": {
            "test_macro_f1": macro_f1(y[split.test], tfidf.predict(texts[split.test]), n_classes),
            "fit_seconds": round(seconds, 1),
        },
        "majority": {
            "test_macro_f1": macro_f1(y[split.test], np.full(len(split.test), majority), n_classes)
        },
    }


def bench_family(family, overrides, pre, arrays, y, split, epochs) -> dict:
    import voxpop.models as vm
    from voxpop.models.runtime import configure
    from voxpop.models.training import fit

    configure(seed=42)
    model = vm.build(
        family,
        {**MODEL, **overrides},
        n_tokens=pre.n_tokens,
        n_classes=len(pre.labels),
        n_features=pre.n_features,
    )
    part = {
        name: {key: a[rows] for key, a in arrays.items()}
        for name, rows in (("train", split.train), ("val", split.val), ("test", split.test))
    }
    start = time.perf_counter()
    result = fit(
        model,
        train=part["train"],
        y_train=y[split.train],
        val=part["val"],
        y_val=y[split.val],
        config=TRAINING,
        epochs=epochs,
    )
    seconds = time.perf_counter() - start
    inputs = {t.name: part["test"][t.name] for t in model.inputs}
    test_pred = model.predict(inputs, batch_size=512, verbose=0).argmax(1)
    row = {
        "test_macro_f1": round(macro_f1(y[split.test], test_pred, len(pre.labels)), 4),
        "best_epoch": result.best_epoch,
        "epochs": epochs,
        "val_macro_f1": [round(m["val_macro_f1"], 4) for m in result.history],
        "seconds_per_epoch": round(seconds / epochs, 1),
        "params": model.count_params(),
        "config": {**MODEL, **overrides},
    }
    print(family, row, flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--families", default=",".join(CASES))
    args = parser.parse_args()

    from voxpop.models.runtime import configure

    configure(threads=2, seed=42)
    data = pd.read_csv(DATASETS / "tweet_sentiment.csv")
    texts = data.text.fillna("").astype(str).to_numpy()
    split = split_rows(data.label.astype(str).to_numpy(), val_size=0.15, test_size=0.15, seed=42)
    pre = Preprocessor().fit(list(texts[split.train]), list(data.label.astype(str)[split.train]))
    arrays = pre.encode(list(texts))
    y = pre.encode_labels(list(data.label.astype(str)))

    results = {
        "data": {
            "file": "tweet_sentiment.csv",
            "rows": len(data),
            "train": len(split.train),
            "val": len(split.val),
            "test": len(split.test),
            "max_len": pre.max_len,
            "n_tokens": pre.n_tokens,
            "labels": pre.labels,
        },
        "training": TRAINING,
        "baselines": baselines(texts, y, split, len(pre.labels)),
        "families": {},
    }
    print(results["baselines"], flush=True)
    for family in args.families.split(","):
        results["families"][family] = bench_family(
            family, CASES[family], pre, arrays, y, split, args.epochs
        )

    lines = ["| model | test macro-F1 | epochs (best) | s/epoch |", "| --- | --- | --- | --- |"]
    for family, row in results["families"].items():
        lines.append(
            f"| {family} | {row['test_macro_f1']:.3f} | {row['epochs']} "
            f"({row['best_epoch']}) | {row['seconds_per_epoch']} |"
        )
    for name, row in results["baselines"].items():
        lines.append(f"| {name} | {row['test_macro_f1']:.3f} | - | - |")
    summary = (
        f"tweet_sentiment.csv, {len(split.train)} train / {len(split.val)} val / "
        f"{len(split.test)} test rows (stratified, seed 42), max_len {pre.max_len}.\n\n"
        + "\n".join(lines)
    )
    record(
        "families",
        results,
        summary_md=summary,
        command=f"nice .venv/bin/python bench/bench_families.py --epochs {args.epochs}",
    )


if __name__ == "__main__":
    main()
