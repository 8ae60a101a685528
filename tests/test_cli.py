"""The command line as a user types it."""

import json

import numpy as np
from click.testing import CliRunner

from harness.cli import main


def invoke(*args, env=None):
    return CliRunner().invoke(main, [str(a) for a in args], env=env, catch_exceptions=False)


def test_score_json_reproduces_published_public_scores(real_data):
    result = invoke("score", real_data / "reference_predictions" / "camformers_public.json", "--data", real_data, "--json")
    assert result.exit_code == 0, result.output
    board = json.loads(result.output)["boards"]["public"]
    assert (round(board["pearson_score"], 3), round(board["spearman_score"], 3)) == (0.763, 0.823)
    assert board["categories"]["SNVs"]["n"] == 4670
    assert board["snv_source"].startswith("public leaderboard SNV pairs only")
    assert set(board["categories"]["high"]) == {"n", "pearson", "spearman"}


def test_score_all_boards_and_refusals(real_data, tmp_path):
    pred = real_data / "reference_predictions" / "autosome_org_final.txt"
    result = invoke("score", pred, "--data", real_data, "--snv-pairs", real_data / "reconstructed" / "all_SNVs_seqs.csv")
    assert result.exit_code == 0, result.output
    assert "private board" in result.output and "0.8290" in result.output and "44795 pairs" in result.output
    public_only = real_data / "reference_predictions" / "bhi_public.json"
    refused = CliRunner().invoke(main, ["score", str(public_only), "--data", str(real_data), "--board", "private"])
    assert refused.exit_code == 1 and "cover 9,045 of 71,103" in refused.output
    bad = tmp_path / "bad.json"
    bad.write_text('{"0": 1.0,')
    refused = CliRunner().invoke(main, ["score", str(bad), "--data", str(real_data)])
    assert refused.exit_code == 1 and "bad.json:1: not valid JSON" in refused.output


def test_methods_list_shows_builtins():
    result = invoke("methods", "list")
    assert result.exit_code == 0, result.output
    for name in ("kmer-ridge", "kmer-lgbm", "camformers"):
        assert name in result.output
    assert "16,611,073" in result.output  # Camformers paper parameter count


def test_methods_new_scaffolds(tmp_path):
    result = invoke("methods", "new", "my-net", "--dir", tmp_path)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "harness-my-net" / "harness_my_net" / "method.py").is_file()


def test_main_job_on_simulated_default(tmp_path, simulated_dir):
    """`harness run` with no data: the k-mer baselines on simulated data, said plainly."""
    env = {"HARNESS_CACHE": str(simulated_dir.parent), "HARNESS_DATA": ""}
    result = CliRunner().invoke(main, ["run", "--out", str(tmp_path / "run"), "--profile", "cpu"], env=env)
    assert result.exit_code == 0, result.output
    assert "SIMULATED" in result.output
    scores = json.loads((tmp_path / "run" / "leaderboard.json").read_text())
    assert set(scores) == {"kmer-ridge", "kmer-lgbm"}
    for method in scores.values():
        assert method["boards"]["private"]["pearson_score"] > 0.1  # planted motifs are learnable
    assert np.isfinite(np.load(tmp_path / "run" / "methods" / "kmer-ridge" / "test.npy")).all()
