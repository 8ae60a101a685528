"""Camformers (4th place, DREAM 2022): a residual CNN on one-hot 110-nt promoters.

Reproduces the team's write-up ("DREAM Challenge 2022 ... by Camformers", sections cited as §) and
slides. Paper profile = the :class:`CamformersConfig` defaults:

* Data (§1.1-1.3): keep training sequences of length 110 ± 3 nt with at most three N; pad with N
  at the 3' end / truncate at position 110; one-hot A,C,G,T (N -> zeros); targets as supplied;
  random 90/10 train/validation split (scikit-learn ``train_test_split``).
* Model (§2, Figure 1): six 2-D convolutions, kernel (10, 1), 512 channels, "same" padding, each
  followed by BatchNorm2d, ReLU and dropout 0.3; residual sums 1_0 -> 1_1, 2_0 -> 2_1,
  3_0 -> 3_1; max-pool (10, 1) stride (4, 1) after conv 3_0 (110 -> 26); flatten 13,312 ->
  dense 256 -> ReLU -> dense 256 -> ReLU -> dense 1. 16,611,073 trainable parameters.
* Training (§3): L1 loss, AdamW (lr 1e-3, weight decay 1e-3), batch 256, ReduceLROnPlateau on the
  validation loss (patience 10), early stopping after 10 epochs without improvement of validation
  Pearson r + Spearman rho, the best epoch's weights kept.
* No augmentation, no test-time augmentation, raw predictions (slides: "reverse-complement
  sequences: reduced performance").

Layer order inside a block. §2's prose lists "ReLU activation, batch normalisation and dropout"
after each convolution, and Figure 1 defines the custom ``ConvBlock`` (with a ``pool`` option) that
the figure itself (not reproduced in the text) draws. The team's published run log
(github.com/FredrikSvenssonUK/DREAM2022_Camformers, ``submission/Output/stdout.txt``, the printed
model) settles it: ``Conv2dSame -> BatchNorm2d -> ReLU -> [MaxPool2d] -> Dropout``, the pooling
inside block 3_0 between the ReLU and the dropout, and dense dropouts of 0.0. We follow that order.
A residual sum adds the *output of the whole block* 1_0 (after its dropout) to the output of block
1_1 (likewise 2_x, 3_x; for 3_x both are 26 long because 3_0 pools). "Same" padding for the even
kernel 10 pads 4 rows before and 5 after (PyTorch's ``padding="same"``); the write-up does not say
how its ``Conv2dSame`` splits the odd total of 9.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch
from sklearn.model_selection import train_test_split
from torch import nn
from torch.nn import functional as F

from harness.data import encoding
from harness.data.table import SeqTable
from harness.method import require_targets
from harness.registry import register
from harness.torch_method import TorchConfig, TorchMethod
from harness.torch_train import Trainer, one_hot_codes, predict_batches, select_device


@dataclasses.dataclass
class CamformersConfig(TorchConfig):
    """Camformers hyperparameters; the defaults are the write-up's (paper profile). Never edit them:
    scaled-down settings live in ``configs/camformers.toml`` profiles.

    Attributes:
        seq_len: model input length in nt (§1.1: 110).
        length_tolerance: keep training sequences with ``|length - seq_len| <= tolerance`` (§1.1: 3).
        max_n: keep training sequences with at most this many N (§1.1: three).
        valid_fraction: validation share of the random split made inside :meth:`Camformers.fit`
            when no validation set is passed (§1.3: 10 %).
        channels: output channels of each of the six convolutions (§2: 512).
        kernel_size: convolution kernel height, i.e. (k, 1) (§2: 10).
        dropout: dropout after each convolution block (§2: 0.3).
        pool_kernel, pool_stride: max-pool after conv 3_0, (k, 1) / (s, 1) (§2: 10 / 4).
        dense: width of dense layers 1 and 2 (§2: 256).
        batch_size: training batch (§3: 256).
        lr, weight_decay: AdamW (§3: 1e-3, 1e-3).
        max_epochs: epoch cap; early stopping normally ends the fit first (§3: best epoch 24,
            stopped at 34).
        patience: early stopping after this many epochs without a better validation r + rho (§3: 10).
        plateau_patience, plateau_factor: ReduceLROnPlateau on validation loss (§3: patience 10;
            the factor is not stated -- PyTorch's default 0.1, consistent with the sharp drop of the
            training loss at epoch 24 of the team's log, 11 epochs after the last best V loss).
        mixed_precision: ``"auto"`` = bf16 autocast on CUDA, fp32 elsewhere (the team trained on a
            TPU v3-8, PyTorch/XLA defaults).
        channels_last: channels-last (NHWC) weights and inputs for the 2-D convolutions (speed
            only; try it with bf16 on CUDA).
        max_batches_per_epoch: cap on steps per epoch, 0 = full epochs (CPU profiles only).

    Runtime settings (``eval_batch_size``, ``compile``, ``max_train_seconds``, ``progress``): see
    :class:`harness.torch_method.TorchConfig`.
    """

    seq_len: int = 110
    length_tolerance: int = 3
    max_n: int = 3
    valid_fraction: float = 0.1
    channels: int = 512
    kernel_size: int = 10
    dropout: float = 0.3
    pool_kernel: int = 10
    pool_stride: int = 4
    dense: int = 256
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 1e-3
    max_epochs: int = 100
    patience: int = 10
    plateau_patience: int = 10
    plateau_factor: float = 0.1
    mixed_precision: str = "auto"
    channels_last: bool = False
    max_batches_per_epoch: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("seq_len", "channels", "kernel_size", "pool_kernel", "pool_stride", "dense", "batch_size",
                     "max_epochs"):
            if getattr(self, name) < 1:
                raise ValueError(f"camformers: {name} must be >= 1, got {getattr(self, name)}")
        if self.pool_kernel > self.seq_len:
            raise ValueError(f"camformers: pool_kernel {self.pool_kernel} exceeds seq_len {self.seq_len}")
        if not 0 < self.valid_fraction < 1:
            raise ValueError(f"camformers: valid_fraction must be in (0, 1), got {self.valid_fraction}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"camformers: dropout must be in [0, 1), got {self.dropout}")

    @property
    def pooled_len(self) -> int:
        """Length after the max-pool: ``(seq_len - pool_kernel) // pool_stride + 1`` (110 -> 26)."""
        return (self.seq_len - self.pool_kernel) // self.pool_stride + 1


# ----------------------------------------------------------------------------------------------
# data
# ----------------------------------------------------------------------------------------------
def select_training_rows(codes: np.ndarray, lengths: np.ndarray, seq_len: int = 110, tolerance: int = 3,
                         max_n: int = 3) -> np.ndarray:
    """The write-up §1.1 inclusion filter for training rows.

    Args:
        codes: ``(N, W) uint8`` codes (PAD-filled).
        lengths: ``(N,)`` lengths in nt.
        seq_len, tolerance: keep ``seq_len - tolerance <= length <= seq_len + tolerance`` (107-113).
        max_n: keep rows with at most this many N (ambiguity) codes.

    Returns:
        ``(N,) bool`` mask of kept rows.
    """
    lengths = np.asarray(lengths)
    n_count = (codes == encoding.N).sum(axis=1)
    return (np.abs(lengths - seq_len) <= tolerance) & (n_count <= max_n)


def model_codes(table: SeqTable, seq_len: int = 110) -> np.ndarray:
    """Fixed-length codes: pad with N at the 3' end or truncate at ``seq_len`` (write-up §1.1).

    Returns ``(N, seq_len) uint8`` codes; one-hot happens later per batch (N -> zeros, §1.2).
    """
    return encoding.fit_length(table.codes, table.lengths, seq_len, strategy="right", fill="N", truncate="right")


def camformers_input(x: torch.Tensor, y: torch.Tensor | None,
                     training: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Batch transform: ``(B, L) uint8`` codes -> ``(B, 4, L, 1) float32`` one-hot (§2 input shape
    ``(channels 4, height L, width 1)``); targets unchanged (§1.2: used as supplied). No
    augmentation at training or prediction time."""
    return one_hot_codes(x).unsqueeze(-1), y


# ----------------------------------------------------------------------------------------------
# model
# ----------------------------------------------------------------------------------------------
class ConvBlock(nn.Module):
    """Conv2d (k, 1) "same" -> BatchNorm2d -> ReLU -> [MaxPool2d] -> Dropout (Figure 1 ConvBlock).

    Input ``(B, C_in, L, 1)``; output ``(B, C_out, L, 1)``, or ``(B, C_out, (L - pk) // ps + 1, 1)``
    with ``pool=(pk, ps)``.

    The convolution's parameters are an ``nn.Conv2d`` with a ``(k, 1)`` kernel (weight
    ``(C_out, C_in, k, 1)``, as the team's model), but the forward pass evaluates it as the
    identical 1-D convolution along the height axis on a squeezed view, with the same "same"
    padding (``(k - 1) // 2`` rows before, the rest after, as ``nn.Conv2d(padding="same")``). The
    result is the same convolution (a test checks it against ``nn.Conv2d``); on the project's
    2-core CPU oneDNN ran the ``(1, k)``-shaped kernel of ``conv1d`` about twice as fast as the
    ``(k, 1)`` one of ``conv2d`` (512 channels, forward + backward).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, dropout: float,
                 pool: tuple[int, int] | None = None) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size=(kernel_size, 1), padding="same")
        self.pad = ((kernel_size - 1) // 2, kernel_size - 1 - (kernel_size - 1) // 2)
        self.bn = nn.BatchNorm2d(out_channels)
        self.act = nn.ReLU()
        self.pool = nn.MaxPool2d(kernel_size=(pool[0], 1), stride=(pool[1], 1)) if pool else nn.Identity()
        self.drop = nn.Dropout(dropout)

    def conv_forward(self, x: torch.Tensor) -> torch.Tensor:
        """``self.conv(x)`` computed as a 1-D convolution: ``(B, C_in, L, 1) -> (B, C_out, L, 1)``."""
        h = F.pad(x.squeeze(-1), self.pad)
        return F.conv1d(h, self.conv.weight.squeeze(-1), self.conv.bias).unsqueeze(-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.pool(self.act(self.bn(self.conv_forward(x)))))


class CamformersNet(nn.Module):
    """The Camformers residual CNN (write-up §2).

    Input ``(B, 4, seq_len, 1)`` float one-hot; output ``(B,)`` float32 predicted expression. The
    last dense layer runs in fp32 even under autocast so predictions are not rounded to bf16.
    """

    def __init__(self, config: CamformersConfig) -> None:
        super().__init__()
        c, k, p = config.channels, config.kernel_size, config.dropout
        self.conv1_0 = ConvBlock(4, c, k, p)
        self.conv1_1 = ConvBlock(c, c, k, p)
        self.conv2_0 = ConvBlock(c, c, k, p)
        self.conv2_1 = ConvBlock(c, c, k, p)
        self.conv3_0 = ConvBlock(c, c, k, p, pool=(config.pool_kernel, config.pool_stride))
        self.conv3_1 = ConvBlock(c, c, k, p)
        self.dense1 = nn.Linear(c * config.pooled_len, config.dense)
        self.dense2 = nn.Linear(config.dense, config.dense)
        self.out = nn.Linear(config.dense, 1)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.conv1_0(x)
        x = self.conv1_1(a) + a
        a = self.conv2_0(x)
        x = self.conv2_1(a) + a
        a = self.conv3_0(x)
        x = self.conv3_1(a) + a
        h = self.relu(self.dense1(torch.flatten(x, 1)))
        h = self.relu(self.dense2(h))
        with torch.autocast(device_type=h.device.type, enabled=False):
            return self.out(h.float())[:, 0]


# ----------------------------------------------------------------------------------------------
# the plug-in
# ----------------------------------------------------------------------------------------------
@register("camformers")
class Camformers(TorchMethod):
    """Camformers residual CNN (DREAM 2022, 4th place). See the module docstring for the recipe.

    The network is :class:`CamformersNet` (paper: 16,611,073 trainable parameters, write-up §2),
    built by :meth:`build_model` with PyTorch's default init seeded by ``seed``. After
    :meth:`fit`: ``history`` (per-epoch records from :class:`harness.torch_train.Trainer`),
    ``best_epoch`` and ``filter_stats`` (rows in / dropped for length / dropped for N / kept), all
    saved in ``state.json`` beside ``model.pt`` (:class:`harness.torch_method.TorchMethod`).
    """

    Config = CamformersConfig
    Net = CamformersNet

    def __init__(self, config: CamformersConfig | None = None, *, seed: int = 0, device: str = "auto",
                 work_dir=None) -> None:
        super().__init__(config, seed=seed, device=device, work_dir=work_dir)
        self.filter_stats: dict[str, int] = {}

    def make_trainer(self, model: CamformersNet | None = None, checkpoint_dir: Path | None = None) -> Trainer:
        """The :class:`harness.torch_train.Trainer` that :meth:`fit` uses (also used by the benchmark).

        Write-up §3: ``nn.L1Loss``; ``AdamW(lr, weight_decay)``; ``ReduceLROnPlateau`` on the
        validation loss (``plateau_patience``, ``plateau_factor``) stepped once per epoch; early
        stopping after ``patience`` epochs without a better validation Pearson r + Spearman rho,
        best epoch's weights restored; batches of ``batch_size``. ``model`` defaults to
        :meth:`build_model`.
        """
        cfg = self.config
        train_cfg = self.train_config(
            batch_size=cfg.batch_size, max_epochs=cfg.max_epochs, patience=cfg.patience, monitor="r+rho",
            channels_last=cfg.channels_last, max_batches_per_epoch=cfg.max_batches_per_epoch or None)
        return Trainer(
            model if model is not None else self.build_model(), nn.L1Loss(),
            lambda net: torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay),
            config=train_cfg,
            scheduler_factory=lambda opt, steps, epochs: torch.optim.lr_scheduler.ReduceLROnPlateau(
                opt, mode="min", factor=cfg.plateau_factor, patience=cfg.plateau_patience),
            scheduler_interval="epoch", scheduler_monitor="valid_loss",
            transform=camformers_input, device=select_device(self.device), checkpoint_dir=checkpoint_dir)

    def _filter(self, table: SeqTable) -> SeqTable:
        cfg = self.config
        length_ok = np.abs(table.lengths.astype(np.int64) - cfg.seq_len) <= cfg.length_tolerance
        keep = select_training_rows(table.codes, table.lengths, cfg.seq_len, cfg.length_tolerance, cfg.max_n)
        self.filter_stats["rows"] = self.filter_stats.get("rows", 0) + len(table)
        self.filter_stats["dropped_length"] = self.filter_stats.get("dropped_length", 0) + int((~length_ok).sum())
        self.filter_stats["dropped_n"] = self.filter_stats.get("dropped_n", 0) + int((length_ok & ~keep).sum())
        self.filter_stats["kept"] = self.filter_stats.get("kept", 0) + int(keep.sum())
        return table.subset(keep)

    def fit(self, train: SeqTable, valid: SeqTable | None = None) -> None:
        """Train from scratch (resuming from ``work_dir/checkpoints`` when an interrupted fit of the
        same data left one there).

        Args:
            train: training rows with ``y``. Filtered by §1.1 (length 110 ± 3, at most three N).
            valid: optional validation rows (filtered the same way); without it, a seeded random
                ``valid_fraction`` split of the filtered ``train`` is held out (§1.3).

        Raises:
            ValueError: ``train`` (or ``valid``) has no targets, or fewer than 2 rows survive the
                filter.
        """
        cfg = self.config
        require_targets("camformers", train, valid)
        self.filter_stats = {}
        train = self._filter(train)
        if valid is None:
            if len(train) < 2:
                raise ValueError(f"camformers.fit: {len(train)} rows left after the §1.1 filter; need >= 2")
            tr_idx, va_idx = train_test_split(np.arange(len(train)), test_size=cfg.valid_fraction,
                                              random_state=self.seed, shuffle=True)
            train, valid = train.subset(np.sort(tr_idx)), train.subset(np.sort(va_idx))
        else:
            valid = self._filter(valid)
        if len(train) < 2 or len(valid) < 2:
            raise ValueError(f"camformers.fit: {len(train)} training / {len(valid)} validation rows after the "
                             "§1.1 filter; need >= 2 each")

        trainer = self.make_trainer(checkpoint_dir=self.checkpoint_dir)
        self.history = trainer.fit(model_codes(train, cfg.seq_len), train.y,
                                   model_codes(valid, cfg.seq_len), valid.y)
        self.best_epoch = trainer.best_epoch
        self.model = trainer.model.cpu()

    def predict(self, seqs: SeqTable) -> np.ndarray:
        """Raw predictions ``(len(seqs),) float64`` (eval mode, batches of ``eval_batch_size``, the
        method's device, fp32). Every row is predicted: no length/N filter at prediction time,
        only the §1.1 3' N-padding / truncation to ``seq_len``.

        Raises:
            RuntimeError: the method is neither fitted nor loaded.
        """
        model = self._fitted_model()
        with self._on_device() as device:
            return predict_batches(model, model_codes(seqs, self.config.seq_len), self.config.eval_batch_size,
                                   device, camformers_input)

    def _extra_state(self) -> dict:
        return {"filter_stats": self.filter_stats}

    def _restore_extra_state(self, state: dict) -> None:
        self.filter_stats = state.get("filter_stats", {})
