"""Stacking on hand-built K-fold run directories whose right answer is known."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from harness.data import DataError, read_table
from harness.data.testset import TEST_FILE
from harness.cli.ensemble import ensemble_cmd
from harness.ensemble import (LightGBMStacker, LinearStacker, MeanStacker, Stacker, ensemble_run, length_weights,
                              load_stacker, oof_score, pair_consistency, resolution_pairs)
from harness.integrity import IntegrityError
from harness.io import UnsafePath
from harness.io import write_json, write_npy
from harness.splits import SplitSpec, fingerprint, make_assignment

from conftest import REAL_DATA, SNV_PAIRS, needs_real_data

N_TRAIN = 3000

pytestmark = needs_real_data


@pytest.fixture(scope="module")
def test_truth() -> np.ndarray:
    """Measured expression of the 71,103 test sequences, (N_test,) float64."""
    return read_table(REAL_DATA / TEST_FILE).y.astype(np.float64)


def make_run(root: Path, y: np.ndarray, members: dict[str, tuple[np.ndarray, np.ndarray]], kind: str = "kfold",
             seqs: list[str] | None = None, seed: int = 0) -> Path:
    """A run directory as `harness run` writes it: training file, run.json, split manifest, members."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True)
    if seqs is None:
        seqs = ["".join(s) for s in rng.choice(list("ACGT"), size=(len(y), 110))]
    train = root / "train.txt"
    train.write_text("".join(f"{s}\t{v!r}\n" for s, v in zip(seqs, y.tolist())))
    spec = SplitSpec(kind, folds=5, seed=seed)
    table = read_table(train)
    assignment = make_assignment(len(y), spec)
    write_npy(root / "split.npy", assignment)
    write_json(root / "split.json", {"spec": asdict(spec), "n_rows": len(y), "train_fingerprint": fingerprint(table)})
    write_json(root / "run.json", {"data_dir": str(REAL_DATA), "simulated": False, "train": str(train), "n_train": len(y),
                                   "n_test": 71103, "snv_pairs": str(SNV_PAIRS), "split": asdict(spec),
                                   "snv_source": f"given file ({SNV_PAIRS}), 44795 pairs"})
    board = {}
    for name, (oof, test) in members.items():
        oof = np.where(assignment >= 0, oof, np.nan)
        write_npy(root / "methods" / name / "oof.npy", oof)
        write_npy(root / "methods" / name / "test.npy", test)
        board[name] = {"boards": {}, "oof_pearson": 0.0, "oof_spearman": 0.0}
    write_json(root / "leaderboard.json", board)
    return root


def additive_run(root: Path, test_truth: np.ndarray, noise: float = 0.3, seed: int = 1) -> Path:
    """truth = a + b; member A sees a + noise, member B sees b + noise (train and test alike)."""
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=N_TRAIN), rng.normal(size=N_TRAIN)
    half = test_truth / 2
    u = rng.normal(scale=test_truth.std() / 2, size=len(test_truth))
    at, bt = half + u, half - u
    members = {"A": (a + noise * rng.normal(size=N_TRAIN), at + noise * test_truth.std() * rng.normal(size=len(at))),
               "B": (b + noise * rng.normal(size=N_TRAIN), bt + noise * test_truth.std() * rng.normal(size=len(bt)))}
    return make_run(root, a + b, members, seed=seed)


def truth_and_noise_run(root: Path, test_truth: np.ndarray, seed: int = 2) -> Path:
    """Member A = truth + tiny noise, member B = pure noise."""
    rng = np.random.default_rng(seed)
    y = rng.normal(size=N_TRAIN)
    members = {"A": (y + 0.05 * rng.normal(size=N_TRAIN), test_truth + 0.05 * test_truth.std() * rng.normal(size=len(test_truth))),
               "B": (rng.normal(size=N_TRAIN), rng.normal(size=len(test_truth)))}
    return make_run(root, y, members, seed=seed)


