"""The contract every method plug-in must keep, as named checks (like scikit-learn's ``check_estimator``).

A plug-in's test suite runs them with one test::

    import pytest
    from harness.testing import method_checks
    from my_plugin.method import MyMethod

    CHECKS = dict(method_checks(MyMethod))

    @pytest.mark.parametrize("check", list(CHECKS))
    def test_contract(check):
        CHECKS[check]()

or all at once with ``check_method(MyMethod)`` (raises :class:`ContractError` listing every failed
check). The project's own plug-ins are checked the same way by ``tests/test_contract.py``, one test
per (registered method, check); ``harness methods new`` writes the test above into a new package.

The checks run the method's ``"tiny"`` profile (:data:`CONTRACT_PROFILE`): a config that fits a few
hundred rows in seconds on a CPU. Declare it in the class attribute ``profiles`` (a dict of config
overrides, e.g. ``profiles = {"tiny": {"channels": 4, "max_epochs": 1, "progress": False}}``); a
``[tiny]`` table of the package's ``configs/<name>.toml`` (or of the user's ``--config-dir``) may
override it like any profile. Training data is
:func:`tiny_tables`: 240 generated construct-shaped rows (1 in 8 of another length) and 40 test rows.

Checks (:data:`CHECK_NAMES`, in the order they run; each raises :class:`ContractError`):

``registered``
    ``cls.name`` is set and ``harness.registry.get(cls.name) is cls``; ``Config`` is a
    :class:`~harness.method.MethodConfig` dataclass; ``framework`` is a non-empty string.
``profiles``
    every declared profile, ``default``, ``paper`` and ``tiny`` builds through
    :func:`harness.registry.load_profile` (values type-checked) into a ``Config`` that survives
    the JSON round trip of ``method.json``; the search space (:func:`harness.registry.load_search_space`)
    is valid on top of the ``default`` profile.
``profile_errors``
    bad profiles are refused with the place named: an unknown key (file, ``[table]`` and key), a
    value of the wrong type (file, table and key), malformed TOML (file and line).
``num_parameters``
    ``num_parameters()`` of the ``paper`` and ``tiny`` configs is None or an int >= 0; it equals
    the class attribute ``paper_num_parameters`` when the plug-in declares one (the count the
    paper / write-up reports; :class:`harness.method.Method`).
``predict_before_fit``
    ``predict`` and ``save`` of an unfitted method raise RuntimeError.
``fit_requires_targets``
    ``fit`` raises ValueError (message mentions "targets") for a training or validation table
    without ``y`` (:func:`harness.method.require_targets`).
``fit_predict``
    after ``fit`` on the tiny table: ``predict`` returns ``(N,) float64``, all finite, the same on a
    second call, ``(1,)`` for one row; ``fit``/``predict`` leave their input tables unchanged.
``predict_empty``
    ``predict`` of a 0-row table returns ``(0,) float64``.
``sequence_lengths``
    sequences of 1-300 nt (and one with N) are predicted as finite ``(N,) float64``, or refused
    with a ValueError that says "length" or "nt"; the same holds for the training rows of other
    lengths (a method that refuses them is then fitted on the 110-nt rows only).
``save_load``
    ``save`` then ``cls.load(path, device="cpu")`` keeps name, config, seed and ``best_epoch`` and
    gives bit-identical predictions; every file written (the saved directory and the fit's
    ``work_dir``) reads back without unpickling (:func:`assert_no_pickle`); a checkpoint with a
    ``.json`` sidecar matches its recorded XXH3-128 digest.
``seeded_determinism``
    a second fit with the same config and seed predicts bit-identically.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from . import registry
from .data.encoding import FLANK_3P, FLANK_5P
from .data.table import SeqTable
from .method import Method, MethodConfig

#: the profile the checks run: a config that fits :func:`tiny_tables` in seconds on a CPU.
CONTRACT_PROFILE = "tiny"

#: the checks, in the order :func:`check_method` runs them (see the module docstring).
CHECK_NAMES = ("registered", "profiles", "profile_errors", "num_parameters", "predict_before_fit",
               "fit_requires_targets", "fit_predict", "predict_empty", "sequence_lengths", "save_load",
               "seeded_determinism")

#: lengths (nt) of the sequences the ``sequence_lengths`` check predicts (the construct is 110 nt).
CHECK_LENGTHS = (1, 5, 17, 30, 80, 100, 109, 110, 111, 120, 150, 300)

#: file suffixes a saved method may hold and how each is read back without unpickling (
#: :func:`assert_no_pickle`).
SAFE_SUFFIXES = {
    ".pt": "torch.load(weights_only=True)",
    ".ckpt": "torch.load(weights_only=True) (a Lightning checkpoint)",
    ".csv": "UTF-8 text (per-epoch metrics)",
    ".yaml": "UTF-8 text (Lightning's logged hyperparameters; never parsed)",
    ".npz": "numpy.load(allow_pickle=False), every array",
    ".npy": "numpy.load(allow_pickle=False)",
    ".json": "json",
    ".toml": "tomllib",
    ".txt": "UTF-8 text (e.g. LightGBM model text)",
    ".h5": "HDF5 signature",
    ".keras": "zip of JSON and HDF5 weight stores only",
    ".safetensors": "JSON header",
}
_PICKLE_SUFFIXES = (".pkl", ".pickle", ".joblib", ".dill", ".cloudpickle")
_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


class ContractError(AssertionError):
    """A method breaks the plug-in contract; the message names the method, the check and the problem."""


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise ContractError(message)


def tiny_tables(seed: int = 0, n_train: int = 240, n_test: int = 40) -> tuple[SeqTable, SeqTable]:
    """A small generated training and test table shaped like the challenge data.

    Each row is the construct: the 17-nt 5' flank, a random region, the 13-nt 3' flank. Test rows
    and 7 in 8 training rows have an 80-nt random region (110 nt); every 8th training row has 70-90
    nt (100-120 nt in all, as in the real training file). Targets are expression bins in [0, 17]
    that rise with the GC content of the random region (plus noise), so a method has something
    to learn; they are float32.

    Returns:
        ``(train, test)``: :class:`~harness.data.SeqTable` of ``n_train`` and ``n_test`` rows, both
        with ``y``.
    """
    rng = np.random.default_rng(seed)

    def rows(n: int, odd_every: int) -> SeqTable:
        sizes = np.full(n, 80)
        if odd_every:
            odd = np.arange(n) % odd_every == odd_every - 1
            sizes[odd] = rng.choice(np.r_[70:80, 81:91], odd.sum())
        middles = ["".join(rng.choice(list("ACGT"), int(s))) for s in sizes]
        gc = np.array([(m.count("G") + m.count("C")) / len(m) for m in middles])
        y = np.clip(8.5 + 40.0 * (gc - 0.5) + rng.normal(0.0, 1.5, n), 0.0, 17.0)
        return SeqTable.from_strings([FLANK_5P + m + FLANK_3P for m in middles], y, source="harness.testing")

    return rows(n_train, 8), rows(n_test, 0)


def _assert_predictions(pred: Any, n: int, what: str) -> np.ndarray:
    _require(isinstance(pred, np.ndarray), f"{what}: predict returned {type(pred).__name__}, not a numpy array")
    _require(pred.shape == (n,), f"{what}: predict returned shape {pred.shape}, expected ({n},)")
    _require(pred.dtype == np.float64, f"{what}: predict returned {pred.dtype}, expected float64")
    bad = np.flatnonzero(~np.isfinite(pred))
    _require(bad.size == 0, f"{what}: {bad.size} of {n} predictions are not finite (rows {bad[:5].tolist()})")
    return pred


def _mentions_length(exc: BaseException) -> bool:
    text = str(exc).lower()
    return "length" in text or " nt" in text or "nt)" in text


def assert_no_pickle(root: str | os.PathLike) -> list[Path]:
    """Check that every file under ``root`` reads back without unpickling (what :data:`SAFE_SUFFIXES`
    says for its suffix; ``.pt`` files with ``torch.load(weights_only=True)``), and that a file with
    a ``<file>.json`` sidecar recording ``xxh3_128`` matches it (:func:`harness.integrity.file_digest`).

    Returns:
        The files checked, sorted.

    Raises:
        ContractError: a file has a pickle suffix (``.pkl``, ``.joblib``, ...), an unknown suffix,
            starts like a pickle stream, does not read back as its suffix says, or does not match
            its digest sidecar; a symbolic link anywhere under ``root``. The message names the file.
    """
    from .integrity import file_digest

    files = sorted(p for p in Path(root).rglob("*") if p.is_file() or p.is_symlink())
    for f in files:
        _require(not f.is_symlink(), f"{f}: a symbolic link in a saved method")
        _require(f.suffix not in _PICKLE_SUFFIXES, f"{f}: a pickle file ({f.suffix}); save arrays as .npz and "
                                                   "values as JSON")
        _require(f.suffix in SAFE_SUFFIXES, f"{f.name}: a file of unknown (maybe pickled) format; the contract "
                                            f"accepts {', '.join(sorted(SAFE_SUFFIXES))}")
        head = f.read_bytes()[:2]
        _require(not (len(head) == 2 and head[0] == 0x80 and 2 <= head[1] <= 5), f"{f}: starts like a pickle stream")
        try:
            _read_back(f)
        except ContractError:
            raise
        except Exception as exc:  # noqa: BLE001 - whatever the reader raises, the file fails the check
            raise ContractError(f"{f}: does not read back as {SAFE_SUFFIXES[f.suffix]} "
                                f"({type(exc).__name__}: {exc})") from exc
        sidecar = f.with_name(f.name + ".json")
        if sidecar.is_file():
            record = json.loads(sidecar.read_text())
            if isinstance(record, dict) and "xxh3_128" in record:
                _require(record["xxh3_128"] == file_digest(f), f"{f}: does not match the digest in {sidecar.name}")
    return files


def _read_back(f: Path) -> None:
    suffix = f.suffix
    if suffix in (".pt", ".ckpt"):
        import torch

        torch.load(f, weights_only=True, map_location="cpu")
    elif suffix in (".npz", ".npy"):
        with open(f, "rb") as fh:
            data = np.load(fh, allow_pickle=False)
            if isinstance(data, np.lib.npyio.NpzFile):
                for key in data.files:
                    data[key]
    elif suffix == ".json":
        json.loads(f.read_text(encoding="utf-8"))
    elif suffix == ".toml":
        import tomllib

        tomllib.loads(f.read_text(encoding="utf-8"))
    elif suffix in (".txt", ".csv", ".yaml"):
        f.read_text(encoding="utf-8")
    elif suffix == ".h5":
        _require(f.read_bytes()[:8] == _HDF5_SIGNATURE, f"{f}: not an HDF5 file")
    elif suffix == ".keras":
        with zipfile.ZipFile(f) as zf:
            names = zf.namelist()
            other = [n for n in names if not n.endswith((".json", ".h5"))]
            _require(not other, f"{f}: holds {other}, not only JSON and HDF5 weight stores")
            _require(any(n.endswith(".h5") for n in names), f"{f}: holds no HDF5 weight store")
            for n in names:
                if n.endswith(".h5"):
                    _require(zf.read(n)[:8] == _HDF5_SIGNATURE, f"{f}: {n} is not an HDF5 file")
    elif suffix == ".safetensors":
        raw = f.read_bytes()
        size = int.from_bytes(raw[:8], "little")
        json.loads(raw[8:8 + size])


def check_round_trip(method: Method, table: SeqTable, path: str | os.PathLike, device: str = "cpu") -> Method:
    """Save the fitted ``method`` to ``path``, load it back with ``type(method).load(path, device)``
    and check what every plug-in must keep: ``method.json`` names it, config, seed and
    ``best_epoch`` are equal, predictions on ``table`` are bit-identical ``(len(table),) float64``,
    and every saved file reads back without unpickling (:func:`assert_no_pickle`).

    Returns:
        The loaded method.

    Raises:
        ContractError: any of these fails (the message says which).
    """
    cls, path = type(method), Path(path)
    method.save(path)
    meta = json.loads((path / "method.json").read_text())
    _require(meta.get("name") == cls.name, f"{cls.name}: method.json names {meta.get('name')!r}")
    assert_no_pickle(path)
    loaded = cls.load(path, device=device)
    _require(type(loaded) is cls, f"{cls.name}: load returned a {type(loaded).__name__}")
    _require(loaded.config == method.config, f"{cls.name}: config changed by save/load: {method.config} -> "
                                              f"{loaded.config}")
    _require(loaded.seed == method.seed, f"{cls.name}: seed changed by save/load: {method.seed} -> {loaded.seed}")
    before, after = getattr(method, "best_epoch", None), getattr(loaded, "best_epoch", None)
    _require(before == after, f"{cls.name}: best_epoch changed by save/load: {before} -> {after}")
    want = _assert_predictions(method.predict(table), len(table), f"{cls.name} (fitted)")
    got = _assert_predictions(loaded.predict(table), len(table), f"{cls.name} (loaded)")
    diff = np.flatnonzero(want != got)
    _require(diff.size == 0, f"{cls.name}: loaded predictions differ from the saved method's in {diff.size} of "
                             f"{len(table)} rows (max |diff| {np.max(np.abs(want - got)):.3g}); save/load must be "
                             "bit-identical")
    return loaded


class MethodChecks:
    """The contract checks of one method class, sharing one tiny fit between them.

    Iterating yields ``(check name, callable)`` pairs in :data:`CHECK_NAMES` order; calling one runs
    that check (and the shared fit on first need). Nothing runs when the object is created.
    Temporary files live in a directory removed by :meth:`close` (also a context manager).

    Args:
        cls: the :class:`~harness.method.Method` subclass.
        profile: the profile the fits use (default :data:`CONTRACT_PROFILE`).
        overrides: config values applied on top of the profile (e.g. a smaller ``batch_size``).
        config_dir: the user's directory of ``<name>.toml`` profile files, layered over the
            profiles the plug-in's package ships (default: none).
        device: device of every fit and load.
        seed: seed of the fits and of :func:`tiny_tables`.
    """

    def __init__(self, cls: type[Method], *, profile: str = CONTRACT_PROFILE, overrides: dict[str, Any] | None = None,
                 config_dir: str | os.PathLike | None = None, device: str = "cpu", seed: int = 0) -> None:
        if not (isinstance(cls, type) and issubclass(cls, Method)):
            raise TypeError(f"method_checks: {cls!r} is not a harness.method.Method subclass")
        self.cls = cls
        self.label = cls.name or cls.__name__
        self.profile = profile
        self.overrides = dict(overrides or {})
        self.config_dir = None if config_dir is None else Path(config_dir)
        self.device = device
        self.seed = seed
        self._tmp: tempfile.TemporaryDirectory | None = None
        self._config: MethodConfig | None = None
        self._tables: tuple[SeqTable, SeqTable] | None = None
        self._fitted: Method | None = None
        self._fit_error: BaseException | None = None
        #: the message of a refused training table with rows of other lengths (None: they were fitted).
        self.lengths_refused: str | None = None

    # ----- shared state ------------------------------------------------------------------------
    def tmp(self, name: str) -> Path:
        """A path that does not exist yet in this object's temporary directory: ``name``, or
        ``name-2``, ``name-3``, ... when a check runs again."""
        if self._tmp is None:
            self._tmp = tempfile.TemporaryDirectory(prefix=f"harness-contract-{self.label}-")
        path, n = Path(self._tmp.name) / name, 1
        while path.exists():
            n += 1
            path = Path(self._tmp.name) / f"{name}-{n}"
        return path

    @property
    def config(self) -> MethodConfig:
        """The ``profile`` config (through :func:`harness.registry.load_profile`) with ``overrides``."""
        if self._config is None:
            try:
                base = registry.load_profile(self.cls, self.profile, self.config_dir).config
            except registry.ProfileError as exc:
                raise ContractError(f"{self.label}: the contract checks need a small, fast {self.profile!r} profile "
                                    f"(class attribute profiles = {{{self.profile!r}: {{...}}}}): {exc}") from exc
            self._config = dataclasses.replace(base, **self.overrides) if self.overrides else base
        return self._config

    @property
    def tables(self) -> tuple[SeqTable, SeqTable]:
        """``(train, test)`` of :func:`tiny_tables` (seeded by ``seed``)."""
        if self._tables is None:
            self._tables = tiny_tables(self.seed)
        return self._tables

    def new(self, work_dir: Path | None = None) -> Method:
        """An unfitted method of the contract config."""
        return self.cls(self.config, seed=self.seed, device=self.device, work_dir=work_dir)

    def fit_new(self, train: SeqTable) -> Method:
        """A method fitted on ``train`` with a fresh ``work_dir``; a refusal of the rows of other
        lengths (ValueError naming the length) is recorded in :attr:`lengths_refused` and the fit
        repeated on the 110-nt rows."""
        method = self.new(self.tmp("work"))
        try:
            method.fit(train)
        except ValueError as exc:
            if not _mentions_length(exc):
                raise
            self.lengths_refused = str(exc)
            method = self.new(self.tmp("work"))
            method.fit(train.subset(train.lengths == 110))
        return method

    def fitted(self) -> Method:
        """The method fitted once on the tiny training table (shared by the checks; do not refit it)."""
        if self._fit_error is not None:
            raise ContractError(f"{self.label}: the tiny fit failed ({type(self._fit_error).__name__}: "
                                f"{self._fit_error})") from self._fit_error
        if self._fitted is None:
            train, _ = self.tables
            before = (train.codes.copy(), train.lengths.copy(), train.y.copy())
            try:
                self._fitted = self.fit_new(train)
            except Exception as exc:
                self._fit_error = exc
                raise
            for name, old, new in zip(("codes", "lengths", "y"), before, (train.codes, train.lengths, train.y)):
                _require(np.array_equal(old, new), f"{self.label}: fit changed its training table's {name}")
        return self._fitted

    def close(self) -> None:
        """Remove the temporary directory and drop the fitted method."""
        self._fitted = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> "MethodChecks":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __iter__(self) -> Iterator[tuple[str, Callable[[], None]]]:
        for name in CHECK_NAMES:
            yield name, getattr(self, f"check_{name}")

    def run(self, name: str) -> None:
        """Run the check ``name`` (one of :data:`CHECK_NAMES`).

        Raises:
            KeyError: no such check.
            ContractError: the check fails.
        """
        if name not in CHECK_NAMES:
            raise KeyError(f"no contract check {name!r}; checks: {', '.join(CHECK_NAMES)}")
        getattr(self, f"check_{name}")()

    # ----- the checks --------------------------------------------------------------------------
    def check_registered(self) -> None:
        """Registry name, ``Config`` dataclass, ``framework``, ``paper_num_parameters`` type."""
        cls = self.cls
        _require(bool(cls.name), f"{cls.__name__}: no registry name (decorate it with @harness.registry.register)")
        try:
            found = registry.get(cls.name)
        except KeyError as exc:
            raise ContractError(f"{cls.name}: not found in the registry ({exc})") from exc
        _require(found is cls, f"{cls.name}: the registry holds {found.__module__}.{found.__qualname__}, "
                               f"not {cls.__module__}.{cls.__qualname__}")
        _require(dataclasses.is_dataclass(cls.Config) and issubclass(cls.Config, MethodConfig),
                 f"{cls.name}: Config must be a dataclass derived from harness.method.MethodConfig")
        _require(isinstance(cls.framework, str) and bool(cls.framework), f"{cls.name}: framework must be a name")
        paper = cls.paper_num_parameters
        _require(paper is None or (isinstance(paper, int) and paper >= 0),
                 f"{cls.name}: paper_num_parameters must be None or an int >= 0, got {paper!r}")

    def check_profiles(self) -> None:
        """Every profile builds, validates and survives JSON; the search space is valid."""
        cls, label = self.cls, self.label
        names = sorted(set(registry.profile_names(cls, self.config_dir)) | set(registry.IMPLICIT_PROFILES)
                       | {self.profile})
        for profile in names:
            try:
                config = registry.load_profile(cls, profile, self.config_dir).config
            except (ValueError, TypeError) as exc:
                raise ContractError(f"{label}: profile {profile!r} does not build: {exc}") from exc
            _require(isinstance(config, cls.Config), f"{label}: profile {profile!r} built a {type(config).__name__}")
            try:
                again = cls.Config(**json.loads(json.dumps(dataclasses.asdict(config))))
            except (TypeError, ValueError) as exc:
                raise ContractError(f"{label}: profile {profile!r} does not survive the JSON of method.json: "
                                    f"{exc}") from exc
            _require(again == config, f"{label}: profile {profile!r} changes through the JSON of method.json: "
                                      f"{config} -> {again}")
        from .search_space import check_space

        try:
            space = registry.load_search_space(cls, self.config_dir)
            check_space(space, registry.load_profile(cls, "default", self.config_dir).config, "default")
        except ValueError as exc:
            raise ContractError(f"{label}: invalid search space: {exc}") from exc

    def check_profile_errors(self) -> None:
        """Unknown keys, wrong types and malformed TOML are refused naming file, table, key or line."""
        cls, label = self.cls, self.label
        folder = self.tmp("bad-profiles")
        folder.mkdir(parents=True)
        path = registry.config_file(cls, folder)

        def refused(text: str, profile: str, *needles: str, exc_types=(registry.ProfileError,)) -> None:
            path.write_text(text)
            try:
                registry.load_profile(cls, profile, folder)
            except exc_types as exc:
                missing = [n for n in needles if n not in str(exc)]
                _require(not missing, f"{label}: the error for {text.strip()!r} does not name {missing}: {exc}")
                return
            raise ContractError(f"{label}: profile file {text.strip()!r} was accepted")

        refused("[contract]\nno_such_key_xyz = 1\n", "contract", str(path), "[contract]", "no_such_key_xyz")
        refused("[contract\nx = 1\n", "contract", str(path), "line", exc_types=(ValueError,))
        field, bad = _wrong_value(cls.Config)
        if field is not None:
            text = f"[contract]\n{field} = {bad}\n"
            if _pydantic_describes(cls.Config):
                refused(text, "contract", str(path), "[contract]", field)
            else:  # the registry leaves type checks to a Config pydantic cannot describe: it must check itself
                refused(text, "contract", exc_types=(ValueError, TypeError))

    def check_num_parameters(self) -> None:
        """``num_parameters()`` is None or an int; the paper config's equals ``paper_num_parameters``."""
        cls, label = self.cls, self.label
        paper_config = registry.load_profile(cls, "paper", self.config_dir).config
        counts = {}
        for what, config in (("paper", paper_config), (self.profile, self.config)):
            n = cls(config, seed=self.seed, device=self.device).num_parameters()
            _require(n is None or (isinstance(n, (int, np.integer)) and not isinstance(n, bool) and n >= 0),
                     f"{label}: num_parameters() of the {what} config is {n!r}, not None or an int >= 0")
            counts[what] = n
        declared = cls.paper_num_parameters
        if declared is not None:
            _require(counts["paper"] == declared, f"{label}: the paper config has {counts['paper']} parameters; "
                                                  f"{cls.__name__}.paper_num_parameters declares {declared}")

    def check_predict_before_fit(self) -> None:
        """``predict`` and ``save`` of an unfitted method raise RuntimeError."""
        _, test = self.tables
        for what, call in (("predict", lambda m: m.predict(test)), ("save", lambda m: m.save(self.tmp("unfitted")))):
            try:
                call(self.new())
            except RuntimeError:
                continue
            except Exception as exc:  # noqa: BLE001 - the wrong kind of error fails the check
                raise ContractError(f"{self.label}: {what} before fit raised {type(exc).__name__} ({exc}), "
                                    "expected RuntimeError") from exc
            raise ContractError(f"{self.label}: {what} before fit did not raise (expected RuntimeError)")

    def check_fit_requires_targets(self) -> None:
        """``fit`` refuses training or validation tables without ``y`` (ValueError)."""
        train, test = self.tables
        no_y = SeqTable(train.codes, train.lengths)
        for what, args in (("training", (no_y,)), ("validation", (train, SeqTable(test.codes, test.lengths)))):
            try:
                self.new().fit(*args)
            except ValueError as exc:
                _require("target" in str(exc), f"{self.label}: fit on a {what} table without y raised "
                                               f"ValueError without saying 'targets': {exc}")
                continue
            except Exception as exc:  # noqa: BLE001
                raise ContractError(f"{self.label}: fit on a {what} table without y raised {type(exc).__name__} "
                                    f"({exc}), expected ValueError (harness.method.require_targets)") from exc
            raise ContractError(f"{self.label}: fit on a {what} table without y did not raise")

    def check_fit_predict(self) -> None:
        """``(N,) float64`` finite, repeatable predictions; the input table left unchanged."""
        method = self.fitted()
        _, test = self.tables
        codes, lengths = test.codes.copy(), test.lengths.copy()
        first = _assert_predictions(method.predict(test), len(test), self.label)
        second = _assert_predictions(method.predict(test), len(test), f"{self.label} (second call)")
        _require(np.array_equal(first, second), f"{self.label}: two predict calls on the same table differ")
        _require(np.array_equal(codes, test.codes) and np.array_equal(lengths, test.lengths),
                 f"{self.label}: predict changed its input table")
        _assert_predictions(method.predict(test.subset(np.arange(1))), 1, f"{self.label} (one row)")

    def check_predict_empty(self) -> None:
        """A 0-row table gives ``(0,) float64``."""
        _, test = self.tables
        _assert_predictions(self.fitted().predict(test.subset(np.arange(0))), 0, f"{self.label} (empty table)")

    def check_sequence_lengths(self) -> None:
        """Sequences of :data:`CHECK_LENGTHS` nt are predicted, or refused naming the length."""
        method = self.fitted()  # its fit took the training rows of other lengths or refused them clearly
        rng = np.random.default_rng(self.seed)
        seqs = ["".join(rng.choice(list("ACGT"), n)) for n in CHECK_LENGTHS] + ["ACGTN" * 22]
        table = SeqTable.from_strings(seqs)
        try:
            pred = method.predict(table)
        except ValueError as exc:
            _require(_mentions_length(exc), f"{self.label}: sequences of {min(CHECK_LENGTHS)}-{max(CHECK_LENGTHS)} nt "
                                            f"refused with an error that names no length: {exc}")
            return
        _assert_predictions(pred, len(table), f"{self.label} (sequences of {min(CHECK_LENGTHS)}-"
                                              f"{max(CHECK_LENGTHS)} nt)")

    def check_save_load(self) -> None:
        """Bit-identical round trip through files that load without unpickling (:func:`check_round_trip`)."""
        method = self.fitted()
        _, test = self.tables
        check_round_trip(method, test, self.tmp("saved"), self.device)
        if method.work_dir is not None and method.work_dir.exists():
            assert_no_pickle(method.work_dir)
        torch_method = sys.modules.get("harness.torch_method")
        if torch_method is not None and issubclass(self.cls, torch_method.TorchMethod):
            checkpoint = method.checkpoint_dir / "last.ckpt"
            _require(checkpoint.is_file(), f"{self.label}: a TorchMethod fit with a work_dir left no {checkpoint.name}")
            _require(checkpoint.with_name("last.ckpt.json").is_file(), f"{self.label}: {checkpoint.name} has no "
                                                                     "digest sidecar")

    def check_seeded_determinism(self) -> None:
        """A second fit with the same seed predicts bit-identically."""
        method = self.fitted()
        train, test = self.tables
        again = self.fit_new(train)
        want, got = method.predict(test), again.predict(test)
        diff = np.flatnonzero(want != got)
        _require(diff.size == 0, f"{self.label}: two fits with seed {self.seed} predict differently in {diff.size} of "
                                 f"{len(test)} rows (max |diff| {np.max(np.abs(want - got)):.3g})")


