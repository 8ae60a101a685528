"""Atomic file writes: a reader never sees a half-written file and an interrupted run loses nothing.

Every writer goes to a temporary file in the destination directory, flushes and fsyncs it, then
``os.replace``-s it over the destination (atomic on POSIX and Windows).

Also the two guards of a directory the harness owns (a run directory): :func:`refuse_links` /
:func:`find_links` (never follow a symbolic link inside it: a planted link would make the harness
read, overwrite or delete files elsewhere) and :class:`DirLock` (one process at a time works in it).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import socket
import stat
import tempfile
import time
from pathlib import Path
from typing import IO, Any, Iterator

import numpy as np


_UMASK = os.umask(0)
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w") -> Iterator[IO]:
    """Open a temporary file beside ``path``; on clean exit it replaces ``path`` atomically.

    ``mode`` is ``"w"`` (text, UTF-8) or ``"wb"``. On an exception the temporary file is removed and
    ``path`` is left untouched. Parent directories are created.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open: mode must be 'w' or 'wb', got {mode!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode, **({"encoding": "utf-8"} if mode == "w" else {})) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp creates 0600; give the usual permissions
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_text(path: str | os.PathLike, text: str) -> None:
    """Atomically write ``text`` (UTF-8) to ``path``."""
    with atomic_open(path, "w") as fh:
        fh.write(text)


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Atomically write ``obj`` as indented JSON (NaN written as ``null``-free ``NaN`` is refused)."""
    write_text(path, json.dumps(obj, indent=2, allow_nan=False, default=_json_default) + "\n")


def read_json(path: str | os.PathLike, expect: type | None = None) -> Any:
    """Read a JSON file (UTF-8); with ``expect`` (e.g. ``dict``) the top-level value must be of that type.

    Raises:
        FileNotFoundError: no such file.
        ValueError: not UTF-8 JSON (``"<path>: not valid JSON (<where and what>)"``) or, with
            ``expect``, another top-level type (``"<path>: expected a JSON object, found list"``).
    """
    try:
        with open(path, encoding="utf-8") as fh:
            obj = json.load(fh)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from exc
    if expect is not None and not isinstance(obj, expect):
        names = {dict: "a JSON object", list: "a JSON array", str: "a JSON string"}
        raise ValueError(f"{path}: expected {names.get(expect, expect.__name__)}, found {type(obj).__name__}")
    return obj


def write_npy(path: str | os.PathLike, array: np.ndarray) -> None:
    """Atomically save ``array`` in NumPy ``.npy`` format."""
    with atomic_open(path, "wb") as fh:
        np.save(fh, np.asarray(array), allow_pickle=False)


class UnsafePath(ValueError):
    """A symbolic link (or a device, FIFO or socket) inside a directory the harness owns; the message names it."""


def refuse_links(root: str | os.PathLike, path: str | os.PathLike) -> Path:
    """Check that no component of ``path`` below ``root`` is a symbolic link; return ``path``.

    ``root`` itself may be a link (the user chose it); every component after it must be a real
    directory or, for the last one, a regular file, or not exist yet (then nothing below it can be
    a link either). ``os.lstat`` only: no link is ever followed.

    Raises:
        UnsafePath: a component is a symbolic link or a special file (named in the message).
        ValueError: ``path`` is not below ``root``.
    """
    root, path = Path(root), Path(path)
    try:
        parts = path.relative_to(root).parts
    except ValueError:
        raise ValueError(f"{path} is not inside {root}") from None
    current = root
    for i, part in enumerate(parts):
        if part in ("..", "."):
            raise UnsafePath(f"{path}: '..' or '.' inside {root}")
        current = current / part
        try:
            st = os.lstat(current)
        except FileNotFoundError:
            return path
        _check_mode(current, st.st_mode, root, last=i == len(parts) - 1)
    return path


def find_links(root: str | os.PathLike) -> None:
    """Walk ``root`` (never following links) and refuse the first link or special file under it.

    Raises:
        UnsafePath: ``"<path>: symbolic link inside <root> ..."`` (or a device/FIFO/socket).
    """
    root = Path(root)
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in sorted(dirnames) + sorted(filenames):
            p = Path(dirpath) / name
            _check_mode(p, os.lstat(p).st_mode, root, last=True)


def _check_mode(p: Path, mode: int, root: Path, last: bool) -> None:
    if stat.S_ISLNK(mode):
        raise UnsafePath(f"{p}: symbolic link inside {root}; the harness never follows links in a directory it "
                         "owns (it could overwrite or delete files elsewhere): remove the link")
    if not (stat.S_ISDIR(mode) or (last and stat.S_ISREG(mode))):
        raise UnsafePath(f"{p}: not a regular file or directory (inside {root}); remove it")


class DirLock:
    """An exclusive lock on a directory: ``<dir>/<name>`` holds an ``fcntl.flock`` and the owner's PID.

    The kernel drops the lock when its process ends, however it ends (``SIGKILL`` included), so a
    lock file left by a dead process is stale: the next :meth:`acquire` takes it over and
    rewrites the PID. A lock held by a live process is refused with its PID, host and start time.
    (``flock`` works across the machines of a cluster on NFSv4 and most cluster file systems.)

    Usage: ``with DirLock(run_dir) as lock: ...`` (``lock.took_over`` is the stale owner's
    description, or None).
    """

    def __init__(self, directory: str | os.PathLike, name: str = "run.lock", what: str = "run directory") -> None:
        self.path = Path(directory) / name
        self.what = what
        self.took_over: str | None = None
        self._fd: int | None = None

    def acquire(self) -> "DirLock":
        """Take the lock (never waits).

        Raises:
            LockedError: another live process holds it (the message names its PID and host).
            UnsafePath: the lock file is a symbolic link.
            OSError: the lock file cannot be created (e.g. a read-only directory).
        """
        import fcntl  # POSIX

        if self.path.is_symlink():
            raise UnsafePath(f"{self.path}: symbolic link; remove it")
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0),
                     0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            owner = _owner(fd)
            os.close(fd)
            if exc.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise LockedError(f"{self.path.parent}: another harness process is using this {self.what} "
                                  f"({owner}); wait for it to finish or stop it, then run again") from None
            raise
        previous = _owner(fd)
        self.took_over = previous if previous != "owner unknown" else None
        record = json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                             "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}) + "\n"
        os.ftruncate(fd, 0)
        os.pwrite(fd, record.encode(), 0)
        os.fsync(fd)
        self._fd = fd
        return self

    def release(self) -> None:
        """Empty the lock file and drop the lock (the file stays: removing it would race a new owner)."""
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, 0)
            os.close(self._fd)  # closing the last descriptor drops the flock
            self._fd = None

    def __enter__(self) -> "DirLock":
        return self.acquire() if self._fd is None else self

    def __exit__(self, *exc) -> None:
        self.release()


class LockedError(RuntimeError):
    """A directory is locked by another live process (see :class:`DirLock`)."""


def _owner(fd: int) -> str:
    """The lock file's owner as ``"pid N on HOST since T"``, or ``"owner unknown"``."""
    try:
        data = os.pread(fd, 4096, 0)
        rec = json.loads(data) if data.strip() else None
        return f"pid {rec['pid']} on {rec['host']} since {rec['started']}"
    except (OSError, ValueError, TypeError, KeyError):
        return "owner unknown"


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
