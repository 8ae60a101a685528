"""Tests of the Camformers plug-in (submissions/camformers.py)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from torch import nn

from harness import registry
from harness.data import encoding
from harness.data.table import SeqTable
from submissions.camformers import (Camformers, CamformersConfig, CamformersNet, ConvBlock, camformers_input,
                                    model_codes, select_training_rows)


#: a CPU-sized member of the same architecture family, for fast fits.
TINY = dict(channels=8, dense=16, batch_size=64, max_epochs=2, progress=False)


pytestmark = pytest.mark.usefixtures("torch_single_thread")


# ----------------------------------------------------------------------------------------------
# architecture
# ----------------------------------------------------------------------------------------------
def test_paper_parameter_count():
    # the script's CNN: six Conv2dSame (k (10, 1)) + BatchNorm2d(512); Linear(512 * 26, 256),
    # Linear(256, 256), Linear(256, 1)
    conv_bn = lambda cin: 512 * cin * 10 + 512 + 2 * 512  # noqa: E731  (weight, bias, BN gamma/beta)
    team = conv_bn(4) + 5 * conv_bn(512) + 512 * 26 * 256 + 256 + 256 * 256 + 256 + 256 + 1
    assert team == 16_611_073
    assert Camformers().num_parameters() == 16_611_073
    net = CamformersNet(CamformersConfig())
    assert sum(p.numel() for p in net.parameters() if p.requires_grad) == 16_611_073
    # the paper profile is the defaults
    assert registry.load_profile("camformers", "paper").config == CamformersConfig()


def test_paper_shapes():
    cfg = CamformersConfig()
    assert cfg.pooled_len == 26
    net = CamformersNet(cfg).eval()
    assert net.dense1.in_features == 13_312 and net.dense1.out_features == 256
    assert net.dense2.in_features == 256 and net.out.out_features == 1
    assert net.conv1_0.conv.weight.shape == (512, 4, 10, 1)
    assert net.conv3_1.conv.weight.shape == (512, 512, 10, 1)
    x = camformers_input(torch.randint(0, 5, (2, 110), dtype=torch.uint8), None, False)[0]
    assert x.shape == (2, 4, 110, 1)
    with torch.no_grad():
        a = net.conv3_0(net.conv2_1(net.conv2_0(net.conv1_1(net.conv1_0(x)))))
        out = net(x)
    assert a.shape == (2, 512, 26, 1)
    assert out.shape == (2,) and out.dtype == torch.float32


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")
def test_block_order_and_same_padding():
    block = ConvBlock(4, 6, 10, dropout=0.3, pool=(10, 4))
    names = [name for name, _ in block.named_children()]
    assert names == ["conv", "bn", "act", "pool", "drop"]  # conv -> BN -> ReLU -> pool -> dropout
    x = torch.randn(3, 4, 110, 1)
    ref = nn.Conv2d(4, 6, (10, 1), padding="same")
    ref.load_state_dict(block.conv.state_dict())
    torch.testing.assert_close(block.conv_forward(x), ref(x), rtol=1e-5, atol=1e-5)
    assert block.eval()(x).shape == (3, 6, 26, 1)


def test_residual_sums():
    # with every block replaced by a known function the forward must add 1_0 to 1_1 etc.
    cfg = CamformersConfig(channels=2, dense=2)
    net = CamformersNet(cfg)
    calls = []

    def make(name):
        def fwd(x):
            calls.append(name)
            return torch.full((x.shape[0], 2, 26, 1), float(len(calls)))
        return fwd

    for name in ("conv1_0", "conv1_1", "conv2_0", "conv2_1", "conv3_0", "conv3_1"):
        getattr(net, name).forward = make(name)
    captured = {}
    net.dense1.register_forward_pre_hook(lambda module, inputs: captured.update(flat=inputs[0]))
    net(torch.zeros(1, 4, 110, 1))
    # 1_0 -> 1, 1_1 -> 2 (+1); 2_0 -> 3, 2_1 -> 4 (+3); 3_0 -> 5, 3_1 -> 6 (+5) = 11
    assert calls == ["conv1_0", "conv1_1", "conv2_0", "conv2_1", "conv3_0", "conv3_1"]
    assert torch.all(captured["flat"] == 11)


# ----------------------------------------------------------------------------------------------
# data handling
# ----------------------------------------------------------------------------------------------
def test_length_and_n_filter():
    body = "ACGT" * 40
    seqs = [body[:106], body[:107], body[:110], body[:113], body[:114],
            "NNN" + body[:107], "NNNN" + body[:106], body[:50] + "NN" + body[:58]]
    table = SeqTable.from_strings(seqs, np.arange(len(seqs)))
    keep = select_training_rows(table.codes, table.lengths)
    assert keep.tolist() == [False, True, True, True, False, True, False, True]


def test_three_prime_n_padding_and_truncation():
    table = SeqTable.from_strings(["ACGT" * 27, "A" * 113, "C" * 110])  # 108, 113, 110 nt
    codes = model_codes(table, 110)
    assert codes.shape == (3, 110) and codes.dtype == np.uint8
    assert encoding.decode(codes[:1])[0] == "ACGT" * 27 + "NN"  # N at the 3' end
    assert encoding.decode(codes[1:2])[0] == "A" * 110  # truncated at position 110
    x = camformers_input(torch.from_numpy(codes), None, False)[0]
    assert torch.all(x[0, :, 108:] == 0)  # N -> zeros
    assert torch.all(x[0, :, :108].sum(0) == 1)


# ----------------------------------------------------------------------------------------------
# fitting
# ----------------------------------------------------------------------------------------------
def test_fit_is_deterministic_on_cpu(dev_train):
    rows = dev_train.subset(np.arange(400))
    preds = []
    for _ in range(2):
        m = Camformers(CamformersConfig(**TINY), seed=3, device="cpu")
        m.fit(rows)
        preds.append(m.predict(dev_train.subset(np.arange(400, 480))))
    assert preds[0].shape == (80,) and preds[0].dtype == np.float64
    np.testing.assert_array_equal(preds[0], preds[1])
    other = Camformers(CamformersConfig(**TINY), seed=4, device="cpu")
    other.fit(rows)
    assert not np.array_equal(other.predict(dev_train.subset(np.arange(400, 480))), preds[0])


def test_save_load_round_trip(dev_train, save_and_load):
    m = Camformers(CamformersConfig(**{**TINY, "max_epochs": 1}), seed=0, device="cpu")
    m.fit(dev_train.subset(np.arange(300)))
    test = dev_train.subset(np.arange(300, 400))
    loaded = save_and_load(m, test)
    assert loaded.filter_stats == m.filter_stats and loaded.filter_stats["rows"] == 300
    with pytest.raises(RuntimeError, match="before fit"):
        Camformers().predict(test)


def test_tiny_fit_lowers_validation_loss(dev_train, tmp_path):
    rows = dev_train.subset(np.arange(2000))
    cfg = CamformersConfig(**{**TINY, "channels": 16, "max_epochs": 3})
    m = Camformers(cfg, seed=0, device="cpu", work_dir=tmp_path)
    m.fit(rows)
    hist = m.history
    kept = select_training_rows(rows.codes, rows.lengths).sum()
    assert m.filter_stats["kept"] == kept and m.filter_stats["rows"] == 2000
    n_valid = int(np.ceil(0.1 * kept))  # the seeded 90/10 split (§1.3)
    n_train = kept - n_valid
    assert n_train % 64  # the data leave a partial batch ...
    assert hist[0]["n_seqs"] == n_train // 64 * 64  # ... which drop_last drops (the script's DataLoader)
    assert len(hist) == 3
    # validation L1 falls over the epochs, far below an untrained network's
    assert min(h["valid_loss"] for h in hist[1:]) < hist[0]["valid_loss"]
    untrained = Camformers(cfg, seed=0, device="cpu")
    untrained.model = untrained.build_model()
    valid_rows = rows.subset(np.arange(1800, 2000))
    base = np.abs(untrained.predict(valid_rows) - valid_rows.y).mean()
    assert hist[-1]["valid_loss"] < 0.5 * base
    assert (tmp_path / "checkpoints" / "last.ckpt").is_file()  # per-epoch checkpoint in work_dir


def test_paper_profile_is_the_submission_script():
    paper = registry.load_profile("camformers", "paper").config
    assert paper == CamformersConfig()
    assert paper.max_epochs == 50  # the script: epochs = 50
    assert paper.drop_last  # DataLoader(drop_last=True)
    assert paper.mixed_precision == "off" and paper.compile == "off"  # fp32 tensors on the TPU
    assert (paper.patience, paper.plateau_patience, paper.plateau_factor) == (10, 10, 0.1)
    m = Camformers(paper, device="cpu")
    trainer = m.make_trainer(model=nn.Linear(1, 1))
    assert trainer.config.drop_last and trainer.config.mixed_precision == "off"
    assert trainer.config.max_epochs == 50 and trainer.config.batch_size == 256
    assert trainer._steps_per_epoch(5_945_028) == 5_945_028 // 256  # the write-up's training rows
    # the speed profile is the same recipe with bf16 autocast and torch.compile only
    fast = registry.load_profile("camformers", "paper-fast").config
    assert fast.mixed_precision == "auto" and fast.compile == "default"
    assert dataclasses.replace(fast, mixed_precision="off", compile="off") == paper


def test_drop_last_batch_counts(dev_train):
    rows = dev_train.subset(np.arange(200))
    cfg = CamformersConfig(**{**TINY, "max_epochs": 1, "batch_size": 32})
    m = Camformers(cfg, seed=0, device="cpu")
    m.fit(rows)
    n_train = m.filter_stats["kept"] - int(np.ceil(0.1 * m.filter_stats["kept"]))
    assert n_train % 32
    assert m.history[0]["n_seqs"] == n_train // 32 * 32
    keep_all = Camformers(dataclasses.replace(cfg, drop_last=False), seed=0, device="cpu")
    keep_all.fit(rows)
    assert keep_all.history[0]["n_seqs"] == n_train
    # fewer rows than one batch: nothing to drop to, the one partial batch trains
    small = Camformers(dataclasses.replace(cfg, batch_size=256), seed=0, device="cpu")
    small.fit(rows)
    assert small.history[0]["n_seqs"] == n_train


def test_filter_counts_in_the_scripts_order():
    body = "ACGT" * 40
    seqs = [body[:110], "NNNN" + body[:80], "NNNN" + body[:106], body[:120], "N" + body[:105]]
    table = SeqTable.from_strings(seqs, np.arange(len(seqs), dtype=float))
    m = Camformers(CamformersConfig(**TINY))
    kept = m._filter(table)
    # N first (rows 1 and 2, whatever their length), then length among the rest (rows 3 and 4)
    assert m.filter_stats == {"rows": 5, "dropped_n": 2, "dropped_length": 2, "kept": 1}
    assert len(kept) == 1


def test_config_validation_and_cpu_profile():
    with pytest.raises(ValueError, match="channels"):
        CamformersConfig(channels=0)
    cpu = registry.load_profile("camformers", "cpu").config
    # same family: only widths / epochs / patience scaled, recipe constants untouched
    paper = CamformersConfig()
    for field in ("seq_len", "length_tolerance", "max_n", "valid_fraction", "kernel_size", "dropout",
                  "pool_kernel", "pool_stride", "batch_size", "lr", "weight_decay"):
        assert getattr(cpu, field) == getattr(paper, field), field
    assert Camformers(cpu).num_parameters() < 200_000
    assert dataclasses.asdict(paper)["channels"] == 512
