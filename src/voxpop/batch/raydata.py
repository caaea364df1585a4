"""`voxpop predict --address` and `voxpop evaluate --address`: the local commands' predictions,
spread over a Ray cluster with Ray Data.

The driver lists the input files (a file, a folder's table files or a glob, sorted by name). A
Ray Data read stage gives each file to a task that reads it in chunks with voxpop's own reader
(`voxpop.data.iter_table_chunks`), so rows, checks and error messages are the local command's;
a pool of `workers` predictor actors, each holding the bundle's ONNX Runtime sessions on one
core, encodes and predicts the chunks.

With an output folder (`write_parts`), Ray Data's own writers write the prediction rows as parts
(Parquet, CSV, TSV or JSON Lines) from the workers, into a temporary sibling of the folder that is
renamed into place when every part is written: a job that cannot finish leaves nothing there.
The parts come in no particular order; each row carries `source_file` and `source_row` (its
0-based position among the file's data rows), so sorting by the two gives the input order. The
predictors tell a small tally actor the rows they did (keyed by chunk, so a retried chunk counts
once): the driver's progress and its warnings (empty texts, replaced bytes) come from it.
Without an output folder (stdout), Ray Data keeps the input order (`preserve_order`) and the
driver receives each chunk's prediction frame in turn for the local command's writers.

INPUT may be on a pyarrow file system (`s3://bucket/prefix/*.parquet`, as `voxpop.data.storage`
names it): the driver lists it there, and each read task copies its file to a local temporary
file and reads that with the same reader (errors name the URI). The file system travels to the
tasks as the driver resolved it (endpoint, region); its credentials do not: each node signs its
reads with its own (its environment, ~/.aws, an instance role), as Ray's own readers do.

Why not Ray's own `read_csv`/`read_parquet`: pyarrow's CSV reader infers types (an id `007`
becomes 7) and parses quoting differently from the local command, whose rows this one must match
row for row.

`voxpop evaluate --address` reads its tables on the driver, as without --address (a report
needs every row there), and `predict_all` has the actors compute what `reports.bundle_eval.
predict_all` computes locally: each vote's and each member's probabilities, and OOV rates.

Every node reads the bundle and the local input files at the paths given, and writes the output
folder's parts at its path: with a cluster of several machines they must be on storage every node
sees.
"""

from __future__ import annotations

import contextlib
import fnmatch
import glob
import logging
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd

from voxpop.data.errors import VoxpopError
from voxpop.data.options import FORMATS_BY_SUFFIX
from voxpop.data.storage import Location, is_uri, locate

# Columns of the frames between the read stage and the predictors (not the output's).
_TEXT, _ID, _REPLACED = "__text", "__id", "__replaced_bytes"
_SOURCE, _ROW = "__source_file", "__source_row"
_FEATURE = "__feature_{}"
# Columns the predictors add for the driver's warnings, dropped before writing.
_EMPTY = "__empty_text"
SHARED_NOTE = (
    "BUNDLE, a local INPUT and --out must be at the same path on every node (a shared folder)"
)
EVALUATE_SHARED_NOTE = "BUNDLE must be at the same path on every node (a shared folder)"
# The columns that say where each written row comes from (first in each part).
SOURCE_COLUMNS = ("source_file", "source_row")


@dataclass(frozen=True)
class ReadSpec:
    """How each input file is read (the local command's options)."""

    text_col: str
    id_col: str | None
    feature_cols: tuple[str, ...]
    format: str | None
    chunk_rows: int
    # The pyarrow file system of INPUT's URIs (as the driver resolved it); None: local files.
    filesystem: object = None


@dataclass(frozen=True)
class PredictSpec:
    """How each chunk is predicted and which columns its frame gets."""

    bundle: str
    trust: str | None
    fused: bool
    vote_options: dict
    columns: object  # voxpop.ensemble.stream.OutputColumns
    # Set by `write_parts`: source_file and source_row first, and the chunk's counts go to this
    # tally actor instead of into the frame.
    tally: object = None


@contextlib.contextmanager
def ray_workers(address: str, workers: int | None, *, shared: str = SHARED_NOTE) -> Iterator[int]:
    """Start (address "local") or join the Ray at `address` for the command (`shared` says, on
    joining, what every node must see); yields the number of predictor actors: `workers`, by
    default the cluster's CPUs (refused when more)."""
    import ray

    from voxpop.tune_spaces.cluster import start_ray, stop_ray

    started = start_ray(address=address, num_cpus=workers, shared=shared)
    try:
        cpus = int(ray.cluster_resources().get("CPU", 0))
        if (workers or cpus) > cpus:
            raise VoxpopError(f"--workers {workers}: more than the cluster's {cpus} CPUs")
        yield workers or cpus
    finally:
        if started:
            stop_ray()


