"""GPU placement of ``harness run`` jobs (``--jobs N``, ``--gpus-per-job K``) on CPU machines.

``$HARNESS_FAKE_GPUS`` pretends a GPU count, so what is tested is the assignment logic, not CUDA:
which ``CUDA_VISIBLE_DEVICES`` each job's process starts with, how many GPU jobs run at once, and
that CPU jobs run beside them. Each job records, from inside its worker, its
``CUDA_VISIBLE_DEVICES``, its process and when it ran, and holds an exclusive lock on a file per
GPU id it was given: two jobs on one GPU at the same time would find the lock taken.

Before: ``--jobs N`` started every job with the driver's environment, so on a GPU machine every
job trained on ``cuda:0``.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from conftest import process_alive
from harness import registry
from harness.backend import (CPU_RESOURCE, FAKE_GPUS_ENV, JobError, dask_resources, dask_worker_specs, dispatch,
                             gpu_slots, ray_remote_args, visible_gpus)
from harness.data.encoding import gc_content
from harness.io import read_json
from harness.method import Method, MethodConfig
from harness.registry import register

# harness.runner and harness.cli are imported inside the tests that use them: every worker process
# imports this module (for its job function and plug-ins), and they double its import time.


# ----- a job that records where it ran ------------------------------------------------------------
@dataclass
class Probe:
    """One job of :func:`record`: ``barrier`` lists the jobs that must all be running before this
    one ends (proof that they ran at the same time); ``sleep`` seconds of work after that."""

    index: int
    log: str
    barrier: tuple[int, ...] = ()
    sleep: float = 0.2

    def __str__(self) -> str:
        return f"probe {self.index}"


def _visible() -> str | None:
    return os.environ.get("CUDA_VISIBLE_DEVICES")


def record(probe: Probe, console=None) -> dict:
    """Hold an exclusive lock per GPU id of ``CUDA_VISIBLE_DEVICES`` while running; write and return
    ``{"index", "pid", "cuda", "start", "end", "shared", "met"}`` (monotonic seconds; ``shared``: a
    GPU's lock was taken by another job; ``met``: every job of the barrier was running)."""
    log = Path(probe.log)
    start = time.monotonic()
    cuda = _visible()
    locks, shared = [], False
    for gpu in (cuda or "").split(","):
        if gpu:
            handle = open(log / f"gpu-{gpu}.lock", "a")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                shared = True
            locks.append(handle)
    (log / f"running-{probe.index}").touch()
    met = True
    deadline = time.monotonic() + 90
    while not all((log / f"running-{j}").exists() for j in probe.barrier):
        if time.monotonic() > deadline:
            met = False
            break
        time.sleep(0.05)
    time.sleep(probe.sleep)
    for handle in locks:
        handle.close()
    result = {"index": probe.index, "pid": os.getpid(), "cuda": cuda, "start": start, "end": time.monotonic(),
              "shared": shared, "met": met}
    (log / f"job-{probe.index}.json").write_text(json.dumps(result))
    return result


def _max_overlap(intervals: list[tuple[float, float]]) -> int:
    events = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals])
    now = peak = 0
    for _, step in events:  # an end sorts before a start at the same instant
        now += step
        peak = max(peak, now)
    return peak


def _overlaps(a: dict, b: dict) -> bool:
    return a["start"] < b["end"] and b["start"] < a["end"]


