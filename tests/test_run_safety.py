"""Run-directory safety and fail-fast checks of ``harness run`` (issue 13).

A run directory is never trusted: links inside it are refused (never followed, nothing outside is
deleted or overwritten), ``--out`` onto another program's directory is refused before anything is
written, a fold is skipped on resume only when its files match the digests of its ``done.json``,
a fold's model is verified before it is loaded, one process at a time works in a directory, and
the workers of ``--jobs N`` stop with their driver. Arguments that cannot work are refused before
the run directory is made, each with one line naming the option or file.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from rich.console import Console

from conftest import process_alive
from harness.cli import main
from harness.data.encoding import gc_content
from harness.integrity import IntegrityError
from harness.io import DirLock, LockedError, UnsafePath, read_json
from harness.method import Method, MethodConfig
from harness.registry import register
from harness.rundir import verified_model_dir
from harness.runner import RunDirError, RunSpec, run
from harness.splits import SplitSpec

METHOD = "test-safety-gc"
FITS: list[int] = []  # seeds of the fits run in this process


@dataclass
class SafetyConfig(MethodConfig):
    ridge: float = 0.0
    sleep: float = 0.0  # seconds each fit sleeps (the driver-kill test)
    log: str = ""  # file a fit appends "start <seed> <pid>" / "end <seed> <pid>" to


@register(METHOD)
class SafetyGc(Method):
    """Least squares on GC fraction and length: a real, instant fit. Lives in this module, so
    worker processes import it by name."""

    Config = SafetyConfig
    profiles = {"other": {"ridge": 1.0}}

    def fit(self, train, valid=None):
        self._log("start")
        time.sleep(self.config.sleep)
        FITS.append(self.seed)
        x = self._x(train)
        self.coef = np.linalg.solve(x.T @ x + self.config.ridge * np.eye(3), x.T @ train.y.astype(np.float64))
        self._log("end")

    def _log(self, what):
        if self.config.log:
            with open(self.config.log, "a") as fh:
                fh.write(f"{what} {self.seed} {os.getpid()}\n")

    @staticmethod
    def _x(seqs):
        return np.c_[gc_content(seqs.codes), seqs.lengths, np.ones(len(seqs))]

    def predict(self, seqs):
        return self._x(seqs) @ self.coef

    def _save_state(self, path):
        np.save(path / "coef.npy", self.coef)

    def _load_state(self, path):
        self.coef = np.load(path / "coef.npy", allow_pickle=False)


def _spec(data: Path, out: Path, split: SplitSpec = SplitSpec("kfold", folds=2, seed=3), **kwargs) -> RunSpec:
    return RunSpec([METHOD], data, split=split, out=out, **kwargs)


def _console() -> tuple[Console, io.StringIO]:
    buf = io.StringIO()
    return Console(file=buf, width=300, color_system=None), buf


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _cli(*args):
    return CliRunner().invoke(main, ["run", "--methods", METHOD, *map(str, args)])


def _one_line_error(result, *needles: str) -> None:
    """Exit status 1, no traceback, one ``Error:`` line that contains every needle."""
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output and not isinstance(result.exception, (TypeError, AttributeError))
    lines = [line for line in result.output.splitlines() if line.startswith("Error: ")]
    assert len(lines) == 1, result.output
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


@pytest.fixture()
def finished(simulated_dir, tmp_path) -> Path:
    """A finished 2-fold run directory."""
    out = tmp_path / "run"
    run(_spec(simulated_dir, out), _console()[0])
    return out


# ----- links ----------------------------------------------------------------------------------
def test_symlinked_fold_is_refused_and_nothing_outside_is_touched(simulated_dir, finished, tmp_path):
    """Before: the harness rmtree-d ``elsewhere/model`` through the linked fold and wrote its files there."""
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "model").mkdir(parents=True)
    (elsewhere / "model" / "precious").write_text("keep me")
    (elsewhere / "keep.txt").write_text("keep me too")
    before = _tree(elsewhere)
    fold0 = finished / "methods" / METHOD / "fold0"
    for p in sorted(fold0.rglob("*"), reverse=True):
        p.rmdir() if p.is_dir() else p.unlink()
    fold0.rmdir()
    fold0.symlink_to(elsewhere, target_is_directory=True)

    with pytest.raises(UnsafePath, match=r"fold0: symbolic link inside .*run; the harness never follows links"):
        run(_spec(simulated_dir, finished), _console()[0])
    assert _tree(elsewhere) == before
    _one_line_error(_cli("--data", simulated_dir, "--split", "kfold", "--folds", 2, "--seed", 3, "--out", finished),
                    "fold0: symbolic link")
    assert _tree(elsewhere) == before


def test_symlinked_file_is_refused(simulated_dir, finished, tmp_path):
    outside = tmp_path / "outside.npy"
    np.save(outside, np.zeros(3))
    oof = finished / "methods" / METHOD / "fold1" / "oof.npy"
    oof.unlink()
    oof.symlink_to(outside)
    with pytest.raises(UnsafePath, match=r"fold1/oof.npy: symbolic link"):
        run(_spec(simulated_dir, finished), _console()[0])
    np.testing.assert_array_equal(np.load(outside), np.zeros(3))


# ----- --out ----------------------------------------------------------------------------------
def test_out_onto_a_foreign_directory_is_refused_before_any_write(simulated_dir, tmp_path):
    """Before: its run.json and leaderboard.json were overwritten."""
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "notes.txt").write_text("their data")
    before = _tree(theirs)
    with pytest.raises(RunDirError, match=r"theirs: not empty and not a harness run directory"):
        run(_spec(simulated_dir, theirs), _console()[0])
    assert _tree(theirs) == before  # not even a lock file

    for content in ("their run log\n", '{"owner": "someone else"}', "[1, 2]"):
        (theirs / "run.json").write_text(content)
        (theirs / "leaderboard.json").write_text("theirs")
        before = _tree(theirs)
        with pytest.raises(RunDirError, match=r"theirs/run.json: not a run.json written by the harness"):
            run(_spec(simulated_dir, theirs), _console()[0])
        assert _tree(theirs) == before
    _one_line_error(_cli("--data", simulated_dir, "--out", theirs),
                    "theirs/run.json: not a run.json written by the harness")
    assert _tree(theirs) == before


def test_empty_directory_and_older_run_json_are_accepted(simulated_dir, finished, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    run(_spec(simulated_dir, empty), _console()[0])
    assert read_json(empty / "run.json")["format"] == "dream-harness run"
    # a run directory of a harness version before the "format" key: recognised by versions.harness
    meta = read_json(finished / "run.json")
    del meta["format"]
    (finished / "run.json").write_text(json.dumps(meta))
    FITS.clear()
    run(_spec(simulated_dir, finished), _console()[0])
    assert FITS == []


def test_refused_resume_leaves_run_json_alone(simulated_dir, finished):
    """Before: run.json was rewritten with the refused run's settings before the refusal."""
    run_json = finished / "run.json"
    before = (run_json.read_bytes(), run_json.stat().st_mtime_ns)
    with pytest.raises(ValueError, match="another configuration"):
        run(_spec(simulated_dir, finished, profile="other"), _console()[0])
    with pytest.raises(ValueError, match="split for other"):
        run(_spec(simulated_dir, finished, split=SplitSpec("kfold", folds=2, seed=4)), _console()[0])
    assert (run_json.read_bytes(), run_json.stat().st_mtime_ns) == before


