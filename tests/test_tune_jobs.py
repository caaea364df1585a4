"""`ray job submit -- voxpop tune ...`: the job joins the cluster it was submitted to (RAY_ADDRESS,
which Ray Jobs sets for the entrypoint), and its trials run there, not on a private Ray.

The cluster is a real `ray start --head` on loopback only, with token authentication on (a fresh
token of the test's own), its dashboard (the Jobs API server) on a free loopback port; the job is
submitted with the Jobs SDK (`JobSubmissionClient`) from a process that holds the token.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psutil
import pytest

from s3_server import free_port
from test_tune_support import checkpoints, metrics, sample_table, space_file

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
HEAD_CPUS = 3  # not this machine's core count: the job's "Ray: 3 CPUs" is the cluster's
SUBMIT = """
import json, sys, time
from ray.job_submission import JobStatus, JobSubmissionClient

client = JobSubmissionClient(sys.argv[1])
job = client.submit_job(entrypoint=sys.argv[2])
deadline = time.monotonic() + float(sys.argv[3])
while client.get_job_status(job) not in (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.STOPPED):
    if time.monotonic() > deadline:
        client.stop_job(job)
        break
    time.sleep(1)
info = client.get_job_info(job)
print(json.dumps({"status": str(info.status), "driver_node_id": info.driver_node_id,
                  "logs": client.get_job_logs(job)}))
"""


def _stop_cluster(temp: Path) -> None:
    """End this cluster's processes, found by its own temp dir (`ray stop` would end every Ray
    on the machine); its workers and agents end with its raylet."""
    ours = [
        p
        for p in psutil.process_iter(["cmdline"])
        if any(str(temp) in part for part in p.info["cmdline"] or [])
    ]
    for process in ours:
        process.send_signal(signal.SIGTERM)
    _, alive = psutil.wait_procs(ours, timeout=10)
    for process in alive:
        process.kill()


def _wait_for_dashboard(url: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"{url}/api/version", timeout=5):
                return
        except OSError as err:
            if getattr(err, "code", None) == 401:  # up, and asking for the token: ready
                return
            assert time.monotonic() < deadline, f"the dashboard at {url} did not answer: {err}"
            time.sleep(1)


@pytest.fixture
def head(tmp_path):
    """A one-node cluster on loopback with a token of its own: (Jobs API URL, environment that
    holds the token)."""
    token = secrets.token_hex(16)
    env = {
        **os.environ,
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN": token,
        "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
        "PYTHONPATH": str(REPO / "src"),
    }
    env.pop("RAY_ADDRESS", None)
    temp = Path(f"/tmp/vxj{secrets.token_hex(3)}")  # Ray's socket paths must stay short
    dashboard = free_port()
    try:
        subprocess.run(
            [
                str(BIN / "ray"),
                "start",
                "--head",
                "--node-ip-address=127.0.0.1",
                f"--port={free_port()}",
                f"--num-cpus={HEAD_CPUS}",
                "--num-gpus=0",
                "--include-dashboard=true",
                "--dashboard-host=127.0.0.1",
                f"--dashboard-port={dashboard}",
                f"--ray-client-server-port={free_port()}",
                f"--dashboard-agent-listen-port={free_port()}",
                f"--temp-dir={temp}",
                "--disable-usage-stats",
            ],
            env=env,
            check=True,
            capture_output=True,
            timeout=300,
        )
        url = f"http://127.0.0.1:{dashboard}"
        _wait_for_dashboard(url)
        yield url, env
    finally:
        _stop_cluster(temp)
        subprocess.run(["rm", "-rf", str(temp)], check=False)


def test_a_submitted_tune_job_runs_its_trials_on_the_cluster(head, tweets_df, tmp_path):
    url, env = head
    data = sample_table(tweets_df, tmp_path)
    space = space_file(tmp_path, "tiny_cnn", family="cnn", filters=8)
    entrypoint = (
        f"{BIN / 'voxpop'} tune {data} --space {space} --samples 2 --max-epochs 1 "
        f"--scheduler fifo --storage {tmp_path / 'runs'} --name job"
    )
    submitted = subprocess.run(
        [sys.executable, "-c", SUBMIT, url, entrypoint, "500"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert submitted.returncode == 0, submitted.stderr[-3000:]
    job = json.loads(submitted.stdout.strip().splitlines()[-1])
    assert job["status"] == "SUCCEEDED", job["logs"][-3000:]

    assert f"Ray: {HEAD_CPUS} CPUs" in job["logs"], job["logs"][-3000:]
    assert "joined the Ray cluster at 127.0.0.1:" in job["logs"]
    nodes = {metrics(c)["node_id"] for c in checkpoints(tmp_path / "runs" / "job")}
    assert nodes == {job["driver_node_id"]}  # the head's node, not a private Ray's
