"""`voxpop predict --address` and `voxpop evaluate --address`: the local commands' predictions,
spread over a Ray cluster with Ray Data.

The driver lists the input files (a file, a folder's table files or a glob, sorted by name). A
Ray Data read stage gives each file to a task that reads it in chunks with voxpop's own reader
(`voxpop.data.iter_table_chunks`), so rows, checks and error messages are the local command's;
a pool of `workers` predictor actors, each holding the bundle's ONNX Runtime sessions on one
core, encodes and predicts the chunks. Ray Data keeps the input order (`preserve_order`), and the
driver receives each chunk's prediction frame in turn for the local command's writers.

Why not Ray's own `read_csv`/`read_parquet`: pyarrow's CSV reader infers types (an id `007`
becomes 7) and parses quoting differently from the local command, whose rows this one must match
row for row.

`voxpop evaluate --address` reads its tables on the driver, as without --address (a report
needs every row there), and `predict_all` has the actors compute what `reports.bundle_eval.
predict_all` computes locally: each vote's and each member's probabilities, and OOV rates.

Every node reads the bundle and the input files at the paths given: with a cluster of several
machines they must be on storage every node sees.
"""

from __future__ import annotations

import contextlib
import glob
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from voxpop.data.errors import VoxpopError
from voxpop.data.options import FORMATS_BY_SUFFIX

# Columns of the frames between the read stage and the predictors (not the output's).
_TEXT, _ID, _REPLACED = "__text", "__id", "__replaced_bytes"
_FEATURE = "__feature_{}"
# Columns the predictors add for the driver's warnings, dropped before writing.
_EMPTY = "__empty_text"
SHARED_NOTE = "BUNDLE and INPUT must be at the same path on every node (a shared folder)"


@dataclass(frozen=True)
class ReadSpec:
    """How each input file is read (the local command's options)."""

    text_col: str
    id_col: str | None
    feature_cols: tuple[str, ...]
    format: str | None
    chunk_rows: int


@dataclass(frozen=True)
class PredictSpec:
    """How each chunk is predicted and which columns its frame gets."""

    bundle: str
    trust: str | None
    fused: bool
    vote_options: dict
    columns: object  # voxpop.ensemble.stream.OutputColumns


@contextlib.contextmanager
def ray_workers(address: str, workers: int | None) -> Iterator[int]:
    """Start (address "local") or join the Ray at `address` for the command; yields the number
    of predictor actors: `workers`, by default the cluster's CPUs (refused when more)."""
    import ray

    from voxpop.tune_spaces.cluster import start_ray, stop_ray

    started = start_ray(address=address, num_cpus=workers, shared=SHARED_NOTE)
    try:
        cpus = int(ray.cluster_resources().get("CPU", 0))
        if (workers or cpus) > cpus:
            raise VoxpopError(f"--workers {workers}: more than the cluster's {cpus} CPUs")
        yield workers or cpus
    finally:
        if started:
            stop_ray()


def input_files(input: str) -> list[Path]:
    """The files INPUT names: a table file, a folder's table files (by extension), or a glob;
    sorted by name. None found is a VoxpopError."""
    path = Path(input)
    if path.is_dir():
        files = [p for p in path.iterdir() if p.is_file() and p.suffix.lower() in FORMATS_BY_SUFFIX]
    elif path.is_file():
        files = [path]
    else:
        files = [Path(p) for p in glob.glob(input) if Path(p).is_file()]
    if not files:
        what = (
            "holds no table files (" + ", ".join(FORMATS_BY_SUFFIX) + ")"
            if path.is_dir()
            else "file not found (nor files matching it as a glob)"
        )
        raise VoxpopError(f"{input}: {what}")
    return sorted(file.resolve() for file in files)


