"""A real two-node Ray cluster, each node in its own network namespace made by this test, and
`voxpop tune --address` placing trials on both (DESIGN.md, "Ray networking")."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from test_tune_support import checkpoints, metrics, sample_table, space_file

pytestmark = [pytest.mark.slow, pytest.mark.needs_netns]  # netns: root and iproute2

BIN = Path(sys.executable).parent
SUBNET = "10.213.77"  # the test's own private addresses, on its own veth pair
PORT = 6391


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
        for i, name in enumerate((head, worker), start=1):
            _run("ip", "netns", "add", name)
            _run("ip", "-n", name, "link", "set", "lo", "up")
        _run("ip", "link", "add", f"vh{tag}", "netns", head, "type", "veth", "peer", "name",
             f"vw{tag}", "netns", worker)
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
    # Token auth stays on everywhere else; these private namespaces are the test's own.
    return ["ip", "netns", "exec", namespace, "env", "RAY_AUTH_MODE=disabled",
            f"RAY_TMPDIR={temp}", *command]


@pytest.fixture
def cluster(namespaces):
    """`ray start --head` in the head namespace and a second node joining it from the worker
    namespace. Yields (head namespace, worker namespace, head address, head's Ray temp dir)."""
    head, worker = namespaces
    address = f"{SUBNET}.1:{PORT}"
    short = f"/tmp/vx{uuid.uuid4().hex[:6]}"  # Ray's socket paths must stay short
    head_temp, worker_temp = Path(f"{short}h"), Path(f"{short}w")
    try:
        _run(*_in(head, str(BIN / "ray"), "start", "--head", f"--node-ip-address={SUBNET}.1",
                  f"--port={PORT}", "--num-cpus=1", "--include-dashboard=false",
                  f"--temp-dir={head_temp}", temp=head_temp))
        _run(*_in(worker, str(BIN / "ray"), "start", f"--address={address}",
                  f"--node-ip-address={SUBNET}.2", "--num-cpus=1", f"--temp-dir={worker_temp}",
                  temp=worker_temp))
        yield head, worker, address, head_temp
    finally:
        for temp in (head_temp, worker_temp):
            shutil.rmtree(temp, ignore_errors=True)


def test_trials_run_on_both_nodes(cluster, tweets_df, tmp_path):
    head, _, address, head_temp = cluster
    data = sample_table(tweets_df, tmp_path)
    space = space_file(tmp_path, "tiny_cnn", family="cnn", filters=8)
    tune = _run(*_in(head, str(BIN / "voxpop"), "tune", str(data), "--space", space,
                     "--samples", "2", "--max-epochs", "1", "--scheduler", "fifo",
                     "--address", address, "--storage", str(tmp_path / "runs"),
                     "--name", "cluster", temp=head_temp), check=False)
    assert tune.returncode == 0, tune.stdout[-3000:] + tune.stderr[-3000:]
    assert "must be on storage every node sees" in tune.stderr
    nodes = {metrics(c)["node_id"] for c in checkpoints(tmp_path / "runs" / "cluster")}
    assert len(nodes) == 2
