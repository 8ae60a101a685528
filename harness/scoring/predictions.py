"""Prediction files: the one parser behind ``harness score`` and ``harness validate-submission``.

Formats (Random Promoter DREAM Challenge 2022; ``public_leaderboard_ids/sample_submission.json``
of the official release, Zenodo 10633252, and the test-file layout read by the official
evaluation script, Zenodo 7395397):

* JSON: one object ``{"0": p0, "1": p1, ..., "71102": p}``. Keys are canonical decimal test
  indices (``0`` or a digit 1-9 followed by digits: ``"05"``, ``" 5"``, ``"+5"``, ``"5.0"`` are
  refused, never read as index 5), each at most once; values JSON numbers. A public-leaderboard
  submission holds exactly the public ids.
* TSV: ``sequence<TAB>prediction``, one line per test sequence in test order, no header (the
  layout of ``filtered_test_data_with_MAUDE_expression.txt``). Predictions are read as float64,
  as the official script's ``float()`` reads them.

Parsing collects every problem instead of stopping at the first, so a validation can list them;
it runs in time linear in the file (the duplicate-key check is one pass over a boolean array).
NaN or infinite values (JSON ``NaN``/``Infinity``, a TSV ``nan``/``inf``, a literal too large for
float64) are not format problems: they are kept, and the board that needs them refuses them
(:meth:`PredictionFile.coverage`).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..data import encoding
from ..data.readers import DataError
from ..data.testset import TestSet

#: Test sequences of the challenge when no test set is given.
N_TEST = 71103
#: Problems shown in a message before "... and N more".
MAX_SHOWN = 20
_INDEX = re.compile(r"0|[1-9][0-9]*")
_SEQUENCE = re.compile(r"[ACGTNacgtn]+")
_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_NONFINITE = re.compile(r"[+-]?(?:nan|inf|infinity)", re.IGNORECASE)


class PredictionError(DataError):
    """A prediction file that cannot be scored; the message names the file and each problem."""


@dataclass
class PredictionFile:
    """A parsed prediction file.

    Attributes:
        path: the file.
        kind: ``"json"`` or ``"tsv"``.
        values: ``(n,) float64`` predictions in test order; NaN where the file gives none. NaN and
            ±inf given by the file are kept as they are.
        given: ``(n,) bool``: the file gives a number (finite or not) for this test index.
        problems: format problems, one line each naming the key (``key '05': ...``) or the line
            (``line 3: ...``), in file order; empty when the file is well formed.
        lines: TSV lines read (0 for JSON).
    """

    path: Path
    kind: str
    values: np.ndarray
    given: np.ndarray
    problems: list[str] = field(default_factory=list)
    lines: int = 0

    @property
    def n_values(self) -> int:
        """Distinct test indices given a number."""
        return int(self.given.sum())

    @property
    def nonfinite(self) -> np.ndarray:
        """``(k,) int64`` test indices whose given value is NaN or ±inf."""
        return np.flatnonzero(self.given & ~np.isfinite(self.values))

    def where(self, index: int) -> str:
        """Where test index ``index`` is in the file: ``key '7'`` (JSON) or ``line 8`` (TSV)."""
        return f"key '{index}'" if self.kind == "json" else f"line {index + 1}"

    def nonfinite_problems(self) -> list[str]:
        """One line per NaN/inf value, naming its key or line."""
        what = "value" if self.kind == "json" else "prediction"
        return [f"{self.where(i)}: {what} is {float(self.values[i])!r}, not a finite number" for i in self.nonfinite]

    def coverage(self, ids: np.ndarray, k: int = MAX_SHOWN) -> str | None:
        """Why the predictions at test indices ``ids`` (``(m,) int``) cannot be scored, or None.

        The text names the absent indices and the non-finite ones (the first ``k`` of each, then
        a count), e.g. ``"1 test index has no prediction: 12345; 1 prediction is not finite: 7 (nan)"``.
        """
        ids = np.asarray(ids, dtype=np.int64)
        absent = ids[~self.given[ids]]
        bad = ids[self.given[ids] & ~np.isfinite(self.values[ids])]
        parts = []
        if len(absent):
            parts.append(f"{len(absent):,} test ind{'ex has' if len(absent) == 1 else 'ices have'} no prediction: "
                         f"{first_ids(absent, k)}")
        if len(bad):
            shown = ", ".join(f"{int(i)} ({float(self.values[i])!r})" for i in bad[:k])
            more = f", ... ({len(bad) - k:,} more)" if len(bad) > k else ""
            parts.append(f"{len(bad):,} prediction{' is' if len(bad) == 1 else 's are'} not finite: {shown}{more}")
        return "; ".join(parts) or None

    def raise_problems(self) -> None:
        """Raise :class:`PredictionError` listing the format problems (at most ``MAX_SHOWN``), if any."""
        if not self.problems:
            return
        count = len(self.problems)
        lines = [f"{self.path}: invalid {self.kind.upper()} prediction file ({count} problem{'s' if count != 1 else ''})"]
        lines += [f"  {p}" for p in self.problems[:MAX_SHOWN]]
        if count > MAX_SHOWN:
            lines.append(f"  ... and {count - MAX_SHOWN} more")
        raise PredictionError("\n".join(lines))


def first_ids(ids: np.ndarray, k: int = 5) -> str:
    """``"3, 9, 12, ... (40 more)"``: the first ``k`` of ``ids`` and how many follow."""
    shown = ", ".join(str(int(v)) for v in ids[:k])
    return shown + (f", ... ({len(ids) - k:,} more)" if len(ids) > k else "")


def parse_predictions(path: str | Path, test: TestSet | None = None) -> PredictionFile:
    """Parse a prediction file (JSON or TSV, told apart by its first non-blank character).

    Args:
        path: the file.
        test: the test set; gives ``n = len(test)`` (else 71,103) and, for TSV files, the
            sequence each line must carry (not checked without it).

    Returns:
        :class:`PredictionFile`; its ``problems`` list every format problem (bad JSON, a key that
        is not a canonical decimal index, out of range or repeated, a value that is not a number,
        a TSV line without exactly two columns, a non-nucleotide sequence, a prediction that is
        not a number, a wrong line count, a sequence differing from the test sequence there).

    Raises:
        PredictionError: ``path`` is not a file.
    """
    path = Path(path)
    if not path.is_file():
        raise PredictionError(f"{path}: no such file")
    n = len(test) if test is not None else N_TEST
    raw = path.read_bytes()
    kind = "json" if raw.lstrip()[:1] in (b"{", b"[") else "tsv"
    out = PredictionFile(path, kind, np.full(n, np.nan), np.zeros(n, dtype=bool))
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        out.problems.append(f"not UTF-8 text (byte {exc.start})")
        return out
    if kind == "json":
        _parse_json(text, out)
    else:
        _parse_tsv(text, out, test)
    return out


def read_predictions(path: str | Path, test: TestSet) -> np.ndarray:
    """Read predictions into test order (:func:`parse_predictions`, refusing any format problem).

    Returns:
        ``(len(test),) float64``; NaN for indices absent from a JSON file; NaN/inf values as given
        (the scorer refuses them on a board that needs them).

    Raises:
        PredictionError: a missing file or any format problem (file named, each problem with its
            key or line).
    """
    parsed = parse_predictions(path, test)
    parsed.raise_problems()
    return parsed.values


def _number(value) -> float | None:
    """A JSON value as float (±inf when too large), or None when it is not a number."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        return float(value)
    except OverflowError:  # an integer literal beyond float64
        return float("inf") if value > 0 else float("-inf")


