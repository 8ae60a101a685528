"""``harness ensemble``: stack the out-of-fold predictions of a K-fold run.

Level 1 (the features): each member method's out-of-fold predictions ``methods/<m>/oof.npy``
from a K-fold run (raw outputs, one column per member), optionally with cheap sequence features
(GC content and length). The same columns for the test set are the members' fold-averaged test
predictions ``methods/<m>/test.npy``. Both are read with ``allow_pickle=False`` and checked (shape,
finite values; :func:`harness.rundir.load_predictions`), and every board score reported for a member
is computed from its ``test.npy`` (``scores.json`` is an informative cache, never trusted). A run
without out-of-fold predictions (``--split holdout`` or ``--split none``) is refused.

Level 2 (the stacker), fitted against the training targets with its own seeded inner K-fold
cross-validation (default 5 folds): every training row gets an inner out-of-fold stacked prediction
from a stacker that never saw it, and the test prediction is the mean of the inner-fold stackers'
predictions (as the runner averages its fold models). Stackers:

* ``lightgbm``: a non-negative linear blend plus a LightGBM residual started from it
  (``init_score``) with monotone constraints in each member's prediction; its output keeps the
  resolution of the blend, so SNV pairs' small alt − ref differences survive (issue 19: a plain
  LightGBM stacker's piecewise-constant output gave 26,587 distinct values over 71,103 test
  sequences and 2.4 % of SNV pairs an alt − ref of exactly 0, and lost the private board to its
  best member). Stacked generalisation: Wolpert 1992, *Neural Networks* 5:241-259.
* ``linear``: least squares with non-negative member weights and a free intercept
  (``scipy.optimize.lsq_linear`` with bounds; sequence features, standardised, get free signs).
  Non-negative stacking: Breiman 1996, "Stacked regressions", *Machine Learning* 24:49-64.
* ``mean``: the mean of z-scored member predictions, each member z-scored with the mean/std of
  its own out-of-fold predictions (no target is used).
* ``lightgbm-plain``: LightGBM on the member predictions alone (the stacker before issue 19).
* ``auto`` (the default): all of them are cross-fitted and the one with the highest criterion is used.

Criterion (selection and guard), computed on training rows only, never on the test board::

    criterion = (r + ρ of OOF predictions vs targets) · ((1 − w) + w · pair consistency)
    w = 1.25 / 4.65 (the SNV category's share of the challenge score)

Pair consistency (:func:`pair_consistency`, no target used) is the share of resolution pairs
(:func:`resolution_pairs`: each training row and its nearest neighbour in z-scored member
predictions, within its inner fold) on which every member moves the same way and the candidate
moves that way too (a tie counts as a miss). SNV pairs are such pairs: the challenge scores their
alt − ref, and a stacker that maps close member predictions to one value earns nothing on them.
A member, and any stacker strictly increasing in every member (``lightgbm``, ``linear``, ``mean``),
scores 1; plain LightGBM scores its share of resolved pairs. The level term alone picked the most
flexible stacker, which won the OOF rows (random promoters like the training data) and lost the
designed test categories (issue 19). A target-based pair term (r + ρ of pair differences against
y[a] − y[b]) was measured and rejected: on random promoters such pairs' measured differences are
noise (|r| < 0.035 for every candidate and member on the 16,370 rows of ``dev_train.txt``), and
pairs whose rows are held out by different inner-fold stackers are biased (each stacker is pulled
towards the other row's target: r = −0.15 for plain LightGBM).

Rows like the test sequences (:func:`length_weights`): the stackers are fitted, and the level term
and the pair term computed, on training rows weighted by ``p_test(length) / p_train(length)``, the
importance weight of the one covariate whose shift is known exactly without a measured value
(Shimodaira 2000, *J. Stat. Plan. Inference* 90:227-244: weighting by the test/train density ratio
under covariate shift). Every test sequence of the challenge has 110 nt; 7 % of ``dev_train.txt``
rows do not (1,151 of 16,370), their measured expression is higher (mean 11.0 vs 8.8) and a member
that learns length (camformers: OOF r 0.369 on those rows, mean prediction +1.1) gains OOF r from
rows unlike any test sequence (OOF r + ρ 0.971 on all rows, 0.950 on the 110-nt rows, where the
k-mer members keep 0.998-1.000); unweighted, the linear blend gave camformers its largest weight
(0.59; 0.45 with the weights) and the ensemble lost Pearson on the test board. Rows of a length no
test sequence has get weight 0 (they still get an OOF prediction); when train and test lengths are
distributed alike every weight is 1 and nothing changes. The reported OOF r and ρ (``pearson``,
``spearman``, ``score``, ``oof_pearson`` in ``scores.json``) stay those of all rows, unweighted, so
they compare with the members' leaderboard rows; ``weighted_*`` are the weighted ones.

Guard: the ensemble is never worse than its best member on the criterion: when the stacker's
inner-CV criterion is below the best member's, the ensemble falls back to that member (its
``oof.npy`` and ``test.npy``), and ``ensemble.json``, ``scores.json``, ``leaderboard.json`` and the
printed table say so.

Files written into the run directory (atomically)::

    methods/ensemble/oof.npy           (N_train,) float64: inner-CV OOF of what the ensemble uses
    methods/ensemble/test.npy          (N_test,) float64: the ensemble's test predictions
    methods/ensemble/stacker_oof.npy   (N_train,) the stacker's inner-CV OOF (even on fallback)
    methods/ensemble/stacker_test.npy  (N_test,) the stacker's test predictions (even on fallback)
    methods/ensemble/stacker/          what the ensemble uses, for :func:`load_stacker`:
        stacker.json                   kind (a stacker, or "member" on fallback), members, features, folds
        fold<k>/linear.json, fold<k>/lightgbm.txt, fold<k>/mean.json   each inner-fold stacker
    methods/ensemble/scores.json       as the runner's scores.json (+ "stacker", "fallback")
    methods/ensemble/ensemble.json     stacker, candidates, criterion, members, weights, OOF and pair
                                       scores, fallback, per-category scores, test resolution, and
                                       "stacker_files": the XXH3-128 manifest of stacker/
    leaderboard.json                   gains (or replaces) the "ensemble" row
"""

from __future__ import annotations

import inspect
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
from rich import box
from rich.table import Table

from .data import DataError, SeqTable
from .data.encoding import gc_content
from .integrity import IntegrityError, verify
from .integrity import manifest as file_manifest
from .io import find_links, read_json, refuse_links, write_json, write_npy, write_text
from .report import partial_note, score_text
from .rundir import (ENSEMBLE, STACKER_JSON, RunDir, fold_path, load_predictions, read_run_json, run_methods,
                     run_test_set, run_train_table, split_kind)
from .scoring import NORMALISER, WEIGHTS, BoardScore, score_boards
from .scoring.scorer import pearson, spearman

STACKERS = ("auto", "lightgbm", "linear", "mean", "lightgbm-plain")
#: The stackers ``auto`` compares, in order of preference on a tie.
AUTO_CANDIDATES = ("lightgbm", "linear", "mean", "lightgbm-plain")
SEQ_FEATURES = ("gc_content", "length")
#: Weight of the pair-difference term in the criterion: the SNV category's share of the score.
PAIR_WEIGHT = WEIGHTS["SNVs"] / NORMALISER
CRITERION = ("(OOF Pearson r + Spearman ρ) · ((1 − 1.25/4.65) + 1.25/4.65 · pair consistency), "
             "training rows only, weighted to the test set's sequence lengths")


# --------------------------------------------------------------------------------------------
# Test sets of runs (shared with harness.leaderboard)
# --------------------------------------------------------------------------------------------

