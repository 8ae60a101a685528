"""Vectorised implementation of the official weighted Pearson²/Spearman score (see package doc)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

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
    """Scores on one board.

    A category that cannot be scored on the board (fewer than 2 members there, or not known: no
    SNV pairs without ``all_SNVs_seqs.csv`` or ``--snv-pairs``) is listed in ``missing`` and
    contributes 0 to the sums, which are still divided by 4.65: such a board is ``partial``, lower
    than the challenge's score and not comparable with it.
    """

    board: str
    pearson_score: float
    spearman_score: float
    categories: dict[str, CategoryScore]
    snv_source: str
    missing: list[str] = field(default_factory=list)

    @property
    def partial(self) -> bool:
        """True when a weighted category is missing from the sums (see ``missing``)."""
        return bool(self.missing)

    def to_dict(self) -> dict:
        """JSON form: ``{"pearson_score", "spearman_score", "snv_source", "categories": {name: {n,
        pearson, spearman}}, "partial": bool, "missing": [category, ...]}`` (``missing`` is empty
        unless ``partial``; readers of older files take a missing ``missing`` as ``[]``)."""
        return {"pearson_score": self.pearson_score, "spearman_score": self.spearman_score,
                "snv_source": self.snv_source, "categories": {k: asdict(v) for k, v in self.categories.items()},
                "partial": self.partial, "missing": list(self.missing)}

    @classmethod
    def from_dict(cls, board: str, d: dict) -> "BoardScore":
        """Inverse of :meth:`to_dict` (also reads files written before ``partial``/``missing``
        existed: ``missing`` defaults to ``[]``; ``partial`` is always derived from it)."""
        return cls(board, d["pearson_score"], d["spearman_score"],
                   {c: CategoryScore(**v) for c, v in d["categories"].items()}, d["snv_source"], list(d.get("missing", [])))


def pearson(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson r of two ``(n,)`` arrays (0.0 when either is constant; ``scipy.stats.pearsonr`` gives NaN).

    Each array is divided by its largest magnitude before centring, so any finite scale gives the
    same r (predictions ×1e200 or ×1e-200 neither overflow nor underflow).
    """
    r = []
    for v in (x, y):
        v = np.asarray(v, dtype=np.float64)
        top = np.max(np.abs(v)) if v.size else 0.0
        v = v / top if top > 0 else v
        v = v - np.mean(v)
        norm = np.sqrt(v @ v)
        r.append(v / norm if norm > 0 else None)
    if r[0] is None or r[1] is None:
        return 0.0
    return float(np.clip(r[0] @ r[1], -1.0, 1.0))


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman ρ of two ``(n,)`` arrays: Pearson r of average ranks (as ``scipy.stats.spearmanr``)."""
    from scipy.stats import rankdata  # scipy.stats takes ~1.5 s to import: only when a score is computed

    return pearson(rankdata(x), rankdata(y))


def board_members(test: TestSet, board: str) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Test indices and category members on ``board``, by the official evaluation script's rules
    (Zenodo 7395397; ``evaluate_predictions`` / ``calculate_eval_metrics``):

    * ``full``: every test index; every category whole (``test.categories``, already sets).
    * ``public``: the union of every public id, pair members included (9,045); each category is
      its ``public_leaderboard_ids/*_exp_indices.json`` (pair files as ``"alt,ref"`` keys).
    * ``private``: every index not public (62,058); a single category drops every public index;
      a pair category drops exactly the ``(alt, ref)`` pairs listed in any of the three public
      pair files (a pair with public members but not listed stays).

    Returns:
        ``(all_ids, categories)``: ``(n,) int64`` sorted indices, and category -> ``(n,)`` indices
        or ``(n, 2)`` (alt, ref) pairs. A category absent from ``test`` (e.g. SNVs without a pair
        file) is absent here.

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
    if board == "public":
        return public_ids, dict(test.public)
    is_public = np.zeros(n, dtype=bool)
    is_public[public_ids] = True
    listed = [test.public[c] for c in PAIR_CATEGORIES if c in test.public]
    public_pairs = _pair_keys(np.concatenate(listed), n) if listed else np.zeros(0, dtype=np.int64)
    cats = {}
    for c, ids in test.categories.items():
        cats[c] = ids[~np.isin(_pair_keys(ids, n), public_pairs)] if ids.ndim == 2 else ids[~is_public[ids]]
    return np.flatnonzero(~is_public), cats


def board_ids(test: TestSet, board: str) -> np.ndarray:
    """Every test index whose prediction ``board`` reads: its ``all`` ids and every member of its
    categories (a private pair can have a public member). ``(m,) int64``, sorted.

    Raises:
        ValueError: as :func:`board_members`.
    """
    return _used(*board_members(test, board))


def _used(all_ids: np.ndarray, cats: dict[str, np.ndarray]) -> np.ndarray:
    return np.unique(np.concatenate([all_ids] + [ids.ravel() for ids in cats.values()]))


def _pair_keys(pairs: np.ndarray, n: int) -> np.ndarray:
    """One int64 per ``(alt, ref)`` row (``alt * n + ref``), for set membership of pairs."""
    return pairs[:, 0].astype(np.int64) * n + pairs[:, 1]


def score(pred: np.ndarray, test: TestSet, board: str = "private") -> BoardScore:
    """Score predictions on one board.

    Args:
        pred: ``(len(test),) float`` predictions in test order; entries off the board may be NaN.
        test: the test set with truth (``test.expression``, float64) and categories.
        board: ``"public"``, ``"private"`` or ``"full"``.

    Returns:
        :class:`BoardScore`; ``partial`` (with ``missing``) when a category cannot be scored.

    Raises:
        ValueError: wrong length, unknown board, or a prediction on the board that is NaN/inf
            (the message gives how many and the first index).
    """
    pred = np.asarray(pred, dtype=np.float64)
    truth = test.expression
    if pred.shape != truth.shape:
        raise ValueError(f"predictions have shape {pred.shape}, the test set has {truth.shape[0]} sequences")
    all_ids, cats = board_members(test, board)
    used = _used(all_ids, cats)
    bad = used[~np.isfinite(pred[used])]
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
