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


@pytest.mark.parametrize("name", sorted(registry.available()))
def test_every_declared_profile_validates(name):
    cls = registry.get(name)
    for profile in registry.profile_names(cls) + list(registry.IMPLICIT_PROFILES):
        assert isinstance(registry.load_profile(cls, profile).config, cls.Config)


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


#: one quick CPU fit of every built-in plug-in (tiny networks, one epoch)
TINY_FITS = {
    "camformers": dict(channels=4, dense=8, batch_size=64, max_epochs=1, progress=False),
    "bhi": dict(conv1_channels=4, lstm_hidden=4, conv2_channels=2, dense=8, batch_size=64, max_epochs=1,
                eval_batch_size=128, progress=False),
    "highschoolers": dict(conv1_filters=8, conv2_filters=16, conv3_filters=24, ffn=32, dense=16, batch_size=64,
                          train_epochs=1, finetune_epochs=1, slice_size=0, valid_size=0.2, eval_batch_size=512,
                          progress=False),
    "legnet": dict(block_sizes=[16, 8, 8], batch_size=64, max_epochs=1, batches_per_epoch=0, eval_batch_size=512,
                   progress=False),
    "kircherlab": dict(batch_size=64, max_epochs=1, progress=False),
    "kmer-ridge": dict(k_max=3),
    "kmer-lgbm": dict(k_max=3, n_estimators=20, early_stopping_rounds=5, n_jobs=1),
}


@pytest.mark.parametrize("name", sorted(TINY_FITS))
def test_every_method_saves_and_loads_without_pickle(name, tmp_path, save_and_load, torch_single_thread):
    """Save/load round trip of every built-in plug-in (bit-identical predictions), through files
    that load without unpickling: weights with ``torch.load(weights_only=True)``, arrays with
    ``allow_pickle=False``, JSON, LightGBM model text, Keras weights. A PyTorch plug-in's resume
    checkpoint also loads with ``weights_only=True`` and matches its digest sidecar."""
    import json
    import zipfile

    import numpy as np
    import torch

    from harness.data.table import SeqTable
    from harness.integrity import file_digest

    rng = np.random.default_rng(0)
    table = SeqTable(codes=rng.integers(0, 4, (300, 110)).astype(np.uint8), lengths=np.full(300, 110, np.int32),
                     y=rng.uniform(0, 17, 300).astype(np.float32))
    train, test = table.subset(np.arange(240)), table.subset(np.arange(240, 300))
    cls = registry.get(name)
    method = cls(cls.Config(**TINY_FITS[name]), seed=0, device="cpu", work_dir=tmp_path / "work")
    method.fit(train)
    save_and_load(method, test)  # config, seed, best_epoch, bit-identical predictions
    for f in sorted((tmp_path / "m").rglob("*")):
        if f.suffix == ".pt":
            torch.load(f, weights_only=True)
        elif f.suffix == ".npz":
            with np.load(f, allow_pickle=False) as npz:
                [npz[k] for k in npz.files]
        elif f.suffix == ".json":
            json.loads(f.read_text())
        elif f.suffix == ".keras":  # only the weight store inside is read back
            assert "model.weights.h5" in zipfile.ZipFile(f).namelist()
        else:
            assert f.suffix == ".txt" and name == "kmer-lgbm", f"{f.name}: a file of unknown (maybe pickled) format"
    checkpoint = tmp_path / "work" / "checkpoints" / "last.pt"
    assert checkpoint.is_file() == (cls.framework == "pytorch")
    if checkpoint.is_file():
        assert torch.load(checkpoint, weights_only=True)["state"]["epoch"] >= 1
        record = json.loads((checkpoint.parent / "last.pt.json").read_text())
        assert record["xxh3_128"] == file_digest(checkpoint)


def test_lookup_imports_only_the_named_plug_in():
    """``get("kmer-ridge")`` used to import every plug-in (torch and TensorFlow: ~7 s)."""
    code = ("import sys; from harness import registry; cls = registry.get('kmer-ridge'); "
            "assert 'camformers' in registry.names() and 'legnet' in registry.names(); "
            "print(cls.__name__, 'torch' in sys.modules, 'tensorflow' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["KmerRidge", "False", "False"]
