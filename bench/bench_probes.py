"""Reliability probes: each runs `voxpop` on a prepared bad input (a malformed table, an --out that
is the input, a full disk, a hostile name, a kill at a random moment) and checks the outcome it
must have: one `error:` line and exit code 2, or a correct result. Every outcome (name, class,
exit code, first stderr line, verdict) is recorded in bench/results/probes.json and RESULTS.md.

A probe is a `Probe(name, kind, run)`; `cli_probe(...)` builds the common kind (a command, its
inputs, the expected outcome). Probe lists live in `PROBE_LISTS`: add a list there to add probes
of a new class.

    nice .venv/bin/python bench/bench_probes.py [--only KIND ...] [--list]
    nice .venv/bin/python bench/bench_probes.py --src ../main/src --record-as probes_before
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import pty
import random
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from common import BENCH, record

sys.path.insert(0, str(BENCH.parent / "tests"))
from bundle_factory import fused_model, rehash, write_bundle  # noqa: E402
from voxpop.data import Preprocessor  # noqa: E402
from voxpop.data.builtin import load_tweets  # noqa: E402
from voxpop.data.terminal import printable  # noqa: E402

REPO = BENCH.parent
VOXPOP = str(Path(sys.executable).with_name("voxpop"))
ENV = {**os.environ, "PYTHONPATH": str(REPO / "src")}
ESCAPE = "\x1b]0;pwned\x07\x1b[2J"  # retitle the terminal window, clear the screen


# -- what a probe is, and the outcome it records ---------------------------------------------------
@dataclass
class Context:
    """What every probe may use: a fresh folder of its own, a good bundle, a bundle whose labels
    carry terminal escapes, real tweets."""

    folder: Path
    bundle: Path
    hostile_bundle: Path
    texts: list[str]

    def table(self, name: str = "in.csv", rows: int = 200, **columns) -> Path:
        """Real tweets (and any extra columns) written as CSV, TSV, JSONL or Parquet by suffix."""
        frame = pd.DataFrame(
            {"text": (self.texts * (rows // len(self.texts) + 1))[:rows], **columns}
        )
        path = self.folder / name
        {
            ".csv": lambda: frame.to_csv(path, index=False),
            ".jsonl": lambda: frame.to_json(path, orient="records", lines=True, force_ascii=False),
            ".parquet": lambda: frame.to_parquet(path, index=False),
        }[path.suffix]()
        return path


@dataclass
class Outcome:
    exit_code: int | None
    first_line: str
    problems: list[str] = field(default_factory=list)

    @property
    def verdict(self) -> str:
        return "pass" if not self.problems else "FAIL: " + "; ".join(self.problems)


@dataclass(frozen=True)
class Probe:
    name: str
    kind: str  # the class of fault: a key of PROBE_LISTS
    run: Callable[[Context], Outcome]


def voxpop(
    *words, stdin: bytes | None = None, stdout=subprocess.PIPE, preexec=None, timeout: float = 300
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [VOXPOP, *map(str, words)],
        input=stdin,
        stdout=stdout,
        stderr=subprocess.PIPE,
        env=ENV,
        timeout=timeout,
        preexec_fn=preexec,
    )


def judge_error(done: subprocess.CompletedProcess, fragment: str | None) -> Outcome:
    """Expected: exit 2, exactly one `error:` line, last on stderr, no traceback, no raw control
    character; `fragment` in the line."""
    stderr = done.stderr.decode("utf-8", errors="replace")
    errors = [line for line in stderr.splitlines() if line.startswith("error: ")]
    outcome = Outcome(done.returncode, errors[0] if errors else _first(stderr))
    if done.returncode != 2:
        outcome.problems.append(f"exit code {done.returncode}, expected 2")
    if "Traceback" in stderr or "Exception ignored" in stderr:
        outcome.problems.append("traceback")
    if len(errors) != 1 or not stderr.rstrip().endswith(errors[0]):
        outcome.problems.append(f"{len(errors)} error lines")
    if _raw_controls(stderr):
        outcome.problems.append("raw control characters on stderr")
    if fragment and errors and fragment not in errors[0]:
        outcome.problems.append(f"error line lacks {fragment!r}")
    return outcome


def judge_ok(done: subprocess.CompletedProcess) -> Outcome:
    stderr = done.stderr.decode("utf-8", errors="replace")
    outcome = Outcome(done.returncode, _first(stderr))
    if done.returncode != 0:
        outcome.problems.append(f"exit code {done.returncode}, expected 0")
    if "Traceback" in stderr:
        outcome.problems.append("traceback")
    return outcome


def cli_probe(
    name: str,
    kind: str,
    words: Callable[[Context], list],
    *,
    expect: str = "error",
    fragment: str | None = None,
    stdin: Callable[[Context], bytes] | None = None,
    check: Callable[[Context, subprocess.CompletedProcess], str | None] | None = None,
    stdout: str = "pipe",
    file_size_limit: int | None = None,
) -> Probe:
    """A probe that runs `voxpop WORDS` (built from the context, inputs written by that call).

    expect "error": one `error:` line naming `fragment`, exit 2; "ok": exit 0. `check` adds a
    condition on the files or the output (returns a problem, or None). stdout "devfull" writes
    stdout to /dev/full; `file_size_limit` makes writes past that many bytes fail as on a full disk.
    """

    def run(ctx: Context) -> Outcome:
        arguments = words(ctx)
        data = stdin(ctx) if stdin else None
        preexec = None
        if file_size_limit is not None:

            def preexec():
                resource.setrlimit(resource.RLIMIT_FSIZE, (file_size_limit, file_size_limit))

        with contextlib.ExitStack() as stack:
            out = subprocess.PIPE
            if stdout == "devfull":
                out = stack.enter_context(open("/dev/full", "w"))
            done = voxpop(*arguments, stdin=data, stdout=out, preexec=preexec)
        outcome = judge_error(done, fragment) if expect == "error" else judge_ok(done)
        problem = check(ctx, done) if check else None
        if problem:
            outcome.problems.append(problem)
        return outcome

    return Probe(name, kind, run)


def _first(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[0] if lines else ""


def _raw_controls(text: str) -> bool:
    return any(c not in "\n\t\r" and printable(c) != c for c in text)


def _write(ctx: Context, name: str, content: bytes | str) -> Path:
    path = ctx.folder / name
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


def _nothing_left_in(sub: str) -> Callable:
    def check(ctx: Context, _done) -> str | None:
        left = sorted(p.name for p in (ctx.folder / sub).iterdir())
        return f"left behind: {', '.join(left)}" if left else None

    return check


# -- 1. tables: strict rows, one label rule, blank lines ------------------------------------------
def _predict_file(name: str, content: bytes) -> Callable[[Context], list]:
    return lambda ctx: ["predict", ctx.bundle, _write(ctx, name, content)]


def _rows_match(expected: int) -> Callable:
    def check(_ctx, done) -> str | None:
        rows = done.stdout.decode().count("\n") - 1
        return None if rows == expected else f"{rows} output rows, expected {expected}"

    return check


def _stray_quote_in_real_file(ctx: Context) -> list:
    lines = ctx.table(rows=2000).read_text(encoding="utf-8").split("\n")
    lines[1] = '"' + lines[1]
    return ["predict", ctx.bundle, _write(ctx, "stray.csv", "\n".join(lines))]


def _same_labels_in_every_format(ctx: Context) -> list:
    """evaluate with labels 1, 1.0, 2 written as CSV; checked against JSONL and Parquet below."""
    labels = ["1", "1.0", "2", "0"] * 25
    return [
        "evaluate",
        ctx.bundle,
        ctx.table("l.csv", rows=100, label=labels),
        "--out",
        ctx.folder / "report",
        "--label-map",
        "1=positive,2=negative,0=neutral",
        "--no-baseline",
        "--report-format",
        "json",
    ]


def _no_unmapped_rows(ctx: Context, done) -> str | None:
    text = (
        (ctx.folder / "report" / "report.json").read_text()
        if (ctx.folder / "report" / "report.json").exists()
        else ""
    )
    for suffix, labels in (
        (".jsonl", [1, 1.0, 2, 0] * 25),
        (".parquet", [1.0, 1.0, 2.0, 0.0] * 25),
    ):
        other = voxpop(
            "evaluate",
            ctx.bundle,
            ctx.table(f"l{suffix}", rows=100, label=labels),
            "--out",
            ctx.folder / f"report{suffix}",
            "--label-map",
            "1=positive,2=negative,0=neutral",
            "--no-baseline",
            "--report-format",
            "json",
        )
        if other.returncode != 0:
            return f"{suffix}: exit {other.returncode}"
    if '"n_unmapped": 0' not in text:
        return "rows left unmapped: 1 and 1.0 read as two labels"
    return None


TABLE_PROBES = [
    cli_probe(
        "first data row has one field more than the header",
        "tables",
        _predict_file("shift.csv", b"text,label\nhello, world,positive\nfine,negative\n"),
        fragment="line 2 has 3 field(s), but the header has 2",
    ),
    cli_probe(
        "a later row has one field more",
        "tables",
        _predict_file("late.csv", b"text,label\nfine,negative\nok,neutral\nhi, there,positive\n"),
        fragment="line 4 has 3 field(s)",
    ),
    cli_probe(
        "a row has one field less",
        "tables",
        _predict_file("short.csv", b"text,label,id\nfine,negative,1\nok,2\n"),
        fragment="line 3 has 2 field(s)",
    ),
    cli_probe(
        "stray quote at the start of row 1 (unquoted file)",
        "tables",
        _predict_file("quote.csv", b'text,label\n"hello,positive\nfoo,negative\nbar,neutral\n'),
        fragment="line 2: a quote opened in this row is never closed",
    ),
    cli_probe(
        "stray quote at the start of row 1 (2,000 real tweets, quoted file)",
        "tables",
        _stray_quote_in_real_file,
        fragment="line 2",
    ),
    cli_probe(
        "duplicate column names",
        "tables",
        _predict_file("dup.csv", b"text,label,text\na,b,c\n"),
        fragment="appears more than once",
    ),
    cli_probe(
        "duplicate key in a JSON line",
        "tables",
        _predict_file("dup.jsonl", b'{"text": "a"}\n{"text": "b", "text": "c"}\n'),
        fragment="line 2: key 'text' appears more than once",
    ),
    cli_probe(
        "a JSON line that is not an object",
        "tables",
        _predict_file("arr.jsonl", b'{"text": "a"}\n["b"]\n'),
        fragment="line 2: not a JSON object",
    ),
    cli_probe(
        "a JSON line without the text column",
        "tables",
        _predict_file("miss.jsonl", b'{"text": "a"}\n{"txt": "b"}\n'),
        fragment="line 2: column 'text' missing",
    ),
    cli_probe(
        "a UTF-16 CSV (Excel's Unicode text)",
        "tables",
        _predict_file("u16.csv", "text\nhello\n".encode("utf-16")),
        fragment="UTF-16",
    ),
    cli_probe(
        "blank lines in a CSV are empty rows, counted as on stdin",
        "tables",
        _predict_file("blank.csv", b"text,label\ngood,a\n\nbad,b\n\n"),
        expect="ok",
        check=_rows_match(4),
    ),
    cli_probe(
        "blank lines on stdin are empty rows",
        "tables",
        lambda ctx: ["predict", ctx.bundle, "-"],
        stdin=lambda ctx: b"good\n\nbad\n\n",
        expect="ok",
        check=_rows_match(4),
    ),
    cli_probe(
        "labels 1 and 1.0 are one class in CSV, JSONL and Parquet",
        "tables",
        _same_labels_in_every_format,
        expect="ok",
        check=_no_unmapped_rows,
    ),
]


# -- 2. data loss: an --out that is the input ------------------------------------------------------
def _out_is_input(spelling: str) -> Callable[[Context], list]:
    def words(ctx: Context) -> list:
        source = ctx.table()
        (ctx.folder / "input.sha").write_bytes(source.read_bytes())
        out = {
            "same": source,
            "dot": Path("./in.csv"),  # probes run in their folder
            "symlink": ctx.folder / "link.csv",
            "hardlink": ctx.folder / "hard.csv",
        }[spelling]
        if spelling == "symlink":
            out.symlink_to(source)
        if spelling == "hardlink":
            os.link(source, out)
        return ["predict", ctx.bundle, source, "--out", out]

    return words


def _input_unchanged(ctx: Context, _done) -> str | None:
    same = (ctx.folder / "in.csv").read_bytes() == (ctx.folder / "input.sha").read_bytes()
    return None if same else "the input was changed"


DATA_LOSS_PROBES = [
    cli_probe(
        f"predict --out is the input ({spelling})",
        "data loss",
        _out_is_input(spelling),
        fragment="is the input",
        check=_input_unchanged,
    )
    for spelling in ("same", "dot", "symlink", "hardlink")
] + [
    cli_probe(
        "predict --out inside the bundle",
        "data loss",
        lambda ctx: ["predict", ctx.bundle, ctx.table(), "--out", ctx.bundle / "p.csv"],
        fragment="which this command reads",
        check=lambda ctx, _: "wrote into the bundle" if (ctx.bundle / "p.csv").exists() else None,
    ),
]


# -- 3. tracebacks: the user's environment ---------------------------------------------------------
@contextlib.contextmanager
def _read_only(folder: Path):
    folder.mkdir()
    if os.geteuid() != 0:
        folder.chmod(0o555)
        try:
            yield folder
        finally:
            folder.chmod(0o755)
        return
    subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(folder)], check=True)
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=True)


def _read_only_probe(name: str, words: Callable[[Path, Context], list], fragment: str) -> Probe:
    def run(ctx: Context) -> Outcome:
        with _read_only(ctx.folder / "ro") as folder:
            return judge_error(voxpop(*words(folder, ctx)), fragment)

    return Probe(name, "tracebacks", run)


def _closed_pipe(ctx: Context) -> Outcome:
    process = subprocess.Popen(
        [VOXPOP, "predict", str(ctx.bundle), str(ctx.table(rows=20_000)), "--probs"],
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    process.stdout.readline()
    process.stdout.close()  # as `| head -1`
    stderr = process.stderr.read().decode()
    outcome = Outcome(process.wait(timeout=300), _first(stderr))
    if "Traceback" in stderr or "Exception ignored" in stderr or "error:" in stderr:
        outcome.problems.append("noise after the reader left")
    if outcome.exit_code not in (0, 1):
        outcome.problems.append(f"exit code {outcome.exit_code}")
    return outcome


def _space(content: bytes) -> Callable[[Context], list]:
    return lambda ctx: [
        "tune",
        ctx.table(label=["positive", "negative"] * 100),
        "--space",
        _write(ctx, "space.yaml", content),
        "--storage",
        ctx.folder / "runs",
        "--name",
        "probe",
    ]


def _out_in_folder(name: str) -> Callable[[Context], list]:
    def words(ctx: Context) -> list:
        (ctx.folder / name).mkdir()
        return ["predict", ctx.bundle, ctx.table(), "--out", ctx.folder / name / "p.csv", "--probs"]

    return words


def _out_is_a_directory(ctx: Context) -> list:
    (ctx.folder / "d.csv").mkdir()
    return ["predict", ctx.bundle, ctx.table(), "--out", ctx.folder / "d.csv"]


def _no_run_left(ctx: Context, _done) -> str | None:
    return "a run directory was left" if (ctx.folder / "runs").exists() else None


TRACEBACK_PROBES = [
    cli_probe(
        "predict to stdout on /dev/full",
        "tracebacks",
        lambda ctx: ["predict", ctx.bundle, ctx.table()],
        stdout="devfull",
        fragment="<stdout>: No space left on device",
    ),
    cli_probe(
        "info to stdout on /dev/full",
        "tracebacks",
        lambda ctx: ["info", ctx.bundle],
        stdout="devfull",
        fragment="No space left on device",
    ),
    cli_probe(
        "--help to stdout on /dev/full",
        "tracebacks",
        lambda ctx: ["--help"],
        stdout="devfull",
        fragment="No space left on device",
    ),
    cli_probe(
        "predict --out on a full disk (file-size limit)",
        "tracebacks",
        _out_in_folder("o"),
        file_size_limit=4096,
        fragment="p.csv",
        check=_nothing_left_in("o"),
    ),
    cli_probe(
        "predict --out names an existing directory",
        "tracebacks",
        _out_is_a_directory,
        fragment="is a directory",
    ),
    _read_only_probe(
        "predict --out in a read-only folder",
        lambda ro, ctx: ["predict", ctx.bundle, ctx.table(), "--out", ro / "p.csv"],
        "cannot write in",
    ),
    _read_only_probe(
        "tune --storage in a read-only folder",
        lambda ro, ctx: [
            "tune",
            ctx.table(label=["a", "b"] * 100),
            "--storage",
            ro / "runs",
            "--name",
            "x",
        ],
        "cannot write in",
    ),
    cli_probe(
        "evaluate --label-map file that is not UTF-8",
        "tracebacks",
        lambda ctx: [
            "evaluate",
            ctx.bundle,
            ctx.table(label=["pos", "neg"] * 100),
            "--out",
            ctx.folder / "r",
            "--label-map",
            _write(ctx, "m.txt", b"pos=positive\nn\xe9g=negative\n"),
            "--no-baseline",
        ],
        fragment="must be UTF-8",
    ),
    cli_probe(
        "tune --space file that is not UTF-8",
        "tracebacks",
        _space(b"family: cnn\n# caf\xe9\n"),
        fragment="must be UTF-8",
        check=_no_run_left,
    ),
    cli_probe(
        "tune --space with reversed randint bounds",
        "tracebacks",
        _space(b"family: bilstm\nunits: {randint: [16, 8]}\n"),
        fragment="randint needs low <= high",
        check=_no_run_left,
    ),
    cli_probe(
        "tune --space with a float sampler for an integer key",
        "tracebacks",
        _space(b"family: bilstm\nunits: {uniform: [16, 64]}\n"),
        fragment="units is an integer",
        check=_no_run_left,
    ),
    cli_probe(
        "tune --space with an invalid loss",
        "tracebacks",
        _space(b"family: bilstm\nloss: {choice: [focal, hinge]}\n"),
        fragment="'hinge' is not valid",
        check=_no_run_left,
    ),
    Probe("predict to a pipe closed by its reader", "tracebacks", _closed_pipe),
    cli_probe(
        "tune --num-cpus -1",
        "tracebacks",
        lambda ctx: [
            "tune",
            ctx.table(label=["a", "b"] * 100),
            "--storage",
            ctx.folder / "runs",
            "--name",
            "x",
            "--num-cpus",
            "-1",
        ],
        fragment="--num-cpus must be at least 1",
        check=_no_run_left,
    ),
    cli_probe(
        "tune --address where nothing listens",
        "tracebacks",
        lambda ctx: [
            "tune",
            ctx.table(label=["a", "b"] * 100),
            "--storage",
            ctx.folder / "runs",
            "--name",
            "x",
            "--address",
            "127.0.0.1:9",
        ],
        fragment="nothing answers there",
        check=_no_run_left,
    ),
]


# -- 4. confinement: run names, terminal escapes ----------------------------------------------------
def _escapes_shown_escaped(ctx: Context) -> Outcome:
    """predict with stdout on a pseudo-terminal: ids and labels with escapes arrive escaped."""
    source = ctx.table(rows=20, id=[f"r{i}{ESCAPE}" for i in range(20)])
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [VOXPOP, "predict", str(ctx.hostile_bundle), str(source), "--id-col", "id", "--probs"],
        env=ENV,
        stdout=follower,
        stderr=subprocess.PIPE,
    )
    os.close(follower)
    shown = b""
    with contextlib.suppress(OSError):
        while chunk := os.read(leader, 65536):
            shown += chunk
    os.close(leader)
    outcome = Outcome(process.wait(timeout=120), _first(shown.decode(errors="replace")))
    if outcome.exit_code != 0:
        outcome.problems.append(f"exit code {outcome.exit_code}")
    if _raw_controls(shown.decode(errors="replace")):
        outcome.problems.append("raw control characters reached the terminal")
    return outcome


def _info_escaped(ctx: Context) -> Outcome:
    done = voxpop("info", ctx.hostile_bundle)
    text = (done.stdout + done.stderr).decode(errors="replace")
    outcome = Outcome(done.returncode, _first(text))
    if _raw_controls(text):
        outcome.problems.append("raw control characters in info")
    if "Traceback" in text:
        outcome.problems.append("traceback")
    return outcome


CONFINEMENT_PROBES = [
    cli_probe(
        f"tune --name {name!r}",
        "confinement",
        lambda ctx, name=name: [
            "tune",
            ctx.table(label=["a", "b"] * 100),
            "--storage",
            ctx.folder / "s" / "runs",
            "--name",
            name,
        ],
        fragment="a run name is one plain folder name",
        check=lambda ctx, _: (
            "created a folder"
            if (ctx.folder / "s").exists() or (ctx.folder / "x").exists()
            else None
        ),
    )
    for name in ("../x", "/etc", "a/b", "..")
] + [
    cli_probe(
        "escape sequence in a CSV header reaches an error line",
        "confinement",
        _predict_file("esc.csv", f"t{ESCAPE}xt,label\nhi,a\n".encode()),
        fragment="\\x1b]0;pwned",
    ),
    Probe("escape sequences in a bundle's labels, voxpop info", "confinement", _info_escaped),
    Probe(
        "escape sequences in ids and labels, CSV on a terminal",
        "confinement",
        _escapes_shown_escaped,
    ),
]


# -- 5. faults: SIGKILL at random moments ----------------------------------------------------------
def _killed_predict(ctx: Context) -> Outcome:
    """SIGKILL predict at 6 random moments while an old output exists: old or new, never partial;
    a rerun succeeds and leaves no temporary."""
    source, target = ctx.table(rows=10_000), ctx.folder / "p.csv"
    old = b"label,confidence,empty_text\nold,1.0,False\n"
    target.write_bytes(old)
    command = [
        VOXPOP,
        "predict",
        str(ctx.bundle),
        str(source),
        "--out",
        str(target),
        "--batch-size",
        "500",
    ]
    outcome = Outcome(None, "")
    rng = random.Random(16)
    codes = []
    for _ in range(6):
        process = subprocess.Popen(
            command, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        time.sleep(rng.uniform(0.2, 4.0))
        process.send_signal(signal.SIGKILL)
        codes.append(process.wait())
        content = target.read_bytes()
        if content != old:
            lines = content.count(b"\n")
            if lines != 10_001:
                outcome.problems.append(f"partial output ({lines} lines)")
            target.write_bytes(old)
    done = voxpop(*command[1:])
    outcome.exit_code, outcome.first_line = (
        done.returncode,
        f"exit codes of the killed runs: {codes}",
    )
    if done.returncode != 0:
        outcome.problems.append("the rerun failed")
    leftovers = sorted(p.name for p in ctx.folder.iterdir() if p.name not in ("in.csv", "p.csv"))
    if leftovers:
        outcome.problems.append(f"left behind: {', '.join(leftovers)}")
    return outcome


FAULT_PROBES = [
    Probe("SIGKILL predict at random moments over an old output", "faults", _killed_predict)
]


# -- 6. memory: flat in row count --------------------------------------------------------------------
def _peak_mib(command: list, stdin: Path | None = None) -> float:
    """Peak RSS of `voxpop COMMAND` in MiB: VmHWM of its own address space. (Not ru_maxrss: on
    Linux that also counts the forking parent's RSS at exec time.)"""
    script = (
        "import sys\nfrom voxpop.serving_cli.app import main\n"
        "sys.argv = ['voxpop'] + sys.argv[1:]\n"
        "try:\n    main()\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
        "status = open('/proc/self/status').read()\n"
        "print('PEAK', status.split('VmHWM:')[1].split()[0], file=sys.stderr)\n"
    )
    with open(stdin, "rb") if stdin else contextlib.nullcontext(None) as handle:
        done = subprocess.run(
            [sys.executable, "-c", script, *map(str, command)],
            stdin=handle,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=ENV,
            timeout=900,
        )
    return int(done.stderr.decode().split("PEAK")[1].split()[0]) / 1024


def _memory_flat(suffix: str) -> Callable[[Context], Outcome]:
    """Peak RSS of predict on 5,000 and on 50,000 rows (the least of 2 runs each)."""

    def run(ctx: Context) -> Outcome:
        peaks = {}
        for rows in (5_000, 50_000):
            source = ctx.table(f"m{rows}{suffix if suffix != '-' else '.csv'}", rows=rows)
            words, stdin = ["predict", ctx.bundle, source, "--out", ctx.folder / "o.csv"], None
            if suffix == "-":
                stdin = ctx.folder / f"m{rows}.txt"
                stdin.write_text(
                    "\n".join(
                        t.replace("\n", " ").replace("\r", " ") for t in pd.read_csv(source)["text"]
                    )
                    + "\n"
                )
                words[2] = "-"
            peaks[rows] = min(_peak_mib(words, stdin) for _ in range(2))
        ratio = peaks[50_000] / peaks[5_000]
        outcome = Outcome(
            0,
            f"peak RSS {peaks[5_000]:.0f} MiB at 5,000 rows, {peaks[50_000]:.0f} MiB "
            f"at 50,000 (x{ratio:.2f})",
        )
        if ratio > 1.10:
            outcome.problems.append("memory grows with the row count")
        return outcome

    return run


MEMORY_PROBES = [
    Probe(
        f"predict memory flat in row count ({'stdin' if s == '-' else s})",
        "memory",
        _memory_flat(s),
    )
    for s in (".csv", ".jsonl", ".parquet", "-")
]


# -- 7. hostile bundles: tampered files, rewritten checksums, random mutations ------------------------
def _tampered(
    change: Callable[[Path], None], *, rehashed: bool = True, extra: tuple = ()
) -> Callable[[Context], list]:
    """predict on a copy of the good bundle after `change(copy)`; with `rehashed`, every checksum
    is rewritten to match, as an attacker would."""

    def words(ctx: Context) -> list:
        copy = Path(shutil.copytree(ctx.bundle, ctx.folder / "b"))
        change(copy)
        if rehashed:
            rehash(copy)
        return ["predict", copy, ctx.table(rows=50), *extra]

    return words


def _edit(name: str, change: Callable[[dict], None]) -> Callable[[Path], None]:
    def edit(bundle: Path) -> None:
        data = json.loads((bundle / name).read_text())
        change(data)
        (bundle / name).write_text(json.dumps(data).replace('"<1e400>"', "1e400"))

    return edit


def _flip_bytes(relative: str, at: int = 200) -> Callable[[Path], None]:
    def flip(bundle: Path) -> None:
        data = bytearray((bundle / relative).read_bytes())
        data[at : at + 12] = bytes(12)
        (bundle / relative).write_bytes(bytes(data))

    return flip


def _external_data(bundle: Path) -> None:
    import onnx

    path = bundle / "members" / "m1.onnx"
    onnx.save(
        onnx.load(path),
        path,
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location="m1.data",
        size_threshold=0,
    )


def _other_fused_weights(bundle: Path) -> None:
    import onnx

    from voxpop.data import Preprocessor

    pre = Preprocessor.from_json(bundle / "preprocess.json")
    specs = [{"id": f"m{i + 1}", "seed": i, "use_features": i == 2} for i in range(3)]
    onnx.save(
        fused_model(
            specs,
            [1.0, 1.0, 5.0],
            n_tokens=pre.n_tokens,
            n_classes=len(pre.labels),
            n_features=pre.n_features,
        ),
        bundle / "fused.onnx",
    )


def _swap_member(bundle: Path) -> None:
    shutil.copyfile(bundle / "members" / "m2.onnx", bundle / "members" / "m1.onnx")


def _drop_tokenizer(data: dict, pattern: str) -> None:
    del data["tokenizer"]
    data["format_version"], data["tokenizer_pattern"] = 1, pattern


def _signed_then_rewritten(ctx: Context) -> list:
    from voxpop.ensemble.signing import load_private_key, write_key_pair

    write_key_pair(ctx.folder / "alice.pem", ctx.folder / "alice.pub.pem")
    bundle = ctx.folder / "signed"
    write_bundle(
        bundle,
        Preprocessor.from_json(ctx.bundle / "preprocess.json"),
        sign_with=load_private_key(ctx.folder / "alice.pem"),
    )
    _other_fused_weights(bundle)
    rehash(bundle)
    return ["predict", bundle, ctx.table(rows=50), "--trust", ctx.folder / "alice.pub.pem"]


def _mutations(ctx: Context) -> Outcome:
    """60 random mutations of the manifest's and the preprocess file's JSON (a value replaced by
    another type, a huge or negative number, a key removed, a list emptied), each under a 60 s
    timeout: every one must load correctly (exit 0) or end in one `error:` line naming the file."""
    rng = random.Random(21)
    replacements = [
        None,
        True,
        -1,
        0,
        1e308,
        "<1e400>",
        2**63,
        "x",
        "",
        [],
        {},
        [1, "a"],
        "\x1b[2J",
        10**9,
    ]
    codes: dict[int, int] = {}
    outcome = Outcome(0, "")
    for number in range(60):
        copy = Path(shutil.copytree(ctx.bundle, ctx.folder / f"b{number}"))
        name = rng.choice(["ensemble.json", "preprocess.json"])
        data = json.loads((copy / name).read_text())
        parent, key = _random_slot(data, rng)
        if rng.random() < 0.3 and isinstance(parent, dict):
            parent.pop(key)
        elif isinstance(parent, list) and rng.random() < 0.3:
            parent.clear()
        else:
            parent[key] = rng.choice(replacements)
        (copy / name).write_text(json.dumps(data).replace('"<1e400>"', "1e400"))
        if name == "preprocess.json" and rng.random() < 0.5:
            rehash(copy)  # past the checksums, into the loader's own checks
        try:
            done = voxpop("predict", copy, "-", stdin=b"great flight\nworst ever\n", timeout=60)
        except subprocess.TimeoutExpired:
            outcome.problems.append(f"mutation {number} ({name}): hung past 60 s")
            continue
        codes[done.returncode] = codes.get(done.returncode, 0) + 1
        if done.returncode != 0:
            judged = judge_error(done, name)
            if judged.problems:
                outcome.problems.append(f"mutation {number} ({name}): {'; '.join(judged.problems)}")
        shutil.rmtree(copy)
    outcome.first_line = f"60 mutations: exit codes {dict(sorted(codes.items()))}"
    outcome.problems = outcome.problems[:5]
    return outcome


def _random_slot(data, rng: random.Random):
    """A random (container, key) in a JSON document, descending a random path."""
    parent, key = data, rng.choice(list(data))
    while isinstance(parent[key], (dict, list)) and parent[key] and rng.random() < 0.7:
        parent = parent[key]
        key = rng.choice(list(parent)) if isinstance(parent, dict) else rng.randrange(len(parent))
    return parent, key


HOSTILE_BUNDLE_PROBES = [
    cli_probe(
        "a member's bytes changed, checksums left as they were",
        "hostile bundles",
        _tampered(_flip_bytes("members/m1.onnx"), rehashed=False, extra=("--no-fused",)),
        fragment="sha256",
    ),
    cli_probe(
        "catastrophic tokenizer regex in preprocess.json (old format)",
        "hostile bundles",
        _tampered(_edit("preprocess.json", lambda d: _drop_tokenizer(d, r"(a+)+$|(\w+\s?)*$"))),
        fragment="not a pattern voxpop wrote",
    ),
    cli_probe(
        "unknown tokenizer name in preprocess.json",
        "hostile bundles",
        _tampered(_edit("preprocess.json", lambda d: d.update(tokenizer=r"(a+)+$"))),
        fragment="unknown tokenizer",
    ),
    cli_probe(
        "max_len 2,000,000,000 (7 GB per row)",
        "hostile bundles",
        _tampered(_edit("preprocess.json", lambda d: d.update(max_len=2_000_000_000))),
        fragment="max_len",
    ),
    cli_probe(
        "vocabulary size 10^12",
        "hostile bundles",
        _tampered(_edit("preprocess.json", lambda d: d.update(max_tokens=10**12))),
        fragment="max_tokens",
    ),
    cli_probe(
        "a member's weights moved to an external data file",
        "hostile bundles",
        _tampered(_external_data, extra=("--no-fused",)),
        fragment="external file",
    ),
    cli_probe(
        "fused graph with other vote weights, checksums rewritten",
        "hostile bundles",
        _tampered(_other_fused_weights),
        fragment="check rows",
    ),
    cli_probe(
        "one member swapped for another, checksums rewritten",
        "hostile bundles",
        _tampered(_swap_member, extra=("--no-fused",)),
        fragment="check rows",
    ),
    cli_probe(
        "vocabulary reordered, checksums rewritten",
        "hostile bundles",
        _tampered(_edit("preprocess.json", lambda d: d["vocabulary"].reverse())),
        fragment="check rows",
    ),
    cli_probe(
        "manifest weight is a string",
        "hostile bundles",
        _tampered(
            _edit("ensemble.json", lambda m: m["members"][1].update(weight="heavy")), rehashed=False
        ),
        fragment="members[1].weight",
    ),
    cli_probe(
        "manifest number 1e400",
        "hostile bundles",
        _tampered(
            _edit("ensemble.json", lambda m: m["voting"].update(weights=[1.0, "<1e400>", 1.0])),
            rehashed=False,
        ),
        fragment="1e400",
    ),
    cli_probe(
        "manifest lists a file outside the bundle",
        "hostile bundles",
        _tampered(
            _edit("ensemble.json", lambda m: m["files"].update({"../../etc/passwd": "0" * 64})),
            rehashed=False,
        ),
        fragment="files",
    ),
    cli_probe(
        "signed bundle whose manifest was rewritten with matching checksums",
        "hostile bundles",
        _signed_then_rewritten,
        fragment="signature does not match",
    ),
    Probe("60 random mutations of the manifest and preprocess JSON", "hostile bundles", _mutations),
]


# Every probe list, by class; add a list here to add probes.
PROBE_LISTS: dict[str, list[Probe]] = {
    "tables": TABLE_PROBES,
    "data loss": DATA_LOSS_PROBES,
    "tracebacks": TRACEBACK_PROBES,
    "confinement": CONFINEMENT_PROBES,
    "faults": FAULT_PROBES,
    "memory": MEMORY_PROBES,
    "hostile bundles": HOSTILE_BUNDLE_PROBES,
}


# -- running them -------------------------------------------------------------------------------------
def bundles(work: Path, tweets: pd.DataFrame) -> tuple[Path, Path]:
    fit = tweets.iloc[:1500]
    good = Preprocessor(max_tokens=3000, max_len=32).fit(
        fit["text"].tolist(), fit["label"].tolist()
    )
    labels = [f"{label}{ESCAPE}" if label == "negative" else label for label in fit["label"]]
    hostile = Preprocessor(max_tokens=3000, max_len=32).fit(fit["text"].tolist(), labels)
    return write_bundle(work / "bundle", good), write_bundle(work / "hostile", hostile)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", choices=list(PROBE_LISTS), help="classes to run")
    parser.add_argument("--list", action="store_true", help="list the probes and exit")
    parser.add_argument(
        "--src",
        type=Path,
        default=REPO / "src",
        help="voxpop sources to probe (e.g. another checkout's src, for before/after)",
    )
    parser.add_argument("--record-as", default="probes", help="name of the result")
    args = parser.parse_args()
    ENV["PYTHONPATH"] = str(args.src.resolve())
    kinds = args.only or list(PROBE_LISTS)
    probes = [probe for kind in kinds for probe in PROBE_LISTS[kind]]
    if args.list:
        for probe in probes:
            print(f"{probe.kind:12} {probe.name}")
        return

    tweets = load_tweets().sample(n=3000, random_state=0).reset_index(drop=True)
    work = Path(tempfile.mkdtemp(prefix="voxpop-probes-"))
    try:
        bundle, hostile = bundles(work, tweets)
        texts = tweets["text"].iloc[1500:].astype(str).tolist()
        results = []
        for number, probe in enumerate(probes):
            folder = work / f"probe{number}"
            folder.mkdir()
            ctx = Context(folder, bundle, hostile, texts)
            start = time.perf_counter()
            cwd = os.getcwd()
            os.chdir(folder)
            try:
                outcome = probe.run(ctx)
            except Exception as err:  # a probe that cannot run is a failed probe, not a crash
                outcome = Outcome(None, "", [f"probe crashed: {type(err).__name__}: {err}"])
            finally:
                os.chdir(cwd)
            seconds = round(time.perf_counter() - start, 1)
            results.append(
                {
                    "name": probe.name,
                    "class": probe.kind,
                    "exit_code": outcome.exit_code,
                    "first_line": printable(
                        outcome.first_line.replace(f"{folder}/", "").replace(f"{work}/", "")
                    )[:200],
                    "verdict": outcome.verdict,
                    "seconds": seconds,
                }
            )
            print(f"{results[-1]['verdict'][:60]:60} {probe.kind:12} {probe.name}", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    passed = sum(r["verdict"] == "pass" for r in results)
    tested = "this checkout"
    if args.src.resolve() != (REPO / "src").resolve():
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=args.src, capture_output=True, text=True
        ).stdout.strip()
        tested = f"{args.src} at commit {commit or 'unknown'}"
    lines = [
        f"{passed} of {len(results)} probes pass (classes: {', '.join(kinds)}; voxpop of "
        f"{tested}).\n",
        "| class | probe | exit | first stderr line | verdict |",
        "| --- | --- | --- | --- | --- |",
    ]
    for r in results:
        cells = [r["class"], r["name"], str(r["exit_code"]), r["first_line"], r["verdict"]]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    command = "nice .venv/bin/python bench/bench_probes.py"
    if args.only:
        command += " --only " + " ".join(f"'{kind}'" for kind in args.only)
    if tested != "this checkout":
        command += f" --src {args.src}"
    if args.record_as != "probes":
        command += f" --record-as {args.record_as}"
    record(
        args.record_as,
        {"passed": passed, "total": len(results), "src": tested, "probes": results},
        summary_md="\n".join(lines),
        command=command,
    )
    print(json.dumps({"passed": passed, "total": len(results)}))


if __name__ == "__main__":
    main()
