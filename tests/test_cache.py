"""The training-data cache (harness.data.cache) and the byte-level reader behind read_table."""

from __future__ import annotations

import gzip
import json
import os
import random
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest

from harness.data import BadRows, DataError, read_table, readers
from harness.data.cache import check_training_table, load_training
from harness.data.readers import DataWarning

from conftest import DEV_TRAIN, needs_real_data

GOOD = "TGCATTTTTTTCACATCAAACCCGGGTTGGTTACGGCTGTT"


def _same(a, b) -> None:
    assert a.codes.dtype == b.codes.dtype == np.uint8
    np.testing.assert_array_equal(np.asarray(a.codes), np.asarray(b.codes))
    np.testing.assert_array_equal(np.asarray(a.lengths), np.asarray(b.lengths))
    assert a.lengths.dtype == b.lengths.dtype == np.int32
    assert a.y.dtype == b.y.dtype == np.float32
    assert np.asarray(a.y).tobytes() == np.asarray(b.y).tobytes()
    np.testing.assert_array_equal(np.asarray(a.meta["line"]), np.asarray(b.meta["line"]))


def _string_reader(path, **kw):
    """read_table through the pandas/string path only (the reference)."""
    old = readers._FAST
    readers._FAST = False
    try:
        return read_table(path, **kw)
    finally:
        readers._FAST = old


def _bad_rows_file(path: Path, rows: int = 400, seed: int = 0) -> Path:
    rng = random.Random(seed)
    lines = []
    for i in range(rows):
        seq = "".join(rng.choice("ACGT") for _ in range(rng.randint(90, 130)))
        expr = rng.choice(["12", "0", "17", "15.1823836007871", "3.25", "1e1", " 4", "007"])
        r = rng.random()
        if r < 0.03:
            lines.append(seq)  # missing expression
        elif r < 0.06:
            lines.append(f"{seq}\tx{i}")  # non-numeric expression
        elif r < 0.09:
            lines.append(f"{seq[:5]}Z{seq[6:]}\t{expr}")  # non-nucleotide letter
        elif r < 0.11:
            lines.append("")  # empty line
        elif r < 0.13:
            lines.append(f"\t{expr}")  # empty sequence
        elif r < 0.15:
            lines.append(f"{seq}\t{expr}\textra")  # three columns
        else:
            lines.append(f"{seq.lower() if r > 0.97 else seq}\t{expr}")
    lines.append(f"{GOOD}NRY\t3")
    path.write_text("\n".join(lines) + "\n")
    return path


@needs_real_data
def test_cache_round_trip_equals_read_table_on_real_data(tmp_path):
    reference = _string_reader(DEV_TRAIN)
    _same(read_table(DEV_TRAIN), reference)  # the byte-level reader
    first = load_training(DEV_TRAIN, cache_dir=tmp_path)
    _same(first, reference)
    again = load_training(DEV_TRAIN, cache_dir=tmp_path)
    _same(again, reference)
    assert isinstance(again.codes, np.memmap) and not again.codes.flags.writeable
    assert again.meta["cache"].startswith(str(tmp_path)) and again.source == str(DEV_TRAIN)
    assert len(list(tmp_path.iterdir())) == 1


