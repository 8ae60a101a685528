"""``harness run``: fit every (method, fold), predict out-of-fold and test, score, tabulate.

Run directory layout (every file written atomically; a finished job is never redone)::

    run.json                      the run's settings and software versions
    split.json, split.npy         the fold manifest shared by every method
    methods/<name>/config.json    the resolved profile
    methods/<name>/fold<k>/model/ the fitted method (Method.save)
    methods/<name>/fold<k>/oof.npy, test.npy, done.json
    methods/<name>/oof.npy        (N_train,) out-of-fold predictions, NaN where never held out
    methods/<name>/test.npy       (N_test,) test predictions, mean over folds
    methods/<name>/scores.json    official scores per board + OOF Pearson/Spearman
    leaderboard.json

Each (method, fold) is one self-contained job (:class:`FoldJob`, :func:`run_fold`), dispatched by
:func:`harness.backend.dispatch` (``--backend local|dask|ray``, ``--jobs N``): it carries paths and
the small config, never the data, so it can run in another process or on another machine that
shares the run directory. It memory-maps the training table through the cache
(:func:`harness.data.cache.load_training`), checks it against ``split.json``, reads ``split.npy``,
fits, writes its fold files atomically (the model directory through a temporary directory renamed
into place, ``done.json`` last: a fold without ``done.json`` is redone, and a job that crashed
left nothing that a resumed run would trust) and returns a small summary. The driver only
aggregates the fold files, in fold order, exactly as a sequential run does, so a seed gives the same
predictions on every backend (for methods whose numerics do not depend on how many threads
they are given: the backends start workers with different thread limits).
"""

from __future__ import annotations

import contextlib
import dataclasses
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
from .backend import JobError, Outcome, check_available, dispatch, in_process
from .data import DataError, SeqTable, TestSet, load_test_set, read_table
from .data.testset import TEST_FILE, TRAIN_FILE
from .data.readers import BadRows
from .data.cache import load_training
from .io import read_json, write_json, write_npy
from .method import Method, MethodConfig
from .report import leaderboard_table
from .scoring import BoardScore, CategoryScore, score_boards
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
    config_dir: Path | None = None
    #: where the (method, fold) jobs run: ``local``, ``dask`` or ``ray`` (:mod:`harness.backend`)
    backend: str = "local"
    #: parallel jobs (local: worker processes, default 1 = in this process, one after another;
    #: dask/ray: workers or CPUs of a cluster started here, or a cap on a given cluster)
    jobs: int | None = None
    #: address of a running Dask scheduler (``--backend dask``); default ``$DASK_SCHEDULER_ADDRESS``
    scheduler: str | None = None


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

    def __str__(self) -> str:
        return f"{self.method} fold {self.fold + 1}/{self.n_folds}"

    @property
    def fold_dir(self) -> Path:
        return Path(self.run_dir) / "methods" / self.method / f"fold{self.fold}"


@dataclass
class MethodResult:
    """A method's scores on each board and its out-of-fold Pearson r / Spearman ρ."""

    boards: dict[str, BoardScore]
    oof_pearson: float
    oof_spearman: float


def default_out(spec: RunSpec, data_dir: Path, simulated: bool) -> Path:
    """``runs/<data>-<train file>-<split>-<profile>-s<seed>``: the same command resumes the same run."""
    data_label = "simulated" if simulated else data_dir.name
    train_label = spec.train.stem if spec.train else "train"
    split = "holdout" if spec.split.kind == "holdout" else f"kfold{spec.split.folds}"
    return Path("runs") / f"{data_label}-{train_label}-{split}-{spec.profile}-s{spec.split.seed}"


