"""Download the official DREAM 2022 files: ``harness data fetch dream2022 [--to DIR]``.

The manifest below is the one place that says where each file comes from. Each entry gives the
path it lands at (relative to the data directory), the URL, and where known the size in bytes,
the SHA-256 and the row count; an ``archive`` entry is a ``.tar.gz`` whose ``*.csv`` / ``*.json``
members are unpacked into the directory named by ``target``.

Sources and what was checked (2026-11, no network from the machine that wrote this, so NO URL
below has been fetched; the lead should run ``harness data fetch dream2022`` once and fill in the
missing sizes and checksums from its output):

* Zenodo record 10633252 (de Boer lab, "Random Promoter DREAM Challenge 2022" processed data,
  CC BY 4.0). Public code downloads ``train_sequences.txt`` from
  ``https://zenodo.org/records/10633252/files/train_sequences.txt?download=1``; the Hugging Face
  repackaging of the same record (``HuggingFaceBio/random-promoter-dream-2022``) names its
  ``test_subset_ids.tar.gz`` and ``public_leaderboard_ids.tar.gz``. The name
  ``filtered_test_data_with_MAUDE_expression.txt`` inside that record is assumed from the
  official evaluation code (``OfficialEval/filtered_test_data_with_MAUDE_expression.txt``).
* Zenodo record 7395397 (official evaluation): public code also downloads
  ``train_sequences.txt`` from it; kept as the mirror to try by hand if the first URL fails.

The training file's size and SHA-256 are from ``shared/data/README.md`` (6,739,258 rows,
805,369,640 bytes).

Downloads go to ``<file>.part`` and resume with an HTTP ``Range`` request when a ``.part`` is
already there; a finished download is checked (size, SHA-256, row count) and only then renamed
into place, so a file at its final path is always complete and verified.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import os
import shutil
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn


@dataclass(frozen=True)
class Remote:
    """One downloadable file of a dataset.

    Attributes:
        path: where it lands, relative to the data directory (for archives: the archive's own
            file name, kept under ``.fetch/``).
        url: where it comes from.
        size: bytes, or None when unknown.
        sha256: hex digest, or None when unknown (then only size/rows are checked).
        rows: lines the file must hold (text files), or None.
        target: for a ``.tar.gz``: the directory its members are unpacked into.
        members: file-name suffixes unpacked from the archive.
    """

    path: str
    url: str
    size: int | None = None
    sha256: str | None = None
    rows: int | None = None
    target: str | None = None
    members: tuple[str, ...] = ()


_ZENODO = "https://zenodo.org/records/{record}/files/{name}?download=1"

#: dataset -> files. URLs unverified from this machine (no network); see the module docstring.
MANIFEST: dict[str, tuple[Remote, ...]] = {
    "dream2022": (
        Remote("train_sequences.txt", _ZENODO.format(record=10633252, name="train_sequences.txt"),
               size=805_369_640, sha256="dfd548e99d9d64fae963c029a8f7446688f6f064ae414e54c2f4880f25256661", rows=6_739_258),
        Remote("filtered_test_data_with_MAUDE_expression.txt",
               _ZENODO.format(record=10633252, name="filtered_test_data_with_MAUDE_expression.txt"), rows=71_103),
        Remote("test_subset_ids.tar.gz", _ZENODO.format(record=10633252, name="test_subset_ids.tar.gz"),
               target="test_subset_ids", members=(".csv",)),
        Remote("public_leaderboard_ids.tar.gz", _ZENODO.format(record=10633252, name="public_leaderboard_ids.tar.gz"),
               target="public_leaderboard_ids", members=(".json",)),
    ),
}
#: The other record that public code downloads ``train_sequences.txt`` from (for manual use).
MIRRORS = {"train_sequences.txt": _ZENODO.format(record=7395397, name="train_sequences.txt")}

ARCHIVE_DIR = ".fetch"  # downloaded archives stay here (re-running the fetch re-verifies them)
_BLOCK = 1 << 20
_ATTEMPTS = 4  # a dropped connection resumes from the .part this many times


class FetchError(RuntimeError):
    """A download failed: HTTP status, connection, size or checksum (the message names the file)."""


def remotes(dataset: str, base_url: str | None = None, manifest: dict[str, tuple[Remote, ...]] | None = None) -> tuple[Remote, ...]:
    """The files of ``dataset``; with ``base_url`` each URL becomes ``<base_url>/<file name>`` (a mirror)."""
    table = MANIFEST if manifest is None else manifest
    if dataset not in table:
        raise FetchError(f"unknown dataset {dataset!r}; known: {', '.join(sorted(table))}")
    files = table[dataset]
    if base_url:
        files = tuple(replace(r, url=f"{base_url.rstrip('/')}/{Path(r.path).name}") for r in files)
    return files


def fetch(
    dataset: str,
    to: str | os.PathLike,
    *,
    base_url: str | None = None,
    manifest: dict[str, tuple[Remote, ...]] | None = None,
    only: tuple[str, ...] = (),
    console: Console | None = None,
    progress: bool = True,
    timeout: float = 60.0,
) -> dict[str, dict]:
    """Download ``dataset`` into ``to`` in the official layout.

    Args:
        dataset: a key of :data:`MANIFEST` (``"dream2022"``).
        to: the data directory (created).
        base_url: a mirror holding the same file names (tests use a local server).
        manifest: replaces :data:`MANIFEST`.
        only: download just these entries (their ``path``); default all.
        console: where messages and the progress bar go.
        progress: show a progress bar.
        timeout: seconds without data before a connection counts as failed.

    Returns:
        ``{path: {"status": "downloaded" | "present", "bytes": int, "sha256": str}}``.

    Raises:
        FetchError: an HTTP error status, no connection, a size, row-count or checksum mismatch
            (the bad download is deleted), or a bad archive.
    """
    console = console or Console(stderr=True)
    root = Path(to)
    root.mkdir(parents=True, exist_ok=True)
    files = remotes(dataset, base_url, manifest)
    if only:
        unknown = set(only) - {r.path for r in files}
        if unknown:
            raise FetchError(f"not in {dataset}: {', '.join(sorted(unknown))}; files: {', '.join(r.path for r in files)}")
        files = tuple(r for r in files if r.path in only)
    results = {}
    for remote in files:
        dest = root / ARCHIVE_DIR / remote.path if remote.target else root / remote.path
        status = "present"
        digest = _verified(dest, remote) if dest.is_file() else None
        if digest is None:
            digest = download(remote, dest, console=console, progress=progress, timeout=timeout)
            status = "downloaded"
        if remote.target:
            names = _unpack(dest, root / remote.target, remote)
            console.print(f"{remote.path}: unpacked {len(names)} files into {root / remote.target}")
        if remote.sha256 is None:
            console.print(f"{remote.path}: sha256 {digest} (not in the manifest yet)")
        results[remote.path] = {"status": status, "bytes": dest.stat().st_size, "sha256": digest}
        console.print(f"{remote.path}: {status}, {dest.stat().st_size:,} bytes, verified")
    return results


def _verified(path: Path, remote: Remote) -> str | None:
    """SHA-256 of an existing file that passes the manifest's checks, else None (download again)."""
    try:
        digest, rows = _digest(path)
        _check(path, remote, path.stat().st_size, digest, rows)
    except FetchError:
        return None
    return digest


