"""The layout of a run directory of ``harness run``: its paths, the readers of its files, and the
verification of a finished fold. Every other module reaches run files only through here.

Layout (written by :mod:`harness.runner`, :mod:`harness.splits` and :mod:`harness.ensemble`)::

    run.json                          the run's settings and software versions
    run.lock                          held (flock) while a process runs here
    split.json, split.npy             the fold manifest shared by every method
    methods/<name>/config.json        the resolved profile
    methods/<name>/oof.npy            (N_train,) out-of-fold predictions (NaN where never held out)
    methods/<name>/test.npy           (N_test,) test predictions, mean over folds
    methods/<name>/scores.json        official scores per board + OOF Pearson r / Spearman ρ
    methods/<name>/fold<k>/model/     the fitted method (Method.save)
    methods/<name>/fold<k>/oof.npy, test.npy
    methods/<name>/fold<k>/done.json  timings, held-out r, "files": the XXH3-128 manifest of
                                      oof.npy, test.npy and model/ (:mod:`harness.integrity`)
    methods/<name>/fold<k>/work/      resume checkpoints (and the fit's metric logs) while the fold runs
    methods/<name>/fold<k>/logs/      the fit's metric logs once the fold is done (:mod:`harness.tracking`:
                                      metrics.csv, tensorboard/, mlflow.db); informative, not verified
    methods/ensemble/                 ``harness ensemble``: as a method, plus stacker/ and ensemble.json

:class:`RunDir`, :class:`MethodDir` and :class:`FoldDir` only name paths (nothing is read or
created by constructing them); the functions below read and verify. Nothing in a run directory
is trusted: predictions are read with ``allow_pickle=False`` and checked
(:func:`load_predictions`), a fold's files are verified against its ``done.json`` manifest
(:func:`fold_problem`, :func:`verified_model_dir`), and symbolic links are refused, never followed.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .data import DataError, SeqTable, TestSet, load_test_set, read_table
from .integrity import IntegrityError, verify
from .io import UnsafePath, find_links, read_json, refuse_links
from .splits import fingerprint

RUN_JSON = "run.json"
LOCK_FILE = "run.lock"
SPLIT_JSON = "split.json"
SPLIT_NPY = "split.npy"
METHODS = "methods"
#: the method directory ``harness ensemble`` writes
ENSEMBLE = "ensemble"
CONFIG = "config.json"
OOF = "oof.npy"
TEST = "test.npy"
SCORES = "scores.json"
DONE = "done.json"
MODEL = "model"
WORK = "work"
#: a done fold's metric logs (moved out of :data:`WORK`, :func:`harness.tracking.keep_logs`)
LOGS = "logs"
STACKER = "stacker"
STACKER_JSON = "stacker.json"
ENSEMBLE_JSON = "ensemble.json"
#: ``done.json`` key holding the fold's file manifest (:func:`harness.integrity.manifest`).
MANIFEST_KEY = "files"


@dataclass(frozen=True)
class FoldDir:
    """``methods/<name>/fold<k>/`` of a run: the paths of one (method, fold) job's files."""

    path: Path

    @property
    def model(self) -> Path:
        return self.path / MODEL

    @property
    def work(self) -> Path:
        return self.path / WORK

    @property
    def logs(self) -> Path:
        return self.path / LOGS

    @property
    def oof(self) -> Path:
        return self.path / OOF

    @property
    def test(self) -> Path:
        return self.path / TEST

    @property
    def done(self) -> Path:
        return self.path / DONE


@dataclass(frozen=True)
class MethodDir:
    """``methods/<name>/`` of a run: a method's (or the ensemble's) files."""

    path: Path

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def config(self) -> Path:
        return self.path / CONFIG

    @property
    def oof(self) -> Path:
        return self.path / OOF

    @property
    def test(self) -> Path:
        return self.path / TEST

    @property
    def scores(self) -> Path:
        return self.path / SCORES

    @property
    def stacker(self) -> Path:
        """``stacker/``: the ensemble's saved stacker (:func:`harness.ensemble.load_stacker`)."""
        return self.path / STACKER

    @property
    def stacker_json(self) -> Path:
        return self.stacker / STACKER_JSON

    @property
    def stacker_oof(self) -> Path:
        """``stacker_oof.npy``: the ensemble's stacker's out-of-fold predictions."""
        return self.path / "stacker_oof.npy"

    @property
    def stacker_test(self) -> Path:
        """``stacker_test.npy``: the ensemble's stacker's test predictions."""
        return self.path / "stacker_test.npy"

    @property
    def ensemble_json(self) -> Path:
        """``ensemble.json``: the ensemble's record (stacker, members, scores, stacker manifest)."""
        return self.path / ENSEMBLE_JSON

    def fold(self, k: int) -> FoldDir:
        return FoldDir(fold_path(self.path, k))


