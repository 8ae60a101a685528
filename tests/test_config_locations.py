"""Where profiles come from: shipped inside each plug-in package (wheel installs keep them), the
user's directory (``--config-dir`` / ``$HARNESS_CONFIG``) on top, ``harness tune`` writing only
there; and which config fields are recipe and which runtime."""

from __future__ import annotations

import dataclasses
import fnmatch
import importlib.resources
import json
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner

from harness import registry
from harness.cli import main
from harness.io import read_json
from harness.method import Method, MethodConfig, config_changes, config_parts
from harness.runner import RunSpec, run
from harness.splits import SplitSpec

ROOT = Path(__file__).resolve().parents[1]
WIDE = {"COLUMNS": "250", "HARNESS_DATA": "", "HARNESS_CONFIG": ""}


def invoke(*args, env=None):
    return CliRunner().invoke(main, [str(a) for a in args], env={**WIDE, **(env or {})}, catch_exceptions=False)


@dataclasses.dataclass
class LocConfig(MethodConfig):
    width: int = 8
    lr: float = 0.1
    max_train_seconds: float = 0.0  # runtime


@registry.register("test-config-locations")
class LocMethod(Method):
    """A method whose module is not inside a package (pytest imports tests/ as top-level modules):
    it ships no profile file; only its class profiles and the user's directory count."""

    Config = LocConfig
    profiles = {"cpu": {"width": 4}}

    def fit(self, train, valid=None):
        self.mean_ = float(train.y.mean())

    def predict(self, seqs):
        """GC content scaled by ``lr`` plus ``width``: a real (if weak) signal, never constant."""
        import numpy as np

        return np.isin(seqs.codes, (1, 2)).mean(axis=1) * self.config.lr + self.mean_ + self.config.width

    def _save_state(self, path):
        (path / "mean.json").write_text(json.dumps(self.mean_))

    def _load_state(self, path):
        self.mean_ = json.loads((path / "mean.json").read_text())


# ----- shipped profiles: package data found from the class's module -------------------------------
def test_every_built_in_profile_file_is_package_data_beside_its_module():
    """Before: profiles lived in the repository's top-level configs/, which a wheel does not carry."""
    assert not (ROOT / "configs").exists()
    eps = {ep.name: ep.value for ep in registry._entry_points()
           if ep.value.split(".")[0] in ("baselines", "submissions")}
    assert set(eps) == {"kmer-ridge", "kmer-lgbm", "camformers", "legnet", "kircherlab", "bhi", "highschoolers"}
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    package_data = pyproject["tool"]["setuptools"]["package-data"]
    for name, module in eps.items():
        package = module.rpartition(".")[0]
        resource = importlib.resources.files(package) / registry.SHIPPED_DIR / f"{name}.toml"
        assert resource.is_file(), f"{name}: no {package}/configs/{name}.toml"
        tables = tomllib.loads(resource.read_text())
        assert "cpu" in tables and "search_space" in tables, name
        # pyproject ships it in the wheel
        assert any(fnmatch.fnmatch(f"{registry.SHIPPED_DIR}/{name}.toml", g) for g in package_data[package]), name


def test_registry_reads_the_shipped_file_by_its_package_relative_label():
    cls = registry.get("kmer-ridge")
    label, resource = registry.shipped_file(cls)
    assert label == "baselines/configs/kmer-ridge.toml" and resource.is_file()
    profile = registry.load_profile(cls, "cpu")
    assert profile.source == "baselines/configs/kmer-ridge.toml [cpu]"
    assert profile.config.alphas == [100.0, 300.0, 1000.0]
    assert registry.shipped_file(LocMethod) is None  # a top-level module ships nothing
    assert registry.profile_names(LocMethod) == ["cpu"]


@pytest.fixture()
def isolated_registry(monkeypatch):
    """Plug-ins registered by the test are forgotten afterwards (registry and imported modules)."""
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    monkeypatch.setattr(registry, "_SOURCES", dict(registry._SOURCES))
    yield
    for name in [m for m in sys.modules if m.split(".")[0].startswith("thirdparty_")]:
        del sys.modules[name]


