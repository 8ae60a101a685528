"""Registration by decorator and by the harness.methods entry-point group; profiles; scaffolding."""

import os
import subprocess
import sys
import textwrap
import tomllib
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


def _fake_dist(tmp_path, name, entry_points):
    """A bare ``<name>-1.0.dist-info`` in ``tmp_path`` declaring ``entry_points`` under [harness.methods]."""
    dist = tmp_path / f"{name}-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[harness.methods]\n" + entry_points)


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
    _fake_dist(tmp_path, "thirdparty-toy", "thirdparty-toy = thirdparty_toy\nbroken-toy = no_such_module\n")
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
    assert f"{len(CHECK_NAMES) + 1} passed" in result.stdout  # the contract checks and the metadata check
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


# ----- static metadata: `harness methods list` without importing the plug-ins -----------------------
@pytest.mark.parametrize("name", sorted(ep.name for ep in registry._entry_points()))  # the installed plug-ins,
def test_static_metadata_equals_the_class(name):  # not classes other test modules register while collected
    """The [metadata] table of each shipped profile file says what importing the class gives:
    framework, num_parameters() of the paper profile (= paper_num_parameters where declared),
    the class's profiles; and the entry point finds the file the class's package ships."""
    static = registry.static_info(name)
    assert static is not None, f"{name}: its shipped profile file has no [metadata] table"
    cls = registry.get(name)
    assert registry.check_metadata(cls) == []
    imported = registry.class_info(cls)
    assert (static.framework, static.num_parameters, static.profiles, static.package) == \
        (imported.framework, imported.num_parameters, imported.profiles, imported.package)
    if cls.paper_num_parameters is not None:
        assert static.num_parameters == cls.paper_num_parameters
    assert static.description and "\n" not in static.description


def test_metadata_drift_is_reported(tmp_path, monkeypatch):
    """A [metadata] table that disagrees with its class is named key by key."""
    pkg = tmp_path / "drift_pkg"
    (pkg / "configs").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "mod.py").write_text(textwrap.dedent('''
        from dataclasses import dataclass
        from harness.method import Method, MethodConfig

        @dataclass
        class DriftConfig(MethodConfig):
            width: int = 3

        class Drift(Method):
            framework = "sklearn"
            Config = DriftConfig
            profiles = {"tiny": {"width": 1}}
            paper_num_parameters = 3
            def num_parameters(self): return self.config.width
            def fit(self, train, valid=None): pass
            def predict(self, seqs): return None
            def _save_state(self, path): pass
            def _load_state(self, path): pass
    '''))
    monkeypatch.syspath_prepend(str(tmp_path))
    from drift_pkg.mod import Drift

    registry.register("test-drift")(Drift)
    toml = pkg / "configs" / "test-drift.toml"
    toml.write_text('[metadata]\nframework = "sklearn"\nnum_parameters = 3\nclass_profiles = ["tiny"]\n'
                    'description = "a toy"\n[cpu]\nwidth = 2\n')
    assert registry.check_metadata(Drift) == []
    toml.write_text('[metadata]\nframework = "pytorch"\nnum_parameters = 4\nclass_profiles = ["tiny", "cpu"]\n'
                    'description = "a toy"\n')
    problems = registry.check_metadata(Drift)
    assert ("drift_pkg/configs/test-drift.toml [metadata] framework: declares 'pytorch', the class gives 'sklearn'"
            in problems)
    assert any("num_parameters: declares 4, the class gives 3" in p for p in problems)
    assert any("Drift.paper_num_parameters is 3" in p for p in problems)
    assert any("class_profiles: declares ['cpu', 'tiny'], the class gives ['tiny']" in p for p in problems)
    toml.write_text("[cpu]\nwidth = 2\n")
    assert registry.check_metadata(Drift) == ["drift_pkg/configs/test-drift.toml: no [metadata] table"]


@pytest.mark.parametrize("table, message", [
    ('framework = "x"\nclass_profiles = []\n', r"\[metadata\]: missing keys \['description'\]"),
    ('framework = "x"\nclass_profiles = []\ndescription = "d"\nparams = 3\n', r"unknown keys \['params'\]"),
    ('framework = 3\nclass_profiles = []\ndescription = "d"\n', r"\[metadata\] framework: expected str, got 3"),
    ('framework = "x"\nclass_profiles = []\ndescription = "d"\nnum_parameters = -1\n', r"num_parameters: must be >= 0"),
    ('framework = "x"\nclass_profiles = []\ndescription = "d"\nnum_parameters = true\n',
     r"num_parameters: expected int"),
    ('framework = "x"\nclass_profiles = [1]\ndescription = "d"\n', r"class_profiles: expected a list of profile names"),
    ('framework = "x"\nclass_profiles = []\ndescription = """a\nb"""\n', r"description: must be one non-empty line"),
])
def test_bad_metadata_names_the_file_and_key(table, message):
    with pytest.raises(ValueError, match=r"^x/configs/m\.toml.*" + message):
        registry.read_metadata("x/configs/m.toml", tomllib.loads("[metadata]\n" + table))


