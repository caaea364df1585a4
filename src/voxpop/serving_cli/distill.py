"""`voxpop distill`: one fast student trained on a bundle's soft probabilities, as a bundle."""

from __future__ import annotations

from pathlib import Path

import typer

from voxpop.data.options import LABEL_COL, TEXT_COL
from voxpop.export.options import STUDENT_FAMILIES
from voxpop.serving_cli.options import format_option, one_of


def distill(
    bundle: Path = typer.Argument(..., help="The teacher: an ensemble bundle directory."),
    data: Path = typer.Option(
        ...,
        "--data",
        help="Labelled training table (CSV, TSV, Parquet "
        "or JSON Lines); without --val, a stratified fifth is held out to score student "
        "and teacher.",
    ),
    val: Path = typer.Option(
        None,
        "--val",
        help="Labelled table to choose and score the student on (and the teacher), never "
        "distilled on: rows neither was trained on, such as the tuning run's validation split "
        "(a fifth of --data flatters a teacher tuned on --data).",
    ),
    unlabelled: list[Path] = typer.Option(
        None,
        "--unlabelled",
        help="Table of more texts (no labels needed) to distil on; repeatable.",
    ),
    out: Path = typer.Option(..., "--out", "-o", help="Student bundle directory to write."),
    family: str = typer.Option(
        None,
        "--family",
        help=f"Student family: {one_of(STUDENT_FAMILIES)} (default: "
        "the fastest within 1 point of the best one's held-out macro-F1).",
    ),
    table_format: str = format_option("the tables"),
    text_col: str = typer.Option(TEXT_COL, "--text-col", help="Column holding the texts."),
    label_col: str = typer.Option(LABEL_COL, "--label-col", help="Column holding the labels."),
    force: bool = typer.Option(False, "--force", help="Replace an existing bundle at --out."),
) -> None:
    """Distil a bundle into one fast member trained on the ensemble's probabilities.

    The student (a linear model on the bundle's TF-IDF n-grams, fitted in closed form to the
    vote's soft probabilities over the training and unlabelled texts) is exported as a normal
    bundle, with the same proofs as `voxpop export`.

    Example: voxpop distill bundle --data train.csv --val val.csv --unlabelled more.csv --out student
    """
    from rich.progress import Progress

    from voxpop.export.distill import distill_bundle

    with Progress(transient=True) as progress:
        task = progress.add_task("reading the tables", total=None)
        result = distill_bundle(
            bundle,
            out,
            data=data,
            unlabelled=unlabelled or (),
            val=val,
            text_col=text_col,
            label_col=label_col,
            table_format=table_format,
            family=family,
            force=force,
            on_step=lambda what: progress.update(task, description=what),
        )
    tried = ", ".join(f"{name} {score:.4f}" for name, score in result.candidates.items())
    typer.echo(
        f"student {result.family} distilled on {result.distilled_rows:,} texts -> {result.bundle}"
    )
    typer.echo(
        f"held-out macro-F1 ({result.val_rows:,} rows of {'--val' if val else '--data'}): teacher "
        f"{result.teacher_val_macro_f1:.4f}, student {result.student_val_macro_f1:.4f} "
        f"(tried: {tried})"
    )
