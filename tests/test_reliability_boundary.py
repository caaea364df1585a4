"""The CLI's error boundary and the writer, from the user's side: a full disk, a read-only folder,
a directory where a file goes, a closed pipe, an --out that is the input, a run name that is a
path, a space file no trial could use, a file that is not UTF-8, and control characters from
files on the way to a terminal. Each ends in one `error:` line (exit 2) before any work where it
can be found before, leaves nothing half-written, and never a traceback.

Real processes where the fault lives in the process (a full /dev/full, a file-size limit, a
pseudo-terminal, a pipe closed by its reader); `CliRunner` elsewhere.
"""

from __future__ import annotations

import contextlib
import os
import pty
import resource
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from bundle_factory import bundle_dir, held_out_texts, tweet_preprocessor, tweet_rows, write_bundle  # noqa: F401
from test_reliability_input import assert_one_line_error, invoke
from voxpop.data.terminal import printable

REPO = Path(__file__).resolve().parents[1]
VOXPOP = str(Path(sys.executable).with_name("voxpop"))
ENV = {**os.environ, "PYTHONPATH": str(REPO / "src")}


def _voxpop(*args, **options) -> subprocess.CompletedProcess:
    return subprocess.run([VOXPOP, *map(str, args)], env=ENV, timeout=180, **options)


def _assert_one_error_line(stderr: str, *fragments: str) -> str:
    assert "Traceback" not in stderr and "Exception ignored" not in stderr, stderr
    errors = [line for line in stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and stderr.rstrip().endswith(errors[0]), stderr
    for fragment in fragments:
        assert fragment in errors[0], errors[0]
    return errors[0]


@pytest.fixture
def table(tmp_path, held_out_texts) -> Path:
    path = tmp_path / "in.csv"
    pd.DataFrame({"text": held_out_texts[:200]}).to_csv(path, index=False)
    return path


# -- data loss: an --out that is the input, under any name ----------------------------------------
@pytest.mark.parametrize("spelling", ["same", "dot", "symlink", "hardlink"])
def test_predict_refuses_an_out_that_is_its_input_before_any_work(
    tmp_path, bundle_dir, table, spelling, monkeypatch
):
    before = table.read_bytes()
    monkeypatch.chdir(tmp_path)
    out = {
        "same": table,
        "dot": Path("./in.csv"),
        "symlink": tmp_path / "link.csv",
        "hardlink": tmp_path / "hard.csv",
    }[spelling]
    if spelling == "symlink":
        out.symlink_to(table)
    if spelling == "hardlink":
        os.link(table, out)
    result = invoke("predict", bundle_dir, table, "--out", out)
    assert_one_line_error(result, "is the input", "writing it would destroy the input")
    assert "voxpop predict: device" not in result.stderr  # refused before loading the bundle
    assert table.read_bytes() == before


def test_predict_refuses_an_out_inside_the_bundle(tmp_path, bundle_dir, table):
    assert_one_line_error(
        invoke("predict", bundle_dir, table, "--out", bundle_dir / "preds.csv"),
        "is inside",
        "which this command reads",
    )
    assert not (bundle_dir / "preds.csv").exists()


def test_predict_out_naming_a_directory_is_one_line_before_any_work(tmp_path, bundle_dir, table):
    (tmp_path / "preds.csv").mkdir()
    result = invoke("predict", bundle_dir, table, "--out", tmp_path / "preds.csv")
    assert_one_line_error(result, "preds.csv: is a directory")
    assert "voxpop predict: device" not in result.stderr


# -- a full disk, a read-only folder, a closed pipe -----------------------------------------------
@pytest.mark.parametrize(
    "command",
    [
        ["predict", "BUNDLE", "TABLE"],
        ["info", "BUNDLE"],
        ["spaces", "list"],
        ["spaces", "show", "cnn"],
        ["--help"],
        ["predict", "--help"],
    ],
    ids=lambda c: " ".join(c),
)
def test_stdout_on_a_full_device_is_one_line(bundle_dir, table, command):
    words = [{"BUNDLE": bundle_dir, "TABLE": table}.get(word, word) for word in command]
    with open("/dev/full", "w") as full:
        done = _voxpop(*words, stdout=full, stderr=subprocess.PIPE, text=True)
    assert done.returncode == 2, done.stderr
    _assert_one_error_line(done.stderr, "error: <stdout>: No space left on device")


def _file_size_limit(n_bytes: int):
    # A file-size limit fails a write past it with EFBIG, as a full disk fails it with ENOSPC:
    # the same path through the writer, without root or a small file system.
    return lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (n_bytes, n_bytes))


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_a_full_disk_mid_write_is_one_line_and_leaves_no_file(tmp_path, bundle_dir, table, suffix):
    target = tmp_path / "out" / f"preds{suffix}"
    target.parent.mkdir()
    done = _voxpop(
        "predict",
        bundle_dir,
        table,
        "--out",
        target,
        "--probs",
        "--top-k",
        "3",
        "--batch-size",
        "50",
        capture_output=True,
        text=True,
        preexec_fn=_file_size_limit(2048),
    )
    assert done.returncode == 2, done.stderr
    _assert_one_error_line(done.stderr, f"{target}: ")
    assert list(target.parent.iterdir()) == []  # neither a partial output nor a temporary


