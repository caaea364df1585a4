"""`--storage s3://...`: tune, resume and export a run on an S3-compatible server that the test
starts on loopback (moto's server, credentials checked), and one-line errors for an endpoint that
nothing answers on, a bucket that does not exist, and missing or wrong credentials."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from s3_server import free_port, s3_server
from test_reliability_input import assert_one_line_error, invoke
from test_tune_resume import _kill_leftovers
from test_tune_support import sample_table, space_file
from voxpop.data import rundir
from voxpop.ensemble.bundle import read_manifest
from voxpop.tune_spaces.runner import TuneOptions, run_tuning

VOXPOP = str(Path(sys.executable).with_name("voxpop"))
BUCKET = "team-runs"
TRIALS = 5  # Ctrl-C after the second trial: the rest leave room for the signal to land


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    with s3_server(tmp_path_factory.mktemp("moto") / "moto.log", buckets=(BUCKET,)) as server:
        yield server


@pytest.fixture
def s3_env(s3, monkeypatch, tmp_path):
    """This test's environment reaches the server with valid credentials (and no ~/.aws). Not
    by moving HOME: Ray keeps its auth token there, and a token made in a temporary HOME would
    stay cached in this process for the next embedded Ray, whose processes read the real one."""
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    for name, value in s3.env().items():
        monkeypatch.setenv(name, value)
    return s3


def _metrics_keys(s3, prefix: str) -> list[str]:
    return [key for key in s3.keys(BUCKET, prefix) if key.endswith("/metrics.json")]


def test_tune_interrupted_resumed_and_exported_on_s3(s3_env, tweets_df, tmp_path):
    s3 = s3_env
    data = sample_table(tweets_df, tmp_path)
    space = space_file(tmp_path, "tiny_cnn", family="cnn", filters=8)
    storage, name = f"s3://{BUCKET}/team", "s3run"
    process = subprocess.Popen(
        [
            VOXPOP,
            "tune",
            str(data),
            "--space",
            space,
            "--samples",
            str(TRIALS),
            "--max-epochs",
            "1",
            "--scheduler",
            "fifo",
            "--max-concurrent",
            "1",
            "--num-cpus",
            "1",
            "--storage",
            storage,
            "--name",
            name,
        ],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:  # once a second trial has a checkpoint on S3, the first is certainly finished: Ctrl-C
        deadline = time.monotonic() + 300
        while len(_metrics_keys(s3, f"team/{name}/")) < 2 and process.poll() is None:
            assert time.monotonic() < deadline, "no trial reached S3 in time"
            time.sleep(0.5)
        process.send_signal(signal.SIGINT)
        process.wait(timeout=120)
    finally:
        _kill_leftovers(process)
    keys = s3.keys(BUCKET, f"team/{name}/")
    assert {f"team/{name}/voxpop/{n}" for n in rundir.PREPARED_UPLOAD_ORDER} <= set(keys)
    assert 2 <= len(_metrics_keys(s3, f"team/{name}/")) < TRIALS
    assert not any("s3:" in p.name for p in tmp_path.iterdir())  # never a local ./s3:/ folder

    outcome = run_tuning(
        TuneOptions(data=None, storage=storage, name=name, resume=True, spaces=(space,), num_cpus=1)
    )
    assert str(outcome.run_dir) == f"{storage}/{name}"
    assert [row["error"] for row in outcome.leaderboard] == [None] * TRIALS
    assert len(_metrics_keys(s3, f"team/{name}/")) == TRIALS

    bundle = tmp_path / "bundle"
    result = invoke("export", f"{storage}/{name}", "--out", bundle, "--size", "2", "--no-fuse")
    assert result.exit_code == 0, result.output
    manifest = read_manifest(bundle)
    assert manifest.source_run == f"{storage}/{name}"
    trial_ids = {
        json.loads(s3.client().get_object(Bucket=BUCKET, Key=key)["Body"].read())["trial_id"]
        for key in _metrics_keys(s3, f"team/{name}/")
    }
    assert {member.trial_id for member in manifest.members} <= trial_ids


def test_a_run_read_from_s3_is_the_run_written_there(s3_env, tweets_df, tmp_path):
    """read_run of a URI reads the same rows and checkpoints as of the local folder uploaded."""
    from voxpop.data import Preprocessor, split_rows

    local = tmp_path / "runs" / "fixture"
    rows = tweets_df.sample(300, random_state=0)
    texts, labels = rows["text"].tolist(), rows["label"].to_numpy()
    data = rundir.write_fixture_run(
        local,
        texts=texts,
        labels=labels,
        split=split_rows(labels, seed=0),
        preprocessor=Preprocessor(),
    )
    probs = [[1 / 3] * 3] * len(data.y_val)
    rundir.add_checkpoint(
        local,
        trial_id="t1",
        index=0,
        metrics={"val_macro_f1": 0.5, "family": "cnn"},
        val_probs=probs,
    )
    (local / "t1" / "checkpoint_000000" / "model.keras").write_bytes(b"a saved model")
    client = s3_env.client()
    for path in local.rglob("*"):
        if path.is_file():
            client.upload_file(str(path), BUCKET, f"copy/{path.relative_to(local).as_posix()}")

    remote, here = rundir.read_run(f"s3://{BUCKET}/copy"), rundir.read_run(local)
    assert remote.source == f"s3://{BUCKET}/copy"
    assert remote.rows("val").equals(here.rows("val"))
    assert [c.metrics for c in remote.checkpoints] == [c.metrics for c in here.checkpoints]
    (checkpoint,) = remote.checkpoints
    assert not (checkpoint.path / "model.keras").exists()  # fetched when first asked for
    assert checkpoint.model_path.read_bytes() == b"a saved model"
    cache = remote.path
    del remote, checkpoint
    assert not cache.exists()  # the local copy goes with the Run


# -- one-line errors, before Ray starts -------------------------------------------------------------
def _tune(data: Path, storage: str):
    return invoke("tune", data, "--space", "cnn", "--storage", storage, "--name", "x")


def test_an_endpoint_nothing_answers_on_is_one_line(s3_env, monkeypatch, tweets_df, tmp_path):
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    data = sample_table(tweets_df, tmp_path)
    assert_one_line_error(
        _tune(data, f"s3://{BUCKET}/runs"),
        f"s3://{BUCKET}/runs",
        "cannot reach the storage endpoint",
        "127.0.0.1",
    )
    assert_one_line_error(
        invoke("export", f"s3://{BUCKET}/runs/x", "--out", tmp_path / "b"),
        "cannot reach the storage endpoint",
    )


def test_a_missing_bucket_is_one_line(s3_env, tweets_df, tmp_path):
    data = sample_table(tweets_df, tmp_path)
    assert_one_line_error(
        _tune(data, "s3://no-such-bucket/runs"), "bucket 'no-such-bucket' does not exist"
    )
    assert s3_env.keys(BUCKET, "runs/") == []


@pytest.mark.parametrize("credentials", ["none", "wrong"])
def test_missing_or_wrong_credentials_are_one_line(
    s3_env, monkeypatch, tweets_df, tmp_path, credentials
):
    if credentials == "none":
        monkeypatch.delenv("AWS_ACCESS_KEY_ID")
        monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
        expected = "no AWS credentials found"
    else:
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
        expected = "access denied with the configured AWS credentials"
    data = sample_table(tweets_df, tmp_path)
    assert_one_line_error(_tune(data, f"s3://{BUCKET}/runs"), expected)
    assert_one_line_error(
        invoke("export", f"s3://{BUCKET}/runs/x", "--out", tmp_path / "b"), expected
    )
    assert not os.path.exists(tmp_path / "b")
