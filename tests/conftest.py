"""Shared fixtures: the real challenge data (when this machine has it) and a small simulated set."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.data.simulate import VERSION, simulate_dataset

#: Real DREAM 2022 data, read-only, beside the project root (``../shared/data/dream2022``).
REAL_DATA = Path(__file__).resolve().parents[1].parent / "shared/data/dream2022"

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
def simulated_dir(tmp_path_factory) -> Path:
    """A small simulated dataset in the official layout, generated once per test session
    (``n_train=SIM_N_TRAIN``, ``n_test=SIM_N_TEST``, ``seed=SIM_SEED``). Treat it as read-only.

    It lies at ``<cache>/simulated-v1``, so with ``HARNESS_CACHE=<its parent>`` the simulated
    default (:func:`harness.data.simulate.default_data_dir`) resolves to it without generating.
    """
    cache = tmp_path_factory.mktemp("cache")
    return simulate_dataset(cache / VERSION, n_train=SIM_N_TRAIN, n_test=SIM_N_TEST, seed=SIM_SEED)