def _plugin_package(root: Path, package: str = "thirdparty_cfg", with_shipped: bool = True) -> None:
    """A third-party plug-in package: module ``<package>.model`` registering ``<package with ->``,
    an entry point only, and its own ``<package>/configs/<method>.toml``."""
    method = package.replace("_", "-")
    pkg = root / package
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "model.py").write_text(textwrap.dedent('''
        from dataclasses import dataclass
        from harness.method import Method, MethodConfig
        from harness.registry import register

        @dataclass
        class Cfg(MethodConfig):
            width: int = 64
            lr: float = 0.001
            depth: int = 2

        @register("METHOD")
        class ThirdParty(Method):
            Config = Cfg
            profiles = {"cpu": {"width": 8}}
            search_space = {"lr": {"low": 0.0001, "high": 0.1, "log": True}}
            def fit(self, train, valid=None): pass
            def predict(self, seqs): return None
            def _save_state(self, path): pass
            def _load_state(self, path): pass
    '''.replace("METHOD", method)))
    if with_shipped:
        (pkg / "configs").mkdir()
        (pkg / "configs" / f"{method}.toml").write_text(
            "[cpu]\nlr = 0.01\ndepth = 3\n\n[small]\nwidth = 2\n\n"
            "[search_space]\ndepth = { low = 1, high = 4 }\n")
    dist = root / f"{package}-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {method}\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(f"[harness.methods]\n{method} = {package}.model\n")


def test_third_party_package_ships_its_profiles_and_the_user_dir_layers_on_top(tmp_path, monkeypatch,
                                                                             isolated_registry):
    _plugin_package(tmp_path / "site")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    cls = registry.get("thirdparty-cfg")
    assert registry.profile_names(cls) == ["cpu", "small"]
    shipped = registry.load_profile(cls, "cpu")
    assert (shipped.config.width, shipped.config.lr, shipped.config.depth) == (8, 0.01, 3)
    assert shipped.source == ("thirdparty_cfg.model.ThirdParty.profiles['cpu']; "
                              "thirdparty_cfg/configs/thirdparty-cfg.toml [cpu]")

    user = tmp_path / "mine"
    user.mkdir()
    (user / "thirdparty-cfg.toml").write_text("[cpu]\ndepth = 4\n\n[huge]\nwidth = 1024\n\n"
                                              "[search_space]\nwidth = { choices = [8, 16] }\n")
    layered = registry.load_profile(cls, "cpu", user)
    assert (layered.config.width, layered.config.lr, layered.config.depth) == (8, 0.01, 4)
    assert layered.source.split("; ") == ["thirdparty_cfg.model.ThirdParty.profiles['cpu']",
                                          "thirdparty_cfg/configs/thirdparty-cfg.toml [cpu]",
                                          f"{user / 'thirdparty-cfg.toml'} [cpu]"]
    assert registry.profile_names(cls, user) == ["cpu", "huge", "small"]
    space = registry.load_search_space(cls, user)
    assert space.searched == ["lr", "depth", "width"]
    assert space.params["depth"].source == "thirdparty_cfg/configs/thirdparty-cfg.toml [search_space]"

    # strict checks keep naming the file, the table and the key, in every layer
    (user / "thirdparty-cfg.toml").write_text('[cpu]\nlr = "fast"\n')
    with pytest.raises(registry.ProfileError, match=r"thirdparty-cfg.toml \[cpu\] lr: input should be a valid number"):
        registry.load_profile(cls, "cpu", user)
    with pytest.raises(registry.ProfileError, match=r"has no profile 'nope' \(not in thirdparty_cfg/configs/"
                                                    r"thirdparty-cfg.toml nor .*mine/thirdparty-cfg.toml nor "
                                                    r"ThirdParty.profiles\); its profiles: cpu, default, paper, small"):
        registry.load_profile(cls, "nope", user)


