"""``harness tune``: an Optuna search over a method's declared hyperparameter space.

This module is the study: the objective, pruning, resuming and the result. The profile it writes
is :mod:`harness.tune_profile`, the trials table :mod:`harness.tune_table`, the command line
:mod:`harness.cli.tune`, and the search-space language :mod:`harness.search_space`.

Search space (data, not code)
    Table ``[search_space]`` of the method's profile files, one entry per field of the method's
    ``Config`` dataclass, over the class attribute :attr:`harness.method.Method.search_space` (same
    format; a TOML entry for a field replaces the class's): the file its package ships
    (``<package>/configs/<method>.toml``), then the one in the user's config directory
    (:func:`harness.registry.load_search_space`). Entry forms:

    * ``lr = { low = 1e-4, high = 1e-2, log = true }`` -- a float range (``log`` optional);
    * ``dropout = { low = 0.0, high = 0.5, step = 0.05 }`` -- a float range on a grid;
    * ``channels = { low = 16, high = 128, step = 16, type = "int" }`` -- an integer range
      (``type`` may be left out when both bounds are integers and the field's default is an int);
    * ``batch_size = { choices = [128, 256, 512] }`` -- categorical; choices may also be arrays
      (``block_sizes = { choices = [[32, 16, 16], [64, 32, 32]] }``), passed to Optuna as their
      JSON text;
    * ``alphas = { value = [] }`` -- fixed in every trial, not searched (e.g. to switch off a
      method's own internal grid so that a searched ``alpha`` takes effect).

    :func:`harness.search_space.parse_search_space` checks each entry against the ``Config`` fields and
    :func:`tune` checks every bound / choice against the base profile (the config must accept
    it); each error names the file (or class) and the key.

Objective
    The training file is split once by :func:`harness.splits.make_assignment` (hold-out,
    ``holdout_fraction``, seeded by ``seed``): exactly the split of ``harness run --split holdout
    --seed SEED``. Every trial builds ``Config`` = base profile + fixed entries + sampled values +
    ``overrides`` (``--set``), fits the method on the training part as ``harness run`` does
    (``fit(train)`` without a validation table, so a method's early stopping uses its own internal
    split and never sees the hold-out rows) with ``seed``, predicts the hold-out rows and returns
    Pearson r + Spearman rho (a float in [-2, 2], maximised). Every trial uses the same seed, so
    trials differ only in their hyperparameters. A trial whose config the method refuses, or whose
    predictions are not finite (a diverged fit), is recorded as FAIL and counts as finished; any
    other exception stops the study with that error.

    Note: the tuned profile's ``harness run --split holdout --seed SEED`` OOF score is measured on
    the rows the search selected on, so it is optimistic; the test-set boards are unaffected.

Pruning (honest about what it does)
    Optuna's :class:`~optuna.pruners.MedianPruner` (``pruner="median"``): after
    :data:`PRUNE_STARTUP_TRIALS` finished trials, a trial whose intermediate value at an epoch is
    below the median of the earlier completed trials at that epoch is stopped (state PRUNED); the
    first :data:`PRUNE_WARMUP_EPOCHS` epoch(s) are never pruned. Intermediate values are the
    method's *own* per-epoch validation Pearson r + Spearman rho (on its internal validation split,
    the same rows in every trial), reported live only for the PyTorch plug-ins: the tuner appends
    its reporter to the instance's ``epoch_callbacks``, which
    :meth:`harness.torch_method.TorchMethod.make_trainer` hands to the
    :class:`harness.training.SeqTrainer` that calls it with each epoch's record (``{"epoch",
    "valid_r", "valid_rho", ...}``).
    LegNet fits on every row (no internal validation), so its records carry no validation values
    and it is not pruned. For other methods (k-mer baselines, the Keras plug-in) nothing can be
    reported during a fit: their trials always run to completion; a ``history`` list of such
    records left on the method after ``fit`` is recorded as intermediate values afterwards (for
    inspection only, no pruning).

Resuming
    The study lives in ``storage`` (an Optuna storage URL; default
    ``sqlite:///runs/tune/<study-name>.db``) under ``study_name`` (default
    ``<method>-<profile>-<train stem>-s<seed>``). Re-running the same command continues it: finished
    trials (COMPLETE, PRUNED and counted FAIL) count toward ``trials``, so ``--trials 20`` after a
    10-trial run adds 10. The study records what it was created for (method, base config, training
    data fingerprint, split, search space, ``--set`` values) and refuses to continue with anything
    else; of the base config only the recipe counts (:func:`harness.method.config_parts`): a
    change of its runtime fields (prediction batch, compile, time budget, threads) continues the
    study with a console note. Trials of a killed process stay RUNNING until Optuna's heartbeat (60 s, grace 180 s)
    marks them FAIL on a later resume; they never count. The sampler (TPE) is seeded with ``seed +
    number of trials so far``, so a run is reproducible given the study's history.

Result
    The best trial's config is written as profile ``[<profile_name>]`` (default ``tuned``) into
    ``out`` (default ``<config_dir>/<method>.toml``: the user's config directory, ``--config-dir``,
    else ``$HARNESS_CONFIG``, else :data:`DEFAULT_CONFIG_DIR`; never into a plug-in's package,
    whose shipped profiles are read-only data) with :mod:`tomlkit`, keeping every other table and
    comment of the file; the table holds every field that differs from the ``Config`` defaults
    (the base profile's values plus the tuned ones), so ``harness run --methods NAME --profile
    tuned --config-dir <config_dir>`` reproduces the trial's config (less the ``--set`` values,
    which are trial-only and noted in the table's comment). The write is atomic
    (:func:`harness.io.write_text`) and is verified by resolving the profile back through
    :func:`harness.registry.load_profile`.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import shutil
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np
from rich.console import Console
from rich.markup import escape
from rich.panel import Panel

from . import registry
from .method import Method, MethodConfig, config_changes, config_parts
from .rundir import LOGS
from .tracking import check_loggers, keep_logs
from .scoring.scorer import pearson, spearman
from .search_space import SearchSpace, check_space, plain_value
from .splits import SplitSpec, fingerprint, make_assignment
from .tune_profile import profile_header, profile_values, write_profile
from .tune_table import format_value, trials_table

if TYPE_CHECKING:  # pragma: no cover
    import optuna

#: finished trials before the median pruner may prune anything.
PRUNE_STARTUP_TRIALS = 2
#: leading epochs of a trial that are never pruned.
PRUNE_WARMUP_EPOCHS = 1
#: default name of the profile table the best config is written to.
DEFAULT_PROFILE_NAME = "tuned"
#: the user's config directory of ``harness tune`` when neither ``--config-dir`` nor
#: ``$HARNESS_CONFIG`` names one (relative to the working directory, beside the default study
#: storage ``runs/tune/<study>.db``); ``harness run --config-dir runs/tune/configs`` reads it.
DEFAULT_CONFIG_DIR = Path("runs") / "tune" / "configs"
#: profile names ``harness tune`` refuses to overwrite (besides the base profile).
PROTECTED_PROFILES = frozenset({"default", "paper"}) | registry.RESERVED_TABLES
_USER_ATTR = "harness"


class TrialFailed(Exception):
    """A trial that finished without a usable value (refused config, non-finite predictions);
    recorded as FAIL, counted as finished, and the study goes on."""


# ----------------------------------------------------------------------------------------------
# the study
# ----------------------------------------------------------------------------------------------
@dataclass
class TuneSpec:
    """Everything :func:`tune` needs (the options of ``harness tune``).

    Attributes:
        method: registered method name.
        trials: finished trials the study should have (resumed trials included), >= 1.
        data_dir: data directory whose ``train_sequences.txt`` is the default training file; None
            with ``train`` None: the simulated default data.
        train: the training file (``sequence<TAB>expression``).
        profile: base profile the sampled values are applied on top of.
        profile_name: the table the best config is written to.
        storage: Optuna storage URL (``sqlite:///path.db``; ``"memory"``: in-memory, not
            resumable); None: ``sqlite:///runs/tune/<study_name>.db``.
        study_name: None: ``<method>-<profile>-<train stem>-s<seed>``.
        seed: split seed, the method's seed in every trial, and the sampler's seed base.
        device: passed to the method (``auto``, ``cpu``, ``cuda``, ...).
        timeout: stop starting new trials after this many seconds (a running trial finishes).
        out: TOML file the profile is written to (default ``<config_dir>/<method>.toml``); refused
            inside the method's package.
        holdout_fraction: share of the training rows held out for the objective.
        overrides: trial-only config values (``--set``), e.g. ``{"max_train_seconds": 60}``.
        pruner: ``"median"`` or ``"none"``.
        base_trial: enqueue the base profile's own values as the first trial of a new study (the
            searched parameters whose base value lies inside the space).
        enqueue: further parameter sets (``{field: value}``) to evaluate first in a new study.
        config_dir: the user's config directory: its ``<method>.toml`` tables are layered over the
            shipped profiles and search space, and the profile is written there (None:
            :data:`DEFAULT_CONFIG_DIR`).
        skip_bad_rows: drop bad training rows instead of failing.
        loggers: where each trial's fit sends its per-epoch metrics (:mod:`harness.tracking`,
            ``--logger``): empty (default) keeps no logs and gives the fit no work directory, as
            before; otherwise trial ``N``'s fit gets ``runs/tune/<study>/trial<N>/work`` and its logs
            end in ``runs/tune/<study>/trial<N>/logs/`` (the work directory is deleted).
    """

    method: str
    trials: int
    data_dir: Path | None = None
    train: Path | None = None
    profile: str = "cpu"
    profile_name: str = DEFAULT_PROFILE_NAME
    storage: str | None = None
    study_name: str | None = None
    seed: int = 0
    device: str = "auto"
    timeout: float | None = None
    out: Path | None = None
    holdout_fraction: float = 0.1
    overrides: dict[str, Any] = field(default_factory=dict)
    pruner: str = "median"
    base_trial: bool = True
    enqueue: list[dict[str, Any]] = field(default_factory=list)
    config_dir: Path | None = None
    skip_bad_rows: bool = False
    loggers: tuple[str, ...] = ()


@dataclass
class TuneResult:
    """What :func:`tune` did.

    Attributes:
        study_name, storage: where the study lives.
        n_finished: counted trials (COMPLETE + PRUNED + counted FAIL); n_complete, n_pruned,
            n_failed: by state (n_failed counts every FAIL).
        n_new: trials this call ran.
        best_trial: number of the best trial (None without a completed trial).
        best_value: its validation Pearson r + Spearman rho; best_r, best_rho: the two parts.
        best_params: its searched values (config form).
        config: the config written as the profile (base + fixed + best values; no ``overrides``).
        profile_path, profile_name: where it was written (None: nothing written).
        seconds: wall time of this call.
    """

    study_name: str
    storage: str
    n_finished: int
    n_complete: int
    n_pruned: int
    n_failed: int
    n_new: int
    best_trial: int | None
    best_value: float | None
    best_r: float | None
    best_rho: float | None
    best_params: dict[str, Any]
    config: MethodConfig | None
    profile_path: Path | None
    profile_name: str | None
    seconds: float


def tune(spec: TuneSpec, console: Console | None = None) -> TuneResult:
    """Run (or continue) the study of ``spec``, print the trials table, write the best profile.

    Returns:
        A :class:`TuneResult`.

    Raises:
        KeyError: unknown method.
        ValueError: bad search space (file and key named), empty search space, bad ``overrides``
            or ``profile_name``, ``out`` inside the method's package, a bad storage URL, a stored
            study created for another method / base recipe / data / split / space, or ``trials`` < 1.
        DataError: bad or missing training data.
        RuntimeError: no trial of the study completed (nothing written), or the written profile
            does not resolve back to the tuned config.
        Exception: whatever a trial's fit raises other than the counted failures (the study
            keeps the trial as FAIL and stops).
    """
    import optuna

    console = console or Console()
    t_start = time.perf_counter()
    if spec.trials < 1:
        raise ValueError(f"--trials must be >= 1, got {spec.trials}")
    if spec.pruner not in ("median", "none"):
        raise ValueError(f"pruner must be 'median' or 'none', got {spec.pruner!r}")
    cls = registry.get(spec.method)
    if spec.loggers:
        check_loggers(spec.loggers)  # a missing tensorboard / mlflow package: before any work
    config_dir = Path(spec.config_dir) if spec.config_dir is not None else DEFAULT_CONFIG_DIR
    config_path = registry.config_file(cls, config_dir)
    out = Path(spec.out) if spec.out is not None else config_path
    _refuse_package_target(cls, out)
    if spec.profile_name in PROTECTED_PROFILES or spec.profile_name == spec.profile:
        raise ValueError(f"--profile-name {spec.profile_name!r} would overwrite "
                         f"{'the base profile' if spec.profile_name == spec.profile else 'a reserved table'}; "
                         "choose another name (default 'tuned')")
    space = registry.load_search_space(cls, config_dir)
    if not space.searched:
        raise ValueError(f"{cls.name} declares no searchable parameters: add a [search_space] table to "
                         f"{config_path} (e.g. lr = {{ low = 1e-4, high = 1e-2, log = true }}) "
                         f"or a search_space class attribute")
    base = registry.load_profile(cls, spec.profile, config_dir)
    base_fixed = check_space(space, base.config, spec.profile)
    overrides = _check_overrides(cls, spec.overrides, space, base_fixed, spec.profile)

    train, train_path, simulated = _load_train(spec, console)
    assignment = make_assignment(len(train), SplitSpec("holdout", holdout_fraction=spec.holdout_fraction,
                                                       seed=spec.seed))
    held = assignment == 0
    fit_rows, held_rows = train.subset(~held), train.subset(held)

    study_name = spec.study_name or f"{cls.name}-{spec.profile}-{train_path.stem}-s{spec.seed}"
    storage_url = spec.storage or f"sqlite:///runs/tune/{study_name}.db"
    base_recipe, base_runtime = config_parts(base.config)
    attrs = {"method": cls.name, "profile": spec.profile, "base_config": base_recipe, "base_runtime": base_runtime,
             "train": str(train_path.resolve()), "train_fingerprint": fingerprint(train), "n_train": len(train),
             "holdout_fraction": spec.holdout_fraction, "seed": spec.seed, "search_space": space.declaration(),
             "overrides": plain_value(overrides)}
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = _open_study(storage_url, study_name, attrs, spec, space)
    saved_runtime = study.user_attrs[_USER_ATTR].get("base_runtime")
    if saved_runtime is not None and saved_runtime != base_runtime:
        console.print(escape(f"study {study_name}: runtime settings of profile {spec.profile!r} changed since it was "
                             f"created ({', '.join(config_changes(saved_runtime, base_runtime))}); the recipe is the "
                             "same, so the study continues; new trials use the new values"))
    if spec.pruner == "median":
        study.pruner = optuna.pruners.MedianPruner(n_startup_trials=PRUNE_STARTUP_TRIALS,
                                                   n_warmup_steps=PRUNE_WARMUP_EPOCHS + 1)
    else:
        study.pruner = optuna.pruners.NopPruner()
    study.sampler = optuna.samplers.TPESampler(seed=spec.seed + len(study.trials),
                                               n_startup_trials=max(2, min(10, spec.trials // 3)))

    done = _counted(study)
    remaining = spec.trials - done
    console.print(escape(f"study {study_name} ({storage_url}): {cls.name} on top of profile {spec.profile!r} "
                         f"({base.source}); {len(fit_rows):,} training / {len(held_rows):,} hold-out rows of "
                         f"{train_path} (seed {spec.seed}); searching {', '.join(space.searched)}"
                         + (f"; trial-only --set {overrides}" if overrides else "")
                         + (f"; {done} trial(s) already finished" if done else "")))
    objective = _Objective(cls, space, base_fixed, overrides, fit_rows, held_rows, spec, prune=spec.pruner == "median")
    objective.log_root = DEFAULT_CONFIG_DIR.parent / study_name if spec.loggers else None
    n_before = _n_started(study)
    if remaining > 0:
        stop = functools.partial(_stop_when_done, target=spec.trials)
        log = functools.partial(_log_trial, console=console, space=space)
        study.optimize(objective, n_trials=remaining, timeout=spec.timeout, catch=(TrialFailed,),
                       callbacks=[log, stop], gc_after_trial=True)
    n_new = _n_started(study) - n_before

    trials = study.get_trials(deepcopy=False)
    console.print(trials_table(trials, space, title=f"{study_name}: {cls.name} trials"
                               + (" (SIMULATED data)" if simulated else "")))
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    states = [t.state for t in trials]
    result = TuneResult(study_name, storage_url, _counted(study), len(complete),
                        states.count(optuna.trial.TrialState.PRUNED), states.count(optuna.trial.TrialState.FAIL),
                        n_new, None, None, None, None, {}, None, None, None, 0.0)
    if not complete:
        raise RuntimeError(f"study {study_name!r}: no trial completed ({len(trials)} trials: "
                           f"{result.n_pruned} pruned, {result.n_failed} failed); nothing written")
    best = study.best_trial
    best_params = space.decode(best.params)
    config = dataclasses.replace(base_fixed, **best_params)
    header = profile_header(study_name, storage_url, best, result.n_finished, spec.profile, spec.holdout_fraction,
                            spec.seed, train_path, overrides, space)
    write_profile(out, spec.profile_name, profile_values(cls, config, spec.profile_name, always=space.params), header)
    if out.name == f"{cls.name}.toml":
        resolved = registry.load_profile(cls, spec.profile_name, out.parent).config
        if resolved != config:
            raise RuntimeError(f"{out} [{spec.profile_name}] resolves to {resolved}, not the tuned {config}")
    result.best_trial, result.best_value = best.number, float(best.value)
    result.best_r, result.best_rho = best.user_attrs.get("r"), best.user_attrs.get("rho")
    result.best_params, result.config = best_params, config
    result.profile_path, result.profile_name = out, spec.profile_name
    result.seconds = time.perf_counter() - t_start
    console.print(f"best: trial {best.number}, validation r + ρ = [bold]{best.value:.4f}[/] "
                  f"(r {result.best_r:.4f}, ρ {result.best_rho:.4f}) with "
                  + escape(f"{', '.join(f'{k}={format_value(v)}' for k, v in best_params.items())}; "
                           f"{result.n_finished} finished trials ({result.n_complete} complete, {result.n_pruned} "
                           f"pruned, {result.n_failed} failed), {n_new} run now in {result.seconds:.1f} s"))
    console.print(escape(f"wrote profile [{spec.profile_name}] to {out}: harness run --methods {cls.name} "
                         f"--profile {spec.profile_name} --config-dir {out.parent}"
                         + ("" if out.name == f"{cls.name}.toml" else f" (after copying the table into "
                                                                     f"{out.parent}/{cls.name}.toml)")))
    return result


def _refuse_package_target(cls: type[Method], out: Path) -> None:
    """Refuse to write a profile into the package that ships ``cls`` (its profiles are package
    data: an install overwrites them, and a checkout's are tracked by git).

    Raises:
        ValueError: ``out`` lies inside the directory of the method's package.
    """
    shipped = registry.shipped_file(cls)
    if shipped is None or not isinstance(shipped[1], Path):  # a zip import: nothing there can be written anyway
        return
    package_dir = shipped[1].parent.parent.resolve()
    if out.resolve().is_relative_to(package_dir):
        raise ValueError(f"--out {out}: inside the package {package_dir.name} that ships {cls.name}'s profiles "
                         f"({shipped[0]}); tuned profiles go in your config directory (--config-dir DIR or "
                         f"${registry.CONFIG_ENV}; default {DEFAULT_CONFIG_DIR})")


def _load_train(spec: TuneSpec, console: Console):
    from .data import DataError
    from .data.simulate import default_data_dir, is_simulated
    from .data.testset import TRAIN_FILE
    from .runner import load_train_file

    if spec.train is not None:
        train_path, simulated = Path(spec.train), False
    else:
        data_dir = Path(spec.data_dir) if spec.data_dir is not None else default_data_dir()
        train_path, simulated = data_dir / TRAIN_FILE, spec.data_dir is None or is_simulated(data_dir)
    if simulated:
        console.print(Panel(f"SIMULATED training data generated by the harness ({train_path}): tuned values say "
                            "nothing about the challenge. Pass --data DIR or --train FILE for real data.",
                            title="simulated data", style="yellow"))
    train = load_train_file(train_path, spec.skip_bad_rows, console)
    if len(train) < 20:
        raise DataError(f"{train_path}: {len(train)} training rows; tuning needs at least 20")
    return train, train_path, simulated


def _check_overrides(cls: type[Method], overrides: dict[str, Any], space: SearchSpace, base: MethodConfig,
                     profile: str) -> dict[str, Any]:
    known = {f.name for f in dataclasses.fields(cls.Config)}
    for key in overrides:
        if key not in known:
            raise ValueError(f"--set {key}: not a field of {cls.Config.__name__} (fields: {', '.join(sorted(known))})")
        if key in space.params:
            raise ValueError(f"--set {key}: {key} is in the search space ({space.params[key].source}); "
                             "remove one of the two")
    try:
        dataclasses.replace(base, **overrides)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"--set {overrides} is refused on top of profile {profile!r}: {exc}") from exc
    return dict(overrides)


def _open_study(storage_url: str, study_name: str, attrs: dict, spec: TuneSpec, space: SearchSpace) -> "optuna.Study":
    import optuna

    if storage_url == "memory":
        storage = None
    else:
        if storage_url.startswith("sqlite:///"):
            db = storage_url[len("sqlite:///"):]
            if db and db != ":memory:":
                Path(db).parent.mkdir(parents=True, exist_ok=True)
        try:
            with warnings.catch_warnings():  # the heartbeat is "experimental" in Optuna 3-5
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                storage = optuna.storages.RDBStorage(storage_url, heartbeat_interval=60, grace_period=180)
        except Exception as exc:  # noqa: BLE001 - SQLAlchemy raises many types for a bad URL
            raise ValueError(f"--storage {storage_url!r}: {type(exc).__name__}: {exc}") from exc
    study = optuna.create_study(storage=storage, study_name=study_name, direction="maximize", load_if_exists=True)
    saved = study.user_attrs.get(_USER_ATTR)
    if saved is None:
        if study.trials:
            raise ValueError(f"study {study_name!r} in {storage_url} was not created by `harness tune`; "
                             "use another --study-name")
        study.set_user_attr(_USER_ATTR, attrs)
        enqueue = []
        if spec.base_trial:
            base_values = {**attrs["base_config"], **attrs["base_runtime"]}
            point = {}
            for name in space.searched:
                value = space.params[name].encode(base_values.get(name))
                if value is not None:
                    point[name] = value
            if point:
                enqueue.append((point, "base profile"))
        for i, values in enumerate(spec.enqueue):
            point = {}
            for name, value in values.items():
                p = space.params.get(name)
                if p is None or p.kind == "fixed":
                    raise ValueError(f"enqueued trial {i + 1}: {name!r} is not a searched parameter")
                encoded = p.encode(value)
                if encoded is None:
                    raise ValueError(f"enqueued trial {i + 1}: {name} = {value!r} lies outside {p.describe()}")
                point[name] = encoded
            enqueue.append((point, f"enqueued {i + 1}"))
        for point, why in enqueue:
            study.enqueue_trial(point, user_attrs={"enqueued": why})
        return study
    if "base_runtime" not in saved and isinstance(saved.get("base_config"), dict):  # created before the split
        runtime = set(attrs["base_runtime"])
        saved = {**saved, "base_config": {k: v for k, v in saved["base_config"].items() if k not in runtime}}
    diff = [k for k in attrs if k != "base_runtime"
            and json.dumps(saved.get(k), sort_keys=True) != json.dumps(attrs[k], sort_keys=True)]
    if diff:
        detail = "; ".join(f"{k}: saved {_short(saved.get(k))}, now {_short(attrs[k])}" for k in diff)
        raise ValueError(f"study {study_name!r} in {storage_url} was created for other {', '.join(diff)} ({detail}); "
                         "use another --study-name (or --storage) to start a new study")
    return study


def _short(value: Any, limit: int = 120) -> str:
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _n_started(study: "optuna.Study") -> int:
    from optuna.trial import TrialState

    return sum(1 for t in study.get_trials(deepcopy=False) if t.state != TrialState.WAITING)


def _counted(study: "optuna.Study") -> int:
    """Finished trials: COMPLETE, PRUNED, and FAIL marked ``counted`` (refused config, diverged)."""
    from optuna.trial import TrialState

    return sum(1 for t in study.get_trials(deepcopy=False)
               if t.state in (TrialState.COMPLETE, TrialState.PRUNED)
               or (t.state == TrialState.FAIL and t.user_attrs.get("counted")))


def _stop_when_done(study: "optuna.Study", trial: "optuna.trial.FrozenTrial", target: int) -> None:
    if _counted(study) >= target:
        study.stop()


def _log_trial(study: "optuna.Study", trial: "optuna.trial.FrozenTrial", console: Console, space: SearchSpace) -> None:
    params = ", ".join(f"{k}={format_value(v)}" for k, v in space.decode(trial.params).items())
    state = trial.state.name
    if state == "COMPLETE":
        what = f"r + ρ = {trial.value:.4f} (r {trial.user_attrs.get('r', math.nan):.4f}, ρ {trial.user_attrs.get('rho', math.nan):.4f})"
    elif state == "PRUNED":
        what = f"at epoch {trial.user_attrs.get('pruned_at_epoch', '?')}"
    else:
        what = trial.user_attrs.get("error", "")
    console.print(escape(f"trial {trial.number} {state} {what} in {trial.user_attrs.get('seconds', math.nan):.1f} s: "
                         f"{params}"))


class _EpochReporter:
    """``callback(record)`` for a training loop: reports ``valid_r + valid_rho`` of each epoch to
    the trial and raises :class:`optuna.TrialPruned` when the pruner says so."""

    def __init__(self, trial: "optuna.Trial", prune: bool) -> None:
        self.trial, self.prune = trial, prune
        self.steps: list[int] = []
        self.live = False

    def __call__(self, record: dict) -> None:
        import optuna

        value = _epoch_value(record)
        if value is None:
            return
        step = int(record.get("epoch") or len(self.steps) + 1)
        if step in self.steps:
            return
        self.trial.report(value, step)
        self.steps.append(step)
        if self.prune and self.trial.should_prune():
            self.trial.set_user_attr("pruned_at_epoch", step)
            raise optuna.TrialPruned(f"epoch {step}: validation r + rho {value:.4f} below the median of earlier "
                                     "trials at this epoch")

    def report_history(self, history: Any) -> None:
        """Record a finished fit's per-epoch history (no pruning: the fit is over)."""
        if self.steps or not isinstance(history, list):
            return
        prune, self.prune = self.prune, False
        try:
            for record in history:
                if isinstance(record, dict):
                    self(record)
        finally:
            self.prune = prune


def _epoch_value(record: dict) -> float | None:
    r, rho = record.get("valid_r"), record.get("valid_rho")
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in (r, rho)):
        return None
    return float(r) + float(rho)


