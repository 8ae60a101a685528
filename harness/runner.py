"""``harness run``: fit every (method, fold), predict out-of-fold and test, score, tabulate.

Run directory layout (owned by :mod:`harness.rundir`; every file written atomically; a finished job whose
files verify is never redone)::

    run.json                      the run's settings and software versions ("format": "dream-harness run")
    run.lock                      held (flock, with the PID) while a process runs here: one at a time
    split.json, split.npy         the fold manifest shared by every method
    methods/<name>/config.json    the resolved profile: {"recipe": ..., "runtime": ...} (a resume
                                  compares the recipe only; harness.method.MethodConfig.RUNTIME_FIELDS)
    methods/<name>/fold<k>/model/ the fitted method (Method.save)
    methods/<name>/fold<k>/logs/  the fit's metric logs (harness.tracking: metrics.csv, and with
                                  --logger tensorboard/ or mlflow.db), written in fold<k>/work/
                                  during the fit, moved here when it is done; informative only
    methods/<name>/fold<k>/oof.npy, test.npy, done.json  (done.json: timings, held-out r and
                                  "files": the XXH3-128 manifest of oof.npy, test.npy and model/)
    methods/<name>/oof.npy        (N_train,) out-of-fold predictions, NaN where never held out;
                                  absent after ``--split none`` (no row held out)
    methods/<name>/test.npy       (N_test,) test predictions, mean over folds
    methods/<name>/scores.json    official scores per board + OOF Pearson/Spearman (null without
                                  OOF rows); an informative cache: reports re-score test.npy
    leaderboard.json

Each (method, fold) is one self-contained job (:class:`FoldJob`, :func:`run_fold`), dispatched by
:func:`harness.backend.dispatch` (``--backend local|dask|ray``, ``--jobs N``; a GPU job, :func:`job_gpus`,
runs alone on its own ``--gpus-per-job`` GPUs, a CPU job beside them): it carries paths and
the small config, never the data, so it can run in another process or on another machine that
shares the run directory. It memory-maps the training table through the cache
(:func:`harness.data.cache.load_training`), checks it against ``split.json``, reads ``split.npy``,
fits, writes its fold files atomically (the model directory through a temporary directory renamed
into place, ``done.json`` last: a fold without ``done.json`` is redone, and a job that crashed
left nothing that a resumed run would trust) and returns a small summary. The driver only
aggregates the fold files, in fold order, exactly as a sequential run does, so a seed gives the same
predictions on every backend (for methods whose numerics do not depend on how many threads
they are given: the backends start workers with different thread limits).

Nothing in a run directory is trusted (:func:`open_run_dir`, :func:`harness.rundir.verified_model_dir`): ``--out``
must be new, empty or a harness run (another program's directory is never written to); one
process at a time works in it (``run.lock``); a symbolic link inside it is refused, never
followed; a fold is skipped on resume only when its files match the digests its ``done.json``
recorded (:mod:`harness.integrity`), else it is redone and the console names the file and the
problem; and a fold's model is verified before anything loads it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import platform
import shutil
import socket
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.markup import escape
from rich.panel import Panel
from rich.text import Text

from . import __version__, registry
from .backend import JobError, Outcome, check_available, dispatch, gpu_slots, in_process, joins_cluster, visible_gpus
from .data import DataError, SeqTable, TestSet, load_test_set, read_table
from .data.testset import TEST_FILE, TRAIN_FILE
from .data.readers import BadRows
from .data.cache import load_training
from .integrity import manifest as file_manifest
from .io import DirLock, find_links, read_json, refuse_links, write_json, write_npy
from .tracking import check_loggers, keep_logs
from .method import Method, MethodConfig, config_changes, config_parts
from .report import leaderboard_table
from .rundir import LOCK_FILE, MANIFEST_KEY, MODEL, OOF, TEST, FoldDir, MethodDir, RunDir, fold_problem, load_predictions
from .scoring import BoardScore, score_boards
from .scoring.scorer import pearson, spearman
from .splits import SplitSpec, fingerprint, load_or_create


@dataclass
class RunSpec:
    """Everything ``harness run`` needs. ``data_dir=None`` means the simulated default data."""

    methods: list[str]
    data_dir: Path | None = None
    train: Path | None = None
    snv_pairs: Path | None = None
    split: SplitSpec = field(default_factory=SplitSpec)
    profile: str = "default"
    device: str = "auto"
    out: Path | None = None
    skip_bad_rows: bool = False
    #: the user's profile directory (``--config-dir`` / ``$HARNESS_CONFIG``): ``<dir>/<method>.toml``
    #: tables layered over the profiles the method's package ships (:func:`harness.registry.load_profile`)
    config_dir: Path | None = None
    #: where the (method, fold) jobs run: ``local``, ``dask`` or ``ray`` (:mod:`harness.backend`)
    backend: str = "local"
    #: parallel jobs (local: worker processes, default 1 = in this process, one after another;
    #: dask/ray: workers or CPUs of a cluster started here, or a cap on a given cluster)
    jobs: int | None = None
    #: address of a running Dask scheduler (``--backend dask``); default ``$DASK_SCHEDULER_ADDRESS``
    scheduler: str | None = None
    #: GPUs each GPU job gets (``--gpus-per-job``; placement in :mod:`harness.backend`)
    gpus_per_job: int = 1
    #: devices of one fit (``--devices``): > 1 trains each fit of a PyTorch method with DDP over
    #: that many GPUs (the config's runtime field ``devices``, :class:`harness.training.RuntimeSettings`);
    #: its job gets that many GPUs (at least ``gpus_per_job``)
    devices: int = 1
    #: where fits send their per-epoch metrics (``--logger``; :mod:`harness.tracking`): ``csv``
    #: always, plus ``tensorboard`` / ``mlflow``. Runtime only: not recorded in the run's identity,
    #: a resumed run may use other loggers.
    loggers: tuple[str, ...] = ("csv",)


@dataclass
class FoldJob:
    """One (method, fold) fit: everything a worker needs, as paths and small objects (picklable).

    ``cls`` and ``config`` travel by reference to their module (the worker imports the plug-in),
    the training table and the split by path.
    """

    method: str
    cls: type[Method]
    config: MethodConfig
    profile_label: str
    fold: int
    n_folds: int
    seed: int
    device: str
    run_dir: str
    train_path: str
    skip_bad_rows: bool
    data_dir: str
    train_fingerprint: str
    #: GPUs the job asks for (:func:`job_gpus`): ``--gpus-per-job`` for a GPU job, 0 for a CPU job
    gpus: int = 0
    #: the loggers the fit writes its metrics to (:attr:`harness.method.Method.loggers`)
    loggers: tuple[str, ...] = ("csv",)

    def __str__(self) -> str:
        return f"{self.method} fold {self.fold + 1}/{self.n_folds}"

    @property
    def fold_dir(self) -> Path:
        return RunDir(self.run_dir).fold(self.method, self.fold).path


@dataclass
class MethodResult:
    """A method's scores on each board and its out-of-fold Pearson r / Spearman ρ over the
    ``oof_rows`` training rows that were held out; both None when no row was (``--split none``)."""

    boards: dict[str, BoardScore]
    oof_pearson: float | None
    oof_spearman: float | None
    oof_rows: int = 0

    def oof_dict(self) -> dict:
        """``{"oof_pearson", "oof_spearman", "oof_rows"}`` for JSON (None is written as null)."""
        return {"oof_pearson": self.oof_pearson, "oof_spearman": self.oof_spearman, "oof_rows": self.oof_rows}


def default_out(spec: RunSpec, data_dir: Path, simulated: bool) -> Path:
    """``runs/<data>-<train file>-<split>-<profile>-s<seed>``: the same command resumes the same run.
    ``<split>`` is ``holdout``, ``kfold<K>`` or ``none``."""
    data_label = "simulated" if simulated else data_dir.name
    train_label = spec.train.stem if spec.train else "train"
    split = f"kfold{spec.split.folds}" if spec.split.kind == "kfold" else spec.split.kind
    return Path("runs") / f"{data_label}-{train_label}-{split}-{spec.profile}-s{spec.split.seed}"


def run(spec: RunSpec, console: Console | None = None) -> dict[str, MethodResult]:
    """Run the spec end to end and return method -> :class:`MethodResult`.

    Arguments that cannot work (a negative seed, more folds than rows, a hold-out fraction leaving
    fewer than 2 training rows or no held-out row, an unavailable ``--device``, an ``--out`` that
    is a file, unwritable, or a non-empty directory that is not a harness run) are refused before
    anything is written. The run directory is locked (:class:`harness.io.DirLock`, ``run.lock``)
    for the whole run, links inside it are refused, and a finished fold is skipped only when its
    files match the digests in its ``done.json`` (else it is redone, and the console says why).

    Raises:
        DataError: bad or missing data files.
        KeyError: an unknown method name.
        ValueError: an argument that cannot work (named), or the output directory is not a harness
            run, holds a run with other data, split or profile, or holds a symbolic link
            (:class:`RunDirError`, :class:`harness.io.UnsafePath`; nothing is written then).
        harness.io.LockedError: another live process is running in the output directory.
        harness.backend.BackendUnavailable: the backend's package is not installed (before any work).
        harness.tracking.LoggerUnavailable: a ``loggers`` package (tensorboard, mlflow) is not
            installed (before any work).
        harness.backend.JobError: jobs failed (each named with method and fold) or a worker was lost;
            every finished job is kept, so the same call resumes.
    """
    with contextlib.ExitStack() as stack:  # holds the run directory's lock until the run ends
        return _run(spec, console or Console(), stack)


def _run(spec: RunSpec, console: Console, stack: contextlib.ExitStack) -> dict[str, MethodResult]:
    classes = {m: registry.get(m) for m in spec.methods}  # fail fast on unknown names
    check_available(spec.backend, spec.scheduler)  # and on a backend that is not installed
    check_loggers(spec.loggers)  # and on a --logger whose package is not installed
    check_arguments(spec)  # seed, jobs, device

    if spec.data_dir is None:
        from .data.simulate import default_data_dir

        data_dir = default_data_dir()
    else:
        data_dir = Path(spec.data_dir)
    train_path = Path(spec.train) if spec.train else data_dir / TRAIN_FILE
    train = load_train_file(train_path, spec.skip_bad_rows, console)  # bad input stops the run before any write
    check_split_fits(spec.split, len(train), train_path)
    test = load_test_set(data_dir, spec.snv_pairs)
    simulated = test.simulated  # the default data, or --data pointing at a simulated directory
    if simulated:
        console.print(Panel(f"SIMULATED data generated by the harness ({data_dir}): "
                            "scores on it say nothing about the challenge. Pass --data DIR (or set HARNESS_DATA) "
                            "for the real DREAM 2022 files.", title="simulated data", style="yellow"))
    out = Path(spec.out) if spec.out else default_out(spec, data_dir, simulated)
    profiles = {name: with_devices(registry.load_profile(cls, spec.profile, spec.config_dir), spec.devices)
                for name, cls in classes.items()}
    fresh = open_run_dir(out, stack, console)  # refuses a file, a foreign directory, links; locks
    if fresh:  # from now on the directory is recognisably a harness run
        _write_run_json(out, spec, data_dir, train_path, train, test, simulated)
    assignment = load_or_create(out, train, spec.split)
    train_fingerprint = read_json(RunDir(out).split_json, dict)["train_fingerprint"]
    for name, profile in profiles.items():  # every refusal before the first write of a resumed run
        _check_config(RunDir(out).method(name).path, name, profile)
    if not fresh:
        _write_run_json(out, spec, data_dir, train_path, train, test, simulated)
    console.print(f"run directory [bold]{out}[/]: {len(train):,} training rows ({train_path}), "
                  f"{len(test):,} test sequences, {spec.split.kind} split × {spec.split.n_folds}, SNV pairs: {test.snv_source}")

    out, train_path, data_dir = out.resolve(), train_path.resolve(), data_dir.resolve()  # jobs may run elsewhere
    jobs: list[FoldJob] = []
    for name, cls in classes.items():
        jobs += _method_jobs(name, cls, profiles[name], spec, out, train_path, data_dir, train_fingerprint, console)
    with _tables_known(train_path, spec.skip_bad_rows, train, train_fingerprint, data_dir, test):
        _run_jobs(jobs, spec, console)
    results = {name: _aggregate(name, out, train, test, assignment, spec.split.n_folds) for name in classes}

    # the terminal shows private and public (full is in the files); without public ids, full
    boards = [b for b in ("private", "public") if b in next(iter(results.values())).boards] or ["full"]
    rank_board = boards[0]
    extra = {m: {"OOF r": _fmt_oof(r.oof_pearson), "OOF ρ": _fmt_oof(r.oof_spearman)} for m, r in results.items()}
    title = "Leaderboard (SIMULATED data)" if simulated else "Leaderboard"
    table = leaderboard_table({m: r.boards for m, r in results.items()}, boards, rank_board, extra, title)
    if not spec.split.holds_out:
        table.caption += "\n--split none: every method trained on all training rows; no OOF (—)"
    console.print(table)
    write_json(out / "leaderboard.json", {m: {"boards": {b: s.to_dict() for b, s in r.boards.items()}, **r.oof_dict()}
                                         for m, r in results.items()})
    return results


def _fmt_oof(value: float | None) -> str:
    return "—" if value is None else f"{value:.4f}"


def load_train_file(path: Path, skip_bad_rows: bool, console: Console) -> SeqTable:
    """The training table of ``path`` (``sequence<TAB>expression`` lines) through the cache
    (:func:`harness.data.cache.load_training`); rows dropped under ``skip_bad_rows`` are counted
    on ``console``. Shared by ``harness run`` and ``harness tune``.

    Raises:
        DataError: ``path`` is not a file (``"<path>: no training file (pass --train FILE)"``), or,
            without ``skip_bad_rows``, a bad row (file, line and problem named).
    """
    if not path.is_file():
        raise DataError(f"{path}: no training file (pass --train FILE)")
    bad = BadRows()
    train = load_training(path, skip_bad_rows=skip_bad_rows, bad=bad)
    if bad.total:
        console.print(f"[yellow]skipped {bad.total} bad rows of {path}: {dict(bad.counts)}")
    return train


#: ``run.json`` key and value that mark a directory as a harness run.
RUN_FORMAT = ("format", "dream-harness run")
#: The run directory's lock file (:class:`harness.io.DirLock`).
#: Largest seed: scikit-learn's and NumPy's seeds are unsigned 32-bit; fold k uses seed + k.
MAX_SEED = 2**32 - 1


class RunDirError(ValueError):
    """``--out`` cannot be used as a run directory (a file, unwritable, or someone else's directory)."""


#: Frameworks whose methods use an accelerator when one is there (a method may say otherwise
#: with a ``uses_accelerator`` class attribute).
ACCELERATOR_FRAMEWORKS = frozenset({"pytorch", "tensorflow", "jax"})
#: ``--device`` values under which a method that uses an accelerator gets GPUs placed for it.
GPU_DEVICES = frozenset({"auto", "cuda", "gpu"})


def uses_accelerator(cls: type[Method]) -> bool:
    """Whether ``cls`` trains on an accelerator when one is there: its ``uses_accelerator`` class
    attribute when it has one, else whether its ``framework`` is one of
    :data:`ACCELERATOR_FRAMEWORKS` (the team networks: yes; the k-mer baselines, ``sklearn`` and
    ``lightgbm``: no)."""
    declared = getattr(cls, "uses_accelerator", None)
    return bool(declared) if declared is not None else cls.framework in ACCELERATOR_FRAMEWORKS


def with_devices(config: MethodConfig, devices: int) -> MethodConfig:
    """``config`` with its runtime field ``devices`` set (``--devices``; configs without one, e.g.
    the k-mer baselines, are returned unchanged)."""
    if devices > 1 and any(f.name == "devices" for f in dataclasses.fields(config)):
        return dataclasses.replace(config, devices=devices)
    return config


def job_gpus(cls: type[Method], device: str, gpus_per_job: int) -> int:
    """The GPUs a job of ``cls`` asks for under ``--device device``: ``gpus_per_job`` for a method
    that :func:`uses_accelerator` under ``auto``/``cuda``/``gpu``, else 0 (a CPU job; ``tpu``,
    ``mps`` and ``cpu`` are not placed on GPUs). Where the backend has no GPU, :func:`harness.backend.dispatch`
    runs the jobs of ``auto`` on CPUs."""
    return gpus_per_job if uses_accelerator(cls) and str(device).lower() in GPU_DEVICES else 0


def check_arguments(spec: RunSpec) -> None:
    """Refuse, before anything is read or written, a seed or job count that cannot work, a
    ``--device`` that this machine lacks (checked with :func:`harness.training.select_device`
    for devices other than ``auto``/``cpu``, when the jobs run on this machine; a given Dask or
    Ray cluster's workers may have devices this driver has not), and a ``--gpus-per-job`` that
    cannot be placed: more than 1 without a GPU device (``auto``/``cuda``), or more than the GPUs
    of this machine (:func:`harness.backend.visible_gpus`) when the jobs run on it. ``cuda:<i>``
    is refused with several jobs: the harness places the jobs on GPUs itself.

    Raises:
        ValueError: the argument, its value and the problem.
    """
    seed, n_folds = spec.split.seed, spec.split.n_folds
    if not 0 <= seed <= MAX_SEED - (n_folds - 1):
        raise ValueError(f"--seed {seed}: must be in 0..{MAX_SEED - (n_folds - 1):,} (fold k uses seed + k, "
                         f"and seeds are unsigned 32-bit)")
    if spec.jobs is not None and spec.jobs < 1:
        raise ValueError(f"--jobs {spec.jobs}: must be at least 1")
    if str(spec.device).lower() not in ("auto", "cpu") and not joins_cluster(spec.backend, spec.scheduler):
        from .training import select_device

        try:
            select_device(spec.device)
        except (RuntimeError, ValueError) as exc:
            raise ValueError(f"--device {spec.device}: {exc}; use --device auto (the best device here) "
                             "or cpu") from exc
    k, device = max(spec.gpus_per_job, spec.devices), str(spec.device).lower()
    if spec.gpus_per_job < 1 or spec.devices < 1:
        raise ValueError(f"--gpus-per-job {spec.gpus_per_job} / --devices {spec.devices}: must be at least 1")
    if spec.devices > 1 and device not in GPU_DEVICES:
        raise ValueError(f"--devices {spec.devices}: one fit on several GPUs needs --device auto or cuda, "
                         f"not {spec.device}")
    if k > 1 and device not in GPU_DEVICES:
        raise ValueError(f"--gpus-per-job {k}: GPUs are placed for --device auto or cuda, not {spec.device}")
    if device.startswith(("cuda:", "gpu:")) and not in_process(spec.backend, spec.jobs):
        raise ValueError(f"--device {spec.device}: names one GPU for every job, but with --jobs or --backend "
                         f"{spec.backend} the harness places each job on its own GPU(s): use --device cuda")
    if k > 1 and not joins_cluster(spec.backend, spec.scheduler):
        gpu_slots(visible_gpus(), k)  # ValueError: more GPUs per job than this machine has


def check_split_fits(split: SplitSpec, n_rows: int, train_path: Path) -> None:
    """Refuse a split that leaves a fold without a held-out row or with fewer than 2 training rows.

    The counts follow scikit-learn: ``KFold`` holds out ``ceil(n / folds)`` rows in the largest
    fold, ``train_test_split`` ``ceil(fraction * n)`` rows.

    Raises:
        ValueError: the option, the row count of ``train_path`` and what the split would leave.
    """
    if split.kind == "kfold":
        if split.folds > n_rows:
            raise ValueError(f"--folds {split.folds}: {train_path} has {n_rows:,} training rows, fewer than the "
                             "folds (each fold must hold out at least one row)")
        held, option = math.ceil(n_rows / split.folds), f"--folds {split.folds}"
    elif split.kind == "holdout":
        held, option = math.ceil(split.holdout_fraction * n_rows), f"--holdout-fraction {split.holdout_fraction}"
    else:  # no row held out
        held, option = 0, f"--split {split.kind}"
    if (split.kind != "none" and held < 1) or n_rows - held < 2:
        raise ValueError(f"{option}: holds out {held:,} of the {n_rows:,} training rows of {train_path}, leaving "
                         f"{n_rows - held:,} to train on; a fold needs at least 1 held-out row and 2 training rows")


def open_run_dir(out: Path, stack: contextlib.ExitStack, console: Console) -> bool:
    """Make or check the run directory ``out`` and lock it until ``stack`` closes; True when new.

    ``out`` may be new, empty, or a harness run (its ``run.json`` carries :data:`RUN_FORMAT`, or,
    from older versions, ``versions.harness``). Anything else is refused before the harness
    writes there: it never overwrites another program's files. The lock (``run.lock``) keeps a
    second process out while this one runs; a lock left by a dead process is taken over (the
    console says so). Links or special files anywhere inside are refused, never followed.

    Raises:
        RunDirError: ``out`` is a file, cannot be created or written, or is a non-empty directory
            that is not a harness run (the message names it and says why).
        harness.io.LockedError: a live process holds the lock.
        harness.io.UnsafePath: a symbolic link inside ``out``.
    """
    if out.exists() and not out.is_dir():
        raise RunDirError(f"--out {out}: exists and is not a directory; give a new or empty directory, or a "
                          "harness run to resume")
    try:
        if out.is_dir():
            _check_ours(out)  # before the lock file is written: nothing goes into someone else's directory
        out.mkdir(parents=True, exist_ok=True)
        lock = stack.enter_context(DirLock(out, LOCK_FILE))
    except OSError as exc:
        raise RunDirError(f"--out {out}: cannot create or write the run directory "
                          f"({exc.strerror or exc}: {exc.filename or out})") from exc
    if lock.took_over:
        console.print(f"[yellow]{out / LOCK_FILE}: taking over the lock of a run that ended without releasing it "
                      f"({escape(lock.took_over)}, no longer running)")
    find_links(out)
    return _check_ours(out)


def _check_ours(out: Path) -> bool:
    """True when ``out`` is empty (but for the lock file), False when it is a harness run.

    Raises:
        RunDirError: anything else (named, with what to do).
    """
    entries = [e for e in os.listdir(out) if e != LOCK_FILE]
    if not entries:
        return True
    run_json = RunDir(out).run_json
    if run_json.is_symlink() or not run_json.is_file():
        raise RunDirError(f"--out {out}: not empty and not a harness run directory (no run.json written by the "
                          "harness); refusing to write there: give a new or empty directory")
    try:
        meta = read_json(run_json, dict)
    except ValueError as exc:
        raise RunDirError(f"{run_json}: not a run.json written by the harness (not a JSON object); refusing to "
                          f"write in {out}: give a new or empty directory") from exc
    key, value = RUN_FORMAT
    if meta.get(key) != value and not (isinstance(meta.get("versions"), dict) and "harness" in meta["versions"]):
        raise RunDirError(f"{run_json}: not a run.json written by the harness (no {key!r}: {value!r}); refusing to "
                          f"write in {out}: give a new or empty directory")
    return False


def _check_config(method_dir: Path, name: str, profile) -> None:
    """Refuse a run directory where ``name`` ran with another recipe (nothing is written).

    Only the recipe is compared (:func:`harness.method.config_parts`); runtime fields
    (``RUNTIME_FIELDS``: prediction batch, compile, time budget, threads, display) may change
    between a run and its resume. A ``config.json`` of the earlier flat format (``"config"``: every
    field) is split by the method's current ``RUNTIME_FIELDS`` and compared the same way.

    Raises:
        ValueError: the recipe differs (the message names the fields), or ``config.json`` is not a
            JSON object with a ``recipe`` (or ``config``) object.
    """
    config_path = MethodDir(method_dir).config
    if config_path.is_file():
        saved = read_json(config_path, dict)
        saved_recipe, _ = _saved_parts(saved, config_path, type(profile.config))
        recipe, _ = config_parts(profile.config)
        if saved_recipe != recipe:
            changed = config_changes(saved_recipe, recipe)
            detail = ", ".join(changed[:6]) + (", ..." if len(changed) > 6 else "")
            raise ValueError(f"{config_path}: {name} was run here with another configuration (profile "
                             f"{saved.get('profile')!r}; recipe: {detail}); use another --out or remove {method_dir}")


def _saved_parts(saved: dict, config_path: Path, config_cls: type[MethodConfig]) -> tuple[dict, dict]:
    """``(recipe, runtime)`` stored in ``saved``, the object read from ``config_path`` (either format).

    Raises:
        ValueError: neither a ``recipe`` nor a ``config`` object in it.
    """
    if isinstance(saved.get("recipe"), dict):
        runtime = saved.get("runtime")
        return saved["recipe"], runtime if isinstance(runtime, dict) else {}
    if isinstance(saved.get("config"), dict):  # flat format of earlier versions
        fields = saved["config"]
        return ({k: v for k, v in fields.items() if k not in config_cls.RUNTIME_FIELDS},
                {k: v for k, v in fields.items() if k in config_cls.RUNTIME_FIELDS})
    raise ValueError(f"{config_path}: not a config.json written by the harness (no 'recipe' object)")


def _method_jobs(name: str, cls: type[Method], profile, spec: RunSpec, out: Path, train_path: Path, data_dir: Path,
                 train_fingerprint: str, console: Console) -> list[FoldJob]:
    """Write the method's ``config.json`` (``{"recipe": ..., "runtime": ...}``, checked by
    :func:`_check_config`) when new, or when the runtime fields changed since (console note; the
    earlier runtime values are kept under ``previous_runtime``); the jobs of its folds that are not
    done, or whose files fail verification (redone, with a console line naming the file and the
    problem). Folds done earlier keep the models they were fitted with."""
    method_dir = RunDir(out).method(name)
    config_path = method_dir.config
    recipe, runtime = config_parts(profile.config)
    record = {"method": name, "profile": spec.profile, "source": profile.source, "recipe": recipe, "runtime": runtime}
    if not config_path.is_file():
        write_json(config_path, record)
    else:
        saved = read_json(config_path, dict)
        _, saved_runtime = _saved_parts(saved, config_path, cls.Config)
        if saved_runtime != runtime or "recipe" not in saved:
            changed = config_changes(saved_runtime, runtime)
            if changed:
                console.print(escape(f"{name}: runtime settings changed since this run started ({', '.join(changed)}); "
                                     "the recipe is the same, so the run resumes; folds not yet done use the new "
                                     "values"))
            previous = saved.get("previous_runtime") if isinstance(saved.get("previous_runtime"), list) else []
            write_json(config_path, {**record, "previous_runtime": previous + ([saved_runtime] if changed else [])})

    n_folds = spec.split.n_folds
    jobs = []
    for k in range(n_folds):
        fold = method_dir.fold(k)
        problem = fold_problem(out, fold.path)
        if problem is None:
            console.print(f"[dim]{name} · fold {k + 1}/{n_folds}: done and verified, skipped (resume)")
            continue
        if problem:
            console.print(f"[yellow]{name} · fold {k + 1}/{n_folds}: {escape(problem)}; redoing the fold")
            fold.done.unlink()  # the fold is not done; a crash before its redo is finished keeps it so
        jobs.append(FoldJob(name, cls, profile.config, f"{spec.profile} ({profile.source})", k, n_folds,
                            spec.split.seed + k, spec.device, str(out), str(train_path), spec.skip_bad_rows,
                            str(data_dir), train_fingerprint, job_gpus(cls, spec.device, max(spec.gpus_per_job, spec.devices)),
                            check_loggers(spec.loggers)))
    return jobs


def _run_jobs(jobs: list[FoldJob], spec: RunSpec, console: Console) -> None:
    """Run the pending jobs on the spec's backend.

    Raises:
        JobError: one or more jobs failed (each named with its method and fold, the tracebacks
            printed), or the backend lost workers; every job that finished is kept for resume.
    """
    if not jobs:
        return
    if not in_process(spec.backend, spec.jobs):
        console.print(f"{len(jobs)} job(s) on the {spec.backend} backend"
                      + (f", {spec.jobs} at a time" if spec.jobs else "") + ": "
                      + ", ".join(str(j) for j in jobs))

    def report(outcome: Outcome) -> None:
        r = outcome.result
        if outcome.error is not None:
            console.print(f"[red]{outcome.item}: failed: {escape(outcome.error)}")
        elif r.get("skipped"):
            console.print(f"[dim]{outcome.item}: done meanwhile, skipped")
        else:
            gpus = f", GPU {r['cuda_visible_devices']}" if outcome.item.gpus and r.get("cuda_visible_devices") else ""
            where = "" if in_process(spec.backend, spec.jobs) else f" [dim]({outcome.item}, {r['host']} pid {r['pid']}{gpus})"
            console.print(f"  fit {r['fit_seconds']:.1f} s, predict {r['predict_seconds']:.1f} s, "
                          + (f"held-out r = {r['oof_pearson']:.4f}" if r["oof_pearson"] is not None
                             else "no held-out rows") + where)

    outcomes = dispatch(run_fold, jobs, spec.backend, spec.jobs, spec.scheduler, console, report,
                        gpus=[j.gpus for j in jobs], require_gpus=str(spec.device).lower() in ("cuda", "gpu"))
    failed = [o for o in outcomes if o.error is not None]
    if failed:
        for o in failed:
            console.print(Panel(Text(o.result.get("traceback", o.error)), title=f"{o.item}: traceback", style="red"))
        done = len(outcomes) - len(failed)
        raise JobError(f"{len(failed)} of {len(outcomes)} job(s) failed: "
                       + "; ".join(f"{o.item}: {o.error}" for o in failed)
                       + f". The {done} finished job(s) are kept: run the same command again to resume")


def run_fold(job: FoldJob, console: Console | None = None) -> dict:
    """Fit one (method, fold) and write its files; runs wherever the backend puts it.

    Returns the fold's ``done.json`` summary (plus ``host``/``pid`` and the job's
    ``cuda_visible_devices``: the GPUs it was placed on, None where unset), ``{"skipped": True}`` when
    the fold was already done, or ``{"error": "Type: message", "traceback": ...}``: a job reports
    its failure rather than raising it, so the other jobs of the run go on.
    """
    try:
        return _run_fold(job, console)
    except Exception as exc:  # noqa: BLE001 - reported to the driver, which names the method and fold
        return {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc(),
                "host": socket.gethostname(), "pid": os.getpid()}


def _run_fold(job: FoldJob, console: Console | None) -> dict:
    run_dir, fold_dir = Path(job.run_dir), job.fold_dir
    fold = FoldDir(fold_dir)
    refuse_links(run_dir, fold.work)  # nothing is written or deleted through a link
    problem = fold_problem(run_dir, fold_dir)
    if problem is None:
        return {"skipped": True}
    if problem:  # the driver unlinks a bad fold's done.json; this one went bad since
        fold.done.unlink()
    console = console or Console()
    console.rule(f"{job.method} · fold {job.fold + 1}/{job.n_folds} · profile {job.profile_label}")
    for stale in fold_dir.glob(".model-*.tmp"):  # left by a job that died while saving
        shutil.rmtree(stale, ignore_errors=True)
    train, train_fingerprint = _training_table(job.train_path, job.skip_bad_rows)
    assignment = np.load(RunDir(job.run_dir).split_npy)
    if len(train) != len(assignment) or train_fingerprint != job.train_fingerprint:
        raise DataError(f"{job.train_path} as read on {socket.gethostname()} ({len(train):,} rows) is not the "
                        f"training table this run was split for ({len(assignment):,} rows, see split.json)")
    test = _test_table(job.data_dir)
    held = assignment == job.fold

    method = job.cls(job.config, seed=job.seed, device=job.device, work_dir=fold.work)
    method.loggers = job.loggers
    t0 = time.perf_counter()
    method.fit(train.subset(~held))
    fit_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    # --split none: nothing held out, so no training row to predict (an empty input breaks some predictors)
    fold_oof = np.asarray(method.predict(train.subset(held)), dtype=np.float64) if held.any() else np.empty(0)
    fold_test = np.asarray(method.predict(test), dtype=np.float64)
    pred_s = time.perf_counter() - t0
    _check_shape(job.method, fold_oof, int(held.sum()), "held-out rows")
    _check_shape(job.method, fold_test, len(test), "test sequences")
    _save_model(method, fold_dir, run_dir)
    write_npy(fold.oof, fold_oof)
    write_npy(fold.test, fold_test)
    y_held = train.y[held]
    done = {
        "fit_seconds": fit_s, "predict_seconds": pred_s, "n_train": int((~held).sum()),
        "n_heldout": int(held.sum()), "train_rows_per_second": float((~held).sum() / max(fit_s, 1e-9)),
        "num_parameters": method.num_parameters(),
        "oof_pearson": pearson(fold_oof, y_held) if held.any() else None,  # None: no held-out row to score
        "oof_spearman": spearman(fold_oof, y_held) if held.any() else None,
    }
    summary = dict(done)
    # digests of everything a resume skips the fold for, or a loader reads (verified_model_dir)
    done[MANIFEST_KEY] = {**file_manifest(fold_dir, [OOF, TEST]),
                          **{f"{MODEL}/{rel}": entry for rel, entry in file_manifest(fold.model).items()}}
    keep_logs(fold.work, fold.logs, run_dir)  # the fit's metric logs outlive its work directory
    write_json(fold.done, done)  # last: the fold counts as done only now
    shutil.rmtree(fold.work, ignore_errors=True)  # resume checkpoints are spent once done.json exists
    return {**summary, "host": socket.gethostname(), "pid": os.getpid(),
            "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES")}