def run(spec: RunSpec, console: Console | None = None) -> dict[str, MethodResult]:
    """Run the spec end to end and return method -> :class:`MethodResult`.

    Raises:
        DataError: bad or missing data files.
        KeyError: an unknown method name.
        ValueError: the output directory holds a run with other data, split or profile.
        harness.backend.BackendUnavailable: the backend's package is not installed (before any work).
        harness.backend.JobError: jobs failed (each named with method and fold) or a worker was lost;
            every finished job is kept, so the same call resumes.
    """
    console = console or Console()
    classes = {m: registry.get(m) for m in spec.methods}  # fail fast on unknown names
    check_available(spec.backend, spec.scheduler)  # and on a backend that is not installed

    if spec.data_dir is None:
        from .data.simulate import default_data_dir

        data_dir = default_data_dir()
    else:
        data_dir = Path(spec.data_dir)
    train_path = Path(spec.train) if spec.train else data_dir / TRAIN_FILE
    train = load_train_file(train_path, spec.skip_bad_rows, console)  # bad input stops the run before any write
    test = load_test_set(data_dir, spec.snv_pairs)
    simulated = test.simulated  # the default data, or --data pointing at a simulated directory
    if simulated:
        console.print(Panel(f"SIMULATED data generated by the harness ({data_dir}): "
                            "scores on it say nothing about the challenge. Pass --data DIR (or set HARNESS_DATA) "
                            "for the real DREAM 2022 files.", title="simulated data", style="yellow"))
    out = Path(spec.out) if spec.out else default_out(spec, data_dir, simulated)
    out.mkdir(parents=True, exist_ok=True)
    assignment = load_or_create(out, train, spec.split)
    train_fingerprint = read_json(out / "split.json")["train_fingerprint"]
    _write_run_json(out, spec, data_dir, train_path, train, test, simulated)
    console.print(f"run directory [bold]{out}[/]: {len(train):,} training rows ({train_path}), "
                  f"{len(test):,} test sequences, {spec.split.kind} split × {spec.split.n_folds}, SNV pairs: {test.snv_source}")

    out, train_path, data_dir = out.resolve(), train_path.resolve(), data_dir.resolve()  # jobs may run elsewhere
    jobs: list[FoldJob] = []
    for name, cls in classes.items():
        jobs += _method_jobs(name, cls, spec, out, train_path, data_dir, train_fingerprint, console)
    with _tables_known(train_path, spec.skip_bad_rows, train, train_fingerprint, data_dir, test):
        _run_jobs(jobs, spec, console)
    results = {name: _aggregate(name, out, train, test, assignment, spec.split.n_folds) for name in classes}

    # the terminal shows private and public (full is in the files); without public ids, full
    boards = [b for b in ("private", "public") if b in next(iter(results.values())).boards] or ["full"]
    rank_board = boards[0]
    extra = {m: {"OOF r": f"{r.oof_pearson:.4f}", "OOF ρ": f"{r.oof_spearman:.4f}"} for m, r in results.items()}
    title = "Leaderboard (SIMULATED data)" if simulated else "Leaderboard"
    console.print(leaderboard_table({m: r.boards for m, r in results.items()}, boards, rank_board, extra, title))
    write_json(out / "leaderboard.json", {m: {"boards": {b: s.to_dict() for b, s in r.boards.items()},
                                             "oof_pearson": r.oof_pearson, "oof_spearman": r.oof_spearman}
                                         for m, r in results.items()})
    return results


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


