"""`voxpop info`: what an ensemble bundle holds, with every checksum and every graph verified."""

from __future__ import annotations

from pathlib import Path

import typer

from voxpop.serving_cli.keys import TRUST_HELP

# config keys worth a glance when comparing members (the rest is in ensemble.json)
KEY_CONFIG = ("units", "filters", "num_heads", "embed_dim", "encoder", "loss", "learning_rate")


def info(
    bundle: Path = typer.Argument(
        ..., help="Ensemble bundle directory written by `voxpop export`."
    ),
    trust: Path = typer.Option(None, "--trust", help=TRUST_HELP),
) -> None:
    """Show a bundle's labels, members, voting, inputs and files, after verifying every sha256
    and running every graph on the bundle's check rows.

    A bundle whose files do not match ensemble.json, or whose graphs do not give the stored check
    probabilities, is refused with a one-line error (exit 2).

    Example: voxpop info bundle --trust alice.pub.pem
    """
    from voxpop.data.terminal import printable
    from voxpop.ensemble import Ensemble

    ensemble = Ensemble.load(bundle, device="cpu", fused=False, trust=trust)
    checked = ensemble.verify_all()
    manifest = ensemble.manifest
    voting = manifest.voting
    lines = [
        f"bundle: {bundle} (schema {manifest.schema_version}, voxpop {manifest.voxpop_version})",
        f"labels: {', '.join(manifest.labels)}",
        f"voting: default {voting.default}, weights {voting.weights}",
        _stacker_line(manifest.stacker),
        "inputs: " + "; ".join(f"{i.name} {i.dtype} {i.shape}" for i in manifest.inputs),
        f"quantization: {manifest.quantization}; "
        f"fused: {manifest.fused.file if manifest.fused else 'no'}",
        "members:",
    ]
    lines += [f"  {_member_line(member)}" for member in manifest.members]
    lines.append("files:")
    for relative in sorted(manifest.files):
        size = (ensemble.bundle / relative).stat().st_size
        lines.append(f"  {relative}  {size:,} bytes")
    lines.append(f"checksums: {len(manifest.files)} files verified (sha256)")
    lines.append(
        f"check rows: {checked} graphs give the stored probabilities on "
        f"{len(manifest.check_rows.texts)} texts"
    )
    lines.append(f"signature: {_signature(ensemble.signer, trust)}")
    typer.echo(printable("\n".join(lines), keep="\n"))  # the bundle's names are data: escaped


def _stacker_line(stacker) -> str:
    if stacker is None:
        return "stacker: no (export --combine stack)"
    scores = stacker.cv_macro_f1
    return (
        f"stacker: logistic regression on {stacker.rows} "
        f"{stacker.fit_on.replace('_', '-')} rows, "
        f"{stacker.folds}-fold cross-validated macro-F1 {scores['stack']:.4f} "
        f"(weighted vote {scores['weighted']:.4f})"
    )


def _signature(signer: str | None, trust: Path | None) -> str:
    if signer is not None:
        return f"verified, signed by the trusted key {signer[:16]} ({trust})"
    return "not checked (pass --trust PUB.pem to require one)"


def _member_line(member) -> str:
    key_config = ", ".join(f"{k}={member.config[k]}" for k in KEY_CONFIG if k in member.config)
    f1 = member.val_metrics.val_macro_f1
    parity = member.parity
    return (
        f"{member.id}  {member.kind}  [{key_config}]  "
        f"{'out-of-fold' if member.bag else 'val'} macro-F1 {'-' if f1 is None else f'{f1:.4f}'}"
        f"  weight {member.weight}  "
        f"parity max diff {parity.max_abs_diff:.1e} "
        f"agreement {parity.argmax_agreement:.2%} on {parity.rows} rows"
    )