def test_unusable_out_is_one_line(simulated_dir, tmp_path):
    """Before: raw tracebacks (FileExistsError, NotADirectoryError, PermissionError, AttributeError)."""
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    _one_line_error(_cli("--data", simulated_dir, "--out", a_file), "a_file: exists and is not a directory")
    _one_line_error(_cli("--data", simulated_dir, "--out", a_file / "run"), "a_file/run: cannot create or write",
                    "Not a directory")
    if os.geteuid() == 0:  # root writes through file modes; /sys refuses everyone
        unwritable = Path("/sys/harness-test-run")
    else:
        ro = tmp_path / "ro"
        ro.mkdir(mode=0o555)
        unwritable = ro / "run"
    _one_line_error(_cli("--data", simulated_dir, "--out", unwritable), f"{unwritable}: cannot create or write")
    assert not unwritable.exists()


def test_split_json_not_an_object_is_one_line(simulated_dir, finished):
    (finished / "split.json").write_text("[1, 2]")
    _one_line_error(_cli("--data", simulated_dir, "--split", "kfold", "--folds", 2, "--seed", 3, "--out", finished),
                    "split.json: expected a JSON object, found list")
    (finished / "split.json").write_text("{bad")
    _one_line_error(_cli("--data", simulated_dir, "--split", "kfold", "--folds", 2, "--seed", 3, "--out", finished),
                    "split.json: not valid JSON")


