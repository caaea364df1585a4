"""`voxpop evaluate`: score a bundle on labelled external sets and write reports."""

from __future__ import annotations

import contextlib
import functools
from pathlib import Path

import typer

from voxpop.data.errors import VoxpopError
from voxpop.data.options import LABEL_COL, TEXT_COL
from voxpop.ensemble.options import VOTINGS
from voxpop.reports.options import HARDEST, REPORT_FORMATS
from voxpop.serving_cli.keys import TRUST_HELP
from voxpop.serving_cli.options import feature_cols_option, feature_columns, format_option


def parse_votings(spec: str) -> list[str]:
    """`--voting soft,hard` as a list; an unknown rule is a VoxpopError listing the valid ones."""
    rules = list(dict.fromkeys(rule.strip().lower() for rule in spec.split(",") if rule.strip()))
    unknown = [rule for rule in rules if rule not in VOTINGS]
    if unknown or not rules:
        raise VoxpopError(
            f"--voting: {', '.join(unknown) or 'nothing given'} not valid (choose "
            f"from {', '.join(VOTINGS)}, comma-separated)"
        )
    return rules


def output_dirs(inputs: list[Path], out: Path) -> dict[Path, Path]:
    """One input writes into OUT; several write into OUT/<input stem>/ (stems must differ)."""
    if len(inputs) == 1:
        return {inputs[0]: out}
    stems = [path.stem for path in inputs]
    repeated = sorted({stem for stem in stems if stems.count(stem) > 1})
    if repeated:
        raise VoxpopError(
            f"INPUT: several files share the name {', '.join(repeated)}; their "
            "reports would overwrite each other (rename or evaluate them separately)"
        )
    return {path: out / path.stem for path in inputs}


def print_main_table(report: dict, *, title: str) -> None:
    """The members, votes and baselines with macro-F1 and accuracy, as a rich table; then how the
    primary vote compares with its best member and the TF-IDF baseline, and the warnings."""
    from rich.console import Console
    from rich.table import Table

    from voxpop.reports.document import main_table
    from voxpop.serving_cli.console import shown

    table = Table(title=shown(title))
    for column in ("model", "macro-F1", "accuracy"):
        table.add_column(column, justify="left" if column == "model" else "right")
    for row in main_table(report):
        table.add_row(shown(row["model"]), f"{row['macro_f1']:.4f}", f"{row['accuracy']:.4f}")
    console = Console()
    console.print(table)
    gaps = [c for c in report["comparisons"] if c["vote"] == report["primary"]]
    if gaps:
        console.print("macro-F1 gaps [95% interval]:", highlight=False)
    for c in gaps:
        console.print(
            f"  {c['vote']} vote - {shown(c['against'])}: {c['difference']:+.4f} "
            f"[{c['ci95'][0]:+.4f}, {c['ci95'][1]:+.4f}] {c['verdict']}",
            highlight=False,
        )
    for warning in report["warnings"]:
        console.print(f"[yellow]warning:[/yellow] {shown(warning['message'])}")


