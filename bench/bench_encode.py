"""Rows per second of Preprocessor.fit and .encode on 100k real tweets, beside the alternatives a
user already has (scikit-learn CountVectorizer and the TF-IDF word + char_wb union, Keras
TextVectorization), measured in the same run.

Run: nice .venv/bin/python bench/bench_encode.py [--rows 100000]  (writes bench/results/encode.json)
The tweets are the shared 38,158-row set (or the built-in copy) repeated to --rows rows.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
from common import record

from voxpop.data import Preprocessor
from voxpop.data.builtin import load_tweets

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "tweet_sentiment.csv"


def timed(fn):
    """(result, (wall seconds, CPU seconds of this process summed over its threads))."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    return result, (time.perf_counter() - wall, time.process_time() - cpu)


def rate(rows: int, seconds: tuple[float, float]) -> dict:
    # On a shared machine wall time includes waiting for a core; CPU time does not.
    wall, cpu = seconds
    return {"seconds": round(wall, 3), "rows_per_s": round(rows / wall),
            "cpu_seconds": round(cpu, 3)}


def bench_voxpop(texts, labels, inputs=None, **options) -> dict:
    pre = Preprocessor(**options)
    _, fit_s = timed(lambda: pre.fit(texts, labels))
    arrays, encode_s = timed(lambda: pre.encode(texts, inputs=inputs))
    return {"options": options, "inputs": list(arrays), "fit": rate(len(texts), fit_s),
            "encode": rate(len(texts), encode_s), "max_len": pre.max_len,
            "output": " + ".join(f"{name} {list(array.shape)}" for name, array in arrays.items())}


def bench_count_vectorizer(texts) -> dict:
    from sklearn.feature_extraction.text import CountVectorizer

    vectorizer = CountVectorizer(max_features=30000, min_df=2)
    _, fit_s = timed(lambda: vectorizer.fit(texts))
    matrix, transform_s = timed(lambda: vectorizer.transform(texts))
    return {"fit": rate(len(texts), fit_s), "encode": rate(len(texts), transform_s),
            "output": f"sparse counts {matrix.shape}", "version": _version("sklearn")}


def bench_tfidf_union(texts) -> dict:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.pipeline import make_union

    union = make_union(
        TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=2),
        TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True, min_df=2))
    _, fit_s = timed(lambda: union.fit(texts))
    matrix, transform_s = timed(lambda: union.transform(texts))
    return {"fit": rate(len(texts), fit_s), "encode": rate(len(texts), transform_s),
            "output": f"sparse TF-IDF word 1-2 + char_wb 2-5 {matrix.shape}",
            "version": _version("sklearn")}


def bench_text_vectorization(texts, max_len: int) -> dict:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    layer = tf.keras.layers.TextVectorization(max_tokens=30000, output_sequence_length=max_len)
    data = tf.constant(texts)
    _, fit_s = timed(lambda: layer.adapt(data, batch_size=4096))
    out, encode_s = timed(lambda: layer(data).numpy())
    return {"fit": rate(len(texts), fit_s), "encode": rate(len(texts), encode_s),
            "output": f"int sequences {out.shape} (lowercase + strip punctuation, no features)",
            "version": tf.__version__}


def _version(module: str) -> str:
    return __import__(module).__version__


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    args = parser.parse_args()
    tweets = load_tweets()
    reps = -(-args.rows // len(tweets))
    texts = (tweets["text"].tolist() * reps)[: args.rows]
    labels = np.tile(tweets["label"].to_numpy(), reps)[: args.rows]
    results = {
        "data": f"built-in tweets ({len(tweets)} rows, = {SHARED.name}) repeated to {args.rows} rows",
        "load_average_at_start": os.getloadavg(),
        "voxpop": bench_voxpop(texts, labels),
        "voxpop_tokens_features": bench_voxpop(texts, labels, ngrams=False),
        "voxpop_tokens_only": bench_voxpop(texts, labels, engineered_features=False, ngrams=False),
        "voxpop_ngrams_only": bench_voxpop(texts, labels, inputs=["grams", "gram_weights"]),
        "sklearn_CountVectorizer": bench_count_vectorizer(texts),
        "sklearn_TfidfVectorizer_union": bench_tfidf_union(texts),
    }
    results["keras_TextVectorization"] = bench_text_vectorization(texts, results["voxpop"]["max_len"])
    lines = [f"{results['data']}; wall seconds (CPU seconds of the process).\n",
             "| encoder | fit rows/s | encode rows/s | encode s (CPU s) | output |",
             "| --- | --- | --- | --- | --- |"]
    for name, result in results.items():
        if isinstance(result, dict) and "fit" in result:
            output = result["output"]
            lines.append(f"| {name} | {result['fit']['rows_per_s']:,} | {result['encode']['rows_per_s']:,} | "
                         f"{result['encode']['seconds']} ({result['encode']['cpu_seconds']}) | {output} |")
    print("\n".join(lines))
    record("encode", results, summary_md="\n".join(lines),
           command=f"bench/bench_encode.py --rows {args.rows}")


if __name__ == "__main__":
    main()
