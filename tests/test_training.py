"""Tests of the PyTorch plug-ins' training on Lightning (harness/training.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from harness import training as tt
from harness.data import encoding


pytestmark = pytest.mark.usefixtures("torch_single_thread")


# ----------------------------------------------------------------------------------------------
# fixtures
# ----------------------------------------------------------------------------------------------
def _data(n: int = 192, length: int = 24, seed: int = 0, sign: float = 1.0):
    """Random codes with a learnable target: the number of G's (+ noise), times ``sign``."""
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, 4, size=(n, length)).astype(np.uint8)
    y = sign * (codes == encoding.G).sum(1).astype(np.float32) + rng.normal(0, 0.5, n).astype(np.float32)
    return codes, y.astype(np.float32)


class TinyNet(nn.Module):
    def __init__(self, dropout: float = 0.2) -> None:
        super().__init__()
        self.conv = nn.Conv1d(4, 8, 5, padding=2)
        self.bn = nn.BatchNorm1d(8)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(8, 1)

    def forward(self, x):
        h = self.drop(torch.relu(self.bn(self.conv(x))))
        return self.head(h.mean(-1))[:, 0]  # (B,)


def _model(seed: int = 0) -> TinyNet:
    torch.manual_seed(seed)
    return TinyNet()


def _adam(model):
    return torch.optim.AdamW(model.parameters(), lr=1e-2)


def _trainer(model=None, **kw) -> tt.SeqTrainer:
    cfg_keys = {f for f in tt.TrainConfig.__dataclass_fields__}
    cfg = tt.TrainConfig(**{"batch_size": 32, "max_epochs": 4, "patience": 10, "progress": False,
                            **{k: v for k, v in kw.items() if k in cfg_keys}})
    rest = {k: v for k, v in kw.items() if k not in cfg_keys}
    return tt.SeqTrainer(model if model is not None else _model(), nn.L1Loss(), rest.pop("optimizer_factory", _adam),
                      config=cfg, device="cpu", **rest)


