"""The Python API for notebooks (issue 16): ``harness.load_run`` and ``harness.score``."""

from __future__ import annotations

import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

import harness
from harness.api import PartialScoreWarning, Run
from harness.data import load_test_set, read_table
from harness.data.testset import SUBSET_DIR, TEST_FILE
from harness.export import submission_json
from harness.io import read_json
from harness.predict import RunPredictor
from harness.scoring import BoardScore
from harness.scoring import score as score_board

def readme_example() -> str:
    """The README's notebook example ("Using a trained run"), read from the README itself so the two
    cannot drift; its ``RUN, DATA = ...`` line is dropped (the test sets both)."""
    text = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    section = text[text.index("## Using a trained run"):]
    block = section[section.index("```python\n") + len("```python\n"):]
    block = block[:block.index("```")]
    return "\n".join(line for line in block.splitlines() if not line.startswith("RUN, DATA ="))


@pytest.fixture(scope="module")
def finished(kmer_ridge_run) -> Path:
    """The session's finished kmer-ridge 2-fold run (conftest), read-only."""
    return kmer_ridge_run


def test_import_harness_stays_light():
    code = ("import sys, harness; heavy = [m for m in ('numpy', 'pandas', 'torch', 'sklearn') if m in sys.modules]; "
            "assert not heavy, heavy; assert callable(harness.load_run) and callable(harness.score); "
            "assert 'torch' not in sys.modules, 'harness.api imported torch'; print('ok')")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        harness.nothing  # noqa: B018


def test_load_run_scores_are_recomputed_from_test_npy(finished, simulated_dir):
    r = harness.load_run(finished)
    assert isinstance(r, Run) and r.methods == ["kmer-ridge"]
    test = load_test_set(simulated_dir)
    pred = np.load(finished / "methods" / "kmer-ridge" / "test.npy")
    cached = read_json(finished / "methods" / "kmer-ridge" / "scores.json")["boards"]
    for board in ("private", "public", "full"):
        frame = r.scores(board)
        expected = score_board(pred, test, board)
        row = frame.loc["kmer-ridge"]
        assert row["pearson_score"] == expected.pearson_score == cached[board]["pearson_score"]
        assert row["spearman_score"] == expected.spearman_score
        assert not row["partial"] and row["r[SNVs]"] == expected.categories["SNVs"].pearson
    with pytest.raises(ValueError, match="unknown board"):
        r.scores("secret")
    with pytest.raises(FileNotFoundError, match="no run.json"):
        harness.load_run(simulated_dir)


def test_predict_variant_effect_and_ism(finished, simulated_dir):
    r = harness.load_run(finished)
    test_file = simulated_dir / TEST_FILE
    np.testing.assert_array_equal(r.predict(test_file, method="kmer-ridge"),
                                  np.load(finished / "methods" / "kmer-ridge" / "test.npy"))
    seqs = read_table(test_file).sequences()[:5]
    direct = RunPredictor.open(finished, "kmer-ridge").predict(seqs)
    np.testing.assert_array_equal(r.predict(seqs, method="kmer-ridge"), direct)
    assert r.predict(seqs[0], method="kmer-ridge").tolist() == [direct[0]]  # one string: one sequence
    assert r.predictor("kmer-ridge") is r.predictor("kmer-ridge")  # models load once
    frame = r.variant_effect(seqs[0], seqs[1:3], method="kmer-ridge")
    assert list(frame.columns) == ["ref", "alt", "pred_ref", "pred_alt", "effect"]
    np.testing.assert_array_equal(frame["pred_alt"], direct[1:3])
    np.testing.assert_array_equal(frame["effect"], direct[1:3] - direct[0])
    paired = r.variant_effect(seqs[:2], seqs[2:4], method="kmer-ridge")
    np.testing.assert_array_equal(paired["effect"], direct[2:4] - direct[:2])
    with pytest.raises(ValueError, match="2 reference but 1 alternative"):
        r.variant_effect(seqs[:2], seqs[2:3], method="kmer-ridge")
    ism = r.ism(seqs[0][:30], method="kmer-ridge")
    assert ism.shape == (30, 4) and list(ism.columns) == list("ACGT") and ism.index[0] == 1
    assert ism.attrs["prediction"] == r.predict(seqs[0][:30], method="kmer-ridge")[0]
    with pytest.raises(ValueError, match="no finished method 'legnet'"):
        r.predict(seqs, method="legnet")


def test_score_takes_arrays_and_prediction_files(finished, simulated_dir, tmp_path, monkeypatch):
    pred = np.load(finished / "methods" / "kmer-ridge" / "test.npy")
    test = load_test_set(simulated_dir)
    result = harness.score(pred, simulated_dir, "public")
    assert isinstance(result, BoardScore) and result.to_dict() == score_board(pred, test, "public").to_dict()
    path = tmp_path / "pred.json"
    path.write_text(submission_json(pred))
    assert harness.score(path, simulated_dir, "private").pearson_score == score_board(pred, test, "private").pearson_score
    monkeypatch.delenv("HARNESS_DATA", raising=False)
    with pytest.raises(ValueError, match="give data_dir"):
        harness.score(pred, None, "private")
    with pytest.raises(ValueError, match="not finite"):
        harness.score(np.full_like(pred, np.nan), simulated_dir, "full")
    # a board that cannot score every category warns: never a partial score passed off as whole
    partial = tmp_path / "data"
    shutil.copytree(simulated_dir, partial)
    (partial / SUBSET_DIR / "all_SNVs_seqs.csv").unlink()
    with pytest.warns(PartialScoreWarning, match="without SNVs"):
        assert harness.score(pred, partial, "private").partial


def test_readme_example_runs(finished, simulated_dir, capsys):
    namespace = {"RUN": finished, "DATA": simulated_dir}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the example must run clean
        exec(compile(readme_example(), "README example", "exec"), namespace)
    out = capsys.readouterr().out
    assert "['kmer-ridge']" in out and "train_sequences.txt" in out
    assert namespace["pred"].shape == (2,) and namespace["ism"].shape == (110, 4)