def predict_frames(
    files: list[Path], *, read: ReadSpec, predict: PredictSpec, workers: int, found: dict
) -> Iterator[pd.DataFrame]:
    """Each chunk's prediction frame, in input order (the files in turn), computed by `workers`
    predictor actors on the Ray that this process has joined. `found` sums the chunks'
    `replaced_bytes` and `empty_texts` as they arrive."""
    import ray.data

    _ordered_and_quiet()
    listing = ray.data.from_items(
        [{"path": str(file)} for file in files], override_num_blocks=len(files)
    )
    # The reads take no core of their own: the predictors hold one each, and a read that waited
    # for a free core would never start.
    chunks = listing.map_batches(
        _read_file, batch_size=1, batch_format="pandas", num_cpus=0, fn_kwargs={"read": read}
    )
    frames = chunks.map_batches(
        _Predictor,
        batch_size=read.chunk_rows,
        batch_format="pandas",
        concurrency=workers,
        num_cpus=1,
        fn_constructor_kwargs={"predict": predict},
    )
    # Arrow to pandas here, not Ray's pandas batches (Arrow-backed columns): the frames are then
    # the local command's, dtypes included, for the same writers.
    for batch in _batches(frames, batch_format="pyarrow"):
        frame = batch.to_pandas()
        found["replaced_bytes"] += int(frame.pop(_REPLACED).sum())
        found["empty_texts"] += int(frame.pop(_EMPTY).sum())
        yield frame


def predict_all(
    ensemble,
    texts: list[str],
    *,
    votings: list[str],
    features: np.ndarray | None = None,
    on_rows: Callable[[int], None] | None = None,
    workers: int,
    trust: str | None = None,
    chunk_rows: int = 2048,
):
    """`voxpop.reports.bundle_eval.predict_all` computed by `workers` actors: (vote outputs per
    rule, member outputs per id, OOV rates or None), rows in input order."""
    import ray.data

    from voxpop.reports.evaluation import ModelOutput

    _ordered_and_quiet()
    columns = {_TEXT: np.asarray(texts, dtype=object)}
    if features is not None:
        columns.update({_FEATURE.format(i): features[:, i] for i in range(features.shape[1])})
    frame = pd.DataFrame(columns)
    # One block per chunk, made here: a repartition task would wait for a core the actors hold.
    rows = ray.data.from_pandas(
        [frame[start : start + chunk_rows] for start in range(0, len(frame), chunk_rows)]
    )
    spec = PredictSpec(
        bundle=str(ensemble.bundle),
        trust=trust,
        fused=False,
        vote_options={"votings": votings},
        columns=None,
    )
    outputs = rows.map_batches(
        _Scorer,
        batch_size=chunk_rows,
        batch_format="pandas",
        concurrency=workers,
        num_cpus=1,
        fn_constructor_kwargs={"predict": spec},
    )
    parts: dict[str, list[np.ndarray]] = {}
    for batch in _batches(outputs, batch_format="numpy"):
        for name, values in batch.items():
            parts.setdefault(name, []).append(values)
        if on_rows:
            on_rows(len(next(iter(batch.values()))))
    joined = {name: np.concatenate(values) for name, values in parts.items()}
    votes = {
        rule: ModelOutput(probs=joined[f"vote:{rule}"], pred=joined[f"pred:{rule}"])
        for rule in votings
    }
    members = {
        member_id: ModelOutput(probs=joined[f"member:{member_id}"])
        for member_id in ensemble.member_ids
    }
    return votes, members, joined.get("oov")


def _ordered_and_quiet() -> None:
    """Ray Data keeps the input order and shows no progress bars (the commands show theirs)."""
    import ray.data

    context = ray.data.DataContext.get_current()
    context.execution_options.preserve_order = True
    context.enable_progress_bars = False
    # A failed task's traceback is logged by Ray Data before its exception reaches `_batches`,
    # which raises it (a VoxpopError as one line): the log would only repeat it.
    logging.getLogger("ray.data").setLevel(logging.CRITICAL)


