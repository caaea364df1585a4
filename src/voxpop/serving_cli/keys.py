"""Keys for signed bundles: `voxpop keygen`, and the `--trust` option of predict, evaluate, info."""

from __future__ import annotations

from pathlib import Path

import typer

TRUST_HELP = (
    "Ed25519 public key (PEM) that must have signed the bundle (`voxpop export --sign`): "
    "an unsigned bundle, or one whose manifest changed after signing, is refused."
)


def keygen(
    private: Path = typer.Argument(..., help="Private key file to write (PEM, mode 600)."),
    public: Path = typer.Argument(
        None, help="Public key file to write (default: PRIVATE with .pub.pem instead of .pem)."
    ),
) -> None:
    """Make an Ed25519 key pair for signing bundles: sign with `voxpop export --sign PRIVATE`,
    check with `voxpop predict|evaluate|info --trust PUBLIC`. Keep the private key to yourself;
    give the public key to whoever receives your bundles.

    openssl makes the same keys: `openssl genpkey -algorithm ed25519 -out key.pem` and
    `openssl pkey -in key.pem -pubout -out key.pub.pem`.

    Example: voxpop keygen alice.pem   (writes alice.pem and alice.pub.pem)
    """
    from voxpop.ensemble.signing import write_key_pair

    public = public or private.with_name(private.name.removesuffix(".pem") + ".pub.pem")
    key = write_key_pair(private, public)
    typer.echo(f"wrote {private} (private: keep it secret) and {public} (public); key {key[:16]}")