def _save_model(method: Method, fold_dir: Path, run_dir: Path) -> None:
    """``method.save`` into a temporary directory renamed to ``fold_dir/model``: never half a model.

    Raises:
        harness.io.UnsafePath: ``fold_dir/model`` (or a directory above it, up to ``run_dir``) is a
            symbolic link: it is never followed, never deleted through.
    """
    final = refuse_links(run_dir, FoldDir(fold_dir).model)
    fold_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".model-", suffix=".tmp", dir=fold_dir))
    try:
        method.save(tmp)
        if final.exists():
            shutil.rmtree(final)
        os.rename(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


# Tables a process has read, so that a worker running several jobs reads each file once: kind ->
# (file state key, table, fingerprint). One entry per kind bounds what a process holds on to.
_TABLES: dict[str, tuple[tuple, SeqTable, str | None]] = {}


def _file_key(path: str | os.PathLike, *extra) -> tuple:
    st = os.stat(path)
    return (str(path), st.st_size, st.st_mtime_ns, *extra)


def _training_table(path: str, skip_bad_rows: bool) -> tuple[SeqTable, str]:
    """The training table (memory-mapped through the cache) and its fingerprint."""
    key = _file_key(path, skip_bad_rows)
    hit = _TABLES.get("train")
    if hit is None or hit[0] != key:
        table = load_training(path, skip_bad_rows=skip_bad_rows)
        hit = _TABLES["train"] = (key, table, fingerprint(table))
    return hit[1], hit[2]


def _test_table(data_dir: str) -> SeqTable:
    """The test sequences, read as :func:`harness.data.load_test_set` reads them."""
    path = Path(data_dir) / TEST_FILE
    key = _file_key(path)
    hit = _TABLES.get("test")
    if hit is None or hit[0] != key:
        hit = _TABLES["test"] = (key, read_table(path), None)
    return hit[1]


@contextlib.contextmanager
def _tables_known(train_path: Path, skip_bad_rows: bool, train: SeqTable, train_fingerprint: str,
                  data_dir: Path, test: TestSet):
    """While the driver's own tables are in memory, in-process jobs use them instead of reading again."""
    _TABLES["train"] = (_file_key(train_path, skip_bad_rows), train, train_fingerprint)
    _TABLES["test"] = (_file_key(data_dir / TEST_FILE), test.table, None)
    try:
        yield
    finally:
        _TABLES.clear()


def _aggregate(name: str, out: Path, train: SeqTable, test: TestSet, assignment: np.ndarray,
               n_folds: int) -> MethodResult:
    """Out-of-fold and mean test predictions from the fold files, scores; writes the method's files.

    Without a held-out row (``--split none``) the method has no ``oof.npy`` and no OOF scores
    (None, never NaN or 0).
    """
    method_dir = RunDir(out).method(name)
    oof = np.full(len(train), np.nan)
    test_preds = []
    for k in range(n_folds):
        fold = method_dir.fold(k)
        held = assignment == k
        oof[held] = load_predictions(fold.oof, int(held.sum()))
        test_preds.append(load_predictions(fold.test, len(test)))

    test_mean = np.mean(test_preds, axis=0)
    held_any = ~np.isnan(oof)
    n_oof = int(held_any.sum())
    if n_oof:
        write_npy(method_dir.oof, oof)
    write_npy(method_dir.test, test_mean)
    boards = score_boards(test_mean, test)
    if n_oof:
        result = MethodResult(boards, pearson(oof[held_any], train.y[held_any]),
                              spearman(oof[held_any], train.y[held_any]), n_oof)
    else:
        result = MethodResult(boards, None, None, 0)
    write_json(method_dir.scores, {"boards": {b: s.to_dict() for b, s in boards.items()},
                                            **result.oof_dict(), "simulated": test.simulated})
    return result


def _check_shape(name: str, pred: np.ndarray, n: int, what: str) -> None:
    if pred.shape != (n,):
        raise ValueError(f"{name}.predict returned shape {pred.shape} for {n} {what}; expected ({n},)")
    if not np.isfinite(pred).all():
        raise ValueError(f"{name}.predict returned {int((~np.isfinite(pred)).sum())} non-finite values for {what}")


def _write_run_json(out: Path, spec: RunSpec, data_dir: Path, train_path: Path, train: SeqTable, test: TestSet,
                    simulated: bool) -> None:
    import numpy
    import sklearn

    versions = {"harness": __version__, "python": platform.python_version(), "numpy": numpy.__version__,
                "scikit-learn": sklearn.__version__}
    for mod in ("torch", "lightgbm", "tensorflow"):
        if mod in sys.modules:
            versions[mod] = getattr(sys.modules[mod], "__version__", "?")
    write_json(RunDir(out).run_json, {
        RUN_FORMAT[0]: RUN_FORMAT[1],
        "data_dir": str(data_dir.resolve()), "simulated": simulated, "train": str(train_path.resolve()), "n_train": len(train),
        "n_test": len(test), "snv_pairs": str(Path(spec.snv_pairs).resolve()) if spec.snv_pairs else None,
        "snv_source": test.snv_source, "split": dataclasses.asdict(spec.split),
        "profile": spec.profile, "device": spec.device, "backend": spec.backend, "jobs": spec.jobs,
        "gpus_per_job": spec.gpus_per_job, "devices": spec.devices,
        "command": sys.argv, "versions": versions,
    })