def test_metadata_is_not_a_profile():
    with pytest.raises(registry.ProfileError, match=r"reserved for the method's metadata"):
        registry.load_profile("kmer-ridge", "metadata")
    assert "metadata" not in registry.profile_names(registry.get("kmer-ridge"))


def test_scaffolded_plugin_is_described_without_importing_it(tmp_path, monkeypatch):
    """The package `harness methods new` writes ships [metadata]: its entry point is described from
    the file alone (its module is never imported), and the description equals the class's."""
    root = scaffold("meta-toy", tmp_path)
    _fake_dist(root, "harness-meta-toy", "meta-toy = harness_meta_toy.method\n")
    monkeypatch.syspath_prepend(str(root))
    info = registry.info("meta-toy")
    assert info.static and "harness_meta_toy.method" not in sys.modules
    assert (info.package, info.framework, info.num_parameters, info.profiles) == \
        ("harness-meta-toy", "sklearn", 441, ("cpu", "tiny"))
    (tmp_path / "meta-toy.toml").write_text("[big]\nalpha = 1.0\n")
    assert registry.info("meta-toy", tmp_path).profiles == ("big", "cpu", "tiny")  # the user's tables too
    cls = registry.get("meta-toy")
    assert registry.check_metadata(cls) == []
    imported = registry.class_info(cls, tmp_path)
    assert (imported.framework, imported.num_parameters) == (info.framework, 441)
    assert imported.profiles == ("big", "cpu", "tiny")


def test_methods_list_imports_no_plug_in():
    """`harness methods list` used to import every plug-in (torch and TensorFlow: ~7-13 s)."""
    code = ("import sys; from harness.cli import main\n"
            "try: main(['methods', 'list'])\nexcept SystemExit: pass\n"
            "print('IMPORTED', sorted(m for m in ('torch', 'tensorflow', 'pandas', 'lightgbm', 'sklearn', "
            "'baselines.kmer', 'submissions.legnet') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "COLUMNS": "200"}).stdout
    assert "IMPORTED []" in out
    for row in ("legnet", "1,852,846", "kmer-lgbm", "lightgbm", "cpu, default, tiny", "kircherlab", "tensorflow"):
        assert row in out


def test_methods_list_falls_back_to_the_class_and_reports_broken_plug_ins(tmp_path, monkeypatch):
    """A plug-in without [metadata] is imported and described from its class; one that fails to
    import is listed with its error instead of hiding the others."""
    pkg = tmp_path / "nometa_toy"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(textwrap.dedent('''
        from harness.method import Method
        from harness.registry import register

        @register("nometa-toy")
        class NoMeta(Method):
            """A toy without static metadata."""
            framework = "custom"
            profiles = {"tiny": {}}
            def fit(self, train, valid=None): pass
            def predict(self, seqs): return None
            def _save_state(self, path): pass
            def _load_state(self, path): pass
    '''))
    _fake_dist(tmp_path, "nometa-toy", "nometa-toy = nometa_toy\nbroken-toy2 = no_such_module_2\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    from click.testing import CliRunner

    from harness.cli import main

    with pytest.warns(UserWarning, match="'broken-toy2' failed to load"):
        result = CliRunner().invoke(main, ["methods", "list"], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    row = next(line for line in result.output.splitlines() if "nometa-toy" in line)
    assert "custom" in row and "A toy without static metadata." in row and "tiny" in row
    assert "broken-toy2: KeyError: method 'broken-toy2' is installed but failed to load" in result.output
    assert "legnet" in result.output  # the others are still listed


def test_methods_list_flags_a_framework_that_is_not_installed(monkeypatch):
    """Metadata read without importing must not hide that a plug-in cannot run here."""
    from click.testing import CliRunner

    from harness.cli import main

    assert registry.framework_installed("sklearn") is True and registry.framework_installed("custom") is None
    monkeypatch.setitem(registry.FRAMEWORK_MODULES, "tensorflow", "no_such_tensorflow_module")
    assert registry.framework_installed("tensorflow") is False
    result = CliRunner().invoke(main, ["methods", "list"], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    assert "tensorflow (not installed)" in next(line for line in result.output.splitlines() if "kircherlab" in line)
    assert "kircherlab: needs tensorflow (no_such_tensorflow_module), which is not installed here" in result.output