def _batches(dataset, *, batch_format: str) -> Iterator:
    """The dataset's blocks in order; a worker's VoxpopError (wrapped by Ray) as itself."""
    try:
        yield from dataset.iter_batches(batch_size=None, batch_format=batch_format)
    except Exception as err:
        cause = _voxpop_cause(err)
        if cause is None:
            raise
        raise VoxpopError(str(cause)) from None


def _read_file(batch: pd.DataFrame, *, read: ReadSpec) -> Iterator[pd.DataFrame]:
    """The chunks of one file (a batch of one path) as frames of text, id, features and the
    bytes reading replaced."""
    from voxpop.data import iter_table_chunks

    for path in batch["path"]:
        for table in iter_table_chunks(
            path,
            chunk_rows=read.chunk_rows,
            text_col=read.text_col,
            id_col=read.id_col,
            feature_cols=read.feature_cols,
            format=read.format,
        ):
            columns = {_TEXT: table.texts, _ID: table.ids.astype(str)}
            if table.features is not None:
                columns.update(
                    {
                        _FEATURE.format(i): table.features[:, i]
                        for i in range(table.features.shape[1])
                    }
                )
            replaced = np.zeros(len(table), dtype=np.int64)
            replaced[0] = table.report.n_replaced_bytes
            columns[_REPLACED] = replaced
            yield pd.DataFrame(columns)


class _Predictor:
    """One Ray Data actor: the bundle loaded once (one core, no pipelining), then a prediction
    frame per batch of read rows."""

    def __init__(self, *, predict: PredictSpec):
        from voxpop.ensemble import Ensemble

        self.spec = predict
        self.ensemble = Ensemble.load(
            predict.bundle, device="cpu", threads=1, fused=predict.fused, trust=predict.trust
        )

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        from voxpop.ensemble.stream import prediction_frame

        texts = batch[_TEXT].tolist()
        members = self.spec.vote_options.get("members")
        inputs = self.ensemble.encode(texts, _features(batch), members=members)
        prediction = self.ensemble.predict_encoded(inputs, **self.spec.vote_options)
        frame = prediction_frame(
            prediction,
            labels=self.ensemble.labels,
            texts=texts,
            ids=batch[_ID].to_numpy(dtype=object),
            columns=self.spec.columns,
        )
        frame[_REPLACED] = batch[_REPLACED].to_numpy()
        frame[_EMPTY] = np.fromiter((not text for text in texts), dtype=bool, count=len(texts))
        return frame


class _Scorer(_Predictor):
    """One Ray Data actor of `predict_all`: per batch, each vote's probabilities and labels, each
    member's probabilities, and the OOV rates (when a member reads tokens)."""

    def __call__(self, batch: pd.DataFrame) -> dict[str, np.ndarray]:
        from voxpop.reports.bundle_eval import oov_rates

        inputs = self.ensemble.encode(batch[_TEXT].tolist(), _features(batch))
        out = {"oov": oov_rates(inputs["tokens"])} if "tokens" in inputs else {}
        for rule in self.spec.vote_options["votings"]:
            prediction = self.ensemble.predict_encoded(inputs, voting=rule)
            out[f"vote:{rule}"], out[f"pred:{rule}"] = prediction.probs, prediction.label_ids
        out.update(
            {f"member:{member_id}": probs for member_id, probs in prediction.member_probs.items()}
        )
        return out


def _features(batch: pd.DataFrame) -> np.ndarray | None:
    names = [name for name in batch.columns if name.startswith("__feature_")]
    return batch[names].to_numpy(dtype=np.float32) if names else None


def _voxpop_cause(err: BaseException) -> VoxpopError | None:
    """The VoxpopError a Ray task raised, through Ray's wrappers (RayTaskError's `cause`,
    UserCodeException's chain)."""
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        inner = getattr(err, "cause", None)  # RayTaskError(VoxpopError) is a VoxpopError too
        if inner is None and isinstance(err, VoxpopError):
            return err
        err = inner or err.__cause__ or err.__context__
    return None
