"""`voxpop export`: a tuning run directory -> a proven ONNX ensemble bundle."""

from __future__ import annotations

from pathlib import Path

import typer


def export(
    run: Path = typer.Argument(..., help="Tuning run directory (STORAGE/NAME) written by `voxpop tune`."),
    out: Path = typer.Option(..., "--out", "-o", help="Bundle directory to write (must not exist unless --force)."),
    size: int = typer.Option(5, "--size", help="At most this many distinct members (K)."),
    select: str = typer.Option(
        "greedy", "--select",
        help="How members are chosen on validation data: top (K best checkpoints, one per trial), "
        "greedy (Caruana ensemble selection with replacement, weights = pick counts) or diverse "
        "(best members that differ in family or predictions).",
    ),
    metric: str = typer.Option(
        "val_macro_f1", "--metric",
        help="Ranks checkpoints: val_macro_f1, val_accuracy or val_loss (greedy always maximises "
        "the vote's val macro-F1).",
    ),
    opset: int = typer.Option(17, "--opset", help="ONNX opset of the members (at most 18)."),
    fuse: bool = typer.Option(
        True, "--fuse/--no-fuse",
        help="Also write fused.onnx: all members and the weighted soft vote in one graph.",
    ),
    quantize: str = typer.Option(
        "none", "--quantize",
        help="none, or int8: dynamic int8 quantization, kept only if the vote's val macro-F1 drops "
        "by at most 0.5 points (the report gives both scores).",
    ),
    parity_tol: float = typer.Option(
        1e-5, "--parity-tol",
        help="Largest allowed |ONNX - Keras| probability difference on up to 2,000 validation rows.",
    ),
    force: bool = typer.Option(False, "--force", help="Replace an existing bundle at --out."),
    sign: Path = typer.Option(
        None, "--sign",
        help="Ed25519 private key (PEM, e.g. from `voxpop keygen`): also write ensemble.sig, a "
        "signature over the manifest that `voxpop predict --trust PUB.pem` checks.",
    ),
) -> None:
    """Export the best checkpoints of a tuning run as an ONNX ensemble bundle.

    Each member is converted with tf2onnx and proven: ONNX Runtime must match Keras on the
    validation rows, and recurrent layers must be fused ops (no Loop). The bundle (ensemble.json
    with sha256 of every file and check rows, members/*.onnx, fused.onnx, preprocess.json,
    baseline_train.csv, export_report.md, and with --sign ensemble.sig) is written to a temporary
    sibling and renamed into place.

    Example: voxpop export runs/myrun --out bundle --size 5 --select greedy --quantize int8
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
            run, out, size=size, select=select, metric=metric, opset=opset, fuse=fuse,
            quantize=quantize, parity_tol=parity_tol, force=force, on_member=on_member, sign=sign,
        )
    manifest = read_manifest(out, trust=sign)
    scores = manifest.selection.val_scores
    typer.echo(
        f"wrote {out}: {len(manifest.members)} members, quantization {manifest.quantization}, "
        + ", ".join(f"val macro-F1 {voting} {score:.4f}" for voting, score in scores.items())
        + (", signed" if sign else "")
    )
