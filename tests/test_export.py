"""`harness export` and `harness validate-submission`: round trips and corrupted copies."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from harness.data import load_test_set
from harness.cli.export import export_cmd, validate_cmd
from harness.export import validate_submission
from harness.io import write_json, write_npy
from harness.scoring import PredictionError, read_predictions

from conftest import REAL_DATA, needs_real_data

N = 71103

pytestmark = needs_real_data


@pytest.fixture(scope="module")
def test_set():
    return load_test_set(REAL_DATA)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A run with method `ens`, exported once as JSON and once as TSV through the command line."""
    root = tmp_path_factory.mktemp("export")
    run = root / "run"
    write_json(run / "run.json", {"data_dir": str(REAL_DATA), "simulated": False, "n_test": N})
    pred = np.random.default_rng(0).normal(size=N) * 3.7 + 1e-9  # full float64 precision must survive
    write_npy(run / "methods" / "ens" / "test.npy", pred)
    out = {}
    for fmt in ("json", "tsv"):
        out[fmt] = root / f"submission.{fmt}"
        result = CliRunner().invoke(export_cmd, [str(run), "--method", "ens", "--format", fmt, "--out", str(out[fmt])])
        assert result.exit_code == 0, result.output
        assert f"71,103 predictions of ens ({fmt})" in result.output
    return run, pred, out


def validate(path, data=None):
    args = [str(path)] + (["--data", str(data)] if data else [])
    return CliRunner().invoke(validate_cmd, args, env={"HARNESS_DATA": ""})


def test_json_export_is_the_challenge_format(exported, test_set):
    run, pred, out = exported
    text = out["json"].read_text()
    assert text.startswith('{"0": ') and text.endswith("}")  # one object, as sample_submission.json
    obj = json.loads(text)
    assert list(obj) == [str(i) for i in range(N)]
    np.testing.assert_array_equal(read_predictions(out["json"], test_set), pred)  # exact round trip
    result = validate(out["json"])
    assert result.exit_code == 0 and "valid JSON submission, 71,103 predictions" in result.output
    # the published public-leaderboard sample is valid, with a note, and its ids are the public ids
    sample = REAL_DATA / "public_leaderboard_ids" / "sample_submission.json"
    check = validate_submission(sample, test_set)
    assert check.ok and check.public_only and "public board only" in check.notes[0]


def test_tsv_export_round_trip(exported, test_set):
    run, pred, out = exported
    lines = out["tsv"].read_text().splitlines()
    assert len(lines) == N
    seqs = test_set.table.sequences()
    assert lines[0].split("\t")[0] == seqs[0] and lines[-1].split("\t")[0] == seqs[-1]
    np.testing.assert_array_equal([float(line.split("\t")[1]) for line in lines], pred)  # exact in the file
    # the scorer's reader is float64, as the official script's float()
    np.testing.assert_array_equal(read_predictions(out["tsv"], test_set), pred)
    result = validate(out["tsv"], REAL_DATA)
    assert result.exit_code == 0, result.output
    assert "valid TSV submission" in result.output
    unchecked = validate(out["tsv"])
    assert unchecked.exit_code == 0 and "sequence order not checked" in unchecked.output


def corrupt_json(tmp_path, exported, edit) -> Path:
    obj = list(json.loads(exported[2]["json"].read_text()).items())
    text = "{" + ", ".join(edit(obj)) + "}"
    path = tmp_path / "bad.json"
    path.write_text(text)
    return path


def pairs(obj):
    return [f'"{k}": {v!r}' for k, v in obj]


def test_corrupt_json_copies_fail_with_the_reason(tmp_path, exported, test_set):
    dup = corrupt_json(tmp_path, exported, lambda o: pairs(o) + ['"5": 1.0'])
    result = validate(dup)
    assert result.exit_code == 1 and "duplicate key '5'" in result.output and "bad.json" in result.output

    nan = corrupt_json(tmp_path, exported, lambda o: pairs(o[:7]) + ['"7": NaN'] + pairs(o[8:]))
    result = validate(nan)
    assert result.exit_code == 1 and "key '7': value is nan, not a finite number" in result.output

    missing = corrupt_json(tmp_path, exported, lambda o: pairs(o[:42]) + pairs(o[43:]))
    result = validate(missing)
    assert result.exit_code == 1 and "71,102 distinct test indices" in result.output
    assert "missing indices: 42" in result.output

    text = corrupt_json(tmp_path, exported, lambda o: pairs(o[:3]) + ['"3": "0.5"'] + pairs(o[4:]))
    result = validate(text)
    assert result.exit_code == 1 and "key '3': value '0.5' is not a number" in result.output

    out_of_range = corrupt_json(tmp_path, exported, lambda o: pairs(o[:-1]) + ['"71103": 1.0'])
    problems = validate_submission(out_of_range).problems
    assert "key '71103' is out of range 0..71102" in problems[0] and "missing indices: 71102" in problems[1]

    for bad_key in ("-1", "007", "x"):
        check = validate_submission(corrupt_json(tmp_path, exported, lambda o: pairs(o[:-1]) + [f'"{bad_key}": 1.0']))
        assert f"key '{bad_key}' is not a test index" in check.problems[0]

    # 9,045 keys that are not the public ids: noted without data, refused with it
    public = json.loads((REAL_DATA / "public_leaderboard_ids" / "sample_submission.json").read_text())
    keys = sorted(int(k) for k in public)
    keys[0] = next(i for i in range(N) if i not in set(keys))
    fake = tmp_path / "fake_public.json"
    fake.write_text(json.dumps({str(k): 0.0 for k in keys}))
    assert validate_submission(fake).ok
    check = validate_submission(fake, test_set)
    assert not check.ok and "1 keys are not public ids" in check.problems[0]