def input_files(input: str) -> list[Location]:
    """The files INPUT names: a table file, a folder's table files (by extension), or a glob;
    local or on a pyarrow file system (`s3://bucket/prefix/*.parquet`); sorted by name. None
    found is a VoxpopError."""
    if is_uri(input):
        files = _remote_files(input)
        folder = not files and _is_remote_dir(input)
    else:
        path = Path(input)
        folder = path.is_dir()
        if folder:
            files = [p for p in path.iterdir() if p.is_file() and _is_table(p.name)]
        elif path.is_file():
            files = [path]
        else:
            files = [Path(p) for p in glob.glob(input) if Path(p).is_file()]
        files = [locate(file) for file in files]
    if not files:
        what = (
            "holds no table files (" + ", ".join(FORMATS_BY_SUFFIX) + ")"
            if folder
            else "file not found (nor files matching it as a glob)"
        )
        raise VoxpopError(f"{input}: {what}")
    return sorted(files, key=lambda file: file.uri)


def _is_table(name: str) -> bool:
    return PurePosixPath(name).suffix.lower() in FORMATS_BY_SUFFIX


def _remote_files(input: str) -> list[Location]:
    """A file, a folder's table files or a glob (`*`, `?`, `[...]` within one path segment) on a
    pyarrow file system."""
    pattern = input.rstrip("/")
    wild = min((pattern.find(c) for c in "*?[" if c in pattern), default=-1)
    if wild < 0:
        location = locate(pattern)
        if location.is_file():
            return [location]
        if not location.is_dir():
            return []
        return [
            location.child(name) for name in location.files() if "/" not in name and _is_table(name)
        ]
    base = locate(pattern[: pattern.rindex("/", 0, wild)])
    rest = pattern[len(base.uri) + 1 :].split("/")
    return [
        base.child(name)
        for name in base.files()
        if name.count("/") == len(rest) - 1
        and all(fnmatch.fnmatchcase(part, want) for part, want in zip(name.split("/"), rest))
    ]


def _is_remote_dir(input: str) -> bool:
    location = locate(input.rstrip("/"))
    return location.is_dir()


def predict_frames(
    files: list[Location], *, read: ReadSpec, predict: PredictSpec, workers: int, found: dict
) -> Iterator[pd.DataFrame]:
    """Each chunk's prediction frame, in input order (the files in turn), computed by `workers`
    predictor actors on the Ray that this process has joined. `found` sums the chunks'
    `replaced_bytes` and `empty_texts` as they arrive."""
    _ordered_and_quiet()
    frames = _predictions(files, read=read, predict=predict, workers=workers)
    # Arrow to pandas here, not Ray's pandas batches (Arrow-backed columns): the frames are then
    # the local command's, dtypes included, for the same writers.
    for batch in _batches(frames, batch_format="pyarrow"):
        frame = batch.to_pandas()
        found["replaced_bytes"] += int(frame.pop(_REPLACED).sum())
        found["empty_texts"] += int(frame.pop(_EMPTY).sum())
        yield frame


def write_parts(
    files: list[Location],
    *,
    read: ReadSpec,
    predict: PredictSpec,
    workers: int,
    out: Path,
    fmt: str,
    on_rows: Callable[[int], None] | None = None,
) -> dict:
    """Predict `files` and write the rows with Ray Data's writers, from the workers, as `fmt`
    parts of the folder `out` (written to a temporary sibling, renamed into place when whole).
    Each row starts with `source_file` and `source_row`. `on_rows(total)` is called with the
    rows done so far, about twice a second. Returns the totals: rows, parts, replaced_bytes,
    empty_texts."""
    import ray

    from voxpop.data.atomic import atomic_path

    _ordered_and_quiet()
    # The parts are written as they come: the rows carry their place, no need to keep order.
    ray.data.DataContext.get_current().execution_options.preserve_order = False
    tally = _new_tally()
    frames = _predictions(files, read=read, predict=replace(predict, tally=tally), workers=workers)
    done = threading.Event()

    def report() -> None:
        while not done.wait(0.5):
            on_rows(ray.get(tally.totals.remote())["rows"])

    poller = threading.Thread(target=report, daemon=True) if on_rows else None
    try:
        with atomic_path(out) as tmp:
            if poller:
                poller.start()
            try:
                PART_WRITERS[fmt](frames, str(tmp))
            except Exception as err:
                cause = _voxpop_cause(err)
                if cause is None:
                    raise
                raise VoxpopError(_first_line(cause)) from None
            finally:
                done.set()
                if poller:
                    poller.join()
            parts = sum(1 for part in tmp.iterdir() if not part.name.startswith("."))
        totals = ray.get(tally.totals.remote())
        if on_rows:
            on_rows(totals["rows"])
        return {**totals, "parts": parts}
    finally:
        ray.kill(tally)


