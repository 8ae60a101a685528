"""The official scorer against published challenge results, an independent re-statement of the
official evaluation script's rules, and hand-made cases."""

import csv
import json
import time

import numpy as np
import pandas as pd
import pytest
from scipy.stats import pearsonr, spearmanr

from harness.data import load_test_set
from harness.scoring import (NORMALISER, WEIGHTS, BoardScore, PredictionError, board_ids, parse_predictions, read_predictions,
                             score, score_boards)
from harness.scoring.scorer import board_members, pearson

from conftest import REAL_DATA, SNV_PAIRS

AUTOSOME = REAL_DATA / "reference_predictions" / "autosome_org_final.txt"


@pytest.fixture(scope="module")
def test_set(real_data):
    return load_test_set(real_data, SNV_PAIRS)


# --------------------------------------------------------------------------------------------
# The official rules, restated from the script (Zenodo 7395397: evaluate_predictions /
# calculate_eval_metrics) with plain pandas, json, Python sets and scipy, independent of harness.
# --------------------------------------------------------------------------------------------

SINGLE = {"high": "high_exp", "low": "low_exp", "yeast": "yeast", "random": "all_random", "challenging": "challenging"}
PAIRED = {"SNVs": "all_SNVs", "motif_perturbation": "motif_perturbation", "motif_tiling": "motif_tiling"}
PUBLIC = {"high": "high", "low": "low", "yeast": "yeast", "random": "random", "challenging": "challenging",
          "SNVs": "SNVs", "motif_perturbation": "motif_perturbation", "motif_tiling": "motif_tiling"}


def official_boards(pred, data_dir, snv_csv):
    """Board -> (Pearson score, Spearman score, {category: size}) by the official script's rules."""
    with open(data_dir / "filtered_test_data_with_MAUDE_expression.txt") as fh:
        truth = np.array([float(row[1]) for row in csv.reader(fh, delimiter="\t")])
    cats = {}
    for cat, stem in SINGLE.items():
        cats[cat] = set(np.unique(pd.read_csv(data_dir / "test_subset_ids" / f"{stem}_seqs.csv")["pos"]).tolist())
    for cat, stem in PAIRED.items():
        frame = pd.read_csv(snv_csv if cat == "SNVs" else data_dir / "test_subset_ids" / f"{stem}_seqs.csv")
        cats[cat] = set(zip(frame["alt_pos"].tolist(), frame["ref_pos"].tolist()))
    public = {}
    for cat, stem in PUBLIC.items():
        keys = json.loads((data_dir / "public_leaderboard_ids" / f"{stem}_exp_indices.json").read_text())
        public[cat] = [tuple(int(x) for x in k.split(",")) if cat in PAIRED else int(k) for k in keys]
    public_pairs = set(public["SNVs"] + public["motif_perturbation"] + public["motif_tiling"])
    public_indices = {i for c in SINGLE for i in public[c]} | {i for pair in public_pairs for i in pair}
    n = len(truth)
    boards = {
        "public": dict(public, all=sorted(public_indices)),
        "private": {c: ([p for p in v if p not in public_pairs] if c in PAIRED else
                        [i for i in v if i not in public_indices]) for c, v in cats.items()},
        "full": dict(cats, all=list(range(n))),
    }
    boards["private"]["all"] = [i for i in range(n) if i not in public_indices]
    out = {}
    for board, members in boards.items():
        p_sum = s_sum = 0.0
        for cat, weight in WEIGHTS.items():
            ids = list(members[cat])
            if cat in PAIRED:
                ref, alt = [p[0] for p in ids], [p[1] for p in ids]  # the script's own (swapped) names
                x, y = pred[alt] - pred[ref], truth[alt] - truth[ref]
            else:
                x, y = pred[ids], truth[ids]
            p_sum += weight * pearsonr(y, x)[0] ** 2
            s_sum += weight * spearmanr(y, x)[0]
        out[board] = (p_sum / 4.65, s_sum / 4.65, {c: len(v) for c, v in members.items()})
    return out


