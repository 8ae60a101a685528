"""``harness leaderboard``: methods x test categories of one or more runs, ranked as the challenge
ranked (the work is in :mod:`harness.leaderboard`)."""

from __future__ import annotations

import io
from pathlib import Path

import click
from rich.console import Console

from ..data import resolve_data_dir
from ..io import write_text
from ..leaderboard import FORMATS, Leaderboard, make_leaderboard, print_table
from ..rundir import RunDir
from ..scoring import BOARDS
from ..scoring.bootstrap import DEFAULT_RESAMPLES
from .errors import friendly_errors
from .options import EXISTING, PATH, RUN_DIR


@click.command("leaderboard", short_help="Rank the methods of runs per test category.")
@click.argument("run_dirs", nargs=-1, type=RUN_DIR)
@click.option("--board", type=click.Choice(BOARDS), default="private", show_default=True)
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write to FILE (atomically) instead of standard output.")
@click.option("--reference", is_flag=False, flag_value="", default=None, metavar="[DIR]",
              help="Add the published challenge entries (default DIR: <data dir>/reference_predictions). "
                   "Put it after the run directories, or write --reference=DIR.")
@click.option("--data", type=PATH, default=None,
              help="Data directory: the test set when no run directory is given (default: $HARNESS_DATA), "
                   "else the one to re-score the runs with instead of the path in their run.json.")
@click.option("--snv-pairs", type=EXISTING, default=None,
              help="SNV pair CSV used with --data when the official one is absent (replaces the runs' too).")
@click.option("--title", default="Leaderboard", show_default=True)
@click.option("--bootstrap", "n_bootstrap", type=click.IntRange(min=0), default=DEFAULT_RESAMPLES, show_default=True,
              metavar="N", help="Resamples of each category's members (sequences; pairs for pair categories) "
                                "for the 95 % intervals and the paired difference to #1; 0 disables.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True, help="Seed of the resamples.")
@friendly_errors
def leaderboard_cmd(run_dirs, board, fmt, out, reference, data, snv_pairs, title, n_bootstrap, seed):
    """Methods × test categories (Pearson r, Spearman ρ, n) and the two scores of one or more runs,
    ranked by the mean rank of the two scores as the challenge ranked, with bootstrap intervals."""
    run_dirs = list(run_dirs)
    if reference and RunDir(reference).run_json.is_file():
        run_dirs.append(Path(reference))  # `--reference RUN_DIR` took the run directory as its value
        reference = ""
    if not run_dirs:  # $HARNESS_DATA stands in for --data only without runs: a run knows its own test set
        data = resolve_data_dir(str(data) if data else None)
    if not run_dirs and reference is None:
        raise click.UsageError("give at least one RUN_DIR, or --reference with --data")
    result = make_leaderboard(run_dirs, board, fmt, reference, data, snv_pairs, title, n_bootstrap, seed)
    if isinstance(result, Leaderboard):
        if out:
            buf = io.StringIO()
            print_table(result, Console(file=buf, width=250), title)
            write_text(out, buf.getvalue())
            click.echo(f"wrote {out}")
        else:
            print_table(result, Console(), title)
        return
    if out:
        write_text(out, result)
        click.echo(f"wrote {out}")
    else:
        click.echo(result, nl=False)