def _wrong_value(config_cls: type) -> tuple[str | None, str]:
    """A field of ``config_cls`` annotated exactly ``bool``, ``int``, ``float`` or ``str``, and a TOML
    value of the wrong type for it; ``(None, "")`` when there is none."""
    wrong = {"bool": '"no"', "int": '"1x"', "float": '"1x"', "str": "1.5"}
    for f in dataclasses.fields(config_cls):
        kind = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", "")  # postponed annotations: str
        if kind in wrong:
            return f.name, wrong[kind]
    return None, ""


def _pydantic_describes(config_cls: type) -> bool:
    import pydantic

    try:
        pydantic.TypeAdapter(config_cls)
    except pydantic.PydanticUserError:
        return False
    return True


def method_checks(cls: type[Method], *, profile: str = CONTRACT_PROFILE, overrides: dict[str, Any] | None = None,
                  config_dir: str | os.PathLike | None = None, device: str = "cpu", seed: int = 0) -> MethodChecks:
    """The contract checks of ``cls``: iterate for ``(name, callable)`` pairs (pytest parametrisation,
    like scikit-learn's ``parametrize_with_checks``); the checks share one tiny fit. Arguments: see
    :class:`MethodChecks`.

    Raises:
        TypeError: ``cls`` is not a Method subclass.
    """
    return MethodChecks(cls, profile=profile, overrides=overrides, config_dir=config_dir, device=device, seed=seed)


