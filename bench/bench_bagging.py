"""k-fold bagging (`voxpop tune --folds K`) against the same configurations unbagged.

Each run: a stratified sample of a shared set (val 20%, test 20%), its configurations trained
without Ray as `voxpop tune` would (`tests/run_factory`: `train_trials` on the train split, early
stopping on val; `train_bags`, K fold models per configuration on train + val, each scored on
its held-out fold), the same epochs per model, then `export_bundle(..., combine="stack")`, the
real export: unbagged, members chosen and stacked on the validation rows; bagged, bags chosen and
stacked on the out-of-fold rows (train + val). The test rows (never seen by either) score each
bundle's weighted vote and stack through `Ensemble.predict`, against TF-IDF + logistic regression
(`reports.baselines`, fitted on the train rows, and on train + val, the rows the bags learn
from), with 95% paired bootstrap intervals (`reports.significance`, 1000 resamples).

Run: .venv/bin/python bench/bench_bagging.py [--rows 5000] [--folds 3] [--seeds 42] [--sets tweets]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from common import BENCH, record, stratified_sample

sys.path.insert(0, str(BENCH.parent / "tests"))
from run_factory import train_bags, train_trials  # noqa: E402
from voxpop.data import Preprocessor
from voxpop.data.rundir import read_run, write_fixture_run
from voxpop.ensemble import Ensemble
from voxpop.ensemble.metrics import macro_f1
from voxpop.export.bundle import export_bundle
from voxpop.reports.baselines import fit_tfidf
from voxpop.reports.significance import bootstrap_scores, paired_difference

SETS = {"tweets": "tweet_sentiment.csv", "rotten": "rotten_tomatoes.csv"}
SMALL = {"embed_dim": 32, "batch_size": 64}
CONFIGS = {  # config id -> (family, config, epochs): the same in both arms
    "tfidf": ("tfidf", {"seed": 1}, 1),
    "tfidf_nb": ("tfidf_nb", {"seed": 2}, 1),
    "cnn": ("cnn", {**SMALL, "filters": 32, "seed": 3}, 3),
    "bigram": ("bigram", {**SMALL, "seed": 4}, 3),
    "cnn2": (
        "cnn",
        {**SMALL, "filters": 16, "kernel_sizes": [2, 4], "seed": 6, "learning_rate": 3e-3},
        3,
    ),
}
VOTES = ("weighted", "stack")


def make_run(root: Path, df, split, *, folds: int, seed: int) -> tuple[Path, float]:
    """The run (bagged when `folds`) and its training seconds."""
    from voxpop.models.runtime import configure

    configure(threads=2, seed=seed)
    run = root / ("bagged" if folds else "plain")
    data = write_fixture_run(
        run,
        texts=df["text"].astype(str),
        labels=df["label"].astype(str),
        split=split,
        preprocessor=Preprocessor(max_len=48, ngram_buckets=2**18),
        folds=folds,
    )
    start = time.perf_counter()
    if folds:
        train_bags(run, data, CONFIGS, seed=seed)
    else:
        train_trials(run, data, CONFIGS, seed=seed)
    return run, time.perf_counter() - start


def export_and_predict(run: Path, out: Path, test_texts: list[str]) -> dict:
    start = time.perf_counter()
    export_bundle(run, out, combine="stack")
    seconds = time.perf_counter() - start
    ensemble = Ensemble.load(out, device="cpu", fused=False)
    manifest = ensemble.manifest
    preds = {vote: ensemble.predict(test_texts, voting=vote).label_ids for vote in VOTES}
    member_probs = ensemble.predict(test_texts, voting="soft").member_probs
    ensemble.close()
    return {
        "preds": preds,
        "member_preds": {
            f"{m.id} {m.bag.config_id if m.bag else m.checkpoint.split('/')[0]}": member_probs[
                m.id
            ].argmax(1)
            for m in manifest.members
        },
        "export_s": round(seconds, 1),
        "members": [
            (m.bag.config_id if m.bag else m.checkpoint.split("/")[0], m.weight)
            for m in manifest.members
        ],
        "selection_rows": manifest.selection.rows,
        "stack_default": manifest.voting.default == "stack",
        "stack_cv": {k: round(v, 4) for k, v in manifest.stacker.cv_macro_f1.items()},
    }


def evaluate(name: str, *, rows: int, folds: int, seed: int) -> dict:
    df, split = stratified_sample(SETS[name], rows=rows, seed=seed)
    labels = sorted(df["label"].astype(str).unique())
    n_classes = len(labels)
    index = {label: i for i, label in enumerate(labels)}
    y = df["label"].astype(str).map(index).to_numpy()
    texts = df["text"].astype(str).tolist()
    test_texts = [texts[i] for i in split.test]
    y_test = y[split.test]
    result = {"rows": {"train": len(split.train), "val": len(split.val), "test": len(split.test)}}
    preds = {}
    with tempfile.TemporaryDirectory(prefix="voxpop-bench-bagging-") as tmp:
        for arm, k in (("unbagged", 0), (f"bagged K={folds}", folds)):
            run, train_s = make_run(Path(tmp), df, split, folds=k, seed=seed)
            read_run(run)  # the run reads back before export
            exported = export_and_predict(run, Path(tmp) / f"bundle-{k}", test_texts)
            for vote, pred in exported.pop("preds").items():
                preds[f"{arm} {vote}"] = pred
            member_preds = exported.pop("member_preds")
            result[arm] = {
                **exported,
                "train_s": round(train_s, 1),
                "member_test_macro_f1": {
                    member: round(macro_f1(y_test, pred, n_classes), 4)
                    for member, pred in member_preds.items()
                },
            }
    train_val = np.concatenate([split.train, split.val])
    for what, positions in (("train", split.train), ("train+val", train_val)):
        pipeline = fit_tfidf([texts[i] for i in positions], y[positions])
        preds[f"tfidf+LR ({what})"] = pipeline.predict(test_texts)
    resampled = bootstrap_scores(y_test, preds, n_classes)
    scores = {
        name_: {
            "score": round(macro_f1(y_test, pred, n_classes), 4),
            "ci95": [round(float(q), 4) for q in np.quantile(resampled[name_], [0.025, 0.975])],
        }
        for name_, pred in preds.items()
    }

    def diff(a: str, b: str) -> dict:
        d = paired_difference(y_test, preds[a], preds[b], resampled[a] - resampled[b], n_classes)
        return {
            "difference": round(d["difference"], 4),
            "ci95": [round(x, 4) for x in d["ci95"]],
        }

    bagged = f"bagged K={folds}"
    result["test_macro_f1"] = scores
    result["differences"] = {
        f"{arm} {vote} - tfidf+LR (train)": diff(f"{arm} {vote}", "tfidf+LR (train)")
        for arm in ("unbagged", bagged)
        for vote in VOTES
    } | {
        f"{bagged} {vote} - unbagged {vote}": diff(f"{bagged} {vote}", f"unbagged {vote}")
        for vote in VOTES
    }
    return result


def summary(results: dict, *, folds: int) -> str:
    bagged = f"bagged K={folds}"
    lines = [
        f"Same {len(CONFIGS)} configurations ({', '.join(CONFIGS)}), same epochs per model, "
        f"unbagged (members chosen and stacked on the validation rows) against bagged with "
        f"--folds {folds} (bags chosen and stacked on the out-of-fold rows, train + val), both "
        "exported by `export_bundle(combine='stack')` and predicted by `Ensemble.predict` on "
        "the test rows. Test macro-F1 with 95% bootstrap intervals; differences are paired.\n",
        "| run | TF-IDF+LR (train) | unbagged weighted | unbagged stack | bagged weighted | "
        "bagged stack | train s (unbagged / bagged) | export s |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]

    def cell(score: dict) -> str:
        return f"{score['score']:.4f} [{score['ci95'][0]:.3f}, {score['ci95'][1]:.3f}]"

    for run, r in results.items():
        t = r["test_macro_f1"]
        lines.append(
            f"| {run} | {cell(t['tfidf+LR (train)'])} | {cell(t['unbagged weighted'])} | "
            f"{cell(t['unbagged stack'])} | {cell(t[f'{bagged} weighted'])} | "
            f"{cell(t[f'{bagged} stack'])} | {r['unbagged']['train_s']} / "
            f"{r[bagged]['train_s']} | {r['unbagged']['export_s']} / {r[bagged]['export_s']} |"
        )
    lines += ["", "Paired differences of test macro-F1 (95% bootstrap interval):", ""]
    lines += ["| run | comparison | difference | 95% CI |", "| --- | --- | --- | --- |"]
    for run, r in results.items():
        for what, d in r["differences"].items():
            lines.append(
                f"| {run} | {what} | {d['difference']:+.4f} | "
                f"[{d['ci95'][0]:+.3f}, {d['ci95'][1]:+.3f}] |"
            )
    lines += ["", verdict(results, folds=folds)]
    lines += ["", "Members (weights) and each member's own test macro-F1:", ""]
    for run, r in results.items():
        for arm in ("unbagged", bagged):
            a = r[arm]
            lines.append(
                f"- {run}, {arm}: chosen on {a['selection_rows']} rows; "
                + ", ".join(f"{m} x{w:g}" for m, w in a["members"])
                + "; members "
                + ", ".join(f"{m} {s:.4f}" for m, s in a["member_test_macro_f1"].items())
                + f"; stack CV {a['stack_cv']['stack']:.4f} vs weighted "
                f"{a['stack_cv']['weighted']:.4f} (default {'stack' if a['stack_default'] else 'weighted'})"
            )
    return "\n".join(lines)


def verdict(results: dict, *, folds: int) -> str:
    """What bagging earned over the runs: the paired differences and the cost, in one line."""
    bagged = f"bagged K={folds}"
    parts = []
    for vote in VOTES:
        diffs = [r["differences"][f"{bagged} {vote} - unbagged {vote}"] for r in results.values()]
        parts.append(
            f"{vote} {np.mean([d['difference'] for d in diffs]):+.4f} (interval above 0 on "
            f"{sum(d['ci95'][0] > 0 for d in diffs)} of {len(diffs)}, below on "
            f"{sum(d['ci95'][1] < 0 for d in diffs)})"
        )
    train = np.mean([r[bagged]["train_s"] / r["unbagged"]["train_s"] for r in results.values()])
    earns = all(
        r["differences"][f"{bagged} {vote} - unbagged {vote}"]["ci95"][0] > 0
        for r in results.values()
        for vote in VOTES
    )
    return (
        f"Bagged - unbagged test macro-F1, mean over {len(results)} run(s): "
        + "; ".join(parts)
        + f". Cost: {train:.1f}x the training time on this shared machine (each fold model "
        f"trains on {folds - 1}/{folds} of train + val), and every bag in the bundle runs its "
        f"{folds} fold graphs per row. Export seconds are not comparable: the unbagged arm "
        "exports first, and its time includes importing TensorFlow and tf2onnx. "
        + (
            "Bagging beat the unbagged ensemble outside the noise on every run and vote."
            if earns
            else "Not outside the noise on every run and vote: `--folds` stays off by default "
            "(0), available for users who can pay its cost."
        )
    )


def resummarize(name: str, folds: int) -> None:
    """Render results/NAME.json's summary again from its stored numbers (its machine and
    commit stamp kept: they say where the numbers were measured)."""
    import json

    from common import RESULTS, rebuild_results_md
    from voxpop.data.atomic import write_json

    path = RESULTS / f"{name}.json"
    payload = json.loads(path.read_text())
    results = {k: v for k, v in payload["results"].items() if k != "machine_load"}
    load = payload["results"]["machine_load"]
    payload["summary_md"] = summary(results, folds=folds) + (
        f"\n\nMachine load (1-minute load average; {payload['machine']['cores']} cores, "
        f"shared): {load['loadavg_1m_before']} before, {load['loadavg_1m_after']} after."
    )
    write_json(path, payload)
    rebuild_results_md()
    print(payload["summary_md"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=5000)
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--seeds", type=int, nargs="+", default=[42])
    parser.add_argument("--sets", nargs="+", default=["tweets"], choices=sorted(SETS))
    parser.add_argument("--name", default="bagging", help="results/NAME.json")
    parser.add_argument(
        "--append", action="store_true", help="keep the runs results/NAME.json already holds"
    )
    parser.add_argument(
        "--summarize", action="store_true", help="only re-render the recorded results' summary"
    )
    args = parser.parse_args()
    if args.summarize:
        resummarize(args.name, args.folds)
        return
    load_before = os.getloadavg()
    results = {}
    if args.append:  # the runs already recorded under NAME, kept beside the new ones
        import json

        from common import RESULTS

        recorded = json.loads((RESULTS / f"{args.name}.json").read_text())["results"]
        results = {k: v for k, v in recorded.items() if k != "machine_load"}
    for name in args.sets:
        for seed in args.seeds:  # recorded after each run: a long bench keeps what it measured
            key = f"{name}-seed{seed}"
            results[key] = evaluate(name, rows=args.rows, folds=args.folds, seed=seed)
            load = {
                "loadavg_1m_before": round(load_before[0], 2),
                "loadavg_1m_after": round(os.getloadavg()[0], 2),
            }
            text = summary(results, folds=args.folds) + (
                f"\n\nMachine load (1-minute load average; {os.cpu_count()} cores, shared): "
                f"{load['loadavg_1m_before']} before, {load['loadavg_1m_after']} after."
            )
            record(
                args.name,
                {**results, "machine_load": load},
                summary_md=text,
                command="bench/bench_bagging.py " + " ".join(sys.argv[1:]),
            )
            print(text, flush=True)


if __name__ == "__main__":
    main()
