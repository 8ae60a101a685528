"""Training of the harness's PyTorch plug-ins on PyTorch Lightning.

A plug-in's network is an ordinary ``nn.Module``; :class:`SeqModule` wraps it in one generic
:class:`lightning.pytorch.LightningModule` with declared hooks (loss, optimiser and scheduler
factories, batch transform, prediction head), and :class:`SeqTrainer` runs it with a
:class:`lightning.pytorch.Trainer` configured from a :class:`TrainConfig`:

* devices -- ``accelerator``/``devices`` from :func:`select_device` (``"auto"``: CUDA, then a TPU
  through ``torch_xla``, then Apple MPS, then the CPU; a requested device that is missing raises
  :class:`RuntimeError` before anything starts); ``TrainConfig.devices = N`` > 1 trains one model
  with DDP on N devices, each rank taking ``batch_size / N`` rows of every global batch, so the
  optimiser steps on the recipe's global batch (BatchNorm statistics synchronised across GPU ranks);
* precision -- Lightning's ``precision`` (``"32-true"``, ``"bf16-mixed"``, ``"16-mixed"`` with its
  loss scaler) from :func:`resolve_precision`;
* early stopping and keep-best / keep-last -- Lightning's ``EarlyStopping`` (counting validations,
  not epochs) and ``ModelCheckpoint`` (``best.ckpt`` on the monitored score, ``last.ckpt`` every
  epoch); the best epoch's weights are loaded back after the fit;
* epochs of a fixed number of batches (``limit_train_batches``), gradient clipping
  (``gradient_clip_val``), the time budget (``max_time``, summed over resumed runs by Lightning's
  ``Timer``), schedulers stepped per epoch or per optimiser step (``ReduceLROnPlateau`` gets the
  monitored validation value of validated epochs only), ``torch.compile``;
* progress -- ``RichProgressBar`` and a line per epoch; metrics -- each epoch's record goes to the
  harness's metric log (:class:`harness.tracking.MetricLog`: ``metrics.csv`` always, TensorBoard /
  MLflow on request), the same log and file format as the LightGBM and Keras plug-ins', which
  also keeps the rows of the epochs before a resumed fit's checkpoint.

What is ours, not Lightning's: the data path. The training inputs are ``uint8`` nucleotide codes
(or a tuple of arrays); each epoch draws a permutation from ``(seed, epoch)`` and feeds batches of
those codes -- resident on the GPU when they fit (``data_on_device``) -- and the one-hot encoding
and any augmentation happen per batch on the device in the plug-in's *transform*
(:mod:`harness.data.sequence`). Validation runs after epochs ``1, 1 + k, 1 + 2k, ...`` (``k =
validate_every``, the High Schoolers' schedule) and after the last one; epochs in between are not
validated, cannot become the best epoch and do not count towards ``patience``.

Reproducibility: with the same seed, data, model initialisation and thread count a CPU fit gives
bit-identical weights (torch's global generator is seeded with ``TrainConfig.seed`` at the start
of a fresh fit; a transform must draw its randomness from torch's, NumPy's or Python's global
generators, all three of which the checkpoints carry). CUDA kernels are not guaranteed
deterministic.

Checkpoints (``checkpoint_dir/last.ckpt`` and ``best.ckpt``) are Lightning's checkpoint dicts plus a
``"harness"`` entry (format, the run key, the epoch history, the generators' states). They are
written by :class:`VerifiedCheckpointIO` -- refused unless tensors and plain values only, written
atomically (temporary file + ``os.replace``), then a sidecar ``<name>.json`` with the size and
XXH3-128 digest (:mod:`harness.integrity`) -- and read back only after the sidecar check, with
``torch.load(weights_only=True)``, which unpickles no code. A missing sidecar, a truncated, edited
or planted file, a checkpoint of another run or one whose weights do not fit the model is not
resumed: a :class:`CheckpointWarning` names the file and the fit starts from scratch.
"""

from __future__ import annotations

import collections
import contextlib
import copy
import dataclasses
import datetime
import functools
import hashlib
import io
import logging
import math
import os
import random
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.fabric.plugins import CheckpointIO
from lightning.pytorch.callbacks import (
    Callback,
    EarlyStopping,
    ModelCheckpoint,
    RichProgressBar,
    Timer,
)

from .data.sequence import one_hot_codes
from .integrity import IntegrityError, bytes_digest
from .io import atomic_open, read_json, write_json
from .resources import peak_rss_bytes
from .scoring.scorer import pearson, spearman
from .tracking import MetricLog, open_metric_log

__all__ = [
    "BEST_CHECKPOINT_NAME",
    "CHECKPOINT_NAME",
    "COMPILE_MODES",
    "CheckpointWarning",
    "SeqModule",
    "SeqTrainer",
    "TrainConfig",
    "VerifiedCheckpointIO",
    "default_to_prediction",
    "default_transform",
    "one_hot_codes",
    "pearson_spearman",
    "predict_batches",
    "resolve_precision",
    "select_device",
]

#: inputs of a fit: one ``(N, ...)`` array (typically ``(N, L) uint8`` codes) or a tuple of them.
Inputs = np.ndarray | tuple[np.ndarray, ...]
#: ``transform(inputs, y, training) -> (model_inputs, loss_targets)``; ``y`` is None when predicting.
BatchTransform = Callable[[Any, "torch.Tensor | None", bool], tuple[Any, "torch.Tensor | None"]]

#: the checkpoint of the last epoch (resumed from), and of the best validated epoch.
CHECKPOINT_NAME = "last.ckpt"
BEST_CHECKPOINT_NAME = "best.ckpt"
#: sidecar of :data:`CHECKPOINT_NAME`: ``{"file", "format", "bytes", "xxh3_128"}``, written after it.
CHECKPOINT_DIGEST_NAME = CHECKPOINT_NAME + ".json"
#: ``torch.compile`` modes accepted by ``TrainConfig.compile`` (besides ``"off"``).
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
#: 3: Lightning checkpoint dicts with a ``"harness"`` entry, tensors and plain values only, digest sidecar.
_CHECKPOINT_FORMAT = 3

class CheckpointWarning(UserWarning):
    """A checkpoint was found but not resumed (it cannot be verified or read, or it belongs to
    another run); the message names the file and why, and the fit starts from scratch."""


# ----------------------------------------------------------------------------------------------
# devices and precision
# ----------------------------------------------------------------------------------------------
def _xla_device(require_tpu: bool) -> torch.device | None:
    """The XLA device when ``torch_xla`` is importable and works (a TPU when ``require_tpu``)."""
    try:
        import torch_xla.core.xla_model as xm  # type: ignore[import-not-found]
    except Exception:  # noqa: BLE001 - not installed or broken install: no XLA device
        return None
    try:
        dev = xm.xla_device()
        if require_tpu and xm.xla_device_hw(dev) != "TPU":
            return None
        return dev
    except Exception:  # noqa: BLE001 - no runtime / no hardware
        return None


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def select_device(name: str = "auto") -> torch.device:
    """Resolve a device name to a :class:`torch.device`.

    Args:
        name: ``"auto"`` (CUDA, then TPU through ``torch_xla`` when installed, then Apple MPS, then
            CPU), ``"cpu"``, ``"cuda"``/``"gpu"``, ``"cuda:<i>"``, ``"tpu"`` (a TPU through
            ``torch_xla``), ``"xla"`` (any XLA device) or ``"mps"``. Case-insensitive.

    Returns:
        The device.

    Raises:
        RuntimeError: the requested device is not available here (the message names it and says
            what is missing), e.g. ``"cuda"`` on a CPU-only build or ``"cuda:3"`` with 2 GPUs.
        ValueError: ``name`` is not a device name this function knows.
    """
    spec = (name or "auto").strip().lower()
    if spec == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        xla = _xla_device(require_tpu=True)
        if xla is not None:
            return xla
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    kind, _, index = spec.partition(":")
    if kind == "cpu":
        return torch.device("cpu")
    if kind in ("cuda", "gpu"):
        if not torch.cuda.is_available():
            built = torch.version.cuda or "no CUDA (CPU-only build)"
            raise RuntimeError(f"device {name!r} was requested but CUDA is not available "
                               f"(torch {torch.__version__} built with {built}; visible GPUs: 0)")
        if index:
            if not index.isdigit():
                raise ValueError(f"bad CUDA device index in {name!r}")
            count = torch.cuda.device_count()
            if int(index) >= count:
                raise RuntimeError(f"device {name!r} was requested but only {count} CUDA device(s) are visible")
            return torch.device(f"cuda:{int(index)}")
        return torch.device("cuda")
    if kind in ("tpu", "xla"):
        dev = _xla_device(require_tpu=kind == "tpu")
        if dev is None:
            raise RuntimeError(f"device {name!r} was requested but no {'TPU' if kind == 'tpu' else 'XLA'} device is "
                               "available (torch_xla not installed, or no XLA runtime/hardware found)")
        return dev
    if kind == "mps":
        if not _mps_available():
            raise RuntimeError(f"device {name!r} was requested but Apple MPS is not available on this machine/build")
        return torch.device("mps")
    raise ValueError(f"unknown device {name!r}; use auto, cpu, cuda, cuda:<i>, tpu, xla or mps")


