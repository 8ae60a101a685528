"""The plug-in contract (:mod:`harness.testing`) over every registered method, one test per
(method, check), and the kit's own checks catching broken methods."""

from __future__ import annotations

import importlib.metadata
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from harness import registry, testing
from harness.io import read_json, write_json
from harness.method import Method, MethodConfig, require_targets

pytestmark = pytest.mark.usefixtures("torch_single_thread")

#: every installed plug-in: the names of the ``harness.methods`` entry points (nothing imported;
#: the classes other test modules register at import are not plug-ins and are left out).
PLUG_INS = sorted({ep.name for ep in importlib.metadata.entry_points(group=registry.ENTRY_POINT_GROUP)})
#: every (plug-in, check) pair, grouped by plug-in so that each one's checks share one tiny fit.
CASES = [(name, check) for name in PLUG_INS for check in testing.CHECK_NAMES]


@pytest.fixture(scope="module")
def suites():
    """``suites(name)``: the :class:`harness.testing.MethodChecks` of a registered method (created on
    first use; the previous method's is closed then, so one fit is held at a time)."""
    held: dict[str, testing.MethodChecks] = {}

    def get(name: str) -> testing.MethodChecks:
        if name not in held:
            for old in held.values():
                old.close()
            held.clear()
            held[name] = testing.method_checks(registry.get(name))
        return held[name]

    yield get
    for suite in held.values():
        suite.close()


@pytest.mark.parametrize("name, check", CASES, ids=[f"{n}-{c}" for n, c in CASES])
def test_method_contract(name, check, suites):
    suites(name).run(check)


def test_every_builtin_is_checked():
    """The contract runs over the entry points, which :func:`harness.registry.names` lists too."""
    builtins = {"camformers", "bhi", "highschoolers", "legnet", "kircherlab", "kmer-ridge", "kmer-lgbm"}
    assert builtins <= set(PLUG_INS) <= set(registry.names())


def test_every_builtin_declares_its_paper_parameter_count():
    """The team plug-ins declare the counts their write-ups report (the check compares them)."""
    want = {"camformers": 16_611_073, "bhi": 6_875_137, "highschoolers": 4_680_769, "legnet": 1_852_846,
            "kircherlab": 2_193_068, "kmer-ridge": None, "kmer-lgbm": None}
    assert {name: registry.get(name).paper_num_parameters for name in want} == want


# ----- the kit catches broken methods -------------------------------------------------------------
@dataclass
class MeanConfig(MethodConfig):
    shift: float = 0.0
    noisy: bool = False


class Mean(Method):
    """Predicts the training mean (+ shift); well-behaved unless a test breaks it."""

    framework = "numpy"
    Config = MeanConfig
    profiles = {"tiny": {}}

    def fit(self, train, valid=None):
        require_targets(self.name, train, valid)
        self.mean = float(np.mean(train.y)) + self.config.shift
        if self.config.noisy:  # an unseeded draw: not deterministic
            self.mean += float(np.random.default_rng().normal())

    def predict(self, seqs):
        if not hasattr(self, "mean"):
            raise RuntimeError("test-mean: predict called before fit/load")
        return np.full(len(seqs), self.mean, dtype=np.float64)

    def _save_state(self, path: Path) -> None:
        if not hasattr(self, "mean"):
            raise RuntimeError("test-mean: save called before fit")
        write_json(path / "state.json", {"mean": self.mean})

    def _load_state(self, path: Path) -> None:
        self.mean = read_json(path / "state.json")["mean"]


registry.register("test-mean")(Mean)


def _only_110_nt(message: str):
    """A ``predict`` that refuses sequences other than 110 nt with ValueError(``message``)."""

    def predict(self, seqs):
        if (seqs.lengths != 110).any():
            raise ValueError(message)
        return np.full(len(seqs), self.mean)

    return predict


def _broken(name: str, **attrs) -> type[Method]:
    cls = type(name, (Mean,), attrs)
    registry.register(f"test-{name.lower()}")(cls)
    return cls


def test_a_well_behaved_method_passes_every_check():
    testing.check_method(Mean)
    with testing.method_checks(Mean) as suite:
        assert [name for name, _ in suite] == list(testing.CHECK_NAMES)
        for name, check in suite:
            check()
        suite.run("save_load")  # a check may run again (fresh paths)