def test_lightgbm_stacker_beats_both_members(tmp_path, test_truth):
    run = additive_run(tmp_path / "run", test_truth)
    result = ensemble_run(run, "lightgbm", n_jobs=1)
    assert not result.fallback and result.used == "stacker"
    best = max(s["score"] for s in result.member_oof.values())
    assert best < 1.45  # each member alone: r ≈ 0.68
    assert result.stacker_oof["score"] > best + 0.3  # the stacker sees a + b: r ≈ 0.95
    for m in ("A", "B"):
        assert result.boards["private"].pearson_score > result.member_boards[m]["private"].pearson_score + 0.2

    out = run / "methods" / "ensemble"
    oof, test = np.load(out / "oof.npy"), np.load(out / "test.npy")
    assert oof.shape == (N_TRAIN,) and np.isfinite(oof).all()
    assert test.shape == (71103,) and np.isfinite(test).all()
    info = json.loads((out / "ensemble.json").read_text())
    assert info["stacker"] == "lightgbm" and info["members"] == ["A", "B"] and info["fallback"] is False
    assert info["inner_cv"]["folds"] == 5
    weights = info["weights"]  # the blend the LightGBM residual starts from
    assert weights["weight[A]"] > 0.5 and weights["weight[B]"] > 0.5
    assert info["oof"]["stacker"]["pair_consistency"] == 1.0  # strictly increasing in both members
    assert info["oof"]["stacker"]["score"] == pytest.approx(result.stacker_oof["score"])
    scores = json.loads((out / "scores.json").read_text())
    assert set(scores["boards"]) == {"public", "private", "full"}
    assert scores["boards"]["private"]["categories"]["all"]["n"] == 62058
    assert "44795 pairs" in scores["boards"]["private"]["snv_source"]
    board = json.loads((run / "leaderboard.json").read_text())
    assert set(board) == {"A", "B", "ensemble"}  # the ensemble row is added, the members' kept
    assert board["ensemble"]["boards"]["private"]["pearson_score"] == pytest.approx(result.boards["private"].pearson_score)


def test_linear_stacker_recovers_the_sum(tmp_path, test_truth):
    run = additive_run(tmp_path / "run", test_truth, seed=3)
    result = ensemble_run(run, "linear")
    w = result.details
    # y on (a + e_A, b + e_B) with var(e) = 0.09: least-squares slope 1 / 1.09 ≈ 0.92 for both
    assert 0.8 < w["weight[A]"] < 1.02 and 0.8 < w["weight[B]"] < 1.02
    assert not result.fallback
    assert result.stacker_oof["pearson"] > 0.93 > max(s["pearson"] for s in result.member_oof.values()) + 0.2


def test_truth_plus_noise_member_is_never_beaten_by_the_ensemble(tmp_path, test_truth):
    run = truth_and_noise_run(tmp_path / "run", test_truth)
    result = ensemble_run(run, "lightgbm", n_jobs=1)
    assert result.best_member == "A"
    # the guard: what the ensemble uses is at least as good as the best member on the criterion
    assert result.oof_scores["criterion"] >= result.member_oof["A"]["criterion"]
    if not result.fallback:
        assert result.details["weight[B]"] < 0.05 * result.details["weight[A]"]  # the noise member is ignored
    assert json.loads((run / "methods" / "ensemble" / "ensemble.json").read_text())["fallback"] is result.fallback

    # the mean of z-scores averages truth with noise: worse than A, so it must fall back to A
    mean = ensemble_run(run, "mean")
    assert mean.fallback and mean.used == "A"
    assert mean.stacker_oof["score"] < mean.member_oof["A"]["score"] - 0.3
    out = run / "methods" / "ensemble"
    np.testing.assert_array_equal(np.load(out / "test.npy"), np.load(run / "methods" / "A" / "test.npy"))
    np.testing.assert_array_equal(np.load(out / "oof.npy"), np.load(run / "methods" / "A" / "oof.npy"))
    assert np.load(out / "stacker_test.npy").shape == (71103,)
    info = json.loads((out / "ensemble.json").read_text())
    assert info["fallback"] is True and info["used"] == "A" and info["decision"].startswith("fallback")
    assert info["weights"]["weight[A]"] == info["weights"]["weight[B]"] == 0.5
    scores = json.loads((out / "scores.json").read_text())
    assert scores["fallback"] is True and scores["used"] == "A"
    assert scores["oof_pearson"] == pytest.approx(mean.member_oof["A"]["pearson"])
    assert json.loads((run / "leaderboard.json").read_text())["ensemble"]["fallback"] is True