def resolve_precision(mode: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for a mixed-precision mode on ``device`` (None: full fp32).

    Args:
        mode: ``"auto"`` (CUDA: bf16 where the GPU supports it, else fp16; every other device:
            off), ``"bf16"``, ``"fp16"`` or ``"off"``.
        device: the training device.

    Raises:
        ValueError: unknown mode.
    """
    mode = mode.lower()
    if mode == "off":
        return None
    if mode == "auto":
        if device.type != "cuda":
            return None
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if mode == "bf16":
        return torch.bfloat16
    if mode == "fp16":
        return torch.float16
    raise ValueError(f"mixed_precision must be 'auto', 'bf16', 'fp16' or 'off', got {mode!r}")


def _autocast(device: torch.device, dtype: torch.dtype | None):
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def _sync(device: torch.device) -> None:
    """Wait for queued device work (timing); on XLA also cut the lazy graph."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "xla":
        import torch_xla.core.xla_model as xm  # type: ignore[import-not-found]

        xm.mark_step()
        xm.wait_device_ops()
    elif device.type == "mps":
        torch.mps.synchronize()


def _mark_step(device: torch.device) -> None:
    if device.type == "xla":
        import torch_xla.core.xla_model as xm  # type: ignore[import-not-found]

        xm.mark_step()


# ----------------------------------------------------------------------------------------------
# encoding and batching helpers
# ----------------------------------------------------------------------------------------------
def default_transform(x: Any, y: torch.Tensor | None, training: bool) -> tuple[Any, torch.Tensor | None]:
    """Default batch transform: ``(B, L) uint8`` codes -> ``(B, 4, L) float32`` one-hot; ``y`` unchanged."""
    return one_hot_codes(x), y


def _as_tensors(x: Inputs) -> torch.Tensor | tuple[torch.Tensor, ...]:
    if isinstance(x, tuple):
        return tuple(torch.from_numpy(np.ascontiguousarray(a)) for a in x)
    return torch.from_numpy(np.ascontiguousarray(x))


def _length(x: Any) -> int:
    return len(x[0]) if isinstance(x, tuple) else len(x)


def _take(x: Any, idx: torch.Tensor) -> Any:
    if isinstance(x, tuple):
        return tuple(a[idx.to(a.device)] for a in x)
    return x[idx.to(x.device)]


def _move(x: Any, device: torch.device) -> Any:
    non_blocking = device.type == "cuda"
    if isinstance(x, tuple):
        return tuple(a.to(device, non_blocking=non_blocking) for a in x)
    return x.to(device, non_blocking=non_blocking)


def _nbytes(x: Any) -> int:
    if isinstance(x, tuple):
        return sum(a.numel() * a.element_size() for a in x)
    return x.numel() * x.element_size()


def default_to_prediction(output: torch.Tensor) -> torch.Tensor:
    """Default map from model output to per-sequence predictions: ``(B,)`` or ``(B, 1)`` -> ``(B,)``."""
    if output.ndim == 2 and output.shape[1] == 1:
        return output[:, 0]
    return output


def pearson_spearman(pred: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Pearson r and Spearman rho of an epoch's predictions (the Camformers write-up §3 monitors
    their sum): :func:`harness.scoring.scorer.pearson` / :func:`~harness.scoring.scorer.spearman`,
    the harness's one implementation, except that an undefined correlation is NaN here (the
    scorer's 0.0 would let a constant-output epoch become the best one).

    Args:
        pred, y: ``(N,)`` arrays.

    Returns:
        ``(r, rho)``; ``(nan, nan)`` for N < 2, different lengths, a constant input or non-finite
        predictions.
    """
    pred = np.asarray(pred, dtype=np.float64).ravel()
    y = np.asarray(y, dtype=np.float64).ravel()
    if len(pred) < 2 or len(pred) != len(y) or np.ptp(pred) == 0 or np.ptp(y) == 0 or not np.isfinite(pred).all():
        return math.nan, math.nan
    return pearson(pred, y), spearman(pred, y)


# ----------------------------------------------------------------------------------------------
# checkpoint contents and files
# ----------------------------------------------------------------------------------------------
_PLAIN_SCALARS = (bool, int, float, str, type(None))


def _plain(obj: Any, where: str = "checkpoint") -> Any:
    """``obj`` as tensors and plain Python values only, what ``torch.load(weights_only=True)`` reads.

    Accepts tensors, ``torch.dtype``/``torch.device``/``torch.Size``, ``bool``/``int``/``float``/
    ``str``/None, and dicts (plain or ``OrderedDict``), lists and tuples of them; NumPy scalars
    become Python scalars. Tensors are returned as they are (not copied).

    Raises:
        TypeError: anything else (e.g. a NumPy array, a function, an object); the message gives
            its place (``where``, then the keys/indices leading to it) so a plug-in that puts it in
            an optimiser/scheduler state or an epoch record finds it.
    """
    if isinstance(obj, torch.Tensor) or isinstance(obj, (torch.dtype, torch.device, torch.Size)):
        return obj
    if isinstance(obj, np.generic) and not isinstance(obj, np.object_):
        return obj.item()  # NumPy scalars subclass float/int but pickle as NumPy objects
    if type(obj) in _PLAIN_SCALARS:
        return obj
    if type(obj) in (dict, collections.OrderedDict):
        return type(obj)((_plain(k, f"{where} key"), _plain(v, f"{where}[{k!r}]")) for k, v in obj.items())
    if type(obj) in (list, tuple):
        return type(obj)(_plain(v, f"{where}[{i}]") for i, v in enumerate(obj))
    raise TypeError(f"{where}: {type(obj).__module__}.{type(obj).__qualname__} cannot go into a checkpoint "
                    "(only tensors and plain Python values load with torch.load(weights_only=True))")


def _rng_state() -> dict:
    """The global generators' states as tensors and ints: torch (CPU, every CUDA device), Python
    ``random`` (Mersenne Twister words as ``(625,) int64``) and NumPy's legacy global generator
    (``(624,) int64`` key words)."""
    version, words, gauss_next = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
        "python": {"version": int(version), "words": torch.tensor(words, dtype=torch.int64),
                   "gauss_next": gauss_next},
        "numpy": {"kind": str(kind), "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
    }


def _rng_setter(rng: Any) -> Callable[[], None]:
    """Check a :func:`_rng_state` dict read from a checkpoint; return the function that installs it
    (so that nothing is changed unless the whole state is valid).

    Raises:
        ValueError, TypeError, KeyError: the dict is not such a state.
    """
    torch_state = rng["torch"]
    if not (isinstance(torch_state, torch.Tensor) and torch_state.dtype == torch.uint8):
        raise ValueError("rng.torch is not a uint8 tensor")
    cuda = rng["cuda"]
    if cuda is not None and not (isinstance(cuda, list) and all(isinstance(t, torch.Tensor) for t in cuda)):
        raise ValueError("rng.cuda is not a list of tensors")
    py = rng["python"]
    gauss = py["gauss_next"]
    if gauss is not None and type(gauss) is not float:
        raise ValueError("rng.python.gauss_next is not a float")
    py_state = (int(py["version"]), tuple(int(w) for w in py["words"].tolist()), gauss)
    nps = rng["numpy"]
    np_state = (str(nps["kind"]), nps["keys"].numpy().astype(np.uint32), int(nps["pos"]), int(nps["has_gauss"]),
                float(nps["cached_gaussian"]))
    # dry runs on scratch generators: a malformed state raises here, before anything global changes
    random.Random().setstate(py_state)
    np.random.RandomState().set_state(np_state)
    torch.Generator().set_state(torch_state)

    def install() -> None:
        torch.set_rng_state(torch_state)
        if cuda is not None and torch.cuda.is_available():
            with contextlib.suppress(Exception):  # another GPU count than when saved: keep the current streams
                torch.cuda.set_rng_state_all(cuda)
        random.setstate(py_state)
        np.random.set_state(np_state)

    return install


# ----------------------------------------------------------------------------------------------
# configuration
# ----------------------------------------------------------------------------------------------
@dataclasses.dataclass
class RuntimeSettings:
    """How fast, where, in what precision and how visibly a fit runs, declared once: a plug-in's
    config carries them (:class:`harness.torch_method.TorchConfig`, where a profile sets them) and
    hands them to the fit's :class:`TrainConfig`.

    Attributes:
        eval_batch_size: sequences per forward pass at validation and prediction (a plug-in with
            test-time augmentation runs several model rows per sequence).
        mixed_precision: autocast mode (:func:`resolve_precision`): ``"auto"`` (bf16 on CUDA where
            supported, else fp16; fp32 elsewhere), ``"bf16"``, ``"fp16"`` or ``"off"`` (fp32).
            Part of the recipe where a config declares it (reduced precision changes the fit).
        compile: ``torch.compile`` the model for training and validation steps: ``"off"``, or a
            mode of :data:`COMPILE_MODES`. A speed setting: the weights and their state-dict keys
            are the uncompiled model's. The first batches pay the compilation (tens of seconds).
        max_train_seconds: wall-clock budget for training in s (Lightning ``max_time``, summed
            over resumed runs); when spent, the current epoch ends early, is validated, and the
            fit stops. 0: no budget.
        devices: accelerator devices of one fit (> 1: DDP through Lightning, each rank on
            ``batch_size / devices`` rows of every global batch, BatchNorm statistics
            synchronised on GPUs; the batch size must divide by it).
        progress: show a rich progress bar and per-epoch lines (False: silent, e.g. tests).

    Raises:
        ValueError: ``eval_batch_size`` or ``devices`` < 1, an unknown ``mixed_precision`` or
            ``compile`` mode, or a negative ``max_train_seconds``.
    """

    eval_batch_size: int = 1024
    mixed_precision: str = "off"
    compile: str = "off"
    max_train_seconds: float = 0.0
    devices: int = 1
    progress: bool = True

    def check_runtime(self) -> None:
        """Raise ValueError for a bad runtime setting (see the class)."""
        if self.eval_batch_size < 1:
            raise ValueError(f"eval_batch_size must be >= 1, got {self.eval_batch_size}")
        if self.mixed_precision not in ("auto", "bf16", "fp16", "off"):
            raise ValueError(f"mixed_precision must be 'auto', 'bf16', 'fp16' or 'off', got {self.mixed_precision!r}")
        if self.compile != "off" and self.compile not in COMPILE_MODES:
            raise ValueError(f"compile must be 'off' or one of {', '.join(COMPILE_MODES)}, got {self.compile!r}")
        if self.max_train_seconds < 0:
            raise ValueError(f"max_train_seconds must be >= 0, got {self.max_train_seconds}")
        if self.devices < 1:
            raise ValueError(f"devices must be >= 1, got {self.devices}")


@dataclasses.dataclass
class TrainConfig(RuntimeSettings):
    """Settings of a :class:`SeqTrainer` fit: the recipe's loop settings (below) and the
    :class:`RuntimeSettings` it runs with.

    Attributes:
        batch_size: training sequences per optimiser step (the global batch: with ``devices`` N
            each rank takes ``batch_size / N`` of it).
        max_epochs: upper bound on epochs (passes over the training set).
        patience: stop after this many validations without improvement of ``monitor`` (Lightning
            ``EarlyStopping``); None or 0 disables early stopping. Needs validation data.
        validate_every: validate after epochs 1, 1 + k, 1 + 2k, ... for ``k = validate_every``
            (and always after the last one); the epochs in between have NaN ``valid_*`` values,
            cannot become the best epoch, and do not count towards ``patience`` or step a
            plateau scheduler. 1: every epoch.
        monitor: the validation quantity that selects the best epoch: ``"r+rho"`` (valid Pearson r
            + Spearman rho, Camformers write-up §3), ``"valid_loss"``, ``"valid_r"`` or ``"valid_rho"``.
        monitor_mode: ``"max"`` or ``"min"``; None infers ``"min"`` for keys containing ``"loss"``.
        keep: ``"best"`` (the best validated epoch's weights, Lightning ``ModelCheckpoint`` on
            ``monitor``) or ``"last"`` (the final epoch's, as LegNet and BHI submitted).
        seed: seeds torch's generator at the start of a fresh fit and each epoch's shuffle.
        shuffle: shuffle training rows every epoch (permutation from ``(seed, epoch)``).
        drop_last: drop the last incomplete training batch. A final batch of one row is always
            dropped (BatchNorm cannot train on it).
        max_batches_per_epoch: cap on optimiser steps per epoch (Lightning ``limit_train_batches``:
            the first batches of each epoch's permutation, a random subset of the rows); None: full
            epochs.
        grad_clip_norm: clip the global gradient norm to this value; None: no clipping.
        data_on_device: copy the whole code array to the device once (None: on CUDA when it
            takes at most 4 GiB).
        channels_last: store the model's 4-D weights and 4-D model inputs in
            ``torch.channels_last`` memory format (NHWC; helps 2-D convolutions under CUDA
            autocast, e.g. Camformers' (10, 1) kernels). No effect on 3-D (Conv1d) models.
    """

    batch_size: int = 256
    max_epochs: int = 100
    patience: int | None = 10
    validate_every: int = 1
    monitor: str = "r+rho"
    monitor_mode: Literal["max", "min"] | None = None
    keep: Literal["best", "last"] = "best"
    seed: int = 0
    shuffle: bool = True
    drop_last: bool = False
    max_batches_per_epoch: int | None = None
    grad_clip_norm: float | None = None
    data_on_device: bool | None = None
    channels_last: bool = False

    def __post_init__(self) -> None:
        self.check_runtime()
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.max_epochs < 1:
            raise ValueError(f"max_epochs must be >= 1, got {self.max_epochs}")
        if self.validate_every < 1:
            raise ValueError(f"validate_every must be >= 1, got {self.validate_every}")
        if self.monitor_mode not in (None, "max", "min"):
            raise ValueError(f"monitor_mode must be 'max', 'min' or None, got {self.monitor_mode!r}")
        if self.monitor not in _MONITORS:
            raise ValueError(f"monitor must be one of {', '.join(_MONITORS)}, got {self.monitor!r}")
        if self.keep not in ("best", "last"):
            raise ValueError(f"keep must be 'best' or 'last', got {self.keep!r}")
        if self.batch_size % self.devices:
            raise ValueError(f"devices ({self.devices}) must divide batch_size {self.batch_size}")

    @property
    def mode(self) -> str:
        """``"max"`` or ``"min"``: the direction in which ``monitor`` improves."""
        if self.monitor_mode is not None:
            return self.monitor_mode
        return "min" if "loss" in self.monitor else "max"


_MONITORS = ("r+rho", "valid_loss", "valid_r", "valid_rho")


# ----------------------------------------------------------------------------------------------
# checkpoint files
# ----------------------------------------------------------------------------------------------
class VerifiedCheckpointIO(CheckpointIO):
    """Lightning's checkpoint I/O with the harness's trust rules.

    ``save_checkpoint`` refuses anything but tensors and plain values (:func:`_plain`, TypeError
    naming the place), writes atomically, then the sidecar ``<name>.json`` (``{"file", "format",
    "bytes", "xxh3_128"}``). ``load_checkpoint`` reads only a checkpoint that matches its sidecar
    (:func:`read_checkpoint`) and loads it with ``torch.load(weights_only=True)``.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any = None) -> None:
        path = Path(path)
        blob = _plain(checkpoint)
        buffer = io.BytesIO()
        torch.save(blob, buffer)
        data = buffer.getbuffer()
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_open(path, "wb") as fh:
            fh.write(data)
        write_json(_sidecar(path), {"file": path.name, "format": _CHECKPOINT_FORMAT, "bytes": len(data),
                                    "xxh3_128": bytes_digest(data)})

    def load_checkpoint(self, path, map_location: Any = None, weights_only: bool | None = None) -> dict[str, Any]:
        return read_checkpoint(Path(path))

    def remove_checkpoint(self, path) -> None:
        path = Path(path)
        for file in (path, _sidecar(path)):
            with contextlib.suppress(FileNotFoundError):
                file.unlink()


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def read_checkpoint(path: Path) -> dict:
    """Read a checkpoint written by :class:`VerifiedCheckpointIO`: check it against its sidecar,
    then ``torch.load(weights_only=True)`` the very bytes that were checked.

    Raises:
        IntegrityError: the sidecar is missing, unreadable or not this format's; the checkpoint,
            its directory or the sidecar is a link, or a file is not a regular file; size or
            digest differ (truncated, edited, planted); or the verified bytes do not load as
            tensors and plain values or are not a dict. The message names the file.
    """
    sidecar = _sidecar(path)
    if path.parent.is_symlink():
        raise IntegrityError(f"{path.parent}: checkpoint directory is a symbolic link (links are not followed)")
    if path.is_symlink() or not path.is_file():
        raise IntegrityError(f"{path}: checkpoint is a symbolic link or not a regular file (links are not followed)")
    if sidecar.is_symlink():
        raise IntegrityError(f"{sidecar}: digest record is a symbolic link (links are not followed)")
    if not sidecar.is_file():
        raise IntegrityError(f"{path}: cannot be verified, its digest record {sidecar.name} is missing")
    try:
        meta = read_json(sidecar)
    except (OSError, ValueError) as exc:
        raise IntegrityError(f"{sidecar}: unreadable digest record ({exc})") from None
    if not (isinstance(meta, dict) and meta.get("file") == path.name and meta.get("format") == _CHECKPOINT_FORMAT
            and type(meta.get("bytes")) is int and isinstance(meta.get("xxh3_128"), str)):
        raise IntegrityError(f"{sidecar}: not a format-{_CHECKPOINT_FORMAT} digest record of {path.name}")
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    with os.fdopen(fd, "rb") as fh:
        data = fh.read(meta["bytes"] + 1)
    if len(data) != meta["bytes"]:
        raise IntegrityError(f"{path}: {len(data):,} bytes, {meta['bytes']:,} recorded (truncated or changed)")
    if bytes_digest(data) != meta["xxh3_128"]:
        raise IntegrityError(f"{path}: content differs from what the harness wrote (digest mismatch)")
    try:
        blob = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - refused globals, corrupt archive: never executed
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise IntegrityError(f"{path}: does not load as tensors and plain values ({first})") from None
    if not isinstance(blob, dict):
        raise IntegrityError(f"{path}: holds a {type(blob).__name__}, not a checkpoint dict")
    return blob


#: keys and types of the ``"harness"`` entry of a checkpoint
_HARNESS_STATE_TYPES = {"format": (int,), "key": (dict,), "history": (list,), "rng": (dict,)}


def _check_harness_state(state: Any) -> dict:
    """The ``"harness"`` entry of a checkpoint, checked against :data:`_HARNESS_STATE_TYPES`.

    Raises:
        ValueError: not a dict, a key missing or of another type, or a history entry not a dict.
    """
    if not isinstance(state, dict):
        raise ValueError("the harness state is not a dict")
    for key, types in _HARNESS_STATE_TYPES.items():
        if key not in state or not isinstance(state[key], types) or isinstance(state[key], bool):
            raise ValueError(f"harness state {key!r} is missing or of the wrong type")
    if not all(isinstance(rec, dict) for rec in state["history"]):
        raise ValueError("a history entry is not a dict")
    return state


# ----------------------------------------------------------------------------------------------
# data: batches of codes, gathered per step (on the device when resident there)
# ----------------------------------------------------------------------------------------------
def batch_starts(n: int, cfg: TrainConfig) -> list[int]:
    """First row (in the epoch's permutation) of each training batch of ``n`` rows: every
    ``cfg.batch_size``-th, without the last incomplete batch when ``cfg.drop_last`` and always
    without a final batch of one row (BatchNorm cannot train on it)."""
    bs = cfg.batch_size
    starts = list(range(0, n, bs))
    if cfg.drop_last and n % bs:
        starts = starts[:-1]
    if starts and n - starts[-1] == 1 and n > 1:
        starts = starts[:-1]
    return starts


def steps_per_epoch(n: int, cfg: TrainConfig) -> int:
    """Optimiser steps of an epoch over ``n`` rows (:func:`batch_starts`, at most
    ``cfg.max_batches_per_epoch``; at least 1): what a scheduler factory is given."""
    steps = len(batch_starts(n, cfg))
    if cfg.max_batches_per_epoch:
        steps = min(steps, cfg.max_batches_per_epoch)
    return max(steps, 1)


class _TrainBatches:
    """One epoch of training batches: a permutation from ``(seed, epoch)``, ``batch_size`` rows a
    step (this rank's ``1 / world`` of each), the last incomplete batch dropped with ``drop_last``
    and a final single-row batch always."""

    def __init__(self, module: SeqModule) -> None:
        self.module = module

    def starts(self) -> list[int]:
        return batch_starts(_length(self.module.train_x), self.module.config)

    def __len__(self) -> int:
        return len(self.starts())

    def __iter__(self):
        module = self.module
        cfg, x, y = module.config, module.train_x, module.train_y
        n = _length(x)
        epoch = module.current_epoch + 1
        order = np.random.default_rng([cfg.seed, epoch]).permutation(n) if cfg.shuffle else np.arange(n)
        order_t = torch.from_numpy(order).to(y.device)
        world, rank = module.trainer.world_size, module.trainer.global_rank
        for start in self.starts():
            idx = order_t[start:start + cfg.batch_size]
            if world > 1:
                idx = idx.tensor_split(world)[rank]
            yield _take(x, idx), _take(y, idx)


class _ValidBatches:
    """The validation rows in order, in ``eval_batch_size`` batches -- on validation epochs only
    (:meth:`SeqModule.validates_now`); other epochs yield nothing."""

    def __init__(self, module: SeqModule) -> None:
        self.module = module

    def __iter__(self):
        module = self.module
        if not module.validates_now():
            return
        x, y = module.valid_x, module.valid_y
        n, bs = _length(x), module.eval_batch_size
        for start in range(0, n, bs):
            idx = torch.arange(start, min(start + bs, n))
            yield _take(x, idx), _take(y, idx)


# ----------------------------------------------------------------------------------------------
# the LightningModule
# ----------------------------------------------------------------------------------------------
class SeqModule(pl.LightningModule):
    """The generic LightningModule around a plug-in's network.

    Args:
        recipe: the :class:`SeqTrainer` whose hooks it runs (``model``, ``loss_fn``,
            ``optimizer_factory``, ``scheduler_factory`` / ``scheduler_interval`` /
            ``scheduler_monitor``, ``transform``, ``to_prediction``; see there).
        config: the :class:`TrainConfig` of this fit.
        scheduler: False: no learning-rate scheduler (the step timing of :meth:`SeqTrainer.time_steps`).
        data: ``(train_x, train_y, valid_x, valid_y)`` as tensors (valid ones None without validation).
        key: the run key the checkpoints carry (:meth:`SeqTrainer._run_key`).
        callbacks: ``callback(record)`` after every epoch.
        on_epoch: ``on_epoch(history)`` after every epoch, before ``callbacks`` (the trainer's
            progress line and metric log).

    Each epoch's record (``history``): ``epoch``, ``train_loss`` (row-weighted mean batch loss,
    training mode), ``train_r``/``train_rho`` (on the training-mode batch predictions),
    ``valid_loss``, ``valid_r``, ``valid_rho`` (NaN on epochs without validation), ``score`` (the
    monitored value), ``improved``, ``best_epoch``, ``lr`` (first parameter group's rate at the
    epoch start), ``seconds`` (epoch wall time incl. validation), ``train_seconds``,
    ``seqs_per_s``, ``n_batches`` and ``n_seqs``.
    """

    def __init__(self, recipe: "SeqTrainer", config: TrainConfig, *, data: tuple, key: dict, scheduler: bool = True,
                 callbacks: Sequence[Callable[[dict], None]] = (), on_epoch: Callable[[dict], None] | None = None):
        super().__init__()
        self.model = model = recipe.model
        self.config = config
        self.loss_fn, self.optimizer_factory = recipe.loss_fn, recipe.optimizer_factory
        self.scheduler_factory = recipe.scheduler_factory if scheduler else None
        self.scheduler_interval, self.scheduler_monitor = recipe.scheduler_interval, recipe.scheduler_monitor
        self.transform, self.to_prediction = recipe.transform, recipe.to_prediction
        self.train_x, self.train_y, self.valid_x, self.valid_y = data
        self.has_valid = self.valid_x is not None
        self.key = key
        self.user_callbacks = list(callbacks)
        self.on_epoch = on_epoch
        self.eval_batch_size = config.eval_batch_size
        self.history: list[dict] = []
        self.best_score: float | None = None
        self.best_epoch: int | None = None
        # what the steps call: the model, or its torch.compile wrapper (not a registered submodule,
        # so the state-dict keys stay the model's)
        object.__setattr__(self, "_net", model if config.compile == "off" else torch.compile(
            model, mode=None if config.compile == "default" else config.compile))

    # ----- data -------------------------------------------------------------------------------
    def setup(self, stage: str) -> None:
        cfg = self.config
        on_device = cfg.data_on_device
        if on_device is None:
            on_device = self.device.type == "cuda" and _nbytes(self.train_x) + _nbytes(self.train_y) <= 4 << 30
        if on_device:
            self.train_x, self.train_y = _move(self.train_x, self.device), _move(self.train_y, self.device)
        if cfg.channels_last:
            self.model.to(memory_format=torch.channels_last)

    def train_dataloader(self):
        return _TrainBatches(self)

    def val_dataloader(self):
        return _ValidBatches(self) if self.has_valid else []

    def validates_now(self) -> bool:
        """Whether this epoch is validated: epochs ``1, 1 + k, ...``, the last, and one the time
        budget ends."""
        epoch = self.current_epoch + 1
        return (self.has_valid and ((epoch - 1) % self.config.validate_every == 0
                                    or epoch >= self.config.max_epochs or self.trainer.should_stop))

    # ----- steps ------------------------------------------------------------------------------
    def _forward(self, batch, training: bool):
        xb, yb = batch
        inputs, targets = self.transform(xb, yb, training)
        output = self._net(_channels_last(inputs) if self.config.channels_last else inputs)
        loss = self.loss_fn(output.float() if isinstance(output, torch.Tensor) else output, targets)
        return output, loss, yb

    def on_train_epoch_start(self) -> None:
        self._t0 = time.perf_counter()
        self._lr = float(self.trainer.optimizers[0].param_groups[0]["lr"])
        # float64 accumulation where the device has it (MPS has none, TPUs emulate it)
        acc = torch.float32 if self.device.type in ("mps", "xla") else torch.float64
        self._loss_sum = torch.zeros((), device=self.device, dtype=acc)
        self._seen, self._batches, self._preds, self._ys = 0, 0, [], []
        self._valid = (math.nan, math.nan, math.nan)
        self._validated = False

    def training_step(self, batch, batch_idx):
        output, loss, yb = self._forward(batch, True)
        pred = self.to_prediction(output).detach().float()
        self._loss_sum += loss.detach().to(self._loss_sum.dtype) * len(yb)
        self._seen += len(yb)
        self._batches += 1
        if pred.shape == yb.shape:
            self._preds.append(pred)
            self._ys.append(yb)
        return loss

    def on_validation_epoch_start(self) -> None:
        self._vloss, self._vpreds, self._vn = 0.0, [], 0

    def validation_step(self, batch, batch_idx):
        output, loss, yb = self._forward(batch, False)
        self._vloss += float(loss.item()) * len(yb)
        self._vn += len(yb)
        self._vpreds.append(self.to_prediction(output).float().cpu())

    def on_validation_epoch_end(self) -> None:
        if self.trainer.sanity_checking or not self._vn:
            return
        pred = torch.cat(self._vpreds).numpy()
        r, rho = pearson_spearman(pred, self.valid_y.cpu().numpy())
        self._valid, self._validated = (self._vloss / self._vn, r, rho), True

    def on_train_epoch_end(self) -> None:
        """The epoch's record; logs it (the monitored ``score`` NaN on unvalidated epochs, which
        ``ModelCheckpoint`` never keeps) before the checkpoint and early-stopping callbacks run."""
        train_seconds = getattr(self, "_train_seconds", 0.0) if self._batches else 0.0
        seen = self._seen
        if self._preds and sum(len(p) for p in self._preds) == seen:
            r, rho = pearson_spearman(torch.cat(self._preds).cpu().numpy(), torch.cat(self._ys).cpu().numpy())
        else:
            r, rho = math.nan, math.nan
        vloss, vr, vrho = self._valid
        record = {"epoch": self.current_epoch + 1, "train_loss": float(self._loss_sum.item() / max(seen, 1)),
                  "train_r": r, "train_rho": rho, "valid_loss": vloss, "valid_r": vr, "valid_rho": vrho}
        score = self._score(record)
        counted = self._validated or not self.has_valid
        last = self.config.keep == "last" or not self.has_valid  # every epoch replaces the kept weights
        improved = last or (counted and _improved(score, self.best_score, self.config.mode))
        if improved:
            self.best_score, self.best_epoch = score, record["epoch"]
        record.update(score=score, improved=bool(improved), best_epoch=self.best_epoch, lr=self._lr,
                      seconds=time.perf_counter() - self._t0, train_seconds=train_seconds,
                      seqs_per_s=seen / train_seconds if train_seconds > 0 else math.nan,
                      n_batches=self._batches, n_seqs=seen)
        self.history.append(record)
        self.log("monitor", score if counted else math.nan, on_step=False, on_epoch=True, logger=False)
        if self.on_epoch is not None:
            self.on_epoch(self.history)
        for callback in self.user_callbacks:
            callback(record)

    def on_train_batch_start(self, batch, batch_idx) -> None:
        if batch_idx == 0:
            self._t_train = time.perf_counter()

    def on_train_batch_end(self, outputs, batch, batch_idx) -> None:
        self._train_seconds = time.perf_counter() - self._t_train  # the last batch's end is the epoch's

    def _score(self, record: dict) -> float:
        if self.config.monitor == "r+rho":
            return record["valid_r"] + record["valid_rho"]
        return float(record[self.config.monitor])

    # ----- optimisation -----------------------------------------------------------------------
    def configure_optimizers(self):
        optimizer = self.optimizer_factory(self.model)
        if self.scheduler_factory is None:
            return optimizer
        steps = steps_per_epoch(_length(self.train_x), self.config)
        scheduler = self.scheduler_factory(optimizer, steps, self.config.max_epochs)
        if scheduler is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": {
            "scheduler": scheduler, "interval": "step" if self.scheduler_interval == "batch" else "epoch",
            "frequency": 1, "monitor": "monitor", "strict": True}}

    def lr_scheduler_step(self, scheduler, metric) -> None:
        """A plateau scheduler steps on validated epochs with the recipe's monitored value (the
        training loss without validation data); every other scheduler steps as Lightning says."""
        if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            record = self.history[-1]
            if self.has_valid and not math.isfinite(record["valid_loss"]):
                return
            scheduler.step(record[self.scheduler_monitor if self.has_valid else "train_loss"])
        else:
            scheduler.step()

    # ----- checkpoints ------------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["harness"] = {"format": _CHECKPOINT_FORMAT, "key": self.key, "history": self.history,
                                 "best_score": self.best_score, "best_epoch": self.best_epoch,
                                 "rng": _rng_state()}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        state = checkpoint["harness"]
        self.history = [dict(rec) for rec in state["history"]]
        self.best_score, self.best_epoch = state["best_score"], state["best_epoch"]
        _rng_setter(state["rng"])()