def autosome_float64():
    with open(AUTOSOME) as fh:
        return np.array([float(line.split("\t")[1]) for line in fh])


#: autosome.org's final submission with the reconstructed SNV pairs (official rules, 6 decimals)
AUTOSOME_BOARDS = {"public": (0.829027, 0.859637), "private": (0.819720, 0.854201), "full": (0.822377, 0.855505)}


def test_weights_are_the_challenge_weights():
    assert WEIGHTS == {"all": 1, "high": 0.3, "low": 0.3, "yeast": 0.3, "random": 0.3, "challenging": 0.5,
                       "SNVs": 1.25, "motif_perturbation": 0.3, "motif_tiling": 0.4}
    assert sum(WEIGHTS.values()) == pytest.approx(NORMALISER)


def test_three_boards_follow_the_official_script(test_set, real_data):
    """autosome.org's final submission and a noisy truth: every board to 1e-9 of the restated script."""
    autosome = read_predictions(AUTOSOME, test_set)
    np.testing.assert_array_equal(autosome, autosome_float64())  # float64, as the script's float()
    truth = test_set.table.y.astype(np.float64)
    noisy = truth + np.random.default_rng(3).normal(0, 0.8, len(truth))
    for name, pred in (("autosome", autosome), ("noisy", noisy)):
        expected = official_boards(pred, real_data, SNV_PAIRS)
        got = score_boards(pred, test_set)
        for board, (p_score, s_score, sizes) in expected.items():
            assert got[board].pearson_score == pytest.approx(p_score, abs=1e-9), (name, board)
            assert got[board].spearman_score == pytest.approx(s_score, abs=1e-9), (name, board)
            assert {c: s.n for c, s in got[board].categories.items()} == sizes, (name, board)
            assert not got[board].partial
        if name == "autosome":
            assert {b: (round(v[0], 6), round(v[1], 6)) for b, v in expected.items()} == AUTOSOME_BOARDS


def test_categories_are_sets_and_private_pairs_drop_the_listed_public_pairs(test_set):
    full = board_members(test_set, "full")[1]
    assert len(full["motif_perturbation"]) == 3287 and len(full["motif_tiling"]) == 2624  # 3,527 and 2,653 rows
    assert len(full["yeast"]) == 578 and len(full["challenging"]) == 1953  # 964 and 1,981 rows
    all_ids, private = board_members(test_set, "private")
    assert len(all_ids) == 62058 and len(private["SNVs"]) == 40131
    # a private pair may have a public member (motif pairs share public references): it stays
    is_public = np.zeros(len(test_set), dtype=bool)
    is_public[test_set.public_ids] = True
    kept = private["motif_perturbation"]
    assert is_public[kept].any(axis=1).sum() > 0
    listed = {tuple(p) for c in ("SNVs", "motif_perturbation", "motif_tiling") for p in test_set.public[c].tolist()}
    assert not {tuple(p) for c in ("SNVs", "motif_perturbation", "motif_tiling") for p in private[c].tolist()} & listed
    # the board reads those public members too: a NaN there is refused
    used = board_ids(test_set, "private")
    assert len(used) > len(all_ids) and np.isin(all_ids, used).all()
    pred = test_set.table.y.astype(np.float64)
    pred[np.setdiff1d(used, all_ids)[0]] = np.nan
    with pytest.raises(ValueError, match="private board are missing or not finite"):
        score(pred, test_set, "private")


def test_scale_invariance():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=1000), rng.normal(size=1000) + 0.0
    y += x
    r = pearson(x, y)
    assert r == pytest.approx(pearsonr(x, y)[0], abs=1e-12)
    for scale in (1e200, 1e-200, 1e300):
        assert pearson(x * scale, y) == pytest.approx(r, abs=1e-12)
        assert pearson(x * scale, y * scale) == pytest.approx(r, abs=1e-12)
    assert pearson(np.ones(5), np.arange(5.0)) == 0.0


