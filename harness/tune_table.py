"""The trials table of ``harness tune`` (rich), and the number / value formats its console lines share.

The study itself is :mod:`harness.tune`.
"""

from __future__ import annotations

import json
from typing import Any

from rich.table import Table

from .search_space import SearchSpace, plain_value


def trials_table(trials: list, space: SearchSpace, title: str = "trials", limit: int = 50) -> Table:
    """A rich table of trials: number, state, r + rho, r, rho, epochs reported, seconds, searched values.

    The best completed trial is starred. With more than ``limit`` trials the best ``limit`` by value
    are shown (the caption says so).
    """
    from optuna.trial import TrialState

    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    best = max(complete, key=lambda t: t.value).number if complete else None
    shown = list(trials)
    caption = ""
    if len(shown) > limit:
        shown = sorted(shown, key=lambda t: (t.state != TrialState.COMPLETE, -(t.value or 0.0)))[:limit]
        shown.sort(key=lambda t: t.number)
        caption = f"{limit} best of {len(trials)} trials shown"
    table = Table(title=title, caption=caption or None)
    for col in ("#", "state", "r + ρ", "r", "ρ", "epochs", "seconds", *space.searched):
        table.add_column(col, justify="left" if col in ("state", *space.searched) else "right")
    for t in shown:
        value = f"{t.value:.4f}" if t.state == TrialState.COMPLETE else "—"
        if t.state == TrialState.PRUNED:
            state = f"PRUNED @{t.user_attrs.get('pruned_at_epoch', '?')}"
        elif t.state == TrialState.FAIL and t.user_attrs.get("error"):
            state = f"FAIL ({t.user_attrs['error'][:40]})"
        else:
            state = t.state.name
        params = space.decode(t.params)
        epochs = len(t.intermediate_values) or "—"
        table.add_row(f"{'★ ' if t.number == best else ''}{t.number}", state, value,
                      format_number(t.user_attrs.get("r")), format_number(t.user_attrs.get("rho")), str(epochs),
                      format_number(t.user_attrs.get("seconds"), ".1f"),
                      *[format_value(params.get(n, "—")) for n in space.searched],
                      style="bold" if t.number == best else ("dim" if t.state != TrialState.COMPLETE else None))
    return table


def format_number(value, fmt: str = ".4f") -> str:
    """``value`` in format ``fmt``; an em dash when it is not a number (a missing trial attribute)."""
    return "—" if value is None or not isinstance(value, (int, float)) else format(value, fmt)


def format_value(value: Any) -> str:
    """A searched value for a table cell or a console line: floats to 4 significant digits, arrays as JSON."""
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return json.dumps(plain_value(value))
    return str(value)
