"""High Schoolers Are All You Need (DREAM 2022): RC-aware CNN + attention pooling + one transformer layer.

A **PyTorch port** of the team's TensorFlow/Keras model, on the harness's shared training loop
(:class:`harness.training.SeqTrainer`). Sources: the team's write-up ("DREAM Challenge 2022
Predicting gene expression using millions of random promoter sequences by High Schoolers Are All
You Need", sections cited as §) and their published code (de-Boer-Lab/random-promoter-dream-
challenge-2022, ``dream_submissions/High Schoolers Are All You Need/code``: ``Training Code/
DataProcessing.py``, ``Training Code/ModelTraining.py`` and ``Testing Code/GetPredictions.py``,
cited as *DataProcessing*, *ModelTraining*, *GetPredictions*). Where the write-up is silent or
disagrees with the code, the code that produced the submission decides (said where it happens).
The ``paper`` profile = the :class:`HighSchoolersConfig` defaults = that code's recipe, up to the
differences in the Fidelity table below.

Recipe
------
* Data (§1; *DataProcessing*): drop training sequences longer than 111 nt; pad the rest with N at
  the 3' end to 111 nt; one-hot A, C, G, T with N -> all zeros (the code one-hot encodes "ACGTN"
  and keeps channels 0-3); targets as supplied. The team held out the *last* 104,448 processed
  rows for validation (and, through an off-by-41 slice ``x_train[:-104489]``, never used the 41
  rows just before them). Inside :meth:`HighSchoolers.fit` without a validation table a seeded
  random hold-out of ``valid_size`` rows (>= 1: a row count, the team's 104,448; < 1: a fraction)
  is used instead -- the tail of a shuffled challenge file is a random hold-out too, and a harness
  fold's row order carries no meaning. At prediction time every row is predicted (sequences
  longer than 111 nt are cut at 111; the team's test set had none).
* Model (§2; *ModelTraining*), 4,680,769 trainable parameters (Keras' summary would add 7,552
  non-trainable BatchNorm moving statistics, 4,688,321 in all):

  - block 1: reverse-complement convolution (``RevCompConv1D``: 192 filters, k19, "same", one
    shared bias; the reverse-complement filter set is the forward set flipped along length *and*
    channel; both strands' maps concatenated -> 384 channels) -> BatchNorm -> exp -> residual
    dilated block (384 ch, 4 convs k3, dilations 1, 2, 4, 8) -> Dropout 0.2 -> attention pooling 4
    (111 -> crop 108 -> 27);
  - block 2: Conv k9 384 -> 256 with ReLU *inside the conv* (``activation='relu'``) -> BatchNorm ->
    ReLU -> residual block (2 convs, dilations 1, 2) -> attention pooling 4 (27 -> crop 24 -> 6) ->
    Dropout 0.3;
  - block 3: Conv k7 256 -> 192 -> BatchNorm -> ReLU -> residual block (2 convs) -> attention
    pooling 2 (6 -> 3) -> Dropout 0.1;
  - residual block (``residual_block``): conv (no bias, dilation 1) -> BN, then per further conv
    ReLU -> Dropout 0.1 -> conv (bias, dilation 2^i) -> BN; the sum with the block input -> ReLU;
  - attention pooling (``AttentionPooling``, §2): crop the length to a multiple of the pool size,
    logits from a bias-free 1x1 convolution C -> C (the team's change from Enformer's dense
    layer), softmax over the positions of each window per channel, weighted sum;
  - transformer layer (``MultiHeadAttention2``): 8 heads, d_model 192, bias-free Q/K/V, Enformer
    relative positional encoding (exponential, central-mask and gamma basis functions, each also
    times sign(distance): 6 x 32 = 192 features, dropout 0.1 on them while training; bias-free
    projection; learned content and position biases ``r_w``, ``r_r`` ~ N(0, 0.5)); relative shift
    exactly as the team's ``relative_shift``; output projection with bias -> Dropout 0.1 ->
    residual -> LayerNorm -> 1x1 conv 1024 -> Dropout 0.1 -> ReLU -> 1x1 conv 192 -> Dropout 0.1
    -> residual -> LayerNorm;
  - head: flatten (3 x 192, Keras' position-major order) -> Dense 256 -> BN -> ReLU -> Dropout 0.4
    -> Dense 256 -> BN -> ReLU -> Dropout 0.4 -> Dense 1 (linear).

* Training (§3, Table 1; *ModelTraining*): MSE; ``tfa.optimizers.SWA(Adam(1e-4),
  start_averaging=150, average_period=30)``; batch 1024; every epoch a random slice of 307,200
  training rows without replacement (300 steps); 750 epochs at lr 1e-4, then **500** epochs of
  fine-tuning at 3e-5 -- *ModelTraining*'s fine-tuning loop is ``for i in range(750, 1250)``,
  while Table 1 says 100; the code decides (``finetune_epochs``; set 100 for Table 1's reading,
  see the Fidelity table); the weights with the best validation Pearson r over both stages kept,
  validated after epochs 1, 4, 7, ... as the team did (``validate_every = 3``); fp32.
* Post-processing (§2 "the output predictions were converted to a uniform distribution by
  dividing the data into quantiles"; *GetPredictions*: ``uniform_preds =
  quantile_transform(np.expand_dims(preds, axis=1))``): scikit-learn's
  ``quantile_transform`` with its defaults -- fitted on the predictions being made (the 71,103
  test predictions at once, nothing from training), 1,000 quantiles (``min(1000, N)``),
  ``output_distribution="uniform"``: the submitted values are each prediction's empirical CDF
  level in [0, 1]. On in ``paper`` (``quantile_output``): :meth:`HighSchoolers.predict`
  transforms the rows of each call together, so a prediction depends on the other rows of that
  call, as in the submission. Off in ``cpu`` (raw expression for stacking and hold-out scores).

What SWA does here (read this before changing ``prediction_weights``)
--------------------------------------------------------------------
TensorFlow Addons' ``SWA`` counts ``start_averaging`` and ``average_period`` in **optimizer
steps** (``self.iterations``), not epochs, whatever §3 says ("The epoch at which SWA was set to
begin was 150"): after the update of 0-based step ``k >= 150`` with ``(k - 150) % 30 == 0`` it
folds the weights into an equal-weight running mean held in optimizer slots. Those averages only
reach the model through ``opt.assign_average_vars(...)`` (or TFA's ``AverageModelCheckpoint``),
which the team's code never calls: their validation, their saved ``model.h5`` and their test
predictions all use the plain Adam weights. The faithful default ``prediction_weights="best"``
therefore predicts with the best-validation-Pearson Adam weights, while the optimizer
(:class:`KerasAdamSWA`) still maintains the SWA averages exactly as TFA did (they are part of the
resumable checkpoint). ``prediction_weights="swa"`` is the write-up's reading of SWA: after
training the final averages are assigned to the network (TFA ``assign_average_vars``; trainable
parameters only) and the BatchNorm statistics are recomputed for them with
:func:`torch.optim.swa_utils.update_bn` (one training-mode pass over the training rows, cumulative
averages), as TFA's SWA docstring and the SWA paper prescribe. The per-epoch validation still
scores the Adam weights; the SWA model's validation r/rho are stored in ``swa_metrics``.

Keras defaults matched (this is a port, not the team's code)
-----------------------------------------------------------
* BatchNormalization momentum 0.99 / epsilon 1e-3 -> PyTorch ``momentum=0.01, eps=1e-3``;
  LayerNormalization epsilon 1e-3.
* ``glorot_uniform`` kernels (convolutions: fans ``k * in`` / ``k * out``, as Keras) and zero
  biases for every Conv1D/Dense; ``r_w``, ``r_r`` ~ N(0, 0.5) as the team's layer.
* Adam (Keras): beta 0.9/0.999, epsilon 1e-7 applied Keras' way -- ``lr * sqrt(1 - b2^t) /
  (1 - b1^t) * m / (sqrt(v) + eps)`` -- implemented in :class:`KerasAdamSWA` (PyTorch's Adam puts
  eps after the bias correction and defaults to 1e-8).
* "same" padding: every kernel here is odd, so "same" pads ``d * (k - 1) / 2`` on both sides
  (TensorFlow and PyTorch agree); the RC filter set is convolved with the same padding.
* ``Cropping1D((0, L % pool))`` before attention pooling drops the 3' tail positions.
* Dropout inside the attention layer is created in ``call`` in Keras and follows the model's
  training flag; here it is an ``nn.Dropout`` (active in ``train()`` only).
* fp32 throughout (Keras' default policy); ``mixed_precision`` / ``compile`` are speed settings
  outside the recipe (profile ``paper-fast``).

Fidelity: what still differs from the team's code
-------------------------------------------------
==================  ===================================  ==============================  =============================
Item                Team code (submission)               Here (paper)                    Why / expected effect
==================  ===================================  ==============================  =============================
Framework           TensorFlow/Keras; TF32 on by         PyTorch port in fp32 (TF32      harness is PyTorch;
                    default for matmuls and              matmuls off, cuDNN              rounding-level differences
                    convolutions on Ampere+ GPUs; BN     convolutions at PyTorch's       only
                    moving variance from the biased      default); BN running variance
                    batch variance (non-fused path for   unbiased (x n/(n-1), n >=
                    these 2-D/3-D inputs)                1,024)
Validation rows     the last 104,448 rows of the         a seeded random hold-out of     a fold's row order means
                    processed file; the 41 rows before   valid_size rows of the rows     nothing; another random
                    them unused (x_train[:-104489])      fit is given (or the valid      validation set of the same
                                                         table passed)                   size, 41 more training rows
Training rows       the whole filtered file              the rows fit is given (a        harness folds / hold-out
                                                         fold's training part)
Epoch slices, RNG   unseeded np.random.choice slice,     seeded permutation per epoch,   same distributions, other
                    shuffled by model.fit; TF            first 300 batches; torch        random numbers
                    initialisers                         initialisers
Validation epochs   1, 4, ..., 1249 (i % 3 == 0); saved  the same epochs and the last    Lightning fit;   one more
                    when r >= best - 1e-7 (a later tie   (1250); strict improvement (an  candidate, ties negligible
                    wins)                                earlier tie wins)
Between stages      run top to bottom, the notebook      last stage-1 weights and        which the team ran is not
                    continues from the last stage-1      optimizer state; lr x 0.3 from  recorded; small, the best
                    weights and optimizer state; the     epoch 751 (LambdaLR)            epoch of both stages is kept
                    optional 'more than one run' cell
                    reloads model.h5 (best weights +
                    optimizer) instead
Fine-tuning         range(750, 1250): 500 epochs         500 (finetune_epochs)           the code decides; 1,250
                    (write-up Table 1: 100)                                              instead of 850 epochs (+47 %
                                                                                         compute), more candidates for
                                                                                         the best-r pick.
                                                                                         finetune_epochs = 100 gives
                                                                                         Table 1
Quantile subsample  quantile_transform default           random_state = seed             none for the 71,103-row test
                    random_state=None: an unseeded                                       set (no subsampling)
                    100,000-row subsample above 100,000
                    rows
Long sequences      test sequences > 111 nt would not    cut at 111 nt                   none on challenge data
                    fit the 111-wide one-hot array
                    (none exist)
==================  ===================================  ==============================  =============================

Not differences (checked): the team's ``ProfileModel`` wrappers (stochastic reverse-complement
training, forward/RC averaged ``test_step``) are nested functional models called as layers, and
Keras never runs a nested model's ``train_step``/``test_step``: the submitted model was trained
and evaluated without RC augmentation, as here. SWA bookkeeping counts each parameter's own
updates, which equals TFA's global ``iterations`` (every parameter gets a gradient every step).
``paper`` is the submitted recipe up to the rows above, not a bit-exact re-run.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Iterator

import numpy as np
import torch
from scipy import special
from sklearn.preprocessing import quantile_transform
from torch import nn
from torch.nn import functional as F

from harness.data import encoding
from harness.data.sequence import one_hot_codes
from harness.data.table import SeqTable
from harness.holdout import holdout_split
from harness.registry import register
from harness.torch_method import FitData, TorchConfig, TorchMethod
from harness.training import SeqTrainer, pearson_spearman, predict_batches

#: trainable parameters of the paper configuration (the team's Keras model: 4,680,769 trainable +
#: 7,552 non-trainable BatchNorm moving statistics).
PAPER_NUM_PARAMETERS = 4_680_769

#: Keras BatchNormalization defaults (momentum 0.99 -> PyTorch momentum 1 - 0.99; epsilon 1e-3).
KERAS_BN_MOMENTUM = 0.01
KERAS_BN_EPS = 1e-3
#: Keras LayerNormalization default epsilon.
KERAS_LN_EPS = 1e-3


@dataclasses.dataclass
class HighSchoolersConfig(TorchConfig):
    """Hyperparameters; the defaults are the team's (paper profile). Never edit them: scaled-down
    settings live in ``configs/highschoolers.toml`` profiles.

    Attributes:
        seq_len: model input length in nt; longer training sequences are dropped, shorter ones
            N-padded at the 3' end (§1: 111).
        valid_size: hold-out used by :meth:`HighSchoolers.fit` when no validation table is given:
            >= 1 a row count, in (0, 1) a fraction (§1: the last 104,448 processed rows).
        conv1_filters, conv1_kernel: RC convolution, filters per strand and width (§2 / code: 192, 19).
        conv2_filters, conv2_kernel: block 2 convolution (code: 256, 9).
        conv3_filters, conv3_kernel: block 3 convolution (code: 192, 7); also the transformer width.
        res_layers: convolutions of the residual dilated blocks 1-3 (code: 4, 2, 2 -> dilations
            1..8, 1..2, 1..2).
        res_kernel, res_dropout: residual convolutions' width and inner dropout (code: 3, 0.1).
        pool_sizes: attention pooling windows of blocks 1-3 (code: 4, 4, 2).
        block_dropouts: dropout of blocks 1-3 (code: 0.2 before pooling, 0.3 and 0.1 after).
        heads: attention heads (§2 / code: 8); ``conv3_filters`` must divide by it and by 6.
        ffn: width of the transformer's 1x1-conv feed-forward layer (code: 1024).
        attn_dropout: dropouts inside the transformer layer (positional features, attention output,
            both feed-forward convs; code: 0.1).
        dense, dense_dropout: head width and dropouts (code: 256, 0.4).
        batch_size: training batch (Table 1: 1024).
        lr, finetune_lr: Adam learning rates of training / fine-tuning (Table 1: 1e-4, 3e-5).
        adam_eps: Keras Adam epsilon (Keras default 1e-7).
        train_epochs, finetune_epochs: epochs of the two stages (*ModelTraining*: 750 and 500, its
            loops ``range(750)`` and ``range(750, 1250)``; Table 1 says 750 and 100).
        slice_size: training rows per epoch, a fresh random slice each epoch (Table 1: 307,200);
            0 or more than the training rows: full passes.
        swa_start, swa_period: SWA start and period in optimizer steps (code: 150, 30; TFA counts
            steps, see the module docstring).
        validate_every: validate (and consider keeping the weights) after epochs 1, 1 + k, ...
            (write-up, training: "Evaluation on the validation set is performed every three
            epochs"; team code: epochs 1, 4, 7, ...; the last epoch is always validated too).
        prediction_weights: ``"best"`` (the team's code: best-validation-Pearson Adam weights) or
            ``"swa"`` (final SWA averages, BatchNorm statistics recomputed).
        quantile_output: map the predictions of each :meth:`HighSchoolers.predict` call to their
            uniform quantile levels (*GetPredictions*: on; the ``cpu`` profile turns it off).
        eval_batch_size: rows per forward pass for validation/prediction (code: 1024).
        mixed_precision: ``"off"`` (fp32, Keras' default policy: the recipe), ``"auto"``, ``"bf16"``,
            ``"fp16"`` (speed only, profile ``paper-fast``).

    Runtime settings (``compile``, ``max_train_seconds``, ``progress``): see
    :class:`harness.torch_method.TorchConfig`.
    """

    seq_len: int = 111
    valid_size: float = 104_448
    conv1_filters: int = 192
    conv1_kernel: int = 19
    conv2_filters: int = 256
    conv2_kernel: int = 9
    conv3_filters: int = 192
    conv3_kernel: int = 7
    res_layers: tuple[int, int, int] = (4, 2, 2)
    res_kernel: int = 3
    res_dropout: float = 0.1
    pool_sizes: tuple[int, int, int] = (4, 4, 2)
    block_dropouts: tuple[float, float, float] = (0.2, 0.3, 0.1)
    heads: int = 8
    ffn: int = 1024
    attn_dropout: float = 0.1
    dense: int = 256
    dense_dropout: float = 0.4
    batch_size: int = 1024
    lr: float = 1e-4
    finetune_lr: float = 3e-5
    adam_eps: float = 1e-7
    train_epochs: int = 750
    finetune_epochs: int = 500
    slice_size: int = 307_200
    swa_start: int = 150
    swa_period: int = 30
    validate_every: int = 3
    prediction_weights: str = "best"
    quantile_output: bool = True
    eval_batch_size: int = 1024
    mixed_precision: str = "off"

    def __post_init__(self) -> None:
        super().__post_init__()
        # TOML arrays arrive as lists: keep the config hashable/comparable
        self.res_layers = tuple(int(v) for v in self.res_layers)
        self.pool_sizes = tuple(int(v) for v in self.pool_sizes)
        self.block_dropouts = tuple(float(v) for v in self.block_dropouts)
        for name in ("seq_len", "conv1_filters", "conv1_kernel", "conv2_filters", "conv2_kernel", "conv3_filters",
                     "conv3_kernel", "res_kernel", "heads", "ffn", "dense", "batch_size",
                     "swa_period"):
            if getattr(self, name) < 1:
                raise ValueError(f"highschoolers: {name} must be >= 1, got {getattr(self, name)}")
        if len(self.res_layers) != 3 or len(self.pool_sizes) != 3 or len(self.block_dropouts) != 3:
            raise ValueError("highschoolers: res_layers, pool_sizes and block_dropouts need 3 entries (one per block)")
        if min(self.res_layers) < 1 or min(self.pool_sizes) < 1:
            raise ValueError("highschoolers: res_layers and pool_sizes must be >= 1")
        for k in (self.conv1_kernel, self.conv2_kernel, self.conv3_kernel, self.res_kernel):
            if k % 2 == 0:
                raise ValueError(f"highschoolers: kernel sizes must be odd (symmetric 'same' padding), got {k}")
        if self.conv3_filters % self.heads or self.conv3_filters % 6:
            raise ValueError(f"highschoolers: conv3_filters (d_model) {self.conv3_filters} must be divisible by "
                             f"heads {self.heads} and by 6 (six positional basis functions)")
        if self.pooled_len < 1:
            raise ValueError(f"highschoolers: seq_len {self.seq_len} is too short for pool sizes {self.pool_sizes}")
        for name in ("res_dropout", "attn_dropout", "dense_dropout"):
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(f"highschoolers: {name} must be in [0, 1), got {getattr(self, name)}")
        if not all(0 <= p < 1 for p in self.block_dropouts):
            raise ValueError(f"highschoolers: block_dropouts must be in [0, 1), got {self.block_dropouts}")
        if not self.valid_size > 0 or (self.valid_size >= 1 and self.valid_size != int(self.valid_size)):
            raise ValueError(f"highschoolers: valid_size must be a fraction in (0, 1) or a whole row count, "
                             f"got {self.valid_size}")
        if self.train_epochs < 0 or self.finetune_epochs < 0 or self.train_epochs + self.finetune_epochs < 1:
            raise ValueError("highschoolers: train_epochs + finetune_epochs must be >= 1 (each >= 0)")
        if self.slice_size < 0 or self.swa_start < 0:
            raise ValueError("highschoolers: slice_size and swa_start must be >= 0")
        if self.lr <= 0 or self.finetune_lr <= 0:
            raise ValueError("highschoolers: learning rates must be > 0")
        if self.prediction_weights not in ("best", "swa"):
            raise ValueError(f"highschoolers: prediction_weights must be 'best' or 'swa', got {self.prediction_weights!r}")

    @property
    def pooled_len(self) -> int:
        """Length after the three attention poolings (each floors: 111 -> 27 -> 6 -> 3)."""
        length = self.seq_len
        for p in self.pool_sizes:
            length //= p
        return length


# ----------------------------------------------------------------------------------------------
# data
# ----------------------------------------------------------------------------------------------
def model_codes(table: SeqTable, seq_len: int = 111) -> np.ndarray:
    """Fixed-length codes (§1; *DataProcessing* ``convert_one_hot``): N-pad at the 3' end to
    ``seq_len``; rows longer than ``seq_len`` are cut at ``seq_len`` (training rows that long are
    dropped before this by :meth:`HighSchoolers.fit`).

    Returns ``(N, seq_len) uint8`` codes; one-hot happens per batch (N -> zeros).
    """
    return encoding.fit_length(table.codes, table.lengths, seq_len, strategy="right", fill="N", truncate="right")


def uniform_quantiles(pred: np.ndarray, random_state: int | None = None) -> np.ndarray:
    """The team's post-processing (*GetPredictions*: ``quantile_transform(np.expand_dims(preds,
    axis=1))``; write-up §2): scikit-learn's :func:`sklearn.preprocessing.quantile_transform` with
    its defaults, fitted on ``pred`` itself -- ``n_quantiles = min(1000, N)`` (scikit-learn lowers
    1,000 to ``N`` itself, with a warning), ``output_distribution="uniform"``, ``subsample =
    100,000`` rows for the quantile estimate -- so each value becomes its empirical CDF level among
    ``pred`` (interpolated between the quantiles; ties share a level). Monotone: Spearman rho
    against any target is unchanged, Pearson r is not.

    Args:
        pred: ``(N,)`` raw predictions (any float dtype; the team's were float32).
        random_state: seed of the subsample, used only when ``N > 100,000`` (the team: None,
            unseeded; their 71,103 test rows were never subsampled).

    Returns:
        ``(N,) float64`` values in [0, 1] (min -> 0, max -> 1; a single row -> 0, as scikit-learn
        gives; an empty input -> empty).

    Raises:
        ValueError: ``pred`` is not one-dimensional or holds NaN/inf.
    """
    pred = np.asarray(pred)
    if pred.ndim != 1:
        raise ValueError(f"uniform_quantiles: expected a 1-D array of predictions, got shape {pred.shape}")
    if len(pred) == 0:
        return np.zeros(0, dtype=np.float64)
    if not np.all(np.isfinite(pred)):
        raise ValueError(f"uniform_quantiles: {int((~np.isfinite(pred)).sum())} of {len(pred)} predictions are "
                         "NaN or infinite")
    levels = quantile_transform(pred[:, None], n_quantiles=min(1000, len(pred)), output_distribution="uniform",
                                subsample=100_000, random_state=random_state, copy=True)
    return np.asarray(levels[:, 0], dtype=np.float64)


def highschoolers_input(x: torch.Tensor, y: torch.Tensor | None,
                        training: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Batch transform: ``(B, L) uint8`` codes -> ``(B, 4, L) float32`` one-hot (A, C, G, T; N and
    PAD -> zeros; §1); targets unchanged. No augmentation at training or prediction time (the
    team's RC augmentation never ran, see the module docstring)."""
    return one_hot_codes(x), y


# ----------------------------------------------------------------------------------------------
# layers
# ----------------------------------------------------------------------------------------------
def keras_batch_norm(channels: int) -> nn.BatchNorm1d:
    """``nn.BatchNorm1d`` with Keras ``BatchNormalization`` defaults (momentum 0.99, eps 1e-3)."""
    return nn.BatchNorm1d(channels, momentum=KERAS_BN_MOMENTUM, eps=KERAS_BN_EPS)


def _same_conv(in_ch: int, out_ch: int, kernel: int, dilation: int = 1, bias: bool = True) -> nn.Conv1d:
    """Conv1d with Keras "same" padding for an odd kernel (``dilation * (k - 1) / 2`` each side)."""
    return nn.Conv1d(in_ch, out_ch, kernel, padding=dilation * (kernel - 1) // 2, dilation=dilation, bias=bias)


class RevCompConv1d(nn.Module):
    """Reverse-complement-aware convolution with tied weights (§2 block 1; the team's ``RevCompConv1D``).

    One ``(filters, 4, k)`` weight and one ``(filters,)`` bias. The reverse-complement filter set is
    the forward set flipped along length and channel (A<->T, C<->G for the A, C, G, T channel
    order); both sets scan the input with "same" padding and share the bias. Consequently the RC
    half of the output on ``x`` equals the forward half on ``RC(x)``, reversed along length.

    Input ``(B, 4, L)`` float one-hot; output ``(B, 2 * filters, L)``: forward maps then RC maps.
    Raises ValueError (construction) for an even kernel.
    """

    def __init__(self, filters: int, kernel_size: int, in_channels: int = 4) -> None:
        super().__init__()
        if kernel_size % 2 == 0:
            raise ValueError(f"RevCompConv1d needs an odd kernel, got {kernel_size}")
        self.filters = filters
        self.padding = (kernel_size - 1) // 2
        self.weight = nn.Parameter(torch.empty(filters, in_channels, kernel_size))
        self.bias = nn.Parameter(torch.zeros(filters))
        nn.init.xavier_uniform_(self.weight)  # Keras glorot_uniform on a (k, 4, filters) kernel

    def rc_weight(self) -> torch.Tensor:
        """The tied reverse-complement filters ``(filters, 4, k)``: channel- and length-flipped."""
        return self.weight.flip(1).flip(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = torch.cat([self.weight, self.rc_weight()], dim=0)
        return F.conv1d(x, weight, torch.cat([self.bias, self.bias]), padding=self.padding)


class AttentionPool1d(nn.Module):
    """Attention pooling with 1x1-conv logits (§2 "attention pooling"; the team's ``AttentionPooling``).

    The length is cropped to a multiple of ``pool_size`` (3' positions dropped, Keras
    ``Cropping1D((0, L % pool))``); logits come from a bias-free 1x1 convolution ``C -> C``; a
    softmax over the ``pool_size`` positions of each window, per channel, weights the sum.

    Input ``(B, C, L)``; output ``(B, C, L // pool_size)``.
    """

    def __init__(self, channels: int, pool_size: int) -> None:
        super().__init__()
        self.pool_size = pool_size
        self.logits = nn.Conv1d(channels, channels, 1, bias=False)

    def _windows(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b, c, length = x.shape
        n = length // self.pool_size
        x = x[:, :, : n * self.pool_size]
        logits = self.logits(x).view(b, c, n, self.pool_size)
        return x.reshape(b, c, n, self.pool_size), logits

    def weights(self, x: torch.Tensor) -> torch.Tensor:
        """Softmax weights ``(B, C, L // pool, pool)``; they sum to one over the last axis."""
        return torch.softmax(self._windows(x)[1], dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        windows, logits = self._windows(x)
        return (windows * torch.softmax(logits, dim=-1)).sum(-1)


class DilatedResidual(nn.Module):
    """Residual branch of dilated convolutions (§2; the team's ``residual_block``).

    ``conv(k, dilation 1, no bias) -> BN``, then for ``i = 1 .. layers - 1``: ``ReLU -> Dropout ->
    conv(k, dilation 2^i, bias) -> BN``; output ``ReLU(x + branch)``. Shape-preserving ``(B, C, L)``.
    """

    def __init__(self, channels: int, layers: int, kernel_size: int = 3, dropout: float = 0.1) -> None:
        super().__init__()
        self.convs = nn.ModuleList(
            [_same_conv(channels, channels, kernel_size, dilation=2 ** i, bias=i > 0) for i in range(layers)])
        self.norms = nn.ModuleList([keras_batch_norm(channels) for _ in range(layers)])
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norms[0](self.convs[0](x))
        for conv, norm in zip(self.convs[1:], self.norms[1:]):
            h = norm(conv(self.drop(F.relu(h))))
        return F.relu(x + h)


def relative_position_features(seq_len: int, feature_size: int) -> torch.Tensor:
    """Enformer-style relative positional basis as the team's ``MultiHeadAttention2`` builds it (§2).

    For distances ``-(L-1) .. L-1``: exponential decays (half-lives ``2^linspace(3, log2 L, f)``),
    central masks (widths ``2^1 - 1 .. 2^f - 1``) and gamma densities (means ``linspace(L/f, L, f)``,
    s.d. ``L / 2f``, normalised by their global maximum), each followed by its copy times
    ``sign(distance)``: order ``[exp, sign*exp, mask, sign*mask, gamma, sign*gamma]``. Computed in
    float32 like the TensorFlow original.

    Returns ``(2L - 1, 6 f) float32``. Raises ValueError if a feature is not finite.
    """
    f32 = np.float32
    pos = np.arange(-seq_len + 1, seq_len, dtype=f32)
    dist = np.abs(pos)[:, None]
    sign = np.sign(pos)[:, None]
    length = f32(seq_len)
    half_life = np.power(f32(2.0), np.linspace(3.0, np.log(length) / np.log(f32(2.0)), feature_size, dtype=f32))
    exp = np.exp(-np.log(f32(2.0)) / half_life * dist).astype(f32)
    widths = np.power(f32(2.0), np.arange(1, feature_size + 1, dtype=f32)) - 1
    mask = (widths > dist).astype(f32)
    stdv = length / (2 * feature_size)
    mean = np.linspace(length / feature_size, length, feature_size, dtype=f32)
    concentration = (mean / stdv) ** 2
    rate = mean / stdv ** 2
    with np.errstate(divide="ignore"):
        log_prob = special.xlogy(concentration - 1, dist) - rate * dist
    log_norm = special.gammaln(concentration) - concentration * np.log(rate)
    gamma = np.exp((log_prob - log_norm).astype(f32))
    gamma = gamma / gamma.max()
    feats = np.concatenate([exp, sign * exp, mask, sign * mask, gamma, sign * gamma], axis=-1).astype(f32)
    if not np.isfinite(feats).all():
        raise ValueError(f"relative positional features are not finite for seq_len={seq_len}")
    return torch.from_numpy(feats)


def relative_shift(x: torch.Tensor) -> torch.Tensor:
    """The team's ``relative_shift``: ``(B, H, T, 2T - 1)`` logits over relative distances ->
    ``(B, H, T, T)``, ``out[..., i, j] = x[..., i, T - 1 - i + j]`` (distance ``j - i``)."""
    x = F.pad(x, (1, 0))
    b, h, t1, t2 = x.shape
    x = x.reshape(b, h, t2, t1)[:, :, 1:, :]
    return x.reshape(b, h, t1, t2 - 1)[..., : (t2 + 1) // 2]


class RelativeMultiHeadAttention(nn.Module):
    """Multi-head self-attention with Enformer relative positions (§2; the team's ``MultiHeadAttention2``).

    Bias-free Q, K, V and positional projections; ``q`` scaled by ``depth^-0.5``; logits =
    ``(q + r_w) k^T + shift((q + r_r) r_k^T)``; softmax; output projection with bias. Positional
    features get dropout while training.

    Input ``(B, T, d_model)`` with ``T == seq_len``; output ``(B, T, d_model)``.
    """

    def __init__(self, d_model: int, heads: int, seq_len: int, dropout: float = 0.1) -> None:
        super().__init__()
        if d_model % heads or d_model % 6:
            raise ValueError(f"d_model {d_model} must be divisible by heads {heads} and by 6")
        self.heads, self.depth, self.seq_len = heads, d_model // heads, seq_len
        self.wq = nn.Linear(d_model, d_model, bias=False)
        self.wk = nn.Linear(d_model, d_model, bias=False)
        self.wv = nn.Linear(d_model, d_model, bias=False)
        self.r_k = nn.Linear(d_model, d_model, bias=False)
        self.r_w = nn.Parameter(torch.randn(1, heads, 1, self.depth) * 0.5)
        self.r_r = nn.Parameter(torch.randn(1, heads, 1, self.depth) * 0.5)
        self.out = nn.Linear(d_model, d_model)
        self.pos_drop = nn.Dropout(dropout)
        self.register_buffer("positions", relative_position_features(seq_len, d_model // 6), persistent=False)

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape
        return x.view(b, t, self.heads, self.depth).transpose(1, 2)

    def attention_map(self, x: torch.Tensor) -> torch.Tensor:
        """Attention weights ``(B, H, T, T)`` (rows sum to one)."""
        return self._attend(x)[1]

    def _attend(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if x.shape[1] != self.seq_len:
            raise ValueError(f"attention built for length {self.seq_len}, got {x.shape[1]}")
        q = self._split(self.wq(x)) / math.sqrt(self.depth)
        k, v = self._split(self.wk(x)), self._split(self.wv(x))
        r_k = self.r_k(self.pos_drop(self.positions.to(x.dtype)))  # (2T - 1, d_model)
        r_k = r_k.view(1, -1, self.heads, self.depth).transpose(1, 2)  # (1, H, 2T - 1, depth)
        content = (q + self.r_w) @ k.transpose(-1, -2)
        relative = relative_shift((q + self.r_r) @ r_k.transpose(-1, -2))
        attn = torch.softmax(content + relative, dim=-1)
        b, _, t, _ = attn.shape
        return (attn @ v).transpose(1, 2).reshape(b, t, -1), attn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self._attend(x)[0])


class TransformerLayer(nn.Module):
    """One post-norm transformer layer with a 1x1-conv feed-forward (§2; *ModelTraining*).

    ``x = LN(x + Drop(MHA(x)))``; ``x = LN(x + Drop(Conv1x1(ReLU(Drop(Conv1x1(x))))))`` with
    the dropout before the ReLU as in the team's code. ``(B, T, d_model) -> (B, T, d_model)``.
    """

    def __init__(self, d_model: int, heads: int, ffn: int, seq_len: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.mha = RelativeMultiHeadAttention(d_model, heads, seq_len, dropout)
        self.drop = nn.Dropout(dropout)
        self.norm1 = nn.LayerNorm(d_model, eps=KERAS_LN_EPS)
        self.ffn_in = nn.Conv1d(d_model, ffn, 1)
        self.ffn_out = nn.Conv1d(ffn, d_model, 1)
        self.norm2 = nn.LayerNorm(d_model, eps=KERAS_LN_EPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm1(x + self.drop(self.mha(x)))
        h = self.ffn_in(x.transpose(1, 2))
        h = self.ffn_out(F.relu(self.drop(h)))
        return self.norm2(x + self.drop(h.transpose(1, 2)))


class HighSchoolersNet(nn.Module):
    """The team's network (§2; see the module docstring for the layer list).

    Input ``(B, 4, seq_len)`` float one-hot; output ``(B,)`` float32 predicted expression (the last
    dense layer runs in fp32 even under autocast). Keras initialisation (glorot-uniform kernels,
    zero biases) is applied at construction.
    """

    def __init__(self, config: HighSchoolersConfig) -> None:
        super().__init__()
        cfg = config
        c1, c2, c3 = 2 * cfg.conv1_filters, cfg.conv2_filters, cfg.conv3_filters
        d1, d2, d3 = cfg.block_dropouts
        p1, p2, p3 = cfg.pool_sizes
        r1, r2, r3 = cfg.res_layers
        # block 1
        self.rc_conv = RevCompConv1d(cfg.conv1_filters, cfg.conv1_kernel)
        self.bn1 = keras_batch_norm(c1)
        self.res1 = DilatedResidual(c1, r1, cfg.res_kernel, cfg.res_dropout)
        self.drop1 = nn.Dropout(d1)
        self.pool1 = AttentionPool1d(c1, p1)
        # block 2
        self.conv2 = _same_conv(c1, c2, cfg.conv2_kernel)
        self.bn2 = keras_batch_norm(c2)
        self.res2 = DilatedResidual(c2, r2, cfg.res_kernel, cfg.res_dropout)
        self.pool2 = AttentionPool1d(c2, p2)
        self.drop2 = nn.Dropout(d2)
        # block 3
        self.conv3 = _same_conv(c2, c3, cfg.conv3_kernel)
        self.bn3 = keras_batch_norm(c3)
        self.res3 = DilatedResidual(c3, r3, cfg.res_kernel, cfg.res_dropout)
        self.pool3 = AttentionPool1d(c3, p3)
        self.drop3 = nn.Dropout(d3)
        # transformer and head
        self.transformer = TransformerLayer(c3, cfg.heads, cfg.ffn, cfg.pooled_len, cfg.attn_dropout)
        self.dense1 = nn.Linear(cfg.pooled_len * c3, cfg.dense)
        self.bn_d1 = keras_batch_norm(cfg.dense)
        self.dense2 = nn.Linear(cfg.dense, cfg.dense)
        self.bn_d2 = keras_batch_norm(cfg.dense)
        self.dense_drop = nn.Dropout(cfg.dense_dropout)
        self.out = nn.Linear(cfg.dense, 1)
        self.apply(_keras_init)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The three convolution blocks: ``(B, 4, L) -> (B, conv3_filters, pooled_len)``."""
        x = self.pool1(self.drop1(self.res1(torch.exp(self.bn1(self.rc_conv(x))))))
        x = self.drop2(self.pool2(self.res2(F.relu(self.bn2(F.relu(self.conv2(x)))))))
        return self.drop3(self.pool3(self.res3(F.relu(self.bn3(self.conv3(x))))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.transformer(self.features(x).transpose(1, 2))  # (B, T, d_model), Keras layout
        h = torch.flatten(h, 1)  # position-major, as Keras Flatten on (T, C)
        h = self.dense_drop(F.relu(self.bn_d1(self.dense1(h))))
        h = self.dense_drop(F.relu(self.bn_d2(self.dense2(h))))
        with torch.autocast(device_type=h.device.type, enabled=False):
            return self.out(h.float())[:, 0]


def _keras_init(module: nn.Module) -> None:
    """Keras defaults: glorot-uniform kernels and zero biases for Conv1D / Dense layers."""
    if isinstance(module, (nn.Conv1d, nn.Linear)):
        nn.init.xavier_uniform_(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


# ----------------------------------------------------------------------------------------------
# optimiser: Keras Adam + TensorFlow Addons SWA
# ----------------------------------------------------------------------------------------------
class KerasAdamSWA(torch.optim.Optimizer):
    """Keras' Adam wrapped in TensorFlow Addons' SWA, as ``tfa.optimizers.SWA(Adam(lr),
    start_averaging, average_period)`` (§3, Table 1; *ModelTraining*).

    Adam update (Keras / ``ResourceApplyAdam``): ``m = b1 m + (1 - b1) g``, ``v = b2 v + (1 - b2)
    g^2``, ``p -= lr sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + eps)`` with ``t`` the 1-based
    step. SWA (TFA ``average_op``, sequential update): after the update of 0-based step ``k`` with
    ``k >= start_averaging`` and ``(k - start_averaging) % average_period == 0``, ``avg = (avg * n +
    p) / (n + 1)`` with ``n = (k - start_averaging) // average_period`` -- an equal-weight mean of
    the snapshots, kept in the optimizer state (``state[p]["swa_average"]``) so that checkpoints
    carry it. Both counters are in optimizer steps.

    Args:
        params: parameters or parameter groups.
        lr: learning rate (scheduled through ``param_groups[i]["lr"]``).
        betas, eps: Keras Adam defaults (0.9, 0.999), 1e-7.
        start_averaging, average_period: SWA start and period in steps.

    Raises:
        ValueError: ``lr <= 0``, ``eps < 0``, ``start_averaging < 0`` or ``average_period < 1``.
    """

    def __init__(self, params, lr: float = 1e-4, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-7,
                 start_averaging: int = 150, average_period: int = 30) -> None:
        if lr <= 0 or eps < 0:
            raise ValueError(f"KerasAdamSWA: lr must be > 0 and eps >= 0, got {lr}, {eps}")
        if start_averaging < 0 or average_period < 1:
            raise ValueError(f"KerasAdamSWA: start_averaging >= 0 and average_period >= 1 required, got "
                             f"{start_averaging}, {average_period}")
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps))
        self.start_averaging, self.average_period = int(start_averaging), int(average_period)

    @torch.no_grad()
    def step(self, closure=None):
        """One Adam update of every parameter with a gradient, then the SWA snapshot when due."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            b1, b2 = group["betas"]
            lr, eps = group["lr"], group["eps"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["step"] += 1
                t = state["step"]
                m, v = state["exp_avg"], state["exp_avg_sq"]
                m.mul_(b1).add_(g, alpha=1 - b1)
                v.mul_(b2).addcmul_(g, g, value=1 - b2)
                lr_t = lr * math.sqrt(1 - b2 ** t) / (1 - b1 ** t)
                p.addcdiv_(m, v.sqrt().add_(eps), value=-lr_t)
                k = t - 1  # TFA reads self.iterations before Keras increments it
                if k >= self.start_averaging and (k - self.start_averaging) % self.average_period == 0:
                    n = (k - self.start_averaging) // self.average_period
                    if n == 0 or "swa_average" not in state:
                        state["swa_average"] = p.detach().clone()
                    else:
                        state["swa_average"].mul_(n).add_(p).div_(n + 1)
        return loss

    def num_snapshots(self) -> int:
        """Snapshots averaged so far (0 before ``start_averaging``), from the first parameter's count."""
        for group in self.param_groups:
            for p in group["params"]:
                t = self.state[p].get("step", 0) if p in self.state else 0
                if t - 1 < self.start_averaging:
                    return 0
                return (t - 1 - self.start_averaging) // self.average_period + 1
        return 0

    @torch.no_grad()
    def assign_average(self) -> int:
        """Copy the SWA averages into the parameters (TFA ``assign_average_vars``).

        Returns the number of parameters assigned (0 before any snapshot: nothing changes).
        """
        count = 0
        for group in self.param_groups:
            for p in group["params"]:
                avg = self.state[p].get("swa_average") if p in self.state else None
                if avg is not None:
                    p.copy_(avg)
                    count += 1
        return count


# ----------------------------------------------------------------------------------------------
# the plug-in
# ----------------------------------------------------------------------------------------------
@register("highschoolers")
class HighSchoolers(TorchMethod):
    """High Schoolers Are All You Need (DREAM 2022): see the module docstring for the recipe.

    The network is :class:`HighSchoolersNet` (paper: 4,680,769 trainable parameters, §2), built by
    :meth:`build_model` with the Keras-style init seeded by ``seed``. After :meth:`fit`:
    ``history`` (per-epoch records of :class:`harness.training.SeqTrainer`), ``best_epoch``,
    ``filter_stats`` (rows in / dropped longer than ``seq_len`` / kept), ``swa_snapshots`` (SWA
    averages taken) and, with ``prediction_weights="swa"``, ``swa_metrics`` (validation
    r/rho/MSE of the averaged model), all saved in ``state.json`` beside ``model.pt``
    (:class:`harness.torch_method.TorchMethod`).
    """

    Config = HighSchoolersConfig
    profiles = {"tiny": {"conv1_filters": 8, "conv2_filters": 16, "conv3_filters": 24, "ffn": 32, "dense": 16,
                         "batch_size": 64, "train_epochs": 1, "finetune_epochs": 1, "slice_size": 0,
                         "valid_size": 0.2, "eval_batch_size": 512, "progress": False}}
    paper_num_parameters = PAPER_NUM_PARAMETERS
    Net = HighSchoolersNet

    @property
    def predictions_depend_on_set(self) -> bool:
        """With ``quantile_output`` each prediction is a quantile level among the rows predicted together."""
        return bool(self.config.quantile_output)

    @property
    def prediction_units(self) -> str | None:
        """The scale of :meth:`predict` with ``quantile_output`` (GetPredictions.py); None: the
        training target's."""
        return "uniform quantile level in [0, 1] among the rows predicted together" if self.config.quantile_output else None

    def __init__(self, config: HighSchoolersConfig | None = None, *, seed: int = 0, device: str = "auto",
                 work_dir=None) -> None:
        super().__init__(config, seed=seed, device=device, work_dir=work_dir)
        self.filter_stats: dict[str, int] = {}
        self.swa_snapshots: int = 0
        self.swa_metrics: dict[str, float] = {}
        self._optimizer: KerasAdamSWA | None = None

    # §3 / Table 1: ``nn.MSELoss``; :class:`KerasAdamSWA` (lr ``lr``, SWA ``swa_start`` /
    # ``swa_period`` steps); ``train_epochs + finetune_epochs`` epochs, the lr multiplied by
    # ``finetune_lr / lr`` from epoch ``train_epochs + 1`` (``LambdaLR`` stepped per epoch); each epoch
    # ``slice_size // batch_size`` batches of a fresh seeded permutation (a random slice without
    # replacement; full passes when the slice covers the ``n_train`` rows); no early stopping; the
    # best validation Pearson r's weights restored. The base's ``make_trainer`` assembles them.
    scheduler_interval = "epoch"

    def loop_settings(self, n_train: int | None = None) -> dict:
        cfg = self.config
        steps = cfg.slice_size // cfg.batch_size if cfg.slice_size else 0
        if n_train is not None and cfg.slice_size >= n_train:
            steps = 0
        return dict(batch_size=cfg.batch_size, max_epochs=cfg.train_epochs + cfg.finetune_epochs, patience=None,
                    monitor="valid_r", monitor_mode="max", shuffle=True, validate_every=cfg.validate_every,
                    max_batches_per_epoch=max(steps, 1) if steps else None)

    def loss(self) -> nn.Module:
        return nn.MSELoss()

    def make_optimizer(self, net: nn.Module) -> KerasAdamSWA:
        cfg = self.config
        self._optimizer = KerasAdamSWA(net.parameters(), lr=cfg.lr, eps=cfg.adam_eps, start_averaging=cfg.swa_start,
                                       average_period=cfg.swa_period)
        return self._optimizer

    def make_scheduler(self, optimizer: torch.optim.Optimizer, steps_per_epoch: int, max_epochs: int):
        ratio, train_epochs = self.config.finetune_lr / self.config.lr, self.config.train_epochs
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda epoch: 1.0 if epoch < train_epochs else ratio)

    def transform(self):
        return highschoolers_input

    def _filter(self, table: SeqTable) -> SeqTable:
        keep = np.asarray(table.lengths) <= self.config.seq_len
        self.filter_stats["rows"] = self.filter_stats.get("rows", 0) + len(table)
        self.filter_stats["dropped_length"] = self.filter_stats.get("dropped_length", 0) + int((~keep).sum())
        self.filter_stats["kept"] = self.filter_stats.get("kept", 0) + int(keep.sum())
        return table.subset(keep)

    def prepare_fit(self, train: SeqTable, valid: SeqTable | None) -> FitData:
        """The §1 data steps of :meth:`fit` (:meth:`harness.torch_method.TorchMethod.fit`).

        Rows longer than ``seq_len`` are dropped (``filter_stats``), from ``valid`` too. Without
        ``valid`` a seeded random hold-out of ``valid_size`` rows (or that fraction, rounded up)
        of the filtered ``train`` is used (§1: the team's last 104,448 rows;
        :func:`harness.holdout.holdout_split` with the ``"numpy"`` generator). Inputs: 3'
        N-padded codes (:func:`model_codes`).

        Raises:
            ValueError: a hold-out leaving fewer than 2 rows on a side, or too few rows for
                training / validation after the filter.
        """
        cfg = self.config
        self.filter_stats = {}
        train = self._filter(train)
        if valid is None:
            tr_idx, va_idx = holdout_split(len(train), cfg.valid_size, self.seed, generator="numpy", rounding="ceil",
                                           min_rows=2, who="highschoolers.fit")
            train, valid = train.subset(tr_idx), train.subset(va_idx)
        else:
            valid = self._filter(valid)
        if len(train) < 2 or len(valid) < 2:
            raise ValueError(f"highschoolers.fit: {len(train)} training / {len(valid)} validation rows after the "
                             f"length filter (<= {cfg.seq_len} nt); need >= 2 each")
        valid_codes = model_codes(valid, cfg.seq_len)
        return FitData(model_codes(train, cfg.seq_len), train.y, valid_codes, valid.y)

    def after_fit(self, trainer: SeqTrainer, data: FitData) -> None:
        """SWA bookkeeping (``swa_snapshots``) and, with ``prediction_weights="swa"``, the averaged
        weights with recomputed BatchNorm statistics (:meth:`_use_swa_weights`)."""
        optimizer, self._optimizer = self._optimizer, None
        self.swa_snapshots = optimizer.num_snapshots() if optimizer is not None else 0
        self.swa_metrics = {}
        if self.config.prediction_weights == "swa":
            self._use_swa_weights(trainer, optimizer, data.train_x, data.valid_x, data.valid_y)

    def _use_swa_weights(self, trainer: SeqTrainer, optimizer: KerasAdamSWA | None, train_codes: np.ndarray,
                         valid_codes: np.ndarray, valid_y: np.ndarray) -> None:
        """``prediction_weights="swa"``: final SWA averages into the network, BN statistics recomputed."""
        if optimizer is None or optimizer.assign_average() == 0:
            # fewer steps than swa_start: TFA would assign its zero-initialised slots; keep the
            # trained weights instead and say so in swa_metrics
            self.swa_metrics = {"assigned": 0.0}
            return
        net, device = trainer.model, trainer.device
        torch.optim.swa_utils.update_bn(_one_hot_batches(train_codes, self.config.batch_size, device), net, device)
        pred = predict_batches(net, valid_codes, self.config.eval_batch_size, device, highschoolers_input)
        r, rho = pearson_spearman(pred, valid_y)
        self.swa_metrics = {"assigned": 1.0, "valid_r": r, "valid_rho": rho,
                            "valid_loss": float(np.mean((pred - valid_y) ** 2))}

    def predict_inputs(self, seqs: SeqTable) -> np.ndarray:
        """Every row is predicted: 3' N-padding / cut to ``seq_len`` (:func:`model_codes`)."""
        return model_codes(seqs, self.config.seq_len)

    def postprocess(self, pred: np.ndarray, seqs: SeqTable) -> np.ndarray:
        """With ``quantile_output`` (the ``paper`` default, *GetPredictions*) the network outputs of
        this :meth:`predict` call's rows are mapped together to their uniform quantile levels in
        [0, 1] (:func:`uniform_quantiles`, ``random_state = seed``): a prediction depends on the
        other rows predicted with it, as the submission's did on the 71,103 test sequences;
        predict a whole set in one call. Without it: the raw network outputs (expression units)."""
        if self.config.quantile_output:
            return uniform_quantiles(pred, random_state=self.seed)
        return np.asarray(pred, dtype=np.float64)

    def _extra_state(self) -> dict:
        return {"filter_stats": self.filter_stats, "swa_snapshots": self.swa_snapshots,
                "swa_metrics": self.swa_metrics}

    def _restore_extra_state(self, state: dict) -> None:
        self.filter_stats = state.get("filter_stats", {})
        self.swa_snapshots = state.get("swa_snapshots", 0)
        self.swa_metrics = state.get("swa_metrics", {})


def _one_hot_batches(codes: np.ndarray, batch_size: int, device: torch.device) -> Iterator[torch.Tensor]:
    """``(B, 4, L)`` one-hot batches of ``codes`` in order, on ``device`` (for ``update_bn``)."""
    for start in range(0, len(codes), batch_size):
        chunk = codes[start:start + batch_size]
        if len(chunk) > 1:  # a one-row batch cannot give BatchNorm statistics
            yield highschoolers_input(torch.from_numpy(np.ascontiguousarray(chunk)).to(device), None, True)[0]
