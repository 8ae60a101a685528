"""Experiment tracking (issue 16, harness/tracking.py): every fit's per-epoch / per-round metrics in
``fold<k>/logs/metrics.csv``, and in TensorBoard / MLflow with ``--logger``."""

from __future__ import annotations

import csv
import importlib.util
import io
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from rich.console import Console

from harness.data import read_table
from harness.io import UnsafePath
from harness.runner import RunSpec, run
from harness.splits import SplitSpec
from harness.tracking import (
    LOGGERS,
    LoggerUnavailable,
    check_loggers,
    keep_logs,
    method_run_name,
    open_metric_log,
)

# Keras 3 + numpy 2 emit this from inside keras (converting its own tensors), as in tests/test_kircherlab.py
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword")


def _quiet() -> Console:
    return Console(file=io.StringIO(), width=200)


def _csv(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype={"epoch": "Int64"})


def _events(directory: Path) -> dict[str, list[tuple[int, float]]]:
    """TensorBoard scalars of the event files in ``directory``: ``{tag: [(step, value), ...]}``."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(directory))
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def _hide(monkeypatch, *modules: str) -> None:
    """Make ``import <module>`` fail as it does where the package is not installed."""
    for name in list(sys.modules):
        if name.split(".")[0] in modules:
            monkeypatch.delitem(sys.modules, name)
    for name in modules:
        monkeypatch.setitem(sys.modules, name, None)


# ----- the runner: kmer-lgbm and kmer-ridge ------------------------------------------------------
@pytest.fixture(scope="module")
def kmer_run(simulated_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("tracking") / "run"
    run(RunSpec(["kmer-lgbm", "kmer-ridge"], simulated_dir, split=SplitSpec("kfold", folds=2, seed=3), profile="tiny",
                out=out), _quiet())
    return out


def test_runner_keeps_each_rounds_metrics_of_kmer_lgbm(kmer_run):
    for k in range(2):
        fold = kmer_run / "methods" / "kmer-lgbm" / f"fold{k}"
        assert not (fold / "work").exists()  # the work directory is spent; the logs moved out of it
        frame = _csv(fold / "logs" / "metrics.csv")
        info = json.loads((fold / "model" / "fit_info.json").read_text())
        assert list(frame.columns) == ["epoch", "step", "train_l2", "valid_l2"]
        assert frame["epoch"].isna().all()  # boosting rounds have no epochs
        assert frame["step"].tolist() == list(range(1, len(frame) + 1))
        assert info["best_iteration"] <= len(frame) <= 20  # tiny profile: 20 rounds at most
        # the logged validation L2 of the kept round is the one LightGBM's early stopping kept
        assert frame["valid_l2"][info["best_iteration"] - 1] == info["best_valid_l2"]
        assert frame["valid_l2"].min() == info["best_valid_l2"]
        assert (frame["train_l2"].diff().dropna() <= 0).all()  # training L2 of gradient boosting falls


def test_runner_logs_kmer_ridge_selected_alpha_once(kmer_run):
    for k in range(2):
        fold = kmer_run / "methods" / "kmer-ridge" / f"fold{k}"
        frame = _csv(fold / "logs" / "metrics.csv")
        info = json.loads((fold / "model" / "fit_info.json").read_text())
        assert list(frame.columns) == ["epoch", "step", "alpha", "valid_r"]
        assert len(frame) == 1 and frame["step"][0] == 1
        assert frame["alpha"][0] == info["alpha"] and frame["valid_r"][0] == info["selection"][repr(info["alpha"])]


def test_ridge_with_one_alpha_has_no_validation_and_no_row(simulated_dir, tmp_path):
    from baselines.kmer import KmerRidge, KmerRidgeConfig

    train = read_table(simulated_dir / "train_sequences.txt")
    method = KmerRidge(KmerRidgeConfig(k_max=3, alphas=[]), work_dir=tmp_path / "work")
    method.fit(train.subset(np.arange(300)))
    assert not (tmp_path / "work" / "metrics.csv").exists()


def test_lightgbm_log_leaves_the_model_unchanged_and_logs_the_stopping_round(simulated_dir, tmp_path):
    """The metric log only reads LightGBM's evaluation (the same trees bit for bit); with early
    stopping the rounds after the best one up to the stop are logged too."""
    from baselines.kmer import KmerLGBM, KmerLGBMConfig

    train = read_table(simulated_dir / "train_sequences.txt").subset(np.arange(800))
    config = KmerLGBMConfig(k_max=3, n_estimators=300, learning_rate=0.5, early_stopping_rounds=3, n_jobs=1)
    plain = KmerLGBM(config, seed=1)
    plain.fit(train)
    logged = KmerLGBM(config, seed=1, work_dir=tmp_path / "work")
    logged.fit(train)
    assert logged.booster_.model_to_string() == plain.booster_.model_to_string()
    frame = _csv(tmp_path / "work" / "metrics.csv")
    assert logged.best_iteration_ < 300  # early stopping stopped it
    assert len(frame) == logged.best_iteration_ + 3
    assert frame["valid_l2"][logged.best_iteration_ - 1] == logged.best_score_

    no_valid = KmerLGBMConfig(k_max=3, n_estimators=7, early_stopping_rounds=0, n_jobs=1)
    bare, kept = KmerLGBM(no_valid, seed=1), KmerLGBM(no_valid, seed=1, work_dir=tmp_path / "w2")
    bare.fit(train)
    kept.fit(train)
    assert kept.booster_.model_to_string() == bare.booster_.model_to_string()
    assert list(_csv(tmp_path / "w2" / "metrics.csv").columns) == ["epoch", "step", "train_l2"]


def test_resume_with_other_loggers_keeps_the_run_and_refuses_a_missing_package(kmer_run, tmp_path, monkeypatch,
                                                                              simulated_dir):
    """--logger is a runtime choice: the same run directory resumes with another one (every fold
    skipped); a logger whose package is missing is refused before anything is written."""
    import shutil

    out = tmp_path / "run"
    shutil.copytree(kmer_run, out)
    console = Console(file=io.StringIO(), width=200)
    run(RunSpec(["kmer-lgbm", "kmer-ridge"], simulated_dir, split=SplitSpec("kfold", folds=2, seed=3),
                profile="tiny", out=out, loggers=("csv", "mlflow") if _has("mlflow") else ("csv",)), console)
    assert console.file.getvalue().count("done and verified, skipped (resume)") == 4

    _hide(monkeypatch, "mlflow")
    fresh = tmp_path / "fresh"
    with pytest.raises(LoggerUnavailable, match=r"--logger mlflow needs the 'mlflow' package.*pip install mlflow"):
        run(RunSpec(["kmer-ridge"], simulated_dir, profile="tiny", out=fresh, loggers=("mlflow",)), _quiet())
    assert not fresh.exists()


# ----- kircherlab (Keras) ----------------------------------------------------------------------
def test_runner_keeps_each_epochs_metrics_of_kircherlab(simulated_dir, tmp_path):
    pytest.importorskip("tensorflow")
    out = tmp_path / "run"
    run(RunSpec(["kircherlab"], simulated_dir, split=SplitSpec("holdout", holdout_fraction=0.2, seed=0),
                profile="tiny", out=out, device="cpu"), _quiet())
    fold = out / "methods" / "kircherlab" / "fold0"
    frame = _csv(fold / "logs" / "metrics.csv")
    history = json.loads((fold / "model" / "history.json").read_text())["history"]
    assert len(frame) == len(history) == 1  # tiny profile: one epoch
    assert frame["epoch"].tolist() == [0] and frame["step"][0] > 0
    for name in ("loss", "val_loss", "mse", "val_mse", "mae", "acc", "val_acc"):
        assert frame[name][0] == history[0][name], name


def test_keras_callback_writes_a_row_per_epoch_and_the_optimizer_steps(simulated_dir, tmp_path):
    pytest.importorskip("tensorflow")
    from submissions.kircherlab import KircherLab

    train = read_table(simulated_dir / "train_sequences.txt").subset(np.arange(600))
    cls = KircherLab
    config = cls.Config(**{**_tiny(cls), "max_epochs": 2, "patience": 5})
    method = cls(config, seed=0, device="cpu", work_dir=tmp_path / "work")
    method.fit(train)
    frame = _csv(tmp_path / "work" / "metrics.csv")
    assert frame["epoch"].tolist() == [0, 1]
    steps = frame["step"].tolist()
    assert steps[1] == 2 * steps[0] > 0  # the same number of batches each epoch
    np.testing.assert_array_equal(frame["val_loss"], [h["val_loss"] for h in method.history])


def _tiny(cls) -> dict:
    import dataclasses

    from harness import registry

    return dataclasses.asdict(registry.load_profile(cls, "tiny").config)


# ----- MetricLog --------------------------------------------------------------------------------
def test_csv_gets_a_column_for_a_metric_that_appears_later(tmp_path):
    with open_metric_log(tmp_path, ("csv",), "t") as log:
        log.log(10, {"loss": 1.5}, epoch=0)
        log.log(20, {"loss": np.float32(1.25), "val_loss": 2.0}, epoch=1)
        log.log(30, {"loss": 1.0, "val_loss": None, "lr": float("nan")}, epoch=2)
        mid = (tmp_path / "metrics.csv").read_text()
    assert mid.splitlines()[0] == "epoch,step,loss,val_loss,lr"  # rewritten when "lr" appeared
    frame = _csv(tmp_path / "metrics.csv")
    assert frame["step"].tolist() == [10, 20, 30] and frame["epoch"].tolist() == [0, 1, 2]
    assert frame["loss"].tolist() == [1.5, 1.25, 1.0]
    assert np.isnan(frame["val_loss"][0]) and frame["val_loss"][1] == 2.0 and np.isnan(frame["val_loss"][2])
    assert np.isnan(frame["lr"][2]) and "nan" in (tmp_path / "metrics.csv").read_text().splitlines()[-1]
    with pytest.raises(RuntimeError, match="closed"):
        log.log(40, {"loss": 0.5})


def test_rows_are_appended_between_rewrites_and_exact(tmp_path):
    log = open_metric_log(tmp_path, ("csv",), "t")
    values = [0.1 + i / 3 for i in range(50)]
    for i, v in enumerate(values):
        log.log(i + 1, {"valid_l2": v})
        assert len((tmp_path / "metrics.csv").read_text().splitlines()) == i + 2  # visible while the fit runs
    log.close()
    with open(tmp_path / "metrics.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [float(r["valid_l2"]) for r in rows] == values  # repr: every float round-trips


def test_a_resumed_fit_keeps_earlier_rows_and_a_restarted_one_replaces_them(tmp_path):
    with open_metric_log(tmp_path, ("csv",), "t") as log:
        for epoch in range(4):
            log.log(100 * (epoch + 1), {"loss": 4.0 - epoch}, epoch=epoch)
    with (tmp_path / "metrics.csv").open("a") as fh:
        fh.write("4,500,0.")  # a line cut short by a crash
    with open_metric_log(tmp_path, ("csv",), "t") as log:  # resumed from the epoch-2 checkpoint
        log.log(300, {"loss": 1.5, "val_loss": 2.0}, epoch=2)
    frame = _csv(tmp_path / "metrics.csv")
    assert frame["epoch"].tolist() == [0, 1, 2] and frame["loss"].tolist() == [4.0, 3.0, 1.5]
    assert list(frame.columns) == ["epoch", "step", "loss", "val_loss"]
    with open_metric_log(tmp_path, ("csv",), "t") as log:  # the fit starts again from scratch
        log.log(100, {"loss": 9.0}, epoch=0)
    assert _csv(tmp_path / "metrics.csv")["loss"].tolist() == [9.0]


def test_without_a_work_dir_nothing_is_written_but_arguments_are_checked(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with open_metric_log(None, ("csv",), "t") as log:
        assert not log.active and log.csv_path is None
        log.log(1, {"loss": 1.0})
        with pytest.raises(ValueError, match="'step'"):
            log.log(2, {"step": 1.0})
        with pytest.raises(ValueError, match="step must be an integer >= 0"):
            log.log(-1, {"loss": 1.0})
        with pytest.raises(TypeError, match="metric 'loss': 'x' is not a number"):
            log.log(3, {"loss": "x"})
    assert list(tmp_path.iterdir()) == []


def test_check_loggers():
    assert LOGGERS == ("csv", "tensorboard", "mlflow")
    assert check_loggers(None) == ("csv",) and check_loggers(()) == ("csv",)
    assert check_loggers(["csv", "csv"]) == ("csv",)
    with pytest.raises(ValueError, match=r"unknown logger 'wandb': choose from csv, tensorboard, mlflow"):
        check_loggers(["wandb"])
    with pytest.raises(TypeError, match="logger names must be strings"):
        check_loggers([1])
    assert check_loggers(" CSV ,") == ("csv",)  # a comma-separated string; case and spaces ignored


@pytest.mark.parametrize("name, module", [("tensorboard", "tensorboard"), ("mlflow", "mlflow")])
def test_missing_package_is_named(monkeypatch, tmp_path, name, module):
    _hide(monkeypatch, module)
    with pytest.raises(ImportError, match=rf"--logger {name} needs the '{module}' package, which is not installed"
                                          rf".*pip install {module}, or pip install 'dream-harness\[tracking\]'"):
        check_loggers([name])
    with pytest.raises(LoggerUnavailable):
        open_metric_log(tmp_path / "w", ("csv", name), "t")
    assert not (tmp_path / "w").exists()


def test_cli_logger_option(monkeypatch, tmp_path):
    from harness.cli import main
    from harness.cli.run import run as run_cmd

    option = next(p for p in run_cmd.params if p.name == "loggers")
    assert tuple(option.type.choices) == LOGGERS and option.default == ("csv",) and option.multiple
    _hide(monkeypatch, "mlflow")
    result = CliRunner().invoke(main, ["run", "--methods", "kmer-ridge", "--profile", "tiny", "--logger", "mlflow",
                                       "--out", str(tmp_path / "run")])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "Error: --logger mlflow needs the 'mlflow' package" in result.output
    assert not (tmp_path / "run").exists()


def test_keep_logs_moves_the_logs_and_refuses_links(tmp_path):
    work, dest = tmp_path / "fold0" / "work", tmp_path / "fold0" / "logs"
    work.mkdir(parents=True)
    assert keep_logs(work, dest, tmp_path) is None and not dest.exists()  # a fit that logged nothing
    (work / "metrics.csv").write_text("epoch,step\n")
    (work / "tensorboard").mkdir()
    (work / "tensorboard" / "events").write_text("x")
    (work / "checkpoint.pt").write_text("c")
    dest.mkdir()
    (dest / "old.csv").write_text("stale")
    assert keep_logs(work, dest, tmp_path) == dest
    assert sorted(p.name for p in dest.iterdir()) == ["metrics.csv", "tensorboard"]  # earlier logs replaced
    assert (work / "checkpoint.pt").exists() and not (work / "metrics.csv").exists()
    outside = tmp_path / "outside.csv"
    outside.write_text("not the run's")
    (work / "metrics.csv").symlink_to(outside)
    with pytest.raises(UnsafePath, match="symbolic link"):
        keep_logs(work, dest, tmp_path)
    assert outside.read_text() == "not the run's" and (dest / "metrics.csv").exists()


def test_method_run_name():
    class Fake:
        name = "kmer-lgbm"
        work_dir = Path("runs/r1/methods/kmer-lgbm/fold2/work")

    assert method_run_name(Fake()) == "r1/kmer-lgbm/fold2"
    Fake.work_dir = None
    assert method_run_name(Fake()) == "kmer-lgbm"


# ----- TensorBoard and MLflow, where installed --------------------------------------------------
def _has(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def test_tensorboard_gets_the_same_metrics(simulated_dir, tmp_path):
    pytest.importorskip("tensorboard")
    out = tmp_path / "run"
    run(RunSpec(["kmer-lgbm"], simulated_dir, split=SplitSpec("holdout", holdout_fraction=0.2, seed=0),
                profile="tiny", out=out, loggers=("tensorboard",)), _quiet())
    logs = out / "methods" / "kmer-lgbm" / "fold0" / "logs"
    frame = _csv(logs / "metrics.csv")
    scalars = _events(logs / "tensorboard")
    assert set(scalars) == {"train_l2", "valid_l2"}  # boosting rounds: no epoch series
    assert [s for s, _ in scalars["valid_l2"]] == frame["step"].tolist()
    np.testing.assert_allclose([v for _, v in scalars["valid_l2"]], frame["valid_l2"], rtol=1e-6)  # float32


def test_tensorboard_events_are_written_without_importing_tensorflow(tmp_path):
    """tensorboard's own writers import TensorFlow where it is installed (10+ s in a LightGBM fold
    process); the event file here is written without it, and TensorBoard reads it."""
    import subprocess

    pytest.importorskip("tensorboard")
    code = ("import sys; from harness.tracking import open_metric_log\n"
            f"with open_metric_log({str(tmp_path)!r}, ('tensorboard',), 't') as log:\n"
            "    log.log(5, {'loss': 0.25}, epoch=0)\n"
            "    log.log(9, {'loss': 0.125}, epoch=1)\n"
            "assert 'tensorflow' not in sys.modules and 'torch' not in sys.modules, 'imported'\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert _events(tmp_path / "tensorboard") == {"loss": [(5, 0.25), (9, 0.125)], "epoch": [(5, 0.0), (9, 1.0)]}


def test_mlflow_gets_the_same_metrics(tmp_path, monkeypatch):
    pytest.importorskip("mlflow")
    from mlflow import MlflowClient

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)
    monkeypatch.chdir(tmp_path)  # nothing may land in the working directory
    work = tmp_path / "runs" / "r" / "methods" / "m" / "fold0" / "work"
    with open_metric_log(work, ("csv", "mlflow"), "r/m/fold0") as log:
        for epoch in range(3):
            log.log(10 * (epoch + 1), {"loss": 1.0 / (epoch + 1), "val_loss": 2.0 - epoch}, epoch=epoch)
    client = MlflowClient(tracking_uri=f"sqlite:///{work / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("dream-harness")
    (found,) = client.search_runs([experiment.experiment_id])
    assert found.info.run_name == "r/m/fold0" and found.info.status == "FINISHED"
    history = client.get_metric_history(found.info.run_id, "val_loss")
    assert [(m.step, m.value) for m in sorted(history, key=lambda m: m.step)] == [(10, 2.0), (20, 1.0), (30, 0.0)]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs"]


def test_pytorch_fit_logs_every_epoch_also_across_a_resume(tmp_path, monkeypatch):
    """A Lightning fit (harness.training) writes each epoch's record to the same metric log as the
    other frameworks; a fit interrupted after epoch 2 and resumed from its checkpoint leaves one
    row per epoch, equal to the uninterrupted fit's."""
    import torch
    from torch import nn

    from harness import training

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    rng = np.random.default_rng(0)
    x = rng.integers(0, 4, (96, 12)).astype(np.uint8)
    y = (x == 2).sum(1).astype(np.float32)

    class Stop(Exception):
        pass

    def fit(work, callbacks=()):
        torch.manual_seed(0)
        net = nn.Sequential(nn.Conv1d(4, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(48, 1), nn.Flatten(0))
        cfg = training.TrainConfig(batch_size=32, max_epochs=4, patience=None, progress=False)
        wanted = ("csv",) + (("tensorboard",) if _has("tensorboard") else ())
        trainer = training.SeqTrainer(net, nn.MSELoss(), lambda m: torch.optim.SGD(m.parameters(), lr=1e-3),
                                      config=cfg, device="cpu", checkpoint_dir=work / "checkpoints", log_dir=work,
                                      loggers=wanted, run_name="r/m/fold0", callbacks=callbacks)
        return trainer.fit(x[:64], y[:64], x[64:], y[64:])

    full = fit(tmp_path / "full")

    def stop(rec):
        if rec["epoch"] == 3:
            raise Stop

    with pytest.raises(Stop):
        fit(tmp_path / "cut", [stop])
    fit(tmp_path / "cut")
    frames = {name: _csv(tmp_path / name / "metrics.csv") for name in ("full", "cut")}
    for frame in frames.values():
        assert frame["epoch"].tolist() == [0, 1, 2, 3] and frame["step"].tolist() == [2, 4, 6, 8]
        assert {"train_loss", "valid_loss", "valid_r", "lr", "seqs_per_s"} <= set(frame.columns)
    assert frames["cut"]["train_loss"].tolist() == frames["full"]["train_loss"].tolist()
    assert frames["full"]["valid_loss"].tolist() == pytest.approx([h["valid_loss"] for h in full])
    if _has("tensorboard"):
        assert [s for s, _ in _events(tmp_path / "full" / "tensorboard")["train_loss"]] == [2, 4, 6, 8]


# ----- harness tune --logger -------------------------------------------------------------------
def test_tune_keeps_each_trials_logs_only_when_asked(simulated_dir, tmp_path, monkeypatch):
    from harness.tune import TuneSpec, tune

    monkeypatch.chdir(tmp_path)  # runs/tune/<study>/ is relative to the working directory
    train = simulated_dir / "train_sequences.txt"
    common = {"train": train, "profile": "tiny", "storage": "memory", "base_trial": False,
              "config_dir": tmp_path / "configs", "overrides": {"n_estimators": 5}}
    tune(TuneSpec("kmer-lgbm", 2, study_name="plain", **common), _quiet())
    assert not (tmp_path / "runs" / "tune" / "plain").exists()  # default: no logs, no work directory
    tune(TuneSpec("kmer-lgbm", 2, study_name="logged", loggers=("csv",), **common), _quiet())
    root = tmp_path / "runs" / "tune" / "logged"
    assert sorted(p.name for p in root.iterdir()) == ["trial0", "trial1"]
    for trial in root.iterdir():
        assert [p.name for p in trial.iterdir()] == ["logs"]  # the work directory is gone
        frame = _csv(trial / "logs" / "metrics.csv")
        assert frame["step"].tolist() == list(range(1, len(frame) + 1)) and 1 <= len(frame) <= 5
    with pytest.raises(ValueError, match="unknown logger"):
        tune(TuneSpec("kmer-lgbm", 1, study_name="bad", loggers=("wandb",), **common), _quiet())
