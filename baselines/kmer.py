"""k-mer count baselines: ridge regression and LightGBM on strand-symmetric k-mer counts.

Features (:func:`kmer_counts`): for every k from ``k_min`` to ``k_max``, the number of times each of
the ``4**k`` k-mers occurs in a sequence, plus (``both_strands``) the number of times it occurs in
the sequence's reverse complement. k-mers that overlap an N (or any ambiguity code) or run past the
sequence's end are not counted. This is the classic "bag of k-mers" / spectrum representation
(Leslie, Eskin & Noble 2002, "The spectrum kernel"; the DREAM 2022 organisers' and many
participants' linear baselines used the same idea); the strand sum makes the features invariant to
the orientation of the sequence.

Because of the strand sum, the column of a k-mer and the column of its reverse complement are equal
(:func:`kmer_rc_columns`). The two methods therefore fit on the canonical columns only (one column
per reverse-complement pair: the lexicographically smaller k-mer; palindromes keep their single
column); nothing is lost, and the models get half the columns to bin, scan and store.

Methods:

* ``kmer-ridge`` (:class:`KmerRidge`): ``MaxAbsScaler`` (per-column scaling that keeps the matrix
  sparse) followed by scikit-learn ``Ridge``. The penalty is picked from a small grid by validation
  Pearson r (see :class:`KmerRidgeConfig`).
* ``kmer-lgbm`` (:class:`KmerLGBM`): a LightGBM gradient-boosted tree regressor (L2 loss) with early
  stopping on a validation split (see :class:`KmerLGBMConfig`).

Settings for quick CPU runs live in ``configs/kmer-ridge.toml`` / ``configs/kmer-lgbm.toml``.

Threads on a busy machine: LightGBM parallelises every boosting round with OpenMP, whose GNU
runtime by default spins idle threads before they sleep. When another process holds a core, the
spinning threads and the descheduled one trade the cores and every round waits for the slowest.
Importing this module therefore sets ``OMP_WAIT_POLICY=PASSIVE`` unless the environment already
sets it (the runtime reads it once, when LightGBM loads it; ``harness run`` imports only the
plug-ins it runs, so it is set in time for the k-mer baselines). Measured with
``benchmarks/bench_contention.py`` (3,000 simulated rows, default profile, 2 cores already loaded
by other work): 84.5 s active vs 12.4 s passive, and with a busy process per core on top
277.2 s vs 17.5 s (busy/loaded ratio 3.28x vs 1.41x); one thread: 11.8 s / 34.8 s (2.95x).
"""

from __future__ import annotations

import dataclasses
import itertools
import os
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from harness.data.table import SeqTable
from harness.holdout import holdout_split
from harness.io import atomic_open, read_json, write_json, write_text
from harness.method import Method, MethodConfig
from harness.registry import register
from harness.scoring.scorer import pearson
from harness.tracking import lightgbm_callback, open_method_log

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see the module docstring: before LightGBM loads OpenMP

#: Largest supported k (4**12 = 16.8 M columns; indices stay within int32).
MAX_K = 12
#: Rows featurised at a time inside :func:`kmer_counts` (bounds the temporary arrays to ~0.3 GB).
_CHUNK_ROWS = 65536
#: k-mer blocks with at most this many columns are counted densely (np.bincount), larger ones by
#: sorting each row's k-mer indices (both give the same matrix; this is only the faster choice).
_DENSE_MAX_COLUMNS = 256


# ----- features -----------------------------------------------------------------------------------
def _check_k(k_min: int, k_max: int) -> None:
    if not (isinstance(k_min, (int, np.integer)) and isinstance(k_max, (int, np.integer))):
        raise ValueError(f"k_min and k_max must be integers, got {k_min!r} and {k_max!r}")
    if not 1 <= k_min <= k_max <= MAX_K:
        raise ValueError(f"need 1 <= k_min <= k_max <= {MAX_K}, got k_min={k_min}, k_max={k_max}")


def _block_offsets(k_min: int, k_max: int) -> np.ndarray:
    """``(k_max - k_min + 2,) int64``: first column of each k's block, then the total width."""
    sizes = 4 ** np.arange(k_min, k_max + 1, dtype=np.int64)
    return np.concatenate([[0], np.cumsum(sizes)])


