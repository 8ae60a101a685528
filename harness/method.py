"""The plug-in interface every method implements.

A method is a class derived from :class:`Method` with a ``Config`` dataclass. The harness creates
it with a config (a profile: :func:`harness.registry.load_profile`), calls :meth:`Method.fit` on the training part of a
fold and :meth:`Method.predict` on the held-out part and on the test set, and saves it with
:meth:`Method.save`. Register it with :func:`harness.registry.register`.
"""

from __future__ import annotations

import abc
import dataclasses
import os
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from .data.table import SeqTable
from .io import read_json, write_json


@dataclasses.dataclass
class MethodConfig:
    """Base of every method's config dataclass. Subclasses add their hyperparameters.

    A config holds the *recipe* (what the fit learns: data handling, model, objective,
    optimiser, schedule, numeric precision) and *runtime* fields (how fast, where and how
    verbosely it runs). :attr:`RUNTIME_FIELDS` names the runtime ones: a field is runtime when
    changing it cannot change the fitted model's numbers beyond floating-point noise (summation
    order from another batch split, thread count or compiled kernel), or when it is a limit of the
    machine rather than of the method (the wall-clock budget ``max_train_seconds``: where it stops
    a fit, the fit ends early whatever its value, and the same value stops it at another step on
    another machine). ``harness run`` resumes a run directory after a runtime-only change
    (:func:`config_parts`) and refuses one after a recipe change.

    Reduced precision is recipe, not runtime: bf16/fp16 autocast (``mixed_precision``) or TF32
    (``precision = "tf32"``) rounds every training step to fewer mantissa bits, so the fit
    follows another trajectory; the teams' recipes are fp32 and the ``paper-fast`` profiles are
    reported under their own name.

    Class attributes:
        RUNTIME_FIELDS: names of runtime fields (names that are not fields of a subclass are
            ignored). The default covers the harness's conventions: ``eval_batch_size``
            (prediction batching), ``compile`` (``torch.compile``: the same ops, fused),
            ``max_train_seconds`` (time budget), ``progress`` (display), ``cpu_threads`` /
            ``n_jobs`` (threads; kmer-lgbm's model measured identical with 1 and 2) and
            ``deterministic`` (op determinism: reproducibility, not the recipe) and ``devices`` (DDP
            over N devices keeps the recipe's global batch). A subclass whose
            field of one of these names is part of its recipe redeclares the set without it.
    """

    RUNTIME_FIELDS: ClassVar[frozenset[str]] = frozenset({
        "eval_batch_size", "compile", "max_train_seconds", "progress", "cpu_threads", "n_jobs", "deterministic",
        "devices"})


