"""Method registry: built-ins and third-party plug-ins, found through one entry-point group.

A module registers its methods with the :func:`register` decorator. A package makes them
discoverable by naming the module in the ``harness.methods`` entry-point group of its
``pyproject.toml``; :func:`get` imports only the module of the name asked for, :func:`available`
every module of the group, :func:`names` none, and :func:`info` none where the method ships
``[metadata]`` (see below). The project's own baselines and team plug-ins are registered the same
way, so the core never imports them.

Profiles (named configs) of a method ``NAME`` whose class lives in module ``pkg.mod`` resolve in
layers, each updating the one before (:func:`load_profile`):

1. the ``Config`` dataclass defaults (the reference / paper setting);
2. the class attribute ``profiles[PROFILE]``;
3. table ``[PROFILE]`` of the *shipped* file ``pkg/configs/NAME.toml``: package data next to the
   module (:data:`SHIPPED_DIR`), read with :mod:`importlib.resources`, so a wheel install keeps
   it and a third-party plug-in package ships its own the same way, with no registration beyond
   its entry point (it lists ``configs/*.toml`` in its package data);
4. table ``[PROFILE]`` of the *user's* file ``CONFIG_DIR/NAME.toml``, where ``CONFIG_DIR`` is the
   ``config_dir`` argument (the CLI's ``--config-dir``, else ``$HARNESS_CONFIG``, else none).

A module that is not inside a package (a top-level ``.py`` file) ships no profile file.
``harness tune`` writes its ``[tuned]`` table into the user's directory, never into a package.

Metadata without importing a plug-in (:func:`info`)
    The shipped profile file may hold a ``[metadata]`` table (reserved: not a profile)::

        [metadata]
        framework = "pytorch"                 # the class attribute ``framework``
        num_parameters = 1852846              # num_parameters() of the [paper] profile; left out: None
        class_profiles = ["tiny"]             # the keys of the class attribute ``profiles``
        description = "LegNet: EfficientNet-style CNN with soft-label KL loss (1st place)"

    :func:`info` reads it through the entry point and the file alone: the plug-in module (and
    PyTorch or TensorFlow) is not imported, so ``harness methods list`` takes well under a second.
    A method whose file has no ``[metadata]`` is imported and described from its class.
    :func:`check_metadata` compares the table with the imported class (the test suite runs it for
    every registered method, and the test :mod:`harness.scaffold` writes runs it for a new one),
    so the two cannot drift apart.
"""

from __future__ import annotations

import importlib.metadata as md
import importlib.resources
import importlib.util
import sys
import tomllib
import warnings
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover - harness.method imports NumPy and pandas; the registry stays light
    from .method import Method, MethodConfig

ENTRY_POINT_GROUP = "harness.methods"
_REGISTRY: dict[str, type[Method]] = {}
_SOURCES: dict[str, str] = {}
#: entry-point name -> why it failed to load (a broken plug-in must not take the others down).
_BROKEN: dict[str, str] = {}
_LOADED = False
#: folder of a plug-in's package that holds its shipped profile files ``<method name>.toml``.
SHIPPED_DIR = "configs"
#: environment variable naming the user's config directory (the CLI's default for ``--config-dir``).
CONFIG_ENV = "HARNESS_CONFIG"
#: table of a shipped profile file that holds the method's static metadata (:func:`info`).
METADATA_TABLE = "metadata"
#: tables of a profile file that are not profiles (``[search_space]``: ``harness tune``;
#: ``[metadata]``: :func:`info`).
RESERVED_TABLES = frozenset({"search_space", METADATA_TABLE})