def kmer_names(k_min: int = 1, k_max: int = 6) -> list[str]:
    """The k-mer of every column of :func:`kmer_counts`, in column order.

    Order: k ascending; within one k, lexicographic in the alphabet order A < C < G < T (so the
    column of a k-mer within its block is its base-4 number with A=0, C=1, G=2, T=3 and the first
    base most significant). Example: ``kmer_names(1, 2)`` is ``["A", "C", "G", "T", "AA", "AC",
    ..., "TT"]``.

    Returns:
        ``sum(4**k for k in range(k_min, k_max + 1))`` strings.

    Raises:
        ValueError: unless ``1 <= k_min <= k_max <= MAX_K``.
    """
    _check_k(k_min, k_max)
    return ["".join(p) for k in range(k_min, k_max + 1) for p in itertools.product("ACGT", repeat=k)]


def kmer_rc_columns(k_min: int = 1, k_max: int = 6) -> np.ndarray:
    """For each column of :func:`kmer_counts`, the column of the reverse-complement k-mer.

    Returns:
        ``(n_columns,) int64`` permutation (an involution: applying it twice gives the identity;
        reverse-complement palindromes such as ``ACGT`` map to themselves). With
        ``both_strands=True``, ``X[:, kmer_rc_columns(...)]`` equals ``X``.

    Raises:
        ValueError: unless ``1 <= k_min <= k_max <= MAX_K``.
    """
    _check_k(k_min, k_max)
    offsets = _block_offsets(k_min, k_max)
    out = []
    for i, k in enumerate(range(k_min, k_max + 1)):
        idx = np.arange(4**k, dtype=np.int64)
        rc = np.zeros_like(idx)
        # base j (0 = first, most significant digit) becomes digit j of the reverse complement
        # counted from the least significant end, complemented (3 - base).
        for j in range(k):
            base = (idx // 4 ** (k - 1 - j)) % 4
            rc += (3 - base) * 4**j
        out.append(rc + offsets[i])
    return np.concatenate(out)


def _canonical_columns(k_min: int, k_max: int) -> np.ndarray:
    """``(n_canonical,) int64`` sorted columns that are the smaller of each reverse-complement pair."""
    rc = kmer_rc_columns(k_min, k_max)
    return np.flatnonzero(np.arange(len(rc)) <= rc)


def _rows_to_csr(keys: np.ndarray, sentinel: int, n_cols: int) -> sp.csr_matrix:
    """Count equal values per row of ``(n, m)`` int ``keys`` (``sentinel`` = no k-mer) into CSR.

    Sorts each row (in place), then turns every run of equal values into one stored entry whose
    value is the run length. The result has sorted column indices and no duplicates.
    """
    n, m = keys.shape
    if m == 0 or n == 0:
        return sp.csr_matrix((n, n_cols), dtype=np.float32)
    keys.sort(axis=1)
    flat = keys.ravel()
    run_start = np.empty(flat.shape, dtype=bool)
    run_start[0] = True
    np.not_equal(flat[1:], flat[:-1], out=run_start[1:])
    run_start[::m] = True  # a new row always starts a new run
    starts = np.flatnonzero(run_start)
    counts = np.diff(starts, append=flat.size)
    values = flat[starts]
    keep = values != sentinel
    starts, counts, values = starts[keep], counts[keep], values[keep]
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(starts // m, minlength=n), out=indptr[1:])
    return sp.csr_matrix((counts.astype(np.float32), values.astype(np.int32), indptr), shape=(n, n_cols))


def _kmer_counts_chunk(codes: np.ndarray, lengths: np.ndarray, k_min: int, k_max: int,
                       both_strands: bool) -> sp.csr_matrix:
    n, width = codes.shape
    # positions that cannot be part of a counted k-mer: N/ambiguity/PAD codes and anything past the
    # sequence's length
    bad = (codes >= 4) | (np.arange(width)[None, :] >= lengths[:, None])
    base = np.where(bad, 0, codes).astype(np.int32)
    bad_before = np.zeros((n, width + 1), dtype=np.int32)  # bad positions in [0, j)
    np.cumsum(bad, axis=1, out=bad_before[:, 1:])
    fwd = np.zeros((n, width), dtype=np.int32)  # index of the k-mer starting at each position
    rev = np.zeros((n, width), dtype=np.int32)  # index of its reverse complement
    blocks = []
    for k in range(1, k_max + 1):
        size = 4**k
        n_win = width - k + 1
        if n_win <= 0:  # sequences shorter than k hold no k-mer
            if k >= k_min:
                blocks.append(sp.csr_matrix((n, size), dtype=np.float32))
            continue
        # rolling base-4 numbers: append base k-1 as the new least significant digit of the forward
        # k-mer, and its complement as the new most significant digit of the reverse complement
        fwd = fwd[:, :n_win] * 4 + base[:, k - 1:]
        rev = rev[:, :n_win] + (3 - base[:, k - 1:]) * 4 ** (k - 1)
        if k < k_min:
            continue
        valid = (bad_before[:, k:] - bad_before[:, :n_win]) == 0
        if size <= _DENSE_MAX_COLUMNS:
            row_base = (np.arange(n, dtype=np.int64) * size)[:, None]
            counts = np.bincount((fwd + row_base)[valid], minlength=n * size)
            if both_strands:
                counts += np.bincount((rev + row_base)[valid], minlength=n * size)
            blocks.append(sp.csr_matrix(counts.reshape(n, size).astype(np.float32)))
        else:
            dtype = np.int16 if size < np.iinfo(np.int16).max else np.int32
            parts = [np.where(valid, fwd, size).astype(dtype)]
            if both_strands:
                parts.append(np.where(valid, rev, size).astype(dtype))
            blocks.append(_rows_to_csr(np.concatenate(parts, axis=1), size, size))
    out = sp.hstack(blocks, format="csr", dtype=np.float32)
    out.sort_indices()
    return out


def kmer_counts(codes: np.ndarray, lengths: np.ndarray, k_min: int = 1, k_max: int = 6,
                both_strands: bool = True) -> sp.csr_matrix:
    """Count k-mers of every sequence, vectorised over the whole code matrix.

    For every row and every ``k`` in ``k_min..k_max`` this counts the k-mers starting at positions
    ``0..length-k`` whose ``k`` codes are all A, C, G or T (a window touching N, an ambiguity code,
    PAD or the region past ``lengths[i]`` is skipped). With ``both_strands`` the count of a k-mer
    is its count in the sequence plus its count in the reverse complement (equivalently: the count
    of the k-mer plus the count of its reverse complement in the sequence), so a sequence and its
    reverse complement get identical rows; palindromic k-mers are counted twice per occurrence.

    Recipe: rolling base-4 k-mer numbers over the ``(N, W)`` code matrix (``idx_k = 4 * idx_{k-1}
    + base``), windows masked by a cumulative count of bad positions, then per-row counts by
    ``np.bincount`` over ``row * 4**k + idx`` (small k) or a per-row sort and run-length count
    (large k). Rows are processed in chunks of 65,536 to bound memory. 16k sequences of 110 nt
    with k = 1..6 take 0.6-0.7 s (measured on a shared 2-core machine; single-threaded numpy).

    Args:
        codes: ``(N, W) uint8`` codes, A=0, C=1, G=2, T=3, N=4, PAD=255 (see
            :mod:`harness.data.encoding`; a :class:`~harness.data.table.SeqTable`'s ``codes``).
        lengths: ``(N,)`` integer sequence lengths; positions at or beyond ``lengths[i]`` are
            ignored (lengths above ``W`` are treated as ``W``).
        k_min, k_max: the k-mer sizes, inclusive.
        both_strands: add the reverse-complement strand's counts (strand-symmetric features).

    Returns:
        ``scipy.sparse.csr_matrix`` of shape ``(N, sum(4**k for k in k_min..k_max))`` (5,460 columns
        for 1..6), ``float32`` counts, sorted indices, no explicit zeros. Column order: k ascending,
        then the k-mer in lexicographic ACGT order (:func:`kmer_names`).

    Raises:
        ValueError: ``codes`` is not a 2-D ``uint8`` array, ``lengths`` does not have one entry per
            row or holds negative values, or not ``1 <= k_min <= k_max <= MAX_K`` (12).
    """
    _check_k(k_min, k_max)
    codes = np.asarray(codes)
    if codes.ndim != 2 or codes.dtype != np.uint8:
        raise ValueError(f"codes must be a (N, W) uint8 array, got shape {codes.shape} dtype {codes.dtype}")
    lengths = np.asarray(lengths)
    if lengths.shape != (len(codes),):
        raise ValueError(f"lengths must have shape ({len(codes)},), got {lengths.shape}")
    if len(lengths) and lengths.min() < 0:
        raise ValueError("lengths must be non-negative")
    n_cols = int(_block_offsets(k_min, k_max)[-1])
    if len(codes) == 0:
        return sp.csr_matrix((0, n_cols), dtype=np.float32)
    lengths = np.minimum(lengths.astype(np.int64), codes.shape[1])
    parts = [_kmer_counts_chunk(codes[i:i + _CHUNK_ROWS], lengths[i:i + _CHUNK_ROWS], k_min, k_max, both_strands)
             for i in range(0, len(codes), _CHUNK_ROWS)]
    return parts[0] if len(parts) == 1 else sp.vstack(parts, format="csr", dtype=np.float32)


# ----- shared helpers -----------------------------------------------------------------------------
def _pearson(a: np.ndarray, b: np.ndarray) -> float | None:
    """Pearson r (:func:`harness.scoring.scorer.pearson`); None where undefined (a constant or
    non-finite vector): it never wins a selection and is written to JSON as ``null``."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if not (np.isfinite(a).all() and np.isfinite(b).all()) or np.ptp(a) == 0 or np.ptp(b) == 0:
        return None
    return pearson(a, b)


def _internal_split(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Random ``(train_rows, valid_rows)`` with ``round(fraction * n)`` (at least 1) validation rows:
    :func:`harness.holdout.holdout_split` with the ``"numpy"`` generator and ``"round"`` rounding.

    Raises:
        ValueError: ``fraction`` outside (0, 1) or too few rows for both parts.
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"valid_fraction must be in (0, 1), got {fraction}")
    return holdout_split(n, fraction, seed, generator="numpy", rounding="round", who="internal validation split")


def _require_targets(table: SeqTable, what: str) -> np.ndarray:
    if table.y is None:
        raise ValueError(f"the {what} set has no targets (y is None)")
    if len(table) == 0:
        raise ValueError(f"the {what} set is empty")
    y = np.asarray(table.y, dtype=np.float64)
    if not np.all(np.isfinite(y)):
        raise ValueError(f"the {what} set has non-finite targets")
    if what == "training" and (len(y) < 2 or np.ptp(y) == 0):
        raise ValueError(f"the {what} set needs at least 2 rows with different targets "
                         f"({len(y)} row(s), all {y[0]:g}): nothing to fit")
    return y


def _all_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


class _KmerMethod(Method):
    """Shared featurisation of the two baselines (config fields ``k_min``, ``k_max``, ``both_strands``)."""

    def _columns(self) -> np.ndarray | None:
        """Columns the model sees: canonical ones when strand-symmetric (duplicates dropped)."""
        cfg = self.config
        return _canonical_columns(cfg.k_min, cfg.k_max) if cfg.both_strands else None

    def features(self, seqs: SeqTable) -> sp.csr_matrix:
        """The model's input: :func:`kmer_counts` of ``seqs`` (canonical columns when
        ``both_strands``). ``(len(seqs), n_features) float32`` CSR."""
        cfg = self.config
        cols = self._columns()
        parts = []
        for i in range(0, max(len(seqs), 1), _CHUNK_ROWS):  # chunked: the duplicate columns never pile up
            x = kmer_counts(seqs.codes[i:i + _CHUNK_ROWS], seqs.lengths[i:i + _CHUNK_ROWS], cfg.k_min, cfg.k_max,
                            cfg.both_strands)
            parts.append(x if cols is None else x[:, cols])
        return parts[0] if len(parts) == 1 else sp.vstack(parts, format="csr", dtype=np.float32)

    def _fit_and_valid(self, x: sp.csr_matrix, y: np.ndarray, valid: SeqTable | None):
        """``(x_fit, y_fit, x_val, y_val)``: all of ``x``/``y`` to fit and ``valid`` to validate
        when it is given, otherwise a ``config.valid_fraction`` split of ``x``/``y`` (seeded).

        Raises:
            ValueError: ``valid`` has no or non-finite targets; too few rows for the split.
        """
        if valid is not None:
            return x, y, self.features(valid), _require_targets(valid, "validation")
        rows_fit, rows_val = _internal_split(len(y), self.config.valid_fraction, self.seed)
        return x[rows_fit], y[rows_fit], x[rows_val], y[rows_val]

    def n_features(self) -> int:
        """Number of model input columns for this config."""
        cols = self._columns()
        return int(_block_offsets(self.config.k_min, self.config.k_max)[-1]) if cols is None else len(cols)


# ----- kmer-ridge ---------------------------------------------------------------------------------
@dataclasses.dataclass
class KmerRidgeConfig(MethodConfig):
    """Hyperparameters of ``kmer-ridge``.

    Attributes:
        k_min, k_max: k-mer sizes, inclusive (1..6: 2,772 canonical features).
        both_strands: strand-symmetric counts (:func:`kmer_counts`).
        alphas: penalty grid. With two or more values, each is fitted on the training rows and
            scored by Pearson r on ``valid`` (when :meth:`KmerRidge.fit` gets one) or on an internal
            random ``valid_fraction`` split of ``train``; the best alpha is then refitted on all of
            ``train``. A single value is used as is; an empty grid means ``alpha``.
        alpha: the penalty used when ``alphas`` is empty.
        valid_fraction: share of ``train`` held out for the alpha selection when no ``valid`` set is
            given.
        solver, tol: scikit-learn ``Ridge`` solver and tolerance (``lsqr`` handles sparse input with
            an intercept and is fast here).

    The grid's centre was measured on a 90/10 split of ``dev_train.txt`` (16k rows; features
    scaled by MaxAbsScaler): validation r peaks near alpha 300-1,000 for k up to 6.
    """

    k_min: int = 1
    k_max: int = 6
    both_strands: bool = True
    alphas: list[float] = dataclasses.field(default_factory=lambda: [30.0, 100.0, 300.0, 1000.0, 3000.0])
    alpha: float = 300.0
    valid_fraction: float = 0.1
    solver: str = "lsqr"
    tol: float = 1e-4

    def __post_init__(self) -> None:
        _check_k(self.k_min, self.k_max)
        self.alphas = [float(a) for a in self.alphas]
        if any(a < 0 for a in self.alphas) or self.alpha < 0:
            raise ValueError(f"ridge penalties must be >= 0, got alpha={self.alpha}, alphas={self.alphas}")


@register("kmer-ridge")
class KmerRidge(_KmerMethod):
    """Ridge regression on strand-symmetric k-mer counts (module docstring; :class:`KmerRidgeConfig`).

    Pipeline: canonical k-mer count columns -> ``MaxAbsScaler`` -> ``Ridge``. After :meth:`fit`,
    ``alpha_`` is the penalty used and ``selection_`` maps each tried alpha to its validation r.
    Deterministic (the internal split uses ``seed``; the solver is deterministic).
    """

    framework = "sklearn"
    Config = KmerRidgeConfig
    profiles = {"tiny": {"k_max": 3}}
    #: the fitted arrays in ``model.npz``: MaxAbsScaler ``max_abs_``/``scale_`` and Ridge ``coef_``
    #: (each ``(n_features,)``) and ``intercept_`` (0-d)
    ARRAYS = ("scaler_max_abs", "scaler_scale", "ridge_coef", "ridge_intercept")

    def __init__(self, config: KmerRidgeConfig | None = None, **kwargs) -> None:
        super().__init__(config, **kwargs)
        self.model_ = None
        self.alpha_: float | None = None
        self.selection_: dict[str, float] = {}

    def num_parameters(self) -> int:
        """Ridge coefficients (one per canonical k-mer column) plus the intercept."""
        return self.n_features() + 1

    def _pipeline(self, alpha: float):
        from sklearn.linear_model import Ridge
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import MaxAbsScaler

        return make_pipeline(MaxAbsScaler(), Ridge(alpha=alpha, solver=self.config.solver, tol=self.config.tol,
                                                   random_state=self.seed))

    def fit(self, train: SeqTable, valid: SeqTable | None = None) -> None:
        """Fit on ``train`` (alpha chosen as :class:`KmerRidgeConfig` describes). With an alpha grid
        and a ``work_dir``, one row goes to the metric log (:mod:`harness.tracking`): ``alpha`` (the
        chosen one) and ``valid_r`` (its validation Pearson r); a single alpha has no validation, so
        no row.

        Raises:
            ValueError: ``train`` (or a given ``valid``) has no targets, is empty or has non-finite
                targets; too few rows for the internal split.
        """
        cfg = self.config
        y = _require_targets(train, "training")
        x = self.features(train)
        grid = cfg.alphas if cfg.alphas else [cfg.alpha]
        self.selection_ = {}
        if len(grid) == 1:
            best = grid[0]
            self.model_ = self._pipeline(best).fit(x, y)
        else:
            x_fit, y_fit, x_val, y_val = self._fit_and_valid(x, y, valid)
            models = {}
            for alpha in grid:
                model = self._pipeline(alpha).fit(x_fit, y_fit)
                self.selection_[repr(alpha)] = _pearson(model.predict(x_val), y_val)
                models[alpha] = model
            scored = [a for a in grid if self.selection_[repr(a)] is not None]
            if not scored:
                raise ValueError(f"kmer-ridge: Pearson r is undefined for every alpha on the {len(y_val)} validation "
                                 "rows (constant targets or predictions); too few distinct training targets")
            best = max(scored, key=lambda a: self.selection_[repr(a)])
            # with an external valid set the model already saw all of train; otherwise refit on all
            self.model_ = models[best] if valid is not None else self._pipeline(best).fit(x, y)
            with open_method_log(self) as log:  # one row (no epochs): the selected alpha's validation r
                log.log(1, {"alpha": float(best), "valid_r": self.selection_[repr(best)]})
        self.alpha_ = float(best)

    def predict(self, seqs: SeqTable) -> np.ndarray:
        """``(len(seqs),) float64`` predictions.

        Raises:
            RuntimeError: the method is not fitted.
        """
        if self.model_ is None:
            raise RuntimeError("kmer-ridge: predict() before fit()")
        if len(seqs) == 0:
            return np.zeros(0, dtype=np.float64)
        return np.asarray(self.model_.predict(self.features(seqs)), dtype=np.float64)

    def _save_state(self, path: Path) -> None:
        """``model.npz`` (the fitted arrays :attr:`ARRAYS`, no pickle) and ``fit_info.json``."""
        if self.model_ is None:
            raise RuntimeError("kmer-ridge: save() before fit()")
        scaler, ridge = self.model_[0], self.model_[-1]
        arrays = {"scaler_max_abs": scaler.max_abs_, "scaler_scale": scaler.scale_, "ridge_coef": ridge.coef_,
                  "ridge_intercept": np.asarray(ridge.intercept_)}
        with atomic_open(path / "model.npz", "wb") as fh:
            np.savez(fh, allow_pickle=False, **arrays)
        write_json(path / "fit_info.json", {"alpha": self.alpha_, "selection": self.selection_,
                                            "n_features": self.n_features(),
                                            "n_samples_seen": int(scaler.n_samples_seen_),
                                            "solver": getattr(ridge, "solver_", self.config.solver)})

    def _load_state(self, path: Path) -> None:
        """Rebuild the fitted ``MaxAbsScaler`` -> ``Ridge`` pipeline from ``model.npz`` (read with
        ``allow_pickle=False``) and ``fit_info.json``; predictions are bit-identical to the saved
        model's.

        Raises:
            ValueError: the directory holds a pickled ``model.joblib`` of an older harness (no
                longer loaded: unpickling can run code), or ``model.npz`` lacks an array or has
                one of another shape or dtype than this config's features need (the message
                names the file).
            FileNotFoundError: ``model.npz`` or ``fit_info.json`` is missing.
        """
        file = path / "model.npz"
        if not file.exists() and (path / "model.joblib").exists():
            raise ValueError(f"{path / 'model.joblib'}: a kmer-ridge model pickled by an older harness; this harness "
                             "no longer unpickles models (unpickling can run code): fit it again")
        info = read_json(path / "fit_info.json")
        n = self.n_features()
        with np.load(file, allow_pickle=False) as npz:
            missing = sorted(set(self.ARRAYS) - set(npz.files))
            if missing:
                raise ValueError(f"{file}: arrays {missing} missing")
            arrays = {name: npz[name] for name in self.ARRAYS}
        for name, arr in arrays.items():
            want = () if name == "ridge_intercept" else (n,)
            if arr.shape != want or arr.dtype.kind != "f":
                raise ValueError(f"{file}: {name} is {arr.dtype} {arr.shape}, expected floats of shape {want} "
                                 f"({n} features for k {self.config.k_min}-{self.config.k_max})")
        model = self._pipeline(float(info["alpha"]))
        scaler, ridge = model[0], model[-1]
        scaler.max_abs_, scaler.scale_ = arrays["scaler_max_abs"], arrays["scaler_scale"]
        scaler.n_samples_seen_, scaler.n_features_in_ = int(info["n_samples_seen"]), n
        ridge.coef_, ridge.intercept_ = arrays["ridge_coef"], arrays["ridge_intercept"][()]
        ridge.n_features_in_, ridge.solver_ = n, str(info.get("solver", self.config.solver))
        self.model_ = model
        self.alpha_ = info["alpha"]
        self.selection_ = info["selection"]


# ----- kmer-lgbm ----------------------------------------------------------------------------------
@dataclasses.dataclass
class KmerLGBMConfig(MethodConfig):
    """Hyperparameters of ``kmer-lgbm`` (LightGBM names in brackets).

    Attributes:
        k_min, k_max, both_strands: features, as for ``kmer-ridge``.
        n_estimators: maximum boosting rounds [num_boost_round].
        learning_rate: shrinkage [learning_rate].
        num_leaves: leaves per tree [num_leaves].
        min_child_samples: minimum rows in a leaf [min_data_in_leaf].
        colsample: share of features drawn for each tree [feature_fraction].
        subsample: share of rows drawn for each tree, 1.0 = no bagging [bagging_fraction, with
            bagging_freq 1].
        reg_lambda: L2 penalty on leaf values [lambda_l2].
        early_stopping_rounds: stop after this many rounds without a better validation L2 loss and
            keep the best round; 0 disables early stopping (all ``n_estimators`` rounds on all of
            ``train``). The validation rows are ``valid`` when :meth:`KmerLGBM.fit` gets one
            (the model is then trained on all of ``train``), otherwise a random ``valid_fraction``
            of ``train`` that is held out of the boosting (no refit on the full set).
        valid_fraction: internal validation share (see above).
        n_jobs: threads [num_threads]; -1 = all cores this process may use.

    Defaults measured on a 90/10 split of ``dev_train.txt`` (16k rows, internal early-stopping
    split): validation r 0.51 at learning rate 0.02 against 0.50 at 0.05 (about 3x the rounds);
    ``num_leaves`` 15-63, ``colsample`` 0.1-0.3, ``reg_lambda`` 0-10 and bagging on/off all gave
    0.50-0.51 there, i.e. within noise.
    """

    k_min: int = 1
    k_max: int = 6
    both_strands: bool = True
    n_estimators: int = 5000
    learning_rate: float = 0.02
    num_leaves: int = 31
    min_child_samples: int = 20
    colsample: float = 0.3
    subsample: float = 0.8
    reg_lambda: float = 0.0
    early_stopping_rounds: int = 100
    valid_fraction: float = 0.1
    n_jobs: int = -1

    def __post_init__(self) -> None:
        _check_k(self.k_min, self.k_max)
        if not (0.0 < self.colsample <= 1.0 and 0.0 < self.subsample <= 1.0):
            raise ValueError(f"colsample and subsample must be in (0, 1], got {self.colsample}, {self.subsample}")
        if self.n_estimators < 1 or self.early_stopping_rounds < 0:
            raise ValueError("n_estimators must be >= 1 and early_stopping_rounds >= 0")


@register("kmer-lgbm")
class KmerLGBM(_KmerMethod):
    """LightGBM regression on strand-symmetric k-mer counts (module docstring; :class:`KmerLGBMConfig`).

    After :meth:`fit`, ``booster_`` holds the trees up to the best round (``best_iteration_``).
    The fitted booster is rebuilt from its own model text, so predictions after :meth:`save` /
    :meth:`load` are bit-identical to those of the fitted object. Runs with the same ``seed`` and
    ``n_jobs`` give the same model (LightGBM ``deterministic`` mode, row-wise histograms).
    """

    framework = "lightgbm"
    Config = KmerLGBMConfig
    profiles = {"tiny": {"k_max": 3, "n_estimators": 20, "early_stopping_rounds": 5, "n_jobs": 1}}

    def __init__(self, config: KmerLGBMConfig | None = None, **kwargs) -> None:
        super().__init__(config, **kwargs)
        self.booster_ = None
        self.best_iteration_: int | None = None
        self.best_score_: float | None = None

    def num_parameters(self) -> int | None:
        """Total number of leaves (leaf values) over all kept trees; None before :meth:`fit`
        (tree ensembles have no size fixed by the config)."""
        if self.booster_ is None:
            return None
        return int(sum(tree["num_leaves"] for tree in self.booster_.dump_model()["tree_info"]))

    def _params(self) -> dict:
        cfg = self.config
        return {
            "objective": "regression",
            "learning_rate": cfg.learning_rate,
            "num_leaves": cfg.num_leaves,
            "min_data_in_leaf": cfg.min_child_samples,
            "feature_fraction": cfg.colsample,
            "bagging_fraction": cfg.subsample,
            "bagging_freq": 1 if cfg.subsample < 1.0 else 0,
            "lambda_l2": cfg.reg_lambda,
            "num_threads": _all_cores() if cfg.n_jobs == -1 else cfg.n_jobs,
            "seed": self.seed,
            "deterministic": True,
            "force_row_wise": True,
            "verbosity": -1,
        }

    def fit(self, train: SeqTable, valid: SeqTable | None = None) -> None:
        """Boost on ``train`` with early stopping as :class:`KmerLGBMConfig` describes. With a
        ``work_dir``, every round's ``train_l2`` (and ``valid_l2`` with early stopping) goes to the
        metric log (:mod:`harness.tracking`), ``step`` = rounds done.

        Raises:
            ValueError: ``train`` (or a given ``valid``) has no targets, is empty or has non-finite
                targets; too few rows for the internal split.
        """
        import lightgbm as lgb

        cfg = self.config
        y = _require_targets(train, "training")
        x = self.features(train)
        params = self._params()
        x_val = y_val = None
        if cfg.early_stopping_rounds > 0:
            x, y, x_val, y_val = self._fit_and_valid(x, y, valid)
        dtrain = lgb.Dataset(x, y, params=params, free_raw_data=True)
        with open_method_log(self) as log:
            # each round's L2 on the training rows (and the validation rows) goes to the metric log
            # (harness.tracking); evaluating them only reads the scores: the trees are the same
            tracked, names = ([dtrain], ["train"]) if log.active else ([], [])
            logging = [lightgbm_callback(log)] if log.active else []
            if x_val is None:
                booster = lgb.train(params, dtrain, num_boost_round=cfg.n_estimators, valid_sets=tracked,
                                    valid_names=names, callbacks=logging)
                best, score = booster.current_iteration(), None
            else:
                dvalid = lgb.Dataset(x_val, y_val, reference=dtrain)
                booster = lgb.train(params, dtrain, num_boost_round=cfg.n_estimators, valid_sets=[*tracked, dvalid],
                                    valid_names=[*names, "valid"],
                                    callbacks=[lgb.early_stopping(cfg.early_stopping_rounds, verbose=False), *logging])
                best = booster.best_iteration or booster.current_iteration()
                score = float(booster.best_score["valid"]["l2"]) if booster.best_score else None
        # keep only the best rounds, through the same text form that save() writes
        self.booster_ = lgb.Booster(model_str=booster.model_to_string(num_iteration=best))
        self.best_iteration_ = int(best)
        self.best_score_ = score

    def predict(self, seqs: SeqTable) -> np.ndarray:
        """``(len(seqs),) float64`` predictions.

        Raises:
            RuntimeError: the method is not fitted.
        """
        if self.booster_ is None:
            raise RuntimeError("kmer-lgbm: predict() before fit()")
        if len(seqs) == 0:
            return np.zeros(0, dtype=np.float64)
        threads = _all_cores() if self.config.n_jobs == -1 else self.config.n_jobs
        return np.asarray(self.booster_.predict(self.features(seqs), num_threads=threads), dtype=np.float64)

    def _save_state(self, path: Path) -> None:
        if self.booster_ is None:
            raise RuntimeError("kmer-lgbm: save() before fit()")
        write_text(path / "model.txt", self.booster_.model_to_string())
        write_json(path / "fit_info.json", {"best_iteration": self.best_iteration_, "best_valid_l2": self.best_score_,
                                            "n_features": self.n_features()})

    def _load_state(self, path: Path) -> None:
        import lightgbm as lgb

        self.booster_ = lgb.Booster(model_file=str(path / "model.txt"))
        info = read_json(path / "fit_info.json")
        self.best_iteration_ = info["best_iteration"]
        self.best_score_ = info["best_valid_l2"]
