"""Stacking against the weighted vote, and members kept under --max-ms-per-row budgets.

Runs: small samples of the shared sets (tweets, 3 classes; rotten tomatoes, 2), each a run
directory written without Ray (`write_fixture_run`) with six checkpoints-per-epoch trials of five
families (closed-form TF-IDF + LR, TF-IDF naive Bayes, CNN, bigram, LSTM), so that the candidates
differ in kind and in cost. Export's own machinery chooses on validation rows only:
`select_members` (greedy, size 5), `fit_stacker(stacking_rows(...))` (the stacker and its
cross-validated comparison with the weighted vote, which sets the bundle's default voting), and
`measure_costs` + `Budget` (each candidate converted with tf2onnx and timed with ONNX Runtime on
one thread, encoding included). The test rows score the combinations afterwards (ONNX Runtime
probabilities of the converted members), with 95% bootstrap intervals (`reports.significance`,
1000 paired resamples).

Run: .venv/bin/python bench/bench_stack.py [--rows 6000] [--seeds 42 43]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

from common import BENCH, RESULTS, record, stratified_sample

sys.path.insert(0, str(BENCH.parent / "tests"))
from run_factory import train_trials  # noqa: E402
from voxpop.data import Preprocessor
from voxpop.data.rundir import read_run, write_fixture_run
from voxpop.ensemble.metrics import macro_f1
from voxpop.ensemble.voting import soft_vote, stack_probs
from voxpop.export.cost import Budget, measure_costs
from voxpop.export.select import candidates_of, select_members
from voxpop.export.stack import fit_stacker, stack_wins, stacking_rows
from voxpop.reports.significance import bootstrap_scores, paired_difference

SETS = {"tweets": "tweet_sentiment.csv", "rotten": "rotten_tomatoes.csv"}
SMALL = {"embed_dim": 32, "batch_size": 64}
TRIALS = {  # trial id -> (family, config, epochs)
    "tfidf": ("tfidf", {"seed": 1}, 1),
    "tfidf_nb": ("tfidf_nb", {"seed": 2}, 1),
    "cnn": ("cnn", {**SMALL, "filters": 32, "seed": 3}, 3),
    "bigram": ("bigram", {**SMALL, "seed": 4}, 3),
    "lstm": ("lstm", {**SMALL, "units": 32, "seed": 5}, 2),
    "cnn2": (
        "cnn",
        {**SMALL, "filters": 16, "kernel_sizes": [2, 4], "seed": 6, "learning_rate": 3e-3},
        3,
    ),
}
SIZE = 5
BUDGET_SHARES = (1.0, 0.5, 0.25)  # of the unbudgeted greedy ensemble's measured cost


def make_run(root: Path, name: str, *, rows: int, seed: int) -> Path:
    """A run of TRIALS on `rows` stratified rows of the set `name` (val 20%, test 20%)."""
    from voxpop.models.runtime import configure

    configure(threads=2, seed=seed)
    df, split = stratified_sample(SETS[name], rows=rows, seed=seed)
    run = root / f"{name}-seed{seed}"
    data = write_fixture_run(
        run,
        texts=df["text"].astype(str),
        labels=df["label"].astype(str),
        split=split,
        preprocessor=Preprocessor(max_len=48, ngram_buckets=2**18),
    )
    train_trials(run, data, TRIALS, seed=seed)
    return run


def interval(scores: np.ndarray) -> list[float]:
    return [round(float(q), 4) for q in np.quantile(scores, [0.025, 0.975])]


def evaluate_run(run_dir: Path) -> dict:
    import onnxruntime as ort

    from voxpop.export.convert import to_onnx
    from voxpop.models import load_model

    run = read_run(run_dir)
    n_classes = len(run.preprocessor.labels)
    candidates, _ = candidates_of(run.checkpoints, run.y_val, metric="val_macro_f1")
    converted = {c.name: to_onnx(load_model(c.model_path)) for c in candidates}
    val = run.rows("val")
    costs = measure_costs(converted, run.preprocessor, val["text"].astype(str).tolist(), None)
    test = run.rows("test")
    y_test = run.preprocessor.encode_labels(test["label"].astype(str).to_numpy())
    inputs = run.encode(test)
    test_probs = {}
    for name, model in converted.items():
        session = ort.InferenceSession(
            model.SerializeToString(), providers=["CPUExecutionProvider"]
        )
        test_probs[name] = session.run(
            ["probs"], {i.name: inputs[i.name] for i in session.get_inputs()}
        )[0]

    def result_score(pred) -> float:
        return round(macro_f1(y_test, pred, n_classes), 4)

    def vote_pred(choice):
        return soft_vote([test_probs[c.name] for c in choice.members], choice.weights).argmax(1)

    greedy = select_members(
        run.checkpoints, run.y_val, method="greedy", size=SIZE, metric="val_macro_f1"
    )
    stacker = fit_stacker(stacking_rows(run, greedy.members), n_classes=n_classes)
    preds = {
        "best member": test_probs[candidates[0].name].argmax(1),
        "weighted vote": vote_pred(greedy),
        "stack": stack_probs([test_probs[c.name] for c in greedy.members], stacker).argmax(1),
    }
    preds["default (stack if it wins CV)"] = (
        preds["stack"] if stack_wins(stacker) else preds["weighted vote"]
    )
    resampled = bootstrap_scores(y_test, preds, n_classes)
    result = {
        "rows": {"train": len(run.split.train), "val": len(run.y_val), "test": len(y_test)},
        "members": [c.name.split("/")[0] for c in greedy.members],
        "test_macro_f1": {
            name: {
                "score": round(macro_f1(y_test, pred, n_classes), 4),
                "ci95": interval(resampled[name]),
            }
            for name, pred in preds.items()
        },
        "stack_minus_vote": {
            k: (round(v, 4) if isinstance(v, float) else [round(x, 4) for x in v])
            for k, v in paired_difference(
                y_test,
                preds["stack"],
                preds["weighted vote"],
                resampled["stack"] - resampled["weighted vote"],
                n_classes,
            ).items()
        },
        "cv_macro_f1_on_val": {k: round(v, 4) for k, v in stacker.cv_macro_f1.items()},
        "stack_chosen": stack_wins(stacker),
        "candidate_ms_per_row": {
            name.split("/")[0]: round(costs.of([name]), 4) for name in converted
        },
        "budgets": [
            {
                "max_ms_per_row": None,
                "members": [c.name.split("/")[0] for c in greedy.members],
                "ms_per_row": round(costs.of([c.name for c in greedy.members]), 4),
                "test_macro_f1": result_score(preds["weighted vote"]),
            }
        ],
    }
    full_cost = costs.of([c.name for c in greedy.members])
    for share in BUDGET_SHARES:
        budget = Budget(full_cost * share, costs)
        try:
            choice = select_members(
                run.checkpoints,
                run.y_val,
                method="greedy",
                size=SIZE,
                metric="val_macro_f1",
                budget=budget,
            )
        except Exception as err:  # a budget below every candidate: say so in the table
            result["budgets"].append(
                {"max_ms_per_row": round(budget.max_ms_per_row, 4), "error": str(err)}
            )
            continue
        result["budgets"].append(
            {
                "max_ms_per_row": round(budget.max_ms_per_row, 4),
                "members": [c.name.split("/")[0] for c in choice.members],
                "ms_per_row": round(costs.of([c.name for c in choice.members]), 4),
                "test_macro_f1": result_score(vote_pred(choice)),
            }
        )
    return result


def summary(results: dict) -> str:
    lines = [
        "Test macro-F1 (95% bootstrap interval) of the greedy weighted vote and the stacker "
        "(`--combine stack`), both chosen on validation rows only; `default` is what export "
        "makes the bundle's default (stack only when it beats the vote in 5-fold "
        "cross-validation over the validation rows).\n",
        "| run | best member | weighted vote | stack | stack - vote (95% CI) | CV on val "
        "(stack / vote) | default |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for run, r in results.items():
        t = r["test_macro_f1"]
        d = r["stack_minus_vote"]
        cell = {
            k: f"{v['score']:.4f} [{v['ci95'][0]:.3f}, {v['ci95'][1]:.3f}]" for k, v in t.items()
        }
        lines.append(
            f"| {run} | {cell['best member']} | {cell['weighted vote']} | {cell['stack']} "
            f"| {d['difference']:+.4f} [{d['ci95'][0]:+.3f}, {d['ci95'][1]:+.3f}] | "
            f"{r['cv_macro_f1_on_val']['stack']:.4f} / "
            f"{r['cv_macro_f1_on_val']['weighted']:.4f} | "
            f"{'stack' if r['stack_chosen'] else 'weighted'} |"
        )
    diffs = [r["stack_minus_vote"] for r in results.values()]
    default_gain = [
        r["test_macro_f1"]["default (stack if it wins CV)"]["score"]
        - r["test_macro_f1"]["weighted vote"]["score"]
        for r in results.values()
    ]
    lines += [
        "",
        f"Mean stack - weighted vote over {len(diffs)} runs: "
        f"{np.mean([d['difference'] for d in diffs]):+.4f} (the 95% interval excludes 0 on "
        f"{sum(d['ci95'][0] > 0 for d in diffs)} of {len(diffs)}); mean default (the "
        f"cross-validated choice) - weighted vote: {np.mean(default_gain):+.4f}. "
        "`--combine stack` stays off by default while its gain is mostly within the noise "
        "of one validation split; the out-of-fold rows of bagged runs (`stacking_rows`) "
        "would give it several times more rows to learn from.",
    ]
    lines += [
        "",
        "Members kept under `--max-ms-per-row` (shares of the unbudgeted ensemble's "
        "measured cost; ms per row on one thread, encoding included):\n",
        "| run | budget ms/row | members | ms/row | test macro-F1 (weighted vote) |",
        "| --- | --- | --- | --- | --- |",
    ]
    for run, r in results.items():
        for b in r["budgets"]:
            if "error" in b:
                lines.append(f"| {run} | {b['max_ms_per_row']} | {b['error']} | - | - |")
            else:
                lines.append(
                    f"| {run} | {b['max_ms_per_row'] or 'none'} | "
                    f"{', '.join(b['members'])} | "
                    f"{b['ms_per_row']} | {b['test_macro_f1']} |"
                )
    lines += [
        "",
        "A budget equal to the unbudgeted ensemble's cost can change its weights: greedy "
        "selection then explores re-picks of the same members instead of others, and keeps "
        "the best-scoring prefix on validation rows. Costs are measured once per run on a "
        "shared machine, so they carry its load.",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=6000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 43])
    parser.add_argument("--sets", nargs="+", default=list(SETS))
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument(
        "--summarize",
        action="store_true",
        help="only rewrite the summary of the recorded results/stack.json",
    )
    args = parser.parse_args()
    if args.summarize:
        recorded = json.loads((RESULTS / "stack.json").read_text())
        record(
            "stack",
            recorded["results"],
            summary_md=summary(recorded["results"]["runs"]),
            command=recorded["command"],
        )
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    work = args.work or Path(tempfile.mkdtemp(prefix="voxpop-bench-stack-"))
    results = {}
    for name in args.sets:
        for seed in args.seeds:
            run = work / f"{name}-seed{seed}"
            if not (run / "voxpop").is_dir():
                run = make_run(work, name, rows=args.rows, seed=seed)
            results[run.name] = evaluate_run(run)
            print(run.name, results[run.name]["test_macro_f1"], flush=True)
    record(
        "stack",
        {"rows": args.rows, "runs": results},
        summary_md=summary(results),
        command=f"bench/bench_stack.py --rows {args.rows} --seeds "
        f"{' '.join(map(str, args.seeds))} --sets {' '.join(args.sets)}",
    )


if __name__ == "__main__":
    main()
