"""A Ray worker node that disappears mid-run: its trials are retried (--max-failures) on the node
that remains, and the run finishes with every trial. The two-node cluster is test_tune_cluster.py's
(each node in a network namespace of the test's own)."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from test_tune_cluster import BIN, _in, _stop_namespace_processes, cluster, namespaces  # noqa: F401
from test_tune_support import checkpoints, metrics, sample_table, space_file

pytestmark = [pytest.mark.slow, pytest.mark.needs_netns]  # netns: root and iproute2
TRIALS, EPOCHS = 4, 3


def _nodes_with_checkpoints(run_dir: Path) -> set[str]:
    return {metrics(c)["node_id"] for c in checkpoints(run_dir)}


def test_trials_of_a_stopped_worker_node_are_retried_on_the_head(cluster, tweets_df, tmp_path):
    head, worker, address, head_temp, _ = cluster
    run_dir = tmp_path / "runs" / "lossy"
    data = sample_table(tweets_df, tmp_path)
    space = space_file(tmp_path, "tiny_cnn", family="cnn", filters=8)
    tune = subprocess.Popen(
        _in(
            head,
            str(BIN / "voxpop"),
            "tune",
            str(data),
            "--space",
            space,
            "--samples",
            str(TRIALS),
            "--max-epochs",
            str(EPOCHS),
            "--scheduler",
            "fifo",
            "--max-failures",
            "2",
            "--keep-checkpoints",
            str(EPOCHS),
            "--address",
            address,
            "--storage",
            str(tmp_path / "runs"),
            "--name",
            "lossy",
            temp=head_temp,
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 400
    while len(_nodes_with_checkpoints(run_dir)) < 2:  # both nodes are training
        assert tune.poll() is None, tune.stdout.read()[-3000:]
        assert time.monotonic() < deadline, "no checkpoint from both nodes in time"
        time.sleep(0.5)
    _stop_namespace_processes(worker)  # the worker node disappears
    stopped_at = time.time()
    output, _ = tune.communicate(timeout=600)
    assert tune.returncode == 0, output[-3000:]

    records = [metrics(c) for c in checkpoints(run_dir)]  # every epoch kept (--keep-checkpoints)
    trained_to_the_end = {r["trial_id"] for r in records if r["epoch"] == EPOCHS}
    assert len(trained_to_the_end) == TRIALS, output[-4000:]
    # after the stop only the head trains; before it both nodes did
    assert len({r["node_id"] for r in records if r["ended"] > stopped_at + 1}) == 1
    assert len({r["node_id"] for r in records if r["ended"] < stopped_at}) == 2
    assert "restart(s)" in output  # the leaderboard marks the retried trials
