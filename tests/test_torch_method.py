"""Tests of the PyTorch plug-in base class (harness/torch_method.py) on a tiny network."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
import torch
from torch import nn

from harness.data.table import SeqTable
from harness.torch_method import (LEGACY_STATE_FILE, MODEL_FILE, STATE_FILE, FitData, TorchConfig, TorchMethod,
                                 json_safe)
from harness.training import one_hot_codes, predict_batches

pytestmark = pytest.mark.usefixtures("torch_single_thread")


@dataclasses.dataclass
class TinyConfig(TorchConfig):
    width: int = 6
    kernel: int = 3


class TinyNet(nn.Module):
    """``(B, 4, L)`` one-hot -> conv -> BatchNorm -> ReLU -> mean over L -> dense -> ``(B,)``."""

    def __init__(self, config: TinyConfig) -> None:
        super().__init__()
        self.conv = nn.Conv1d(4, config.width, config.kernel, padding="same")
        self.bn = nn.BatchNorm1d(config.width)
        self.out = nn.Linear(config.width, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(torch.relu(self.bn(self.conv(x))).mean(-1))[:, 0]


def _one_hot(x, y, training):
    return one_hot_codes(x), y


class Tiny(TorchMethod):
    """A minimal plug-in: a few SGD steps, one extra state field (with a NaN) beside the base's."""

    name = "tiny-torch"
    Config = TinyConfig
    Net = TinyNet

    def __init__(self, config=None, *, seed=0, device="auto", work_dir=None) -> None:
        super().__init__(config, seed=seed, device=device, work_dir=work_dir)
        self.extra: dict = {}

    def fit(self, train: SeqTable, valid: SeqTable | None = None) -> None:
        model = self.build_model()
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        x, y = one_hot_codes(torch.from_numpy(train.codes)), torch.from_numpy(train.y.astype(np.float32))
        for _ in range(3):  # train mode: BatchNorm running statistics (buffers) move too
            opt.zero_grad()
            nn.functional.mse_loss(model(x), y).backward()
            opt.step()
        self.model = model.eval()
        self.best_epoch = 2
        self.history = [{"epoch": 1, "valid_r": math.nan, "valid_loss": math.inf},
                        {"epoch": 2, "valid_r": 0.5, "valid_loss": 1.25}]
        self.extra = {"rows": len(train), "score": float("nan")}

    def predict(self, seqs: SeqTable) -> np.ndarray:
        model = self._fitted_model()
        with self._on_device() as device:
            return predict_batches(model, seqs.codes, 16, device, _one_hot)

    def _extra_state(self) -> dict:
        return {"extra": self.extra}

    def _restore_extra_state(self, state: dict) -> None:
        self.extra = state.get("extra", {})


def _table(n: int = 40, length: int = 12, seed: int = 0) -> SeqTable:
    rng = np.random.default_rng(seed)
    seqs = ["".join(rng.choice(list("ACGT"), length)) for _ in range(n)]
    return SeqTable.from_strings(seqs, rng.normal(size=n))


@pytest.fixture()
def fitted() -> Tiny:
    m = Tiny(TinyConfig(), seed=3, device="cpu")
    m.fit(_table())
    return m


def test_save_load_round_trip_gives_identical_predictions(fitted, tmp_path, save_and_load):
    test = _table(25, seed=1)
    loaded = save_and_load(fitted, test)  # same config, seed, best_epoch and predictions
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["method.json", MODEL_FILE, STATE_FILE]
    assert loaded.best_epoch == 2
    assert not loaded.model.training and all(p.device.type == "cpu" for p in loaded.model.parameters())
    for key, value in fitted.model.state_dict().items():  # weights and BatchNorm buffers
        torch.testing.assert_close(loaded.model.state_dict()[key], value, rtol=0, atol=0)
    pred = loaded.predict(test)
    assert pred.shape == (25,) and pred.dtype == np.float64
    # history and extra state come back, non-finite values as None
    assert loaded.history == [{"epoch": 1, "valid_r": None, "valid_loss": None},
                              {"epoch": 2, "valid_r": 0.5, "valid_loss": 1.25}]
    assert loaded.extra == {"rows": 40, "score": None}
    # the fitted method itself is unchanged by saving (NaN stays NaN in memory)
    assert math.isnan(fitted.history[0]["valid_r"])