def config_parts(config: MethodConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(recipe, runtime)``: the config's fields as JSON values (tuples as lists), split by
    ``type(config).RUNTIME_FIELDS``; each dict in field order."""
    import json

    values = json.loads(json.dumps(dataclasses.asdict(config)))
    runtime = type(config).RUNTIME_FIELDS
    return ({k: v for k, v in values.items() if k not in runtime}, {k: v for k, v in values.items() if k in runtime})


def config_changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """``["key old -> new", ...]`` for every key whose value differs between two field dicts (a key
    missing on one side shows as None), sorted by key."""
    return [f"{k} {old.get(k)!r} -> {new.get(k)!r}" for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]


def require_targets(name: str, train: SeqTable, valid: SeqTable | None = None) -> None:
    """Check that the tables a ``fit`` got carry targets.

    Raises:
        ValueError: ``"<name>.fit: training/validation tables need targets (y)"`` when ``train.y``
            is None, or ``valid`` is given and ``valid.y`` is None.
    """
    if train.y is None or (valid is not None and valid.y is None):
        raise ValueError(f"{name}.fit: training/validation tables need targets (y)")


class Method(abc.ABC):
    """A sequence-to-expression model.

    Class attributes:
        name: registry name (e.g. ``"camformers"``), set by :func:`harness.registry.register`.
        framework: ``"pytorch"``, ``"tensorflow"``, ``"sklearn"``, ``"lightgbm"``, ...
        Config: the config dataclass; its defaults are the method's reference (paper) setting.
        profiles: built-in named profiles (``{"cpu": {...overrides}}``), merged under the
            tables of ``<package>/configs/<name>.toml`` (shipped beside the module) and of the
            user's ``--config-dir`` (:mod:`harness.registry`). ``"tiny"`` is the contract checks'
            config (:mod:`harness.testing`): it must fit a few hundred rows in seconds on a CPU (a
            smoke test, never a score); every plug-in declares it.
        search_space: hyperparameters ``harness tune`` may search, ``{field: entry}`` in the format
            of a ``[search_space]`` table of those files (which override it entry by entry), e.g.
            ``{"lr": {"low": 1e-4, "high": 1e-2, "log": True}, "batch_size": {"choices": [128,
            256]}}``; see :mod:`harness.tune` and
            :func:`harness.registry.load_search_space`. Empty: only the TOML table counts.
        paper_num_parameters: the trainable parameter count the paper / write-up reports for the
            reference model; :meth:`num_parameters` of the ``paper`` profile must equal it (checked
            by :mod:`harness.testing`). None: no published count (e.g. a baseline).
        uses_accelerator: whether a fold job of this method is placed on a GPU of its own with
            ``harness run --jobs N`` (:func:`harness.runner.uses_accelerator`); None (default):
            decided by ``framework`` (pytorch, tensorflow, jax: yes).

    Args:
        config: the configuration (defaults to ``Config()``).
        seed: random seed for everything the method draws.
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, ``"tpu"`` or ``"mps"``; methods without an
            accelerator path ignore it.
        work_dir: a directory the method may use for checkpoints during :meth:`fit` (resumable
            fits); None disables checkpointing.
    """

    name: ClassVar[str] = ""
    framework: ClassVar[str] = "numpy"
    Config: ClassVar[type[MethodConfig]] = MethodConfig
    profiles: ClassVar[dict[str, dict[str, Any]]] = {}
    search_space: ClassVar[dict[str, dict[str, Any]]] = {}
    paper_num_parameters: ClassVar[int | None] = None
    uses_accelerator: ClassVar[bool | None] = None
    #: True where ``predict`` post-processes over the rows of the call (e.g. a quantile transform),
    #: so a row's prediction depends on the other rows; ``harness predict`` then predicts the whole
    #: input in one call per fold and says so in its header.
    predictions_depend_on_set: bool = False
    #: the scale of ``predict``'s output when it is not the training target's (None), e.g.
    #: ``"normal CDF level in [0, 1]"``; ``harness predict`` writes it into its header.
    prediction_units: str | None = None
    #: where :meth:`fit` sends its per-epoch / per-boosting-round metrics (:mod:`harness.tracking`):
    #: ``"csv"`` (always: ``work_dir/metrics.csv``), plus ``"tensorboard"`` / ``"mlflow"``. A runtime
    #: choice, not part of the recipe or the run's identity: the runner sets it on each fold's
    #: instance from ``harness run --logger``; a plug-in opens its fit's log with
    #: :func:`harness.tracking.open_method_log` (PyTorch plug-ins: :class:`harness.training.SeqTrainer` does).
    #: Nothing is written when ``work_dir`` is None.
    loggers: tuple[str, ...] = ("csv",)

    def __init__(self, config: MethodConfig | None = None, *, seed: int = 0, device: str = "auto",
                 work_dir: str | os.PathLike | None = None) -> None:
        self.config = config if config is not None else self.Config()
        if not isinstance(self.config, self.Config):
            raise TypeError(f"{self.name}: config must be {self.Config.__name__}, got {type(self.config).__name__}")
        self.seed = seed
        self.device = device
        self.work_dir = Path(work_dir) if work_dir is not None else None

    @abc.abstractmethod
    def fit(self, train: SeqTable, valid: SeqTable | None = None) -> None:
        """Train on ``train`` (``train.y`` set). ``valid``, when given, is used for early stopping
        and model selection; without it a method that needs one splits ``train`` itself."""

    @abc.abstractmethod
    def predict(self, seqs: SeqTable) -> np.ndarray:
        """Predict expression. Returns ``(len(seqs),) float64`` raw (not post-processed) outputs."""

    def num_parameters(self) -> int | None:
        """Trainable parameter count of the model this config builds (None where it has no meaning)."""
        return None

    # ----- persistence -------------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> None:
        """Save to directory ``path``: ``method.json`` (name, config, seed) plus :meth:`_save_state`."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        self._save_state(path)
        write_json(path / "method.json", {"name": self.name, "seed": self.seed,
                                          "config": dataclasses.asdict(self.config)})

    @classmethod
    def load(cls, path: str | os.PathLike, device: str = "auto") -> "Method":
        """Load a method saved by :meth:`save`.

        Raises:
            FileNotFoundError: ``path/method.json`` is missing.
            ValueError: the saved method is not this class's.
        """
        path = Path(path)
        meta = read_json(path / "method.json")
        if cls.name and meta["name"] != cls.name:
            raise ValueError(f"{path}: holds method {meta['name']!r}, not {cls.name!r}")
        method = cls(cls.Config(**meta["config"]), seed=meta["seed"], device=device)
        method._load_state(path)
        return method

    @abc.abstractmethod
    def _save_state(self, path: Path) -> None:
        """Write the fitted state (weights, estimators) into directory ``path``."""

    @abc.abstractmethod
    def _load_state(self, path: Path) -> None:
        """Read what :meth:`_save_state` wrote."""
