"""The training-data cache (harness.data.cache) and the byte-level reader behind read_table."""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path

import numpy as np
import pytest

from harness.data import BadRows, DataError, read_table, readers
from harness.data.cache import load_training

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
def test_byte_reader_matches_string_reader_on_odd_files(tmp_path, seed):
    rng = random.Random(seed)
    pieces = ["ACGT", "acgt", "N", "RY", "X", "", " ", "é", "#"]
    exprs = ["12", "0", "17", "15.1823836007871", "3.5", "1e1", " 4", "x", "", ".5", "5.", "-1", "+2", "nan",
             "1..2", "0012.50", "123456789012345.6", "1.23456789012345678", "1234567890123456"]
    for f in range(10):
        lines = []
        for _ in range(rng.randint(1, 25)):
            seq = "".join(rng.choice(pieces) if rng.random() < 0.1 else rng.choice("ACGT") for _ in range(rng.randint(0, 30)))
            r = rng.random()
            lines.append(f"{seq}\t{rng.choice(exprs)}" if r < 0.8 else seq if r < 0.88 else f"{seq}\t1\t2" if r < 0.94 else "")
        path = tmp_path / f"f{f}.txt"
        path.write_text("\n".join(lines) + ("\n" if rng.random() < 0.7 else ""), encoding="utf-8")
        if path.stat().st_size == 0:
            continue
        for skip in (False, True):
            try:
                reference = _string_reader(path, skip_bad_rows=skip)
            except DataError as exc:
                with pytest.raises(DataError) as ours:
                    read_table(path, skip_bad_rows=skip)
                assert str(ours.value) == str(exc)
                continue
            table = read_table(path, skip_bad_rows=skip)
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
    path.write_text(f"{GOOD}\t1\n")
    table = load_training(path)
    assert Path(table.meta["cache"]).parent == tmp_path / "hc" / "tables"


def test_unwritable_cache_falls_back_to_parsing(tmp_path):
    path = tmp_path / "train.txt"
    path.write_text(f"{GOOD}\t1\n")
    blocker = tmp_path / "file-not-dir"
    blocker.write_text("x")
    with pytest.warns(RuntimeWarning, match="could not cache"):
        table = load_training(path, cache_dir=blocker / "tables")
    assert table.y.tolist() == [1.0]
    shutil.rmtree(tmp_path / "file-not-dir", ignore_errors=True)
