"""Bootstrap intervals of the official score (harness.scoring.bootstrap): the vectorised resamples
against a plain loop, determinism, interval behaviour, paired differences, board rules."""

from __future__ import annotations

import numpy as np
import pytest

from harness.data import load_test_set
from harness.scoring import board_ids, bootstrap_board, score
from harness.scoring.bootstrap import (
    category_values,
    percentile_interval,
    resample_correlations,
    resample_indices,
)
from harness.scoring.scorer import WEIGHTS, board_members, pearson, spearman


@pytest.fixture(scope="module")
def sim_test(simulated_dir):
    return load_test_set(simulated_dir)


def noisy(truth: np.ndarray, scale: float, seed: int) -> np.ndarray:
    return truth + scale * truth.std() * np.random.default_rng(seed).normal(size=len(truth))


def test_vectorised_resamples_equal_a_plain_loop_over_the_same_draws():
    """Every resampled r and ρ equals scorer.pearson / scorer.spearman of the resampled values (the
    draws of resample_indices): ties in both sides, a constant method (0 by convention), a
    two-valued one, values at 1e200, and several chunks of resamples."""
    rng = np.random.default_rng(1)
    n = 257
    truth = np.round(rng.normal(size=n), 1)  # many ties
    pred = np.vstack([truth + rng.normal(size=n),
                      np.round(truth + rng.normal(size=n)),  # ties
                      np.full(n, 3.0),                       # constant: r = ρ = 0
                      rng.integers(0, 2, n) * 1.0,           # two values
                      1e200 * (truth + rng.normal(size=n))])
    from harness.scoring import bootstrap

    chunk = bootstrap.CHUNK_ELEMENTS
    bootstrap.CHUNK_ELEMENTS = 7 * n  # 7 resamples a chunk: 40 resamples take 6 chunks
    try:
        r, rho = resample_correlations(pred, truth, 40, seed=7, category="SNVs")
    finally:
        bootstrap.CHUNK_ELEMENTS = chunk
    assert r.shape == rho.shape == (5, 40)
    for b in range(40):
        idx = resample_indices(7, "SNVs", b, n)
        for k in range(len(pred)):
            assert r[k, b] == pytest.approx(pearson(pred[k, idx], truth[idx]), abs=1e-12)
            assert rho[k, b] == pytest.approx(spearman(pred[k, idx], truth[idx]), abs=1e-12)
    assert (r[2] == 0).all() and (rho[2] == 0).all()
    # a 1-D prediction gives 1-D draws, the same as its row (ρ bit for bit: exact rank sums)
    r1, rho1 = resample_correlations(pred[1], truth, 40, seed=7, category="SNVs")
    np.testing.assert_allclose(r1, r[1], rtol=0, atol=1e-14)
    np.testing.assert_array_equal(rho1, rho[1])


def test_draws_are_seeded_and_each_resample_has_its_own_stream():
    rng = np.random.default_rng(2)
    truth = rng.normal(size=500)
    pred = truth + rng.normal(size=500)
    a = resample_correlations(pred, truth, 30, seed=3, category="high")
    b = resample_correlations(pred, truth, 30, seed=3, category="high")
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    other_seed = resample_correlations(pred, truth, 30, seed=4, category="high")[0]
    other_category = resample_correlations(pred, truth, 30, seed=3, category="low")[0]
    assert not np.array_equal(a[0], other_seed) and not np.array_equal(a[0], other_category)
    # resample b does not depend on how many are drawn: 30 resamples are the first 30 of 80
    np.testing.assert_array_equal(resample_correlations(pred, truth, 80, seed=3, category="high")[0][:30], a[0])
    idx = resample_indices(3, "high", 5, 500)
    assert idx.shape == (500,) and idx.min() >= 0 and idx.max() < 500
    with pytest.raises(ValueError, match="unknown category"):
        resample_indices(3, "nope", 0, 10)
    with pytest.raises(ValueError, match="non-negative"):
        resample_indices(-1, "all", 0, 10)
    with pytest.raises(ValueError, match="at least 2 members"):
        resample_correlations(pred[:1], truth[:1], 5)
    with pytest.raises(ValueError, match="finite"):
        resample_correlations(np.r_[np.nan, pred[1:]], truth, 5)


def test_interval_width_shrinks_with_n():
    """Same correlation (~0.6), 25x the members: the interval narrows about 5x (1/sqrt(n))."""
    widths = {}
    for n in (200, 5000):
        rng = np.random.default_rng(n)
        truth = rng.normal(size=n)
        pred = truth + 1.3 * rng.normal(size=n)
        r, rho = resample_correlations(pred, truth, 300, seed=0, category="all")
        widths[n] = [float(np.subtract(*percentile_interval(x)[::-1])) for x in (r, rho)]
    for small, large in zip(widths[200], widths[5000]):
        assert 3 < small / large < 8