@contextlib.contextmanager
def _read_only_folder(path: Path):
    """A folder nobody may write: a read-only mount as root (root ignores permissions), else 0555."""
    path.mkdir()
    if os.geteuid() != 0:
        path.chmod(0o555)
        yield path
        path.chmod(0o755)
        return
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(path)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip("running as root without the right to mount a read-only file system")
    try:
        yield path
    finally:
        subprocess.run(["umount", str(path)], check=True)


def test_a_read_only_out_is_one_line_before_any_work(tmp_path, bundle_dir, table):
    with _read_only_folder(tmp_path / "ro") as folder:
        result = invoke("predict", bundle_dir, table, "--out", folder / "preds.csv")
        assert_one_line_error(result, f"{folder / 'preds.csv'}: cannot write in {folder}")
        assert "voxpop predict: device" not in result.stderr


def test_a_read_only_storage_is_one_line_before_ray_starts(tmp_path, table):
    with _read_only_folder(tmp_path / "ro") as folder:
        result = invoke("tune", table, "--storage", folder / "runs", "--name", "x")
        assert_one_line_error(result, "--storage", "cannot write in")
        assert "Ray:" not in result.output


def test_a_closed_pipe_ends_quietly(tmp_path, bundle_dir, held_out_texts):
    table = tmp_path / "many.csv"  # far more output than a pipe buffers
    pd.DataFrame({"text": held_out_texts * 40}).to_csv(table, index=False)
    process = subprocess.Popen(
        [VOXPOP, "predict", str(bundle_dir), str(table), "--probs"],
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout.readline().startswith(b"label,")
    process.stdout.close()  # as `| head -1` does
    stderr = process.stderr.read().decode()
    assert process.wait(timeout=120) == 1
    assert (
        "Traceback" not in stderr and "Exception ignored" not in stderr and "error:" not in stderr
    )


# -- confinement: a run name is one folder name inside --storage ----------------------------------
@pytest.mark.parametrize("name", ["../escaped", "/etc", "a/b", ".", "..", "", "x\x1b[2J"])
def test_a_run_name_that_is_a_path_is_refused(tmp_path, table, name):
    storage = tmp_path / "deep" / "runs"
    result = invoke("tune", table, "--storage", storage, "--name", name)
    assert_one_line_error(result, "a run name is one plain folder name")
    assert not (tmp_path / "deep").exists() and not (tmp_path / "escaped").exists()


# -- space files: checked whole before Ray starts or anything is written --------------------------
@pytest.mark.parametrize(
    ("content", "fragments"),
    [
        (
            b"family: bilstm\nunits: {randint: [16, 8]}\n",
            ["randint needs low <= high, got [16, 8]"],
        ),
        (b"family: bilstm\nunits: {qrandint: [16, 8, 4]}\n", ["qrandint needs low <= high"]),
        (
            b"family: bilstm\nlearning_rate: {loguniform: [0.01, 0.001]}\n",
            ["loguniform needs low < high"],
        ),
        (
            b"family: bilstm\nunits: {uniform: [16, 64]}\n",
            ["key 'units'", "gives fractional numbers", "units is an integer"],
        ),
        (
            b"family: cnn\nfilters: {choice: [32, 48.5]}\n",
            ["key 'filters'", "48.5 is not an integer"],
        ),
        (b"family: bilstm\nloss: {choice: [crossentropy, hinge]}\n", ["'hinge' is not valid"]),
        (b"family: bilstm\nunitz: 8\n", ["key 'unitz' is not a model or training key"]),
        (b"family: cnn\nunits: 8\n", ["key 'units' is used by none of this space's families"]),
        (b"family: bilstn\n", ["model family 'bilstn' is not valid"]),
        (b"family: bilstm\n# caf\xe9\n", ["must be UTF-8 text", "line 2"]),
        (b"family: bilstm\nunits: {randint: [8, .nan]}\n", ["randint takes finite numbers"]),
        (
            b"family: bilstm\nlearning_rate: .inf\n",
            ["key 'learning_rate': inf is not a finite number"],
        ),
    ],
)
def test_a_space_no_trial_could_use_is_one_line_before_ray_starts(
    tmp_path, table, content, fragments
):
    space = tmp_path / "space.yaml"
    space.write_bytes(content)
    storage = tmp_path / "runs"
    result = invoke("tune", table, "--space", space, "--storage", storage, "--name", "s")
    assert_one_line_error(result, *fragments)
    assert "Ray:" not in result.output and not storage.exists()


def test_every_named_space_passes_the_check():
    from voxpop.tune_spaces.space_check import check_space
    from voxpop.tune_spaces.spaces import SPACES, get_space

    for name in SPACES:
        check_space(name, get_space(name))


def test_a_label_map_that_is_not_utf8_is_one_line(tmp_path, bundle_dir):
    labelled = tmp_path / "labelled.csv"
    pd.DataFrame({"text": ["good", "bad"], "label": ["pos", "neg"]}).to_csv(labelled, index=False)
    label_map = tmp_path / "map.txt"
    label_map.write_bytes(b"pos=positive\nn\xe9g=negative\n")
    result = invoke(
        "evaluate",
        bundle_dir,
        labelled,
        "--out",
        tmp_path / "report",
        "--label-map",
        label_map,
        "--no-baseline",
    )
    assert_one_line_error(result, "map.txt: a label map must be UTF-8 text; line 2")
    assert not (tmp_path / "report").exists()


# -- control characters from files never reach a terminal raw -------------------------------------
ESCAPE = "\x1b]0;pwned\x07\x1b[2J"  # retitle the window, clear the screen


def _raw_controls(text: str) -> set[str]:
    return {c for c in text if c not in "\n\t" and printable(c) != c}


def test_an_error_line_escapes_control_characters_from_the_file(tmp_path, bundle_dir):
    source = tmp_path / "t.csv"
    source.write_text(f"t{ESCAPE}xt,label\nhello,x\n", encoding="utf-8")
    result = invoke("predict", bundle_dir, source)
    line = assert_one_line_error(result, "column 'text' not found", "\\x1b]0;pwned\\x07")
    assert not _raw_controls(result.stderr) and line.count("\n") == 0


@pytest.fixture(scope="module")
def hostile_bundle(tmp_path_factory, tweet_rows):
    """A consistent bundle whose labels carry terminal escape sequences."""
    from voxpop.data import Preprocessor

    rows = tweet_rows.iloc[:300]
    labels = [f"{label}{ESCAPE}" if label == "negative" else label for label in rows["label"]]
    preprocessor = Preprocessor(max_tokens=500, max_len=16).fit(rows["text"].tolist(), labels)
    return write_bundle(tmp_path_factory.mktemp("hostile") / "bundle", preprocessor)


def test_info_of_a_bundle_with_escapes_in_its_labels_shows_them_escaped(hostile_bundle):
    result = invoke("info", hostile_bundle)
    assert result.exit_code in (0, 2), result.output  # shown escaped, or refused in one line
    assert not _raw_controls(result.output)
    if result.exit_code == 0:
        assert "negative\\x1b]0;pwned\\x07\\x1b[2J" in result.stdout


def _on_a_terminal(*args) -> str:
    """Run voxpop with stdout on a pseudo-terminal; what the terminal received."""
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [VOXPOP, *map(str, args)], env=ENV, stdout=follower, stderr=subprocess.DEVNULL
    )
    os.close(follower)
    received = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the process closed the terminal
            break
        if not chunk:
            break
        received += chunk
    assert process.wait(timeout=120) == 0
    os.close(leader)
    return received.decode("utf-8", errors="replace")


