"""`harness data check`: the summary of a data directory and the CLI's exit codes."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from click.testing import CliRunner
from rich.console import Console

from harness.data import DataError, load_test_set, read_table
from harness.cli.data import data_group
from harness.data.check import check_data_dir, render_check
from harness.data.simulate import MARKER, TRAIN_FILE
from harness.data.testset import CATEGORIES, PUBLIC_DIR, SUBSET_DIR, TEST_FILE


def _render(summary) -> str:
    console = Console(record=True, width=160)
    console.print(render_check(summary))
    return console.export_text()


@pytest.fixture(scope="module")
def sim_summary(simulated_dir):
    return check_data_dir(simulated_dir)


def test_summary_of_simulated_dir(simulated_dir, sim_summary):
    tests = load_test_set(simulated_dir)
    train = read_table(simulated_dir / TRAIN_FILE)
    s = sim_summary
    assert s["simulated"] is True and s["data_dir"] == str(simulated_dir)
    assert s["test"]["rows"] == len(tests) and s["test"]["lengths"] == {110: len(tests)}
    assert s["test"]["expression"]["min"] == pytest.approx(float(tests.table.y.min()))
    assert s["test"]["expression"]["max"] == pytest.approx(float(tests.table.y.max()))
    assert s["test"]["expression"]["mean"] == pytest.approx(float(tests.table.y.mean()), rel=1e-6)
    assert s["train"]["path"] == str(simulated_dir / TRAIN_FILE)
    assert s["train"]["rows"] == len(train)
    assert sum(s["train"]["lengths"].values()) == len(train)
    assert s["train"]["lengths"][110] == int((train.lengths == 110).sum())
    assert 0 <= s["train"]["expression"]["min"] and s["train"]["expression"]["max"] <= 17
    assert s["train"]["bad_rows"] == {"total": 0, "by_problem": {}, "examples": []}
    assert s["missing"] == []
    assert {c: v["size"] for c, v in s["subsets"].items()} == {c: len(ids) for c, ids in tests.categories.items()}
    assert all(v["present"] for v in s["subsets"].values()) and all(v["present"] for v in s["public"].values())
    assert {c: s["public"][c]["size"] for c in CATEGORIES} == {c: len(ids) for c, ids in tests.public.items()}
    assert s["public_ids"] == len(tests.public_ids)
    assert s["snv_source"].startswith("official")
    assert any("SIMULATED" in note for note in s["notes"])
    json.dumps(s)  # JSON-ready


def test_summary_of_real_dir(real_data):
    snv = real_data / "reconstructed" / "all_SNVs_seqs.csv"
    s = check_data_dir(real_data, train=real_data / "dev_train.txt", snv_pairs=snv)
    assert s["simulated"] is False
    assert s["test"]["rows"] == 71103 and s["test"]["lengths"] == {110: 71103}
    assert s["train"]["rows"] == 16370 and s["train"]["lengths"][110] == 15219
    assert (s["train"]["expression"]["min"], s["train"]["expression"]["max"]) == (0.0, 17.0)
    assert s["public_ids"] == 9045
    assert s["subsets"]["SNVs"] == {"file": f"{SUBSET_DIR}/all_SNVs_seqs.csv", "present": False, "size": 44795}
    assert s["subsets"]["random"]["size"] == 6349 and s["public"]["random"]["size"] == 733
    assert s["missing"] == [f"{SUBSET_DIR}/all_SNVs_seqs.csv"]
    assert s["snv_source"].startswith("given file")
    assert any("reports must say so" in note for note in s["notes"])


def test_partial_directory_lists_missing_files(simulated_dir, tmp_path):
    shutil.copy(simulated_dir / TEST_FILE, tmp_path / TEST_FILE)
    (tmp_path / SUBSET_DIR).mkdir()
    shutil.copy(simulated_dir / SUBSET_DIR / "high_exp_seqs.csv", tmp_path / SUBSET_DIR)
    s = check_data_dir(tmp_path)
    assert s["simulated"] is False and s["train"] is None
    assert s["subsets"]["high"]["present"] and s["subsets"]["high"]["size"] > 0
    assert s["subsets"]["low"] == {"file": f"{SUBSET_DIR}/low_exp_seqs.csv", "present": False, "size": None}
    assert len(s["missing"]) == 7 + 8 + 2
    assert f"{PUBLIC_DIR}/ground.json" in s["missing"]
    assert s["public_ids"] is None and s["snv_source"] == "none"
    assert any("no training file" in note for note in s["notes"])


def _bad_train(tmp_path):
    good = "TGCATTTTTTTCACATCAAACCGGTTACGGCTGTT"
    path = tmp_path / "bad_train.txt"
    path.write_text(f"{good}\t3\n{good}\tNaNx\n{good}Z\t4\n{good}\t5\n{good}\n")
    return path


def test_bad_rows_raise_or_are_counted(simulated_dir, tmp_path):
    path = _bad_train(tmp_path)
    with pytest.raises(DataError, match=rf"{path}:2: expression 'NaNx' is not a number"):
        check_data_dir(simulated_dir, train=path)
    s = check_data_dir(simulated_dir, train=path, skip_bad_rows=True)
    assert s["train"]["rows"] == 2
    assert s["train"]["bad_rows"]["total"] == 3
    assert s["train"]["bad_rows"]["by_problem"] == {
        "missing expression": 1, "non-ACGTN characters": 1, "non-numeric expression": 1,
    }
    assert s["train"]["bad_rows"]["examples"][0].startswith(f"{path}:2:")
    assert s["train"]["expression"] == {"min": 3.0, "max": 5.0, "mean": 4.0}
    text = _render(s)
    assert "bad training rows" in text and "3 (missing expression: 1" in text


def test_missing_inputs(tmp_path, simulated_dir):
    with pytest.raises(DataError, match="no such data directory"):
        check_data_dir(tmp_path / "absent")
    with pytest.raises(DataError, match="no test file"):
        check_data_dir(tmp_path)
    with pytest.raises(DataError, match=r"nope\.txt: no such file"):
        check_data_dir(simulated_dir, train=tmp_path / "nope.txt")
    with pytest.raises(DataError, match=r"pairs\.csv: no such file"):
        broken = tmp_path / "broken"
        broken.mkdir()
        shutil.copy(simulated_dir / TEST_FILE, broken / TEST_FILE)
        check_data_dir(broken, snv_pairs=tmp_path / "pairs.csv")


def test_render_check(sim_summary):
    text = _render(sim_summary)
    assert "[SIMULATED]" in text
    assert "motif_perturbation" in text and "ground.json" in text
    assert f"{sim_summary['test']['rows']:,}" in text
    assert "SNV source" in text and "public ids" in text


def test_cli_json_matches_summary(simulated_dir, sim_summary):
    result = CliRunner().invoke(data_group, ["check", "--data", str(simulated_dir), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == json.loads(json.dumps(sim_summary))


def test_cli_table_and_default_dir(simulated_dir):
    env = {"HARNESS_DATA": str(simulated_dir)}
    result = CliRunner().invoke(data_group, ["check"], env=env)
    assert result.exit_code == 0, result.output
    assert "SIMULATED" in result.output and "Categories" in result.output
    # no HARNESS_DATA: the simulated default in the cache
    env = {"HARNESS_DATA": "", "HARNESS_CACHE": str(simulated_dir.parent)}
    result = CliRunner().invoke(data_group, ["check", "--json"], env=env)
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["data_dir"] == str(simulated_dir)
    assert (simulated_dir / MARKER).is_file()


def test_cli_exit_code_2_on_bad_data(simulated_dir, tmp_path):
    path = _bad_train(tmp_path)
    result = CliRunner().invoke(data_group, ["check", "--data", str(simulated_dir), "--train", str(path)])
    assert result.exit_code == 2
    assert f"{path}:2: expression 'NaNx' is not a number" in result.output
    result = CliRunner().invoke(data_group, ["check", "--data", str(tmp_path / "absent")])
    assert result.exit_code == 2 and "no such data directory" in result.output


def test_cli_skip_bad_rows(simulated_dir, tmp_path):
    path = _bad_train(tmp_path)
    args = ["check", "--data", str(simulated_dir), "--train", str(path), "--skip-bad-rows", "--json"]
    result = CliRunner().invoke(data_group, args)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["train"]["rows"] == 2 and summary["train"]["bad_rows"]["total"] == 3
    assert np.isclose(summary["train"]["expression"]["mean"], 4.0)


def test_cli_snv_pairs_option(real_data):
    snv = real_data / "reconstructed" / "all_SNVs_seqs.csv"
    result = CliRunner().invoke(data_group, ["check", "--data", str(real_data), "--snv-pairs", str(snv), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["subsets"]["SNVs"]["size"] == 44795 and summary["train"] is None


def test_untrainable_training_file_is_refused(simulated_dir, tmp_path):
    good = "TGCATTTTTTTCACATCAAACCGGTTACGGCTGTT"
    path = tmp_path / "constant.txt"
    path.write_text(f"{good}\t4\n{good}\t4\n")
    with pytest.raises(DataError, match=rf"^{path}: every training row \(2\) has expression 4; a constant target"):
        check_data_dir(simulated_dir, train=path)
    result = CliRunner().invoke(data_group, ["check", "--data", str(simulated_dir), "--train", str(path)])
    assert result.exit_code == 2 and "a constant target cannot be fitted" in result.output


def test_outliers_are_a_note_of_the_summary(simulated_dir, tmp_path):
    good = "TGCATTTTTTTCACATCAAACCGGTTACGGCTGTT"
    path = tmp_path / "outlier.txt"
    path.write_text("".join(f"{good}\t{i % 18}\n" for i in range(40)) + f"{good}\t1.2e19\n")
    s = check_data_dir(simulated_dir, train=path)
    assert s["train"]["outliers"]["count"] == 1
    assert any(f"{path}:41: 1.2e+19" in note for note in s["notes"])
    assert s["train"]["rows"] == 41


def test_cli_max_length(simulated_dir, tmp_path):
    good = "TGCATTTTTTTCACATCAAACCGGTTACGGCTGTT"
    path = tmp_path / "long.txt"
    path.write_text(f"{good}\t3\n{'ACGT' * 500}\t4\n{good}\t5\n")
    base = ["check", "--data", str(simulated_dir), "--train", str(path)]
    result = CliRunner().invoke(data_group, base)
    assert result.exit_code == 2 and f"{path}:2: sequence of 2,000 nt exceeds the limit of 1,000 nt" in result.output
    result = CliRunner().invoke(data_group, [*base, "--max-length", "2000", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["train"]["lengths"]["2000"] == 1
