"""Readers for the official DREAM 2022 files, with precise errors for bad input.

Formats (challenge data release, Zenodo records 10633252 and 7395397):

* training file and test file: ``sequence<TAB>expression``, no header, one row per line; plain
  or gzip-compressed (recognised by its magic bytes, whatever the name);
* ``test_subset_ids/*.csv``: pandas CSVs with a ``pos`` column (single categories) or
  ``alt_pos``/``ref_pos`` columns (pair categories), positions being 0-based test row indices;
* ``public_leaderboard_ids/*.json``: ``{"index": truth}`` or, for pair categories,
  ``{"alt,ref": [alt_truth, ref_truth]}``.
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import json
import mmap
import shutil
import tempfile
import warnings
import zlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view

from . import encoding
from .table import SeqTable


class DataError(ValueError):
    """Bad input data. The message names the file, the line and the problem."""


class DataWarning(UserWarning):
    """Suspicious but readable input data (e.g. expression values far outside the column's range)."""


@dataclass
class BadRows:
    """Rows dropped by ``skip_bad_rows``: problem -> count, and the first few examples."""

    counts: Counter = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def add(self, path, line: int, problem: str, kind: str) -> None:
        self.counts[kind] += 1
        if len(self.examples) < 5:
            self.examples.append(f"{path}:{line}: {problem}")


#: The byte-level reader (:func:`_parse_bytes`) is tried first; False forces the string reader
#: (:func:`_parse_strings`). Both give the same table and the same messages; tests compare them.
_FAST = True
_BLOCK = 1 << 26  # bytes scanned at a time for line and tab positions (bounds temporary memory)
_CHUNK = 1 << 16  # rows encoded at a time
_UTF8_BOM = b"\xef\xbb\xbf"
_POW10 = 10.0 ** np.arange(16)  # exact in float64
_MAX_DIGITS = 15  # mantissas below 10**15 < 2**53 are exact, so mantissa / 10**k is correctly rounded
#: byte -> digit value 0-9, 10 for '.', 11 for anything else
_DIGIT = np.full(256, 11, dtype=np.uint8)
_DIGIT[ord("0"):ord("9") + 1] = np.arange(10)
_DIGIT[ord(".")] = 10

#: Longest sequence (nt) a row may have by default. DREAM 2022 training rows are 87-135 nt
#: (110-nt construct incl. flanks) and every code matrix is as wide as its longest row, so one
#: stray 100 kb line would cost 100 kB per row (at 6.7M rows: ~670 GB). Longer rows are bad rows
#: (``sequence too long``); pass ``max_length`` to allow longer sequences.
MAX_LENGTH = 1000
#: Expression values this far from the column's median, in interquartile ranges (IQR, floor 1),
#: or beyond +-:data:`OUTLIER_ABS`, are reported by a :class:`DataWarning` (see :func:`outliers`).
OUTLIER_IQRS = 20.0
OUTLIER_ABS = 1e3
_GZIP_MAGIC = b"\x1f\x8b"
#: other compressed formats that are refused with a clear message (magic bytes -> name)
_OTHER_MAGIC = {b"\xfd7zXZ\x00": "xz", b"\x28\xb5\x2f\xfd": "zstd", b"PK\x03\x04": "zip"}


def read_table(
    path: str | Path,
    skip_bad_rows: bool = False,
    bad: BadRows | None = None,
    max_length: int = MAX_LENGTH,
) -> SeqTable:
    """Read a ``sequence<TAB>expression`` file (training or test format), plain or gzip-compressed.

    Plain files (``\\n`` line ends, no byte-order mark) are parsed from their raw bytes with
    vectorised NumPy (the official 6.7M-row training file in seconds); anything else, and every
    bad row, goes through the string reader, so results and messages are the same either way.
    A gzip file is recognised by its magic bytes (``1f 8b``), not its name, and stream-decompressed
    into a temporary file (``$TMPDIR``; removed after reading) that is then read like a plain one;
    xz, zstd and zip files are refused with a message.

    Args:
        path: the file.
        skip_bad_rows: drop bad rows and count them in ``bad`` instead of raising.
        bad: collects dropped rows (created if None; also stored in ``table.meta["bad_rows"]``).
        max_length: longest sequence accepted, in nt (default :data:`MAX_LENGTH`); a longer one
            is a bad row ``sequence too long``.

    Returns:
        A :class:`SeqTable` with ``y`` ``float32``; ``meta["line"]`` holds each kept row's 1-based
        line number, ``meta["outliers"]`` the :func:`outliers` summary of ``y``.

    Raises:
        DataError: missing or empty file, unreadable gzip data, another compression format; with
            ``skip_bad_rows=False`` the first bad row(s): wrong column count, empty sequence,
            non-nucleotide characters, a sequence longer than ``max_length``, missing or
            non-numeric expression, an expression that overflows float32 (``1e39``). The message
            gives ``file:line: problem``.

    Warns:
        DataWarning: expression values far outside the column's range (:func:`outliers`), with
            their count and first lines.
    """
    path = Path(path)
    if isinstance(max_length, bool) or not isinstance(max_length, (int, np.integer)) or max_length < 1:
        raise ValueError(f"max_length must be a positive number of nt, got {max_length!r}")
    bad = bad if bad is not None else BadRows()
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: the file is empty")
    with _plain_file(path) as source:
        if source.stat().st_size == 0:
            raise DataError(f"{path}: the file is empty (after gzip decompression)")
        rows = _parse_bytes(source, int(max_length)) if _FAST else None
        if rows is None:
            rows = _parse_strings(source, int(max_length))
    if rows.n == 0:
        raise DataError(f"{path}: the file holds no rows")

    problems = rows.problems
    if problems:
        ordered = sorted(problems)
        if not skip_bad_rows:
            shown = "\n".join(f"{path}:{i + 1}: {problems[i][1]}" for i in ordered[:5])
            more = f"\n... and {len(ordered) - 5} more bad rows" if len(ordered) > 5 else ""
            raise DataError(f"{shown}{more}\n(use --skip-bad-rows to drop bad rows and report their counts)")
        for i in ordered:
            bad.add(path, i + 1, problems[i][1], problems[i][0])
    keep = np.ones(rows.n, dtype=bool)
    keep[list(problems)] = False
    if not keep.any():
        raise DataError(f"{path}: every row is bad ({bad.total} rows)")
    codes, kept_lengths = rows.encode(keep)
    table = SeqTable(codes, kept_lengths, rows.values[keep].astype(np.float32), str(path))
    table.meta["line"] = np.flatnonzero(keep) + 1
    table.meta["bad_rows"] = bad
    table.meta["outliers"] = outliers(table.y, table.meta["line"], path)
    warn_outliers(table.meta["outliers"], stacklevel=2)
    return table


def outliers(y: np.ndarray, line: np.ndarray, path: str | Path) -> dict:
    """Expression values far outside the column's range: likely a unit or parsing mistake.

    A value counts when it lies beyond +-:data:`OUTLIER_ABS` (1,000; the DREAM 2022 training
    bins are 0-17, the test file's MAUDE values about -1.4..1.7, de Boer et al.'s native
    ``EL.combined`` values about -1.9..19.4), or farther than :data:`OUTLIER_IQRS` (20)
    interquartile ranges (floor 1) from the median, which flags e.g. a 400 among 0-17 bins.
    Real data of the challenge and of de Boer et al. 2020 has none.

    Args:
        y: ``(N,)`` expression values (finite).
        line: ``(N,)`` their 1-based line numbers.
        path: the file, for the examples.

    Returns:
        ``{"count": int, "median": float, "reach": float, "examples": ["file:line: value", ...]}``
        (``reach``: 20 IQRs; the first 5 lines).
    """
    y = np.asarray(y)
    if len(y) == 0:
        return {"count": 0, "median": 0.0, "reach": OUTLIER_IQRS, "examples": []}
    q25, median, q75 = (float(q) for q in np.percentile(y, [25, 50, 75]))
    reach = OUTLIER_IQRS * max(q75 - q25, 1.0)
    # accepted: [-ABS, ABS] ∩ [median - reach, median + reach] (empty: every value is flagged);
    # float64 bounds, so that comparing float32 values never overflows
    low, high = np.float64(max(-OUTLIER_ABS, median - reach)), np.float64(min(OUTLIER_ABS, median + reach))
    far = np.flatnonzero((y < low) | (y > high))
    examples = [f"{path}:{int(line[i])}: {float(y[i]):.6g}" for i in far[:5].tolist()]
    return {"count": int(len(far)), "median": median, "reach": reach, "examples": examples}


def warn_outliers(info: dict, stacklevel: int = 2) -> None:
    """Issue one :class:`DataWarning` for an :func:`outliers` summary with a non-zero count."""
    if info and info.get("count"):
        shown = "; ".join(info["examples"])
        more = f"; and {info['count'] - len(info['examples'])} more" if info["count"] > len(info["examples"]) else ""
        warnings.warn(
            f"{info['count']} expression value(s) far outside the column's range (beyond +-{OUTLIER_ABS:g}, or more "
            f"than {OUTLIER_IQRS:g} IQRs = {info['reach']:.4g} from the median {info['median']:.4g}): {shown}{more}. "
            "Check the file's scale: such values dominate a squared-error fit.",
            DataWarning, stacklevel=stacklevel + 1,
        )


@contextlib.contextmanager
def _plain_file(path: Path) -> Iterator[Path]:
    """``path`` itself, or for gzip data a temporary decompressed copy (removed on exit).

    Raises:
        DataError: corrupt or truncated gzip data; xz, zstd, zip or bzip2 data.
    """
    with open(path, "rb") as fh:
        head = fh.read(10)
    if head[:2] != _GZIP_MAGIC:
        for magic, name in _OTHER_MAGIC.items():
            if head.startswith(magic):
                raise DataError(f"{path}: {name}-compressed data; decompress it first (only gzip is read directly)")
        if head[:3] == b"BZh" and head[4:10] in (b"1AY&SY", b"\x17rE8P\x90"):
            raise DataError(f"{path}: bzip2-compressed data; decompress it first (only gzip is read directly)")
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="harness-gunzip-") as tmp:
        out = Path(tmp) / "data.txt"
        try:
            with gzip.open(path, "rb") as src, open(out, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 22)
        except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
            raise DataError(f"{path}: gzip data cannot be decompressed (corrupt or truncated): {exc}") from exc
        except OSError as exc:
            raise DataError(f"{path}: gzip data could not be decompressed into {tmp}: {exc}") from exc
        yield out


