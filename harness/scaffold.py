"""``harness methods new NAME``: scaffold a plug-in package that registers through the entry point.

The generated package is complete and working: a ridge regression on one-hot sequences (a
placeholder model to replace), its config dataclass, ``cpu`` and ``tiny`` profiles, save/load
without pickle (NumPy ``.npz`` read with ``allow_pickle=False`` plus JSON), a test that runs the
plug-in contract (:mod:`harness.testing`, one pytest case per check) and checks the static
metadata against the class (:func:`harness.registry.check_metadata`), the profile file
``<module>/configs/<name>.toml`` (package data) with its ``[metadata]`` table, which ``harness
methods list`` reads without importing the plug-in, and the ``harness.methods`` entry point in its
``pyproject.toml``. ``pip install -e <dir>`` makes ``harness methods list``
show it and ``harness run --methods NAME`` run it.
"""

from __future__ import annotations

import re
from pathlib import Path

from .io import write_text

NAME_RE = re.compile(r"^[a-z][a-z0-9-]*[a-z0-9]$")

PYPROJECT = '''[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "harness-{name}"
version = "0.1.0"
description = "{name}: a dream-harness method plug-in"
requires-python = ">=3.11"
dependencies = ["dream-harness"]

[project.entry-points."harness.methods"]
{name} = "{module}.method"

[tool.setuptools.packages.find]
include = ["{module}*"]

# The method's profile file, read by harness.registry with importlib.resources.
[tool.setuptools.package-data]
{module} = ["configs/*.toml"]
'''

PROFILES = '''# {name} profiles: tables of {cls}Config fields applied over the dataclass defaults (the
# reference / paper setting) and the class attribute `profiles` (harness.registry.load_profile).

# What `harness methods list` shows without importing this plug-in; not a profile. Keep it equal to
# the class (framework, num_parameters() of the [paper] profile -- leave it out when the model has
# no fixed count --, the keys of the class attribute `profiles`): the test in tests/ checks it.
[metadata]
framework = "sklearn"
num_parameters = 441
class_profiles = ["cpu", "tiny"]
description = "{name}: placeholder ridge regression on one-hot sequences"

# `harness tune` search space (not a profile): {{ low, high [, log, step, type] }} ranges,
# {{ choices = [...] }}, {{ value = ... }} fixed in every trial.
[search_space]
alpha = {{ low = 0.01, high = 1000.0, log = true }}
'''

