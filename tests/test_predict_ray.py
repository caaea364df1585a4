"""`voxpop predict --address`: Ray Data over an embedded Ray (address local, 2 workers) gives the
local command's output row for row, on a folder of Parquet and CSV files."""

from __future__ import annotations

import io
import json
import re

import pandas as pd
import pytest
from typer.testing import CliRunner

from bundle_factory import bundle_dir, held_out_texts, tweet_preprocessor, tweet_rows  # noqa: F401
from s3_server import s3_server
from voxpop.serving_cli.app import app


@pytest.fixture(scope="module", autouse=True)
def embedded_ray(s3, tmp_path_factory):
    """One embedded Ray (2 CPUs) for the module: `--address local` reuses the Ray this process
    has started, as the command does for any initialised Ray, instead of starting its own. Its
    workers reach the S3 server with valid credentials (and no ~/.aws) from the environment
    they start with, as a cluster's nodes do from theirs."""
    from voxpop.tune_spaces.cluster import start_ray, stop_ray

    aws = tmp_path_factory.mktemp("aws")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("AWS_CONFIG_FILE", str(aws / "no-aws-config"))
        env.setenv("AWS_SHARED_CREDENTIALS_FILE", str(aws / "no-aws-credentials"))
        for name, value in s3.env().items():
            env.setenv(name, value)
        assert start_ray(address="local", num_cpus=2)
        try:
            yield
        finally:
            stop_ray()


BUCKET = "voxpop-inputs"


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    """moto's S3 server on loopback (credentials checked), tests/s3_server.py."""
    with s3_server(tmp_path_factory.mktemp("moto") / "moto.log", buckets=(BUCKET,)) as server:
        yield server


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


OPTIONS = ("--id-col", "tweet_id", "--probs", "--top-k", "2", "--batch-size", "10")
NAMES = ("a.parquet", "b.csv", "c.parquet")


@pytest.fixture(scope="module")
def local_output(tmp_path_factory, bundle_dir, folder):
    """Local predict of each file in turn (Parquet), with the file and row each row came from."""
    tmp = tmp_path_factory.mktemp("local")
    local = []
    for name in NAMES:
        result = run(bundle_dir, folder / name, *OPTIONS, "--out", tmp / f"{name}.parquet")
        assert result.exit_code == 0, result.output
        frame = pd.read_parquet(tmp / f"{name}.parquet")
        frame.insert(0, "source_file", str(folder / name))
        frame.insert(1, "source_row", range(len(frame)))
        local.append(frame)
    return pd.concat(local, ignore_index=True)


def read_parts(out, reader) -> pd.DataFrame:
    """The parts of the folder `out`, in the input order (sorted by source_file, source_row)."""
    parts = sorted(out.iterdir())
    assert parts and all(part.name.startswith("part-") for part in parts), parts
    frame = pd.concat([reader(part) for part in parts], ignore_index=True)
    return frame.sort_values(["source_file", "source_row"], ignore_index=True)


def test_ray_data_writes_parquet_parts_of_the_rows_local_predict_does(
    tmp_path, bundle_dir, folder, local_output
):
    out = tmp_path / "cluster"  # no table suffix: Parquet parts
    result = run(bundle_dir, folder, *OPTIONS, "--address", "local", "--workers", "2", "--out", out)
    assert result.exit_code == 0, result.output
    assert "Ray Data, 3 file(s), 2 worker(s)" in result.stderr
    assert "1 empty or null text(s)" in result.stderr
    assert "wrote 90 rows in" in result.stderr
    got = read_parts(out, pd.read_parquet)
    assert got["id"].tolist()[:3] == ["0000", "0001", "0002"]
    pd.testing.assert_frame_equal(got, local_output, check_exact=False, rtol=1e-6)
    # nothing beside the folder: its temporary sibling is gone
    assert sorted(path.name for path in tmp_path.iterdir()) == ["cluster"]


def test_ray_data_writes_csv_parts_and_replaces_an_old_folder(
    tmp_path, bundle_dir, folder, local_output
):
    out = tmp_path / "preds.csv"  # a folder named by its parts' format
    out.mkdir()
    (out / "part-999999.csv").write_text("stale\n")
    result = run(bundle_dir, folder, *OPTIONS, "--address", "local", "--workers", "2", "--out", out)
    assert result.exit_code == 0, result.output
    assert "csv part(s)" in result.stderr
    got = read_parts(out, lambda part: pd.read_csv(part, dtype={"id": str}, keep_default_na=False))
    # CSV read back has no float32: the same values to float32's precision
    pd.testing.assert_frame_equal(got, local_output, check_dtype=False, rtol=1e-6)
    assert got["empty_text"].dtype == bool and got["empty_text"].sum() == 1


# slow (2 x 11 s): the Parquet and CSV writers are checked in the default run; these two
# differ only in Ray Data's writer.
@pytest.mark.slow
@pytest.mark.parametrize(
    ("suffix", "reader"),
    [
        (
            ".tsv",
            lambda part: pd.read_csv(part, sep="\t", dtype={"id": str}, keep_default_na=False),
        ),
        (".jsonl", lambda part: pd.read_json(part, lines=True, dtype={"id": str})),
    ],
)
def test_ray_data_writes_tsv_and_jsonl_parts(
    tmp_path, bundle_dir, folder, local_output, suffix, reader
):
    out = tmp_path / f"preds{suffix}"
    result = run(bundle_dir, folder, *OPTIONS, "--address", "local", "--workers", "2", "--out", out)
    assert result.exit_code == 0, result.output
    assert all(part.suffix == suffix for part in out.iterdir())
    got = read_parts(out, reader)
    pd.testing.assert_frame_equal(got, local_output, check_dtype=False, rtol=1e-6)