# ----- verified resume ------------------------------------------------------------------------
def test_bad_fold_files_are_redone_and_named(simulated_dir, finished):
    """Before: done.json was trusted; the run ended in "Aborted!" (truncated) or a nameless
    FileNotFoundError (deleted). Now each bad fold is redone and the console names the file."""
    method_dir = finished / "methods" / METHOD
    reference = {k: np.load(method_dir / f"fold{k}" / "oof.npy") for k in range(2)}
    spec = _spec(simulated_dir, finished)

    (method_dir / "fold0" / "oof.npy").write_bytes(b"")  # truncated
    (method_dir / "fold1" / "test.npy").unlink()  # deleted
    FITS.clear()
    console, buf = _console()
    run(spec, console)
    text = buf.getvalue()
    assert "fold 1/2: " in text and "fold0/oof.npy: 0 bytes" in text
    assert "truncated or changed); redoing the fold" in text
    assert "fold1/test.npy: missing or not a regular file; redoing the fold" in text
    assert sorted(FITS) == [3, 4]
    for k in range(2):
        np.testing.assert_array_equal(np.load(method_dir / f"fold{k}" / "oof.npy"), reference[k])

    # a model file changed, same size: the digest catches it; the other fold is skipped as verified
    coef = method_dir / "fold1" / "model" / "coef.npy"
    data = bytearray(coef.read_bytes())
    data[-1] ^= 1
    coef.write_bytes(bytes(data))
    FITS.clear()
    console, buf = _console()
    run(spec, console)
    assert "fold1/model/coef.npy: content differs from what the harness wrote" in buf.getvalue()
    assert "fold 1/2: done and verified, skipped" in buf.getvalue()
    assert FITS == [4]

    # a fold of an older harness version (no manifest in done.json) is unverifiable: redone
    done = read_json(method_dir / "fold0" / "done.json")
    del done["files"]
    (method_dir / "fold0" / "done.json").write_text(json.dumps(done))
    FITS.clear()
    console, buf = _console()
    run(spec, console)
    assert "fold0/done.json: no file manifest (written by an older harness version)" in buf.getvalue()
    assert FITS == [3]
    assert set(read_json(method_dir / "fold0" / "done.json")["files"]) == {"oof.npy", "test.npy", "model/coef.npy",
                                                                           "model/method.json"}


def test_verified_model_dir_before_loading(finished, tmp_path):
    fold0 = finished / "methods" / METHOD / "fold0"
    model_dir = verified_model_dir(fold0)
    assert model_dir == fold0 / "model"
    assert SafetyGc.load(model_dir).coef.shape == (3,)

    (model_dir / "extra.pkl").write_bytes(b"planted")
    with pytest.raises(IntegrityError, match=r"model/extra.pkl: not a file the harness saved"):
        verified_model_dir(fold0)
    (model_dir / "extra.pkl").unlink()
    (model_dir / "coef.npy").write_bytes(b"short")
    with pytest.raises(IntegrityError, match=r"model/coef.npy: 5 bytes"):
        verified_model_dir(fold0)

    fold1 = finished / "methods" / METHOD / "fold1"
    (fold1 / "done.json").unlink()
    with pytest.raises(FileNotFoundError, match="the fold is not finished"):
        verified_model_dir(fold1)
    moved = tmp_path / "moved-model"
    (fold1 / "model").rename(moved)
    (fold1 / "model").symlink_to(moved, target_is_directory=True)
    with pytest.raises(UnsafePath, match=r"fold1/model: symbolic link"):
        verified_model_dir(fold1)


# ----- arguments that cannot work ---------------------------------------------------------------
def test_unavailable_device_fails_before_the_run_directory(simulated_dir, tmp_path, monkeypatch):
    """Before: the job failed inside the run (traceback panel, then "resume" advice)."""
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # this machine may have a GPU
    out = tmp_path / "run"
    with pytest.raises(ValueError, match=r"--device cuda: device 'cuda' was requested but CUDA is not available"):
        run(_spec(simulated_dir, out, device="cuda"), _console()[0])
    _one_line_error(_cli("--data", simulated_dir, "--device", "cuda", "--out", out),
                    "--device cuda", "use --device auto")
    assert not out.exists()


def test_impossible_arguments_are_refused_before_writing(simulated_dir, tmp_path):
    """Before: each made the run directory, then failed in scikit-learn's words (seed, folds,
    fraction) or not at all."""
    out = tmp_path / "run"
    tiny = tmp_path / "tiny.txt"
    tiny.write_text("".join(open(simulated_dir / "train_sequences.txt").readlines()[:3]))
    with pytest.raises(ValueError, match=r"--seed -1: must be in 0\.\."):
        run(_spec(simulated_dir, out, split=SplitSpec(seed=-1)), _console()[0])
    with pytest.raises(ValueError, match=r"--seed 4294967295: must be in 0\.\.4,294,967,294"):
        run(_spec(simulated_dir, out, split=SplitSpec("kfold", folds=2, seed=2**32 - 1)), _console()[0])
    with pytest.raises(ValueError, match=r"--folds 5: .*tiny.txt has 3 training rows, fewer than the folds"):
        run(RunSpec([METHOD], simulated_dir, tiny, split=SplitSpec("kfold", folds=5), out=out), _console()[0])
    with pytest.raises(ValueError, match=r"--holdout-fraction 0.9999: holds out 4,000 of the 4,000 training rows"):
        run(_spec(simulated_dir, out, split=SplitSpec(holdout_fraction=0.9999)), _console()[0])
    with pytest.raises(ValueError, match=r"holds out 2 of the 3 training rows .* leaving 1 to train on"):
        run(RunSpec([METHOD], simulated_dir, tiny, split=SplitSpec(holdout_fraction=0.5), out=out), _console()[0])
    with pytest.raises(ValueError, match=r"--jobs 0: must be at least 1"):
        run(_spec(simulated_dir, out, jobs=0), _console()[0])
    result = _cli("--data", simulated_dir, "--seed", -1, "--out", out)
    assert result.exit_code == 2 and "'--seed': -1 is not in the range" in result.output
    _one_line_error(_cli("--data", simulated_dir, "--holdout-fraction", 0.9999, "--out", out),
                    "--holdout-fraction 0.9999", "leaving 0 to train on")
    assert not out.exists()


