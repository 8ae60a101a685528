"""The ``harness tune`` search-space language: ``[search_space]`` entries of a method's profile
file (and its class attribute ``search_space``), parsed and validated against the method's
``Config`` dataclass.

Entry forms: ``{ low, high [, log, step, type] }`` ranges, ``{ choices = [...] }``, and
``{ value = ... }`` (fixed in every trial). :func:`parse_search_space` checks every key and bound
and names the file (or class) and key in its errors; :func:`check_space` applies each candidate to
a base config so the config's own checks run. The registry reads search spaces through this
module; :mod:`harness.tune` runs the study over them.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from .method import MethodConfig

if TYPE_CHECKING:  # pragma: no cover
    import optuna

#: keys an entry of ``[search_space]`` may have.
ENTRY_KEYS = frozenset({"low", "high", "log", "step", "type", "choices", "value"})


@dataclass(frozen=True)
class ParamSpec:
    """One validated search-space entry.

    Attributes:
        name: the ``Config`` field.
        kind: ``"float"``, ``"int"``, ``"categorical"`` or ``"fixed"``.
        low, high: inclusive bounds of a range (float or int).
        log: sample the range on a log scale.
        step: grid step of a range (None: continuous floats / step 1 for ints).
        choices: the categorical values (TOML scalars, or arrays passed to Optuna as JSON text).
        value: the fixed value of a ``"fixed"`` entry.
        source: where it was declared (``"<file> [search_space]"`` or ``"<module>.<Class>.search_space"``).
    """

    name: str
    kind: str
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    step: float | int | None = None
    choices: tuple = ()
    value: Any = None
    source: str = ""

    @property
    def encoded(self) -> bool:
        """True when the choices go to Optuna as JSON text (some choice is an array or table)."""
        return any(isinstance(c, (list, tuple, dict)) for c in self.choices)

    def suggest(self, trial: "optuna.Trial") -> Any:
        """Draw this parameter's value for ``trial`` (decoded: arrays come back as lists).

        Raises:
            ValueError: called on a ``"fixed"`` entry.
        """
        if self.kind == "float":
            return trial.suggest_float(self.name, self.low, self.high, log=self.log, step=self.step)
        if self.kind == "int":
            return trial.suggest_int(self.name, self.low, self.high, step=self.step or 1, log=self.log)
        if self.kind == "categorical":
            if self.encoded:
                return json.loads(trial.suggest_categorical(self.name, [json.dumps(c) for c in self.choices]))
            return trial.suggest_categorical(self.name, list(self.choices))
        raise ValueError(f"{self.name}: a fixed entry is not suggested")

    def decode(self, optuna_value: Any) -> Any:
        """The config value of an Optuna parameter value (undoes the JSON text of array choices)."""
        return json.loads(optuna_value) if self.kind == "categorical" and self.encoded else optuna_value

    def encode(self, config_value: Any) -> Any | None:
        """The Optuna parameter value for a config value, or None when it lies outside the space."""
        if self.kind in ("float", "int"):
            if isinstance(config_value, bool) or not isinstance(config_value, (int, float)):
                return None
            if not self.low <= config_value <= self.high:
                return None
            if self.kind == "int" and (config_value != int(config_value)
                                       or (int(config_value) - self.low) % (self.step or 1)):
                return None
            return int(config_value) if self.kind == "int" else float(config_value)
        if self.kind == "categorical":
            for choice in self.choices:
                if _same(choice, config_value):
                    return json.dumps(choice) if self.encoded else choice
        return None

    def candidates(self) -> list[tuple[str, Any]]:
        """``(label, value)`` pairs that must all be valid configs: bounds, every choice, the value."""
        if self.kind in ("float", "int"):
            return [("low", self.low), ("high", self.high)]
        if self.kind == "categorical":
            return [(f"choice {i + 1}", c) for i, c in enumerate(self.choices)]
        return [("value", self.value)]

    def declaration(self) -> dict:
        """The entry as a JSON-able dict (what the study records to detect a changed space)."""
        keys = {"float": ("low", "high", "log", "step"), "int": ("low", "high", "log", "step"),
                "categorical": ("choices",), "fixed": ("value",)}[self.kind]
        return {"kind": self.kind, **{k: plain_value(getattr(self, k)) for k in keys}}

    def describe(self) -> str:
        """A short human-readable form, e.g. ``log [0.0001, 0.01]`` or ``{128, 256}``."""
        if self.kind in ("float", "int"):
            grid = f" step {self.step:g}" if self.step else ""
            return f"{'log ' if self.log else ''}{self.kind} [{self.low:g}, {self.high:g}]{grid}"
        if self.kind == "categorical":
            return "{" + ", ".join(json.dumps(c) for c in self.choices) + "}"
        return f"= {json.dumps(plain_value(self.value))}"


@dataclass(frozen=True)
class SearchSpace:
    """A method's validated search space: ``params`` maps a ``Config`` field to its :class:`ParamSpec`."""

    params: dict[str, ParamSpec] = field(default_factory=dict)

    @property
    def searched(self) -> list[str]:
        """Names of the searched (non-fixed) parameters, in declaration order."""
        return [n for n, p in self.params.items() if p.kind != "fixed"]

    @property
    def fixed(self) -> dict[str, Any]:
        """``{field: value}`` of the fixed entries."""
        return {n: p.value for n, p in self.params.items() if p.kind == "fixed"}

    def suggest(self, trial: "optuna.Trial") -> dict[str, Any]:
        """``{field: value}`` drawn for ``trial`` (searched parameters only)."""
        return {name: self.params[name].suggest(trial) for name in self.searched}

    def decode(self, optuna_params: dict[str, Any]) -> dict[str, Any]:
        """Config values of a finished trial's ``params`` (searched parameters only)."""
        return {n: self.params[n].decode(v) for n, v in optuna_params.items() if n in self.params}

    def declaration(self) -> dict:
        """JSON-able form of the whole space."""
        return {n: p.declaration() for n, p in self.params.items()}


