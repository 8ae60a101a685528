"""Where ``harness run`` executes its (method, fold) jobs: joblib's parallel backends.

``--backend`` chooses one of :data:`BACKENDS`; every job goes through ``joblib.Parallel`` under
``joblib.parallel_config``:

* ``local``: joblib's loky backend with ``--jobs`` worker processes on this machine. The default,
  one job, runs the jobs one after another in this process (joblib's sequential path), exactly as
  the runner always did; GPU runs stay simple.
* ``dask``: joblib's dask backend on a ``distributed.Client``: connected to ``--scheduler ADDRESS``
  (or ``$DASK_SCHEDULER_ADDRESS``) when given, else to a ``LocalCluster`` started for the run (one
  single-threaded worker process per ``--jobs``, default one per core, no memory limit: a big fit
  must not be killed by the nanny while the machine has memory). ``--jobs`` with a scheduler caps
  the jobs running at once (default: every worker thread).
* ``ray``: ``ray.util.joblib.register_ray()``; ``ray.init(address="auto")`` joins the cluster of
  ``$RAY_ADDRESS`` when that is set (``--jobs`` caps the jobs at once), else a local Ray instance
  with ``--jobs`` CPUs (default all) is started and shut down with the run.

Threads: a job runs with the threads its method asks for. Size ``--jobs`` so that jobs x threads per
job fit the cores of a machine: ``kmer-lgbm``'s default profile sizes LightGBM to every core, and
two such jobs on one 2-core machine ran several times slower than one after the other (spinning
OpenMP threads). The backends do not re-size a method's thread pools, since a method may compute
differently with another thread count and a seed must give the same predictions on every backend.

The dask and ray packages are optional (``pip install "dream-harness[dask]"`` / ``[ray]``);
:func:`check_available` turns a missing one into a :class:`BackendUnavailable` that says what to
install.

Every job must be self-contained: it is shipped to another process or machine that shares the run
directory, so it carries paths and small objects, never the data (see :mod:`harness.runner`).
:func:`dispatch` never lets one failed job take the others down: the job function reports its own
exception in its result, the others run to the end (their outputs stay for resume), and the caller
raises one :class:`JobError` naming every failed job. Only a dead worker process or a lost
cluster aborts the dispatch; the :class:`JobError` then names the jobs that had not finished.

Workers stop with their driver. Where the workers were started by this process (``local`` with
several jobs, a LocalCluster, a local Ray instance):

* ``SIGTERM`` to the driver becomes a :class:`Terminated` exception in it, so joblib cancels the
  queued jobs and terminates its worker processes before the driver exits (and the caller's
  ``finally`` blocks run: the run directory's lock is released);
* after a ``SIGKILL`` (nothing runs in the driver), each worker notices within
  :data:`WATCH_INTERVAL` seconds that the driver is gone and exits without starting another
  job (a watchdog thread in the worker, :func:`_watch_driver`); before this, loky workers ran the
  jobs already queued to them for minutes, and a resume started meanwhile duplicated them.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import signal
import socket
import threading
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

from rich.console import Console

#: the ``--backend`` choices
BACKENDS = ("local", "dask", "ray")
#: backend -> (modules it imports, what to install when one is missing)
REQUIREMENTS = {
    "dask": (("dask", "distributed"), 'pip install "dream-harness[dask]"  (or: pip install "dask[distributed]>=2024.1")'),
    "ray": (("ray",), 'pip install "dream-harness[ray]"  (or: pip install "ray>=2.9")'),
}


class BackendUnavailable(RuntimeError):
    """The requested backend's package is not installed (the message says what to pip install)."""


class JobError(RuntimeError):
    """One or more jobs failed, or the backend lost them; the message names each (method, fold)."""


class Terminated(KeyboardInterrupt):
    """``SIGTERM`` arrived while :func:`dispatch` waited on worker processes (a ``BaseException``, so
    no job's ``except Exception`` swallows it; joblib aborts on it and terminates its workers)."""


#: Seconds between a worker's checks that its driver process is still alive.
WATCH_INTERVAL = 0.5


@dataclass
class Outcome:
    """What :func:`dispatch` got back for one job: its result, or the error that ended it."""

    item: Any
    result: Any = None
    error: str | None = None