def evaluate(
    bundle: Path = typer.Argument(..., help="Ensemble bundle directory (made by `voxpop export`)."),
    inputs: list[Path] = typer.Argument(
        ..., help="Labelled table(s): CSV, TSV, Parquet or JSON Lines (by extension, or --format)."
    ),
    out: Path = typer.Option(
        ...,
        "--out",
        help="Report directory; with several INPUTs, one sub-directory per input "
        "(named after the file) plus summary.md and summary.json. Report "
        "files an earlier run left there are replaced or removed; other "
        "files are kept.",
    ),
    table_format: str = format_option("the INPUT tables and --baseline-train"),
    text_col: str = typer.Option(TEXT_COL, "--text-col", help="Column holding the texts."),
    label_col: str = typer.Option(LABEL_COL, "--label-col", help="Column holding the true labels."),
    feature_cols: str = feature_cols_option(),
    label_map: str = typer.Option(
        None,
        "--label-map",
        help="Map the set's label words onto the bundle's labels: a file (JSON object or "
        "`external=bundle` lines) or inline `a=b,c=d`. Other labels match by name, ignoring "
        "case; rows that match nothing are counted and listed, not scored.",
    ),
    voting: str = typer.Option(
        None,
        "--voting",
        show_default=False,
        help=f"Voting rules to score, comma-separated ({', '.join(VOTINGS)}; default: every rule "
        "the bundle has, stack only with a stacker). The bundle's default rule, if listed, "
        "is the one whose confusion matrix and hardest examples are shown.",
    ),
    baseline: bool = typer.Option(
        True,
        "--baseline/--no-baseline",
        help="Also fit TF-IDF + logistic regression on the bundle's training split (or "
        "--baseline-train) and score it beside the ensemble. The majority class is always "
        "shown.",
    ),
    baseline_train: Path = typer.Option(
        None,
        "--baseline-train",
        help="Labelled table to fit the baselines on instead of the bundle's baseline_train.csv "
        "(read with --text-col/--label-col; its labels must be the bundle's).",
    ),
    report_formats: str = typer.Option(
        ",".join(REPORT_FORMATS),
        "--report-format",
        help="Report files to write, comma-separated: md, html, json (PNG plots always).",
    ),
    hardest: int = typer.Option(
        HARDEST, "--hardest", min=0, help="How many confidently wrong examples to list."
    ),
    trust: Path = typer.Option(None, "--trust", help=TRUST_HELP),
    address: str = typer.Option(
        None,
        "--address",
        show_default=False,
        help="Predict on a Ray cluster with Ray Data: local (an embedded Ray on this machine), "
        "auto, HOST:PORT or ray://HOST:PORT; the tables are read and the reports made here, "
        "and BUNDLE must be at the same path on every node. Default: no Ray.",
    ),
    workers: int = typer.Option(
        None,
        "--workers",
        min=1,
        show_default=False,
        help="With --address: predictor actors, one core each (default: the cluster's CPUs).",
    ),
) -> None:
    """Evaluate an ensemble bundle on labelled external data: every member, each voting rule and
    the baselines, with warnings, plots and hardest examples.

    Example: voxpop evaluate bundle airline.csv --out report/ --label-map pos=positive,neg=negative
    """
    from voxpop.data import read_table
    from voxpop.reports.bundle_eval import evaluate_table, load_ensemble
    from voxpop.reports.labels import parse_label_map
    from voxpop.reports.render import (
        check_report_folder,
        parse_formats,
        remove_stale,
        write_report,
        write_summary,
    )

    if workers is not None and address is None:
        raise VoxpopError("--workers: only with --address (Ray)")
    rules = None if voting is None else parse_votings(voting)
    chosen_formats = parse_formats(report_formats)
    destinations = output_dirs(inputs, out)
    for folder in {out, *destinations.values()}:
        check_report_folder(folder)
    ensemble = load_ensemble(bundle, trust=trust)
    rules = rules or ensemble.votings
    default_rule = ensemble.manifest.voting.default
    primary = default_rule if default_rule in rules else rules[0]
    mapping = parse_label_map(label_map, bundle_labels=list(ensemble.labels))
    # Read every input before the slow work, so a bad file fails at once.
    tables = {
        path: read_table(
            path,
            text_col=text_col,
            label_col=label_col,
            feature_cols=feature_columns(ensemble, feature_cols),
            format=table_format,
        )
        for path in destinations
    }
    fitted_baselines = (
        _fit_baselines(
            ensemble,
            baseline_train,
            text_col=text_col,
            label_col=label_col,
            table_format=table_format,
        )
        if baseline
        else None
    )
    with _predictions(address, workers, trust=trust) as predict:
        reports, written = {}, []
        for path, destination in destinations.items():
            table = tables[path]
            with _progress(f"evaluating {path.name}", total=len(table)) as advance:
                report = evaluate_table(
                    ensemble,
                    table,
                    votings=rules,
                    label_map=mapping,
                    baselines=fitted_baselines,
                    hardest=hardest,
                    primary=primary,
                    on_rows=advance,
                    predict=predict,
                )
            written += write_report(
                report, destination, formats=chosen_formats, title=f"Evaluation of {path.name}"
            )
            print_main_table(report, title=f"{path.name} ({report['data']['n_evaluated']} rows)")
            typer.echo(f"wrote {destination}")
            reports[path.stem] = report
    if len(reports) > 1:
        written += write_summary(reports, out)
        typer.echo(f"wrote {out / 'summary.md'}")
    # A rerun into the same folder leaves only this run's reports there.
    remove_stale(out, written)


@contextlib.contextmanager
def _predictions(address: str | None, workers: int | None, *, trust: Path | None):
    """Yields the function that computes a table's predictions: this process's
    (`bundle_eval.predict_all`), or with `address` Ray Data's on that cluster."""
    from voxpop.reports.bundle_eval import predict_all

    if address is None:
        yield predict_all
        return
    from voxpop.batch.raydata import EVALUATE_SHARED_NOTE, ray_workers
    from voxpop.batch.raydata import predict_all as predict_on_ray

    with ray_workers(address, workers, shared=EVALUATE_SHARED_NOTE) as n_workers:
        typer.echo(f"voxpop evaluate: Ray Data, {n_workers} worker(s) on cpu", err=True)
        yield functools.partial(predict_on_ray, workers=n_workers, trust=trust and str(trust))


def _fit_baselines(
    ensemble, override: Path | None, *, text_col: str, label_col: str, table_format: str | None
):
    """The fitted baselines (with a spinner: TF-IDF on a whole training split takes a while),
    or None with a note when there is nothing to fit them on."""
    from rich.console import Console

    from voxpop.reports.bundle_eval import resolve_baselines

    with Console(stderr=True).status("fitting the TF-IDF + logistic regression baseline"):
        fitted = resolve_baselines(
            ensemble, override, text_col=text_col, label_col=label_col, format=table_format
        )
    if fitted is None:
        typer.secho(
            "note: the bundle records no baseline training split; pass --baseline-train "
            "FILE for the TF-IDF baseline (majority class only)",
            err=True,
        )
    return fitted


@contextlib.contextmanager
def _progress(description: str, *, total: int):
    """A transient rich progress bar over rows; yields `advance(n_rows)`."""
    from rich.progress import Progress

    with Progress(transient=True) as bar:
        task = bar.add_task(description, total=total)
        yield lambda rows: bar.advance(task, rows)
