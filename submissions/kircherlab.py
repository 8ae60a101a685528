"""KircherLab (DREAM 2022): a GC-corrected 18-class CNN classifier on one-hot 110-nt promoters.

Reimplements, in TensorFlow/Keras as the team did, the recipe of the team's write-up ("Predicting
gene expression using millions of random promoter sequences by KircherLab", sections cited as §)
as their released workflow ran it. The workflow is in the organisers' repository
de-Boer-Lab/random-promoter-dream-challenge-2022, ``dream_submissions/KircherLab/code/``:
``config/config.yaml`` (training ``gc_frac08``, model ``final``: ``standard``, MSE), the rules in
``workflow/rules/main.smk`` and ``common.smk``, ``workflow/scripts/input_data.py`` and
``bucket_callibration.py``, ``src/sequence.py``, ``model.py``, ``train.py``, ``predict.py``,
``prediction.py`` and ``create_submission.py``. Where the write-up and that code disagree, the
code that produced the submission wins (said at each point). Paper profile = the
:class:`KircherLabConfig` defaults:

* Labels (§1, ``input_data.py``): expression truncated to 18 classes 0..17 (``astype(int)``,
  the floor for the non-negative challenge values; values outside 0..17 are clipped, exactly 17
  is class 17), one-hot encoded (``pandas.get_dummies``).
* Split (§1: "70 % training, 20 % test, 10 % validation"; ``input_data.py``: 20 % test, then
  10 % of the rest as validation, both stratified by class): when :meth:`KircherLab.fit` gets no
  validation table it holds out a seeded, class-stratified ``valid_fraction`` = 10 % of
  ``train`` (the harness holds out its own test part). A validation table, when given, is used
  as is.
* GC correction (§1, ``bucket_callibration.py`` as the ``sample`` rule runs it: ``--gc-correction
  --round-digits 1 --without-replacement --bucket-frac 0.8``): GC fraction of every training
  sequence = (#G + #C) / length, rounded to one decimal; ``P_all(b)`` = the share of all
  training rows in GC bin ``b``. Within each class ``round(0.8 * n_class)`` rows are drawn
  without replacement, each draw proportional to the row's weight ``w = P_all(b)`` (pandas
  ``GroupBy.sample(frac=0.8, weights="gc_weight")``, i.e. numpy's successive weighted sampling):
  ``gc_weighting="overall"``. It favours rows whose GC bin is common overall, which pulls the
  strongly GC-biased (lowest and highest) classes towards the overall distribution but sharpens
  typical classes around the modal bin. ``gc_weighting="ratio"`` (not the recipe) uses
  ``w = P_all(b) / P_c(b)``, under which each class's sample follows the overall GC distribution.
  We draw with Efraimidis-Spirakis keys (``log(u) / w``, the ``k`` largest per class), which has
  exactly the distribution of successive weighted sampling; the random stream differs. Sampling
  runs on the rows as given, before any length fitting (the workflow samples the raw split file;
  the data loader fits lengths afterwards).
* Inputs (``sequence.py``, ``--fit_sequence`` on every training and prediction of the
  workflow): every row is kept. A row that is not 110 nt is centred in the plasmid
  (:func:`fit_to_length`): a shorter one gets the last ``ceil(d/2)`` nt of the 5' vector and the
  first ``floor(d/2)`` nt of the team's 3' vector (the extra nt of an odd difference on the 5'
  side), a longer one loses ``ceil(d/2)`` nt at the 5' end and ``floor(d/2)`` at the 3' end. The
  write-up (§1) says such rows "were removed"; the code that produced the submission kept them
  (``fit_sequence=False`` gives the write-up's variant for training/validation). The vector is
  the core's pTpA context (:mod:`harness.data.construct`); the team's 3' vector starts one nt
  later than the plasmid (see :data:`TEAM_VECTOR_3P`), which we reproduce. One-hot A, C, G, T in
  that channel order (kipoiseq ``ReorderedOneHot``), N (and any IUPAC ambiguity letter, which
  the harness codes as N) = 0.25 in each channel (kipoiseq's neutral value).
* Model (§2 Table 1, ``model.py::standard``): Conv1D 250 k7 -> BN -> Conv1D 250 k8 -> BN ->
  MaxPool 2 -> Dropout 0.1 -> Conv1D 250 k3 -> BN -> Conv1D 100 k2 -> BN -> MaxPool 1 -> Dropout
  0.1 -> Flatten (45 x 100 = 4,500) -> Dense 300 sigmoid -> Dropout 0.3 -> Dense 300 sigmoid ->
  Dense 18 linear; "valid" padding, Keras default initialisers, BatchNorm momentum 0.99 and
  epsilon 1e-3. 2,194,768 parameters, 2,193,068 trainable (§2; the same count as the team's
  model). Activations: Table 1 labels all four convolutions "softmax", the code gives the first
  one ReLU and the other three softmax (over the channel axis); we follow the code
  (``conv_activations`` can select the table's variant).
* Training (§3, ``train.py`` as the ``train`` rule runs it: ``--batch-size 1024 --epochs 100
  --learning-rate 0.001 --no-learning-rate-sheduler --use-early-stopping --loss MSE``, model
  mode classification): MSE between the 18 linear outputs and the one-hot class, Adam (lr 1e-3,
  Keras defaults otherwise), batch 1024, reshuffled every epoch, at most 100 epochs, early
  stopping on the validation loss (patience 10) with the best weights restored when it stops the
  fit (TF 2.6 semantics; ``restore_best_at_end``). Metrics logged: MSE, MAE, MAPE and
  categorical accuracy ("acc"). Float32 throughout, TensorFloat-32 off (``precision="fp32"``):
  the team used no mixed-precision policy and a V100, which has no TF32.
* Small fits: the softmax convolutions' outputs vary far less than BatchNorm's epsilon (1e-3), and
  the moving statistics start at variance 1 with momentum 0.99, so inference-mode outputs only
  match training mode after ~700 updates. The paper recipe makes ~3,800 per epoch on the full data;
  a fit of a few dozen updates predicts one near-constant value. The ``cpu`` profile therefore
  uses batch 128 and ``bn_momentum=0.9`` (see ``configs/kircherlab.toml``).
* Prediction (§3, ``predict.py --fit_sequence``, ``create_submission.py --method
  weightedmean``): every row centred in the plasmid as above (never padded with N), then the
  weighted mean of the class indices 0..17 with the 18 outputs as weights,
  ``numpy.average(range(18), weights=outputs)`` per row (see :func:`weighted_class_mean` for
  zero-sum weights). No test-time augmentation, no further post-processing.

Fidelity: what still differs from the team's released code, and why.

==================  ========================================================  ================================
Aspect              Difference (why)                                          Expected effect
==================  ========================================================  ================================
Architecture        none: same layers, shapes, activations (the code's),      none
                    BatchNorm settings and initialisers; 2,194,768
                    parameters, as the team's
Framework           Keras 3 / TensorFlow 2.21 instead of Keras / TensorFlow   float round-off only
                    2.6.2 (pinned in ``workflow/envs/tensorflow.yml``; it
                    does not install on current Python); same layer maths
Data: split         the harness gives ``train``; 10 % of it is held out for   validation set is 10 % of train,
                    early stopping (team: 10 % of their 80 % non-test part),  not 8 % of all data
                    seeded by ``seed``, not ``random_state=1``
Data: GC sampling   same weights and law; Efraimidis-Spirakis keys seeded by  other rows drawn, same
                    ``seed`` instead of numpy's global stream (seed 42)       distribution
Data: lengths       none: non-110-nt rows kept and centred in the plasmid     none
                    (``fit_sequence``), the team's 3' vector offset included
Loss, optimizer     none: MSE; Adam lr 1e-3, betas 0.9 / 0.999, epsilon 1e-7  none
Schedule            none: batch 1024, at most 100 epochs, no LR schedule,     none
                    early stopping patience 10 with TF 2.6 restore semantics
Determinism         op determinism only on the CPU; the team set              run-to-run noise on GPUs only
                    ``TF_DETERMINISTIC_OPS=1`` (GPUs too) and one CPU thread
Devices             one device (``OneDeviceStrategy``); the team's            none on one GPU (the team's GPU
                    ``MirroredStrategy`` split each 1024-row batch over       count is not stated)
                    every visible GPU
Augmentation, TTA   none, as the team                                         none
Post-processing     a row whose 18 outputs sum to exactly 0 gets its argmax   only where the team's code would
                    (``numpy.average`` raises there)                          crash
Precision           none in ``paper`` (float32, TF32 off). ``paper-fast``     ``paper-fast`` only: TF32
                    turns TF32 on and is not the recipe. Mixed float16 is     rounding in matmuls and convs
                    not offered: untested on this model, whose softmax-
                    convolution outputs (about 1/250 each, small spread) lie
                    near float16's resolution
==================  ========================================================  ================================

TensorFlow is imported lazily (:func:`import_tensorflow`), with its C++ and Python log output
silenced unless the caller set ``TF_CPP_MIN_LOG_LEVEL`` first, so harness commands that never
touch this method stay fast. Devices (:func:`resolve_strategy`): a TPU through
``tf.distribute.TPUStrategy`` when one is present, else the first GPU, else the CPU.
"""

