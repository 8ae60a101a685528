"""``harness ensemble``: stack a K-fold run's out-of-fold predictions (the work is in
:mod:`harness.ensemble`)."""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console

from ..ensemble import STACKERS, category_table, ensemble_run, result_table
from .errors import friendly_errors
from .options import RUN_DIR


@click.command("ensemble", short_help="Stack a K-fold run's out-of-fold predictions.")
@click.argument("run_dir", type=RUN_DIR)
@click.option("--stacker", type=click.Choice(STACKERS), default="auto", show_default=True,
              help="Level-2 model: auto (the best of lightgbm, linear, mean and lightgbm-plain on the criterion), "
                   "LightGBM residual on a non-negative linear blend, non-negative linear, mean of z-scored "
                   "predictions, or plain LightGBM.")
@click.option("--methods", default=None, help="Comma-separated members (default: every finished method of the run).")
@click.option("--seq-features", is_flag=True, help="Add GC content and sequence length to the stacker's features.")
@click.option("--length-weights/--no-length-weights", default=True, show_default=True,
              help="Weight the training rows to the test set's sequence lengths in the stackers' fits and the "
                   "selection criterion (rows of lengths no test sequence has get weight 0).")
@friendly_errors
def ensemble_cmd(run_dir: Path, stacker: str, methods: str | None, seq_features: bool, length_weights: bool) -> None:
    """Stack the out-of-fold predictions of a K-fold run into methods/ensemble/ (never worse than the best
    member on the selection criterion: it falls back to that member otherwise), and show per test
    category where the ensemble gains and loses against each member."""
    result = ensemble_run(run_dir, stacker, methods, seq_features, match_test_lengths=length_weights)
    console = Console()
    console.print(result_table(result))
    console.print(category_table(result, "private" if "private" in result.boards else next(iter(result.boards))))