@dataclass
class _Rows:
    """A parsed file before bad rows are dropped: ``n`` rows, float64 ``values`` (NaN where bad),
    ``problems`` {row index: (kind, message)} and ``encode(keep) -> (codes, int32 lengths)``."""

    n: int
    values: np.ndarray
    problems: dict[int, tuple[str, str]]
    encode: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


def _classify(
    seqs: list[str], expr: list[str], problems: dict[int, tuple[str, str]], max_length: int = MAX_LENGTH
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Check string rows, adding ``{index: (kind, message)}`` to ``problems`` (first problem wins:
    column count, expression, sequence length, letters, empty sequence).

    Returns ``(values float64, lengths int64, flat codes of the concatenated sequences)``.
    """
    n = len(seqs)
    # expression: numeric and finite
    values = pd.to_numeric(pd.Series(expr, dtype=object), errors="coerce").to_numpy(dtype=np.float64)
    for i in np.flatnonzero(~np.isfinite(values)):
        if int(i) not in problems:
            text = str(expr[i])
            if text == "" and seqs[i] == "":
                problems[int(i)] = ("empty line", "empty line")
            elif text == "":
                problems[int(i)] = ("missing expression", "missing expression (one column only)")
            else:
                problems[int(i)] = ("non-numeric expression", f"expression {text!r} is not a number")
    # a finite float64 that is infinite as float32 (|value| > 3.4e38) would become inf in ``y``
    for i in np.flatnonzero(_overflows(values)):
        problems.setdefault(int(i), ("expression out of range", f"expression {str(expr[i])!r} overflows float32 (|value| > 3.4e38)"))

    # sequences: non-empty, nucleotide letters only (vectorised over the concatenation)
    lengths = np.fromiter((len(s) for s in seqs), dtype=np.int64, count=n)
    for i in np.flatnonzero(lengths > max_length):
        problems.setdefault(int(i), ("sequence too long", f"sequence of {int(lengths[i]):,} nt exceeds the limit of {max_length:,} nt (max_length)"))
    flat = encoding.encode_bytes(np.frombuffer("".join(seqs).encode("ascii", errors="replace"), dtype=np.uint8))
    starts = np.zeros(n, dtype=np.int64)
    if n:
        np.cumsum(lengths[:-1], out=starts[1:])
    bad_pos = np.flatnonzero(flat == encoding.INVALID)
    if len(bad_pos):
        rows = np.searchsorted(starts, bad_pos, side="right") - 1
        first = {}
        for r, p in zip(rows.tolist(), bad_pos.tolist()):
            first.setdefault(r, p)
        for r, p in first.items():
            col = p - starts[r]
            problems.setdefault(r, ("non-ACGTN characters", f"sequence has {seqs[r][col]!r} at position {col + 1}, not a nucleotide letter"))
    for i in np.flatnonzero(lengths == 0):
        problems.setdefault(int(i), ("empty sequence", "empty sequence"))
    return values, lengths, flat


def _overflows(values: np.ndarray) -> np.ndarray:
    """True where a finite float64 becomes infinite when cast to float32."""
    with np.errstate(over="ignore"):
        return np.isfinite(values) & ~np.isfinite(values.astype(np.float32))


def _parse_strings(path: Path, max_length: int = MAX_LENGTH) -> _Rows:
    """The string reader: pandas' C parser, or :func:`_read_slow` when a row has 3+ columns."""
    try:
        # index_col=False + ParserWarning as error: rows that all have 3+ columns would otherwise
        # turn the first column into the index and shift the sequence into the wrong column
        with warnings.catch_warnings():
            warnings.simplefilter("error", pd.errors.ParserWarning)
            frame = pd.read_csv(
                path, sep="\t", header=None, names=["sequence", "expression"], dtype=str,
                na_filter=False, skip_blank_lines=False, quoting=csv.QUOTE_NONE, engine="c", index_col=False,
                compression=None,  # gzip is recognised by content in read_table, never by the name
            )
        seqs = frame["sequence"].to_numpy(dtype=object)
        expr = frame["expression"].to_numpy(dtype=object)
        problems: dict[int, tuple[str, str]] = {}
    except (pd.errors.ParserError, pd.errors.ParserWarning):
        seqs, expr, problems = _read_slow(path)
    n = len(seqs)
    if n == 0:
        return _Rows(0, np.zeros(0), {}, lambda keep: (np.zeros((0, 0), np.uint8), np.zeros(0, np.int32)))
    values, lengths, flat = _classify(list(seqs), list(expr), problems, max_length)

    def encode(keep: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        kept_lengths = lengths[keep].astype(np.int32)
        row_flat = np.repeat(keep, lengths)
        return encoding.ragged_to_matrix(flat[row_flat], kept_lengths, int(kept_lengths.max())), kept_lengths

    return _Rows(n, values, problems, encode)


def _read_slow(path: Path) -> tuple[list[str], list[str], dict[int, tuple[str, str]]]:
    """Line-by-line reader used only when a row has the wrong number of columns."""
    seqs, expr, problems = [], [], {}
    with open(path, encoding="ascii", errors="replace", newline="") as fh:
        for i, line in enumerate(fh):
            fields = line.rstrip("\r\n").split("\t")
            if len(fields) > 2:
                problems[i] = ("wrong column count", f"expected 2 tab-separated columns (sequence, expression), found {len(fields)}")
                fields = fields[:2]
            seqs.append(fields[0])
            expr.append(fields[1] if len(fields) > 1 else "")
    return seqs, expr, problems


def _parse_bytes(path: Path, max_length: int = MAX_LENGTH) -> _Rows | None:
    """The byte-level reader; None when the file needs the string reader (``\\r`` or a BOM).

    The file is memory-mapped and read twice, block by block (pages already used are handed
    back, so the file's bytes do not add up in memory): once for line and tab positions, once to
    encode sequences into the code matrix and parse expressions. Rows are the ``\\n``-separated
    lines (a last line without ``\\n`` counts). A row whose line has exactly one tab, a non-empty
    sequence of at most ``max_length`` nt and an expression of plain digits
    (``12``, ``15.1823836007871``: at most 15 digits, at most one ``.`` with digits on both sides)
    is handled by whole-array operations. Every other row goes through the string checks: odd
    but valid numbers (``1e1``, `` 3``) are parsed by ``pd.to_numeric`` as in the string reader,
    and each bad row is classified by :func:`_classify` from its decoded line, so problems and
    messages are the same.
    """
    with open(path, "rb") as fh:
        try:
            mm = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        except (OSError, ValueError):
            return None
    try:
        return _parse_mapped(mm, max_length)
    finally:
        with contextlib.suppress(BufferError):  # a view still alive: the mapping goes with it
            mm.close()


def _release(mm: mmap.mmap, start: int, stop: int) -> None:
    """Hand the pages of ``mm[start:stop]`` back to the page cache (re-read on next use)."""
    advice = getattr(mmap, "MADV_DONTNEED", None)
    first = start - start % mmap.PAGESIZE
    if advice is not None and stop > first:
        with contextlib.suppress(OSError, ValueError):
            mm.madvise(advice, first, stop - first)


def _parse_mapped(mm: mmap.mmap, max_length: int = MAX_LENGTH) -> _Rows | None:
    buf = np.frombuffer(mm, dtype=np.uint8)
    size = len(buf)
    if size == 0 or bytes(buf[:3]) == _UTF8_BOM:
        return None

    # pass 1: newline and tab positions, and each tab's line
    ends_parts, tab_parts, tab_line_parts = [], [], []
    lines_before = 0
    for a in range(0, size, _BLOCK):
        block = buf[a:a + _BLOCK]
        pos = np.flatnonzero(block < 14)  # \t, \n, \r and the rare other control bytes
        kind = block[pos]
        if np.any(kind == 13):
            return None
        is_newline = kind == 10
        is_tab = kind == 9
        newlines_so_far = np.cumsum(is_newline)
        ends_parts.append(pos[is_newline] + a)
        tab_parts.append(pos[is_tab] + a)
        tab_line_parts.append(newlines_so_far[is_tab] + lines_before)
        lines_before += int(newlines_so_far[-1]) if len(pos) else 0
        _release(mm, a, a + len(block))
    ends = np.concatenate(ends_parts)
    if buf[size - 1] != ord("\n"):
        ends = np.append(ends, size)
    tabs = np.concatenate(tab_parts)
    tab_line = np.concatenate(tab_line_parts)
    del ends_parts, tab_parts, tab_line_parts
    n = len(ends)
    starts = np.zeros(n, dtype=np.int64)
    starts[1:] = ends[:-1] + 1
    tab_counts = np.bincount(tab_line, minlength=n)
    # the string reader decodes as UTF-8 (pandas), or as ASCII when a row has 3+ columns
    # (:func:`_read_slow`); suspect rows are decoded the same way so messages quote the same text
    text_encoding = "ascii" if (tab_counts > 1).any() else "utf-8"
    tab = np.zeros(n, dtype=np.int64)
    tab[tab_line] = tabs  # the tab of each one-tab line
    # one tab, a non-empty sequence, not over the limit (a long one would widen the whole matrix)
    ok = (tab_counts == 1) & (tab > starts) & (tab - starts <= max_length)
    del tabs, tab_line, tab_counts

    # pass 2, chunk by chunk: encode the sequences of candidate rows, parse their expressions
    rows = np.flatnonzero(ok)
    seq_len = tab[rows] - starts[rows]
    width = int(seq_len.max(initial=0))
    codes = np.empty((len(rows), width), dtype=np.uint8)
    values = np.full(n, np.nan)
    invalid = np.zeros(len(rows), dtype=bool)
    cols = np.arange(width)
    later = []  # expressions for pd.to_numeric
    raw = seg = block = None
    for a in range(0, len(rows), _CHUNK):
        r = rows[a:a + _CHUNK]
        s0, e0 = int(starts[r[0]]), int(ends[r[-1]])
        raw = buf[s0:e0]
        seg = np.empty(e0 - s0 + width, dtype=np.uint8)  # the region's codes, padded for the windows
        seg[:e0 - s0] = encoding.encode_bytes(raw)
        seg[e0 - s0:] = encoding.PAD
        block = codes[a:a + len(r)]
        block[...] = sliding_window_view(seg, width)[starts[r] - s0]
        np.putmask(block, cols >= seq_len[a:a + len(r), None], encoding.PAD)
        invalid[a:a + len(r)] = (block == encoding.INVALID).any(axis=1)
        first = tab[r] + 1 - s0
        vals, simple = _parse_numbers(raw, first, ends[r] - s0 - first)
        values[r] = vals
        later.append(r[~simple])
        _release(mm, s0, e0)
    del seg, block
    later_rows = np.concatenate(later) if later else np.zeros(0, dtype=np.int64)
    if len(later_rows):
        texts = [bytes(buf[tab[i] + 1:ends[i]]).decode(text_encoding, errors="replace") for i in later_rows.tolist()]
        values[later_rows] = pd.to_numeric(pd.Series(texts, dtype=object), errors="coerce").to_numpy(dtype=np.float64)
        del texts
    invalid |= ~np.isfinite(values[rows]) | _overflows(values[rows])
    ok[rows[invalid]] = False

    # suspects: the string checks name each one's problem exactly as the string reader does
    problems: dict[int, tuple[str, str]] = {}
    suspects = np.flatnonzero(~ok)
    if len(suspects):
        seqs, expr, found = [], [], {}
        for k, i in enumerate(suspects.tolist()):
            fields = bytes(buf[starts[i]:ends[i]]).decode(text_encoding, errors="replace").split("\t")
            if len(fields) > 2:
                found[k] = ("wrong column count", f"expected 2 tab-separated columns (sequence, expression), found {len(fields)}")
            seqs.append(fields[0])
            expr.append(fields[1] if len(fields) > 1 else "")
        _classify(seqs, expr, found, max_length)
        for k, i in enumerate(suspects.tolist()):
            # every suspect fails a check; the default only guards against the readers disagreeing
            problems[i] = found.get(k, ("unreadable row", "row could not be read"))
    del buf, raw

    def encode(keep: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        out, lengths = codes, seq_len.astype(np.int32)
        if invalid.any():  # only with skip_bad_rows: drop the bad candidates, in place
            kept = ~invalid
            _compact_rows(out, kept)
            lengths = lengths[kept]
            out = out[:len(lengths)]
            w = int(lengths.max(initial=0))
            if w < out.shape[1]:
                out = np.ascontiguousarray(out[:, :w])
        return out, lengths

    return _Rows(n, values, problems, encode)


def _parse_numbers(raw: np.ndarray, first: np.ndarray, width: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Parse plain decimal fields ``raw[first[i] : first[i] + width[i]]`` exactly.

    Returns ``(values float64, simple bool)``; ``values`` is NaN where ``simple`` is False (the
    field is not 1-15 digits with at most one inner ``.``: left to ``pd.to_numeric``).
    """
    k = len(first)
    values = np.full(k, np.nan)
    simple = np.zeros(k, dtype=bool)
    one = np.flatnonzero(width == 1)
    d = _DIGIT[raw[first[one]]]
    good = d < 10
    values[one[good]] = d[good]
    simple[one[good]] = True
    two = np.flatnonzero(width == 2)
    d1, d2 = _DIGIT[raw[first[two]]], _DIGIT[raw[first[two] + 1]]
    good = (d1 < 10) & (d2 < 10)
    values[two[good]] = d1[good].astype(np.int64) * 10 + d2[good]
    simple[two[good]] = True
    rest = np.flatnonzero((width > 2) & (width <= _MAX_DIGITS + 1))
    if len(rest):
        w = width[rest]
        span = int(w.max())
        at = np.minimum(first[rest, None] + np.arange(span), len(raw) - 1)
        d = _DIGIT[raw[at]]
        inside = np.arange(span) < w[:, None]
        digit = (d < 10) & inside
        dot = (d == 10) & inside
        dots = dot.sum(axis=1)
        point = dot.argmax(axis=1)
        frac = np.where(dots == 1, w - point - 1, 0)
        good = ~((d == 11) & inside).any(axis=1) & (digit.sum(axis=1) <= _MAX_DIGITS)
        good &= (dots == 0) | ((dots == 1) & (point >= 1) & (frac >= 1))
        mantissa = np.zeros(len(rest), dtype=np.int64)
        for j in range(span):
            mantissa = np.where(digit[:, j], mantissa * 10 + d[:, j], mantissa)
        values[rest[good]] = mantissa[good] / _POW10[frac[good]]
        simple[rest[good]] = True
    return values, simple


def _compact_rows(arr: np.ndarray, keep: np.ndarray) -> None:
    """Move the kept rows of ``arr`` to its front, in order, in place (chunk by chunk)."""
    src = np.flatnonzero(keep)
    for a in range(0, len(src), _CHUNK):
        part = src[a:a + _CHUNK]
        arr[a:a + len(part)] = arr[part]  # destinations never pass their sources


def read_subset_ids(path: str | Path) -> np.ndarray:
    """Read one ``test_subset_ids/*.csv``.

    Returns:
        ``(n,) int64`` test indices (``pos`` column) or ``(n, 2) int64`` (alt, ref) index pairs.

    Raises:
        DataError: the file lacks ``pos`` and ``alt_pos``/``ref_pos``, or holds non-integer ids.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    try:
        frame = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot parse as CSV: {exc}") from exc
    cols = ["alt_pos", "ref_pos"] if {"alt_pos", "ref_pos"} <= set(frame.columns) else ["pos"]
    if cols[0] not in frame.columns:
        raise DataError(f"{path}: expected a 'pos' column or 'alt_pos' and 'ref_pos' columns, found {list(frame.columns)}")
    values = frame[cols].apply(pd.to_numeric, errors="coerce")
    bad = values.isna().any(axis=1).to_numpy()
    if bad.any():
        line = int(np.flatnonzero(bad)[0]) + 2  # header is line 1
        raise DataError(f"{path}:{line}: missing or non-integer id in {cols}")
    arr = values.to_numpy(dtype=np.int64)
    return arr[:, 0] if cols == ["pos"] else arr


def read_public_ids(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read one ``public_leaderboard_ids/*_exp_indices.json`` (or ``ground.json``).

    Returns:
        ``(ids, truth)``: ``(n,) int64`` indices and ``(n,) float64`` truth, or for pair files
        ``(n, 2) int64`` (alt, ref) and ``(n, 2) float64``.

    Raises:
        DataError: not JSON, not an object, or keys that are not ``"i"`` / ``"alt,ref"`` integers.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    try:
        with open(path, encoding="utf-8") as fh:
            obj = json.load(fh)
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}:{exc.lineno}: not valid JSON: {exc.msg}") from exc
    if not isinstance(obj, dict) or not obj:
        raise DataError(f"{path}: expected a non-empty JSON object {{\"index\": value}}")
    keys = list(obj)
    try:
        if "," in keys[0]:
            ids = np.array([[int(p) for p in k.split(",")] for k in keys], dtype=np.int64)
            truth = np.array([obj[k] for k in keys], dtype=np.float64).reshape(-1, 2)
        else:
            ids = np.array([int(k) for k in keys], dtype=np.int64)
            truth = np.array([obj[k] for k in keys], dtype=np.float64)
    except (ValueError, TypeError) as exc:
        raise DataError(f"{path}: keys must be test indices ('12' or '12,34') with numeric values: {exc}") from exc
    return ids, truth


# --------------------------------------------------------------------------------------------
# Sequences without targets: the input of ``harness predict`` and ``harness variant-effect``
# --------------------------------------------------------------------------------------------

#: Bad lines named in one :class:`DataError` of :func:`read_sequences` before "... and N more".
_SHOWN = 5


def sequence_problems(seqs: list[str], max_length: int = MAX_LENGTH) -> dict[int, str]:
    """The sequence checks of :func:`read_table`, for sequences without targets.

    Args:
        seqs: ``N`` sequences (str).
        max_length: longest sequence accepted, in nt.

    Returns:
        ``{index: problem}`` for each bad sequence (the first problem of each, worded as
        :func:`read_table` words it): ``empty sequence``, ``sequence of N nt exceeds the limit
        ...``, ``sequence has 'X' at position P, not a nucleotide letter``. Empty when all are good.
    """
    problems: dict[int, tuple[str, str]] = {}
    if seqs:
        _classify(list(seqs), ["0"] * len(seqs), problems, max_length)
    return {i: message for i, (_, message) in sorted(problems.items())}


def raise_bad_lines(path: str | Path, problems: dict[int, str], what: str = "lines") -> None:
    """Raise one :class:`DataError` listing ``{line: problem}`` as ``path:line: problem`` (the first
    five, then how many more), or return when there is none."""
    if not problems:
        return
    ordered = sorted(problems)
    shown = "\n".join(f"{path}:{line}: {problems[line]}" for line in ordered[:_SHOWN])
    more = f"\n... and {len(ordered) - _SHOWN} more bad {what}" if len(ordered) > _SHOWN else ""
    raise DataError(shown + more)


def read_sequences(path: str | Path, max_length: int = MAX_LENGTH) -> SeqTable:
    """Read sequences to predict: one sequence a line, ``sequence<TAB>anything`` lines (the
    training and test files qualify: the second column is ignored), or FASTA; plain or gzip
    (recognised by its magic bytes, as in :func:`read_table`; xz, zstd, zip and bzip2 refused).

    Lines: every non-blank line is one sequence (surrounding spaces ignored), its id is its
    1-based line number. FASTA (the first non-blank line starts with ``>``): each record's id is
    the first word of its header, its sequence the concatenation of the lines up to the next
    header (wrapped FASTA); lines starting with ``;`` are comments. Blank lines are skipped in
    both. Sequences are checked as :func:`read_table` checks them (:func:`sequence_problems`):
    nucleotide letters only (A, C, G, T and the IUPAC ambiguity codes, either case; ambiguity
    codes become N), not empty, at most ``max_length`` nt.

    Returns:
        :class:`SeqTable` without targets; ``meta["ids"]``: ``list[str]`` the ids,
        ``meta["line"]``: ``(N,) int64`` the 1-based line of each sequence (a FASTA record's
        header line), ``meta["format"]``: ``"lines"`` or ``"fasta"``.

    Raises:
        DataError: a missing, empty or undecompressable file, no sequence in it, or bad lines:
            ``file:line: problem`` (the first five, then how many more) -- a non-nucleotide
            character (its position in the line), an empty FASTA record, a sequence longer than
            ``max_length``, sequence text before the first FASTA header, a header without a name.
    """
    path = Path(path)
    if isinstance(max_length, bool) or not isinstance(max_length, (int, np.integer)) or max_length < 1:
        raise ValueError(f"max_length must be a positive number of nt, got {max_length!r}")
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: the file is empty")
    with _plain_file(path) as source:
        text = source.read_bytes().decode("utf-8", errors="replace")
    if text.startswith("\ufeff"):
        text = text[1:]
    lines = text.splitlines()
    first = next((line for line in lines if line.strip()), "")
    if first.lstrip().startswith(">"):
        seqs, ids, where, problems = _fasta_records(lines, int(max_length))
        fmt = "fasta"
    else:
        seqs, ids, where = [], [], []
        for number, line in enumerate(lines, start=1):
            seq = line.split("\t", 1)[0].strip()
            if seq or line.strip():
                seqs.append(seq)
                ids.append(str(number))
                where.append(number)
        found = sequence_problems(seqs, int(max_length))
        problems = {where[i]: ("a FASTA header, but the file does not start with one: a FASTA file's first line "
                               "is its first '>name' header" if seqs[i].startswith(">") else message)
                    for i, message in found.items()}
        fmt = "lines"
    raise_bad_lines(path, problems)
    if not seqs:
        raise DataError(f"{path}: the file holds no sequence")
    codes, lengths = encoding.encode(seqs)
    table = SeqTable(codes, lengths, None, str(path))
    table.meta.update(ids=ids, line=np.asarray(where, dtype=np.int64), format=fmt)
    return table


def _fasta_records(lines: list[str], max_length: int) -> tuple[list[str], list[str], list[int], dict[int, str]]:
    """``(sequences, ids, header lines, {line: problem})`` of FASTA text split into lines; each
    sequence line is checked on its own, so a bad letter is named at its line and column."""
    seqs, ids, where, problems = [], [], [], {}
    parts: list[str] = []
    body_lines: list[str] = []
    body_at: list[int] = []

    def close() -> None:
        if not ids:
            return
        seq = "".join(parts)
        if not seq:
            problems.setdefault(where[-1], f"FASTA record {ids[-1]!r} has no sequence")
        elif len(seq) > max_length:
            problems.setdefault(where[-1], f"FASTA record {ids[-1]!r}: sequence of {len(seq):,} nt exceeds the "
                                           f"limit of {max_length:,} nt (max_length)")
        seqs.append(seq)

    for number, line in enumerate(lines, start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith(";"):
            continue
        if stripped.startswith(">"):
            close()
            name = stripped[1:].split(maxsplit=1)
            if not name:
                problems[number] = "FASTA header without a name"
            ids.append(name[0] if name else f"line{number}")
            where.append(number)
            parts = []
            continue
        if not ids:
            problems[number] = "sequence text before the first FASTA header ('>name')"
            continue
        parts.append(stripped)
        body_lines.append(stripped)
        body_at.append(number)
    close()
    # letters, line by line (the length limit is the record's, checked in close())
    for i, message in sequence_problems(body_lines, max(max_length, max(map(len, body_lines), default=1))).items():
        problems.setdefault(body_at[i], message)
    return seqs, ids, where, problems