def attach_reporter(method: Method, callback: Callable[[dict], None]) -> bool:
    """Make ``callback`` see every epoch record of ``method``'s next fit, where the method allows.

    The declared entry point: a :class:`harness.torch_method.TorchMethod` (``framework ==
    "pytorch"``) builds every trainer of its ``fit`` with :meth:`~harness.torch_method.TorchMethod.
    make_trainer`, which passes the instance's ``epoch_callbacks``; ``callback`` is appended there.
    Other methods (k-mer baselines, the Keras plug-in) have no per-epoch hook.

    Returns:
        True when ``callback`` was attached (a PyTorch plug-in), else False.
    """
    if method.framework != "pytorch":
        return False
    from .torch_method import TorchMethod  # PyTorch plug-ins only: torch is already imported

    if not isinstance(method, TorchMethod):
        return False
    method.epoch_callbacks.append(callback)
    if isinstance(callback, _EpochReporter):
        callback.live = True
    return True


class _Objective:
    """The trial function: config from the trial, fit, predict the hold-out, r + rho."""

    def __init__(self, cls, space, base_fixed, overrides, fit_rows, held_rows, spec: TuneSpec, prune: bool) -> None:
        self.cls, self.space, self.base_fixed, self.overrides = cls, space, base_fixed, overrides
        self.fit_rows, self.held_rows, self.spec, self.prune = fit_rows, held_rows, spec, prune
        #: trial N's fit logs to log_root/trial<N> (``TuneSpec.loggers``); None: no logs
        self.log_root: Path | None = None

    def __call__(self, trial: "optuna.Trial") -> float:
        t0 = time.perf_counter()
        params = self.space.suggest(trial)
        work = self.log_root / f"trial{trial.number}" / "work" if self.log_root is not None else None
        try:
            try:
                config = dataclasses.replace(self.base_fixed, **params, **self.overrides)
            except (ValueError, TypeError) as exc:
                self._fail(trial, f"config refused: {exc}")
            method = self.cls(config, seed=self.spec.seed, device=self.spec.device, work_dir=work)
            if work is not None:
                method.loggers = check_loggers(self.spec.loggers)
            reporter = _EpochReporter(trial, self.prune)
            attach_reporter(method, reporter)
            method.fit(self.fit_rows)
            fit_s = time.perf_counter() - t0
            if not reporter.live:
                reporter.report_history(getattr(method, "history", None))
            pred = np.asarray(method.predict(self.held_rows), dtype=np.float64)
            if pred.shape != (len(self.held_rows),):
                raise ValueError(f"{self.cls.name}.predict returned shape {pred.shape} for {len(self.held_rows)} "
                                 "hold-out rows")
            if not np.isfinite(pred).all():
                self._fail(trial, f"{int((~np.isfinite(pred)).sum())} non-finite hold-out predictions (diverged)")
            r, rho = pearson(pred, self.held_rows.y), spearman(pred, self.held_rows.y)
            trial.set_user_attr("r", r)
            trial.set_user_attr("rho", rho)
            trial.set_user_attr("fit_seconds", fit_s)
            trial.set_user_attr("epochs", len(reporter.steps))
            return r + rho
        finally:
            trial.set_user_attr("seconds", time.perf_counter() - t0)
            if work is not None and work.is_dir():  # keep the logs, drop the fit's checkpoints
                keep_logs(work, work.parent / LOGS, self.log_root)
                shutil.rmtree(work, ignore_errors=True)

    @staticmethod
    def _fail(trial: "optuna.Trial", message: str) -> None:
        trial.set_user_attr("counted", True)
        trial.set_user_attr("error", message)
        raise TrialFailed(message)