# ----- local backend ----------------------------------------------------------------------------------
def test_local_jobs_get_their_own_gpu_and_cpu_jobs_run_beside(tmp_path, monkeypatch):
    """2 (fake) GPUs, 5 GPU jobs + 2 CPU jobs, ``--jobs 4``: at most 2 GPU jobs at once, each with
    one GPU id of its own, never shared; the CPU jobs see no GPU and run while GPU jobs run."""
    monkeypatch.setenv(FAKE_GPUS_ENV, "2")
    gpus = [1, 1, 0, 1, 1, 0, 1]  # jobs 2 and 5 are the CPU jobs
    first_wave = (0, 1, 2, 5)  # what the scheduler starts at once: 2 GPU slots, then the CPU jobs
    probes = [Probe(i, str(tmp_path), first_wave if i in first_wave else ()) for i in range(len(gpus))]
    outcomes = dispatch(record, probes, "local", jobs=4, gpus=gpus)

    results = [o.result for o in outcomes]
    assert [r["index"] for r in results] == list(range(7))  # outcomes in item order
    assert all(r["met"] for r in results), "the first wave (2 GPU jobs + 2 CPU jobs) did not run at once"
    gpu_runs = [r for r, g in zip(results, gpus) if g]
    cpu_runs = [r for r, g in zip(results, gpus) if not g]
    assert {r["cuda"] for r in gpu_runs} == {"0", "1"}  # before: None (every job on the driver's cuda:0)
    assert not any(r["shared"] for r in results)
    assert _max_overlap([(r["start"], r["end"]) for r in gpu_runs]) == 2
    for a in gpu_runs:  # jobs on one GPU never overlap
        assert not any(_overlaps(a, b) for b in gpu_runs if b is not a and b["cuda"] == a["cuda"])
    assert [r["cuda"] for r in cpu_runs] == ["", ""]  # a CPU job's process sees no GPU
    assert all(any(_overlaps(c, g) for g in gpu_runs) for c in cpu_runs)
    assert _max_overlap([(r["start"], r["end"]) for r in results]) <= 4
    # a slot's worker runs only that slot's jobs: one process per GPU id, none shared with CPU jobs
    pids = {r["cuda"]: set() for r in results}
    for r in results:
        pids[r["cuda"]].add(r["pid"])
    assert len(pids["0"]) == len(pids["1"]) == 1 and not pids["0"] & pids["1"] and not pids[""] & (pids["0"] | pids["1"])


def crash_or_wait(probe: Probe, console=None) -> dict:
    """Job 0 kills its worker process once job 1 runs; job 1 records its pid and waits (for a file
    that never comes) until it is stopped."""
    log = Path(probe.log)
    if probe.index == 0:
        while not (log / "pid-1").exists():
            time.sleep(0.05)
        os._exit(3)
    (log / "pid-1").write_text(str(os.getpid()))
    while not (log / "never").exists():
        time.sleep(0.05)
    return {}


def test_a_dead_gpu_worker_stops_every_worker(tmp_path, monkeypatch):
    """A GPU slot's worker dies: the error names the unfinished jobs, and the CPU job running beside
    it in another pool is stopped too (its process is gone), not left running."""
    monkeypatch.setenv(FAKE_GPUS_ENV, "1")
    probes = [Probe(0, str(tmp_path)), Probe(1, str(tmp_path)), Probe(2, str(tmp_path))]
    with pytest.raises(JobError, match=r"the local backend failed .* unfinished: probe 0; probe 1; probe 2"):
        dispatch(crash_or_wait, probes, "local", jobs=2, gpus=[1, 0, 1])
    pid = int((tmp_path / "pid-1").read_text())
    deadline = time.monotonic() + 10
    while process_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not process_alive(pid), "the CPU job's worker outlived the dispatch"




def test_two_gpus_per_job_make_two_slots_of_two(tmp_path, monkeypatch):
    """4 (fake) GPUs, ``--gpus-per-job 2``: slots ("0", "1") and ("2", "3"); 3 GPU jobs under
    ``--jobs 3``: two at once, each on a whole slot."""
    assert gpu_slots(["0", "1", "2", "3"], 2) == [("0", "1"), ("2", "3")]
    assert gpu_slots(["0", "1", "2", "3", "4"], 2) == [("0", "1"), ("2", "3")]  # GPU 4 stays idle
    assert gpu_slots(["GPU-a", "GPU-b"], 1) == [("GPU-a",), ("GPU-b",)]
    monkeypatch.setenv(FAKE_GPUS_ENV, "4")
    probes = [Probe(0, str(tmp_path), (0, 1)), Probe(1, str(tmp_path), (0, 1)), Probe(2, str(tmp_path))]
    results = [o.result for o in dispatch(record, probes, "local", jobs=3, gpus=[2, 2, 2])]
    assert all(r["met"] and not r["shared"] for r in results)
    assert {results[0]["cuda"], results[1]["cuda"]} == {"0,1", "2,3"}
    assert results[2]["cuda"] in {"0,1", "2,3"}
    assert _max_overlap([(r["start"], r["end"]) for r in results]) == 2


