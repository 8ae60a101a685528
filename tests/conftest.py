"""Shared fixtures: the real challenge data (when this machine has it) and a small simulated set."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

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