def _channels_last(inputs: Any) -> Any:
    """Model inputs with 4-D tensors in ``torch.channels_last`` memory format (others unchanged)."""
    if isinstance(inputs, tuple):
        return tuple(_channels_last(a) for a in inputs)
    if isinstance(inputs, torch.Tensor) and inputs.ndim == 4:
        return inputs.contiguous(memory_format=torch.channels_last)
    return inputs


def epoch_line(rec: dict) -> str:
    """The line printed after an epoch: losses, r, rho (a dash where there is no value, never
    "nan"), learning rate, sequences/s, seconds and ``*`` when it improved."""

    def fmt(key: str) -> str:
        value = rec.get(key)
        return "—" if value is None or math.isnan(value) else f"{value:.4f}"

    return (f"epoch {rec['epoch']:3d}  T loss {fmt('train_loss')}  V loss {fmt('valid_loss')}  "
            f"T r {fmt('train_r')}  V r {fmt('valid_r')}  T rho {fmt('train_rho')}  "
            f"V rho {fmt('valid_rho')}  lr {rec['lr']:.2e}  {rec['seqs_per_s']:,.0f} seq/s  "
            f"{rec['seconds']:.1f}s {'*' if rec['improved'] else ' '}")


def _improved(score: float, best: float | None, mode: str) -> bool:
    if best is None:
        return True
    if math.isnan(score):
        return False
    if math.isnan(best):
        return True
    return score > best if mode == "max" else score < best


