"""`harness tune`: search spaces as data, a resumable study, the written profile, pruning."""

from __future__ import annotations

import dataclasses
import re
import tomllib

import numpy as np
import optuna
import pytest
from click.testing import CliRunner

from harness import registry
from harness.cli import main
from harness.method import Method, MethodConfig
from harness.torch_method import TorchMethod
from harness.search_space import check_space, parse_search_space
from harness.tune import PRUNE_STARTUP_TRIALS, TuneSpec, tune
from harness.tune_profile import write_profile

WIDE = {"COLUMNS": "250"}  # rich wraps at 80 columns under CliRunner otherwise


def invoke(*args, ok=True):
    result = CliRunner().invoke(main, [str(a) for a in args], env=WIDE, catch_exceptions=False)
    if ok:
        assert result.exit_code == 0, result.output
    return result


# ----- a synthetic epoch-wise method: deterministic intermediate values for the pruner ----------
@dataclasses.dataclass
class EpochConfig(MethodConfig):
    quality: float = 0.5
    epochs: int = 3
    max_epochs: int = 5

    def __post_init__(self) -> None:
        if self.quality > 0.85 and self.epochs > 4:
            raise ValueError("quality > 0.85 needs epochs <= 4")


class FakeTrainer:
    """Calls its ``callbacks`` after each epoch with a Trainer-like record, as harness.training.SeqTrainer does."""

    def __init__(self, quality: float, epochs: int, log: list) -> None:
        self.callbacks: list = []
        self.quality, self.epochs, self.log = quality, epochs, log

    def fit(self) -> list[dict]:
        history = []
        for epoch in range(1, self.epochs + 1):
            self.log.append(epoch)
            record = {"epoch": epoch, "valid_r": self.quality, "valid_rho": self.quality, "valid_loss": 1.0}
            history.append(record)
            for callback in self.callbacks:
                callback(record)
        return history


@registry.register("test-tune-epochs")
class EpochMethod(TorchMethod):
    """A PyTorch-style plug-in: the tuner reaches its epochs through the declared entry point,
    ``TorchMethod.epoch_callbacks``, which ``make_trainer`` hands to the trainer."""

    Config = EpochConfig
    search_space = {"quality": {"low": -1.0, "high": 1.0}, "epochs": {"low": 2, "high": 5}}
    #: epochs run by each fit, in order (one list per fit)
    runs: list[list[int]] = []

    def make_trainer(self) -> FakeTrainer:
        EpochMethod.runs.append([])
        trainer = FakeTrainer(self.config.quality, self.config.epochs, EpochMethod.runs[-1])
        trainer.callbacks = list(self.epoch_callbacks)
        return trainer

    def fit(self, train, valid=None) -> None:
        self.history = self.make_trainer().fit()
        self.sign_ = np.sign(np.corrcoef(_gc(train), train.y)[0, 1])

    def predict(self, seqs) -> np.ndarray:
        """GC content, oriented as it correlates with the training targets, times ``quality``, plus
        fixed noise of scale ``1 - quality``: a higher quality scores strictly better (no ties)."""
        noise = np.random.default_rng(0).normal(0.0, 0.05, len(seqs))
        return _gc(seqs) * self.sign_ * self.config.quality + (1.0 - self.config.quality) * noise

    def _save_state(self, path) -> None:
        pass

    def _load_state(self, path) -> None:
        pass


def _gc(table) -> np.ndarray:
    return np.isin(table.codes, (1, 2)).mean(axis=1)  # codes 1, 2 = C, G


@registry.register("test-tune-history")
class HistoryMethod(Method):
    """Records its per-epoch history but has no epoch hook (not a TorchMethod: like the k-mer
    baselines and the Keras plug-in): reported afterwards, never pruned."""

    Config = EpochConfig
    search_space = EpochMethod.search_space
    predict = EpochMethod.predict
    _save_state = EpochMethod._save_state
    _load_state = EpochMethod._load_state

    def fit(self, train, valid=None) -> None:
        EpochMethod.runs.append([])
        self.history = FakeTrainer(self.config.quality, self.config.epochs, EpochMethod.runs[-1]).fit()
        self.sign_ = np.sign(np.corrcoef(_gc(train), train.y)[0, 1])


