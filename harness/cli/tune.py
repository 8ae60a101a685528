"""``harness tune``: an Optuna search over a method's declared hyperparameter space (the work is in
:mod:`harness.tune`)."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import click
from rich.console import Console

from ..data import resolve_data_dir
from ..registry import CONFIG_ENV
from ..tune import DEFAULT_CONFIG_DIR, DEFAULT_PROFILE_NAME, TuneSpec, tune
from .errors import friendly_errors


def _parse_sets(values: tuple[str, ...]) -> dict[str, Any]:
    """``--set KEY=VALUE`` items as ``{key: value}``: VALUE in TOML syntax, else the plain string."""
    out = {}
    for item in values:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise click.BadParameter(f"{item!r}: expected KEY=VALUE", param_hint="--set")
        try:
            out[key] = tomllib.loads(f"v = {raw.strip()}")["v"]
        except tomllib.TOMLDecodeError:
            out[key] = raw.strip()
    return out


@click.command("tune", short_help="Search a method's hyperparameters with Optuna.")
@click.option("--method", "method", required=True, help="Registered method name (see `harness methods list`).")
@click.option("--trials", type=click.IntRange(min=1), required=True,
              help="Finished trials the study should have; a resumed study counts the ones it has.")
@click.option("--storage", default=None,
              help="Optuna storage URL, e.g. sqlite:///runs/tune/kmer.db ('memory': not resumable) "
                   "[default: sqlite:///runs/tune/<study-name>.db].")
@click.option("--study-name", default=None, help="Study name [default: <method>-<profile>-<train stem>-s<seed>].")
@click.option("--profile", default="cpu", show_default=True, help="Base profile the sampled values are applied on top of.")
@click.option("--profile-name", default=DEFAULT_PROFILE_NAME, show_default=True,
              help="Table the best config is written to.")
@click.option("--data", type=click.Path(path_type=Path), default=None,
              help="Data directory (default: $HARNESS_DATA, else simulated data); its train_sequences.txt is the "
                   "default training file.")
@click.option("--train", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Training file (default: DATA/train_sequences.txt).")
@click.option("--holdout-fraction", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.1,
              show_default=True, help="Share of the training rows held out for the objective.")
@click.option("--seed", type=int, default=0, show_default=True, help="Split, method and sampler seed.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda", "tpu", "mps"]), default="auto", show_default=True)
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Start no new trial after this many seconds (the running one finishes).")
@click.option("--pruner", type=click.Choice(["median", "none"]), default="median", show_default=True,
              help="Median pruning on per-epoch validation r + ρ (methods that report epochs).")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
              help="Trial-only config value (TOML syntax), e.g. --set max_train_seconds=60; repeatable; not "
                   "written to the profile.")
@click.option("--base-trial/--no-base-trial", default=True, show_default=True,
              help="Evaluate the base profile's own values first (new studies).")
@click.option("--config-dir", type=click.Path(file_okay=False, path_type=Path), envvar=CONFIG_ENV,
              show_envvar=True, default=None,
              help=f"Your profile directory: DIR/<method>.toml is layered over the shipped profiles and search space, "
                   f"and [tuned] is written there [default: {DEFAULT_CONFIG_DIR}].")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="TOML file the profile is written to [default: CONFIG_DIR/<method>.toml].")
@click.option("--skip-bad-rows", is_flag=True, help="Drop bad training rows and report counts instead of failing.")
@click.option("--logger", "loggers", type=click.Choice(["csv", "tensorboard", "mlflow"]), multiple=True,
              help="Keep each trial's per-epoch metrics in runs/tune/<study>/trial<N>/logs/ (csv: metrics.csv, "
                   "tensorboard, mlflow: as `harness run --logger`); repeatable. Default: none (trials keep no "
                   "logs and no work directory).")
@friendly_errors
def tune_cmd(method, trials, storage, study_name, profile, profile_name, data, train, holdout_fraction, seed, device,
             timeout, pruner, sets, base_trial, config_dir, out, skip_bad_rows, loggers):
    """Search METHOD's [search_space] with Optuna (objective: hold-out Pearson r + Spearman ρ), resumable
    from --storage, and write the best config as profile [tuned] of CONFIG_DIR/<method>.toml."""
    spec = TuneSpec(method, trials, resolve_data_dir(data), train, profile, profile_name, storage, study_name, seed,
                    device, timeout, out, holdout_fraction, _parse_sets(sets), pruner, base_trial,
                    config_dir=config_dir, skip_bad_rows=skip_bad_rows, loggers=tuple(loggers))
    tune(spec, Console())