class Backwards(Stacker):
    """A stacker forced to be worse than any member: it predicts minus the first member."""

    name = "backwards"

    def __init__(self, members=("A", "B")):
        super().__init__(2, list(members))

    @classmethod
    def for_members(cls, *members):
        return cls(members)

    def fit(self, X, y):
        return self

    def predict(self, X):
        return -X[:, 0]


def test_forced_bad_stacker_falls_back_and_cli_says_so(tmp_path, test_truth):
    run = additive_run(tmp_path / "run", test_truth, seed=4)
    result = ensemble_run(run, Backwards())
    assert result.fallback and result.stacker_oof["score"] < 0 and result.used == result.best_member
    info = json.loads((run / "methods" / "ensemble" / "ensemble.json").read_text())
    assert info["fallback"] is True and info["stacker"] == "backwards"

    cli = CliRunner().invoke(ensemble_cmd, [str(run), "--stacker", "linear", "--methods", "A,B"],
                             env={"COLUMNS": "200"})
    assert cli.exit_code == 0, cli.output
    assert "ensemble (linear)" in cli.output and "(best member)" in cli.output
    assert json.loads((run / "methods" / "ensemble" / "ensemble.json").read_text())["fallback"] is False


def test_sequence_features_add_what_members_miss(tmp_path, test_truth):
    rng = np.random.default_rng(5)
    seqs = ["".join(s) for s in rng.choice(list("ACGT"), size=(N_TRAIN, 110))]
    gc = np.array([(s.count("G") + s.count("C")) / len(s) for s in seqs])
    a = rng.normal(size=N_TRAIN)
    y = a + (gc - gc.mean()) / gc.std()  # half the signal is GC content, which no member sees
    members = {"A": (a + 0.1 * rng.normal(size=N_TRAIN), test_truth + rng.normal(size=len(test_truth))),
               "B": (a + 0.1 * rng.normal(size=N_TRAIN), test_truth + rng.normal(size=len(test_truth)))}
    run = make_run(tmp_path / "run", y, members, seqs=seqs, seed=5)
    plain = ensemble_run(run, "linear")
    with_seq = ensemble_run(run, "linear", seq_features=True)
    assert with_seq.features == ["A", "B", "gc_content", "length"]
    assert with_seq.details["weight_std[gc_content]"] == pytest.approx(1.0, abs=0.1)
    assert with_seq.stacker_oof["pearson"] > plain.stacker_oof["pearson"] + 0.2
    with pytest.raises(ValueError, match="seq-features needs a fitted stacker"):
        ensemble_run(run, "mean", seq_features=True)


def test_refuses_holdout_runs(tmp_path, test_truth):
    rng = np.random.default_rng(6)
    y = rng.normal(size=400)
    members = {m: (y + rng.normal(size=400), rng.normal(size=71103)) for m in ("A", "B")}
    holdout = make_run(tmp_path / "holdout", y, members, kind="holdout")
    with pytest.raises(ValueError, match="hold-out run"):
        ensemble_run(holdout, "linear")
    cli = CliRunner().invoke(ensemble_cmd, [str(holdout)])
    assert cli.exit_code == 1 and "hold-out run" in cli.output and "--split kfold" in cli.output

    # a run labelled K-fold whose member has rows without out-of-fold predictions
    partial = make_run(tmp_path / "partial", y, members)
    oof = np.load(partial / "methods" / "B" / "oof.npy")
    oof[:80] = np.nan
    write_npy(partial / "methods" / "B" / "oof.npy", oof)
    with pytest.raises(ValueError, match=r"methods/B/oof.npy: 80 of 400 training rows have no out-of-fold"):
        ensemble_run(partial, "linear")
    with pytest.raises(ValueError, match="at least two"):
        ensemble_run(partial, "linear", methods="A")
    with pytest.raises(ValueError, match="no finished method C"):
        ensemble_run(partial, "linear", methods="A,C")