@registry.register("test-tune-nospace")
class NoSpaceMethod(HistoryMethod):
    """Declares no search space anywhere."""

    search_space = {}


@pytest.fixture()
def sim_train(simulated_dir):
    return simulated_dir / "train_sequences.txt"


def _study(storage, name):
    return optuna.load_study(study_name=name, storage=storage)


# ----- the study end to end ---------------------------------------------------------------------
def test_study_writes_profile_registry_resolves_and_resumes(tmp_path, simulated_dir):
    configs = tmp_path / "configs"
    configs.mkdir()
    toml = configs / "kmer-ridge.toml"  # the user's file: its other tables and comments are kept
    toml.write_text("# my kmer-ridge profiles\n[mine]\nalpha = 5.0 # a note\n")
    original = toml.read_text()
    _, shipped = registry.shipped_file(registry.get("kmer-ridge"))
    shipped_text = shipped.read_text()
    storage = f"sqlite:///{tmp_path / 'tune' / 'kmer.db'}"
    args = ["tune", "--method", "kmer-ridge", "--data", simulated_dir, "--storage", storage, "--config-dir", configs]

    first = invoke(*args, "--trials", 2)
    assert "SIMULATED" in first.output and "best: trial" in first.output
    name = "kmer-ridge-cpu-train_sequences-s0"
    study = _study(storage, name)
    assert [t.state.name for t in study.trials] == ["COMPLETE"] * 2
    assert study.trials[0].params == {"alpha": 300.0, "k_max": 6}  # the base profile's own values first
    assert study.trials[0].user_attrs["enqueued"] == "base profile"
    seen = [(t.params, t.value) for t in study.trials]

    # the profile: written, other tables and comments kept, resolved by the registry
    text = toml.read_text()
    assert "\n[tuned]\n# Written by `harness tune`" in text and text.startswith(original.rstrip("\n"))
    assert shipped.read_text() == shipped_text  # the package's own profiles are never written
    assert f"--profile tuned --config-dir {configs}" in first.output.replace("\n", "")  # a long path wraps
    tables = tomllib.loads(text)
    assert {k: v for k, v in tables.items() if k != "tuned"} == {
        k: v for k, v in tomllib.loads(original).items() if k != "tuned"}
    best = study.best_trial
    tuned = registry.load_profile("kmer-ridge", "tuned", configs)
    assert tuned.source == f"{toml} [tuned]"
    assert tuned.config.alphas == [] and tuned.config.alpha == best.params["alpha"]
    assert tuned.config.k_max == best.params["k_max"]
    assert tables["tuned"] == {"alphas": [], "alpha": best.params["alpha"], "k_max": best.params["k_max"]}
    names = registry.profile_names(registry.get("kmer-ridge"), configs)
    assert {"tuned", "mine", "cpu"} <= set(names) and "search_space" not in names

    # resume: the same command with more trials continues the stored study
    second = invoke(*args, "--trials", 3)
    assert "2 trial(s) already finished" in second.output
    study = _study(storage, name)
    assert len(study.trials) == 3 and [(t.params, t.value) for t in study.trials[:2]] == seen
    assert all(t.state.name == "COMPLETE" for t in study.trials)
    # reaching --trials again runs nothing new
    invoke(*args, "--trials", 2)
    assert len(_study(storage, name).trials) == 3
    # the stored study refuses another split
    refused = invoke(*args, "--trials", 4, "--holdout-fraction", 0.2, ok=False)
    assert refused.exit_code == 1 and "was created for other holdout_fraction" in refused.output
    assert len(_study(storage, name).trials) == 3


# ----- search-space validation ------------------------------------------------------------------
@pytest.mark.parametrize("entry, problem", [
    ("alphaa = { low = 1.0, high = 2.0 }", "not a field of KmerRidgeConfig"),
    ("alpha = { low = 10.0, high = 1.0 }", "low must be < high"),
    ("alpha = { low = 0.0, high = 1.0, log = true }", "log = true needs low > 0"),
    ("alpha = { lo = 1.0, high = 2.0 }", "unknown entry key(s) ['lo']"),
    ("alpha = 3.0", "must be a table"),
    ("alpha = { low = 1.0, high = 2.0, choices = [1.0] }", "exactly one of"),
    ("k_max = { low = 4.5, high = 6, type = \"int\" }", "needs integer low"),
    ("k_max = { low = 4.0, high = 6.0 }", "is an int"),
    ("alpha = { choices = [] }", "non-empty array"),
    ("solver = { low = 1, high = 2 }", "a range needs a numeric field"),
    ("alpha = { low = 1.0, high = 2.0, type = \"double\" }", "type must be"),
])
def test_bad_search_space_entry_names_file_and_key(tmp_path, entry, problem):
    toml = tmp_path / "kmer-ridge.toml"
    toml.write_text(f"[cpu]\nalphas = [100.0]\n\n[search_space]\n{entry}\n")
    with pytest.raises(ValueError) as err:
        registry.load_search_space("kmer-ridge", tmp_path)
    key = entry.split(" ")[0]
    assert f"{toml} [search_space] key {key!r}" in str(err.value) and problem in str(err.value)


