"""ONNX Runtime sessions: which device really runs, and how many threads each session may use."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from voxpop.data.errors import VoxpopError, first_line
from voxpop.data.records import quoted

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
        raise VoxpopError(
            f"--device: unknown device {device!r} (choose from {', '.join(DEVICE_PROVIDERS)})"
        )


def open_session(model: bytes, *, source: str, device: str = "auto", intra_op_threads: int = 1):
    """An InferenceSession for the ONNX model `model` (its bytes, as read and verified by the
    bundle; `source` names it in errors) on `device` (auto|cpu|cuda).

    The session is made from these bytes, never from a path, so ONNX Runtime runs exactly what
    was checked; a model that keeps tensors in external data files (which would escape the
    checksums) or holds a Loop or Scan op is refused (check_model_bytes). `auto` uses CUDA only
    where it really runs (session.get_providers(), since onnxruntime-gpu lists CUDA as available
    even without a GPU); `cuda` without a usable GPU is a VoxpopError.
    """
    import onnxruntime as ort

    check_device(device)
    check_model_bytes(model, source=source)
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
        session = ort.InferenceSession(model, sess_options=options, providers=wanted)
    except Exception as err:  # onnxruntime raises its own untyped errors for bad graphs
        raise VoxpopError(
            f"{source}: ONNX Runtime cannot load this model ({first_line(err)})"
        ) from None
    if device == "cuda" and session.get_providers()[0] != CUDA:
        raise VoxpopError(_no_gpu_message(session.get_providers()))
    return session


# Ops that repeat a subgraph as often as the graph says: export refuses them in every member
# (they are the slow form of a recurrent layer), and in a hostile bundle they could run forever.
REPEATING_OPS = ("Loop", "Scan")


def check_model_bytes(model: bytes, *, source: str) -> None:
    """VoxpopError when the ONNX model `model` cannot be parsed, keeps any tensor (initializer,
    sparse initializer or constant attribute, in the main graph, a subgraph or a function) in an
    external data file, or holds a Loop or Scan op."""
    import onnx
    from google.protobuf.message import DecodeError

    try:
        proto = onnx.load_model_from_string(model)
    except (DecodeError, RecursionError, ValueError) as err:
        raise VoxpopError(f"{source}: not a valid ONNX model ({first_line(err)})") from None
    for tensors, nodes in _graph_parts(proto):
        for node in nodes:
            if node.op_type in REPEATING_OPS and node.domain in ("", "ai.onnx"):
                raise VoxpopError(
                    f"{source}: holds a {node.op_type} op; a bundle's models have "
                    "none (export refuses them)"
                )
            tensors += _attribute_tensors(node)
        for tensor in tensors:
            if tensor.data_location == onnx.TensorProto.EXTERNAL or len(tensor.external_data):
                raise VoxpopError(
                    f"{source}: tensor {quoted(tensor.name)} keeps its data in an "
                    "external file; a bundle's models must hold all their data "
                    "(every file a model reads must be checksummed)"
                )


def _graph_parts(model):
    """(tensors, nodes) of the main graph, every subgraph and every function body, walked
    without recursion (a hostile model may nest deeply)."""
    pending = [([], function.node) for function in model.functions]
    pending.append(_own_parts(model.graph))
    while pending:
        tensors, nodes = pending.pop()
        yield tensors, nodes
        for node in nodes:
            for attribute in node.attribute:
                subgraphs = [attribute.g] if attribute.HasField("g") else []
                pending += [_own_parts(graph) for graph in [*subgraphs, *attribute.graphs]]


def _own_parts(graph) -> tuple[list, list]:
    tensors = list(graph.initializer)
    tensors += [t for sparse in graph.sparse_initializer for t in (sparse.values, sparse.indices)]
    return tensors, list(graph.node)


def _attribute_tensors(node) -> list:
    tensors = []
    for attribute in node.attribute:
        tensors += [attribute.t] if attribute.HasField("t") else []
        tensors += list(attribute.tensors)
        sparse = [attribute.sparse_tensor] if attribute.HasField("sparse_tensor") else []
        tensors += [t for s in [*sparse, *attribute.sparse_tensors] for t in (s.values, s.indices)]
    return tensors


# Rows per session run when rows are run by length: small enough that a run's n-gram gathers
# stay in the cache, large enough that a run's matrix products stay efficient (measured on the
# demo bundle: bench/RESULTS.md, graph).
RUN_ROWS = 256
# A sentence encoder's runs are smaller: its attention is [rows, heads, width, width], and the
# fewer rows a run holds, the fewer are padded to its longest (measured on 1,024 tweets, 2
# threads, MiniLM-L6: 352 rows/s at 32 rows per run, 325 at 64, 234 at 256).
SENTENCE_RUN_ROWS = 32
SENTENCE_KEY = "attention_mask"  # a sentence encoder's input (voxpop.data.sentence.TOKEN_INPUTS)
# Inputs padded at the end of each row, by the input whose non-zero values say where a row ends:
# columns past a run's longest row are padding that no graph reads as anything. N-grams are
# id 0 with weight 0, which a weighted sum adds as nothing; a sentence encoder's word pieces past
# the mask are masked out of its attention and its pooling (voxpop.models.sentence).
PADDED_INPUTS = {
    "gram_weights": ("grams", "gram_weights"),
    SENTENCE_KEY: ("input_ids", SENTENCE_KEY),
}


def length_key(inputs: dict[str, np.ndarray], *, trims_tokens: bool) -> str | None:
    """The input whose row lengths a graph's cost follows: `attention_mask` when it holds a
    sentence encoder (which costs a hundred times what the other members do), else `tokens` for
    a graph that trims its token padding, else `gram_weights` when it reads n-grams, else None
    (one run of all rows)."""
    # A sentence encoder's attention over all rows at once would also hold gigabytes (2,000 rows
    # of 128 word pieces).
    if SENTENCE_KEY in inputs:
        return SENTENCE_KEY
    if trims_tokens and "tokens" in inputs:
        return "tokens"
    return "gram_weights" if "gram_weights" in inputs else None


def run_by_length(
    session,
    feeds: dict[str, np.ndarray],
    *,
    key: str | None,
    rows_per_run: int | None = None,
    output: str = "probs",
) -> np.ndarray:
    """`session`'s `output` for `feeds` (run_outputs_by_length of that one output)."""
    return run_outputs_by_length(
        session, feeds, key=key, rows_per_run=rows_per_run, outputs=[output]
    )[0]


