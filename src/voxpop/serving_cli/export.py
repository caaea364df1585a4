"""`voxpop export`: a tuning run directory -> a proven ONNX ensemble bundle."""

from __future__ import annotations

from pathlib import Path

import typer

from voxpop.data.options import METRICS
from voxpop.export.options import COMBINES, MAX_F1_DROP, MAX_OPSET, PARITY_ROWS
from voxpop.export.options import DEFAULTS as EXPORT
from voxpop.serving_cli.options import one_of


def export(
    run: str = typer.Argument(
        ...,
        help="Tuning run directory (STORAGE/NAME) written by "
        "`voxpop tune`: a path or a URI (s3://bucket/runs/NAME).",
    ),
    out: Path = typer.Option(
        ..., "--out", "-o", help="Bundle directory to write (must not exist unless --force)."
    ),
    size: int = typer.Option(EXPORT.size, "--size", help="At most this many distinct members (K)."),
    select: str = typer.Option(
        EXPORT.select,
        "--select",
        help="How members are chosen on validation data (of a run tuned with --folds: bags, on "
        "their out-of-fold rows): top (K best checkpoints, one per trial), greedy (Caruana "
        "ensemble selection with replacement, weights = pick counts) or diverse (best members "
        "that differ in family or predictions).",
    ),
    metric: str = typer.Option(
        EXPORT.metric,
        "--metric",
        help=f"Ranks checkpoints: {one_of(METRICS)} (greedy always maximises the vote's val "
        "macro-F1).",
    ),
    combine: str = typer.Option(
        EXPORT.combine,
        "--combine",
        help=f"{one_of(COMBINES)}. stack also fits a multinomial logistic regression on the "
        "members' validation log-probabilities (of a bagged run: out-of-fold) (into fused.onnx "
        "beside the vote, and into the manifest as numbers); it becomes the default voting only "
        "if it beats the weighted vote in cross-validation over those rows (the report gives "
        "both scores). It learns those rows' domain: for texts unlike the training rows keep "
        "the vote (measured in the README).",
    ),
    max_ms_per_row: float = typer.Option(
        EXPORT.max_ms_per_row,
        "--max-ms-per-row",
        show_default=False,
        help="Keep the best ensemble whose cost per row fits this many milliseconds: every "
        "candidate is converted and timed on validation texts (ONNX Runtime on one thread, plus "
        "encoding its inputs) and selection adds only members that keep the total within it; "
        "the report gives each cost. An error when no candidate fits alone.",
    ),
    opset: int = typer.Option(
        EXPORT.opset, "--opset", help=f"ONNX opset of the members (at most {MAX_OPSET})."
    ),
    fuse: bool = typer.Option(
        EXPORT.fuse,
        "--fuse/--no-fuse",
        help="Also write fused.onnx: all members and the weighted soft vote in one graph.",
    ),
    quantize: str = typer.Option(
        EXPORT.quantize,
        "--quantize",
        help="none, or int8: dynamic int8 quantization, kept only if the vote's val macro-F1 drops "
        f"by at most {100 * MAX_F1_DROP:g} points (the report gives both scores).",
    ),
    parity_tol: float = typer.Option(
        EXPORT.parity_tol,
        "--parity-tol",
        help="Largest allowed |ONNX - Keras| probability difference on up to "
        f"{PARITY_ROWS:,} validation rows.",
    ),
    force: bool = typer.Option(False, "--force", help="Replace an existing bundle at --out."),
    sign: Path = typer.Option(
        None,
        "--sign",
        help="Ed25519 private key (PEM, e.g. from `voxpop keygen`): also write ensemble.sig, a "
        "signature over the manifest that `voxpop predict --trust PUB.pem` checks.",
    ),
) -> None:
    """Export the best checkpoints of a tuning run as an ONNX ensemble bundle.

    Each member is converted with tf2onnx and proven: ONNX Runtime must match Keras on the
    validation rows, and recurrent layers must be fused ops (no Loop). Of a run tuned with
    --folds K the members are bags: each one graph of its K fold models, its probabilities
    their mean (proven against the mean of the K Keras models), chosen, weighted and stacked on
    the out-of-fold rows (every train and val row). The bundle (ensemble.json
    with sha256 of every file and check rows, members/*.onnx, fused.onnx, preprocess.json,
    baseline_train.csv, export_report.md, and with --sign ensemble.sig) is written to a temporary
    sibling and renamed into place.

    Example: voxpop export runs/myrun --out bundle --size 5 --select greedy --quantize int8
    Stacked, within half a millisecond per row: voxpop export runs/myrun --out bundle
    --combine stack --max-ms-per-row 0.5
    """
    import logging

    from rich.progress import Progress

    from voxpop.ensemble.bundle import read_manifest
    from voxpop.export.bundle import export_bundle

    # Each member's first Keras predict traces a new function; TensorFlow's notice about that
    # retracing is expected here and only noise for the user.
    logging.getLogger("tensorflow").setLevel(logging.ERROR)

    with Progress(transient=True) as progress:
        task = progress.add_task("selecting and converting members", total=None)

        def on_member(done: int, total: int, member_id: str) -> None:
            progress.update(task, completed=done, total=total, description=f"converted {member_id}")

        export_bundle(
            run,
            out,
            size=size,
            select=select,
            metric=metric,
            opset=opset,
            fuse=fuse,
            quantize=quantize,
            parity_tol=parity_tol,
            force=force,
            on_member=on_member,
            sign=sign,
            combine=combine,
            max_ms_per_row=max_ms_per_row,
        )
    manifest = read_manifest(out, trust=sign)
    scores = manifest.selection.val_scores
    stacker = manifest.stacker
    bags = manifest.members[0].bag
    rows = "out-of-fold" if manifest.selection.on == "out_of_fold" else "val"
    typer.echo(
        f"wrote {out}: {len(manifest.members)} "
        + (f"bags of {bags.folds} fold models" if bags else "members")
        + f", quantization {manifest.quantization}, "
        + ", ".join(f"{rows} macro-F1 {voting} {score:.4f}" for voting, score in scores.items())
        + (
            f", cross-validated macro-F1 stack {stacker.cv_macro_f1['stack']:.4f} vs weighted "
            f"{stacker.cv_macro_f1['weighted']:.4f}"
            if stacker
            else ""
        )
        + f", default voting {manifest.voting.default}"
        + (
            f", {manifest.selection.cost.total_ms:.3f} ms per row (budget "
            f"{manifest.selection.cost.max_ms_per_row:g})"
            if manifest.selection.cost
            else ""
        )
        + (", signed" if sign else "")
    )