def register(name: str):
    """Class decorator: register a :class:`Method` subclass under ``name``.

    Raises:
        TypeError: the class is not a Method subclass.
        ValueError: another class already holds ``name``.
    """

    from .method import Method

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
    from .method import Method

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
    plug-in. A name that a module registers without an entry point of its own appears only once
    that module is imported."""
    return sorted(set(_REGISTRY) | {ep.name for ep in _entry_points()})


def available() -> dict[str, type[Method]]:
    """All registered methods, name -> class (every entry point imported on the first call)."""
    _load_entry_points()
    return dict(sorted(_REGISTRY.items()))


def source_of(name: str) -> str:
    """The distribution (package) a method comes from: its entry point's, else (a name only a
    module registers) the top-level package of the registering module."""
    ep = _entry_point(name)
    if ep is not None and ep.dist is not None:
        return ep.dist.name
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


# ----------------------------------------------------------------------------------------------
# metadata: what `harness methods list` shows, without importing the plug-in where it can
# ----------------------------------------------------------------------------------------------
#: keys of a ``[metadata]`` table and their types (``num_parameters`` may be left out: None).
METADATA_KEYS = {"framework": str, "num_parameters": int, "class_profiles": list, "description": str}


@dataclass(frozen=True)
class MethodInfo:
    """What ``harness methods list`` shows of one method.

    Attributes:
        name: registry name.
        package: the distribution it comes from (``dream-harness`` for the built-ins).
        framework: the class attribute ``framework``.
        num_parameters: ``num_parameters()`` of the ``paper`` profile (trainable parameters, a
            count); None for a model without a fixed count (e.g. gradient-boosted trees).
        profiles: the method's named profiles, sorted (as :func:`profile_names`).
        description: one line.
        static: True when read from the ``[metadata]`` table of the shipped profile file
            without importing the plug-in; False when taken from the imported class.
    """

    name: str
    package: str
    framework: str
    num_parameters: int | None
    profiles: tuple[str, ...]
    description: str
    static: bool


#: the module each ``framework`` value needs (what :func:`framework_installed` looks for).
FRAMEWORK_MODULES = {"pytorch": "torch", "tensorflow": "tensorflow", "jax": "jax", "lightgbm": "lightgbm",
                     "sklearn": "sklearn", "xgboost": "xgboost", "numpy": "numpy"}


def framework_installed(framework: str) -> bool | None:
    """Whether the module ``framework`` needs (:data:`FRAMEWORK_MODULES`) is installed, found
    without importing it; None for a framework not in that table. Lets ``harness methods list``
    flag a method that cannot run here (e.g. ``kircherlab`` without the ``tensorflow`` extra)
    although its metadata was read without importing it."""
    module = FRAMEWORK_MODULES.get(framework)
    if module is None:
        return None
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _entry_point(name: str) -> md.EntryPoint | None:
    return next((ep for ep in _entry_points() if ep.name == name), None)


def _shipped_by_entry_point(ep: md.EntryPoint) -> tuple[str, Any] | None:
    """``(label, resource)`` of ``<package>/configs/<name>.toml`` for the package of the entry
    point's module, found without importing that module (its parent packages are imported, as
    :func:`importlib.util.find_spec` does); None for a top-level module or one that is not found."""
    try:
        spec = importlib.util.find_spec(ep.module)
    except (ImportError, ValueError):  # a parent package that does not import: the plug-in is broken
        return None
    if spec is None:
        return None
    package = ep.module if spec.submodule_search_locations is not None else ep.module.rpartition(".")[0]
    if not package:
        return None
    try:
        resource = importlib.resources.files(package) / SHIPPED_DIR / f"{ep.name}.toml"
    except (ModuleNotFoundError, TypeError, ValueError):
        return None
    return f"{package.replace('.', '/')}/{SHIPPED_DIR}/{ep.name}.toml", resource


def read_metadata(label: str, tables: dict[str, Any]) -> dict[str, Any] | None:
    """The validated ``[metadata]`` table of a parsed profile file (None when it has none).

    Returns:
        ``{"framework": str, "num_parameters": int | None, "class_profiles": list[str],
        "description": str}``.

    Raises:
        ValueError: not a table, a missing or unknown key, a value of the wrong type, a
            description that is empty or longer than one line (the message names the file and key).
    """
    table = tables.get(METADATA_TABLE)
    if table is None:
        return None
    where = f"{label} [{METADATA_TABLE}]"
    if not isinstance(table, dict):
        raise ValueError(f"{label}: {METADATA_TABLE} must be a table ([{METADATA_TABLE}]), got {type(table).__name__}")
    unknown = set(table) - set(METADATA_KEYS)
    if unknown:
        raise ValueError(f"{where}: unknown keys {sorted(unknown)}; known: {', '.join(METADATA_KEYS)}")
    missing = set(METADATA_KEYS) - {"num_parameters"} - set(table)
    if missing:
        raise ValueError(f"{where}: missing keys {sorted(missing)}")
    for key, kind in METADATA_KEYS.items():
        value = table.get(key)
        if key in table and (not isinstance(value, kind) or isinstance(value, bool)):
            raise ValueError(f"{where} {key}: expected {kind.__name__}, got {value!r}")
    n = table.get("num_parameters")
    if n is not None and n < 0:
        raise ValueError(f"{where} num_parameters: must be >= 0, got {n}")
    if not all(isinstance(p, str) for p in table["class_profiles"]):
        raise ValueError(f"{where} class_profiles: expected a list of profile names, got {table['class_profiles']!r}")
    description = table["description"].strip()
    if not description or "\n" in description:
        raise ValueError(f"{where} description: must be one non-empty line, got {table['description']!r}")
    return {"framework": table["framework"], "num_parameters": n, "class_profiles": list(table["class_profiles"]),
            "description": description}


def _user_tables(name: str, config_dir: str | Path | None) -> dict[str, Any]:
    return read_tables(Path(config_dir) / f"{name}.toml") if config_dir is not None else {}


def static_info(name: str, config_dir: str | Path | None = None) -> MethodInfo | None:
    """:class:`MethodInfo` from the ``[metadata]`` table of the method's shipped profile file,
    without importing the plug-in; None when ``name`` is no entry point, or its package ships no
    file or a file without ``[metadata]`` (then :func:`info` imports it).

    Raises:
        ValueError: the shipped file is malformed TOML or its ``[metadata]`` table is invalid
            (:func:`read_metadata`); the user's file is malformed TOML.
    """
    ep = _entry_point(name)
    shipped = _shipped_by_entry_point(ep) if ep is not None else None
    if shipped is None or not shipped[1].is_file():
        return None
    label, resource = shipped
    tables = _parse(resource.read_bytes(), label)
    meta = read_metadata(label, tables)
    if meta is None:
        return None
    profiles = (set(meta["class_profiles"]) | set(tables) | set(_user_tables(name, config_dir))) - RESERVED_TABLES
    package = ep.dist.name if ep.dist is not None else ep.module.split(".")[0]
    return MethodInfo(name, package, meta["framework"], meta["num_parameters"], tuple(sorted(profiles)),
                      meta["description"], static=True)


def class_info(cls: type[Method], config_dir: str | Path | None = None) -> MethodInfo:
    """:class:`MethodInfo` of an imported class: ``framework``, the parameter count of the
    ``paper`` profile (builds the model's config and counts; PyTorch plug-ins count on the meta
    device), :func:`profile_names`, and the first line of its docstring.

    Raises:
        Exception: whatever building the ``paper`` profile or counting raises.
    """
    n = cls(load_profile(cls, "paper", config_dir).config).num_parameters()
    doc = (cls.__doc__ or "").strip()
    return MethodInfo(cls.name, source_of(cls.name), cls.framework, n, tuple(profile_names(cls, config_dir)),
                      doc.splitlines()[0] if doc else "", static=False)


def info(name: str, config_dir: str | Path | None = None) -> MethodInfo:
    """What ``harness methods list`` shows of ``name``: :func:`static_info` where the shipped file
    declares ``[metadata]`` (nothing imported), else :func:`class_info` of the imported class.

    Raises:
        KeyError: unknown method, or its plug-in failed to import (:func:`get`).
        ValueError: an invalid ``[metadata]`` table (file and key named).
        Exception: whatever :func:`class_info` raises for an imported class.
    """
    found = static_info(name, config_dir)
    return found if found is not None else class_info(get(name), config_dir)


def check_metadata(cls: type[Method]) -> list[str]:
    """Where the ``[metadata]`` table of ``cls``'s shipped profile file disagrees with the class.

    Compared: ``framework``; ``num_parameters`` with ``num_parameters()`` of the ``paper``
    profile, and with the class attribute ``paper_num_parameters`` where that is not None;
    ``class_profiles`` with the keys of the class attribute ``profiles``; and, for a method with an
    entry point, that the file found through the entry point (:func:`static_info`) is the one the
    class's package ships (:func:`shipped_file`).

    Returns:
        One line per disagreement (``"<file> [metadata] <key>: declares X, the class gives Y"``);
        ``[]`` when they agree, and ``["<file>: no [metadata] table"]`` when there is none.

    Raises:
        ValueError: the table is invalid (:func:`read_metadata`).
    """
    shipped = shipped_file(cls)
    if shipped is None or not shipped[1].is_file():
        return [f"{cls.__module__}: ships no profile file {SHIPPED_DIR}/{cls.name}.toml, so no [metadata] table"]
    label, resource = shipped
    meta = read_metadata(label, _parse(resource.read_bytes(), label))
    if meta is None:
        return [f"{label}: no [{METADATA_TABLE}] table"]
    n = cls(load_profile(cls, "paper").config).num_parameters()
    actual = {"framework": cls.framework, "num_parameters": n, "class_profiles": sorted(cls.profiles)}
    declared = {**meta, "class_profiles": sorted(meta["class_profiles"])}
    where = f"{label} [{METADATA_TABLE}]"
    problems = [f"{where} {key}: declares {declared[key]!r}, the class gives {value!r}"
                for key, value in actual.items() if declared[key] != value]
    if cls.paper_num_parameters is not None and meta["num_parameters"] != cls.paper_num_parameters:
        problems.append(f"{where} num_parameters: declares {meta['num_parameters']!r}, "
                        f"{cls.__name__}.paper_num_parameters is {cls.paper_num_parameters!r}")
    ep = _entry_point(cls.name)
    found = _shipped_by_entry_point(ep) if ep is not None else None
    if ep is not None and (found is None or found[0] != label):
        problems.append(f"entry point {ep.name} = {ep.value}: its package's file is "
                        f"{found[0] if found else 'none'}, but {cls.__name__} ships {label}")
    return problems


@dataclass
class Profile:
    """A resolved configuration: the config object, and where its values came from.

    ``source`` lists every layer that set a value, in order, separated by ``"; "``: the class
    attribute (``pkg.mod.Class.profiles['cpu']``), the shipped file (``pkg/configs/NAME.toml
    [cpu]``) and the user's file (its path, ``[cpu]``); ``"defaults"`` when none did.
    """

    config: MethodConfig
    name: str
    source: str


@dataclass(frozen=True)
class ConfigFile:
    """One profile file of a method, read (``tables`` is ``{}`` when the file does not exist).

    Attributes:
        label: how messages and :attr:`Profile.source` name it: ``pkg/configs/NAME.toml`` for a
            shipped file (the package-relative resource, the same on every machine), the path for
            a user's file.
        tables: the file's top-level tables, reserved ones included.
        exists: whether the file exists.
    """

    label: str
    tables: dict[str, Any]
    exists: bool


def config_file(cls: type[Method], config_dir: str | Path) -> Path:
    """``<config_dir>/<name>.toml``: the method's file in a user's config directory; it need not exist."""
    return Path(config_dir) / f"{cls.name}.toml"


def _package_of(cls: type[Method]) -> str | None:
    """The package that holds ``cls``'s module (the module itself when it is a package's
    ``__init__``); None for a top-level module or a class without an importable module."""
    module = sys.modules.get(cls.__module__)
    spec = getattr(module, "__spec__", None)
    return (spec.parent or None) if spec is not None else None


def shipped_file(cls: type[Method]) -> tuple[str, Any] | None:
    """``(label, resource)`` of the profile file the method's package ships,
    ``<package>/configs/<name>.toml`` (an :mod:`importlib.resources` Traversable; it need not
    exist); None when the class's module is not inside a package."""
    package = _package_of(cls)
    if package is None:
        return None
    try:
        resource = importlib.resources.files(package) / SHIPPED_DIR / f"{cls.name}.toml"
    except (ModuleNotFoundError, TypeError, ValueError):  # no importable package: nothing shipped
        return None
    return f"{package.replace('.', '/')}/{SHIPPED_DIR}/{cls.name}.toml", resource


