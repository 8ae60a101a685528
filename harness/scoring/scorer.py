"""Vectorised implementation of the official weighted Pearson²/Spearman score (see package doc)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
from scipy.stats import rankdata

from ..data.testset import PAIR_CATEGORIES, TestSet

#: Category weights of the official score (challenge evaluation script).
WEIGHTS: dict[str, float] = {
    "all": 1.0, "high": 0.3, "low": 0.3, "yeast": 0.3, "random": 0.3, "challenging": 0.5,
    "SNVs": 1.25, "motif_perturbation": 0.3, "motif_tiling": 0.4,
}
#: Sum of the weights; both scores are divided by it.
NORMALISER = 4.65
BOARDS = ("public", "private", "full")


@dataclass
class CategoryScore:
    """One category on one board: ``n`` sequences (pairs for pair categories), Pearson r, Spearman ρ."""

    n: int
    pearson: float
    spearman: float


@dataclass
class BoardScore:
    """Scores on one board. Missing categories (no members on this board) are listed in ``missing``
    and contribute 0 to the sums, as a missing category would in the official script."""

    board: str
    pearson_score: float
    spearman_score: float
    categories: dict[str, CategoryScore]
    snv_source: str
    missing: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        """JSON form: ``{"pearson_score", "spearman_score", "snv_source", "categories": {name: {n, pearson, spearman}}}``."""
        out = {"pearson_score": self.pearson_score, "spearman_score": self.spearman_score,
               "snv_source": self.snv_source, "categories": {k: asdict(v) for k, v in self.categories.items()}}
        if self.missing:
            out["missing"] = list(self.missing)
        return out


def pearson(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson r of two ``(n,)`` arrays (0.0 when either is constant)."""
    x = np.asarray(x, dtype=np.float64) - np.mean(x)
    y = np.asarray(y, dtype=np.float64) - np.mean(y)
    denom = np.sqrt((x @ x) * (y @ y))
    return float(x @ y / denom) if denom > 0 else 0.0


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman ρ of two ``(n,)`` arrays: Pearson r of average ranks (as ``scipy.stats.spearmanr``)."""
    return pearson(rankdata(x), rankdata(y))


def board_members(test: TestSet, board: str) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Test indices and category members on ``board``.

    Returns:
        ``(all_ids, categories)``: ``(n,) int64`` sorted indices, and category -> ``(n,)`` indices
        or ``(n, 2)`` (alt, ref) pairs.

    Raises:
        ValueError: unknown board, or a public/private board on a data directory without
            public-leaderboard ids.
    """
    n = len(test)
    if board == "full":
        return np.arange(n), dict(test.categories)
    if board not in BOARDS:
        raise ValueError(f"unknown board {board!r}; choose from {', '.join(BOARDS)}")
    public_ids = test.public_ids
    if public_ids is None:
        raise ValueError(f"board {board!r} needs public_leaderboard_ids/ in {test.directory}")
    is_public = np.zeros(n, dtype=bool)
    is_public[public_ids] = True
    if board == "public":
        cats = {c: test.public[c] for c in test.categories if c in test.public}
        return public_ids, cats
    cats = {}
    for c, ids in test.categories.items():
        hit = is_public[ids]
        cats[c] = ids[~hit.all(axis=1)] if ids.ndim == 2 else ids[~hit]
    return np.flatnonzero(~is_public), cats


def score(pred: np.ndarray, test: TestSet, board: str = "private") -> BoardScore:
    """Score predictions on one board.

    Args:
        pred: ``(len(test),) float`` predictions in test order; entries off the board may be NaN.
        test: the test set with truth (``test.table.y``) and categories.
        board: ``"public"``, ``"private"`` or ``"full"``.

    Raises:
        ValueError: wrong length, unknown board, or a prediction on the board that is NaN/inf
            (the message gives how many and the first index).
    """
    pred = np.asarray(pred, dtype=np.float64)
    truth = np.asarray(test.table.y, dtype=np.float64)
    if pred.shape != truth.shape:
        raise ValueError(f"predictions have shape {pred.shape}, the test set has {truth.shape[0]} sequences")
    all_ids, cats = board_members(test, board)
    bad = all_ids[~np.isfinite(pred[all_ids])]
    if len(bad):
        raise ValueError(f"{len(bad)} predictions on the {board} board are missing or not finite (first: index {bad[0]})")
    results = {"all": CategoryScore(len(all_ids), pearson(pred[all_ids], truth[all_ids]), spearman(pred[all_ids], truth[all_ids]))}
    missing = []
    for cat in WEIGHTS:
        if cat == "all":
            continue
        ids = cats.get(cat)
        if ids is None or len(ids) < 2:
            missing.append(cat)
            continue
        if cat in PAIR_CATEGORIES:
            p, t = pred[ids[:, 0]] - pred[ids[:, 1]], truth[ids[:, 0]] - truth[ids[:, 1]]
        else:
            p, t = pred[ids], truth[ids]
        results[cat] = CategoryScore(len(ids), pearson(p, t), spearman(p, t))
    p_score = sum(WEIGHTS[c] * s.pearson ** 2 for c, s in results.items()) / NORMALISER
    s_score = sum(WEIGHTS[c] * s.spearman for c, s in results.items()) / NORMALISER
    return BoardScore(board, p_score, s_score, results, test.snv_source, missing)


def score_boards(pred: np.ndarray, test: TestSet, boards=BOARDS) -> dict[str, BoardScore]:
    """:func:`score` on each board in ``boards`` (boards needing public ids are skipped when the data has none)."""
    out = {}
    for board in boards:
        if board != "full" and test.public_ids is None:
            continue
        out[board] = score(pred, test, board)
    return out