def _parse_json(text: str, out: PredictionFile) -> None:
    n = len(out.values)
    try:  # every object becomes ("object", [(key, value), ...]) so repeated keys stay visible
        obj = json.loads(text, object_pairs_hook=lambda pairs: ("object", pairs))
    except json.JSONDecodeError as exc:
        out.problems.append(f"line {exc.lineno}, column {exc.colno}: not valid JSON: {exc.msg}")
        return
    if not (isinstance(obj, tuple) and obj[0] == "object"):
        out.problems.append('expected one JSON object {"index": prediction, ...}')
        return
    problems, values, given = out.problems, out.values, out.given
    for key, value in obj[1]:
        if not _INDEX.fullmatch(key):
            problems.append(f"key {key!r} is not a test index (a decimal integer 0..{n - 1}, no sign or leading zero)")
            continue
        index = int(key)
        if index >= n:
            problems.append(f"key {key!r} is out of range 0..{n - 1}")
            continue
        if given[index]:
            problems.append(f"duplicate key {key!r}")
            continue
        number = _number(value)
        if number is None:
            shown = "an object" if isinstance(value, tuple) else repr(value)
            problems.append(f"key {key!r}: value {shown} is not a number")
            continue
        given[index] = True
        values[index] = number


def _parse_tsv(text: str, out: PredictionFile, test: TestSet | None) -> None:
    n = len(out.values)
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    out.lines = len(lines)
    problems, values, given = out.problems, out.values, out.given
    sequences: list[str | None] = []
    for number, line in enumerate(lines, 1):
        if line.endswith("\r"):
            line = line[:-1]
        seq, tab, value = line.partition("\t")
        if line == "":
            problems.append(f"line {number}: empty line")
            sequences.append(None)
            continue
        if not tab or "\t" in value:
            problems.append(f"line {number}: expected 2 tab-separated columns (sequence, prediction), "
                            f"found {line.count(chr(9)) + 1}")
            sequences.append(None)
            continue
        valid = _SEQUENCE.fullmatch(seq) is not None
        if not valid:
            problems.append(f"line {number}: sequence {seq[:20]!r}{'...' if len(seq) > 20 else ''} is not "
                            "a nucleotide sequence (A, C, G, T, N)")
        if _NUMBER.fullmatch(value) or _NONFINITE.fullmatch(value):
            if number <= n:
                given[number - 1] = True
                values[number - 1] = float(value)
        else:
            hint = " (no header line is expected)" if number == 1 else ""
            problems.append(f"line {number}: prediction {value!r} is not a number{hint}")
        sequences.append(seq.upper() if valid else None)
    if len(lines) != n:
        problems.append(f"{len(lines):,} lines; expected one per test sequence ({n:,}) in test order")
    if test is not None:
        _check_order(sequences, test, problems)


