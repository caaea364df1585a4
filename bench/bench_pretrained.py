"""What pretrained knowledge adds to the quick demo's vote, and what it costs per row at predict:
GloVe word vectors (`--embeddings glove-6b-50d`) and a sentence-encoder member
(`--sentence-encoder all-MiniLM-L6-v2`, family `sentence`).

Two tasks, each in the quick demo's regime (a stratified 6,000 rows, split 70/15/15 per seed,
members trained without Ray as a trial of `voxpop tune` trains them, best epoch on validation):
- tweets: the non-airline tweets (in domain: the test split) and a stratified 1,500 of the
  airline tweets (out of domain);
- rotten: rotten tomatoes (in domain: the test split) and all 3,000 UCI sentences (imdb, amazon,
  yelp; out of domain, positive = fresh, negative = rotten).
The demo's vote is the soft vote (equal weights) of its members cnn, bigram and tfidf_fusion
(the quick demo's spaces at their middle settings, 2 epochs). Variants: + the sentence member;
GloVe (cnn and bigram started from GloVe 6B 50d and fine-tuned: what `--embeddings` does to the
demo's token families); both. Each variant's macro-F1 minus the demo vote's, with its
paired-bootstrap 95% interval (`voxpop.reports.significance`, the evaluation report's own).

The encoder is frozen, so its embedding of a text does not depend on the seed: every text is
embedded once (voxpop's pooled encoder in ONNX Runtime, `voxpop.models.sentence.Embedder`, the
tokenizer `voxpop.data.sentence.SentenceTokenizer`: what `voxpop tune --sentence-encoder` runs),
cached under /tmp; per seed only the head (family `sentence`) is trained on the cached vectors.

Cost: on `--speed-rows` airline tweets, 2 threads, encoding included, best of `--repeats` after a
warm-up: each member as the bundle runs it (ONNX from `voxpop.export.convert.to_onnx`; the
sentence member composed with its encoder by `voxpop.models.sentence.with_head`, as export does),
RUN_ROWS rows per call, and the demo's vote with and without each piece.

Run: nice .venv/bin/python bench/bench_pretrained.py [--seeds 42,43,44] [--tasks tweets,rotten]
Writes bench/results/pretrained.json and rebuilds bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shlex
import time
from pathlib import Path

import numpy as np
import pandas as pd

from common import DATASETS, RESULTS, best_rate, record
from voxpop.data import Preprocessor, split_rows
from voxpop.data.builtin import demo_split
from voxpop.data.sentence import find_sentence_model
from voxpop.ensemble.metrics import macro_f1
from voxpop.ensemble.sessions import RUN_ROWS
from voxpop.reports.significance import bootstrap_scores, paired_difference, verdict
from voxpop.tune_spaces.prepare import sentence_encoder

CACHE = Path("/tmp/voxpop-bench-pretrained")
ENCODER = "all-MiniLM-L6-v2"
VECTORS = "glove-6b-50d"
TRAIN_ROWS = 6000  # the quick demo's
EPOCHS = 2  # the quick demo's --max-epochs
SENTENCE_EPOCHS = 5  # a head on fixed vectors: seconds per epoch
# The quick demo's spaces (voxpop.serving_cli.demo.DEMO_SPACES) at their middle settings.
MEMBERS = {
    "tfidf_fusion": ("tfidf_fusion", {"C": 4.0, "imbalance": "balanced"}),
    "cnn": (
        "cnn",
        {
            "embed_dim": 64,
            "filters": 64,
            "learning_rate": 2e-3,
            "batch_size": 64,
            "imbalance": "balanced",
        },
    ),
    "bigram": (
        "bigram",
        {
            "embed_dim": 64,
            "buckets": 65536,
            "learning_rate": 4e-3,
            "batch_size": 64,
            "imbalance": "balanced",
        },
    ),
}
GLOVE = {"embeddings": VECTORS, "embed_dim": 50}  # the vectors set the embedding's width
# bench_encoder's `sentence` space at its middle
SENTENCE = {
    "head_units": [128],
    "head_dropout": 0.15,
    "learning_rate": 3e-3,
    "batch_size": 64,
    "imbalance": "balanced",
}
VOTES = {
    "demo vote": ("tfidf_fusion", "cnn", "bigram"),
    "+ sentence": ("tfidf_fusion", "cnn", "bigram", "sentence"),
    "GloVe": ("tfidf_fusion", "cnn glove", "bigram glove"),
    "GloVe + sentence": ("tfidf_fusion", "cnn glove", "bigram glove", "sentence"),
    "sentence alone": ("sentence",),
}
PARTS = ("in domain", "out of domain")


def stratified(frame: pd.DataFrame, rows: int) -> pd.DataFrame:
    """As the quick demo draws its training rows (`voxpop.serving_cli.demo`)."""
    if rows >= len(frame):
        return frame.reset_index(drop=True)
    return (
        frame.groupby("label", group_keys=False)
        .sample(frac=rows / len(frame), random_state=0)
        .reset_index(drop=True)
    )


def task_data(task: str, rows: dict) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    """(training rows, external rows, what the external set is) with columns text, label."""
    if task == "tweets":
        train, airline = demo_split()
        external = stratified(airline, rows["airline"])
        return stratified(train, rows["train"]), external, f"airline tweets ({len(external):,})"
    rotten = pd.read_csv(DATASETS / "rotten_tomatoes.csv", usecols=["text", "label"])
    uci = pd.read_csv(DATASETS / "uci_sentences.csv", usecols=["text", "label"])
    uci["label"] = uci["label"].map({"positive": "fresh", "negative": "rotten"})
    uci = stratified(uci, rows["uci"])
    return stratified(rotten, rows["train"]), uci, f"UCI sentences ({len(uci):,})"


def embeddings(texts: list[str], tokenizer, pooled) -> tuple[np.ndarray, float]:
    """The pooled encoder's embedding of each text, from the cache when the same texts were
    embedded before; (embeddings, seconds spent embedding now, 0 from the cache)."""
    digest = hashlib.sha256("\x00".join(texts).encode()).hexdigest()[:16]
    path = CACHE / f"{ENCODER}-{digest}.npy"
    if path.exists():
        return np.load(path), 0.0
    from voxpop.models.sentence import Embedder

    started = time.perf_counter()
    vectors = Embedder(pooled, threads=2).embed(texts, tokenizer.encode)
    seconds = time.perf_counter() - started
    CACHE.mkdir(parents=True, exist_ok=True)
    np.save(path.with_suffix(".tmp.npy"), vectors)
    os.replace(path.with_suffix(".tmp.npy"), path)
    return vectors, seconds


def train(family: str, config: dict, *, data: dict, seed: int, epochs: int, **build_args):
    """(trained Keras model, seconds)."""
    import voxpop.models as vm
    from voxpop.models.runtime import configure
    from voxpop.models.training import fit

    configure(seed=seed)
    config = {**config, "seed": seed}
    model = vm.build(family, config, n_classes=data["n_classes"], **build_args)
    started = time.perf_counter()
    fit(
        model,
        train=data["train"],
        y_train=data["y"]["train"],
        val=data["val"],
        y_val=data["y"]["val"],
        config=config,
        epochs=epochs,
    )
    return model, time.perf_counter() - started


def compare(y, probs: dict, n_classes: int) -> dict:
    """Each vote's macro-F1 and its paired-bootstrap difference from the demo vote."""
    preds = {
        name: np.mean([probs[m] for m in members], axis=0).argmax(1)
        for name, members in VOTES.items()
    }
    resampled = bootstrap_scores(y, preds, n_classes)
    out = {}
    for name, pred in preds.items():
        row = {"macro_f1": round(float(macro_f1(y, pred, n_classes)), 4)}
        if name != "demo vote":
            diff = paired_difference(
                y, pred, preds["demo vote"], resampled[name] - resampled["demo vote"], n_classes
            )
            row.update(
                difference=round(float(diff["difference"]), 4),
                ci95=[round(x, 4) for x in diff["ci95"]],
                verdict=verdict(diff),
            )
        out[name] = row
    out["members"] = {
        m: round(float(macro_f1(y, p.argmax(1), n_classes)), 4) for m, p in probs.items()
    }
    return out


