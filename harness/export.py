"""``harness export`` and ``harness validate-submission``: challenge submission files.

Formats (Random Promoter DREAM Challenge 2022; ``public_leaderboard_ids/sample_submission.json``
of the official release, Zenodo 10633252):

* JSON: one object ``{"0": prediction, "1": ..., "71102": ...}``; keys are the 0-based test
  indices as decimal strings, values plain JSON numbers. A public-leaderboard submission holds only
  the 9,045 public ids.
* TSV: ``sequence<TAB>prediction``, one row per test sequence, in test order, no header (the
  layout of the test file ``filtered_test_data_with_MAUDE_expression.txt``).

Every file is written atomically (:mod:`harness.io`).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import click
import numpy as np

from .data import DataError, TestSet, load_test_set, read_table, resolve_data_dir
from .data.testset import TEST_FILE
from .cli_errors import friendly_errors
from .ensemble import read_run_json
from .io import write_text

#: Test sequences of the challenge, and the public-leaderboard subset.
N_TEST = 71103
N_PUBLIC = 9045
FORMATS = ("json", "tsv")
_INDEX = re.compile(r"0|[1-9][0-9]*")
_SEQUENCE = re.compile(r"[ACGTNacgtn]+")
#: Problems listed in a validation message before "... and N more".
MAX_SHOWN = 20


# --------------------------------------------------------------------------------------------
# Export
# --------------------------------------------------------------------------------------------

def method_test_predictions(run_dir: str | Path, method: str) -> np.ndarray:
    """A method's fold-averaged test predictions ``methods/<method>/test.npy``.

    Returns:
        ``(N_test,) float64``.

    Raises:
        FileNotFoundError: no such method (the message lists the run's methods).
        ValueError: not one finite value per test sequence of the run (``run.json`` ``n_test``).
    """
    run_dir = Path(run_dir)
    info = read_run_json(run_dir)
    path = run_dir / "methods" / method / "test.npy"
    if not path.is_file():
        have = sorted(p.parent.name for p in (run_dir / "methods").glob("*/test.npy"))
        raise FileNotFoundError(f"{path}: no test predictions for {method!r}; the run has {', '.join(have) or 'none'}")
    pred = np.load(path).astype(np.float64)
    n = int(info.get("n_test", len(pred)))
    if pred.shape != (n,):
        raise ValueError(f"{path}: shape {pred.shape}, expected ({n},) for the run's test set")
    bad = np.flatnonzero(~np.isfinite(pred))
    if len(bad):
        raise ValueError(f"{path}: {len(bad)} predictions are NaN or inf (first: test index {bad[0]})")
    return pred


def submission_json(pred: np.ndarray) -> str:
    """The challenge JSON ``{"0": p0, ..., "<N-1>": p}`` of ``(N,)`` predictions, keys in index order,
    values as Python's shortest round-trip float repr. Raises ValueError on NaN/inf."""
    return json.dumps({str(i): float(v) for i, v in enumerate(np.asarray(pred, dtype=np.float64))}, allow_nan=False)


def submission_tsv(pred: np.ndarray, sequences: list[str]) -> str:
    """``sequence<TAB>prediction`` lines in test order for ``(N,)`` predictions and ``N`` sequences.

    Raises:
        ValueError: lengths differ or a prediction is NaN/inf.
    """
    pred = np.asarray(pred, dtype=np.float64)
    if len(pred) != len(sequences):
        raise ValueError(f"{len(pred)} predictions for {len(sequences)} test sequences")
    if not np.isfinite(pred).all():
        raise ValueError("predictions hold NaN or inf")
    return "".join(f"{s}\t{float(v)!r}\n" for s, v in zip(sequences, pred.tolist()))


def export_submission(run_dir: str | Path, method: str, fmt: str, out: str | Path,
                      data_dir: str | Path | None = None) -> Path:
    """Write a method's test predictions as a challenge submission file.

    Args:
        run_dir: a run directory of ``harness run``; ``method``: a method name or ``ensemble``.
        fmt: ``"json"`` or ``"tsv"``; ``out``: the file to write (atomically).
        data_dir: the data directory holding the test file (TSV only; default ``run.json``'s).

    Returns:
        ``out`` as a Path.

    Raises:
        ValueError: unknown format, a run on simulated data, predictions of the wrong length or
            not finite; FileNotFoundError: no such method; DataError: the test file is gone.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose from {', '.join(FORMATS)}")
    info = read_run_json(run_dir)
    if info.get("simulated"):
        raise ValueError(f"{run_dir} is a run on simulated data; its test set is not the challenge's, "
                         "so it has no submission to export")
    pred = method_test_predictions(run_dir, method)
    if fmt == "json":
        text = submission_json(pred)
    else:
        data = Path(data_dir) if data_dir else Path(info.get("data_dir", ""))
        if not (data / TEST_FILE).is_file():
            raise DataError(f"{data}: no test file {TEST_FILE} for the TSV's sequences (give the data directory)")
        sequences = read_table(data / TEST_FILE).sequences()
        text = submission_tsv(pred, sequences)
    out = Path(out)
    write_text(out, text)
    return out


# --------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------

@dataclass
class Validation:
    """Outcome of :func:`validate_submission`.

    Attributes:
        path: the file; ``kind``: ``"json"`` or ``"tsv"``.
        n_values: predictions read (valid keys or rows).
        public_only: a JSON file with exactly the 9,045 public-leaderboard ids.
        problems: one line each, naming the key or the line (empty = valid).
        notes: what was not checked or what the file is good for.
    """

    path: Path
    kind: str
    n_values: int = 0
    public_only: bool = False
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when no problem was found."""
        return not self.problems

    def message(self) -> str:
        """The problems (at most ``MAX_SHOWN``, then a count) or a one-line OK, then the notes."""
        if self.ok:
            what = ("9,045 public-leaderboard predictions" if self.public_only
                    else f"{self.n_values:,} predictions")
            lines = [f"{self.path}: valid {self.kind.upper()} submission, {what}"]
        else:
            lines = [f"{self.path}: invalid {self.kind.upper()} submission ({len(self.problems)} problem"
                     f"{'s' if len(self.problems) != 1 else ''})"]
            lines += [f"  {p}" for p in self.problems[:MAX_SHOWN]]
            if len(self.problems) > MAX_SHOWN:
                lines.append(f"  ... and {len(self.problems) - MAX_SHOWN} more")
        return "\n".join(lines + [f"note: {n}" for n in self.notes])


def validate_submission(path: str | Path, test: TestSet | None = None) -> Validation:
    """Check a submission file without scoring it.

    JSON: a single object; keys are canonical decimal test indices in ``0..N-1`` (no sign, no
    leading zero), no duplicate key, values finite numbers (not strings, booleans, null, NaN or
    Infinity), and either all ``N`` indices or exactly the 9,045 public-leaderboard ids (checked
    against ``test.public_ids`` when ``test`` is given). TSV: two tab-separated columns per line,
    nucleotide sequence and a finite number, ``N`` lines, and, with ``test``, each line's sequence
    equal to the test sequence at that index. ``N`` is ``len(test)``, else 71,103.

    Returns:
        :class:`Validation` (``ok`` when no problem was found).

    Raises:
        FileNotFoundError: ``path`` does not exist.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return Validation(path, "json" if raw.lstrip()[:1] == b"{" else "tsv",
                          problems=[f"not UTF-8 text (byte {exc.start})"])
    n = len(test) if test is not None else N_TEST
    if text.lstrip()[:1] in ("{", "["):
        return _validate_json(path, text, n, test)
    return _validate_tsv(path, text, n, test)


def _validate_json(path: Path, text: str, n: int, test: TestSet | None) -> Validation:
    result = Validation(path, "json")
    try:
        obj = json.loads(text, object_pairs_hook=lambda pairs: ("object", pairs))
    except json.JSONDecodeError as exc:
        result.problems.append(f"line {exc.lineno}, column {exc.colno}: not valid JSON: {exc.msg}")
        return result
    if not (isinstance(obj, tuple) and obj[0] == "object"):
        result.problems.append('expected one JSON object {"index": prediction, ...}')
        return result
    seen: set[int] = set()
    for key, value in obj[1]:
        if not _INDEX.fullmatch(key):
            result.problems.append(f"key {key!r} is not a test index (a decimal integer 0..{n - 1})")
            continue
        index = int(key)
        if index >= n:
            result.problems.append(f"key {key!r} is out of range 0..{n - 1}")
            continue
        if index in seen:
            result.problems.append(f"duplicate key {key!r}")
            continue
        seen.add(index)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            shown = value if not isinstance(value, tuple) else "an object"
            result.problems.append(f"key {key!r}: value {shown!r} is not a number")
        elif not math.isfinite(value):
            result.problems.append(f"key {key!r}: value is {value!r}, not a finite number")
    result.n_values = len(seen)
    public = test.public_ids if test is not None else None
    if len(seen) == n:
        return result
    if len(seen) == N_PUBLIC or (public is not None and len(seen) == len(public)):
        result.public_only = True
        if public is not None:
            ids = np.fromiter(seen, dtype=np.int64)
            extra = np.setdiff1d(ids, public)
            missing = np.setdiff1d(public, ids)
            if len(extra) or len(missing):
                result.problems.append(f"{len(seen):,} keys but not the public-leaderboard ids: "
                                       f"{len(extra)} keys are not public ids ({_first(extra)}), "
                                       f"{len(missing)} public ids are missing ({_first(missing)})")
            else:
                result.notes.append("public-leaderboard submission: the 9,045 public ids only; it can be scored "
                                    "on the public board only")
        else:
            result.notes.append(f"{len(seen):,} keys: a public-leaderboard submission if these are the public ids "
                                "(not checked: give --data DIR or set HARNESS_DATA)")
        return result
    missing = np.setdiff1d(np.arange(n), np.fromiter(seen, dtype=np.int64))
    result.problems.append(f"{len(seen):,} distinct test indices; a submission needs all {n:,} (0..{n - 1}) or exactly "
                           f"the {N_PUBLIC:,} public-leaderboard ids; missing indices: {_first(missing)}")
    return result


def _validate_tsv(path: Path, text: str, n: int, test: TestSet | None) -> Validation:
    result = Validation(path, "tsv")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    sequences: list[str | None] = []
    for number, line in enumerate(lines, 1):
        line = line[:-1] if line.endswith("\r") else line
        fields = line.split("\t")
        if line == "":
            result.problems.append(f"line {number}: empty line")
            sequences.append(None)
            continue
        if len(fields) != 2:
            result.problems.append(f"line {number}: expected 2 tab-separated columns (sequence, prediction), "
                                   f"found {len(fields)}")
            sequences.append(None)
            continue
        seq, value = fields
        if not _SEQUENCE.fullmatch(seq):
            result.problems.append(f"line {number}: sequence {seq[:20]!r}{'...' if len(seq) > 20 else ''} is not "
                                   "a nucleotide sequence (A, C, G, T, N)")
        try:
            number_value = float(value)
        except ValueError:
            hint = " (no header line is expected)" if number == 1 else ""
            result.problems.append(f"line {number}: prediction {value!r} is not a number{hint}")
        else:
            if not math.isfinite(number_value):
                result.problems.append(f"line {number}: prediction {value!r} is not a finite number")
        sequences.append(seq.upper())
    result.n_values = len(lines)
    if len(lines) != n:
        result.problems.append(f"{len(lines):,} lines; expected one per test sequence ({n:,}) in test order")
    if test is None:
        result.notes.append("sequence order not checked: give --data DIR or set HARNESS_DATA")
        return result
    expected = test.table.sequences()
    where = {}
    for i, s in enumerate(expected):
        where.setdefault(s, i)
    wrong = 0
    for i, (got, want) in enumerate(zip(sequences, expected)):
        if got is None or got == want:
            continue
        wrong += 1
        if wrong <= 5:
            j = where.get(got)
            place = (f"it is test sequence {j}: rows are out of test order" if j is not None
                     else "it is not a test sequence")
            result.problems.append(f"line {i + 1}: sequence differs from test sequence {i} ({place})")
    if wrong > 5:
        result.problems.append(f"... {wrong - 5} more lines whose sequence differs from the test sequence at that index")
    return result


def _first(values: np.ndarray, k: int = 5) -> str:
    shown = ", ".join(str(int(v)) for v in values[:k])
    return shown + (f", ... ({len(values) - k} more)" if len(values) > k else "")


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------

@click.command("export")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--method", required=True, help="Method name, or 'ensemble' (after `harness ensemble`).")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="json", show_default=True,
              help='json: {"0": value, ..., "71102": value} (the challenge format); tsv: sequence<TAB>prediction.')
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="File to write.")
@click.option("--data", type=click.Path(path_type=Path), default=None,
              help="Data directory with the test file (TSV; default: the run's data_dir).")
@friendly_errors
def export_cmd(run_dir: Path, method: str, fmt: str, out: Path, data: Path | None) -> None:
    """Write a method's test predictions as a challenge submission (JSON or TSV), then validate it."""
    path = export_submission(run_dir, method, fmt, out, data)
    test = None
    if fmt == "tsv":
        info = read_run_json(run_dir)
        test = load_test_set(data or info["data_dir"])
    check = validate_submission(path, test)
    if not check.ok:  # pragma: no cover - a bug in the exporter
        raise RuntimeError(check.message())
    click.echo(f"wrote {path}: {check.n_values:,} predictions of {method} ({fmt})")


@click.command("validate-submission")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--data", type=click.Path(path_type=Path), default=None,
              help="Data directory: check public ids and TSV sequence order against it (default: $HARNESS_DATA).")
@friendly_errors
def validate_cmd(file: Path, data: Path | None) -> None:
    """Check a submission file: count, index range, duplicate keys, NaN/inf, non-numeric values and,
    with --data, the public ids and the TSV's sequence order. Exits 1 with the reasons when invalid."""
    data_dir = resolve_data_dir(str(data) if data else None)
    test = load_test_set(data_dir) if data_dir is not None else None
    check = validate_submission(file, test)
    if not check.ok:
        raise click.ClickException(check.message())
    click.echo(check.message())
