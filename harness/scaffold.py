"""``harness methods new NAME``: scaffold a plug-in package that registers through the entry point.

The generated package is complete and working: a ridge regression on one-hot sequences (a
placeholder model to replace), its config dataclass, a ``cpu`` profile, save/load, a test, and the
``harness.methods`` entry point in its ``pyproject.toml``. ``pip install -e <dir>`` makes
``harness methods list`` show it and ``harness run --methods NAME`` run it.
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
'''

METHOD = '''"""{name}: a dream-harness method plug-in.

Replace the placeholder model (ridge regression on flattened one-hot sequences) with yours; keep
the ``Config`` defaults equal to your reference (paper) setting and put smaller settings in
``profiles``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import joblib
import numpy as np
from sklearn.linear_model import Ridge

from harness.data import SeqTable, one_hot
from harness.method import Method, MethodConfig
from harness.registry import register


@dataclass
class {cls}Config(MethodConfig):
    """Hyperparameters. ``length``: sequences are padded with N / cut to this many nt."""

    length: int = 110
    alpha: float = 10.0


@register("{name}")
class {cls}(Method):
    """Placeholder: ridge regression on ``(N, 4 * length)`` flattened one-hot sequences."""

    framework = "sklearn"
    Config = {cls}Config
    profiles = {{"cpu": {{"alpha": 10.0}}}}

    def _features(self, seqs: SeqTable) -> np.ndarray:
        return one_hot(seqs.fixed_length(self.config.length)).reshape(len(seqs), -1)

    def fit(self, train: SeqTable, valid: SeqTable | None = None) -> None:
        self.model = Ridge(alpha=self.config.alpha).fit(self._features(train), train.y)

    def predict(self, seqs: SeqTable) -> np.ndarray:
        return self.model.predict(self._features(seqs)).astype(np.float64)

    def num_parameters(self) -> int:
        return 4 * self.config.length + 1

    def _save_state(self, path: Path) -> None:
        joblib.dump(self.model, path / "model.joblib")

    def _load_state(self, path: Path) -> None:
        self.model = joblib.load(path / "model.joblib")
'''

TEST = '''import numpy as np

from harness.data import SeqTable
from harness.registry import get
from {module}.method import {cls}


def _random_table(n, seed):
    rng = np.random.default_rng(seed)
    seqs = ["".join(rng.choice(list("ACGT"), 110)) for _ in range(n)]
    y = np.array([s.count("G") + s.count("C") for s in seqs], dtype=np.float32)  # GC count is learnable
    return SeqTable.from_strings(seqs, y)


def test_fit_predict_save_load(tmp_path):
    train, test = _random_table(400, 0), _random_table(100, 1)
    method = {cls}()
    method.fit(train)
    pred = method.predict(test)
    assert pred.shape == (100,)
    assert np.corrcoef(pred, test.y)[0, 1] > 0.9
    method.save(tmp_path / "m")
    np.testing.assert_array_equal({cls}.load(tmp_path / "m").predict(test), pred)


def test_registered():
    assert get("{name}") is {cls}
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
    write_text(root / "tests" / f"test_{module}.py", TEST.format(**fill))
    return root
