"""Experiment tracking: every fit's per-epoch (or per-boosting-round) metrics, as a CSV file and,
on request, in TensorBoard or MLflow.

A fit that the runner makes (``harness run``) has a work directory, ``Method.work_dir``
(``runs/<run>/methods/<m>/fold<k>/work``), and the loggers chosen with ``--logger``,
``Method.loggers``. During the fit it writes there:

* ``metrics.csv`` (always): one row per epoch / boosting round, columns ``epoch``, ``step``, then
  the metric names in the order they first appeared. ``step`` counts optimiser steps (batches) or
  boosting rounds done when the row was logged; ``epoch`` is the 0-based epoch index (empty where
  the fit has no epochs, e.g. gradient boosting). The PyTorch plug-ins' Lightning fits log through
  the same :class:`MetricLog` (:class:`harness.training.SeqTrainer`), so every plug-in's file reads
  the same way.
* ``tensorboard/`` (``--logger tensorboard``): an event file, one scalar series per metric and
  ``epoch`` (``tensorboard --logdir runs/<run>`` shows every method and fold).
* ``mlflow.db`` (``--logger mlflow``): a local MLflow SQLite store (experiment
  ``$MLFLOW_EXPERIMENT_NAME``, default ``dream-harness``; one MLflow run per fold named
  ``<run>/<method>/fold<k>``), or the server of ``$MLFLOW_TRACKING_URI`` when it is set. MLflow 3
  refuses its older file store (``./mlruns``) unless ``MLFLOW_ALLOW_FILE_STORE=true``, so the
  local store is SQLite, one file per fold (parallel folds never share a database):
  ``mlflow ui --backend-store-uri sqlite:///runs/<run>/methods/<m>/fold<k>/logs/mlflow.db``.

When the fold is done the runner moves these out of ``work/`` (which holds resume checkpoints and
is deleted) into ``fold<k>/logs/`` (:func:`keep_logs`). The logs are informative: nothing reads
them back, and they are not part of the fold's verified manifest.

TensorBoard and MLflow are optional (``pip install 'dream-harness[tracking]'``, or the one
package); :func:`check_loggers` raises :class:`LoggerUnavailable` naming the package when one that
is asked for is not installed, before anything is written.

Framework adapters: :func:`lightgbm_callback` (a LightGBM ``lgb.train`` callback),
:func:`keras_callback` (a Keras callback); the Lightning fits of :mod:`harness.training` log each
epoch's record themselves. A plug-in opens its fit's log with :func:`open_method_log`.
"""

from __future__ import annotations

import csv
import importlib
import io
import math
import os
import shutil
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Self

import numpy as np

from .io import atomic_open, refuse_links
from .rundir import METHODS, WORK

#: logger names ``--logger`` accepts; ``csv`` is always on.
LOGGERS = ("csv", "tensorboard", "mlflow")
#: the metric file in the work directory (the name Lightning's ``CSVLogger`` uses)
METRICS_CSV = "metrics.csv"
#: TensorBoard event files' directory in the work directory
TENSORBOARD_DIR = "tensorboard"
#: the local MLflow store (SQLite) in the work directory, when ``$MLFLOW_TRACKING_URI`` is unset
MLFLOW_DB = "mlflow.db"
#: where a local MLflow store puts artifacts (the harness logs none; set so that MLflow never
#: defaults to ``./mlruns`` in the working directory)
MLFLOW_ARTIFACTS = "mlartifacts"
#: what :func:`keep_logs` moves: the files above plus Lightning ``CSVLogger``'s ``hparams.yaml``
LOG_ENTRIES = (METRICS_CSV, "hparams.yaml", TENSORBOARD_DIR, MLFLOW_DB, MLFLOW_ARTIFACTS)
#: default MLflow experiment (``$MLFLOW_EXPERIMENT_NAME`` overrides it)
MLFLOW_EXPERIMENT = "dream-harness"
#: the package each optional logger imports: (import name, pip name)
_PACKAGES = {"tensorboard": ("tensorboard", "tensorboard"), "mlflow": ("mlflow", "mlflow")}
#: MLflow metrics are sent in batches: at most this many per request (MLflow's limit is 1,000) ...
_MLFLOW_BATCH = 900
#: ... or after this many seconds since the last request (a request per boosting round would
#: make a 5,000-round LightGBM fit wait ~10 ms x 5,000 on a local SQLite store)
_MLFLOW_FLUSH_SECONDS = 10.0
_RESERVED = ("epoch", "step")