def run_outputs_by_length(
    session,
    feeds: dict[str, np.ndarray],
    *,
    key: str | None,
    outputs: Sequence[str],
    rows_per_run: int | None = None,
) -> list[np.ndarray]:
    """`session`'s `outputs` for `feeds`, each in row order, computed on runs of `rows_per_run`
    rows of about one length: the rows sorted by the number of non-zero values of `feeds[key]`
    (None: one run of all rows; `rows_per_run` None: SENTENCE_RUN_ROWS for a sentence encoder,
    else RUN_ROWS). Every run's PADDED_INPUTS columns past its longest row are dropped: the
    encoder pads a whole batch to its longest row, and a transformer's time grows with the width
    it is given (measured: a sentence member 2.4x faster on tweets batched with one long text).
    Each row's output depends on that row alone, so the order of the runs changes no result."""
    outputs = list(outputs)
    n_rows = len(next(iter(feeds.values())))
    if key is None or n_rows <= 1:
        return session.run(outputs, feeds)
    if rows_per_run is None:
        rows_per_run = SENTENCE_RUN_ROWS if key == SENTENCE_KEY else RUN_ROWS
    order = np.argsort(np.count_nonzero(feeds[key], axis=1), kind="stable")
    row_widths = {
        names: _row_widths(feeds[ends]) for ends, names in PADDED_INPUTS.items() if ends in feeds
    }
    out: list[np.ndarray] = []
    for start in range(0, n_rows, rows_per_run):
        rows = order[start : start + rows_per_run]
        part = {name: array[rows] for name, array in feeds.items()}
        for names, widths in row_widths.items():
            width = max(1, int(widths[rows].max()))
            for name in names:
                if name in part:
                    part[name] = part[name][:, :width]
        results = session.run(outputs, part)
        if not out:
            out = [np.empty((n_rows, *r.shape[1:]), dtype=r.dtype) for r in results]
        for whole, result in zip(out, results):
            whole[rows] = result
    return out


def _row_widths(array: np.ndarray) -> np.ndarray:
    """Per row, 1 + the column of its last non-zero value (0 for a row of zeros)."""
    nonzero = array != 0
    last = array.shape[1] - np.argmax(nonzero[:, ::-1], axis=1)
    return np.where(nonzero.any(axis=1), last, 0)


def session_device(session) -> str:
    """'cuda' or 'cpu': the device that really runs `session`."""
    return PROVIDER_DEVICE.get(session.get_providers()[0], session.get_providers()[0])


def _no_gpu_message(providers: list[str]) -> str:
    return (
        "--device cuda: no usable GPU for ONNX Runtime (providers that run here: "
        f"{', '.join(providers)}); install voxpop[gpu] on a machine with CUDA, or use --device cpu"
    )