def fold_path(directory: str | os.PathLike, k: int) -> Path:
    """``directory/fold<k>``: a method's fold ``k``, or inner fold ``k`` of the ensemble's stacker."""
    return Path(directory) / f"fold{int(k)}"


@dataclass(frozen=True)
class RunDir:
    """A run directory of ``harness run`` (see the module docstring for its layout)."""

    path: Path

    def __init__(self, path: str | os.PathLike) -> None:
        object.__setattr__(self, "path", Path(path))

    @property
    def run_json(self) -> Path:
        return self.path / RUN_JSON

    @property
    def lock(self) -> Path:
        return self.path / LOCK_FILE

    @property
    def split_json(self) -> Path:
        return self.path / SPLIT_JSON

    @property
    def split_npy(self) -> Path:
        return self.path / SPLIT_NPY

    @property
    def methods_dir(self) -> Path:
        return self.path / METHODS

    def method(self, name: str) -> MethodDir:
        """``methods/<name>/``; ``name`` must be a plain directory name (never a path)."""
        if not name or name in (".", "..") or "/" in name or "\\" in name:
            raise ValueError(f"{self.path}: {name!r} is not a method name")
        return MethodDir(self.methods_dir / name)

    @property
    def ensemble(self) -> MethodDir:
        return self.method(ENSEMBLE)

    def fold(self, name: str, k: int) -> FoldDir:
        return self.method(name).fold(k)

    def info(self) -> dict:
        """``run.json`` (:func:`read_run_json`)."""
        return read_run_json(self.path)

    def methods(self) -> list[str]:
        """:func:`run_methods`."""
        return run_methods(self.path)


# --------------------------------------------------------------------------------------------
# Reading a run
# --------------------------------------------------------------------------------------------

def read_run_json(run_dir: str | os.PathLike) -> dict:
    """The run's ``run.json`` as a dict.

    Raises:
        FileNotFoundError: ``run_dir`` holds no ``run.json`` (not a run directory).
    """
    path = RunDir(run_dir).run_json
    if not path.is_file():
        raise FileNotFoundError(f"{run_dir}: no run.json here; is this a run directory of `harness run`?")
    return read_json(path)


def snv_pairs_of(info: dict) -> Path | None:
    """The SNV-pair file the run scored with, from ``run.json``.

    Reads the ``snv_pairs`` field (recorded by the runner); for older run files without it, parses
    the path out of ``snv_source`` (``"given file (PATH), N pairs"``). Returns None when the run used
    the official file inside the data directory or the public pairs only.
    """
    if info.get("snv_pairs"):
        return Path(info["snv_pairs"])
    match = re.match(r"^given file \((.*)\), \d+ pairs$", str(info.get("snv_source", "")))
    return Path(match.group(1)) if match else None


def run_test_set(run_dir: str | os.PathLike, info: dict | None = None, data_dir: str | os.PathLike | None = None,
                 snv_pairs: str | os.PathLike | None = None) -> TestSet:
    """Re-load the test set a run was scored on (``run.json``: ``data_dir`` and the SNV pairs).

    Args:
        run_dir: the run directory.
        info: its ``run.json`` (read when None).
        data_dir, snv_pairs: overrides, e.g. when the run was made on another machine.

    Returns:
        The :class:`~harness.data.TestSet`; ``simulated`` is copied from ``run.json``.

    Raises:
        DataError: the data directory or the SNV-pair file recorded in ``run.json`` is gone (the
            message says which override to give), or the test set has another size than the run's.
    """
    info = info if info is not None else read_run_json(run_dir)
    data = Path(data_dir) if data_dir is not None else Path(info.get("data_dir", ""))
    if not data_dir and not info.get("data_dir"):
        raise DataError(f"{run_dir}/run.json: no data_dir recorded")
    if not data.is_dir():
        raise DataError(f"{run_dir}/run.json: data directory {data} does not exist here "
                        "(give the data directory explicitly)")
    pairs = Path(snv_pairs) if snv_pairs is not None else snv_pairs_of(info)
    if pairs is not None and not pairs.is_file():
        raise DataError(f"{run_dir}/run.json: SNV pair file {pairs} recorded for this run does not exist here")
    test = load_test_set(data, pairs)
    test.simulated = bool(info.get("simulated", test.simulated))
    if info.get("n_test") is not None and int(info["n_test"]) != len(test):
        raise DataError(f"{run_dir}: the run predicted {info['n_test']} test sequences but {data} holds {len(test)}")
    return test


