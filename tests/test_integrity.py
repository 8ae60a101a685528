"""harness.integrity: digests and manifests detect truncation, edits and links."""

import os

import pytest

from harness.integrity import IntegrityError, file_digest, manifest, verify


def test_manifest_verifies_and_detects_changes(tmp_path):
    (tmp_path / "a.npy").write_bytes(b"x" * 1000)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.json").write_text("{}")
    rec = manifest(tmp_path)
    assert sorted(rec) == ["a.npy", "sub/b.json"]
    verify(tmp_path, rec)
    # same size, one byte in the middle changed
    (tmp_path / "a.npy").write_bytes(b"x" * 500 + b"y" + b"x" * 499)
    with pytest.raises(IntegrityError, match="a.npy: content differs"):
        verify(tmp_path, rec)
    (tmp_path / "a.npy").write_bytes(b"x" * 10)
    with pytest.raises(IntegrityError, match="truncated"):
        verify(tmp_path, rec)
    (tmp_path / "a.npy").unlink()
    with pytest.raises(IntegrityError, match="missing"):
        verify(tmp_path, rec)


def test_links_are_refused(tmp_path):
    outside = tmp_path / "outside.txt"
    outside.write_text("secret")
    root = tmp_path / "run"
    root.mkdir()
    os.symlink(outside, root / "link.txt")
    with pytest.raises(IntegrityError, match="symbolic link"):
        manifest(root)
    with pytest.raises(IntegrityError, match="not a regular file"):
        file_digest(root / "link.txt")


def test_malformed_manifest_entries(tmp_path):
    with pytest.raises(IntegrityError, match="no valid manifest"):
        verify(tmp_path, {})
    with pytest.raises(IntegrityError, match="malformed"):
        verify(tmp_path, {"../x": {"bytes": 1, "xxh3_128": "0"}})
