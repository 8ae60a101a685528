"""The profile ``harness tune`` writes: a ``[tuned]`` table in a user's TOML profile file.

:func:`profile_values` turns a config into the table that resolves back to it
(:func:`harness.registry.load_profile`), :func:`profile_header` writes the comment that says where
it came from, and :func:`write_profile` replaces or appends the table with :mod:`tomlkit`, keeping
every other table and comment of the file, atomically (:func:`harness.io.write_text`). The study
itself is :mod:`harness.tune`.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import math
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .io import write_text
from .search_space import SearchSpace, plain_value

if TYPE_CHECKING:  # pragma: no cover
    import optuna

    from .method import Method, MethodConfig


def profile_values(cls: type[Method], config: MethodConfig, profile_name: str, always=()) -> dict[str, Any]:
    """The TOML table that makes ``load_profile(cls, profile_name)`` give ``config``.

    Args:
        always: fields written even when they equal the default (the searched ones, for the reader).

    Returns:
        ``{field: value}`` in field order: every field that differs from ``cls.Config()``, every
        field in ``always`` and every field the class's own ``profiles[profile_name]`` sets; tuples
        as lists.
    """
    default = dataclasses.asdict(cls.Config())
    values = dataclasses.asdict(config)
    forced = set(cls.profiles.get(profile_name, {})) | set(always)
    return {k: plain_value(v) for k, v in values.items() if k in forced or plain_value(v) != plain_value(default[k])}


def write_profile(path: str | Path, name: str, values: dict[str, Any], comment: str = "") -> None:
    """Write table ``[name]`` = ``values`` into TOML file ``path``, keeping everything else.

    An existing ``[name]`` is replaced in place (comment lines that follow its keys, which TOML
    attaches to it but which describe the next table, are kept); otherwise the table is appended.
    ``comment`` lines go at the top of the table. The file is written atomically and created if
    missing.

    Raises:
        ValueError: the existing file is not valid TOML, or ``[name]`` in it is not a table.
        RuntimeError: the rewritten file would change another table (never expected; nothing is
            written then).
    """
    import tomlkit
    from tomlkit.items import Comment, Whitespace

    path = Path(path)
    old_text = path.read_text(encoding="utf-8") if path.is_file() else ""
    try:
        old = tomllib.loads(old_text)
        doc = tomlkit.parse(old_text)
    except Exception as exc:  # noqa: BLE001 - tomllib and tomlkit raise their own parse errors
        raise ValueError(f"{path}: not valid TOML: {exc}") from exc
    table = tomlkit.table()
    for line in comment.splitlines():
        table.add(tomlkit.comment(line) if line.strip() else tomlkit.nl())
    for key, value in values.items():
        table.add(key, value)
    if name in doc:
        current = doc[name]
        if not isinstance(current, tomlkit.items.Table):
            raise ValueError(f"{path}: {name!r} exists and is not a table")
        trail = []
        for key, item in reversed(current.value.body):
            if key is None and isinstance(item, (Comment, Whitespace)):
                trail.append(item)
            else:
                break
        while trail and isinstance(trail[-1], Whitespace):  # the leading blank line is re-added below
            trail.pop()
        if trail:
            table.add(tomlkit.nl())
        for item in reversed(trail):
            table.add(item)
        doc[name] = table
        text = tomlkit.dumps(doc)
    else:
        new = tomlkit.document()
        new.add(name, table)
        text = (old_text.rstrip() + "\n\n" if old_text.strip() else "") + tomlkit.dumps(new)
    parsed = tomllib.loads(text)
    expected = {k: v for k, v in old.items() if k != name}
    if {k: v for k, v in parsed.items() if k != name} != expected or parsed.get(name) != values:
        raise RuntimeError(f"{path}: rewriting [{name}] would change other tables; nothing written")
    write_text(path, text)


def profile_header(study_name: str, storage_url: str, best: "optuna.trial.FrozenTrial", n_finished: int,
                   base_profile: str, holdout_fraction: float, seed: int, train_path: Path,
                   overrides: dict[str, Any], space: SearchSpace) -> str:
    """The comment lines at the top of a written ``[tuned]`` table: when, which study and trial,
    its validation r + rho (and the two parts), the hold-out, the base profile, the searched,
    fixed and trial-only (``--set``) values. Lines joined by newlines, without ``#``."""
    when = _dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    lines = [
        f"Written by `harness tune` ({when}): study {study_name} ({storage_url}),",
        f"trial {best.number} of {n_finished} finished: validation r + rho = {best.value:.4f} "
        f"(r {best.user_attrs.get('r', math.nan):.4f}, rho {best.user_attrs.get('rho', math.nan):.4f})",
        f"on a {holdout_fraction:g} hold-out of {train_path} (seed {seed});",
        f"base profile [{base_profile}] + searched {', '.join(space.searched)}.",
    ]
    if space.fixed:
        lines.append(f"Fixed by the search space: {', '.join(f'{k} = {json.dumps(plain_value(v))}' for k, v in space.fixed.items())}.")
    if overrides:
        lines.append(f"Trials ran with --set {', '.join(f'{k}={json.dumps(plain_value(v))}' for k, v in overrides.items())} "
                     "(not part of this profile).")
    return "\n".join(lines)