def test_board_intervals_contain_the_scores_and_are_deterministic(sim_test):
    truth = sim_test.expression
    preds = {"good": noisy(truth, 0.3, 1), "poor": noisy(truth, 1.5, 2)}
    boot = bootstrap_board(preds, sim_test, "private", 200, seed=11)
    again = bootstrap_board(preds, sim_test, "private", 200, seed=11)
    np.testing.assert_array_equal(boot.pearson_score, again.pearson_score)
    np.testing.assert_array_equal(boot.spearman["SNVs"], again.spearman["SNVs"])
    assert not np.array_equal(boot.pearson_score, bootstrap_board(preds, sim_test, "private", 200, seed=12).pearson_score)
    _, cats = board_members(sim_test, "private")
    assert list(boot.n) == [c for c in WEIGHTS if c == "all" or len(cats.get(c, ())) >= 2]
    assert boot.n["SNVs"] == len(cats["SNVs"]) and boot.missing == []
    for name, pred in preds.items():
        point = score(pred, sim_test, "private")
        for stat in ("pearson", "spearman"):
            lo, hi = boot.interval(name, stat)
            assert lo < getattr(point, f"{stat}_score") < hi
            for cat, c in point.categories.items():
                lo, hi = boot.interval(name, stat, cat)
                assert lo <= getattr(c, stat) <= hi, (name, stat, cat)
        # each draw of the score is the weighted sum of that draw's category statistics
        k = boot.names.index(name)
        want = sum(WEIGHTS[c] * boot.pearson[c][k] ** 2 for c in boot.n) / 4.65
        np.testing.assert_allclose(boot.pearson_score[k], want, rtol=1e-12)
    with pytest.raises(KeyError, match="not in this bootstrap"):
        boot.interval("absent", "pearson")


def test_paired_difference_uses_the_same_draws(sim_test):
    truth = sim_test.expression
    a = noisy(truth, 0.5, 3)
    close = a + 0.02 * truth.std() * np.random.default_rng(4).normal(size=len(truth))  # nearly a
    far = noisy(truth, 2.0, 5)
    boot = bootstrap_board({"a": a, "close": close, "far": far}, sim_test, "full", 300, seed=0)
    # the difference is the percentile interval of the per-draw differences
    lo, hi = boot.difference("a", "far", "spearman")
    want = percentile_interval(boot.draws("a", "spearman") - boot.draws("far", "spearman"))
    assert (lo, hi) == (float(want[0]), float(want[1]))
    assert lo > 0  # a is clearly better: the interval excludes 0
    assert boot.difference("a", "a", "pearson") == (0.0, 0.0)
    # paired: two nearly identical methods differ far less than their own intervals are wide
    d_lo, d_hi = boot.difference("a", "close", "pearson")
    a_lo, a_hi = boot.interval("a", "pearson")
    c_lo, c_hi = boot.interval("close", "pearson")
    assert d_hi - d_lo < 0.2 * (a_hi - a_lo)
    assert a_lo < c_hi and c_lo < a_hi  # the unpaired intervals overlap


def test_board_rules_come_from_the_scorer(sim_test):
    """The values resampled are those score() correlates: members of board_members, alt − ref for
    pairs; a NaN prediction the board reads is refused, one off the board is not."""
    truth = sim_test.expression
    pred = noisy(truth, 0.5, 6)
    values = category_values(pred, sim_test, "private")
    point = score(pred, sim_test, "private")
    assert list(values) == list(point.categories)
    for cat, (p, t) in values.items():
        assert len(t) == point.categories[cat].n
        assert pearson(p, t) == pytest.approx(point.categories[cat].pearson, abs=1e-12)
        assert spearman(p, t) == pytest.approx(point.categories[cat].spearman, abs=1e-12)
    alt, ref = board_members(sim_test, "private")[1]["SNVs"][0]
    np.testing.assert_array_equal(values["SNVs"][1][0], truth[alt] - truth[ref])
    off = np.setdiff1d(np.arange(len(truth)), board_ids(sim_test, "public"))
    public_only = pred.copy()
    public_only[off] = np.nan
    bootstrap_board({"p": public_only}, sim_test, "public", 5)  # NaN off the public board: fine
    with pytest.raises(ValueError, match="on the private board are missing or not finite"):
        bootstrap_board({"p": public_only}, sim_test, "private", 5)
