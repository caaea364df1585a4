"""`voxpop info`: what an ensemble bundle holds, with every checksum verified."""

from __future__ import annotations

from pathlib import Path

import typer

# config keys worth a glance when comparing members (the rest is in ensemble.json)
KEY_CONFIG = ("units", "filters", "num_heads", "embed_dim", "encoder", "loss", "learning_rate")


def info(
    bundle: Path = typer.Argument(..., help="Ensemble bundle directory written by `voxpop export`."),
) -> None:
    """Show a bundle's labels, members, voting, inputs and files, after verifying every sha256.

    A bundle whose files do not match ensemble.json is refused with a one-line error (exit 2).

    Example: voxpop info bundle
    """
    from voxpop.data.terminal import printable
    from voxpop.ensemble.bundle import member_path, read_manifest

    manifest = read_manifest(bundle)
    voting = manifest["voting"]
    lines = [
        f"bundle: {bundle} (schema {manifest['schema_version']}, voxpop {manifest.get('voxpop_version')})",
        f"labels: {', '.join(manifest['labels'])}",
        f"voting: default {voting['default']}, weights {voting['weights']}",
        "inputs: " + "; ".join(f"{i['name']} {i['dtype']} {i['shape']}" for i in manifest["inputs"]),
        f"quantization: {manifest.get('quantization', 'none')}; "
        f"fused: {manifest['fused']['file'] if manifest.get('fused') else 'no'}",
        "members:",
    ]
    lines += [f"  {_member_line(member)}" for member in manifest["members"]]
    lines.append("files:")
    for relative in sorted(manifest["files"]):
        size = member_path(bundle, relative).stat().st_size
        lines.append(f"  {relative}  {size:,} bytes")
    lines.append(f"checksums: {len(manifest['files'])} files verified (sha256)")
    typer.echo(printable("\n".join(lines), keep="\n"))  # the bundle's names are data: escaped


def _member_line(member: dict) -> str:
    config = member.get("config", {})
    key_config = ", ".join(f"{k}={config[k]}" for k in KEY_CONFIG if k in config)
    parity = member.get("parity", {})
    f1 = member.get("val_metrics", {}).get("val_macro_f1")
    return (
        f"{member['id']}  {member['family']}  [{key_config}]  "
        f"val macro-F1 {f1:.4f}  weight {member.get('weight')}  "
        f"parity max diff {parity.get('max_abs_diff', float('nan')):.1e} "
        f"agreement {parity.get('argmax_agreement', float('nan')):.2%} on {parity.get('rows')} rows"
    )
