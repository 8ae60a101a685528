"""Method registry: built-ins and third-party plug-ins, found through one entry-point group.

A module registers its methods with the :func:`register` decorator. A package makes them
discoverable by naming the module in the ``harness.methods`` entry-point group of its
``pyproject.toml``; the harness imports every module of that group on first use. The project's
own baselines and team plug-ins are registered the same way, so the core never imports them.
"""

from __future__ import annotations

import importlib.metadata as md
import tomllib
import warnings
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from .method import Method, MethodConfig

ENTRY_POINT_GROUP = "harness.methods"
_REGISTRY: dict[str, type[Method]] = {}
_SOURCES: dict[str, str] = {}
#: entry-point name -> why it failed to load (a broken plug-in must not take the others down).
_BROKEN: dict[str, str] = {}
_LOADED = False
#: the repository's ``configs/`` directory (present in a source checkout / editable install).
CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"
#: tables of ``configs/<method>.toml`` that are not profiles (``[search_space]``: ``harness tune``).
RESERVED_TABLES = frozenset({"search_space"})


def register(name: str):
    """Class decorator: register a :class:`Method` subclass under ``name``.

    Raises:
        TypeError: the class is not a Method subclass.
        ValueError: another class already holds ``name``.
    """

    def deco(cls: type[Method]) -> type[Method]:
        if not (isinstance(cls, type) and issubclass(cls, Method)):
            raise TypeError(f"register({name!r}): {cls!r} is not a harness.method.Method subclass")
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ValueError(f"method name {name!r} is already registered by {_REGISTRY[name].__module__}")
        cls.name = name
        _REGISTRY[name] = cls
        _SOURCES.setdefault(name, cls.__module__.split(".")[0])
        return cls

    return deco


def _entry_points() -> list[md.EntryPoint]:
    return list(md.entry_points(group=ENTRY_POINT_GROUP))


def _load(ep: md.EntryPoint) -> None:
    """Import one entry point's module (its ``@register`` decorators run) and record its source."""
    if ep.name in _BROKEN:
        return
    before = set(_REGISTRY)
    try:
        obj = ep.load()
    except Exception as exc:  # noqa: BLE001 - any import failure of a plug-in is reported, not raised
        _BROKEN[ep.name] = f"{ep.value}: {type(exc).__name__}: {exc}"
        warnings.warn(f"method plug-in {ep.name!r} failed to load ({_BROKEN[ep.name]})", stacklevel=3)
        return
    if isinstance(obj, type) and issubclass(obj, Method) and obj.name not in _REGISTRY:
        register(ep.name)(obj)
    dist = ep.dist.name if ep.dist is not None else ep.value.split(".")[0]
    for new in set(_REGISTRY) - before:
        _SOURCES[new] = dist


def _load_entry_points() -> None:
    global _LOADED
    if _LOADED:
        return
    _LOADED = True
    for ep in _entry_points():
        _load(ep)


def names() -> list[str]:
    """Every method name: registered classes and declared entry points, without importing any
    plug-in (``harness methods list`` imports them; this does not)."""
    return sorted(set(_REGISTRY) | {ep.name for ep in _entry_points()})


def available() -> dict[str, type[Method]]:
    """All registered methods, name -> class (every entry point imported on the first call)."""
    _load_entry_points()
    return dict(sorted(_REGISTRY.items()))


def source_of(name: str) -> str:
    """The distribution (package) a method comes from."""
    if name not in _SOURCES:
        _load_entry_points()
    return _SOURCES.get(name, "?")


def get(name: str) -> type[Method]:
    """The class registered as ``name``.

    Lazy: only the entry point named ``name`` is imported (``get("kmer-ridge")`` imports neither
    torch nor TensorFlow); every entry point is imported only when no entry point has that name
    (a module may register names other than its entry point's).

    Raises:
        KeyError: no such method (the message lists the registered names), or its plug-in failed
            to import (the message gives the import error).
    """
    if name not in _REGISTRY:
        matching = [ep for ep in _entry_points() if ep.name == name]
        for ep in matching:
            _load(ep)
        if name not in _REGISTRY and not matching:
            _load_entry_points()
    if name not in _REGISTRY and name in _BROKEN:
        raise KeyError(f"method {name!r} is installed but failed to load: {_BROKEN[name]}")
    if name not in _REGISTRY:
        raise KeyError(f"unknown method {name!r}; registered: {', '.join(names()) or 'none'}")
    return _REGISTRY[name]


@dataclass
class Profile:
    """A resolved configuration: the config object, and where its values came from."""

    config: MethodConfig
    name: str
    source: str


def config_file(cls: type[Method], config_dir: Path | None = None) -> Path:
    """``<config_dir>/<name>.toml``, the method's profile file (default dir :data:`CONFIG_DIR`);
    it need not exist."""
    return (CONFIG_DIR if config_dir is None else Path(config_dir)) / f"{cls.name}.toml"


def profile_names(cls: type[Method], config_dir: Path | None = None) -> list[str]:
    """The named profiles of a method: class attribute ``profiles`` and the tables of
    :func:`config_file` except :data:`RESERVED_TABLES`, sorted."""
    return sorted((set(cls.profiles) | set(read_tables(config_file(cls, config_dir)))) - RESERVED_TABLES)


#: profiles every method has: its ``Config`` defaults, which are the reference (paper) setting.
IMPLICIT_PROFILES = ("default", "paper")


