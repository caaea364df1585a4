"""`voxpop predict` end to end through the Typer app, on a real bundle and real tweets."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from bundle_factory import (  # noqa: F401
    bundle_dir,
    held_out_texts,
    rewrite_manifest,
    tweet_preprocessor,
    tweet_rows,
)
from voxpop.ensemble import Ensemble
from voxpop.serving_cli.app import app

REPO = Path(__file__).resolve().parents[1]
WRITE = {
    "csv": lambda df, p: df.to_csv(p, index=False),
    "tsv": lambda df, p: df.to_csv(p, sep="\t", index=False),
    "parquet": lambda df, p: df.to_parquet(p, index=False),
    "jsonl": lambda df, p: df.to_json(p, orient="records", lines=True),
}
READ = {
    "csv": lambda p: pd.read_csv(p, keep_default_na=False, dtype={"id": str}),
    "tsv": lambda p: pd.read_csv(p, sep="\t", keep_default_na=False, dtype={"id": str}),
    "parquet": pd.read_parquet,
    "jsonl": lambda p: pd.read_json(p, orient="records", lines=True, dtype={"id": str}),
}


def run(*args: str, input: str | None = None):
    return CliRunner().invoke(app, ["predict", *map(str, args)], input=input)


@pytest.fixture(scope="module")
def rows(held_out_texts) -> pd.DataFrame:
    # pandas' to_csv leaves a bare \r unquoted (some tweets have one), and any CSV reader then
    # splits that row: keep such texts out of the round trips.
    texts = [text.replace("\r", " ") for text in held_out_texts[:60]]
    texts[5] = ""  # an empty text is predicted and flagged
    return pd.DataFrame({"tweet_id": [f"t{1000 - i}" for i in range(60)], "text": texts})


@pytest.fixture(scope="module")
def expected(bundle_dir, rows):
    """What the Python API says for the bundle's default (weighted) vote."""
    return Ensemble.load(bundle_dir, device="cpu").predict(rows["text"].tolist(), voting="weighted")


@pytest.mark.parametrize("fmt_in", ["csv", "tsv", "parquet", "jsonl"])
@pytest.mark.parametrize("fmt_out", ["csv", "tsv", "parquet", "jsonl"])
def test_round_trip_every_format(tmp_path, bundle_dir, rows, expected, fmt_in, fmt_out):
    source, target = tmp_path / f"in.{fmt_in}", tmp_path / f"out.{fmt_out}"
    WRITE[fmt_in](rows, source)
    result = run(
        bundle_dir,
        source,
        "--id-col",
        "tweet_id",
        "--out",
        target,
        "--batch-size",
        "16",
        "--device",
        "cpu",
    )
    assert result.exit_code == 0, result.output
    assert "device cpu, weighted voting, fused graph" in result.stderr
    out = READ[fmt_out](target)
    assert list(out.columns) == ["id", "label", "confidence", "empty_text"]
    assert out["id"].astype(str).tolist() == rows["tweet_id"].tolist()
    assert out["label"].tolist() == expected.labels
    np.testing.assert_allclose(out["confidence"].to_numpy(float), expected.confidence, atol=1e-6)
    assert out["empty_text"].astype(bool).tolist() == [i == 5 for i in range(60)]


def test_streaming_in_chunks_equals_one_batch(tmp_path, bundle_dir, rows):
    source = tmp_path / "in.csv"
    WRITE["csv"](rows, source)
    options = ["--voting", "hard", "--top-k", "2", "--probs", "--per-member"]
    small = run(bundle_dir, source, "--batch-size", "7", *options)
    whole = run(bundle_dir, source, "--batch-size", "1000", *options)
    assert small.exit_code == 0 and whole.exit_code == 0, small.output
    assert "separate sessions" in small.stderr
    assert small.stdout == whole.stdout
    out = pd.read_csv(io.StringIO(small.stdout))
    labels = Ensemble.load(bundle_dir).labels
    assert list(out.columns) == (
        ["label", "confidence", "label_1", "prob_1", "label_2", "prob_2"]
        + [f"prob_{lab}" for lab in labels]
        + ["label_m1", "label_m2", "label_m3"]
        + ["empty_text"]
    )
    assert len(out) == 60 and (out["label"] == out["label_1"]).all()
    assert (out["prob_1"] >= out["prob_2"]).all()
    np.testing.assert_allclose(out[[f"prob_{lab}" for lab in labels]].sum(axis=1), 1.0, atol=1e-5)
    # hard voting with 3 members: the confidence is a vote share of 1/3, 2/3 or 1
    assert set(np.round(out["confidence"], 4)) <= {0.3333, 0.6667, 1.0}


