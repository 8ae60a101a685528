"""Where ``harness run`` executes its (method, fold) jobs, and on which GPUs.

``--backend`` chooses one of :data:`BACKENDS`; :func:`dispatch` starts the jobs in their order as
far as the free places allow (:func:`_schedule`, one loop for every backend):

* ``local``: the default, one job, runs the jobs one after another in this process, exactly as
  the runner always did. ``--jobs N`` runs them in worker processes of joblib's loky executor
  (``joblib.externals.loky``), started by this process, at most N at once.
* ``dask``: ``client.submit`` per job on a ``distributed.Client``: connected to ``--scheduler
  ADDRESS`` (or ``$DASK_SCHEDULER_ADDRESS``) when given, else to a local cluster started for the
  run (one single-threaded worker process per ``--jobs``, default one per core, no memory limit: a
  big fit must not be killed by the nanny while the machine has memory). ``--jobs`` with a
  scheduler caps the jobs running at once (default: as many as the cluster takes).
* ``ray``: one Ray task per job; ``ray.init(address="auto")`` joins the cluster of
  ``$RAY_ADDRESS`` when that is set (``--jobs`` caps the jobs at once), else a local Ray instance
  with ``--jobs`` CPUs (default all) and this machine's GPUs is started and shut down with the run.

GPU placement (``--gpus-per-job K``, default 1). A job asks for K GPUs when its method uses an
accelerator and ``--device`` is ``auto`` or ``cuda`` (:func:`harness.runner.job_gpus`); the
k-mer baselines and every job under ``--device cpu`` are CPU jobs. Each GPU job runs alone on its
own K GPUs, with ``CUDA_VISIBLE_DEVICES`` naming them in its process before CUDA starts, and
the method's ``cuda`` (or ``auto``) device is the first of them:

* ``local --jobs N`` on a machine with G GPUs (:func:`visible_gpus`): G // K slots of K GPU ids
  (:func:`gpu_slots`); each slot has one worker process of its own, started with the slot's
  ``CUDA_VISIBLE_DEVICES`` (:func:`worker_env`), which runs only that slot's jobs; so at most
  min(G // K, N) GPU jobs run at once, while CPU jobs run beside them in the CPU workers (their
  ``CUDA_VISIBLE_DEVICES`` empty) within N jobs in all. Why a worker per slot: loky reuses a
  worker for many jobs and CUDA reads ``CUDA_VISIBLE_DEVICES`` once, when it initialises, so a
  job setting it in a reused worker would silently get the previous job's GPU; passing
  ``cuda:<i>`` to each job instead would leave every GPU visible to every job (TensorFlow
  reserves memory on each GPU it sees, and a stray ``cuda`` tensor lands on GPU 0).
* ``ray``: a GPU job is a task with ``num_gpus=K`` (:func:`ray_remote_args`): Ray's own GPU
  scheduling sets ``CUDA_VISIBLE_DEVICES`` and runs it in a fresh worker (``max_calls=1``); a CPU
  job reserves one CPU and no GPU (Ray leaves it the node's ``CUDA_VISIBLE_DEVICES``).
* ``dask``: a GPU job is submitted with ``resources={"GPU": K}`` (:func:`dask_resources`). A
  local cluster started here has one worker per GPU slot with that resource and the slot's
  ``CUDA_VISIBLE_DEVICES`` (:func:`dask_worker_specs`); on a given cluster, start one worker per
  GPU slot with ``--resources GPU=K`` and its own ``CUDA_VISIBLE_DEVICES`` (as dask-cuda does).

Where the backend has no GPU, GPU jobs run as CPU jobs under ``--device auto`` and are refused
under ``--device cuda``. ``$HARNESS_FAKE_GPUS`` pretends a GPU count (tests of the placement on CPU
machines). Placement changes where a job runs, never what it computes: every backend gives the
same fold files and the driver aggregates them in fold order.

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
cluster aborts the dispatch (the running jobs are stopped); the :class:`JobError` then names the
jobs that had not finished.

Workers stop with their driver. Where the workers were started by this process (``local`` with
several jobs, a LocalCluster, a local Ray instance):

* ``SIGTERM`` to the driver becomes a :class:`Terminated` exception in it, so :func:`dispatch`
  starts no queued job and kills its worker processes before the driver exits (and the caller's
  ``finally`` blocks run: the run directory's lock is released);
* after a ``SIGKILL`` (nothing runs in the driver), each worker notices within
  :data:`WATCH_INTERVAL` seconds that the driver is gone and exits without starting another
  job (a watchdog thread in the worker, :func:`_watch_driver`); before this, loky workers ran the
  jobs already queued to them for minutes, and a resume started meanwhile duplicated them.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import importlib
import os
import signal
import socket
import threading
import uuid
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
    no job's ``except Exception`` swallows it; :func:`dispatch` kills its workers on it)."""