@pytest.mark.parametrize("name, attrs, check, message", [
    ("Float32", {"predict": lambda self, seqs: np.zeros(len(seqs), np.float32)}, "fit_predict",
     "returned float32, expected float64"),
    ("NaN", {"predict": lambda self, seqs: np.full(len(seqs), np.nan)}, "fit_predict", "not finite"),
    ("Wide", {"predict": lambda self, seqs: np.zeros((len(seqs), 1))}, "fit_predict", r"shape \(40, 1\)"),
    ("EarlyPredict", {"predict": lambda self, seqs: np.zeros(len(seqs))}, "predict_before_fit",
     "predict before fit did not raise"),
    ("NoTargets", {"fit": lambda self, train, valid=None: setattr(self, "mean", 0.0)}, "fit_requires_targets",
     "without y did not raise"),
    ("Pickled", {"_save_state": lambda self, path: (path / "model.joblib").write_bytes(b"\x80\x04.")},
     "save_load", r"model.joblib: a pickle file"),
    ("Unknown", {"_save_state": lambda self, path: (path / "model.bin").write_bytes(b"\x80\x04.")},
     "save_load", "unknown .maybe pickled. format"),
    ("Lossy", {"_load_state": lambda self, path: setattr(self, "mean", 1.0)}, "save_load",
     "loaded predictions differ"),
    ("Unseeded", {"profiles": {"tiny": {"noisy": True}}}, "seeded_determinism", "two fits with seed 0 predict"),
    ("NoTiny", {"profiles": {}}, "fit_predict", "need a small, fast 'tiny' profile"),
    ("BadTiny", {"profiles": {"tiny": {"shift": "big"}}}, "profiles", r"profile 'tiny' does not build.*shift"),
    ("WrongCount", {"paper_num_parameters": 5, "num_parameters": lambda self: 4}, "num_parameters",
     "paper config has 4 parameters; WrongCount.paper_num_parameters declares 5"),
    ("LengthBlind", {"predict": _only_110_nt("bad input")}, "sequence_lengths",
     "refused with an error that names no length"),
])
def test_a_broken_method_fails_the_named_check(name, attrs, check, message):
    cls = _broken(name, **attrs)
    with testing.method_checks(cls) as suite:
        with pytest.raises(testing.ContractError, match=message):
            suite.run(check)
    with pytest.raises(testing.ContractError, match=rf"breaks the method contract:\n(.|\n)*{check}: "):
        testing.check_method(cls)


def test_a_clear_length_refusal_passes():
    cls = _broken("LengthStrict", predict=_only_110_nt("test-lengthstrict: sequences must be 110 nt"))
    testing.check_method(cls, checks=["sequence_lengths"])


def test_no_pickle_accepts_safe_files_and_names_bad_ones(tmp_path):
    np.savez(tmp_path / "a.npz", x=np.arange(3))
    write_json(tmp_path / "b.json", {"k": 1})
    (tmp_path / "c.txt").write_text("tree\n")
    assert [f.name for f in testing.assert_no_pickle(tmp_path)] == ["a.npz", "b.json", "c.txt"]
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(testing.ContractError, match=r"obj.npy: does not read back as numpy.load\(allow_pickle=False"):
        testing.assert_no_pickle(tmp_path)


def test_check_method_refuses_unknown_check_names():
    with pytest.raises(KeyError, match="no contract checks"):
        testing.check_method(Mean, checks=["fit_predict", "fit_pridict"])


def test_tiny_tables_are_construct_shaped_with_some_other_lengths():
    train, test = testing.tiny_tables()
    assert (len(train), len(test)) == (240, 40)
    assert (test.lengths == 110).all() and (train.lengths != 110).sum() == 30
    assert set(np.unique(train.lengths)) <= set(range(100, 121))
    assert train.y.dtype == np.float32 and 0 <= train.y.min() and train.y.max() <= 17
    assert all(s.startswith("TGCATTTTTTTCACATC") and s.endswith("GGTTACGGCTGTT") for s in train.sequences())
    again, _ = testing.tiny_tables()
    np.testing.assert_array_equal(again.codes, train.codes)
