"""Cached training data: parse the training file once, then memory-map it.

:func:`load_training` reads a training file with :func:`~harness.data.readers.read_table` the
first time and stores the result as ``.npy`` files:

* ``codes.npy``: ``(N, W) uint8`` nucleotide codes (W = the longest kept sequence, PAD beyond);
* ``lengths.npy``: ``(N,) int32``; ``y.npy``: ``(N,) float32``; ``line.npy``: ``(N,) int64``
  1-based line numbers of the kept rows;
* ``meta.json``: the source file's path, size and modification time, ``skip_bad_rows``, the
  arrays' shapes and checksums, and the dropped bad rows (counts and examples).

Later calls open the arrays with ``np.load(mmap_mode="r")`` (read-only, paged in on use) in well
under a second. One-hot encoding happens per batch downstream, never for the whole set.

An entry lives in ``<cache_dir>/<path-hash>-<state-hash>/`` where the state hash covers the
resolved path, size, ``st_mtime_ns``, ``skip_bad_rows`` and the cache format; ``cache_dir`` is
``$HARNESS_CACHE/tables`` (see :func:`harness.data.simulate.cache_root`) unless given. Entries are
written to a temporary directory that is renamed into place, so readers never see half an entry.
An entry that fails its checks (missing or truncated files, wrong shapes, a checksum mismatch,
unreadable metadata) is deleted and rebuilt; older entries for the same path are removed when a
new one is written.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import time
import warnings
import zlib
from pathlib import Path

import numpy as np

from .readers import BadRows, read_table
from .simulate import cache_root
from .table import SeqTable

#: Bump when the stored layout or the reader's output changes: old entries are then ignored.
FORMAT = 1
ARRAYS = {"codes": np.uint8, "lengths": np.int32, "y": np.float32, "line": np.int64}
_SAMPLE = 1 << 20  # bytes of ``codes`` checksummed at each end (the whole array would cost seconds)


def default_cache_dir() -> Path:
    """``<cache_root()>/tables``."""
    return cache_root() / "tables"


def _path_hash(path: Path, skip_bad_rows: bool) -> str:
    return hashlib.sha256(f"{path}|{int(skip_bad_rows)}".encode()).hexdigest()[:16]


def _entry_name(path: Path, stat: os.stat_result, skip_bad_rows: bool) -> str:
    state = f"{FORMAT}|{path}|{stat.st_size}|{stat.st_mtime_ns}|{int(skip_bad_rows)}"
    return f"{_path_hash(path, skip_bad_rows)}-{hashlib.sha256(state.encode()).hexdigest()[:16]}"


def _checksum(name: str, arr: np.ndarray) -> int:
    data = np.ascontiguousarray(arr).reshape(-1).view(np.uint8)
    if name == "codes" and len(data) > 2 * _SAMPLE:
        return zlib.crc32(data[-_SAMPLE:], zlib.crc32(data[:_SAMPLE]))
    return zlib.crc32(data)


def load_training(
    path: str | os.PathLike,
    skip_bad_rows: bool = False,
    cache_dir: str | os.PathLike | None = None,
    bad: BadRows | None = None,
) -> SeqTable:
    """Load a training file (``sequence<TAB>expression``) through the cache.

    Args:
        path: the training file.
        skip_bad_rows: drop bad rows and count them in ``bad`` (as :func:`read_table`).
        cache_dir: where entries live (default :func:`default_cache_dir`).
        bad: receives the dropped rows' counts and examples (also in ``table.meta["bad_rows"]``),
            from the cache as from a fresh parse.

    Returns:
        A :class:`SeqTable` equal to ``read_table(path, skip_bad_rows)``: codes, lengths, ``y`` and
        ``meta["line"]`` are read-only memory maps of the cache files.

    Raises:
        DataError: as :func:`read_table` (a file with bad rows is never cached unless
            ``skip_bad_rows``).
    """
    path = Path(path)
    bad = bad if bad is not None else BadRows()
    try:
        resolved = path.resolve(strict=True)
        before = resolved.stat()
    except OSError:
        return read_table(path, skip_bad_rows=skip_bad_rows, bad=bad)  # raises "no such file"
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    entry = root / _entry_name(resolved, before, skip_bad_rows)

    table = _open_entry(entry, path, resolved, before, skip_bad_rows, bad)
    if table is not None:
        return table
    if entry.exists():
        shutil.rmtree(entry, ignore_errors=True)  # stale or corrupt: never trusted

    table = read_table(path, skip_bad_rows=skip_bad_rows, bad=bad)
    after = resolved.stat()
    if (after.st_size, after.st_mtime_ns) != (before.st_size, before.st_mtime_ns):
        return table  # the file changed while it was read: do not cache this parse
    try:
        _write_entry(entry, table, resolved, before, skip_bad_rows, bad)
    except OSError as exc:
        warnings.warn(f"could not cache {path} in {root}: {exc}", RuntimeWarning, stacklevel=2)
        return table
    _remove_older(root, resolved, skip_bad_rows, keep=entry.name)
    cached = _open_entry(entry, path, resolved, before, skip_bad_rows, BadRows())
    if cached is None:  # another process replaced it in between, or the disk lied: use the parse
        return table
    cached.meta["bad_rows"] = bad
    return cached


def _write_entry(entry: Path, table: SeqTable, resolved: Path, stat: os.stat_result, skip_bad_rows: bool, bad: BadRows) -> None:
    entry.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{entry.name}.", suffix=".tmp", dir=entry.parent))
    try:
        arrays = {"codes": table.codes, "lengths": table.lengths, "y": table.y, "line": table.meta["line"]}
        meta = {
            "format": FORMAT,
            "source": str(resolved),
            "size": stat.st_size,
            "mtime_ns": stat.st_mtime_ns,
            "skip_bad_rows": bool(skip_bad_rows),
            "rows": len(table),
            "arrays": {},
            "bad_rows": {"counts": dict(bad.counts), "examples": list(bad.examples)},
        }
        for name, dtype in ARRAYS.items():
            arr = np.ascontiguousarray(arrays[name], dtype=dtype)
            with open(tmp / f"{name}.npy", "wb") as fh:
                np.save(fh, arr, allow_pickle=False)
                fh.flush()
                os.fsync(fh.fileno())
            meta["arrays"][name] = {"shape": list(arr.shape), "dtype": np.dtype(dtype).str, "crc32": _checksum(name, arr)}
        with open(tmp / "meta.json", "w", encoding="utf-8") as fh:
            json.dump(meta, fh, indent=2)
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.rename(tmp, entry)
        except OSError:
            if not entry.exists():
                raise
            # another process wrote the same entry first: keep theirs
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _open_entry(entry: Path, path: Path, resolved: Path, stat: os.stat_result, skip_bad_rows: bool, bad: BadRows) -> SeqTable | None:
    """The cached table, or None when the entry is missing, stale or fails a check."""
    if not entry.is_dir():
        return None
    try:
        with open(entry / "meta.json", encoding="utf-8") as fh:
            meta = json.load(fh)
        if (meta.get("format"), meta.get("source"), meta.get("size"), meta.get("mtime_ns"), meta.get("skip_bad_rows")) != (
            FORMAT, str(resolved), stat.st_size, stat.st_mtime_ns, bool(skip_bad_rows)
        ):
            return None
        arrays = {}
        for name, dtype in ARRAYS.items():
            info = meta["arrays"][name]
            arr = np.load(entry / f"{name}.npy", mmap_mode="r", allow_pickle=False)
            if arr.dtype != np.dtype(dtype) or list(arr.shape) != info["shape"] or _checksum(name, arr) != info["crc32"]:
                return None
            arrays[name] = arr
        rows = meta["rows"]
        if any(len(a) != rows for a in arrays.values()) or arrays["codes"].ndim != 2:
            return None
        counts = {str(k): int(v) for k, v in meta["bad_rows"]["counts"].items()}
        examples = [str(e) for e in meta["bad_rows"]["examples"]]
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None  # unreadable, truncated or malformed: rebuild
    bad.counts.update(counts)
    bad.examples.extend(examples[: max(0, 5 - len(bad.examples))])
    table = SeqTable(arrays["codes"], arrays["lengths"], arrays["y"], str(path))
    table.meta["line"] = arrays["line"]
    table.meta["bad_rows"] = bad
    table.meta["cache"] = str(entry)
    return table


def _remove_older(root: Path, resolved: Path, skip_bad_rows: bool, keep: str) -> None:
    """Delete other entries (older versions of the file) for the same path and flag."""
    prefix = _path_hash(resolved, skip_bad_rows) + "-"
    for other in root.glob(prefix + "*"):
        if other.name != keep and other.is_dir():
            with contextlib.suppress(OSError):
                shutil.rmtree(other)
    # temporary directories left by interrupted writers (an hour is far beyond any write)
    for tmp in root.glob(f".{prefix}*.tmp"):
        with contextlib.suppress(OSError):
            if time.time() - tmp.stat().st_mtime > 3600:
                shutil.rmtree(tmp)
