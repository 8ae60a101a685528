"""BHI / DeepGXP (DREAM 2022): conv -> Bi-LSTM -> conv -> dense on one-hot 110-nt promoters.

Sources: the team's write-up ("DREAM Challenge 2022 ... by BHI", sections cited as §) and the code
that produced the submission, ``dream_submissions/BHI - dream challenge/code/src/`` in the organisers'
repository de-Boer-Lab/random-promoter-dream-challenge-2022 (the team's github.com/Sangyeup/BHI-DREAM-Challenge):
``net.py`` (model), ``data.py`` (padding, TTA), ``train_full.py`` (the submitted model, all rows),
``train.py`` (5-fold cross-validation), ``infer_txt.py`` (TTA inference), ``postprocess_txt.py``
(post-processing of the final predictions). Where write-up and code disagree, the code is followed
and the Fidelity table says so. Paper profile = the :class:`BHIConfig` defaults; ``configs/bhi.toml``
``[paper-fast]`` is the same recipe with bf16 autocast, which is *not* the recipe.

Recipe
------
* Data (§1; ``data.py``): sequences longer than 110 nt are trimmed from the right (the first 110 nt
  are kept); shorter ones are padded with the real pTpA vector flank (:mod:`harness.data.construct`:
  the 5' side takes the nt just upstream of the 17-nt flank, the 3' side those just downstream of
  the 13-nt flank; the team's two vector strings are their first 37 / 76 nt). The side is drawn at
  random for every sample each time it is drawn, as augmentation. §1 gives 5' : 3' : both = 4:3:2,
  but the code draws ``random() < 0.333`` -> 3' only, else ``random() > 0.666`` -> 5' only, else
  both: probabilities 5' 0.667 x 0.334 = 0.2228, 3' 0.333, both 0.667 x 0.666 = 0.4442 (about
  2:3:4; its comment says "3:4:2 for right, left, both"). The paper profile uses the code's
  probabilities (``pad_5p``, ``pad_3p``, ``pad_both``). "Both" puts ``floor(short / 2)`` nt on
  the 5' side and the rest on the 3' side ("right pad >= left pad";
  :func:`harness.data.encoding.fit_length` ``strategy="both"``). One-hot A, C, G, T, with N as
  zeros (§1). Targets standardised as ``(y - 11) / std(y)`` (§1: 11 is the most common bin),
  ``std`` the population standard deviation (``np.std``) of the training targets.
* Model (§2, Figure 1; ``net.py``): two parallel Conv1d 4 -> 256 with kernels 9 and 15 ("same"
  padding), each followed by ReLU and dropout 0.2, concatenated to 512 channels -> bidirectional
  LSTM, 320 hidden units per direction (640), zero initial state -> two parallel Conv1d 640 -> 160
  with kernels 9 and 15, ReLU, dropout 0.2, concatenated (320) -> dropout 0.5 -> flatten
  (110 x 320 = 35,200, position-major as the team's ``permute(0, 2, 1).reshape``) -> dense 64 ->
  ReLU -> dense 64 -> ReLU -> dense 1. PyTorch default initialisation. The team's
  ``MaxPool1d(kernel_size=1)`` after each convolution is the identity and is left out.
  **6,875,137 trainable parameters**, the count of the team's ``DeepGXP()`` (its layer shapes give
  9,472 + 15,616 + 2 x 1,067,520 + 921,760 + 1,536,160 + 2,252,864 + 4,160 + 65).
* Training (§3; ``train_full.py``): every training row (no hold-out: ``valid_fraction = 0``),
  Huber loss (``nn.HuberLoss``, delta 1) on the standardised targets, AdamW (lr 0.0015, weight
  decay 0.01), batch 512 with the last incomplete batch dropped (``DataLoader(drop_last=True)``),
  15 epochs, ``CosineAnnealingLR`` with ``T_max`` = all optimiser steps of the fit, stepped after
  every batch, reaching 0 at the end, fp32. Post-hoc conjoined (§3, Zhou et al. 2020): every batch
  is run forward and reverse-complemented and the two Huber losses are averaged. No early
  stopping: the final weights are kept (``keep="last"``).
* Inference (§3; ``data.DDPDatasetShift``, ``infer_txt.py``): test-time augmentation over shifts
  -2..+2 nt x {forward, reverse complement}: the mean of the model's 10 outputs. A shift moves the
  110-nt window along the sequence in its plasmid context: shift ``+k`` drops the first ``k`` nt
  and appends the next ``k`` nt of the context (the downstream vector, e.g. ``TC`` for ``k = 2``
  after a 110-nt sequence), ``-k`` prepends the ``k`` upstream-vector nt (``AC``) and drops the
  last ``k``: for sequences of 110 nt or longer exactly the team's ``_get_shifted_sequence`` +
  trim. Short sequences: see the Fidelity table.
* Post-processing (§4; ``postprocess_txt.py``, on by default: ``postprocess="normal_cdf"``): the
  submitted value is ``Phi(z - loc)``, ``Phi`` the standard normal CDF, ``z`` the standardised TTA
  prediction (the team never un-standardised) and ``loc`` the mean of the standardised training
  targets, ``(mean(y) - 11) / std(y)`` (the team's script hard-codes ``loc=0.06201038511068657``
  with the comment "mean of standardized expression from train data", ``scale=1``; here ``loc`` is
  computed from the rows :meth:`BHI.fit` trains on, which on the full training file is that
  number; 0.0629 on ``demo_train.txt``). Outputs are in (0, 1) and depend only on the training
  distribution, so each sequence is transformed on its own as §4 requires; the map is monotone
  (Spearman rho unchanged, Pearson r not). ``postprocess="none"`` returns expression units
  ``z * std + 11`` instead (an affine map of the team's raw ``z``); ``"quantile"`` is the §4 prose
  read literally (the empirical CDF of the standardised training targets), which the code did not do.
* Validation (monitoring only, not in the paper profile): with ``valid_fraction > 0``, :meth:`BHI.fit`
  without a validation table holds out a seeded random fraction of ``train`` (scikit-learn
  ``train_test_split``, ``random_state`` = the method's seed; the ``cpu`` profile holds out 5 % so
  ``harness tune`` can prune and the non-converging seeds §4 warns about show). Each validation
  row gets one padding drawn (seeded) from the placement mix, fixed across epochs; validation
  predictions are the conjoined mean of the forward and reverse-complement outputs without shifts,
  as the team's ``validate`` (``valid_tta=True`` uses the full TTA). The validation loss is the
  mean Huber loss of both strands (the team's ``validate`` computed its "RC" loss from the forward
  output, a slip not copied). ``keep="best"`` keeps the epoch with the best validation Pearson r,
  as the team's cross-validation ``train.py`` did.

Fidelity table
--------------
``paper`` against the team's code above. Each entry: difference -- why -- expected effect.

* Precision. Team: fp32 on one CUDA GPU, torch 1.11 (model not stated; on an Ampere GPU that
  torch used TF32 for matmuls and cuDNN by default). Here: fp32 with the installed PyTorch's
  defaults (TF32 allowed in cuDNN, ``torch.backends.cudnn.allow_tf32``, not in matmuls) -- the
  harness leaves global backend flags alone -- float rounding only.
* Random streams. Team: ``seed_everything(40)``, padding drawn with Python ``random`` in 4
  DataLoader workers, torch's shuffle. Here: the harness seed for initialisation, a NumPy
  permutation per epoch and torch draws for the padding -- one seeded stream that checkpoints can
  resume -- a different run with the same distribution (seed-to-seed variation; §4 notes some
  seeds do not converge).
* Padding longer than the team's vector strings (5' > 37 nt, 3' > 76 nt, i.e. rows shorter than
  ~73 / 34 nt). Team: the window comes out shorter than 110 and the batch cannot be stacked. Here:
  the padding reads on into the real plasmid (120 nt each side) -- every row is usable --
  none on rows the team could train on.
* Short sequences at inference. Team: shifts the raw sequence, then pads each shifted copy with
  its own random placement (seed 42). Here: pads first, shifts the padded window in its context,
  and averages the three placements with the padding probabilities (``predict_padding="mix"``,
  the expectation of the team's draw; deterministic) -- none on the challenge test set, whose
  71,103 sequences are all 110 nt (measured), so there the TTA is the team's exactly.
* Orientation. Here, prediction first reverse-complements rows that match the construct's flanks
  better that way (see below); the team did not -- exact RC invariance -- none on challenge data
  (none of the 71,103 test rows or the 16,370 ``dev_train.txt`` rows is flipped, measured).
* ``std`` and ``loc`` from the rows given to :meth:`BHI.fit` (the team: the whole training file)
  -- identical when the harness fits on the full file; under harness folds they are the fold's,
  so no held-out row leaks in -- negligible.
* Post-processing runs inside :meth:`BHI.predict` rather than as a separate script -- the same
  numbers.

Reverse-complement invariance
-----------------------------
Post-hoc conjoined means the prediction for a sequence is the mean of the model on it and on its
reverse complement, so ``predict(s) == predict(RC(s))`` must hold. With the TTA that needs the
TTA set of ``RC(s)`` to be the reverse complement of the TTA set of ``s`` with mirrored shifts,
*including the nt shifted or padded in*. Filling naively from the forward vector breaks it: the
pTpA flanks are not reverse-complement palindromes (``RC(upstream[-2:]) = "GT"`` but
``downstream[:2] = "TC"``), so shift ``+2`` of ``RC(s)`` would append ``TC`` where the mirror of
``s``'s shift ``-2`` appends ``GT``; the padding sides (the placement mix is not symmetric in
5'/3') and the right-trimming of long sequences have the same problem. So prediction first brings
every sequence into the construct's orientation (:func:`orientation_flip`): a sequence whose ends
match the construct's flanks better when reverse-complemented (``AACAGCCGTAACC...GATGTGAAAAAAATGCA``)
is reverse-complemented, ties (e.g. random sequences) go to the lexicographically smaller of the
sequence and its reverse complement. The rule is antisymmetric -- the evidence for ``RC(s)`` is
that for ``s`` with the roles swapped, and the tie-break picks the same member of the pair -- so
``s`` and ``RC(s)`` reach the same canonical sequence, after which padding, trimming, shifting and
the conjoined model see identical inputs: the invariance is exact (bit-identical when batched the
same way), for real and for arbitrary sequences of any length. For a sequence in the construct's
orientation (every challenge sequence) nothing changes; for a reverse-complemented one the
effective context is the reverse-complemented plasmid, i.e. its real context. Training rows are
used as given (the team's pipeline), since all training rows are in the construct orientation.
The post-processing is a function of the conjoined prediction, so it keeps the invariance.

Seeds: the team used seed 40 for training and 42 for prediction (§3); here the harness passes the
seed (initialisation, shuffling, padding draws and the validation split), and prediction has no
randomness at all.
"""

