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


def test_split_none_fits_every_row_once_and_reports_no_oof(real_data, small_train, tmp_path):
    """--split none (the teams' protocol): one model per method on all training rows, no OOF at all;
    the run exports and scores."""
    import io
    import json

    from rich.console import Console

    FIT_CALLS.clear()
    out = tmp_path / "run"
    spec = RunSpec(["test-gc-ridge"], real_data, small_train, real_data / "reconstructed" / "all_SNVs_seqs.csv",
                   SplitSpec("none", seed=4), out=out)
    buf = io.StringIO()
    results = run(spec, Console(file=buf, width=120))
    assert FIT_CALLS == [3000]  # every training row, once
    method_dir = out / "methods" / "test-gc-ridge"
    assert (np.load(out / "split.npy") == -1).all()
    assert not (method_dir / "oof.npy").exists()  # nothing held out: no out-of-fold file
    assert np.load(method_dir / "test.npy").shape == (71103,)
    assert np.load(method_dir / "fold0" / "oof.npy").shape == (0,)
    result = results["test-gc-ridge"]
    assert result.oof_pearson is None and result.oof_spearman is None and result.oof_rows == 0
    assert result.boards["private"].categories["all"].n == 62058
    done = read_json(method_dir / "fold0" / "done.json")
    assert done["n_train"] == 3000 and done["n_heldout"] == 0 and done["oof_pearson"] is None
    for path in (method_dir / "scores.json", out / "leaderboard.json"):
        text = path.read_text()
        assert "NaN" not in text
        obj = read_json(path)
        obj = obj.get("test-gc-ridge", obj)
        assert obj["oof_pearson"] is None and obj["oof_spearman"] is None and obj["oof_rows"] == 0
    printed = buf.getvalue()
    assert "no held-out rows" in printed and "nan" not in printed.lower()
    row = next(line for line in printed.splitlines() if "test-gc-ridge" in line and line.strip().startswith("1"))
    assert row.split()[-2:] == ["—", "—"]  # OOF r and ρ: absent, never NaN or 0
    assert "--split none" in printed

    # resume: nothing refitted
    run(spec, Console(file=io.StringIO()))
    assert FIT_CALLS == [3000]

    # the run exports as a challenge submission, which `harness score` scores as the run did
    from click.testing import CliRunner

    from harness.cli import main

    submission = tmp_path / "submission.json"
    exported = CliRunner().invoke(main, ["export", str(out), "--method", "test-gc-ridge", "--out", str(submission)])
    assert exported.exit_code == 0, exported.output
    scored = CliRunner().invoke(main, ["score", str(submission), "--data", str(real_data), "--snv-pairs",
                                       str(real_data / "reconstructed" / "all_SNVs_seqs.csv"), "--json"])
    assert scored.exit_code == 0, scored.output
    got = json.loads(scored.output)["boards"]["private"]
    assert got["pearson_score"] == pytest.approx(result.boards["private"].pearson_score, abs=1e-12)
    assert got["spearman_score"] == pytest.approx(result.boards["private"].spearman_score, abs=1e-12)


@register("test-gc-ridge-cpu")
class GcRidgeCpu(GcRidge):
    """GcRidge with a ``cpu`` profile, so it runs beside kmer-ridge under ``--profile cpu``."""

    profiles = {"cpu": {"alpha": 2.0}}


def test_split_none_end_to_end_on_the_command_line(simulated_dir, tmp_path):
    """`harness run --split none` with kmer-ridge on small (simulated) data, then `harness leaderboard`
    on that run; `harness ensemble` refuses it (no OOF to stack)."""
    from click.testing import CliRunner

    from harness.cli import main
    from harness.data import load_test_set
    from harness.scoring import score_boards

    def invoke(*args):
        return CliRunner().invoke(main, [str(a) for a in args], env={"COLUMNS": "250", "HARNESS_DATA": ""})

    out = tmp_path / "run"
    result = invoke("run", "--methods", "kmer-ridge,test-gc-ridge-cpu", "--profile", "cpu", "--split", "none",
                    "--data", simulated_dir, "--out", out)
    assert result.exit_code == 0, result.output
    assert "none split × 1" in result.output and "nan" not in result.output.lower()
    n_train = read_json(out / "run.json")["n_train"]
    for m in ("kmer-ridge", "test-gc-ridge-cpu"):
        assert not (out / "methods" / m / "oof.npy").exists()
        done = read_json(out / "methods" / m / "fold0" / "done.json")
        assert done["n_train"] == n_train and done["n_heldout"] == 0
        assert read_json(out / "methods" / m / "scores.json")["oof_pearson"] is None

    board = invoke("leaderboard", out, "--board", "private", "--format", "csv")
    assert board.exit_code == 0, board.output
    rows = {line.split(",")[1]: line.split(",") for line in board.output.splitlines()[1:]}
    assert set(rows) == {"kmer-ridge", "test-gc-ridge-cpu"}
    want = score_boards(np.load(out / "methods" / "kmer-ridge" / "test.npy"), load_test_set(simulated_dir))["private"]
    assert float(rows["kmer-ridge"][6]) == pytest.approx(want.pearson_score, abs=1e-6)
    assert want.pearson_score > 0.1  # kmer-ridge learns the simulated motifs from every row

    refused = invoke("ensemble", out, "--stacker", "linear")
    assert refused.exit_code == 1
    assert "--split none" in refused.output and "no out-of-fold (OOF) predictions to stack" in refused.output
    assert not (out / "methods" / "ensemble").exists()


