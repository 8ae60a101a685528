"""Registration by decorator and by the harness.methods entry-point group; profiles; scaffolding."""

import subprocess
import sys
import textwrap
from dataclasses import dataclass

import pytest

from harness import registry
from harness.method import Method, MethodConfig
from harness.scaffold import scaffold


@dataclass
class ToyConfig(MethodConfig):
    width: int = 64
    lr: float = 1e-3


class Toy(Method):
    Config = ToyConfig
    profiles = {"cpu": {"width": 8}}

    def fit(self, train, valid=None):
        pass

    def predict(self, seqs):
        return None

    def _save_state(self, path):
        pass

    def _load_state(self, path):
        pass


def test_register_rejects_non_methods_and_name_clashes():
    registry.register("test-toy")(Toy)
    assert registry.get("test-toy") is Toy and Toy.name == "test-toy"
    with pytest.raises(TypeError, match="not a harness.method.Method subclass"):
        registry.register("test-bad")(object)

    class Other(Toy):
        pass

    with pytest.raises(ValueError, match="already registered"):
        registry.register("test-toy")(Other)


def test_profiles_merge_class_and_toml(tmp_path):
    registry.register("test-toy")(Toy)
    assert registry.load_profile(Toy, "default").config == ToyConfig()
    assert registry.load_profile(Toy, "cpu").config.width == 8
    (tmp_path / "test-toy.toml").write_text("[cpu]\nlr = 0.5\n[big]\nwidth = 512\n")
    merged = registry.load_profile(Toy, "cpu", tmp_path)
    assert (merged.config.width, merged.config.lr) == (8, 0.5)
    assert "test-toy.toml [cpu]" in merged.source
    missing = registry.load_profile(Toy, "tpu", tmp_path)
    assert missing.config == ToyConfig() and "has no profile 'tpu'" in missing.source
    (tmp_path / "test-toy.toml").write_text("[cpu]\ndepth = 3\n")
    with pytest.raises(ValueError, match=r"unknown keys \['depth'\]"):
        registry.load_profile(Toy, "cpu", tmp_path)


def test_third_party_entry_point_is_discovered(tmp_path, monkeypatch):
    """A package that declares the entry point (here a bare dist-info) is found without importing it by hand."""
    pkg = tmp_path / "thirdparty_toy"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(textwrap.dedent('''
        from dataclasses import dataclass
        from harness.method import Method, MethodConfig
        from harness.registry import register

        @register("thirdparty-toy")
        class ThirdParty(Method):
            framework = "custom"
            def fit(self, train, valid=None): pass
            def predict(self, seqs): return None
            def _save_state(self, path): pass
            def _load_state(self, path): pass
    '''))
    dist = tmp_path / "thirdparty_toy-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: thirdparty-toy\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[harness.methods]\nthirdparty-toy = thirdparty_toy\nbroken-toy = no_such_module\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(registry, "_LOADED", False)
    with pytest.warns(UserWarning, match="'broken-toy' failed to load"):
        methods = registry.available()
    assert methods["thirdparty-toy"].framework == "custom"
    assert registry.source_of("thirdparty-toy") == "thirdparty-toy"
    with pytest.raises(KeyError, match="installed but failed to load"):
        registry.get("broken-toy")


def test_scaffolded_plugin_works_and_its_test_passes(tmp_path):
    root = scaffold("my-model", tmp_path)
    assert (root / "pyproject.toml").read_text().count('my-model = "harness_my_model.method"') == 1
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(root / "tests")],
                            cwd=root, capture_output=True, text=True, env={"PYTHONPATH": str(root), "PATH": ""})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed" in result.stdout
    with pytest.raises(ValueError, match="already exists"):
        scaffold("my-model", tmp_path)
    with pytest.raises(ValueError, match="lowercase"):
        scaffold("My Model", tmp_path)


@pytest.mark.parametrize("name", ["camformers", "bhi", "kircherlab", "highschoolers", "legnet", "kmer-ridge",
                                  "kmer-lgbm"])
def test_every_method_refuses_tables_without_targets(name):
    import numpy as np

    from harness.data.table import SeqTable

    rng = np.random.default_rng(0)
    with_y = SeqTable(codes=rng.integers(0, 4, (30, 110)).astype(np.uint8), lengths=np.full(30, 110, np.int32),
                      y=rng.uniform(0, 17, 30).astype(np.float32))
    without_y = SeqTable(codes=with_y.codes, lengths=with_y.lengths)
    method = registry.get(name)(device="cpu")
    with pytest.raises(ValueError, match="targets"):
        method.fit(without_y)
    with pytest.raises(ValueError, match="targets"):
        method.fit(with_y, without_y)