class ProfileError(ValueError):
    """An unknown profile, or a profile whose values do not fit the method's ``Config``; the
    message names the file, the table and the key."""


def load_profile(method: str | type[Method], profile: str = "default", config_dir: Path | None = None) -> Profile:
    """Build a method's config for a named profile.

    Resolution: the ``Config`` defaults (the reference/paper setting), updated by the class's
    ``profiles[profile]``, updated by table ``[profile]`` of ``<config_dir>/<method>.toml``
    (default :data:`CONFIG_DIR`). ``"default"`` and ``"paper"`` always exist (the defaults where
    nothing declares them); any other name must be declared in one of the two places.

    Values are type-checked against the ``Config`` dataclass's annotations with pydantic in strict
    mode (as JSON: integers are accepted for floats and lists for tuples; ``"300"`` is not a
    float and ``"no"`` is not a bool).

    Raises:
        KeyError: unknown method.
        ProfileError (a ValueError): ``profile`` is declared nowhere (the message lists the
            method's profiles), names a reserved table (:data:`RESERVED_TABLES`), is not a TOML
            table, sets a key the config does not have, or gives a value of the wrong type (file,
            table and key named); the TOML file is malformed.
    """
    cls = get(method) if isinstance(method, str) else method
    path = config_file(cls, config_dir)
    if profile in RESERVED_TABLES:
        raise ProfileError(f"{profile!r} is not a profile: table [{profile}] of {path} is reserved for `harness tune`")
    layers: list[tuple[str, dict[str, Any]]] = []
    if profile in cls.profiles:
        layers.append((f"{cls.__module__}.{cls.__name__}.profiles[{profile!r}]", cls.profiles[profile]))
    tables = read_tables(path)
    if profile in tables:
        if not isinstance(tables[profile], dict):
            raise ProfileError(f"{path}: {profile} must be a table ([{profile}]), got a {type(tables[profile]).__name__}")
        layers.append((f"{path} [{profile}]", tables[profile]))
    if not layers and profile not in IMPLICIT_PROFILES:
        names = sorted(set(profile_names(cls, config_dir)) | set(IMPLICIT_PROFILES))
        raise ProfileError(f"{cls.name} has no profile {profile!r} (not in {path} nor in {cls.__name__}.profiles); "
                           f"its profiles: {', '.join(names)}")
    known = {f.name for f in fields(cls.Config)}
    values: dict[str, Any] = {}
    for where, layer in layers:
        unknown = set(layer) - known
        if unknown:
            raise ProfileError(f"{where}: unknown keys {sorted(unknown)}; {cls.Config.__name__} has {sorted(known)}")
        _check_types(cls, layer, where)
        values.update(layer)
    source = "; ".join(w for w, _ in layers) or "defaults"
    return Profile(cls.Config(**values), profile, source)


def _check_types(cls: type[Method], values: dict[str, Any], where: str) -> None:
    """Validate ``values`` against ``cls.Config``'s field types (pydantic, strict JSON rules).

    Raises:
        ProfileError: one line per bad key, ``<where> <key>: <problem> (got <value>)``.
    """
    import json

    import pydantic

    try:
        adapter = pydantic.TypeAdapter(cls.Config)
    except pydantic.PydanticUserError:  # a Config pydantic cannot describe: the dataclass checks itself
        return
    try:
        adapter.validate_json(json.dumps(values, default=str), strict=True)
    except pydantic.ValidationError as exc:
        problems = []
        for err in exc.errors():
            if not err["loc"] or err["loc"][0] not in values:  # a default of another field: not this profile's doing
                continue
            key = ".".join(str(p) for p in err["loc"])
            problems.append(f"{where} {key}: {err['msg'].lower()} (got {values[err['loc'][0]]!r})")
        if problems:
            raise ProfileError("; ".join(problems)) from None


def load_search_space(method: str | type[Method], config_dir: Path | None = None):
    """A method's ``harness tune`` search space, validated.

    Resolution: the class attribute ``search_space`` (``{field: entry}``), updated entry by entry by
    table ``[search_space]`` of ``<config_dir>/<method>.toml`` (default :data:`CONFIG_DIR`). Entry
    format and checks: :func:`harness.tune.parse_search_space`.

    Returns:
        A :class:`harness.tune.SearchSpace` (empty when neither source declares anything).

    Raises:
        KeyError: unknown method.
        ValueError: the TOML file is malformed, ``[search_space]`` is not a table, or an entry is
            invalid: a key that is not a field of the method's ``Config`` dataclass, an unknown
            entry key, bad bounds/choices. The message names the file (or class) and the key.
    """
    from .tune import parse_search_space

    cls = get(method) if isinstance(method, str) else method
    where = f"{cls.__module__}.{cls.__name__}.search_space"
    entries: dict[str, tuple[Any, str]] = {name: (spec, where) for name, spec in cls.search_space.items()}
    path = config_file(cls, config_dir)
    table = read_tables(path).get("search_space", {})
    if not isinstance(table, dict):
        raise ValueError(f"{path}: search_space must be a table ([search_space]), got {type(table).__name__}")
    entries.update({name: (spec, f"{path} [search_space]") for name, spec in table.items()})
    return parse_search_space(cls.Config, entries)


def read_tables(path: Path) -> dict[str, Any]:
    """The tables of TOML file ``path`` (``{}`` when it does not exist), reserved ones included.

    Raises:
        ValueError: the file is malformed (the message names it).
    """
    if not path.is_file():
        return {}
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path}: {exc}") from exc
