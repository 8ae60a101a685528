"""``harness methods list`` and ``harness methods new``: the registry's methods, and a new plug-in
package (the work is in :mod:`harness.registry` and :mod:`harness.scaffold`)."""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from .. import registry
from .errors import friendly_errors
from .options import CONFIG_DIR_OPTION, PATH


@click.group("methods", short_help="List registered methods or scaffold a new plug-in.")
def methods() -> None:
    """List registered methods or scaffold a new plug-in."""


@methods.command("list")
@CONFIG_DIR_OPTION
@friendly_errors
def methods_list(config_dir):
    """Registered methods: name, package, framework, parameter count of the paper profile, profiles
    (shipped and from --config-dir) and a description.

    Read from the [metadata] table of each method's shipped profile file without importing the
    plug-in (no PyTorch or TensorFlow); a method whose file has none is imported. Every method
    needs its own entry point in the harness.methods group to be listed."""
    console = Console()
    table = Table(title="Registered methods")
    for col in ("name", "package", "framework", "parameters", "profiles", "description"):
        table.add_column(col, justify="right" if col == "parameters" else "left")
    broken = []
    for name in registry.names():
        try:  # one plug-in that cannot be described must not hide the others
            info = registry.info(name, config_dir)
        except Exception as exc:  # noqa: BLE001 - reported under the table
            table.add_row(name, "?", "?", "error", "", "")
            broken.append(f"{name}: {type(exc).__name__}: {exc.args[0] if isinstance(exc, KeyError) else exc}")
            continue
        params = "—" if info.num_parameters is None else f"{info.num_parameters:,}"
        framework = escape(info.framework)
        if registry.framework_installed(info.framework) is False:
            framework = f"[red]{framework} (not installed)[/]"
            broken.append(f"{name}: needs {info.framework} ({registry.FRAMEWORK_MODULES[info.framework]}), "
                          "which is not installed here")
        table.add_row(name, info.package, framework, params, ", ".join(info.profiles), info.description)
    console.print(table)
    for line in broken:
        console.print(f"[red]{escape(line)}")


@methods.command("new")
@click.argument("name")
@click.option("--dir", "parent", type=PATH, default=Path("."), show_default=True, help="Where to create the package.")
@friendly_errors
def methods_new(name, parent):
    """Scaffold a plug-in package harness-NAME that registers through the entry point."""
    from ..scaffold import scaffold

    root = scaffold(name, parent)
    Console().print(f"created {root}\nnext: pip install -e {root} && harness methods list && pytest {root}/tests")
