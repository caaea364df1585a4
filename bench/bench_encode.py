"""Rows per second of Preprocessor.fit and .encode on 100k real tweets, beside today's encoders
before issue 20 (tests/legacy_encoders.py: the code of commit 8459b39, run in the same process on
the same rows, its arrays checked equal) and the alternatives a user already has (scikit-learn
CountVectorizer and the TF-IDF word + char_wb union, Keras TextVectorization), measured in the
same run; and the memory that encoding one 30 MB text takes (a fresh process per text).

Run: nice .venv/bin/python bench/bench_encode.py [--rows 100000]  (writes bench/results/encode.json)
The tweets are the shared 38,158-row set (or the built-in copy) repeated to --rows rows.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np

from common import BENCH, record
from voxpop.data import Preprocessor
from voxpop.data.builtin import load_tweets

sys.path.insert(0, str(BENCH.parent / "tests"))
import legacy_encoders  # noqa: E402  (today's encoders, the reference of tests/test_data_encoders.py)

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "tweet_sentiment.csv"


def timed(fn):
    """(result, (wall seconds, CPU seconds of this process summed over its threads))."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    return result, (time.perf_counter() - wall, time.process_time() - cpu)


def rate(rows: int, seconds: tuple[float, float]) -> dict:
    # On a shared machine wall time includes waiting for a core; CPU time does not.
    wall, cpu = seconds
    return {
        "seconds": round(wall, 3),
        "rows_per_s": round(rows / wall),
        "cpu_seconds": round(cpu, 3),
    }


def bench_voxpop(texts, labels, inputs=None, **options) -> dict:
    """voxpop's fit and encode, and today's (legacy) fit and encode of the same rows beside them;
    the arrays of the two encodes are compared."""
    pre = Preprocessor(**options)
    _, fit_s = timed(lambda: pre.fit(texts, labels))
    arrays, encode_s = timed(lambda: pre.encode(texts, inputs=inputs))
    _, legacy_fit_s = timed(lambda: legacy_encoders.fitted_state(pre, texts))
    legacy, legacy_encode_s = timed(lambda: legacy_encoders.encode(pre, texts, inputs=inputs))
    same = sorted(arrays) == sorted(legacy) and all(
        np.array_equal(arrays[name], legacy[name]) for name in arrays
    )
    return {
        "options": options,
        "inputs": list(arrays),
        "fit": rate(len(texts), fit_s),
        "encode": rate(len(texts), encode_s),
        "max_len": pre.max_len,
        "before": {
            "fit": rate(len(texts), legacy_fit_s),
            "encode": rate(len(texts), legacy_encode_s),
        },
        "encode_speedup_cpu": round(legacy_encode_s[1] / encode_s[1], 2),
        "fit_speedup_cpu": round(legacy_fit_s[1] / fit_s[1], 2),
        "arrays_equal_to_before": same,
        "output": " + ".join(f"{name} {list(array.shape)}" for name, array in arrays.items()),
    }


LONG_TEXT_SCRIPT = textwrap.dedent("""
    import json, re, sys, time
    import numpy as np
    sys.path.insert(0, sys.argv[3])
    from voxpop.data import Preprocessor

    def kb(field):
        return int(re.search(field + r":\\s+(\\d+) kB", open("/proc/self/status").read()).group(1))

    pre = Preprocessor.from_json(sys.argv[1])
    if sys.argv[2] == "legacy":
        import legacy_encoders
        encode = lambda texts: legacy_encoders.encode(pre, texts)
    else:
        encode = pre.encode
    text = "s" + "o" * int(sys.argv[4])
    encode(["warm up :) #tag @user http://x.co 12 soooo"])
    open("/proc/self/clear_refs", "w").write("5")  # peak RSS := current RSS
    before, started = kb("VmRSS"), time.perf_counter()
    encode([text])
    print(json.dumps({"characters": len(text), "peak_rss_growth_mb": round((kb("VmHWM") - before) / 1024, 1),
                      "seconds": round(time.perf_counter() - started, 2)}))
""")