def _digest(path: Path, on_block: Callable[[int], None] | None = None) -> tuple[str, int]:
    h = hashlib.sha256()
    newlines = 0
    last = b"\n"
    with open(path, "rb") as fh:
        while block := fh.read(_BLOCK):
            h.update(block)
            newlines += block.count(b"\n")
            last = block[-1:]
            if on_block:
                on_block(len(block))
    rows = newlines + (last != b"\n")
    return h.hexdigest(), rows


def _check(path: Path, remote: Remote, size: int, digest: str, rows: int) -> None:
    if remote.size is not None and size != remote.size:
        raise FetchError(f"{path.name}: size mismatch: expected {remote.size:,} bytes, got {size:,}")
    if remote.sha256 is not None and digest != remote.sha256.lower():
        raise FetchError(f"{path.name}: checksum mismatch: expected sha256 {remote.sha256}, got {digest}")
    if remote.rows is not None and rows != remote.rows:
        raise FetchError(f"{path.name}: expected {remote.rows:,} rows, got {rows:,}")


def download(remote: Remote, dest: Path, *, console: Console | None = None, progress: bool = True, timeout: float = 60.0) -> str:
    """Download ``remote`` to ``dest`` via ``dest.part`` (resumed if present); returns the SHA-256.

    Raises:
        FetchError: HTTP error status, connection failure after retries, size/checksum/rows mismatch.
    """
    console = console or Console(stderr=True)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, disable=not progress, transient=True) as bar:
        task = bar.add_task(dest.name, total=remote.size)
        for attempt in range(1, _ATTEMPTS + 1):
            try:
                _transfer(remote, part, bar, task, timeout)
                break
            except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
                if isinstance(exc, urllib.error.HTTPError):
                    raise FetchError(f"{dest.name}: HTTP {exc.code} {exc.reason} from {remote.url}") from exc
                if attempt == _ATTEMPTS:
                    reason = getattr(exc, "reason", exc)
                    raise FetchError(f"{dest.name}: download failed after {attempt} attempts from {remote.url}: {reason} "
                                     f"(the partial file {part} is kept; run again to resume)") from exc
                console.print(f"[yellow]{dest.name}: {exc}; resuming (attempt {attempt + 1} of {_ATTEMPTS})")
                time.sleep(min(2 ** attempt, 10) * 0.1)
        bar.update(task, description=f"{dest.name} (verifying)", completed=0, total=part.stat().st_size)
        digest, rows = _digest(part, on_block=lambda k: bar.advance(task, k))
    try:
        _check(dest, remote, part.stat().st_size, digest, rows)
    except FetchError as exc:
        part.unlink(missing_ok=True)  # a wrong file would otherwise be "resumed" forever
        raise FetchError(f"{exc} (from {remote.url}; the download was deleted)") from None
    with open(part, "rb+") as fh:
        os.fsync(fh.fileno())
    os.replace(part, dest)
    return digest