from __future__ import annotations

import dataclasses
import math
import warnings

import numpy as np
import torch
from scipy import special
from torch import nn

from harness.data import encoding
from harness.data.construct import VECTOR_DOWNSTREAM, VECTOR_UPSTREAM
from harness.data.encoding import fixed_width
from harness.data.sequence import average_views, one_hot_codes, shifted_windows, with_reverse_complement
from harness.data.table import SeqTable
from harness.holdout import holdout_split
from harness.registry import register
from harness.torch_method import STATE_FILE, FitData, TorchConfig, TorchMethod
from harness.training import SeqTrainer

#: padding placements (§1), in this order: 5' only, 3' only, both ends.
PAD_PLACEMENTS = ("5p", "3p", "both")
_UPSTREAM_CODES = encoding.encode([VECTOR_UPSTREAM])[0][0]
_DOWNSTREAM_CODES = encoding.encode([VECTOR_DOWNSTREAM])[0][0]
_KEEP = ("last", "best")
_PREDICT_PADDING = ("mix",) + PAD_PLACEMENTS
_POSTPROCESS = ("none", "quantile", "normal_cdf")
#: padding placement probabilities (5' only, 3' only, both ends) of the team's ``data.py``: a first
#: ``random.random() < 0.333`` pads the 3' end, else a second ``random.random() > 0.666`` the 5'
#: end, else both: (0.667 x 0.334, 0.333, 0.667 x 0.666) = (0.2228, 0.333, 0.4442), about 2:3:4.
#: The write-up (§1) says 4:3:2; the code made the submission.
TEAM_PAD_PROBABILITIES = ((1 - 0.333) * (1 - 0.666), 0.333, (1 - 0.333) * 0.666)