def test_board_scores_do_not_overflow(test_set):
    pred = test_set.table.y.astype(np.float64) + np.random.default_rng(1).normal(0, 0.5, len(test_set))
    base = score_boards(pred, test_set)
    for scale in (1e200, 1e-200):
        scaled = score_boards(pred * scale, test_set)
        for board in base:
            assert scaled[board].pearson_score == pytest.approx(base[board].pearson_score, abs=1e-12)
            assert scaled[board].spearman_score == pytest.approx(base[board].spearman_score, abs=1e-12)


def test_category_values_match_scipy(test_set):
    pred = read_predictions(AUTOSOME, test_set)
    result = score(pred, test_set, "full")
    truth = test_set.expression
    high = test_set.categories["high"]
    assert result.categories["high"].pearson == pytest.approx(pearsonr(pred[high], truth[high])[0], abs=1e-10)
    tiling = test_set.categories["motif_tiling"]
    dp, dt = pred[tiling[:, 0]] - pred[tiling[:, 1]], truth[tiling[:, 0]] - truth[tiling[:, 1]]
    assert result.categories["motif_tiling"].spearman == pytest.approx(spearmanr(dp, dt)[0], abs=1e-10)
    expected = sum(WEIGHTS[c] * s.pearson ** 2 for c, s in result.categories.items()) / 4.65
    assert result.pearson_score == pytest.approx(expected)
    perfect = score(test_set.table.y.astype(float), test_set, "full")
    assert perfect.pearson_score == pytest.approx(1.0) and perfect.spearman_score == pytest.approx(1.0)


def test_camformers_public_json(test_set, real_data):
    pred = read_predictions(real_data / "reference_predictions" / "camformers_public.json", test_set)
    assert np.isfinite(pred).sum() == 9045
    result = score(pred, test_set, "public")
    assert (round(result.pearson_score, 3), round(result.spearman_score, 3)) == (0.763, 0.823)
    with pytest.raises(ValueError, match="private board are missing"):
        score(pred, test_set, "private")


def test_without_snv_pairs_private_and_full_are_partial(real_data):
    test = load_test_set(real_data)
    assert "SNVs" not in test.categories
    assert test.snv_source.startswith("public leaderboard SNV pairs only") and "4670 pairs" in test.snv_source
    truth = test.table.y.astype(float)
    boards = score_boards(truth + np.random.default_rng(0).normal(0, 0.5, len(truth)), test)
    assert not boards["public"].partial and boards["public"].categories["SNVs"].n == 4670
    for board in ("private", "full"):
        assert boards[board].partial and boards[board].missing == ["SNVs"] and "SNVs" not in boards[board].categories
        saved = boards[board].to_dict()
        assert saved["partial"] is True and saved["missing"] == ["SNVs"]
    whole = score_boards(truth, load_test_set(real_data, SNV_PAIRS))["private"].to_dict()
    assert whole["partial"] is False and whole["missing"] == []
    # read back, the notion survives; files written before it existed read as whole
    loaded = {b: BoardScore.from_dict(b, json.loads(json.dumps(s.to_dict()))) for b, s in boards.items()}
    assert loaded["private"].partial and not loaded["public"].partial
    assert loaded["full"].to_dict() == boards["full"].to_dict()
    old = {k: v for k, v in boards["public"].to_dict().items() if k not in ("partial", "missing")}
    assert not BoardScore.from_dict("public", old).partial


# --------------------------------------------------------------------------------------------
# The prediction parser
# --------------------------------------------------------------------------------------------

def test_prediction_file_errors(test_set, tmp_path):
    cases = {
        '{"0": 1.0, "0": 2.0}': "duplicate key '0'",
        '{"71103": 1.0}': "key '71103' is out of range",
        '{"3": "high"}': "key '3': value 'high' is not a number",
        '{"3": true}': "key '3': value True is not a number",
        '{"3": {"a": 1}}': "key '3': value an object is not a number",
        '[1.0, 2.0]': "expected one JSON object",
        '{"0": 1.0,': "line 1, column 11: not valid JSON",
    }
    for text, message in cases.items():
        path = tmp_path / "p.json"
        path.write_text(text)
        with pytest.raises(PredictionError, match=f"p.json: invalid JSON prediction file .*\n  {message}"):
            read_predictions(path, test_set)
    short = tmp_path / "short.tsv"
    short.write_text("ACGT\t1.0\n")
    with pytest.raises(PredictionError, match="1 lines; expected one per test sequence"):
        read_predictions(short, test_set)


