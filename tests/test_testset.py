"""The test set loader on the real challenge layout and on small hand-made directories."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from harness.data import CATEGORIES, DataError, load_test_set, read_public_ids, resolve_data_dir
from harness.data.testset import PUBLIC_DIR, SUBSET_DIR, TEST_FILE

#: distinct members (the official script reads each category as a set; rows: yeast 964,
#: challenging 1,981, motif_perturbation 3,527, motif_tiling 2,653). No SNVs without a pair file.
REAL_SIZES = {
    "high": 968, "low": 997, "yeast": 578, "random": 6349, "challenging": 1953,
    "motif_perturbation": 3287, "motif_tiling": 2624,
}
REAL_PUBLIC = {
    "high": 96, "low": 99, "yeast": 208, "random": 733, "challenging": 195,
    "SNVs": 4670, "motif_perturbation": 328, "motif_tiling": 263,
}


@pytest.fixture(scope="module")
def real_tests(real_data):
    return load_test_set(real_data)


def test_real_test_set_rows_and_categories(real_tests, real_data):
    assert len(real_tests) == 71103
    assert real_tests.table.y.dtype == np.float32
    assert (real_tests.table.lengths == 110).all()
    assert {c: len(ids) for c, ids in real_tests.categories.items()} == REAL_SIZES
    assert list(real_tests.categories) == [c for c in CATEGORIES if c != "SNVs"]
    for cat in ("high", "low", "yeast", "random", "challenging"):
        ids = real_tests.categories[cat]
        assert ids.ndim == 1 and (np.diff(ids) > 0).all()  # sorted, distinct
    for cat in ("motif_perturbation", "motif_tiling"):
        pairs = real_tests.categories[cat]
        assert pairs.shape[1] == 2 and len(np.unique(pairs, axis=0)) == len(pairs)
    assert not real_tests.simulated
    assert real_tests.directory == real_data
    assert any("motif_perturbation_seqs.csv: 3,527 rows, 3,287 distinct pairs" in n for n in real_tests.notes)
    assert any("yeast_seqs.csv: 964 rows, 578 distinct ids" in n for n in real_tests.notes)


def test_real_truth_is_read_as_float64(real_tests, real_data):
    with open(real_data / TEST_FILE) as fh:
        expected = np.array([float(line.split("\t")[1]) for line in fh])
    assert real_tests.truth.dtype == np.float64
    np.testing.assert_array_equal(real_tests.truth, expected)  # as the official script reads it
    np.testing.assert_array_equal(real_tests.expression, expected)
    np.testing.assert_array_equal(real_tests.truth.astype(np.float32), real_tests.table.y)


def test_real_public_board(real_tests, real_data):
    assert {c: len(ids) for c, ids in real_tests.public.items()} == REAL_PUBLIC
    public_ids = real_tests.public_ids
    assert len(public_ids) == 9045 and (np.diff(public_ids) > 0).all()
    ids, truth = read_public_ids(real_data / PUBLIC_DIR / "ground.json")
    assert np.array_equal(np.sort(ids), public_ids)
    np.testing.assert_allclose(real_tests.table.y[ids], truth, atol=1e-6)  # public truth == test file


def test_real_without_snv_pairs(real_tests):
    """The public SNV pairs are not the SNV category: only the public board has SNVs."""
    assert real_tests.snv_source.startswith("public leaderboard SNV pairs only")
    assert "4670 pairs" in real_tests.snv_source and "private and full boards have no SNV category" in real_tests.snv_source
    assert "SNVs" not in real_tests.categories and len(real_tests.public["SNVs"]) == 4670


def test_real_snv_given_file(real_data):
    snv_file = real_data / "reconstructed" / "all_SNVs_seqs.csv"
    tests = load_test_set(real_data, snv_pairs=snv_file)
    pairs = tests.categories["SNVs"]
    assert pairs.shape == (44795, 2)
    assert tests.snv_source == f"given file ({snv_file}), 44795 pairs"
    # reconstructed pairs are single-nucleotide neighbours
    sample = pairs[:500]
    diff = (tests.table.codes[sample[:, 0]] != tests.table.codes[sample[:, 1]]).sum(axis=1)
    assert (diff == 1).all()


def _mini_dir(tmp_path, n=6):
    rng = np.random.default_rng(0)
    seqs = ["".join(rng.choice(list("ACGT"), 20)) for _ in range(n)]
    (tmp_path / TEST_FILE).write_text("".join(f"{s}\t{i / 10}\n" for i, s in enumerate(seqs)))
    (tmp_path / SUBSET_DIR).mkdir()
    (tmp_path / SUBSET_DIR / "high_exp_seqs.csv").write_text(",tag,sequence,pos,exp\n0,a,A,1,\n1,b,C,4,\n")
    (tmp_path / SUBSET_DIR / "motif_tiling_seqs.csv").write_text("alt_pos,ref_pos\n2,3\n5,3\n")
    (tmp_path / PUBLIC_DIR).mkdir()
    (tmp_path / PUBLIC_DIR / "high_exp_indices.json").write_text(json.dumps({"4": 0.4}))
    (tmp_path / PUBLIC_DIR / "SNVs_exp_indices.json").write_text(json.dumps({"0,1": [0.0, 0.1]}))
    return tmp_path


def test_partial_layout(tmp_path):
    tests = load_test_set(_mini_dir(tmp_path))
    assert len(tests) == 6
    assert tests.categories["high"].tolist() == [1, 4]
    assert tests.categories["motif_tiling"].tolist() == [[2, 3], [5, 3]]
    assert "SNVs" not in tests.categories  # public pairs are not the whole category
    assert "public leaderboard SNV pairs only" in tests.snv_source
    assert set(tests.public) == {"high", "SNVs"}
    assert tests.public_ids.tolist() == [0, 1, 4]
    np.testing.assert_allclose(tests.table.y, np.arange(6) / 10, rtol=1e-6)


def test_duplicate_rows_count_once(tmp_path):
    root = _mini_dir(tmp_path)
    (root / SUBSET_DIR / "high_exp_seqs.csv").write_text("pos\n4\n1\n4\n")
    (root / SUBSET_DIR / "motif_tiling_seqs.csv").write_text("alt_pos,ref_pos\n5,3\n2,3\n5,3\n3,5\n")
    pairs = root / "pairs.csv"
    pairs.write_text("alt_pos,ref_pos\n0,1\n0,1\n")
    tests = load_test_set(root, snv_pairs=pairs)
    assert tests.categories["high"].tolist() == [1, 4]
    assert tests.categories["motif_tiling"].tolist() == [[2, 3], [3, 5], [5, 3]]  # orientation kept
    assert tests.categories["SNVs"].tolist() == [[0, 1]] and tests.snv_source.endswith(", 1 pairs")
    assert len(tests.notes) == 3 and "motif_tiling_seqs.csv: 4 rows, 3 distinct pairs" in tests.notes[1]


def test_no_public_dir_and_no_snvs(tmp_path):
    root = _mini_dir(tmp_path)
    shutil.rmtree(root / PUBLIC_DIR)
    tests = load_test_set(root)
    assert tests.public is None and tests.public_ids is None
    assert "SNVs" not in tests.categories and tests.snv_source == "none"


def test_load_errors(tmp_path):
    with pytest.raises(DataError, match="no test file"):
        load_test_set(tmp_path)
    root = _mini_dir(tmp_path)
    (root / SUBSET_DIR / "low_exp_seqs.csv").write_text("pos\n0\n6\n")
    with pytest.raises(DataError, match=r"low_exp_seqs\.csv: test index out of range 0\.\.5"):
        load_test_set(root)
    (root / SUBSET_DIR / "low_exp_seqs.csv").unlink()
    bad_pairs = root / "pairs.csv"
    bad_pairs.write_text("pos\n1\n")
    with pytest.raises(DataError, match="need 'alt_pos' and 'ref_pos'"):
        load_test_set(root, snv_pairs=bad_pairs)
    with open(root / TEST_FILE, "a") as fh:
        fh.write("ACGTQ\t1\n")
    with pytest.raises(DataError, match=rf"{TEST_FILE}:7: sequence has 'Q'"):
        load_test_set(root)


def test_resolve_data_dir(monkeypatch, tmp_path):
    monkeypatch.delenv("HARNESS_DATA", raising=False)
    assert resolve_data_dir(None) is None
    assert resolve_data_dir(tmp_path) == tmp_path
    monkeypatch.setenv("HARNESS_DATA", str(tmp_path / "env"))
    assert resolve_data_dir(None) == tmp_path / "env"
    monkeypatch.setenv("HARNESS_DATA", "")
    assert resolve_data_dir(None) is None