def test_refuses_split_none_runs_and_untrustworthy_member_files(tmp_path, test_truth):
    rng = np.random.default_rng(8)
    y = rng.normal(size=400)
    members = {m: (y + rng.normal(size=400), test_truth + rng.normal(size=71103)) for m in ("A", "B")}
    none = make_run(tmp_path / "none", y, members, kind="none")
    for m in ("A", "B"):
        (none / "methods" / m / "oof.npy").unlink()  # a --split none run has no oof.npy
    with pytest.raises(ValueError, match="--split none: .* no out-of-fold \\(OOF\\) predictions to stack"):
        ensemble_run(none, "linear")
    cli = CliRunner().invoke(ensemble_cmd, [str(none)])
    assert cli.exit_code == 1 and "no out-of-fold (OOF) predictions to stack" in cli.output
    assert not (none / "methods" / "ensemble").exists()

    run = make_run(tmp_path / "run", y, members)
    path = run / "methods" / "B" / "oof.npy"
    np.save(path, np.array([{"planted": 1}] * 400, dtype=object), allow_pickle=True)
    with pytest.raises(DataError, match="methods/B/oof.npy: not a readable .npy array"):
        ensemble_run(run, "linear")
    write_npy(path, np.zeros(399))
    with pytest.raises(DataError, match=r"methods/B/oof.npy: shape \(399,\), expected \(400,\)"):
        ensemble_run(run, "linear")
    write_npy(path, y)
    test_path = run / "methods" / "A" / "test.npy"
    bad = np.load(test_path)
    bad[7] = np.inf
    write_npy(test_path, bad)
    with pytest.raises(DataError, match=r"methods/A/test.npy: 1 of 71,103 values are NaN or inf \(first: index 7\)"):
        ensemble_run(run, "linear")


def test_member_scores_come_from_test_npy_not_scores_json(tmp_path, test_truth):
    """A member's stale scores.json (a reversed test.npy kept the old numbers) is not reported."""
    from harness.data import load_test_set
    from harness.scoring import score, score_boards

    rng = np.random.default_rng(9)
    y = rng.normal(size=400)
    members = {m: (y + rng.normal(size=400), test_truth + 0.3 * test_truth.std() * rng.normal(size=71103))
               for m in ("A", "B")}
    run = make_run(tmp_path / "run", y, members)
    test_set = load_test_set(REAL_DATA, SNV_PAIRS)
    cached = score_boards(members["A"][1], test_set)  # every board, as the runner writes it
    stale = cached["private"]
    write_json(run / "methods" / "A" / "scores.json", {"boards": {b: c.to_dict() for b, c in cached.items()},
                                                       "oof_pearson": 0.5, "oof_spearman": 0.5})
    reversed_a = members["A"][1][::-1].copy()
    write_npy(run / "methods" / "A" / "test.npy", reversed_a)  # its scores.json is now stale
    result = ensemble_run(run, "linear")
    got = result.member_boards["A"]["private"].pearson_score
    assert got == pytest.approx(score(reversed_a, test_set, "private").pearson_score, abs=1e-12)
    assert got < 0.05 < stale.pearson_score - 0.5  # reversed: no signal left; the cache said otherwise


def test_default_stacker_keeps_resolution_and_auto_rejects_the_flattening_one(tmp_path, test_truth):
    """Issue 19: the plain LightGBM stacker's piecewise-constant output shared values across most
    test sequences and set SNV alt − ref to exactly 0; the default stacker (linear blend + monotone
    LightGBM residual) resolves like its members, and ``auto`` never picks the flattening one."""
    run = additive_run(tmp_path / "run", test_truth, seed=10)
    plain = ensemble_run(run, "lightgbm-plain", n_jobs=1)
    assert plain.resolution["ensemble"]["distinct"] < 0.9  # the mean of 5 piecewise-constant fits
    assert plain.stacker_oof["pair_consistency"] < 0.95  # ties on close member predictions
    default = ensemble_run(run, "lightgbm", n_jobs=1)
    res = default.resolution
    assert res["ensemble"]["distinct"] >= 0.99 and res["A"]["distinct"] >= 0.99
    assert res["ensemble"]["snv_zero"] == res["A"]["snv_zero"] == 0.0 < plain.resolution["ensemble"]["snv_zero"]
    assert default.stacker_oof["pair_consistency"] == 1.0
    snv = default.boards["private"].categories["SNVs"]
    assert snv.spearman > plain.boards["private"].categories["SNVs"].spearman

    auto = ensemble_run(run, n_jobs=1)  # the default: auto
    assert set(auto.candidates) == {"lightgbm", "linear", "mean", "lightgbm-plain"}
    assert auto.stacker != "lightgbm-plain" and not auto.fallback
    assert auto.candidates["lightgbm-plain"]["criterion"] < auto.candidates["lightgbm-plain"]["score"]
    info = json.loads((run / "methods" / "ensemble" / "ensemble.json").read_text())
    assert info["requested"] == "auto" and info["stacker"] == auto.stacker
    assert info["oof"]["candidates"]["lightgbm-plain"]["pair_consistency"] < 0.95
    per = info["per_category"]["private"]["SNVs"]
    assert per["weight"] == 1.25 and per["ensemble"] == [pytest.approx(auto.boards["private"].categories["SNVs"].pearson),
                                                        pytest.approx(auto.boards["private"].categories["SNVs"].spearman)]
    assert set(per) >= {"A", "B"}


