"""Readers for the official DREAM 2022 files, with precise errors for bad input.

Formats (challenge data release, Zenodo records 10633252 and 7395397):

* training file and test file: ``sequence<TAB>expression``, no header, one row per line;
* ``test_subset_ids/*.csv``: pandas CSVs with a ``pos`` column (single categories) or
  ``alt_pos``/``ref_pos`` columns (pair categories), positions being 0-based test row indices;
* ``public_leaderboard_ids/*.json``: ``{"index": truth}`` or, for pair categories,
  ``{"alt,ref": [alt_truth, ref_truth]}``.
"""

from __future__ import annotations

import csv
import json
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from . import encoding
from .table import SeqTable


class DataError(ValueError):
    """Bad input data. The message names the file, the line and the problem."""


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


def read_table(path: str | Path, skip_bad_rows: bool = False, bad: BadRows | None = None) -> SeqTable:
    """Read a ``sequence<TAB>expression`` file (training or test format).

    Args:
        path: the file.
        skip_bad_rows: drop bad rows and count them in ``bad`` instead of raising.
        bad: collects dropped rows (created if None; also stored in ``table.meta["bad_rows"]``).

    Returns:
        A :class:`SeqTable` with ``y`` ``float32``; ``meta["line"]`` holds each kept row's 1-based
        line number.

    Raises:
        DataError: missing or empty file; with ``skip_bad_rows=False`` the first bad row(s):
            wrong column count, empty sequence, non-nucleotide characters, missing or non-numeric
            expression. The message gives ``file:line: problem``.
    """
    path = Path(path)
    bad = bad if bad is not None else BadRows()
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: the file is empty")
    try:
        # index_col=False + ParserWarning as error: rows that all have 3+ columns would otherwise
        # turn the first column into the index and shift the sequence into the wrong column
        with warnings.catch_warnings():
            warnings.simplefilter("error", pd.errors.ParserWarning)
            frame = pd.read_csv(
                path, sep="\t", header=None, names=["sequence", "expression"], dtype=str,
                na_filter=False, skip_blank_lines=False, quoting=csv.QUOTE_NONE, engine="c", index_col=False,
            )
        seqs = frame["sequence"].to_numpy(dtype=object)
        expr = frame["expression"].to_numpy(dtype=object)
        problems: dict[int, tuple[str, str]] = {}
    except (pd.errors.ParserError, pd.errors.ParserWarning):
        seqs, expr, problems = _read_slow(path)
    n = len(seqs)
    if n == 0:
        raise DataError(f"{path}: the file holds no rows")

    # expression: numeric and finite
    values = pd.to_numeric(pd.Series(expr), errors="coerce").to_numpy(dtype=np.float64)
    for i in np.flatnonzero(~np.isfinite(values)):
        if int(i) not in problems:
            text = str(expr[i])
            if text == "" and seqs[i] == "":
                problems[int(i)] = ("empty line", "empty line")
            elif text == "":
                problems[int(i)] = ("missing expression", "missing expression (one column only)")
            else:
                problems[int(i)] = ("non-numeric expression", f"expression {text!r} is not a number")

    # sequences: non-empty, nucleotide letters only (vectorised over the concatenation)
    lengths = np.fromiter((len(s) for s in seqs), dtype=np.int64, count=n)
    flat = encoding.encode_bytes(np.frombuffer("".join(seqs).encode("ascii", errors="replace"), dtype=np.uint8))
    starts = np.zeros(n, dtype=np.int64)
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

    if problems:
        ordered = sorted(problems)
        if not skip_bad_rows:
            shown = "\n".join(f"{path}:{i + 1}: {problems[i][1]}" for i in ordered[:5])
            more = f"\n... and {len(ordered) - 5} more bad rows" if len(ordered) > 5 else ""
            raise DataError(f"{shown}{more}\n(use --skip-bad-rows to drop bad rows and report their counts)")
        for i in ordered:
            bad.add(path, i + 1, problems[i][1], problems[i][0])
    keep = np.ones(n, dtype=bool)
    keep[list(problems)] = False
    if not keep.any():
        raise DataError(f"{path}: every row is bad ({bad.total} rows)")
    kept_lengths = lengths[keep].astype(np.int32)
    row_flat = np.repeat(keep, lengths)
    codes = encoding.ragged_to_matrix(flat[row_flat], kept_lengths, int(kept_lengths.max()))
    table = SeqTable(codes, kept_lengths, values[keep].astype(np.float32), str(path))
    table.meta["line"] = np.flatnonzero(keep) + 1
    table.meta["bad_rows"] = bad
    return table


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
