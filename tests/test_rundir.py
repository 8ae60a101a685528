"""harness.rundir (issue 15): the one owner of the run-directory layout. Its paths are the files a
real run writes, its readers read them back, and a fold whose files changed is named, never trusted."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from harness.data import DataError
from harness.integrity import IntegrityError
from harness.io import UnsafePath
from harness.rundir import (
    ENSEMBLE,
    RunDir,
    fold_problem,
    load_predictions,
    read_run_json,
    run_methods,
    run_test_set,
    run_train_table,
    split_kind,
    verified_done,
    verified_model_dir,
)

METHOD = "kmer-ridge"


@pytest.fixture(scope="module")
def finished(kmer_ridge_run) -> Path:
    """The session's finished kmer-ridge 2-fold run (conftest), read-only."""
    return kmer_ridge_run


def test_paths_are_the_files_a_run_writes(finished):
    layout = RunDir(finished)
    assert layout.run_json.is_file() and layout.split_json.is_file() and layout.split_npy.is_file()
    assert layout.lock == finished / "run.lock"
    method = layout.method(METHOD)
    assert method.path == finished / "methods" / METHOD
    for path in (method.config, method.oof, method.test, method.scores):
        assert path.is_file(), path
    for k in range(2):
        fold = layout.fold(METHOD, k)
        assert fold.path == finished / "methods" / METHOD / f"fold{k}"
        assert fold.oof.is_file() and fold.test.is_file() and fold.done.is_file() and fold.model.is_dir()
        assert not fold.work.exists()  # resume checkpoints are removed once the fold is done
    ens = layout.ensemble
    assert ens.path == finished / "methods" / ENSEMBLE
    assert ens.stacker_json == ens.path / "stacker" / "stacker.json"
    assert ens.ensemble_json == ens.path / "ensemble.json"


@pytest.mark.parametrize("name", ["", ".", "..", "../other", "a/b"])
def test_a_method_name_is_never_a_path(finished, name):
    with pytest.raises(ValueError, match="is not a method name"):
        RunDir(finished).method(name)


def test_readers_read_a_real_run(finished, simulated_dir):
    info = read_run_json(finished)
    assert RunDir(finished).info() == info
    assert run_methods(finished) == [METHOD] == RunDir(finished).methods()
    assert split_kind(finished, info) == "kfold"
    test = run_test_set(finished, info)
    assert len(test) == info["n_test"] and test.simulated
    train = run_train_table(finished, info)
    assert len(train) == info["n_train"]
    oof = load_predictions(RunDir(finished).method(METHOD).oof, len(train))
    assert oof.shape == (len(train),) and oof.dtype == np.float64 and np.isfinite(oof).all()
    assert fold_problem(finished, RunDir(finished).fold(METHOD, 0).path) is None
    assert verified_model_dir(RunDir(finished).fold(METHOD, 1).path) == RunDir(finished).fold(METHOD, 1).model


def test_not_a_run_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="no run.json here"):
        read_run_json(tmp_path)
    assert run_methods(tmp_path) == []


def test_a_changed_fold_file_is_named(copy_run):
    fold = RunDir(copy_run).fold(METHOD, 0)
    np.save(fold.test, np.zeros(3))
    problem = fold_problem(copy_run, fold.path)
    assert problem and "test.npy" in problem
    with pytest.raises(IntegrityError, match="test.npy"):
        verified_done(fold.path)
    # the model alone still verifies: a loader checks only what it reads
    assert verified_model_dir(fold.path) == fold.model


def test_a_fold_without_done_json(copy_run):
    fold = RunDir(copy_run).fold(METHOD, 1)
    fold.done.unlink()
    assert fold_problem(copy_run, fold.path) == ""
    with pytest.raises(FileNotFoundError, match="the fold is not finished"):
        verified_model_dir(fold.path)


def test_a_linked_model_is_refused(copy_run, tmp_path):
    fold = RunDir(copy_run).fold(METHOD, 0)
    elsewhere = tmp_path / "elsewhere"
    shutil.move(fold.model, elsewhere)
    fold.model.symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(UnsafePath, match="symbolic link"):
        verified_model_dir(fold.path)


def test_bad_predictions_are_refused(tmp_path):
    path = tmp_path / "test.npy"
    np.save(path, np.array([1.0, np.nan, 2.0]))
    with pytest.raises(DataError, match=r"test.npy: 1 of 3 values are NaN or inf \(first: index 1\)"):
        load_predictions(path, 3)
    assert np.isnan(load_predictions(path, 3, allow_nan=True)[1])
    with pytest.raises(DataError, match=r"shape \(3,\), expected \(4,\)"):
        load_predictions(path, 4)
    np.save(path, np.array([object()], dtype=object), allow_pickle=True)
    with pytest.raises(DataError, match="not a readable .npy array"):
        load_predictions(path, 1)