def config_files(cls: type[Method], config_dir: str | Path | None = None) -> list[ConfigFile]:
    """The method's profile files in layer order: the shipped one (when its module is inside a
    package), then ``<config_dir>/<name>.toml`` (when ``config_dir`` is given). Missing files are
    included with ``exists=False`` and no tables.

    Raises:
        ValueError: a file is not valid TOML (the message names it).
    """
    files = []
    shipped = shipped_file(cls)
    if shipped is not None:
        label, resource = shipped
        exists = resource.is_file()
        files.append(ConfigFile(label, _parse(resource.read_bytes(), label) if exists else {}, exists))
    if config_dir is not None:
        path = config_file(cls, config_dir)
        files.append(ConfigFile(str(path), read_tables(path), path.is_file()))
    return files


def profile_names(cls: type[Method], config_dir: str | Path | None = None) -> list[str]:
    """The named profiles of a method: class attribute ``profiles`` and the tables of its
    :func:`config_files` except :data:`RESERVED_TABLES`, sorted."""
    tables = {name for f in config_files(cls, config_dir) for name in f.tables}
    return sorted((set(cls.profiles) | tables) - RESERVED_TABLES)


#: profiles every method has: its ``Config`` defaults, which are the reference (paper) setting.
IMPLICIT_PROFILES = ("default", "paper")


