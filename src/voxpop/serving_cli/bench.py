"""`voxpop bench`: how fast a bundle predicts on this machine, path by path.

The repository's `bench/` scripts measure the project (training, export, load, baselines); this
command answers the user's question about *their* bundle: rows/s of encoding (tokens, n-grams, features), of the fused
graph, of separate member sessions, and of each member alone, on their own texts.
"""

from __future__ import annotations

import time
from pathlib import Path

import typer

from voxpop.data.errors import VoxpopError
from voxpop.data.options import TEXT_COL
from voxpop.serving_cli.options import feature_cols_option, feature_columns, format_option


def bench(
    bundle: Path = typer.Argument(
        ..., help="Ensemble bundle directory written by `voxpop export`."
    ),
    input: str = typer.Argument(..., help="Texts to time on: .csv, .tsv, .parquet or .jsonl."),
    table_format: str = format_option(),
    text_col: str = typer.Option(TEXT_COL, help="Column holding the text."),
    feature_cols: str = feature_cols_option(),
    rows: int = typer.Option(5000, min=1, help="Use at most this many rows (repeated if fewer)."),
    batch_size: int = typer.Option(1024, min=1, help="Rows per ONNX Runtime call."),
    repeats: int = typer.Option(3, min=1, help="Timed passes per path; the best is reported."),
    threads: int = typer.Option(
        None, min=1, show_default=False, help="CPU threads in total (default: all cores)."
    ),
) -> None:
    """Time a bundle on your own texts: encoding, fused graph, separate sessions, each member.

    Prints rows/s and ms/row per path (best of --repeats passes after one warm-up pass).

    Example: voxpop bench bundle new_tweets.csv --rows 20000 --batch-size 1024
    """
    import numpy as np
    from rich.console import Console
    from rich.table import Table

    from voxpop.data import read_table
    from voxpop.ensemble import Ensemble

    fused = Ensemble.load(bundle, threads=threads, fused=True)
    separate = Ensemble.load(bundle, threads=threads, fused=False)
    table = read_table(
        input,
        text_col=text_col,
        format=table_format,
        feature_cols=feature_columns(separate, feature_cols),
    )
    if not table.texts:
        raise VoxpopError(f"{input}: no rows to time")
    picked = np.arange(rows) % len(table.texts)  # the rows, repeated if fewer than --rows
    texts = [table.texts[i] for i in picked]
    features = None if table.features is None else table.features[picked]

    seconds = {"encoding": _best_seconds(lambda: separate.encode(texts, features), repeats)}
    encoded = separate.encode(texts, features)
    paths = {"weighted vote, separate sessions": (separate, {})}
    if fused.runs_fused(voting="weighted"):
        paths = {"weighted vote, fused graph": (fused, {}), **paths}
    for member_id in separate.member_ids:
        paths[f"member {member_id} alone"] = (separate, {"members": [member_id]})
    for name, (ensemble, options) in paths.items():

        def run(ensemble=ensemble, options=options):
            for start in range(0, len(texts), batch_size):
                part = {key: array[start : start + batch_size] for key, array in encoded.items()}
                ensemble.predict_encoded(part, voting="weighted", **options)

        run()  # warm-up: first allocations and thread pools
        seconds[name] = _best_seconds(run, repeats)

    report = Table(
        title=f"{bundle}: {len(texts):,} rows, batch {batch_size}, device {separate.device}"
    )
    for column in ("path", "rows/s", "ms/row"):
        report.add_column(column, justify="left" if column == "path" else "right")
    for name, elapsed in seconds.items():
        report.add_row(name, f"{len(texts) / elapsed:,.0f}", f"{1000 * elapsed / len(texts):.3f}")
    Console().print(report)
    fused.close()
    separate.close()


def _best_seconds(work, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - start)
    return best
