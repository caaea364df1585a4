"""Logical GPUs: an embedded Ray offering 2 GPUs packs four 0.5-GPU trials at once."""

from __future__ import annotations

from collections import Counter

import pytest
from test_tune_support import checkpoints, metrics, sample_table, space_file

from voxpop.tune_spaces.cluster import start_ray, stop_ray
from voxpop.tune_spaces.runner import TuneOptions, run_tuning


@pytest.fixture(scope="module")
def ray_two_gpus():
    import ray

    assert start_ray(num_cpus=2, num_gpus=2)
    yield ray
    stop_ray()


def test_half_gpu_trials_run_four_at_once(ray_two_gpus, tweets_df, tmp_path):
    options = TuneOptions(
        data=sample_table(tweets_df, tmp_path),
        spaces=(space_file(tmp_path, "tiny_cnn", family="cnn", filters=8),),
        samples=4, max_epochs=1, scheduler="fifo", cpus_per_trial=0.5, gpus_per_trial=0.5,
        storage=tmp_path / "runs", name="gpus",
    )
    outcome = run_tuning(options)
    assert [row["error"] for row in outcome.leaderboard] == [None] * 4
    records = [metrics(c) for c in checkpoints(outcome.run_dir)]
    assert len({r["trial_id"] for r in records}) == 4
    # Each GPU carries two trials; all four were running at the same moment.
    assert sorted(Counter(gpu for r in records for gpu in r["gpu_ids"]).values()) == [2, 2]
    assert max(r["trial_started"] for r in records) < min(r["ended"] for r in records)


def test_gpus_per_trial_above_the_cluster_total_is_refused(ray_two_gpus, tmp_path):
    from voxpop.data.errors import VoxpopError

    options = TuneOptions(data=tmp_path / "unused.csv", gpus_per_trial=3, storage=tmp_path)
    with pytest.raises(VoxpopError, match="--gpus-per-trial 3: more than the cluster's 2 GPUs"):
        run_tuning(options)
