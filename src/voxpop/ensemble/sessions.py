"""ONNX Runtime sessions: which device really runs, and how many threads each session may use."""

from __future__ import annotations

import os
from pathlib import Path

from voxpop.data.errors import VoxpopError

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"

# device -> providers to ask for, in preference order
DEVICE_PROVIDERS: dict[str, list[str]] = {"auto": [CUDA, CPU], "cpu": [CPU], "cuda": [CUDA, CPU]}
PROVIDER_DEVICE = {CUDA: "cuda", CPU: "cpu"}


def available_cores() -> int:
    """Cores this process may run on (respects CPU affinity, e.g. taskset or a container)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def split_threads(total: int | None, n_sessions: int) -> int:
    """Intra-op threads per session so that n_sessions running at once use `total` threads
    (default: all available cores) without oversubscribing them; at least 1."""
    total = total or available_cores()
    return max(1, total // max(1, n_sessions))


def check_device(device: str) -> None:
    """VoxpopError for a device name that is not one of DEVICE_PROVIDERS."""
    if device not in DEVICE_PROVIDERS:
        raise VoxpopError(f"--device: unknown device {device!r} (choose from {', '.join(DEVICE_PROVIDERS)})")


def open_session(path: str | Path, *, device: str = "auto", intra_op_threads: int = 1):
    """An InferenceSession for the ONNX file `path` on `device` (auto|cpu|cuda).

    `auto` uses CUDA only where it really runs (session.get_providers(), since onnxruntime-gpu
    lists CUDA as available even without a GPU); `cuda` without a usable GPU is a VoxpopError.
    """
    import onnxruntime as ort

    check_device(device)
    wanted = [p for p in DEVICE_PROVIDERS[device] if p in ort.get_available_providers()]
    if device == "cuda" and CUDA not in wanted:
        raise VoxpopError(_no_gpu_message(ort.get_available_providers()))
    options = ort.SessionOptions()
    options.intra_op_num_threads = intra_op_threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # errors only: warnings about unused initializers are noise
    # Sessions run side by side: idle threads must sleep, not spin on cores another session needs.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        session = ort.InferenceSession(str(path), sess_options=options, providers=wanted)
    except Exception as err:  # onnxruntime raises its own untyped errors for bad graphs
        raise VoxpopError(f"{path}: ONNX Runtime cannot load this model ({_first_line(err)})") from None
    if device == "cuda" and session.get_providers()[0] != CUDA:
        raise VoxpopError(_no_gpu_message(session.get_providers()))
    return session


def session_device(session) -> str:
    """'cuda' or 'cpu': the device that really runs `session`."""
    return PROVIDER_DEVICE.get(session.get_providers()[0], session.get_providers()[0])


def _no_gpu_message(providers: list[str]) -> str:
    return (
        "--device cuda: no usable GPU for ONNX Runtime (providers that run here: "
        f"{', '.join(providers)}); install voxpop[gpu] on a machine with CUDA, or use --device cpu"
    )


def _first_line(err: Exception) -> str:
    return str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