def run_train_table(run_dir: str | os.PathLike, info: dict | None = None,
                    train: str | os.PathLike | None = None) -> SeqTable:
    """The training rows of a run (sequences and targets), checked against its split manifest.

    The file is ``run.json``'s ``train`` (or ``train``). It is read with ``skip_bad_rows=True``:
    a clean file reads identically either way, and a run made with ``--skip-bad-rows`` gets the
    same rows it trained on. The rows must match ``split.json``'s ``n_rows`` and
    ``train_fingerprint`` (:func:`harness.splits.fingerprint`).

    Returns:
        :class:`~harness.data.SeqTable` with ``y`` ``(N_train,) float32``.

    Raises:
        DataError: the training file is gone or is not the one the run was split for.
    """
    info = info if info is not None else read_run_json(run_dir)
    path = Path(train) if train is not None else Path(info.get("train", ""))
    if not path.is_file():
        raise DataError(f"{run_dir}/run.json: training file {path} does not exist here")
    table = read_table(path, skip_bad_rows=True)
    split_path = RunDir(run_dir).split_json
    manifest = read_json(split_path) if split_path.is_file() else {}
    n_rows = manifest.get("n_rows", info.get("n_train"))
    if n_rows is not None and int(n_rows) != len(table):
        raise DataError(f"{path}: {len(table):,} training rows, but run {run_dir} was split for {int(n_rows):,}")
    if manifest.get("train_fingerprint") and manifest["train_fingerprint"] != fingerprint(table):
        raise DataError(f"{path}: the training rows differ from those run {run_dir} was split for "
                        "(split.json train_fingerprint)")
    return table


def run_methods(run_dir: str | os.PathLike) -> list[str]:
    """Names of the methods with a ``methods/<name>/`` directory in the run, sorted."""
    root = RunDir(run_dir).methods_dir
    return sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []


def split_kind(run_dir: str | os.PathLike, info: dict | None = None) -> str:
    """``"kfold"``, ``"holdout"`` or ``"none"``: ``split.json``'s ``spec.kind``, else ``run.json``'s
    ``split.kind`` (``"kfold"`` when neither records one)."""
    path = RunDir(run_dir).split_json
    if path.is_file():
        kind = read_json(path).get("spec", {}).get("kind")
        if kind:
            return kind
    info = info if info is not None else read_run_json(run_dir)
    return (info.get("split") or {}).get("kind", "kfold")


def load_predictions(path: str | os.PathLike, n: int, allow_nan: bool = False) -> np.ndarray:
    """A prediction array a run wrote (``oof.npy``, ``test.npy``), checked before it is trusted.

    Read with ``allow_pickle=False`` (a planted object array is refused, never unpickled).

    Args:
        path: the ``.npy`` file; ``n``: the length it must have.
        allow_nan: NaN marks rows without a prediction (a method's ``oof.npy`` of a hold-out
            run); inf is refused either way.

    Returns:
        ``(n,) float64``.

    Raises:
        DataError: the file is missing or unreadable, pickled, not a 1-D real array of length
            ``n``, or holds non-finite values (NaN allowed with ``allow_nan``); the message names
            the file and, for bad values, how many and the first index.
    """
    path = Path(path)
    if path.is_symlink() or not path.is_file():
        raise DataError(f"{path}: missing or not a regular file")
    try:
        pred = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise DataError(f"{path}: not a readable .npy array ({exc})") from exc
    if not isinstance(pred, np.ndarray) or pred.dtype.kind not in "fiu" or pred.shape != (n,):
        raise DataError(f"{path}: shape {getattr(pred, 'shape', '?')}, expected ({n},) real numbers "
                        f"(dtype {getattr(pred, 'dtype', '?')})")
    pred = pred.astype(np.float64)
    bad = np.flatnonzero(np.isinf(pred) if allow_nan else ~np.isfinite(pred))
    if len(bad):
        raise DataError(f"{path}: {len(bad):,} of {n:,} values are {'inf' if allow_nan else 'NaN or inf'} "
                        f"(first: index {bad[0]})")
    return pred


