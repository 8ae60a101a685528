"""Camformers (4th place, DREAM 2022): a residual CNN on one-hot 110-nt promoters.

Sources: the team's write-up ("DREAM Challenge 2022 ... by Camformers", sections cited as §) and
the script that produced the submission, ``dream_submissions/Camformers/code/script/
camformers_submission.py`` in the organisers' repository de-Boer-Lab/random-promoter-dream-challenge-2022
(the team's github.com/FredrikSvenssonUK/camformers_submission; cited as "the script"). Where the two
disagree the script is followed. Paper profile = the :class:`CamformersConfig` defaults;
``configs/camformers.toml`` ``[paper-fast]`` adds bf16 autocast and ``torch.compile`` for speed and
is *not* the recipe.

Recipe
------
* Data (§1.1-1.3; the script's ``OHE``): keep training sequences with at most three N and length
  110 ± 3 nt; pad with N at the 3' end / truncate at position 110; one-hot A,C,G,T (N -> zeros);
  targets as supplied; random 90/10 train/validation split (scikit-learn ``train_test_split``,
  ``random_state`` = the method's seed; the team's 42 gives the team's split of the same rows).
* Model (§2, Figure 1; the script's ``CNN``, ``conv_block``, ``Conv2dSame``): six 2-D convolutions,
  kernel (10, 1), 512 channels, "same" padding (4 rows before, 5 after, as ``Conv2dSame``), each in
  a block ``Conv -> BatchNorm2d -> ReLU -> [MaxPool2d] -> Dropout(0.3)``; residual sums 1_0 -> 1_1,
  2_0 -> 2_1, 3_0 -> 3_1 (the output of the whole block 1_0, after its dropout, added to the output
  of block 1_1); max-pool (10, 1) stride (4, 1) inside block 3_0 between ReLU and dropout
  (110 -> 26); flatten 13,312 -> dense 256 -> ReLU -> dense 256 -> ReLU -> dense 1 (the script's
  dense dropouts are 0.0 and are left out). **16,611,073 trainable parameters**, as §2 and the
  script's printed count.
* Training (§3; the script's ``train``): L1 loss, AdamW (lr 1e-3, weight decay 1e-3), batch 256,
  shuffled, the last incomplete batch dropped (``DataLoader(drop_last=True)``), at most 50 epochs
  (``epochs = 50``), ``ReduceLROnPlateau(optimizer, "min")`` on the validation loss (PyTorch's
  defaults: patience 10, factor 0.1), early stopping after 10 epochs without a higher validation
  Pearson r + Spearman rho, the best epoch's weights kept, fp32.
* No augmentation, no test-time augmentation, raw predictions (slides: "reverse-complement
  sequences: reduced performance").

Fidelity table
--------------
``paper`` against the script. Each entry: difference -- why -- expected effect.

* Precision. Team: one core of a TPU v3-8 through PyTorch/XLA 1.11 with fp32 tensors (the script
  sets no bf16 flag); the TPU's matrix unit may have computed fp32 convolutions/matmuls at XLA's
  default (reduced) precision. Here: fp32 (on CUDA, PyTorch's defaults: TF32 allowed in cuDNN
  convolutions, not in matmuls) -- the TPU arithmetic cannot be reproduced off a TPU -- float
  rounding only.
* Validation batches. Team: the validation loader also shuffles and drops its last incomplete batch,
  so each epoch's validation loss (a mean of batch means), r and rho leave out up to 255 random
  rows of 660,559. Here: every validation row, in order -- a deterministic score --
  negligible (< 0.04 % of the rows).
* Random streams. Team: seed 42 for ``torch``, NumPy, ``random`` and the loader's generator.
  Here: the harness seed for initialisation and a NumPy permutation per epoch -- resumable seeded
  runs -- a different run with the same distribution (seed-to-seed variation).
* Prediction filter. The script runs the test file through the same N / length filter before
  predicting; here every row is predicted (only the 3' N-padding / truncation) -- a method must
  return one prediction per row -- none on the challenge test set (all 71,103 sequences are 110 nt
  with at most three N, measured).
* Convolution kernel evaluated as the identical 1-D convolution on a squeezed view (see
  :class:`ConvBlock`) -- about 2x faster on the CPU -- float rounding only (a test compares it
  with ``nn.Conv2d``).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from harness.data import encoding
from harness.data.sequence import one_hot_codes
from harness.data.table import SeqTable
from harness.holdout import holdout_split
from harness.registry import register
from harness.torch_method import FitData, TorchConfig, TorchMethod


@dataclasses.dataclass
class CamformersConfig(TorchConfig):
    """Camformers hyperparameters; the defaults are the recipe of the team's submission script
    (paper profile; see the module docstring). Never edit them: scaled-down and speed settings live
    in ``configs/camformers.toml`` profiles.

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
        max_epochs: epoch cap (the script: ``epochs = 50``); early stopping normally ends the fit
            first (§3: best epoch 24, stopped at 34).
        patience: early stopping after this many epochs without a better validation r + rho (§3: 10).
        plateau_patience, plateau_factor: ReduceLROnPlateau on validation loss (§3: patience 10;
            the factor is not stated -- PyTorch's default 0.1, consistent with the sharp drop of the
            training loss at epoch 24 of the team's log, 11 epochs after the last best V loss; the
            script calls ``ReduceLROnPlateau(optimizer, "min")``, i.e. patience 10, factor 0.1).
        drop_last: drop the last incomplete training batch each epoch (the script's
            ``DataLoader(drop_last=True)``); ignored when the training set is smaller than a batch.
        mixed_precision: ``"off"`` (paper: fp32, the script's fp32 tensors on the TPU); ``"auto"``
            (bf16 autocast on CUDA, fp32 elsewhere) is the ``paper-fast`` speed profile.
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
    max_epochs: int = 50
    patience: int = 10
    plateau_patience: int = 10
    plateau_factor: float = 0.1
    drop_last: bool = True
    mixed_precision: str = "off"
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
    :meth:`fit`: ``history`` (per-epoch records from :class:`harness.training.SeqTrainer`),
    ``best_epoch`` and ``filter_stats`` (rows in / dropped for length / dropped for N / kept), all
    saved in ``state.json`` beside ``model.pt`` (:class:`harness.torch_method.TorchMethod`).
    """

    Config = CamformersConfig
    profiles = {"tiny": {"channels": 4, "dense": 8, "batch_size": 64, "max_epochs": 1, "progress": False}}
    paper_num_parameters = 16_611_073  # write-up §2
    Net = CamformersNet

    def __init__(self, config: CamformersConfig | None = None, *, seed: int = 0, device: str = "auto",
                 work_dir=None) -> None:
        super().__init__(config, seed=seed, device=device, work_dir=work_dir)
        self.filter_stats: dict[str, int] = {}

    # ----- the recipe (hooks of harness.torch_method.TorchMethod) ---------------------------------
    # Write-up §3 and the script's ``train``: ``nn.L1Loss``; ``AdamW(lr, weight_decay)``;
    # ``ReduceLROnPlateau`` on the validation loss (``plateau_patience``, ``plateau_factor``) stepped
    # once per epoch; early stopping after ``patience`` epochs without a better validation Pearson r
    # + Spearman rho, best epoch's weights restored; shuffled batches of ``batch_size``, the last
    # incomplete one dropped (``drop_last``, unless the training rows are fewer than one batch); at
    # most ``max_epochs``. ``make_trainer`` (the base's) assembles them.
    scheduler_interval = "epoch"
    scheduler_monitor = "valid_loss"

    def loop_settings(self, n_train: int | None = None) -> dict:
        cfg = self.config
        return dict(batch_size=cfg.batch_size, max_epochs=cfg.max_epochs, patience=cfg.patience, monitor="r+rho",
                    drop_last=cfg.drop_last and (n_train is None or n_train >= cfg.batch_size),
                    channels_last=cfg.channels_last, max_batches_per_epoch=cfg.max_batches_per_epoch or None)

    def loss(self) -> nn.Module:
        return nn.L1Loss()

    def make_optimizer(self, net: nn.Module) -> torch.optim.Optimizer:
        return torch.optim.AdamW(net.parameters(), lr=self.config.lr, weight_decay=self.config.weight_decay)

    def make_scheduler(self, optimizer: torch.optim.Optimizer, steps_per_epoch: int, max_epochs: int):
        return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="min", factor=self.config.plateau_factor,
                                                          patience=self.config.plateau_patience)

    def transform(self):
        return camformers_input

    def _filter(self, table: SeqTable) -> SeqTable:
        """Rows kept by §1.1, counted in the script's order (N count first: ``dropped_n`` among all
        rows, then ``dropped_length`` among the rest, as the write-up's 23,533 and 110,138)."""
        cfg = self.config
        n_ok = (table.codes == encoding.N).sum(axis=1) <= cfg.max_n
        keep = select_training_rows(table.codes, table.lengths, cfg.seq_len, cfg.length_tolerance, cfg.max_n)
        self.filter_stats["rows"] = self.filter_stats.get("rows", 0) + len(table)
        self.filter_stats["dropped_n"] = self.filter_stats.get("dropped_n", 0) + int((~n_ok).sum())
        self.filter_stats["dropped_length"] = self.filter_stats.get("dropped_length", 0) + int((n_ok & ~keep).sum())
        self.filter_stats["kept"] = self.filter_stats.get("kept", 0) + int(keep.sum())
        return table.subset(keep)

    def prepare_fit(self, train: SeqTable, valid: SeqTable | None) -> FitData:
        """The §1 data steps of :meth:`fit` (:meth:`harness.torch_method.TorchMethod.fit`).

        ``train`` is filtered by §1.1 (length 110 ± 3, at most three N; counts in
        ``filter_stats``); ``valid`` (optional) the same way; without it, a seeded random
        ``valid_fraction`` split of the filtered ``train`` is held out (§1.3; scikit-learn
        ``train_test_split``, :func:`harness.holdout.holdout_split`). Inputs: 3' N-padded codes
        (:func:`model_codes`); targets as supplied.

        Raises:
            ValueError: fewer than 2 rows survive the filter, or fewer than 2 on either side of
                the split.
        """
        cfg = self.config
        self.filter_stats = {}
        train = self._filter(train)
        if valid is None:
            if len(train) < 2:
                raise ValueError(f"camformers.fit: {len(train)} rows left after the §1.1 filter; need >= 2")
            tr_idx, va_idx = holdout_split(len(train), cfg.valid_fraction, self.seed, generator="sklearn",
                                           who="camformers.fit")
            train, valid = train.subset(tr_idx), train.subset(va_idx)
        else:
            valid = self._filter(valid)
        if len(train) < 2 or len(valid) < 2:
            raise ValueError(f"camformers.fit: {len(train)} training / {len(valid)} validation rows after the "
                             "§1.1 filter; need >= 2 each")
        return FitData(model_codes(train, cfg.seq_len), train.y, model_codes(valid, cfg.seq_len), valid.y)

    def predict_inputs(self, seqs: SeqTable) -> np.ndarray:
        """Every row is predicted: no length/N filter at prediction time, only the §1.1 3'
        N-padding / truncation to ``seq_len`` (raw predictions, eval mode, fp32)."""
        return model_codes(seqs, self.config.seq_len)

    def _extra_state(self) -> dict:
        return {"filter_stats": self.filter_stats}

    def _restore_extra_state(self, state: dict) -> None:
        self.filter_stats = state.get("filter_stats", {})