class ProfileError(ValueError):
    """An unknown profile, or a profile whose values do not fit the method's ``Config``; the
    message names the file, the table and the key."""


def load_profile(method: str | type[Method], profile: str = "default",
                 config_dir: str | Path | None = None) -> Profile:
    """Build a method's config for a named profile.

    Resolution (each layer updates the one before; module docstring): the ``Config`` defaults (the
    reference/paper setting), the class's ``profiles[profile]``, table ``[profile]`` of the shipped
    ``<package>/configs/<method>.toml``, table ``[profile]`` of ``<config_dir>/<method>.toml``
    (the user's; none when ``config_dir`` is None). ``"default"`` and ``"paper"`` always exist (the
    defaults where nothing declares them); any other name must be declared in one of these places.

    Values are type-checked against the ``Config`` dataclass's annotations with pydantic in strict
    mode (as JSON: integers are accepted for floats and lists for tuples; ``"300"`` is not a
    float and ``"no"`` is not a bool).

    Raises:
        KeyError: unknown method.
        ProfileError (a ValueError): ``profile`` is declared nowhere (the message names the files
            looked at and lists the method's profiles), names a reserved table
            (:data:`RESERVED_TABLES`), is not a TOML table, sets a key the config does not have,
            or gives a value of the wrong type (file, table and key named).
        ValueError: a profile file is malformed TOML (named).
    """
    cls = get(method) if isinstance(method, str) else method
    files = config_files(cls, config_dir)
    if profile in RESERVED_TABLES:
        where = ", ".join(f.label for f in files) or f"{cls.name}.toml"
        purpose = ("for `harness tune`" if profile == "search_space"
                   else "for the method's metadata (harness.registry.info)")
        raise ProfileError(f"{profile!r} is not a profile: table [{profile}] of a profile file ({where}) is reserved "
                           f"{purpose}")
    layers: list[tuple[str, dict[str, Any]]] = []
    if profile in cls.profiles:
        layers.append((f"{cls.__module__}.{cls.__name__}.profiles[{profile!r}]", cls.profiles[profile]))
    for f in files:
        if profile in f.tables:
            if not isinstance(f.tables[profile], dict):
                raise ProfileError(f"{f.label}: {profile} must be a table ([{profile}]), "
                                   f"got a {type(f.tables[profile]).__name__}")
            layers.append((f"{f.label} [{profile}]", f.tables[profile]))
    if not layers and profile not in IMPLICIT_PROFILES:
        names = sorted(set(profile_names(cls, config_dir)) | set(IMPLICIT_PROFILES))
        places = " nor ".join([f.label for f in files] + [f"{cls.__name__}.profiles"])
        raise ProfileError(f"{cls.name} has no profile {profile!r} (not in {places}); its profiles: {', '.join(names)}")
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