#: Seconds between a worker's checks that its driver process is still alive.
WATCH_INTERVAL = 0.5
#: Environment variable: a fake GPU count (tests of the placement on CPU machines; see :func:`visible_gpus`).
FAKE_GPUS_ENV = "HARNESS_FAKE_GPUS"
#: Thread-pool variables a local worker starts with (as joblib's loky backend sets them).
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS",
               "VECLIB_MAXIMUM_THREADS", "NUMBA_NUM_THREADS", "NUMEXPR_NUM_THREADS")
#: Dask resource of the CPU-job workers of a local cluster with GPU slots (:func:`dask_worker_specs`).
CPU_RESOURCE = "harness-cpu"


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


# ----- GPUs: what a machine has, how jobs share them ---------------------------------------------
def visible_gpus() -> list[str]:
    """The GPU ids this process may hand to its jobs, as ``CUDA_VISIBLE_DEVICES`` entries.

    ``$HARNESS_FAKE_GPUS`` (:data:`FAKE_GPUS_ENV`) = N pretends the machine has N GPUs, ids
    ``"0"``..``"N-1"`` (tests of the assignment logic on CPU machines; nothing touches CUDA).
    Otherwise ``torch.cuda.device_count()`` GPUs: the first entries of this process's own
    ``CUDA_VISIBLE_DEVICES`` when it is set (so a driver started with ``CUDA_VISIBLE_DEVICES=2,3``
    hands out GPUs 2 and 3, never 0), else ``"0"``.. ``"G-1"``. No torch, or no CUDA build: none.

    Raises:
        ValueError: ``$HARNESS_FAKE_GPUS`` is not a whole number >= 0.
    """
    fake = os.environ.get(FAKE_GPUS_ENV)
    if fake is not None:
        if not fake.strip().isdigit():
            raise ValueError(f"${FAKE_GPUS_ENV}={fake!r}: must be a whole number of (fake) GPUs >= 0")
        return [str(i) for i in range(int(fake))]
    try:
        import torch
    except ImportError:
        return []
    count = torch.cuda.device_count()
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        return [entry.strip() for entry in listed.split(",") if entry.strip()][:count]
    return [str(i) for i in range(count)]