def test_cache_with_bad_rows_skipped(tmp_path):
    path = _bad_rows_file(tmp_path / "train.txt")
    bad_ref = BadRows()
    reference = _string_reader(path, skip_bad_rows=True, bad=bad_ref)
    assert bad_ref.total > 20
    for attempt in range(2):  # parse + write, then from the cache
        bad = BadRows()
        table = load_training(path, skip_bad_rows=True, cache_dir=tmp_path / "cache", bad=bad)
        _same(table, reference)
        assert dict(bad.counts) == dict(bad_ref.counts) and bad.examples == bad_ref.examples
        assert table.meta["bad_rows"] is bad
    # without skip_bad_rows: the same file:line: problem message as the string reader, nothing cached
    with pytest.raises(DataError) as ours:
        load_training(path, cache_dir=tmp_path / "strict")
    with pytest.raises(DataError) as theirs:
        _string_reader(path)
    assert str(ours.value) == str(theirs.value) and f"{path}:" in str(ours.value)
    assert not (tmp_path / "strict").exists() or not any((tmp_path / "strict").iterdir())


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.filterwarnings("ignore::harness.data.readers.DataWarning")  # 1.2e15 among small values
def test_byte_reader_matches_string_reader_on_odd_files(tmp_path, seed):
    rng = random.Random(seed)
    pieces = ["ACGT", "acgt", "N", "RY", "X", "", " ", "é", "#"]
    exprs = ["12", "0", "17", "15.1823836007871", "3.5", "1e1", " 4", "x", "", ".5", "5.", "-1", "+2", "nan",
             "1..2", "0012.50", "123456789012345.6", "1.23456789012345678", "1234567890123456", "1e39", "-4E38"]
    for f in range(10):
        lines = []
        for _ in range(rng.randint(1, 25)):
            seq = "".join(rng.choice(pieces) if rng.random() < 0.1 else rng.choice("ACGT") for _ in range(rng.randint(0, 30)))
            r = rng.random()
            if rng.random() < 0.05:
                seq += "ACGT" * rng.randint(8, 12)  # around the max_length=40 used below
            lines.append(f"{seq}\t{rng.choice(exprs)}" if r < 0.8 else seq if r < 0.88 else f"{seq}\t1\t2" if r < 0.94 else "")
        path = tmp_path / f"f{f}.txt"
        path.write_text("\n".join(lines) + ("\n" if rng.random() < 0.7 else ""), encoding="utf-8")
        if path.stat().st_size == 0:
            continue
        for skip, limit in ((False, 1000), (True, 1000), (True, 40), (False, 40)):
            try:
                reference = _string_reader(path, skip_bad_rows=skip, max_length=limit)
            except DataError as exc:
                with pytest.raises(DataError) as ours:
                    read_table(path, skip_bad_rows=skip, max_length=limit)
                assert str(ours.value) == str(exc)
                continue
            table = read_table(path, skip_bad_rows=skip, max_length=limit)
            _same(table, reference)
            assert dict(table.meta["bad_rows"].counts) == dict(reference.meta["bad_rows"].counts)
            assert table.meta["bad_rows"].examples == reference.meta["bad_rows"].examples


def test_cache_invalidated_when_the_file_changes(tmp_path):
    path = tmp_path / "train.txt"
    path.write_text(f"{GOOD}\t1\n{GOOD}\t2\n")
    cache = tmp_path / "cache"
    assert load_training(path, cache_dir=cache).y.tolist() == [1.0, 2.0]
    first_entry = next(cache.iterdir())
    # same size, new content and mtime
    path.write_text(f"{GOOD}\t3\n{GOOD}\t4\n")
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    assert load_training(path, cache_dir=cache).y.tolist() == [3.0, 4.0]
    # new size
    path.write_text(f"{GOOD}\t3\n{GOOD}\t4\n{GOOD}\t5\n")
    assert load_training(path, cache_dir=cache).y.tolist() == [3.0, 4.0, 5.0]
    entries = list(cache.iterdir())
    assert len(entries) == 1 and entries[0] != first_entry  # older entries for the path removed
    # skip_bad_rows has its own entry
    load_training(path, skip_bad_rows=True, cache_dir=cache)
    assert len(list(cache.iterdir())) == 2