def load_search_space(method: str | type[Method], config_dir: str | Path | None = None):
    """A method's ``harness tune`` search space, validated.

    Resolution: the class attribute ``search_space`` (``{field: entry}``), updated entry by entry by
    table ``[search_space]`` of the shipped ``<package>/configs/<method>.toml``, then by that of
    ``<config_dir>/<method>.toml`` (the user's; none when ``config_dir`` is None). Entry format and
    checks: :func:`harness.search_space.parse_search_space`.

    Returns:
        A :class:`harness.search_space.SearchSpace` (empty when no source declares anything).

    Raises:
        KeyError: unknown method.
        ValueError: a TOML file is malformed, ``[search_space]`` is not a table, or an entry is
            invalid: a key that is not a field of the method's ``Config`` dataclass, an unknown
            entry key, bad bounds/choices. The message names the file (or class) and the key.
    """
    from .search_space import parse_search_space

    cls = get(method) if isinstance(method, str) else method
    where = f"{cls.__module__}.{cls.__name__}.search_space"
    entries: dict[str, tuple[Any, str]] = {name: (spec, where) for name, spec in cls.search_space.items()}
    for f in config_files(cls, config_dir):
        table = f.tables.get("search_space", {})
        if not isinstance(table, dict):
            raise ValueError(f"{f.label}: search_space must be a table ([search_space]), got {type(table).__name__}")
        entries.update({name: (spec, f"{f.label} [search_space]") for name, spec in table.items()})
    return parse_search_space(cls.Config, entries)


def read_tables(path: str | Path) -> dict[str, Any]:
    """The tables of TOML file ``path`` (``{}`` when it does not exist), reserved ones included.

    Raises:
        ValueError: the file is malformed (the message names it).
    """
    path = Path(path)
    if not path.is_file():
        return {}
    return _parse(path.read_bytes(), str(path))


def _parse(data: bytes, label: str) -> dict[str, Any]:
    """Parse the TOML file ``label`` whose bytes are ``data``.

    Raises:
        ValueError: ``"<label>: <TOML error with line and column>"``, or not UTF-8.
    """
    try:
        return tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ValueError(f"{label}: not UTF-8 text ({exc})") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{label}: {exc}") from exc
