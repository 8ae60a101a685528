"""Bootstrap intervals for the official score: per category, per board score, and paired differences.

The challenge ranked on one test set (Rafi et al. 2024): a difference of 0.01 between two entries
may be noise of the test sample alone. This module resamples the test members to show it.

Scheme (stratified, per category):

* Each category's members on the board (:func:`~harness.scoring.scorer.board_members`: sequences
  for single categories, distinct ``(alt, ref)`` pairs for ``SNVs``, ``motif_perturbation`` and
  ``motif_tiling``; a category is a set, private pair categories exclude the listed public pairs)
  are resampled with replacement, ``n`` draws of ``n`` members, and Pearson r and Spearman ρ are
  recomputed on the resample (ρ with average ranks of the resampled values, ties included, as
  ``scipy.stats.spearmanr`` of the resample).
* Resample ``b`` of category ``c`` is drawn by its own generator,
  ``numpy.random.default_rng([seed, k, b])`` with ``k`` the category's position in
  :data:`~harness.scoring.scorer.WEIGHTS` (:func:`resample_indices`): every category is re-drawn
  independently in every resample, the first 200 of 500 resamples are the 200 resamples, and every
  method of one call is scored on the very same draws (paired differences).
* Draw ``b`` of the board's Pearson score is Σ_c w_c·r_cb² / 4.65 and of the Spearman score
  Σ_c w_c·ρ_cb / 4.65 over the same categories as :func:`~harness.scoring.scorer.score` (a
  category it cannot score counts 0 in every draw: a partial score stays partial).
* ``all`` overlaps the other categories (every single-category sequence, and every pair member, is
  also in ``all`` on the full board). The categories are still drawn independently, as if they
  were separate samples, which is how the score treats them (each category's correlation is
  computed on its own); the positive covariance between ``all`` and a category sharing its
  sequences is then not in the draws, so the score intervals may be somewhat narrow. Category
  intervals are unaffected.
* Intervals are percentile intervals (Efron & Tibshirani 1993, *An Introduction to the
  Bootstrap*, ch. 13; ``level`` 0.95: the 2.5th and 97.5th percentiles of the draws,
  ``numpy.percentile``, linear interpolation). A paired difference ``a − b`` is the
  percentile interval of the per-draw differences; an interval excluding 0 is a significant
  difference at that level.

Vectorised: a resample is a count vector ``W`` (how often each member was drawn), so the resampled
correlation is a count-weighted one: Pearson r from count-weighted moments (matrix products over
every method at once), Spearman ρ from the resample's average ranks, which follow from cumulative
counts in sorted order (no per-resample sort). Resamples are processed in chunks of about
:data:`CHUNK_ELEMENTS` counts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from ..data.testset import PAIR_CATEGORIES, TestSet
from .scorer import NORMALISER, WEIGHTS, _used, board_members

#: Default number of resamples (``harness leaderboard --bootstrap``).
DEFAULT_RESAMPLES = 200
#: Default interval level.
LEVEL = 0.95
#: Resample counts held at once per chunk (rows × members); bounds the memory to ~100 MB.
CHUNK_ELEMENTS = 1 << 21
_CATEGORY_KEYS = {c: k for k, c in enumerate(WEIGHTS)}


def resample_indices(seed: int, category: str, b: int, n: int) -> np.ndarray:
    """Member positions drawn with replacement for resample ``b`` of ``category``: ``(n,) int64``
    in ``[0, n)``, from ``numpy.random.default_rng([seed, k, b])`` (``k``: the category's position in
    :data:`WEIGHTS`).

    Raises:
        ValueError: unknown category, or a negative seed or ``b``.
    """
    if category not in _CATEGORY_KEYS:
        raise ValueError(f"unknown category {category!r}; choose from {', '.join(WEIGHTS)}")
    if seed < 0 or b < 0:
        raise ValueError(f"seed and resample number must be non-negative (got {seed}, {b})")
    return np.random.default_rng([seed, _CATEGORY_KEYS[category], b]).integers(0, n, size=n)


def percentile_interval(draws: np.ndarray, level: float = LEVEL) -> tuple[np.ndarray, np.ndarray]:
    """Percentile interval over the last axis of ``draws`` (``(..., B)``): ``(lo, hi)``, each of
    shape ``(...)``, the ``(1 − level)/2`` and ``(1 + level)/2`` quantiles.

    Raises:
        ValueError: ``level`` not in (0, 1), or no draws.
    """
    if not 0 < level < 1:
        raise ValueError(f"interval level must be in (0, 1), got {level}")
    draws = np.asarray(draws, dtype=np.float64)
    if draws.shape[-1] == 0:
        raise ValueError("no bootstrap draws")
    q = 100 * np.array([(1 - level) / 2, (1 + level) / 2])
    lo, hi = np.percentile(draws, q, axis=-1)
    return lo, hi


def category_values(pred: np.ndarray, test: TestSet, board: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """What each category's correlation is computed on, as in :func:`~harness.scoring.scorer.score`:
    category -> ``(predicted, measured)``; predicted ``(..., n) float64`` (``pred``'s leading axes
    kept), measured ``(n,) float64``: the values of the members for a single category, alt − ref of
    each pair for a pair category. Only categories with at least 2 members on the board, in
    :data:`WEIGHTS` order (``all`` first).

    Args:
        pred: ``(N,)`` or ``(M, N)`` predictions in test order.

    Raises:
        ValueError: wrong length, unknown board (see :func:`board_members`), or a prediction the
            board reads that is NaN/inf.
    """
    pred = np.asarray(pred, dtype=np.float64)
    truth = test.expression
    if pred.shape[-1:] != truth.shape:
        raise ValueError(f"predictions have shape {pred.shape}, the test set has {truth.shape[0]} sequences")
    all_ids, cats = board_members(test, board)
    used = _used(all_ids, cats)
    bad = used[~np.isfinite(pred[..., used]).reshape(-1, len(used)).all(axis=0)]
    if len(bad):
        raise ValueError(f"{len(bad)} predictions on the {board} board are missing or not finite (first: index {bad[0]})")
    members = {"all": all_ids, **cats}
    out = {}
    for cat in WEIGHTS:
        ids = members.get(cat)
        if ids is None or len(ids) < 2:
            continue
        if cat in PAIR_CATEGORIES:
            out[cat] = (pred[..., ids[:, 0]] - pred[..., ids[:, 1]], truth[ids[:, 0]] - truth[ids[:, 1]])
        else:
            out[cat] = (pred[..., ids], truth[ids])
    return out


def resample_correlations(pred: np.ndarray, truth: np.ndarray, n_resamples: int, seed: int = 0,
                          category: str = "all") -> tuple[np.ndarray, np.ndarray]:
    """Pearson r and Spearman ρ of every method on each resample of one category's members.

    Resample ``b`` takes the members at :func:`resample_indices` ``(seed, category, b, n)``; its r
    and ρ equal :func:`~harness.scoring.scorer.pearson` / :func:`~harness.scoring.scorer.spearman`
    of ``pred[m, idx]`` and ``truth[idx]`` (to rounding, ~1e-15; ρ's rank sums are exact), with the
    same convention: 0.0 when either side of the resample is constant.

    Args:
        pred: ``(M, n)`` (or ``(n,)``) finite predicted values of the members (alt − ref for pairs).
        truth: ``(n,)`` finite measured values.
        n_resamples: ``B`` ≥ 1.
        seed, category: select the draws (:func:`resample_indices`).

    Returns:
        ``(pearson, spearman)``, each ``(M, B) float64`` (``(B,)`` for a 1-D ``pred``).

    Raises:
        ValueError: shapes disagree, fewer than 2 members, non-finite values, ``B`` < 1.
    """
    one = np.ndim(pred) == 1
    p = np.atleast_2d(np.asarray(pred, dtype=np.float64))
    t = np.asarray(truth, dtype=np.float64)
    if p.ndim != 2 or t.ndim != 1 or p.shape[1] != t.shape[0]:
        raise ValueError(f"predicted values of shape {np.shape(pred)} do not match measured values of shape {t.shape}")
    if n_resamples < 1:
        raise ValueError(f"need at least 1 resample, got {n_resamples}")
    m, n = p.shape
    if n < 2:
        raise ValueError(f"a correlation needs at least 2 members, got {n}")
    if not (np.isfinite(p).all() and np.isfinite(t).all()):
        raise ValueError("predicted and measured values must be finite")
    # everything in truth-sorted order: the truth's ranks need no gather, a method's need one
    order = np.argsort(t, kind="stable")
    position = np.empty(n, dtype=np.int64)
    position[order] = np.arange(n)
    t, p = t[order], p[:, order]
    tz, pz = _standardise(t[None])[0], _standardise(p)
    moments = np.vstack([pz, pz * pz, pz * tz, tz, tz * tz])  # (3M + 2, n)
    t_groups = _tie_groups(t)
    p_orders = [np.argsort(row, kind="stable") for row in p]
    p_groups = [_tie_groups(row[o]) for row, o in zip(p, p_orders)]
    centre = (n + 1) / 2  # the mean average rank of any n values
    r_out = np.empty((m, n_resamples))
    rho_out = np.empty((m, n_resamples))
    step = max(1, min(n_resamples, CHUNK_ELEMENTS // n))
    for start in range(0, n_resamples, step):
        rows = range(start, min(n_resamples, start + step))
        c = len(rows)
        # counts, members × resamples (row gathers and cumulative sums run over contiguous rows)
        drawn = np.stack([position[resample_indices(seed, category, b, n)] for b in rows], axis=1)
        w = np.bincount((drawn * c + np.arange(c)).ravel(), minlength=n * c).reshape(n, c).astype(np.float64)
        # Pearson r: count-weighted moments of the standardised values (means ~0: no cancellation);
        # einsum, not BLAS: a multi-threaded GEMM this thin is 30x slower on a busy machine
        sums = np.einsum("ki,ic->kc", moments, w)
        sx, sxx, sxy, sy, syy = sums[:m], sums[m:2 * m], sums[2 * m:3 * m], sums[3 * m], sums[3 * m + 1]
        vx, vy = sxx - sx * sx / n, syy - sy * sy / n
        r = _ratio(sxy - sx * sy / n, vx * vy)
        r[_constant(w, pz, vx) | _constant(w, tz[None], vy[None])] = 0.0
        r_out[:, start:start + c] = r
        # Spearman ρ: count-weighted Pearson r of the resample's average ranks
        rt = _ranks(w, t_groups) - centre
        vt = np.einsum("ij,ij->j", w * rt, rt)
        for k in range(m):
            ws = np.take(w, p_orders[k], axis=0)
            rp = _ranks(ws, p_groups[k]) - centre
            wp = ws * rp
            rho_out[k, start:start + c] = _ratio(np.einsum("ij,ij->j", wp, np.take(rt, p_orders[k], axis=0)),
                                                 np.einsum("ij,ij->j", wp, rp) * vt)
    r_out, rho_out = np.clip(r_out, -1.0, 1.0), np.clip(rho_out, -1.0, 1.0)
    return (r_out[0], rho_out[0]) if one else (r_out, rho_out)


def _standardise(v: np.ndarray) -> np.ndarray:
    """Rows scaled by their largest magnitude (any finite scale is safe), centred, divided by their
    standard deviation (a constant row stays 0): Pearson r is unchanged."""
    top = np.abs(v).max(axis=1, keepdims=True)
    v = v / np.where(top > 0, top, 1.0)
    v = v - v.mean(axis=1, keepdims=True)
    sd = v.std(axis=1, keepdims=True)
    return v / np.where(sd > 0, sd, 1.0)


def _tie_groups(sorted_values: np.ndarray) -> np.ndarray | None:
    """Group number of each sorted value (equal values share one), or None when all are distinct."""
    new = np.empty(len(sorted_values), dtype=bool)
    new[0] = True
    np.not_equal(sorted_values[1:], sorted_values[:-1], out=new[1:])
    return None if new.all() else np.cumsum(new) - 1


def _ranks(w_sorted: np.ndarray, groups: np.ndarray | None) -> np.ndarray:
    """Average rank in each resample (columns of counts, members in sorted order) of each member:
    the members before it in the resample plus (its group's count + 1) / 2. ``(n, c)``; exact."""
    if groups is None:
        return np.cumsum(w_sorted, axis=0) - (w_sorted - 1) / 2
    starts = np.flatnonzero(np.r_[True, groups[1:] != groups[:-1]])
    counts = np.add.reduceat(w_sorted, starts, axis=0)
    return (np.cumsum(counts, axis=0) - (counts - 1) / 2)[groups]


def _ratio(cov: np.ndarray, var_product: np.ndarray) -> np.ndarray:
    """cov / sqrt(var_product), 0 where the product is not positive."""
    ok = var_product > 0
    return np.where(ok, cov / np.sqrt(np.where(ok, var_product, 1.0)), 0.0)


def _constant(w: np.ndarray, z: np.ndarray, var: np.ndarray) -> np.ndarray:
    """``(M, c)`` True where value row ``k`` holds one distinct value in resample (column) ``i`` of
    the counts ``w`` ``(n, c)``: checked exactly where the weighted variance ``var`` is near 0
    (rounding can leave a constant one at ~1e-16 instead of 0)."""
    out = np.zeros(np.broadcast_shapes(var.shape, (z.shape[0], w.shape[1])), dtype=bool)
    for k, i in zip(*np.nonzero(np.broadcast_to(var, out.shape) <= 1e-9 * w.shape[0])):
        values = z[k, w[:, i] > 0]
        out[k, i] = values.min() == values.max()
    return out


@dataclass
class BoardBootstrap:
    """Resampled statistics of several methods on one board, all from the same draws.

    Attributes:
        board: ``"public"``, ``"private"`` or ``"full"``.
        names: the methods, in the order of the rows below.
        n_resamples, seed, level: as given to :func:`bootstrap_board`.
        n: category -> its member count on the board (categories scored, ``all`` first).
        pearson, spearman: category -> ``(M, B) float64`` resampled Pearson r / Spearman ρ.
        pearson_score, spearman_score: ``(M, B) float64`` resampled board scores.
        missing: weighted categories that cannot be scored on the board (0 in every draw).
    """

    board: str
    names: list[str]
    n_resamples: int
    seed: int
    level: float
    n: dict[str, int]
    pearson: dict[str, np.ndarray]
    spearman: dict[str, np.ndarray]
    pearson_score: np.ndarray
    spearman_score: np.ndarray
    missing: list[str] = field(default_factory=list)

    def draws(self, name: str, stat: str, category: str | None = None) -> np.ndarray:
        """``(B,)`` draws of ``stat`` (``"pearson"``/``"spearman"``; the board score without
        ``category``, else that category's r or ρ) for method ``name``.

        Raises:
            KeyError: unknown method, statistic or category.
        """
        if stat not in ("pearson", "spearman"):
            raise KeyError(f"unknown statistic {stat!r}: 'pearson' or 'spearman'")
        if name not in self.names:
            raise KeyError(f"{name!r} is not in this bootstrap ({', '.join(self.names)})")
        k = self.names.index(name)
        if category is None:
            return (self.pearson_score if stat == "pearson" else self.spearman_score)[k]
        table = self.pearson if stat == "pearson" else self.spearman
        if category not in table:
            raise KeyError(f"category {category!r} is not scored on the {self.board} board")
        return table[category][k]

    def interval(self, name: str, stat: str, category: str | None = None) -> tuple[float, float]:
        """Percentile interval ``(lo, hi)`` at :attr:`level` of :meth:`draws`."""
        lo, hi = percentile_interval(self.draws(name, stat, category), self.level)
        return float(lo), float(hi)

    def difference(self, a: str, b: str, stat: str, category: str | None = None) -> tuple[float, float]:
        """Percentile interval ``(lo, hi)`` of the paired per-draw difference ``a − b`` (same draws);
        significant at :attr:`level` when it excludes 0."""
        lo, hi = percentile_interval(self.draws(a, stat, category) - self.draws(b, stat, category), self.level)
        return float(lo), float(hi)


def bootstrap_board(preds: Mapping[str, np.ndarray], test: TestSet, board: str,
                    n_resamples: int = DEFAULT_RESAMPLES, seed: int = 0, level: float = LEVEL) -> BoardBootstrap:
    """Resample every category of ``board`` (scheme in the module doc) for every method at once.

    Args:
        preds: method name -> ``(len(test),) float`` predictions in test order (entries off the
            board may be NaN).
        test: the test set every method was scored on.
        board: ``"public"``, ``"private"`` or ``"full"``.
        n_resamples: ``B`` ≥ 1; seed ≥ 0; level in (0, 1).

    Returns:
        :class:`BoardBootstrap`.

    Raises:
        ValueError: no methods, ``B`` < 1, a negative seed, a bad level, or as
            :func:`category_values` (wrong length, unknown board, non-finite prediction on the board).
    """
    names = list(preds)
    if not names:
        raise ValueError("no predictions to bootstrap")
    if seed < 0:
        raise ValueError(f"seed must be non-negative, got {seed}")
    if not 0 < level < 1:
        raise ValueError(f"interval level must be in (0, 1), got {level}")
    values = category_values(np.vstack([np.asarray(preds[k], dtype=np.float64) for k in names]), test, board)
    pearson, spearman = {}, {}
    p_score = np.zeros((len(names), n_resamples))
    s_score = np.zeros((len(names), n_resamples))
    for cat, (p, t) in values.items():
        pearson[cat], spearman[cat] = resample_correlations(p, t, n_resamples, seed, cat)
        p_score += WEIGHTS[cat] * pearson[cat] ** 2
        s_score += WEIGHTS[cat] * spearman[cat]
    return BoardBootstrap(board, names, n_resamples, seed, level, {c: len(t) for c, (_, t) in values.items()},
                          pearson, spearman, p_score / NORMALISER, s_score / NORMALISER,
                          [c for c in WEIGHTS if c not in values])
