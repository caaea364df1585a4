"""Reading and verifying an ensemble bundle's manifest (`BUNDLE/ensemble.json`).

A bundle may come from someone else: before anything in it is loaded, the manifest must parse,
be a schema this reader understands, list only files inside the bundle, and every listed file must
match its sha256.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path, PurePosixPath

from voxpop.data.errors import VoxpopError

MANIFEST = "ensemble.json"
SCHEMA_VERSION = 1
# A manifest is a few KB; refusing huge ones keeps a hostile file from exhausting memory.
MAX_MANIFEST_BYTES = 16 * 1024 * 1024
_REQUIRED_KEYS = ("schema_version", "labels", "members", "preprocess", "files")


def read_manifest(path: str | Path) -> dict:
    """The verified manifest of the bundle directory `path` (or of its ensemble.json).

    Raises VoxpopError for a path that is not a bundle, a manifest that is not valid JSON or too
    large, a schema_version newer than SCHEMA_VERSION, a file path escaping the bundle, a file
    that is missing or not listed in `files`, or a sha256 mismatch (naming the file).
    """
    bundle = Path(path)
    if bundle.name == MANIFEST and bundle.is_file():
        bundle = bundle.parent
    manifest_path = bundle / MANIFEST
    manifest = _load_json(bundle, manifest_path)
    _check_schema(manifest, manifest_path)
    for relative in _referenced_files(manifest):
        if relative not in manifest["files"]:
            raise VoxpopError(f"{manifest_path}: '{relative}' is used but not listed in 'files'")
    for relative, expected in manifest["files"].items():
        _verify_file(bundle, relative, expected)
    return manifest


def member_path(bundle: str | Path, relative: str) -> Path:
    """Absolute path of a bundle file named in a (verified) manifest."""
    return _inside(Path(bundle), relative)


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _load_json(bundle: Path, manifest_path: Path) -> dict:
    if not manifest_path.is_file():
        raise VoxpopError(
            f"{bundle}: not an ensemble bundle (no {MANIFEST}; make one with voxpop export)"
        )
    size = manifest_path.stat().st_size
    if size > MAX_MANIFEST_BYTES:
        raise VoxpopError(
            f"{manifest_path}: {size} bytes is larger than a manifest may be ({MAX_MANIFEST_BYTES})"
        )
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise VoxpopError(f"{manifest_path}: not valid JSON ({err})") from None
    if not isinstance(manifest, dict):
        raise VoxpopError(f"{manifest_path}: expected a JSON object at the top level")
    return manifest


def _check_schema(manifest: dict, manifest_path: Path) -> None:
    missing = [key for key in _REQUIRED_KEYS if key not in manifest]
    if missing:
        raise VoxpopError(f"{manifest_path}: missing key(s) {', '.join(missing)}")
    version = manifest["schema_version"]
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise VoxpopError(f"{manifest_path}: schema_version must be a positive integer, got {version!r}")
    if version > SCHEMA_VERSION:
        raise VoxpopError(
            f"{manifest_path}: schema_version {version} is newer than this voxpop reads "
            f"({SCHEMA_VERSION}); upgrade voxpop"
        )
    if not isinstance(manifest["files"], dict):
        raise VoxpopError(f"{manifest_path}: 'files' must map relative paths to sha256 strings")
    if not isinstance(manifest["members"], list) or not manifest["members"]:
        raise VoxpopError(f"{manifest_path}: 'members' must be a non-empty list")
    ids = [member.get("id") if isinstance(member, dict) else None for member in manifest["members"]]
    if None in ids or len(set(ids)) != len(ids):
        raise VoxpopError(f"{manifest_path}: every member needs a unique 'id' (got {ids})")


def _referenced_files(manifest: dict) -> list[str]:
    files = [manifest["preprocess"]] + [member.get("file") for member in manifest["members"]]
    if manifest.get("fused"):
        files.append(manifest["fused"].get("file"))
    return [str(name) for name in files]


def _inside(bundle: Path, relative: str) -> Path:
    pure = PurePosixPath(relative)
    if pure.is_absolute() or ".." in pure.parts or "\\" in relative or not relative.strip():
        raise VoxpopError(f"{bundle / MANIFEST}: file path '{relative}' points outside the bundle")
    resolved = (bundle / pure).resolve()
    if not resolved.is_relative_to(bundle.resolve()):  # e.g. a symlink leading out
        raise VoxpopError(f"{bundle / MANIFEST}: file path '{relative}' points outside the bundle")
    return resolved


def _verify_file(bundle: Path, relative: str, expected) -> None:
    path = _inside(bundle, relative)
    if not path.is_file():
        raise VoxpopError(f"{bundle}: file '{relative}' listed in {MANIFEST} is missing")
    if sha256_of(path) != str(expected).lower():
        raise VoxpopError(
            f"{bundle}: sha256 of '{relative}' does not match {MANIFEST} "
            "(the file was changed or corrupted; re-export the bundle)"
        )
