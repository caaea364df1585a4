"""GPU trials on an embedded Ray that offers one GPU (a logical one on a machine without GPUs):
a trial that Ray gives a GPU trains only where TensorFlow sees one, and otherwise fails with the
reason instead of training on the CPU unnoticed."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from test_tune_support import checkpoints, metrics, sample_table, space_file
from voxpop.serving_cli.app import app
from voxpop.tune_spaces.cluster import start_ray, stop_ray
from voxpop.tune_spaces.runner import TuneOptions, run_tuning


@pytest.fixture(scope="module")
def ray_one_gpu():
    import ray

    assert start_ray(num_cpus=2, num_gpus=1)
    yield ray
    stop_ray()


def test_gpu_trials_train_only_where_tensorflow_sees_the_gpu(ray_one_gpu, tweets_df, tmp_path):
    import tensorflow as tf

    space = space_file(tmp_path, "tiny_cnn", family="cnn", filters=8)
    result = CliRunner().invoke(
        app,
        [
            "tune",
            str(sample_table(tweets_df, tmp_path)),
            "--space",
            space,
            "--samples",
            "2",
            "--max-epochs",
            "1",
            "--scheduler",
            "fifo",
            "--cpus-per-trial",
            "1",
            "--gpus-per-trial",
            "0.5",
            "--storage",
            str(tmp_path / "runs"),
            "--name",
            "gpus",
        ],
    )
    run_dir = tmp_path / "runs" / "gpus"
    if tf.config.list_physical_devices("GPU"):
        # A GPU machine: both trials trained on GPU 0, at the same time (half a GPU each).
        assert result.exit_code == 0, result.output
        records = [metrics(c) for c in checkpoints(run_dir)]
        assert [r["gpu_ids"] for r in records] == [["0"], ["0"]]
        assert max(r["trial_started"] for r in records) < min(r["ended"] for r in records)
    else:
        # Ray placed each trial on the (logical) GPU; TensorFlow has none: no trial trains.
        assert result.exit_code == 2
        error = [line for line in result.output.splitlines() if line.startswith("error:")]
        assert len(error) == 1, result.output
        assert error[0].startswith("error: every trial failed (2); first error: ")
        assert (
            "Ray gave this trial GPU 0 (--gpus-per-trial) but TensorFlow sees no GPU here; "
            "install voxpop[gpu] (tensorflow[and-cuda]) on the GPU nodes, or use "
            "--gpus-per-trial 0"
        ) in error[0]
        assert checkpoints(run_dir) == []


def test_gpus_per_trial_above_the_cluster_total_is_refused(ray_one_gpu, tmp_path):
    from voxpop.data.errors import VoxpopError

    options = TuneOptions(data=tmp_path / "unused.csv", gpus_per_trial=2, storage=tmp_path)
    with pytest.raises(VoxpopError, match="--gpus-per-trial 2: more than the cluster's 1 GPUs"):
        run_tuning(options)