def one_seed(task: str, seed: int, *, frames, sentence_vectors, keep: dict | None = None) -> dict:
    """Train the members on one seed's split; macro-F1 of every vote in and out of domain."""
    from voxpop.data.vectors import match_vectors

    train_df, external = frames
    texts = train_df["text"].astype(str).tolist()
    labels = train_df["label"].to_numpy()
    split = split_rows(labels, val_size=0.15, test_size=0.15, seed=seed)
    pre = Preprocessor().fit([texts[i] for i in split.train], labels[split.train])
    index = {"train": split.train, "val": split.val, PARTS[0]: split.test}
    inputs = ["tokens", "features", "grams", "gram_weights"]
    data = {
        part: pre.encode([texts[i] for i in rows], inputs=inputs) for part, rows in index.items()
    }
    data[PARTS[1]] = pre.encode(external["text"].astype(str).tolist(), inputs=inputs)
    data["y"] = {part: pre.encode_labels(labels[rows]) for part, rows in index.items()}
    data["y"][PARTS[1]] = pre.encode_labels(external["label"].to_numpy())
    inside, outside = sentence_vectors
    for part, rows in index.items():
        data[part]["sentence_embedding"] = inside[rows]
    data[PARTS[1]]["sentence_embedding"] = outside
    data["n_classes"] = len(pre.labels)
    counts = np.bincount(data["train"]["tokens"].ravel(), minlength=pre.n_tokens)
    vectors = match_vectors(VECTORS, pre.vocabulary.tokens, counts=counts, seed=seed)
    shapes = {
        "n_tokens": pre.n_tokens,
        "n_features": pre.n_features,
        "n_buckets": pre.n_buckets,
    }
    models, seconds = {}, {}
    for name, (family, config) in MEMBERS.items():
        models[name], seconds[name] = train(
            family, config, data=data, seed=seed, epochs=EPOCHS, **shapes
        )
        if family in ("cnn", "bigram"):
            models[f"{name} glove"], seconds[f"{name} glove"] = train(
                family,
                {**config, **GLOVE},
                data=data,
                seed=seed,
                epochs=EPOCHS,
                embeddings=vectors.matrix,
                **shapes,
            )
    models["sentence"], seconds["sentence"] = train(
        "sentence",
        SENTENCE,
        data=data,
        seed=seed,
        epochs=SENTENCE_EPOCHS,
        sentence_dim=inside.shape[1],
        **shapes,
    )
    evaluated = {}
    for part in PARTS:
        probs = {
            name: model.predict(
                {i.name: data[part][i.name] for i in model.inputs}, batch_size=512, verbose=0
            )
            for name, model in models.items()
        }
        evaluated[part] = {
            "rows": len(data["y"][part]),
            **compare(data["y"][part], probs, data["n_classes"]),
        }
        print(task, seed, part, json.dumps(evaluated[part]), flush=True)
    if keep is not None:  # the first seed's models and preprocessor, for the cost measurement
        keep.update(models=models, pre=pre)
    return {
        "coverage": round(vectors.record()["coverage"], 4),
        "train_seconds": {k: round(v, 1) for k, v in seconds.items()},
        "evaluated": evaluated,
    }