def test_visible_gpus_maps_through_the_drivers_own_list(monkeypatch):
    """A driver started with ``CUDA_VISIBLE_DEVICES=2,3`` hands out GPUs 2 and 3, never 0 and 1."""
    import torch

    monkeypatch.delenv(FAKE_GPUS_ENV, raising=False)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert visible_gpus() == ["2", "3"]
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    assert visible_gpus() == ["0", "1"]
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    assert visible_gpus() == []
    monkeypatch.setenv(FAKE_GPUS_ENV, "two")
    with pytest.raises(ValueError, match=r"\$HARNESS_FAKE_GPUS='two': must be a whole number"):
        visible_gpus()


def test_no_gpu_runs_gpu_jobs_on_cpu_under_auto_and_refuses_under_cuda(tmp_path, monkeypatch):
    """Without a GPU, ``auto`` GPU jobs run as CPU jobs (environment untouched); ``--device cuda``
    (``require_gpus``) is refused before a worker starts."""
    monkeypatch.setenv(FAKE_GPUS_ENV, "0")
    probes = [Probe(0, str(tmp_path)), Probe(1, str(tmp_path))]
    results = [o.result for o in dispatch(record, probes, "local", jobs=2, gpus=[1, 0])]
    assert [r["cuda"] for r in results] == [_visible(), _visible()]
    with pytest.raises(JobError, match=r"--device cuda: this machine has no GPU for the 1 GPU job\(s\)"):
        dispatch(record, probes, "local", jobs=2, gpus=[1, 0], require_gpus=True)
    with pytest.raises(ValueError, match="one count >= 0 per item"):
        dispatch(record, probes, "local", jobs=2, gpus=[1])


# ----- Ray and Dask: the requests as data, and a run on a local Dask cluster ------------------------------
def test_ray_and_dask_requests():
    assert ray_remote_args(0) == {"num_cpus": 1, "num_gpus": 0, "max_calls": 0, "max_retries": 0}
    assert ray_remote_args(2) == {"num_cpus": 1, "num_gpus": 2, "max_calls": 1, "max_retries": 0}
    assert dask_resources(1, own_cluster=False) == {"GPU": 1}
    assert dask_resources(2, own_cluster=True) == {"GPU": 2}
    assert dask_resources(0, own_cluster=False) is None  # a given cluster's workers need declare nothing
    assert dask_resources(0, own_cluster=True) == {CPU_RESOURCE: 1}
    specs = dask_worker_specs(2, [("0", "1"), ("2", "3")], hide_gpus=True)
    assert specs == {
        "cpu-0": {"nthreads": 1, "memory_limit": 0, "resources": {CPU_RESOURCE: 1}, "env": {"CUDA_VISIBLE_DEVICES": ""}},
        "cpu-1": {"nthreads": 1, "memory_limit": 0, "resources": {CPU_RESOURCE: 1}, "env": {"CUDA_VISIBLE_DEVICES": ""}},
        "gpu-0": {"nthreads": 1, "memory_limit": 0, "resources": {"GPU": 2}, "env": {"CUDA_VISIBLE_DEVICES": "0,1"}},
        "gpu-1": {"nthreads": 1, "memory_limit": 0, "resources": {"GPU": 2}, "env": {"CUDA_VISIBLE_DEVICES": "2,3"}},
    }