def test_pair_consistency_counts_ties_and_reversals_as_misses():
    rng = np.random.default_rng(11)
    members = rng.normal(size=(2000, 2))
    pairs = resolution_pairs(members, np.arange(2000) % 3)
    assert len(pairs) > 900 and (pairs[:, 0] < pairs[:, 1]).all()
    assert pair_consistency(members.sum(axis=1), members, pairs) == 1.0  # strictly increasing in both
    assert pair_consistency(np.exp(members[:, 0]) + 0.1 * members[:, 1], members, pairs) == 1.0
    assert pair_consistency(np.zeros(2000), members, pairs) == 0.0  # everything tied
    assert pair_consistency(-members[:, 0], members, pairs) == 0.0  # reversed
    flat = np.round(members.sum(axis=1))  # piecewise constant: close pairs mostly tie
    assert 0.0 < pair_consistency(flat, members, pairs) < 0.5
    groups = np.arange(2000) % 3
    assert (groups[pairs[:, 0]] == groups[pairs[:, 1]]).all()  # both rows of a pair in one inner fold


@pytest.mark.parametrize("stacker", ["lightgbm", "linear", "mean"])
def test_saved_stacker_reproduces_test_predictions(tmp_path, test_truth, stacker):
    run = additive_run(tmp_path / "run", test_truth, seed=12)
    result = ensemble_run(run, stacker, n_jobs=1)
    assert not result.fallback
    f = load_stacker(run)
    assert f.kind == stacker and f.members == ["A", "B"] and len(f.models) == 5
    X = np.column_stack([np.load(run / "methods" / m / "test.npy") for m in ("A", "B")])
    got = f(X)
    assert got.dtype == np.float64 and got.shape == (71103,)
    np.testing.assert_allclose(got, np.load(run / "methods" / "ensemble" / "test.npy"), rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match=r"expected \(N, 2\) predictions of A, B"):
        f(X[:, :1])
    names = {p.relative_to(run / "methods" / "ensemble" / "stacker").as_posix()
             for p in (run / "methods" / "ensemble" / "stacker").rglob("*") if p.is_file()}
    expected = {"lightgbm": {"linear.json", "lightgbm.txt"}, "linear": {"linear.json"}, "mean": {"mean.json"}}[stacker]
    assert names == {"stacker.json"} | {f"fold{k}/{n}" for k in range(5) for n in expected}
    assert not any(n.endswith((".pkl", ".pickle", ".joblib")) for n in names)


def test_load_stacker_verifies_before_loading(tmp_path, test_truth):
    run = additive_run(tmp_path / "run", test_truth, seed=13)
    ensemble_run(run, "lightgbm", n_jobs=1)
    stacker_dir = run / "methods" / "ensemble" / "stacker"
    model = stacker_dir / "fold2" / "lightgbm.txt"
    original = model.read_bytes()
    model.write_bytes(original.replace(b"shrinkage=0.05", b"shrinkage=0.95", 1))  # same size, other content
    with pytest.raises(IntegrityError, match="fold2/lightgbm.txt: content differs"):
        load_stacker(run)
    model.write_bytes(original)
    load_stacker(run)
    (stacker_dir / "fold0" / "planted.json").write_text("{}")
    with pytest.raises(IntegrityError, match="planted.json: not a file the harness saved"):
        load_stacker(run)
    (stacker_dir / "fold0" / "planted.json").unlink()
    linear = stacker_dir / "fold1" / "linear.json"
    linear.rename(tmp_path / "linear.json")
    linear.symlink_to(tmp_path / "linear.json")
    with pytest.raises((IntegrityError, UnsafePath), match="linear.json"):
        load_stacker(run)

    # on fallback the saved "stacker" is the best member's column
    result = ensemble_run(run, Backwards())
    assert result.fallback
    f = load_stacker(run)
    assert f.kind == "member" and f.member == result.best_member and not (stacker_dir / "fold0").exists()
    X = np.column_stack([np.load(run / "methods" / m / "test.npy") for m in ("A", "B")])
    np.testing.assert_array_equal(f(X), np.load(run / "methods" / "ensemble" / "test.npy"))


