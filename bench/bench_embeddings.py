"""What pretrained word vectors (GloVe 6B 50d, `--embeddings glove-6b-50d`) add to a CNN and a
BiLSTM member, in domain and on the airline tweets, against the same member started at random.

Data (the demo's regime): the built-in tweets without the airline ones, split 70/15/15
(stratified, per seed); the best epoch is chosen on the validation split; macro-F1 on the test
split (in domain) and on the 14,638 airline tweets (out of domain). Per family three members, the
same in all but the embedding's start: random (embed_dim 50, the vectors' width), GloVe
fine-tuned, GloVe frozen; and the soft vote of the CNN and the BiLSTM with and without vectors.
Each difference comes with its paired-bootstrap 95% interval (`voxpop.reports.significance`, the
evaluation report's own). Models are built and trained in process (`voxpop.models.build` with the
matched matrix, as a trial of `voxpop tune --embeddings` does), without Ray.

Run: nice .venv/bin/python bench/bench_embeddings.py [--seeds 42] [--epochs 3]
     [--families cnn,bilstm]   (seeds run separately add up in the results)
Writes bench/results/embeddings.json and rebuilds bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from common import RESULTS, record
from voxpop.data import Preprocessor, split_rows
from voxpop.data.builtin import demo_split
from voxpop.data.vectors import match_vectors
from voxpop.ensemble.metrics import macro_f1
from voxpop.reports.significance import bootstrap_scores, paired_difference, verdict

VECTORS = "glove-6b-50d"
DIM = 50
MODEL = {"embed_dim": DIM, "units": 64, "filters": 64, "head_units": [64]}
TRAINING = {"learning_rate": 2e-3, "batch_size": 128, "imbalance": "balanced"}
STARTS = {
    "random": {},
    "glove fine-tuned": {"embeddings": VECTORS},
    "glove frozen": {"embeddings": VECTORS, "freeze_embeddings": True},
}
PARTS = ("test split (in domain)", "airline tweets (out of domain)")


def train_member(family: str, start: str, *, data: dict, vectors, seed: int, epochs: int):
    """(probabilities per evaluated part, seconds, best epoch) of one member."""
    import voxpop.models as vm
    from voxpop.models.runtime import configure
    from voxpop.models.training import fit

    configure(seed=seed)
    config = {**MODEL, **STARTS[start], **TRAINING, "seed": seed}
    model = vm.build(
        family,
        config,
        n_tokens=len(vectors.matrix),
        n_classes=3,
        embeddings=vectors.matrix if "embeddings" in config else None,
    )
    started = time.perf_counter()
    result = fit(
        model,
        train=data["train"],
        y_train=data["y"]["train"],
        val=data["val"],
        y_val=data["y"]["val"],
        config=config,
        epochs=epochs,
    )
    seconds = time.perf_counter() - started
    probs = {part: model.predict(data[part], batch_size=512, verbose=0) for part in PARTS}
    return probs, seconds, result.best_epoch


def compare(y, preds: dict, against: str) -> dict:
    """Each prediction's macro-F1 and its paired-bootstrap difference from `against`."""
    resampled = bootstrap_scores(y, preds, 3)
    out = {}
    for name, pred in preds.items():
        row = {"macro_f1": round(macro_f1(y, pred, 3), 4)}
        if name != against:
            diff = paired_difference(
                y, pred, preds[against], resampled[name] - resampled[against], 3
            )
            row.update(
                difference=round(diff["difference"], 4),
                ci95=[round(x, 4) for x in diff["ci95"]],
                verdict=verdict(diff),
            )
        out[name] = row
    return out


def one_seed(seed: int, *, families: list[str], epochs: int) -> dict:
    train_df, airline = demo_split()
    split = split_rows(train_df["label"].to_numpy(), val_size=0.15, test_size=0.15, seed=seed)
    texts = train_df["text"].tolist()
    labels = train_df["label"].to_numpy()
    pre = Preprocessor(engineered_features=False, ngrams=False).fit(
        [texts[i] for i in split.train], labels[split.train]
    )
    rows = {"train": split.train, "val": split.val, PARTS[0]: split.test}
    data = {
        part: pre.encode([texts[i] for i in index], inputs=["tokens"])
        for part, index in rows.items()
    }
    data[PARTS[1]] = pre.encode(airline["text"].tolist(), inputs=["tokens"])
    data["y"] = {part: pre.encode_labels(labels[index]) for part, index in rows.items()}
    data["y"][PARTS[1]] = pre.encode_labels(airline["label"].to_numpy())
    counts = np.bincount(data["train"]["tokens"].ravel(), minlength=pre.n_tokens)
    started = time.perf_counter()
    vectors = match_vectors(VECTORS, pre.vocabulary.tokens, counts=counts, seed=seed)
    match_seconds = time.perf_counter() - started
    print(vectors.summary(), f"({match_seconds:.1f} s)", flush=True)

    probs, members = {}, {}
    for family in families:
        for start in STARTS:
            name = f"{family}, {start}"
            probs[name], seconds, best = train_member(
                family, start, data=data, vectors=vectors, seed=seed, epochs=epochs
            )
            members[name] = {"seconds": round(seconds, 1), "best_epoch": best}
            print(name, members[name], flush=True)
    evaluated = {}
    for part in PARTS:
        y = data["y"][part]
        per_family = {}
        for family in families:
            preds = {start: probs[f"{family}, {start}"][part].argmax(1) for start in STARTS}
            per_family[family] = compare(y, preds, "random")
        if len(families) > 1:  # the soft vote of the families, each start alike
            preds = {
                start: np.mean([probs[f"{f}, {start}"][part] for f in families], axis=0).argmax(1)
                for start in STARTS
            }
            per_family[f"soft vote of {' + '.join(families)}"] = compare(y, preds, "random")
        evaluated[part] = {"rows": len(y), "models": per_family}
        print(part, evaluated[part], flush=True)
    return {
        "vectors": vectors.record(),
        "match_seconds": round(match_seconds, 2),
        "rows": {part: len(index) for part, index in rows.items()},
        "members": members,
        "evaluated": evaluated,
    }


