"""`voxpop predict`: label a table (or stdin) with an ensemble bundle, streaming in chunks."""

from __future__ import annotations

import contextlib
import itertools
import re
import sys
from pathlib import Path

import typer

from voxpop.data.errors import VoxpopError
from voxpop.data.options import TEXT_COL
from voxpop.ensemble.options import DEFAULT_DEVICE
from voxpop.serving_cli.keys import TRUST_HELP
from voxpop.serving_cli.options import feature_cols_option, feature_columns, format_option, names

# scheme:/... (a URI; Path() has already folded its // into /)
_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:/")


def predict(
    bundle: Path = typer.Argument(
        ..., help="Ensemble bundle directory written by `voxpop export`."
    ),
    input: str = typer.Argument(
        ...,
        help="Table to label: .csv, .tsv, .parquet or .jsonl, or '-' for one text per line on "
        "stdin. With --address also a folder of tables or a glob, local or a pyarrow file "
        "system URI (s3://bucket/prefix/*.parquet).",
    ),
    out: Path = typer.Option(
        None,
        "--out",
        "-o",
        help="Output file; its extension picks the format (.csv .tsv .parquet .jsonl). Default: "
        "CSV on stdout. With --address: a FOLDER of parts written by the workers, in the format "
        "its suffix names (preds.csv/: CSV parts), Parquet for any other name.",
    ),
    table_format: str = format_option(),
    text_col: str = typer.Option(TEXT_COL, "--text-col", help="Column holding the text."),
    id_col: str = typer.Option(
        None, "--id-col", help="Column copied to the output as `id` (default: none)."
    ),
    feature_cols: str = feature_cols_option(),
    voting: str = typer.Option(
        None,
        "--voting",
        help="soft | hard | weighted | stack (a bundle exported with --combine stack). Default: "
        "the bundle's default voting.",
    ),
    weights: str = typer.Option(
        None, "--weights", help="Comma-separated member weights (one per member used), e.g. 3,1,1."
    ),
    members: str = typer.Option(
        None,
        "--members",
        help="Comma-separated member ids to use (default: all); see `voxpop info BUNDLE`.",
    ),
    top_k: int = typer.Option(
        0, "--top-k", help="Add the K most probable labels with probabilities (label_i, prob_i)."
    ),
    probs: bool = typer.Option(False, "--probs", help="Add one prob_<label> column per label."),
    per_member: bool = typer.Option(
        False, "--per-member", help="Add each member's own label (label_<member>)."
    ),
    batch_size: int = typer.Option(
        2048, "--batch-size", help="Rows read, encoded and predicted at a time."
    ),
    device: str = typer.Option(
        DEFAULT_DEVICE, "--device", help="auto (CUDA if really usable, else CPU) | cpu | cuda."
    ),
    threads: int = typer.Option(
        None,
        "--threads",
        min=1,
        show_default=False,
        help="CPU threads in total (default: all cores); with 2 or more, one encodes the next chunk "
        "while ONNX Runtime runs this one on the others (a bundle with a sentence member gives "
        "ONNX Runtime all of them: its graph, not encoding, takes the time).",
    ),
    no_fused: bool = typer.Option(
        False,
        "--no-fused",
        help="Run members in separate sessions even where the fused graph would do.",
    ),
    trust: Path = typer.Option(None, "--trust", help=TRUST_HELP),
    address: str = typer.Option(
        None,
        "--address",
        show_default=False,
        help="Predict on a Ray cluster with Ray Data: local (an embedded Ray on this machine), "
        "auto, HOST:PORT or ray://HOST:PORT. INPUT may then also be a folder of table files, "
        "a glob or an s3:// URI; BUNDLE, a local INPUT and --out must be at the same path on "
        "every node. Default: no Ray, this process predicts.",
    ),
    workers: int = typer.Option(
        None,
        "--workers",
        min=1,
        show_default=False,
        help="With --address: predictor actors, one core each (default: the cluster's CPUs; "
        "with local, also the CPUs the embedded Ray offers).",
    ),
) -> None:
    """Predict labels for every row of INPUT, one output row per input row, in input order
    (with --address and --out: in parts whose rows say where they come from, see below).

    Output columns: id (with --id-col), label, confidence, label_i and prob_i (with --top-k),
    prob_<label> (with --probs), label_<member> (with --per-member), empty_text (empty texts are
    predicted like any other, and flagged). With --voting hard, probabilities are vote shares.
    The output is written to a temporary file and renamed into place when complete; an --out
    that is the input (under any name) is refused. Blank lines of INPUT are rows with an empty
    text, as on stdin.

    CSV on stdout: on a terminal, control characters in ids and labels are shown escaped (\\x1b);
    to a pipe or a file the data is written as it is.

    With --address, each input file is read by a Ray Data task and its chunks predicted by a pool
    of --workers actors. With --out, Ray Data's writers write the rows on the workers as parts of
    the folder --out (written to a temporary sibling folder and renamed into place when every
    part is written: a job that fails leaves nothing there). The parts are in no particular
    order: each row starts with source_file (the file's path or URI) and source_row (its 0-based
    place among the file's data rows), then the local command's columns and values; sort by the
    two for the input order. Without --out, CSV on stdout in input order (files sorted by name).

    Example: voxpop predict bundle/ new_tweets.csv --id-col tweet_id --top-k 2 --out preds.parquet
    """
    from voxpop.data import iter_table_chunks
    from voxpop.data.atomic import check_target
    from voxpop.ensemble import Ensemble
    from voxpop.ensemble.stream import OutputColumns, output_format, predict_chunks

    if batch_size < 1:
        raise VoxpopError(f"--batch-size: must be >= 1, got {batch_size}")
    if workers is not None and address is None:
        raise VoxpopError("--workers: only with --address (Ray); without it, see --threads")
    reads = [bundle] if input == "-" else [input, bundle]
    if address is None:
        fmt = output_format(out)
    else:
        from voxpop.batch.raydata import input_files, parts_format

        if input == "-":
            raise VoxpopError("--address: INPUT must be files (stdin is read by this process only)")
        if out is not None and _URI.match(str(out)):
            raise VoxpopError(
                f"--out {out}: with --address, a folder on storage every node sees (a file "
                "system URI is for INPUT only)"
            )
        # With --out, a folder of parts written by the workers; without, CSV on stdout.
        fmt = output_format(None) if out is None else parts_format(out)
        files = input_files(input)
        reads = [bundle, *(file.local for file in files if file.local is not None)]
    if out is not None:  # before any work: never the input itself, never half a run for nothing
        check_target(out, reads=reads, folder=address is not None)
    ensemble = Ensemble.load(
        bundle,
        device=device,
        threads=threads,
        fused=not (no_fused or per_member),
        pipeline=True,
        trust=trust,
    )
    voting = voting or ensemble.manifest.voting.default
    weight_list = _floats(weights, "--weights")
    member_list = names(members)
    fused = ensemble.runs_fused(voting=voting, weights=weight_list, members=member_list)
    if not 0 <= top_k <= len(ensemble.labels):
        raise VoxpopError(
            f"--top-k: must be between 0 and {len(ensemble.labels)} (the number of labels)"
        )
    columns = OutputColumns(
        with_ids=id_col is not None, top_k=top_k, probs=probs, per_member=per_member
    )
    vote_options = {"voting": voting, "weights": weight_list, "members": member_list}
    found = {"replaced_bytes": 0, "empty_texts": 0}
    how = "fused graph" if fused else "separate sessions"
    if address is None:
        chunks = iter_table_chunks(
            input,
            chunk_rows=batch_size,
            text_col=text_col,
            id_col=id_col,
            feature_cols=feature_columns(ensemble, feature_cols),
            format=table_format,
        )
        chunks = itertools.chain(
            [next(chunks)], chunks
        )  # input errors (e.g. a missing column) first
        typer.echo(f"voxpop predict: device {ensemble.device}, {voting} voting, {how}", err=True)
        frames = predict_chunks(ensemble, _tallied(chunks, found), columns=columns, **vote_options)
        _write(frames, fmt=fmt, out=out)
    else:
        from voxpop.batch.raydata import PredictSpec, ReadSpec

        read = ReadSpec(
            text_col=text_col,
            id_col=id_col,
            format=table_format,
            chunk_rows=batch_size,
            feature_cols=feature_columns(ensemble, feature_cols),
        )
        spec = PredictSpec(
            bundle=str(Path(bundle).resolve()),
            trust=trust and str(trust),
            fused=not (no_fused or per_member),
            vote_options=vote_options,
            columns=columns,
        )
        _predict_on_ray(
            files,
            read=read,
            predict=spec,
            address=address,
            workers=workers,
            found=found,
            fmt=fmt,
            out=out,
            how=how,
        )
    if found["replaced_bytes"]:
        typer.echo(
            f"voxpop predict: warning: {input}: {found['replaced_bytes']} byte(s) that were "
            "not UTF-8 replaced by U+FFFD",
            err=True,
        )
    if found["empty_texts"]:
        typer.echo(
            f"voxpop predict: warning: {input}: {found['empty_texts']} empty or null "
            "text(s), predicted and flagged in column empty_text",
            err=True,
        )


