"""Python API for notebooks: open a finished run, score it, predict with it.

    import harness

    run = harness.load_run("runs/my-run")
    run.methods                                  # ['kmer-lgbm', 'kmer-ridge']
    run.scores("private")                        # a DataFrame, one row per method
    run.predict(["TGCATTTTTTTCACATC...", ...], method="kmer-ridge")        # (N,) float64
    run.variant_effect(ref_seq, [alt1, alt2], method="kmer-ridge")         # a DataFrame
    harness.score(predictions, "path/to/data", "public")                   # a BoardScore

Predictions are the mean of the method's fold models, exactly as the run's ``test.npy`` was made
(:mod:`harness.predict`, which verifies every model file before loading it); scores are the
challenge's official weighted Pearson² / Spearman scores (:mod:`harness.scoring`), always
recomputed from the prediction arrays.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np

from .predict import RunPredictor, run_info, run_methods
from .rundir import RunDir, load_predictions, run_test_set


class PartialScoreWarning(UserWarning):
    """A board was scored without every category (e.g. no SNV pairs): not the challenge's score."""


class Run:
    """A finished run directory of ``harness run`` (see :func:`load_run`).

    Attributes:
        path: the run directory; ``info``: its ``run.json``.
    """

    def __init__(self, path: str | os.PathLike, device: str = "auto") -> None:
        self.path = Path(path)
        self.info = run_info(self.path)
        self.device = device
        self._predictors: dict[str, RunPredictor] = {}

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r}, methods={self.methods})"

    @property
    def methods(self) -> list[str]:
        """Methods with test predictions (``methods/<name>/test.npy``), sorted; ``"ensemble"`` among
        them after ``harness ensemble``."""
        return run_methods(self.path)

    def predictor(self, method: str) -> RunPredictor:
        """The :class:`harness.predict.RunPredictor` of ``method`` (its fold models load on the first
        prediction and are kept for later calls).

        Raises:
            ValueError: not a method of the run; harness.predict.EnsembleNotSaved: the ensemble
                without a saved stacker.
        """
        if method not in self._predictors:
            self._predictors[method] = RunPredictor.open(self.path, method, self.device)
        return self._predictors[method]

    def units(self, method: str) -> str:
        """What ``method``'s predictions mean: the training target's scale (or the plug-in's own)."""
        return self.predictor(method).units

    def test_predictions(self, method: str) -> np.ndarray:
        """The method's ``test.npy`` (checked: one finite value per test sequence), ``(N_test,) float64``.

        Raises:
            ValueError: not a method of the run; DataError: the file is not the run's predictions.
        """
        if method not in self.methods:
            raise ValueError(f"{self.path}: no method {method!r}; the run has {', '.join(self.methods) or 'none'}")
        return load_predictions(RunDir(self.path).method(method).test, int(self.info["n_test"]))

    def scores(self, board: str = "private", data_dir: str | os.PathLike | None = None,
               snv_pairs: str | os.PathLike | None = None):
        """Every method's official score on ``board``, recomputed from its ``test.npy``.

        Args:
            board: ``"private"``, ``"public"`` or ``"full"``.
            data_dir, snv_pairs: overrides of the data directory and SNV pairs ``run.json`` records.

        Returns:
            ``pandas.DataFrame`` indexed by method, best Pearson score first: ``pearson_score``,
            ``spearman_score``, ``partial`` (True: a category could not be scored, so this is not
            the challenge's score; also warned), ``missing`` (those categories), then ``r[<category>]``
            and ``rho[<category>]`` per category.

        Raises:
            ValueError: unknown board, or public/private without public-leaderboard ids.
            DataError: the run's data directory is gone (give ``data_dir``).
        """
        import pandas as pd

        from .scoring import score as score_board

        test = run_test_set(self.path, self.info, data_dir, snv_pairs)
        rows = {}
        for method in self.methods:
            result = score_board(self.test_predictions(method), test, board)
            row = {"pearson_score": result.pearson_score, "spearman_score": result.spearman_score,
                   "partial": result.partial, "missing": ", ".join(result.missing)}
            for cat, s in result.categories.items():
                row[f"r[{cat}]"], row[f"rho[{cat}]"] = s.pearson, s.spearman
            rows[method] = row
        frame = pd.DataFrame.from_dict(rows, orient="index").sort_values("pearson_score", ascending=False)
        if frame["partial"].any():
            warnings.warn(f"{board} board scored without {frame['missing'].iloc[0]}: partial scores, not the "
                          "challenge's (give snv_pairs=... for the SNV pairs)", PartialScoreWarning, stacklevel=2)
        return frame

    def predict(self, seqs, method: str) -> np.ndarray:
        """Predictions for ``seqs``: the mean of ``method``'s fold models (as its ``test.npy``).

        Args:
            seqs: sequences: a list of strings, one string, a :class:`harness.data.SeqTable`, or a
                ``pathlib.Path`` to a file (one sequence a line, ``sequence<TAB>anything``, FASTA,
                gzip of these).
            method: a method of the run, or ``"ensemble"`` (needs its saved stacker).

        Returns:
            ``(N,) float64`` in :meth:`units`. For a method whose predictions depend on the set
            predicted together (High Schoolers' paper quantile output) they are for ``seqs`` as one set.

        Raises:
            ValueError: a bad sequence (index and problem) or method; DataError: a bad file
                (``file:line: problem``); harness.integrity.IntegrityError: a model file was changed.
        """
        return self.predictor(method).predict(seqs)

    def variant_effect(self, ref: str | Sequence[str], alt: str | Sequence[str], method: str):
        """Predicted effect ``alt - ref`` of each variant, with both predictions.

        Args:
            ref: one reference sequence (for every ``alt``) or one per ``alt``.
            alt: one or more alternative sequences.
            method: as in :meth:`predict`.

        Returns:
            ``pandas.DataFrame`` with columns ``ref``, ``alt``, ``pred_ref``, ``pred_alt``, ``effect``
            (float64, in :meth:`units`).

        Raises:
            ValueError: ``ref`` and ``alt`` of different lengths, or a bad sequence.
        """
        import pandas as pd

        alts = [alt] if isinstance(alt, str) else list(alt)
        refs = [ref] * len(alts) if isinstance(ref, str) else list(ref)
        result = self.predictor(method).variant_effects(refs, alts)
        return pd.DataFrame({"ref": refs, "alt": alts, **result})

    def ism(self, seq: str, method: str):
        """In-silico saturation mutagenesis of ``seq``: the effect of every single-nucleotide
        substitution (:meth:`harness.predict.RunPredictor.ism`).

        Returns:
            ``pandas.DataFrame`` of shape ``(L, 4)``, index the 1-based positions, columns ``A``, ``C``,
            ``G``, ``T``: ``prediction(mutant) - prediction(seq)`` (0 at the sequence's own base);
            ``frame.attrs["prediction"]`` is the prediction of ``seq``.
        """
        import pandas as pd

        pred_ref, effects = self.predictor(method).ism(seq)
        frame = pd.DataFrame(effects, index=pd.RangeIndex(1, len(effects) + 1, name="pos"), columns=list("ACGT"))
        frame.attrs["prediction"] = pred_ref
        return frame


