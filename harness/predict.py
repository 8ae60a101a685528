"""Predictions of a finished run for a user's own sequences: fold averaging, variant effects, ISM.

A run directory of ``harness run`` holds, per method, one fitted model per fold
(``methods/<name>/fold<k>/model/``) and the method's test predictions ``methods/<name>/test.npy``:
the mean over the folds of each fold model's ``predict`` of the test sequences
(:func:`harness.runner._aggregate`). :class:`RunPredictor` applies the same recipe to any
sequences: it loads every fold model of the run's split (``kfold``: K models; ``holdout`` and
``none``: one), each only after :func:`harness.rundir.verified_model_dir` has checked its files
against the digests its ``done.json`` recorded (no link followed), and averages their float64
predictions with the same ``np.mean(..., axis=0)`` over the folds, in fold order. Given the run's
test sequences it therefore reproduces ``test.npy`` bit for bit (for methods whose saved model
predicts exactly as the fitted one, which the plug-in contract checks; ``tests/test_predict.py``).

Rows are predicted in chunks of :data:`PREDICT_CHUNK` (131,072 rows: the 71,103 test sequences are
one call per fold model, as in the run), except for a method whose predictions depend on the rows
predicted together (:func:`depends_on_set`): it gets the whole input in one call per fold model.

Plug-ins may declare two attributes (instance attributes or properties; read with ``getattr``, so
a plug-in without them gets the defaults):

* ``predictions_depend_on_set`` (default False): True when ``predict`` post-processes over the rows
  of the call, e.g. High Schoolers' paper setting (``quantile_output``: each prediction becomes its
  quantile level among the rows of the call; the team's *GetPredictions*). Such predictions of a
  user's set depend on that set; the output header says so.
* ``prediction_units`` (default None: the training target's scale): a text naming another scale,
  e.g. ``"normal CDF level in [0, 1]"`` for BHI's ``postprocess="normal_cdf"``.

Variant effects (:meth:`RunPredictor.variant_effects`) are ``prediction(alt) - prediction(ref)``
from the same fold-averaged predictions; in-silico saturation mutagenesis (ISM,
:meth:`RunPredictor.ism`) is that effect for every single-nucleotide substitution of one sequence
(every position x A, C, G, T), as in DeepSEA / Basset-style ISM maps (Zhou & Troyanskaya 2015;
Kelley et al. 2016).

The ensemble (``--method ensemble``) needs its fitted stacker, which ``harness ensemble`` of this
version does not save (only its predictions): :func:`ensemble_stacker` raises
:class:`EnsembleNotSaved` unless the run has ``methods/ensemble/stacker/`` and
:mod:`harness.ensemble` provides ``load_stacker`` (see :func:`ensemble_stacker` for the interface).
"""

from __future__ import annotations

import io
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from .data import DataError, SeqTable
from .data import encoding
from .data.readers import MAX_LENGTH, raise_bad_lines, sequence_problems
from .data.readers import _plain_file as plain_file
from .integrity import IntegrityError
from .io import atomic_open, read_json
from .rundir import ENSEMBLE, RunDir, read_run_json, verified_model_dir
from .rundir import run_methods as method_dirs

#: Rows per ``predict`` call (a multiple of every batch size the plug-ins use, so batches are the
#: same as in one call); the 71,103 challenge test sequences fit in one chunk.
PREDICT_CHUNK = 1 << 17
#: Bases of an ISM map, in column order.
ISM_BASES = "ACGT"


class EnsembleNotSaved(ValueError):
    """``--method ensemble`` on a run whose ensemble stacker was not saved (only its predictions)."""


# --------------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------------

def run_info(run_dir: str | os.PathLike) -> dict:
    """The run's ``run.json`` (a JSON object).

    Raises:
        FileNotFoundError: ``run_dir`` is not a directory or holds no ``run.json``.
        ValueError: ``run.json`` is not a JSON object.
    """
    info = read_run_json(run_dir)
    if not isinstance(info, dict):
        raise ValueError(f"{Path(run_dir) / 'run.json'}: expected a JSON object, found {type(info).__name__}")
    return info


