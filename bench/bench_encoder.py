"""A pretrained sentence encoder as a member: what it adds to the vote, and what it costs per row.

One `voxpop tune` on the demo's training tweets (the non-airline ones; `--train-rows`, default
the quick demo's stratified 6,000, as every training and validation text runs through the
encoder once, about 65 texts/s on 2 quiet cores) with the quick demo's spaces (cnn, bigram, tfidf_fusion; one sample each, two epochs), TF-IDF, and the
`sentence` space on all-MiniLM-L6-v2 (int8 ONNX; every training and validation text embedded
once); `voxpop export` (greedy, up to 6 members); `voxpop evaluate` on the held-out test split
(in domain) and on a stratified sample of the airline tweets (out of domain; `--airline-rows`,
as every evaluated text runs through the encoder). Quality comes from the reports: each vote
beside the best member and TF-IDF + LR (paired-bootstrap 95% intervals), and what each member
adds to the weighted vote (its macro-F1 minus the vote's without it, same rows).

Cost: the same bundle on `--speed-rows` airline tweets in this process (2 threads, best of
`--repeats` after a warm-up): encoding + ONNX Runtime of the sentence member alone, of the
cheapest other member alone, and the soft vote of every member with and without the sentence
member (separate sessions), in rows/s.

Run: .venv/bin/python bench/bench_encoder.py [--seed 42] [--airline-rows 3000] [--reuse]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from bench_quality import figures, run, write_csv
from common import Timer, best_rate, record
from voxpop.serving_cli.demo import PLANS, write_spaces

WORK = Path("/tmp/voxpop-bench-encoder")


def prepare(work: Path, airline_rows: int, train_rows: int) -> tuple[Path, Path, list[Path]]:
    from voxpop.data.builtin import demo_split

    train, airline = demo_split()
    data = work / "data"
    data.mkdir(parents=True, exist_ok=True)
    # stratified samples, as the quick demo draws its training rows
    train = train.groupby("label", group_keys=False).sample(
        frac=min(1.0, train_rows / len(train)), random_state=0
    )
    airline = airline.groupby("label", group_keys=False).sample(
        frac=min(1.0, airline_rows / len(airline)), random_state=0
    )
    train_csv = write_csv(train[["id", "text", "label"]], data / "tweets_train.csv")
    airline_csv = write_csv(airline[["id", "text", "label"]], data / "airline_tweets.csv")
    paths = write_spaces(work / "spaces", [*PLANS["quick"].spaces, "tfidf"])
    return train_csv, airline_csv, paths


def quality(work: Path, seed: int, airline_rows: int, train_rows: int, reuse: bool) -> dict:
    train_csv, airline_csv, spaces = prepare(work, airline_rows, train_rows)
    commands, seconds = [], {}
    run_dir, bundle = work / "runs" / "tweets", work / "bundle"
    if not (reuse and run_dir.is_dir()):
        with Timer() as timer:
            commands.append(
                run(
                    [
                        "tune",
                        train_csv,
                        *[w for p in spaces for w in ("--space", p)],
                        "--samples",
                        1,
                        "--max-epochs",
                        2,
                        "--scheduler",
                        "fifo",
                        "--keep-checkpoints",
                        1,
                        "--seed",
                        seed,
                        "--num-cpus",
                        2,
                        "--sentence-encoder",
                        "all-MiniLM-L6-v2",
                        "--storage",
                        work / "runs",
                        "--name",
                        "tweets",
                    ]
                )
            )
        seconds["tune"] = round(timer.seconds)
    if not (reuse and (bundle / "ensemble.json").exists()):
        with Timer() as timer:
            commands.append(run(["export", run_dir, "--out", bundle, "--size", 6, "--force"]))
        seconds["export"] = round(timer.seconds)
    from voxpop.data.rundir import read_run

    test_csv = write_csv(
        read_run(run_dir).rows("test")[["text", "label"]], work / "data" / "test_split.csv"
    )
    with Timer() as timer:
        commands.append(run(["evaluate", bundle, test_csv, airline_csv, "--out", work / "reports"]))
    seconds["evaluate"] = round(timer.seconds)
    return {
        "commands": commands,
        "seconds": seconds,
        "evaluated": {
            "test split (in domain)": figures(work / "reports" / "test_split" / "report.json"),
            "airline tweets (out of domain)": figures(
                work / "reports" / "airline_tweets" / "report.json"
            ),
        },
    }


def speed(work: Path, rows: int, repeats: int) -> dict:
    import pandas as pd

    from voxpop.ensemble import Ensemble

    texts = pd.read_csv(work / "data" / "airline_tweets.csv")["text"].astype(str).tolist()[:rows]
    ensemble = Ensemble.load(work / "bundle", device="cpu", threads=2, fused=False)
    families = {m.id: m.family for m in ensemble.manifest.members}
    sentence = [m for m, f in families.items() if f == "sentence"]
    others = [m for m, f in families.items() if f != "sentence"]
    rates = {}
    for member in ensemble.member_ids:
        rates[f"{member} ({families[member]}) alone"] = best_rate(
            lambda m=member: ensemble.predict(texts, members=[m]), len(texts), repeats
        )
    rates["soft vote, every member"] = best_rate(
        lambda: ensemble.predict(texts, voting="soft"), len(texts), repeats
    )
    if sentence and others:
        rates["soft vote, without the sentence member"] = best_rate(
            lambda: ensemble.predict(texts, voting="soft", members=others), len(texts), repeats
        )
        with_it = ensemble.predict(texts, voting="soft").probs
        without = ensemble.predict(texts, voting="soft", members=others).probs
        changed = float(np.mean(with_it.argmax(1) != without.argmax(1)))
    else:
        changed = None
    ensemble.close()
    return {
        "rows": len(texts),
        "threads": 2,
        "repeats": repeats,
        "families": families,
        "rows_per_s": {k: round(v, 1) for k, v in rates.items()},
        "labels_changed_by_the_sentence_member": changed,
    }


def summary(results: dict) -> str:
    q, s = results["quality"], results["speed"]
    lines = [
        f"Seed {results['seed']}: the quick demo's spaces + tfidf + `sentence` "
        "(all-MiniLM-L6-v2 int8, frozen, mean-pooled; a tuned head), one sample each, "
        f"2 epochs, on {results['train_rows']:,} non-airline tweets (stratified; 70/15/15 "
        "split); greedy export of up to 6. Macro-F1 "
        "from `voxpop evaluate`; gaps with paired-bootstrap 95% intervals.\n",
        "| evaluated on | rows | weighted vote | soft vote | best member | sentence member | "
        "TF-IDF+LR | weighted - TF-IDF | what the sentence member adds to the weighted vote |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for where, f in q["evaluated"].items():
        sentence = {m: v for m, v in f["members"].items() if f"{m} (sentence)" in f["member_adds"]}
        adds = {m: a for m, a in f["member_adds"].items() if m.endswith("(sentence)")}
        best = f["best_member"]
        lines.append(
            f"| {where} | {f['rows']:,} | {f['votes'].get('weighted', '-')} | "
            f"{f['votes'].get('soft', '-')} | {best['macro_f1']} ({best['family']}) | "
            f"{', '.join(f'{v}' for v in sentence.values()) or 'not selected'} | "
            f"{f['baselines'].get('tfidf_logreg', '-')} | "
            f"{_gap(f, 'weighted vs baseline')} | "
            f"{', '.join(f'{a:+.4f}' for a in adds.values()) or '-'} |"
        )
    lines += [
        "",
        f"Cost at predict, {s['rows']:,} airline tweets, {s['threads']} threads, "
        f"encoding included (best of {s['repeats']}):",
        "",
        "| what runs | rows/s |",
        "| --- | --- |",
    ]
    lines += [f"| {k} | {v:,} |" for k, v in s["rows_per_s"].items()]
    if s["labels_changed_by_the_sentence_member"] is not None:
        lines.append(
            f"\nThe sentence member changes the soft vote's label of "
            f"{s['labels_changed_by_the_sentence_member']:.1%} of these rows."
        )
    lines.append("\n" + "; ".join(f"`{c}`" for c in q["commands"]) + f" (seconds: {q['seconds']})")
    return "\n".join(lines)


def _gap(f: dict, key: str) -> str:
    c = f["comparisons"].get(key)
    if c is None:
        return "-"
    return f"{c['difference']:+.4f} [{c['ci95'][0]:+.4f}, {c['ci95'][1]:+.4f}] {c['verdict']}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--airline-rows", type=int, default=1500)
    parser.add_argument("--train-rows", type=int, default=PLANS["quick"].train_rows)
    parser.add_argument("--speed-rows", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="keep an existing run and bundle; evaluate and time them again",
    )
    args = parser.parse_args()
    work = WORK / f"seed{args.seed}"
    results = {
        "seed": args.seed,
        "train_rows": args.train_rows,
        "quality": quality(work, args.seed, args.airline_rows, args.train_rows, args.reuse),
    }
    results["speed"] = speed(work, args.speed_rows, args.repeats)
    print(json.dumps(results, indent=1), flush=True)
    record(
        "encoder",
        results,
        summary_md=summary(results),
        command="python bench/bench_encoder.py " + " ".join(sys.argv[1:]),
    )


if __name__ == "__main__":
    main()