def test_unknown_profile_is_refused_before_the_run_directory(simulated_dir, tmp_path):
    """Before: ``--profile cpuu`` silently ran the defaults (for a team plug-in, the full paper model)."""
    out = tmp_path / "run"
    _one_line_error(_cli("--data", simulated_dir, "--profile", "cpuu", "--out", out),
                    "has no profile 'cpuu'", "its profiles:", "other")
    assert not out.exists()


# ----- one process per run directory -----------------------------------------------------------
def test_live_lock_is_refused_and_a_stale_one_taken_over(simulated_dir, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    with DirLock(out, "run.lock"):  # a live holder (this process, another descriptor)
        with pytest.raises(LockedError,
                           match=rf"another harness process is using this run directory \(pid {os.getpid()} on "):
            run(_spec(simulated_dir, out), _console()[0])
        _one_line_error(_cli("--data", simulated_dir, "--split", "kfold", "--folds", 2, "--seed", 3, "--out", out),
                        f"pid {os.getpid()}", "wait for it to finish or stop it")
    assert not (out / "run.json").exists()

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (out / "run.lock").write_text(json.dumps({"pid": dead.pid, "host": "somewhere", "started": "earlier"}))
    console, buf = _console()
    run(_spec(simulated_dir, out), console)  # the lock file of a process that died holding it
    assert (f"taking over the lock of a run that ended without releasing it (pid {dead.pid} on somewhere"
            in buf.getvalue())
    assert (out / "run.lock").read_text() == ""  # released at the end


DRIVER = textwrap.dedent("""
    import sys
    sys.path.insert(0, {tests!r})
    from pathlib import Path
    import test_run_safety as t
    from harness.runner import RunSpec, run
    from harness.splits import SplitSpec
    run(RunSpec([t.METHOD], Path({data!r}), split=SplitSpec("kfold", folds=6), out=Path({out!r}), jobs=2,
                config_dir=Path({configs!r})))
""")


def _starts(log: Path) -> list[tuple[str, int, int]]:
    if not log.exists():
        return []
    return [(w, int(s), int(p)) for w, s, p in (line.split() for line in log.read_text().splitlines())]




@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_workers_stop_with_their_driver(sig, simulated_dir, tmp_path):
    """Before: after SIGTERM/SIGKILL of the driver of ``--jobs 2``, the loky workers went on with
    the queued jobs for minutes. Now none starts another job, and they are gone within seconds."""
    log, configs = tmp_path / "fits.log", tmp_path / "configs"
    configs.mkdir()
    (configs / f"{METHOD}.toml").write_text(f'[default]\nsleep = 4.0\nlog = "{log}"\n')
    code = DRIVER.format(tests=str(Path(__file__).parent), data=str(simulated_dir), out=str(tmp_path / "run"),
                         configs=str(configs))
    driver = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 120
        while len(_starts(log)) < 2:  # both workers are fitting
            assert driver.poll() is None, driver.stdout.read()
            assert time.monotonic() < deadline, "the workers did not start within 120 s"
            time.sleep(0.1)
        driver.send_signal(sig)
        output = driver.communicate(timeout=60)[0]
        workers = {p for _, _, p in _starts(log)}
        deadline = time.monotonic() + 10
        while any(process_alive(p) for p in workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(process_alive(p) for p in workers), "workers outlived their driver"
        time.sleep(1)
        assert [w for w, *_ in _starts(log)] == ["start", "start"]  # no queued job started, none finished
        if sig == signal.SIGTERM:
            assert "terminated (SIGTERM): the local workers were stopped" in output
        assert not (tmp_path / "run" / "methods" / METHOD / "fold0" / "done.json").exists()
    finally:
        if driver.poll() is None:
            driver.kill()
