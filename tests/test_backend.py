"""``harness run --backend local|dask|ray [--jobs N]``: the same predictions on every backend, a clear
error for a missing backend package, and failed jobs named by method and fold with the rest kept.

The backends compared are those installed: ``local`` and ``dask`` always (dask[distributed] is in
the ``test`` extra, so CI has it), ``ray`` only where the ``ray`` package is installed. That is a
parametrisation over :data:`BACKENDS`, not a skip: a machine without Ray runs no Ray case at all,
and CI (``HARNESS_NO_SKIPS=1``) sees nothing skipped.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from harness.backend import BackendUnavailable, JobError
from harness.cli import main
from harness.data.encoding import gc_content
from harness.io import read_json
from harness.method import Method, MethodConfig
from harness.registry import register
from harness.runner import RunSpec, run
from harness.splits import SplitSpec

#: the backends this machine can run (see the module docstring: Ray only where installed, never skipped)
BACKENDS = ["local", "dask"] + (["ray"] if importlib.util.find_spec("ray") is not None else [])
SPLIT = SplitSpec("kfold", folds=2, seed=3)
METHOD = "kmer-ridge"  # small cpu profile: two folds of 2,000 rows fit in about a second each


def _spec(data: Path, out: Path, **kwargs) -> RunSpec:
    return RunSpec([kwargs.pop("method", METHOD)], data, split=SPLIT, profile="cpu", out=out, **kwargs)


def _predictions(out: Path, method: str = METHOD) -> dict[str, np.ndarray]:
    method_dir = out / "methods" / method
    files = ["oof.npy", "test.npy"] + [f"fold{k}/{f}" for k in range(SPLIT.n_folds) for f in ("oof.npy", "test.npy")]
    return {f: np.load(method_dir / f) for f in files}


@pytest.fixture(scope="module")
def reference(simulated_dir, tmp_path_factory) -> Path:
    """The sequential run (``--backend local``, one job, in this process)."""
    out = tmp_path_factory.mktemp("reference") / "run"
    run(_spec(simulated_dir, out))
    return out


@pytest.fixture(scope="module")
def dask_scheduler():
    """A local Dask cluster of two single-threaded worker processes, shared by the module's tests."""
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        yield cluster.scheduler_address


@pytest.mark.parametrize("backend", BACKENDS)
def test_every_backend_gives_the_sequential_predictions(backend, simulated_dir, reference, tmp_path):
    """Two jobs at once on each backend: bit-identical fold, out-of-fold and test predictions and scores.
    dask goes through the command line and starts its own LocalCluster."""
    out = tmp_path / "run"
    if backend == "dask":
        result = CliRunner().invoke(main, ["run", "--methods", METHOD, "--data", str(simulated_dir), "--split", "kfold",
                                           "--folds", "2", "--seed", "3", "--profile", "cpu", "--out", str(out),
                                           "--backend", "dask", "--jobs", "2"])
        assert result.exit_code == 0, result.output
        assert "dask: started a local cluster of 2 worker processes" in result.output
    else:
        run(_spec(simulated_dir, out, backend=backend, jobs=2))
    expected = _predictions(reference)
    for name, pred in _predictions(out).items():
        np.testing.assert_array_equal(pred, expected[name], err_msg=f"{backend}: {name}")
    assert read_json(out / "methods" / METHOD / "scores.json") == read_json(reference / "methods" / METHOD / "scores.json")
    assert read_json(out / "run.json")["backend"] == backend
    assert {read_json(out / "methods" / METHOD / f"fold{k}" / "done.json")["n_train"] for k in range(2)} == {2000}


@pytest.mark.parametrize("backend,module", [("dask", "distributed"), ("ray", "ray")])
def test_missing_backend_package_says_what_to_install(backend, module, simulated_dir, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, module, None)  # import fails as if the package were not installed
    with pytest.raises(BackendUnavailable, match=rf'pip install "dream-harness\[{backend}\]"'):
        run(_spec(simulated_dir, tmp_path / "run", backend=backend))
    assert not (tmp_path / "run").exists()  # refused before any work
    result = CliRunner().invoke(main, ["run", "--data", str(simulated_dir), "--out", str(tmp_path / "run"),
                                       "--backend", backend])
    assert result.exit_code == 1
    assert f"--backend {backend} needs the {module!r} package" in result.output
    assert f"dream-harness[{backend}]" in result.output


def test_scheduler_needs_the_dask_backend(simulated_dir, tmp_path):
    with pytest.raises(ValueError, match="needs --backend dask"):
        run(_spec(simulated_dir, tmp_path / "run", scheduler="tcp://127.0.0.1:8786"))