def _same_state(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# ----------------------------------------------------------------------------------------------
# devices / precision / encoding
# ----------------------------------------------------------------------------------------------
def test_select_device_cpu_and_auto():
    assert tt.select_device("cpu") == torch.device("cpu")
    assert tt.select_device("CPU").type == "cpu"
    if not torch.cuda.is_available() and not tt._mps_available() and tt._xla_device(True) is None:
        assert tt.select_device("auto") == torch.device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA present")
@pytest.mark.parametrize("name", ["cuda", "gpu", "cuda:0"])
def test_select_device_missing_cuda_raises(name):
    with pytest.raises(RuntimeError, match=name):
        tt.select_device(name)


def test_select_device_missing_cuda_index_raises():
    with pytest.raises(RuntimeError, match="cuda:99"):
        tt.select_device("cuda:99")


def test_select_device_missing_tpu_and_mps_raise():
    if tt._xla_device(require_tpu=True) is None:
        with pytest.raises(RuntimeError, match="'tpu'.*no TPU"):
            tt.select_device("tpu")
    if not tt._mps_available():
        with pytest.raises(RuntimeError, match="'mps'"):
            tt.select_device("mps")


def test_select_device_unknown_name():
    with pytest.raises(ValueError, match="unknown device 'abacus'"):
        tt.select_device("abacus")


def test_resolve_precision():
    cpu = torch.device("cpu")
    assert tt.resolve_precision("auto", cpu) is None
    assert tt.resolve_precision("off", cpu) is None
    assert tt.resolve_precision("bf16", cpu) is torch.bfloat16
    with pytest.raises(ValueError, match="mixed_precision"):
        tt.resolve_precision("fp8", cpu)


def test_one_hot_codes_n_and_pad_are_zero():
    codes = torch.tensor([[0, 1, 2, 3, 4, 255]], dtype=torch.uint8)
    x = tt.one_hot_codes(codes)
    assert x.shape == (1, 4, 6) and x.dtype == torch.float32
    expected = np.zeros((4, 6), dtype=np.float32)
    expected[[0, 1, 2, 3], [0, 1, 2, 3]] = 1
    np.testing.assert_array_equal(x[0].numpy(), expected)
    # agrees with the numpy encoder
    rng = np.random.default_rng(1)
    c = rng.choice(np.array([0, 1, 2, 3, 4, 255], dtype=np.uint8), size=(5, 9))
    np.testing.assert_array_equal(tt.one_hot_codes(torch.from_numpy(c)).numpy(), encoding.one_hot(c))


# ----------------------------------------------------------------------------------------------
# training loop
# ----------------------------------------------------------------------------------------------
def test_fit_learns_and_reports_history():
    x, y = _data()
    xv, yv = _data(64, seed=1)
    trainer = _trainer(max_epochs=6)
    hist = trainer.fit(x, y, xv, yv)
    assert [h["epoch"] for h in hist] == list(range(1, 7))
    for key in ("train_loss", "valid_loss", "valid_r", "valid_rho", "train_r", "lr", "seconds", "seqs_per_s"):
        assert all(math.isfinite(h[key]) for h in hist), key
    assert hist[0]["n_seqs"] == len(x) and hist[0]["n_batches"] == math.ceil(len(x) / 32)
    assert hist[-1]["valid_loss"] < hist[0]["valid_loss"]
    assert max(h["valid_r"] for h in hist) > 0.5
    assert trainer.stop_reason == "max_epochs"
    pred = trainer.predict(xv)
    assert pred.shape == (64,) and pred.dtype == np.float64


def test_cpu_determinism_same_seed_same_weights():
    x, y = _data()
    xv, yv = _data(64, seed=1)
    a = _trainer(_model(3), max_epochs=2, seed=5)
    b = _trainer(_model(3), max_epochs=2, seed=5)
    c = _trainer(_model(3), max_epochs=2, seed=6)
    a.fit(x, y, xv, yv)
    b.fit(x, y, xv, yv)
    c.fit(x, y, xv, yv)
    assert _same_state(a.model.state_dict(), b.model.state_dict())
    assert not _same_state(a.model.state_dict(), c.model.state_dict())  # other shuffle + dropout


def test_early_stopping_keeps_best_weights():
    # validation targets are the negated training relation: fitting the training set makes the
    # monitored r + rho worse, so early stopping must fire and the best epoch's weights come back.
    x, y = _data()
    xv, yv = _data(64, seed=1, sign=-1.0)
    snapshots = {}
    trainer = _trainer(max_epochs=30, patience=3)
    trainer.callbacks.append(lambda rec: snapshots.__setitem__(rec["epoch"], {k: v.clone() for k, v in trainer.model.state_dict().items()}))
    hist = trainer.fit(x, y, xv, yv)
    scores = [h["valid_r"] + h["valid_rho"] for h in hist]
    assert trainer.stop_reason == "early_stopping"
    assert trainer.best_epoch == int(np.argmax(scores)) + 1
    assert len(hist) == trainer.best_epoch + 3  # patience epochs after the best
    assert _same_state(trainer.model.state_dict(), snapshots[trainer.best_epoch])
    assert not _same_state(trainer.model.state_dict(), snapshots[len(hist)])
    assert [h["improved"] for h in hist].count(True) >= 1


def test_min_mode_monitor_valid_loss():
    x, y = _data()
    xv, yv = _data(64, seed=1)
    trainer = _trainer(max_epochs=4, monitor="valid_loss")
    hist = trainer.fit(x, y, xv, yv)
    assert trainer.config.mode == "min"
    assert trainer.best_epoch == int(np.argmin([h["valid_loss"] for h in hist])) + 1
    with pytest.raises(ValueError, match="not_a_key"):  # refused before any training
        _trainer(max_epochs=1, monitor="not_a_key")


class _Interrupt(Exception):
    pass


def _plateau(opt, steps, epochs):
    return torch.optim.lr_scheduler.ReduceLROnPlateau(opt, patience=0, factor=0.5)


def test_checkpoint_resume_matches_uninterrupted(tmp_path):
    x, y = _data()
    xv, yv = _data(64, seed=1)
    common = dict(max_epochs=5, scheduler_factory=_plateau, seed=2)

    full = _trainer(_model(1), checkpoint_dir=tmp_path / "full", **common)
    full_hist = full.fit(x, y, xv, yv)

    def interrupt(rec):
        if rec["epoch"] == 2:
            raise _Interrupt

    first = _trainer(_model(1), checkpoint_dir=tmp_path / "cut", callbacks=[interrupt], **common)
    with pytest.raises(_Interrupt):
        first.fit(x, y, xv, yv)
    assert (tmp_path / "cut" / tt.CHECKPOINT_NAME).is_file()
    assert not list((tmp_path / "cut").glob(".*.tmp"))  # atomic write left no temporary file

    # a new process would build a fresh (differently initialised) model: the checkpoint wins
    resumed = _trainer(_model(99), checkpoint_dir=tmp_path / "cut", **common)
    hist = resumed.fit(x, y, xv, yv)
    assert [h["epoch"] for h in hist] == [1, 2, 3, 4, 5]
    for a, b in zip(hist, full_hist):
        for key in ("train_loss", "valid_loss", "valid_r", "lr", "improved", "best_epoch"):
            assert a[key] == b[key], (a["epoch"], key)
    assert resumed.best_epoch == full.best_epoch
    assert _same_state(resumed.model.state_dict(), full.model.state_dict())

    # a finished fit found again is not re-trained
    again = _trainer(_model(7), checkpoint_dir=tmp_path / "cut", **common)
    assert len(again.fit(x, y, xv, yv)) == 5
    assert _same_state(again.model.state_dict(), full.model.state_dict())


def test_checkpoint_of_other_data_is_ignored(tmp_path):
    x, y = _data()
    xv, yv = _data(64, seed=1)
    _trainer(max_epochs=1, checkpoint_dir=tmp_path).fit(x, y, xv, yv)
    with pytest.warns(UserWarning, match="another run"):
        hist = _trainer(max_epochs=1, checkpoint_dir=tmp_path).fit(x, y + 1, xv, yv)
    assert len(hist) == 1


def test_per_batch_vs_per_epoch_scheduler_stepping():
    x, y = _data(128)
    xv, yv = _data(64, seed=1)
    seen = {}

    def expo(opt, steps, epochs):
        seen["steps"], seen["epochs"] = steps, epochs
        return torch.optim.lr_scheduler.ExponentialLR(opt, gamma=0.5)

    per_epoch = _trainer(max_epochs=3, scheduler_factory=expo, scheduler_interval="epoch")
    lrs = [h["lr"] for h in per_epoch.fit(x, y, xv, yv)]
    assert seen == {"steps": 4, "epochs": 3}
    np.testing.assert_allclose(lrs, [1e-2, 5e-3, 2.5e-3])

    per_batch = _trainer(max_epochs=3, scheduler_factory=expo, scheduler_interval="batch")
    lrs = [h["lr"] for h in per_batch.fit(x, y, xv, yv)]
    np.testing.assert_allclose(lrs, [1e-2, 1e-2 * 0.5 ** 4, 1e-2 * 0.5 ** 8])

    # OneCycle sized from steps_per_epoch raises if stepped more often than planned
    onecycle = _trainer(max_epochs=3, scheduler_interval="batch", scheduler_factory=lambda opt, steps, epochs:
                        torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=1e-2, total_steps=steps * epochs))
    onecycle.fit(x, y, xv, yv)