def summary(results: dict, *, epochs: int) -> str:
    lines = [
        f"Built-in tweets without the airline ones (demo regime), split 70/15/15 per seed; "
        f"{epochs} epochs, best on validation; {MODEL} {TRAINING}. The same member started "
        f"from random vectors ({DIM}-dim) or from GloVe 6B {DIM}d (`--embeddings "
        f"{VECTORS}`), fine-tuned or frozen. Macro-F1; difference from the random start with "
        "its paired-bootstrap 95% interval.\n",
        "| seed | evaluated on | model | random | GloVe fine-tuned (diff [95% CI]) | "
        "GloVe frozen (diff [95% CI]) |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for seed, result in results.items():
        for part, evaluated in result["evaluated"].items():
            for model, row in evaluated["models"].items():
                cells = [
                    f"{row[s]['macro_f1']:.4f} ({row[s]['difference']:+.4f} "
                    f"[{row[s]['ci95'][0]:+.4f}, {row[s]['ci95'][1]:+.4f}] "
                    f"{row[s]['verdict']})"
                    for s in ("glove fine-tuned", "glove frozen")
                ]
                lines.append(
                    f"| {seed} | {part} ({evaluated['rows']:,}) | {model} | "
                    f"{row['random']['macro_f1']:.4f} | {' | '.join(cells)} |"
                )
    if len(results) > 1:
        lines += [
            "",
            f"Mean difference from the random start over the {len(results)} seeds "
            "(and how many of the seeds' intervals lie above / below zero):",
            "",
            "| evaluated on | model | GloVe fine-tuned | GloVe frozen |",
            "| --- | --- | --- | --- |",
        ]
        first = next(iter(results.values()))["evaluated"]
        for part, evaluated in first.items():
            for model in evaluated["models"]:
                rows = [result["evaluated"][part]["models"][model] for result in results.values()]
                cells = []
                for start in ("glove fine-tuned", "glove frozen"):
                    verdicts = [row[start]["verdict"] for row in rows]
                    mean = sum(row[start]["difference"] for row in rows) / len(rows)
                    cells.append(
                        f"{mean:+.4f} ({verdicts.count('better')} better, "
                        f"{verdicts.count('worse')} worse)"
                    )
                lines.append(f"| {part} | {model} | {' | '.join(cells)} |")
    for seed, result in results.items():
        v = result["vectors"]
        seconds = ", ".join(f"{name} {m['seconds']} s" for name, m in result["members"].items())
        lines.append(
            f"\n{seed}: GloVe covered {v['covered']:,} of {v['tokens']:,} vocabulary "
            f"tokens ({v['coverage']:.1%}; {v['occurrence_coverage']:.1%} of the "
            f"training tokens), matched in {result['match_seconds']} s. Training "
            f"seconds: {seconds}."
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="42")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--families", default="cnn,bilstm")
    args = parser.parse_args()

    from voxpop.models.runtime import configure

    configure(threads=2)
    families = args.families.split(",")
    # Seeds run separately add up (same epochs and families): keep those not rerun this time.
    previous = RESULTS / "embeddings.json"
    results, seeds = {}, args.seeds.split(",")
    if previous.exists():
        stored = json.loads(previous.read_text())
        if stored["command"].endswith(f"--epochs {args.epochs} --families {args.families}"):
            results = stored["results"]
            seeds = sorted({*[name.split()[-1] for name in results], *seeds})
    for seed in args.seeds.split(","):
        results[f"seed {seed}"] = one_seed(int(seed), families=families, epochs=args.epochs)
    results = dict(sorted(results.items()))
    record(
        "embeddings",
        results,
        summary_md=summary(results, epochs=args.epochs),
        command=f"nice .venv/bin/python bench/bench_embeddings.py --seeds {','.join(seeds)} "
        f"--epochs {args.epochs} --families {args.families}",
    )


if __name__ == "__main__":
    main()
