"""Ed25519 signatures over a bundle's manifest (`cryptography`; imported only when used).

The manifest lists the sha256 of every other file, so one signature over its exact bytes covers
the whole bundle: `voxpop export --sign KEY.pem` writes it, `--trust PUB.pem` refuses a bundle
that is unsigned or whose manifest changed after signing, even with new, matching checksums.
A signature says who made the bundle, not that its models are any good.

Keys are PEM files: PKCS#8 private keys and SubjectPublicKeyInfo public keys, as
`voxpop keygen` writes them and as `openssl genpkey -algorithm ed25519 -out key.pem` and
`openssl pkey -in key.pem -pubout -out key.pub.pem` do.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from pathlib import Path
from typing import Annotated, Literal

from pydantic import StringConstraints

from voxpop.data.atomic import write_bytes
from voxpop.data.errors import VoxpopError, first_line
from voxpop.data.records import Record

# A PEM key is a few hundred bytes; anything far larger is not a key.
MAX_KEY_BYTES = 64 * 1024


class Signature(Record):
    """The signature file: algorithm, the signing key's fingerprint, the base64 signature."""

    algorithm: Literal["ed25519"]
    key: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
    signature: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9+/]{86}==$")]


def load_private_key(path: str | Path):
    """The Ed25519 private key in the PEM file `path`; VoxpopError naming what is wrong."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    data = _read_key(path)
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as err:
        raise VoxpopError(
            f"{path}: not an unencrypted PEM private key ({first_line(err)})"
        ) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise VoxpopError(f"{path}: not an Ed25519 key (make one with `voxpop keygen`)")
    return key


def load_public_key(path: str | Path):
    """The Ed25519 public key in the PEM file `path` (a private key file gives its public key)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    data = _read_key(path)
    if b"PRIVATE KEY" in data:
        return load_private_key(path).public_key()
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as err:
        raise VoxpopError(f"{path}: not a PEM public key ({first_line(err)})") from None
    if not isinstance(key, Ed25519PublicKey):
        raise VoxpopError(f"{path}: not an Ed25519 public key")
    return key


def fingerprint(public_key) -> str:
    """Hex sha256 of the raw 32-byte public key: names the key in signatures and in `info`."""
    from cryptography.hazmat.primitives import serialization

    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


def sign(data: bytes, private_key) -> bytes:
    """The signature file's bytes for `data` (the manifest's exact bytes)."""
    signature = Signature(
        algorithm="ed25519",
        key=fingerprint(private_key.public_key()),
        signature=base64.b64encode(private_key.sign(data)).decode("ascii"),
    )
    return signature.to_json().encode("utf-8")


def verify(data: bytes, signature_file: bytes, public_key, *, source: str) -> str:
    """The key fingerprint when `signature_file` (read from `source`) signs `data` with
    `public_key`; VoxpopError otherwise."""
    from cryptography.exceptions import InvalidSignature

    signature = Signature.parse(signature_file, source=source)
    trusted = fingerprint(public_key)
    try:
        public_key.verify(base64.b64decode(signature.signature, validate=True), data)
    except (InvalidSignature, binascii.Error):
        why = (
            "the manifest was changed after it was signed"
            if signature.key == trusted
            else f"signed by another key, {signature.key[:16]}"
        )
        raise VoxpopError(
            f"{source}: the signature does not match the manifest under the trusted "
            f"key {trusted[:16]} ({why})"
        ) from None
    return trusted


def write_key_pair(private_path: Path, public_path: Path) -> str:
    """A new Ed25519 key pair as PEM files (the private one readable by its owner only); returns
    the public key's fingerprint."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    for path in (private_path, public_path):
        if path.exists():
            raise VoxpopError(f"{path}: already exists (keys are never overwritten)")
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    try:
        descriptor = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(private)
        write_bytes(public_path, public)
    except OSError as err:
        raise VoxpopError(f"{err.filename}: cannot write the key ({err.strerror})") from None
    return fingerprint(key.public_key())


def _read_key(path: str | Path) -> bytes:
    path = Path(path)
    try:
        if path.stat().st_size > MAX_KEY_BYTES:
            raise VoxpopError(f"{path}: {path.stat().st_size} bytes is too large for a key file")
        return path.read_bytes()
    except FileNotFoundError:
        raise VoxpopError(f"{path}: key file not found") from None
    except IsADirectoryError:
        raise VoxpopError(f"{path}: is a directory, not a key file") from None
    except PermissionError:
        raise VoxpopError(f"{path}: cannot read the key file (permission denied)") from None
