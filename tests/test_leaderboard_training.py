"""Issue 16, leaderboard: every row names its training file and split, and runs trained on
different training data in one table are flagged (harness/leaderboard.py)."""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import pytest
from conftest import REAL_DATA, SNV_PAIRS, needs_real_data
from rich.console import Console

from harness.leaderboard import PUBLISHED_TRAINING, make_leaderboard, print_table
from harness.runner import RunSpec, run
from harness.splits import SplitSpec


@pytest.fixture(scope="module")
def other_training_run(simulated_dir, tmp_path_factory) -> Path:
    """A kmer-ridge run on the first 1,500 simulated training rows (other training data), hold-out split."""
    root = tmp_path_factory.mktemp("other-training")
    lines = (simulated_dir / "train_sequences.txt").read_text().splitlines(keepends=True)
    train = root / "first1500.txt"
    train.write_text("".join(lines[:1500]))
    out = root / "small"
    run(RunSpec(["kmer-ridge"], simulated_dir, train=train, split=SplitSpec("holdout", holdout_fraction=0.2, seed=1),
                profile="tiny", out=out), Console(file=io.StringIO()))
    return out


def test_rows_name_training_file_and_split_and_a_mix_is_flagged(kmer_ridge_run, other_training_run, tmp_path):
    doc = json.loads(make_leaderboard([kmer_ridge_run, other_training_run], board="full", fmt="json", bootstrap=0))
    training = {row["source"]: row["training"] for row in doc["rows"]}
    assert training == {kmer_ridge_run.name: "train_sequences.txt (4,000 rows) · kfold 2, seed 3",
                        other_training_run.name: "first1500.txt (1,500 rows) · holdout 0.2, seed 1"}
    mixed = [n for n in doc["notes"] if n.startswith("MIXED training data")]
    assert len(mixed) == 1 and "first1500.txt" in mixed[0] and "train_sequences.txt" in mixed[0]

    rows = list(csv.DictReader(io.StringIO(make_leaderboard([kmer_ridge_run, other_training_run], board="full",
                                                            fmt="csv", bootstrap=0))))
    assert {r["source"]: r["training"] for r in rows} == training
    md = make_leaderboard([kmer_ridge_run, other_training_run], board="full", fmt="md", bootstrap=0)
    assert f"{other_training_run.name} · first1500.txt (1,500 rows) · holdout 0.2, seed 1" in md
    assert "- MIXED training data" in md
    lb = make_leaderboard([kmer_ridge_run, other_training_run], board="full", fmt="table", bootstrap=0)
    console = Console(file=io.StringIO(), width=400)
    print_table(lb, console)
    terminal = console.file.getvalue()
    assert f"trained on: {other_training_run.name}: first1500.txt (1,500 rows) · holdout 0.2, seed 1" in terminal
    assert "MIXED training data" in terminal

    same = tmp_path / "copy"  # the same training data under another run name: not flagged
    shutil.copytree(kmer_ridge_run, same)
    doc = json.loads(make_leaderboard([kmer_ridge_run, same], board="full", fmt="json", bootstrap=0))
    assert not any(n.startswith("MIXED") for n in doc["notes"])
    assert {row["training"] for row in doc["rows"]} == {"train_sequences.txt (4,000 rows) · kfold 2, seed 3"}


@needs_real_data
def test_published_entries_name_the_challenge_training_set():
    doc = json.loads(make_leaderboard([], board="public", fmt="json", reference="", data=REAL_DATA,
                                      snv_pairs=SNV_PAIRS, bootstrap=0))
    assert doc["rows"] and all(row["source"] == "published" for row in doc["rows"])
    assert {row["training"] for row in doc["rows"]} == {PUBLISHED_TRAINING}
    assert not any(n.startswith("MIXED") for n in doc["notes"])  # published rows are not runs