def test_validation_and_scoring_share_one_parser(tmp_path, exported, test_set):
    """The same format problems, in the same words, from validate-submission and the scorer's reader."""
    bad = corrupt_json(tmp_path, exported, lambda o: pairs(o[:5]) + ['"05": 1.0', '"+6": 2.0'] + pairs(o[5:]) + ['"9": 3'])
    check = validate_submission(bad, test_set)
    assert check.problems == ["key '05' is not a test index (a decimal integer 0..71102, no sign or leading zero)",
                              "key '+6' is not a test index (a decimal integer 0..71102, no sign or leading zero)",
                              "duplicate key '9'"]
    with pytest.raises(PredictionError) as err:
        read_predictions(bad, test_set)
    assert str(err.value).splitlines()[1:] == [f"  {p}" for p in check.problems]
    assert str(err.value).startswith(f"{bad}: invalid JSON prediction file (3 problems)")


def test_corrupt_tsv_copies_fail_with_the_reason(tmp_path, exported, test_set):
    lines = exported[2]["tsv"].read_text().splitlines()

    def write(rows) -> Path:
        path = tmp_path / "bad.tsv"
        path.write_text("\n".join(rows) + "\n")
        return path

    swapped = lines[:9] + [lines[10], lines[9]] + lines[11:]
    result = validate(write(swapped), REAL_DATA)
    assert result.exit_code == 1
    assert "line 10: sequence differs from test sequence 9 (it is test sequence 10: rows are out of test order)" in result.output
    assert validate_submission(write(swapped)).ok  # without the test file the order cannot be checked

    seq = lines[4].split("\t")[0]
    check = validate_submission(write(lines[:4] + [f"{seq}\tnan"] + lines[5:]))
    assert check.problems == ["line 5: prediction is nan, not a finite number"]
    check = validate_submission(write(["sequence\tprediction"] + lines[1:]))
    assert "line 1: prediction 'prediction' is not a number (no header line is expected)" in check.problems
    check = validate_submission(write(lines[:2] + [lines[2] + "\textra"] + lines[3:]))
    assert check.problems == ["line 3: expected 2 tab-separated columns (sequence, prediction), found 3"]
    check = validate_submission(write(lines[:-1]))
    assert check.problems == ["71,102 lines; expected one per test sequence (71,103) in test order"]


def test_export_refusals(tmp_path, exported):
    run = exported[0]
    result = CliRunner().invoke(export_cmd, [str(run), "--method", "nope", "--out", str(tmp_path / "x.json")])
    assert result.exit_code == 1 and "no test predictions for 'nope'; the run has ens" in result.output
    assert not (tmp_path / "x.json").exists()
    sim = tmp_path / "sim"
    write_json(sim / "run.json", {"data_dir": str(tmp_path), "simulated": True, "n_test": 10})
    write_npy(sim / "methods" / "m" / "test.npy", np.zeros(10))
    result = CliRunner().invoke(export_cmd, [str(sim), "--method", "m", "--out", str(tmp_path / "y.json")])
    assert result.exit_code == 1 and "simulated data" in result.output
    short = tmp_path / "short"
    write_json(short / "run.json", {"data_dir": str(REAL_DATA), "simulated": False, "n_test": N})
    write_npy(short / "methods" / "m" / "test.npy", np.zeros(N - 1))
    result = CliRunner().invoke(export_cmd, [str(short), "--method", "m", "--out", str(tmp_path / "z.json")])
    assert result.exit_code == 1 and "shape (71102,), expected (71103,)" in result.output


def test_export_reads_test_npy_without_pickle_and_names_the_file(tmp_path):
    run = tmp_path / "run"
    write_json(run / "run.json", {"data_dir": str(REAL_DATA), "simulated": False, "n_test": N})
    path = run / "methods" / "m" / "test.npy"
    path.parent.mkdir(parents=True)
    np.save(path, np.array([{"planted": 1}] * N, dtype=object), allow_pickle=True)
    result = CliRunner().invoke(export_cmd, [str(run), "--method", "m", "--out", str(tmp_path / "x.json")])
    assert result.exit_code == 1 and f"{path}: not a readable .npy array" in result.output
    write_npy(path, np.full(N, np.nan))
    result = CliRunner().invoke(export_cmd, [str(run), "--method", "m", "--out", str(tmp_path / "x.json")])
    assert result.exit_code == 1 and "71,103 of 71,103 values are NaN or inf (first: index 0)" in result.output
    assert not (tmp_path / "x.json").exists()