def test_members_and_weights(tmp_path, bundle_dir, rows, held_out_texts):
    source = tmp_path / "in.csv"
    WRITE["csv"](rows, source)
    result = run(bundle_dir, source, "--members", "m2,m1", "--weights", "1,3", "--probs")
    assert result.exit_code == 0, result.output
    ensemble = Ensemble.load(bundle_dir, fused=False)
    member = ensemble.predict(rows["text"].tolist(), members=["m1", "m2"]).member_probs
    expected = (3 * member["m1"] + member["m2"]) / 4
    out = pd.read_csv(io.StringIO(result.stdout))
    np.testing.assert_allclose(out[[f"prob_{lab}" for lab in ensemble.labels]], expected, atol=1e-5)


def test_stdin_one_text_per_line(bundle_dir):
    result = run(bundle_dir, "-", input="what a great flight\n\nworst airline ever\n")
    assert result.exit_code == 0, result.output
    out = pd.read_csv(io.StringIO(result.stdout))
    assert len(out) == 3 and out["empty_text"].tolist() == [False, True, False]
    assert set(out["label"]) <= set(Ensemble.load(bundle_dir).labels)


def _one_line_error(result, *fragments: str) -> None:
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


def test_missing_text_column_and_unreadable_file(tmp_path, bundle_dir, rows):
    source = tmp_path / "in.csv"
    rows.rename(columns={"text": "body"}).to_csv(source, index=False)
    _one_line_error(run(bundle_dir, source), "column 'text' not found", "tweet_id, body")
    _one_line_error(run(bundle_dir, tmp_path / "absent.csv"), "absent.csv")
    _one_line_error(
        run(bundle_dir, source, "--text-col", "body", "--out", tmp_path / "x.xlsx"),
        "unknown extension '.xlsx'",
        ".csv",
    )


def test_format_names_the_table_format_whatever_the_extension(tmp_path, bundle_dir, rows, expected):
    source = tmp_path / "data.txt"
    rows.to_csv(source, index=False)
    result = run(bundle_dir, source, "--format", "csv", "--id-col", "tweet_id", "--device", "cpu")
    assert result.exit_code == 0, result.output
    out = READ["csv"](io.StringIO(result.stdout))
    assert out["id"].tolist() == rows["tweet_id"].tolist()
    assert out["label"].tolist() == expected.labels
    _one_line_error(
        run(bundle_dir, source),
        f"{source}: cannot tell the table format from the extension '.txt'",
        "name it with --format csv|tsv|parquet|jsonl",
    )
    _one_line_error(
        run(bundle_dir, source, "--format", "xlsx"),
        "--format 'xlsx' is not a table format (choose from csv, tsv, parquet, jsonl)",
    )
    # stdin is one text per line: neither a format nor columns apply to it
    _one_line_error(run(bundle_dir, "-", "--format", "csv", input="a\n"), "--format csv: stdin")
    _one_line_error(
        run(bundle_dir, "-", "--id-col", "tweet_id", input="a\n"),
        "'-' is one text per line, without the column(s) tweet_id",
    )


@pytest.mark.parametrize(
    ("damage", "fragments"),
    [
        ("checksum", ["sha256 of 'members/m1.onnx' does not match"]),
        ("not_a_bundle", ["not an ensemble bundle"]),
        ("newer_schema", ["schema_version 7 is newer"]),
        ("escape", ["'../m1.onnx' points outside the bundle"]),
    ],
)
def test_bad_bundles(tmp_path, bundle_dir, damage, fragments):
    bundle = shutil.copytree(bundle_dir, tmp_path / "bundle")
    if damage == "checksum":
        (bundle / "members" / "m1.onnx").write_bytes(b"not onnx")
    elif damage == "not_a_bundle":
        (bundle / "ensemble.json").unlink()
    elif damage == "newer_schema":
        rewrite_manifest(bundle, schema_version=7)
    else:
        manifest = json.loads((bundle / "ensemble.json").read_text())
        manifest["members"][0]["file"] = "../m1.onnx"
        manifest["files"]["../m1.onnx"] = manifest["files"].pop("members/m1.onnx")
        (bundle / "ensemble.json").write_text(json.dumps(manifest))
    _one_line_error(run(bundle, "-", input="hello\n"), *fragments)


def test_bad_options(bundle_dir):
    _one_line_error(
        run(bundle_dir, "-", "--weights", "1,x", input="a\n"),
        "--weights",
        "not a comma-separated list",
    )
    _one_line_error(run(bundle_dir, "-", "--top-k", "9", input="a\n"), "--top-k", "between 0 and 3")
    _one_line_error(
        run(bundle_dir, "-", "--members", "m1,zz", input="a\n"), "choose from m1, m2, m3"
    )