def parse_search_space(config_cls: type[MethodConfig], entries: dict[str, tuple[Any, str]]) -> SearchSpace:
    """Validate raw search-space entries into a :class:`SearchSpace`.

    Args:
        config_cls: the method's ``Config`` dataclass.
        entries: field name -> ``(entry, source)``: ``entry`` a dict in one of the forms of the
            module docstring (as TOML or the class attribute gives it); ``source`` names where it
            was declared, for messages.

    Returns:
        The space, entries in the given order.

    Raises:
        ValueError: ``"<source> key '<name>': <problem>"`` for a name that is not a field of
            ``config_cls`` (the message lists the fields), an entry that is not a table, an unknown
            entry key, not exactly one of ``low``/``high``, ``choices``, ``value``, non-numeric or
            out-of-order bounds, ``log`` with a bound <= 0, ``log`` with a float ``step``, a
            non-positive ``step``, an unknown ``type``, non-integer bounds for ``type = "int"``,
            a range over a non-numeric field or float bounds for an int field, or empty/duplicate
            ``choices``.
    """
    fields = {f.name: f for f in dataclasses.fields(config_cls)}
    params = {}
    for name, (entry, source) in entries.items():
        params[name] = _parse_entry(name, entry, source, fields, config_cls.__name__)
    return SearchSpace(params)


