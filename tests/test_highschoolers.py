"""Tests of the High Schoolers Are All You Need plug-in (submissions/highschoolers.py)."""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pytest
import torch

from harness import registry
from harness.data import encoding
from harness.data.table import SeqTable
from sklearn.preprocessing import quantile_transform

from submissions.highschoolers import (PAPER_NUM_PARAMETERS, AttentionPool1d, HighSchoolers, HighSchoolersConfig,
                                       HighSchoolersNet, KerasAdamSWA, RevCompConv1d, highschoolers_input,
                                       model_codes, relative_shift, uniform_quantiles)

#: a tiny member of the same architecture family (d_model 24: divisible by 8 heads and by 6); raw
#: outputs (no quantile transform) so the tests can compare them with targets.
TINY = dict(conv1_filters=8, conv2_filters=16, conv3_filters=24, ffn=32, dense=16, batch_size=64,
            train_epochs=2, finetune_epochs=1, slice_size=0, valid_size=0.2, eval_batch_size=512, validate_every=1,
            quantile_output=False, progress=False)


pytestmark = pytest.mark.usefixtures("torch_single_thread")


def _one_hot(codes: np.ndarray) -> torch.Tensor:
    return highschoolers_input(torch.from_numpy(codes), None, False)[0]


# ----------------------------------------------------------------------------------------------
# architecture
# ----------------------------------------------------------------------------------------------
def test_paper_parameter_count():
    assert PAPER_NUM_PARAMETERS == 4_680_769
    assert HighSchoolers().num_parameters() == 4_680_769
    net = HighSchoolersNet(HighSchoolersConfig())
    assert sum(p.numel() for p in net.parameters() if p.requires_grad) == 4_680_769
    # Keras' summary adds the BatchNorm moving mean/variance as non-trainable weights
    moving = sum(b.numel() for name, b in net.named_buffers() if name.endswith(("running_mean", "running_var")))
    assert moving == 7_552
    assert registry.load_profile("highschoolers", "paper").config == HighSchoolersConfig()


def test_paper_shapes_and_keras_defaults():
    cfg = HighSchoolersConfig()
    assert cfg.pooled_len == 3  # 111 -> 27 -> 6 -> 3
    net = HighSchoolersNet(cfg).eval()
    assert net.rc_conv.weight.shape == (192, 4, 19)
    assert [c.dilation[0] for c in net.res1.convs] == [1, 2, 4, 8]
    assert [c.dilation[0] for c in net.res2.convs] == [1, 2] and [c.dilation[0] for c in net.res3.convs] == [1, 2]
    assert net.res1.convs[0].bias is None and net.res1.convs[1].bias is not None
    assert net.conv2.weight.shape == (256, 384, 9) and net.conv3.weight.shape == (192, 256, 7)
    assert net.transformer.mha.heads == 8 and net.transformer.ffn_in.out_channels == 1024
    assert net.dense1.in_features == 3 * 192 and net.out.out_features == 1
    assert net.bn1.momentum == pytest.approx(0.01) and net.bn1.eps == pytest.approx(1e-3)
    assert net.transformer.norm1.eps == pytest.approx(1e-3)
    assert torch.all(net.conv2.bias == 0)  # Keras zero bias init
    codes = np.random.default_rng(0).integers(0, 5, (3, 111)).astype(np.uint8)
    x = _one_hot(codes)
    assert x.shape == (3, 4, 111)
    with torch.no_grad():
        h1 = net.pool1(net.drop1(net.res1(torch.exp(net.bn1(net.rc_conv(x))))))
        feats = net.features(x)
        out = net(x)
    assert h1.shape == (3, 384, 27)
    assert feats.shape == (3, 192, 3)
    assert out.shape == (3,) and out.dtype == torch.float32 and torch.isfinite(out).all()


