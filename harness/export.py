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
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .data import DataError, TestSet, read_table
from .data.testset import TEST_FILE
from .io import write_text
from .rundir import RunDir, load_predictions, read_run_json, run_methods
from .scoring.predictions import MAX_SHOWN, first_ids, parse_predictions

#: Test sequences of the challenge, and the public-leaderboard subset.
N_TEST = 71103
N_PUBLIC = 9045
FORMATS = ("json", "tsv")


# --------------------------------------------------------------------------------------------
# Export
# --------------------------------------------------------------------------------------------

def method_test_predictions(run_dir: str | Path, method: str) -> np.ndarray:
    """A method's fold-averaged test predictions ``methods/<method>/test.npy``.

    Returns:
        ``(N_test,) float64``.

    Raises:
        FileNotFoundError: no such method (the message lists the run's methods).
        DataError (a ValueError): ``run.json`` records no ``n_test``, or the file is not one finite
            value per test sequence of the run (read with ``allow_pickle=False``;
            :func:`harness.rundir.load_predictions`, which names the file).
    """
    run_dir = Path(run_dir)
    layout = RunDir(run_dir)
    info = read_run_json(run_dir)
    path = layout.method(method).test
    if not path.is_file():
        have = [m for m in run_methods(run_dir) if layout.method(m).test.is_file()]
        raise FileNotFoundError(f"{path}: no test predictions for {method!r}; the run has {', '.join(have) or 'none'}")
    if info.get("n_test") is None:
        raise DataError(f"{run_dir}/run.json: no n_test recorded, so {path} cannot be checked against the test set")
    return load_predictions(path, int(info["n_test"]))


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

    The file is read by the scorer's parser (:func:`harness.scoring.parse_predictions`: canonical
    decimal keys, no duplicate, numbers only; TSV lines ``sequence<TAB>number`` in test order, the
    order checked when ``test`` is given). On top of its format problems this refuses NaN/inf
    values and, for JSON, anything but all ``N`` indices or exactly the 9,045 public-leaderboard
    ids (checked against ``test.public_ids`` when ``test`` is given). ``N`` is ``len(test)``, else
    71,103.

    Returns:
        :class:`Validation` (``ok`` when no problem was found).

    Raises:
        FileNotFoundError: ``path`` does not exist.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    parsed = parse_predictions(path, test)
    n = len(parsed.values)
    result = Validation(path, parsed.kind, parsed.lines if parsed.kind == "tsv" else parsed.n_values,
                        problems=parsed.problems + parsed.nonfinite_problems())
    if parsed.kind == "tsv":
        if test is None:
            result.notes.append("sequence order not checked: give --data DIR or set HARNESS_DATA")
        return result
    if parsed.problems and parsed.n_values == 0:
        return result  # not a JSON object of predictions at all: the count says nothing more
    given = parsed.n_values
    public = test.public_ids if test is not None else None
    if given == n:
        return result
    if given == N_PUBLIC or (public is not None and given == len(public)):
        result.public_only = True
        if public is not None:
            ids = np.flatnonzero(parsed.given)
            extra = np.setdiff1d(ids, public)
            missing = np.setdiff1d(public, ids)
            if len(extra) or len(missing):
                result.problems.append(f"{given:,} keys but not the public-leaderboard ids: "
                                       f"{len(extra)} keys are not public ids ({first_ids(extra)}), "
                                       f"{len(missing)} public ids are missing ({first_ids(missing)})")
            else:
                result.notes.append("public-leaderboard submission: the 9,045 public ids only; it can be scored "
                                    "on the public board only")
        else:
            result.notes.append(f"{given:,} keys: a public-leaderboard submission if these are the public ids "
                                "(not checked: give --data DIR or set HARNESS_DATA)")
        return result
    missing = np.flatnonzero(~parsed.given)
    result.problems.append(f"{given:,} distinct test indices; a submission needs all {n:,} (0..{n - 1}) or exactly "
                           f"the {N_PUBLIC:,} public-leaderboard ids; missing indices: {first_ids(missing)}")
    return result
