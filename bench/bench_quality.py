"""Quality on real data: the ensemble against its best member and the baselines, per data set.

Each task runs the `voxpop` commands a user would (tune -> export -> evaluate) and reads the
figures from the evaluation reports (`report.json`), so the table shows what the tool delivers,
with the exact commands. The TF-IDF + logistic regression baseline is fitted by `voxpop evaluate` on
the bundle's own training split, i.e. the same rows the members were trained on.

Tasks:
- tweets: `voxpop demo` (the built-in tweets without the airline ones; 70/15/15 split) evaluated
  on its held-out test split and on the 14,638 airline tweets (out of domain). Reuses an existing
  demo directory (--demo-dir) when given.
- newsgroups: ../shared/datasets/newsgroups20_train.csv, 20 classes, 20% held out (stratified).
- rotten->uci: trained on rotten_tomatoes.csv (fresh/rotten), evaluated on its test split and on
  uci_sentences.csv (imdb/amazon/yelp; labels mapped positive=fresh, negative=rotten).

Run: .venv/bin/python bench/bench_quality.py [--tasks tweets,newsgroups,rotten] [--demo-dir DIR]
"""

from __future__ import annotations

import argparse
import csv
import json
import shlex
import subprocess
import sys
from pathlib import Path

import pandas as pd
from common import DATASETS, RESULTS, Timer, record

VOXPOP = str(Path(sys.executable).parent / "voxpop")
WORK = Path("/tmp/voxpop-bench-quality")