# --------------------------------------------------------------------------------------------
# Verifying a finished fold
# --------------------------------------------------------------------------------------------

def fold_problem(run_dir: str | os.PathLike, fold_dir: str | os.PathLike) -> str | None:
    """None when the fold is done and every file its ``done.json`` lists matches its digest; ``""``
    when it has no ``done.json`` (not done); else the problem, one line naming the file.

    Raises:
        harness.io.UnsafePath: a symbolic link on the way to the fold's files (never followed).
    """
    fold = FoldDir(Path(fold_dir))
    done_path = refuse_links(Path(run_dir), fold.done)
    if not done_path.exists():
        return ""
    try:
        verified_done(fold.path)
    except (IntegrityError, ValueError) as exc:
        if isinstance(exc, UnsafePath):
            raise
        return str(exc)
    return None


def verified_done(fold_dir: str | os.PathLike, prefix: str = "") -> dict:
    """The fold's ``done.json`` after verifying the files of its manifest whose paths start with
    ``prefix`` (all: ``""``; the model: ``"model/"``); a manifest must cover ``oof.npy``,
    ``test.npy`` and at least one ``model/`` file.

    Raises:
        harness.integrity.IntegrityError: no manifest (a fold of an older harness version), or a
            file missing, changed or truncated (named).
        ValueError: ``done.json`` is not a JSON object.
        harness.io.UnsafePath: a listed path crosses a symbolic link.
    """
    fold = FoldDir(Path(fold_dir))
    done = read_json(fold.done, dict)
    files = done.get(MANIFEST_KEY)
    if not isinstance(files, dict) or not files:
        raise IntegrityError(f"{fold.done}: no file manifest (written by an older harness version), so the "
                             "fold's files cannot be verified")
    if not {OOF, TEST} <= set(files) or not any(str(f).startswith(MODEL + "/") for f in files):
        raise IntegrityError(f"{fold.done}: the manifest does not cover oof.npy, test.npy and model/")
    wanted = {rel: entry for rel, entry in files.items() if rel.startswith(prefix)}
    for rel in wanted:
        refuse_links(fold.path, fold.path / rel)
    verify(fold.path, wanted)
    return done


def verified_model_dir(fold_dir: str | os.PathLike) -> Path:
    """``fold_dir/model`` of a finished fold, after checking it is exactly what the harness saved.

    Call this before anything loads a fold's model (:meth:`harness.method.Method.load`): every file
    of ``model/`` must match the digest recorded in the fold's ``done.json`` when it was saved
    (:mod:`harness.integrity`), no other file may be there, and no path from the run directory
    down (``<run>/methods/<name>/fold<k>/...``) may be a symbolic link.

    Returns:
        The model directory.

    Raises:
        FileNotFoundError: the fold has no ``done.json`` (not finished).
        harness.integrity.IntegrityError: no manifest (an older harness version's fold: rerun it),
            or a model file missing, changed, truncated or not listed (named).
        harness.io.UnsafePath: a symbolic link on the way.
    """
    fold = FoldDir(Path(fold_dir))
    parts = fold.path.parts
    root = fold.path.parents[2] if len(parts) >= 4 and parts[-3] == METHODS else fold.path
    refuse_links(root, fold.model)
    if not fold.done.is_file():
        raise FileNotFoundError(f"{fold.done}: the fold is not finished")
    done = verified_done(fold.path, MODEL + "/")
    find_links(fold.model)
    present = {p.relative_to(fold.path).as_posix() for p in fold.model.rglob("*") if p.is_file()}
    extra = sorted(present - set(done[MANIFEST_KEY]))
    if extra:
        raise IntegrityError(f"{fold.path / extra[0]}: not a file the harness saved (not in done.json's manifest)")
    return fold.model