def test_cli_reports_per_category_gains_and_losses(tmp_path, test_truth):
    run = additive_run(tmp_path / "run", test_truth, seed=14)
    cli = CliRunner().invoke(ensemble_cmd, [str(run), "--stacker", "linear"], env={"COLUMNS": "120"})
    assert cli.exit_code == 0, cli.output
    assert "Ensemble vs members per category, private board" in cli.output
    for text in ("− A", "− B", "SNVs", "motif_tiling", "distinct / SNV", "pair"):
        assert text in cli.output


def test_loaded_stacker_has_the_interface_harness_predict_uses(tmp_path, test_truth):
    run = additive_run(tmp_path / "run", test_truth, seed=15)
    ensemble_run(run, "linear", seq_features=True)
    f = load_stacker(run)
    table = read_table(REAL_DATA / TEST_FILE)
    X = np.column_stack([np.load(run / "methods" / m / "test.npy") for m in f.members])
    np.testing.assert_allclose(f.predict(X, table), np.load(run / "methods" / "ensemble" / "test.npy"), atol=1e-12, rtol=0)
    with pytest.raises(ValueError, match="uses sequence features"):
        f(X)
    assert f.features == ["A", "B", "gc_content", "length"] and "expression" in f.units


# --------------------------------------------------------------------------------------------
# Rows like the test sequences (length weights)
# --------------------------------------------------------------------------------------------

def length_artifact_run(root: Path, test_truth: np.ndarray, seed: int = 16) -> Path:
    """15 % of the training sequences are 100 nt and measure 2 units higher, as dev_train's non-110
    rows do (mean 11.0 vs 8.8); every test sequence is 110 nt. Member A sees the signal; member L
    sees the length shift and a little signal, as camformers did (issue 19)."""
    rng = np.random.default_rng(seed)
    short = rng.random(N_TRAIN) < 0.15
    seqs = ["".join(s[: 100 if k else 110]) for s, k in zip(rng.choice(list("ACGT"), size=(N_TRAIN, 110)), short)]
    s = rng.normal(size=N_TRAIN)
    y = s + 2.0 * short + 0.5 * rng.normal(size=N_TRAIN)
    z = (test_truth - test_truth.mean()) / test_truth.std()
    members = {"A": (s + 0.8 * rng.normal(size=N_TRAIN), z + 0.8 * rng.normal(size=len(z))),
               "L": (2.0 * short + 0.3 * s + 0.8 * rng.normal(size=N_TRAIN), 0.3 * z + 0.8 * rng.normal(size=len(z)))}
    return make_run(root, y, members, seqs=seqs, seed=seed)


def test_length_weights_match_the_test_lengths():
    w = length_weights(np.r_[np.full(8, 110), np.full(2, 100)], np.full(50, 110))
    np.testing.assert_allclose(w, np.r_[np.full(8, 10 / 8), np.zeros(2)])  # mean 1, absent length 0
    w = length_weights(np.r_[np.full(6, 110), np.full(4, 109)], np.r_[np.full(3, 110), np.full(1, 109)])
    np.testing.assert_allclose(w, np.r_[np.full(6, 0.75 / 0.6), np.full(4, 0.25 / 0.4)])
    assert length_weights(np.full(10, 110), np.full(7, 110)) is None  # no shift: every row 1
    with pytest.raises(ValueError, match="no training sequence has the length of a test sequence"):
        length_weights(np.full(10, 100), np.full(7, 110))


