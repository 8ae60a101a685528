"""``harness score``: score a prediction file with the official metric (the work is in
:mod:`harness.scoring`)."""

from __future__ import annotations

import json

import click
import numpy as np
from rich.console import Console

from ..data import load_test_set, resolve_data_dir
from ..report import board_table
from ..scoring import board_ids, parse_predictions
from ..scoring import score as score_board
from .errors import friendly_errors
from .options import EXISTING, PATH


@click.command("score", short_help="Score a prediction file with the official metric.")
@click.argument("pred_file", type=EXISTING)
@click.option("--data", type=PATH, default=None, help="Data directory (default: $HARNESS_DATA).")
@click.option("--board", "boards", type=click.Choice(["public", "private", "full"]), multiple=True,
              help="Board(s) to score (repeatable; default: every board of the data, or the public board "
                   "for a file holding exactly the public ids).")
@click.option("--snv-pairs", type=EXISTING, default=None, help="SNV pair CSV used when the official one is absent.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
@friendly_errors
def score(pred_file, data, boards, snv_pairs, as_json):
    """Score a prediction file (challenge JSON or sequence<TAB>prediction) with the official metric.

    Exits 1, naming the test indices, when a board to score lacks a prediction or has a NaN/inf
    one. A board that cannot score every category (no SNV pairs: give --snv-pairs) is scored but
    flagged partial: a warning on stderr and "partial": true with "missing" in --json."""
    data_dir = resolve_data_dir(data)
    if data_dir is None:
        raise click.UsageError("give --data DIR or set HARNESS_DATA")
    test = load_test_set(data_dir, snv_pairs)
    parsed = parse_predictions(pred_file, test)
    parsed.raise_problems()
    available = [b for b in ("public", "private", "full") if b == "full" or test.public_ids is not None]
    if boards:
        wanted = list(dict.fromkeys(boards))
        absent = [b for b in wanted if b not in available]
        if absent:
            raise click.ClickException(f"{data_dir}: no public_leaderboard_ids/, so board(s) {', '.join(absent)} "
                                       "cannot be scored")
    elif test.public_ids is not None and np.array_equal(np.flatnonzero(parsed.given), test.public_ids):
        wanted = ["public"]
        click.echo(f"note: {pred_file} holds exactly the {len(test.public_ids):,} public-leaderboard ids: "
                   "scored on the public board only", err=True)
    else:
        wanted = available
    refusals = [f"  {b} board: {why}" for b in wanted if (why := parsed.coverage(board_ids(test, b)))]
    if refusals:
        raise click.ClickException("\n".join([f"{pred_file}: cannot score every board asked for "
                                               f"({parsed.n_values:,} of {len(test):,} test indices given)"]
                                              + refusals))
    results = {b: score_board(parsed.values, test, b) for b in wanted}
    for b, r in results.items():
        if r.partial:
            why = f" (SNV pairs: {r.snv_source}; give --snv-pairs FILE)" if "SNVs" in r.missing else ""
            click.echo(f"warning: PARTIAL {b} board: cannot score {', '.join(r.missing)}{why}; "
                       "they count 0 while the sums are still divided by 4.65, so this is not the challenge's score",
                       err=True)
    if as_json:
        click.echo(json.dumps({"partial": any(r.partial for r in results.values()),
                               "boards": {b: r.to_dict() for b, r in results.items()}}, indent=2))
    else:
        for b, r in results.items():
            Console().print(board_table(r, f"{pred_file.name} · {b} board"))