def test_plateau_scheduler_gets_validation_loss():
    x, y = _data(128)
    xv, yv = _data(64, seed=1)
    metrics = []

    class Recording(torch.optim.lr_scheduler.ReduceLROnPlateau):
        def step(self, metrics_value, *args, **kwargs):
            metrics.append(metrics_value)
            return super().step(metrics_value, *args, **kwargs)

    trainer = _trainer(max_epochs=3, scheduler_factory=lambda opt, s, e: Recording(opt, patience=10))
    hist = trainer.fit(x, y, xv, yv)
    assert metrics == [h["valid_loss"] for h in hist]


def test_batch_and_time_caps():
    x, y = _data(256)
    xv, yv = _data(64, seed=1)
    hist = _trainer(max_epochs=2, max_batches_per_epoch=3).fit(x, y, xv, yv)
    assert [h["n_batches"] for h in hist] == [3, 3] and hist[0]["n_seqs"] == 96
    timed = _trainer(max_epochs=50, max_train_seconds=1e-6)
    hist = timed.fit(x, y, xv, yv)
    assert len(hist) == 1 and hist[0]["n_batches"] == 1 and timed.stop_reason == "time_limit"


def test_validate_every_k_epochs():
    x, y = _data()
    xv, yv = _data(64, seed=1)
    trainer = _trainer(max_epochs=8, validate_every=3)
    hist = trainer.fit(x, y, xv, yv)
    validated = [h["epoch"] for h in hist if math.isfinite(h["valid_r"])]
    assert validated == [1, 4, 7, 8]  # 1, 1 + k, ... and the last epoch
    assert not any(h["improved"] for h in hist if h["epoch"] not in validated)
    assert trainer.best_epoch in validated
    best = max((h for h in hist if h["epoch"] in validated), key=lambda h: h["valid_r"] + h["valid_rho"])
    assert trainer.best_epoch == best["epoch"]
    # patience counts validations, not epochs: validation r + rho getting worse every time
    xw, yw = _data(64, seed=1, sign=-1.0)
    stopped = _trainer(max_epochs=30, validate_every=2, patience=2)
    hist = stopped.fit(x, y, xw, yw)
    assert stopped.stop_reason == "early_stopping"
    checked = [h for h in hist if math.isfinite(h["valid_r"])]
    assert [h["epoch"] for h in checked] == list(range(1, hist[-1]["epoch"] + 1, 2))
    last_improved = max(i for i, h in enumerate(checked) if h["improved"])
    assert len(checked) - 1 - last_improved == 2  # stopped at the 2nd validation without improvement
    with pytest.raises(ValueError, match="validate_every"):
        tt.TrainConfig(validate_every=0)


