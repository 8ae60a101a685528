"""Shared fixtures: the real challenge data (when this machine has it) and a small simulated set."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

# pytest-xdist workers start with COLUMNS=80, and rich fixes a console's width from COLUMNS when the
# console is made: the tests that widen the output through CliRunner's
# env={"COLUMNS": ...} then still wrapped at 80 under `pytest -n 2`. Without the variable rich reads
# it at print time, so each test's own setting applies.
os.environ.pop("COLUMNS", None)

from harness.data import read_table
from harness.data.simulate import VERSION, simulate_dataset

#: Real DREAM 2022 data, read-only, beside the project root (``../shared/data/dream2022``).
REAL_DATA = Path(__file__).resolve().parents[1].parent / "shared/data/dream2022"
#: 16,370 real training rows (``sequence<TAB>expression``).
DEV_TRAIN = REAL_DATA / "dev_train.txt"
#: The reconstructed SNV pairs (the official file is missing from every public copy).
SNV_PAIRS = REAL_DATA / "reconstructed" / "all_SNVs_seqs.csv"
#: Mark for a module or test that reads the real data; skipped only where it is absent.
needs_real_data = pytest.mark.skipif(not DEV_TRAIN.is_file(), reason=f"real DREAM 2022 data not found at {REAL_DATA}")

#: With ``HARNESS_NO_SKIPS=1`` (CI sets it) a skipped test is reported as a failure: on a machine
#: that has the data, TensorFlow and Chromium, nothing may silently not run.
NO_SKIPS = os.environ.get("HARNESS_NO_SKIPS") == "1"

#: Sizes and seed of the session's simulated dataset (small: it is built once per session).
SIM_N_TRAIN = 4000
SIM_N_TEST = 2000
SIM_SEED = 7


@pytest.fixture(scope="session")
def real_data() -> Path:
    """The real data directory; skips the test only when it is absent on this machine."""
    if not REAL_DATA.is_dir():
        pytest.skip(f"real DREAM 2022 data not found at {REAL_DATA}")
    return REAL_DATA


@pytest.fixture(scope="session")
def dev_train():
    """The real ``dev_train.txt`` rows as a :class:`~harness.data.SeqTable` (read-only)."""
    if not DEV_TRAIN.is_file():
        pytest.skip(f"real training rows not found at {DEV_TRAIN}")
    return read_table(DEV_TRAIN)


def _fail_skips(report) -> None:
    if NO_SKIPS and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped under HARNESS_NO_SKIPS=1: {reason}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    _fail_skips(outcome.get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    outcome = yield
    _fail_skips(outcome.get_result())  # a module skipped whole, e.g. by importorskip


@pytest.fixture(scope="session")
def simulated_dir(tmp_path_factory) -> Path:
    """A small simulated dataset in the official layout, generated once per test session
    (``n_train=SIM_N_TRAIN``, ``n_test=SIM_N_TEST``, ``seed=SIM_SEED``). Treat it as read-only.

    It lies at ``<cache>/simulated-v1``, so with ``HARNESS_CACHE=<its parent>`` the simulated
    default (:func:`harness.data.simulate.default_data_dir`) resolves to it without generating.
    """
    cache = tmp_path_factory.mktemp("cache")
    return simulate_dataset(cache / VERSION, n_train=SIM_N_TRAIN, n_test=SIM_N_TEST, seed=SIM_SEED)


@pytest.fixture(scope="module")
def torch_single_thread():
    """One torch intra-op thread for a module of tiny-model tests (``pytestmark =
    pytest.mark.usefixtures("torch_single_thread")``), the previous count restored after it.

    Tiny models run as fast or faster on one thread than on two, and far faster on a busy shared
    machine, where the OpenMP threads of an oversubscribed process wait on each other. No assertion
    depends on the thread count."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture()
def save_and_load(tmp_path):
    """``save_and_load(method, test) -> loaded``: save the fitted ``method`` to ``tmp_path / "m"``,
    load it back (``type(method).load``, CPU) and check what every plug-in must keep: the name in
    ``method.json``, config, seed, ``best_epoch`` and bit-identical ``(len(test),) float64``
    predictions on the :class:`~harness.data.SeqTable` ``test``. Plug-in-specific checks stay with
    the caller."""

    def run(method, test):
        path = tmp_path / "m"
        method.save(path)
        loaded = type(method).load(path, device="cpu")
        assert json.loads((path / "method.json").read_text())["name"] == method.name
        assert loaded.config == method.config and loaded.seed == method.seed
        assert getattr(loaded, "best_epoch", None) == getattr(method, "best_epoch", None)
        np.testing.assert_array_equal(loaded.predict(test), method.predict(test))
        return loaded

    return run


@pytest.fixture(scope="session")
def kmer_ridge_run(simulated_dir, tmp_path_factory) -> Path:
    """A finished 2-fold kmer-ridge (``tiny`` profile, split seed 3) run on :func:`simulated_dir`,
    made once per session. Treat it as read-only: damage a :func:`copy_run`."""
    import io

    from rich.console import Console

    from harness.runner import RunSpec, run
    from harness.splits import SplitSpec

    out = tmp_path_factory.mktemp("kmer-ridge-run") / "run"
    run(RunSpec(["kmer-ridge"], simulated_dir, split=SplitSpec("kfold", folds=2, seed=3), profile="tiny", out=out),
        Console(file=io.StringIO(), width=200))
    return out


@pytest.fixture()
def copy_run(kmer_ridge_run, tmp_path) -> Path:
    """A copy of :func:`kmer_ridge_run` that a test may damage."""
    import shutil

    dest = tmp_path / "run"
    shutil.copytree(kmer_ridge_run, dest)
    return dest


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` still exists (signal 0)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