def test_nan_history_written_as_null(fitted, tmp_path):
    fitted.save(tmp_path)
    text = (tmp_path / STATE_FILE).read_text()
    assert "NaN" not in text and "Infinity" not in text
    state = json.loads(text)
    assert state["best_epoch"] == 2 and state["extra"] == {"rows": 40, "score": None}
    assert state["history"][0] == {"epoch": 1, "valid_r": None, "valid_loss": None}


def test_save_before_fit_raises_and_writes_nothing(tmp_path):
    m = Tiny()
    with pytest.raises(RuntimeError, match="tiny-torch: save called before fit"):
        m.save(tmp_path / "m")
    assert not (tmp_path / "m" / MODEL_FILE).exists() and not (tmp_path / "m" / STATE_FILE).exists()
    with pytest.raises(RuntimeError, match="tiny-torch: predict called before fit/load"):
        m.predict(_table(3))


def test_extra_state_may_not_shadow_base_keys(fitted, tmp_path):
    fitted._extra_state = lambda: {"history": []}
    with pytest.raises(ValueError, match="history"):
        fitted.save(tmp_path)


def test_load_reads_legacy_state_file_or_none(fitted, tmp_path):
    test = _table(10, seed=2)
    fitted.save(tmp_path)
    (tmp_path / STATE_FILE).rename(tmp_path / LEGACY_STATE_FILE)  # the older plug-ins' name
    legacy = Tiny.load(tmp_path, device="cpu")
    assert legacy.best_epoch == 2 and legacy.extra["rows"] == 40
    (tmp_path / LEGACY_STATE_FILE).unlink()  # weights only: still loads, no history
    bare = Tiny.load(tmp_path, device="cpu")
    assert bare.best_epoch is None and bare.history == [] and bare.extra == {}
    np.testing.assert_array_equal(bare.predict(test), fitted.predict(test))


def test_num_parameters_build_model_and_defaults(tmp_path):
    m = Tiny(TinyConfig(width=5), seed=1, work_dir=tmp_path)
    assert m.framework == "pytorch" and m.model is None and m.history == [] and m.best_epoch is None
    # conv 4*5*3 + 5, BatchNorm 2*5 (running statistics are buffers, not parameters), dense 5 + 1
    assert m.num_parameters() == 65 + 10 + 6
    net = m.build_model()
    assert isinstance(net, TinyNet) and net.training
    assert sum(p.numel() for p in net.parameters() if p.requires_grad) == m.num_parameters()
    # seeded: same seed, same initial weights; another seed, other weights
    torch.testing.assert_close(m.build_model().conv.weight, net.conv.weight, rtol=0, atol=0)
    assert not torch.equal(Tiny(TinyConfig(width=5), seed=2).build_model().conv.weight, net.conv.weight)
    assert m.checkpoint_dir == tmp_path / "checkpoints" and Tiny().checkpoint_dir is None


def test_json_safe():
    rec = {"a": math.nan, "b": [1.0, -math.inf, (np.float32("nan"), 2)], "c": {"d": np.float64(3.5)}, "e": "x"}
    assert json_safe(rec) == {"a": None, "b": [1.0, None, [None, 2]], "c": {"d": 3.5}, "e": "x"}
    assert json_safe([]) == [] and json_safe(None) is None


def test_runtime_settings_reach_the_train_config():
    method = Tiny(TinyConfig(eval_batch_size=64, mixed_precision="bf16", compile="max-autotune", progress=False),
                  seed=7)
    cfg = method.train_config(batch_size=16, max_epochs=3, patience=None)
    assert (cfg.batch_size, cfg.max_epochs, cfg.patience) == (16, 3, None)
    assert (cfg.eval_batch_size, cfg.mixed_precision, cfg.compile, cfg.progress, cfg.seed) == (
        64, "bf16", "max-autotune", False, 7)
    assert cfg.max_train_seconds == 0.0  # 0 = no budget
    assert Tiny(TinyConfig(max_train_seconds=30.0)).train_config().max_train_seconds == 30.0
    assert method.train_config(seed=1, progress=True).seed == 1  # the recipe may override


@pytest.mark.parametrize("field, value, message", [
    ("eval_batch_size", 0, "eval_batch_size must be >= 1"),
    ("mixed_precision", "fp8", "mixed_precision must be"),
    ("compile", "turbo", "compile must be 'off' or one of"),
    ("max_train_seconds", -1.0, "max_train_seconds must be >= 0"),
])
def test_bad_runtime_settings_are_refused(field, value, message):
    with pytest.raises(ValueError, match=message):
        TinyConfig(**{field: value})


def _write_marker(path: str) -> dict:
    with open(path, "w") as fh:
        fh.write("code from a saved model directory was executed\n")
    return {}