# ----- recipe vs runtime: a speed-only change resumes, a recipe change is refused ------------------
@dataclass
class GcRuntimeConfig(MethodConfig):
    alpha: float = 1.0
    widths: tuple[int, ...] = (1, 2)  # a tuple field: config.json gives it back as a list
    eval_batch_size: int = 64  # runtime (MethodConfig.RUNTIME_FIELDS): prediction batching only


@register("test-gc-runtime")
class GcRuntime(GcRidge):
    Config = GcRuntimeConfig
    profiles = {"fast": {"eval_batch_size": 4096}, "recipe": {"alpha": 3.0}}


def _run_logged(spec):
    import io

    from rich.console import Console

    buf = io.StringIO()
    run(spec, Console(file=buf, width=250))
    return buf.getvalue()


def test_runtime_only_change_resumes_and_recipe_change_is_refused(real_data, small_train, tmp_path):
    """Before: config.json held every field, so a new eval_batch_size (or a tuple field, which JSON
    gives back as a list) refused the resume."""
    out = tmp_path / "run"
    split = SplitSpec("kfold", folds=2)
    _run_logged(RunSpec(["test-gc-runtime"], real_data, small_train, split=split, out=out))
    config_path = out / "methods" / "test-gc-runtime" / "config.json"
    saved = read_json(config_path)
    assert saved["recipe"] == {"alpha": 1.0, "widths": [1, 2]} and saved["runtime"] == {"eval_batch_size": 64}
    assert "config" not in saved

    FIT_CALLS.clear()
    (out / "methods" / "test-gc-runtime" / "fold1" / "done.json").unlink()  # one fold still to do
    log = _run_logged(RunSpec(["test-gc-runtime"], real_data, small_train, split=split, profile="fast", out=out))
    assert "runtime settings changed since this run started (eval_batch_size 64 -> 4096)" in log
    assert len(FIT_CALLS) == 1  # fold 0 kept, fold 1 fitted
    saved = read_json(config_path)
    assert saved["runtime"] == {"eval_batch_size": 4096} and saved["previous_runtime"] == [{"eval_batch_size": 64}]
    assert saved["recipe"] == {"alpha": 1.0, "widths": [1, 2]} and saved["profile"] == "fast"

    before = config_path.read_bytes()
    with pytest.raises(ValueError, match=r"another configuration \(profile 'fast'; recipe: alpha 1.0 -> 3.0\)"):
        run(RunSpec(["test-gc-runtime"], real_data, small_train, split=split, profile="recipe", out=out))
    assert config_path.read_bytes() == before


def test_flat_config_json_of_earlier_runs_compares_the_recipe_only(real_data, small_train, tmp_path):
    """A run directory written before the recipe/runtime split ("config": every field)."""
    import json

    out = tmp_path / "run"
    _run_logged(RunSpec(["test-gc-runtime"], real_data, small_train, out=out))
    config_path = out / "methods" / "test-gc-runtime" / "config.json"
    flat = {"method": "test-gc-runtime", "profile": "default", "source": "defaults",
            "config": {"alpha": 1.0, "widths": [1, 2], "eval_batch_size": 32}}
    config_path.write_text(json.dumps(flat))
    FIT_CALLS.clear()
    log = _run_logged(RunSpec(["test-gc-runtime"], real_data, small_train, out=out))
    assert FIT_CALLS == [] and "eval_batch_size 32 -> 64" in log
    saved = read_json(config_path)  # upgraded to the split format
    assert (saved["recipe"], saved["runtime"]) == ({"alpha": 1.0, "widths": [1, 2]}, {"eval_batch_size": 64})

    config_path.write_text(json.dumps({**flat, "config": {**flat["config"], "widths": [1, 3]}}))
    with pytest.raises(ValueError, match=r"recipe: widths \[1, 3\] -> \[1, 2\]"):
        run(RunSpec(["test-gc-runtime"], real_data, small_train, out=out))
    config_path.write_text(json.dumps({"method": "test-gc-runtime"}))
    with pytest.raises(ValueError, match="not a config.json written by the harness"):
        run(RunSpec(["test-gc-runtime"], real_data, small_train, out=out))
