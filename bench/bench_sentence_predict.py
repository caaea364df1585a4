"""What a sentence member costs `voxpop predict` end to end, now and before (--baseline-src).

Two `voxpop tune` runs on the same stratified `--train-rows` of the demo's training tweets (the
non-airline ones, seed 42): the quick demo's spaces (cnn, bigram, tfidf_fusion; one sample each,
two epochs), and the same plus the `sentence` space on all-MiniLM-L6-v2 (int8 ONNX); each run
exported with all its members. Then `voxpop predict` CSV to CSV (a subprocess on 2 cores, best of
`--repeats`, the two source trees in turn) of each bundle on `--rows` airline tweets (what the
demo evaluates out of domain) and `--rows` UCI sentences (the shared set, where present), from
this checkout and from `--baseline-src` (another checkout's src: the commit before the sentence
graph's runs were cut to their word pieces), with each run's peak memory and the two outputs'
labels compared. Start-up (imports, the bundle's checks) is measured on one row and taken out
of the per-row cost; the bundle without the sentence member predicts each set repeated
CHEAP_REPEATS times, so that its rows take long enough to time apart from its start-up.

Run: nice .venv/bin/python bench/bench_sentence_predict.py --baseline-src /tmp/base/src
     [--rows 2000] [--repeats 3] [--reuse]   (writes bench/results/sentence_predict.json)
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd

from bench_quality import run, write_csv
from common import DATASETS, Timer, record
from voxpop.serving_cli.demo import DEMO_SPACES, PLANS, write_spaces

WORK = Path("/tmp/voxpop-bench-sentence-predict")
CHEAP_REPEATS = 10
VOXPOP = str(Path(sys.executable).parent / "voxpop")
# Runs a command and prints its peak resident memory in KiB (the largest of its processes).
PEAK_RSS = (
    "import resource, subprocess, sys; done = subprocess.run(sys.argv[1:]); "
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(done.returncode)"
)


def prepare(work: Path, train_rows: int, rows: int) -> dict[str, Path]:
    """The training CSV and the CSVs to predict (airline tweets; UCI sentences if present)."""
    from voxpop.data.builtin import demo_split

    train, airline = demo_split()
    data = work / "data"
    data.mkdir(parents=True, exist_ok=True)
    train = train.groupby("label", group_keys=False).sample(
        frac=min(1.0, train_rows / len(train)), random_state=42
    )
    files = {"train": write_csv(train[["id", "text", "label"]], data / "train.csv")}
    files["airline tweets"] = write_csv(
        airline.sample(n=min(rows, len(airline)), random_state=0)[["id", "text"]],
        data / "airline.csv",
    )
    uci = DATASETS / "uci_sentences.csv"
    if uci.exists():
        frame = pd.read_csv(uci, keep_default_na=False)
        files["UCI sentences"] = write_csv(
            frame.sample(n=min(rows, len(frame)), random_state=0)[["text"]], data / "uci.csv"
        )
    return files


def build_bundle(
    work: Path, train_csv: Path, *, sentence: bool, reuse: bool
) -> tuple[Path, list[str]]:
    """Tune the quick demo's spaces (and the sentence head) once each, export every member
    (`reuse`: keep a bundle an earlier run built)."""
    name = "with_sentence" if sentence else "without_sentence"
    spaces = [
        space
        for space in PLANS["quick"].spaces
        if sentence or DEMO_SPACES[space]["family"] != "sentence"
    ]
    paths = write_spaces(work / "spaces", spaces)
    bundle = work / f"bundle_{name}"
    if reuse and (bundle / "ensemble.json").exists():
        return bundle, []
    shutil.rmtree(work / "runs" / name, ignore_errors=True)  # tune never overwrites a run
    commands = [
        run(
            [
                "tune",
                train_csv,
                *[w for p in paths for w in ("--space", p)],
                *("--samples", 1, "--max-epochs", 2, "--scheduler", "fifo"),
                *("--keep-checkpoints", 1, "--seed", 42, "--num-cpus", 2),
                *(("--sentence-encoder", "all-MiniLM-L6-v2") if sentence else ()),
                *("--storage", work / "runs", "--name", name),
            ]
        ),
        run(
            ["export", work / "runs" / name, "--out", bundle, "--size", len(spaces)]
            + ["--select", "top", "--force"]
        ),
    ]
    return bundle, commands


def predict(bundle: Path, source: Path, out: Path, src: Path | None) -> tuple[float, float]:
    """(wall seconds, peak MiB) of `voxpop predict BUNDLE SOURCE --out OUT` (from `src`)."""
    env = {**os.environ, "PYTHONPATH": str(src)} if src else None
    with Timer() as timer:
        done = subprocess.run(
            [sys.executable, "-c", PEAK_RSS, VOXPOP, "predict", bundle, source, "--out", out],
            check=True,
            capture_output=True,
            text=True,
            env=env,
        )
    return timer.seconds, int(done.stdout.split()[-1]) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline-src", type=Path, required=True)
    parser.add_argument("--train-rows", type=int, default=3000)
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--reuse", action="store_true", help="keep bundles an earlier run built")
    args = parser.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    files = prepare(WORK, args.train_rows, args.rows)
    one_row = write_csv(pd.read_csv(files["airline tweets"]).iloc[:1], WORK / "data" / "one.csv")
    sources = {"now": None, "before": args.baseline_src.resolve()}
    rows, commands = [], []
    for sentence in (False, True):
        bundle, made_by = build_bundle(WORK, files["train"], sentence=sentence, reuse=args.reuse)
        commands += made_by
        members = len(list((bundle / "members").glob("*.onnx")))
        start_up = {
            name: min(predict(bundle, one_row, WORK / "one_out.csv", src)[0] for _ in range(3))
            for name, src in sources.items()
        }
        for data_name, source in files.items():
            if data_name == "train":
                continue
            frame = pd.read_csv(source, keep_default_na=False)
            if not sentence:
                source = write_csv(
                    pd.concat([frame] * CHEAP_REPEATS), source.with_suffix(".repeated.csv")
                )
            n_rows = len(frame) * (1 if sentence else CHEAP_REPEATS)
            best = {name: (float("inf"), 0.0) for name in sources}
            for _ in range(args.repeats):
                for name, src in sources.items():
                    seconds, peak = predict(bundle, source, WORK / f"{name}.csv", src)
                    best[name] = min(best[name], (seconds, peak))
            labels = {
                name: pd.read_csv(WORK / f"{name}.csv", keep_default_na=False)["label"]
                for name in sources
            }
            rows.append(
                {
                    "bundle": f"{members} members, {'with' if sentence else 'without'} sentence",
                    "data": data_name,
                    "rows": n_rows,
                    **{
                        name: {
                            "seconds": round(seconds, 2),
                            "rows_per_s": round(n_rows / seconds, 1),
                            "ms_per_row": round(1000 * seconds / n_rows, 3),
                            "start_up_s": round(start_up[name], 2),
                            "ms_per_row_after_start_up": round(
                                1000 * (seconds - start_up[name]) / n_rows, 3
                            ),
                            "peak_mib": round(peak),
                        }
                        for name, (seconds, peak) in best.items()
                    },
                    "same_labels": bool(labels["now"].equals(labels["before"])),
                }
            )
            print(rows[-1], flush=True)
    lines = [
        f"`voxpop predict` CSV to CSV (subprocess, 2 cores, best of {args.repeats}, this checkout "
        f"and {args.baseline_src} in turn; peak memory of the process) with two bundles tuned on "
        f"the same {args.train_rows:,} demo training tweets: the quick demo's spaces, and the "
        "same plus the sentence member (all-MiniLM-L6-v2 int8), every member exported. "
        "rows/s is of the whole command; ms/row takes out its start-up (imports, the bundle's "
        "checks), measured on one row.",
        "",
        "| bundle | data | rows | now: rows/s (ms/row) | before: rows/s (ms/row) | now / before "
        "| start-up s now / before | peak MiB now / before | same labels |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        now, before = row["now"], row["before"]
        lines.append(
            f"| {row['bundle']} | {row['data']} | {row['rows']:,} | {now['rows_per_s']:,} "
            f"({now['ms_per_row_after_start_up']}) | {before['rows_per_s']:,} "
            f"({before['ms_per_row_after_start_up']}) | "
            f"{before['seconds'] / now['seconds']:.2f}x | {now['start_up_s']} / "
            f"{before['start_up_s']} | {now['peak_mib']:,} / {before['peak_mib']:,} | "
            f"{row['same_labels']} |"
        )
    lines.append("")
    for data_name in dict.fromkeys(row["data"] for row in rows):
        without, with_ = (row for row in rows if row["data"] == data_name)
        for name in sources:
            cost = {
                bundle: rows_[name]["ms_per_row_after_start_up"]
                for bundle, rows_ in (("with", with_), ("without", without))
            }
            lines.append(
                f"- {data_name}, {name}: the sentence member makes a row cost "
                f"{cost['with'] / cost['without']:.1f}x as much "
                f"({cost['with']} against {cost['without']} ms, start-up taken out)."
            )
    record(
        "sentence_predict",
        {"rows": rows, "commands": commands},
        summary_md="\n".join(lines),
        command="bench/bench_sentence_predict.py "
        + " ".join(sys.argv[1:]).replace(str(args.baseline_src), "BASE/src"),
    )


if __name__ == "__main__":
    main()
