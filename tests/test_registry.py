"""Registration by decorator and by the harness.methods entry-point group; profiles; scaffolding."""

import subprocess
import sys
import textwrap
from dataclasses import dataclass

import pytest

from harness import registry
from harness.method import Method, MethodConfig
from harness.scaffold import scaffold
from harness.testing import CHECK_NAMES


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
    assert registry.load_profile(Toy, "paper", tmp_path).config == ToyConfig()  # implicit: the defaults
    with pytest.raises(registry.ProfileError, match=r"test-toy has no profile 'cpuu'.*its profiles: big, cpu, default, paper"):
        registry.load_profile(Toy, "cpuu", tmp_path)
    (tmp_path / "test-toy.toml").write_text("[cpu]\ndepth = 3\n")
    with pytest.raises(ValueError, match=r"unknown keys \['depth'\]"):
        registry.load_profile(Toy, "cpu", tmp_path)


@pytest.mark.parametrize("toml, message", [
    ('[cpu]\nlr = "0.5"\n', r"test-toy.toml \[cpu\] lr: input should be a valid number \(got '0.5'\)"),
    ("[cpu]\nwidth = 2.5\n", r"\[cpu\] width: input should be a valid integer"),
    ("[cpu]\nwidth = true\n", r"\[cpu\] width: input should be a valid integer"),
    ("cpu = 3\n", r"test-toy.toml: cpu must be a table"),
])
def test_profile_values_are_type_checked(tmp_path, toml, message):
    registry.register("test-toy")(Toy)
    (tmp_path / "test-toy.toml").write_text(toml)
    with pytest.raises(registry.ProfileError, match=message):
        registry.load_profile(Toy, "cpu", tmp_path)


def test_bool_field_rejects_strings(tmp_path):
    """``both_strands = "no"`` used to be read as true."""
    (tmp_path / "kmer-ridge.toml").write_text('[cpu]\nboth_strands = "no"\nalpha = 30\n')
    with pytest.raises(registry.ProfileError, match=r"both_strands: input should be a valid boolean \(got 'no'\)"):
        registry.load_profile("kmer-ridge", "cpu", tmp_path)
    (tmp_path / "kmer-ridge.toml").write_text("[cpu]\nboth_strands = false\nalpha = 30\n")
    config = registry.load_profile("kmer-ridge", "cpu", tmp_path).config
    assert config.both_strands is False and config.alpha == 30.0


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
    assert f"{len(CHECK_NAMES)} passed" in result.stdout
    method = (root / "harness_my_model" / "method.py").read_text()
    assert "joblib" not in method and "allow_pickle=False" in method  # saved without pickle
    with pytest.raises(ValueError, match="already exists"):
        scaffold("my-model", tmp_path)
    with pytest.raises(ValueError, match="lowercase"):
        scaffold("My Model", tmp_path)


def test_lookup_imports_only_the_named_plug_in():
    """``get("kmer-ridge")`` used to import every plug-in (torch and TensorFlow: ~7 s)."""
    code = ("import sys; from harness import registry; cls = registry.get('kmer-ridge'); "
            "assert 'camformers' in registry.names() and 'legnet' in registry.names(); "
            "print(cls.__name__, 'torch' in sys.modules, 'tensorflow' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["KmerRidge", "False", "False"]