def bench_long_text(pre: Preprocessor, tmp: Path) -> dict:
    """Peak RSS growth of encoding one long text ("s" + "o" * n: the repeat-squeezing regex's
    worst case) in a fresh process: voxpop on 30 MB, today's encoders on 3 MB (on 30 MB they take
    about 9.4 GB, measured once: too much for a shared machine)."""
    if not Path("/proc/self/clear_refs").exists():
        return {"skipped": "needs Linux /proc to reset the peak RSS"}
    path = tmp / "preprocess.json"
    pre.to_json(path)
    out = {}
    for which, length in (("voxpop", 30_000_000), ("legacy", 3_000_000)):
        done = subprocess.run(
            [
                sys.executable,
                "-c",
                LONG_TEXT_SCRIPT,
                str(path),
                which,
                str(BENCH.parent / "tests"),
                str(length),
            ],
            capture_output=True,
            text=True,
            timeout=1800,
            env={**os.environ, "PYTHONPATH": str(BENCH.parent / "src")},
        )
        out[which] = (
            json.loads(done.stdout) if done.returncode == 0 else {"error": done.stderr[-300:]}
        )
    return out


def bench_count_vectorizer(texts) -> dict:
    from sklearn.feature_extraction.text import CountVectorizer

    vectorizer = CountVectorizer(max_features=30000, min_df=2)
    _, fit_s = timed(lambda: vectorizer.fit(texts))
    matrix, transform_s = timed(lambda: vectorizer.transform(texts))
    return {
        "fit": rate(len(texts), fit_s),
        "encode": rate(len(texts), transform_s),
        "output": f"sparse counts {matrix.shape}",
        "version": _version("sklearn"),
    }


def bench_tfidf_union(texts) -> dict:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.pipeline import make_union

    union = make_union(
        TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=2),
        TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True, min_df=2),
    )
    _, fit_s = timed(lambda: union.fit(texts))
    matrix, transform_s = timed(lambda: union.transform(texts))
    return {
        "fit": rate(len(texts), fit_s),
        "encode": rate(len(texts), transform_s),
        "output": f"sparse TF-IDF word 1-2 + char_wb 2-5 {matrix.shape}",
        "version": _version("sklearn"),
    }


def bench_text_vectorization(texts, max_len: int) -> dict:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    layer = tf.keras.layers.TextVectorization(max_tokens=30000, output_sequence_length=max_len)
    data = tf.constant(texts)
    _, fit_s = timed(lambda: layer.adapt(data, batch_size=4096))
    out, encode_s = timed(lambda: layer(data).numpy())
    return {
        "fit": rate(len(texts), fit_s),
        "encode": rate(len(texts), encode_s),
        "output": f"int sequences {out.shape} (lowercase + strip punctuation, no features)",
        "version": tf.__version__,
    }


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
    results["keras_TextVectorization"] = bench_text_vectorization(
        texts, results["voxpop"]["max_len"]
    )
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        small = Preprocessor().fit(texts[::20], labels[::20])  # 5,000 rows of every class
        results["long_text_30mb"] = bench_long_text(small, Path(tmp))
    lines = [
        f'{results["data"]}; wall seconds (CPU seconds of the process). "before": today\'s '
        "encoders before issue 20 (tests/legacy_encoders.py, commit 8459b39) on the same rows in "
        "the same run; speedups are of CPU time; the arrays are compared.\n",
        "| encoder | fit rows/s | encode rows/s | encode s (CPU s) | before: fit / encode rows/s "
        "| encode speedup | same arrays | output |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, result in results.items():
        if isinstance(result, dict) and "fit" in result:
            before = result.get("before")
            then = (
                f"{before['fit']['rows_per_s']:,} / {before['encode']['rows_per_s']:,}"
                if before
                else ""
            )
            lines.append(
                f"| {name} | {result['fit']['rows_per_s']:,} | {result['encode']['rows_per_s']:,} | "
                f"{result['encode']['seconds']} ({result['encode']['cpu_seconds']}) | {then} | "
                f"{str(result['encode_speedup_cpu']) + 'x' if before else ''} | "
                f"{result.get('arrays_equal_to_before', '')} | {result['output']} |"
            )
    long_text = results["long_text_30mb"]
    if "voxpop" in long_text:
        now, then = long_text["voxpop"], long_text["legacy"]
        lines.append(
            f'\nOne long text ("s" + "o" * n) encoded in a fresh process, peak RSS growth: '
            f"voxpop {now['peak_rss_growth_mb']} MB for {now['characters']:,} characters "
            f"({now['seconds']} s); before, {then['peak_rss_growth_mb']} MB for a tenth of "
            f"it, {then['characters']:,} characters ({then['seconds']} s). Each encoder now "
            "reads the first MAX_TEXT_CHARS = 100,000 characters of a text."
        )
    print("\n".join(lines))
    record(
        "encode",
        results,
        summary_md="\n".join(lines),
        command=f"bench/bench_encode.py --rows {args.rows}",
    )


if __name__ == "__main__":
    main()