def test_search_space_bounds_checked_against_base_profile(tmp_path, monkeypatch, sim_train):
    monkeypatch.setenv("HARNESS_CONFIG", str(tmp_path))  # the user's config dir, as --config-dir
    (tmp_path / "kmer-ridge.toml").write_text("[cpu]\n[search_space]\nk_max = { low = 0, high = 6 }\n")
    result = invoke("tune", "--method", "kmer-ridge", "--trials", 1, "--train", sim_train, "--storage", "memory",
                    ok=False)
    assert result.exit_code == 1
    assert f"{tmp_path / 'kmer-ridge.toml'} [search_space] key 'k_max': low 0 is refused on top of profile 'cpu'" \
        in result.output
    (tmp_path / "test-tune-nospace.toml").write_text("[cpu]\n")
    result = invoke("tune", "--method", "test-tune-nospace", "--trials", 1, "--train", sim_train, "--storage",
                    "memory", ok=False)
    assert result.exit_code == 1 and "declares no searchable parameters" in result.output
    assert f"{tmp_path / 'test-tune-nospace.toml'} (e.g." in result.output  # where to add one: the user's file
    (tmp_path / "kmer-ridge.toml").write_text("[cpu]\n[search_space]\nalpha = { low = 1.0, high = 2.0 }\n")
    for setting, message in [("k_min=9", "is refused on top of profile 'cpu'"), ("alpha=3.0", "is in the search space"),
                             ("nope=1", "--set nope: not a field of KmerRidgeConfig")]:
        result = invoke("tune", "--method", "kmer-ridge", "--trials", 1, "--train", sim_train, "--storage", "memory",
                        "--set", setting, ok=False)
        assert result.exit_code == 1 and message in result.output, result.output
    with pytest.raises(ValueError, match="reserved for `harness tune`"):
        registry.load_profile("kmer-ridge", "search_space")


def test_class_attribute_space_toml_overrides_per_key(tmp_path):
    space = registry.load_search_space(EpochMethod, tmp_path)
    assert space.params["quality"].source.endswith("EpochMethod.search_space") and space.params["epochs"].kind == "int"
    (tmp_path / "test-tune-epochs.toml").write_text("[search_space]\nquality = { low = 0.0, high = 0.5 }\n"
                                                    "max_epochs = { value = 4 }\n")
    space = registry.load_search_space(EpochMethod, tmp_path)
    assert (space.params["quality"].low, space.params["quality"].high) == (0.0, 0.5)
    assert str(tmp_path) in space.params["quality"].source and space.params["epochs"].low == 2
    assert space.searched == ["quality", "epochs"] and space.fixed == {"max_epochs": 4}
    assert check_space(space, EpochConfig(), "default") == EpochConfig(max_epochs=4)
    with pytest.raises(ValueError, match="Somewhere.search_space key 'epochs': duplicate"):
        parse_search_space(EpochConfig, {"epochs": ({"choices": [2, 2]}, "Somewhere.search_space")})


def test_shipped_search_spaces_fit_their_cpu_profiles():
    for name in ("kmer-ridge", "kmer-lgbm", "camformers", "bhi", "legnet", "highschoolers", "kircherlab"):
        space = registry.load_search_space(name)
        assert space.searched, name
        check_space(space, registry.load_profile(name, "cpu").config, "cpu")


# ----- pruning ----------------------------------------------------------------------------------
def _spec(tmp_path, train, method="test-tune-epochs", **kw):
    return TuneSpec(method, train=train, profile="default", storage="memory", base_trial=False,
                    out=tmp_path / f"{method}.toml", config_dir=tmp_path, **kw)


