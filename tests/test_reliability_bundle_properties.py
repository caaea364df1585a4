"""Property-based: random mutations of a real bundle's ensemble.json and preprocess.json (fields
deleted, replaced, retyped; huge numbers, wrong types, deep nesting, hostile strings) always give
`voxpop predict` either a correct run (exit 0, one well-formed row) or one `error:` line and exit
2; never another exception, never a hang (each case runs under a timeout).

A mutated preprocess.json gets its checksum rewritten, as an attacker would, so that the mutation
reaches the parser instead of stopping at the sha256 check.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import signal
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from bundle_factory import bundle_dir, rehash, tweet_preprocessor, tweet_rows  # noqa: F401
from voxpop.serving_cli.app import app

SECONDS_PER_CASE = 20
# Cases per file; VOXPOP_FUZZ_EXAMPLES=400 searches longer (400 per file passed, 90 s).
EXAMPLES = int(os.environ.get("VOXPOP_FUZZ_EXAMPLES", 40))
# Placeholders written into the JSON text as raw tokens json.dumps cannot make.
RAW = {
    "<deep>": "[" * 5000 + "]" * 5000,
    "<nested>": "[" * 60 + "1" + "]" * 60,
    "<huge int>": "1" + "0" * 5000,
    "<huge float>": "1e400",
    "<nan>": "NaN",
    "<minus infinity>": "-Infinity",
}
HOSTILE = st.sampled_from(
    [
        *RAW,
        10**30,
        2**63,
        2**31,
        -1,
        0,
        1,
        1e308,
        -0.0,
        0.5,
        True,
        False,
        None,
        "",
        "x" * 100_000,
        "../../etc/passwd",
        "/etc/passwd",
        "\ud800",
        "\x1b[2J\x1b[31mred",
        "members/m1.onnx",
        "fused.onnx",
        "voxpop-tweet-v1",
        r"(a+)+$",
        [],
        {},
        [None],
        {"": None},
        [[1, 2], [3]],
    ]
)
PLAIN = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=8,
)
VALUES = HOSTILE | PLAIN


def paths(value, prefix=()) -> list[tuple]:
    """The path (keys and indices) of every node below the top, lists sampled to a few items."""
    found = []
    children = (
        value.items()
        if isinstance(value, dict)
        else list(enumerate(value))[:3] + list(enumerate(value))[-2:]
        if isinstance(value, list)
        else []
    )
    for key, child in dict(children).items():
        found.append((*prefix, key))
        found += paths(child, (*prefix, key))
    return found


@st.composite
def mutations(draw, document):
    """1-3 (path, operation, value) changes of `document`."""
    candidates = paths(document)
    return [
        (
            draw(st.sampled_from(candidates)),
            draw(st.sampled_from(["delete", "replace", "retype", "duplicate"])),
            draw(VALUES),
        )
        for _ in range(draw(st.integers(1, 3)))
    ]


def mutate(document, changes) -> str:
    """The JSON text of `document` with `changes` applied (changes whose path is gone skip)."""
    document = json.loads(json.dumps(document))
    for path, operation, value in changes:
        parent, key = None, None
        current = document
        for key in path:  # follow the path while it still leads through objects and arrays
            parent = current
            if not (
                isinstance(parent, dict)
                and key in parent
                or isinstance(parent, list)
                and isinstance(key, int)
                and -len(parent) <= key < len(parent)
            ):
                parent = None
                break
            current = parent[key]
        if parent is None:
            continue
        if operation == "delete":
            del parent[key]
        elif operation == "replace":
            parent[key] = value
        elif operation == "retype":
            parent[key] = retyped(current)
        elif isinstance(parent, list):
            parent.insert(key, current)
        else:
            parent[key] = [current, current]
    text = json.dumps(document)
    for placeholder, raw in RAW.items():
        text = text.replace(json.dumps(placeholder), raw)
    return text


def retyped(value):
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return {str(i): item for i, item in enumerate(value)}
    if isinstance(value, dict):
        return list(value.values())
    return 0


@contextlib.contextmanager
def time_limit(seconds: int):
    def stop(signum, frame):
        raise TimeoutError(f"a case ran past {seconds} s")

    previous = signal.signal(signal.SIGALRM, stop)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def predict_one_line(bundle: Path):
    with time_limit(SECONDS_PER_CASE):
        return CliRunner().invoke(
            app,
            ["predict", str(bundle), "-", "--device", "cpu", "--probs"],
            input="what a lovely crew :)\n",
        )


def assert_error_or_correct(result, labels: list[str]) -> None:
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        f"{type(result.exception).__name__}: {result.exception}"
    )
    assert result.exit_code in (0, 2), result.output
    if result.exit_code == 2:
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
        assert result.stdout == ""
        return
    frame = pd.read_csv(io.StringIO(result.stdout), keep_default_na=False)
    assert len(frame) == 1 and frame["label"].iloc[0] in labels
    probs = frame[[f"prob_{label}" for label in labels]].to_numpy()
    assert abs(probs.sum() - 1) < 1e-4 and (probs >= 0).all()


@pytest.fixture(scope="module")
def work(bundle_dir, tmp_path_factory) -> Path:
    return shutil.copytree(bundle_dir, tmp_path_factory.mktemp("mutated") / "bundle")


def _originals(bundle_dir: Path) -> dict[str, dict]:
    return {
        name: json.loads((bundle_dir / name).read_text())
        for name in ("ensemble.json", "preprocess.json")
    }


@pytest.mark.timeout(600)
@pytest.mark.parametrize("name", ["ensemble.json", "preprocess.json"])
def test_random_mutations_give_an_error_line_or_a_correct_run(bundle_dir, work, name):
    original = _originals(bundle_dir)
    labels = original["ensemble.json"]["labels"]
    raw = {n: (bundle_dir / n).read_bytes() for n in original}
    seen = {0: 0, 2: 0}

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(changes=mutations(original[name]))
    def case(changes):
        try:
            (work / name).write_text(mutate(original[name], changes))
            if name == "preprocess.json":
                rehash(work)
            result = predict_one_line(work)
            assert_error_or_correct(result, labels)
            seen[result.exit_code] += 1
        finally:
            for n, data in raw.items():
                (work / n).write_bytes(data)

    case()
    assert seen[2] > 0  # the mutations do reach the validation (not all harmless)