def test_device_cuda_runs_on_cuda_or_says_there_is_no_usable_gpu(bundle_dir, onnxruntime_runs_cuda):
    result = run(bundle_dir, "-", "--device", "cuda", input="a good flight\n")
    if onnxruntime_runs_cuda:
        assert result.exit_code == 0, result.stderr
        assert "voxpop predict: device cuda," in result.stderr
    else:
        _one_line_error(result, "--device cuda: no usable GPU")


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_failure_mid_stream_leaves_no_output_file(tmp_path, bundle_dir, rows, monkeypatch, fmt):
    """Row 46 has no id: with --threads 2 predict reads one chunk ahead (it encodes the next chunk
    while the graph runs this one), so chunks 1-3 (rows 1-30) are predicted and written to the
    temporary file before reading chunk 5 fails; the output never appears, and the temporary file
    is gone."""
    from voxpop.ensemble import stream

    written = []  # (rows, path written to) of each chunk the real writer wrote

    class RecordingWriter(stream.WRITERS[fmt]):
        def write(self, frame):
            super().write(frame)
            written.append((len(frame), Path(self.path)))

    monkeypatch.setitem(stream.WRITERS, fmt, RecordingWriter)
    source = tmp_path / "in.csv"
    frame = rows.copy()
    frame.loc[45, "tweet_id"] = None
    frame.to_csv(source, index=False)
    target = tmp_path / f"out.{fmt}"
    result = run(
        bundle_dir,
        source,
        "--id-col",
        "tweet_id",
        "--out",
        target,
        "--batch-size",
        "10",
        "--threads",
        "2",
    )
    assert result.exit_code == 2
    assert re.match(
        rf"error: {re.escape(str(source))}: line \d+ \(row 46\), column 'tweet_id': "
        "missing id",
        result.stderr.strip().splitlines()[-1],
    )
    assert [n for n, _ in written] == [10, 10, 10]
    assert {path for _, path in written} == {written[0][1]} and written[0][1] != target
    assert not target.exists() and not written[0][1].exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv"]


def test_predict_path_imports_no_tensorflow_ray_or_sklearn_and_starts_fast(bundle_dir):
    script = (
        "import sys\n"
        "from voxpop.serving_cli.app import app\n"
        f"try:\n    app(['predict', {str(bundle_dir)!r}, '-'])\n"
        "except SystemExit as exit:\n    assert not exit.code, exit.code\n"
        "heavy = sorted({m.split('.')[0] for m in sys.modules} & {'tensorflow', 'ray', 'sklearn', 'keras', 'tf2onnx'})\n"
        "print('HEAVY', heavy, file=sys.stderr)\n"
    )
    python = REPO / ".venv" / "bin" / "python"
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    started = time.perf_counter()
    done = subprocess.run(
        [str(python if python.exists() else sys.executable), "-c", script],
        input="great flight\n",
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    seconds = time.perf_counter() - started
    assert done.returncode == 0, done.stderr
    assert "HEAVY []" in done.stderr
    assert (
        done.stdout.splitlines()[0] == "label,confidence,empty_text"
        and len(done.stdout.splitlines()) == 2
    )
    assert seconds < 10, f"one-line predict took {seconds:.1f} s"


def test_no_fused_gives_the_fused_result(tmp_path, bundle_dir, rows):
    source = tmp_path / "in.csv"
    WRITE["csv"](rows, source)
    fused = run(bundle_dir, source, "--probs")
    separate = run(bundle_dir, source, "--probs", "--no-fused", "--threads", "2")
    assert "fused graph" in fused.stderr and "separate sessions" in separate.stderr
    a, b = pd.read_csv(io.StringIO(fused.stdout)), pd.read_csv(io.StringIO(separate.stdout))
    assert a["label"].tolist() == b["label"].tolist()
    prob_cols = [c for c in a.columns if c.startswith("prob_")]
    np.testing.assert_allclose(a[prob_cols], b[prob_cols], atol=1e-5)


def test_threads_below_one_are_refused_by_the_cli_and_by_the_library(tmp_path, bundle_dir, rows):
    from voxpop.data.errors import VoxpopError

    source = tmp_path / "in.csv"
    rows.to_csv(source, index=False)
    result = run(bundle_dir, source, "--threads", "0")
    assert result.exit_code == 2 and "--threads" in result.output
    with pytest.raises(VoxpopError, match="^threads must be at least 1, got 0$"):
        Ensemble.load(bundle_dir, threads=0)