def load_run(path: str | os.PathLike, device: str = "auto") -> Run:
    """Open a finished run directory of ``harness run`` (nothing is loaded until it is used).

    Args:
        path: the run directory; ``device``: where fold models predict (``auto``, ``cpu``, ``cuda``).

    Raises:
        FileNotFoundError: not a run directory (no ``run.json``); ValueError: ``run.json`` is not a
            JSON object.
    """
    return Run(path, device)


def score(pred, data_dir: str | os.PathLike | None = None, board: str = "private",
          snv_pairs: str | os.PathLike | None = None):
    """The official score of test predictions on one board.

    Args:
        pred: ``(71,103,)`` predictions in test order (array-like; NaN allowed off the board), or the
            path of a prediction file (challenge JSON or ``sequence<TAB>prediction``).
        data_dir: the data directory (default ``$HARNESS_DATA``).
        board: ``"private"``, ``"public"`` or ``"full"``.
        snv_pairs: an SNV-pair CSV when the data lacks the official one.

    Returns:
        :class:`harness.scoring.BoardScore` (``.pearson_score``, ``.spearman_score``, ``.categories``,
        ``.partial``; a partial board also warns :class:`PartialScoreWarning`).

    Raises:
        ValueError: no data directory, wrong length, a NaN/inf prediction on the board, an unknown
            board; DataError: bad data or prediction files (named).
    """
    from .data import load_test_set, resolve_data_dir
    from .scoring import read_predictions
    from .scoring import score as score_board

    directory = resolve_data_dir(data_dir)
    if directory is None:
        raise ValueError("give data_dir (the DREAM 2022 data directory) or set HARNESS_DATA")
    test = load_test_set(directory, snv_pairs)
    if isinstance(pred, (str, os.PathLike)):
        pred = read_predictions(pred, test)
    result = score_board(np.asarray(pred, dtype=np.float64), test, board)
    if result.partial:
        warnings.warn(f"{board} board scored without {', '.join(result.missing)}: a partial score, not the "
                      "challenge's (give snv_pairs=...)", PartialScoreWarning, stacklevel=2)
    return result
