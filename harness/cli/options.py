"""Parameter types and options that several commands share."""

from __future__ import annotations

from pathlib import Path

import click

from ..registry import CONFIG_ENV

#: a path that need not exist (an output, or a directory resolved later).
PATH = click.Path(path_type=Path)
#: an existing file.
EXISTING = click.Path(exists=True, dir_okay=False, path_type=Path)
#: an existing directory (a run directory).
RUN_DIR = click.Path(exists=True, file_okay=False, path_type=Path)
#: ``--config-dir``: the user's profile directory (harness.registry), default $HARNESS_CONFIG, else none.
CONFIG_DIR_OPTION = click.option(
    "--config-dir", type=click.Path(exists=True, file_okay=False, path_type=Path), envvar=CONFIG_ENV,
    show_envvar=True, default=None,
    help="Your profile directory: tables of DIR/<method>.toml are applied over the profiles the method's package "
         "ships (<package>/configs/<method>.toml); `harness tune` writes [tuned] there.")

#: ``--logger``: where each fit's per-epoch metrics go besides fold<k>/logs/metrics.csv (harness.tracking);
#: repeatable. The names are harness.tracking.LOGGERS (not imported here: the CLI starts without it).
LOGGER_OPTION = click.option(
    "--logger", "loggers", type=click.Choice(["csv", "tensorboard", "mlflow"]), multiple=True, default=("csv",),
    show_default=True,
    help="Where each fit's per-epoch (per-boosting-round) metrics go; repeatable. csv (always): "
         "methods/<m>/fold<k>/logs/metrics.csv; tensorboard: .../logs/tensorboard/ event files; mlflow: "
         "$MLFLOW_TRACKING_URI, else a local store .../logs/mlflow.db. tensorboard and mlflow are optional "
         "packages (pip install 'dream-harness[tracking]').")