def _predictions(files: list[Location], *, read: ReadSpec, predict: PredictSpec, workers: int):
    """The Ray Data pipeline: a read task per file, then `workers` predictor actors."""
    import ray.data

    remote = [file for file in files if file.local is None]
    if remote:
        read = replace(read, filesystem=remote[0].filesystem)
    listing = ray.data.from_items(
        [{"path": file.path, "source": file.uri} for file in files],
        override_num_blocks=len(files),
    )
    # The reads take no core of their own: the predictors hold one each, and a read that waited
    # for a free core would never start.
    chunks = listing.map_batches(
        _read_file, batch_size=1, batch_format="pandas", num_cpus=0, fn_kwargs={"read": read}
    )
    return chunks.map_batches(
        _Predictor,
        batch_size=read.chunk_rows,
        batch_format="pandas",
        concurrency=workers,
        num_cpus=1,
        fn_constructor_kwargs={"predict": predict},
    )


class _PartNames:
    """`part-000012-<write uuid>.parquet`: one part per write task (Ray Data's FilenameProvider
    protocol; Ray Data wants the write's UUID in each name)."""

    def __init__(self, extension: str):
        self.extension = extension

    def get_filename_for_task(self, write_uuid: str, task_index: int) -> str:
        return f"part-{task_index:06}-{write_uuid}.{self.extension}"

    def get_filename_for_block(self, block, write_uuid: str, task_index: int, block_index: int):
        return self.get_filename_for_task(write_uuid, task_index)


# The writes take no core of their own either (the predictors hold them all).
_WRITE_ARGS = {"ray_remote_args": {"num_cpus": 0}}


def _write_parquet(dataset, path: str) -> None:
    dataset.write_parquet(path, filename_provider=_PartNames("parquet"), **_WRITE_ARGS)


def _write_csv(dataset, path: str) -> None:
    dataset.write_csv(path, filename_provider=_PartNames("csv"), **_WRITE_ARGS)


def _write_tsv(dataset, path: str) -> None:
    def options() -> dict:
        import pyarrow.csv

        return {"write_options": pyarrow.csv.WriteOptions(delimiter="\t")}

    dataset.write_csv(
        path, filename_provider=_PartNames("tsv"), arrow_csv_args_fn=options, **_WRITE_ARGS
    )


def _write_jsonl(dataset, path: str) -> None:
    dataset.write_json(path, filename_provider=_PartNames("jsonl"), **_WRITE_ARGS)


# Output format (voxpop.data.options.FORMATS) -> the Ray Data writer of its parts.
PART_WRITERS: dict[str, Callable[[object, str], None]] = {
    "parquet": _write_parquet,
    "csv": _write_csv,
    "tsv": _write_tsv,
    "jsonl": _write_jsonl,
}


def parts_format(out: Path) -> str:
    """The parts' format for the folder `out`: the table format its suffix names (`preds.csv`:
    CSV parts), Parquet for any other name."""
    return FORMATS_BY_SUFFIX.get(out.suffix.lower(), "parquet")


def _new_tally():
    """An actor that adds up the rows, replaced bytes and empty texts of the chunks predicted,
    keyed by each chunk's first row (a chunk that Ray Data retries counts once)."""
    import ray

    @ray.remote(num_cpus=0)
    class Tally:
        def __init__(self):
            self.chunks: dict = {}

        def add(self, key, rows: int, replaced_bytes: int, empty_texts: int) -> None:
            self.chunks[key] = (rows, replaced_bytes, empty_texts)

        def totals(self) -> dict:
            sums = [sum(column) for column in zip(*self.chunks.values())] or [0, 0, 0]
            return dict(zip(("rows", "replaced_bytes", "empty_texts"), sums))

    return Tally.remote()


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
        fused=True,  # predict_votes reads every member from the fused graph where it can
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
        raise VoxpopError(_first_line(cause)) from None


