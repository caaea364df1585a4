"""The package layout keeps its promises: import direction between stages, and a CLI that starts
without TensorFlow or Ray."""

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


def test_help_starts_without_heavy_imports():
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from voxpop.serving_cli import app\n"
        "result = CliRunner().invoke(app, ['--help'])\n"
        "assert result.exit_code == 0, result.output\n"
        "heavy = sorted(m for m in ('tensorflow', 'keras', 'ray', 'onnxruntime', 'tf2onnx', 'sklearn')"
        " if m in sys.modules)\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ""


def test_version_flag():
    out = subprocess.run(
        [sys.executable, "-m", "voxpop", "--version"], capture_output=True, text=True, timeout=60
    )
    from voxpop import __version__

    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"voxpop {__version__}"