def run_folds(run_dir: str | os.PathLike, info: dict | None = None) -> int:
    """How many fold models each method of the run has: ``split.json``'s split (``kfold``: its
    folds; ``holdout`` and ``none``: 1), else ``run.json``'s.

    Raises:
        ValueError: no split recorded, or one :class:`harness.splits.SplitSpec` refuses.
    """
    from .splits import SplitSpec

    run_dir = Path(run_dir)
    spec = None
    path = RunDir(run_dir).split_json
    if path.is_file() and not path.is_symlink():
        spec = read_json(path, dict).get("spec")
    if spec is None:
        spec = (info if info is not None else run_info(run_dir)).get("split")
    if not isinstance(spec, dict):
        raise ValueError(f"{run_dir}: neither split.json nor run.json records the run's split")
    try:
        return SplitSpec(**spec).n_folds
    except TypeError as exc:
        raise ValueError(f"{run_dir}/split.json: not a split the harness wrote ({exc})") from exc


def run_methods(run_dir: str | os.PathLike) -> list[str]:
    """The run's methods with test predictions (``methods/<name>/test.npy``), sorted; the ensemble
    is among them when ``harness ensemble`` ran."""
    layout = RunDir(run_dir)
    return [m for m in method_dirs(run_dir) if layout.method(m).test.is_file()]


def load_fold_models(run_dir: str | os.PathLike, method: str, device: str = "auto") -> list:
    """Every fold model of ``method`` in the run, in fold order, each verified before it is loaded.

    Args:
        run_dir: a run directory of ``harness run``.
        method: a method of the run (a registered plug-in name).
        device: where the models predict (``auto``, ``cpu``, ``cuda``, ...; :meth:`Method.load`).

    Returns:
        ``list[harness.method.Method]`` of :func:`run_folds` models.

    Raises:
        ValueError: ``method`` is not a method of the run (the message lists them) or is the
            ensemble; KeyError: the plug-in is not installed here.
        FileNotFoundError: a fold is not finished (no ``done.json``).
        harness.integrity.IntegrityError: a model file is missing, changed or not the harness's
            (:func:`harness.rundir.verified_model_dir`); harness.io.UnsafePath: a symbolic link.
    """
    from . import registry

    run_dir = Path(run_dir)
    info = run_info(run_dir)
    check_method(run_dir, method, allow_ensemble=False)
    cls = registry.get(method)
    models = []
    for k in range(run_folds(run_dir, info)):
        model_dir = verified_model_dir(RunDir(run_dir).fold(method, k).path)
        models.append(cls.load(model_dir, device=device))
    return models


def check_method(run_dir: Path, method: str, allow_ensemble: bool = True) -> None:
    """Refuse a method name that is not one of the run's (before it is used in a path).

    Raises:
        ValueError: the name and the run's methods.
    """
    names = run_methods(run_dir)
    fitted = [m for m in names if m != ENSEMBLE]
    if method == ENSEMBLE and allow_ensemble:
        return
    if method not in fitted:
        raise ValueError(f"{run_dir}: no finished method {method!r}; the run has "
                         f"{', '.join(names) or 'none (no methods/<name>/test.npy)'}")


def fold_mean(fold_predictions: Sequence[np.ndarray]) -> np.ndarray:
    """The mean over folds of ``(N,) float64`` fold predictions, computed as the runner computes a
    method's ``test.npy`` (``np.mean(list, axis=0)`` in fold order): ``(N,) float64``."""
    return np.mean([np.asarray(p, dtype=np.float64) for p in fold_predictions], axis=0)


def depends_on_set(model) -> bool:
    """Whether ``model``'s predictions depend on the other rows of the ``predict`` call (its
    ``predictions_depend_on_set`` attribute; False when it declares nothing)."""
    return bool(getattr(model, "predictions_depend_on_set", False))