def _parse_entry(name: str, entry: Any, source: str, fields: dict, config_name: str) -> ParamSpec:
    def bad(problem: str) -> ValueError:
        return ValueError(f"{source} key {name!r}: {problem}")

    if name not in fields:
        raise bad(f"not a field of {config_name} (fields: {', '.join(sorted(fields))})")
    if not isinstance(entry, dict):
        raise bad(f"must be a table such as {{ low = 1e-4, high = 1e-2, log = true }}, {{ choices = [...] }} or "
                  f"{{ value = ... }}, got {entry!r}")
    unknown = set(entry) - ENTRY_KEYS
    if unknown:
        raise bad(f"unknown entry key(s) {sorted(unknown)}; allowed: {sorted(ENTRY_KEYS)}")
    forms = [k for k, present in (("low/high", "low" in entry or "high" in entry), ("choices", "choices" in entry),
                                  ("value", "value" in entry)) if present]
    if len(forms) != 1:
        raise bad(f"needs exactly one of low + high, choices, value; got {forms or 'none'}")
    field_kind = _field_kind(fields[name])
    if forms == ["value"]:
        extra = set(entry) - {"value"}
        if extra:
            raise bad(f"a fixed value takes no {sorted(extra)}")
        return ParamSpec(name, "fixed", value=entry["value"], source=source)
    if forms == ["choices"]:
        extra = set(entry) - {"choices"}
        if extra:
            raise bad(f"choices take no {sorted(extra)}")
        choices = entry["choices"]
        if not isinstance(choices, (list, tuple)) or not choices:
            raise bad(f"choices must be a non-empty array, got {choices!r}")
        texts = [json.dumps(plain_value(c), sort_keys=True) for c in choices]
        if len(set(texts)) != len(texts):
            raise bad(f"duplicate choices in {choices!r}")
        return ParamSpec(name, "categorical", choices=tuple(choices), source=source)
    # a range
    if "low" not in entry or "high" not in entry:
        raise bad("a range needs both low and high")
    low, high, step, log = entry["low"], entry["high"], entry.get("step"), entry.get("log", False)
    for label, v in (("low", low), ("high", high)) + ((("step", step),) if step is not None else ()):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise bad(f"{label} must be a finite number, got {v!r}")
    if not isinstance(log, bool):
        raise bad(f"log must be true or false, got {log!r}")
    kind = entry.get("type")
    if kind is None:
        ints = all(isinstance(v, int) for v in (low, high) + ((step,) if step is not None else ()))
        kind = "int" if ints and field_kind == "int" else "float"
    if kind not in ("int", "float"):
        raise bad(f"type must be \"int\" or \"float\", got {kind!r}")
    if field_kind not in ("int", "float"):
        raise bad(f"a range needs a numeric field; {config_name}.{name} is {field_kind} (use choices or value)")
    if kind == "float" and field_kind == "int":
        raise bad(f"{config_name}.{name} is an int: give integer bounds or type = \"int\"")
    if kind == "int":
        for label, v in (("low", low), ("high", high)) + ((("step", step),) if step is not None else ()):
            if v != int(v):
                raise bad(f"type = \"int\" needs integer {label}, got {v!r}")
        low, high, step = int(low), int(high), (int(step) if step is not None else None)
    else:
        low, high, step = float(low), float(high), (float(step) if step is not None else None)
    if not low < high:
        raise bad(f"low must be < high, got low = {low!r}, high = {high!r} (a single value: {{ value = {low!r} }})")
    if step is not None and step <= 0:
        raise bad(f"step must be > 0, got {step!r}")
    if log and low <= 0:
        raise bad(f"log = true needs low > 0, got low = {low!r}")
    if log and step is not None and (kind == "float" or step != 1):
        raise bad("log = true cannot be combined with a step (other than 1 for ints)")
    return ParamSpec(name, kind, low=low, high=high, log=log, step=step, source=source)


def _field_kind(f: dataclasses.Field) -> str:
    """``"bool"``, ``"int"``, ``"float"``, ``"str"``, ``"sequence"`` or ``"other"`` for a config field."""
    if f.default is not dataclasses.MISSING:
        default = f.default
    elif f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        default = f.default_factory()  # type: ignore[misc]
    else:
        annotation = str(f.type)
        return annotation if annotation in ("bool", "int", "float", "str") else "other"
    for kind, types in (("bool", bool), ("int", int), ("float", float), ("str", str), ("sequence", (list, tuple))):
        if isinstance(default, types):
            return kind
    return "other"


def _same(a: Any, b: Any) -> bool:
    """Equal as config values: sequences element-wise (tuple == list), numbers by value, but a bool
    only equals a bool."""
    if isinstance(a, (list, tuple)) or isinstance(b, (list, tuple)):
        return (isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)) and len(a) == len(b)
                and all(_same(x, y) for x, y in zip(a, b)))
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    return a == b


def plain_value(value: Any) -> Any:
    """Tuples -> lists, recursively (TOML / JSON form of a config value)."""
    if isinstance(value, (list, tuple)):
        return [plain_value(v) for v in value]
    if isinstance(value, dict):
        return {k: plain_value(v) for k, v in value.items()}
    if isinstance(value, np.generic):
        return value.item()
    return value


def check_space(space: SearchSpace, base: MethodConfig, profile: str) -> MethodConfig:
    """Check every bound, choice and fixed value against the base config; return base + fixed.

    Each candidate is applied alone (with the fixed entries) through :func:`dataclasses.replace`,
    so the method's own ``Config.__post_init__`` checks run.

    Raises:
        ValueError: ``"<source> key '<name>': <label> <value> is refused on top of profile
            '<profile>': <the config's message>"``.
    """
    fixed = space.fixed
    try:
        with_fixed = dataclasses.replace(base, **fixed)
    except (ValueError, TypeError) as exc:
        p = next(iter(space.params[n] for n in fixed))
        raise ValueError(f"{p.source}: fixed values {fixed} are refused on top of profile {profile!r}: {exc}") from exc
    for name in space.searched:
        p = space.params[name]
        for label, value in p.candidates():
            try:
                dataclasses.replace(with_fixed, **{name: value})
            except (ValueError, TypeError) as exc:
                raise ValueError(f"{p.source} key {name!r}: {label} {value!r} is refused on top of profile "
                                 f"{profile!r}: {exc}") from exc
    return with_fixed