def check_method(cls: type[Method], *, profile: str = CONTRACT_PROFILE, overrides: dict[str, Any] | None = None,
                 config_dir: str | os.PathLike | None = None, device: str = "cpu", seed: int = 0,
                 checks: tuple[str, ...] | list[str] | None = None) -> None:
    """Run the contract checks of ``cls`` (all of :data:`CHECK_NAMES`, or ``checks``) and report every
    failure at once. Arguments: see :class:`MethodChecks`.

    Raises:
        ContractError: one line per failed check, ``<check>: <problem>``.
        KeyError: ``checks`` names an unknown check.
    """
    names = CHECK_NAMES if checks is None else tuple(checks)
    unknown = [n for n in names if n not in CHECK_NAMES]
    if unknown:
        raise KeyError(f"no contract checks {unknown}; checks: {', '.join(CHECK_NAMES)}")
    failures = []
    with method_checks(cls, profile=profile, overrides=overrides, config_dir=config_dir, device=device,
                       seed=seed) as suite:
        for name in names:
            try:
                suite.run(name)
            except Exception as exc:  # noqa: BLE001 - every failure is collected and reported together
                failures.append(f"{name}: {type(exc).__name__}: {exc}" if not isinstance(exc, ContractError)
                                else f"{name}: {exc}")
    if failures:
        raise ContractError(f"{cls.name or cls.__name__} breaks the method contract:\n  " + "\n  ".join(failures))
