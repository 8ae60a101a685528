"""Cached training data: parse the training file once, then memory-map it.

:func:`load_training` reads a training file with :func:`~harness.data.readers.read_table` the
first time and stores the result as ``.npy`` files:

* ``codes.npy``: ``(N, W) uint8`` nucleotide codes (W = the longest kept sequence, PAD beyond);
* ``lengths.npy``: ``(N,) int32``; ``y.npy``: ``(N,) float32``; ``line.npy``: ``(N,) int64``
  1-based line numbers of the kept rows;
* ``meta.json``: the source file's path, size and XXH3-128 digest, ``skip_bad_rows``,
  ``max_length``, the arrays' shapes, the XXH3-128 manifest of the four ``.npy`` files
  (:func:`harness.integrity.manifest`), the dropped bad rows (counts and examples) and the
  expression outliers (:func:`~harness.data.readers.outliers`); ``meta.json`` carries a digest
  of its own content too.

What is trusted, and what is checked on every call:

* the source file is digested in full (XXH3-128, :func:`harness.integrity.file_digest`) and the
  digest is part of the entry's name, so any change of content, including a same-size edit that
  keeps the modification time, selects another entry. Cost: 0.05 s for the 802 MB 6.7M-row file
  when the OS has it in memory, a full read of the file otherwise (see ``benchmarks/RESULTS.md``);
* the cached arrays are verified in full against the manifest (every byte of every ``.npy``
  file) before they are memory-mapped, and ``meta.json`` against its own digest; an entry that
  fails (missing or truncated files, other bytes, unreadable or edited metadata) is deleted and
  rebuilt from the source with a ``RuntimeWarning`` naming the problem;
* not detected: a cache file changed *after* verification while this process holds it mapped.
  The digests detect corruption and stale entries; they do not make a cache directory that
  others can write safe (see :mod:`harness.integrity`). Arrays load with ``allow_pickle=False``.

Later calls open the arrays with ``np.load(mmap_mode="r")`` (read-only, paged in on use).
One-hot encoding happens per batch downstream, never for the whole set.

An entry lives in ``<cache_dir>/<path-hash>-<state-hash>/``: the path hash covers the resolved
path, ``skip_bad_rows`` and ``max_length``; the state hash adds the source digest and the cache
format. ``cache_dir`` is ``$HARNESS_CACHE/tables`` (see :func:`harness.data.simulate.cache_root`)
unless given. Entries are written to a temporary directory that is renamed into place, so
readers never see half an entry; older entries for the same path are removed when a new one is
written. A gzip-compressed source is keyed on its compressed bytes.

Every table returned passes :func:`check_training_table` (at least 2 rows, a non-constant
target): a training table must be split into folds and fitted.
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
from pathlib import Path

import numpy as np

from ..integrity import IntegrityError, bytes_digest, file_digest, manifest, verify
from .readers import MAX_LENGTH, BadRows, DataError, read_table, warn_outliers
from .simulate import cache_root
from .table import SeqTable

#: Bump when the stored layout or the reader's output changes: old entries are then ignored.
FORMAT = 2
ARRAYS = {"codes": np.uint8, "lengths": np.int32, "y": np.float32, "line": np.int64}
_META_DIGEST = "meta_xxh3_128"


def default_cache_dir() -> Path:
    """``<cache_root()>/tables``."""
    return cache_root() / "tables"


def check_training_table(table: SeqTable, path: str | os.PathLike) -> None:
    """Refuse a table that cannot be split and fitted: fewer than 2 rows, or one target value.

    Args:
        table: the training table (``y`` not None).
        path: the training file, for the message.

    Raises:
        DataError: ``"<path>: a training file needs at least 2 rows ..."`` or ``"<path>: every
            training row has expression <v> ..."`` (a constant target has no Pearson r).
    """
    n = len(table)
    bad = table.meta.get("bad_rows")
    skipped = f" ({bad.total} bad rows skipped)" if isinstance(bad, BadRows) and bad.total else ""
    if n < 2:
        raise DataError(f"{path}: a training file needs at least 2 rows to be split into folds and fitted; "
                        f"it has {n}{skipped}")
    y = np.asarray(table.y)
    low, high = y.min(), y.max()
    if low == high:
        raise DataError(f"{path}: every training row ({n:,}{skipped}) has expression {float(low):g}; a constant "
                        "target cannot be fitted or scored (Pearson r is undefined)")


def _path_hash(path: Path, skip_bad_rows: bool, max_length: int) -> str:
    return hashlib.sha256(f"{path}|{int(skip_bad_rows)}|{max_length}".encode()).hexdigest()[:16]


def _entry_name(path: Path, digest: str, skip_bad_rows: bool, max_length: int) -> str:
    state = f"{FORMAT}|{path}|{digest}|{int(skip_bad_rows)}|{max_length}"
    return f"{_path_hash(path, skip_bad_rows, max_length)}-{hashlib.sha256(state.encode()).hexdigest()[:16]}"


def _meta_digest(meta: dict) -> str:
    body = {k: v for k, v in meta.items() if k != _META_DIGEST}
    return bytes_digest(json.dumps(body, sort_keys=True).encode())


def load_training(
    path: str | os.PathLike,
    skip_bad_rows: bool = False,
    cache_dir: str | os.PathLike | None = None,
    bad: BadRows | None = None,
    max_length: int = MAX_LENGTH,
) -> SeqTable:
    """Load a training file (``sequence<TAB>expression``, plain or gzip) through the cache.

    Args:
        path: the training file.
        skip_bad_rows: drop bad rows and count them in ``bad`` (as :func:`read_table`).
        cache_dir: where entries live (default :func:`default_cache_dir`).
        bad: receives the dropped rows' counts and examples (also in ``table.meta["bad_rows"]``),
            from the cache as from a fresh parse.
        max_length: longest sequence accepted in nt (as :func:`read_table`; part of the key).

    Returns:
        A :class:`SeqTable` equal to ``read_table(path, skip_bad_rows, max_length=max_length)``:
        codes, lengths, ``y`` and ``meta["line"]`` are read-only memory maps of the cache files.

    Raises:
        DataError: as :func:`read_table` (a file with bad rows is never cached unless
            ``skip_bad_rows``), and as :func:`check_training_table` (fewer than 2 rows, constant
            target).

    Warns:
        DataWarning: expression outliers (from the cache as from a fresh parse).
        RuntimeWarning: a cache entry failed verification and is rebuilt, or the cache cannot be
            written (the parsed table is used).
    """
    path = Path(path)
    bad = bad if bad is not None else BadRows()
    try:
        resolved = path.resolve(strict=True)
        digest = file_digest(resolved)
    except (OSError, IntegrityError):
        table = read_table(path, skip_bad_rows=skip_bad_rows, bad=bad, max_length=max_length)  # raises "no such file"
        check_training_table(table, path)
        return table
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    entry = root / _entry_name(resolved, digest, skip_bad_rows, max_length)

    table, problem = _open_entry(entry, path, resolved, digest, skip_bad_rows, max_length, bad)
    if table is not None:
        check_training_table(table, path)
        warn_outliers(table.meta["outliers"], stacklevel=2)
        return table
    if problem is not None:
        warnings.warn(f"{path}: cached copy failed verification ({problem}); rebuilding it from the file",
                      RuntimeWarning, stacklevel=2)
    if entry.exists():
        shutil.rmtree(entry, ignore_errors=True)  # stale or corrupt: never trusted

    table = read_table(path, skip_bad_rows=skip_bad_rows, bad=bad, max_length=max_length)
    check_training_table(table, path)
    try:
        unchanged = file_digest(resolved) == digest
    except (OSError, IntegrityError):
        unchanged = False
    if not unchanged:
        return table  # the file changed while it was read: do not cache this parse
    try:
        _write_entry(entry, table, resolved, digest, skip_bad_rows, max_length, bad)
    except OSError as exc:
        warnings.warn(f"could not cache {path} in {root}: {exc}", RuntimeWarning, stacklevel=2)
        return table
    _remove_older(root, resolved, skip_bad_rows, max_length, keep=entry.name)
    cached, _ = _open_entry(entry, path, resolved, digest, skip_bad_rows, max_length, BadRows())
    if cached is None:  # another process replaced it in between, or the disk lied: use the parse
        return table
    cached.meta["bad_rows"] = bad
    return cached


def _write_entry(entry: Path, table: SeqTable, resolved: Path, digest: str, skip_bad_rows: bool, max_length: int,
                 bad: BadRows) -> None:
    entry.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{entry.name}.", suffix=".tmp", dir=entry.parent))
    try:
        arrays = {"codes": table.codes, "lengths": table.lengths, "y": table.y, "line": table.meta["line"]}
        meta = {
            "format": FORMAT,
            "source": str(resolved),
            "size": resolved.stat().st_size,
            "source_xxh3_128": digest,
            "skip_bad_rows": bool(skip_bad_rows),
            "max_length": int(max_length),
            "rows": len(table),
            "arrays": {},
            "bad_rows": {"counts": dict(bad.counts), "examples": list(bad.examples)},
            "outliers": table.meta["outliers"],
        }
        for name, dtype in ARRAYS.items():
            arr = np.ascontiguousarray(arrays[name], dtype=dtype)
            with open(tmp / f"{name}.npy", "wb") as fh:
                np.save(fh, arr, allow_pickle=False)
                fh.flush()
                os.fsync(fh.fileno())
            meta["arrays"][name] = {"shape": list(arr.shape), "dtype": np.dtype(dtype).str}
        meta["files"] = manifest(tmp, [f"{name}.npy" for name in ARRAYS])
        meta[_META_DIGEST] = _meta_digest(meta)
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


def _open_entry(entry: Path, path: Path, resolved: Path, digest: str, skip_bad_rows: bool, max_length: int,
                bad: BadRows) -> tuple[SeqTable | None, str | None]:
    """``(cached table, None)``; ``(None, None)`` when there is no entry; ``(None, problem)`` when
    the entry fails a check (it is then rebuilt)."""
    if not entry.is_dir():
        return None, None
    try:
        with open(entry / "meta.json", encoding="utf-8") as fh:
            meta = json.load(fh)
        if meta.get(_META_DIGEST) != _meta_digest(meta):
            return None, f"{entry / 'meta.json'}: content differs from what the harness wrote (digest mismatch)"
        key = (meta.get("format"), meta.get("source"), meta.get("source_xxh3_128"), meta.get("skip_bad_rows"),
               meta.get("max_length"))
        if key != (FORMAT, str(resolved), digest, bool(skip_bad_rows), int(max_length)):
            return None, f"{entry / 'meta.json'}: names another file, format or setting"
        verify(entry, meta["files"])  # every byte of every array file
        arrays = {}
        for name, dtype in ARRAYS.items():
            info = meta["arrays"][name]
            arr = np.load(entry / f"{name}.npy", mmap_mode="r", allow_pickle=False)
            if arr.dtype != np.dtype(dtype) or list(arr.shape) != info["shape"]:
                return None, f"{entry / name}.npy: shape {arr.shape} {arr.dtype}, not {info['shape']} {np.dtype(dtype)}"
            arrays[name] = arr
        rows = meta["rows"]
        if any(len(a) != rows for a in arrays.values()) or arrays["codes"].ndim != 2:
            return None, f"{entry}: arrays of different lengths"
        counts = {str(k): int(v) for k, v in meta["bad_rows"]["counts"].items()}
        examples = [str(e) for e in meta["bad_rows"]["examples"]]
        outliers = dict(meta["outliers"])
    except IntegrityError as exc:
        return None, str(exc)
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        return None, f"{entry}: unreadable: {type(exc).__name__}: {exc}"  # truncated or malformed: rebuild
    bad.counts.update(counts)
    bad.examples.extend(examples[: max(0, 5 - len(bad.examples))])
    table = SeqTable(arrays["codes"], arrays["lengths"], arrays["y"], str(path))
    table.meta["line"] = arrays["line"]
    table.meta["bad_rows"] = bad
    table.meta["outliers"] = outliers
    table.meta["cache"] = str(entry)
    return table, None


def _remove_older(root: Path, resolved: Path, skip_bad_rows: bool, max_length: int, keep: str) -> None:
    """Delete other entries (older versions of the file) for the same path and settings, and
    entries of an older cache :data:`FORMAT` (never read again)."""
    prefix = _path_hash(resolved, skip_bad_rows, max_length) + "-"
    for other in root.glob(prefix + "*"):
        if other.name != keep and other.is_dir():
            with contextlib.suppress(OSError):
                shutil.rmtree(other)
    for other in root.iterdir():
        if other.name.startswith(".") or other.is_symlink() or not other.is_dir():
            continue
        with contextlib.suppress(OSError, ValueError, TypeError, AttributeError):
            with open(other / "meta.json", encoding="utf-8") as fh:
                old = json.load(fh).get("format")
            if isinstance(old, int) and old < FORMAT:
                shutil.rmtree(other)
    # temporary directories left by interrupted writers (an hour is far beyond any write)
    for tmp in root.glob(f".{prefix}*.tmp"):
        with contextlib.suppress(OSError):
            if time.time() - tmp.stat().st_mtime > 3600:
                shutil.rmtree(tmp)