class _Planted:
    """Unpickling it (``torch.load(weights_only=False)``) calls :func:`_write_marker`."""

    def __init__(self, marker) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return _write_marker, (self.marker,)


def test_load_refuses_planted_truncated_or_linked_weights(fitted, tmp_path):
    saved, marker = tmp_path / "m", tmp_path / "marker.txt"
    fitted.save(saved)
    weights = saved / MODEL_FILE
    good = weights.read_bytes()
    torch.save({"conv.weight": _Planted(marker)}, weights)
    with pytest.raises(ValueError, match=rf"{weights}: not a weights file of tensors"):
        Tiny.load(saved, device="cpu")
    assert not marker.exists()
    weights.write_bytes(good[: len(good) // 2])
    with pytest.raises(ValueError, match=rf"{weights}: not a weights file of tensors"):
        Tiny.load(saved, device="cpu")
    torch.save([torch.zeros(2)], weights)  # tensors, but not a state dict
    with pytest.raises(ValueError, match="holds a list, not a state dict of tensors"):
        Tiny.load(saved, device="cpu")
    outside = tmp_path / "elsewhere.pt"
    outside.write_bytes(good)
    weights.unlink()
    weights.symlink_to(outside)
    with pytest.raises(FileNotFoundError, match="links are not followed"):
        Tiny.load(saved, device="cpu")


# ----- the template: a plug-in that declares hooks only ------------------------------------------
class Hooked(TorchMethod):
    """Declares its net, data preparation and loop hooks; fit/predict/make_trainer are the base's."""

    name = "hooked-torch"
    Config = TinyConfig
    Net = TinyNet

    def __init__(self, config=None, *, seed=0, device="auto", work_dir=None) -> None:
        super().__init__(config, seed=seed, device=device, work_dir=work_dir)
        self.calls: list = []

    def prepare_fit(self, train, valid):
        self.calls.append(("prepare_fit", len(train), valid is None))
        return FitData(train.codes[:, :10], train.y, train.codes[:8, :10], train.y[:8])

    def loop_settings(self, n_train=None):
        self.calls.append(("loop_settings", n_train))
        return dict(batch_size=8, max_epochs=2, patience=None, monitor="valid_loss")

    def make_optimizer(self, net):
        return torch.optim.SGD(net.parameters(), lr=0.05)

    def cpu_threads(self) -> int:
        return 1

    def after_fit(self, trainer, data):
        self.calls.append(("after_fit", trainer.best_epoch, data.n_train))

    def predict_inputs(self, seqs):
        return seqs.codes[:, :10]

    def postprocess(self, pred, seqs):
        return pred + 100.0


def test_template_fit_and_predict_run_the_declared_hooks():
    train = _table(40)
    m = Hooked(TinyConfig(progress=False), seed=1, device="cpu")
    seen = []
    m.epoch_callbacks.append(seen.append)
    before = torch.get_num_threads()
    m.fit(train)
    assert m.calls == [("prepare_fit", 40, True), ("loop_settings", 40), ("after_fit", m.best_epoch, 40)]
    assert [r["epoch"] for r in seen] == [1, 2] and len(m.history) == 2  # the trainer called the callbacks
    assert not m.model.training and all(p.device.type == "cpu" for p in m.model.parameters())
    assert torch.get_num_threads() == before  # cpu_threads() applied inside fit only
    pred = m.predict(_table(5, seed=3))
    assert pred.shape == (5,) and pred.dtype == np.float64 and (pred > 50).all()  # postprocess ran
    raw = predict_batches(m.model, _table(5, seed=3).codes[:, :10], 16, "cpu", _one_hot)
    np.testing.assert_array_equal(pred, raw + 100.0)


def test_make_trainer_is_the_declared_entry_point():
    m = Hooked(TinyConfig(progress=False, eval_batch_size=7), seed=0, device="cpu")
    trainer = m.make_trainer(n_train=123)
    assert m.calls == [("loop_settings", 123)]
    assert trainer.config.batch_size == 8 and trainer.config.eval_batch_size == 7 and trainer.config.seed == 0
    assert isinstance(trainer.model, TinyNet) and trainer.checkpoint_dir is None
    assert m.make_trainer(nn.Sequential(), checkpoint_dir="x").checkpoint_dir.name == "x"
    with pytest.raises(ValueError, match="hooked-torch.fit: training/validation tables need targets"):
        m.fit(SeqTable(_table(4).codes, _table(4).lengths))