def gpu_slots(ids: Sequence[str], per_job: int) -> list[tuple[str, ...]]:
    """Split GPU ``ids`` into ``len(ids) // per_job`` disjoint slots of ``per_job`` ids, in id order
    (4 GPUs, 2 per job: ``[("0", "1"), ("2", "3")]``); a GPU job runs on one whole slot, so at most
    that many GPU jobs run at once and no GPU is shared. Left-over ids (5 GPUs, 2 per job) stay idle.

    Raises:
        ValueError: ``per_job`` < 1, or more than there are ids (``--gpus-per-job`` named).
    """
    if per_job < 1:
        raise ValueError(f"--gpus-per-job {per_job}: must be at least 1")
    if per_job > len(ids):
        raise ValueError(f"--gpus-per-job {per_job}: a job would need {per_job} GPUs, this machine has "
                         f"{len(ids)} ({'CUDA_VISIBLE_DEVICES ids ' + ','.join(ids) if ids else 'none visible'})")
    return [tuple(ids[s * per_job:(s + 1) * per_job]) for s in range(len(ids) // per_job)]


def worker_env(jobs: int, hide_gpus: bool = False, gpus: Sequence[str] = ()) -> dict[str, str]:
    """The environment a local worker process starts with (set before it imports anything).

    Thread limits as joblib's loky backend sets them (``OMP_NUM_THREADS`` and the BLAS variables:
    the cores divided by ``jobs``, unless this process sets them), so ``--jobs`` processes do not
    oversubscribe the cores. ``CUDA_VISIBLE_DEVICES``: the ids of ``gpus`` (a GPU slot's worker),
    or empty with ``hide_gpus`` (a CPU job's worker on a GPU machine: it never sees, initialises or
    allocates on a GPU; TensorFlow would otherwise reserve memory on every visible GPU).
    """
    from joblib import cpu_count

    threads = max(cpu_count() // max(jobs, 1), 1)
    env = {var: os.environ.get(var, str(threads)) for var in THREAD_VARS}
    if gpus:
        env["CUDA_VISIBLE_DEVICES"] = ",".join(gpus)
    elif hide_gpus:
        env["CUDA_VISIBLE_DEVICES"] = ""
    return env


def ray_remote_args(gpus: int) -> dict[str, Any]:
    """``ray.remote`` arguments of a job that needs ``gpus`` GPUs (0: a CPU job).

    One CPU each (a local instance has ``--jobs`` CPUs, so at most ``--jobs`` jobs run), ``num_gpus``
    for Ray's own GPU scheduling (Ray sets ``CUDA_VISIBLE_DEVICES`` of the task to the GPUs it
    reserved), ``max_calls=1`` for a GPU job: a fresh worker process per GPU job, so that the
    ``CUDA_VISIBLE_DEVICES`` Ray sets is the one CUDA initialises with (a reused worker keeps the
    GPUs of its first job). ``max_retries=0``: a job that kills its worker is reported, not rerun
    (as on the other backends). A CPU job reserves no GPU; Ray (2.60) leaves its
    ``CUDA_VISIBLE_DEVICES`` as the node has it (hiding them with a ``runtime_env`` made Ray's
    GPU workers abort at exit in some runs here, after their results were in).
    """
    return {"num_cpus": 1, "num_gpus": gpus, "max_calls": 1 if gpus else 0, "max_retries": 0}


def dask_resources(gpus: int, own_cluster: bool) -> dict[str, int] | None:
    """The Dask ``resources`` a job asks for on ``client.submit``: ``{"GPU": gpus}`` for a GPU job
    (it runs only on a worker that declares that many, one job per worker thread); a CPU job asks
    for nothing on a given cluster, and for ``{"harness-cpu": 1}`` on a cluster started here, whose
    GPU workers then stay free for the GPU jobs (:func:`dask_worker_specs`)."""
    if gpus:
        return {"GPU": gpus}
    return {CPU_RESOURCE: 1} if own_cluster else None


def dask_worker_specs(cpu_workers: int, slots: Sequence[Sequence[str]], hide_gpus: bool) -> dict[str, dict]:
    """Worker options of a local Dask cluster with GPU slots: ``cpu_workers`` single-threaded
    workers with resource ``{"harness-cpu": 1}`` (``CUDA_VISIBLE_DEVICES`` empty on a GPU machine)
    and one single-threaded worker per slot with ``{"GPU": len(slot)}`` and ``CUDA_VISIBLE_DEVICES``
    set to the slot's ids in the worker process's environment before it starts (the nanny's
    ``env``). Returns ``{name: options for distributed.Nanny}``; no memory limit (module docstring)."""
    base = {"nthreads": 1, "memory_limit": 0}
    specs = {f"cpu-{i}": {**base, "resources": {CPU_RESOURCE: 1},
                          "env": {"CUDA_VISIBLE_DEVICES": ""} if hide_gpus else {}}
             for i in range(cpu_workers)}
    for s, slot in enumerate(slots):
        specs[f"gpu-{s}"] = {**base, "resources": {"GPU": len(slot)}, "env": {"CUDA_VISIBLE_DEVICES": ",".join(slot)}}
    return specs


# ----- where jobs run: one pool per backend, one scheduling loop for all ---------------------------
class _Pool:
    """Runs jobs on one backend. ``cap``: jobs at once (None: as many as the backend takes);
    ``gpu_slots``: GPU jobs at once; ``gpus``: per item, the GPUs it gets (its request, or 0 where
    the backend has no GPU and the device was ``auto``)."""

    cap: int | None = None
    gpu_slots: int = 0
    gpus: list[int]

    def submit(self, i: int, call: tuple) -> concurrent.futures.Future:
        raise NotImplementedError

    def release(self, i: int) -> None:
        """Item ``i`` ended: its GPU slot, if any, is free again."""

    def abort(self) -> None:
        """Stop every running job now (its worker processes where they are ours)."""


def _resolve_gpus(wants: Sequence[int], available: int, per_worker: int, require: bool, where: str,
                  hint: str, console: Console) -> list[int]:
    """The GPUs each item gets: its request when ``where`` has GPUs; all 0 (the jobs' ``auto``
    device falls back there) when it has none and GPUs were not required.

    Raises:
        JobError: GPUs required (``--device cuda``) and ``where`` has none, or no worker or node
            has the GPUs one job asks for.
    """
    k = max(wants, default=0)
    if not k:
        return list(wants)
    if available == 0:
        if require:
            raise JobError(f"--device cuda: {where} has no GPU for the {sum(1 for w in wants if w)} GPU job(s); {hint}")
        console.print(f"[yellow]{where} has no GPU: the GPU methods' jobs run on CPUs (--device auto)")
        return [0] * len(wants)
    if per_worker < k:
        raise JobError(f"--gpus-per-job {k}: no worker of {where} has {k} GPUs (at most {per_worker}); {hint}")
    return list(wants)


class _InProcess(_Pool):
    """``local`` with one job: each job in this process, one after another (no placement)."""

    def __init__(self, wants: Sequence[int]) -> None:
        self.cap, self.gpus = 1, [0] * len(wants)

    def submit(self, i: int, call: tuple) -> concurrent.futures.Future:
        future: concurrent.futures.Future = concurrent.futures.Future()
        future.set_result(_indexed(*call))
        return future


class _LocalPool(_Pool):
    """``local`` with ``--jobs N``: loky worker processes, started by this process.

    CPU jobs share one pool of up to N workers; each GPU slot has a pool of one worker whose
    ``CUDA_VISIBLE_DEVICES`` is the slot's ids from its start. A GPU job runs only in a free
    slot's worker: it never shares a GPU, and since a slot's worker only ever gets that slot's
    jobs, CUDA sees the same GPUs in it for all its jobs (loky reuses a worker for many jobs, so
    setting the variable per job would not work once a job had initialised CUDA; passing
    ``cuda:<i>`` to each job would leave every GPU visible to every job, and TensorFlow reserves
    memory on every GPU it sees).
    """

    def __init__(self, jobs: int, wants: Sequence[int], require: bool, console: Console) -> None:
        ids = visible_gpus() if any(wants) else []  # CPU-only runs never import torch to count GPUs
        self.cap, self.jobs = jobs, jobs
        self.gpus = _resolve_gpus(wants, len(ids), len(ids), require, "this machine",
                                  "use --device auto, or fewer --gpus-per-job", console)
        k = max(self.gpus, default=0)
        self.slots = gpu_slots(ids, k) if k else []
        self.gpu_slots = len(self.slots)
        self.hide_gpus = bool(ids)
        self.free = list(range(len(self.slots)))
        self.slot_of: dict[int, int] = {}
        self.n_cpu_jobs = sum(1 for g in self.gpus if not g)
        self.executors: dict[Any, Any] = {}
        self.aborted = False
        if self.slots:
            console.print(f"GPU placement: {len(self.slots)} slot(s) of {k} GPU(s) "
                          f"({'; '.join(','.join(s) for s in self.slots)}), at most {min(len(self.slots), jobs)} "
                          f"GPU job(s) at once; CPU jobs beside them (CUDA_VISIBLE_DEVICES empty)")

    def _executor(self, key: Any):
        if key not in self.executors:
            from joblib.externals.loky import ProcessPoolExecutor

            if key == "cpu":
                n, env = min(self.jobs, self.n_cpu_jobs), worker_env(self.jobs, hide_gpus=self.hide_gpus)
            else:
                n, env = 1, worker_env(self.jobs, gpus=self.slots[key])
            self.executors[key] = ProcessPoolExecutor(max_workers=n, env=env)
        return self.executors[key]

    def submit(self, i: int, call: tuple) -> concurrent.futures.Future:
        if not self.gpus[i]:
            return self._executor("cpu").submit(_indexed, *call)
        slot = self.slot_of[i] = self.free.pop(0)
        return self._executor(slot).submit(_indexed, *call)

    def release(self, i: int) -> None:
        if i in self.slot_of:
            self.free.append(self.slot_of.pop(i))
            self.free.sort()

    def abort(self) -> None:
        self.aborted = True
        for executor in self.executors.values():
            executor.shutdown(wait=False, kill_workers=True)

    def close(self) -> None:
        if not self.aborted:
            for executor in self.executors.values():
                executor.shutdown(wait=True)


class _DaskPool(_Pool):
    """``dask``: ``client.submit`` per job with its :func:`dask_resources`."""

    def __init__(self, client, own: bool, cap: int | None, gpus: list[int], slots: int) -> None:
        self.client, self.own, self.cap, self.gpus, self.gpu_slots = client, own, cap, gpus, slots
        self.futures: dict[int, Any] = {}

    def submit(self, i: int, call: tuple) -> concurrent.futures.Future:
        resources = dask_resources(self.gpus[i], self.own)
        dask_future = self.client.submit(_indexed, *call, pure=False, key=f"harness-job-{i}-{uuid.uuid4().hex}",
                                         **({"resources": resources} if resources else {}))
        self.futures[i] = dask_future
        return _bridge_dask(dask_future)

    def release(self, i: int) -> None:
        self.futures.pop(i, None)

    def abort(self) -> None:
        if self.futures:
            self.client.cancel(list(self.futures.values()))


def _bridge_dask(dask_future) -> concurrent.futures.Future:
    """A :class:`concurrent.futures.Future` that ends as ``dask_future`` ends."""
    future: concurrent.futures.Future = concurrent.futures.Future()

    def done(f) -> None:
        try:
            future.set_result(f.result())
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting driver
            future.set_exception(exc)

    dask_future.add_done_callback(done)
    return future


class _RayPool(_Pool):
    """``ray``: one Ray task per job with :func:`ray_remote_args` (Ray's own CPU/GPU scheduling)."""

    def __init__(self, ray, cap: int | None, gpus: list[int], slots: int) -> None:
        self.ray, self.cap, self.gpus, self.gpu_slots = ray, cap, gpus, slots
        self.refs: dict[int, Any] = {}
        self.remotes: dict[int, Any] = {}

    def submit(self, i: int, call: tuple) -> concurrent.futures.Future:
        gpus = self.gpus[i]
        if gpus not in self.remotes:
            self.remotes[gpus] = self.ray.remote(**ray_remote_args(gpus))(_indexed)
        ref = self.refs[i] = self.remotes[gpus].remote(*call)
        return ref.future()

    def release(self, i: int) -> None:
        self.refs.pop(i, None)

    def abort(self) -> None:
        for ref in self.refs.values():
            with contextlib.suppress(Exception):
                self.ray.cancel(ref, force=True)


@contextlib.contextmanager
def _pool(backend: str, jobs: int | None, scheduler: str | None, console: Console, wants: Sequence[int],
          require: bool) -> Iterator[_Pool]:
    """Open ``backend`` for the items' GPU requests ``wants``; whatever it started is shut down on exit
    (a LocalCluster, a local Ray instance, local worker processes); a cluster it only joined is left running."""
    check_available(backend, scheduler)
    if jobs is not None and jobs < 1:
        raise ValueError(f"--jobs must be at least 1, got {jobs}")
    if in_process(backend, jobs):
        yield _InProcess(wants)
    elif backend == "local":
        pool = _LocalPool(jobs or 1, wants, require, console)
        try:
            yield pool
        finally:
            pool.close()
    elif backend == "dask":
        with _dask_pool(jobs, scheduler, console, wants, require) as pool:
            yield pool
    else:
        with _ray_pool(jobs, console, wants, require) as pool:
            yield pool


@contextlib.contextmanager
def _dask_pool(jobs: int | None, scheduler: str | None, console: Console, wants: Sequence[int],
               require: bool) -> Iterator[_DaskPool]:
    from distributed import Client, LocalCluster

    address = scheduler or os.environ.get("DASK_SCHEDULER_ADDRESS")
    cluster = None
    if address:
        try:
            client = Client(address)
        except (OSError, TimeoutError) as exc:
            raise JobError(f"could not connect to the Dask scheduler at {address}: {exc}") from exc
        workers = client.scheduler_info().get("workers", {})
        console.print(f"dask: connected to the scheduler at {address} ({len(workers)} workers)")
        k = max(wants, default=0)
        declared = [int((w.get("resources") or {}).get("GPU", 0)) for w in workers.values()]
        try:
            gpus = _resolve_gpus(wants, sum(declared), max(declared, default=0), require,
                                 f"the Dask cluster at {address}",
                                 "start its GPU workers with --resources GPU=<n> (one worker per GPU slot, "
                                 "with CUDA_VISIBLE_DEVICES set, e.g. dask-cuda)", console)
        except JobError:
            client.close()
            raise
        slots = sum(d // k for d in declared) if k else 0
        pool = _DaskPool(client, False, jobs, gpus, slots)
    else:
        ids = visible_gpus()
        gpus = _resolve_gpus(wants, len(ids), len(ids), require, "this machine",
                             "use --device auto, or fewer --gpus-per-job", console)
        k = max(gpus, default=0)
        n_workers = jobs or _cores()
        slots = gpu_slots(ids, k)[:n_workers] if k else []  # a slot worker more than --jobs would idle
        n_cpu_jobs = sum(1 for g in gpus if not g)
        if not slots:  # no GPU job: the plain cluster of one single-threaded worker per --jobs
            hide = {"env": {"CUDA_VISIBLE_DEVICES": ""}} if ids else {}  # CPU jobs on a GPU machine
            cluster = LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True, memory_limit=0,
                                   dashboard_address=None, **hide)
            console.print(f"dask: started a local cluster of {n_workers} worker processes ({cluster.scheduler_address})")
        else:
            cluster = _gpu_cluster(dask_worker_specs(min(n_workers, n_cpu_jobs), slots, bool(ids)))
            console.print(f"dask: started a local cluster of {len(cluster.worker_spec)} worker processes, "
                          f"{len(slots)} of them on GPU slots ({'; '.join(','.join(s) for s in slots)}) "
                          f"({cluster.scheduler_address})")
        client = Client(cluster)
        pool = _DaskPool(client, bool(slots), n_workers, gpus, len(slots))
    try:
        yield pool
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _gpu_cluster(specs: dict[str, dict]):
    """A local Dask cluster whose workers have the given :class:`distributed.Nanny` options."""
    from distributed import Nanny, Scheduler, SpecCluster

    return SpecCluster(workers={name: {"cls": Nanny, "options": options} for name, options in specs.items()},
                       scheduler={"cls": Scheduler, "options": {"dashboard_address": None}})


@contextlib.contextmanager
def _ray_pool(jobs: int | None, console: Console, wants: Sequence[int], require: bool) -> Iterator[_RayPool]:
    import ray

    started = False
    if not ray.is_initialized():
        if os.environ.get("RAY_ADDRESS"):
            try:
                ray.init(address="auto")
            except (OSError, TimeoutError) as exc:  # ConnectionError is an OSError
                raise JobError(f"could not connect to the Ray cluster at {os.environ['RAY_ADDRESS']}: {exc}") from exc
            console.print(f"ray: connected to the cluster at {os.environ['RAY_ADDRESS']}")
        else:
            n_gpus = len(visible_gpus())
            ray.init(num_cpus=jobs, num_gpus=n_gpus, include_dashboard=False)
            console.print(f"ray: started a local instance with {jobs or 'all'} CPUs and {n_gpus} GPUs")
        started = True
    try:
        k = max(wants, default=0)
        per_node = [int(node.get("Resources", {}).get("GPU", 0)) for node in ray.nodes() if node.get("Alive")]
        gpus = _resolve_gpus(wants, sum(per_node), max(per_node, default=0), require, "the Ray cluster",
                             "start its nodes with --num-gpus", console)
        slots = sum(n // k for n in per_node) if k else 0
        yield _RayPool(ray, jobs, gpus, slots)
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
             on_outcome: Callable[[Outcome], None] | None = None, gpus: Sequence[int] | None = None,
             require_gpus: bool = False) -> list[Outcome]:
    """Run ``func(item, console)`` for every item through ``backend``; return the outcomes in item order.

    ``func`` must return ``{"error": str, ...}`` for a failure of its own (it is not raised here) or
    any other small picklable result. ``console`` is the caller's console when the jobs run in this
    process, else None (the job prints to its worker's output). ``on_outcome`` is called in this
    process as each job ends, in the order they end.

    ``gpus``: per item, the GPUs it asks for (0: a CPU job; the same count K for every GPU job);
    placed as the module docstring says. Where the backend has no GPU they run as CPU jobs, unless
    ``require_gpus`` (``--device cuda``). Jobs start in item order as far as the free places allow:
    a GPU job waits for a free GPU slot while the CPU jobs after it start.

    Raises:
        JobError: a worker died or the cluster was lost; the message names the unfinished items
            (``str(item)``). The outcomes of the finished items were passed to ``on_outcome``.
            Also, before any job starts: ``require_gpus`` and the backend has no GPU, or no
            machine, worker or node of it has K GPUs.
        ValueError: ``gpus`` is not one count per item (>= 0, one K for every GPU job).
    """
    console = console or Console()
    if not items:
        return []
    wants = [int(g) for g in gpus] if gpus is not None else [0] * len(items)
    if len(wants) != len(items) or min(wants) < 0 or len({w for w in wants if w}) > 1:
        raise ValueError(f"gpus: expected one count >= 0 per item, the same for every GPU job; got {wants}")
    local = in_process(backend, jobs)
    # workers this process starts must stop with it (module docstring); a given cluster's are not ours
    driver = None if local or joins_cluster(backend, scheduler) else (socket.gethostname(), os.getpid())
    outcomes: dict[int, Outcome] = {}
    with _sigterm_raises(driver is not None), _pool(backend, jobs, scheduler, console, wants, require_gpus) as pool:
        try:
            for i, result in _schedule(pool, items, func, console if local else None, driver):
                error = result.get("error") if isinstance(result, dict) else None
                outcomes[i] = Outcome(items[i], result, error)
                if on_outcome is not None:
                    on_outcome(outcomes[i])
        except Terminated as exc:
            pool.abort()
            unfinished = [str(item) for i, item in enumerate(items) if i not in outcomes]
            raise JobError(f"terminated (SIGTERM): the {backend} workers were stopped with these jobs unfinished: "
                           f"{'; '.join(unfinished)}. Finished jobs are kept: run the same command again to "
                           "resume") from exc
        except Exception as exc:  # a dead worker, a lost scheduler: the rest is cancelled
            pool.abort()
            unfinished = [str(item) for i, item in enumerate(items) if i not in outcomes]
            message = " ".join(str(exc).split())  # one line
            raise JobError(f"the {backend} backend failed ({type(exc).__name__}: {message}) while these jobs were "
                           f"unfinished: {'; '.join(unfinished)}. Finished jobs are kept: run the same command "
                           "again to resume") from exc
        except BaseException:  # KeyboardInterrupt: stop our workers too
            pool.abort()
            raise
    return [outcomes[i] for i in range(len(items))]


def _schedule(pool: _Pool, items: Sequence[Any], func: Callable[..., Any], console: Console | None,
              driver: tuple[str, int] | None) -> Iterator[tuple[int, Any]]:
    """Start the items on ``pool`` in item order, at most ``pool.cap`` at once and at most
    ``pool.gpu_slots`` GPU jobs at once (a GPU job that finds no free slot waits, the CPU jobs after
    it start); yield ``(index, result)`` as each ends. A worker that died raises here."""
    pending = list(range(len(items)))
    running: dict[concurrent.futures.Future, int] = {}
    while pending or running:
        gpu_running = sum(1 for i in running.values() if pool.gpus[i])
        for i in list(pending):
            if pool.cap is not None and len(running) >= pool.cap:
                break
            if pool.gpus[i]:
                if gpu_running >= pool.gpu_slots:
                    continue
                gpu_running += 1
            pending.remove(i)
            running[pool.submit(i, (i, func, items[i], console, driver))] = i
        if not running:  # cannot happen with a resolved pool: GPU jobs without slots are CPU jobs there
            raise JobError(f"no place to run {'; '.join(str(items[i]) for i in pending)}")
        done, _ = concurrent.futures.wait(running, return_when=concurrent.futures.FIRST_COMPLETED)
        for future in sorted(done, key=running.get):
            i = running.pop(future)
            pool.release(i)
            yield future.result()


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