def test_local_dask_cluster_places_gpu_jobs_on_its_gpu_workers(tmp_path, monkeypatch):
    """``--backend dask`` without a scheduler, 2 (fake) GPUs: a cluster of one worker per GPU slot
    (``resources={"GPU": 1}``, its ``CUDA_VISIBLE_DEVICES``) and CPU workers; GPU jobs only on the
    GPU workers, two at once; the CPU job on a CPU worker, beside them."""
    monkeypatch.setenv(FAKE_GPUS_ENV, "2")
    gpus = [1, 1, 0, 1]
    probes = [Probe(i, str(tmp_path), (0, 1, 2) if i < 3 else ()) for i in range(4)]
    results = [o.result for o in dispatch(record, probes, "dask", jobs=3, gpus=gpus)]
    assert all(r["met"] and not r["shared"] for r in results)
    assert {results[0]["cuda"], results[1]["cuda"]} == {"0", "1"} and results[3]["cuda"] in {"0", "1"}
    assert results[2]["cuda"] == ""
    assert _max_overlap([(r["start"], r["end"]) for r, g in zip(results, gpus) if g]) == 2


# ----- through harness run ------------------------------------------------------------------------------
@dataclass
class RecorderConfig(MethodConfig):
    log: str = ""


class _Recorder(Method):
    """Least squares on GC content and length; its fit records the job's ``CUDA_VISIBLE_DEVICES``.
    Lives in this module, so worker processes import it by name."""

    Config = RecorderConfig

    def fit(self, train, valid=None):
        Path(self.config.log, f"{self.name}-seed{self.seed}.json").write_text(json.dumps({"cuda": _visible()}))
        x = np.c_[gc_content(train.codes), train.lengths, np.ones(len(train))]
        self.coef = np.linalg.lstsq(x, train.y.astype(np.float64), rcond=None)[0]

    def predict(self, seqs):
        return np.c_[gc_content(seqs.codes), seqs.lengths, np.ones(len(seqs))] @ self.coef

    def _save_state(self, path):
        np.save(path / "coef.npy", self.coef)

    def _load_state(self, path):
        self.coef = np.load(path / "coef.npy")


@register("test-placement-gpu")
class GpuRecorder(_Recorder):
    framework = "pytorch"  # a GPU method


@register("test-placement-cpu")
class CpuRecorder(_Recorder):
    framework = "sklearn"  # a CPU method, like the k-mer baselines


def test_methods_declare_whether_they_use_a_gpu():
    from harness.runner import job_gpus, uses_accelerator

    assert uses_accelerator(GpuRecorder) and not uses_accelerator(CpuRecorder)
    assert not uses_accelerator(registry.get("kmer-ridge")) and not uses_accelerator(registry.get("kmer-lgbm"))
    assert uses_accelerator(registry.get("legnet"))  # a TorchMethod
    declared = type("Declared", (CpuRecorder,), {"uses_accelerator": True})
    assert uses_accelerator(declared)
    assert job_gpus(GpuRecorder, "auto", 2) == 2 and job_gpus(GpuRecorder, "cuda", 1) == 1
    assert job_gpus(GpuRecorder, "cpu", 2) == 0 and job_gpus(GpuRecorder, "tpu", 1) == 0
    assert job_gpus(CpuRecorder, "auto", 1) == 0


def _configs(tmp_path: Path, log: Path) -> Path:
    configs = tmp_path / "configs"
    configs.mkdir()
    for name in ("test-placement-gpu", "test-placement-cpu"):
        (configs / f"{name}.toml").write_text(f'[default]\nlog = "{log}"\n')
    return configs


def _cli(simulated_dir, out, *args):
    """``harness run`` of both recorders (refused before their profiles are read)."""
    from click.testing import CliRunner

    from harness.cli import main

    return CliRunner().invoke(main, ["run", "--methods", "test-placement-gpu,test-placement-cpu", "--data",
                                     str(simulated_dir), "--split", "kfold", "--folds", "2", "--out", str(out), *args])