def test_rc_convolution_weight_tying():
    conv = RevCompConv1d(filters=6, kernel_size=19)
    torch.nn.init.normal_(conv.bias)
    codes = np.random.default_rng(1).integers(0, 5, (4, 111)).astype(np.uint8)
    codes[:, 100:] = encoding.N  # 3' N padding
    x, x_rc = _one_hot(codes), _one_hot(encoding.reverse_complement(codes))
    assert torch.equal(x_rc, x.flip(1).flip(2))  # channel flip = complement for A, C, G, T
    with torch.no_grad():
        out, out_rc = conv(x), conv(x_rc)
    assert out.shape == (4, 12, 111)
    fwd, rc = out[:, :6], out[:, 6:]
    # the RC branch on x == the forward branch on RC(x), reversed along length (and vice versa)
    torch.testing.assert_close(rc, out_rc[:, :6].flip(-1), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(fwd, out_rc[:, 6:].flip(-1), rtol=1e-5, atol=1e-5)
    # one tied weight set: the RC filters are the forward ones flipped in channel and length
    assert [name for name, _ in conv.named_parameters()] == ["weight", "bias"]
    assert torch.equal(conv.rc_weight(), conv.weight.flip(1).flip(2))


def test_attention_pooling_weights_sum_to_one():
    pool = AttentionPool1d(channels=5, pool_size=4)
    x = torch.randn(2, 5, 111)
    w = pool.weights(x)
    assert w.shape == (2, 5, 27, 4)
    assert torch.all(w >= 0)
    torch.testing.assert_close(w.sum(-1), torch.ones(2, 5, 27))
    out = pool(x)
    assert out.shape == (2, 5, 27)
    # the weighted mean of each window of the cropped input (the 3 trailing positions dropped)
    expected = (x[:, :, :108].reshape(2, 5, 27, 4) * w).sum(-1)
    torch.testing.assert_close(out, expected)
    x2 = x.clone()
    x2[:, :, 108:] = 1e3  # cropped positions never reach the output
    torch.testing.assert_close(pool(x2), out)
    assert pool.logits.bias is None and pool.logits.kernel_size == (1,)


def test_relative_shift_and_attention_rows():
    x = torch.randn(2, 3, 4, 7)
    s = relative_shift(x)
    assert s.shape == (2, 3, 4, 4)
    for i in range(4):
        for j in range(4):
            assert torch.equal(s[..., i, j], x[..., i, 3 - i + j])
    net = HighSchoolersNet(HighSchoolersConfig(**{k: v for k, v in TINY.items()})).eval()
    with torch.no_grad():
        attn = net.transformer.mha.attention_map(torch.randn(2, 3, 24))
    assert attn.shape == (2, 8, 3, 3)
    torch.testing.assert_close(attn.sum(-1), torch.ones(2, 8, 3))


def test_keras_adam_swa_schedule():
    p = torch.nn.Parameter(torch.zeros(3))
    opt = KerasAdamSWA([p], lr=0.1, start_averaging=2, average_period=3)
    seen = []
    for _ in range(9):  # 0-based steps 0..8: snapshots after steps 2, 5, 8
        p.grad = -torch.ones(3)
        opt.step()
        seen.append(p.detach().clone())
    torch.testing.assert_close(opt.state[p]["swa_average"], (seen[2] + seen[5] + seen[8]) / 3)
    assert opt.num_snapshots() == 3
    # Keras Adam: with a constant gradient, m / (sqrt(v) + eps) ~ 1 after bias correction -> step ~ lr
    torch.testing.assert_close(seen[0], torch.full((3,), 0.1), rtol=1e-4, atol=1e-6)
    state = opt.state_dict()
    opt.assign_average()
    torch.testing.assert_close(p.detach(), (seen[2] + seen[5] + seen[8]) / 3)
    assert "swa_average" in state["state"][0]  # the average travels with the (resumable) checkpoint


# ----------------------------------------------------------------------------------------------
# data handling
# ----------------------------------------------------------------------------------------------
def test_length_filter_and_padding():
    body = "ACGT" * 30
    table = SeqTable.from_strings([body[:110], body[:111], body[:112], body[:80]], np.arange(4.0))
    m = HighSchoolers(HighSchoolersConfig(**TINY))
    kept = m._filter(table)
    assert len(kept) == 3 and m.filter_stats == {"rows": 4, "dropped_length": 1, "kept": 3}
    codes = model_codes(table, 111)
    assert codes.shape == (4, 111) and codes.dtype == np.uint8
    assert encoding.decode(codes[3:4])[0] == body[:80] + "N" * 31  # 3' N padding
    x = _one_hot(codes)
    assert torch.all(x[3, :, 80:] == 0) and torch.all(x[3, :, :80].sum(0) == 1)


def test_config_validation_and_cpu_profile():
    with pytest.raises(ValueError, match="divisible"):
        HighSchoolersConfig(conv3_filters=200)
    with pytest.raises(ValueError, match="prediction_weights"):
        HighSchoolersConfig(prediction_weights="last")
    with pytest.raises(ValueError, match="valid_size"):
        HighSchoolersConfig(valid_size=10.5)
    cpu = registry.load_profile("highschoolers", "cpu").config
    paper = HighSchoolersConfig()
    for field in ("seq_len", "conv1_kernel", "conv2_kernel", "conv3_kernel", "res_layers", "res_kernel",
                  "pool_sizes", "block_dropouts", "heads", "attn_dropout", "dense_dropout", "swa_start",
                  "swa_period", "prediction_weights"):
        assert getattr(cpu, field) == getattr(paper, field), field
    assert paper.quantile_output and not cpu.quantile_output  # cpu: raw outputs for stacking / hold-out scores
    assert HighSchoolers(cpu).num_parameters() < 250_000
    # the team validated after epochs 1, 4, 7, ... (write-up: "every three epochs"); cpu: every epoch
    assert paper.validate_every == 3 and cpu.validate_every == 1
    assert HighSchoolers(paper).make_trainer(n_train=10_000).config.validate_every == 3
    assert dataclasses.asdict(paper)["conv1_filters"] == 192


# ----------------------------------------------------------------------------------------------
# fitting
# ----------------------------------------------------------------------------------------------
def test_save_load_round_trip(dev_train, save_and_load):
    m = HighSchoolers(HighSchoolersConfig(**{**TINY, "train_epochs": 1, "finetune_epochs": 0}), seed=0,
                      device="cpu")
    m.fit(dev_train.subset(np.arange(300)))
    test = dev_train.subset(np.arange(300, 400))
    loaded = save_and_load(m, test)
    assert loaded.filter_stats == m.filter_stats and loaded.swa_snapshots == m.swa_snapshots
    pred = m.predict(test)
    assert pred.shape == (100,) and pred.dtype == np.float64
    with pytest.raises(RuntimeError, match="before fit"):
        HighSchoolers().predict(test)
    # optional post-processing: uniform quantiles, rank-preserving
    q = dataclasses.replace(loaded.config, quantile_output=True)
    quant = HighSchoolers(q, seed=0, device="cpu")
    quant.model = loaded.model
    uq = quant.predict(test)
    assert uq.min() == 0.0 and uq.max() == 1.0
    assert np.array_equal(np.argsort(uq, kind="stable"), np.argsort(pred, kind="stable"))


def test_tiny_fit_lowers_validation_loss(dev_train, tmp_path):
    rows = dev_train.subset(np.arange(1200))
    # raw targets (~11 on average) against a zero-bias output: a large lr lets 3 short epochs show it
    cfg = HighSchoolersConfig(**{**TINY, "lr": 1e-2, "finetune_lr": 3e-3, "swa_start": 10, "swa_period": 5})
    m = HighSchoolers(cfg, seed=0, device="cpu", work_dir=tmp_path)
    m.fit(rows)
    hist = m.history
    assert len(hist) == 3
    assert hist[0]["lr"] == pytest.approx(1e-2) and hist[2]["lr"] == pytest.approx(3e-3)  # fine-tuning stage
    kept = m.filter_stats["kept"]
    assert hist[0]["n_seqs"] == kept - int(np.ceil(0.2 * kept))  # seeded 80/20 hold-out
    # validation MSE falls well below an untrained network's
    untrained = HighSchoolers(cfg, seed=0, device="cpu")
    untrained.model = untrained.build_model()
    base = np.mean((untrained.predict(rows) - rows.y) ** 2)
    assert min(h["valid_loss"] for h in hist) < 0.5 * base
    assert min(h["valid_loss"] for h in hist[1:]) < hist[0]["valid_loss"]
    assert m.best_epoch == 1 + int(np.argmax([h["valid_r"] for h in hist]))  # best Pearson kept
    assert m.swa_snapshots >= 1 and (tmp_path / "checkpoints" / "last.ckpt").is_file()
    # the write-up's reading of SWA: final averages + recomputed BN statistics
    swa = HighSchoolers(dataclasses.replace(cfg, prediction_weights="swa", finetune_epochs=0), seed=0, device="cpu")
    swa.fit(rows)
    assert swa.swa_metrics["assigned"] == 1.0 and np.isfinite(swa.swa_metrics["valid_r"])
    assert not np.array_equal(swa.predict(rows.subset(np.arange(50))), m.predict(rows.subset(np.arange(50))))


# ----------------------------------------------------------------------------------------------
# the paper profile = the submission code's recipe
# ----------------------------------------------------------------------------------------------
def test_paper_fine_tunes_500_epochs_as_the_submission_code():
    """ModelTraining.py: ``for i in range(750)`` at 1e-4, then ``for i in range(750, 1250)`` at 3e-5
    (Table 1 of the write-up says 100 fine-tuning epochs; the code that made the submission runs 500)."""
    paper = registry.load_profile("highschoolers", "paper").config
    assert (paper.train_epochs, paper.finetune_epochs) == (750, 500)
    trainer = HighSchoolers(paper).make_trainer(n_train=6_000_000)
    assert trainer.config.max_epochs == 1250 and trainer.config.max_batches_per_epoch == 300
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([param], lr=paper.lr)
    sched = trainer.scheduler_factory(opt, 300, 1250)
    lrs = []
    for _ in range(1250):  # the Trainer steps this scheduler once per epoch
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[749] == pytest.approx(1e-4) and lrs[750] == pytest.approx(3e-5) and lrs[-1] == pytest.approx(3e-5)
    # validated after epochs 1, 4, ..., as i % 3 == 0 over both loops (i = epoch - 1)
    assert trainer.config.validate_every == 3


def test_uniform_quantiles_is_the_team_quantile_transform():
    """GetPredictions.py: ``quantile_transform(np.expand_dims(preds, axis=1))``, scikit-learn defaults,
    fitted on the test predictions themselves, uniform output."""
    rng = np.random.default_rng(0)
    for n in (71, 2_500):  # below and above the default 1,000 quantiles
        pred = (rng.normal(11, 2, n)).astype(np.float32)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # scikit-learn: n_quantiles lowered to n_samples
            team = quantile_transform(np.expand_dims(pred, axis=1))
        ours = uniform_quantiles(pred)
        assert ours.dtype == np.float64 and ours.shape == (n,)
        np.testing.assert_array_equal(ours, np.squeeze(team).astype(np.float64))
        assert ours.min() == 0.0 and ours.max() == 1.0
        assert np.array_equal(np.argsort(ours, kind="stable"), np.argsort(pred, kind="stable"))
    # with distinct values and n <= 1,000 quantiles the level is exactly the rank / (n - 1)
    pred = rng.permutation(np.arange(50.0))
    np.testing.assert_allclose(uniform_quantiles(pred), pred / 49, atol=1e-12)
    assert uniform_quantiles(np.array([3.0])).tolist() == [0.0] and uniform_quantiles(np.zeros(0)).shape == (0,)
    with pytest.raises(ValueError, match="NaN"):
        uniform_quantiles(np.array([1.0, np.nan]))


def test_paper_predictions_are_quantile_transformed(dev_train):
    rows = dev_train.subset(np.arange(200))
    m = HighSchoolers(HighSchoolersConfig(**{**TINY, "quantile_output": True}), seed=3, device="cpu")
    m.model = m.build_model()
    pred = m.predict(rows)
    raw = HighSchoolers(HighSchoolersConfig(**TINY), seed=3, device="cpu")
    raw.model = m.model
    raw_pred = raw.predict(rows)
    assert raw_pred.min() < 0 or raw_pred.max() > 1  # raw outputs are not levels
    np.testing.assert_array_equal(pred, uniform_quantiles(raw_pred))
    assert HighSchoolersConfig().quantile_output  # on in the paper defaults


def test_paper_is_fp32_and_paper_fast_only_changes_speed_settings():
    paper = registry.load_profile("highschoolers", "paper").config
    assert paper.mixed_precision == "off" and paper.compile == "off"  # Keras' default fp32 policy
    fast = registry.load_profile("highschoolers", "paper-fast").config
    assert (fast.mixed_precision, fast.compile) == ("auto", "default")
    assert {f for f in vars(paper) if getattr(paper, f) != getattr(fast, f)} == {"mixed_precision", "compile"}
    assert HighSchoolers(fast).make_trainer(n_train=10_000).config.compile == "default"
    assert HighSchoolers(paper).make_trainer(n_train=10_000).config.mixed_precision == "off"