def test_transform_hook_and_single_row_last_batch():
    # a transform that doubles the batch (reverse-complement augmentation style) plus a
    # to_prediction that averages the two halves back to (B,)
    x, y = _data(65)  # 65 = 2 x 32 + 1: the one-row tail batch is dropped
    calls = []

    def rc_transform(xb, yb, training):
        calls.append(training)
        rc = torch.flip(3 - xb.clamp(max=3), dims=[1]).to(torch.uint8)
        both = tt.one_hot_codes(torch.cat([xb, rc]))
        return both, (None if yb is None else torch.cat([yb, yb]))

    def average(out):
        half = len(out) // 2
        return (out[:half] + out[half:]) / 2

    trainer = _trainer(max_epochs=1, transform=rc_transform, to_prediction=average)
    hist = trainer.fit(x, y, x[:20], y[:20])
    assert hist[0]["n_seqs"] == 64 and math.isfinite(hist[0]["train_r"])
    assert True in calls and False in calls
    pred = trainer.predict(x[:5])
    assert pred.shape == (5,)


def test_predict_batches_batch_size_invariant():
    x, _ = _data(50)
    model = _model()
    a = tt.predict_batches(model, x, 7, "cpu")
    b = tt.predict_batches(model, x, 1000, "cpu")
    assert a.shape == (50,) and a.dtype == np.float64
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert model.training  # mode restored
    assert tt.predict_batches(model, x[:0], 8, "cpu").shape == (0,)

    class Column(nn.Module):  # (B, 1) outputs are flattened by the default to_prediction
        def forward(self, inputs):
            return inputs.sum(dim=(1, 2))[:, None]

    np.testing.assert_array_equal(tt.predict_batches(Column(), x, 16, "cpu"), (x < 4).sum(1))


def test_time_steps_reports_throughput():
    x, y = _data(64)
    res = _trainer().time_steps(x, y, steps=2, warmup=1)
    assert res["steps"] == 2 and len(res["step_seconds"]) == 2
    assert res["seqs_per_s"] > 0 and res["memory_kind"] == "peak_rss" and res["peak_memory_bytes"] > 0