def target_units(run_dir: str | os.PathLike, info: dict | None = None) -> str:
    """What a prediction's number means: the scale of the run's training targets.

    Names the training file of ``run.json`` and, when that file is readable here and still has the
    rows the run was split for, the range of its targets (read through the training cache,
    :func:`harness.data.cache.load_training`): e.g. ``"training-target scale of
    train_sequences.txt (targets 0..17 over 6,739,258 rows; DREAM 2022 training files: mean
    expression bin)"``.
    """
    info = info if info is not None else run_info(run_dir)
    train = Path(str(info.get("train") or ""))
    text = f"training-target scale of {train.name or 'the training file'}"
    try:
        from .data.cache import load_training

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                table = load_training(train)
            except DataError:
                table = load_training(train, skip_bad_rows=True)
    except (DataError, OSError, ValueError, IntegrityError):
        return text + " (the file is not readable here: range unknown)"
    split = RunDir(run_dir).split_json
    n_rows = read_json(split, dict).get("n_rows") if split.is_file() else info.get("n_train")
    if n_rows is not None and int(n_rows) != len(table):
        return text + f" (the file now has {len(table):,} rows, the run was split for {int(n_rows):,}: range unknown)"
    y = np.asarray(table.y)
    return text + f" (targets {float(y.min()):.4g}..{float(y.max()):.4g} over {len(y):,} rows)"


# --------------------------------------------------------------------------------------------
# Predicting
# --------------------------------------------------------------------------------------------