class _ValidatedEarlyStopping(EarlyStopping):
    """``EarlyStopping`` that looks only at validated epochs: ``patience`` counts validations."""

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if pl_module._validated:
            super().on_train_epoch_end(trainer, pl_module)


def _report_epoch(bar: RichProgressBar | None, log: MetricLog, history: list[dict]) -> None:
    """The last epoch of ``history`` to the metric log (``epoch`` 0-based, ``step`` the optimiser
    steps of the fit so far) and, with a progress bar, its line (:func:`epoch_line`)."""
    rec = history[-1]
    metrics = {k: float(v) for k, v in rec.items() if k not in ("epoch", "best_epoch") and isinstance(v, (int, float))}
    log.log(sum(r["n_batches"] for r in history), metrics, epoch=rec["epoch"] - 1)
    if bar is not None:
        console = getattr(bar, "_console", None)
        if console is not None:
            console.print(epoch_line(rec), soft_wrap=True)
        else:
            print(epoch_line(rec))


class _StepTimer(Callback):
    """Times training steps (forward, loss, backward, step) after ``warmup`` of them."""

    def __init__(self, warmup: int) -> None:
        self.warmup, self.times, self.reset = warmup, [], False

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        _sync(pl_module.device)
        if batch_idx == self.warmup and pl_module.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(pl_module.device)
        self._t0 = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        _sync(pl_module.device)
        if batch_idx >= self.warmup:
            self.times.append(time.perf_counter() - self._t0)


