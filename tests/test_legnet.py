"""Tests of the LegNet plug-in (submissions/legnet.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats
from torch import nn
from torch.nn import functional as F

from harness import registry
from harness.data import encoding
from harness.data.construct import VECTOR_UPSTREAM
from harness.data.table import SeqTable
from submissions.legnet import (PLASMID_5P, CPBilinear, LegNet, LegNetConfig, LegNetNet, LegNetTransform, cp_rank,
                                encode_batch, expected_bin, kl_soft_label_loss, legnet_codes,
                                reverse_complement_codes, singleton_flags, soft_labels, training_arrays)


#: a CPU-sized member of the same architecture family, for fast fits.
TINY = dict(block_sizes=[16, 8, 8], batch_size=128, max_epochs=2, batches_per_epoch=0, eval_batch_size=512,
            progress=False)
ADAPTER = "TGCATTTTTTTCACATC"


pytestmark = pytest.mark.usefixtures("torch_single_thread")


def _random_seqs(n: int, length: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    return ["".join(rng.choice(list("ACGT"), length)) for _ in range(n)]


# ----------------------------------------------------------------------------------------------
# architecture
# ----------------------------------------------------------------------------------------------
def test_paper_parameter_count():
    # the count the team's scripts print for the submitted model (train.sh configuration)
    assert LegNet().num_parameters() == 1_852_846
    with torch.device("meta"):
        net = LegNetNet(LegNetConfig())
    assert sum(p.numel() for p in net.parameters() if p.requires_grad) == 1_852_846
    assert registry.load_profile("legnet", "paper").config == LegNetConfig()
    # CP ranks of the SE bilinear layers (TensorLy rank=0.5 rule) for hidden widths 64, 32, 16
    assert [cp_rank((h, h, h // 2), 0.5) for h in (64, 32, 16)] == [410, 102, 26]
    ranks = [block.core[6].bilinear.rank for block in net.blocks]
    assert ranks == [410, 102, 102, 26, 26, 26]


def test_paper_shapes_and_layer_order():
    cfg = LegNetConfig()
    net = LegNetNet(cfg).eval()
    assert net.stem[0].weight.shape == (256, 6, 7) and net.stem[0].bias is None
    assert [type(m) for m in net.stem] == [nn.Conv1d, nn.BatchNorm1d, nn.SiLU]
    first = net.blocks[0]
    kinds = [type(m).__name__ for m in first.core]
    assert kinds == ["Conv1d", "BatchNorm1d", "SiLU", "Conv1d", "BatchNorm1d", "SiLU", "SqueezeExcite",
                     "Conv1d", "BatchNorm1d", "SiLU"]
    assert first.core[0].weight.shape == (512, 256, 1)          # 1x1 expansion x4
    assert first.core[3].groups == 256 and first.core[3].weight.shape == (512, 2, 7)  # 2 filters per group
    assert first.core[7].weight.shape == (256, 512, 1)          # projection back to the block input width
    assert first.resize[0].weight.shape == (128, 512, 7)        # resize conv on [input, core] (2 x 256)
    assert [b.resize[0].out_channels for b in net.blocks] == [128, 128, 64, 64, 64, 64]
    se = first.core[6]
    assert (se.squeeze.in_features, se.squeeze.out_features) == (512, 64)  # hidden = 256 // 4
    assert se.excite.in_features == 64 + 32
    assert net.head.weight.shape == (18, 64, 1) and net.head.bias is not None
    with torch.no_grad():
        out = net(torch.randn(3, 6, 150))
        both = net(torch.randn(2, 2, 6, 150))
    assert out.shape == (3, 18) and out.dtype == torch.float32 and both.shape == (2, 2, 18)


def test_block_concatenates_input_first():
    cfg = LegNetConfig(block_sizes=[8, 4])
    block = LegNetNet(cfg).blocks[0]
    captured = {}
    block.resize.register_forward_pre_hook(lambda m, inputs: captured.update(x=inputs[0]))
    x = torch.randn(2, 8, 20)
    block.eval()(x)
    assert captured["x"].shape == (2, 16, 20)
    torch.testing.assert_close(captured["x"][:, :8], x)


def test_cp_bilinear_equals_outer_product_regression():
    torch.manual_seed(0)
    layer = CPBilinear(6, 3, rank=0.5)
    assert layer.rank == cp_rank((6, 6, 3), 0.5) == round(0.5 * 108 / 15)
    # parameter count of a CP-factorised (6, 6, 3) tensor + CP weights + bias
    assert sum(p.numel() for p in layer.parameters()) == layer.rank * (6 + 6 + 3) + layer.rank + 3
    with torch.no_grad():
        layer.bias.normal_()
    x = torch.randn(5, 6)
    outer = x[:, :, None] * x[:, None, :]                                 # model.py: x @ x^T
    expect = torch.einsum("bij,ijo->bo", outer, layer.full_weight()) + layer.bias
    torch.testing.assert_close(layer(x), expect, rtol=1e-5, atol=1e-5)
    # init: the full tensor's s.d. is about the team's 0.00075
    big = CPBilinear(64, 32)
    assert 0.0005 < big.full_weight().std().item() < 0.001
    assert torch.all(big.weights == 1)
    # the bias as TensorLy-Torch 0.3/0.4 TRL.init_from_random leaves it (train.py never re-inits TRL): U(-1, 1)
    torch.manual_seed(0)
    bias = CPBilinear(64, 4096).bias.detach()
    assert bias.abs().max() <= 1 and abs(bias.mean().item()) < 0.05 and abs(bias.std().item() - 1 / math.sqrt(3)) < 0.02


def test_initialisation_follows_train_py():
    torch.manual_seed(0)
    net = LegNetNet(LegNetConfig())
    conv = net.blocks[0].resize[0]                                         # k 7, 128 out
    assert abs(conv.weight.std().item() - math.sqrt(2 / (7 * 128))) < 0.003
    lin = net.blocks[0].core[6].squeeze
    assert abs(lin.weight.std().item() - 0.001) < 0.0001 and torch.all(lin.bias == 0)
    assert torch.all(net.head.bias == 0)


# ----------------------------------------------------------------------------------------------
# targets, loss, prediction
# ----------------------------------------------------------------------------------------------
def test_soft_labels_sum_to_one_and_peak_at_the_bin():
    y = torch.tensor([0.0, 3.0, 5.0, 7.25, 12.9, 16.5, 17.0])
    p = soft_labels(y)
    assert p.shape == (7, 18) and p.dtype == torch.float32
    torch.testing.assert_close(p.sum(1), torch.ones(7), rtol=0, atol=1e-6)
    assert p.argmax(1).tolist() == [0, 3, 5, 7, 13, 17, 17]
    # exactly the team's scipy computation: N(y + 0.5, 0.5) mass between -inf, 1, ..., 17, inf
    points = np.array([-np.inf, *range(1, 18), np.inf])
    for value, row in zip(y.tolist(), p):
        cdf = stats.norm(loc=value + 0.5, scale=0.5).cdf(points)
        np.testing.assert_allclose(row.numpy(), np.diff(cdf), atol=1e-7)
    # an integer bin b: 68.3 % in b (mean at the bin centre, +-1 s.d. = the bin), 15.7 % either side
    assert p[2, 5].item() == pytest.approx(0.682689, abs=1e-6)
    assert p[2, 4].item() == pytest.approx(p[2, 6].item()) == pytest.approx(0.157305, abs=1e-6)


def test_loss_is_kl_batchmean_and_prediction_is_expected_bin():
    torch.manual_seed(0)
    logits = torch.randn(4, 18)
    targets = soft_labels(torch.tensor([1.0, 4.5, 9.0, 16.2]))
    ref = nn.KLDivLoss(reduction="batchmean")(F.log_softmax(logits, 1), targets)
    torch.testing.assert_close(kl_soft_label_loss(logits, targets), ref)
    # two strands: the mean of the two per-strand losses
    two = torch.stack([logits, logits.flip(0)], 1)
    per = (kl_soft_label_loss(logits, targets) + kl_soft_label_loss(logits.flip(0), targets)) / 2
    torch.testing.assert_close(kl_soft_label_loss(two, targets), per)
    score = expected_bin(logits)
    torch.testing.assert_close(score, (F.softmax(logits, 1) * torch.arange(18.0)).sum(1))
    torch.testing.assert_close(expected_bin(two), (score + expected_bin(logits.flip(0))) / 2)
    assert expected_bin(torch.full((1, 18), -1e4).index_fill_(1, torch.tensor([7]), 1e4)).item() == 7.0


# ----------------------------------------------------------------------------------------------
# input encoding
# ----------------------------------------------------------------------------------------------
def test_plasmid_padding_to_150():
    body = _random_seqs(3, 200, seed=1)
    seqs = [ADAPTER + body[0][:80] + "GGTTACGGCTGTT",   # 110 nt construct
            "A" * 17 + body[1][:60],                     # 77 nt, non-canonical 5' end
            ADAPTER + body[2][:160]]                     # 177 nt: longer than 150 after the cut
    codes = legnet_codes(SeqTable.from_strings(seqs))
    assert codes.shape == (3, 150) and codes.dtype == np.uint8
    out = encoding.decode(codes)
    plasmid = VECTOR_UPSTREAM + ADAPTER                   # the plasmid upstream of the random region
    assert PLASMID_5P.endswith(plasmid) and len(PLASMID_5P) == 262
    # 110 nt: first 17 nt replaced by the plasmid's adapter, 40 nt of vector before it, 93 nt kept
    assert out[0] == VECTOR_UPSTREAM[-40:] + ADAPTER + seqs[0][17:]
    assert out[0][:57] == plasmid[-57:] and VECTOR_UPSTREAM.endswith("GATTCGAAC")
    # a non-canonical 5' end is cut all the same (train.py cuts len(LEFT_ADAPTER) blindly)
    assert out[1] == plasmid[-(150 - 60):] + body[1][:60]
    # too long: the rightmost 150 nt are kept
    assert out[2] == seqs[2][-150:]


def test_plasmid_padding_takes_any_length():
    """train.py ``preprocess_data``: ``(PLASMID[INSERT_START - L:INSERT_START] + seq[17:])[-L:]`` for
    every sequence length (the old port refused sequences shorter than 47 nt)."""
    rng = np.random.default_rng(4)
    lengths = [1, 5, 16, 17, 18, 30, 46, 47, 60, 110, 166, 167, 168, 200]
    seqs = ["".join(rng.choice(list("ACGTN"), n)) for n in lengths]
    for seq_len in (150, 40, 262):
        add_part = PLASMID_5P[-seq_len:]
        expect = [(add_part + s[17:])[-seq_len:] for s in seqs]
        assert encoding.decode(legnet_codes(SeqTable.from_strings(seqs), seq_len)) == expect
    forty = "ACGT" * 10  # 23 nt after the cut: 127 nt of plasmid in front
    assert encoding.decode(legnet_codes(SeqTable.from_strings([forty])))[0] == PLASMID_5P[-127:] + forty[17:]
    with pytest.raises(ValueError, match="262"):
        LegNetConfig(seq_len=263)
    with pytest.raises(ValueError, match="seq_len"):
        legnet_codes(SeqTable.from_strings(["ACGT"]), 263)


def test_six_channels_flags_and_n():
    codes = torch.tensor([[0, 1, 2, 3, 4]], dtype=torch.uint8)
    x = encode_batch(codes, torch.tensor([1]), torch.tensor([0]))
    assert x.shape == (1, 6, 5) and x.dtype == torch.float32
    torch.testing.assert_close(x[0, :4, :4], torch.eye(4))       # A C G T one-hot
    # N -> all zeros: the submitted Seq2Tensor writes 0.25 into an integer one-hot tensor (truncated to 0)
    assert torch.all(x[0, :4, 4] == 0)
    assert torch.all(encode_batch(codes, 0.0, 0.0, n_value=0.25)[0, :4, 4] == 0.25)  # the later LegNet release
    xe = LegNetTransform(LegNetConfig())(codes, None, False)[0]      # prediction path: N is last, RC's first
    assert torch.all(xe[0, 0, :4, 4] == 0) and torch.all(xe[0, 1, :4, 0] == 0)
    xq = LegNetTransform(LegNetConfig(n_value=0.25))(codes, None, False)[0]
    assert torch.all(xq[0, 0, :4, 4] == 0.25) and torch.all(xq[0, 1, :4, 0] == 0.25)
    assert torch.all(x[0, 4] == 1) and torch.all(x[0, 5] == 0)     # reverse flag, singleton flag
    rc = reverse_complement_codes(torch.from_numpy(encoding.encode(["AACGTN"])[0]))
    assert encoding.decode(rc.numpy())[0] == "NACGTT"


def test_training_arrays_double_with_reverse_complements():
    seqs = [ADAPTER + s + "GGTTACGGCTGTT" for s in _random_seqs(3, 80, seed=2)]
    table = SeqTable.from_strings(seqs, [4.0, 7.31, 12.0])
    (codes, rev, single), y = training_arrays(table)
    assert codes.shape == (6, 150) and rev.tolist() == [0, 0, 0, 1, 1, 1]
    assert single.tolist() == [1, 0, 1, 1, 0, 1]                  # integer targets = singletons
    np.testing.assert_array_equal(y, np.tile(table.y, 2))
    np.testing.assert_array_equal(codes[3:], encoding.reverse_complement(codes[:3]))
    np.testing.assert_array_equal(singleton_flags(np.array([3.0, 3.5, np.nan])), [1, 0, 0])
    # training transform: rows as given; eval transform: both strands, flags 0/1, singleton 0
    t = LegNetTransform(LegNetConfig())
    xb, target = t(tuple(torch.from_numpy(a) for a in (codes, rev, single)), torch.from_numpy(y), True)
    assert xb.shape == (6, 6, 150) and target.shape == (6, 18)
    assert xb[:, 4, 0].tolist() == [0, 0, 0, 1, 1, 1] and xb[:, 5, 0].tolist() == [1, 0, 1, 1, 0, 1]
    xe, none = t(torch.from_numpy(codes[:3]), None, False)
    assert none is None and xe.shape == (3, 2, 6, 150)
    assert torch.all(xe[:, 0, 4] == 0) and torch.all(xe[:, 1, 4] == 1) and torch.all(xe[:, :, 5] == 0)
    torch.testing.assert_close(xe[:, 1, :4], encode_batch(torch.from_numpy(codes[3:]), 1.0, 0.0)[:, :4])


# ----------------------------------------------------------------------------------------------
# prediction and fitting
# ----------------------------------------------------------------------------------------------
def test_prediction_averages_the_two_strands():
    cfg = LegNetConfig(block_sizes=[16, 8, 8], eval_batch_size=4)
    m = LegNet(cfg, seed=1, device="cpu")
    m.model = m.build_model()
    with torch.no_grad():  # make the BN statistics non-trivial so the strands differ
        for mod in m.model.modules():
            if isinstance(mod, nn.BatchNorm1d):
                mod.running_mean.normal_(0, 0.2)
    seqs = SeqTable.from_strings([ADAPTER + s + "GGTTACGGCTGTT" for s in _random_seqs(10, 80, seed=3)])
    pred = m.predict(seqs)
    assert pred.shape == (10,) and pred.dtype == np.float64
    codes = torch.from_numpy(legnet_codes(seqs))
    net = m.model.eval()
    with torch.no_grad():
        fwd = expected_bin(net(encode_batch(codes, 0.0, 0.0)))
        rev = expected_bin(net(encode_batch(reverse_complement_codes(codes), 1.0, 0.0)))
    assert not torch.allclose(fwd, rev)
    np.testing.assert_allclose(pred, ((fwd + rev) / 2).double().numpy(), rtol=1e-5, atol=1e-6)
    with pytest.raises(RuntimeError, match="before fit"):
        LegNet().predict(seqs)
    short = m.predict(SeqTable.from_strings(["ACGTACGTAC", "A", ADAPTER + "GGTTACGGCTGTT"]))  # any length
    assert short.shape == (3,) and np.all(np.isfinite(short))


def test_one_cycle_schedule():
    m = LegNet(LegNetConfig(block_sizes=[8, 4], progress=False), device="cpu")
    trainer = m.make_trainer()
    opt = trainer.optimizer_factory(trainer.model)
    assert isinstance(opt, torch.optim.AdamW) and opt.param_groups[0]["weight_decay"] == 0.01
    assert trainer.scheduler_factory(opt, 1000, 80).total_steps == 80_000  # 80 epochs x 1,000 batches
    opt = trainer.optimizer_factory(trainer.model)
    sched = trainer.scheduler_factory(opt, 100, 20)
    assert trainer.scheduler_interval == "batch"
    lrs = []
    for _ in range(2000):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[0] == pytest.approx(0.005 / 25)
    assert int(np.argmax(lrs)) == pytest.approx(0.3 * 2000, abs=2) and max(lrs) == pytest.approx(0.005)
    assert lrs[-1] < 1e-6
    assert trainer.config.patience is None and trainer.config.batch_size == 1024
    assert trainer.config.max_batches_per_epoch == 1000


def test_save_load_round_trip(dev_train, save_and_load):
    m = LegNet(LegNetConfig(**{**TINY, "max_epochs": 1}), seed=0, device="cpu")
    m.fit(dev_train.subset(np.arange(300)))
    loaded = save_and_load(m, dev_train.subset(np.arange(300, 400)))
    assert loaded.best_epoch == 1 and len(loaded.history) == 1


def test_tiny_fit_lowers_validation_loss(dev_train, tmp_path):
    train, valid = dev_train.subset(np.arange(1500)), dev_train.subset(np.arange(1500, 1800))
    cfg = LegNetConfig(**{**TINY, "max_epochs": 3})
    untrained = LegNet(cfg, seed=0, device="cpu")
    untrained.model = untrained.build_model()
    m = LegNet(cfg, seed=0, device="cpu", work_dir=tmp_path)
    m.fit(train, valid)
    hist = m.history
    assert len(hist) == 3 and hist[0]["n_seqs"] == 3000            # doubled with reverse complements
    assert m.best_epoch == 3                                        # keep="last": the final epoch
    assert hist[-1]["valid_loss"] < hist[0]["valid_loss"]
    base = kl_soft_label_loss(
        untrained.model.eval()(LegNetTransform(cfg)(torch.from_numpy(legnet_codes(valid)), None, False)[0]),
        soft_labels(torch.from_numpy(valid.y))).item()
    assert hist[-1]["valid_loss"] < base
    assert (tmp_path / "checkpoints" / "last.ckpt").is_file()


def test_config_validation_and_cpu_profile():
    with pytest.raises(ValueError, match="block_sizes"):
        LegNetConfig(block_sizes=[16])
    with pytest.raises(ValueError, match="keep"):
        LegNetConfig(keep="first")
    cpu = registry.load_profile("legnet", "cpu").config
    paper = LegNetConfig()
    for field in ("seq_len", "kernel_size", "resize_factor", "filter_per_group", "se_reduction", "bilinear_rank",
                  "n_bins", "shift", "scale", "max_lr", "div_factor", "pct_start", "weight_decay",
                  "predict_singleton", "keep"):
        assert getattr(cpu, field) == getattr(paper, field), field
    assert LegNet(cpu).num_parameters() < 100_000


def test_paper_is_fp32_and_paper_fast_only_changes_speed_settings():
    paper = registry.load_profile("legnet", "paper").config
    assert paper.mixed_precision == "off" and paper.compile == "off"   # fp32 as train.py
    fast = registry.load_profile("legnet", "paper-fast").config
    assert (fast.mixed_precision, fast.compile) == ("auto", "default")
    differing = {f for f in vars(paper) if getattr(paper, f) != getattr(fast, f)}
    assert differing == {"mixed_precision", "compile"}
    assert LegNet(fast).make_trainer().config.mixed_precision == "auto"
    assert LegNet(paper).make_trainer().config.mixed_precision == "off"