from __future__ import annotations

import dataclasses
import glob
import math
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from harness.data import encoding
from harness.data.construct import VECTOR_DOWNSTREAM, VECTOR_UPSTREAM
from harness.data.table import SeqTable
from harness.holdout import holdout_split
from harness.io import read_json, write_json
from harness.method import Method, MethodConfig, require_targets
from harness.registry import register
from harness.tracking import keras_callback, open_method_log

#: number of expression classes (§1: 18 equal-width bins, 0..17).
N_CLASSES = 18
#: one-hot value of every channel at an N (or padding) position (kipoiseq's neutral value).
N_VALUE = 0.25
_GC_WEIGHTINGS = ("overall", "ratio")
_PRECISIONS = ("fp32", "tf32")
#: plasmid 5' of the 110-nt frame, as the team's ``vector_left`` ends (``sequence.py``; the team's
#: string is 338 nt, the core's 120 nt are its last 120, more than any 110-nt centring uses).
TEAM_VECTOR_5P = VECTOR_UPSTREAM
#: plasmid 3' of the 110-nt frame, as the team's ``vector_right`` starts: ``CTTAATTAAA...``, i.e.
#: the pTpA sequence after the 13-nt flank *without its first nt* (the core's
#: :data:`~harness.data.construct.VECTOR_DOWNSTREAM` starts ``TCTTAATTAA``). Reproduced as the
#: team's code has it, since that code padded the rows the submission was trained on.
TEAM_VECTOR_3P = VECTOR_DOWNSTREAM[1:]
_VECTOR_5P_CODES = encoding.encode([TEAM_VECTOR_5P])[0][0]
_VECTOR_3P_CODES = encoding.encode([TEAM_VECTOR_3P])[0][0]
_DEVICES = ("auto", "cpu", "cuda", "gpu", "tpu", "mps")


