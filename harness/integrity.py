"""Content digests and manifests: how the harness verifies a file it wrote before it trusts it.

A run directory, a cache entry or a checkpoint may be truncated, edited or planted. Whatever the
harness skips work for, or deserialises, it first checks against a digest it recorded when it
wrote the file. Digests are XXH3-128 (the ``xxhash`` package): a non-cryptographic hash that reads
at memory speed (several GB/s), used to detect corruption and stale files. It does not make a
directory that an attacker can write safe to *execute*; that is why nothing here is ever loaded
with pickle (weights load with ``torch.load(weights_only=True)``, arrays with
``allow_pickle=False``).

A manifest is a JSON object ``{relative path: {"bytes": size, "xxh3_128": hex digest}}`` over the
regular files of a directory; links are refused, never followed.
"""

from __future__ import annotations

import os
from pathlib import Path

import xxhash

#: Bytes read per call when hashing a file.
CHUNK = 8 << 20


class IntegrityError(Exception):
    """A file does not match the digest recorded when the harness wrote it; the message names it."""


def file_digest(path: str | os.PathLike) -> str:
    """XXH3-128 hex digest (32 hex digits) of a regular file's whole content.

    Raises:
        IntegrityError: ``path`` is a symbolic link or not a regular file.
        OSError: the file cannot be read.
    """
    path = Path(path)
    if path.is_symlink() or not path.is_file():
        raise IntegrityError(f"{path}: not a regular file (links are not followed)")
    h = xxhash.xxh3_128()
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def bytes_digest(data: bytes | memoryview) -> str:
    """XXH3-128 hex digest of an in-memory buffer (e.g. ``array.data`` of a contiguous array)."""
    return xxhash.xxh3_128_hexdigest(data)


def manifest(root: str | os.PathLike, files: list[str] | None = None) -> dict[str, dict]:
    """Digest every regular file under ``root`` (or just ``files``, relative to ``root``).

    Returns:
        ``{relative posix path: {"bytes": int, "xxh3_128": str}}`` sorted by path.

    Raises:
        IntegrityError: a symbolic link anywhere under ``root`` (or among ``files``).
    """
    root = Path(root)
    if files is None:
        files = []
        for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
            for name in dirnames + filenames:
                p = Path(dirpath) / name
                if p.is_symlink():
                    raise IntegrityError(f"{p}: symbolic link inside {root}; the harness does not follow links")
            files += [(Path(dirpath) / f).relative_to(root).as_posix() for f in filenames]
    out = {}
    for rel in sorted(files):
        p = root / rel
        digest = file_digest(p)  # refuses links and non-files
        out[rel] = {"bytes": p.stat().st_size, "xxh3_128": digest}
    return out


def verify(root: str | os.PathLike, recorded: dict[str, dict]) -> None:
    """Check the files under ``root`` against a :func:`manifest` recorded earlier.

    Raises:
        IntegrityError: a listed file is missing, a link, of another size or of another digest
            (the first such file is named, with what differs).
    """
    root = Path(root)
    if not isinstance(recorded, dict) or not recorded:
        raise IntegrityError(f"{root}: no valid manifest recorded")
    for rel, want in recorded.items():
        p = root / rel
        if not isinstance(want, dict) or ".." in Path(rel).parts or Path(rel).is_absolute():
            raise IntegrityError(f"{root}: malformed manifest entry {rel!r}")
        if p.is_symlink() or not p.is_file():
            raise IntegrityError(f"{p}: missing or not a regular file")
        size = p.stat().st_size
        if size != want.get("bytes"):
            raise IntegrityError(f"{p}: {size:,} bytes, {want.get('bytes')} recorded (truncated or changed)")
        if file_digest(p) != want.get("xxh3_128"):
            raise IntegrityError(f"{p}: content differs from what the harness wrote (digest mismatch)")