def _read_file(batch: pd.DataFrame, *, read: ReadSpec) -> Iterator[pd.DataFrame]:
    """The chunks of one file (a batch of one path) as frames of text, id, features, where each
    row comes from and the bytes reading replaced."""
    from voxpop.data import iter_table_chunks

    for path, source in zip(batch["path"], batch["source"]):
        with _local_copy(path, source, read.filesystem) as local:
            tables = iter_table_chunks(
                local,
                chunk_rows=read.chunk_rows,
                text_col=read.text_col,
                id_col=read.id_col,
                feature_cols=read.feature_cols,
                format=read.format,
            )
            for table in _named(tables, local, source):
                columns = {_TEXT: table.texts, _ID: table.ids.astype(str)}
                if table.features is not None:
                    columns.update(
                        {
                            _FEATURE.format(i): table.features[:, i]
                            for i in range(table.features.shape[1])
                        }
                    )
                columns[_SOURCE] = np.full(len(table), source, dtype=object)
                columns[_ROW] = np.asarray(table.rows, dtype=np.int64)
                replaced = np.zeros(len(table), dtype=np.int64)
                replaced[0] = table.report.n_replaced_bytes
                columns[_REPLACED] = replaced
                yield pd.DataFrame(columns)


@contextlib.contextmanager
def _local_copy(path: str, source: str, filesystem) -> Iterator[str]:
    """`path` itself when local; a file on a pyarrow file system copied to a local temporary
    file of the same name (the reader takes the format from it), removed afterwards."""
    if filesystem is None:
        yield path
        return
    from voxpop.data.storage import remote_error

    with tempfile.TemporaryDirectory(prefix="voxpop-input-") as folder:
        local = Path(folder) / PurePosixPath(path).name
        try:
            with filesystem.open_input_stream(path) as stream, open(local, "wb") as copy:
                shutil.copyfileobj(stream, copy, 1 << 22)
        except OSError as err:
            raise remote_error(source, err, filesystem=filesystem.type_name) from None
        yield str(local)


def _named(tables: Iterator, local: str, source: str) -> Iterator:
    """The tables; an error about the local copy of a remote file names the file's URI."""
    if local == source:
        yield from tables
        return
    try:
        yield from tables
    except VoxpopError as err:
        raise VoxpopError(str(err).replace(local, source)) from None


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
        replaced = batch[_REPLACED].to_numpy()
        empty = np.fromiter((not text for text in texts), dtype=bool, count=len(texts))
        tally = self.spec.tally
        if tally is None:
            frame[_REPLACED], frame[_EMPTY] = replaced, empty
            return frame
        import ray

        sources, rows = batch[_SOURCE].to_numpy(dtype=object), batch[_ROW].to_numpy()
        # Waited for (a round trip per chunk): the driver's final totals then count every chunk.
        ray.get(
            tally.add.remote(
                (sources[0], int(rows[0])), len(frame), int(replaced.sum()), int(empty.sum())
            )
        )
        frame.insert(0, SOURCE_COLUMNS[0], sources)
        frame.insert(1, SOURCE_COLUMNS[1], rows)
        return frame


class _Scorer(_Predictor):
    """One Ray Data actor of `predict_all`: per batch, each vote's probabilities and labels, each
    member's probabilities, and the OOV rates (when a member reads tokens)."""

    def __call__(self, batch: pd.DataFrame) -> dict[str, np.ndarray]:
        from voxpop.reports.bundle_eval import oov_rates

        inputs = self.ensemble.encode(batch[_TEXT].tolist(), _features(batch))
        out = {"oov": oov_rates(inputs["tokens"])} if "tokens" in inputs else {}
        votings = self.spec.vote_options["votings"]
        for rule, prediction in self.ensemble.predict_votes(inputs, votings=votings).items():
            out[f"vote:{rule}"], out[f"pred:{rule}"] = prediction.probs, prediction.label_ids
        out.update(
            {f"member:{member_id}": probs for member_id, probs in prediction.member_probs.items()}
        )
        return out


def _features(batch: pd.DataFrame) -> np.ndarray | None:
    names = [name for name in batch.columns if name.startswith("__feature_")]
    return batch[names].to_numpy(dtype=np.float32) if names else None


def _first_line(err: VoxpopError) -> str:
    """The error's line: Ray Data appends its own advice on lines of their own to an error it
    takes for an I/O error (a storage's refusal), which the line already says."""
    return str(err).split("\n", 1)[0]


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
