"""The ``harness`` command line (click): every command of the harness, one module per family.

- ``run``: :mod:`harness.cli.run` (the work: :mod:`harness.runner`);
- ``score``: :mod:`harness.cli.score` (:mod:`harness.scoring`);
- ``methods list`` / ``methods new``: :mod:`harness.cli.methods` (:mod:`harness.registry`,
  :mod:`harness.scaffold`);
- ``tune``: :mod:`harness.cli.tune` (:mod:`harness.tune`);
- ``ensemble``: :mod:`harness.cli.ensemble` (:mod:`harness.ensemble`);
- ``leaderboard``: :mod:`harness.cli.leaderboard` (:mod:`harness.leaderboard`);
- ``export``, ``validate-submission``: :mod:`harness.cli.export` (:mod:`harness.export`);
- ``data check`` / ``data fetch``: :mod:`harness.cli.data` (:mod:`harness.data.check`,
  :mod:`harness.data.fetch`);
- ``predict``, ``variant-effect``: :mod:`harness.cli.predict` (:mod:`harness.predict`).

Shared pieces: :mod:`harness.cli.errors` (expected errors as one line, exit 1) and
:mod:`harness.cli.options`. No module outside this package imports click or this package
(``tests/test_layout.py``).

Commands load lazily (the pattern of click's documentation, "Lazily Loading Subcommands"): a
command's module, and the domain modules it imports (NumPy, pandas, ...), are imported only when
that command runs or shows its own help. ``harness --help`` lists the commands from
:data:`COMMANDS` without importing any of them; ``tests/test_cli.py`` checks that each line there
is the command's own ``short_help``.
"""

from __future__ import annotations

import importlib
from typing import NamedTuple

import click


class Entry(NamedTuple):
    """Where a command lives (``harness.cli.<module>.<attribute>``) and the one line ``harness
    --help`` shows for it (the command's ``short_help``)."""

    module: str
    attribute: str
    help: str


#: every command of ``harness``: name -> :class:`Entry`.
COMMANDS: dict[str, Entry] = {
    "data": Entry("data", "data_group", "Inspect and validate data directories."),
    "ensemble": Entry("ensemble", "ensemble_cmd", "Stack a K-fold run's out-of-fold predictions."),
    "export": Entry("export", "export_cmd", "Write a method's test predictions as a submission."),
    "leaderboard": Entry("leaderboard", "leaderboard_cmd", "Rank the methods of runs per test category."),
    "methods": Entry("methods", "methods", "List registered methods or scaffold a new plug-in."),
    "predict": Entry("predict", "predict_cmd", "Predict sequences with a finished run."),
    "run": Entry("run", "run", "Fit, predict and score methods over a split."),
    "score": Entry("score", "score", "Score a prediction file with the official metric."),
    "tune": Entry("tune", "tune_cmd", "Search a method's hyperparameters with Optuna."),
    "validate-submission": Entry("export", "validate_cmd", "Check a submission file."),
    "variant-effect": Entry("predict", "variant_effect_cmd", "Predicted effects of sequence variants."),
}


class LazyGroup(click.Group):
    """A click group whose commands are imported on first use, from :data:`COMMANDS`."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(COMMANDS))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in COMMANDS:
            entry = COMMANDS[cmd_name]
            command = getattr(importlib.import_module(f"{__name__}.{entry.module}"), entry.attribute)
            if command.name != cmd_name:
                raise RuntimeError(f"harness.cli.COMMANDS[{cmd_name!r}] names the command {command.name!r}")
            self.add_command(command)
        return super().get_command(ctx, cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The command list of ``harness --help``, as click lays it out, from :data:`COMMANDS`
        (nothing imported)."""
        names = self.list_commands(ctx)
        limit = formatter.width - 6 - max(len(name) for name in names)
        rows = [(name, COMMANDS[name].help if name in COMMANDS
                 else self.get_command(ctx, name).get_short_help_str(limit)) for name in names]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="dream-harness")
def main() -> None:
    """Benchmark, ensemble and export sequence-to-expression models of the DREAM 2022 challenge."""
