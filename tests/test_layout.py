"""The package's import structure: no import circle among harness modules, the core never
imports a plug-in package (plug-ins depend on the core, never the reverse), and the command line
is one layer on top: only ``harness/cli/`` uses click, and nothing else imports ``harness.cli``."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "harness"
CLI = PACKAGE / "cli"


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, name: str | None = None) -> set[str]:
    """Every module named by an import anywhere in the file (function-level imports too); ``name``:
    the file's module name (default: from its place in the repository)."""
    name = name or _module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            out.add(target)
            out |= {f"{target}.{a.name}" for a in node.names}  # `from . import registry`
    return out


def _graph() -> dict[str, set[str]]:
    files = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {}
    for name, path in files.items():
        # a module imports itself only through its own package's __init__, which is not an edge here
        graph[name] = {m for m in _imports(path) if m in files and m != name and not name.startswith(m + ".")}
    return graph


def test_no_import_circle():
    graph = _graph()
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycle = stack[stack.index(nxt):] + [nxt]
                raise AssertionError("import circle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)


def test_core_never_imports_a_plug_in():
    for path in PACKAGE.rglob("*.py"):
        bad = {m for m in _imports(path) if m.split(".")[0] in ("submissions", "baselines")}
        assert not bad, f"{path.relative_to(ROOT)} imports plug-in modules {sorted(bad)}"


def _domain_modules() -> list[Path]:
    """Every module of the harness outside the command-line package harness/cli/."""
    return [p for p in PACKAGE.rglob("*.py") if not p.is_relative_to(CLI)]


def test_cli_package_exists_and_holds_the_commands():
    assert (CLI / "__init__.py").is_file()
    for old in ("cli.py", "cli_predict.py", "cli_errors.py"):
        assert not (PACKAGE / old).exists(), f"harness/{old}: the commands live in harness/cli/"
    assert any("click" in {m.split(".")[0] for m in _imports(p)} for p in CLI.glob("*.py"))


def test_domain_modules_do_not_use_click():
    """Click commands live in harness/cli/ only; a domain module is called, it does not parse argv."""
    for path in _domain_modules():
        bad = {m for m in _imports(path) if m.split(".")[0] == "click"}
        assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}: move the command to harness/cli/"


def test_nothing_outside_the_cli_imports_it():
    """harness.cli is the top layer: no domain module and no plug-in imports it (a plug-in raises
    ValueError / DataError, which the commands turn into one-line messages)."""
    plug_ins = [*(ROOT / "baselines").rglob("*.py"), *(ROOT / "submissions").rglob("*.py")]
    for path in [*_domain_modules(), *plug_ins]:
        if path.is_relative_to(PACKAGE):
            modules = _imports(path)
        else:  # a plug-in: absolute imports only
            modules = {m for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
                       for m in ([a.name for a in node.names] if isinstance(node, ast.Import) else
                                 [node.module or ""] if isinstance(node, ast.ImportFrom) else [])}
        bad = {m for m in modules if m == "harness.cli" or m.startswith("harness.cli.")}
        assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"


def test_layout_rules_catch_a_violation(tmp_path):
    """The CLI rules above see function-level and relative imports (what a violation looks like)."""
    probe = tmp_path / "probe.py"
    probe.write_text("def f():\n    import click\n    from ..cli.errors import friendly_errors\n")
    found = _imports(probe, "harness.data.probe")
    assert {"click", "harness.cli.errors", "harness.cli.errors.friendly_errors"} <= found