def _check_order(sequences: list[str | None], test: TestSet, problems: list[str]) -> None:
    """Add a problem for each line (first 5, then a count) whose sequence is not the test sequence
    at that index; lines already refused (None: no sequence, or not nucleotides) are skipped.
    Compared as codes, vectorised."""
    m = min(len(sequences), len(test))
    skipped = np.array([s is None for s in sequences[:m]], dtype=bool)
    codes, lengths = encoding.encode([s or "" for s in sequences[:m]], width=test.table.codes.shape[1])
    want_codes, want_lengths = test.table.codes[:m], test.table.lengths[:m]
    cols = np.arange(codes.shape[1])
    inside = cols < np.minimum(lengths, want_lengths)[:, None]
    same = (lengths == want_lengths) & ~((codes != want_codes) & inside).any(axis=1)
    wrong = np.flatnonzero(~same & ~skipped)
    if not len(wrong):
        return
    expected = test.table.sequences()
    first_at: dict[str, int] = {}
    for i, seq in enumerate(expected):
        first_at.setdefault(seq, i)
    for i in wrong[:5]:
        j = first_at.get(sequences[i])
        place = (f"it is test sequence {j}: rows are out of test order" if j is not None
                 else "it is not a test sequence")
        problems.append(f"line {i + 1}: sequence differs from test sequence {i} ({place})")
    if len(wrong) > 5:
        problems.append(f"... {len(wrong) - 5} more lines whose sequence differs from the test sequence at that index")