def speed(kept: dict, pooled, tokenizer, texts: list[str], repeats: int) -> dict:
    """rows/s at predict of each member and of the votes, encoding included."""
    import onnxruntime as ort

    from voxpop.export.convert import to_onnx
    from voxpop.models.sentence import default_opset, with_head

    def session(graph):
        options = ort.SessionOptions()
        options.intra_op_num_threads = 2
        return ort.InferenceSession(
            graph.SerializeToString(), options, providers=["CPUExecutionProvider"]
        )

    pre, models = kept["pre"], kept["models"]
    sessions = {}
    for name, model in models.items():
        if name == "sentence":
            graph = with_head(pooled, to_onnx(model, opset=default_opset(pooled)))
        else:
            graph = to_onnx(model)
        sessions[name] = session(graph)
    reads = {name: [i.name for i in s.get_inputs()] for name, s in sessions.items()}

    def run(members: tuple[str, ...]) -> np.ndarray:
        wanted = sorted({i for m in members for i in reads[m]})
        probs = []
        for start in range(0, len(texts), RUN_ROWS):
            chunk = texts[start : start + RUN_ROWS]
            if wanted == ["attention_mask", "input_ids"]:
                arrays = tokenizer.encode(chunk)
            else:
                token_inputs = [i for i in wanted if i not in ("attention_mask", "input_ids")]
                arrays = pre.encode(chunk, inputs=token_inputs)
                if "input_ids" in wanted:
                    arrays.update(tokenizer.encode(chunk))
            probs.append(
                np.mean(
                    [
                        sessions[m].run(["probs"], {i: arrays[i] for i in reads[m]})[0]
                        for m in members
                    ],
                    axis=0,
                )
            )
        return np.concatenate(probs)

    rates = {}
    for name in sessions:
        rates[f"{name} alone"] = best_rate(lambda n=name: run((n,)), len(texts), repeats)
    for name, members in VOTES.items():
        if name != "sentence alone":
            rates[name] = best_rate(lambda m=members: run(m), len(texts), repeats)
    return {
        "rows": len(texts),
        "rows_per_s": {k: round(v, 1) for k, v in rates.items()},
        "ms_per_row": {k: round(1000 / v, 3) for k, v in rates.items()},
    }


