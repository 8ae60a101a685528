"""Rich tables for scores and leaderboards (terminal output of ``harness score`` and ``harness run``)."""

from __future__ import annotations

import numpy as np
from rich import box
from rich.table import Table

from .scoring import WEIGHTS, BoardScore


def board_table(result: BoardScore, title: str = "") -> Table:
    """Per-category table (n, Pearson r, r², Spearman ρ, weight) with the two scores as the footer."""
    table = Table(title=title or f"{result.board} board", box=box.SIMPLE_HEAVY, show_footer=True)
    table.add_column("category", footer="score")
    table.add_column("n", justify="right")
    table.add_column("weight", justify="right")
    table.add_column("Pearson r", justify="right")
    table.add_column("r²", justify="right", footer=f"{result.pearson_score:.4f}")
    table.add_column("Spearman ρ", justify="right", footer=f"{result.spearman_score:.4f}")
    for cat, w in WEIGHTS.items():
        s = result.categories.get(cat)
        if s is None:
            table.add_row(cat, "0", f"{w:g}", "—", "—", "—", style="dim")
        else:
            table.add_row(cat, f"{s.n:,}", f"{w:g}", f"{s.pearson:.4f}", f"{s.pearson ** 2:.4f}", f"{s.spearman:.4f}")
    table.caption = f"SNV pairs: {result.snv_source}"
    if result.missing:
        table.caption += f"; no members on this board: {', '.join(result.missing)} (count 0 in the scores)"
    return table


def rank_methods(scores: dict[str, dict[str, float]]) -> list[str]:
    """Order method names by the mean of their ranks on the two scores (the challenge's ranking).

    ``scores``: name -> ``{"pearson_score": x, "spearman_score": y}``; ties keep input order.
    """
    names = list(scores)
    if not names:
        return []
    ranks = np.zeros(len(names))
    for key in ("pearson_score", "spearman_score"):
        values = np.array([-scores[n][key] for n in names])
        ranks += values.argsort(kind="stable").argsort(kind="stable") + 1
    return [names[i] for i in np.argsort(ranks / 2, kind="stable")]


def leaderboard_table(rows: dict[str, dict[str, BoardScore]], boards: list[str], rank_board: str,
                      extra: dict[str, dict[str, str]] | None = None, title: str = "Leaderboard") -> Table:
    """Methods × boards table of both scores, ranked on ``rank_board`` by mean rank.

    ``rows``: method -> board -> :class:`BoardScore`; ``extra``: method -> column -> text (e.g. OOF r).
    """
    ranked = rank_methods({m: {"pearson_score": b[rank_board].pearson_score,
                               "spearman_score": b[rank_board].spearman_score} for m, b in rows.items()})
    table = Table(title=title, box=box.SIMPLE_HEAVY, collapse_padding=True, pad_edge=False)  # fits 80 columns
    table.add_column("#", justify="right")
    table.add_column("method", no_wrap=True)
    for board in boards:
        table.add_column(f"{board}\nPearson²", justify="right")
        table.add_column(f"{board}\nSpearman", justify="right")
    extra_cols = sorted({c for e in (extra or {}).values() for c in e})
    for col in extra_cols:
        table.add_column(col, justify="right")
    for i, method in enumerate(ranked, 1):
        cells = [str(i), method]
        for board in boards:
            s = rows[method].get(board)
            cells += [f"{s.pearson_score:.4f}", f"{s.spearman_score:.4f}"] if s else ["—", "—"]
        cells += [(extra or {}).get(method, {}).get(c, "") for c in extra_cols]
        table.add_row(*cells)
    table.caption = f"ranked by mean rank of the two {rank_board}-board scores"
    return table
