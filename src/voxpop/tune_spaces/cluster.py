"""Connecting to Ray: an embedded single-node instance on loopback, or an existing cluster."""

from __future__ import annotations

import os
import socket
import warnings

from voxpop.data.errors import VoxpopError

# Ray listens on every interface unless this is "0"; then a single node stays on loopback only.
LOOPBACK_ONLY_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
# The cluster to join when no --address is given: `ray job submit` sets it for its entrypoint.
ADDRESS_ENV = "RAY_ADDRESS"
RUN_STORAGE_NOTE = (
    "the run directory (--storage) must be on storage every node sees (a shared "
    "path, or a URI such as s3://...)"
)


def cluster_address(address: str | None = None) -> str | None:
    """The cluster to join: `address` (--address), else RAY_ADDRESS from the environment; None
    (or "local") means an embedded instance."""
    address = address or os.environ.get(ADDRESS_ENV, "").strip() or None
    return None if address == "local" else address


def start_ray(
    *,
    address: str | None = None,
    num_cpus: int | None = None,
    num_gpus: float | None = None,
    shared: str = RUN_STORAGE_NOTE,
) -> bool:
    """Start or join Ray; return True when this call started it (so the caller shuts it down).

    Without `address` and without RAY_ADDRESS in the environment: an embedded instance
    (`address="local"`, which never joins a cluster recorded on the machine) with `num_cpus`
    (default: all cores) and `num_gpus` (default: what Ray detects; a number gives logical
    GPUs), no dashboard, listening on loopback only. With `address` (`auto`, `HOST:PORT` or
    `ray://HOST:PORT`), or else RAY_ADDRESS (set by `ray job submit` for the job's command):
    join that cluster, warning with `shared` what every node must see. An already
    initialised Ray in this process is reused as it is.
    """
    import ray

    if ray.is_initialized():
        return False
    given = "--address" if address else ADDRESS_ENV
    address = cluster_address(address)
    if address:
        _join(address, given=given, shared=shared)
    else:
        _loopback_only()
        ray.init(
            address="local",
            num_cpus=num_cpus or os.cpu_count(),
            num_gpus=num_gpus,
            include_dashboard=False,
            logging_level="WARNING",
            log_to_driver=True,
        )
    return True


def _loopback_only() -> None:
    """Keep the embedded instance on loopback: the environment variable reaches Ray's child
    processes, but Ray's Python side reads it once at import, so its constant is set too.
    `stop_ray` puts both back."""
    from ray._private import ray_constants

    _saved_loopback_setting.setdefault("env", os.environ.get(LOOPBACK_ONLY_ENV))
    _saved_loopback_setting.setdefault("constant", ray_constants.ENABLE_RAY_CLUSTER)
    os.environ[LOOPBACK_ONLY_ENV] = "0"
    ray_constants.ENABLE_RAY_CLUSTER = False


# What `_loopback_only` changed, so that `stop_ray` can restore it.
_saved_loopback_setting: dict = {}


def stop_ray() -> None:
    """Shut down the Ray this process started, and undo the loopback-only setting: left in the
    environment it would make any later `ray start` of this process's children refuse a second
    node (a cluster started after an embedded run, as the multi-node tests do)."""
    import ray
    from ray._private import ray_constants

    ray.shutdown()
    if "env" in _saved_loopback_setting:
        previous = _saved_loopback_setting.pop("env")
        if previous is None:
            os.environ.pop(LOOPBACK_ONLY_ENV, None)
        else:
            os.environ[LOOPBACK_ONLY_ENV] = previous
    if "constant" in _saved_loopback_setting:
        ray_constants.ENABLE_RAY_CLUSTER = _saved_loopback_setting.pop("constant")


def _join(address: str, *, given: str, shared: str) -> None:
    """Join the cluster at `address`; `given` names where the address came from in errors."""
    import ray

    _check_reachable(address, given=given)
    try:
        ray.init(address=address, logging_level="WARNING")
    except (ConnectionError, RuntimeError, ValueError) as err:
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise VoxpopError(
            f"{given} {address}: cannot join the Ray cluster ({first_line})"
        ) from None
    warnings.warn(
        f"joined the Ray cluster at {address}: {shared}",
        stacklevel=2,
    )


def _check_reachable(address: str, *, given: str = "--address", timeout_s: float = 10.0) -> None:
    """A HOST:PORT (or ray://HOST:PORT) that nothing answers on is refused at once: Ray itself
    retries such an address for minutes before it gives up."""
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not port.isdigit() or not host:
        return  # "auto", or a form Ray resolves itself
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s).close()
    except OSError as err:
        raise VoxpopError(
            f"{given} {address}: nothing answers there ({err.strerror or type(err).__name__})"
        ) from None


def check_resources(*, cpus_per_trial: float, gpus_per_trial: float) -> dict:
    """Refuse per-trial requests the cluster can never meet; return its total resources."""
    import ray

    total = ray.cluster_resources()
    if gpus_per_trial > 0 and total.get("GPU", 0) == 0:
        raise VoxpopError(
            f"--gpus-per-trial {gpus_per_trial}: the Ray cluster advertises no GPUs "
            "(use --gpus-per-trial 0, or --address a cluster with GPU nodes)"
        )
    if gpus_per_trial > total.get("GPU", 0):
        raise VoxpopError(
            f"--gpus-per-trial {gpus_per_trial}: more than the cluster's {total['GPU']:g} GPUs"
        )
    if cpus_per_trial > total.get("CPU", 0):
        raise VoxpopError(
            f"--cpus-per-trial {cpus_per_trial}: more than the cluster's "
            f"{total.get('CPU', 0):g} CPUs"
        )
    return total
