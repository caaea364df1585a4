"""Quality on real data: the ensemble against its best member and the baselines, per data set.

Each task runs the `voxpop` commands a user would (tune -> export -> evaluate) and reads the
figures from the evaluation reports (`report.json`), so the table shows what the tool delivers,
with the exact commands. The TF-IDF + logistic regression baseline is fitted by `voxpop evaluate` on
the bundle's own training split, i.e. the same rows the members were trained on.

Tasks:
- tweets: `voxpop demo` (the built-in tweets without the airline ones; 70/15/15 split) evaluated
  on its held-out test split and on the 14,638 airline tweets (out of domain). Reuses an existing
  demo directory (--demo-dir) when given. The demo is seed 42; every other `--tweets-seeds` seed
  reruns the demo's tuning (its data, space files and plan) with that seed.
- newsgroups: ../shared/datasets/newsgroups20_train.csv, 20 classes, 20% held out (stratified).
- rotten->uci: trained on rotten_tomatoes.csv (fresh/rotten), evaluated on its test split and on
  uci_sentences.csv (imdb/amazon/yelp; labels mapped positive=fresh, negative=rotten); once per
  `--rotten-seeds` seed (the seed of the split and of the search), as its 1,921-row test split
  alone cannot tell a point of macro-F1 from noise.

Every difference comes with the paired-bootstrap 95% interval from the report (`comparisons`).
`--reuse` keeps a task's existing bundle and only re-runs `voxpop evaluate`.
`--combine stack` exports every task's tuning run (tuned before when it is on disk, as with
`--reuse`) with `voxpop export --combine stack` into `bundle-stack`, evaluates it, and records
`<record>-stack`: the stacker beside the votes on the same members. Seed 42 of the tweets task
exports the demo's own run.
`--sentence-encoder NAME` also tunes the demo's `sentence` space (a head on that pretrained
encoder) in the newsgroups and rotten tasks (the tweets task tunes what its demo tuned), works in
WORK-sentence and records `quality-sentence` beside `quality`.

Run: .venv/bin/python bench/bench_quality.py [--tasks tweets,newsgroups,rotten] [--demo-dir DIR]
     [--tweets-seeds 42,43,44] [--rotten-seeds 42,43,44] [--reuse] [--sentence-encoder NAME]
     [--combine stack]
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

from common import DATASETS, RESULTS, Timer, machine, record
from voxpop.serving_cli.demo import DEMO_SENTENCE_ENCODER, PLANS, write_spaces

VOXPOP = str(Path(sys.executable).parent / "voxpop")
WORK = Path("/tmp/voxpop-bench-quality")
# `voxpop export` options of every task and the suffix of its bundle and report folders
# (`--combine stack` sets both, so a stacked bundle sits beside the voted one of the same run).
EXPORT_OPTIONS: list = []
SUFFIX = ""


def run(args: list) -> str:
    words = [VOXPOP, *map(str, args)]
    print("$", shlex.join(["voxpop", *words[1:]]), flush=True)
    done = subprocess.run(words, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"failed: {done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return shlex.join(["voxpop", *words[1:]])


def figures(report_json: Path) -> dict:
    """Macro-F1 of each vote, the best member, and the baselines in one report, each vote's
    bootstrap comparison with the best member and the TF-IDF baseline, and what each member adds."""
    report = json.loads(report_json.read_text())
    members = {name: m["macro_f1"] for name, m in report["members"].items()}
    best_member = max(members, key=members.get)
    return {
        "rows": report["data"]["n_evaluated"],
        "default_voting": report["primary"],
        "votes": {name: round(v["macro_f1"], 4) for name, v in report["votes"].items()},
        "best_member": {
            "id": best_member,
            "family": report["data"]["member_families"][best_member],
            "macro_f1": round(members[best_member], 4),
        },
        "members": {name: round(f1, 4) for name, f1 in members.items()},
        "baselines": {name: round(b["macro_f1"], 4) for name, b in report["baselines"].items()},
        "comparisons": {
            f"{c['vote']} vs {c['against'].split()[0]}": {
                "difference": round(c["difference"], 4),
                "ci95": [round(x, 4) for x in c["ci95"]],
                "verdict": c["verdict"],
            }
            for c in report["comparisons"]
        },
        "member_adds": {
            f"{m} ({report['data']['member_families'][m]})": round(c["adds"], 4)
            for m, c in report["member_contributions"].items()
        },
    }


def tune_and_export(
    work: Path,
    name: str,
    data: Path,
    tune_options: list,
    *,
    size: int,
    reuse: bool,
    runs: Path | None = None,
) -> tuple[list[str], bool]:
    """(the tune and export commands of a task, whether the tuning ran now); with `reuse` (and
    for the tuning, with `--combine stack`), a step whose output is on disk (the run, the bundle)
    is not run again. `runs`: the storage of the run (default: the task's own)."""
    runs = runs or work / "runs"
    tune = ["tune", data, *tune_options, "--storage", runs, "--name", name]
    export = [
        *("export", runs / name, "--out", bundle_dir(work), "--size", size, "--force"),
        *EXPORT_OPTIONS,
    ]
    skip = {
        "tune": (reuse or bool(SUFFIX)) and (runs / name).is_dir(),
        "export": reuse and (bundle_dir(work) / "ensemble.json").exists(),
    }
    commands = [
        shlex.join(["voxpop", *map(str, words)]) if skip[words[0]] else run(words)
        for words in (tune, export)
    ]
    return commands, not skip["tune"]


def bundle_dir(work: Path) -> Path:
    return work / f"bundle{SUFFIX}"


def reports_dir(work: Path, name: str = "reports") -> Path:
    return work / f"{name}{SUFFIX}"


# The documented `voxpop tune` settings of the newsgroups and rotten tasks.
TUNE_OPTIONS = [
    "--space",
    "cnn",
    "--space",
    "bigram",
    "--space",
    "tfidf",
    "--space",
    "tfidf_fusion",
    "--space",
    "tfidf_nb",
    "--samples",
    2,
    "--max-epochs",
    4,
    "--scheduler",
    "asha",
]


def write_csv(frame: pd.DataFrame, path: Path) -> Path:
    frame.to_csv(path, index=False, quoting=csv.QUOTE_ALL)
    return path


def test_split_csv(work: Path, name: str) -> Path:
    """The run's held-out test rows (never seen by tuning or selection) as a CSV."""
    from voxpop.data.rundir import read_run

    rows = read_run(work / "runs" / name).rows("test")
    return write_csv(rows[["text", "label"]], work / "test_split.csv")


def tweets(demo_dir: Path | None, reuse: bool) -> dict:
    if SUFFIX:  # the demo's own run, exported with EXPORT_OPTIONS like the other seeds
        return tweets_with_seed(demo_dir or WORK / "demo", 42, reuse)
    commands = []
    seconds = None
    if demo_dir is None and not (reuse and (WORK / "demo" / "bundle").exists()):
        demo_dir = WORK / "demo"
        with Timer() as timer:
            commands.append(run(["demo", "--out", demo_dir]))
        seconds = round(timer.seconds)
    else:
        # An existing demo: its evaluate step again, so the reports are today's code's.
        demo_dir = demo_dir or WORK / "demo"
        data = demo_dir / "data"
        commands.append(f"voxpop demo --out {demo_dir}")
        run(
            [
                "evaluate",
                demo_dir / "bundle",
                data / "test_split.csv",
                data / "airline_tweets.csv",
                "--out",
                demo_dir / "reports",
            ]
        )
    return {
        "commands": commands,
        "seconds": seconds,
        "evaluated": tweet_figures(demo_dir / "reports"),
    }


def tweets_with_seed(demo_dir: Path, seed: int, reuse: bool) -> dict:
    """The demo's tuning again with another seed (its own split and search): the demo's data,
    space files and plan, as `voxpop tune` / `export` / `evaluate` commands."""
    work = WORK / f"tweets-seed{seed}"
    plan = PLANS["full"]
    # Seed 42 is the demo itself: its run, when it is the one exported here (`--combine stack`).
    runs = demo_dir / "runs" if seed == 42 else None
    options = [
        *[
            item
            for path in sorted((demo_dir / "spaces").glob("*.yaml"))
            for item in ("--space", path)
        ],
        "--samples",
        plan.samples,
        "--max-epochs",
        plan.max_epochs,
        "--scheduler",
        plan.scheduler,
        "--keep-checkpoints",
        1,
        "--seed",
        seed,
    ]
    if (demo_dir / "spaces" / "sentence.yaml").exists():  # the demo ran with its sentence member
        options += ["--sentence-encoder", DEMO_SENTENCE_ENCODER]
    with Timer() as timer:
        commands, tuned = tune_and_export(
            work,
            "demo",
            demo_dir / "data" / "tweets_train.csv",
            options,
            size=plan.size,
            reuse=reuse,
            runs=runs,
        )
        test_csv = demo_dir / "data" / "test_split.csv" if runs else test_split_csv(work, "demo")
        commands.append(
            run(
                [
                    "evaluate",
                    bundle_dir(work),
                    test_csv,
                    demo_dir / "data" / "airline_tweets.csv",
                    "--out",
                    reports_dir(work),
                ]
            )
        )
    return {
        "commands": commands,
        "seconds": round(timer.seconds) if tuned else None,
        "evaluated": tweet_figures(reports_dir(work)),
    }


def tweet_figures(reports: Path) -> dict:
    return {
        "test split (in domain)": figures(reports / "test_split" / "report.json"),
        "airline tweets (out of domain)": figures(reports / "airline_tweets" / "report.json"),
    }


def newsgroups(reuse: bool) -> dict:
    work = WORK / "newsgroups"
    work.mkdir(parents=True, exist_ok=True)
    rows = pd.read_csv(DATASETS / "newsgroups20_train.csv")[["text", "label"]]
    test = rows.groupby("label").sample(frac=0.2, random_state=42)
    train = write_csv(rows.drop(test.index), work / "train.csv")
    test_csv = write_csv(test, work / "test.csv")
    with Timer() as timer:
        commands, tuned = tune_and_export(
            work, "ng", train, ["--test", test_csv, *TUNE_OPTIONS], size=4, reuse=reuse
        )
        report = reports_dir(work, "report")
        commands.append(run(["evaluate", bundle_dir(work), test_csv, "--out", report]))
    return {
        "commands": commands,
        "seconds": round(timer.seconds) if tuned else None,
        "evaluated": {"20% held out": figures(report / "report.json")},
    }


def rotten_to_uci(seed: int, reuse: bool) -> dict:
    work = WORK / f"rotten-seed{seed}"
    work.mkdir(parents=True, exist_ok=True)
    uci = pd.read_csv(DATASETS / "uci_sentences.csv")
    uci_csv = write_csv(uci[["text", "label"]], work / "uci_sentences.csv")
    with Timer() as timer:
        commands, tuned = tune_and_export(
            work,
            "rt",
            DATASETS / "rotten_tomatoes.csv",
            [*TUNE_OPTIONS, "--seed", seed],
            size=4,
            reuse=reuse,
        )
        test_csv = test_split_csv(work, "rt")
        commands.append(
            run(
                [
                    "evaluate",
                    bundle_dir(work),
                    test_csv,
                    uci_csv,
                    "--out",
                    reports_dir(work, "report"),
                    "--label-map",
                    "positive=fresh,negative=rotten",
                ]
            )
        )
    return {
        "commands": commands,
        "seconds": round(timer.seconds) if tuned else None,
        "evaluated": {
            "rotten test split (in domain)": figures(
                reports_dir(work, "report") / "test_split" / "report.json"
            ),
            "uci sentences (imdb/amazon/yelp)": figures(
                reports_dir(work, "report") / "uci_sentences" / "report.json"
            ),
        },
    }


def _gap(f: dict, key: str) -> str:
    """'+0.0034 [-0.0050, +0.0120] within noise' for one of the report's comparisons."""
    c = f["comparisons"].get(key)
    if c is None:
        return "-"
    return f"{c['difference']:+.4f} [{c['ci95'][0]:+.4f}, {c['ci95'][1]:+.4f}] {c['verdict']}"


def summary(results: dict) -> str:
    # The gaps shown: (vote, what it is compared with) -> the report's comparison key; a
    # stacked bundle's reports add the stacker's.
    stacked = any("stack" in f["votes"] for r in results.values() for f in r["evaluated"].values())
    shown = [("weighted", "best member"), ("weighted", "TF-IDF"), ("soft", "TF-IDF")]
    if stacked:
        shown += [("stack", "best member"), ("stack", "TF-IDF"), ("stack", "weighted")]
    columns = [f"{vote} - {against}" for vote, against in shown]
    vote_columns = ["weighted", "soft", "hard"] + (["stack"] if stacked else [])
    lines = [
        "Macro-F1 from `voxpop evaluate` reports; TF-IDF + LR (word 1-2 + char_wb 2-5, sublinear, "
        "C=4, balanced) fitted on the same training rows as the members. Gaps carry the "
        "report's paired-bootstrap 95% interval and its verdict (better / worse when the "
        "interval excludes zero, else within noise)"
        + (
            "; `stack - weighted` is the difference of the two scores (no interval)."
            if stacked
            else "."
        )
        + "\n",
        "| task | evaluated on | rows | "
        + " | ".join(f"{v} vote" for v in vote_columns)
        + (" | bundle default" if stacked else "")
        + " | best member | TF-IDF+LR | majority | "
        + " | ".join(columns)
        + " |",
        "|" + " --- |" * (7 + len(vote_columns) + stacked + len(columns)),
    ]
    gaps: dict[str, list] = {}
    for task, result in results.items():
        for where, f in result["evaluated"].items():
            votes, base, best = f["votes"], f["baselines"], f["best_member"]
            against = {
                "best member": best["macro_f1"],
                "TF-IDF": base["tfidf_logreg"],
                "weighted": votes["weighted"],
            }
            keys = {"best member": "best", "TF-IDF": "baseline"}
            lines.append(
                f"| {task} | {where} | {f['rows']:,} | "
                + " | ".join(str(votes.get(v, "-")) for v in vote_columns)
                + (f" | {f.get('default_voting', '-')}" if stacked else "")
                + f" | {best['macro_f1']} ({best['id']}, {best['family']}) | "
                f"{base.get('tfidf_logreg', '-')} | {base.get('majority', '-')} | "
                + " | ".join(
                    _gap(f, f"{vote} vs {keys[other]}")
                    if other in keys
                    else f"{votes[vote] - against[other]:+.4f}"
                    for vote, other in shown
                )
                + " |"
            )
            gaps.setdefault(f"{task.split(' (')[0]}: {where}", []).append(
                [votes[vote] - against[other] for vote, other in shown]
            )
    repeated = {where: rows for where, rows in gaps.items() if len(rows) > 1}
    if repeated:
        lines += [
            "",
            "Mean gap over the seeds (each seed: its own split and search):",
            "",
            "| evaluated on | seeds | " + " | ".join(columns) + " |",
            "|" + " --- |" * (2 + len(columns)),
        ]
        for where, rows in repeated.items():
            means = [sum(column) / len(column) for column in zip(*rows)]
            lines.append(
                f"| {where} | {len(rows)} | " + " | ".join(f"{m:+.4f}" for m in means) + " |"
            )
    lines += [
        "",
        "What each member adds to the weighted vote (its macro-F1 minus the vote's without "
        "that member, same rows):",
        "",
    ]
    for task, result in results.items():
        for where, f in result["evaluated"].items():
            adds = ", ".join(f"{m} {a:+.4f}" for m, a in f.get("member_adds", {}).items())
            lines.append(f"- {task}, {where}: {adds or '-'}")
    lines.append("")
    for task, result in results.items():
        took = ", ".join(
            part
            for part in (
                f"commit {result['commit']}" if result.get("commit") else "",
                f"{result['seconds']} s" if result.get("seconds") else "",
            )
            if part
        )
        took = f" ({took})" if took else ""
        lines.append(f"- {task}{took}: " + "; ".join(f"`{c}`" for c in result["commands"]))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default="tweets,newsgroups,rotten")
    parser.add_argument("--demo-dir", type=Path, default=None)
    parser.add_argument("--rotten-seeds", default="42,43,44")
    parser.add_argument(
        "--tweets-seeds",
        default="42,43,44",
        help="42 is `voxpop demo` itself; others rerun its tuning with that seed",
    )
    parser.add_argument(
        "--reuse", action="store_true", help="keep existing bundles; run only the evaluation again"
    )
    parser.add_argument("--sentence-encoder", default=None)
    parser.add_argument(
        "--combine",
        choices=("vote", "stack"),
        default="vote",
        help="stack: export each task's run with --combine stack (beside the voted bundle)",
    )
    args = parser.parse_args()
    record_name = "quality"
    if args.sentence_encoder:
        global WORK, TUNE_OPTIONS  # the tasks' settings, for this run only
        record_name, WORK = "quality-sentence", WORK.with_name(WORK.name + "-sentence")
        (space,) = write_spaces(WORK, ["sentence"])
        TUNE_OPTIONS = [
            *TUNE_OPTIONS,
            *("--space", space, "--sentence-encoder", args.sentence_encoder),
        ]
    if args.combine == "stack":
        global EXPORT_OPTIONS, SUFFIX
        EXPORT_OPTIONS, SUFFIX = ["--combine", "stack"], "-stack"
        record_name += SUFFIX
    # Tasks run separately add up: keep the figures of tasks not rerun this time.
    # Each task keeps the commit it was measured at (the record's header names the latest).
    previous = RESULTS / f"{record_name}.json"
    results = {}
    if previous.exists():
        kept = json.loads(previous.read_text())
        results = kept["results"]
        for result in results.values():
            result.setdefault("commit", kept["machine"]["commit"])
    demo_dir = args.demo_dir or WORK / "demo"
    runs = {
        "tweets": lambda: {
            "tweets (seed 42)": tweets(args.demo_dir, args.reuse),
            **{
                f"tweets (seed {seed})": tweets_with_seed(demo_dir, int(seed), args.reuse)
                for seed in args.tweets_seeds.split(",")
                if seed != "42"
            },
        },
        "newsgroups": lambda: {"newsgroups": newsgroups(args.reuse)},
        "rotten": lambda: {
            f"rotten (seed {seed})": rotten_to_uci(int(seed), args.reuse)
            for seed in args.rotten_seeds.split(",")
        },
    }
    for task in args.tasks.split(","):
        # A task run again replaces all its earlier entries (e.g. other seeds).
        results = {name: r for name, r in results.items() if name.split(" (")[0] != task}
        for name, result in runs[task]().items():
            results[name] = {**result, "commit": machine()["commit"]}
            print(name, json.dumps(result["evaluated"], indent=1), flush=True)
    command = (
        "bench/bench_quality.py"
        + (f" --sentence-encoder {args.sentence_encoder}" if args.sentence_encoder else "")
        + (" --combine stack" if SUFFIX else "")
    )
    record(record_name, results, summary_md=summary(results), command=command)


if __name__ == "__main__":
    main()
