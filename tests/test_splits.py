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


@pytest.mark.parametrize("kwargs, message", [({"kind": "loo"}, "holdout' or 'kfold"),
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
