"""Official-format readers and their error messages (harness.data.readers)."""

from __future__ import annotations

import gzip
import json
import lzma
import warnings

import numpy as np
import pytest

from harness.data import BadRows, DataError, read_public_ids, read_subset_ids, read_table, readers
from harness.data.readers import MAX_LENGTH, DataWarning, outliers

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
        (f"{GOOD}\t1e39", r"expression '1e39' overflows float32 \(\|value\| > 3.4e38\)"),
        (f"{GOOD}\t-3.5e38", r"expression '-3.5e38' overflows float32"),
        ("A" * 1001 + "\t4", r"sequence of 1,001 nt exceeds the limit of 1,000 nt \(max_length\)"),
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


def _both_readers(path, **kw):
    """read_table through the byte-level reader and through the string reader (must agree)."""
    out = []
    for fast in (True, False):
        old = readers._FAST
        readers._FAST = fast
        try:
            out.append(read_table(path, **kw))
        finally:
            readers._FAST = old
    return out


def test_float32_overflow_is_a_skippable_bad_row(tmp_path):
    # regression: 1e39 used to pass the reader and become inf in y, failing later without a line
    path = _write(tmp_path, f"{GOOD}\t1\n{GOOD}\t1e39\n{GOOD}\t2.5\n{GOOD}\t-1E+40\n{GOOD}\t3.4e38\n")
    for reader in (True, False):
        old = readers._FAST
        readers._FAST = reader
        try:
            with pytest.raises(DataError, match=rf"{path}:2: expression '1e39' overflows float32") as info:
                read_table(path)
            assert f"{path}:4: expression '-1E+40' overflows float32" in str(info.value)
        finally:
            readers._FAST = old
    with pytest.warns(DataWarning, match=rf"{path}:5: 3.4e\+38"):  # kept, but far outside the range
        tables = _both_readers(path, skip_bad_rows=True)
    for table in tables:
        assert np.isfinite(table.y).all()
        assert table.y.tolist()[:2] == [1.0, 2.5] and table.meta["line"].tolist() == [1, 3, 5]
        assert dict(table.meta["bad_rows"].counts) == {"expression out of range": 2}


def test_sequence_over_max_length_is_a_bad_row_and_does_not_widen_codes(tmp_path):
    long_row = "ACGT" * 25_000  # one 100 kb line
    path = _write(tmp_path, f"{GOOD}\t1\n{long_row}\t2\n{GOOD[:10]}\t3\n")
    with pytest.raises(DataError, match=rf"{path}:2: sequence of 100,000 nt exceeds the limit of {MAX_LENGTH:,} nt"):
        read_table(path)
    for table in _both_readers(path, skip_bad_rows=True):
        assert table.codes.shape == (2, len(GOOD))  # the matrix is as wide as the kept rows only
        assert table.meta["line"].tolist() == [1, 3]
        assert dict(table.meta["bad_rows"].counts) == {"sequence too long": 1}
    for table in _both_readers(path, max_length=100_000):  # the limit is overridable
        assert table.lengths.tolist() == [len(GOOD), 100_000, 10]
    with pytest.raises(DataError, match=rf"{path}:1: sequence of {len(GOOD)} nt exceeds the limit of 20 nt"):
        read_table(path, max_length=20)
    with pytest.raises(ValueError, match="max_length"):
        read_table(path, max_length=0)


def test_gzip_file_is_detected_by_magic_bytes(tmp_path):
    text = "".join(f"{GOOD[: 20 + i % 9]}\t{i % 18}.25\n" for i in range(3000))
    plain = _write(tmp_path, text, "plain.txt")
    packed = tmp_path / "train.txt"  # no .gz suffix: detection is by content
    packed.write_bytes(gzip.compress(text.encode(), mtime=0))
    assert b"\r" not in packed.read_bytes()  # regression: without a 0x0D byte this used to fail as bad rows
    reference = read_table(plain)
    for table in _both_readers(packed):
        np.testing.assert_array_equal(table.codes, reference.codes)
        assert table.y.tobytes() == reference.y.tobytes() and table.source == str(packed)
    # bad rows in compressed data are named by the compressed file's path and line
    bad = tmp_path / "bad.txt.gz"
    bad.write_bytes(gzip.compress(f"{GOOD}\t1\n{GOOD}\tx\n".encode()))
    with pytest.raises(DataError, match=rf"{bad}:2: expression 'x' is not a number"):
        read_table(bad)


def test_plain_file_named_gz_is_read_as_plain(tmp_path):
    # regression: pandas guessed gzip from the name of a plain CRLF file and failed with a traceback
    path = tmp_path / "train.txt.gz"
    path.write_bytes(f"{GOOD}\t1\r\n{GOOD}\t2\r\n".encode())
    assert read_table(path).y.tolist() == [1.0, 2.0]


def test_broken_gzip_and_other_compressions_are_refused(tmp_path):
    data = gzip.compress(f"{GOOD}\t1\n".encode() * 500)
    truncated = tmp_path / "cut.txt"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=rf"{truncated}: gzip data cannot be decompressed"):
        read_table(truncated)
    empty = tmp_path / "empty.gz"
    empty.write_bytes(gzip.compress(b""))
    with pytest.raises(DataError, match=rf"{empty}: the file is empty \(after gzip decompression\)"):
        read_table(empty)
    xz = tmp_path / "train.xz"
    xz.write_bytes(lzma.compress(f"{GOOD}\t1\n".encode()))
    with pytest.raises(DataError, match=rf"{xz}: xz-compressed data; decompress it first"):
        read_table(xz)


def test_outliers_warn_once_with_count_and_lines(tmp_path):
    rows = [f"{GOOD}\t{i % 18}" for i in range(40)]
    rows[6] = f"{GOOD}\t1.2e19"  # the value that silently ruined a model
    rows[20] = f"{GOOD}\t400"  # inside +-1e3 but 20+ IQRs from the median of 0-17 bins
    path = _write(tmp_path, "\n".join(rows) + "\n")
    with pytest.warns(DataWarning) as caught:
        table = read_table(path)
    assert len(caught) == 1
    message = str(caught[0].message)
    assert message.startswith("2 expression value(s) far outside the column's range")
    assert f"{path}:7: 1.2e+19" in message and f"{path}:21: 400" in message
    assert table.meta["outliers"]["count"] == 2
    # small-range data on another scale: no warning
    small = _write(tmp_path, "".join(f"{GOOD}\t{(i % 7) / 5 - 0.6:.3f}\n" for i in range(30)), "maude.txt")
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataWarning)
        assert read_table(small).meta["outliers"]["count"] == 0
    # a tiny file: the absolute bound still catches the value
    info = outliers(np.array([1.0, 2.0, 1.2e19], dtype=np.float32), np.array([1, 2, 3]), "t.txt")
    assert info["count"] == 1 and info["examples"] == ["t.txt:3: 1.2e+19"]


def test_real_files_have_no_outliers(real_data):
    native = real_data.parent / "deboer2020" / "pTpA_native_glu.txt"
    test_file = real_data / "filtered_test_data_with_MAUDE_expression.txt"
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataWarning)
        for path in (real_data / "dev_train.txt", native, test_file):
            assert read_table(path).meta["outliers"]["count"] == 0, path