def _predict_on_ray(
    files,
    *,
    read,
    predict,
    address: str,
    workers: int | None,
    found: dict,
    fmt: str,
    out: Path | None,
    how: str,
) -> None:
    """Start or join Ray and predict `files` with Ray Data (voxpop.batch.raydata): the workers
    write the parts of the folder `out`, or the driver writes CSV to stdout in input order."""
    from voxpop.batch.raydata import predict_frames, ray_workers, write_parts

    with ray_workers(address, workers) as n_workers:
        typer.echo(
            f"voxpop predict: Ray Data, {len(files)} file(s), {n_workers} worker(s) on "
            f"cpu, {predict.vote_options['voting']} voting, {how}",
            err=True,
        )
        if out is None:
            frames = predict_frames(
                files, read=read, predict=predict, workers=n_workers, found=found
            )
            _write(frames, fmt=fmt, out=None)
            return
        with _progress() as advance:
            seen = [0]

            def on_rows(total: int) -> None:
                advance(total - seen[0])
                seen[0] = total

            totals = write_parts(
                files,
                read=read,
                predict=predict,
                workers=n_workers,
                out=out,
                fmt=fmt,
                on_rows=on_rows,
            )
        found["replaced_bytes"] += totals["replaced_bytes"]
        found["empty_texts"] += totals["empty_texts"]
        typer.echo(
            f"voxpop predict: wrote {totals['rows']:,} rows in {totals['parts']} {fmt} part(s) "
            f"to {out}/ (sort by source_file, source_row for the input order)",
            err=True,
        )