# ----------------------------------------------------------------------------------------------
# the trainer
# ----------------------------------------------------------------------------------------------
class SeqTrainer:
    """A plug-in's recipe, trained with a Lightning ``Trainer`` (the harness's one training path).

    Args:
        model: the network; its output for a batch goes to ``loss_fn`` and, through
            ``to_prediction``, to the correlation metrics.
        loss_fn: ``loss_fn(output, targets) -> scalar tensor`` (mean over the batch), e.g.
            ``torch.nn.L1Loss()``.
        optimizer_factory: ``optimizer_factory(model) -> torch.optim.Optimizer``.
        config: a :class:`TrainConfig` (default ``TrainConfig()``).
        scheduler_factory: optional ``scheduler_factory(optimizer, steps_per_epoch, max_epochs) ->
            scheduler``; ``steps_per_epoch`` is the number of optimiser steps of a full epoch
            (after ``max_batches_per_epoch``), for OneCycle/cosine schedules.
        scheduler_interval: ``"epoch"`` (after each epoch; ``ReduceLROnPlateau`` gets
            ``record[scheduler_monitor]`` of validated epochs) or ``"batch"`` (every optimiser step).
        scheduler_monitor: epoch-record key fed to a plateau scheduler (default ``"valid_loss"``;
            ``"train_loss"`` without validation data).
        transform: ``transform(x, y, training) -> (model_inputs, loss_targets)`` applied to every
            batch on the device. ``x``: the batch of the input array(s) as tensors (``(B, L)
            uint8`` codes for a plain array), ``y``: ``(B,) float32`` or None (prediction).
            Default: :func:`default_transform` (one-hot ``(B, 4, L)``).
        to_prediction: maps a model output to ``(B,)`` per-sequence predictions; default
            :func:`default_to_prediction`.
        device: a name for :func:`select_device` or a :class:`torch.device`.
        checkpoint_dir: directory for ``last.ckpt`` / ``best.ckpt`` and their digest sidecars
            (:class:`VerifiedCheckpointIO`); a fit that finds there a checkpoint of the same run
            that verifies resumes after its last epoch (any other: :class:`CheckpointWarning`,
            fresh start). None: a temporary directory, removed after the fit.
        log_dir: where the metric log writes (``log_dir/metrics.csv`` ...; None: no log).
        loggers: logger names for :class:`harness.tracking.MetricLog` (``"csv"`` always).
        run_name: the fit's name in the log (an MLflow run name).
        callbacks: ``callback(record)`` called after every epoch.

    After :meth:`fit`: ``best_epoch``, ``best_score``, ``stop_reason`` (``"early_stopping"``,
    ``"max_epochs"`` or ``"time_limit"``) and ``history`` are set, ``model`` holds the best (or
    last) epoch's weights.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        loss_fn: Callable[[Any, Any], torch.Tensor],
        optimizer_factory: Callable[[torch.nn.Module], torch.optim.Optimizer],
        *,
        config: TrainConfig | None = None,
        scheduler_factory: Callable[[torch.optim.Optimizer, int, int], Any] | None = None,
        scheduler_interval: Literal["epoch", "batch"] = "epoch",
        scheduler_monitor: str = "valid_loss",
        transform: BatchTransform | None = None,
        to_prediction: Callable[[Any], torch.Tensor] | None = None,
        device: str | torch.device = "auto",
        checkpoint_dir: str | Path | None = None,
        log_dir: str | Path | None = None,
        loggers: Sequence[str] = ("csv",),
        run_name: str = "fit",
        callbacks: Sequence[Callable[[dict], None]] = (),
    ) -> None:
        if scheduler_interval not in ("epoch", "batch"):
            raise ValueError(f"scheduler_interval must be 'epoch' or 'batch', got {scheduler_interval!r}")
        self.config = config if config is not None else TrainConfig()
        self.device = device if isinstance(device, torch.device) else select_device(device)
        self.model = model
        self.loss_fn = loss_fn
        self.optimizer_factory = optimizer_factory
        self.scheduler_factory = scheduler_factory
        self.scheduler_interval = scheduler_interval
        self.scheduler_monitor = scheduler_monitor
        self.transform = transform if transform is not None else default_transform
        self.to_prediction = to_prediction if to_prediction is not None else default_to_prediction
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
        self.log_dir = Path(log_dir) if log_dir is not None else None
        self.loggers = tuple(loggers)
        self.run_name = run_name
        self.callbacks = list(callbacks)
        self.history: list[dict] = []
        self.best_epoch: int | None = None
        self.best_score: float | None = None
        self.stop_reason: str | None = None

    @property
    def amp_dtype(self) -> torch.dtype | None:
        """The autocast dtype of this trainer's precision on its device (None: fp32)."""
        return resolve_precision(self.config.mixed_precision, self.device)

    # ----- public ------------------------------------------------------------------------------
    def fit(self, train_x: Inputs, train_y: np.ndarray, valid_x: Inputs | None = None,
            valid_y: np.ndarray | None = None) -> list[dict]:
        """Train, validating on the schedule of ``validate_every``; keep the best epoch's weights.

        Args:
            train_x: ``(N, L) uint8`` codes (or a tuple of ``(N, ...)`` arrays) of the training rows.
            train_y: ``(N,)`` targets (cast to float32).
            valid_x, valid_y: the validation rows, same layout; without them there is no early
                stopping, a plateau scheduler watches ``train_loss`` and the last epoch's weights
                are kept.

        Returns:
            The history: one record per epoch (resumed epochs included), keys as in
            :class:`SeqModule`.

        Raises:
            ValueError: an empty training set, or inputs and targets of different lengths.
            TypeError: a checkpoint would hold something other than tensors and plain values
                (e.g. an epoch record a callback extended with an array); the message names it.

        Without validation data and with ``patience`` set, a warning says early stopping is off.
        A checkpoint that is not resumed gives a :class:`CheckpointWarning`.
        """
        cfg = self.config
        xt, yt = _as_tensors(train_x), torch.from_numpy(np.asarray(train_y, dtype=np.float32))
        n = _length(xt)
        if n == 0:
            raise ValueError("empty training set")
        if len(yt) != n:
            raise ValueError(f"{n} training inputs but {len(yt)} targets")
        has_valid = valid_x is not None and valid_y is not None and _length(valid_x) > 0
        xv = yv = None
        if has_valid:
            xv, yv = _as_tensors(valid_x), torch.from_numpy(np.asarray(valid_y, dtype=np.float32))
            if _length(xv) != len(yv):
                raise ValueError(f"{_length(xv)} validation inputs but {len(yv)} targets")
        elif cfg.patience:
            warnings.warn("fit: no validation data; early stopping disabled, last epoch kept", stacklevel=2)

        key = self._run_key(yt, yv, xt)
        with contextlib.ExitStack() as stack:
            ckdir = self.checkpoint_dir
            if ckdir is not None and ckdir.is_symlink():
                warnings.warn(f"{ckdir}: checkpoint directory is a symbolic link (links are not followed); not "
                              "resumed, the fit starts from scratch with its checkpoints in a temporary directory",
                              CheckpointWarning, stacklevel=2)
                ckdir = None
            if ckdir is None:
                ckdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="harness-fit-")))
            resume = self._resumable(ckdir, key, has_valid)
            module = SeqModule(self, cfg, data=(xt, yt, xv, yv), key=key,
                               callbacks=self.callbacks)
            callbacks: list[Callback] = []
            keep_best = has_valid and cfg.keep == "best"
            if keep_best:  # keep-best: the monitored score of validated epochs
                callbacks.append(ModelCheckpoint(dirpath=ckdir, filename=_stem(BEST_CHECKPOINT_NAME), monitor="monitor",
                                                 mode=cfg.mode, save_top_k=1, save_on_train_epoch_end=True,
                                                 enable_version_counter=False))
            # keep-last, every epoch: what a fit resumes from
            callbacks.append(ModelCheckpoint(dirpath=ckdir, filename=_stem(CHECKPOINT_NAME), monitor=None, save_top_k=1,
                                             save_on_train_epoch_end=True, enable_version_counter=False))
            if has_valid and cfg.patience:
                callbacks.append(_ValidatedEarlyStopping(monitor="monitor", mode=cfg.mode, patience=cfg.patience,
                                                         check_finite=False, check_on_train_epoch_end=True))
            timer = None
            if cfg.max_train_seconds:
                timer = Timer(duration=datetime.timedelta(seconds=cfg.max_train_seconds), interval="step")
                callbacks.append(timer)
            log = stack.enter_context(open_metric_log(self.log_dir, self.loggers, self.run_name))
            bar = None
            if cfg.progress:
                bar = RichProgressBar()
                callbacks.append(bar)
            if cfg.devices == 1:  # in this process: each epoch's record as it ends
                module.on_epoch = functools.partial(_report_epoch, bar, log)
            if resume is None or not self._finished(resume, has_valid):
                if resume is None:
                    torch.manual_seed(cfg.seed)
                with _quiet():
                    trainer = self._lightning(callbacks, ckdir, has_valid)
                    trainer.fit(module, ckpt_path=None if resume is None else str(ckdir / CHECKPOINT_NAME),
                                weights_only=True)
            # the outcome as the checkpoints record it (with DDP the ranks trained in other processes)
            last = read_checkpoint(ckdir / CHECKPOINT_NAME)
            harness = last["harness"]
            self.history = [dict(rec) for rec in harness["history"]]
            if cfg.devices > 1:
                for end in range(1, len(self.history) + 1):
                    _report_epoch(None, log, self.history[:end])
            self.best_epoch, self.best_score = harness["best_epoch"], harness["best_score"]
            self.stop_reason = harness.get("stop_reason") or _stop_reason(last, cfg)
            if harness.get("stop_reason") != self.stop_reason:  # a later fit finds it finished
                harness["stop_reason"] = self.stop_reason
                VerifiedCheckpointIO().save_checkpoint(last, ckdir / CHECKPOINT_NAME)
            weights = read_checkpoint(ckdir / BEST_CHECKPOINT_NAME)["state_dict"] if keep_best else last["state_dict"]
            self.model.load_state_dict({k.removeprefix("model."): v for k, v in weights.items()})
        self.model.train()
        return self.history

    def predict(self, x: Inputs, batch_size: int | None = None) -> np.ndarray:
        """Predictions of the current model: :func:`predict_batches` with this trainer's device,
        transform and ``to_prediction``. Returns ``(N,) float64``."""
        return predict_batches(self.model, x, batch_size or self._eval_batch_size(), self.device, self.transform,
                               to_prediction=self.to_prediction)

    def time_steps(self, x: Inputs, y: np.ndarray, steps: int = 10, warmup: int = 2) -> dict:
        """Time training steps through the fit's own path (a Lightning fit of ``warmup + steps``
        batches of ``batch_size`` rows from ``x``/``y``, in order; no validation, no checkpoint).

        Memory is the peak allocated CUDA memory (reset before the timed steps) on CUDA, the
        process's peak RSS otherwise (``VmHWM``, :func:`harness.resources.peak_rss_bytes`; a
        lifetime peak: includes whatever the process held before).

        Returns:
            ``{"device", "precision", "compile", "channels_last", "batch_size", "steps", "warmup",
            "seconds", "seqs_per_s", "step_seconds" (list, s), "peak_memory_bytes", "memory_kind"}``.
        """
        cfg = self.config
        xt, yt = _as_tensors(x), np.asarray(y, dtype=np.float32)
        total = warmup + steps
        idx = np.arange(total * cfg.batch_size) % _length(xt)
        timed = dataclasses.replace(cfg, shuffle=False, drop_last=False, max_epochs=1, patience=None,
                                    max_batches_per_epoch=None, max_train_seconds=0.0, progress=False)
        xs = tuple(a[idx] for a in xt) if isinstance(xt, tuple) else xt[idx]
        timer = _StepTimer(warmup)
        with tempfile.TemporaryDirectory(prefix="harness-time-") as tmp:
            module = SeqModule(self, timed, data=(xs, torch.from_numpy(yt[idx]), None, None), key={}, scheduler=False)
            with _quiet():
                trainer = self._lightning([timer], Path(tmp), False, config=timed, checkpointing=False)
                trainer.fit(module)
        times = timer.times
        seconds = float(sum(times))
        if self.device.type == "cuda":
            peak, kind = int(torch.cuda.max_memory_allocated(self.device)), "cuda_max_memory_allocated"
        else:
            peak, kind = peak_rss_bytes(), "peak_rss"
        return {"device": str(self.device), "precision": str(self.amp_dtype or "fp32").replace("torch.", ""),
                "compile": cfg.compile, "channels_last": cfg.channels_last, "batch_size": cfg.batch_size,
                "steps": len(times), "warmup": warmup, "seconds": seconds,
                "seqs_per_s": len(times) * cfg.batch_size / seconds if seconds > 0 else math.nan,
                "step_seconds": times, "peak_memory_bytes": peak, "memory_kind": kind}

    # ----- internals ---------------------------------------------------------------------------
    def _lightning(self, callbacks: list, root: Path, has_valid: bool, *, config: TrainConfig | None = None,
                   checkpointing: bool = True) -> pl.Trainer:
        """The Lightning ``Trainer`` of this recipe on this trainer's device."""
        cfg = config or self.config
        accelerator, devices = _accelerator(self.device, cfg.devices)
        strategy = "auto"
        if cfg.devices > 1:
            strategy = "ddp_fork"  # ranks forked from this process: no script re-launch, no pickling
        return pl.Trainer(
            accelerator=accelerator, devices=devices, strategy=strategy, precision=_lightning_precision(self.amp_dtype),
            max_epochs=cfg.max_epochs, limit_train_batches=cfg.max_batches_per_epoch or 1.0,
            num_sanity_val_steps=0, check_val_every_n_epoch=1 if has_valid else None,
            limit_val_batches=1.0 if has_valid else 0, gradient_clip_val=cfg.grad_clip_norm,
            gradient_clip_algorithm="norm", callbacks=callbacks, logger=False,
            enable_checkpointing=checkpointing, enable_progress_bar=cfg.progress, enable_model_summary=False,
            default_root_dir=root, plugins=[VerifiedCheckpointIO()], sync_batchnorm=cfg.devices > 1 and accelerator == "gpu",
            use_distributed_sampler=False, reload_dataloaders_every_n_epochs=0, log_every_n_steps=50)

    def _eval_batch_size(self) -> int:
        return self.config.eval_batch_size

    def _steps_per_epoch(self, n: int) -> int:
        return steps_per_epoch(n, self.config)

    def _run_key(self, yt: torch.Tensor, yv: torch.Tensor | None, xt) -> dict:
        """What a checkpoint must match to be resumed: data fingerprint and loop settings."""
        h = hashlib.blake2b(digest_size=16)
        h.update(yt.numpy().tobytes())
        if yv is not None:
            h.update(b"|valid|")
            h.update(yv.numpy().tobytes())
        shapes = [list(a.shape) for a in (xt if isinstance(xt, tuple) else (xt,))]
        n_params = sum(p.numel() for p in self.model.parameters())
        return {"targets": h.hexdigest(), "shapes": shapes, "seed": self.config.seed,
                "batch_size": self.config.batch_size, "n_params": n_params,
                "max_batches_per_epoch": self.config.max_batches_per_epoch}

    def _resumable(self, ckdir: Path, key: dict, has_valid: bool) -> dict | None:
        """The last checkpoint in ``ckdir`` when it (and, with validation data, the best one)
        verifies, loads safely, belongs to this run (same ``key``) and its weights fit the model;
        otherwise a :class:`CheckpointWarning` naming the file and None (nothing of it is used)."""
        path = ckdir / CHECKPOINT_NAME
        if not (path.is_file() or path.is_symlink()):
            return None

        def refuse(why: str) -> None:
            warnings.warn(f"{why}; not resumed, the fit starts from scratch", CheckpointWarning, stacklevel=4)

        try:
            blob = read_checkpoint(path)
            if has_valid and self.config.keep == "best" and blob["harness"]["best_epoch"] is not None:
                read_checkpoint(ckdir / BEST_CHECKPOINT_NAME)
        except (IntegrityError, OSError) as exc:
            return refuse(str(exc))
        except (KeyError, TypeError):
            return refuse(f"{path}: checkpoint belongs to another run (data or settings differ)")
        harness = blob.get("harness")
        if not isinstance(harness, dict) or harness.get("format") != _CHECKPOINT_FORMAT or harness.get("key") != key:
            return refuse(f"{path}: checkpoint belongs to another run (data or settings differ)")
        try:
            _check_harness_state(harness)
            _rng_setter(harness["rng"])
            probe = copy.deepcopy(self.model)
            probe.load_state_dict({k.removeprefix("model."): v for k, v in blob["state_dict"].items()})
            optimizer = self.optimizer_factory(probe)
            optimizer.load_state_dict(blob["optimizer_states"][0])
        except Exception as exc:  # noqa: BLE001 - a state that does not fit: start over
            first = (str(exc).strip().splitlines() or [""])[0]
            return refuse(f"{path}: not a resumable state for this model ({type(exc).__name__}: {first})")
        return blob

    def _finished(self, blob: dict, has_valid: bool) -> bool:
        """Whether a verified checkpoint is a fit that needs no more epochs: stopped early, or at
        ``max_epochs`` epochs; a fit stopped by ``max_epochs`` / the time budget continues when
        the limit is larger now."""
        history = blob["harness"]["history"]
        if blob["harness"].get("stop_reason") == "early_stopping" and has_valid:
            return True
        return bool(history) and history[-1]["epoch"] >= self.config.max_epochs