@dataclasses.dataclass
class BHIConfig(TorchConfig):
    """BHI (DeepGXP) hyperparameters; the defaults are the recipe of the team's submitted model
    (paper profile: write-up plus released code, see the module docstring). Never edit them:
    scaled-down and speed settings live in ``configs/bhi.toml`` profiles.

    Attributes:
        seq_len: model input length in nt (§1: 110; longer sequences trimmed from the right).
        pad_5p, pad_3p, pad_both: relative frequencies of padding a short training sequence at the
            5' end only, the 3' end only, or both ends; also the weights of ``predict_padding="mix"``.
            Default: the team code's :data:`TEAM_PAD_PROBABILITIES` (0.2228 : 0.333 : 0.4442, about
            2:3:4); the write-up's 4:3:2 (§1) is ``4, 3, 2``.
        target_center: subtracted from the targets before dividing by their std (§1: 11).
        conv1_channels: output channels of each of the two first convolutions (§2: 256, 512 in all).
        kernel_1, kernel_2: the two kernel sizes of both convolution blocks (§2: 9 and 15).
        conv_dropout: dropout after each convolution's ReLU (§2: 0.2).
        lstm_hidden: LSTM units per direction (§2: 320, 640 in all).
        conv2_channels: output channels of each of the two second convolutions (team code: 160,
            i.e. ``lstm_hidden / 2``; 320 in all).
        dense_dropout: dropout before the flatten / dense layers (team code: 0.5).
        dense: width of the two hidden dense layers (team code: 64).
        huber_delta: Huber loss threshold on the standardised scale (``nn.HuberLoss`` default 1).
        batch_size: training batch (§3: 512).
        lr, weight_decay: AdamW (§3: 0.0015, 0.01).
        max_epochs: epochs; no early stopping (§3: 15).
        drop_last: drop the last incomplete training batch each epoch (team's DataLoader).
        valid_fraction: share of ``train`` held out for validation (monitoring) when
            :meth:`BHI.fit` gets no validation table; 0 = train on every row (paper: the submitted
            model, ``train_full.py``, trained on all rows).
        keep: ``"last"`` keeps the final weights (submission model), ``"best"`` the epoch with the
            best validation Pearson r (team's cross-validation script; needs validation rows).
        max_shift: test-time shifts ``-max_shift..+max_shift`` nt (§3: 2 -> 5 shifts x 2 strands).
        tta: use the shift x strand test-time augmentation at prediction (§3: on); off = the
            conjoined forward/reverse-complement mean of the unshifted sequence.
        valid_tta: validate with the full TTA instead of the unshifted conjoined mean.
        predict_padding: padding of short sequences at prediction: ``"mix"`` (mean over the three
            placements weighted by the padding probabilities), ``"5p"``, ``"3p"`` or ``"both"``.
        postprocess: ``"normal_cdf"`` (paper: the team's ``postprocess_txt.py``,
            ``Phi(z - loc)`` with ``loc`` the mean standardised training target; outputs in (0, 1)),
            ``"none"`` (expression units, ``z * std + 11``) or ``"quantile"`` (§4 prose: empirical
            CDF of the standardised training targets). See the module docstring.
        n_quantiles: landmarks of the training-target distribution kept for ``"quantile"``.
        eval_batch_size: sequences per forward pass at validation/prediction; each becomes up to
            ``2 * (2 * max_shift + 1)`` model rows (engineering, no effect on results).
        mixed_precision: ``"off"`` (paper: fp32, as the team trained), ``"auto"`` (bf16 autocast
            on CUDA, fp32 elsewhere; the ``paper-fast`` profile), ``"bf16"``, ``"fp16"``.
        max_batches_per_epoch: cap on steps per epoch, 0 = full epochs (CPU profiles only).
        cpu_threads: torch intra-op threads while fitting/predicting on the CPU (restored
            afterwards); 0 = leave torch's setting. The LSTM runs 2 x 110 small sequential steps,
            each ending in a thread barrier: on a 2-core machine with any other busy process, two
            threads made a training step of the ``cpu`` profile ~25x slower than one (11.5 s vs
            0.42 s per batch of 128, measured); on an idle machine two are ~1.6x faster. The
            ``cpu`` profile uses 1 (robust on a shared machine).

    Runtime settings (``compile``, ``max_train_seconds``, ``progress``): see
    :class:`harness.torch_method.TorchConfig`.
    """

    seq_len: int = 110
    pad_5p: float = TEAM_PAD_PROBABILITIES[0]
    pad_3p: float = TEAM_PAD_PROBABILITIES[1]
    pad_both: float = TEAM_PAD_PROBABILITIES[2]
    target_center: float = 11.0
    conv1_channels: int = 256
    kernel_1: int = 9
    kernel_2: int = 15
    conv_dropout: float = 0.2
    lstm_hidden: int = 320
    conv2_channels: int = 160
    dense_dropout: float = 0.5
    dense: int = 64
    huber_delta: float = 1.0
    batch_size: int = 512
    lr: float = 0.0015
    weight_decay: float = 0.01
    max_epochs: int = 15
    drop_last: bool = True
    valid_fraction: float = 0.0
    keep: str = "last"
    max_shift: int = 2
    tta: bool = True
    valid_tta: bool = False
    predict_padding: str = "mix"
    postprocess: str = "normal_cdf"
    n_quantiles: int = 1000
    eval_batch_size: int = 256
    mixed_precision: str = "off"
    max_batches_per_epoch: int = 0
    cpu_threads: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("seq_len", "conv1_channels", "kernel_1", "kernel_2", "lstm_hidden", "conv2_channels", "dense",
                     "batch_size", "max_epochs", "n_quantiles"):
            if getattr(self, name) < 1:
                raise ValueError(f"bhi: {name} must be >= 1, got {getattr(self, name)}")
        if min(self.pad_5p, self.pad_3p, self.pad_both) < 0 or self.pad_5p + self.pad_3p + self.pad_both <= 0:
            raise ValueError("bhi: pad_5p, pad_3p, pad_both must be >= 0 and not all 0")
        if self.max_shift < 0:
            raise ValueError(f"bhi: max_shift must be >= 0, got {self.max_shift}")
        room = min(len(VECTOR_UPSTREAM), len(VECTOR_DOWNSTREAM))
        if self.seq_len + self.max_shift > room:
            raise ValueError(f"bhi: seq_len + max_shift = {self.seq_len + self.max_shift} exceeds the {room} nt of "
                             "vector flank available for padding")
        if not 0 <= self.valid_fraction < 1:
            raise ValueError(f"bhi: valid_fraction must be in [0, 1), got {self.valid_fraction}")
        if self.cpu_threads < 0:
            raise ValueError(f"bhi: cpu_threads must be >= 0, got {self.cpu_threads}")
        for name in ("conv_dropout", "dense_dropout"):
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(f"bhi: {name} must be in [0, 1), got {getattr(self, name)}")
        if self.keep not in _KEEP:
            raise ValueError(f"bhi: keep must be one of {_KEEP}, got {self.keep!r}")
        if self.predict_padding not in _PREDICT_PADDING:
            raise ValueError(f"bhi: predict_padding must be one of {_PREDICT_PADDING}, got {self.predict_padding!r}")
        if self.postprocess not in _POSTPROCESS:
            raise ValueError(f"bhi: postprocess must be one of {_POSTPROCESS}, got {self.postprocess!r}")
        if self.huber_delta <= 0:
            raise ValueError(f"bhi: huber_delta must be > 0, got {self.huber_delta}")

    @property
    def pad_probabilities(self) -> np.ndarray:
        """``(3,) float64`` probabilities of the placements :data:`PAD_PLACEMENTS` (paper: the team
        code's 0.2228, 0.333, 0.4442; the write-up's 4:3:2 would be 4/9, 3/9, 2/9)."""
        w = np.array([self.pad_5p, self.pad_3p, self.pad_both], dtype=np.float64)
        return w / w.sum()

    @property
    def shifts(self) -> tuple[int, ...]:
        """Test-time shifts in nt, ``(-max_shift, ..., +max_shift)`` (§3: -2..2), or ``(0,)`` without TTA."""
        return tuple(range(-self.max_shift, self.max_shift + 1)) if self.tta else (0,)