@dataclass
class FailConfig(MethodConfig):
    marker: str = ""  # fold 2 fails while this file exists
    crash: bool = False  # ... by killing its worker process instead of raising


@register("test-fails-on-fold2")
class FailsOnFold2(Method):
    """Least squares on GC content and length; the fit of fold 2 (seed 4 with SPLIT) fails while the
    marker file exists. Lives in this module, so worker processes import it by name."""

    Config = FailConfig

    def fit(self, train, valid=None):
        if self.seed == SPLIT.seed + 1 and Path(self.config.marker).exists():
            if self.config.crash:
                os._exit(3)  # the worker process dies
            raise ValueError("boom: the marker file exists")
        x = np.c_[gc_content(train.codes), train.lengths, np.ones(len(train))]
        self.coef = np.linalg.lstsq(x, train.y.astype(np.float64), rcond=None)[0]

    def predict(self, seqs):
        return np.c_[gc_content(seqs.codes), seqs.lengths, np.ones(len(seqs))] @ self.coef

    def _save_state(self, path):
        np.save(path / "coef.npy", self.coef)

    def _load_state(self, path):
        self.coef = np.load(path / "coef.npy")


@pytest.mark.parametrize("where", ["local", "dask"])
def test_failed_job_is_named_and_the_finished_one_kept_for_resume(where, simulated_dir, tmp_path, request):
    """The job of fold 2 raises: the error names method and fold, fold 1's files stay and are not
    refitted on resume, fold 2 left no file; after the cause is gone the same call finishes."""
    marker = tmp_path / "fail"
    marker.touch()
    extra = {"scheduler": request.getfixturevalue("dask_scheduler")} if where == "dask" else {}
    config_dir = tmp_path / "configs"
    config_dir.mkdir()
    (config_dir / "test-fails-on-fold2.toml").write_text(f'[cpu]\nmarker = "{marker}"\n')
    spec = _spec(simulated_dir, tmp_path / "run", method="test-fails-on-fold2", backend=where, config_dir=config_dir,
                 **extra)
    with pytest.raises(JobError, match=r"1 of 2 job\(s\) failed: test-fails-on-fold2 fold 2/2: ValueError: boom") as err:
        run(spec)
    assert "finished job(s) are kept" in str(err.value)
    method_dir = tmp_path / "run" / "methods" / "test-fails-on-fold2"
    done0 = method_dir / "fold0" / "done.json"
    assert done0.is_file() and (method_dir / "fold0" / "model" / "method.json").is_file()
    assert not (method_dir / "fold1").exists() or not any((method_dir / "fold1").iterdir())  # nothing half-written
    assert not (method_dir / "oof.npy").exists()  # no aggregate from an incomplete method
    before = (done0.stat().st_mtime_ns, done0.read_text())

    marker.unlink()
    results = run(spec)
    assert (done0.stat().st_mtime_ns, done0.read_text()) == before  # resumed: fold 1 was not refitted
    assert json.loads((method_dir / "fold1" / "done.json").read_text())["n_heldout"] == 2000
    assert np.isfinite(np.load(method_dir / "oof.npy")).all()
    assert np.isfinite(results["test-fails-on-fold2"].oof_pearson)


def test_dead_worker_names_the_unfinished_jobs(simulated_dir, tmp_path):
    """A worker process that dies (here: os._exit in fit) ends the dispatch with an error that names
    the jobs that had not finished; the fold of the dead worker has no done.json."""
    marker = tmp_path / "fail"
    marker.touch()
    config_dir = tmp_path / "configs"
    config_dir.mkdir()
    (config_dir / "test-fails-on-fold2.toml").write_text(f'[cpu]\nmarker = "{marker}"\ncrash = true\n')
    spec = _spec(simulated_dir, tmp_path / "run", method="test-fails-on-fold2", backend="local", jobs=2,
                 config_dir=config_dir)
    with pytest.raises(JobError, match=r"the local backend failed .*unfinished: .*test-fails-on-fold2 fold 2/2"):
        run(spec)
    assert not (tmp_path / "run" / "methods" / "test-fails-on-fold2" / "fold1" / "done.json").exists()


def test_a_queued_job_of_a_dead_driver_never_starts(tmp_path):
    """A worker handed a job after its driver died (the jobs loky had already queued) exits at
    once instead of running it: :func:`harness.backend._indexed` checks the driver first."""
    import subprocess

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    marker = tmp_path / "ran"
    code = ("import socket, pathlib\nfrom harness.backend import _indexed\n"
            f"_indexed(0, lambda item, console: pathlib.Path({str(marker)!r}).touch(), None, None, "
            f"(socket.gethostname(), {dead.pid}))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1, result.stderr
    assert not marker.exists()
