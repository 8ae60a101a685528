"""``harness export`` and ``harness validate-submission``: a run's test predictions as a challenge
submission, and checking one (the work is in :mod:`harness.export`)."""

from __future__ import annotations

from pathlib import Path

import click

from ..data import load_test_set, resolve_data_dir
from ..export import FORMATS, export_submission, validate_submission
from ..rundir import read_run_json
from .errors import friendly_errors
from .options import PATH, RUN_DIR


@click.command("export", short_help="Write a method's test predictions as a submission.")
@click.argument("run_dir", type=RUN_DIR)
@click.option("--method", required=True, help="Method name, or 'ensemble' (after `harness ensemble`).")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="json", show_default=True,
              help='json: {"0": value, ..., "71102": value} (the challenge format); tsv: sequence<TAB>prediction.')
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="File to write.")
@click.option("--data", type=PATH, default=None,
              help="Data directory with the test file (TSV; default: the run's data_dir).")
@friendly_errors
def export_cmd(run_dir: Path, method: str, fmt: str, out: Path, data: Path | None) -> None:
    """Write a method's test predictions as a challenge submission (JSON or TSV), then validate it."""
    path = export_submission(run_dir, method, fmt, out, data)
    test = None
    if fmt == "tsv":
        info = read_run_json(run_dir)
        test = load_test_set(data or info["data_dir"])
    check = validate_submission(path, test)
    if not check.ok:  # pragma: no cover - a bug in the exporter
        raise RuntimeError(check.message())
    click.echo(f"wrote {path}: {check.n_values:,} predictions of {method} ({fmt})")


@click.command("validate-submission", short_help="Check a submission file.")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--data", type=PATH, default=None,
              help="Data directory: check public ids and TSV sequence order against it (default: $HARNESS_DATA).")
@friendly_errors
def validate_cmd(file: Path, data: Path | None) -> None:
    """Check a submission file: count, index range, duplicate keys, NaN/inf, non-numeric values and,
    with --data, the public ids and the TSV's sequence order. Exits 1 with the reasons when invalid."""
    data_dir = resolve_data_dir(str(data) if data else None)
    test = load_test_set(data_dir) if data_dir is not None else None
    check = validate_submission(file, test)
    if not check.ok:
        raise click.ClickException(check.message())
    click.echo(check.message())