@dataclasses.dataclass
class KircherLabConfig(MethodConfig):
    """KircherLab hyperparameters; the defaults are the write-up's/team's (paper profile). Never edit
    them: scaled-down settings live in ``configs/kircherlab.toml`` profiles.

    Attributes:
        seq_len: model input length in nt (§1: 110, adapters included).
        fit_sequence: training/validation rows that are not ``seq_len`` nt are kept and centred
            in the plasmid (:func:`fit_to_length`), as the workflow that produced the submission
            did (``config.yaml``: ``fit_sequence: True`` in every training; ``train.py
            --fit_sequence``). ``False`` drops them instead, as the write-up §1 says. Prediction
            always centres every row in the plasmid (the workflow's ``predict.py --fit_sequence``).
        n_classes: expression classes 0..n_classes-1 (§1: 18).
        gc_correction: GC-corrected sampling of the training rows (§1: on).
        gc_weighting: ``"overall"`` (team's code: weight = overall share of the row's GC bin) or
            ``"ratio"`` (overall share / share within the row's class). See the module docstring.
        gc_round_digits: decimals of the GC fraction that define a GC bin (workflow: 1).
        bucket_fraction: share of each class drawn without replacement (§1: 80 %).
        valid_fraction: validation share held out of ``train`` when :meth:`KircherLab.fit` gets
            no validation table (§1: 10 %), stratified by class.
        conv_filters, conv_kernels, conv_activations: the four Conv1D layers (§2 Table 1 /
            ``model.py``: 250/250/250/100 filters, kernels 7/8/3/2, ReLU then three softmax).
        block_pools: max-pool size after convolution 2 and after convolution 4 (2 and 1).
        conv_dropout: dropout after each pooling (0.1).
        dense_units, dense_activation, dense_dropout: the two hidden dense layers (300, 300,
            sigmoid) and the dropout between them (0.3).
        bn_momentum: momentum of the BatchNormalization moving statistics (Keras default 0.99,
            which the team used). The moving statistics start at mean 0 / variance 1 and the
            softmax convolutions' outputs have a batch variance far below Keras's epsilon 1e-3,
            so inference-mode outputs only match training mode after ~700 updates
            (0.99^n < 1e-3); a fit with fewer steps predicts a near-constant value.
        batch_size: training batch (workflow: 1024).
        lr: Adam learning rate (workflow: 1e-3).
        max_epochs: epoch cap (workflow: 100; early stopping ends the fit first, §3: 20 epochs).
        patience: early stopping on validation loss, best weights restored (§3: 10).
        max_train_seconds: wall-clock training budget in s, checked after every batch; 0 = none
            (CPU profiles only; not part of the recipe).
        restore_best_at_end: also restore the best epoch's weights when the fit ends by the
            epoch cap or the time budget. The team's TensorFlow 2.6 ``EarlyStopping`` restored
            them only on an early stop (``False``, the recipe); Keras 3 always restores them.
        precision: ``"fp32"`` (the recipe: float32 everywhere and TensorFloat-32 off, as on the
            team's V100, which has no TF32) or ``"tf32"`` (TensorFloat-32 matmuls/convolutions
            on Ampere and newer GPUs; a speed setting, not the recipe). TensorFlow's TF32 switch
            is process-wide; it is set at every fit and prediction.
        eval_batch_size: rows per forward pass for validation/prediction (engineering only).
        deterministic: enable TensorFlow op determinism when running on the CPU.
        progress: print Keras's one line per epoch (``verbose=2``, as the team's ``train.py``).
    """

    seq_len: int = 110
    fit_sequence: bool = True
    n_classes: int = N_CLASSES
    gc_correction: bool = True
    gc_weighting: str = "overall"
    gc_round_digits: int = 1
    bucket_fraction: float = 0.8
    valid_fraction: float = 0.1
    conv_filters: tuple[int, ...] = (250, 250, 250, 100)
    conv_kernels: tuple[int, ...] = (7, 8, 3, 2)
    conv_activations: tuple[str, ...] = ("relu", "softmax", "softmax", "softmax")
    block_pools: tuple[int, ...] = (2, 1)
    conv_dropout: float = 0.1
    dense_units: tuple[int, ...] = (300, 300)
    dense_activation: str = "sigmoid"
    dense_dropout: float = 0.3
    bn_momentum: float = 0.99
    batch_size: int = 1024
    lr: float = 1e-3
    max_epochs: int = 100
    patience: int = 10
    max_train_seconds: float = 0.0
    restore_best_at_end: bool = False
    precision: str = "fp32"
    eval_batch_size: int = 1024
    deterministic: bool = True
    progress: bool = True

    def __post_init__(self) -> None:
        # JSON / TOML give lists; keep tuples so configs compare equal and stay hashable
        for name in ("conv_filters", "conv_kernels", "conv_activations", "block_pools", "dense_units"):
            setattr(self, name, tuple(getattr(self, name)))
        n_conv = len(self.conv_filters)
        if n_conv == 0 or len(self.conv_kernels) != n_conv or len(self.conv_activations) != n_conv:
            raise ValueError("kircherlab: conv_filters, conv_kernels and conv_activations need the same "
                             "non-zero length")
        if n_conv != 2 * len(self.block_pools):
            raise ValueError(f"kircherlab: {n_conv} convolutions need {n_conv // 2} block_pools "
                             "(one per two convolutions)")
        for name in ("seq_len", "n_classes", "gc_round_digits", "batch_size", "max_epochs", "eval_batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"kircherlab: {name} must be >= 1, got {getattr(self, name)}")
        if self.n_classes < 2:
            raise ValueError(f"kircherlab: n_classes must be >= 2, got {self.n_classes}")
        if self.patience < 0:
            raise ValueError(f"kircherlab: patience must be >= 0, got {self.patience}")
        if min(self.conv_filters + self.conv_kernels + self.block_pools + self.dense_units, default=1) < 1:
            raise ValueError("kircherlab: filters, kernels, pools and dense units must be >= 1")
        if self.precision not in _PRECISIONS:
            raise ValueError(f"kircherlab: precision must be one of {_PRECISIONS}, got {self.precision!r}")
        if self.gc_weighting not in _GC_WEIGHTINGS:
            raise ValueError(f"kircherlab: gc_weighting must be one of {_GC_WEIGHTINGS}, got {self.gc_weighting!r}")
        if not 0 < self.bucket_fraction <= 1:
            raise ValueError(f"kircherlab: bucket_fraction must be in (0, 1], got {self.bucket_fraction}")
        if not 0 < self.valid_fraction < 1:
            raise ValueError(f"kircherlab: valid_fraction must be in (0, 1), got {self.valid_fraction}")
        if not 0 <= self.bn_momentum < 1:
            raise ValueError(f"kircherlab: bn_momentum must be in [0, 1), got {self.bn_momentum}")
        if not (0 <= self.conv_dropout < 1 and 0 <= self.dense_dropout < 1):
            raise ValueError("kircherlab: dropout rates must be in [0, 1)")
        if self.lr <= 0 or self.max_train_seconds < 0:
            raise ValueError("kircherlab: lr must be > 0 and max_train_seconds >= 0")
        if self.flat_len < 1:
            raise ValueError(f"kircherlab: seq_len {self.seq_len} is too short for the convolution/pooling stack")

    @property
    def flat_len(self) -> int:
        """Positions left after the convolution/pooling stack ("valid" padding): 110 -> 104 -> 97
        -> 48 -> 46 -> 45 -> 45 for the paper setting."""
        length = self.seq_len
        for i, kernel in enumerate(self.conv_kernels):
            length = length - kernel + 1
            if i % 2 == 1:
                length //= self.block_pools[i // 2]
        return length


# ----------------------------------------------------------------------------------------------
# labels, GC content and the GC-corrected sampling (§1)
# ----------------------------------------------------------------------------------------------
def expression_classes(y: np.ndarray, n_classes: int = N_CLASSES) -> np.ndarray:
    """Expression -> class index (§1: "we first selected the classified bin by rounding the
    measured sequence effect"; team's ``input_data.py``: ``effect.astype(int)``).

    Args:
        y: ``(N,)`` expression values (any float/int dtype; the challenge's are 0..17).
        n_classes: number of classes (18).

    Returns:
        ``(N,) int64`` classes ``clip(floor(y), 0, n_classes - 1)``: 16.99 -> 16, 17.0 -> 17,
        a value above 17 (none in the challenge data) -> 17, a negative value -> 0.

    Raises:
        ValueError: a value is NaN or infinite.
    """
    y = np.asarray(y, dtype=np.float64)
    if not np.isfinite(y).all():
        raise ValueError(f"kircherlab: {int((~np.isfinite(y)).sum())} expression value(s) are NaN/inf")
    return np.clip(np.floor(y), 0, n_classes - 1).astype(np.int64)


def one_hot_classes(classes: np.ndarray, n_classes: int = N_CLASSES) -> np.ndarray:
    """Class indices ``(N,) int`` -> ``(N, n_classes) float32`` one-hot targets (§1,
    ``pandas.get_dummies``; always all ``n_classes`` columns, even for a class no row has).

    Raises:
        ValueError: an index outside ``0..n_classes-1``.
    """
    classes = np.asarray(classes)
    if len(classes) and (classes.min() < 0 or classes.max() >= n_classes):
        raise ValueError(f"kircherlab: class indices must be in 0..{n_classes - 1}")
    out = np.zeros((len(classes), n_classes), dtype=np.float32)
    out[np.arange(len(classes)), classes] = 1
    return out


def gc_fraction(codes: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """GC fraction as the team computes it: (#G + #C) / sequence length (N counts in the length,
    unlike :func:`harness.data.encoding.gc_content`).

    Args:
        codes: ``(N, W) uint8`` codes (PAD-filled); ``lengths``: ``(N,)`` lengths in nt.

    Returns:
        ``(N,) float64`` in [0, 1]; 0 for an empty sequence.
    """
    gc = ((codes == encoding.C) | (codes == encoding.G)).sum(axis=1)
    lengths = np.asarray(lengths, dtype=np.float64)
    return np.divide(gc, lengths, out=np.zeros(len(codes)), where=lengths > 0)


def gc_bins(gc: np.ndarray, digits: int = 1) -> np.ndarray:
    """GC fraction -> GC bin: ``numpy.round(gc, digits)`` (pandas ``round`` in the team's
    ``bucket_callibration.py``, round-half-to-even; ``(N,) float64``)."""
    return np.round(np.asarray(gc, dtype=np.float64), digits)


def gc_sampling_weights(classes: np.ndarray, bins: np.ndarray, weighting: str = "overall") -> np.ndarray:
    """Per-row weights of the GC-corrected sampling (§1; see the module docstring).

    Args:
        classes: ``(N,) int`` class of each row.
        bins: ``(N,) float`` GC bin of each row (:func:`gc_bins`).
        weighting: ``"overall"``: ``w = P_all(bin)``, the share of all ``N`` rows in the row's GC
            bin (the team's ``gc_weight`` column); ``"ratio"``: ``w = P_all(bin) / P_c(bin)``,
            with ``P_c`` the bin's share among the rows of the row's class.

    Returns:
        ``(N,) float64`` weights, all > 0.

    Raises:
        ValueError: unknown ``weighting`` or mismatched lengths.
    """
    classes = np.asarray(classes)
    bins = np.asarray(bins)
    if len(classes) != len(bins):
        raise ValueError(f"kircherlab: {len(classes)} classes but {len(bins)} GC bins")
    if weighting not in _GC_WEIGHTINGS:
        raise ValueError(f"kircherlab: gc weighting must be one of {_GC_WEIGHTINGS}, got {weighting!r}")
    n = len(bins)
    if n == 0:
        return np.zeros(0)
    _, bin_idx = np.unique(bins, return_inverse=True)
    p_all = np.bincount(bin_idx) / n
    weights = p_all[bin_idx]
    if weighting == "ratio":
        _, cls_idx = np.unique(classes, return_inverse=True)
        n_bins = int(bin_idx.max()) + 1
        joint = np.bincount(cls_idx * n_bins + bin_idx, minlength=(int(cls_idx.max()) + 1) * n_bins)
        p_class = joint[cls_idx * n_bins + bin_idx] / np.bincount(cls_idx)[cls_idx]
        weights = weights / p_class
    return weights


def gc_corrected_sample(classes: np.ndarray, bins: np.ndarray, fraction: float = 0.8,
                        weighting: str = "overall", seed: int | np.random.Generator = 0) -> np.ndarray:
    """GC-corrected per-class sampling without replacement (§1; ``bucket_callibration.py``).

    From each class ``c`` with ``n_c`` rows, ``round(fraction * n_c)`` rows (Python ``round``, as
    pandas' ``frac``) are drawn without replacement, each draw with probability proportional to
    :func:`gc_sampling_weights` among the rows not drawn yet. Implemented with Efraimidis-Spirakis
    keys ``log(u) / w`` (``u`` uniform): the ``k`` largest keys of a class are a sample with
    exactly that distribution.

    Args:
        classes: ``(N,) int`` classes; bins: ``(N,) float`` GC bins.
        fraction: share of each class to keep, in (0, 1].
        weighting: ``"overall"`` or ``"ratio"`` (see :func:`gc_sampling_weights`).
        seed: seed or ``numpy.random.Generator``.

    Returns:
        ``(M,) int64`` sorted indices of the kept rows.

    Raises:
        ValueError: ``fraction`` outside (0, 1], unknown ``weighting`` or mismatched lengths.
    """
    if not 0 < fraction <= 1:
        raise ValueError(f"kircherlab: fraction must be in (0, 1], got {fraction}")
    classes = np.asarray(classes)
    weights = gc_sampling_weights(classes, bins, weighting)
    n = len(classes)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    with np.errstate(divide="ignore"):
        keys = np.log(rng.random(n)) / weights
    order = np.lexsort((-keys, classes))  # by class, then largest key first
    sorted_classes = classes[order]
    starts = np.flatnonzero(np.r_[True, sorted_classes[1:] != sorted_classes[:-1]])
    sizes = np.diff(np.r_[starts, n])
    keep_per_class = np.array([round(fraction * int(s)) for s in sizes], dtype=np.int64)
    rank = np.arange(n) - np.repeat(starts, sizes)
    keep = rank < np.repeat(keep_per_class, sizes)
    return np.sort(order[keep]).astype(np.int64)


# ----------------------------------------------------------------------------------------------
# inputs and the post-processing (§1, §3)
# ----------------------------------------------------------------------------------------------
def fit_to_length(codes: np.ndarray, lengths: np.ndarray, target: int = 110) -> np.ndarray:
    """Centre every sequence on ``target`` nt inside the plasmid, as the team's data loader does
    with ``fit_sequence`` (``sequence.py::StringDreamChallange1D.__getitem__``; every training of
    the workflow's ``config.yaml`` sets it, so it applies to training, validation and test rows).

    With ``d = |target - length|``:

    * shorter: the last ``ceil(d / 2)`` nt of :data:`TEAM_VECTOR_5P` go before the sequence and
      the first ``floor(d / 2)`` nt of :data:`TEAM_VECTOR_3P` after it (the extra nt of an odd
      difference on the 5' side);
    * longer: ``ceil(d / 2)`` nt are cut at the 5' end and ``floor(d / 2)`` at the 3' end (the
      team's ``seq[ceil(d / 2) : target + ceil(d / 2)]``);
    * ``target`` nt: unchanged.

    Args:
        codes: ``(N, W) uint8`` codes (PAD-filled beyond each length); lengths: ``(N,)`` in nt.
        target: output length in nt.

    Returns:
        ``(N, target) uint8`` codes.

    Raises:
        ValueError: a sequence needs more plasmid than the core provides (more than 120 nt 5' or
            119 nt 3', i.e. a sequence more than 239 nt shorter than ``target``).
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    n = len(codes)
    missing = target - lengths
    half = (np.abs(missing) + 1) // 2  # ceil(|d| / 2)
    pad5 = np.where(missing > 0, half, 0)
    pad3 = np.where(missing > 0, missing - half, 0)
    if n and (pad5.max() > len(_VECTOR_5P_CODES) or pad3.max() > len(_VECTOR_3P_CODES)):
        raise ValueError(f"kircherlab: a sequence of {int(lengths.min())} nt needs {int(pad5.max())} nt of 5' and "
                         f"{int(pad3.max())} nt of 3' plasmid to reach {target} nt; the construct provides "
                         f"{len(_VECTOR_5P_CODES)} and {len(_VECTOR_3P_CODES)}")
    # the window starts ceil(d / 2) nt before the sequence (shorter) or into it (longer), in the
    # team's vector context (harness.data.encoding.vector_window)
    start = np.where(missing > 0, -half, half)
    return encoding.vector_window(codes, lengths, start, target, _VECTOR_5P_CODES, _VECTOR_3P_CODES)


def one_hot_inputs(codes: np.ndarray) -> np.ndarray:
    """``(N, L) uint8`` codes -> ``(N, L, 4) float32`` model inputs (NLC, Keras): A, C, G, T one-hot
    in that order, N and every other code (PAD) :data:`N_VALUE` = 0.25 in all four channels
    (kipoiseq ``ReorderedOneHot``; :func:`harness.data.encoding.one_hot`). The training pipeline
    does the same per batch in TensorFlow with the same table."""
    return encoding.one_hot(codes, layout="NLC", n_value=N_VALUE)


def weighted_class_mean(outputs: np.ndarray) -> np.ndarray:
    """The team's post-processing (§3): ``numpy.average(range(K), weights=row)`` for every row.

    Vectorised: ``sum_k k * w_k / sum_k w_k`` in float64. The outputs are linear, so weights may be
    negative; like ``numpy.average`` nothing is clipped and the result can then fall outside
    0..K-1. Where ``numpy.average`` would raise (``ZeroDivisionError``: the row's weights sum to
    exactly 0) the row gets the index of its largest output instead (the team's alternative
    "maxvalue" read-out), so a prediction never crashes or returns NaN. A row with a non-finite
    output gives NaN (numpy.average would too).

    Args:
        outputs: ``(N, K)`` class scores (any float dtype).

    Returns:
        ``(N,) float64``.

    Raises:
        ValueError: ``outputs`` is not 2-D.
    """
    w = np.asarray(outputs, dtype=np.float64)
    if w.ndim != 2:
        raise ValueError(f"kircherlab: outputs must be (N, K), got shape {w.shape}")
    index = np.arange(w.shape[1], dtype=np.float64)
    total = w.sum(axis=1)
    numer = (w * index).sum(axis=1)
    zero = total == 0
    out = np.divide(numer, total, out=np.zeros(len(w)), where=~zero)
    if zero.any():
        out[zero] = np.argmax(w[zero], axis=1)
    return out


# ----------------------------------------------------------------------------------------------
# TensorFlow: lazy import, devices
# ----------------------------------------------------------------------------------------------
_TF: Any = None
_TPU_STRATEGY: Any = None


def import_tensorflow():
    """Import TensorFlow once, quietly, and return the module.

    Sets ``TF_CPP_MIN_LOG_LEVEL=3`` (C++ INFO/WARNING/ERROR lines), ``GRPC_VERBOSITY=ERROR`` and
    ``ABSL_MIN_LOG_LEVEL`` before the import unless the caller set them already, and raises the
    Python ``tensorflow`` logger and absl to ERROR.

    Raises:
        ImportError: TensorFlow is not installed (``pip install tensorflow-cpu``, or the project's
            ``tensorflow`` extra).
    """
    global _TF
    if _TF is not None:
        return _TF
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    os.environ.setdefault("ABSL_MIN_LOG_LEVEL", "3")
    try:
        import tensorflow as tf
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("kircherlab needs TensorFlow: pip install tensorflow-cpu "
                          "(or the 'tensorflow' extra)") from exc
    tf.get_logger().setLevel("ERROR")
    try:
        import absl.logging

        absl.logging.set_verbosity(absl.logging.ERROR)
    except ImportError:  # pragma: no cover
        pass
    _TF = tf
    return tf


def _tpu_hinted() -> bool:
    """Whether this machine looks like it has a TPU (Cloud TPU / Colab variables, TPU-VM device
    nodes); avoids probing for one (which can wait on network metadata) where none can be."""
    if any(os.environ.get(k) for k in ("TPU_NAME", "COLAB_TPU_ADDR", "TPU_ACCELERATOR_TYPE")):
        return True
    return bool(glob.glob("/dev/accel[0-9]*") or glob.glob("/dev/vfio/[0-9]*"))


def _tpu_strategy(required: bool):
    """A ``tf.distribute.TPUStrategy`` (connected and initialised once per process), or None."""
    global _TPU_STRATEGY
    if _TPU_STRATEGY is not None:
        return _TPU_STRATEGY
    if not _tpu_hinted():
        if required:
            raise RuntimeError("kircherlab: device 'tpu' requested but no TPU is present (no TPU_NAME / "
                               "COLAB_TPU_ADDR / TPU_ACCELERATOR_TYPE, no /dev/accel* or /dev/vfio/* node)")
        return None
    tf = import_tensorflow()
    name = os.environ.get("TPU_NAME") or (None if os.environ.get("COLAB_TPU_ADDR") else "local")
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=name)
        if name != "local":
            tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        _TPU_STRATEGY = tf.distribute.TPUStrategy(resolver)
    except Exception as exc:  # noqa: BLE001 - any failure means: no usable TPU
        if required:
            raise RuntimeError(f"kircherlab: device 'tpu' requested but the TPU could not be "
                               f"initialised: {exc}") from exc
        return None
    return _TPU_STRATEGY


def resolve_strategy(device: str = "auto") -> tuple[Any, str]:
    """A ``tf.distribute`` strategy for ``device``.

    Args:
        device: ``"auto"`` (a TPU through ``TPUStrategy`` when present, else the first GPU, else
            the CPU), ``"cpu"``, ``"cuda"``/``"gpu"`` (a TensorFlow GPU), ``"mps"`` (a GPU that
            ``tensorflow-metal`` exposes) or ``"tpu"``. Case-insensitive.

    Returns:
        ``(strategy, kind)`` with ``kind`` ``"tpu"``, ``"gpu"`` or ``"cpu"``; GPU and CPU use a
        ``OneDeviceStrategy`` (GPU memory growth enabled).

    Raises:
        ValueError: unknown device name.
        RuntimeError: the requested device is not available here.
    """
    name = str(device).lower()
    if name not in _DEVICES:
        raise ValueError(f"kircherlab: unknown device {device!r}; use one of {', '.join(_DEVICES)}")
    tf = import_tensorflow()
    if name in ("auto", "tpu"):
        tpu = _tpu_strategy(required=name == "tpu")
        if tpu is not None:
            return tpu, "tpu"
    if name == "cpu":
        return tf.distribute.OneDeviceStrategy("/cpu:0"), "cpu"
    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        if name != "auto":
            raise RuntimeError(f"kircherlab: device {device!r} requested but TensorFlow sees no GPU "
                               "(tensorflow-cpu installed, or no CUDA/Metal device)")
        return tf.distribute.OneDeviceStrategy("/cpu:0"), "cpu"
    for gpu in gpus:
        try:
            tf.config.experimental.set_memory_growth(gpu, True)
        except (RuntimeError, ValueError):  # already initialised: keep its setting
            pass
    return tf.distribute.OneDeviceStrategy("/gpu:0"), "gpu"


def apply_precision(precision: str = "fp32") -> None:
    """Set TensorFlow's process-wide TensorFloat-32 switch: off for ``"fp32"`` (the recipe; the
    team trained on a V100, which has no TF32, with no Keras mixed-precision policy), on for
    ``"tf32"``. TensorFlow turns TF32 on by default, so on an Ampere or newer GPU a float32 model
    would otherwise run its matmuls and convolutions with 10-bit mantissas. No effect on CPUs.

    Raises:
        ValueError: unknown ``precision``.
    """
    if precision not in _PRECISIONS:
        raise ValueError(f"kircherlab: precision must be one of {_PRECISIONS}, got {precision!r}")
    import_tensorflow().config.experimental.enable_tensor_float_32_execution(precision == "tf32")


# ----------------------------------------------------------------------------------------------
# model (§2)
# ----------------------------------------------------------------------------------------------
def parameter_counts(config: KircherLabConfig | None = None) -> tuple[int, int]:
    """``(total, trainable)`` parameters of the network ``config`` builds, computed without
    TensorFlow (paper: 2,194,768 and 2,193,068; §2). BatchNorm has 4 parameters per channel, 2 of
    them (moving mean/variance) non-trainable."""
    cfg = config if config is not None else KircherLabConfig()
    total = trainable = 0
    channels = 4
    for filters, kernel in zip(cfg.conv_filters, cfg.conv_kernels):
        conv = (kernel * channels + 1) * filters
        total += conv + 4 * filters
        trainable += conv + 2 * filters
        channels = filters
    width = cfg.flat_len * channels
    for units in cfg.dense_units + (cfg.n_classes,):
        total += (width + 1) * units
        trainable += (width + 1) * units
        width = units
    return total, trainable


def build_network(config: KircherLabConfig | None = None):
    """The KircherLab CNN (§2 Table 1; ``model.py::standard``) as an uncompiled ``keras.Model``.

    Input ``(B, seq_len, 4) float32`` one-hot (NLC); output ``(B, n_classes) float32`` linear
    class scores. Layer names follow the team's (``conv1``..``conv4``, ``maxpool1``/``2``).
    Weights use Keras's default initialisers and the current Keras seed. Every layer is float32
    explicitly, whatever global Keras mixed-precision policy the process has set (the team's
    TensorFlow 2.6 run used none).
    """
    cfg = config if config is not None else KircherLabConfig()
    tf = import_tensorflow()
    layers = tf.keras.layers
    f32 = "float32"
    inputs = tf.keras.Input(shape=(cfg.seq_len, 4), dtype=f32, name="input")
    x = inputs
    for i, (filters, kernel, act) in enumerate(zip(cfg.conv_filters, cfg.conv_kernels, cfg.conv_activations)):
        x = layers.Conv1D(filters, kernel, strides=1, padding="valid", activation=act, dtype=f32,
                          name=f"conv{i + 1}")(x)
        x = layers.BatchNormalization(momentum=cfg.bn_momentum, dtype=f32, name=f"bn{i + 1}")(x)
        if i % 2 == 1:
            block = i // 2
            x = layers.MaxPooling1D(pool_size=cfg.block_pools[block], dtype=f32, name=f"maxpool{block + 1}")(x)
            x = layers.Dropout(cfg.conv_dropout, dtype=f32, name=f"dropout{block + 1}")(x)
    x = layers.Flatten(dtype=f32, name="flatten")(x)
    for j, units in enumerate(cfg.dense_units):
        if j > 0:
            x = layers.Dropout(cfg.dense_dropout, dtype=f32, name=f"dense_dropout{j}")(x)
        x = layers.Dense(units, activation=cfg.dense_activation, dtype=f32, name=f"dense{j + 1}")(x)
    outputs = layers.Dense(cfg.n_classes, activation="linear", dtype=f32, name="classes")(x)
    model = tf.keras.Model(inputs=inputs, outputs=outputs, name="kircherlab_standard")
    model.dtype_policy = f32  # the model takes the global policy otherwise
    return model


def _make_dataset(codes: np.ndarray, classes: np.ndarray | None, config: KircherLabConfig, batch_size: int,
                  shuffle_seed: int | None = None, drop_remainder: bool = False):
    """A ``tf.data`` pipeline: ``(L,) uint8`` codes -> ``(B, L, 4) float32`` inputs (and
    ``(B, n_classes) float32`` one-hot targets); shuffled each epoch when ``shuffle_seed`` is set."""
    tf = import_tensorflow()
    table = tf.constant(encoding.one_hot_table(N_VALUE))
    n_classes = config.n_classes
    if classes is None:
        ds = tf.data.Dataset.from_tensor_slices(codes)
    else:
        ds = tf.data.Dataset.from_tensor_slices((codes, classes.astype(np.int32)))
    if shuffle_seed is not None:
        ds = ds.shuffle(len(codes), seed=shuffle_seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size, drop_remainder=drop_remainder)

    def encode(batch_codes):
        return tf.gather(table, tf.cast(batch_codes, tf.int32))

    if classes is None:
        ds = ds.map(encode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    else:
        ds = ds.map(lambda c, k: (encode(c), tf.one_hot(k, n_classes, dtype=tf.float32)),
                    num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.prefetch(tf.data.AUTOTUNE)


def _early_stopping_callback(patience: int, restore_at_end: bool):
    """Early stopping on ``val_loss`` with the best epoch's weights restored as the team's
    TensorFlow 2.6 ``EarlyStopping(patience=10, restore_best_weights=True)`` did: only when the
    patience runs out (``restore_at_end=False``); with ``restore_at_end=True`` also when the fit
    ends otherwise (epoch cap, time budget), as Keras 3 does. After the fit, ``restored`` says
    whether the best weights were put back (then ``best_epoch`` is the model's epoch)."""
    tf = import_tensorflow()

    class TeamEarlyStopping(tf.keras.callbacks.EarlyStopping):
        def __init__(self) -> None:
            super().__init__(monitor="val_loss", patience=patience, restore_best_weights=True)
            self.restored = False

        def on_train_end(self, logs=None):
            self.restored = self.best_weights is not None and (self.stopped_epoch > 0 or restore_at_end)
            if self.restored:
                self.model.set_weights(self.best_weights)

    return TeamEarlyStopping()


def _time_budget_callback(seconds: float):
    """A Keras callback that stops training once ``seconds`` of wall time have passed since
    training began (checked after every batch; the epoch then ends with its validation pass)."""
    tf = import_tensorflow()

    class TimeBudget(tf.keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.start = time.monotonic()
            self.exhausted = False

        def on_train_begin(self, logs=None):
            self.start = time.monotonic()

        def on_train_batch_end(self, batch, logs=None):
            if time.monotonic() - self.start > seconds:
                self.exhausted = True
                self.model.stop_training = True

    return TimeBudget()


# ----------------------------------------------------------------------------------------------
# data preparation for a fit
# ----------------------------------------------------------------------------------------------
@dataclasses.dataclass
class PreparedData:
    """Model-ready training/validation data of one fit.

    Attributes:
        train_codes, valid_codes: ``(N, seq_len) uint8`` codes of the kept rows.
        train_classes, valid_classes: ``(N,) int64`` classes 0..17.
        stats: row counts of every step (``rows_train``, ``rows_valid``, ``gc_sampled``,
            ``fitted_length_train``/``fitted_length_valid`` (rows centred in the plasmid because
            they are not ``seq_len`` nt; ``fit_sequence``), ``dropped_length_train``/
            ``dropped_length_valid`` (rows dropped for it; ``fit_sequence=False``),
            ``kept_train``, ``kept_valid``) and ``class_counts_train``.
    """

    train_codes: np.ndarray
    train_classes: np.ndarray
    valid_codes: np.ndarray
    valid_classes: np.ndarray
    stats: dict


def split_train_valid(classes: np.ndarray, valid_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded random split of ``N`` rows into training / validation indices, stratified by class
    (§1; team's ``train_test_split(..., stratify=class)``); plain random where a class has fewer
    than 2 rows or the validation part is smaller than the number of classes
    (:func:`harness.holdout.holdout_split`, ``generator="sklearn"``).

    Returns:
        ``(train_idx, valid_idx)``, sorted ``int64`` arrays.

    Raises:
        ValueError: fewer than 2 rows.
    """
    return holdout_split(len(classes), valid_fraction, seed, generator="sklearn", stratify=np.asarray(classes),
                         who="kircherlab")


def prepare_data(train: SeqTable, valid: SeqTable | None, config: KircherLabConfig, seed: int = 0) -> PreparedData:
    """The §1 data steps of a fit, in the team's order: classes; validation split when ``valid``
    is None; GC-corrected 80 % sampling of the training rows (GC of the rows as given); then,
    in the team's data loader, rows that are not ``seq_len`` nt are centred in the plasmid
    (``fit_sequence``, the recipe; :func:`fit_to_length`) or dropped (``fit_sequence=False``,
    the write-up's text). The validation rows are not GC-sampled.

    Raises:
        ValueError: a table has no targets, or no training / validation row is left.
    """
    cfg = config
    require_targets("kircherlab", train, valid)
    stats: dict[str, Any] = {}
    classes = expression_classes(train.y, cfg.n_classes)
    if valid is None:
        tr_idx, va_idx = split_train_valid(classes, cfg.valid_fraction, seed)
        valid = train.subset(va_idx)
        train = train.subset(tr_idx)
        classes = classes[tr_idx]
    valid_classes = expression_classes(valid.y, cfg.n_classes)
    stats["rows_train"], stats["rows_valid"] = len(train), len(valid)
    if cfg.gc_correction and len(train):
        bins = gc_bins(gc_fraction(train.codes, train.lengths), cfg.gc_round_digits)
        keep = gc_corrected_sample(classes, bins, cfg.bucket_fraction, cfg.gc_weighting, seed)
        train, classes = train.subset(keep), classes[keep]
    stats["gc_sampled"] = len(train)
    other_tr = np.asarray(train.lengths) != cfg.seq_len
    other_va = np.asarray(valid.lengths) != cfg.seq_len
    if cfg.fit_sequence:
        stats["fitted_length_train"], stats["fitted_length_valid"] = int(other_tr.sum()), int(other_va.sum())
        stats["dropped_length_train"] = stats["dropped_length_valid"] = 0
        ok_tr, ok_va = np.ones(len(train), dtype=bool), np.ones(len(valid), dtype=bool)
    else:
        stats["fitted_length_train"] = stats["fitted_length_valid"] = 0
        stats["dropped_length_train"], stats["dropped_length_valid"] = int(other_tr.sum()), int(other_va.sum())
        ok_tr, ok_va = ~other_tr, ~other_va
    stats["kept_train"], stats["kept_valid"] = int(ok_tr.sum()), int(ok_va.sum())
    if not ok_tr.any() or not ok_va.any():
        why = "" if cfg.fit_sequence else f" (fit_sequence=False keeps only rows of {cfg.seq_len} nt)"
        raise ValueError(f"kircherlab.fit: {stats['kept_train']} training / {stats['kept_valid']} validation rows "
                         f"left{why}; need >= 1 each")
    train_codes = fit_to_length(train.codes[ok_tr], np.asarray(train.lengths)[ok_tr], cfg.seq_len)
    valid_codes = fit_to_length(valid.codes[ok_va], np.asarray(valid.lengths)[ok_va], cfg.seq_len)
    classes, valid_classes = classes[ok_tr], valid_classes[ok_va]
    stats["class_counts_train"] = np.bincount(classes, minlength=cfg.n_classes).tolist()
    return PreparedData(train_codes, classes, valid_codes, valid_classes, stats)


# ----------------------------------------------------------------------------------------------
# the plug-in
# ----------------------------------------------------------------------------------------------
@register("kircherlab")
class KircherLab(Method):
    """KircherLab GC-corrected CNN classifier (DREAM 2022). See the module docstring for the recipe.

    After :meth:`fit`: ``history`` (one dict per epoch: loss, mae, acc, val_*), ``best_epoch``
    (0-based, the restored one), ``data_stats`` (see :class:`PreparedData`) and ``device_kind``.
    """

    framework = "tensorflow"
    Config = KircherLabConfig
    profiles = {"tiny": {"conv_filters": [8, 8, 8, 4], "dense_units": [16, 16], "batch_size": 64, "max_epochs": 1,
                         "eval_batch_size": 256, "progress": False}}
    paper_num_parameters = 2_193_068  # write-up §2 (trainable; BatchNorm statistics excluded)

    def __init__(self, config: KircherLabConfig | None = None, *, seed: int = 0, device: str = "auto",
                 work_dir=None) -> None:
        super().__init__(config, seed=seed, device=device, work_dir=work_dir)
        self.model = None
        self.history: list[dict] = []
        self.best_epoch: int | None = None
        self.data_stats: dict = {}
        self.device_kind: str | None = None
        self._strategy = None

    # ----- pieces -----------------------------------------------------------------------------
    def strategy(self):
        """The ``tf.distribute`` strategy of this method's ``device`` (resolved once; see
        :func:`resolve_strategy`, which raises RuntimeError for a missing device)."""
        if self._strategy is None:
            self._strategy, self.device_kind = resolve_strategy(self.device)
        return self._strategy

    def _seed_everything(self) -> None:
        tf = import_tensorflow()
        tf.keras.utils.set_random_seed(self.seed)
        if self.config.deterministic and self.device_kind == "cpu":
            tf.config.experimental.enable_op_determinism()

    def build_model(self):
        """A freshly initialised, compiled network for this config under this method's device
        strategy, seeded by ``seed`` (Keras default initialisers), with TensorFloat-32 set by
        ``precision`` (:func:`apply_precision`). Compiled as §3 / ``train.py``: MSE loss,
        Adam(lr), the team's metrics ``["mse", "mae", "mape", "acc"]`` ("acc" resolves to
        categorical accuracy for one-hot targets)."""
        tf = import_tensorflow()
        strategy = self.strategy()
        self._seed_everything()
        apply_precision(self.config.precision)
        with strategy.scope():
            model = build_network(self.config)
            model.compile(optimizer=tf.keras.optimizers.Adam(learning_rate=self.config.lr),
                          loss=tf.keras.losses.MeanSquaredError(),
                          auto_scale_loss=False,  # no loss scaling even under a global mixed policy
                          metrics=[tf.keras.metrics.MeanSquaredError(name="mse"),
                                   tf.keras.metrics.MeanAbsoluteError(name="mae"),
                                   tf.keras.metrics.MeanAbsolutePercentageError(name="mape"),
                                   tf.keras.metrics.CategoricalAccuracy(name="acc")])
        return model

    def num_parameters(self) -> int:
        """Trainable parameters of this config's network (paper: 2,193,068; §2). No TensorFlow."""
        return parameter_counts(self.config)[1]

    def total_parameters(self) -> int:
        """All parameters incl. BatchNorm moving statistics (paper: 2,194,768; §2). No TensorFlow."""
        return parameter_counts(self.config)[0]

    # ----- fit / predict ------------------------------------------------------------------------
    def fit(self, train: SeqTable, valid: SeqTable | None = None) -> None:
        """Train from scratch (§1-§3; see the module docstring).

        Args:
            train: training rows with ``y`` (expression 0..17). GC-sampled (80 % of each class),
                then rows that are not ``seq_len`` nt are centred in the plasmid
                (``fit_sequence``; dropped with ``fit_sequence=False``).
            valid: optional validation rows (not GC-sampled; lengths handled as ``train``'s);
                without it a seeded, class-stratified ``valid_fraction`` of ``train`` is held
                out first.

        Raises:
            ValueError: missing targets, or no training/validation row left.
            RuntimeError: the requested device is not available.
        """
        cfg = self.config
        data = prepare_data(train, valid, cfg, self.seed)
        self.data_stats = data.stats
        import_tensorflow()
        model = self.build_model()
        drop = self.device_kind == "tpu"  # TPUs need static batch shapes
        train_ds = _make_dataset(data.train_codes, data.train_classes, cfg, cfg.batch_size,
                                 shuffle_seed=self.seed, drop_remainder=drop)
        valid_ds = _make_dataset(data.valid_codes, data.valid_classes, cfg, cfg.eval_batch_size, drop_remainder=drop)
        early = _early_stopping_callback(cfg.patience, cfg.restore_best_at_end)
        callbacks = [early]
        budget = _time_budget_callback(cfg.max_train_seconds) if cfg.max_train_seconds > 0 else None
        if budget is not None:
            callbacks.append(budget)
        with open_method_log(self) as log:  # each epoch's loss, metrics and val_* (harness.tracking)
            if log.active:
                callbacks.append(keras_callback(log))
            result = model.fit(train_ds, validation_data=valid_ds, epochs=cfg.max_epochs, callbacks=callbacks,
                               shuffle=False, verbose=2 if cfg.progress else 0)  # shuffled in the dataset
        epochs = len(next(iter(result.history.values()), []))
        self.history = [{k: _finite_or_none(v[i]) for k, v in result.history.items()} for i in range(epochs)]
        if budget is not None and budget.exhausted and self.history:
            self.history[-1]["stopped_by_time_budget"] = True
        self.best_epoch = int(early.best_epoch) if early.restored else (epochs - 1 if epochs else None)
        self.model = model

    def predict_outputs(self, seqs: SeqTable) -> np.ndarray:
        """The 18 linear class scores ``(len(seqs), n_classes) float32`` (inference mode, batches of
        ``eval_batch_size``, this method's device). Every row is predicted; rows that are not
        ``seq_len`` nt are centred by :func:`fit_to_length`.

        Raises:
            RuntimeError: the method is neither fitted nor loaded.
        """
        if self.model is None:
            raise RuntimeError("kircherlab: predict called before fit/load")
        cfg = self.config
        if len(seqs) == 0:
            return np.zeros((0, cfg.n_classes), dtype=np.float32)
        apply_precision(cfg.precision)
        codes = fit_to_length(seqs.codes, seqs.lengths, cfg.seq_len)
        n = len(codes)
        if self.device_kind == "tpu":  # static batch shapes: pad to whole batches, cut afterwards
            pad = (-n) % cfg.eval_batch_size
            codes = np.concatenate([codes, np.full((pad, cfg.seq_len), encoding.N, dtype=np.uint8)])
        ds = _make_dataset(codes, None, cfg, cfg.eval_batch_size, drop_remainder=self.device_kind == "tpu")
        out = self.model.predict(ds, verbose=0)
        return np.asarray(out[:n], dtype=np.float32)

    def predict(self, seqs: SeqTable) -> np.ndarray:
        """Predicted expression ``(len(seqs),) float64``: :func:`weighted_class_mean` of
        :meth:`predict_outputs` (§3, the team's final read-out).

        Raises:
            RuntimeError: the method is neither fitted nor loaded.
        """
        return weighted_class_mean(self.predict_outputs(seqs))

    # ----- persistence --------------------------------------------------------------------------
    def _save_state(self, path: Path) -> None:
        if self.model is None:
            raise RuntimeError("kircherlab: save called before fit")
        tmp = path / "model.partial.keras"
        self.model.save(tmp)
        os.replace(tmp, path / "model.keras")
        write_json(path / "history.json", {"best_epoch": self.best_epoch, "data_stats": self.data_stats,
                                           "device_kind": self.device_kind, "history": self.history})

    def _load_state(self, path: Path) -> None:
        """Rebuild this config's network (:func:`build_network`, under the device strategy) and
        read only its weights from ``model.keras`` (``Model.load_weights``: the HDF5 weight store
        inside the archive). The architecture and objects the archive describes are never
        deserialised (no ``keras.models.load_model``), so a planted or edited file can run no
        layer, lambda or custom-object code; it can only fail to fit the network.

        Raises:
            FileNotFoundError: ``model.keras`` is missing, a link or not a regular file.
            ValueError: its weights do not fit this config's network (the message names the file).
        """
        weights = path / "model.keras"
        if weights.is_symlink() or not weights.is_file():
            raise FileNotFoundError(f"{weights}: missing or not a regular file (links are not followed)")
        with self.strategy().scope():
            model = build_network(self.config)
            try:
                model.load_weights(weights)
            except Exception as exc:  # noqa: BLE001 - Keras raises ValueError/KeyError/OSError for a bad store
                raise ValueError(f"{weights}: weights do not fit the {self.config.seq_len}-nt kircherlab network "
                                 f"of this config ({type(exc).__name__}: {exc})") from exc
        self.model = model
        meta_path = path / "history.json"
        if meta_path.is_file():
            meta = read_json(meta_path)
            self.best_epoch = meta.get("best_epoch")
            self.data_stats = meta.get("data_stats", {})
            self.history = meta.get("history", [])


def _finite_or_none(value: Any) -> float | None:
    """A float for JSON, or None for NaN/inf."""
    value = float(value)
    return value if math.isfinite(value) else None