class LoggerUnavailable(ImportError, RuntimeError):
    """A logger's package is not installed; the message names the package and the pip command.
    (An ``ImportError``; also a ``RuntimeError``, so the command line reports it in one line.)"""


def check_loggers(names: str | Iterable[str] | None) -> tuple[str, ...]:
    """Validate logger names and return them as used: ``"csv"`` first (always on), then the
    others in the given order, without repeats.

    Args:
        names: logger names (e.g. ``("tensorboard",)``), a comma-separated string, or None
            (``("csv",)``); case and surrounding spaces are ignored.

    Raises:
        ValueError: an unknown name (``"unknown logger 'x': choose from csv, tensorboard, mlflow"``).
        TypeError: a name that is not a string.
        LoggerUnavailable: (an ``ImportError``) a chosen logger's package cannot be imported; the
            message names the package, e.g. ``"--logger tensorboard needs the 'tensorboard'
            package, which is not installed (...): pip install tensorboard, or pip install
            'dream-harness[tracking]'"``.
    """
    if names is None:
        names = ()
    elif isinstance(names, str):
        names = names.split(",")
    chosen = ["csv"]
    for raw in names:
        if not isinstance(raw, str):
            raise TypeError(f"logger names must be strings, got {raw!r}")
        name = raw.strip().lower()
        if not name:
            continue
        if name not in LOGGERS:
            raise ValueError(f"unknown logger {raw!r}: choose from {', '.join(LOGGERS)}")
        if name not in chosen:
            chosen.append(name)
    for name in chosen:
        if name in _PACKAGES:
            _require(name)
    return tuple(chosen)


def _require(name: str):
    module, pip_name = _PACKAGES[name]
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise LoggerUnavailable(f"--logger {name} needs the {module!r} package, which is not installed ({exc}): "
                                f"pip install {pip_name}, or pip install 'dream-harness[tracking]'") from exc


def mlflow_tracking_uri(work_dir: Path) -> tuple[str, str | None]:
    """``(tracking URI, artifact location or None)`` of a fit's MLflow run: ``$MLFLOW_TRACKING_URI``
    with the server's artifact default when the variable is set, else the local SQLite store
    ``work_dir/mlflow.db`` with artifacts under ``work_dir/mlartifacts``."""
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return env, None
    work_dir = Path(work_dir).absolute()
    return f"sqlite:///{work_dir / MLFLOW_DB}", (work_dir / MLFLOW_ARTIFACTS).as_uri()


def mlflow_experiment() -> str:
    """The MLflow experiment name: ``$MLFLOW_EXPERIMENT_NAME``, else :data:`MLFLOW_EXPERIMENT`."""
    return os.environ.get("MLFLOW_EXPERIMENT_NAME") or MLFLOW_EXPERIMENT