@dataclass
class RunPredictor:
    """One method of a finished run, ready to predict new sequences.

    Create with :meth:`open`. The fold models are loaded (after verification) on the first
    prediction and kept.

    Attributes:
        run_dir: the run directory; ``method``: the method (or ``"ensemble"``); ``device``.
        n_folds: fold models averaged per prediction.
        units: what the predictions' numbers mean (:func:`target_units`, or the plug-in's
            ``prediction_units``).
    """

    run_dir: Path
    method: str
    device: str = "auto"
    info: dict = field(default_factory=dict, repr=False)
    n_folds: int = 1
    _models: list | None = field(default=None, repr=False)
    _units: str | None = field(default=None, repr=False)
    _stacker: object | None = field(default=None, repr=False)
    _members: dict = field(default_factory=dict, repr=False)

    @classmethod
    def open(cls, run_dir: str | os.PathLike, method: str, device: str = "auto") -> "RunPredictor":
        """Check the run and the method (nothing is loaded yet).

        Raises:
            FileNotFoundError: not a run directory; ValueError: not a method of the run;
            EnsembleNotSaved: ``method="ensemble"`` without a saved stacker.
        """
        run_dir = Path(run_dir)
        info = run_info(run_dir)
        check_method(run_dir, method)
        predictor = cls(run_dir, method, device, info, run_folds(run_dir, info))
        if method == ENSEMBLE:
            predictor._stacker = ensemble_stacker(run_dir)
        return predictor

    # ----- models ------------------------------------------------------------------------------
    @property
    def models(self) -> list:
        """The fold models, loaded and verified on first use (:func:`load_fold_models`)."""
        if self.method == ENSEMBLE:
            raise ValueError("the ensemble has no fold models of its own; see its members")
        if self._models is None:
            self._models = load_fold_models(self.run_dir, self.method, self.device)
        return self._models

    @property
    def depends_on_set(self) -> bool:
        """Whether a prediction depends on the other sequences predicted with it (:func:`depends_on_set`)."""
        if self.method == ENSEMBLE:
            return any(self._member(m).depends_on_set for m in self._stacker.members)
        return any(depends_on_set(m) for m in self.models)

    @property
    def units(self) -> str:
        """What the numbers mean (the training target's scale unless the plug-in declares another)."""
        if self._units is None:
            declared = None
            if self.method == ENSEMBLE:
                declared = getattr(self._stacker, "units", None)
            else:
                declared = next((u for u in (getattr(m, "prediction_units", None) for m in self.models) if u), None)
            self._units = str(declared) if declared else target_units(self.run_dir, self.info)
        return self._units

    def notes(self) -> list[str]:
        """Lines for an output header: how predictions were made, and caveats."""
        if self.method == ENSEMBLE:
            lines = [f"ensemble of {', '.join(self._stacker.members)} (its saved stacker applied to the members' "
                     "fold-averaged predictions)"]
        else:
            lines = [f"mean of {self.n_folds} fold model(s) (methods/{self.method}/fold0..{self.n_folds - 1}), "
                     f"as methods/{self.method}/test.npy was made"]
        if self.depends_on_set:
            lines.append("predictions depend on the set: the method post-processes over the rows predicted together "
                         "(e.g. High Schoolers' quantile levels), so a sequence's value depends on the other "
                         "sequences of this input; predict a whole set in one call")
        return lines

    def _member(self, name: str) -> "RunPredictor":
        if name not in self._members:
            self._members[name] = RunPredictor.open(self.run_dir, name, self.device)
        return self._members[name]

    # ----- predictions -------------------------------------------------------------------------
    def steps(self, n: int) -> int:
        """Progress steps of :meth:`predict_table` on ``n`` rows (fold models x chunks)."""
        if self.method == ENSEMBLE:
            return sum(self._member(m).steps(n) for m in self._stacker.members)
        chunks = 1 if self.depends_on_set else max(1, -(-n // PREDICT_CHUNK))
        return self.n_folds * chunks

    def predict_table(self, table: SeqTable, on_step: Callable[[], None] | None = None) -> np.ndarray:
        """Fold-averaged predictions of ``table``'s sequences.

        Args:
            table: the sequences (targets ignored).
            on_step: called after each (fold model, chunk) prediction (a progress bar).

        Returns:
            ``(len(table),) float64``, in :attr:`units`.

        Raises:
            ValueError: a model returned the wrong shape or non-finite values (named).
        """
        if self.method == ENSEMBLE:
            columns = np.column_stack([self._member(m).predict_table(table, on_step) for m in self._stacker.members])
            return np.asarray(self._stacker.predict(columns, table), dtype=np.float64)
        n = len(table)
        chunk = n if self.depends_on_set else PREDICT_CHUNK
        fold_predictions = []
        for k, model in enumerate(self.models):
            parts = []
            for start in range(0, n, max(chunk, 1)):
                part = table if (start == 0 and chunk >= n) else table.subset(np.arange(start, min(start + chunk, n)))
                pred = np.asarray(model.predict(part), dtype=np.float64)
                if pred.shape != (len(part),) or not np.isfinite(pred).all():
                    raise ValueError(f"{self.method} fold {k}: predict returned shape {pred.shape} with "
                                     f"{int((~np.isfinite(pred)).sum()) if pred.ndim == 1 else '?'} non-finite "
                                     f"values for {len(part)} sequences")
                parts.append(pred)
                if on_step is not None:
                    on_step()
            fold_predictions.append(np.concatenate(parts) if len(parts) > 1 else parts[0])
        return fold_mean(fold_predictions)

    def predict(self, seqs, on_step: Callable[[], None] | None = None) -> np.ndarray:
        """:meth:`predict_table` of sequences given as strings, a table or a file.

        Args:
            seqs: a :class:`SeqTable`, a path (``os.PathLike``: any :func:`harness.data.readers.
                read_sequences` format), one sequence (``str``) or an iterable of strings.

        Returns:
            ``(N,) float64``.

        Raises:
            ValueError: a bad sequence (its index and the problem); DataError: a bad file
                (``file:line: problem``).
        """
        return self.predict_table(as_table(seqs), on_step)

    def variant_effects(self, ref: Sequence[str], alt: Sequence[str],
                        on_step: Callable[[], None] | None = None) -> dict[str, np.ndarray]:
        """Predicted effects of ``alt`` against ``ref``: each distinct sequence is predicted once,
        all in one :meth:`predict_table` call.

        Args:
            ref, alt: ``N`` reference and ``N`` alternative sequences (checked as training rows are).

        Returns:
            ``{"pred_ref", "pred_alt", "effect"}``: ``(N,) float64`` each; ``effect = pred_alt - pred_ref``.

        Raises:
            ValueError: different lengths, or a bad sequence (``ref[i]``/``alt[i]`` and the problem).
        """
        ref, alt = [str(s) for s in ref], [str(s) for s in alt]
        if len(ref) != len(alt):
            raise ValueError(f"{len(ref)} reference but {len(alt)} alternative sequences")
        for name, seqs in (("ref", ref), ("alt", alt)):
            problems = sequence_problems(seqs)
            if problems:
                i, message = next(iter(problems.items()))
                more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
                raise ValueError(f"{name}[{i}]: {message}{more}")
        distinct = list(dict.fromkeys(ref + alt))
        where = {s: i for i, s in enumerate(distinct)}
        pred = self.predict_table(SeqTable.from_strings(distinct), on_step)
        pred_ref = pred[[where[s] for s in ref]]
        pred_alt = pred[[where[s] for s in alt]]
        return {"pred_ref": pred_ref, "pred_alt": pred_alt, "effect": pred_alt - pred_ref}

    def ism(self, seq: str, on_step: Callable[[], None] | None = None) -> tuple[float, np.ndarray]:
        """In-silico saturation mutagenesis of one sequence.

        Every position is set to each of A, C, G, T (single-nucleotide substitutions; an ambiguity
        letter in ``seq`` counts as N, so all four bases are substitutions there); the reference and
        the ``3 L`` (up to ``4 L``) mutants are predicted in one call.

        Returns:
            ``(pred_ref, effects)``: the reference's prediction and ``(L, 4) float64`` effects
            ``pred(mutant) - pred_ref``, columns A, C, G, T; exactly 0 at the reference base.

        Raises:
            ValueError: a bad sequence (the problem named).
        """
        seq = str(seq).strip()
        problems = sequence_problems([seq])
        if problems:
            raise ValueError(f"--ism sequence: {problems[0]}")
        codes, _ = encoding.encode([seq])
        ref_codes = codes[0]
        mutants, cells = [], []
        for pos in range(len(seq)):
            for b, base in enumerate(ISM_BASES):
                if ref_codes[pos] != b:
                    mutants.append(seq[:pos] + base + seq[pos + 1:])
                    cells.append((pos, b))
        pred = self.predict_table(SeqTable.from_strings([seq] + mutants), on_step)
        effects = np.zeros((len(seq), len(ISM_BASES)))
        rows, cols = np.array(cells).T
        effects[rows, cols] = pred[1:] - pred[0]
        return float(pred[0]), effects


def as_table(seqs) -> SeqTable:
    """A :class:`SeqTable` of ``seqs``: a table (as is), a path (``os.PathLike``, read by
    :func:`harness.data.readers.read_sequences`), one ``str`` sequence, or an iterable of strings
    (checked as training rows are).

    Raises:
        ValueError: no sequence, or a bad one (``sequence i: problem``); DataError: a bad file.
    """
    from .data.readers import read_sequences

    if isinstance(seqs, SeqTable):
        return seqs
    if isinstance(seqs, os.PathLike):
        return read_sequences(seqs)
    if isinstance(seqs, (str, bytes)):
        seqs = [seqs.decode() if isinstance(seqs, bytes) else seqs]
    seqs = [str(s).strip() for s in seqs]
    if not seqs:
        raise ValueError("no sequences to predict")
    problems = sequence_problems(seqs)
    if problems:
        shown = "; ".join(f"sequence {i}: {m}" for i, m in list(problems.items())[:5])
        raise ValueError(shown + (f"; and {len(problems) - 5} more" if len(problems) > 5 else ""))
    return SeqTable.from_strings(seqs)


# --------------------------------------------------------------------------------------------
# The ensemble
# --------------------------------------------------------------------------------------------

def ensemble_stacker(run_dir: str | os.PathLike):
    """The run's saved ensemble stacker, for ``--method ensemble``.

    Interface expected from :mod:`harness.ensemble` (issue 19): ``harness ensemble`` saves the
    fitted inner-fold stackers under ``methods/ensemble/stacker/`` with a digest manifest, and
    ``harness.ensemble.load_stacker(run_dir)`` verifies and loads them (never unpickling: LightGBM
    as model text, the linear and mean stackers as JSON numbers), returning an object with

    * ``members``: ``list[str]``, the member methods in feature order;
    * ``predict(member_predictions, table) -> (n,) float64``: ``member_predictions`` is
      ``(n, len(members)) float64``, each column the member's fold-averaged predictions
      (:meth:`RunPredictor.predict_table`), ``table`` the sequences (for the GC-content and length
      features of ``--seq-features``); the mean of the inner-fold stackers' predictions, as
      ``stacker_test.npy`` was made, or the best member's column on fallback, as ``test.npy``;
    * optionally ``units``: ``str`` (e.g. z-scores for the ``mean`` stacker).

    Raises:
        EnsembleNotSaved: the run has no ensemble, or its stacker was not saved, or this harness
            cannot load it; the message says what to run.
    """
    run_dir = Path(run_dir)
    ens = RunDir(run_dir).ensemble
    ens_dir = ens.path
    if not ens.test.is_file():
        raise EnsembleNotSaved(f"{run_dir}: no ensemble in this run; run `harness ensemble {run_dir}` first, "
                               "with a harness that saves the ensemble's stacker")
    from .ensemble import load_stacker

    if not ens.stacker.is_dir():
        raise EnsembleNotSaved(
            f"{ens_dir}: the ensemble's stacker was not saved (this run's `harness ensemble` kept only its "
            "predictions, stacker_test.npy and test.npy), so it cannot predict new sequences; re-run "
            f"`harness ensemble {run_dir}` with a harness that saves its stacker, or predict with a member "
            f"(--method {'|'.join(m for m in run_methods(run_dir) if m != ENSEMBLE) or 'NAME'})")
    return load_stacker(run_dir)


# --------------------------------------------------------------------------------------------
# Variant pairs
# --------------------------------------------------------------------------------------------

@dataclass
class VariantPairs:
    """Reference/alternative pairs read by :func:`read_pairs`.

    Attributes:
        ref, alt: ``N`` sequences each; ``ids``: ``N`` ids (the file's ``id`` column, else the
        1-based line); ``pos``: ``(N,) int64`` 1-based substituted positions, ``ref_base`` and
        ``alt_base``: letters (``pos`` format only, else None).
    """

    ref: list[str]
    alt: list[str]
    ids: list[str]
    pos: np.ndarray | None = None
    ref_base: list[str] | None = None
    alt_base: list[str] | None = None


def read_pairs(path: str | os.PathLike, ref: str | None = None, max_length: int = MAX_LENGTH) -> VariantPairs:
    """Read variant pairs: a tab-separated file with a header line and either columns ``ref`` and
    ``alt`` (two sequences a row), or ``pos`` and ``alt_base`` (a 1-based position and the base
    put there) with the reference sequence in a ``ref`` column or given as ``ref``. An ``id``
    column, if any, names the rows; other columns are ignored. Blank lines and lines starting
    with ``#`` are skipped. The file may be gzip-compressed (recognised by its magic bytes, not
    its name, as :func:`harness.data.read_table` does); line numbers count decompressed lines.

    Raises:
        DataError: corrupt gzip data or another compression format (xz, zstd, zip, bzip2); no
            header with those columns, or bad rows, as ``file:line: problem`` (a bad
            sequence as :func:`read_table` words it, a row with too few columns, a position
            that is not an integer in 1..len(ref), an ``alt_base`` that is not one of A, C, G, T, N).
        ValueError: a bad ``ref`` argument, or a ``ref`` argument beside a ``ref`` column.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    with plain_file(path) as source:  # gzip recognised by its magic bytes, as the training readers do
        text = source.read_bytes().decode("utf-8", errors="replace")
    rows = [(i, line.rstrip("\r\n").split("\t")) for i, line in enumerate(text.splitlines(), start=1)
            if line.strip() and not line.startswith("#")]
    if not rows:
        raise DataError(f"{path}: no header line (tab-separated columns ref, alt or pos, alt_base)")
    header_line, header = rows[0]
    columns = {name.strip().lstrip("\ufeff"): i for i, name in enumerate(header)}
    body = rows[1:]
    pos_format = "pos" in columns and "alt_base" in columns
    if not pos_format and not {"ref", "alt"} <= set(columns):
        raise DataError(f"{path}:{header_line}: the header needs columns 'ref' and 'alt', or 'pos' and 'alt_base' "
                        f"(found {', '.join(repr(c) for c in columns)})")
    if pos_format and "ref" not in columns and ref is None:
        raise DataError(f"{path}:{header_line}: columns 'pos' and 'alt_base' need the reference sequence: a 'ref' "
                        "column or --ref SEQUENCE")
    if ref is not None:
        if "ref" in columns:
            raise ValueError(f"--ref given, but {path} has a 'ref' column; give one of them")
        ref = ref.strip()
        problems = sequence_problems([ref], max_length)
        if problems:
            raise ValueError(f"--ref: {problems[0]}")
    if not body:
        raise DataError(f"{path}: no rows after the header")

    def cell(fields: list[str], name: str) -> str | None:
        i = columns.get(name)
        return fields[i].strip() if i is not None and i < len(fields) else None

    problems: dict[int, str] = {}
    refs, alts, ids, lines = [], [], [], []
    positions, ref_bases, alt_bases = [], [], []
    for line, fields in body:
        ref_seq = cell(fields, "ref") if ref is None else ref
        if len(fields) < len(header):
            problems[line] = f"{len(fields)} tab-separated columns, the header has {len(header)}"
            continue
        ids.append(cell(fields, "id") or str(line))
        lines.append(line)
        if not pos_format:
            refs.append(ref_seq)
            alts.append(cell(fields, "alt"))
            continue
        refs.append(ref_seq)
        text, base = cell(fields, "pos"), cell(fields, "alt_base").upper()
        try:
            pos = int(text)
        except ValueError:
            pos = None
        if pos is None or not 1 <= pos <= max(len(ref_seq), 1):
            problems[line] = f"pos {text!r} is not a position 1..{len(ref_seq)} of the reference (1-based)"
            pos = 1
        if len(base) != 1 or base not in "ACGTN":
            problems[line] = problems.get(line) or f"alt_base {base!r} is not one of A, C, G, T, N"
            base = "N"
        positions.append(pos)
        ref_bases.append(ref_seq[pos - 1:pos].upper())
        alt_bases.append(base)
        alts.append(ref_seq[:pos - 1] + base + ref_seq[pos:])
    for name, seqs in (("ref", refs), ("alt", alts)):
        for i, message in sequence_problems(seqs, max_length).items():
            problems.setdefault(lines[i], f"{name} {message}")
    raise_bad_lines(path, problems, "rows")
    if pos_format:
        return VariantPairs(refs, alts, ids, np.asarray(positions, dtype=np.int64), ref_bases, alt_bases)
    return VariantPairs(refs, alts, ids)


# --------------------------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------------------------

def header_lines(command: str, run_dir: str | os.PathLike, predictor: RunPredictor, n: int) -> list[str]:
    """``# ...`` lines naming the command, run, method, units and caveats of a TSV output."""
    lines = [f"# harness {command}: run {run_dir}, method {predictor.method}, {n:,} sequence(s)",
             f"# units: {predictor.units}"]
    lines += [f"# {note}" for note in predictor.notes()]
    return lines


def format_float(value: float) -> str:
    """Shortest round-trip text of a float64 (``repr``), as the submission files write it."""
    return repr(float(value))


def write_output(text: str, out: str | os.PathLike | None, stdout=None) -> None:
    """Write ``text`` to ``out`` atomically (:func:`harness.io.atomic_open`), or to ``stdout``."""
    if out is None:
        import sys

        (stdout or sys.stdout).write(text)
        return
    with atomic_open(out, "w") as fh:
        fh.write(text)


def ism_heatmap(effects: np.ndarray, seq: str, path: str | os.PathLike, title: str, units: str) -> None:
    """Write the ISM map as a PNG heat map (atomically): bases A, C, G, T (rows) x positions
    (columns, 1-based), a diverging colour scale centred on 0, the reference base of each
    position marked with a dot. matplotlib, Agg canvas (no display, no pyplot state)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    length = len(seq)
    reach = float(np.max(np.abs(effects))) or 1.0
    fig = Figure(figsize=(min(max(6.0, length * 0.12 + 2), 40.0), 2.8), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    image = ax.imshow(effects.T, aspect="auto", cmap="RdBu_r", vmin=-reach, vmax=reach, interpolation="nearest",
                      extent=(0.5, length + 0.5, len(ISM_BASES) - 0.5, -0.5))
    ax.set_yticks(range(len(ISM_BASES)), list(ISM_BASES))
    ax.set_xlabel("position (1-based)")
    codes, _ = encoding.encode([seq])
    ref_pos = [p + 1 for p in range(length) if codes[0, p] < len(ISM_BASES)]
    ax.scatter(ref_pos, [int(codes[0, p - 1]) for p in ref_pos], s=4, c="black", marker="o", linewidths=0)
    ax.set_title(f"{title}\nunits: {units}", fontsize=8)
    fig.colorbar(image, ax=ax, pad=0.01).set_label("alt − ref", fontsize=8)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    with atomic_open(path, "wb") as fh:
        fh.write(buffer.getvalue())
