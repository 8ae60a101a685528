"""Prediction files: the challenge JSON ``{"index": prediction}`` or ``sequence<TAB>prediction``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..data.readers import DataError, read_table
from ..data.testset import TestSet


class PredictionError(DataError):
    """A prediction file that cannot be scored; the message names the file and the problem."""


def read_predictions(path: str | Path, test: TestSet) -> np.ndarray:
    """Read predictions into test order.

    Formats: JSON object ``{"0": p0, ..., "71102": p}`` (the challenge's submission format; a file
    holding only the public ids is allowed) or TSV ``sequence<TAB>prediction`` with one row per
    test sequence in test order.

    Returns:
        ``(len(test),) float64``; indices absent from a JSON file are NaN.

    Raises:
        PredictionError: unreadable file, key out of range or not an integer, duplicate key,
            non-numeric value, wrong row count, or a TSV row whose sequence differs from the test
            sequence at that index (file and line named).
    """
    path = Path(path)
    n = len(test)
    if not path.is_file():
        raise PredictionError(f"{path}: no such file")
    with open(path, "rb") as fh:
        head = fh.read(64).lstrip()
    if head.startswith(b"{"):
        return _read_json(path, n)
    table = read_table(path)
    if len(table) != n or table.meta["line"][-1] != n:
        raise PredictionError(f"{path}: {len(table)} rows, expected one per test sequence ({n}) in test order")
    same = (table.lengths == test.table.lengths)
    width = min(table.codes.shape[1], test.table.codes.shape[1])
    same &= (table.codes[:, :width] == test.table.codes[:, :width]).all(axis=1)
    if not same.all():
        i = int(np.flatnonzero(~same)[0])
        raise PredictionError(f"{path}:{i + 1}: sequence differs from test sequence {i}; rows must be in test order")
    return table.y.astype(np.float64)


def _read_json(path: Path, n: int) -> np.ndarray:
    def no_duplicates(pairs):
        keys = [k for k, _ in pairs]
        if len(set(keys)) != len(keys):
            dup = next(k for k in keys if keys.count(k) > 1)
            raise PredictionError(f"{path}: duplicate key {dup!r}")
        return dict(pairs)

    try:
        with open(path, encoding="utf-8") as fh:
            obj = json.load(fh, object_pairs_hook=no_duplicates)
    except json.JSONDecodeError as exc:
        raise PredictionError(f"{path}:{exc.lineno}: not valid JSON: {exc.msg}") from exc
    if not isinstance(obj, dict):
        raise PredictionError(f"{path}: expected a JSON object {{\"index\": prediction}}")
    out = np.full(n, np.nan)
    for key, value in obj.items():
        try:
            i = int(key)
        except ValueError:
            raise PredictionError(f"{path}: key {key!r} is not a test index") from None
        if not 0 <= i < n:
            raise PredictionError(f"{path}: key {key!r} is out of range 0..{n - 1}")
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise PredictionError(f"{path}: value of key {key!r} is not a number: {value!r}")
        out[i] = value
    return out