def _tallied(chunks, found: dict):
    """Pass the chunks on, summing what reading them replaced or found empty (reported at the end)."""
    for table in chunks:
        found["replaced_bytes"] += table.report.n_replaced_bytes
        found["empty_texts"] += table.report.n_empty_texts
        yield table


def _write(frames, *, fmt: str, out: Path | None) -> None:
    """Write the prediction frames as they come, to `out` (whole or not at all) or stdout."""
    from voxpop.data.atomic import atomic_path
    from voxpop.ensemble.stream import open_writer

    target = contextlib.nullcontext(None) if out is None else atomic_path(out)
    with target as path, _progress() as advance:
        writer = open_writer(fmt, path)
        try:
            for frame in frames:
                writer.write(frame)
                advance(len(frame))
        finally:
            writer.close()
    if out is not None:
        typer.echo(f"voxpop predict: wrote {out}", err=True)


@contextlib.contextmanager
def _progress():
    """Yields advance(n_rows): a rich bar with rows/s on a terminal, nothing when piped."""
    if not sys.stderr.isatty():
        yield lambda n_rows: None
        return
    from rich.console import Console
    from rich.progress import Progress, ProgressColumn, SpinnerColumn, TextColumn, TimeElapsedColumn
    from rich.text import Text

    class RowsPerSecond(ProgressColumn):
        def render(self, task) -> Text:
            return Text(f"{task.speed or 0:,.0f} rows/s")

    columns = (
        SpinnerColumn(),
        TextColumn("{task.completed:,} rows"),
        RowsPerSecond(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=Console(stderr=True)) as progress:
        task = progress.add_task("predict", total=None)
        yield lambda n_rows: progress.advance(task, n_rows)


def _floats(text: str | None, option: str) -> list[float] | None:
    values = names(text)
    if values is None:
        return None
    try:
        return [float(value) for value in values]
    except ValueError:
        raise VoxpopError(
            f"{option}: {text!r} is not a comma-separated list of numbers (e.g. 3,1,1)"
        ) from None
