"""Bad input through the CLI (`voxpop.serving_cli.app`): one line `error: ...`, exit code 2, no
traceback and nothing half-written; or, where the input is odd but usable (bytes that are not
UTF-8, null texts, a 1 MB text), a normal result that says what it replaced.

Points the stage tests already prove at the CLI are not repeated here: missing --text-col and an
absent file, not-a-bundle, newer schema_version, --members/--weights/--top-k/--device
(test_predict_cli.py); --space/--scheduler/--search and --gpus-per-trial without GPUs
(test_tune_local.py); --select/--quantize/--metric (test_export_bundle.py); --voting and
--label-col of evaluate (test_evaluate_cli.py).
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from bundle_factory import bundle_dir, held_out_texts, tweet_preprocessor, tweet_rows  # noqa: F401
from voxpop.ensemble import Ensemble
from voxpop.serving_cli.app import app

REPO = Path(__file__).resolve().parents[1]
runner = CliRunner()


def invoke(*args, input: str | None = None):
    return runner.invoke(app, [str(a) for a in args], input=input)


def assert_one_line_error(result, *fragments: str) -> str:
    """Exit 2, exactly one `error: ...` line on stderr (status lines may precede it), no traceback."""
    assert result.exit_code == 2, (result.exit_code, result.output)
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr
    assert "Traceback" not in result.output and result.stderr.rstrip().endswith(errors[0])
    for fragment in fragments:
        assert fragment in errors[0], errors[0]
    return errors[0]


# -- voxpop predict --------------------------------------------------------------------------------
def _write_input(directory: Path, case: str) -> Path:
    """A broken input file of the named kind (or a path that is not a file)."""
    inputs = {
        "missing": ("absent.csv", None),
        "empty": ("empty.csv", b""),
        "header_only": ("header.csv", b"text,label\n"),
        "semicolons": ("semi.csv", b"text;label\nwhat a flight;positive\nlate again;negative\n"),
        "directory": ("folder.csv", "dir"),
    }
    name, content = inputs[case]
    path = directory / name
    if content == "dir":
        path.mkdir()
    elif content is not None:
        path.write_bytes(content)
    return path


@pytest.mark.parametrize(
    ("case", "fragments"),
    [
        ("missing", ["absent.csv: file not found"]),
        ("empty", ["empty.csv: the file is empty"]),
        ("header_only", ["header.csv: the table has no rows"]),
        ("semicolons", ["semi.csv: column 'text' not found (columns: text;label)"]),
        ("directory", ["folder.csv"]),
    ],
)
def test_predict_refuses_unusable_input_files_and_writes_nothing(
    tmp_path, bundle_dir, case, fragments
):
    source = _write_input(tmp_path, case)
    target = tmp_path / "out" / "preds.csv"
    target.parent.mkdir()
    assert_one_line_error(invoke("predict", bundle_dir, source, "--out", target), *fragments)
    assert list(target.parent.iterdir()) == []


def test_predict_refuses_a_parquet_text_column_of_the_wrong_type(tmp_path, bundle_dir):
    source = tmp_path / "numbers.parquet"
    pd.DataFrame({"text": [1.5, 2.5]}).to_parquet(source, index=False)
    assert_one_line_error(
        invoke("predict", bundle_dir, source),
        "numbers.parquet: column 'text' has Parquet type double",
        "must be one of: string",
    )


@pytest.mark.parametrize(
    ("where", "reason"),
    [
        ("missing_dir/preds.csv", "No such file or directory"),
        (
            "a_file/preds.csv",
            "Not a directory",
        ),  # a path under a regular file: unwritable even as root
    ],
)
def test_predict_out_that_cannot_be_written_is_one_line(tmp_path, bundle_dir, where, reason):
    (tmp_path / "a_file").write_text("not a directory")
    target = tmp_path / where
    assert_one_line_error(
        invoke("predict", bundle_dir, "-", "--out", target, input="hi\n"),
        f"{target}: cannot write in {target.parent}",
        reason,
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file"]


def test_predict_unknown_voting_lists_the_valid_ones(bundle_dir):
    assert_one_line_error(
        invoke("predict", bundle_dir, "-", "--voting", "majority", input="hi\n"),
        "--voting: unknown voting 'majority'",
        "soft",
        "hard",
        "weighted",
    )


def test_bytes_that_are_not_utf8_are_replaced_counted_and_reported(
    tmp_path, bundle_dir, held_out_texts
):
    texts = [t.replace("\r", " ").replace("\n", " ").replace('"', "") for t in held_out_texts[:5]]
    raw = "text\n" + "\n".join(f'"{t}"' for t in texts) + "\n"
    source = tmp_path / "latin1.csv"
    # two rows carry a byte that is not UTF-8 (Latin-1 e-acute and a lone 0xff)
    source.write_bytes(
        raw.encode()
        .replace(texts[1].encode(), texts[1].encode() + b" caf\xe9")
        .replace(texts[3].encode(), b"\xff" + texts[3].encode())
    )
    result = invoke("predict", bundle_dir, source, "--probs")
    assert result.exit_code == 0, result.output
    assert f"{source}: 2 byte(s) that were not UTF-8 replaced by U+FFFD" in result.stderr
    out = pd.read_csv(io.StringIO(result.stdout))
    assert len(out) == 5
    expected = Ensemble.load(bundle_dir).predict(
        [texts[0], texts[1] + " caf\ufffd", texts[2], "\ufffd" + texts[3], texts[4]],
        voting="weighted",
    )
    assert out["label"].tolist() == expected.labels


def test_null_and_empty_texts_are_predicted_flagged_and_counted(tmp_path, bundle_dir):
    source = tmp_path / "nulls.parquet"
    pd.DataFrame({"text": ["good flight", None, "", "bad flight"]}).to_parquet(source, index=False)
    result = invoke("predict", bundle_dir, source)
    assert result.exit_code == 0, result.output
    assert f"{source}: 2 empty or null text(s)" in result.stderr
    out = pd.read_csv(io.StringIO(result.stdout))
    assert out["empty_text"].tolist() == [False, True, True, False]
    assert out["label"].notna().all()


def _predict_in_subprocess(bundle: Path, source: Path) -> tuple[list[str], float]:
    """`voxpop predict --members m1,m2 --probs` in a fresh interpreter: its output lines and its
    own peak RSS in MiB (VmHWM of its address space: ru_maxrss would also count the forking
    pytest process's RSS at exec time, which can hide the child's peak entirely)."""
    script = (
        "import sys\n"
        "from voxpop.serving_cli.app import app\n"
        f"try:\n    app(['predict', {str(bundle)!r}, {str(source)!r}, '--members', 'm1,m2', '--probs'])\n"
        "except SystemExit as exit:\n    assert not exit.code, exit.code\n"
        "status = open('/proc/self/status').read()\n"
        "print('PEAK_KIB', status.split('VmHWM:')[1].split()[0], file=sys.stderr)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(REPO / "src")},
    )
    assert done.returncode == 0, done.stderr
    peak_kib = int(done.stderr.split("PEAK_KIB")[1].split()[0])
    return done.stdout.splitlines(), peak_kib / 1024


def test_a_one_megabyte_text_is_truncated_by_max_len_in_bounded_memory(
    tmp_path, bundle_dir, tweet_preprocessor, held_out_texts
):
    words = (
        " ".join(held_out_texts[:200])
        .replace("\n", " ")
        .replace("\r", " ")
        .replace('"', "")
        .split()
    )
    huge = (" ".join(words) + " ") * (2**20 // (len(" ".join(words)) + 1) + 1)
    assert len(huge.encode()) >= 2**20
    head = " ".join(
        huge.split()[: 4 * tweet_preprocessor.max_len]
    )  # more words than max_len tokens
    small, big = tmp_path / "small.csv", tmp_path / "big.csv"
    pd.DataFrame({"text": [head]}).to_csv(small, index=False)
    pd.DataFrame({"text": [head, huge]}).to_csv(big, index=False)
    small_out, small_peak = _predict_in_subprocess(bundle_dir, small)
    big_out, big_peak = _predict_in_subprocess(bundle_dir, big)
    # members m1, m2 read only tokens (no length features): truncation makes the two rows equal
    assert len(big_out) == 3 and big_out[1] == big_out[2]
    np.testing.assert_allclose(_probs(big_out[1]), _probs(small_out[1]), atol=1e-6)
    assert big_peak - small_peak < 150, (
        f"1 MB text: peak RSS {big_peak:.0f} MiB vs {small_peak:.0f} MiB"
    )


def _probs(line: str) -> list[float]:
    return [float(value) for value in line.split(",")[1:-1]]


def test_truncation_keeps_the_first_max_len_tokens(tweet_preprocessor):
    texts = ["great flight " * 10_000, "great flight " * 40]
    tokens = tweet_preprocessor.encode(texts)["tokens"]
    assert tokens.shape == (2, tweet_preprocessor.max_len)
    np.testing.assert_array_equal(tokens[0], tokens[1])


# -- voxpop tune: bad data is refused before any trial, and leaves no run directory behind ---------
@pytest.fixture(scope="module")
def ray_local():

    from voxpop.tune_spaces.cluster import start_ray, stop_ray

    assert start_ray(num_cpus=2)
    yield
    stop_ray()


def _labelled(tweet_rows, counts: dict[str, int]) -> pd.DataFrame:
    parts = [tweet_rows[tweet_rows["label"] == label].head(n) for label, n in counts.items()]
    return pd.concat(parts, ignore_index=True)[["text", "label"]]


@pytest.mark.parametrize(
    ("case", "fragments"),
    [
        (
            "one_class",
            ["data.parquet: column 'label' has 1 class(es) (negative); training needs at least 2"],
        ),
        ("tiny_class", ["class 'positive' has only 2 row(s)", "need at least 3"]),
        ("no_label", ["data.parquet: column 'label' not found (columns: text)"]),
        ("semicolons", ["data.csv: column 'text' not found (columns: text;label)"]),
    ],
)
def test_tune_refuses_bad_data_and_leaves_no_run_behind(
    ray_local, tmp_path, tweet_rows, case, fragments
):
    frames = {
        "one_class": _labelled(tweet_rows, {"negative": 60}),
        "tiny_class": _labelled(tweet_rows, {"negative": 40, "neutral": 40, "positive": 2}),
        "no_label": _labelled(tweet_rows, {"negative": 30, "positive": 30})[["text"]],
    }
    if case == "semicolons":
        data = tmp_path / "data.csv"
        rows = _labelled(tweet_rows, {"negative": 30, "positive": 30})
        # without commas in the texts, the header is one column named 'text;label' (with them, a
        # row has more fields than the header: refused, naming the line)
        rows["text"] = rows["text"].str.replace(",", " ")
        rows.to_csv(data, sep=";", index=False)
    else:
        data = tmp_path / "data.parquet"
        frames[case].to_parquet(data, index=False)
    storage = tmp_path / "runs"
    result = invoke("tune", data, "--storage", storage, "--name", "bad", "--samples", "1")
    assert_one_line_error(result, *fragments)
    assert list(storage.iterdir()) == []  # so the same --name can be used once the data is fixed


def test_unknown_family_in_a_space_file_is_refused_before_any_trial(tmp_path, tweet_rows):
    data = tmp_path / "data.parquet"
    _labelled(tweet_rows, {"negative": 40, "neutral": 40, "positive": 40}).to_parquet(
        data, index=False
    )
    space = tmp_path / "typo.yaml"
    space.write_text("family: bilstn\nembed_dim: 8\n")
    result = invoke(
        "tune",
        data,
        "--space",
        space,
        "--samples",
        "1",
        "--max-epochs",
        "1",
        "--storage",
        tmp_path / "runs",
        "--name",
        "typo",
    )
    # checked in the driver before Ray starts (voxpop.tune_spaces.space_check)
    assert_one_line_error(result, "model family 'bilstn' is not valid", "(valid: ", "bilstm", "cnn")
    assert "Ray:" not in result.output and not (tmp_path / "runs").exists()


@pytest.mark.slow  # real trials start (TensorFlow in a Ray worker): 60-180 s on 2 shared cores
def test_a_run_whose_every_trial_failed_frees_its_name_for_the_fixed_command(
    ray_local, tmp_path, tweet_rows
):
    data = tmp_path / "data.parquet"
    _labelled(tweet_rows, {"negative": 40, "neutral": 40, "positive": 40}).to_parquet(
        data, index=False
    )
    space = tmp_path / "space.yaml"
    storage = tmp_path / "runs"
    command = [
        "tune",
        data,
        "--space",
        space,
        "--samples",
        "1",
        "--max-epochs",
        "1",
        "--storage",
        storage,
        "--name",
        "again",
    ]
    space.write_text(
        "family: cnn\nembed_dim: 8\nfilters: 4\nhead_units: [-5]\n"
    )  # only Keras knows
    assert_one_line_error(
        invoke(*command),
        "every trial failed (1)",
        "nothing was kept, so the same --name works again",
    )
    assert not (storage / "again").exists()
    space.write_text("family: cnn\nembed_dim: 8\nfilters: 4\nhead_units: [8]\n")
    fixed = invoke(*command)
    assert fixed.exit_code == 0, fixed.output
    assert any((storage / "again").glob("*/checkpoint_*/metrics.json"))


def test_tune_refuses_a_malformed_vector_file_and_leaves_no_run_behind(
    ray_local, tmp_path, tweet_rows
):
    data = tmp_path / "data.parquet"
    _labelled(tweet_rows, {"negative": 40, "neutral": 40, "positive": 40}).to_parquet(data)
    vectors = tmp_path / "vectors.txt"  # fine header, first line and sniffing; line 3 is short
    vectors.write_text("the 0.1 0.2 0.3\nflight 0.1 0.2 0.3\nto 0.1 0.2\n")
    storage = tmp_path / "runs"
    result = invoke(
        "tune",
        data,
        "--storage",
        storage,
        "--name",
        "bad",
        "--samples",
        "1",
        "--space",
        "cnn",
        "--embeddings",
        vectors,
    )
    assert_one_line_error(result, f"{vectors}: line 3 has 2 values, expected 3 (as on line 1)")
    assert list(storage.iterdir()) == []
