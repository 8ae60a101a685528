"""Rich tables for scores and leaderboards (terminal output of ``harness score`` and ``harness run``).

A partial board score (a weighted category could not be scored, e.g. the SNVs without a pair file:
:attr:`harness.scoring.BoardScore.partial`) is never shown as a whole one: its number carries a
``*`` and the caption says which categories are missing (:func:`score_text`, :func:`partial_note`).
"""

from __future__ import annotations

import numpy as np
from rich import box
from rich.table import Table

from .scoring import WEIGHTS, BoardScore


def score_text(value: float, score: BoardScore, digits: int = 4) -> str:
    """``value`` (one of ``score``'s two scores) with ``digits`` decimals, ``*`` appended when the
    board score is partial."""
    return f"{value:.{digits}f}" + ("*" if score.missing else "")


def partial_note(missing: list[str] | set[str]) -> str:
    """The caption line for scores marked ``*`` (``""`` when nothing is missing)."""
    if not missing:
        return ""
    return (f"* partial score: {', '.join(sorted(missing))} cannot be scored on this board and count 0 in the "
            "sums (still divided by 4.65): lower than, and not comparable with, the challenge's score")


def board_table(result: BoardScore, title: str = "") -> Table:
    """Per-category table (n, Pearson r, r², Spearman ρ, weight) with the two scores as the footer
    (marked ``*`` when partial)."""
    table = Table(title=title or f"{result.board} board", box=box.SIMPLE_HEAVY, show_footer=True)
    table.add_column("category", footer="score")
    table.add_column("n", justify="right")
    table.add_column("weight", justify="right")
    table.add_column("Pearson r", justify="right")
    table.add_column("r²", justify="right", footer=score_text(result.pearson_score, result))
    table.add_column("Spearman ρ", justify="right", footer=score_text(result.spearman_score, result))
    for cat, w in WEIGHTS.items():
        s = result.categories.get(cat)
        if s is None:
            table.add_row(cat, "0", f"{w:g}", "—", "—", "—", style="dim")
        else:
            table.add_row(cat, f"{s.n:,}", f"{w:g}", f"{s.pearson:.4f}", f"{s.pearson ** 2:.4f}", f"{s.spearman:.4f}")
    table.caption = f"SNV pairs: {result.snv_source}"
    if result.missing:
        table.caption += "\n" + partial_note(result.missing)
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
    Partial scores are marked ``*`` and explained in the caption.
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
            cells += [score_text(s.pearson_score, s), score_text(s.spearman_score, s)] if s else ["—", "—"]
        cells += [(extra or {}).get(method, {}).get(c, "") for c in extra_cols]
        table.add_row(*cells)
    table.caption = f"ranked by mean rank of the two {rank_board}-board scores"
    missing = {c for b in rows.values() for board in boards if board in b for c in b[board].missing}
    if missing:
        table.caption += "\n" + partial_note(missing)
    return table