def same_snv_source(a: str, b: str) -> bool:
    """Whether two ``TestSet.snv_source`` texts name the same pairs: equal once a file path in
    parentheses is resolved (``"given file (../x.csv), 44795 pairs"`` = ``"given file (/abs/x.csv), ..."``)."""
    def norm(text: str) -> str:
        def resolve(match: re.Match) -> str:
            inner = Path(match.group(1))
            return f"({inner.resolve()})" if inner.exists() else match.group(0)

        return re.sub(r"\(([^()]*)\)", resolve, text)

    return a == b or norm(a) == norm(b)


# --------------------------------------------------------------------------------------------
# Stackers
# --------------------------------------------------------------------------------------------

class Stacker:
    """A level-2 model. ``X`` is ``(n, n_members + n_extra) float64``: the first ``n_members``
    columns are member predictions, the rest sequence features. Subclasses implement
    :meth:`fit`, :meth:`predict` and :meth:`describe`; the built-in ones also :meth:`save` and
    :meth:`load` (JSON and LightGBM model text, never pickle). A ``fit`` without a
    ``sample_weight`` parameter is fitted unweighted (:func:`cross_fit`)."""

    name = "stacker"

    def __init__(self, n_members: int, feature_names: list[str], seed: int = 0) -> None:
        self.n_members = n_members
        self.feature_names = list(feature_names)
        self.seed = seed

    def fit(self, X: np.ndarray, y: np.ndarray,
            sample_weight: np.ndarray | None = None) -> "Stacker":  # pragma: no cover - interface
        """Fit on ``X`` ``(n, F)`` against ``y`` ``(n,)`` with optional non-negative row weights
        ``(n,) float64`` (:func:`length_weights`; None: every row 1); returns self."""
        raise NotImplementedError

    def predict(self, X: np.ndarray) -> np.ndarray:  # pragma: no cover - interface
        """``(n, F)`` -> ``(n,) float64``."""
        raise NotImplementedError

    def describe(self) -> dict[str, float]:
        """Per-feature numbers for the report (weights or importances); averaged over inner folds."""
        return {}

    def save(self, directory: Path) -> None:
        """Write the fitted state into ``directory`` (atomically, no pickle).

        Raises:
            NotImplementedError: a stacker that cannot be saved (a user's own subclass).
        """
        raise NotImplementedError(f"the {self.name} stacker cannot be saved")

    @classmethod
    def load(cls, directory: Path, n_members: int, feature_names: list[str]) -> "Stacker":
        """The stacker :meth:`save` wrote into ``directory`` (files already verified by the caller).

        Raises:
            DataError: a file is malformed (named).
        """
        raise NotImplementedError(f"the {cls.name} stacker cannot be loaded")


def _vector(obj: dict, key: str, n: int, path: Path) -> np.ndarray:
    """``obj[key]`` as a finite ``(n,) float64`` array; DataError naming ``path`` otherwise."""
    try:
        v = np.asarray(obj[key], dtype=np.float64)
    except (KeyError, TypeError, ValueError) as exc:
        raise DataError(f"{path}: no numeric list {key!r} ({exc})") from None
    if v.shape != (n,) or not np.isfinite(v).all():
        raise DataError(f"{path}: {key!r} must be {n} finite numbers, got shape {v.shape}")
    return v


class MeanStacker(Stacker):
    """Mean of z-scored member columns; each z-scored with the mean/std of its out-of-fold values.

    Uses no target: ``fit`` only records the member columns' means and standard deviations
    (weighted by ``sample_weight`` where given).
    Sequence features are not used (``ensemble_run`` refuses them with this stacker).
    Saved as ``mean.json`` ``{"mean": [M floats], "std": [M floats]}``.
    """

    name = "mean"

    def fit(self, X, y, sample_weight=None):
        cols = X[:, : self.n_members]
        self.mean_ = np.average(cols, axis=0, weights=sample_weight)
        std = np.sqrt(np.average((cols - self.mean_) ** 2, axis=0, weights=sample_weight))
        self.std_ = np.where(std > 0, std, 1.0)
        return self

    def predict(self, X):
        return ((X[:, : self.n_members] - self.mean_) / self.std_).mean(axis=1)

    def describe(self):
        w = 1.0 / self.n_members
        out = {f"weight[{n}]": w for n in self.feature_names[: self.n_members]}
        out.update({f"oof_mean[{n}]": float(m) for n, m in zip(self.feature_names, self.mean_)})
        out.update({f"oof_std[{n}]": float(s) for n, s in zip(self.feature_names, self.std_)})
        return out

    def save(self, directory):
        write_json(Path(directory) / "mean.json", {"mean": self.mean_.tolist(), "std": self.std_.tolist()})

    @classmethod
    def load(cls, directory, n_members, feature_names):
        path = Path(directory) / "mean.json"
        obj = read_json(path)
        self = cls(n_members, feature_names)
        self.mean_ = _vector(obj, "mean", n_members, path)
        self.std_ = _vector(obj, "std", n_members, path)
        if (self.std_ <= 0).any():
            raise DataError(f"{path}: 'std' must be positive")
        return self


class LinearStacker(Stacker):
    """Least squares ``y ≈ X·w + b`` with member weights ``w ≥ 0`` and a free intercept.

    Sequence features are standardised with the training mean/std (constant ones get scale 0) and
    get free-signed weights. Solved with ``scipy.optimize.lsq_linear`` (bounded least squares; rows
    weighted by ``sample_weight`` where given, i.e. rows and targets scaled by its square root);
    Breiman 1996's non-negative stacking. Saved as ``linear.json`` ``{"coef": [F + 1 floats, the
    last the intercept], "mu": [extra-feature means], "scale": [1 / their std, 0 if constant]}``.
    """

    name = "linear"

    def fit(self, X, y, sample_weight=None):
        from scipy.optimize import lsq_linear

        extra = X[:, self.n_members:]
        self.mu_ = extra.mean(axis=0)
        sd = extra.std(axis=0)
        self.scale_ = np.divide(1.0, sd, out=np.zeros_like(sd), where=sd > 0)  # constant feature -> 0
        A, b = self._design(X), np.asarray(y, dtype=np.float64)
        if sample_weight is not None:
            root = np.sqrt(np.asarray(sample_weight, dtype=np.float64))
            A, b = A * root[:, None], b * root
        lower = np.r_[np.zeros(self.n_members), np.full(A.shape[1] - self.n_members, -np.inf)]
        sol = lsq_linear(A, b, bounds=(lower, np.full(A.shape[1], np.inf)))
        self.coef_ = sol.x
        return self

    def _design(self, X):
        extra = (X[:, self.n_members:] - self.mu_) * self.scale_
        return np.c_[X[:, : self.n_members], extra, np.ones(len(X))]

    def predict(self, X):
        return self._design(X) @ self.coef_

    def describe(self):
        names = self.feature_names + ["intercept"]
        out = {}
        for i, (n, c) in enumerate(zip(names, self.coef_)):
            kind = "weight" if i < self.n_members else ("intercept" if n == "intercept" else "weight_std")
            out[f"{kind}[{n}]" if kind != "intercept" else "intercept"] = float(c)
        return out

    def save(self, directory):
        write_json(Path(directory) / "linear.json",
                   {"coef": self.coef_.tolist(), "mu": self.mu_.tolist(), "scale": self.scale_.tolist()})

    @classmethod
    def load(cls, directory, n_members, feature_names):
        path = Path(directory) / "linear.json"
        obj = read_json(path)
        self = cls(n_members, feature_names)
        n_extra = len(feature_names) - n_members
        self.coef_ = _vector(obj, "coef", len(feature_names) + 1, path)
        self.mu_ = _vector(obj, "mu", n_extra, path)
        self.scale_ = _vector(obj, "scale", n_extra, path)
        if (self.coef_[:n_members] < 0).any():
            raise DataError(f"{path}: a member weight is negative (the stacker's weights are non-negative)")
        return self


def _lgb_params(seed: int, n_jobs: int | None, params: dict) -> dict:
    return {"objective": "regression", "verbosity": -1, "seed": seed, "deterministic": True, "force_row_wise": True,
            **({"num_threads": n_jobs} if n_jobs else {}), **params}