# ----------------------------------------------------------------------------------------------
# data: padding, shifting, orientation
# ----------------------------------------------------------------------------------------------
def left_pad_for(short, placement):
    """Nt of 5' padding for each row (§1 placements). Works on NumPy arrays and torch tensors.

    Args:
        short: ``(N,)`` integer nt missing to the model length (``max(seq_len - length, 0)``).
        placement: ``(N,)`` integer index into :data:`PAD_PLACEMENTS` (0 = 5' only, 1 = 3' only,
            2 = both ends: ``floor(short / 2)`` on the 5' side, the rest 3').

    Returns:
        ``(N,)`` 5' padding in nt (same type as ``short``); the 3' side gets ``short - result``.
    """
    if isinstance(short, torch.Tensor):
        zero = torch.zeros_like(short)
        return torch.where(placement == 0, short, torch.where(placement == 2, short // 2, zero))
    short = np.asarray(short)
    return np.where(placement == 0, short, np.where(placement == 2, short // 2, 0)).astype(short.dtype)


def draw_placements(n: int, probabilities, device: torch.device | str = "cpu") -> torch.Tensor:
    """Draw ``n`` padding placements (indices into :data:`PAD_PLACEMENTS`) from torch's global
    generator (so the trainer's seeding and checkpoints cover it).

    Args:
        n: number of draws.
        probabilities: the three placement probabilities (e.g. ``BHIConfig.pad_probabilities``).
        device: where to draw.

    Returns:
        ``(n,) int64`` tensor with values 0, 1, 2 drawn with the given probabilities.
    """
    p = np.asarray(probabilities, dtype=np.float64)
    c1, c2 = float(p[0] / p.sum()), float((p[0] + p[1]) / p.sum())
    u = torch.rand(n, device=device)
    return (u >= c1).long() + (u >= c2).long()


def _flank_matches(codes: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Matches of each row's first 17 nt with the 5' flank plus its last 13 nt with the 3' flank."""
    f5 = encoding.encode([encoding.FLANK_5P])[0][0]
    f3 = encoding.encode([encoding.FLANK_3P])[0][0]
    n, w = codes.shape
    lengths = np.minimum(np.asarray(lengths, dtype=np.int64), w)
    rows = np.arange(n)[:, None]
    cols5 = np.arange(len(f5))[None, :]
    hit5 = (codes[rows, np.minimum(cols5, w - 1)] == f5) & (cols5 < lengths[:, None])
    cols3 = lengths[:, None] - len(f3) + np.arange(len(f3))[None, :]
    hit3 = (codes[rows, np.clip(cols3, 0, w - 1)] == f3) & (cols3 >= 0)
    return hit5.sum(1) + hit3.sum(1)


def orientation_flip(codes: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Which rows to reverse-complement into the construct's orientation (see the module docstring).

    A row is flipped when its reverse complement matches the construct's 5' flank (first 17 nt) and
    3' flank (last 13 nt) at more positions than the row itself; on a tie, when its reverse
    complement is lexicographically smaller (A < C < G < T < N). The rule is antisymmetric: for any
    sequence ``s`` not equal to its reverse complement, exactly one of ``s`` and ``RC(s)`` is
    flipped, so both map to the same canonical sequence.

    Args:
        codes: ``(N, W) uint8`` codes, PAD beyond each length.
        lengths: ``(N,)`` lengths in nt.

    Returns:
        ``(N,) bool``: True where the row is taken to be reverse-complemented.
    """
    n = len(codes)
    if n == 0:
        return np.zeros(0, dtype=bool)
    if codes.shape[1] == 0:
        return np.zeros(n, dtype=bool)
    rc = encoding.reverse_complement(codes, lengths)
    fwd, rev = _flank_matches(codes, lengths), _flank_matches(rc, lengths)
    diff = codes != rc  # PAD columns agree (both keep PAD after the sequence)
    first = np.argmax(diff, axis=1)
    rows = np.arange(n)
    smaller_rc = diff.any(axis=1) & (rc[rows, first] < codes[rows, first])
    return (rev > fwd) | ((rev == fwd) & smaller_rc)


def canonical_orientation(codes: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Bring every row into the construct's orientation (:func:`orientation_flip`).

    Args:
        codes: ``(N, W) uint8``; lengths: ``(N,)``.

    Returns:
        ``(codes (N, W) uint8, flipped (N,) bool)``: flipped rows reverse-complemented within their
        length (PAD stays at the end).
    """
    flip = orientation_flip(codes, lengths)
    if not flip.any():
        return codes, flip
    out = codes.copy()
    out[flip] = encoding.reverse_complement(codes[flip], np.asarray(lengths)[flip])
    return out, flip


class BHIBatches:
    """The batch transform: codes -> stacked one-hot views for the conjoined model.

    Inputs are tuples of tensors: at training ``(codes (B, seq_len) uint8, lengths (B,) int)``; at
    validation/prediction ``(codes (B, W) uint8, lengths (B,) int, left_pad (B,) int)`` with
    ``W >= seq_len + max_shift`` when shifting.

    * ``training=True`` (§1, §3): one padding placement per row drawn from the placement mix (torch's
      global generator), the 110-nt window, and its reverse complement: ``(B, 2, 4, seq_len)``.
    * ``training=False`` with targets (validation): the given ``left_pad``, shift 0, forward + RC:
      ``(B, 2, 4, seq_len)`` (``(B, 2S, 4, seq_len)`` with ``valid_tta``).
    * ``training=False`` without targets (prediction, §3 TTA): for each shift ``k`` in
      ``config.shifts`` the window shifted ``k`` nt, then its reverse complement:
      ``(B, 2S, 4, seq_len)`` ordered ``[fwd(-2), rc(-2), fwd(-1), rc(-1), ...]``, S = 5.

    One-hot: A, C, G, T -> channels 0..3, N -> zeros (§1); the reverse complement of a one-hot
    ``(4, L)`` matrix is its flip along both axes (:func:`harness.data.sequence.with_reverse_complement`).
    Targets pass through unchanged (standardised by the caller).
    """

    def __init__(self, config: BHIConfig) -> None:
        self.seq_len = config.seq_len
        self.probabilities = config.pad_probabilities
        self.shifts = config.shifts
        self.valid_tta = config.valid_tta
        self._vectors: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = {}

    def vectors(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """The upstream/downstream vector codes as ``uint8`` tensors on ``device`` (cached)."""
        if device not in self._vectors:
            self._vectors[device] = (torch.from_numpy(_UPSTREAM_CODES.copy()).to(device),
                                     torch.from_numpy(_DOWNSTREAM_CODES.copy()).to(device))
        return self._vectors[device]

    def windows(self, codes: torch.Tensor, lengths: torch.Tensor, left_pad: torch.Tensor,
                shifts: tuple[int, ...]) -> torch.Tensor:
        """``(B, len(shifts), seq_len) uint8`` windows at ``start = shift - left_pad`` in the pTpA
        context (:func:`harness.data.sequence.shifted_windows`)."""
        up, down = self.vectors(codes.device)
        return shifted_windows(codes, lengths, left_pad, shifts, self.seq_len, up, down)

    def __call__(self, x, y: torch.Tensor | None, training: bool):
        codes, lengths = x[0], x[1]
        if training:
            short = (self.seq_len - lengths.long()).clamp(min=0)
            left_pad = left_pad_for(short, draw_placements(len(codes), self.probabilities, codes.device))
            shifts: tuple[int, ...] = (0,)
        else:
            left_pad = x[2].long()
            shifts = self.shifts if (y is None or self.valid_tta) else (0,)
        win = self.windows(codes, lengths, left_pad, shifts)  # (B, S, L)
        b, s, length = win.shape
        fwd = one_hot_codes(win.reshape(b * s, length)).view(b, s, 4, length)
        views = with_reverse_complement(fwd, 2)  # (B, S, 2, 4, L)
        return views.reshape(b, 2 * s, 4, length), y


#: Model output ``(B, V)`` (V views of each sequence) -> ``(B,)`` mean: the post-hoc conjoined
#: prediction (§3; V = 2: forward and RC; V = 10 with the shift TTA).
conjoined_mean = average_views


class ConjoinedHuber(nn.Module):
    """Huber loss of every view against the sequence's target, averaged (§3): for V = 2 exactly
    ``(huber(fwd, y) + huber(rc, y)) / 2``. ``output`` ``(B, V)``, ``target`` ``(B,)``."""

    def __init__(self, delta: float = 1.0) -> None:
        super().__init__()
        self.huber = nn.HuberLoss(delta=delta)

    def forward(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.huber(output, target[:, None].expand_as(output))


# ----------------------------------------------------------------------------------------------
# targets and post-processing
# ----------------------------------------------------------------------------------------------
def quantile_landmarks(values: np.ndarray, n: int = 1000) -> np.ndarray:
    """``(n,) float64`` quantiles of ``values`` at ``n`` evenly spaced levels 0..1 (the landmarks of
    the §4 quantile transform). Raises ValueError for an empty input."""
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        raise ValueError("quantile_landmarks: no values")
    return np.quantile(values, np.linspace(0.0, 1.0, n))


def quantile_squash(z: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """§4 post-processing: the quantile level (empirical CDF, in [0, 1]) of each standardised
    prediction among the standardised training targets, linearly interpolated between the
    landmarks (:func:`quantile_landmarks`); where landmarks tie (many targets share a bin value),
    the level is the mean of the lowest and highest level of the tie. ``z``: ``(N,)``; returns
    ``(N,) float64``, 0 below the smallest and 1 above the largest landmark."""
    z = np.asarray(z, dtype=np.float64)
    q = np.asarray(landmarks, dtype=np.float64)
    levels = np.linspace(0.0, 1.0, len(q))
    up = np.interp(z, q, levels)
    down = 1.0 - np.interp(-z, -q[::-1], levels)  # interpolates from the upper end of a tie
    return 0.5 * (up + down)


def normal_cdf_squash(z: np.ndarray, loc: float) -> np.ndarray:
    """The team's post-processing (``postprocess_txt.py``: ``scipy.stats.norm.cdf(z, loc=loc, scale=1)``).

    Args:
        z: ``(N,)`` standardised predictions (the TTA mean of the model's outputs).
        loc: the mean of the standardised training targets, ``(mean(y) - 11) / std(y)``
            (:func:`standardized_mean`; the team's constant 0.06201038511068657 on the full file).

    Returns:
        ``(N,) float64`` ``Phi(z - loc)`` in [0, 1], ``Phi`` the standard normal CDF.
    """
    return special.ndtr(np.asarray(z, dtype=np.float64) - float(loc))


def standardized_mean(y: np.ndarray, center: float, std: float) -> float:
    """Mean of the standardised targets ``(y - center) / std`` in float64: the ``loc`` of
    :func:`normal_cdf_squash` (team ``postprocess_txt.py``: "mean of standardized expression from
    train data"). ``y``: ``(N,)`` expression values, N >= 1."""
    return float((np.mean(np.asarray(y, dtype=np.float64)) - center) / std)


# ----------------------------------------------------------------------------------------------
# model
# ----------------------------------------------------------------------------------------------
class ConvPair(nn.Module):
    """Two parallel Conv1d ("same" padding) with different kernels, each -> ReLU -> dropout,
    concatenated along channels (§2, DeepFam-style). ``(B, C_in, L) -> (B, 2 * C_out, L)``."""

    def __init__(self, in_channels: int, out_channels: int, kernel_1: int, kernel_2: int, dropout: float) -> None:
        super().__init__()
        self.conv_1 = nn.Conv1d(in_channels, out_channels, kernel_1, padding="same")
        self.conv_2 = nn.Conv1d(in_channels, out_channels, kernel_2, padding="same")
        self.act = nn.ReLU()
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.drop(self.act(self.conv_1(x))), self.drop(self.act(self.conv_2(x)))], dim=1)


class BHINet(nn.Module):
    """DeepGXP (write-up §2, Figure 1; team ``net.py``).

    Input ``(B, 4, seq_len)`` float one-hot -> output ``(B,)`` float32 standardised expression; an
    input ``(B, V, 4, seq_len)`` (V views per sequence, e.g. forward and RC) gives ``(B, V)``. The
    last dense layer runs in fp32 even under autocast. Paper config: 6,875,137 parameters.
    """

    def __init__(self, config: BHIConfig) -> None:
        super().__init__()
        self.seq_len = config.seq_len
        self.conv1 = ConvPair(4, config.conv1_channels, config.kernel_1, config.kernel_2, config.conv_dropout)
        self.lstm = nn.LSTM(2 * config.conv1_channels, config.lstm_hidden, batch_first=True, bidirectional=True)
        self.conv2 = ConvPair(2 * config.lstm_hidden, config.conv2_channels, config.kernel_1, config.kernel_2,
                              config.conv_dropout)
        self.drop = nn.Dropout(config.dense_dropout)
        self.dense1 = nn.Linear(config.seq_len * 2 * config.conv2_channels, config.dense)
        self.dense2 = nn.Linear(config.dense, config.dense)
        self.out = nn.Linear(config.dense, 1)
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim == 4:
            b, v = x.shape[:2]
            return self.forward(x.reshape(b * v, *x.shape[2:])).view(b, v)
        h = self.conv1(x)                                   # (B, 512, L)
        h, _ = self.lstm(h.transpose(1, 2))                 # (B, L, 640), zero initial state
        h = self.conv2(h.transpose(1, 2))                   # (B, 320, L)
        h = self.drop(h.transpose(1, 2)).flatten(1)         # (B, L * 320), position-major
        h = self.act(self.dense1(h))
        h = self.act(self.dense2(h))
        with torch.autocast(device_type=h.device.type, enabled=False):
            return self.out(h.float())[:, 0]


# ----------------------------------------------------------------------------------------------
# the plug-in
# ----------------------------------------------------------------------------------------------
@register("bhi")
class BHI(TorchMethod):
    """BHI / DeepGXP (DREAM 2022). See the module docstring for the recipe.

    The network is :class:`BHINet` (paper: 6,875,137 trainable parameters, write-up §2), built by
    :meth:`build_model` with PyTorch's default init seeded by ``seed``. After :meth:`fit`:
    ``history`` (per-epoch records of :class:`harness.training.SeqTrainer`, losses on the
    standardised scale), ``best_epoch``, ``target_std`` (the std used to standardise),
    ``target_loc`` (mean of the standardised training targets, the ``loc`` of the team's
    post-processing), ``quantiles`` (landmarks of the standardised training targets, §4) and
    ``split_sizes``, all saved in ``state.json`` beside ``model.pt`` (:class:`harness.torch_method.TorchMethod`).
    After :meth:`predict`: ``n_flipped``, how many rows were reverse-complemented into the
    construct orientation.
    """

    Config = BHIConfig
    profiles = {"tiny": {"conv1_channels": 4, "lstm_hidden": 4, "conv2_channels": 2, "dense": 8, "batch_size": 64,
                         "max_epochs": 1, "eval_batch_size": 128, "progress": False}}
    paper_num_parameters = 6_875_137  # write-up §2
    Net = BHINet

    @property
    def prediction_units(self) -> str | None:
        """``normal_cdf``: the team's post-processed level; ``quantile``: a training-target quantile level."""
        return {"normal_cdf": "normal CDF level in [0, 1] (the team's post-processing)",
                "quantile": "quantile level in [0, 1] of the training targets"}.get(self.config.postprocess)

    def __init__(self, config: BHIConfig | None = None, *, seed: int = 0, device: str = "auto", work_dir=None) -> None:
        super().__init__(config, seed=seed, device=device, work_dir=work_dir)
        self.target_std: float | None = None
        self.target_loc: float | None = None
        self.quantiles: np.ndarray | None = None
        self.split_sizes: dict[str, int] = {}
        self.n_flipped = 0

    # ----- building blocks ---------------------------------------------------------------------
    def transform(self) -> BHIBatches:
        """The batch transform for this config (:class:`BHIBatches`)."""
        return BHIBatches(self.config)

    # Write-up §3: conjoined Huber loss (:class:`ConjoinedHuber`), ``AdamW(lr, weight_decay)``,
    # ``CosineAnnealingLR(T_max = steps per epoch x epochs)`` stepped after every batch, batches of
    # ``batch_size`` (the last incomplete one dropped unless the rows are fewer than a batch),
    # ``max_epochs`` epochs and no early stopping. ``keep="last"`` keeps the final epoch's weights
    # (Lightning's last checkpoint); ``keep="best"`` the epoch of the best validation Pearson r.
    # The base's ``make_trainer`` assembles these hooks.
    scheduler_interval = "batch"

    def loop_settings(self, n_train: int | None = None) -> dict:
        cfg = self.config
        return dict(batch_size=cfg.batch_size, max_epochs=cfg.max_epochs, patience=None, keep=cfg.keep,
                    monitor="valid_r", monitor_mode="max", drop_last=cfg.drop_last and (n_train is None or n_train >= cfg.batch_size),
                    max_batches_per_epoch=cfg.max_batches_per_epoch or None)

    def loss(self) -> nn.Module:
        return ConjoinedHuber(self.config.huber_delta)

    def make_optimizer(self, net: nn.Module) -> torch.optim.Optimizer:
        return torch.optim.AdamW(net.parameters(), lr=self.config.lr, weight_decay=self.config.weight_decay)

    def make_scheduler(self, optimizer: torch.optim.Optimizer, steps_per_epoch: int, max_epochs: int):
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(steps_per_epoch * max_epochs, 1),
                                                          eta_min=0.0)

    def to_prediction(self, output: torch.Tensor) -> torch.Tensor:
        return conjoined_mean(output)

    def cpu_threads(self) -> int:
        """``config.cpu_threads`` (the LSTM's thread barriers; see :class:`BHIConfig`)."""
        return self.config.cpu_threads

    def training_inputs(self, table: SeqTable) -> tuple[np.ndarray, np.ndarray]:
        """Training inputs (§1): ``(codes (N, seq_len) uint8, lengths (N,) int32)``, sequences cut
        after ``seq_len`` nt (trim from the right); padding is drawn per batch by :class:`BHIBatches`."""
        return fixed_width(table.codes, table.lengths, self.config.seq_len)

    def eval_inputs(self, codes: np.ndarray, lengths: np.ndarray,
                    left_pad: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Validation/prediction inputs: ``(codes (N, seq_len + max_shift) uint8, lengths (N,) int32,
        left_pad (N,) int32)`` for :class:`BHIBatches` with ``training=False``."""
        width = self.config.seq_len + max(self.config.shifts)
        c, length = fixed_width(codes, lengths, width)
        return c, length, np.asarray(left_pad, dtype=np.int32)

    def standardize(self, y: np.ndarray) -> np.ndarray:
        """§1: ``(y - target_center) / target_std`` as ``(N,) float32``. Raises RuntimeError before fit."""
        if self.target_std is None:
            raise RuntimeError("bhi: no target std (fit or load first)")
        return ((np.asarray(y, dtype=np.float64) - self.config.target_center) / self.target_std).astype(np.float32)

    def unstandardize(self, z: np.ndarray) -> np.ndarray:
        """Inverse of :meth:`standardize`: ``z * target_std + target_center`` as ``(N,) float64``."""
        if self.target_std is None:
            raise RuntimeError("bhi: no target std (fit or load first)")
        return np.asarray(z, dtype=np.float64) * self.target_std + self.config.target_center

    # ----- fit / predict -----------------------------------------------------------------------
    def prepare_fit(self, train: SeqTable, valid: SeqTable | None) -> FitData:
        """The data steps of :meth:`fit` (:meth:`harness.torch_method.TorchMethod.fit`).

        Without ``valid``, a seeded ``valid_fraction`` of ``train`` is held out (scikit-learn
        ``train_test_split``, :func:`harness.holdout.holdout_split`; none when 0, the paper
        setting, or when ``train`` has fewer than 20 rows). The standardisation (§1) and the
        post-processing ``loc`` (§4) come from the training rows; each validation row gets one
        seeded padding placement, fixed across epochs. The last incomplete batch of each epoch is
        dropped (``drop_last``) unless ``train`` is smaller than one batch.

        Raises:
            ValueError: fewer than 2 training rows, training targets with zero spread
                (standardisation impossible), or ``keep="best"`` without validation rows.
        """
        cfg = self.config
        if valid is None and cfg.valid_fraction > 0 and len(train) >= 20:
            tr_idx, va_idx = holdout_split(len(train), cfg.valid_fraction, self.seed, generator="sklearn",
                                           who="bhi.fit")
            train, valid = train.subset(tr_idx), train.subset(va_idx)
        if len(train) < 2:
            raise ValueError(f"bhi.fit: {len(train)} training rows; need >= 2")
        std = float(np.std(train.y.astype(np.float64)))
        if not math.isfinite(std) or std <= 0:
            raise ValueError(f"bhi.fit: training targets have std {std}; cannot standardise (§1)")
        self.target_std = std
        self.target_loc = standardized_mean(train.y, cfg.target_center, std)
        y_train = self.standardize(train.y)
        self.quantiles = quantile_landmarks(y_train, cfg.n_quantiles)
        self.split_sizes = {"train": len(train), "valid": 0 if valid is None else len(valid)}

        valid_x = valid_y = None
        if valid is not None and len(valid) > 0:
            rng = np.random.default_rng([self.seed, 1])
            short = np.maximum(cfg.seq_len - valid.lengths.astype(np.int64), 0)
            placement = rng.choice(3, size=len(valid), p=cfg.pad_probabilities)
            valid_x = self.eval_inputs(valid.codes, valid.lengths, left_pad_for(short, placement))
            valid_y = self.standardize(valid.y)
        if cfg.keep == "best" and valid_x is None:
            raise ValueError("bhi.fit: keep='best' selects an epoch on validation rows, but there are none "
                             "(pass valid, or set valid_fraction > 0)")
        return FitData(self.training_inputs(train), y_train, valid_x, valid_y)

    def after_fit(self, trainer: SeqTrainer, data: FitData) -> None:
        """§4 warns that some seeds do not converge: a warning when the first epoch's Pearson r
        (validation, else training) is below 0.05 in a fit of at least 5 epochs."""
        if self.history and self.config.max_epochs >= 5:
            key = "valid_r" if data.valid_x is not None else "train_r"  # paper: no validation, training r
            r = self.history[0].get(key, math.nan)
            if math.isfinite(r) and r < 0.05:
                warnings.warn(f"bhi: {key.replace('_', ' ')} after epoch 1 is {r:.3f}; the write-up (§4) notes that "
                              "some seeds do not converge -- check the training curve", stacklevel=3)

    def _predict_padded(self, codes: np.ndarray, lengths: np.ndarray, placement: int) -> np.ndarray:
        """Standardised conjoined TTA predictions ``(N,) float64`` with one padding placement."""
        short = np.maximum(self.config.seq_len - np.asarray(lengths, dtype=np.int64), 0)
        left_pad = left_pad_for(short, np.full(len(codes), placement))
        return self.predict_rows(self.eval_inputs(codes, lengths, left_pad))

    def predict_standardized(self, seqs: SeqTable) -> np.ndarray:
        """Standardised predictions ``(len(seqs),) float64`` (§3 TTA, before un-standardising).

        Rows are first brought into the construct orientation (:func:`canonical_orientation`), then
        padded/trimmed to ``seq_len`` with the vector flank and predicted as the mean of the model
        over ``2 * len(shifts)`` views; short rows with ``predict_padding="mix"`` average the three
        placements with the padding probabilities.

        Raises:
            RuntimeError: the method is neither fitted nor loaded.
        """
        self._fitted_model()
        cfg = self.config
        lengths = np.asarray(seqs.lengths, dtype=np.int64)
        codes, flipped = canonical_orientation(seqs.codes, lengths)
        self.n_flipped = int(flipped.sum())
        if len(codes) == 0:
            return np.zeros(0, dtype=np.float64)
        if cfg.predict_padding != "mix":
            return self._predict_padded(codes, lengths, PAD_PLACEMENTS.index(cfg.predict_padding))
        z = self._predict_padded(codes, lengths, 0)
        short = lengths < cfg.seq_len
        if short.any():
            p = cfg.pad_probabilities
            mixed = p[0] * z[short]
            for placement in (1, 2):
                mixed += p[placement] * self._predict_padded(codes[short], lengths[short], placement)
            z[short] = mixed
        return z

    def predict(self, seqs: SeqTable) -> np.ndarray:
        """Predictions ``(len(seqs),) float64`` of the standardised TTA output ``z``
        (:meth:`predict_standardized`): with ``postprocess="normal_cdf"`` (paper) the team's
        submitted values ``Phi(z - target_loc)`` in [0, 1]; with ``"none"`` expression units
        ``z * std + 11`` (§1); with ``"quantile"`` the empirical-CDF level in [0, 1]. Eval mode,
        batches of ``eval_batch_size`` sequences, the method's device, fp32.
        ``predict(s) == predict(RC(s))`` (module docstring).

        Raises:
            RuntimeError: the method is neither fitted nor loaded, or ``"normal_cdf"`` is asked of
                a model saved without ``target_loc``.
        """
        if self.config.postprocess == "normal_cdf" and self.model is not None and self.target_loc is None:
            raise RuntimeError("bhi: postprocess='normal_cdf' needs target_loc (the mean standardised training "
                               "target), which this model's state.json lacks; refit, or predict with "
                               "postprocess='none'")
        z = self.predict_standardized(seqs)
        if self.config.postprocess == "quantile":
            return quantile_squash(z, self.quantiles)
        if self.config.postprocess == "normal_cdf":
            return normal_cdf_squash(z, self.target_loc)
        return self.unstandardize(z)

    # ----- persistence -------------------------------------------------------------------------
    def _extra_state(self) -> dict:
        if self.target_std is None:
            raise RuntimeError("bhi: save called before fit")
        return {"target_center": self.config.target_center, "target_std": self.target_std,
                "target_loc": self.target_loc,
                "quantiles": None if self.quantiles is None else [float(v) for v in self.quantiles],
                "split_sizes": self.split_sizes}

    def _restore_extra_state(self, state: dict) -> None:
        if "target_std" not in state:
            raise FileNotFoundError(f"bhi: the saved directory has no {STATE_FILE} with the target std")
        self.target_std = float(state["target_std"])
        self.target_loc = None if state.get("target_loc") is None else float(state["target_loc"])
        self.quantiles = None if state.get("quantiles") is None else np.asarray(state["quantiles"], dtype=np.float64)
        self.split_sizes = state.get("split_sizes", {})