# ----------------------------------------------------------------------------------------------
# speed settings: torch.compile and channels-last change the speed, not the training
# ----------------------------------------------------------------------------------------------
class TinyNet2d(nn.Module):
    """Camformers-like: one-hot as ``(B, 4, L, 1)``, a ``(5, 1)`` Conv2d."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(4, 8, (5, 1), padding=(2, 0))
        self.bn = nn.BatchNorm2d(8)
        self.head = nn.Linear(8, 1)

    def forward(self, x):
        return self.head(torch.relu(self.bn(self.conv(x))).mean((2, 3)))[:, 0]


def _as_2d(x, y, training):
    inputs, targets = tt.default_transform(x, y, training)
    return inputs.unsqueeze(-1), targets


def _sgd(model):
    """Plain SGD for the equivalence tests: Adam would turn the rounding noise of gradients that
    are zero in exact arithmetic (one-hot input channels sum to one, and BatchNorm removes a
    constant) into full-size steps."""
    return torch.optim.SGD(model.parameters(), lr=0.05)


def _close_state(a: dict, b: dict, atol: float) -> bool:
    return a.keys() == b.keys() and all(torch.allclose(a[k].float(), b[k].float(), atol=atol) for k in a)


def test_compile_trains_the_same_network():
    x, y = _data(128)
    xv, yv = _data(64, seed=1)
    # no dropout: inductor draws its own random numbers
    torch.manual_seed(0)
    plain = _trainer(TinyNet(dropout=0.0), max_epochs=2, optimizer_factory=_sgd)
    torch.manual_seed(0)
    compiled = _trainer(TinyNet(dropout=0.0), max_epochs=2, compile="default", optimizer_factory=_sgd)
    plain.fit(x, y, xv, yv)
    compiled.fit(x, y, xv, yv)
    # same parameters under the uncompiled names (no "_orig_mod." prefix), same training up to
    # the kernels' float rounding
    assert _close_state(plain.model.state_dict(), compiled.model.state_dict(), atol=1e-4)
    assert [h["valid_r"] for h in compiled.history] == pytest.approx([h["valid_r"] for h in plain.history], abs=1e-4)


def test_channels_last_trains_the_same_network():
    x, y = _data(128)
    xv, yv = _data(64, seed=1)
    runs = {}
    for flag in (False, True):
        torch.manual_seed(0)
        trainer = _trainer(TinyNet2d(), max_epochs=2, channels_last=flag, transform=_as_2d, optimizer_factory=_sgd)
        trainer.fit(x, y, xv, yv)
        runs[flag] = trainer
    assert runs[True].model.conv.weight.is_contiguous(memory_format=torch.channels_last)
    assert not runs[False].model.conv.weight.is_contiguous(memory_format=torch.channels_last)
    assert _close_state(runs[False].model.state_dict(), runs[True].model.state_dict(), atol=1e-4)
    # 3-D inputs pass through unchanged
    plain = torch.zeros(2, 4, 6)
    assert tt._channels_last(plain) is plain
    assert tt._channels_last((torch.zeros(2, 4, 6, 1),))[0].is_contiguous(memory_format=torch.channels_last)


def test_unknown_compile_mode_is_refused():
    with pytest.raises(ValueError, match="compile must be 'off' or one of default"):
        tt.TrainConfig(compile="fast")


def test_pearson_spearman_is_the_scorers_with_nan_when_undefined():
    from harness.scoring.scorer import pearson, spearman

    rng = np.random.default_rng(0)
    a, b = rng.normal(size=50), rng.normal(size=50)
    assert tt.pearson_spearman(a, b) == (pearson(a, b), spearman(a, b))
    assert all(math.isnan(v) for v in tt.pearson_spearman(np.ones(5), b[:5]))  # the scorer would give 0.0
    assert all(math.isnan(v) for v in tt.pearson_spearman(a[:1], b[:1]))


def test_time_steps_memory_is_the_vmhwm_probe(monkeypatch):
    """CPU peak memory comes from harness.resources.peak_rss_bytes (VmHWM), not ru_maxrss."""
    from harness import resources

    monkeypatch.setattr(tt, "peak_rss_bytes", lambda: 123)
    trainer = tt.SeqTrainer(nn.Sequential(nn.Flatten(), nn.Linear(16, 1), nn.Flatten(0)), nn.MSELoss(),
                         lambda m: torch.optim.SGD(m.parameters(), lr=0.1),
                         config=tt.TrainConfig(batch_size=4, progress=False), device="cpu")
    codes = np.random.default_rng(0).integers(0, 4, size=(8, 4)).astype(np.uint8)
    out = trainer.time_steps(codes, np.zeros(8, dtype=np.float32), steps=1, warmup=0)
    assert out["peak_memory_bytes"] == 123 and out["memory_kind"] == "peak_rss"
    status = open("/proc/self/status").read()
    hwm = int(next(l for l in status.splitlines() if l.startswith("VmHWM:")).split()[1]) * 1024
    assert resources.peak_rss_bytes() >= hwm  # the high-water mark only grows


def test_epoch_line_shows_a_dash_without_validation():
    """LegNet (no validation set) used to print "V loss nan  V r nan"."""
    line = tt.epoch_line({"epoch": 1, "improved": True, "train_loss": 1.0, "valid_loss": float("nan"),
                          "train_r": 0.5, "valid_r": None, "train_rho": 0.4, "valid_rho": float("nan"),
                          "lr": 1e-3, "seqs_per_s": 100, "seconds": 1.0})
    assert "nan" not in line and "V loss —" in line and "V r —" in line and "T r 0.5000" in line


def test_keep_last_keeps_the_final_epoch_with_validation():
    """``keep="last"`` (LegNet, BHI): validation is reported but the final epoch's weights are kept,
    the same weights as a fit without validation data."""
    x, y = _data()
    xv, yv = _data(64, seed=1)
    kept = _trainer(_model(3), max_epochs=3, keep="last", patience=None)
    hist = kept.fit(x, y, xv, yv)
    assert all(math.isfinite(h["valid_r"]) for h in hist)
    assert kept.best_epoch == 3 and [h["improved"] for h in hist] == [True, True, True]
    blind = _trainer(_model(3), max_epochs=3, patience=None)
    blind.fit(x, y)
    assert _same_state(kept.model.state_dict(), blind.model.state_dict())
    with pytest.raises(ValueError, match="keep must be"):
        tt.TrainConfig(keep="first")


def test_runtime_settings_are_declared_once():
    """TorchConfig (what a profile sets) and TrainConfig (what a fit runs with) share one
    declaration of the runtime settings, so their names and defaults cannot drift apart."""
    import dataclasses

    from harness.torch_method import TorchConfig

    runtime = {f.name: f.default for f in dataclasses.fields(tt.RuntimeSettings)}
    for cls in (TorchConfig, tt.TrainConfig):
        assert {f.name: f.default for f in dataclasses.fields(cls) if f.name in runtime} == runtime
    with pytest.raises(ValueError, match="devices"):
        tt.TrainConfig(batch_size=32, devices=3)


def test_ddp_on_two_cpu_processes_steps_on_the_global_batch():
    """``devices=2``: two forked ranks (gloo) each take half of every global batch; the averaged
    gradients are the global batch's, so the weights match a one-process fit up to float
    summation order."""
    x, y = _data(128)

    def model():  # no BatchNorm: SyncBatchNorm needs GPUs, and per-rank statistics would differ
        torch.manual_seed(5)
        return nn.Sequential(nn.Conv1d(4, 8, 5, padding=2), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 24, 1),
                             nn.Flatten(0))

    one = _trainer(model(), max_epochs=2, patience=None, optimizer_factory=_sgd)
    one.fit(x, y)
    two = _trainer(model(), max_epochs=2, patience=None, optimizer_factory=_sgd, devices=2)
    hist = two.fit(x, y)
    assert [h["epoch"] for h in hist] == [1, 2]
    assert _close_state(one.model.state_dict(), two.model.state_dict(), atol=1e-5)


def test_progress_display_prints_a_line_per_epoch(capsys):
    """The rich progress bar and the per-epoch lines (what ``harness run`` shows) on a real fit."""
    x, y = _data()
    xv, yv = _data(64, seed=1)
    trainer = _trainer(max_epochs=2, progress=True)
    hist = trainer.fit(x, y, xv, yv)
    out = capsys.readouterr().out
    assert [h["epoch"] for h in hist] == [1, 2]
    assert "epoch   1  T loss" in out and "epoch   2  T loss" in out and "nan" not in out