def _split_for_early_stopping(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded (fit, val) row indices: val is 10 % of the stacker's own training rows."""
    order = np.random.default_rng(seed).permutation(n)
    n_val = max(1, int(round(0.1 * n)))
    return order[n_val:], order[:n_val]


def _load_booster(path: Path, n_features: int):
    import lightgbm as lgb

    try:
        booster = lgb.Booster(model_str=path.read_text(encoding="utf-8"))
    except (lgb.basic.LightGBMError, UnicodeDecodeError, ValueError) as exc:
        raise DataError(f"{path}: not a LightGBM model text ({exc})") from None
    if booster.num_feature() != n_features:
        raise DataError(f"{path}: model has {booster.num_feature()} features, the ensemble {n_features}")
    return booster


class _BoostedStacker(Stacker):
    """What the two LightGBM stackers share: their parameters (class defaults :attr:`PARAMS`,
    overridable by keyword) and one early-stopped boosting fit (:meth:`_boost`)."""

    #: LightGBM parameters (``num_boost_round`` included) and early-stopping patience.
    PARAMS: dict = {}
    EARLY_STOPPING_ROUNDS = 20

    def __init__(self, n_members, feature_names, seed=0, n_jobs: int | None = None,
                 early_stopping_rounds: int | None = None, **params) -> None:
        super().__init__(n_members, feature_names, seed)
        self.n_jobs = n_jobs
        self.early_stopping_rounds = (self.EARLY_STOPPING_ROUNDS if early_stopping_rounds is None
                                      else early_stopping_rounds)
        self.params = {**self.PARAMS, **params}

    def _boost(self, X: np.ndarray, y: np.ndarray, fit: np.ndarray, val: np.ndarray, extra: dict | None = None,
               init_score: Callable[[np.ndarray], np.ndarray] | None = None,
               sample_weight: np.ndarray | None = None):
        """Train on rows ``fit``, early-stop on rows ``val`` (starting from ``init_score(X)`` where
        given; both row sets weighted by ``sample_weight`` where given); sets ``best_iteration_`` and
        returns a booster rebuilt from the text of the trees used, so the saved text predicts exactly
        what the fitted object does."""
        import lightgbm as lgb

        params = _lgb_params(self.seed, self.n_jobs, {**self.params, **(extra or {})})
        rounds = params.pop("num_boost_round")
        score = (lambda rows: None) if init_score is None else (lambda rows: init_score(X[rows]))
        weight = (lambda rows: None) if sample_weight is None else (lambda rows: sample_weight[rows])
        train_set = lgb.Dataset(X[fit], y[fit], weight=weight(fit), init_score=score(fit), free_raw_data=True,
                                feature_name=[f"f{i}" for i in range(X.shape[1])])
        valid_set = lgb.Dataset(X[val], y[val], weight=weight(val), init_score=score(val), reference=train_set)
        booster = lgb.train(params, train_set, num_boost_round=rounds, valid_sets=[valid_set],
                            callbacks=[lgb.early_stopping(self.early_stopping_rounds, verbose=False)])
        self.best_iteration_ = booster.best_iteration or rounds
        return lgb.Booster(model_str=booster.model_to_string(num_iteration=self.best_iteration_))

    def _load_booster_of(self, directory) -> None:
        self.booster_ = _load_booster(Path(directory) / "lightgbm.txt", len(self.feature_names))
        self.best_iteration_ = self.booster_.num_trees()


class LightGBMStacker(_BoostedStacker):
    """Non-negative linear blend plus a monotone LightGBM residual (the default).

    A :class:`LinearStacker` is fitted first; LightGBM (L2 loss, 7 leaves, at most 300 rounds at
    learning rate 0.05, ``min_data_in_leaf`` 100) then starts from the blend (``init_score``) and
    fits what it misses, with ``monotone_constraints`` +1 on every member column (0 on sequence
    features), early-stopped on a seeded 10 % slice of its own training rows. The prediction is
    ``blend + trees``: strictly increasing in each member with a positive blend weight, so small
    member differences (SNV pairs: alt − ref) are never flattened to 0, unlike a plain LightGBM
    stacker, whose piecewise-constant output gave 2.4 % of test SNV pairs an alt − ref of exactly 0
    (issue 19). Residual boosting from a linear fit: Friedman 2001, *Ann. Stat.* 29:1189 (any
    initial model); monotone constraints: LightGBM's ``monotone_constraints``. Saved as
    ``linear.json`` (the blend) and ``lightgbm.txt`` (LightGBM model text, the best iteration).
    """

    name = "lightgbm"
    PARAMS = {"num_boost_round": 300, "learning_rate": 0.05, "num_leaves": 7, "min_data_in_leaf": 100,
              "lambda_l2": 1.0}
    EARLY_STOPPING_ROUNDS = 20

    def fit(self, X, y, sample_weight=None):
        fit, val = _split_for_early_stopping(len(X), self.seed)
        self.linear_ = LinearStacker(self.n_members, self.feature_names, self.seed).fit(
            X[fit], y[fit], None if sample_weight is None else sample_weight[fit])
        constraints = [1] * self.n_members + [0] * (X.shape[1] - self.n_members)
        self.booster_ = self._boost(X, y, fit, val, {"monotone_constraints": constraints}, self.linear_.predict,
                                    sample_weight)
        return self

    def predict(self, X):
        return self.linear_.predict(X) + np.asarray(self.booster_.predict(X), dtype=np.float64)

    def describe(self):
        out = {k: v for k, v in self.linear_.describe().items()}
        out["trees"] = float(self.booster_.num_trees())
        return out

    def save(self, directory):
        self.linear_.save(directory)
        write_text(Path(directory) / "lightgbm.txt", self.booster_.model_to_string())

    @classmethod
    def load(cls, directory, n_members, feature_names):
        self = cls(n_members, feature_names)
        self.linear_ = LinearStacker.load(directory, n_members, feature_names)
        self._load_booster_of(directory)
        return self


class PlainLightGBMStacker(_BoostedStacker):
    """LightGBM regressor on the level-1 features alone (the stacker before issue 19; kept for
    comparison): 15 leaves, learning rate 0.05, early-stopped on a seeded 10 % slice of its own
    training rows. Its output is piecewise constant: tens of thousands of test sequences share a
    value and close SNV pairs get alt − ref = 0 exactly, which costs the SNV category. Wolpert 1992,
    *Neural Networks* 5:241-259. Saved as ``lightgbm.txt``."""

    name = "lightgbm-plain"
    PARAMS = {"num_boost_round": 2000, "learning_rate": 0.05, "num_leaves": 15, "min_data_in_leaf": 40,
              "lambda_l2": 1.0}
    EARLY_STOPPING_ROUNDS = 50

    def fit(self, X, y, sample_weight=None):
        fit, val = _split_for_early_stopping(len(X), self.seed)
        self.booster_ = self._boost(X, y, fit, val, sample_weight=sample_weight)
        return self

    def predict(self, X):
        return np.asarray(self.booster_.predict(X), dtype=np.float64)

    def describe(self):
        gain = self.booster_.feature_importance(importance_type="gain").astype(np.float64)
        total = gain.sum()
        share = gain / total if total > 0 else gain
        out = {f"gain_share[{n}]": float(s) for n, s in zip(self.feature_names, share)}
        out["best_iteration"] = float(self.best_iteration_)
        return out

    def save(self, directory):
        write_text(Path(directory) / "lightgbm.txt", self.booster_.model_to_string())

    @classmethod
    def load(cls, directory, n_members, feature_names):
        self = cls(n_members, feature_names)
        self._load_booster_of(directory)
        return self


#: Stacker name -> class.
STACKER_CLASSES: dict[str, type[Stacker]] = {c.name: c for c in (LightGBMStacker, LinearStacker, MeanStacker,
                                                                   PlainLightGBMStacker)}


def make_stacker(name: str, n_members: int, feature_names: list[str], seed: int = 0,
                 n_jobs: int | None = None) -> Stacker:
    """A fresh stacker by name (``lightgbm``, ``linear``, ``mean`` or ``lightgbm-plain``).

    Raises:
        ValueError: unknown name (``auto`` is a choice among these, made by :func:`ensemble_run`).
    """
    if name not in STACKER_CLASSES:
        raise ValueError(f"unknown stacker {name!r}; choose from {', '.join(STACKERS)}")
    cls = STACKER_CLASSES[name]
    if issubclass(cls, _BoostedStacker):
        return cls(n_members, feature_names, seed, n_jobs=n_jobs)
    return cls(n_members, feature_names, seed)


# --------------------------------------------------------------------------------------------
# The selection criterion: OOF level times pair resolution
# --------------------------------------------------------------------------------------------

def resolution_pairs(members: np.ndarray, groups: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
    """Pairs of training rows the members predict almost alike, as SNV pairs are.

    Each row is paired with its nearest neighbour (Euclidean, ``scipy.spatial.cKDTree``) in the space
    of the z-scored member predictions among the rows of its own group (the stacker's inner fold, so
    that one inner-fold stacker predicts both rows of a pair). No target is used.

    Args:
        members: ``(N, M) float64`` member OOF predictions; groups: ``(N,) int`` inner-fold index.
        rows: ``(N,) bool`` rows that may be paired (default all; :func:`ensemble_run` passes the
            rows of positive :func:`length_weights`).

    Returns:
        ``(P, 2) int64`` distinct pairs ``(i, j)``, ``i < j``, sorted.
    """
    from scipy.spatial import cKDTree

    sd = members.std(axis=0)
    Z = (members - members.mean(axis=0)) / np.where(sd > 0, sd, 1.0)
    allowed = np.ones(len(members), dtype=bool) if rows is None else np.asarray(rows, dtype=bool)
    found = []
    for g in np.unique(groups):
        idx = np.flatnonzero((groups == g) & allowed)
        if len(idx) < 2:
            continue
        _, nn = cKDTree(Z[idx]).query(Z[idx], k=2)
        found.append(np.sort(np.c_[idx, idx[nn[:, 1]]], axis=1))
    if not found:
        return np.zeros((0, 2), dtype=np.int64)
    pairs = np.unique(np.concatenate(found).astype(np.int64), axis=0)
    return pairs[pairs[:, 0] != pairs[:, 1]]


def pair_consistency(pred: np.ndarray, members: np.ndarray, pairs: np.ndarray) -> float:
    """Share of the pairs on which every member moves the same way where ``pred`` moves that way too.

    Over the pairs ``(a, b)`` whose member differences ``members[a] − members[b]`` are all positive
    or all negative, the share whose ``pred[a] − pred[b]`` has that sign (0 counts as a miss). A
    member scores 1 by definition, as does any stacker strictly increasing in every member; a
    piecewise-constant stacker scores its share of resolved pairs. No target is used.

    Args:
        pred: ``(N,)``; members: ``(N, M)``; pairs: ``(P, 2)`` row indices.

    Returns:
        The share in [0, 1]; 1.0 when no pair has agreeing members.
    """
    if not len(pairs):
        return 1.0
    dm = members[pairs[:, 0]] - members[pairs[:, 1]]
    sign = np.where((dm > 0).all(axis=1), 1.0, np.where((dm < 0).all(axis=1), -1.0, 0.0))
    agree = sign != 0
    if not agree.any():
        return 1.0
    dp = pred[pairs[agree, 0]] - pred[pairs[agree, 1]]
    return float(np.mean(np.sign(dp) == sign[agree]))


def length_weights(train_lengths: np.ndarray, test_lengths: np.ndarray) -> np.ndarray | None:
    """Importance weights of training rows for the sequence-length shift between train and test.

    ``w_i = p_test(ℓ_i) / p_train(ℓ_i)`` with ``p`` the share of sequences of length ``ℓ`` in each
    set, rescaled to mean 1 over the training rows; a length no test sequence has gets 0. Uses only
    the test sequences' lengths (no measured value). Density-ratio weighting under covariate shift:
    Shimodaira 2000, *J. Stat. Plan. Inference* 90:227-244. On ``dev_train.txt`` against the
    challenge's test set (every sequence 110 nt) the 15,219 rows of 110 nt get weight 16,370 /
    15,219 and the 1,151 others 0.

    Args:
        train_lengths: ``(N,) int`` lengths of the training sequences; test_lengths: ``(N_test,) int``.

    Returns:
        ``(N,) float64`` weights, or None when every weight would be 1 (lengths distributed alike).

    Raises:
        ValueError: no training sequence has the length of any test sequence (nothing to weight).
    """
    train_lengths, test_lengths = np.asarray(train_lengths), np.asarray(test_lengths)
    lengths, inverse, train_count = np.unique(train_lengths, return_inverse=True, return_counts=True)
    test_share = np.array([np.count_nonzero(test_lengths == n) for n in lengths]) / max(len(test_lengths), 1)
    w = (test_share / (train_count / len(train_lengths)))[inverse]
    if not w.any():
        shown = ", ".join(map(str, np.unique(test_lengths)[:5]))
        raise ValueError(f"no training sequence has the length of a test sequence (training: "
                         f"{', '.join(map(str, lengths[:5]))} nt…; test: {shown} nt…): no training row "
                         "resembles the test set")
    w = w / w.mean()
    return None if np.allclose(w, 1.0, rtol=0, atol=1e-12) else w


def _weighted_pearson(a: np.ndarray, b: np.ndarray, w: np.ndarray) -> float:
    """Pearson r of ``a`` and ``b`` under row weights ``w`` (the correlation of the weighted
    empirical distribution; rows of weight 0 do not count; NaN when either side is constant)."""
    w = w / w.sum()
    da, db = a - w @ a, b - w @ b
    denominator = np.sqrt((w @ (da * da)) * (w @ (db * db)))
    return float(w @ (da * db) / denominator) if denominator > 0 else float("nan")


def _weighted_ranks(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Mid-ranks of ``x`` under row weights ``w``: the weight below each value plus half the
    weight of its ties (with weights 0/1: the ordinary average ranks of the weight-1 rows, − 1/2)."""
    values, inverse = np.unique(x, return_inverse=True)
    tied = np.bincount(inverse, weights=w, minlength=len(values))
    return (np.cumsum(tied) - tied / 2)[inverse]


def oof_score(pred: np.ndarray, y: np.ndarray, members: np.ndarray | None = None,
              pairs: np.ndarray | None = None, weights: np.ndarray | None = None) -> dict[str, float]:
    """OOF numbers of ``(n,)`` predictions against ``(n,)`` targets.

    Args:
        weights: ``(n,) float64`` row weights (:func:`length_weights`) or None (every row 1).

    Returns:
        ``{"pearson", "spearman", "score"}`` (``score`` = Pearson r + Spearman ρ, all rows,
        unweighted); with ``weights`` also ``weighted_pearson``, ``weighted_spearman`` (Pearson r of
        weighted mid-ranks) and ``weighted_score``; with ``members`` ``(n, M)`` and ``pairs``
        (:func:`resolution_pairs`) also ``pair_consistency`` (:func:`pair_consistency`) and
        ``criterion`` = ``level · ((1 − PAIR_WEIGHT) + PAIR_WEIGHT · pair_consistency)``, where
        ``level`` is ``weighted_score`` with weights, else ``score``.
    """
    r, rho = pearson(pred, y), spearman(pred, y)
    out = {"pearson": r, "spearman": rho, "score": r + rho}
    level = out["score"]
    if weights is not None:
        w = np.asarray(weights, dtype=np.float64)
        wr = _weighted_pearson(pred, y, w)
        wrho = _weighted_pearson(_weighted_ranks(pred, w), _weighted_ranks(y, w), w)
        out.update(weighted_pearson=wr, weighted_spearman=wrho, weighted_score=wr + wrho)
        level = out["weighted_score"]
    if members is not None and pairs is not None:
        out["pair_consistency"] = pair_consistency(pred, members, pairs)
        out["criterion"] = level * ((1 - PAIR_WEIGHT) + PAIR_WEIGHT * out["pair_consistency"])
    return out


def _criterion(scores: dict[str, float]) -> float:
    return scores.get("criterion", scores["score"])


def resolution(pred: np.ndarray, snv_pairs: np.ndarray | None) -> dict[str, float]:
    """How finely a test prediction resolves sequences (no measured value is used).

    Args:
        pred: ``(N_test,)`` predictions; snv_pairs: ``(P, 2)`` (alt, ref) test indices or None.

    Returns:
        ``{"distinct": share of distinct values among the N_test predictions, "snv_zero":
        share of SNV pairs whose alt − ref is exactly 0}`` (``snv_zero`` only with pairs).
    """
    out = {"distinct": float(len(np.unique(pred)) / max(len(pred), 1))}
    if snv_pairs is not None and len(snv_pairs):
        out["snv_zero"] = float(np.mean(pred[snv_pairs[:, 0]] == pred[snv_pairs[:, 1]]))
    return out


def inner_fold_index(n: int, folds: int, seed: int) -> np.ndarray:
    """``(n,) int64``: the inner fold holding out each row in :func:`cross_fit` (same splitter, seed)."""
    from sklearn.model_selection import KFold

    if n < folds:
        raise ValueError(f"{n} training rows cannot be split into {folds} inner folds")
    index = np.zeros(n, dtype=np.int64)
    for k, (_, held) in enumerate(KFold(folds, shuffle=True, random_state=seed).split(np.zeros((n, 1)))):
        index[held] = k
    return index


def cross_fit(factory: Callable[[int], Stacker], X: np.ndarray, y: np.ndarray, X_test: np.ndarray,
              folds: int = 5, seed: int = 0, sample_weight: np.ndarray | None = None
              ) -> tuple[np.ndarray, np.ndarray, dict[str, float], list[Stacker]]:
    """Inner K-fold cross-fitting of a stacker.

    Args:
        factory: ``k -> Stacker`` (a fresh, seeded stacker for inner fold ``k``).
        X: ``(N, F) float64`` level-1 features of the training rows; ``y``: ``(N,)`` targets.
        X_test: ``(N_test, F) float64`` the same features for the test set.
        folds, seed: ``sklearn.model_selection.KFold(folds, shuffle=True, random_state=seed)``.
        sample_weight: ``(N,) float64`` row weights passed to each stacker's ``fit`` (None: not
            passed; a ``fit`` without a ``sample_weight`` parameter is fitted unweighted). Every row
            gets an OOF prediction, whatever its weight.

    Returns:
        ``(oof, test, described, models)``: ``(N,) float64`` inner out-of-fold predictions,
        ``(N_test,) float64`` mean of the inner stackers' test predictions, the inner stackers'
        :meth:`Stacker.describe` numbers averaged over folds, and the ``folds`` fitted stackers.

    Raises:
        ValueError: fewer training rows than folds.
    """
    from sklearn.model_selection import KFold

    if len(X) < folds:
        raise ValueError(f"{len(X)} training rows cannot be split into {folds} inner folds")
    y = np.asarray(y, dtype=np.float64)
    oof = np.full(len(X), np.nan)
    test = np.zeros(len(X_test))
    described: dict[str, list[float]] = {}
    models = []
    for k, (fit_idx, held_idx) in enumerate(KFold(folds, shuffle=True, random_state=seed).split(X)):
        model = factory(k)
        if sample_weight is not None and _takes_weights(model):
            model = model.fit(X[fit_idx], y[fit_idx], sample_weight=sample_weight[fit_idx])
        else:
            model = model.fit(X[fit_idx], y[fit_idx])
        models.append(model)
        oof[held_idx] = model.predict(X[held_idx])
        test += model.predict(X_test) / folds
        for key, value in model.describe().items():
            described.setdefault(key, []).append(value)
    return oof, test, {k: float(np.mean(v)) for k, v in described.items()}, models


def _takes_weights(model: Stacker) -> bool:
    return "sample_weight" in inspect.signature(model.fit).parameters


# --------------------------------------------------------------------------------------------
# ensemble_run
# --------------------------------------------------------------------------------------------

@dataclass
class EnsembleResult:
    """What :func:`ensemble_run` did.

    Attributes:
        stacker: the stacker's name (the one chosen with ``auto``); ``members``: member method
            names (feature order).
        features: level-1 feature names (members, then sequence features).
        fallback: True when the stacker's criterion was below the best member's, so the ensemble
            is that member's predictions; ``used``: ``"stacker"`` or the member's name.
        best_member: the member with the highest criterion (OOF level and pair term).
        stacker_oof: :func:`oof_score` of the stacker's inner-CV OOF predictions (with the pair
            terms and ``criterion``).
        member_oof: member -> the same numbers for its out-of-fold predictions.
        details: stacker weights or feature importances (averaged over inner folds).
        boards: the ensemble's :class:`BoardScore` per board; ``member_boards``: the members'.
        oof: ``(N_train,) float64``; ``test``: ``(N_test,) float64``; what the ensemble uses.
        out_dir: ``<run>/methods/ensemble``.
        candidates: stacker name -> its :func:`oof_score` (every stacker compared; one unless ``auto``).
        pairs: description of the training pairs of the pair term.
        resolution: ``"ensemble"`` and each member -> :func:`resolution` of its test predictions.
        weighting: description of the training rows' weights (:func:`length_weights`).
    """

    stacker: str
    members: list[str]
    features: list[str]
    fallback: bool
    used: str
    best_member: str
    stacker_oof: dict[str, float]
    member_oof: dict[str, dict[str, float]]
    details: dict[str, float]
    boards: dict[str, BoardScore]
    member_boards: dict[str, dict[str, BoardScore]]
    oof: np.ndarray
    test: np.ndarray
    out_dir: Path
    notes: list[str] = field(default_factory=list)
    candidates: dict[str, dict[str, float]] = field(default_factory=dict)
    pairs: str = ""
    resolution: dict[str, dict[str, float]] = field(default_factory=dict)
    weighting: str = ""

    @property
    def oof_scores(self) -> dict[str, float]:
        """OOF numbers of what the ensemble uses (the stacker, or the best member on fallback)."""
        return self.member_oof[self.best_member] if self.fallback else self.stacker_oof


def ensemble_run(run_dir: str | Path, stacker: str | Stacker = "auto", methods: list[str] | str | None = None,
                 seq_features: bool = False, *, inner_folds: int = 5, seed: int | None = None,
                 n_jobs: int | None = None, data_dir: str | Path | None = None,
                 snv_pairs: str | Path | None = None, train: str | Path | None = None,
                 match_test_lengths: bool = True) -> EnsembleResult:
    """Stack the members of a K-fold run and write ``methods/ensemble/`` (see the module doc).

    Args:
        run_dir: a run directory of ``harness run --split kfold``.
        stacker: ``"auto"`` (the default: every stacker of :data:`AUTO_CANDIDATES` is cross-fitted
            and the one with the highest criterion is used), ``"lightgbm"``, ``"linear"``,
            ``"mean"``, ``"lightgbm-plain"``, or a :class:`Stacker` instance (one instance is
            re-fitted on every inner fold and not saved; used by tests to force a bad stacker).
        methods: member names (a list or ``"a,b"``); default every method of the run with
            ``oof.npy`` and ``test.npy`` except ``ensemble``. At least two.
        seq_features: add GC content and sequence length (:func:`harness.data.encoding.gc_content`,
            ``SeqTable.lengths``) to the level-1 features (not with ``mean``; ``auto`` skips it).
        inner_folds, seed: the stacker's inner K-fold (seed default: the run's split seed).
        n_jobs: LightGBM threads (None: LightGBM's default).
        data_dir, snv_pairs, train: overrides of the paths recorded in ``run.json``.
        match_test_lengths: weight the training rows by :func:`length_weights` in the stackers'
            fits, the criterion and the pairs (the default); False: every row 1.

    Returns:
        :class:`EnsembleResult`.

    Raises:
        ValueError: a hold-out run (``split.json`` kind ``holdout``, or a member whose
            ``oof.npy`` has NaN rows), a ``--split none`` run (no OOF predictions at all), fewer
            than two members, an unknown member or stacker, ``seq_features`` with ``mean``.
        FileNotFoundError: no ``run.json``; DataError: the run's data files are gone or differ,
            or a member's ``oof.npy``/``test.npy`` is unreadable, pickled, of the wrong shape or
            not finite (:func:`harness.rundir.load_predictions`; the file is named).
        harness.io.UnsafePath: ``methods/ensemble`` or a path below it is a symbolic link.
    """
    run_dir = Path(run_dir)
    layout = RunDir(run_dir)
    info = read_run_json(run_dir)
    kind = split_kind(run_dir, info)
    if kind == "none":
        raise ValueError(f"{run_dir} was run with --split none: each method was fitted once on every training "
                         "row, so there are no out-of-fold (OOF) predictions to stack; make a K-fold run "
                         "(harness run --split kfold --folds 5) to ensemble")
    if kind == "holdout":
        raise ValueError(f"{run_dir} is a hold-out run: stacking needs out-of-fold predictions for every "
                         "training row; make a K-fold run (harness run --split kfold --folds 5)")
    members = _members(run_dir, methods)
    if isinstance(stacker, str) and stacker not in STACKERS:
        raise ValueError(f"unknown stacker {stacker!r}; choose from {', '.join(STACKERS)}")
    if seq_features and stacker == "mean":
        raise ValueError("--seq-features needs a fitted stacker (lightgbm or linear); the mean stacker averages "
                         "member predictions only")
    ens = layout.ensemble
    out_dir = ens.path
    refuse_links(run_dir, ens.stacker_json)

    train_table = run_train_table(run_dir, info, train)
    test_set = run_test_set(run_dir, info, data_dir, snv_pairs)
    oof_cols, test_cols = [], []
    for m in members:
        oof_path = layout.method(m).oof
        oof = load_predictions(oof_path, len(train_table), allow_nan=True)
        missing = int(np.isnan(oof).sum())
        if missing:
            raise ValueError(f"{oof_path}: {missing:,} of {len(oof):,} training rows have no "
                             "out-of-fold prediction (a hold-out run or an unfinished K-fold run); stacking needs a "
                             "finished K-fold run (harness run --split kfold)")
        oof_cols.append(oof)
        test_cols.append(load_predictions(layout.method(m).test, len(test_set)))
    y = train_table.y.astype(np.float64)

    features = list(members)
    X, X_test = np.column_stack(oof_cols), np.column_stack(test_cols)
    if seq_features:
        features += list(SEQ_FEATURES)
        X = np.c_[X, _seq_features(train_table)]
        X_test = np.c_[X_test, _seq_features(test_set.table)]

    seed = int(seed if seed is not None else (info.get("split") or {}).get("seed", 0))
    members_X = X[:, : len(members)]
    weights, weighting = _row_weights(train_table, test_set.table, match_test_lengths)
    pairs = resolution_pairs(members_X, inner_fold_index(len(X), inner_folds, seed),
                             None if weights is None else weights > 0)
    pairs_text = (f"{len(pairs):,} pairs of training rows, each row and its nearest neighbour in z-scored member "
                  "predictions within its inner fold" + ("" if weights is None else " (rows of positive weight)"))
    if isinstance(stacker, str):
        names = [s for s in AUTO_CANDIDATES if not (seq_features and s == "mean")] if stacker == "auto" else [stacker]

        def factory_of(name):
            return lambda k: make_stacker(name, len(members), features, seed + k, n_jobs)
    else:
        names = [getattr(stacker, "name", type(stacker).__name__)]

        def factory_of(name):
            return lambda k: stacker
    fits, candidates = {}, {}
    for name in names:
        fits[name] = cross_fit(factory_of(name), X, y, X_test, inner_folds, seed, weights)
        candidates[name] = oof_score(fits[name][0], y, members_X, pairs, weights)
    stacker_name = max(names, key=lambda n: candidates[n]["criterion"])  # first listed wins a tie
    stacked_oof, stacked_test, details, models = fits[stacker_name]
    stacker_oof = candidates[stacker_name]

    member_oof = {m: oof_score(o, y, members_X, pairs, weights) for m, o in zip(members, oof_cols)}
    best = max(members, key=lambda m: member_oof[m]["criterion"])
    fallback = stacker_oof["criterion"] < member_oof[best]["criterion"]
    if fallback:
        i = members.index(best)
        final_oof, final_test = oof_cols[i], test_cols[i]
    else:
        final_oof, final_test = stacked_oof, stacked_test

    boards = score_boards(final_test, test_set)
    # from the members' test.npy, never their scores.json (a cache that may be stale)
    member_boards = {m: score_boards(t, test_set) for m, t in zip(members, test_cols)}
    snv = test_set.categories.get("SNVs")
    resolutions = {ENSEMBLE: resolution(final_test, snv),
                   **{m: resolution(t, snv) for m, t in zip(members, test_cols)}}
    notes = []
    if weights is not None and not isinstance(stacker, str) and not _takes_weights(stacker):
        notes.append(f"the {stacker_name} stacker's fit takes no sample_weight: fitted unweighted "
                     "(its criterion is still weighted)")
    if info.get("snv_source") and not same_snv_source(info["snv_source"], test_set.snv_source):
        notes.append(f"SNV source differs from the run's: run {info['snv_source']!r}, now {test_set.snv_source!r}")
    chosen = (f"auto chose {stacker_name} (criterion {stacker_oof['criterion']:.4f}; "
              + ", ".join(f"{n} {c['criterion']:.4f}" for n, c in candidates.items() if n != stacker_name) + "); "
              if len(names) > 1 else "")
    decision = chosen + (
        f"fallback: the {stacker_name} stacker's criterion {stacker_oof['criterion']:.4f} is below the best member "
        f"{best}'s {member_oof[best]['criterion']:.4f}; the ensemble is {best}'s predictions"
        if fallback else
        f"stacker used: criterion {stacker_oof['criterion']:.4f} ≥ best member {best}'s {member_oof[best]['criterion']:.4f}")

    write_npy(ens.stacker_oof, stacked_oof)
    write_npy(ens.stacker_test, stacked_test)
    write_npy(ens.oof, final_oof)
    write_npy(ens.test, final_test)
    stacker_files = _save_stacker(ens.stacker, stacker_name, models, members, features, bool(seq_features),
                                  best if fallback else None)
    if stacker_files is None:
        notes.append(f"the {stacker_name} stacker cannot be saved: load_stacker() will refuse this run")
    used_oof = member_oof[best] if fallback else stacker_oof
    board_dicts = {b: s.to_dict() for b, s in boards.items()}
    write_json(ens.scores, {
        "boards": board_dicts, "oof_pearson": used_oof["pearson"], "oof_spearman": used_oof["spearman"],
        "simulated": bool(test_set.simulated), "stacker": stacker_name, "fallback": fallback,
        "used": best if fallback else "stacker",
    })
    per_category = {b: _per_category(boards[b], {m: member_boards[m][b] for m in members}) for b in boards}
    write_json(ens.ensemble_json, {
        "stacker": stacker_name, "requested": stacker if isinstance(stacker, str) else stacker_name,
        "members": members, "features": features, "seq_features": bool(seq_features),
        "inner_cv": {"folds": inner_folds, "seed": seed, "splitter": "sklearn KFold(shuffle=True)"},
        _details_key(stacker_name): details,
        "oof": {"criterion": CRITERION, "pair_weight": PAIR_WEIGHT, "pairs": pairs_text, "row_weights": weighting,
                "candidates": candidates,
                "stacker": stacker_oof, "members": member_oof, "best_member": best},
        "fallback": fallback, "used": best if fallback else "stacker", "decision": decision,
        "resolution": resolutions, "per_category": per_category,
        "n_train": len(y), "n_test": len(test_set), "snv_source": test_set.snv_source,
        "simulated": bool(test_set.simulated), "notes": notes,
        "stacker_files": stacker_files,
    })
    board_path = run_dir / "leaderboard.json"
    leaderboard = read_json(board_path) if board_path.is_file() else {}
    leaderboard[ENSEMBLE] = {"boards": board_dicts, "oof_pearson": used_oof["pearson"],
                             "oof_spearman": used_oof["spearman"], "stacker": stacker_name,
                             "members": members, "fallback": fallback, "used": best if fallback else "stacker"}
    write_json(board_path, leaderboard)
    notes.insert(0, decision)
    return EnsembleResult(stacker_name, members, features, fallback, best if fallback else "stacker", best,
                          stacker_oof, member_oof, details, boards, member_boards, final_oof, final_test, out_dir, notes,
                          candidates, pairs_text, resolutions, weighting)


def _row_weights(train: SeqTable, test: SeqTable, match: bool) -> tuple[np.ndarray | None, str]:
    """:func:`length_weights` of the training rows (None: every row 1) and their description."""
    if not match:
        return None, "every row weight 1 (length matching off)"
    try:
        w = length_weights(train.lengths, test.lengths)
    except ValueError as exc:
        return None, f"every row weight 1: {exc}"
    if w is None:
        return None, "every row weight 1 (training and test sequence lengths are distributed alike)"
    kept = int(np.count_nonzero(w))
    return w, (f"rows weighted by test/train frequency of their sequence length: {kept:,} of {len(w):,} rows "
               f"weighted, {len(w) - kept:,} of lengths no test sequence has get 0; effective rows "
               f"{w.sum() ** 2 / (w @ w):,.0f}")


def _per_category(ensemble: BoardScore, members: dict[str, BoardScore]) -> dict[str, dict]:
    """``{category: {"weight", "n", "ensemble": [r, ρ], member: [r, ρ], ...}}`` of one board."""
    out = {}
    for cat, score in ensemble.categories.items():
        row = {"weight": WEIGHTS.get(cat, 0.0), "n": score.n, ENSEMBLE: [score.pearson, score.spearman]}
        for m, s in members.items():
            c = s.categories.get(cat)
            row[m] = [c.pearson, c.spearman] if c is not None else None
        out[cat] = row
    return out


# --------------------------------------------------------------------------------------------
# The saved stacker
# --------------------------------------------------------------------------------------------

#: Version of the ``methods/ensemble/stacker/`` layout.
STACKER_FORMAT = 1


def _save_stacker(directory: Path, name: str, models: list[Stacker], members: list[str], features: list[str],
                  seq_features: bool, fallback_member: str | None) -> dict | None:
    """Replace ``directory`` with the stacker the ensemble uses; return its file manifest (None when
    the stacker cannot be saved, e.g. a user's :class:`Stacker` subclass: the directory is then left
    empty of a ``stacker.json``)."""
    if directory.is_dir():
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    spec = {"format": STACKER_FORMAT, "members": members, "features": features, "seq_features": seq_features}
    if fallback_member is not None:
        spec.update(kind="member", member=fallback_member)
    else:
        if name not in STACKER_CLASSES or any(type(m) is not STACKER_CLASSES[name] for m in models):
            return None
        for k, model in enumerate(models):
            fold_path(directory, k).mkdir()
            model.save(fold_path(directory, k))
        spec.update(kind=name, folds=len(models), combine="mean of the inner-fold stackers' predictions")
    write_json(directory / STACKER_JSON, spec)
    return file_manifest(directory)


@dataclass
class LoadedStacker:
    """The ensemble of a run as a function of its members' predictions (:func:`load_stacker`).

    Attributes:
        kind: a stacker name, or ``"member"`` when the ensemble fell back to one member.
        members: member method names, the column order of the input; features: level-1 names.
        seq_features: True when GC content and length are features too (``sequences`` needed).
        models: the inner-fold stackers (empty for ``"member"``); member: the fallback member.
    """

    kind: str
    members: list[str]
    features: list[str]
    seq_features: bool
    models: list[Stacker] = field(default_factory=list)
    member: str | None = None

    def __call__(self, predictions: np.ndarray, sequences: SeqTable | None = None) -> np.ndarray:
        """Ensemble predictions from member predictions.

        Args:
            predictions: ``(N, M)`` member predictions, column ``j`` from member ``members[j]``
                (each member's raw test-time output, as its ``test.npy``).
            sequences: the N sequences; needed only when ``seq_features``.

        Returns:
            ``(N,) float64``: the mean of the inner-fold stackers' predictions (the fallback
            member's column when ``kind == "member"``), as ``methods/ensemble/test.npy``.

        Raises:
            ValueError: wrong shape, non-finite values, or ``sequences`` missing or of another length.
        """
        P = np.asarray(predictions, dtype=np.float64)
        if P.ndim != 2 or P.shape[1] != len(self.members):
            raise ValueError(f"expected (N, {len(self.members)}) predictions of {', '.join(self.members)}, "
                             f"got shape {P.shape}")
        if not np.isfinite(P).all():
            raise ValueError(f"{int((~np.isfinite(P)).sum())} member predictions are NaN or inf")
        if self.kind == "member":
            return P[:, self.members.index(self.member)].copy()
        if self.seq_features:
            if sequences is None or len(sequences) != len(P):
                raise ValueError("this ensemble uses sequence features (GC content, length): pass the "
                                 f"{len(P)} sequences")
            P = np.c_[P, _seq_features(sequences)]
        return np.mean([m.predict(P) for m in self.models], axis=0)

    def predict(self, member_predictions: np.ndarray, table: SeqTable | None = None) -> np.ndarray:
        """Same as calling the object (the interface ``harness predict --method ensemble`` uses)."""
        return self(member_predictions, table)

    @property
    def units(self) -> str:
        """What the output measures: z-scores for the ``mean`` stacker, else the training target's units."""
        return ("mean of the members' z-scores (each member standardised by its OOF mean and std)"
                if self.kind == "mean" else "the training target's units (expression)")


def load_stacker(run_dir: str | Path) -> LoadedStacker:
    """The fitted ensemble of a run, verified before anything is parsed.

    Reads ``methods/ensemble/ensemble.json``, checks every file of ``methods/ensemble/stacker/``
    against the XXH3-128 manifest recorded there (``stacker_files``;
    :func:`harness.integrity.verify`; files not in it are refused, links are never followed), then
    loads JSON and LightGBM model text (no pickle).

    Returns:
        :class:`LoadedStacker`: ``f(predictions (N, M), sequences=None) -> (N,) float64``.

    Raises:
        FileNotFoundError: no ``ensemble.json`` (run ``harness ensemble`` first).
        harness.integrity.IntegrityError: no manifest (an ensemble written before stackers were
            saved, or by a stacker that cannot be saved: rerun ``harness ensemble``), or a file
            missing, changed, truncated or not listed (named).
        harness.io.UnsafePath: a symbolic link on the way; DataError: a malformed file (named).
    """
    run_dir = Path(run_dir)
    ens = RunDir(run_dir).ensemble
    info_path = refuse_links(run_dir, ens.ensemble_json)
    directory = refuse_links(run_dir, ens.stacker)
    if not info_path.is_file():
        raise FileNotFoundError(f"{info_path}: no ensemble in this run; run `harness ensemble {run_dir}` first")
    recorded = read_json(info_path).get("stacker_files")
    if not recorded:
        raise IntegrityError(f"{info_path}: no saved stacker recorded (written by an older harness version or by a "
                             "stacker that cannot be saved); rerun `harness ensemble`")
    find_links(directory)
    verify(directory, recorded)
    present = {p.relative_to(directory).as_posix() for p in directory.rglob("*") if p.is_file()}
    extra = sorted(present - set(recorded))
    if extra:
        raise IntegrityError(f"{directory / extra[0]}: not a file the harness saved (not in ensemble.json's manifest)")
    spec_path = ens.stacker_json
    spec = read_json(spec_path)
    try:
        members, features = [str(m) for m in spec["members"]], [str(f) for f in spec["features"]]
        kind, seq = str(spec["kind"]), bool(spec["seq_features"])
        fmt = spec["format"]
    except (KeyError, TypeError) as exc:
        raise DataError(f"{spec_path}: malformed ({exc!r})") from None
    if fmt != STACKER_FORMAT:
        raise DataError(f"{spec_path}: format {fmt!r}, this harness reads {STACKER_FORMAT}")
    if features[: len(members)] != members:
        raise DataError(f"{spec_path}: features must start with the members")
    if kind == "member":
        if spec.get("member") not in members:
            raise DataError(f"{spec_path}: fallback member {spec.get('member')!r} is not a member")
        return LoadedStacker(kind, members, features, seq, member=spec["member"])
    if kind not in STACKER_CLASSES:
        raise DataError(f"{spec_path}: unknown stacker kind {kind!r}")
    folds = spec.get("folds")
    if not isinstance(folds, int) or folds < 1:
        raise DataError(f"{spec_path}: 'folds' must be a positive integer")
    models = [STACKER_CLASSES[kind].load(fold_path(directory, k), len(members), features) for k in range(folds)]
    return LoadedStacker(kind, members, features, seq, models)



def _members(run_dir: Path, methods: list[str] | str | None) -> list[str]:
    if isinstance(methods, str):
        methods = [m.strip() for m in methods.split(",") if m.strip()]
    layout = RunDir(run_dir)
    available = [m for m in run_methods(run_dir) if m != ENSEMBLE
                 and layout.method(m).oof.is_file() and layout.method(m).test.is_file()]
    if methods:
        if ENSEMBLE in methods:
            raise ValueError(f"{ENSEMBLE!r} cannot be a member of itself")
        unknown = [m for m in methods if m not in available]
        if unknown:
            raise ValueError(f"{run_dir}: no finished method {', '.join(unknown)} (methods/<name>/oof.npy and "
                             f"test.npy); available: {', '.join(available) or 'none'}")
        members = list(dict.fromkeys(methods))
    else:
        members = available
    if len(members) < 2:
        raise ValueError(f"{run_dir}: stacking needs at least two finished methods, found {members or 'none'}")
    return members


def _details_key(stacker_name: str) -> str:
    return {"linear": "weights", "mean": "weights", "lightgbm": "weights",
            "lightgbm-plain": "feature_importance"}.get(stacker_name, "details")


def _seq_features(table: SeqTable) -> np.ndarray:
    """``(N, 2) float64``: GC fraction and length of each sequence."""
    return np.c_[gc_content(table.codes), table.lengths.astype(np.float64)]


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------

def result_table(result: EnsembleResult) -> Table:
    """Rich table: the ensemble beside the stackers compared and the members (best member marked):
    OOF score (r + ρ; on the weighted rows when rows are weighted), pair consistency, the selection
    criterion, and the private board scores (the
    public and full boards are in ``scores.json``; per category: :func:`category_table`); fits 80
    columns."""
    boards = ["private"] if "private" in result.boards else list(result.boards)[:1]
    table = Table(title=f"Ensemble ({result.stacker} stacker)", box=box.SIMPLE_HEAVY)
    table.add_column("method", no_wrap=True)
    table.add_column("OOF\nr+ρ", justify="right")
    table.add_column("pair\ncons.", justify="right")
    table.add_column("crite-\nrion", justify="right")
    for b in boards:
        table.add_column(f"{b}\nPearson²", justify="right")
        table.add_column(f"{b}\nSpearman", justify="right")

    def cells(oof: dict[str, float], scores: dict[str, BoardScore]) -> list[str]:
        row = [f"{oof.get('weighted_score', oof['score']):.4f}", f"{oof.get('pair_consistency', float('nan')):.3f}",
               f"{_criterion(oof):.4f}"]
        for b in boards if scores else []:
            row += [score_text(scores[b].pearson_score, scores[b]), score_text(scores[b].spearman_score, scores[b])]
        return row

    label = f"{ENSEMBLE} (= {result.best_member}, fallback)" if result.fallback else f"{ENSEMBLE} ({result.stacker})"
    table.add_row(label, *cells(result.oof_scores, result.boards), style="bold")
    for name, oof in result.candidates.items():
        if result.fallback or name != result.stacker:
            table.add_row(f"{name} (not used)", *cells(oof, {})[:3], *["" for _ in range(2 * len(boards))],
                          style="dim")
    ranked = sorted(result.members, key=lambda m: -_criterion(result.member_oof[m]))
    for m in ranked:
        name = f"{m} (best member)" if m == result.best_member else m
        table.add_row(name, *cells(result.member_oof[m], result.member_boards[m]),
                      style=None if m == result.best_member else "dim")
    table.caption = "; ".join(result.notes) + f"\ncriterion: {CRITERION}; pairs: {result.pairs}" \
        + (f"\nOOF rows: {result.weighting}" if result.weighting else "") + f"\nwritten to {result.out_dir}"
    missing = {c for sc in [result.boards, *result.member_boards.values()] for b in boards for c in sc[b].missing}
    if missing:
        table.caption += "\n" + partial_note(missing)
    return table


def category_table(result: EnsembleResult, board: str = "private") -> Table:
    """Rich table, one row per test category of ``board``: weight, the ensemble's Pearson r / Spearman
    ρ, and ensemble − member for each member (Δr / Δρ; positive = the ensemble gains), then the
    share of distinct test predictions and of SNV pairs with alt − ref exactly 0 (no measured value
    used). The footer row holds the two board scores and their differences."""
    ens = result.boards[board]
    table = Table(title=f"Ensemble vs members per category, {board} board", box=box.SIMPLE_HEAVY, show_footer=True)
    table.add_column("category", footer="score (Pearson² / Spearman)")
    table.add_column("w", justify="right")
    table.add_column(f"{ENSEMBLE}\nr / ρ", justify="right",
                     footer=f"{score_text(ens.pearson_score, ens)} / {score_text(ens.spearman_score, ens)}")
    for m in result.members:
        s = result.member_boards[m][board]
        table.add_column(f"− {m}\nΔr / Δρ", justify="right",
                         footer=f"{ens.pearson_score - s.pearson_score:+.4f} / {ens.spearman_score - s.spearman_score:+.4f}")
    for cat, score in ens.categories.items():
        row = [cat, f"{WEIGHTS.get(cat, 0.0):g}", f"{score.pearson:.3f} / {score.spearman:.3f}"]
        for m in result.members:
            c = result.member_boards[m][board].categories.get(cat)
            row.append("—" if c is None else f"{score.pearson - c.pearson:+.3f} / {score.spearman - c.spearman:+.3f}")
        table.add_row(*row)
    res = result.resolution
    if res:
        def fmt(r: dict[str, float]) -> str:
            return f"{100 * r['distinct']:.1f}%" + (f" / {100 * r['snv_zero']:.2f}%" if "snv_zero" in r else "")

        table.add_row("distinct / SNV Δ=0", "", fmt(res[ENSEMBLE]), *[fmt(res[m]) for m in result.members],
                      style="dim")
    return table
