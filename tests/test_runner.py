"""Runner: folds, out-of-fold predictions, files, resume, and refusal of mismatched runs."""

from dataclasses import dataclass
from pathlib import Path

import joblib
import numpy as np
import pytest
from sklearn.linear_model import Ridge

from harness.data.encoding import gc_content
from harness.io import read_json
from harness.method import Method, MethodConfig
from harness.registry import register
from harness.runner import RunSpec, run
from harness.splits import SplitSpec, make_assignment

FIT_CALLS = []


def gc_features(seqs):
    return np.c_[gc_content(seqs.codes), seqs.lengths]


@dataclass
class GcConfig(MethodConfig):
    alpha: float = 1.0


@register("test-gc-ridge")
class GcRidge(Method):
    """Ridge on per-sequence GC fraction and length: tiny, deterministic, a real fit."""

    framework = "sklearn"
    Config = GcConfig
    profiles = {"other": {"alpha": 5.0}}

    def fit(self, train, valid=None):
        FIT_CALLS.append(len(train))
        self.model = Ridge(alpha=self.config.alpha).fit(gc_features(train), train.y)

    def predict(self, seqs):
        return self.model.predict(gc_features(seqs))

    def _save_state(self, path: Path):
        joblib.dump(self.model, path / "model.joblib")

    def _load_state(self, path: Path):
        self.model = joblib.load(path / "model.joblib")


@pytest.fixture()
def small_train(real_data, tmp_path):
    lines = (real_data / "dev_train.txt").read_text().splitlines()[:3000]
    path = tmp_path / "train.txt"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_kfold_run_writes_everything_and_resumes(real_data, small_train, tmp_path):
    FIT_CALLS.clear()
    out = tmp_path / "run"
    spec = RunSpec(["test-gc-ridge"], real_data, small_train, real_data / "reconstructed" / "all_SNVs_seqs.csv",
                   SplitSpec("kfold", folds=3, seed=7), out=out)
    results = run(spec)
    assert FIT_CALLS == [2000, 2000, 2000]
    method_dir = out / "methods" / "test-gc-ridge"
    oof = np.load(method_dir / "oof.npy")
    assert oof.shape == (3000,) and np.isfinite(oof).all()  # k-fold: every row predicted out of fold
    assert np.load(method_dir / "test.npy").shape == (71103,)
    folds = np.load(out / "split.npy")
    np.testing.assert_array_equal(folds, make_assignment(3000, SplitSpec("kfold", folds=3, seed=7)))
    for k in range(3):
        assert (method_dir / f"fold{k}" / "model" / "method.json").is_file()
    scores = read_json(method_dir / "scores.json")
    assert set(scores["boards"]) == {"public", "private", "full"}
    assert scores["boards"]["private"]["categories"]["all"]["n"] == 62058
    assert results["test-gc-ridge"].oof_pearson > 0.05  # GC content carries real signal in this data
    assert set(read_json(out / "leaderboard.json")) == {"test-gc-ridge"}

    run(spec)  # resume: nothing refitted, same predictions
    assert len(FIT_CALLS) == 3
    np.testing.assert_array_equal(np.load(method_dir / "oof.npy"), oof)

    # an interrupted fold (no done.json) is redone, the others are not
    (method_dir / "fold1" / "done.json").unlink()
    run(spec)
    assert len(FIT_CALLS) == 4


def test_holdout_leaves_training_only_rows_nan(real_data, small_train, tmp_path):
    spec = RunSpec(["test-gc-ridge"], real_data, small_train, split=SplitSpec("holdout", holdout_fraction=0.2),
                   out=tmp_path / "run")
    run(spec)
    oof = np.load(tmp_path / "run" / "methods" / "test-gc-ridge" / "oof.npy")
    assert np.isfinite(oof).sum() == 600


def test_mismatched_profile_or_data_is_refused(real_data, small_train, tmp_path):
    out = tmp_path / "run"
    run(RunSpec(["test-gc-ridge"], real_data, small_train, out=out))
    with pytest.raises(ValueError, match="another configuration"):
        run(RunSpec(["test-gc-ridge"], real_data, small_train, profile="other", out=out))
    with pytest.raises(ValueError, match="split for other"):
        run(RunSpec(["test-gc-ridge"], real_data, small_train, split=SplitSpec(seed=1), out=out))


def test_unknown_method_fails_before_any_work(real_data, small_train, tmp_path):
    with pytest.raises(KeyError, match="unknown method 'nope'"):
        run(RunSpec(["nope"], real_data, small_train, out=tmp_path / "run"))
    assert not (tmp_path / "run").exists()


def test_missing_or_bad_training_file_fails_before_any_write(real_data, tmp_path):
    from harness.data import DataError
    from harness.tune import TuneSpec, tune

    missing = tmp_path / "missing.txt"
    with pytest.raises(DataError, match="missing.txt: no training file"):
        run(RunSpec(["test-gc-ridge"], real_data, missing, out=tmp_path / "run"))
    with pytest.raises(DataError, match="missing.txt: no training file"):
        tune(TuneSpec("kmer-ridge", trials=1, train=missing, storage="memory", out=tmp_path / "t.toml"))
    bad = tmp_path / "bad.txt"
    bad.write_text("ACGT\t1.0\nACGX\t2.0\n")
    with pytest.raises(DataError, match=r"bad.txt:2: sequence has .X."):
        run(RunSpec(["test-gc-ridge"], real_data, bad, out=tmp_path / "run"))
    assert not (tmp_path / "run").exists() and not (tmp_path / "t.toml").exists()