class MetricLog:
    """One fit's metric log (a context manager): :meth:`log` a row per epoch / boosting round,
    :meth:`close` at the end. Made by :func:`open_metric_log`.

    With ``work_dir`` None it is inert: :meth:`log` checks its arguments and writes nothing.

    The CSV file ``work_dir/metrics.csv`` is rewritten atomically (:func:`harness.io.atomic_open`)
    when a metric name appears that it has no column for, and at :meth:`close`; the rows between
    are appended (one short write each, no fsync: a 5,000-round fit does not rewrite its file
    5,000 times). A file left by an earlier fit in the same work directory (a fit resumed from a
    checkpoint) is read back: its rows before the first step this log writes are kept, the rest
    are replaced, so a fit that restarts from scratch leaves only its own rows and one that
    resumes at epoch 5 keeps epochs 0-4. An unreadable old file is replaced.

    Attributes:
        work_dir: the directory written to (None: inert).
        loggers: the loggers in use (:func:`check_loggers`).
        run_name: the MLflow run name.
        rows: the CSV rows so far, ``{"epoch": int | None, "step": int, name: float, ...}``.
    """

    def __init__(self, work_dir: str | os.PathLike | None, loggers: Iterable[str] | str | None, run_name: str) -> None:
        self.loggers = check_loggers(loggers)
        self.work_dir = Path(work_dir) if work_dir is not None else None
        self.run_name = run_name
        self.rows: list[dict[str, Any]] = []
        self._columns: list[str] = list(_RESERVED)
        self._in_file: list[str] | None = None  # the header of the file as last written, None: not in step
        self._first = True
        self._closed = False
        self._tb = None
        self._mlflow = None
        self._mlflow_run: str | None = None
        self._pending: list = []
        self._flushed_at = time.monotonic()
        if self.work_dir is None:
            return
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self._load_existing()
        try:
            if "tensorboard" in self.loggers:
                self._open_tensorboard()
            if "mlflow" in self.loggers:
                self._open_mlflow()
        except BaseException:
            self.close(failed=True)
            raise

    @property
    def active(self) -> bool:
        """Whether this log writes anything (it has a work directory and is not closed)."""
        return self.work_dir is not None and not self._closed

    @property
    def csv_path(self) -> Path | None:
        """``work_dir/metrics.csv`` (None when inert)."""
        return self.work_dir / METRICS_CSV if self.work_dir is not None else None

    # ----- writing ------------------------------------------------------------------------------
    def log(self, step: int, metrics: dict[str, float], epoch: int | None = None) -> None:
        """Record one row.

        Args:
            step: optimiser steps (batches) or boosting rounds done, ``int >= 0``.
            metrics: ``{name: value}``; values are numbers (Python or NumPy scalars; NaN and inf
                are written as ``nan``/``inf``) or None (left empty). Names are non-empty strings
                other than ``epoch`` and ``step``.
            epoch: 0-based epoch index, or None for a fit without epochs.

        Raises:
            ValueError: a negative or non-integer ``step``/``epoch``, a bad metric name.
            TypeError: a metric value that is not a number.
            RuntimeError: the log is closed.
        """
        if self._closed:
            raise RuntimeError(f"metric log of {self.run_name!r} is closed")
        step = _count(step, "step")
        epoch = None if epoch is None else _count(epoch, "epoch")
        values: dict[str, float] = {}
        for name, value in metrics.items():
            if not isinstance(name, str) or not name or name in _RESERVED:
                raise ValueError(f"metric name {name!r}: must be a non-empty string other than 'epoch' and 'step'")
            if value is None:
                continue
            try:
                values[name] = float(value)
            except (TypeError, ValueError):
                raise TypeError(f"metric {name!r}: {value!r} is not a number") from None
        if self.work_dir is None:
            return
        if self._first:  # a restarted / resumed fit replaces the old rows from its first step on
            self._first = False
            kept = [r for r in self.rows if r["step"] < step]
            if len(kept) != len(self.rows):
                self.rows = kept
                self._in_file = None
        row = {"epoch": epoch, "step": step, **values}
        self.rows.append(row)
        new = [name for name in values if name not in self._columns]
        self._columns += new
        if self._in_file != self._columns:
            self._write_csv()
        else:
            with open(self.csv_path, "a", encoding="utf-8", newline="") as fh:
                fh.write(self._format([row]))
        if self._tb is not None:
            for name, value in values.items():
                self._tb.add_scalar(name, value, step)
            if epoch is not None:
                self._tb.add_scalar("epoch", float(epoch), step)
            self._tb.flush()
        if self._mlflow is not None:
            from mlflow.entities import Metric

            stamp = int(time.time() * 1000)
            self._pending += [Metric(name, value, stamp, step) for name, value in values.items()]
            if epoch is not None:
                self._pending.append(Metric("epoch", float(epoch), stamp, step))
            if len(self._pending) >= _MLFLOW_BATCH or time.monotonic() - self._flushed_at > _MLFLOW_FLUSH_SECONDS:
                self._flush_mlflow()

    def close(self, failed: bool = False) -> None:
        """Write the final CSV (atomically), close the TensorBoard writer, send MLflow's pending
        metrics and end its run (``FINISHED``, or ``FAILED`` with ``failed``). Idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            if self.work_dir is not None and (self.rows or self._in_file is not None):
                self._write_csv()
        finally:
            if self._tb is not None:
                self._tb.close()
                self._tb = None
            if self._mlflow is not None:
                try:
                    self._flush_mlflow()
                finally:
                    self._mlflow.set_terminated(self._mlflow_run, "FAILED" if failed else "FINISHED")
                    self._mlflow = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close(failed=exc_type is not None)

    # ----- internals ----------------------------------------------------------------------------
    def _format(self, rows: list[dict[str, Any]]) -> str:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        for row in rows:
            writer.writerow(["" if row.get(c) is None else _cell(row[c]) for c in self._columns])
        return out.getvalue()

    def _write_csv(self) -> None:
        with atomic_open(self.csv_path, "w") as fh:
            fh.write(",".join(self._columns) + "\n" + self._format(self.rows))
        self._in_file = list(self._columns)

    def _load_existing(self) -> None:
        """Rows of a ``metrics.csv`` an earlier fit left in the work directory (resume)."""
        path = self.csv_path
        if not path.is_file():
            return
        try:
            with open(path, encoding="utf-8", newline="") as fh:
                reader = csv.reader(fh)
                header = next(reader, None)
                if not header or header[:2] != list(_RESERVED) or len(set(header)) != len(header):
                    return
                rows = []
                for fields in reader:
                    if len(fields) != len(header):
                        continue  # a line cut short by a crash
                    try:
                        row = {"epoch": int(fields[0]) if fields[0] else None, "step": int(fields[1])}
                        row.update({c: float(v) for c, v in zip(header[2:], fields[2:]) if v != ""})
                    except ValueError:
                        continue
                    rows.append(row)
        except (OSError, UnicodeDecodeError, csv.Error):
            return
        self.rows, self._columns, self._in_file = rows, header, None

    def _open_tensorboard(self) -> None:
        _require("tensorboard")
        self._tb = _EventFile(self.work_dir / TENSORBOARD_DIR)

    def _open_mlflow(self) -> None:
        _require("mlflow")
        from mlflow import MlflowClient

        uri, artifacts = mlflow_tracking_uri(self.work_dir)
        client = MlflowClient(tracking_uri=uri)
        name = mlflow_experiment()
        experiment = client.get_experiment_by_name(name)
        experiment_id = (experiment.experiment_id if experiment is not None
                         else client.create_experiment(name, artifact_location=artifacts))
        run = client.create_run(experiment_id, run_name=self.run_name, tags={"harness.run_name": self.run_name})
        self._mlflow, self._mlflow_run = client, run.info.run_id

    def _flush_mlflow(self) -> None:
        for i in range(0, len(self._pending), _MLFLOW_BATCH):
            self._mlflow.log_batch(self._mlflow_run, metrics=self._pending[i:i + _MLFLOW_BATCH])
        self._pending = []
        self._flushed_at = time.monotonic()


class _EventFile:
    """A TensorBoard event file of scalars: ``Event`` protocol buffers (the first one the file
    version, then one ``simple_value`` summary per scalar, as ``torch.utils.tensorboard`` writes
    them) framed by tensorboard's own ``RecordWriter``, in a file named as TensorBoard's writers
    name theirs. Not ``tensorboard.summary.Writer`` or ``torch.utils.tensorboard.SummaryWriter``:
    both import TensorFlow where it is installed (``tensorboard.compat.tf``), 10+ s and its log
    chatter in every LightGBM fold process."""

    _serial = 0

    def __init__(self, directory: Path) -> None:
        import socket

        from tensorboard.compat.proto.event_pb2 import Event
        from tensorboard.compat.proto.summary_pb2 import Summary
        from tensorboard.summary.writer.record_writer import RecordWriter

        self._event, self._summary = Event, Summary
        directory.mkdir(parents=True, exist_ok=True)
        _EventFile._serial += 1
        name = f"events.out.tfevents.{int(time.time()):010d}.{socket.gethostname()}.{os.getpid()}.{_EventFile._serial}"
        self._writer = RecordWriter(open(directory / name, "wb"))  # noqa: SIM115 - closed by close()
        self._write(Event(wall_time=time.time(), file_version="brain.Event:2"))
        self.flush()

    def _write(self, event) -> None:
        self._writer.write(event.SerializeToString())

    def add_scalar(self, tag: str, value: float, step: int) -> None:
        summary = self._summary(value=[self._summary.Value(tag=tag, simple_value=value)])
        self._write(self._event(wall_time=time.time(), step=step, summary=summary))

    def flush(self) -> None:
        self._writer.flush()

    def close(self) -> None:
        if not self._writer.closed:
            self._writer.flush()
            self._writer.close()


def _count(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) and not (hasattr(value, "__index__")):
        raise ValueError(f"{what} must be an integer >= 0, got {value!r}")
    value = int(value.__index__())
    if value < 0:
        raise ValueError(f"{what} must be an integer >= 0, got {value}")
    return value


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else ("nan" if math.isnan(value) else ("inf" if value > 0 else "-inf"))
    return str(value)


def open_metric_log(work_dir: Path | None, loggers: tuple[str, ...], run_name: str) -> MetricLog:
    """A :class:`MetricLog` writing into ``work_dir`` (None: writes nothing) to ``loggers``
    (:func:`check_loggers`; ``"csv"`` is always on), MLflow run named ``run_name``.

    Raises:
        ValueError, LoggerUnavailable: as :func:`check_loggers`.
    """
    return MetricLog(work_dir, loggers, run_name)


def method_run_name(method) -> str:
    """``"<run>/<method>/fold<k>"`` for a method the runner made (its ``work_dir`` is
    ``runs/<run>/methods/<method>/fold<k>/work``), else the method's registry name."""
    work = getattr(method, "work_dir", None)
    if work is not None:
        work = Path(work)
        if work.name == WORK and len(work.parents) >= 4 and work.parents[2].name == METHODS:
            return f"{work.parents[3].name}/{work.parents[1].name}/{work.parent.name}"
    return getattr(method, "name", "") or type(method).__name__


