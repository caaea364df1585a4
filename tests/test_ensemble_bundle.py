"""read_manifest refuses bundles that are not bundles, too new, tampered with, or escaping."""

from __future__ import annotations

import json
import shutil

import pytest

from bundle_factory import bundle_dir, rewrite_manifest, tweet_preprocessor, tweet_rows  # noqa: F401 (fixtures)
from voxpop.data.errors import VoxpopError
from voxpop.ensemble.bundle import MANIFEST, SCHEMA_VERSION, read_manifest


@pytest.fixture
def bundle_copy(bundle_dir, tmp_path):
    return shutil.copytree(bundle_dir, tmp_path / "copy")


def test_valid_bundle_reads_from_dir_or_manifest_path(bundle_dir):
    manifest = read_manifest(bundle_dir)
    assert manifest.schema_version == SCHEMA_VERSION
    assert manifest.member_ids == ["m1", "m2", "m3"]
    assert [m.weight for m in manifest.members] == manifest.voting.weights == [3.0, 2.0, 1.0]
    assert read_manifest(bundle_dir / MANIFEST) == manifest
    # what the owner writes is what it reads: the file is the records' own serialisation
    assert (bundle_dir / MANIFEST).read_text() == manifest.to_json()


def test_not_a_bundle(tmp_path):
    with pytest.raises(VoxpopError, match=r"not an ensemble bundle \(no ensemble.json"):
        read_manifest(tmp_path)


def test_newer_and_older_schemas_are_refused(bundle_copy):
    rewrite_manifest(bundle_copy, schema_version=SCHEMA_VERSION + 1)
    with pytest.raises(
        VoxpopError,
        match=rf"schema_version {SCHEMA_VERSION + 1} is newer than "
        rf"this voxpop reads \({SCHEMA_VERSION}\); upgrade",
    ):
        read_manifest(bundle_copy)
    # schema 1 had no check rows: accepting it would let a tampered bundle drop them
    rewrite_manifest(bundle_copy, schema_version=1)
    with pytest.raises(
        VoxpopError,
        match=r"schema_version 1 is older than this voxpop reads "
        r"\(2\); export the bundle again",
    ):
        read_manifest(bundle_copy)


def test_changed_member_file_names_the_file(bundle_copy):
    with open(bundle_copy / "members" / "m2.onnx", "ab") as handle:
        handle.write(b"\0")
    with pytest.raises(VoxpopError, match=r"sha256 of 'members/m2.onnx' does not match"):
        read_manifest(bundle_copy)


def test_missing_file(bundle_copy):
    (bundle_copy / "fused.onnx").unlink()
    with pytest.raises(VoxpopError, match=r"file 'fused.onnx' listed in ensemble.json is missing"):
        read_manifest(bundle_copy)


@pytest.mark.parametrize("escape", ["../outside.onnx", "/etc/passwd", "members/../../outside.onnx"])
def test_member_path_escaping_the_bundle(bundle_copy, escape):
    (bundle_copy.parent / "outside.onnx").write_bytes(b"x")
    manifest = json.loads((bundle_copy / MANIFEST).read_text())
    manifest["members"][0]["file"] = escape
    manifest["files"][escape] = "0" * 64
    (bundle_copy / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(VoxpopError, match=f"file path '{escape}' points outside the bundle"):
        read_manifest(bundle_copy)


def test_symlink_leading_out_of_the_bundle(bundle_copy, tmp_path):
    target = tmp_path / "elsewhere.onnx"
    shutil.copy(bundle_copy / "members" / "m1.onnx", target)
    (bundle_copy / "members" / "m1.onnx").unlink()
    (bundle_copy / "members" / "m1.onnx").symlink_to(target)
    with pytest.raises(VoxpopError, match="'members/m1.onnx' points outside the bundle"):
        read_manifest(bundle_copy)


def test_member_file_not_listed_in_files(bundle_copy):
    manifest = json.loads((bundle_copy / MANIFEST).read_text())
    del manifest["files"]["members/m3.onnx"]
    (bundle_copy / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(VoxpopError, match="'members/m3.onnx' is used but not listed in 'files'"):
        read_manifest(bundle_copy)


def test_invalid_json_and_oversized_manifest(bundle_copy, monkeypatch):
    (bundle_copy / MANIFEST).write_text("{not json")
    with pytest.raises(VoxpopError, match="ensemble.json: not valid JSON"):
        read_manifest(bundle_copy)
    monkeypatch.setattr("voxpop.ensemble.bundle.MAX_MANIFEST_BYTES", 4)
    with pytest.raises(VoxpopError, match="larger than a manifest may be"):
        read_manifest(bundle_copy)