def test_bad_trial_is_pruned_after_warmup(tmp_path, sim_train):
    EpochMethod.runs.clear()
    enqueue = [{"quality": 0.8, "epochs": 4}, {"quality": 0.7, "epochs": 4}, {"quality": -0.9, "epochs": 4},
               {"quality": 0.9, "epochs": 5}]
    result = tune(_spec(tmp_path, sim_train, trials=4, enqueue=enqueue))
    assert PRUNE_STARTUP_TRIALS == 2
    # two good trials run all epochs; the bad one reports epoch 1 (warm-up), is pruned at epoch 2
    assert EpochMethod.runs[:3] == [[1, 2, 3, 4], [1, 2, 3, 4], [1, 2]]
    # the refused combination (quality > 0.85 with 5 epochs) is a counted failure, never fitted
    assert len(EpochMethod.runs) == 3
    assert (result.n_finished, result.n_complete, result.n_pruned, result.n_failed) == (4, 2, 1, 1)
    assert result.best_params == {"quality": 0.8, "epochs": 4}
    assert result.best_value == pytest.approx(result.best_r + result.best_rho)
    assert registry.load_profile(EpochMethod, "tuned", tmp_path).config == EpochConfig(quality=0.8, epochs=4)


def test_attach_reporter_uses_the_declared_entry_point_only():
    """The tuner reaches a fit's epochs only through TorchMethod.epoch_callbacks: a method that
    merely has a ``make_trainer`` attribute is not probed or wrapped."""
    from harness.tune import attach_reporter

    plain = HistoryMethod(EpochConfig())
    plain.make_trainer = lambda: "untouched"
    assert attach_reporter(plain, print) is False and plain.make_trainer() == "untouched"
    torch_like = EpochMethod(EpochConfig())

    def callback(record):
        return None

    assert attach_reporter(torch_like, callback) is True
    assert torch_like.epoch_callbacks == [callback] and torch_like.make_trainer().callbacks == [callback]


def test_no_pruner_runs_every_epoch_and_history_is_reported_afterwards(tmp_path, sim_train):
    EpochMethod.runs.clear()
    enqueue = [{"quality": 0.8, "epochs": 3}, {"quality": 0.7, "epochs": 3}, {"quality": -0.9, "epochs": 3}]
    result = tune(_spec(tmp_path, sim_train, trials=3, enqueue=enqueue, pruner="none"))
    assert EpochMethod.runs == [[1, 2, 3]] * 3 and result.n_pruned == 0
    # a method without an epoch hook: its history becomes intermediate values, but nothing is pruned
    EpochMethod.runs.clear()
    result = tune(_spec(tmp_path, sim_train, method="test-tune-history", trials=3, enqueue=enqueue))
    assert EpochMethod.runs == [[1, 2, 3]] * 3 and (result.n_complete, result.n_pruned) == (3, 0)


# ----- the TOML writer --------------------------------------------------------------------------
def test_write_profile_replaces_one_table_and_keeps_the_rest(tmp_path):
    path = tmp_path / "m.toml"
    path.write_text("# head\n[cpu]\na = 1 # inline\n\n[tuned]\nold = 1\n\n# about next\n[next]\nb = [1, 2]\n")
    write_profile(path, "tuned", {"lr": 0.001, "sizes": [3, 4]}, "line one\nline two")
    text = path.read_text()
    assert text.startswith("# head\n[cpu]\na = 1 # inline\n")
    assert re.search(r"\n# about next\n\n?\[next\]\n", text)  # the comment TOML files under [tuned] is kept
    assert "[tuned]\n# line one\n# line two\nlr = 0.001\nsizes = [3, 4]\n" in text
    assert tomllib.loads(text) == {"cpu": {"a": 1}, "tuned": {"lr": 0.001, "sizes": [3, 4]}, "next": {"b": [1, 2]}}
    write_profile(path, "fresh", {"x": True})
    assert tomllib.loads(path.read_text())["fresh"] == {"x": True} and path.read_text().startswith(text.rstrip())
    write_profile(tmp_path / "new.toml", "tuned", {"x": 1})
    assert tomllib.loads((tmp_path / "new.toml").read_text()) == {"tuned": {"x": 1}}
