"""The internal validation split (harness.holdout): each plug-in's documented rule, exactly."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.model_selection import train_test_split

from harness.holdout import holdout_size, holdout_split


@pytest.mark.parametrize("n,fraction,seed", [(30, 0.1, 0), (1000, 0.1, 42), (57, 0.05, 7), (2, 0.1, 1)])
def test_sklearn_generator_is_train_test_split(n, fraction, seed):
    """Camformers / BHI: the team's ``train_test_split(random_state=seed)``, indices sorted."""
    tr, va = holdout_split(n, fraction, seed, generator="sklearn")
    ref_tr, ref_va = train_test_split(np.arange(n), test_size=fraction, random_state=seed, shuffle=True)
    np.testing.assert_array_equal(tr, np.sort(ref_tr))
    np.testing.assert_array_equal(va, np.sort(ref_va))
    assert tr.dtype == np.int64 and len(np.intersect1d(tr, va)) == 0 and len(tr) + len(va) == n


def test_sklearn_generator_stratifies_and_falls_back_to_plain():
    classes = np.repeat(np.arange(5), 40)
    tr, va = holdout_split(len(classes), 0.1, 3, generator="sklearn", stratify=classes)
    assert np.bincount(classes[va]).tolist() == [4] * 5  # stratified: 10 % of each class
    ref = train_test_split(np.arange(200), test_size=0.1, random_state=3, shuffle=True, stratify=classes)[1]
    np.testing.assert_array_equal(va, np.sort(ref))
    lonely = classes.copy()
    lonely[0] = 9  # a class with one row: the plain split
    plain = holdout_split(len(classes), 0.1, 3, generator="sklearn", stratify=lonely)
    np.testing.assert_array_equal(plain[1], holdout_split(len(classes), 0.1, 3, generator="sklearn")[1])
    few = np.repeat(np.arange(18), 2)  # 4 validation rows < 18 classes: sklearn refuses, plain split
    np.testing.assert_array_equal(holdout_split(36, 0.1, 0, stratify=few)[1], holdout_split(36, 0.1, 0)[1])


def test_numpy_generator_counts_fractions_and_rounding():
    """HighSchoolers: ``valid_size`` rows (or ``ceil`` of a fraction) first of a default_rng
    permutation; k-mer baselines: ``round`` (at least 1)."""
    perm = np.random.default_rng(5).permutation(100)
    tr, va = holdout_split(100, 7, 5, generator="numpy")
    np.testing.assert_array_equal(va, np.sort(perm[:7]))
    np.testing.assert_array_equal(tr, np.sort(perm[7:]))
    assert len(holdout_split(100, 0.101, 5, generator="numpy", rounding="ceil")[1]) == 11
    assert len(holdout_split(100, 0.101, 5, generator="numpy", rounding="round")[1]) == 10
    assert holdout_size(3, 0.01, "round") == 1 and holdout_size(3, 0.01, "ceil") == 1
    assert holdout_size(10, 0.25, "ceil") == math.ceil(2.5) and holdout_size(10, 4) == 4


def test_split_refuses_too_few_rows_naming_the_caller():
    with pytest.raises(ValueError, match=r"highschoolers.fit: a hold-out of 2 of 3 rows"):
        holdout_split(3, 2, 0, generator="numpy", min_rows=2, who="highschoolers.fit")
    with pytest.raises(ValueError, match=r"kircherlab: 1 rows cannot be split into training and validation"):
        holdout_split(1, 0.1, 0, who="kircherlab")
    with pytest.raises(ValueError, match="fraction must be in"):
        holdout_split(10, 1.5, 0, generator="sklearn")
    with pytest.raises(ValueError, match="must be > 0"):
        holdout_size(10, 0.0)
    with pytest.raises(ValueError, match="generator"):
        holdout_split(10, 0.1, 0, generator="torch")


def _rows(n: int, seed: int = 0):
    from harness.data.table import SeqTable

    rng = np.random.default_rng(seed)
    seqs = ["".join(rng.choice(list("ACGT"), 110)) for _ in range(n)]
    return SeqTable.from_strings(seqs, np.arange(n, dtype=np.float32) / 10)  # y identifies the row


def test_plug_ins_hold_out_their_documented_rows():
    """prepare_fit of each PyTorch plug-in holds out exactly its team's / documented rows."""
    import dataclasses

    from submissions.bhi import BHI, BHIConfig
    from submissions.camformers import Camformers
    from submissions.highschoolers import HighSchoolers, HighSchoolersConfig

    train = _rows(60)
    ref = np.sort(train_test_split(np.arange(60), test_size=0.1, random_state=4, shuffle=True)[1])
    data = Camformers(seed=4, device="cpu").prepare_fit(train, None)
    np.testing.assert_array_equal(np.round(data.valid_y * 10).astype(int), ref)  # §1.3: 10 %, the seed
    data = BHI(dataclasses.replace(BHIConfig(), valid_fraction=0.1), seed=4, device="cpu").prepare_fit(train, None)
    assert len(data.valid_y) == len(ref) and len(data.train_y) == 60 - len(ref)
    hs = HighSchoolers(dataclasses.replace(HighSchoolersConfig(), valid_size=0.15), seed=4, device="cpu")
    data = hs.prepare_fit(train, None)
    expected = np.sort(np.random.default_rng(4).permutation(60)[:9])  # ceil(0.15 * 60) = 9
    np.testing.assert_array_equal(np.round(data.valid_y * 10).astype(int), expected)