def run(args: list) -> str:
    words = [VOXPOP, *map(str, args)]
    print("$", shlex.join(["voxpop", *words[1:]]), flush=True)
    done = subprocess.run(words, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"failed: {done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return shlex.join(["voxpop", *words[1:]])


def figures(report_json: Path) -> dict:
    """Macro-F1 of each vote, the best member, and the baselines in one report."""
    report = json.loads(report_json.read_text())
    members = {name: m["macro_f1"] for name, m in report["members"].items()}
    best_member = max(members, key=members.get)
    return {
        "rows": report["data"]["n_evaluated"],
        "votes": {name: round(v["macro_f1"], 4) for name, v in report["votes"].items()},
        "best_member": {"id": best_member, "macro_f1": round(members[best_member], 4)},
        "members": {name: round(f1, 4) for name, f1 in members.items()},
        "baselines": {name: round(b["macro_f1"], 4) for name, b in report["baselines"].items()},
    }


def write_csv(frame: pd.DataFrame, path: Path) -> Path:
    frame.to_csv(path, index=False, quoting=csv.QUOTE_ALL)
    return path


def tweets(demo_dir: Path | None) -> dict:
    commands = []
    seconds = None
    if demo_dir is None:
        demo_dir = WORK / "demo"
        with Timer() as timer:
            commands.append(run(["demo", "--out", demo_dir]))
        seconds = round(timer.seconds)
    else:
        commands.append(f"voxpop demo --out {demo_dir}")
    reports = demo_dir / "reports"
    return {"commands": commands, "seconds": seconds,
            "evaluated": {"test split (in domain)": figures(reports / "test_split" / "report.json"),
                          "airline tweets (out of domain)":
                              figures(reports / "airline_tweets" / "report.json")}}


def newsgroups() -> dict:
    work = WORK / "newsgroups"
    work.mkdir(parents=True, exist_ok=True)
    rows = pd.read_csv(DATASETS / "newsgroups20_train.csv")[["text", "label"]]
    test = rows.groupby("label").sample(frac=0.2, random_state=42)
    train = write_csv(rows.drop(test.index), work / "train.csv")
    test_csv = write_csv(test, work / "test.csv")
    with Timer() as timer:
        commands = [
            run(["tune", train, "--test", test_csv, "--space", "cnn", "--space", "bigram",
                 "--space", "tfidf", "--samples", 2, "--max-epochs", 4, "--scheduler", "asha",
                 "--storage", work / "runs", "--name", "ng"]),
            run(["export", work / "runs" / "ng", "--out", work / "bundle", "--size", 4, "--force"]),
            run(["evaluate", work / "bundle", test_csv, "--out", work / "report"]),
        ]
    return {"commands": commands, "seconds": round(timer.seconds),
            "evaluated": {"20% held out": figures(work / "report" / "report.json")}}


def rotten_to_uci() -> dict:
    work = WORK / "rotten"
    work.mkdir(parents=True, exist_ok=True)
    uci = pd.read_csv(DATASETS / "uci_sentences.csv")
    uci_csv = write_csv(uci[["text", "label"]], work / "uci_sentences.csv")
    with Timer() as timer:
        commands = [
            run(["tune", DATASETS / "rotten_tomatoes.csv", "--space", "cnn", "--space", "bigram",
                 "--space", "tfidf", "--samples", 2, "--max-epochs", 4, "--scheduler", "asha",
                 "--storage", work / "runs", "--name", "rt"]),
            run(["export", work / "runs" / "rt", "--out", work / "bundle", "--size", 4, "--force"]),
        ]
        frame = pd.read_parquet(work / "runs" / "rt" / "voxpop" / "data.parquet")
        test_csv = write_csv(frame[frame["split"] == "test"][["text", "label"]], work / "rt_test.csv")
        commands.append(run(["evaluate", work / "bundle", test_csv, uci_csv, "--out", work / "report",
                             "--label-map", "positive=fresh,negative=rotten"]))
    return {"commands": commands, "seconds": round(timer.seconds),
            "evaluated": {"rotten test split (in domain)": figures(work / "report" / "rt_test" / "report.json"),
                          "uci sentences (imdb/amazon/yelp)":
                              figures(work / "report" / "uci_sentences" / "report.json")}}


def summary(results: dict) -> str:
    lines = ["Macro-F1 from `voxpop evaluate` reports; TF-IDF + LR (word 1-2 + char_wb 2-5, sublinear, "
             "C=4, balanced) fitted on the same training rows as the members.\n",
             "| task | evaluated on | rows | weighted vote | soft vote | hard vote | best member | "
             "TF-IDF+LR | majority | vote - best member | vote - TF-IDF |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for task, result in results.items():
        for where, f in result["evaluated"].items():
            votes, base = f["votes"], f["baselines"]
            best_vote = votes.get("weighted", votes.get("soft"))
            tfidf = base.get("tfidf_logreg")
            lines.append(
                f"| {task} | {where} | {f['rows']:,} | {votes.get('weighted', '-')} | "
                f"{votes.get('soft', '-')} | {votes.get('hard', '-')} | "
                f"{f['best_member']['macro_f1']} ({f['best_member']['id']}) | {tfidf if tfidf is not None else '-'} | "
                f"{base.get('majority', '-')} | {best_vote - f['best_member']['macro_f1']:+.4f} | "
                f"{(best_vote - tfidf) if tfidf is not None else float('nan'):+.4f} |")
    lines.append("")
    for task, result in results.items():
        took = f" ({result['seconds']} s)" if result.get("seconds") else ""
        lines.append(f"- {task}{took}: " + "; ".join(f"`{c}`" for c in result["commands"]))
    return "\n".join(lines)


TASKS = {"tweets": None, "newsgroups": newsgroups, "rotten": rotten_to_uci}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default="tweets,newsgroups,rotten")
    parser.add_argument("--demo-dir", type=Path, default=None)
    args = parser.parse_args()
    # Tasks run separately add up: keep the figures of tasks not rerun this time.
    previous = RESULTS / "quality.json"
    results = json.loads(previous.read_text())["results"] if previous.exists() else {}
    for task in args.tasks.split(","):
        results[task] = tweets(args.demo_dir) if task == "tweets" else TASKS[task]()
        print(json.dumps(results[task]["evaluated"], indent=1), flush=True)
    record("quality", results, summary_md=summary(results), command="bench/bench_quality.py")


if __name__ == "__main__":
    main()
