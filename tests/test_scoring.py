"""The official scorer against published challenge results and hand-computed cases."""

import json

import numpy as np
import pytest
from scipy.stats import pearsonr, spearmanr

from harness.data import load_test_set
from harness.scoring import NORMALISER, WEIGHTS, PredictionError, read_predictions, score, score_boards


@pytest.fixture(scope="module")
def test_set(real_data):
    return load_test_set(real_data, real_data / "reconstructed" / "all_SNVs_seqs.csv")


def test_weights_are_the_challenge_weights():
    assert WEIGHTS == {"all": 1, "high": 0.3, "low": 0.3, "yeast": 0.3, "random": 0.3, "challenging": 0.5,
                       "SNVs": 1.25, "motif_perturbation": 0.3, "motif_tiling": 0.4}
    assert sum(WEIGHTS.values()) == pytest.approx(NORMALISER)


def test_autosome_final_public_board(test_set, real_data):
    pred = read_predictions(real_data / "reference_predictions" / "autosome_org_final.txt", test_set)
    result = score(pred, test_set, "public")
    assert round(result.pearson_score, 3) == 0.829
    assert round(result.spearman_score, 3) == 0.860
    assert result.categories["all"].n == 9045
    assert result.categories["SNVs"].n == 4670


def test_camformers_public_json(test_set, real_data):
    pred = read_predictions(real_data / "reference_predictions" / "camformers_public.json", test_set)
    assert np.isfinite(pred).sum() == 9045
    result = score(pred, test_set, "public")
    assert round(result.pearson_score, 3) == 0.763
    assert round(result.spearman_score, 3) == 0.823
    with pytest.raises(ValueError, match="private board are missing"):
        score(pred, test_set, "private")


def test_autosome_private_board_with_reconstructed_snvs(test_set, real_data):
    pred = read_predictions(real_data / "reference_predictions" / "autosome_org_final.txt", test_set)
    result = score(pred, test_set, "private")
    # data README: 0.8197 / 0.8542 with the reconstructed SNV pairs (official 0.8184 / 0.8541)
    assert result.pearson_score == pytest.approx(0.8197, abs=5e-4)
    assert result.spearman_score == pytest.approx(0.8542, abs=5e-4)
    assert result.categories["all"].n == 62058
    assert "given file" in result.snv_source and "44795 pairs" in result.snv_source


def test_category_values_match_scipy(test_set, real_data):
    pred = read_predictions(real_data / "reference_predictions" / "autosome_org_final.txt", test_set)
    result = score(pred, test_set, "full")
    truth = test_set.table.y.astype(float)
    high = test_set.categories["high"]
    assert result.categories["high"].pearson == pytest.approx(pearsonr(pred[high], truth[high])[0], abs=1e-10)
    tiling = test_set.categories["motif_tiling"]
    dp, dt = pred[tiling[:, 0]] - pred[tiling[:, 1]], truth[tiling[:, 0]] - truth[tiling[:, 1]]
    assert result.categories["motif_tiling"].spearman == pytest.approx(spearmanr(dp, dt)[0], abs=1e-10)
    expected = sum(WEIGHTS[c] * s.pearson ** 2 for c, s in result.categories.items()) / 4.65
    assert result.pearson_score == pytest.approx(expected)


def test_perfect_and_pairs_only_depend_on_differences(test_set):
    truth = test_set.table.y.astype(float)
    perfect = score(truth, test_set, "full")
    assert perfect.pearson_score == pytest.approx(1.0)
    assert perfect.spearman_score == pytest.approx(1.0)


def test_public_fallback_snv_source(real_data):
    test = load_test_set(real_data)
    assert test.snv_source.startswith("public leaderboard SNV pairs only")
    truth = test.table.y.astype(float)
    boards = score_boards(truth + np.random.default_rng(0).normal(0, 0.5, len(truth)), test)
    assert boards["public"].categories["SNVs"].n == 4670
    assert boards["private"].missing == ["SNVs"]  # every public pair has both members public


def test_prediction_file_errors(test_set, tmp_path):
    dup = tmp_path / "dup.json"
    dup.write_text('{"0": 1.0, "0": 2.0}')
    with pytest.raises(PredictionError, match="duplicate key '0'"):
        read_predictions(dup, test_set)
    out_of_range = tmp_path / "range.json"
    out_of_range.write_text(json.dumps({"71103": 1.0}))
    with pytest.raises(PredictionError, match="out of range"):
        read_predictions(out_of_range, test_set)
    text = tmp_path / "value.json"
    text.write_text(json.dumps({"3": "high"}))
    with pytest.raises(PredictionError, match="not a number"):
        read_predictions(text, test_set)
    short = tmp_path / "short.tsv"
    short.write_text("ACGT\t1.0\n")
    with pytest.raises(PredictionError, match="1 rows, expected one per test sequence"):
        read_predictions(short, test_set)


def test_tsv_in_wrong_order_is_refused(test_set, tmp_path):
    seqs = test_set.table.sequences()
    seqs[0], seqs[1] = seqs[1], seqs[0]
    path = tmp_path / "swapped.tsv"
    path.write_text("".join(f"{s}\t0.5\n" for s in seqs))
    with pytest.raises(PredictionError, match=r"swapped.tsv:1: sequence differs from test sequence 0"):
        read_predictions(path, test_set)