def _method_jobs(name: str, cls: type[Method], spec: RunSpec, out: Path, train_path: Path, data_dir: Path,
                 train_fingerprint: str, console: Console) -> list[FoldJob]:
    """Check or write the method's ``config.json``; the jobs of its folds that are not done yet."""
    method_dir = out / "methods" / name
    profile = registry.load_profile(cls, spec.profile, spec.config_dir)
    config = dataclasses.asdict(profile.config)
    config_path = method_dir / "config.json"
    if config_path.is_file():
        saved = read_json(config_path)
        if saved["config"] != config:
            raise ValueError(f"{config_path}: {name} was run here with another configuration "
                             f"(profile {saved['profile']!r}); use another --out or remove {method_dir}")
    else:
        write_json(config_path, {"method": name, "profile": spec.profile, "source": profile.source, "config": config})

    n_folds = spec.split.n_folds
    jobs = []
    for k in range(n_folds):
        if (method_dir / f"fold{k}" / "done.json").is_file():
            console.print(f"[dim]{name} · fold {k + 1}/{n_folds}: done, skipped (resume)")
            continue
        jobs.append(FoldJob(name, cls, profile.config, f"{spec.profile} ({profile.source})", k, n_folds,
                            spec.split.seed + k, spec.device, str(out), str(train_path), spec.skip_bad_rows,
                            str(data_dir), train_fingerprint))
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
            where = "" if in_process(spec.backend, spec.jobs) else f" [dim]({outcome.item}, {r['host']} pid {r['pid']})"
            console.print(f"  fit {r['fit_seconds']:.1f} s, predict {r['predict_seconds']:.1f} s, "
                          f"held-out r = {r['oof_pearson']:.4f}{where}")

    outcomes = dispatch(run_fold, jobs, spec.backend, spec.jobs, spec.scheduler, console, report)
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

    Returns the fold's ``done.json`` summary (plus ``host``/``pid``), ``{"skipped": True}`` when
    the fold was already done, or ``{"error": "Type: message", "traceback": ...}``: a job reports
    its failure rather than raising it, so the other jobs of the run go on.
    """
    try:
        return _run_fold(job, console)
    except Exception as exc:  # noqa: BLE001 - reported to the driver, which names the method and fold
        return {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc(),
                "host": socket.gethostname(), "pid": os.getpid()}


def _run_fold(job: FoldJob, console: Console | None) -> dict:
    fold_dir = job.fold_dir
    if (fold_dir / "done.json").is_file():
        return {"skipped": True}
    console = console or Console()
    console.rule(f"{job.method} · fold {job.fold + 1}/{job.n_folds} · profile {job.profile_label}")
    for stale in fold_dir.glob(".model-*.tmp"):  # left by a job that died while saving
        shutil.rmtree(stale, ignore_errors=True)
    train, train_fingerprint = _training_table(job.train_path, job.skip_bad_rows)
    assignment = np.load(Path(job.run_dir) / "split.npy")
    if len(train) != len(assignment) or train_fingerprint != job.train_fingerprint:
        raise DataError(f"{job.train_path} as read on {socket.gethostname()} ({len(train):,} rows) is not the "
                        f"training table this run was split for ({len(assignment):,} rows, see split.json)")
    test = _test_table(job.data_dir)
    held = assignment == job.fold

    method = job.cls(job.config, seed=job.seed, device=job.device, work_dir=fold_dir / "work")
    t0 = time.perf_counter()
    method.fit(train.subset(~held))
    fit_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    fold_oof = np.asarray(method.predict(train.subset(held)), dtype=np.float64)
    fold_test = np.asarray(method.predict(test), dtype=np.float64)
    pred_s = time.perf_counter() - t0
    _check_shape(job.method, fold_oof, int(held.sum()), "held-out rows")
    _check_shape(job.method, fold_test, len(test), "test sequences")
    _save_model(method, fold_dir)
    write_npy(fold_dir / "oof.npy", fold_oof)
    write_npy(fold_dir / "test.npy", fold_test)
    y_held = train.y[held]
    done = {
        "fit_seconds": fit_s, "predict_seconds": pred_s, "n_train": int((~held).sum()),
        "n_heldout": int(held.sum()), "train_rows_per_second": float((~held).sum() / max(fit_s, 1e-9)),
        "num_parameters": method.num_parameters(),
        "oof_pearson": pearson(fold_oof, y_held), "oof_spearman": spearman(fold_oof, y_held),
    }
    write_json(fold_dir / "done.json", done)  # last: the fold counts as done only now
    shutil.rmtree(fold_dir / "work", ignore_errors=True)  # resume checkpoints are spent once done.json exists
    return {**done, "host": socket.gethostname(), "pid": os.getpid()}


def _save_model(method: Method, fold_dir: Path) -> None:
    """``method.save`` into a temporary directory renamed to ``fold_dir/model``: never half a model."""
    fold_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".model-", suffix=".tmp", dir=fold_dir))
    try:
        method.save(tmp)
        final = fold_dir / "model"
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
    """Out-of-fold and mean test predictions from the fold files, scores; writes the method's files."""
    method_dir = out / "methods" / name
    oof = np.full(len(train), np.nan)
    test_preds = []
    for k in range(n_folds):
        fold_dir = method_dir / f"fold{k}"
        held = assignment == k
        fold_oof, fold_test = np.load(fold_dir / "oof.npy"), np.load(fold_dir / "test.npy")
        _check_shape(name, fold_oof, int(held.sum()), f"held-out rows ({fold_dir / 'oof.npy'})")
        _check_shape(name, fold_test, len(test), f"test sequences ({fold_dir / 'test.npy'})")
        oof[held] = fold_oof
        test_preds.append(fold_test)

    test_mean = np.mean(test_preds, axis=0)
    write_npy(method_dir / "oof.npy", oof)
    write_npy(method_dir / "test.npy", test_mean)
    held_any = ~np.isnan(oof)
    boards = score_boards(test_mean, test)
    result = MethodResult(boards, pearson(oof[held_any], train.y[held_any]), spearman(oof[held_any], train.y[held_any]))
    write_json(method_dir / "scores.json", {"boards": {b: s.to_dict() for b, s in boards.items()},
                                            "oof_pearson": result.oof_pearson, "oof_spearman": result.oof_spearman,
                                            "simulated": test.simulated})
    return result


def load_scores(path: Path) -> dict[str, BoardScore]:
    """Read a ``scores.json`` written by the runner back into :class:`BoardScore` objects."""
    obj = read_json(path)
    return {b: BoardScore(b, d["pearson_score"], d["spearman_score"],
                          {c: CategoryScore(**v) for c, v in d["categories"].items()}, d["snv_source"], d.get("missing", []))
            for b, d in obj["boards"].items()}


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
    write_json(out / "run.json", {
        "data_dir": str(data_dir.resolve()), "simulated": simulated, "train": str(train_path.resolve()), "n_train": len(train),
        "n_test": len(test), "snv_pairs": str(Path(spec.snv_pairs).resolve()) if spec.snv_pairs else None,
        "snv_source": test.snv_source, "split": dataclasses.asdict(spec.split),
        "profile": spec.profile, "device": spec.device, "backend": spec.backend, "jobs": spec.jobs,
        "command": sys.argv, "versions": versions,
    })
