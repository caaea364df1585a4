"""The one reader and writer of an ensemble bundle's `ensemble.json` (and `ensemble.sig`).

A bundle may come from someone else. Before anything in it is used, `open_bundle` checks: the
manifest's signature (with `trust`: a public key), that the manifest parses into the typed
records of manifest.py (a schema this reader understands, every field typed and bounded), that
every file it uses is listed in `files` and stays inside the bundle, and that every listed file
matches its sha256. `Bundle.read` then hands out a file's bytes read once and verified again, so
that what ONNX Runtime or the preprocessor gets is exactly what was checked.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from voxpop.data.atomic import write_bytes
from voxpop.data.errors import VoxpopError
from voxpop.data.records import load_json, quoted
from voxpop.ensemble.manifest import SCHEMA_VERSION, Manifest

MANIFEST = "ensemble.json"
SIGNATURE = "ensemble.sig"
# A manifest is a few KB (check rows included); refusing huge ones keeps a hostile file from
# exhausting memory. One ONNX file cannot exceed protobuf's 2 GiB (and external data is refused).
MAX_MANIFEST_BYTES = 16 * 1024 * 1024
MAX_SIGNATURE_BYTES = 4096
MAX_FILE_BYTES = 2 * 1024**3


@dataclass(frozen=True)
class Bundle:
    """A verified bundle: its directory, its manifest, and who signed it (the trusted key's
    fingerprint when `trust` was given, else None)."""

    path: Path
    manifest: Manifest
    signer: str | None = None

    def file(self, relative: str) -> Path:
        """Absolute path of a file of the bundle, refused if it leads outside (e.g. a symlink)."""
        resolved = (self.path / PurePosixPath(relative)).resolve()
        if not resolved.is_relative_to(self.path.resolve()):
            raise VoxpopError(
                f"{self.path / MANIFEST}: file path {quoted(relative)} points outside the bundle"
            )
        return resolved

    def read(self, relative: str) -> bytes:
        """The bytes of a file listed in `files`, read once and checked against its sha256: pass
        these bytes on rather than opening the file again."""
        expected = self.manifest.files.get(relative)
        if expected is None:
            raise VoxpopError(
                f"{self.path / MANIFEST}: {quoted(relative)} is used but not listed in 'files'"
            )
        path = self.file(relative)
        try:
            with open(path, "rb") as handle:
                data = handle.read(MAX_FILE_BYTES + 1)
        except FileNotFoundError:
            raise _missing(self.path, relative) from None
        if len(data) > MAX_FILE_BYTES or hashlib.sha256(data).hexdigest() != expected:
            raise _mismatch(self.path, relative)
        return data


def open_bundle(path: str | Path, *, trust: str | Path | None = None) -> Bundle:
    """The verified bundle at `path` (its directory, or its ensemble.json).

    trust: a PEM public key; the bundle must then carry ensemble.sig, a signature by that key
    over the exact bytes of ensemble.json. Raises VoxpopError for a path that is not a bundle, a
    manifest that is not valid JSON, too large, of another schema_version or with a bad field
    (naming it), a missing or bad signature, a file path escaping the bundle, a used file that is
    not listed in `files`, a missing file, or a sha256 mismatch (naming the file).
    """
    bundle = Path(path)
    if bundle.name == MANIFEST and bundle.is_file():
        bundle = bundle.parent
    manifest_path = bundle / MANIFEST
    data = _read_manifest_bytes(bundle, manifest_path)
    signer = _check_signature(bundle, data, trust) if trust is not None else None
    manifest = _parse(data, source=str(manifest_path))
    checked = Bundle(path=bundle, manifest=manifest, signer=signer)
    for relative in manifest.used_files():
        if relative not in manifest.files:
            raise VoxpopError(
                f"{manifest_path}: {quoted(relative)} is used but not listed in 'files'"
            )
    for relative, expected in manifest.files.items():
        file = checked.file(relative)
        if not file.is_file():
            raise _missing(bundle, relative)
        if file.stat().st_size > MAX_FILE_BYTES or sha256_of(file) != expected:
            raise _mismatch(bundle, relative)
    return checked


def read_manifest(path: str | Path, *, trust: str | Path | None = None) -> Manifest:
    """The manifest of the verified bundle at `path` (see open_bundle)."""
    return open_bundle(path, trust=trust).manifest


def write_manifest(directory: Path, manifest: Manifest, *, sign_with=None) -> Manifest:
    """Write `manifest` as `directory`/ensemble.json with `files` set to the sha256 of every file
    now in `directory`, and, with `sign_with` (an Ed25519 private key), ensemble.sig. Returns
    the manifest written."""
    files = {
        p.relative_to(directory).as_posix(): sha256_of(p)
        for p in sorted(directory.rglob("*"))
        if p.is_file() and p.relative_to(directory).as_posix() not in (MANIFEST, SIGNATURE)
    }
    written = Manifest.model_validate({**manifest.model_dump(), "files": files})
    data = written.to_json().encode("utf-8")
    write_bytes(directory / MANIFEST, data)
    if sign_with is not None:
        from voxpop.ensemble.signing import sign

        write_bytes(directory / SIGNATURE, sign(data, sign_with))
    return written


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _read_manifest_bytes(bundle: Path, manifest_path: Path) -> bytes:
    if not manifest_path.is_file():
        raise VoxpopError(
            f"{bundle}: not an ensemble bundle (no {MANIFEST}; make one with voxpop export)"
        )
    with open(manifest_path, "rb") as handle:
        data = handle.read(MAX_MANIFEST_BYTES + 1)
    if len(data) > MAX_MANIFEST_BYTES:
        raise VoxpopError(
            f"{manifest_path}: {manifest_path.stat().st_size} bytes is larger than "
            f"a manifest may be ({MAX_MANIFEST_BYTES})"
        )
    return data


def _check_signature(bundle: Path, data: bytes, trust: str | Path) -> str:
    from voxpop.ensemble.signing import fingerprint, load_public_key, verify

    key = load_public_key(trust)
    signature_path = bundle / SIGNATURE
    if not signature_path.is_file():
        raise VoxpopError(
            f"{bundle}: not signed (no {SIGNATURE}), but --trust {trust} asks for a "
            f"bundle signed by key {fingerprint(key)[:16]}"
        )
    with open(signature_path, "rb") as handle:
        signature = handle.read(MAX_SIGNATURE_BYTES + 1)
    if len(signature) > MAX_SIGNATURE_BYTES:
        raise VoxpopError(f"{signature_path}: larger than a signature may be")
    return verify(data, signature, key, source=str(signature_path))


def _parse(data: bytes, *, source: str) -> Manifest:
    value = load_json(data, source=source)
    if not isinstance(value, dict):
        raise VoxpopError(f"{source}: expected a JSON object at the top level")
    version = value.get("schema_version")
    if isinstance(version, int) and not isinstance(version, bool):
        if version > SCHEMA_VERSION:
            raise VoxpopError(
                f"{source}: schema_version {version} is newer than this voxpop "
                f"reads ({SCHEMA_VERSION}); upgrade voxpop"
            )
        if version < SCHEMA_VERSION:
            raise VoxpopError(
                f"{source}: schema_version {version} is older than this voxpop reads "
                f"({SCHEMA_VERSION}); export the bundle again with this voxpop"
            )
    return Manifest.from_value(value, source=source)


def _missing(bundle: Path, relative: str) -> VoxpopError:
    return VoxpopError(f"{bundle}: file {quoted(relative)} listed in {MANIFEST} is missing")


def _mismatch(bundle: Path, relative: str) -> VoxpopError:
    return VoxpopError(
        f"{bundle}: sha256 of {quoted(relative)} does not match {MANIFEST} "
        "(the file was changed or corrupted; re-export the bundle)"
    )
