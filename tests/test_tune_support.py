"""Helpers shared by the tuning tests (no tests here): tiny spaces and the 2,000-row tweet sample.

conftest's `tweets_sample` loses its `label` column under pandas 3 (`groupby().apply` drops the
grouping column), so `sample_table` draws the same kind of stratified sample with
`groupby().sample`, which keeps every column.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml

from voxpop.data.rundir import checkpoint_paths, read_metrics

SAMPLE_ROWS = 2000
METRICS_KEYS = {
    "trial_id",
    "family",
    "config",
    "epoch",
    "loss",
    "val_loss",
    "val_accuracy",
    "val_macro_f1",
    "val_per_class_f1",
    "node_id",
    "started",
    "ended",
}
TINY = {"embed_dim": 16, "batch_size": 64, "learning_rate": {"loguniform": [1e-3, 3e-3]}}


def sample_table(tweets_df: pd.DataFrame, directory: Path) -> Path:
    """A stratified 2,000-row sample of the tweets as Parquet (texts keep their newlines)."""
    sample = (
        tweets_df.groupby("label")
        .sample(frac=SAMPLE_ROWS / len(tweets_df), random_state=0)
        .sample(frac=1.0, random_state=0)
        .reset_index(drop=True)
    )
    path = directory / "tweets_sample.parquet"
    sample[["text", "label"]].to_parquet(path, index=False)
    return path


def space_file(directory: Path, name: str, **keys) -> str:
    """Write a tiny space file (the TINY keys plus `keys`) and return its path."""
    path = directory / f"{name}.yaml"
    path.write_text(yaml.safe_dump({**TINY, **keys}))
    return str(path)


def checkpoints(run_dir: Path) -> list[Path]:
    return checkpoint_paths(run_dir)


def metrics(checkpoint: Path) -> dict:
    return read_metrics(checkpoint)


# -- a tiny real job for the scheduler and budget tests ---------------------------------------------
TINY_CNN = {"family": "cnn", "filters": 8}
LEARNS, STALLS = 1e-2, 1e-7  # learning rates: one learns in an epoch, the other cannot


@pytest.fixture(scope="module")
def ray_local():
    """An embedded Ray with 2 CPUs for the module's runs."""
    from voxpop.tune_spaces.cluster import start_ray, stop_ray

    assert start_ray(num_cpus=2)
    yield
    stop_ray()


@pytest.fixture(scope="module")
def data(tweets_df, tmp_path_factory) -> Path:
    """The 2,000-row sample of real tweets as a table file."""
    return sample_table(tweets_df, tmp_path_factory.mktemp("data"))


def trial_epochs(row: dict) -> list[dict]:
    """A leaderboard row's trial's epoch records, in order (of the checkpoints kept)."""
    records = [metrics(c) for c in Path(row["trial_dir"]).glob("checkpoint_*")]
    return sorted(records, key=lambda r: r["epoch"])
