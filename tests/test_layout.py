"""The package layout keeps its promises: import direction between stages, one owner module for
each format that crosses a stage, and a CLI that starts without TensorFlow or Ray."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "voxpop"

# DESIGN.md: arrows point to what a package may import (besides itself).
ALLOWED = {
    "data": set(),
    "models": set(),
    "ensemble": {"data"},
    "reports": {"ensemble", "data"},
    "tune_spaces": {"models", "data"},
    "export": {"models", "data", "ensemble"},
    "batch": {"data", "ensemble", "reports", "tune_spaces"},
}
# Third-party modules a package must never import, not even inside a function.
FORBIDDEN_THIRD_PARTY = {
    "data": {"tensorflow", "keras", "ray", "onnxruntime", "sklearn", "tf2onnx"},
    "ensemble": {"tensorflow", "keras", "ray", "sklearn", "tf2onnx"},
    "reports": {"tensorflow", "keras", "ray", "tf2onnx"},
}


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def _owned_names() -> dict[str, set[str]]:
    """Owner module (relative to src/voxpop) -> the file names of the format it owns, which no
    other module may spell in a string literal. Add a format's owner here with its names."""
    from voxpop.data import rundir

    # The run directory's preprocess.json is also the bundle's file of the same name, written by
    # the bundle's owner: it is checked once that owner is listed here too.
    return {"data/rundir.py": set(rundir.FILE_NAMES) - {rundir.PREPROCESS_FILE}}


def string_literals(path: Path) -> list[tuple[int, str]]:
    """(line, text) of every string constant in a module, f-string parts included, docstrings
    left out (they document a format; they do not spell it for the code)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and id(node) not in docstrings
    ]


def test_only_a_formats_owner_spells_its_file_names():
    owners: dict[str, set[str]] = {}  # file name -> the modules that own it
    for module, names in _owned_names().items():
        assert (SRC / module).is_file(), f"owner {module} not found"
        for name in names:
            owners.setdefault(name, set()).add(module)
    offences = []
    for path in sorted(SRC.rglob("*.py")):
        module = path.relative_to(SRC).as_posix()
        for line, text in string_literals(path):
            offences += [
                f"{module}:{line} spells {name!r} (owned by {', '.join(sorted(owned))})"
                for name, owned in owners.items()
                if name in text and module not in owned
            ]
    assert offences == []


def test_the_owner_check_sees_literals_and_f_strings_but_not_docstrings(tmp_path):
    path = tmp_path / "module.py"
    path.write_text('"""Reads metrics.json."""\nA = "metrics.json"\nB = f"{A}/val_probs.npy"\n')
    texts = [text for _, text in string_literals(path)]
    assert "metrics.json" in texts and any("val_probs.npy" in text for text in texts)
    assert "Reads metrics.json." not in texts


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_stage_imports_follow_design(package):
    offences = []
    for path in sorted((SRC / package).rglob("*.py")):
        for name in imported_modules(path):
            parts = name.split(".")
            if parts[0] == "voxpop" and len(parts) > 1:
                target = parts[1]
                if target != package and target not in ALLOWED[package] and target != "__init__":
                    offences.append(f"{path.relative_to(SRC)} imports voxpop.{target}")
            if parts[0] in FORBIDDEN_THIRD_PARTY.get(package, set()):
                offences.append(f"{path.relative_to(SRC)} imports {parts[0]}")
    assert offences == []


# What `voxpop --help` must start without: the CLI reads its defaults from the stages' light
# `options` modules and imports everything else inside the command functions.
HEAVY = (
    "numpy",
    "pandas",
    "onnx",
    "onnxruntime",
    "pydantic",
    "tensorflow",
    "keras",
    "ray",
    "sklearn",
    "pyarrow",
    "tf2onnx",
)
TENSORFLOW = ("tensorflow", "keras")


def modules_after(code: str) -> set[str]:
    """The top-level modules a fresh interpreter holds after running `code` (which must not
    print), of those this file watches."""
    probe = (
        f"import sys\n{code}\nprint('modules:', ','.join(m for m in {HEAVY!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    listed = out.stdout.strip().splitlines()[-1].removeprefix("modules:").strip()
    return set(filter(None, listed.split(",")))


def run_cli(*args: str) -> str:
    """Code that runs `voxpop ARGS` through its console entry point, output discarded."""
    return (
        "import contextlib, io\n"
        "from voxpop.serving_cli import main\n"
        f"sys.argv = ['voxpop', *{list(args)!r}]\n"
        "with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
        "    main()"
    )


def test_help_imports_nothing_heavy():
    assert modules_after(run_cli("--help")) == set()


@pytest.mark.parametrize(
    "command", ["tune", "export", "predict", "evaluate", "bench", "info", "demo", "spaces"]
)
def test_a_commands_help_imports_none_of_its_work(command):
    # Typer itself brings pydantic to check the options' Path defaults.
    assert modules_after(run_cli(command, "--help")) <= {"pydantic"}


def test_the_family_registry_and_voxpop_spaces_load_no_tensorflow():
    registry = (
        "from voxpop.models import FAMILIES, default_config\n"
        "assert default_config('fusion')['encoder'] == 'bilstm' and 'tfidf' in FAMILIES"
    )
    assert modules_after(registry) & set(TENSORFLOW) == set()
    assert modules_after(run_cli("spaces")) & set(TENSORFLOW) == set()
    # Checking space files against the registry, as the tune driver does before Ray starts.
    check = (
        "from voxpop.tune_spaces.runner import validate\n"
        "from voxpop.tune_spaces.options import TuneOptions\n"
        "validate(TuneOptions(data=None, spaces=('mixed', 'fusion', 'tfidf_fusion')))"
    )
    assert modules_after(check) & set(TENSORFLOW) == set()


def test_light_option_lists_name_their_registries():
    """The CLI lists choices from the light modules; the registries that act on them agree."""
    from voxpop.data.io import _READERS
    from voxpop.data.options import FORMATS, FORMATS_BY_SUFFIX
    from voxpop.ensemble.options import DEVICES, VOTINGS
    from voxpop.ensemble.sessions import DEVICE_PROVIDERS
    from voxpop.ensemble.voting import VOTERS

    assert tuple(VOTERS) == VOTINGS
    assert tuple(DEVICE_PROVIDERS) == DEVICES
    assert set(_READERS) == set(FORMATS) == set(FORMATS_BY_SUFFIX.values())


def test_version_flag():
    out = subprocess.run(
        [sys.executable, "-m", "voxpop", "--version"], capture_output=True, text=True, timeout=60
    )
    from voxpop import __version__

    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"voxpop {__version__}"