def test_ray_data_to_stdout_is_csv_in_input_order(bundle_dir, folder, local_output):
    result = run(bundle_dir, folder, *OPTIONS, "--address", "local", "--workers", "2")
    assert result.exit_code == 0, result.output
    got = pd.read_csv(io.StringIO(result.stdout), dtype={"id": str}, keep_default_na=False)
    expected = local_output.drop(columns=["source_file", "source_row"])
    pd.testing.assert_frame_equal(got, expected, check_dtype=False, rtol=1e-6)


def test_a_bad_file_on_a_worker_is_one_error_line_and_no_output(tmp_path, bundle_dir, folder):
    bad = tmp_path / "bad"
    bad.mkdir()
    pd.read_parquet(folder / "a.parquet").to_csv(bad / "a.csv", index=False)
    pd.read_parquet(folder / "c.parquet").rename(columns={"text": "body"}).to_csv(
        bad / "b.csv", index=False
    )
    out = tmp_path / "out" / "preds"
    out.parent.mkdir()
    result = run(bundle_dir, bad, "--address", "local", "--workers", "1", "--out", out)
    assert result.exit_code == 2, result.output
    last = result.stderr.strip().splitlines()[-1]
    assert re.fullmatch(r"error: .*b\.csv: .*'text'.*", last), result.stderr
    assert "Traceback" not in result.stderr
    # a.csv's rows may have been written to the temporary folder: it is gone, and --out was
    # never made
    assert list(out.parent.iterdir()) == []


def test_out_with_address_is_a_folder_never_a_file_or_an_input(tmp_path, bundle_dir, folder):
    taken = tmp_path / "taken.parquet"
    taken.write_bytes(b"a file")
    result = run(bundle_dir, folder, "--address", "local", "--out", taken)
    assert result.exit_code == 2 and "is a file (give a folder name)" in result.stderr
    assert taken.read_bytes() == b"a file"
    result = run(bundle_dir, folder / "a.parquet", "--address", "local", "--out", folder.parent)
    assert result.exit_code == 2 and "which this command reads" in result.stderr
    result = run(bundle_dir, folder, "--address", "local", "--out", "s3://bucket/preds")
    assert result.exit_code == 2 and "a file system URI is for INPUT only" in result.stderr


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


def test_input_on_s3_predicts_the_rows_local_predict_does(
    tmp_path, bundle_dir, folder, local_output, s3
):
    client = s3.client()
    for name in (*NAMES, "notes.txt"):
        client.upload_file(str(folder / name), BUCKET, f"in/{name}")
    client.upload_file(str(folder / "a.parquet"), BUCKET, "in/deeper/z.parquet")  # not listed
    expected = local_output.assign(
        source_file=local_output["source_file"].str.replace(str(folder), f"s3://{BUCKET}/in")
    )
    for input, n_files in ((f"s3://{BUCKET}/in", 3), (f"s3://{BUCKET}/in/*.parquet", 2)):
        out = tmp_path / f"preds{n_files}"
        result = run(
            bundle_dir, input, *OPTIONS, "--address", "local", "--workers", "2", "--out", out
        )
        assert result.exit_code == 0, result.output
        assert f"Ray Data, {n_files} file(s), 2 worker(s)" in result.stderr
        got = read_parts(out, pd.read_parquet)
        want = expected if n_files == 3 else expected[expected["source_file"].str.endswith("t")]
        pd.testing.assert_frame_equal(got, want.reset_index(drop=True), rtol=1e-6)


def test_an_unreadable_file_on_s3_is_named_in_the_one_error_line(tmp_path, bundle_dir, folder, s3):
    client = s3.client()
    client.upload_file(str(folder / "a.parquet"), BUCKET, "bad/a.parquet")
    client.put_object(Bucket=BUCKET, Key="bad/b.csv", Body=b"body\nno text column here\n")
    client.upload_file(str(folder / "c.parquet"), BUCKET, "bad/c.parquet")
    out = tmp_path / "preds"
    result = run(
        bundle_dir, f"s3://{BUCKET}/bad", "--address", "local", "--workers", "2", "--out", out
    )
    assert result.exit_code == 2, result.output
    last = result.stderr.strip().splitlines()[-1]
    assert re.fullmatch(rf"error: s3://{BUCKET}/bad/b\.csv: .*'text'.*", last), result.stderr
    assert "Traceback" not in result.stderr and not out.exists()
    assert [path.name for path in tmp_path.iterdir()] == []
    # nothing found is one line too
    result = run(bundle_dir, f"s3://{BUCKET}/none/*.csv", "--address", "local", "--out", out)
    assert result.exit_code == 2, result.output
    assert result.stderr.strip().splitlines()[-1] == (
        f"error: s3://{BUCKET}/none/*.csv: file not found (nor files matching it as a glob)"
    )