def open_method_log(method) -> MetricLog:
    """The metric log of ``method``'s fit: :func:`open_metric_log` with the method's ``work_dir``,
    ``loggers`` (:attr:`harness.method.Method.loggers`) and :func:`method_run_name`."""
    return open_metric_log(method.work_dir, getattr(method, "loggers", ("csv",)), method_run_name(method))


# ----- framework adapters ---------------------------------------------------------------------
def lightgbm_callback(log: MetricLog):
    """A ``lightgbm.train`` callback that logs every boosting round's evaluation results as one row:
    ``step`` = rounds done (1-based), no epoch, metric ``<dataset>_<metric>`` (e.g. ``valid_l2``,
    ``train_l2``) for each entry of ``valid_sets``. It runs before early stopping (``order`` 10,
    LightGBM's ``log_evaluation`` order), so the round that stops the fit is logged too. It only
    reads the evaluation results: the model is the same with or without it."""

    def callback(env) -> None:
        if env.evaluation_result_list:
            log.log(env.iteration + 1, {f"{entry[0]}_{entry[1]}": entry[2] for entry in env.evaluation_result_list})

    callback.order = 10
    return callback


def keras_callback(log: MetricLog):
    """A Keras callback that logs each epoch's ``logs`` (``loss``, the compiled metrics and their
    ``val_`` counterparts, as ``model.fit``'s history holds them) as one row: ``epoch`` the 0-based
    epoch, ``step`` the optimiser's step count (``model.optimizer.iterations``: batches trained so
    far; read once an epoch, so no per-batch hook slows the fit). Imports TensorFlow's Keras (call
    it from a Keras plug-in, which has)."""
    import tensorflow as tf

    class MetricLogCallback(tf.keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            steps = int(np.asarray(self.model.optimizer.iterations))
            log.log(steps, {k: v for k, v in (logs or {}).items() if _numeric(v)}, epoch=int(epoch))

    return MetricLogCallback()


def _numeric(value: Any) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


def keep_logs(work_dir: str | os.PathLike, dest: str | os.PathLike, root: str | os.PathLike) -> Path | None:
    """Move a finished fit's logs (:data:`LOG_ENTRIES` present in ``work_dir``) into ``dest``
    (``fold<k>/logs``), replacing the logs an earlier fit of the fold left there; the runner calls
    it before it deletes ``work_dir``. Nothing is followed through a symbolic link below ``root``
    (the run directory).

    Returns:
        ``dest``, or None when the fit wrote no logs (then ``dest`` is left as it was).

    Raises:
        harness.io.UnsafePath: ``work_dir``, ``dest`` or a directory above them up to ``root`` is a
            symbolic link, or a log entry is one.
    """
    work_dir = refuse_links(root, work_dir)
    present = [work_dir / name for name in LOG_ENTRIES if (work_dir / name).exists() or (work_dir / name).is_symlink()]
    if not present:
        return None
    for entry in present:
        refuse_links(root, entry)
    dest = refuse_links(root, dest)
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    for entry in present:
        os.replace(entry, dest / entry.name)
    return dest