def summary(results: dict) -> str:
    lines = [
        f"The quick demo's regime per task: a stratified {results['train_rows']:,} rows, split "
        "70/15/15 per seed; "
        f"members trained as trials are ({EPOCHS} epochs, the sentence head {SENTENCE_EPOCHS}; "
        "best on validation). Demo vote: soft vote of cnn + bigram + tfidf_fusion (the quick "
        "demo's spaces at their middle settings). `+ sentence`: with the sentence member "
        f"({ENCODER} int8, frozen, mean-pooled; head {SENTENCE}). `GloVe`: cnn and bigram "
        f"started from GloVe 6B 50d (`--embeddings {VECTORS}`, fine-tuned). Macro-F1; each "
        "variant minus the demo vote with its paired-bootstrap 95% interval (1,000 resamples).\n",
        "| task | seed | evaluated on | demo vote | + sentence | GloVe | GloVe + sentence | "
        "sentence alone |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    variants = [v for v in VOTES if v != "demo vote"]
    for task, result in results["tasks"].items():
        for seed, one in result["seeds"].items():
            for part, ev in one["evaluated"].items():
                where = (
                    result["external"]
                    if part == "out of domain"
                    else f"test split ({ev['rows']:,})"
                )
                cells = [
                    f"{ev[v]['macro_f1']:.4f} ({ev[v]['difference']:+.4f} "
                    f"[{ev[v]['ci95'][0]:+.4f}, {ev[v]['ci95'][1]:+.4f}])"
                    for v in variants
                ]
                lines.append(
                    f"| {task} | {seed} | {where} | {ev['demo vote']['macro_f1']:.4f} | "
                    f"{' | '.join(cells)} |"
                )
    lines += [
        "",
        "Mean over the seeds of each variant minus the demo vote (how many seeds' intervals lie "
        "above / below zero):",
        "",
        "| task | evaluated on | seeds | + sentence | GloVe | GloVe + sentence | sentence alone |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for task, result in results["tasks"].items():
        seeds = list(result["seeds"].values())
        for part in PARTS:
            cells = []
            for v in variants:
                rows = [s["evaluated"][part][v] for s in seeds]
                mean = sum(r["difference"] for r in rows) / len(rows)
                verdicts = [r["verdict"] for r in rows]
                cells.append(
                    f"{mean:+.4f} ({verdicts.count('better')} above, {verdicts.count('worse')} below)"
                )
            where = result["external"] if part == "out of domain" else "test split"
            lines.append(f"| {task} | {where} | {len(seeds)} | {' | '.join(cells)} |")
    s = results.get("speed")
    lines += (
        []
        if s is None
        else [
            "",
            f"Cost at predict: {s['rows']:,} {results['speed_on']}; ONNX Runtime, 2 threads, "
            f"{RUN_ROWS} rows "
            "per call, encoding included (the member's own inputs: the Preprocessor's for the "
            "token members, the word pieces for the sentence member), best of "
            f"{results['repeats']} after a warm-up.",
            "",
            "| what runs | rows/s | ms per row |",
            "| --- | --- | --- |",
        ]
    )
    lines += [
        f"| {k} | {v:,} | {s['ms_per_row'][k]} |"
        for k, v in (s or {}).get("rows_per_s", {}).items()
    ]
    embed = ", ".join(
        f"{task} {r['embedded']['texts']:,} texts in {r['embedded']['seconds']} s"
        for task, r in results["tasks"].items()
        if "embedded" in r
    )
    train_s = "; ".join(
        f"{task} seed {seed}: " + ", ".join(f"{m} {t}" for m, t in one["train_seconds"].items())
        for task, r in results["tasks"].items()
        for seed, one in r["seeds"].items()
        if "train_seconds" in one
    )
    coverage = ", ".join(
        f"{task} {one['coverage']:.1%}"
        for task, r in results["tasks"].items()
        for one in list(r["seeds"].values())[:1]
        if "coverage" in one
    )
    logged = [task for task, r in results["tasks"].items() if r.get("from") == "log"]
    lines += [
        "",
        f"Embedding every text once ({ENCODER}, 2 threads; 0 s when cached): {embed}. GloVe "
        f"covered {coverage} of the vocabulary (first seed). Training seconds: {train_s}. "
        f"Machine load (1/5/15-minute averages) at the start: {results['load_start']}, at the "
        f"end: {results['load_end']}."
        + (
            f" The {', '.join(logged)} seeds come from an earlier run's printed lines "
            "(`--from-log`: same code and settings; its training seconds not kept)."
            if logged
            else ""
        ),
    ]
    return "\n".join(lines)


def from_log(path: Path) -> dict:
    """{task: {seed: {"evaluated": ...}}} from the lines a run printed (`TASK SEED PART JSON`):
    a run stopped before it recorded keeps the seeds it finished."""
    found: dict = {}
    for line in path.read_text().splitlines():
        for part in PARTS:
            head, sep, body = line.partition(f" {part} ")
            words = head.split()
            if sep and len(words) == 2 and body.startswith("{"):
                task, seed = words
                found.setdefault(task, {}).setdefault(seed, {"evaluated": {}})
                found[task][seed]["evaluated"][part] = json.loads(body)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="42,43,44")
    parser.add_argument("--tasks", default="tweets,rotten")
    parser.add_argument("--train-rows", type=int, default=TRAIN_ROWS)
    parser.add_argument("--airline-rows", type=int, default=1500)
    parser.add_argument("--uci-rows", type=int, default=3000)
    parser.add_argument("--speed-rows", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument(
        "--from-log",
        type=Path,
        help="take the finished seeds of tasks not run now from a run's printed lines",
    )
    args = parser.parse_args()

    from voxpop.models.runtime import configure

    configure(threads=2)
    load_start = [round(x, 2) for x in os.getloadavg()]
    tokenizer, pooled = sentence_encoder(find_sentence_model(ENCODER))
    seeds = [int(s) for s in args.seeds.split(",")]
    tasks = [task for task in args.tasks.split(",") if task]  # none: only merge --from-log
    # Tasks run separately add up: keep the stored ones not run now.
    previous = RESULTS / "pretrained.json"
    stored = json.loads(previous.read_text())["results"] if previous.exists() else {}
    results = {
        "tasks": {t: r for t, r in stored.get("tasks", {}).items() if t not in tasks},
        "train_rows": args.train_rows,
        "load_start": load_start,
        "repeats": args.repeats,
        **{k: stored[k] for k in ("speed", "speed_on") if k in stored},
        # a run that trains nothing keeps the load the stored run saw
        **({k: stored[k] for k in ("load_start", "repeats") if k in stored} if not tasks else {}),
    }
    rows = {"train": args.train_rows, "airline": args.airline_rows, "uci": args.uci_rows}
    if args.from_log:
        for task, found in from_log(args.from_log).items():
            if task not in tasks:
                _, _, where = task_data(task, rows)
                results["tasks"][task] = {"external": where, "seeds": found, "from": "log"}
    kept: dict = {}
    speed_texts = None
    for task in tasks:
        train_df, external, where = task_data(task, rows)
        inside, s_in = embeddings(train_df["text"].astype(str).tolist(), tokenizer, pooled)
        outside, s_out = embeddings(external["text"].astype(str).tolist(), tokenizer, pooled)
        print(task, f"embedded in {s_in + s_out:.0f} s", flush=True)
        if speed_texts is None:  # the first task's external texts and first seed's members
            speed_texts = external["text"].astype(str).tolist()[: args.speed_rows]
            results["speed_on"] = f"{where.split(' (')[0]}, {task} seed {seeds[0]}'s members"
        results["tasks"][task] = {
            "external": where,
            "embedded": {"texts": len(inside) + len(outside), "seconds": round(s_in + s_out, 1)},
            "seeds": {
                str(seed): one_seed(
                    task,
                    seed,
                    frames=(train_df, external),
                    sentence_vectors=(inside, outside),
                    keep=kept if task == tasks[0] and seed == seeds[0] else None,
                )
                for seed in seeds
            },
        }
    if kept:
        results["speed"] = speed(kept, pooled, tokenizer, speed_texts, args.repeats)
        print(json.dumps(results["speed"]), flush=True)
    if tasks or "load_end" not in stored:
        results["load_end"] = [round(x, 2) for x in os.getloadavg()]
    else:
        results["load_end"] = stored["load_end"]
    RESULTS.mkdir(exist_ok=True)
    record(
        "pretrained",
        results,
        summary_md=summary(results),
        command=f"nice .venv/bin/python bench/bench_pretrained.py --seeds {args.seeds} "
        f"--tasks {shlex.quote(args.tasks)} --train-rows {args.train_rows} --airline-rows "
        f"{args.airline_rows} --uci-rows {args.uci_rows} --speed-rows "
        f"{args.speed_rows} --repeats {args.repeats}"
        + (f" --from-log {args.from_log}" if args.from_log else ""),
    )


if __name__ == "__main__":
    main()
