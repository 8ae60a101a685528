"""benchmarks/device_check.py: the GPU device check, run here in its CPU smoke mode.

The smoke run goes through the same code as the GPU check (the plug-ins' trainers and ``fit``, the
probe, the projections, the report) on tiny shapes; the other tests pin the arithmetic of the
projections (the recipe read from each plug-in's paper config, the 8-GPU placement) and the
profile fallback, which the smoke numbers cannot show.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import device_check  # noqa: E402

FULL_ROWS = 6_739_258


def test_smoke_run_writes_every_row(tmp_path):
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "device_check.py"), "--smoke", "--device", "cpu",
                           "--out", str(out)], capture_output=True, text=True, timeout=280, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((out / "device_check.json").read_text())
    md = (out / "device_check.md").read_text()

    assert report["smoke"] is True and report["complete"] is True and report["device"] == "cpu"
    rows = {(r["method"], r["profile"]): r for r in report["rows"]}
    assert set(rows) == {(m, p) for m in device_check.METHODS for p in ("paper", "paper-fast")}
    for (method, profile), row in rows.items():
        assert not row.get("error") and not row.get("skipped"), row
        assert row["precision"] == "fp32" and row["compile"] == "off"  # CPU: autocast off; smoke: compile off
        assert row["batch_size"] <= device_check.SMOKE_BATCH
        assert 0 < row["seqs_per_s"] < 1e6 and 0 < row["predict_seqs_per_s"] < 1e7
        assert row["timed_seqs"] >= row["batch_size"] and row["train_seconds"] > 0
        assert row["peak_memory_bytes"] > 0 and row["memory_kind"] == "peak_rss"
        assert row["gpu_utilisation"]["source"] is None  # no GPU: reported as not measured
        assert 0.9 < row["kept_fraction"] <= 1.0
        assert f"| {method} | {profile} | fp32 | off |" in md

    probe = report["probe"]
    assert probe["passed"] and probe["loss_falls"] and probe["compare"]["agree"]
    assert probe["history"][-1]["train_loss"] < probe["history"][0]["train_loss"]
    assert probe["compare"]["max_abs_diff"] == 0.0  # CPU vs CPU: the same numbers
    assert "Probe: **passed**" in md

    full = {(e["method"], e["profile"]) for e in report["projections"]["full_paper_training"]}
    assert full == set(rows)
    for profile in ("paper", "paper-fast"):
        kf = report["projections"]["kfold5"][profile]
        assert kf["complete"] and sorted(kf["methods"]) == sorted(device_check.METHODS)
        assert kf["gpus_1_hours"] / 8 <= kf["gpus_8_hours"] <= kf["gpus_1_hours"]
        assert kf["gpus_8_hours"] >= max(kf["per_fold_hours"].values())
        assert f"--profile {profile} --device cuda" in md
    assert len(report["targets"]) == 2 + len(rows)
    assert "LegNet paper full training" in md and "8 GPUs" in md and "SMOKE" in md


def _row(method: str, fold_hours: float) -> dict:
    recipe = {"rows": FULL_ROWS, "epochs": 1, "steps_per_epoch": 1, "batch_size": 1,
              "train_seqs": int(fold_hours * 3600), "valid_seqs": 0}
    return {"method": method, "profile": "paper", "precision": "fp32", "compile": "off", "seqs_per_s": 1.0,
            "predict_seqs_per_s": 1e30, "recipe_full": recipe, "recipe_fold": recipe}


def test_projection_places_twenty_jobs_on_eight_gpus():
    hours = {"legnet": 1.0, "camformers": 2.0, "bhi": 3.0, "highschoolers": 4.0}
    kf = device_check.project([_row(m, h) for m, h in hours.items()], n_test=71_103)["kfold5"]["paper"]
    assert kf["per_fold_hours"] == pytest.approx(hours)
    assert kf["gpus_1_hours"] == pytest.approx(50.0)  # 5 folds x (1 + 2 + 3 + 4)
    # longest first: 4,4,4,4,4,3,3,3 | 3,3 -> 6,6 | 2s -> 5,6,6,6,6 | 1s -> 6,6,7,7: makespan 7 (lower bound 6.25)
    assert kf["gpus_8_hours"] == pytest.approx(7.0)
    assert kf["complete"]


def test_projection_leaves_out_failed_rows():
    rows = [_row("legnet", 2.0), {"method": "bhi", "profile": "paper", "error": "RuntimeError: boom"},
            {"method": "camformers", "profile": "paper", "skipped": "budget"}]
    projections = device_check.project(rows, n_test=71_103)
    assert [e["method"] for e in projections["full_paper_training"]] == ["legnet"]
    assert projections["kfold5"]["paper"]["complete"] is False
    met = {t["target"]: t["met"] for t in device_check.targets(rows, projections)}
    assert met["LegNet paper full training <= 1 h"] is False  # 2 h (the same recipe stands for the full file here)
    assert any(k.startswith("Camformers") and v is None for k, v in met.items())  # not measured: n/a, not a pass


def _recipe(name: str, n_rows: int = FULL_ROWS) -> tuple[dict, object]:
    config, _ = device_check.resolve_config(name, "paper", smoke=False)
    method = device_check.ADAPTERS[name].cls()(config, seed=0, device="cpu")
    return device_check.recipe(name, method, method.make_trainer(), n_rows, kept_fraction=1.0), config


def test_recipe_legnet_paper_is_80_epochs_of_1000_batches():
    recipe, _ = _recipe("legnet")
    assert (recipe["epochs"], recipe["steps_per_epoch"], recipe["batch_size"]) == (80, 1000, 1024)
    assert recipe["trainer_rows"] == 2 * FULL_ROWS  # reverse-complement doubling
    assert recipe["train_seqs"] == 81_920_000 and recipe["valid_seqs"] == 0


def test_recipe_reads_holdout_and_cadence_from_the_configs():
    cam, cfg = _recipe("camformers")
    valid = math.ceil(cfg.valid_fraction * FULL_ROWS)
    assert cam["valid_rows"] == valid and cam["trainer_rows"] == FULL_ROWS - valid
    assert cam["steps_per_epoch"] == (FULL_ROWS - valid) // cfg.batch_size  # drop_last
    assert cam["epochs"] == cfg.max_epochs and cam["validations"] == cfg.max_epochs

    hs, cfg = _recipe("highschoolers")
    epochs = cfg.train_epochs + cfg.finetune_epochs
    assert hs["valid_rows"] == int(cfg.valid_size) and hs["epochs"] == epochs
    assert hs["steps_per_epoch"] == cfg.slice_size // cfg.batch_size
    # validated after epochs 1, 1 + k, ... and always after the last one
    expected = len(range(1, epochs + 1, cfg.validate_every)) + (0 if (epochs - 1) % cfg.validate_every == 0 else 1)
    assert hs["validations"] == expected and hs["valid_seqs"] == expected * int(cfg.valid_size)

    bhi, cfg = _recipe("bhi")
    assert bhi["valid_rows"] == math.ceil(cfg.valid_fraction * FULL_ROWS)
    assert bhi["steps_per_epoch"] == bhi["trainer_rows"] // cfg.batch_size and bhi["epochs"] == cfg.max_epochs


def test_fast_profile_falls_back_to_paper_with_overrides(monkeypatch):
    import harness.registry

    config, note = device_check.resolve_config("legnet", "paper-fast", smoke=False)
    assert note == "" and config.progress is False  # the profile exists: used as it is

    monkeypatch.setattr(harness.registry, "profile_names", lambda cls, config_dir=None: ["cpu", "paper"])
    config, note = device_check.resolve_config("legnet", "paper-fast", smoke=False)
    assert (config.mixed_precision, config.compile) == ("auto", "default")
    assert "no [paper-fast] profile" in note
    small, note = device_check.resolve_config("legnet", "paper-fast", smoke=True)
    assert small.compile == "off" and small.mixed_precision == "auto" and small.batch_size <= device_check.SMOKE_BATCH
    assert "smoke" in note


def test_missing_package_prints_what_to_carry(monkeypatch, capsys):
    monkeypatch.setitem(device_check.REQUIRED, "no_such_module_xyz", "no-such-dist")
    with pytest.raises(SystemExit) as exc:
        device_check.main(["--smoke", "--device", "cpu", "--out", "unused"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "no-such-dist" in err and "pip download" in err and ".whl" in err and "--target /tmp/site" in err