def test_stdout_csv_escapes_ids_and_labels_on_a_terminal_and_not_in_a_pipe(
    tmp_path, hostile_bundle, tweet_rows
):
    source = tmp_path / "in.csv"
    texts = tweet_rows["text"].iloc[300:340].tolist()
    pd.DataFrame({"id": [f"row{i}{ESCAPE}" for i in range(len(texts))], "text": texts}).to_csv(
        source, index=False
    )
    shown = _on_a_terminal("predict", hostile_bundle, source, "--id-col", "id", "--probs")
    assert "row0\\x1b]0;pwned\\x07\\x1b[2J" in shown and "prob_negative\\x1b" in shown
    assert not _raw_controls(shown.replace("\r\n", "\n"))
    piped = _voxpop(
        "predict",
        hostile_bundle,
        source,
        "--id-col",
        "id",
        "--probs",
        capture_output=True,
        text=True,
    )
    assert piped.returncode == 0 and f"row0{ESCAPE}" in piped.stdout  # data as it is


def test_the_leaderboard_shows_names_and_errors_from_files_as_literal_text(capsys):
    from voxpop.serving_cli.tune import _print_leaderboard

    row = {
        "trial_id": f"t1{ESCAPE}",
        "family": "cnn",
        "params": {"loss": "[bold]focal"},
        "epoch": None,
        "epochs_run": 0,
        "val_macro_f1": None,
        "restarts": 0,
        "state": "failed",
        "error": f"ValueError: unknown label 'neg{ESCAPE}' [red]x[/red]",
    }
    _print_leaderboard([row])
    shown = capsys.readouterr().out
    assert not _raw_controls(shown)
    assert "t1\\x1b]0;pwned" in shown and "[bold]focal" in shown and "[red]x[/red]" in shown


def _closed_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]  # nothing listens there once the socket is closed


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        (["--num-cpus", "0"], "--num-cpus must be at least 1"),
        (["--num-cpus", "-1"], "--num-cpus must be at least 1"),
        (["--num-gpus", "-1"], "--num-gpus must not be negative"),
        (["--address", "ADDRESS"], "nothing answers there"),
    ],
)
def test_tune_options_ray_would_crash_or_hang_on_are_one_line(tmp_path, table, options, fragment):
    options = [f"127.0.0.1:{_closed_port()}" if word == "ADDRESS" else word for word in options]
    result = invoke("tune", table, "--storage", tmp_path / "runs", "--name", "x", *options)
    assert_one_line_error(result, fragment)
    assert not (tmp_path / "runs").exists()