def _transfer(remote: Remote, part: Path, bar: Progress, task, timeout: float) -> None:
    """One HTTP request: continue ``part`` from its current size (Range) or start it over."""
    have = part.stat().st_size if part.exists() else 0
    if remote.size is not None and have > remote.size:
        part.unlink()
        have = 0
    headers = {"User-Agent": "dream-harness-fetch", "Accept-Encoding": "identity"}
    if have:
        headers["Range"] = f"bytes={have}-"
    request = urllib.request.Request(remote.url, headers=headers)
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # nothing left to send: the .part is complete (checked next)
            return
        raise
    with response:
        if have and response.status == 206:
            start = _range_start(response.headers.get("Content-Range", ""))
            if start != have:
                raise FetchError(f"{part.name}: server resumed at byte {start}, expected {have}")
            mode = "ab"
        else:  # 200: the server ignored the Range header, start over
            have = 0
            mode = "wb"
        length = response.headers.get("Content-Length")
        total = remote.size or (have + int(length) if length is not None else None)
        bar.update(task, completed=have, total=total)
        with open(part, mode) as fh:
            while block := response.read(_BLOCK):
                fh.write(block)
                bar.advance(task, len(block))
            fh.flush()
        if length is not None and part.stat().st_size != have + int(length):
            raise ConnectionError(f"connection closed at {part.stat().st_size:,} of {have + int(length):,} bytes")


def _range_start(content_range: str) -> int | None:
    # "bytes 100-199/200"
    with contextlib.suppress(ValueError, IndexError):
        return int(content_range.split()[1].split("-")[0])
    return None


def _unpack(archive: Path, target: Path, remote: Remote) -> list[str]:
    """Unpack the archive's ``remote.members`` files (flattened, names only) into ``target``.

    Files are written to a temporary directory beside ``target`` and moved in one by one with
    ``os.replace``, so each file appears whole; other files in ``target`` are left alone.
    """
    target.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    names = []
    try:
        try:
            with tarfile.open(archive, "r:*") as tar:
                for member in tar.getmembers():
                    name = Path(member.name).name
                    if not member.isfile() or name.startswith(".") or not name.endswith(remote.members or ("",)):
                        continue
                    source = tar.extractfile(member)
                    if source is None:
                        continue
                    with source, open(tmp / name, "wb") as out:
                        shutil.copyfileobj(source, out)
                    names.append(name)
        except (tarfile.TarError, EOFError, OSError) as exc:
            raise FetchError(f"{archive.name}: cannot unpack: {exc}") from exc
        if not names:
            raise FetchError(f"{archive.name}: holds no {' / '.join(remote.members)} files")
        for name in names:
            os.replace(tmp / name, target / name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return sorted(names)