@pytest.mark.parametrize("key", ["05", " 5", "+5", "5.0", "-1", "5 ", "١"])
def test_keys_must_be_canonical_decimal_ids(test_set, tmp_path, key):
    path = tmp_path / "keys.json"
    path.write_text(json.dumps({"5": 1.0, key: 2.0}))
    parsed = parse_predictions(path, test_set)
    assert parsed.problems == [f"key {key!r} is not a test index (a decimal integer 0..71102, no sign or leading zero)"]
    assert parsed.values[5] == 1.0  # never overwritten by the non-canonical key
    with pytest.raises(PredictionError, match="is not a test index"):
        read_predictions(path, test_set)


def test_duplicate_key_check_is_linear(test_set, tmp_path):
    """71,104 keys with the duplicate last (81.8 s with the old quadratic check)."""
    path = tmp_path / "dup.json"
    body = ", ".join(f'"{i}": {i / 7}' for i in range(71103))
    path.write_text("{" + body + ', "71102": 0.5}')
    start = time.perf_counter()
    parsed = parse_predictions(path, test_set)
    seconds = time.perf_counter() - start
    assert parsed.problems == ["duplicate key '71102'"]
    assert parsed.values[71102] == 71102 / 7  # the first value is kept, the duplicate refused
    assert seconds < 5, seconds


def test_nonfinite_values_are_kept_and_named(test_set, tmp_path):
    path = tmp_path / "nan.json"
    values = {str(i): 0.5 for i in range(len(test_set))}
    text = json.dumps(values).replace('"7": 0.5', '"7": NaN').replace('"9": 0.5', '"9": 1e999')
    path.write_text(text)
    parsed = parse_predictions(path, test_set)
    assert parsed.problems == [] and parsed.nonfinite.tolist() == [7, 9]
    assert parsed.nonfinite_problems() == ["key '7': value is nan, not a finite number",
                                           "key '9': value is inf, not a finite number"]
    assert parsed.coverage(np.arange(10)) == "2 predictions are not finite: 7 (nan), 9 (inf)"
    assert parsed.coverage(np.arange(10, 20)) is None


def test_tsv_in_wrong_order_is_refused(test_set, tmp_path):
    seqs = test_set.table.sequences()
    seqs[0], seqs[1] = seqs[1], seqs[0]
    path = tmp_path / "swapped.tsv"
    path.write_text("".join(f"{s}\t0.5\n" for s in seqs))
    with pytest.raises(PredictionError, match=r"swapped.tsv: invalid TSV prediction file \(2 problems\)\n"
                                              r"  line 1: sequence differs from test sequence 0 \(it is test sequence 1"):
        read_predictions(path, test_set)
    seqs[0], seqs[1] = seqs[1], seqs[0]
    seqs[2] = seqs[2].lower()  # case does not matter
    values = np.linspace(-3, 3, len(seqs))
    lines = [f"{s}\t{float(v)!r}" for s, v in zip(seqs, values)]
    lines[3] = lines[3].split("\t")[0] + "\t1_0"  # float() would take it; the parser does not
    path.write_text("\n".join(lines) + "\n")
    parsed = parse_predictions(path, test_set)
    assert parsed.problems == ["line 4: prediction '1_0' is not a number"]
    lines[3] = lines[3].split("\t")[0] + "\t-inf"
    path.write_text("\n".join(lines) + "\n")
    parsed = parse_predictions(path, test_set)
    assert parsed.problems == [] and parsed.nonfinite.tolist() == [3]
    values[3] = -np.inf
    np.testing.assert_array_equal(read_predictions(path, test_set), values)  # float64, exact
