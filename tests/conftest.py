"""Shared test fixtures: the real labelled data sets in ../shared/datasets (skipped when absent)."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]
DATASETS = Path(os.environ.get("VOXPOP_DATASETS", REPO.parent / "shared" / "datasets"))


def dataset_path(name: str) -> Path:
    """Path of a file in the shared data sets; skips the test with a clear reason when absent."""
    path = DATASETS / name
    if not path.exists():
        pytest.skip(f"real data set {path} is absent (set VOXPOP_DATASETS to its folder)")
    return path


@pytest.fixture(scope="session")
def tweets_df() -> pd.DataFrame:
    """The 38,158 labelled tweets (negative/neutral/positive)."""
    return pd.read_csv(dataset_path("tweet_sentiment.csv"))


@pytest.fixture(scope="session")
def tweets_sample(tweets_df) -> pd.DataFrame:
    """A stratified 2,000-row sample of the tweets (seed 0), the size most tests train on."""
    fraction = 2000 / len(tweets_df)
    parts = [rows.sample(frac=fraction, random_state=0) for _, rows in tweets_df.groupby("label")]
    return pd.concat(parts).sample(frac=1.0, random_state=0).reset_index(drop=True)