@pytest.mark.parametrize("damage", ["truncate", "garbage", "meta", "missing", "checksum"])
def test_corrupt_cache_is_rebuilt(tmp_path, damage):
    path = tmp_path / "train.txt"
    path.write_text("".join(f"{GOOD[: 20 + i]}\t{i}\n" for i in range(50)))
    cache = tmp_path / "cache"
    reference = load_training(path, cache_dir=cache)
    reference = type(reference)(np.array(reference.codes), np.array(reference.lengths), np.array(reference.y), reference.source,
                                {"line": np.array(reference.meta["line"])})
    entry = next(cache.iterdir())
    if damage == "truncate":
        data = (entry / "codes.npy").read_bytes()
        (entry / "codes.npy").write_bytes(data[: len(data) // 2])
    elif damage == "garbage":
        (entry / "lengths.npy").write_bytes(b"not an npy file")
    elif damage == "meta":
        (entry / "meta.json").write_text("{")
    elif damage == "missing":
        (entry / "y.npy").unlink()
    else:  # same shape, other values
        y = np.load(entry / "y.npy")
        np.save(entry / "y.npy", y + 1)
    with pytest.warns(RuntimeWarning, match=rf"{path}: cached copy failed verification \(.*{entry.name}"):
        table = load_training(path, cache_dir=cache)
    _same(table, reference)
    assert json.loads((Path(table.meta["cache"]) / "meta.json").read_text())["rows"] == 50


def test_errors_still_name_file_and_line(tmp_path):
    path = tmp_path / "train.txt"
    path.write_text(f"{GOOD}\t1\n{GOOD}\t2\n{GOOD}\tbad\n")
    with pytest.raises(DataError, match=rf"{path}:3: expression 'bad' is not a number"):
        load_training(path, cache_dir=tmp_path / "cache")
    with pytest.raises(DataError, match=r"nope\.txt: no such file"):
        load_training(tmp_path / "nope.txt", cache_dir=tmp_path / "cache")


def test_default_cache_dir_under_harness_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "hc"))
    path = tmp_path / "train.txt"
    path.write_text(f"{GOOD}\t1\n{GOOD}\t2\n")
    table = load_training(path)
    assert Path(table.meta["cache"]).parent == tmp_path / "hc" / "tables"


def test_unwritable_cache_falls_back_to_parsing(tmp_path):
    path = tmp_path / "train.txt"
    path.write_text(f"{GOOD}\t1\n{GOOD}\t2\n")
    blocker = tmp_path / "file-not-dir"
    blocker.write_text("x")
    with pytest.warns(RuntimeWarning, match="could not cache"):
        table = load_training(path, cache_dir=blocker / "tables")
    assert table.y.tolist() == [1.0, 2.0]
    shutil.rmtree(tmp_path / "file-not-dir", ignore_errors=True)


def _big_file(path: Path, rows: int = 20_000) -> Path:
    """A file whose codes.npy is over 2 MiB (the old check sampled only its first and last MiB)."""
    rng = np.random.default_rng(3)
    letters = np.frombuffer(b"ACGT", dtype=np.uint8)[rng.integers(0, 4, size=(rows, 110))]
    lines = [f"{row.tobytes().decode()}\t{v}" for row, v in zip(letters, rng.integers(0, 18, size=rows))]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_same_size_same_mtime_edit_of_the_source_is_detected(tmp_path):
    # regression: the key was (path, size, mtime); an edit that kept both reused the stale entry
    path = tmp_path / "train.txt"
    path.write_text(f"{GOOD}\t1\n{GOOD}\t2\n")
    cache = tmp_path / "cache"
    assert load_training(path, cache_dir=cache).y.tolist() == [1.0, 2.0]
    st = path.stat()
    path.write_text(f"{GOOD}\t7\n{GOOD}\t2\n")
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert (path.stat().st_size, path.stat().st_mtime_ns) == (st.st_size, st.st_mtime_ns)
    table = load_training(path, cache_dir=cache)
    assert table.y.tolist() == [7.0, 2.0]
    assert len(list(cache.iterdir())) == 1  # the stale entry was removed


