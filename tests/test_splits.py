import numpy as np
import pytest

from harness.data import SeqTable
from harness.splits import SplitSpec, fingerprint, load_or_create, make_assignment


def test_kfold_partitions_rows_evenly_and_reproducibly():
    a = make_assignment(1003, SplitSpec("kfold", folds=5, seed=3))
    assert set(np.unique(a)) == {0, 1, 2, 3, 4}
    counts = np.bincount(a)
    assert counts.max() - counts.min() <= 1
    np.testing.assert_array_equal(a, make_assignment(1003, SplitSpec("kfold", folds=5, seed=3)))
    assert not np.array_equal(a, make_assignment(1003, SplitSpec("kfold", folds=5, seed=4)))


def test_holdout_fraction():
    a = make_assignment(1000, SplitSpec("holdout", holdout_fraction=0.1, seed=0))
    assert (a == 0).sum() == 100 and (a == -1).sum() == 900


@pytest.mark.parametrize("kwargs, message", [({"kind": "loo"}, "one of 'holdout', 'kfold', 'none', got 'loo'"),
                                             ({"kind": "kfold", "folds": 1}, "at least 2 folds"),
                                             ({"holdout_fraction": 1.5}, "fraction")])
def test_bad_specs(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SplitSpec(**kwargs)


def test_manifest_is_reused_and_guards_the_data(tmp_path):
    table = SeqTable.from_strings(["ACGT", "GGCC", "ATAT", "CCCA"] * 5, np.arange(20))
    first = load_or_create(tmp_path, table, SplitSpec("kfold", folds=2))
    again = load_or_create(tmp_path, table, SplitSpec("kfold", folds=2))
    np.testing.assert_array_equal(first, again)
    other = SeqTable.from_strings(["ACGT", "GGCC", "ATAT", "CCCA"] * 5, np.arange(20) + 1)
    assert fingerprint(other) != fingerprint(table)
    with pytest.raises(ValueError, match="train_fingerprint"):
        load_or_create(tmp_path, other, SplitSpec("kfold", folds=2))


def test_none_holds_out_nothing_and_fits_once():
    spec = SplitSpec("none", seed=3)
    a = make_assignment(1000, spec)
    assert a.dtype == np.int16 and (a == -1).all()  # fold 0 trains on every row and predicts none
    assert spec.n_folds == 1 and not spec.holds_out
    assert SplitSpec("holdout").holds_out and SplitSpec("kfold").holds_out


def test_saved_assignment_is_checked_before_it_is_trusted(tmp_path):
    table = SeqTable.from_strings(["ACGT", "GGCC", "ATAT", "CCCA"] * 5, np.arange(20))
    spec = SplitSpec("kfold", folds=2)
    load_or_create(tmp_path, table, spec)
    npy = tmp_path / "split.npy"
    for bad, message in [(np.zeros(19, dtype=np.int16), r"shape \(19,\)"),
                         (np.full(20, 2, dtype=np.int16), r"fold numbers 2..2 outside -1..1"),
                         (np.zeros(20), "integers"),
                         (np.array([{"planted": 1}] * 20, dtype=object), "not a readable split assignment")]:
        np.save(npy, bad, allow_pickle=True)
        with pytest.raises(ValueError, match=f"split.npy: .*{message}"):
            load_or_create(tmp_path, table, spec)
    # a 'none' run's manifest must say that no row is held out
    none_dir = tmp_path / "none"
    none_dir.mkdir()
    assert (load_or_create(none_dir, table, SplitSpec("none")) == -1).all()
    np.save(none_dir / "split.npy", np.zeros(20, dtype=np.int16))
    with pytest.raises(ValueError, match=r"outside -1..-1 of a none split"):
        load_or_create(none_dir, table, SplitSpec("none"))