def _stem(name: str) -> str:
    return name.removesuffix(".ckpt")


def _stop_reason(last: dict, cfg: TrainConfig) -> str:
    """Why a fit stopped, from its last checkpoint's callback states: ``"early_stopping"``,
    ``"time_limit"`` or ``"max_epochs"``."""
    states = last.get("callbacks", {})
    if any(k.startswith("_ValidatedEarlyStopping") and v.get("stopped_epoch", 0) > 0 for k, v in states.items()):
        return "early_stopping"
    elapsed = states.get("Timer", {}).get("time_elapsed", {}).get("train")
    if cfg.max_train_seconds and elapsed is not None and elapsed >= cfg.max_train_seconds:
        return "time_limit"
    return "max_epochs"


@contextlib.contextmanager
def _quiet():
    """Lightning's informational lines (devices found, model summary) and its advice on data
    loaders, which the harness's own batches do not use, are not printed."""
    loggers = [logging.getLogger(name) for name in ("lightning.pytorch", "lightning.fabric")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*(does not have many workers|Checkpoint directory .* exists"
                                    "|The number of training batches|LightningModule.log.*epoch|.*treespec)")
            warnings.filterwarnings("ignore", category=UserWarning, module="lightning.pytorch.trainer.connectors")
            yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def _accelerator(device: torch.device, devices: int) -> tuple[str, Any]:
    """Lightning's ``accelerator`` and ``devices`` for a :func:`select_device` device."""
    if device.type == "cuda":
        return "gpu", [device.index] if device.index is not None and devices == 1 else devices
    if device.type == "xla":
        return "tpu", devices
    if device.type == "mps":
        return "mps", 1
    return "cpu", devices


def _lightning_precision(amp_dtype: torch.dtype | None) -> str:
    """Lightning's ``precision`` for an autocast dtype (None: fp32)."""
    return {None: "32-true", torch.bfloat16: "bf16-mixed", torch.float16: "16-mixed"}[amp_dtype]


def predict_batches(model: torch.nn.Module, codes: Inputs, batch_size: int = 1024,
                    device: str | torch.device = "cpu", transform: BatchTransform | None = None, *,
                    to_prediction: Callable[[Any], torch.Tensor] | None = None,
                    mixed_precision: str = "off") -> np.ndarray:
    """Predict in batches with the model in eval mode and gradients off.

    Args:
        model: the network (moved to ``device``).
        codes: ``(N, L) uint8`` codes or a tuple of ``(N, ...)`` arrays.
        batch_size: rows per forward pass.
        device: name for :func:`select_device` or a :class:`torch.device`.
        transform: the batch transform, called as ``transform(x, None, False)``; default
            :func:`default_transform`.
        to_prediction: output -> ``(B,)`` predictions (default :func:`default_to_prediction`).
        mixed_precision: autocast mode (:func:`resolve_precision`); default ``"off"`` so the
            returned predictions are full fp32.

    Returns:
        ``(N,) float64`` predictions.
    """
    device = device if isinstance(device, torch.device) else select_device(device)
    transform = transform if transform is not None else default_transform
    to_prediction = to_prediction if to_prediction is not None else default_to_prediction
    amp_dtype = resolve_precision(mixed_precision, device)
    model = model.to(device)
    was_training = model.training
    model.eval()
    xt = _as_tensors(codes)
    n = _length(xt)
    out = []
    try:
        with torch.no_grad():
            for start in range(0, n, batch_size):
                idx = torch.arange(start, min(start + batch_size, n))
                inputs, _ = transform(_move(_take(xt, idx), device), None, False)
                with _autocast(device, amp_dtype):
                    output = model(inputs)
                _mark_step(device)
                out.append(to_prediction(output).float().cpu())
    finally:
        model.train(was_training)
    if not out:
        return np.zeros(0, dtype=np.float64)
    return torch.cat(out).numpy().astype(np.float64)