def test_weighted_oof_scores_are_those_of_the_weighted_rows():
    from scipy.stats import pearsonr, spearmanr

    rng = np.random.default_rng(17)
    y = rng.normal(size=500)
    pred = np.round(y + rng.normal(size=500), 1)  # ties
    keep = rng.random(500) < 0.7
    out = oof_score(pred, y, weights=keep.astype(float))
    assert out["weighted_pearson"] == pytest.approx(pearsonr(pred[keep], y[keep])[0], abs=1e-12)
    assert out["weighted_spearman"] == pytest.approx(spearmanr(pred[keep], y[keep])[0], abs=1e-12)
    assert out["pearson"] == pytest.approx(pearsonr(pred, y)[0], abs=1e-12)  # all rows, unweighted
    # an integer weight counts a row that many times
    k = rng.integers(0, 4, size=500)
    twice = oof_score(pred, y, weights=k.astype(float))
    rep = np.repeat(np.arange(500), k)
    assert twice["weighted_pearson"] == pytest.approx(pearsonr(pred[rep], y[rep])[0], abs=1e-12)
    assert twice["weighted_spearman"] == pytest.approx(spearmanr(pred[rep], y[rep])[0], abs=1e-12)


def test_weighted_stackers_fit_the_weighted_rows_and_pairs_stay_in_them():
    rng = np.random.default_rng(18)
    X = rng.normal(size=(400, 2))
    y = X @ [0.7, 0.2] + 0.1 * rng.normal(size=400)
    y[:100] += 5 * X[:100, 1]  # rows of weight 0 follow another rule
    w = np.r_[np.zeros(100), np.ones(300)]
    weighted = LinearStacker(2, ["A", "B"]).fit(X, y, sample_weight=w)
    subset = LinearStacker(2, ["A", "B"]).fit(X[100:], y[100:])
    np.testing.assert_allclose(weighted.coef_, subset.coef_, atol=1e-9)
    mean = MeanStacker(2, ["A", "B"]).fit(X, y, sample_weight=w)
    np.testing.assert_allclose(mean.std_, X[100:].std(axis=0), atol=1e-12)
    boosted = LightGBMStacker(2, ["A", "B"], n_jobs=1).fit(X, y, sample_weight=w)
    assert np.isfinite(boosted.predict(X)).all()
    pairs = resolution_pairs(X, np.arange(400) % 2, rows=w > 0)
    assert len(pairs) > 100 and (pairs >= 100).all()


def test_length_shift_is_weighted_away_in_the_stacker_and_the_criterion(tmp_path, test_truth):
    """Issue 19 (camformers): a member that learns a length effect no test sequence has won the OOF
    rows and the blend's largest weight, and the ensemble lost Pearson on the test board."""
    run = length_artifact_run(tmp_path / "run", test_truth)
    before = ensemble_run(run, "linear", match_test_lengths=False)
    after = ensemble_run(run, "linear")
    assert before.details["weight[L]"] > 0.4  # the length shift bought L its weight (0.52 vs A's 0.49)
    assert after.details["weight[L]"] < 0.5 * before.details["weight[L]"]
    assert after.boards["private"].pearson_score > before.boards["private"].pearson_score + 0.02
    assert after.boards["private"].spearman_score > before.boards["private"].spearman_score + 0.01
    # the criterion is computed on the 110-nt rows; the reported OOF r stays that of all rows
    assert after.member_oof["L"]["weighted_score"] < after.member_oof["L"]["score"] - 0.2
    assert "weighted_score" not in before.member_oof["L"]
    info = json.loads((run / "methods" / "ensemble" / "ensemble.json").read_text())
    assert "of lengths no test sequence has get 0" in info["oof"]["row_weights"]
    scores = json.loads((run / "methods" / "ensemble" / "scores.json").read_text())
    assert scores["oof_pearson"] == pytest.approx(after.stacker_oof["pearson"])
    # a user's stacker whose fit takes no weights is fitted unweighted, and the report says so
    backwards = ensemble_run(run, Backwards.for_members("A", "L"))
    assert backwards.fallback and any("takes no sample_weight" in n for n in backwards.notes)


def test_cli_length_weights_switch(tmp_path, test_truth):
    """``harness ensemble --no-length-weights`` fits the stacker on every row unweighted, as
    ``match_test_lengths=False`` does; the default weights them."""
    run = length_artifact_run(tmp_path / "run", test_truth)
    for flag, weighted in (("--no-length-weights", False), ("--length-weights", True)):
        cli = CliRunner().invoke(ensemble_cmd, [str(run), "--stacker", "linear", flag], env={"COLUMNS": "200"})
        assert cli.exit_code == 0, cli.output
        info = json.loads((run / "methods" / "ensemble" / "ensemble.json").read_text())
        assert ("row_weights" in info["oof"] and "get 0" in str(info["oof"]["row_weights"])) == weighted