def test_harness_run_places_gpu_methods_and_keeps_the_sequential_results(simulated_dir, tmp_path, monkeypatch):
    """``harness run --jobs 3`` on 2 (fake) GPUs: the GPU method's folds each get one GPU, the CPU
    method's folds none; fold, out-of-fold and test predictions equal those of the in-process run."""
    from harness.runner import RunSpec, run
    from harness.splits import SplitSpec

    log = tmp_path / "log"
    log.mkdir()
    configs = _configs(tmp_path, log)
    methods = ["test-placement-gpu", "test-placement-cpu"]
    split = SplitSpec("kfold", folds=2, seed=3)
    reference = tmp_path / "reference"
    run(RunSpec(methods, simulated_dir, split=split, out=reference, config_dir=configs))
    assert {read_json(p)["cuda"] for p in log.glob("*.json")} == {_visible()}  # in process: untouched

    monkeypatch.setenv(FAKE_GPUS_ENV, "2")
    out = tmp_path / "placed"
    run(RunSpec(methods, simulated_dir, split=split, out=out, config_dir=configs, jobs=3))
    assert sorted(read_json(log / f"test-placement-gpu-seed{s}.json")["cuda"] for s in (3, 4)) == ["0", "1"]
    assert [read_json(log / f"test-placement-cpu-seed{s}.json")["cuda"] for s in (3, 4)] == ["", ""]
    assert read_json(out / "run.json")["gpus_per_job"] == 1
    for name in methods:
        for f in ["oof.npy", "test.npy", "fold0/oof.npy", "fold1/test.npy"]:
            np.testing.assert_array_equal(np.load(out / "methods" / name / f),
                                          np.load(reference / "methods" / name / f), err_msg=f"{name}/{f}")
        assert read_json(out / "methods" / name / "scores.json") == read_json(reference / "methods" / name / "scores.json")


def test_more_gpus_per_job_than_gpus_is_refused_before_the_run_directory(simulated_dir, tmp_path, monkeypatch):
    from harness.runner import RunSpec, run

    monkeypatch.setenv(FAKE_GPUS_ENV, "2")
    out = tmp_path / "run"
    configs = _configs(tmp_path, tmp_path)
    with pytest.raises(ValueError, match=r"--gpus-per-job 3: a job would need 3 GPUs, this machine has 2"):
        run(RunSpec(["test-placement-gpu"], simulated_dir, out=out, config_dir=configs, jobs=2, gpus_per_job=3))
    result = _cli(simulated_dir, out, "--jobs", "2", "--gpus-per-job", "3")
    assert result.exit_code == 1 and "--gpus-per-job 3: a job would need 3 GPUs, this machine has 2" in result.output
    result = _cli(simulated_dir, out, "--gpus-per-job", "2", "--device", "cpu")
    assert result.exit_code == 1 and "--gpus-per-job 2: GPUs are placed for --device auto or cuda, not cpu" in result.output
    result = _cli(simulated_dir, out, "--gpus-per-job", "0")
    assert result.exit_code == 2 and "'--gpus-per-job': 0 is not in the range" in result.output
    assert not out.exists()


def test_devices_sets_the_fits_devices_and_the_jobs_gpus(simulated_dir, tmp_path, monkeypatch):
    """``--devices N``: a PyTorch method's config gets the runtime field ``devices = N`` (DDP in its
    fit, harness.training), a config without that field is unchanged, and the job asks for N GPUs;
    refused where it cannot be met, before the run directory exists."""
    import dataclasses

    from baselines.kmer import KmerRidgeConfig
    from harness.runner import RunSpec, with_devices
    from submissions.legnet import LegNetConfig

    assert with_devices(LegNetConfig(), 4).devices == 4 and with_devices(LegNetConfig(), 1).devices == 1
    ridge = KmerRidgeConfig()
    assert with_devices(ridge, 4) is ridge
    assert "devices" in {f.name for f in dataclasses.fields(LegNetConfig)}
    monkeypatch.setenv(FAKE_GPUS_ENV, "2")
    out = tmp_path / "run"
    result = _cli(simulated_dir, out, "--devices", "3")
    assert result.exit_code == 1 and "a job would need 3 GPUs, this machine has 2" in result.output
    result = _cli(simulated_dir, out, "--devices", "2", "--device", "cpu")
    assert result.exit_code == 1 and "--devices 2: one fit on several GPUs needs --device auto or cuda" in result.output
    assert not out.exists()
    assert RunSpec(["legnet"], simulated_dir, devices=2).devices == 2
