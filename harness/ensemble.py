"""``harness ensemble``: stack the out-of-fold predictions of a K-fold run.

Level 1 (the features): each member method's out-of-fold predictions ``methods/<m>/oof.npy``
from a K-fold run (raw outputs, one column per member), optionally with cheap sequence features
(GC content and length). The same columns for the test set are the members' fold-averaged test
predictions ``methods/<m>/test.npy``. Both are read with ``allow_pickle=False`` and checked (shape,
finite values; :func:`harness.runner.load_predictions`), and every board score reported for a member
is computed from its ``test.npy`` (``scores.json`` is an informative cache, never trusted). A run
without out-of-fold predictions (``--split holdout`` or ``--split none``) is refused.

Level 2 (the stacker), fitted against the training targets with its own seeded inner K-fold
cross-validation (default 5 folds): every training row gets an inner out-of-fold stacked prediction
from a stacker that never saw it, and the test prediction is the mean of the inner-fold stackers'
predictions (as the runner averages its fold models). Stackers:

* ``lightgbm``: a LightGBM regressor (L2 loss); each inner fit stops early on a seeded 10 % slice
  of its own training part, so the inner held-out fold is never used for early stopping.
  Stacked generalisation: Wolpert 1992, *Neural Networks* 5:241-259.
* ``linear``: least squares with non-negative member weights and a free intercept
  (``scipy.optimize.lsq_linear`` with bounds; sequence features, standardised, get free signs).
  Non-negative stacking: Breiman 1996, "Stacked regressions", *Machine Learning* 24:49-64.
* ``mean``: the mean of z-scored member predictions, each member z-scored with the mean/std of
  its own out-of-fold predictions (no target is used).

Guard: the OOF score of a prediction is Pearson r + Spearman ρ against the training targets. The
ensemble is never worse than its best member on it: when the stacker's inner-CV OOF score is below
the best member's OOF score, the ensemble falls back to that member (its ``oof.npy`` and
``test.npy``), and ``ensemble.json``, ``scores.json``, ``leaderboard.json`` and the printed table
say so.

Files written into the run directory (atomically)::

    methods/ensemble/oof.npy           (N_train,) float64: inner-CV OOF of what the ensemble uses
    methods/ensemble/test.npy          (N_test,) float64: the ensemble's test predictions
    methods/ensemble/stacker_oof.npy   (N_train,) the stacker's inner-CV OOF (even on fallback)
    methods/ensemble/stacker_test.npy  (N_test,) the stacker's test predictions (even on fallback)
    methods/ensemble/scores.json       as the runner's scores.json (+ "stacker", "fallback")
    methods/ensemble/ensemble.json     stacker, members, weights / importances, OOF scores, fallback
    leaderboard.json                   gains (or replaces) the "ensemble" row
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import click
import numpy as np
from rich import box
from rich.console import Console
from rich.table import Table

from .cli_errors import friendly_errors
from .data import DataError, SeqTable, TestSet, load_test_set, read_table
from .data.encoding import gc_content
from .io import read_json, write_json, write_npy
from .report import partial_note, score_text
from .scoring import BoardScore, score_boards
from .scoring.scorer import pearson, spearman
from .splits import fingerprint

#: Name of the ensemble's method directory and leaderboard row.
ENSEMBLE = "ensemble"
STACKERS = ("lightgbm", "linear", "mean")
SEQ_FEATURES = ("gc_content", "length")


# --------------------------------------------------------------------------------------------
# Reading a run directory (shared with harness.leaderboard and harness.export)
# --------------------------------------------------------------------------------------------

def read_run_json(run_dir: str | Path) -> dict:
    """The run's ``run.json`` as a dict.

    Raises:
        FileNotFoundError: ``run_dir`` holds no ``run.json`` (not a run directory).
    """
    path = Path(run_dir) / "run.json"
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


def same_snv_source(a: str, b: str) -> bool:
    """Whether two ``TestSet.snv_source`` texts name the same pairs: equal once a file path in
    parentheses is resolved (``"given file (../x.csv), 44795 pairs"`` = ``"given file (/abs/x.csv), ..."``)."""
    def norm(text: str) -> str:
        def resolve(match: re.Match) -> str:
            inner = Path(match.group(1))
            return f"({inner.resolve()})" if inner.exists() else match.group(0)

        return re.sub(r"\(([^()]*)\)", resolve, text)

    return a == b or norm(a) == norm(b)


def run_test_set(run_dir: str | Path, info: dict | None = None, data_dir: str | Path | None = None,
                 snv_pairs: str | Path | None = None) -> TestSet:
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


def run_train_table(run_dir: str | Path, info: dict | None = None, train: str | Path | None = None) -> SeqTable:
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
    split_path = Path(run_dir) / "split.json"
    manifest = read_json(split_path) if split_path.is_file() else {}
    n_rows = manifest.get("n_rows", info.get("n_train"))
    if n_rows is not None and int(n_rows) != len(table):
        raise DataError(f"{path}: {len(table):,} training rows, but run {run_dir} was split for {int(n_rows):,}")
    if manifest.get("train_fingerprint") and manifest["train_fingerprint"] != fingerprint(table):
        raise DataError(f"{path}: the training rows differ from those run {run_dir} was split for "
                        "(split.json train_fingerprint)")
    return table


def run_methods(run_dir: str | Path) -> list[str]:
    """Names of the methods with a ``methods/<name>/`` directory in the run, sorted."""
    root = Path(run_dir) / "methods"
    return sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []


def split_kind(run_dir: str | Path, info: dict | None = None) -> str:
    """``"kfold"``, ``"holdout"`` or ``"none"``: ``split.json``'s ``spec.kind``, else ``run.json``'s
    ``split.kind`` (``"kfold"`` when neither records one)."""
    path = Path(run_dir) / "split.json"
    if path.is_file():
        kind = read_json(path).get("spec", {}).get("kind")
        if kind:
            return kind
    info = info if info is not None else read_run_json(run_dir)
    return (info.get("split") or {}).get("kind", "kfold")


# --------------------------------------------------------------------------------------------
# Stackers
# --------------------------------------------------------------------------------------------

class Stacker:
    """A level-2 model. ``X`` is ``(n, n_members + n_extra) float64``: the first ``n_members``
    columns are member predictions, the rest sequence features. Subclasses implement
    :meth:`fit`, :meth:`predict` and :meth:`describe`."""

    name = "stacker"

    def __init__(self, n_members: int, feature_names: list[str], seed: int = 0) -> None:
        self.n_members = n_members
        self.feature_names = list(feature_names)
        self.seed = seed

    def fit(self, X: np.ndarray, y: np.ndarray) -> "Stacker":  # pragma: no cover - interface
        """Fit on ``X`` ``(n, F)`` against ``y`` ``(n,)``; returns self."""
        raise NotImplementedError

    def predict(self, X: np.ndarray) -> np.ndarray:  # pragma: no cover - interface
        """``(n, F)`` -> ``(n,) float64``."""
        raise NotImplementedError

    def describe(self) -> dict[str, float]:
        """Per-feature numbers for the report (weights or importances); averaged over inner folds."""
        return {}


class MeanStacker(Stacker):
    """Mean of z-scored member columns; each z-scored with the mean/std of its out-of-fold values.

    Uses no target: ``fit`` only records the member columns' means and standard deviations.
    Sequence features are not used (``ensemble_run`` refuses them with this stacker).
    """

    name = "mean"

    def fit(self, X, y):
        cols = X[:, : self.n_members]
        self.mean_ = cols.mean(axis=0)
        std = cols.std(axis=0)
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


class LinearStacker(Stacker):
    """Least squares ``y ≈ X·w + b`` with member weights ``w ≥ 0`` and a free intercept.

    Sequence features are standardised with the training mean/std (constant ones dropped) and get
    free-signed weights. Solved with ``scipy.optimize.lsq_linear`` (bounded least squares);
    Breiman 1996's non-negative stacking.
    """

    name = "linear"

    def fit(self, X, y):
        from scipy.optimize import lsq_linear

        self.mu_ = X[:, self.n_members:].mean(axis=0)
        sd = X[:, self.n_members:].std(axis=0)
        self.sd_ = np.where(sd > 0, sd, np.inf)  # constant feature -> standardised to 0
        A = self._design(X)
        lower = np.r_[np.zeros(self.n_members), np.full(A.shape[1] - self.n_members, -np.inf)]
        sol = lsq_linear(A, np.asarray(y, dtype=np.float64), bounds=(lower, np.full(A.shape[1], np.inf)))
        self.coef_ = sol.x
        return self

    def _design(self, X):
        extra = (X[:, self.n_members:] - self.mu_) / self.sd_
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


class LightGBMStacker(Stacker):
    """LightGBM regressor on the level-1 features, early-stopped on a seeded 10 % slice of its own
    training rows (``early_stopping_rounds`` patience). Deterministic for a seed."""

    name = "lightgbm"

    def __init__(self, n_members, feature_names, seed=0, n_jobs: int | None = None,
                 early_stopping_rounds: int = 50, **params) -> None:
        super().__init__(n_members, feature_names, seed)
        self.n_jobs = n_jobs
        self.early_stopping_rounds = early_stopping_rounds
        self.params = {"num_boost_round": 2000, "learning_rate": 0.05, "num_leaves": 15, "min_data_in_leaf": 40,
                       "lambda_l2": 1.0, **params}

    def fit(self, X, y):
        import lightgbm as lgb

        rng = np.random.default_rng(self.seed)
        order = rng.permutation(len(X))
        n_val = max(1, int(round(0.1 * len(X))))
        val, fit = order[:n_val], order[n_val:]
        params = {"objective": "regression", "verbosity": -1, "seed": self.seed, "deterministic": True,
                  "force_row_wise": True, **({"num_threads": self.n_jobs} if self.n_jobs else {}), **self.params}
        rounds = params.pop("num_boost_round")
        train_set = lgb.Dataset(X[fit], y[fit], feature_name=self._safe_names(), free_raw_data=True)
        valid_set = lgb.Dataset(X[val], y[val], reference=train_set)
        self.booster_ = lgb.train(params, train_set, num_boost_round=rounds, valid_sets=[valid_set],
                                  callbacks=[lgb.early_stopping(self.early_stopping_rounds, verbose=False)])
        self.best_iteration_ = self.booster_.best_iteration or rounds
        return self

    def _safe_names(self) -> list[str]:
        return [f"f{i}" for i in range(len(self.feature_names))]

    def predict(self, X):
        return np.asarray(self.booster_.predict(X, num_iteration=self.best_iteration_), dtype=np.float64)

    def describe(self):
        gain = self.booster_.feature_importance(importance_type="gain").astype(np.float64)
        total = gain.sum()
        share = gain / total if total > 0 else gain
        out = {f"gain_share[{n}]": float(s) for n, s in zip(self.feature_names, share)}
        out["best_iteration"] = float(self.best_iteration_)
        return out


def make_stacker(name: str, n_members: int, feature_names: list[str], seed: int = 0,
                 n_jobs: int | None = None) -> Stacker:
    """A fresh stacker by name (``lightgbm``, ``linear`` or ``mean``).

    Raises:
        ValueError: unknown name.
    """
    if name == "lightgbm":
        return LightGBMStacker(n_members, feature_names, seed, n_jobs=n_jobs)
    if name == "linear":
        return LinearStacker(n_members, feature_names, seed)
    if name == "mean":
        return MeanStacker(n_members, feature_names, seed)
    raise ValueError(f"unknown stacker {name!r}; choose from {', '.join(STACKERS)}")


def oof_score(pred: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """``{"pearson", "spearman", "score"}`` of ``(n,)`` predictions vs ``(n,)`` targets;
    ``score`` = Pearson r + Spearman ρ (the guard's criterion)."""
    r, rho = pearson(pred, y), spearman(pred, y)
    return {"pearson": r, "spearman": rho, "score": r + rho}


def cross_fit(factory: Callable[[int], Stacker], X: np.ndarray, y: np.ndarray, X_test: np.ndarray,
              folds: int = 5, seed: int = 0) -> tuple[np.ndarray, np.ndarray, dict[str, float]]:
    """Inner K-fold cross-fitting of a stacker.

    Args:
        factory: ``k -> Stacker`` (a fresh, seeded stacker for inner fold ``k``).
        X: ``(N, F) float64`` level-1 features of the training rows; ``y``: ``(N,)`` targets.
        X_test: ``(N_test, F) float64`` the same features for the test set.
        folds, seed: ``sklearn.model_selection.KFold(folds, shuffle=True, random_state=seed)``.

    Returns:
        ``(oof, test, described)``: ``(N,) float64`` inner out-of-fold predictions, ``(N_test,)
        float64`` mean of the inner stackers' test predictions, and the inner stackers'
        :meth:`Stacker.describe` numbers averaged over folds.

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
    for k, (fit_idx, held_idx) in enumerate(KFold(folds, shuffle=True, random_state=seed).split(X)):
        model = factory(k).fit(X[fit_idx], y[fit_idx])
        oof[held_idx] = model.predict(X[held_idx])
        test += model.predict(X_test) / folds
        for key, value in model.describe().items():
            described.setdefault(key, []).append(value)
    return oof, test, {k: float(np.mean(v)) for k, v in described.items()}


# --------------------------------------------------------------------------------------------
# ensemble_run
# --------------------------------------------------------------------------------------------

@dataclass
class EnsembleResult:
    """What :func:`ensemble_run` did.

    Attributes:
        stacker: the stacker's name; ``members``: member method names (feature order).
        features: level-1 feature names (members, then sequence features).
        fallback: True when the stacker's OOF score was below the best member's, so the ensemble
            is that member's predictions; ``used``: ``"stacker"`` or the member's name.
        best_member: the member with the highest OOF score (Pearson r + Spearman ρ).
        stacker_oof: ``{"pearson", "spearman", "score"}`` of the stacker's inner-CV OOF predictions.
        member_oof: member -> the same numbers for its out-of-fold predictions.
        details: stacker weights or feature importances (averaged over inner folds).
        boards: the ensemble's :class:`BoardScore` per board; ``member_boards``: the members'.
        oof: ``(N_train,) float64``; ``test``: ``(N_test,) float64``; what the ensemble uses.
        out_dir: ``<run>/methods/ensemble``.
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

    @property
    def oof_scores(self) -> dict[str, float]:
        """OOF numbers of what the ensemble uses (the stacker, or the best member on fallback)."""
        return self.member_oof[self.best_member] if self.fallback else self.stacker_oof


def ensemble_run(run_dir: str | Path, stacker: str | Stacker = "lightgbm", methods: list[str] | str | None = None,
                 seq_features: bool = False, *, inner_folds: int = 5, seed: int | None = None,
                 n_jobs: int | None = None, data_dir: str | Path | None = None,
                 snv_pairs: str | Path | None = None, train: str | Path | None = None) -> EnsembleResult:
    """Stack the members of a K-fold run and write ``methods/ensemble/`` (see the module doc).

    Args:
        run_dir: a run directory of ``harness run --split kfold``.
        stacker: ``"lightgbm"``, ``"linear"``, ``"mean"``, or a :class:`Stacker` instance (one
            instance is re-fitted on every inner fold; used by tests to force a bad stacker).
        methods: member names (a list or ``"a,b"``); default every method of the run with
            ``oof.npy`` and ``test.npy`` except ``ensemble``. At least two.
        seq_features: add GC content and sequence length (:func:`harness.data.encoding.gc_content`,
            ``SeqTable.lengths``) to the level-1 features (not with ``mean``).
        inner_folds, seed: the stacker's inner K-fold (seed default: the run's split seed).
        n_jobs: LightGBM threads (None: LightGBM's default).
        data_dir, snv_pairs, train: overrides of the paths recorded in ``run.json``.

    Returns:
        :class:`EnsembleResult`.

    Raises:
        ValueError: a hold-out run (``split.json`` kind ``holdout``, or a member whose
            ``oof.npy`` has NaN rows), a ``--split none`` run (no OOF predictions at all), fewer
            than two members, an unknown member or stacker, ``seq_features`` with ``mean``.
        FileNotFoundError: no ``run.json``; DataError: the run's data files are gone or differ,
            or a member's ``oof.npy``/``test.npy`` is unreadable, pickled, of the wrong shape or
            not finite (:func:`harness.runner.load_predictions`; the file is named).
    """
    from .runner import load_predictions

    run_dir = Path(run_dir)
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
    stacker_name = stacker if isinstance(stacker, str) else getattr(stacker, "name", type(stacker).__name__)
    if isinstance(stacker, str) and stacker not in STACKERS:
        raise ValueError(f"unknown stacker {stacker!r}; choose from {', '.join(STACKERS)}")
    if seq_features and stacker_name == "mean":
        raise ValueError("--seq-features needs a fitted stacker (lightgbm or linear); the mean stacker averages "
                         "member predictions only")

    train_table = run_train_table(run_dir, info, train)
    test_set = run_test_set(run_dir, info, data_dir, snv_pairs)
    oof_cols, test_cols = [], []
    for m in members:
        oof_path = run_dir / "methods" / m / "oof.npy"
        oof = load_predictions(oof_path, len(train_table), allow_nan=True)
        missing = int(np.isnan(oof).sum())
        if missing:
            raise ValueError(f"{oof_path}: {missing:,} of {len(oof):,} training rows have no "
                             "out-of-fold prediction (a hold-out run or an unfinished K-fold run); stacking needs a "
                             "finished K-fold run (harness run --split kfold)")
        oof_cols.append(oof)
        test_cols.append(load_predictions(run_dir / "methods" / m / "test.npy", len(test_set)))
    y = train_table.y.astype(np.float64)

    features = list(members)
    X, X_test = np.column_stack(oof_cols), np.column_stack(test_cols)
    if seq_features:
        features += list(SEQ_FEATURES)
        X = np.c_[X, _seq_features(train_table)]
        X_test = np.c_[X_test, _seq_features(test_set.table)]

    seed = int(seed if seed is not None else (info.get("split") or {}).get("seed", 0))
    if isinstance(stacker, str):
        def factory(k):
            return make_stacker(stacker, len(members), features, seed + k, n_jobs)
    else:
        def factory(k):
            return stacker
    stacked_oof, stacked_test, details = cross_fit(factory, X, y, X_test, inner_folds, seed)

    member_oof = {m: oof_score(o, y) for m, o in zip(members, oof_cols)}
    best = max(members, key=lambda m: member_oof[m]["score"])
    stacker_oof = oof_score(stacked_oof, y)
    fallback = stacker_oof["score"] < member_oof[best]["score"]
    if fallback:
        i = members.index(best)
        final_oof, final_test = oof_cols[i], test_cols[i]
    else:
        final_oof, final_test = stacked_oof, stacked_test

    boards = score_boards(final_test, test_set)
    # from the members' test.npy, never their scores.json (a cache that may be stale)
    member_boards = {m: score_boards(t, test_set) for m, t in zip(members, test_cols)}
    notes = []
    if info.get("snv_source") and not same_snv_source(info["snv_source"], test_set.snv_source):
        notes.append(f"SNV source differs from the run's: run {info['snv_source']!r}, now {test_set.snv_source!r}")
    decision = (f"fallback: the {stacker_name} stacker's OOF score {stacker_oof['score']:.4f} is below the best member "
                f"{best}'s {member_oof[best]['score']:.4f}; the ensemble is {best}'s predictions"
                if fallback else
                f"stacker used: OOF score {stacker_oof['score']:.4f} ≥ best member {best}'s {member_oof[best]['score']:.4f}")

    out_dir = run_dir / "methods" / ENSEMBLE
    write_npy(out_dir / "stacker_oof.npy", stacked_oof)
    write_npy(out_dir / "stacker_test.npy", stacked_test)
    write_npy(out_dir / "oof.npy", final_oof)
    write_npy(out_dir / "test.npy", final_test)
    used_oof = member_oof[best] if fallback else stacker_oof
    board_dicts = {b: s.to_dict() for b, s in boards.items()}
    write_json(out_dir / "scores.json", {
        "boards": board_dicts, "oof_pearson": used_oof["pearson"], "oof_spearman": used_oof["spearman"],
        "simulated": bool(test_set.simulated), "stacker": stacker_name, "fallback": fallback,
        "used": best if fallback else "stacker",
    })
    write_json(out_dir / "ensemble.json", {
        "stacker": stacker_name, "members": members, "features": features, "seq_features": bool(seq_features),
        "inner_cv": {"folds": inner_folds, "seed": seed, "splitter": "sklearn KFold(shuffle=True)"},
        _details_key(stacker_name): details,
        "oof": {"criterion": "Pearson r + Spearman rho of OOF predictions vs training targets",
                "stacker": stacker_oof, "members": member_oof, "best_member": best},
        "fallback": fallback, "used": best if fallback else "stacker", "decision": decision,
        "n_train": len(y), "n_test": len(test_set), "snv_source": test_set.snv_source,
        "simulated": bool(test_set.simulated), "notes": notes,
    })
    board_path = run_dir / "leaderboard.json"
    leaderboard = read_json(board_path) if board_path.is_file() else {}
    leaderboard[ENSEMBLE] = {"boards": board_dicts, "oof_pearson": used_oof["pearson"],
                             "oof_spearman": used_oof["spearman"], "stacker": stacker_name,
                             "members": members, "fallback": fallback, "used": best if fallback else "stacker"}
    write_json(board_path, leaderboard)
    notes.insert(0, decision)
    return EnsembleResult(stacker_name, members, features, fallback, best if fallback else "stacker", best,
                          stacker_oof, member_oof, details, boards, member_boards, final_oof, final_test, out_dir, notes)


def _members(run_dir: Path, methods: list[str] | str | None) -> list[str]:
    if isinstance(methods, str):
        methods = [m.strip() for m in methods.split(",") if m.strip()]
    available = [m for m in run_methods(run_dir) if m != ENSEMBLE
                 and (run_dir / "methods" / m / "oof.npy").is_file() and (run_dir / "methods" / m / "test.npy").is_file()]
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
    return {"linear": "weights", "mean": "weights", "lightgbm": "feature_importance"}.get(stacker_name, "details")


def _seq_features(table: SeqTable) -> np.ndarray:
    """``(N, 2) float64``: GC fraction and length of each sequence."""
    return np.c_[gc_content(table.codes), table.lengths.astype(np.float64)]


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------

def result_table(result: EnsembleResult) -> Table:
    """Rich table: the ensemble beside its members (best member marked), the OOF score and the
    private and public board scores (the full board is in ``scores.json``); fits 80 columns."""
    boards = [b for b in ("private", "public") if b in result.boards] or list(result.boards)[:1]
    table = Table(title=f"Ensemble ({result.stacker} stacker)", box=box.SIMPLE_HEAVY)
    table.add_column("method", no_wrap=True)
    table.add_column("OOF\nr+ρ", justify="right")
    for b in boards:
        table.add_column(f"{b}\nPearson²", justify="right")
        table.add_column(f"{b}\nSpearman", justify="right")

    def cells(oof: dict[str, float], scores: dict[str, BoardScore]) -> list[str]:
        row = [f"{oof['score']:.4f}"]
        for b in boards:
            row += [score_text(scores[b].pearson_score, scores[b]), score_text(scores[b].spearman_score, scores[b])]
        return row

    label = f"{ENSEMBLE} (= {result.best_member}, fallback)" if result.fallback else f"{ENSEMBLE} ({result.stacker})"
    table.add_row(label, *cells(result.oof_scores, result.boards), style="bold")
    if result.fallback:
        table.add_row(f"{result.stacker} stacker (not used)", f"{result.stacker_oof['score']:.4f}",
                      *["" for _ in range(2 * len(boards))], style="dim")
    ranked = sorted(result.members, key=lambda m: -result.member_oof[m]["score"])
    for m in ranked:
        name = f"{m} (best member)" if m == result.best_member else m
        table.add_row(name, *cells(result.member_oof[m], result.member_boards[m]),
                      style=None if m == result.best_member else "dim")
    table.caption = "; ".join(result.notes) + f"\nwritten to {result.out_dir}"
    missing = {c for sc in [result.boards, *result.member_boards.values()] for b in boards for c in sc[b].missing}
    if missing:
        table.caption += "\n" + partial_note(missing)
    return table


@click.command("ensemble")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--stacker", type=click.Choice(STACKERS), default="lightgbm", show_default=True,
              help="Level-2 model: LightGBM, non-negative linear, or mean of z-scored predictions.")
@click.option("--methods", default=None, help="Comma-separated members (default: every finished method of the run).")
@click.option("--seq-features", is_flag=True, help="Add GC content and sequence length to the stacker's features.")
@friendly_errors
def ensemble_cmd(run_dir: Path, stacker: str, methods: str | None, seq_features: bool) -> None:
    """Stack the out-of-fold predictions of a K-fold run into methods/ensemble/ (never worse than the best
    member on the OOF score: it falls back to that member otherwise)."""
    result = ensemble_run(run_dir, stacker, methods, seq_features)
    Console().print(result_table(result))