def test_malformed_shipped_file_is_named(tmp_path, monkeypatch, isolated_registry):
    _plugin_package(tmp_path / "site", "thirdparty_bad", with_shipped=False)
    (tmp_path / "site" / "thirdparty_bad" / "configs").mkdir()
    (tmp_path / "site" / "thirdparty_bad" / "configs" / "thirdparty-bad.toml").write_text("[cpu\nlr = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    with pytest.raises(ValueError, match=r"thirdparty_bad/configs/thirdparty-bad.toml: .*line 1"):
        registry.load_profile("thirdparty-bad", "cpu")


# ----- the CLI: --config-dir and $HARNESS_CONFIG ---------------------------------------------------
def test_run_reads_the_user_config_dir_from_the_option_or_the_environment(simulated_dir, tmp_path):
    user = tmp_path / "mine"
    user.mkdir()
    (user / "test-config-locations.toml").write_text("[cpu]\nlr = 0.5\n\n[wide]\nwidth = 99\n")
    for how, extra, env in [("option", ["--config-dir", user], {}), ("env", [], {"HARNESS_CONFIG": str(user)})]:
        out = tmp_path / f"run-{how}"
        result = invoke("run", "--methods", "test-config-locations", "--profile", "wide", "--data", simulated_dir,
                        "--out", out, *extra, env=env)
        assert result.exit_code == 0, result.output
        saved = read_json(out / "methods" / "test-config-locations" / "config.json")
        assert saved["recipe"] == {"width": 99, "lr": 0.1} and saved["runtime"] == {"max_train_seconds": 0.0}
        assert saved["source"] == f"{user / 'test-config-locations.toml'} [wide]"
    refused = invoke("run", "--methods", "test-config-locations", "--profile", "wide", "--data", simulated_dir,
                     "--out", tmp_path / "run-none")
    assert refused.exit_code != 0 and "has no profile 'wide'" in refused.output
    missing = invoke("run", "--methods", "test-config-locations", "--config-dir", tmp_path / "nope")
    assert missing.exit_code == 2 and "Directory" in missing.output and "does not exist" in missing.output


def test_methods_list_shows_the_user_profiles(tmp_path, monkeypatch):
    monkeypatch.setattr(registry, "_REGISTRY", {"test-config-locations": LocMethod})  # list this one only
    monkeypatch.setattr(registry, "_LOADED", True)
    (tmp_path / "test-config-locations.toml").write_text("[mine-only]\nwidth = 3\n")
    plain = invoke("methods", "list")
    assert plain.exit_code == 0 and "mine-only" not in plain.output
    for args, env in [(["--config-dir", tmp_path], {}), ([], {"HARNESS_CONFIG": str(tmp_path)})]:
        result = invoke("methods", "list", *args, env=env)
        assert result.exit_code == 0, result.output
        rows = [line for line in result.output.splitlines() if "test-config-locations" in line]
        assert rows and "cpu, mine-only" in rows[0], result.output


# ----- harness tune writes to the user's directory, never into a package ---------------------------
def test_tune_writes_to_the_default_user_dir_and_never_into_the_package(simulated_dir, tmp_path, monkeypatch):
    """Before: `harness tune` wrote [tuned] into the harness's git-tracked configs/."""
    monkeypatch.chdir(tmp_path)
    _, shipped = registry.shipped_file(registry.get("kmer-ridge"))
    before = shipped.read_bytes()
    result = invoke("tune", "--method", "kmer-ridge", "--trials", 1, "--data", simulated_dir, "--storage", "memory")
    assert result.exit_code == 0, result.output
    written = tmp_path / "runs" / "tune" / "configs" / "kmer-ridge.toml"
    assert set(tomllib.loads(written.read_text())) == {"tuned"}
    assert shipped.read_bytes() == before
    assert "--profile tuned --config-dir runs/tune/configs" in result.output
    tuned = registry.load_profile("kmer-ridge", "tuned", Path("runs/tune/configs"))
    assert tuned.config.alphas == []  # the shipped search space fixes alphas = [] in every trial

    refused = invoke("tune", "--method", "kmer-ridge", "--trials", 1, "--data", simulated_dir, "--storage", "memory",
                     "--out", shipped)
    assert refused.exit_code == 1 and "inside the package baselines" in refused.output
    assert shipped.read_bytes() == before


# ----- recipe vs runtime ---------------------------------------------------------------------------
def test_runtime_fields_are_those_that_cannot_change_the_fitted_numbers():
    from baselines.kmer import KmerLGBMConfig, KmerRidgeConfig
    from harness.torch_method import TorchConfig

    recipe, runtime = config_parts(TorchConfig())
    assert set(runtime) == {"eval_batch_size", "compile", "max_train_seconds", "devices", "progress"}
    assert "mixed_precision" in recipe  # bf16/fp16 autocast changes every training step: recipe
    recipe, runtime = config_parts(KmerLGBMConfig())
    assert runtime == {"n_jobs": -1} and "learning_rate" in recipe
    assert config_parts(KmerRidgeConfig())[1] == {}
    assert config_changes({"a": 1, "b": [1]}, {"a": 1, "b": [2], "c": True}) == ["b [1] -> [2]", "c None -> True"]

    @dataclasses.dataclass
    class Own(MethodConfig):
        RUNTIME_FIELDS = MethodConfig.RUNTIME_FIELDS - {"n_jobs"}  # a plug-in whose n_jobs is recipe
        n_jobs: int = 4
        sizes: tuple[int, ...] = (1, 2)

    assert config_parts(Own()) == ({"n_jobs": 4, "sizes": [1, 2]}, {})


def test_a_resumed_run_keeps_its_folds_after_a_runtime_only_change(simulated_dir, tmp_path):
    out = tmp_path / "run"
    spec = RunSpec(["test-config-locations"], simulated_dir, split=SplitSpec("kfold", folds=2), profile="cpu", out=out)
    run(spec)
    user = tmp_path / "mine"
    user.mkdir()
    (user / "test-config-locations.toml").write_text("[cpu]\nmax_train_seconds = 60.0\n")
    done = [(out / "methods" / "test-config-locations" / f"fold{k}" / "done.json").read_bytes() for k in range(2)]
    run(dataclasses.replace(spec, config_dir=user))
    assert [(out / "methods" / "test-config-locations" / f"fold{k}" / "done.json").read_bytes()
            for k in range(2)] == done  # nothing refitted
    (user / "test-config-locations.toml").write_text("[cpu]\nlr = 0.2\n")
    with pytest.raises(ValueError, match=r"another configuration .*recipe: lr 0.1 -> 0.2"):
        run(dataclasses.replace(spec, config_dir=user))


def test_tune_study_continues_after_a_runtime_only_change(sim_train_file, tmp_path):
    """The study records the base profile's recipe; its runtime fields may change between sessions
    (also for a study stored before the split, whose base_config held every field)."""
    import optuna

    user = tmp_path / "mine"
    user.mkdir()
    toml = user / "test-config-locations.toml"
    space = "[search_space]\nlr = { low = 0.01, high = 1.0, log = true }\n"
    toml.write_text(space)
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    args = ["tune", "--method", "test-config-locations", "--train", sim_train_file, "--storage", storage,
            "--config-dir", user, "--study-name", "s"]
    assert invoke(*args, "--trials", 1).exit_code == 0
    toml.write_text("[cpu]\nmax_train_seconds = 30.0\n" + space)
    second = invoke(*args, "--trials", 2)
    assert second.exit_code == 0, second.output
    said = " ".join(second.output.split())  # rich wraps long lines
    assert "runtime settings of profile 'cpu' changed since it was created (max_train_seconds 0.0 -> 30.0)" in said
    assert "1 trial(s) already finished" in said

    study = optuna.load_study(study_name="s", storage=storage)  # as stored before the recipe/runtime split
    attrs = dict(study.user_attrs["harness"])
    attrs["base_config"] = {**attrs.pop("base_config"), **attrs.pop("base_runtime"), "max_train_seconds": 5.0}
    study.set_user_attr("harness", attrs)
    assert invoke(*args, "--trials", 3).exit_code == 0

    toml.write_text("[cpu]\nwidth = 5\n" + space)
    refused = invoke(*args, "--trials", 4)
    assert refused.exit_code == 1 and "was created for other base_config" in " ".join(refused.output.split())
    assert len(optuna.load_study(study_name="s", storage=storage).trials) == 3


@pytest.fixture()
def sim_train_file(simulated_dir):
    return simulated_dir / "train_sequences.txt"