def check_available(backend: str, scheduler: str | None = None) -> None:
    """Fail fast, before any work, on an unknown backend, a missing package or a misplaced option.

    Raises:
        ValueError: unknown ``backend``, or a ``scheduler`` for a backend other than dask.
        BackendUnavailable: the backend's package cannot be imported.
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if scheduler and backend != "dask":
        raise ValueError(f"--scheduler is the address of a Dask scheduler; it needs --backend dask, not {backend}")
    modules, hint = REQUIREMENTS.get(backend, ((), ""))
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise BackendUnavailable(f"--backend {backend} needs the {module!r} package, which is not installed "
                                     f"({exc}); install it with: {hint}") from exc


def in_process(backend: str, jobs: int | None) -> bool:
    """True when the jobs run one after another in this process (``local`` with one job)."""
    return backend == "local" and (jobs or 1) == 1


@contextlib.contextmanager
def session(backend: str, jobs: int | None = None, scheduler: str | None = None,
            console: Console | None = None) -> Iterator[int]:
    """Open ``backend`` and make it joblib's current backend; yields the ``n_jobs`` for ``Parallel``.

    Whatever the session started (a LocalCluster, a local Ray instance) is shut down on exit; a
    cluster it only connected to is left running.
    """
    console = console or Console()
    check_available(backend, scheduler)
    if jobs is not None and jobs < 1:
        raise ValueError(f"--jobs must be at least 1, got {jobs}")
    if backend == "local":
        with _parallel_config("loky", jobs or 1):
            yield jobs or 1
    elif backend == "dask":
        with _dask_client(jobs, scheduler, console) as n_jobs, _parallel_config("dask", n_jobs):
            yield n_jobs
    else:
        with _ray(jobs, console) as n_jobs, _parallel_config("ray", n_jobs):
            yield n_jobs


def _parallel_config(backend: str, n_jobs: int):
    import joblib

    return joblib.parallel_config(backend=backend, n_jobs=n_jobs)


@contextlib.contextmanager
def _dask_client(jobs: int | None, scheduler: str | None, console: Console) -> Iterator[int]:
    from distributed import Client, LocalCluster

    address = scheduler or os.environ.get("DASK_SCHEDULER_ADDRESS")
    cluster = None
    if address:
        try:
            client = Client(address)
        except (OSError, TimeoutError) as exc:
            raise JobError(f"could not connect to the Dask scheduler at {address}: {exc}") from exc
        console.print(f"dask: connected to the scheduler at {address} "
                      f"({len(client.scheduler_info().get('workers', {}))} workers)")
        n_jobs = jobs or -1
    else:
        n_workers = jobs or _cores()
        cluster = LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True, memory_limit=0,
                               dashboard_address=None)
        client = Client(cluster)
        console.print(f"dask: started a local cluster of {n_workers} worker processes ({cluster.scheduler_address})")
        n_jobs = n_workers
    try:
        yield n_jobs
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


@contextlib.contextmanager
def _ray(jobs: int | None, console: Console) -> Iterator[int]:
    import ray
    from ray.util.joblib import register_ray

    register_ray()
    started = False
    if not ray.is_initialized():
        if os.environ.get("RAY_ADDRESS"):
            try:
                ray.init(address="auto")
            except (OSError, TimeoutError) as exc:  # ConnectionError is an OSError
                raise JobError(f"could not connect to the Ray cluster at {os.environ['RAY_ADDRESS']}: {exc}") from exc
            console.print(f"ray: connected to the cluster at {os.environ['RAY_ADDRESS']}")
        else:
            ray.init(num_cpus=jobs, include_dashboard=False)
            console.print(f"ray: started a local instance with {jobs or 'all'} CPUs")
        started = True
    try:
        yield jobs or -1
    finally:
        if started:
            ray.shutdown()


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def dispatch(func: Callable[..., Any], items: Sequence[Any], backend: str = "local", jobs: int | None = None,
             scheduler: str | None = None, console: Console | None = None,
             on_outcome: Callable[[Outcome], None] | None = None) -> list[Outcome]:
    """Run ``func(item, console)`` for every item through ``backend``; return the outcomes in item order.

    ``func`` must return ``{"error": str, ...}`` for a failure of its own (it is not raised here) or
    any other small picklable result. ``console`` is the caller's console when the jobs run in this
    process, else None (the job prints to its worker's output). ``on_outcome`` is called in this
    process as each job ends, in the order they end.

    Raises:
        JobError: a worker died or the cluster was lost; the message names the unfinished items
            (``str(item)``). The outcomes of the finished items were passed to ``on_outcome``.
    """
    from joblib import Parallel, delayed

    console = console or Console()
    if not items:
        return []
    local = in_process(backend, jobs)
    # workers this process starts must stop with it (module docstring); a given cluster's are not ours
    driver = None if local or joins_cluster(backend, scheduler) else (socket.gethostname(), os.getpid())
    outcomes: dict[int, Outcome] = {}
    with _sigterm_raises(driver is not None), session(backend, jobs, scheduler, console) as n_jobs:
        tasks = (delayed(_indexed)(i, func, item, console if local else None, driver) for i, item in enumerate(items))
        # results as the jobs end; Ray's joblib backend hands them back only all together, at the end
        parallel = Parallel(n_jobs=n_jobs, return_as="list" if backend == "ray" else "generator_unordered")
        try:
            for i, result in parallel(tasks):
                error = result.get("error") if isinstance(result, dict) else None
                outcomes[i] = Outcome(items[i], result, error)
                if on_outcome is not None:
                    on_outcome(outcomes[i])
        except Terminated as exc:  # joblib has cancelled the queued jobs and terminated its workers
            unfinished = [str(item) for i, item in enumerate(items) if i not in outcomes]
            raise JobError(f"terminated (SIGTERM): the {backend} workers were stopped with these jobs unfinished: "
                           f"{'; '.join(unfinished)}. Finished jobs are kept: run the same command again to "
                           "resume") from exc
        except Exception as exc:  # a dead worker, a lost scheduler: joblib has cancelled the rest
            unfinished = [str(item) for i, item in enumerate(items) if i not in outcomes]
            message = " ".join(str(exc).split())  # one line
            raise JobError(f"the {backend} backend failed ({type(exc).__name__}: {message}) while these jobs were "
                           f"unfinished: {'; '.join(unfinished)}. Finished jobs are kept: run the same command "
                           "again to resume") from exc
    return [outcomes[i] for i in range(len(items))]


def joins_cluster(backend: str, scheduler: str | None) -> bool:
    """True when ``backend`` connects to a cluster that outlives this process (its workers are not ours)."""
    if backend == "dask":
        return bool(scheduler or os.environ.get("DASK_SCHEDULER_ADDRESS"))
    if backend == "ray":
        return bool(os.environ.get("RAY_ADDRESS"))
    return False


@contextlib.contextmanager
def _sigterm_raises(enabled: bool) -> Iterator[None]:
    """While active (and in the main thread), ``SIGTERM`` raises :class:`Terminated` here."""
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise Terminated(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _indexed(i: int, func: Callable[..., Any], item: Any, console: Console | None,
             driver: tuple[str, int] | None = None) -> tuple[int, Any]:
    if driver is not None and driver[1] != os.getpid() and driver[0] == socket.gethostname():
        _watch_driver(driver[1])  # in a worker process: exits if the driver is gone, now or later
    return i, func(item, console)


_WATCHED: set[int] = set()


def _watch_driver(pid: int) -> None:
    """In a worker process: exit at once if the driver ``pid`` is gone, and start (once) a daemon
    thread that exits the process as soon as it goes. A driver that is the worker's parent (loky,
    a LocalCluster) is gone when the parent changes (no PID-reuse ambiguity); otherwise when
    ``os.kill(pid, 0)`` finds no such process."""
    parent_is_driver = os.getppid() == pid

    def gone() -> bool:
        if parent_is_driver:
            return os.getppid() != pid
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:  # alive, another user's
            return False
        return False

    if gone():
        os._exit(1)  # never start a queued job of a dead driver
    if pid in _WATCHED:
        return
    _WATCHED.add(pid)

    def watch() -> None:
        while not gone():
            threading.Event().wait(WATCH_INTERVAL)
        os._exit(1)

    threading.Thread(target=watch, name=f"watch-driver-{pid}", daemon=True).start()