def test_damage_in_the_middle_of_codes_is_detected(tmp_path):
    # regression: only the first and last MiB of codes.npy were checksummed
    path = _big_file(tmp_path / "train.txt")
    cache = tmp_path / "cache"
    reference = read_table(path)
    entry = Path(load_training(path, cache_dir=cache).meta["cache"])
    codes = entry / "codes.npy"
    assert codes.stat().st_size > 2 * (1 << 20) + 4096
    st = codes.stat()
    with open(codes, "r+b") as fh:  # one byte in the middle: same size, same mtime
        fh.seek(st.st_size // 2)
        byte = fh.read(1)
        fh.seek(st.st_size // 2)
        fh.write(bytes([byte[0] ^ 1]))
    os.utime(codes, ns=(st.st_atime_ns, st.st_mtime_ns))
    with pytest.warns(RuntimeWarning, match=r"codes\.npy: content differs from what the harness wrote"):
        table = load_training(path, cache_dir=cache)
    _same(table, reference)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        _same(load_training(path, cache_dir=cache), reference)  # the rebuilt entry verifies


def test_edited_metadata_is_detected(tmp_path):
    path = _bad_rows_file(tmp_path / "train.txt", rows=60)
    cache = tmp_path / "cache"
    first = BadRows()
    entry = Path(load_training(path, skip_bad_rows=True, cache_dir=cache, bad=first).meta["cache"])
    meta = json.loads((entry / "meta.json").read_text())
    meta["bad_rows"]["counts"] = {"empty line": 0}  # valid JSON, edited content
    (entry / "meta.json").write_text(json.dumps(meta))
    bad = BadRows()
    with pytest.warns(RuntimeWarning, match=r"meta\.json: content differs"):
        load_training(path, skip_bad_rows=True, cache_dir=cache, bad=bad)
    assert dict(bad.counts) == dict(first.counts)


def test_gzip_training_file_is_cached_on_its_compressed_bytes(tmp_path):
    text = "".join(f"{GOOD[: 30 + i % 7]}\t{i % 18}\n" for i in range(500))
    plain = tmp_path / "plain.txt"
    plain.write_text(text)
    packed = tmp_path / "train.txt.gz"
    packed.write_bytes(gzip.compress(text.encode(), mtime=0))
    cache = tmp_path / "cache"
    reference = read_table(plain)
    first = load_training(packed, cache_dir=cache)
    again = load_training(packed, cache_dir=cache)
    _same(first, reference)
    _same(again, reference)
    meta = json.loads((Path(again.meta["cache"]) / "meta.json").read_text())
    assert meta["size"] == packed.stat().st_size  # the key is the compressed file


@pytest.mark.parametrize(("text", "problem"), [
    (f"{GOOD}\t3\n", r"a training file needs at least 2 rows to be split into folds and fitted; it has 1"),
    (f"{GOOD}\t3\n{GOOD}\tx\n", r"a training file needs at least 2 rows .* it has 1 \(1 bad rows skipped\)"),
    (f"{GOOD}\t3\n{GOOD[:-1]}\t3.0\n{GOOD}\t3\n", r"every training row \(3\) has expression 3; a constant target"),
])
def test_untrainable_files_give_one_clear_line(tmp_path, text, problem):
    path = tmp_path / "train.txt"
    path.write_text(text)
    cache = tmp_path / "cache"
    with pytest.raises(DataError, match=rf"^{path}: {problem}"):
        load_training(path, skip_bad_rows=True, cache_dir=cache)
    assert not cache.exists() or not any(cache.iterdir())  # nothing cached
    with pytest.raises(DataError, match="at least 2 rows"):
        check_training_table(read_table(_write_one(tmp_path)), "one.txt")


def _write_one(tmp_path: Path) -> Path:
    path = tmp_path / "one.txt"
    path.write_text(f"{GOOD}\t1\n")
    return path


def test_outlier_warning_also_from_the_cache(tmp_path):
    path = tmp_path / "train.txt"
    path.write_text("".join(f"{GOOD}\t{i % 18}\n" for i in range(30)) + f"{GOOD}\t1.2e19\n")
    cache = tmp_path / "cache"
    with pytest.warns(DataWarning, match=rf"{path}:31: 1.2e\+19"):
        load_training(path, cache_dir=cache)
    with pytest.warns(DataWarning, match=rf"{path}:31: 1.2e\+19"):
        table = load_training(path, cache_dir=cache)
    assert "cache" in table.meta and table.meta["outliers"]["count"] == 1


def test_max_length_is_part_of_the_key(tmp_path):
    path = tmp_path / "train.txt"
    path.write_text(f"{GOOD}\t1\n{'ACGT' * 300}\t2\n{GOOD}\t3\n")
    cache = tmp_path / "cache"
    assert len(load_training(path, skip_bad_rows=True, cache_dir=cache)) == 2
    assert len(load_training(path, skip_bad_rows=True, cache_dir=cache, max_length=2000)) == 3
    assert len(load_training(path, skip_bad_rows=True, cache_dir=cache)) == 2
