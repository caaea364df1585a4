"""A real two-node Ray cluster, each node in its own network namespace made by this test:
`voxpop predict --address` (Ray Data) and `voxpop tune --address` use both nodes (DESIGN.md, "Ray
networking").

Needs root (skipped, as needs_netns allows, without it); CI runs as root, so the predict test is
in the default run (about 40 s). Reliability: the cluster fixture waits until the head counts both
nodes alive before a test starts (a second node registers after its `ray start` returns: a run
that began sooner could place everything on the head), and each node's environment says that
Ray may form a cluster, whatever an embedded Ray earlier in the same pytest process left set."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bundle_factory import bundle_dir, held_out_texts, tweet_preprocessor, tweet_rows  # noqa: F401
from test_tune_support import checkpoints, metrics, sample_table, space_file
from voxpop.ensemble import Ensemble

pytestmark = [pytest.mark.needs_netns]  # netns: root and iproute2

BIN = Path(sys.executable).parent
SUBNET = "10.213.77"  # the test's own private addresses, on its own veth pair
PORT = 6391
LOOPBACK_ONLY_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"  # voxpop.tune_spaces.cluster's


def _run(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(args, check=check, capture_output=True, text=True, timeout=300)


@pytest.fixture
def namespaces():
    if os.geteuid() != 0:
        pytest.skip("needs root to create network namespaces (ip netns add)")
    if shutil.which("ip") is None:
        pytest.skip("the `ip` tool (iproute2) is not installed")
    tag = uuid.uuid4().hex[:6]
    head, worker = f"vxh{tag}", f"vxw{tag}"
    try:
        for name in (head, worker):
            _run("ip", "netns", "add", name)
            _run("ip", "-n", name, "link", "set", "lo", "up")
        _run(
            "ip",
            "link",
            "add",
            f"vh{tag}",
            "netns",
            head,
            "type",
            "veth",
            "peer",
            "name",
            f"vw{tag}",
            "netns",
            worker,
        )
        for name, dev, host in ((head, f"vh{tag}", 1), (worker, f"vw{tag}", 2)):
            _run("ip", "-n", name, "addr", "add", f"{SUBNET}.{host}/24", "dev", dev)
            _run("ip", "-n", name, "link", "set", dev, "up")
        yield head, worker
    finally:
        for name in (head, worker):
            _stop_namespace_processes(name)
            _run("ip", "netns", "del", name, check=False)


def _stop_namespace_processes(namespace: str) -> None:
    """End the Ray processes this test started in `namespace`, by pid (`ray stop` would end
    every Ray process on the machine, including other people's)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        pids = [int(p) for p in _run("ip", "netns", "pids", namespace, check=False).stdout.split()]
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        if pids and sig == signal.SIGTERM:
            time.sleep(3)


def _in(namespace: str, *command: str, temp: Path) -> list[str]:
    # Token auth stays on everywhere else; these private namespaces are the test's own. A
    # multi-node cluster must be allowed (voxpop's embedded Ray sets "0" while it runs).
    return [
        "ip",
        "netns",
        "exec",
        namespace,
        "env",
        "-u",
        "RAY_ADDRESS",
        "RAY_AUTH_MODE=disabled",
        f"RAY_TMPDIR={temp}",
        f"{LOOPBACK_ONLY_ENV}=1",
        *command,
    ]


def _wait_for_nodes(
    namespace: str, address: str, temp: Path, count: int, timeout: float = 120
) -> None:
    """Until the cluster at `address` has `count` nodes alive."""
    probe = (
        "import ray, sys; ray.init(address=sys.argv[1], logging_level='ERROR'); "
        "print(sum(node['Alive'] for node in ray.nodes()))"
    )
    deadline = time.monotonic() + timeout
    while True:
        done = _run(*_in(namespace, sys.executable, "-c", probe, address, temp=temp), check=False)
        alive = int(done.stdout.split()[-1]) if done.stdout.split() else 0
        if alive >= count:
            return
        assert time.monotonic() < deadline, f"{alive} of {count} nodes alive: {done.stderr[-2000:]}"
        time.sleep(1)


@pytest.fixture
def cluster(namespaces):
    """`ray start --head` in the head namespace and a second node joining it from the worker
    namespace, once the head counts both alive. Yields (head namespace, worker namespace, head
    address, head's Ray temp dir, worker's Ray temp dir)."""
    head, worker = namespaces
    address = f"{SUBNET}.1:{PORT}"
    short = f"/tmp/vx{uuid.uuid4().hex[:6]}"  # Ray's socket paths must stay short
    head_temp, worker_temp = Path(f"{short}h"), Path(f"{short}w")
    try:
        _run(
            *_in(
                head,
                str(BIN / "ray"),
                "start",
                "--head",
                f"--node-ip-address={SUBNET}.1",
                f"--port={PORT}",
                "--num-cpus=1",
                "--include-dashboard=false",
                f"--temp-dir={head_temp}",
                temp=head_temp,
            )
        )
        _run(
            *_in(
                worker,
                str(BIN / "ray"),
                "start",
                f"--address={address}",
                f"--node-ip-address={SUBNET}.2",
                "--num-cpus=1",
                f"--temp-dir={worker_temp}",
                temp=worker_temp,
            )
        )
        _wait_for_nodes(head, address, head_temp, 2)
        yield head, worker, address, head_temp, worker_temp
    finally:
        for temp in (head_temp, worker_temp):
            shutil.rmtree(temp, ignore_errors=True)


def test_predict_with_ray_data_uses_both_nodes(cluster, bundle_dir, held_out_texts, tmp_path):
    """Two predictor actors of one core each on two nodes of one core: one on each. The labels are
    the Python API's for the bundle's default (weighted) vote."""
    head, _, address, head_temp, worker_temp = cluster
    rows = pd.DataFrame({"text": [text.replace("\r", " ") for text in held_out_texts[:80]]})
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    rows[:50].to_parquet(inputs / "a.parquet", index=False)
    rows[50:].to_csv(inputs / "b.csv", index=False)
    out = tmp_path / "cluster.csv"  # a folder of CSV parts, written by the workers
    predict = _run(
        *_in(
            head,
            str(BIN / "voxpop"),
            "predict",
            str(bundle_dir),
            str(inputs),
            "--address",
            address,
            "--workers",
            "2",
            "--batch-size",
            "16",
            "--probs",
            "--out",
            str(out),
            temp=head_temp,
        ),
        check=False,
    )
    assert predict.returncode == 0, predict.stdout[-3000:] + predict.stderr[-3000:]
    assert "must be at the same path on every node" in predict.stderr
    parts = sorted(out.glob("part-*.csv"))
    assert parts and sorted(out.iterdir()) == parts, list(out.iterdir())
    got = pd.concat(
        [pd.read_csv(part, keep_default_na=False) for part in parts], ignore_index=True
    ).sort_values(["source_file", "source_row"], ignore_index=True)
    assert (
        got["source_file"].tolist()
        == [str(inputs / "a.parquet")] * 50 + [str(inputs / "b.csv")] * 30
    )
    expected = Ensemble.load(bundle_dir, device="cpu").predict(
        rows["text"].tolist(), voting="weighted"
    )
    assert got["label"].tolist() == list(expected.labels)
    np.testing.assert_allclose(got["confidence"], expected.confidence, rtol=1e-5)
    # each node's worker logs name the predictor actors it ran: both nodes predicted
    for temp in (head_temp, worker_temp):
        logs = list(temp.glob("session_*/logs/worker-*.out"))
        assert any("_Predictor" in log.read_text(errors="replace") for log in logs), temp


@pytest.mark.slow  # 43-150 s on 2 shared cores: two TensorFlow trials after the cluster starts
def test_trials_run_on_both_nodes(cluster, tweets_df, tmp_path):
    head, _, address, head_temp, _ = cluster
    data = sample_table(tweets_df, tmp_path)
    space = space_file(tmp_path, "tiny_cnn", family="cnn", filters=8)
    tune = _run(
        *_in(
            head,
            str(BIN / "voxpop"),
            "tune",
            str(data),
            "--space",
            space,
            "--samples",
            "2",
            "--max-epochs",
            "1",
            "--scheduler",
            "fifo",
            "--address",
            address,
            "--storage",
            str(tmp_path / "runs"),
            "--name",
            "cluster",
            temp=head_temp,
        ),
        check=False,
    )
    assert tune.returncode == 0, tune.stdout[-3000:] + tune.stderr[-3000:]
    assert "must be on storage every node sees" in tune.stderr
    nodes = {metrics(c)["node_id"] for c in checkpoints(tmp_path / "runs" / "cluster")}
    assert len(nodes) == 2
