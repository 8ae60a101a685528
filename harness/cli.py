"""The ``harness`` command line."""

from __future__ import annotations

import click


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="dream-harness")
def main() -> None:
    """Benchmark, ensemble and export sequence-to-expression models of the DREAM 2022 challenge."""