METHOD = '''"""{name}: a dream-harness method plug-in.

Replace the placeholder model (ridge regression on flattened one-hot sequences) with yours; keep
the ``Config`` defaults equal to your reference (paper) setting, put smaller settings in
``profiles`` and keep a ``"tiny"`` profile that fits a few hundred rows in seconds (the contract
checks of ``harness.testing`` run it). Save plain arrays and values (``.npz``, JSON, ``.pt`` state
dicts): the harness never unpickles a saved method.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.linear_model import Ridge

from harness.data import SeqTable, one_hot
from harness.io import atomic_open, read_json, write_json
from harness.method import Method, MethodConfig, require_targets
from harness.registry import register


@dataclass
class {cls}Config(MethodConfig):
    """Hyperparameters. ``length``: sequences are padded with N / cut to this many nt."""

    length: int = 110
    alpha: float = 10.0


@register("{name}")
class {cls}(Method):
    """Placeholder: ridge regression on ``(N, 4 * length)`` flattened one-hot sequences.

    After :meth:`fit`: ``coef_`` (``(4 * length,) float64``) and ``intercept_`` (float), saved in
    ``model.npz``; ``n_train_`` (rows fitted), saved in ``fit_info.json``.
    """

    framework = "sklearn"
    Config = {cls}Config
    profiles = {{"cpu": {{"alpha": 10.0}}, "tiny": {{"alpha": 10.0}}}}
    paper_num_parameters = None  # set to the count your paper reports, if it reports one

    def __init__(self, config: {cls}Config | None = None, **kwargs) -> None:
        super().__init__(config, **kwargs)
        self.coef_: np.ndarray | None = None
        self.intercept_ = 0.0
        self.n_train_ = 0

    def _features(self, seqs: SeqTable) -> np.ndarray:
        width = 4 * self.config.length
        return one_hot(seqs.fixed_length(self.config.length)).reshape(len(seqs), width).astype(np.float64)

    def fit(self, train: SeqTable, valid: SeqTable | None = None) -> None:
        require_targets(self.name, train, valid)
        model = Ridge(alpha=self.config.alpha).fit(self._features(train), train.y)
        self.coef_ = np.asarray(model.coef_, dtype=np.float64)
        self.intercept_ = float(model.intercept_)
        self.n_train_ = len(train)

    def predict(self, seqs: SeqTable) -> np.ndarray:
        """``(len(seqs),) float64``. Raises RuntimeError before :meth:`fit` / :meth:`load`."""
        if self.coef_ is None:
            raise RuntimeError("{name}: predict called before fit/load")
        return self._features(seqs) @ self.coef_ + self.intercept_

    def num_parameters(self) -> int:
        return 4 * self.config.length + 1

    def _save_state(self, path: Path) -> None:
        if self.coef_ is None:
            raise RuntimeError("{name}: save called before fit")
        with atomic_open(path / "model.npz", "wb") as fh:
            np.savez(fh, coef=self.coef_, intercept=np.float64(self.intercept_))
        write_json(path / "fit_info.json", {{"n_train": self.n_train_}})

    def _load_state(self, path: Path) -> None:
        """Read ``model.npz`` (``allow_pickle=False``) and ``fit_info.json``.

        Raises:
            ValueError: ``model.npz`` lacks an array or holds one of the wrong shape (the message
                names the file).
        """
        file = path / "model.npz"
        with np.load(file, allow_pickle=False) as npz:
            missing = {{"coef", "intercept"}} - set(npz.files)
            if missing:
                raise ValueError(f"{{file}}: arrays {{sorted(missing)}} missing")
            coef, intercept = npz["coef"], npz["intercept"]
        if coef.shape != (4 * self.config.length,) or intercept.shape != ():
            raise ValueError(f"{{file}}: coef {{coef.shape}} / intercept {{intercept.shape}} do not fit length "
                             f"{{self.config.length}}")
        self.coef_, self.intercept_ = coef.astype(np.float64), float(intercept)
        self.n_train_ = int(read_json(path / "fit_info.json")["n_train"])
'''

TEST = '''"""The dream-harness plug-in contract (harness.testing): one case per check; and the static
metadata of configs/{name}.toml against the class."""

import pytest

from harness import registry
from harness.testing import method_checks
from {module}.method import {cls}

CHECKS = dict(method_checks({cls}))


@pytest.mark.parametrize("check", list(CHECKS))
def test_contract(check):
    CHECKS[check]()


def test_static_metadata_matches_the_class():
    assert registry.check_metadata({cls}) == []
'''

README = '''# harness-{name}

A method plug-in for dream-harness.

    pip install -e .
    harness methods list            # shows {name}
    harness run --methods {name}
    pytest tests
'''


def scaffold(name: str, parent: str | Path = ".") -> Path:
    """Write the plug-in package ``<parent>/harness-<name>/`` and return its path.

    Raises:
        ValueError: ``name`` is not lowercase letters, digits and dashes, or the directory exists.
    """
    if not NAME_RE.match(name):
        raise ValueError(f"method name {name!r}: use lowercase letters, digits and dashes, starting with a letter")
    root = Path(parent) / f"harness-{name}"
    if root.exists():
        raise ValueError(f"{root} already exists")
    module = "harness_" + name.replace("-", "_")
    cls = "".join(part.capitalize() for part in name.split("-"))
    fill = {"name": name, "module": module, "cls": cls}
    write_text(root / "pyproject.toml", PYPROJECT.format(**fill))
    write_text(root / "README.md", README.format(**fill))
    write_text(root / module / "__init__.py", f'"""{name}: a dream-harness method plug-in."""\n')
    write_text(root / module / "method.py", METHOD.format(**fill))
    write_text(root / module / "configs" / f"{name}.toml", PROFILES.format(**fill))
    write_text(root / "tests" / f"test_{module}.py", TEST.format(**fill))
    return root
