"""`voxpop predict --address`: Ray Data over an embedded Ray (address local, 2 workers) gives the
local command's output row for row, on a folder of Parquet and CSV files."""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest
from typer.testing import CliRunner

from bundle_factory import bundle_dir, held_out_texts, tweet_preprocessor, tweet_rows  # noqa: F401
from voxpop.serving_cli.app import app


@pytest.fixture(scope="module", autouse=True)
def embedded_ray():
    """One embedded Ray (2 CPUs) for the module: `--address local` reuses the Ray this process
    has started, as the command does for any initialised Ray, instead of starting its own."""
    from voxpop.tune_spaces.cluster import start_ray, stop_ray

    assert start_ray(address="local", num_cpus=2)
    yield
    stop_ray()


def run(*args) -> object:
    return CliRunner().invoke(app, ["predict", *map(str, args)])


@pytest.fixture(scope="module")
def folder(tmp_path_factory, held_out_texts):
    """Three files of one folder, by name: a.parquet, b.csv (an empty text), c.parquet."""
    texts = [text.replace("\r", " ") for text in held_out_texts[:90]]
    texts[40] = ""
    rows = pd.DataFrame({"tweet_id": [f"0{i:03d}" for i in range(90)], "text": texts})
    folder = tmp_path_factory.mktemp("inputs")
    rows[:35].to_parquet(folder / "a.parquet", index=False)
    rows[35:60].to_csv(folder / "b.csv", index=False)
    rows[60:].to_parquet(folder / "c.parquet", index=False)
    (folder / "notes.txt").write_text("not a table: skipped by extension\n")
    return folder


def test_ray_data_predicts_the_rows_local_predict_does(tmp_path, bundle_dir, folder):
    options = ("--id-col", "tweet_id", "--probs", "--top-k", "2", "--batch-size", "10")
    local = []
    for name in ("a.parquet", "b.csv", "c.parquet"):
        result = run(bundle_dir, folder / name, *options, "--out", tmp_path / f"{name}.parquet")
        assert result.exit_code == 0, result.output
        local.append(pd.read_parquet(tmp_path / f"{name}.parquet"))
    expected = pd.concat(local, ignore_index=True)

    out = tmp_path / "cluster.parquet"
    result = run(bundle_dir, folder, *options, "--address", "local", "--workers", "2", "--out", out)
    assert result.exit_code == 0, result.output
    assert "Ray Data, 3 file(s), 2 worker(s)" in result.stderr
    assert "1 empty or null text(s)" in result.stderr
    got = pd.read_parquet(out)
    assert len(got) == 90 and got["id"].tolist()[:3] == ["0000", "0001", "0002"]
    pd.testing.assert_frame_equal(got, expected, check_exact=False, rtol=1e-6)


def test_a_bad_file_on_a_worker_is_one_error_line(tmp_path, bundle_dir, folder):
    bad = tmp_path / "bad"
    bad.mkdir()
    pd.read_parquet(folder / "a.parquet").to_csv(bad / "a.csv", index=False)
    pd.read_parquet(folder / "c.parquet").rename(columns={"text": "body"}).to_csv(
        bad / "b.csv", index=False
    )
    result = run(
        bundle_dir, bad, "--address", "local", "--workers", "1", "--out", tmp_path / "p.csv"
    )
    assert result.exit_code == 2, result.output
    last = result.stderr.strip().splitlines()[-1]
    assert re.fullmatch(r"error: .*b\.csv: .*'text'.*", last), result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "p.csv").exists()


def test_evaluate_on_ray_writes_the_local_report(tmp_path, bundle_dir, tweet_rows):
    labelled = tmp_path / "labelled.csv"
    tweet_rows.sample(120, random_state=1)[["text", "label"]].to_csv(labelled, index=False)
    common = ("evaluate", bundle_dir, labelled, "--no-baseline", "--report-format", "json")
    local = CliRunner().invoke(app, [*map(str, common), "--out", str(tmp_path / "local")])
    assert local.exit_code == 0, local.output
    ray = CliRunner().invoke(
        app,
        [*map(str, common), "--out", str(tmp_path / "ray"), "--address", "local", "--workers", "2"],
    )
    assert ray.exit_code == 0, ray.output
    assert "Ray Data, 2 worker(s)" in ray.stderr
    expected = json.loads((tmp_path / "local" / "report.json").read_text())
    got = json.loads((tmp_path / "ray" / "report.json").read_text())
    assert got["data"]["n_evaluated"] == 120
    assert _rounded(got) == _rounded(expected)


def _rounded(value):
    """The report with its floats to 6 places (the actors' float32 sums may differ in the last
    bits from one process's)."""
    if isinstance(value, dict):
        return {key: _rounded(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_rounded(item) for item in value]
    return round(value, 6) if isinstance(value, float) else value
