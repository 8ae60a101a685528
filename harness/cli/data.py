"""``harness data check`` and ``harness data fetch``: validate and summarise a data directory, and
download the official files (the work is in :mod:`harness.data.check` and :mod:`harness.data.fetch`)."""

from __future__ import annotations

import json
from pathlib import Path

import click
from rich.console import Console

from ..data import DataError, resolve_data_dir
from ..data.check import check_data_dir, render_check
from ..data.readers import MAX_LENGTH
from ..data.simulate import default_data_dir


class DataCheckError(click.ClickException):
    """A :class:`~harness.data.DataError` (or a failed download) surfaced by ``harness data``
    (exit code 2)."""

    exit_code = 2


@click.group("data", short_help="Inspect and validate data directories.")
def data_group() -> None:
    """Inspect and validate data directories."""


@data_group.command("check")
@click.option("--data", "data_dir", type=click.Path(path_type=Path), default=None,
              help="Data directory in the official layout (default: $HARNESS_DATA, else the simulated default).")
@click.option("--train", type=click.Path(path_type=Path), default=None,
              help="Training file (default: train_sequences.txt in the data directory, when present).")
@click.option("--snv-pairs", type=click.Path(path_type=Path), default=None,
              help="SNV pair CSV (alt_pos, ref_pos) used when the official all_SNVs_seqs.csv is absent.")
@click.option("--skip-bad-rows", is_flag=True, help="Drop bad training rows and count them instead of failing.")
@click.option("--max-length", type=click.IntRange(min=1), default=MAX_LENGTH, show_default=True,
              help="Longest training sequence accepted, in nt; a longer one is a bad row.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def check_command(data_dir: Path | None, train: Path | None, snv_pairs: Path | None, skip_bad_rows: bool,
                  max_length: int, as_json: bool) -> None:
    """Validate a data directory (and a training file) and summarise it; exit code 2 on bad data."""
    if data_dir is None:
        data_dir = resolve_data_dir(None) or default_data_dir()
    try:
        summary = check_data_dir(data_dir, train=train, skip_bad_rows=skip_bad_rows, snv_pairs=snv_pairs,
                                 max_length=max_length)
    except DataError as exc:
        raise DataCheckError(str(exc)) from exc
    if as_json:
        click.echo(json.dumps(summary, indent=2))
    else:
        Console().print(render_check(summary))


@data_group.command("fetch")
@click.argument("dataset", type=click.Choice(["dream2022"]))
@click.option("--to", "to", type=click.Path(path_type=Path), default=None,
              help="Data directory to fill (default: $HARNESS_DATA, else <cache>/dream2022).")
@click.option("--only", multiple=True, help="Fetch just this file (repeatable), e.g. --only train_sequences.txt.")
@click.option("--base-url", default=None, help="A mirror holding the same file names (replaces the Zenodo URLs).")
def fetch_command(dataset: str, to: Path | None, only: tuple[str, ...], base_url: str | None) -> None:
    """Download the official files (resumable, checksum-verified) into the official layout."""
    from ..data.fetch import FetchError, fetch
    from ..data.simulate import cache_root

    to = to or resolve_data_dir(None) or cache_root() / dataset
    try:
        fetch(dataset, to, base_url=base_url, only=only)
    except FetchError as exc:
        raise DataCheckError(str(exc)) from exc
    click.echo(f"{dataset} files in {to}; check them with: harness data check --data {to}")
