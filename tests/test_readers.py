"""Official-format readers and their error messages (harness.data.readers)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from harness.data import BadRows, DataError, read_public_ids, read_subset_ids, read_table

GOOD = "TGCATTTTTTTCACATCAAACCCGGGTT"


def _write(tmp_path, text, name="train.txt"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_read_table_good_rows(tmp_path):
    path = _write(tmp_path, f"{GOOD}\t11\n{GOOD[:-3]}N\t10.5\nacgt\t0\n")
    table = read_table(path)
    assert len(table) == 3
    assert table.y.dtype == np.float32 and table.y.tolist() == [11.0, 10.5, 0.0]
    assert table.lengths.tolist() == [len(GOOD), len(GOOD) - 2, 4]
    assert table.sequences() == [GOOD, GOOD[:-3] + "N", "ACGT"]
    assert table.meta["line"].tolist() == [1, 2, 3]
    assert table.source == str(path)


@pytest.mark.parametrize(
    ("row", "problem"),
    [
        (f"{GOOD[:5]}X{GOOD[6:]}\t3", r"sequence has 'X' at position 6, not a nucleotide letter"),
        (f"{GOOD}", r"missing expression"),
        (f"{GOOD}\thigh", r"expression 'high' is not a number"),
        (f"{GOOD}\t3\textra", r"expected 2 tab-separated columns .* found 3"),
        ("", r"empty line"),
        ("\t4", r"empty sequence"),
    ],
)
def test_read_table_bad_row_names_file_line_problem(tmp_path, row, problem):
    path = _write(tmp_path, f"{GOOD}\t1\n{GOOD}\t2\n{row}\n{GOOD}\t5\n")
    with pytest.raises(DataError, match=rf"{path}:3: {problem}") as info:
        read_table(path)
    assert "--skip-bad-rows" in str(info.value)


def test_read_table_every_row_has_three_columns(tmp_path):
    path = _write(tmp_path, f"{GOOD}\t1\tx\n{GOOD}\t2\ty\n")
    with pytest.raises(DataError, match=rf"{path}:1: expected 2 tab-separated columns"):
        read_table(path)


def test_read_table_missing_and_empty_files(tmp_path):
    with pytest.raises(DataError, match=r"nope\.txt: no such file"):
        read_table(tmp_path / "nope.txt")
    with pytest.raises(DataError, match=r"empty\.txt: the file is empty"):
        read_table(_write(tmp_path, "", "empty.txt"))


def test_read_table_lists_at_most_five_bad_rows(tmp_path):
    path = _write(tmp_path, f"{GOOD}\t1\n" + "".join(f"{GOOD}\tbad{i}\n" for i in range(7)))
    with pytest.raises(DataError) as info:
        read_table(path)
    message = str(info.value)
    assert f"{path}:2:" in message and f"{path}:6:" in message and f"{path}:7:" not in message
    assert "and 2 more bad rows" in message


def test_skip_bad_rows_counts_by_problem(tmp_path):
    rows = [f"{GOOD}\t1", f"{GOOD}Z\t2", f"{GOOD}", f"{GOOD}\tx", f"{GOOD}\t4", "", "ACGU\t3", f"{GOOD}\t6"]
    path = _write(tmp_path, "\n".join(rows) + "\n")
    bad = BadRows()
    table = read_table(path, skip_bad_rows=True, bad=bad)
    assert len(table) == 3 and table.y.tolist() == [1.0, 4.0, 6.0]
    assert table.meta["line"].tolist() == [1, 5, 8]
    assert dict(bad.counts) == {"non-ACGTN characters": 2, "missing expression": 1, "non-numeric expression": 1, "empty line": 1}
    assert bad.total == 5 and table.meta["bad_rows"] is bad
    assert bad.examples[0] == f"{path}:2: sequence has 'Z' at position {len(GOOD) + 1}, not a nucleotide letter"
    assert len(bad.examples) == 5


def test_skip_bad_rows_with_wrong_column_count(tmp_path):
    path = _write(tmp_path, f"{GOOD}\t1\n{GOOD}\t2\t9\n{GOOD}\t3\n")
    table = read_table(path, skip_bad_rows=True)
    assert table.y.tolist() == [1.0, 3.0]
    assert dict(table.meta["bad_rows"].counts) == {"wrong column count": 1}


def test_skip_bad_rows_all_bad(tmp_path):
    with pytest.raises(DataError, match="every row is bad"):
        read_table(_write(tmp_path, "ACGT\tx\nACGT\ty\n"), skip_bad_rows=True)


def test_real_dev_train(real_data):
    table = read_table(real_data / "dev_train.txt")
    assert len(table) == 16370
    assert table.y.min() == 0 and table.y.max() == 17
    assert np.count_nonzero(table.lengths == 110) == 15219
    assert (table.lengths.min(), table.lengths.max()) == (87, 135)
    assert table.meta["bad_rows"].total == 0
    # every training row carries the construct's flanks
    seqs = table.sequences()
    assert all(s.startswith("TGCATTTTTTTCACATC") for s in seqs[:200])


def test_read_subset_ids_single_and_pairs(tmp_path):
    single = _write(tmp_path, ",tag,sequence,pos,exp\n0,a,ACGT,5,\n1,b,ACGA,2,\n", "single.csv")
    assert read_subset_ids(single).tolist() == [5, 2]
    pairs = _write(tmp_path, "alt_pos,ref_pos\n3,4\n7,4\n", "pairs.csv")
    ids = read_subset_ids(pairs)
    assert ids.dtype == np.int64 and ids.tolist() == [[3, 4], [7, 4]]


def test_read_subset_ids_errors(tmp_path):
    with pytest.raises(DataError, match="expected a 'pos' column"):
        read_subset_ids(_write(tmp_path, "id,sequence\n1,ACGT\n", "cols.csv"))
    with pytest.raises(DataError, match=r"nonint\.csv:3: missing or non-integer id"):
        read_subset_ids(_write(tmp_path, "pos\n1\nx\n", "nonint.csv"))
    with pytest.raises(DataError, match="no such file"):
        read_subset_ids(tmp_path / "absent.csv")


def test_read_public_ids_both_key_styles(tmp_path):
    single = _write(tmp_path, json.dumps({"12": 0.5, "3": -1.0}), "single.json")
    ids, truth = read_public_ids(single)
    assert ids.tolist() == [12, 3] and truth.tolist() == [0.5, -1.0]
    pairs = _write(tmp_path, json.dumps({"5,6": [0.1, 0.2], "7,6": [0.3, 0.2]}), "pairs.json")
    ids, truth = read_public_ids(pairs)
    assert ids.shape == (2, 2) and ids.tolist() == [[5, 6], [7, 6]]
    assert truth.tolist() == [[0.1, 0.2], [0.3, 0.2]]


def test_read_public_ids_errors(tmp_path):
    with pytest.raises(DataError, match=r"broken\.json:1: not valid JSON"):
        read_public_ids(_write(tmp_path, '{"1": ', "broken.json"))
    with pytest.raises(DataError, match="non-empty JSON object"):
        read_public_ids(_write(tmp_path, "[1, 2]", "list.json"))
    with pytest.raises(DataError, match="keys must be test indices"):
        read_public_ids(_write(tmp_path, '{"a": 1}', "keys.json"))
    with pytest.raises(DataError, match="no such file"):
        read_public_ids(tmp_path / "absent.json")
