"""Shared PyTorch training loop for the harness's PyTorch plug-ins (Camformers, BHI, LegNet, ...).

What it gives a plug-in:

* :func:`select_device` -- ``"auto"`` picks CUDA, then a TPU through ``torch_xla``, then Apple MPS,
  then the CPU; an explicitly requested device that is missing raises :class:`RuntimeError`.
* :class:`Trainer` -- mini-batch training from ``uint8`` nucleotide-code arrays (or a tuple of
  arrays) and ``float32`` targets. Batches are gathered from the codes and moved to the device one at
  a time; the one-hot encoding (or any augmentation) happens per batch on the device in a
  *transform* hook, never for the whole set. Per-epoch validation (loss, Pearson r, Spearman rho),
  early stopping on a monitored quantity with the best epoch's weights restored, learning-rate
  schedulers stepped per epoch (``ReduceLROnPlateau`` gets a metric) or per batch (cosine,
  OneCycle), mixed precision on CUDA (bf16 where supported, fp16 + loss scaling otherwise),
  optional ``torch.compile`` and channels-last memory format, seeded determinism on CPU, a
  resumable checkpoint after every epoch, and a rich progress bar with sequences/s.
* :func:`predict_batches` -- batched inference returning ``(N,) float64``.
* :func:`one_hot_codes` -- device-side one-hot encoding of code tensors (defined in
  :mod:`harness.data.sequence`, re-exported here as the default transform's encoding).

Reproducibility contract: with the same seed, data, model initialisation and thread count, a CPU fit
gives bit-identical weights. Randomness inside a transform must come from torch's global generator
(``torch.rand``, ``torch.randint`` ...), which the trainer seeds and checkpoints; the NumPy and
Python global generators are checkpointed (so a resumed fit continues their streams) but not
seeded by the trainer. CUDA kernels are not guaranteed deterministic.

Checkpoints (``checkpoint_dir/last.pt``) hold tensors and plain Python values only: the model,
optimiser, scheduler and loss-scaler state dicts, the loop state (history, best weights, counters)
and the RNG states as tensors and ints. They are written with :func:`torch.save` through
:func:`harness.io.atomic_open` (temporary file + ``os.replace``); then a sidecar
``last.pt.json`` records the checkpoint's size and XXH3-128 digest (:mod:`harness.integrity`).
A fit resumes only from a checkpoint that matches its sidecar and loads with
``torch.load(weights_only=True)``, which unpickles no code; a missing sidecar, a truncated,
edited or planted file, or one that is not such a state is not loaded: a
:class:`CheckpointWarning` names the file and the fit starts from scratch.
"""

from __future__ import annotations

import collections
import contextlib
import copy
import dataclasses
import hashlib
import io
import math
import os
import random
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Literal, Sequence

import numpy as np
import torch

from .data.sequence import one_hot_codes
from .integrity import IntegrityError, bytes_digest
from .io import atomic_open, read_json, write_json
from .resources import peak_rss_bytes
from .scoring.scorer import pearson, spearman

__all__ = [
    "CHECKPOINT_DIGEST_NAME", "CHECKPOINT_NAME", "COMPILE_MODES", "CheckpointWarning", "TrainConfig", "Trainer",
    "default_to_prediction", "default_transform", "one_hot_codes", "pearson_spearman", "predict_batches",
    "resolve_precision", "select_device",
]

#: inputs of a fit: one ``(N, ...)`` array (typically ``(N, L) uint8`` codes) or a tuple of them.
Inputs = np.ndarray | tuple[np.ndarray, ...]
#: ``transform(inputs, y, training) -> (model_inputs, loss_targets)``; ``y`` is None when predicting.
BatchTransform = Callable[[Any, "torch.Tensor | None", bool], tuple[Any, "torch.Tensor | None"]]

CHECKPOINT_NAME = "last.pt"
#: sidecar of :data:`CHECKPOINT_NAME`: ``{"file", "format", "bytes", "xxh3_128"}``, written after it.
CHECKPOINT_DIGEST_NAME = CHECKPOINT_NAME + ".json"
#: ``torch.compile`` modes accepted by ``TrainConfig.compile`` (besides ``"off"``).
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
#: 2: tensors and plain values only (``weights_only=True``), RNG states as tensors, digest sidecar.
_CHECKPOINT_FORMAT = 2


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


def _cpu_state(obj: Any) -> Any:
    """Deep copy of a (nested) state with every tensor cloned onto the CPU."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().to("cpu", copy=True)
    if isinstance(obj, dict):
        return {k: _cpu_state(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_cpu_state(v) for v in obj]
    if isinstance(obj, tuple):
        return tuple(_cpu_state(v) for v in obj)
    return copy.deepcopy(obj)


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


#: keys and types of the loop state a checkpoint carries (``best_state``: a state dict or None)
_LOOP_STATE_TYPES = {"history": (list,), "best_state": (dict, type(None)), "best_score": (float, int, type(None)),
                     "best_epoch": (int, type(None)), "bad_epochs": (int,), "elapsed": (float, int),
                     "stop_reason": (str, type(None)), "epoch": (int,)}


def _check_loop_state(state: Any) -> dict:
    """The loop state of a checkpoint, checked against :data:`_LOOP_STATE_TYPES`.

    Raises:
        ValueError: a key is missing or of another type, or a history entry is not a dict.
    """
    if not isinstance(state, dict):
        raise ValueError("the loop state is not a dict")
    for key, types in _LOOP_STATE_TYPES.items():
        if key not in state or not isinstance(state[key], types) or isinstance(state[key], bool):
            raise ValueError(f"loop state {key!r} is missing or of the wrong type")
    if not all(isinstance(rec, dict) for rec in state["history"]):
        raise ValueError("a history entry is not a dict")
    return state


def _write_checkpoint(path: Path, blob: dict) -> None:
    """Write ``blob`` (tensors and plain values, :func:`_plain`) to ``path`` atomically, then its
    sidecar :data:`CHECKPOINT_DIGEST_NAME` (size and XXH3-128 digest of exactly those bytes)."""
    buffer = io.BytesIO()
    torch.save(blob, buffer)
    data = buffer.getbuffer()
    with atomic_open(path, "wb") as fh:
        fh.write(data)
    write_json(path.with_name(path.name + ".json"), {"file": path.name, "format": _CHECKPOINT_FORMAT,
                                                     "bytes": len(data), "xxh3_128": bytes_digest(data)})


def _read_checkpoint(path: Path) -> dict:
    """Read a checkpoint written by :func:`_write_checkpoint`: check it against its sidecar, then
    ``torch.load(weights_only=True)`` the very bytes that were checked.

    Raises:
        IntegrityError: the sidecar is missing, unreadable or not this format's; the checkpoint,
            its directory or the sidecar is a link, or a file is not a regular file; size or
            digest differ (truncated, edited, planted); or the verified bytes do not load as
            tensors and plain values or are not a dict. The message names the file.
    """
    sidecar = path.with_name(path.name + ".json")
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


# ----------------------------------------------------------------------------------------------
# configuration
# ----------------------------------------------------------------------------------------------
@dataclasses.dataclass
class TrainConfig:
    """Settings of :class:`Trainer`.

    Attributes:
        batch_size: training sequences per optimiser step.
        max_epochs: upper bound on epochs (passes over the training set).
        patience: stop after this many validations without improvement of ``monitor``; None or
            0 disables early stopping. Needs validation data.
        validate_every: validate after epochs 1, 1 + k, 1 + 2k, ... for ``k = validate_every``
            (and always after the last one); the epochs in between have NaN ``valid_*`` values,
            cannot become the best epoch, and do not count towards ``patience`` or step a
            plateau scheduler. 1: every epoch.
        monitor: the validation quantity that selects the best epoch: ``"r+rho"`` (valid Pearson r
            + Spearman rho, Camformers write-up §3), or any key of the epoch record (``"valid_loss"``,
            ``"valid_r"``, ``"valid_rho"``, ...).
        monitor_mode: ``"max"`` or ``"min"``; None infers ``"min"`` for keys containing ``"loss"``.
        min_delta: an improvement must exceed the best by more than this.
        eval_batch_size: batch size for validation/prediction (None: 4 x ``batch_size``).
        mixed_precision: ``"auto"`` (bf16/fp16 on CUDA, off elsewhere), ``"bf16"``, ``"fp16"``, ``"off"``.
        seed: seeds torch's generators at the start of a fresh fit and each epoch's shuffle.
        shuffle: shuffle training rows every epoch (permutation from ``(seed, epoch)``).
        drop_last: drop the last incomplete training batch. A final batch of one row is always
            dropped (BatchNorm cannot train on it).
        max_batches_per_epoch: cap on optimiser steps per epoch (a random subset of the rows each
            epoch); None: full epochs.
        max_train_seconds: wall-clock budget for training (summed over resumed runs); when spent,
            the current epoch ends early, is validated, and the fit stops. None: no budget.
        grad_clip_norm: clip the global gradient norm to this value; None: no clipping.
        data_on_device: copy the whole code array to the device once (None: on CUDA when it
            takes at most 4 GiB).
        compile: ``torch.compile`` the model for training and validation steps: ``"off"``, or
            a mode of :data:`COMPILE_MODES` (``"default"``, ``"reduce-overhead"`` (CUDA graphs),
            ``"max-autotune"``, ...). A speed setting: the weights and their state-dict keys are
            the uncompiled model's. The first batches pay the compilation (tens of seconds).
        channels_last: store the model's 4-D weights and 4-D model inputs in
            ``torch.channels_last`` memory format (NHWC; helps 2-D convolutions under CUDA
            autocast, e.g. Camformers' (10, 1) kernels). No effect on 3-D (Conv1d) models.
        progress: show a rich progress bar and per-epoch lines (False: silent, e.g. tests).
    """

    batch_size: int = 256
    max_epochs: int = 100
    patience: int | None = 10
    validate_every: int = 1
    monitor: str = "r+rho"
    monitor_mode: Literal["max", "min"] | None = None
    min_delta: float = 0.0
    eval_batch_size: int | None = None
    mixed_precision: str = "auto"
    seed: int = 0
    shuffle: bool = True
    drop_last: bool = False
    max_batches_per_epoch: int | None = None
    max_train_seconds: float | None = None
    grad_clip_norm: float | None = None
    data_on_device: bool | None = None
    compile: str = "off"
    channels_last: bool = False
    progress: bool = True

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.max_epochs < 1:
            raise ValueError(f"max_epochs must be >= 1, got {self.max_epochs}")
        if self.validate_every < 1:
            raise ValueError(f"validate_every must be >= 1, got {self.validate_every}")
        if self.monitor_mode not in (None, "max", "min"):
            raise ValueError(f"monitor_mode must be 'max', 'min' or None, got {self.monitor_mode!r}")
        if self.compile != "off" and self.compile not in COMPILE_MODES:
            raise ValueError(f"compile must be 'off' or one of {', '.join(COMPILE_MODES)}, got {self.compile!r}")

    @property
    def mode(self) -> str:
        """``"max"`` or ``"min"``: the direction in which ``monitor`` improves."""
        if self.monitor_mode is not None:
            return self.monitor_mode
        return "min" if "loss" in self.monitor else "max"


# ----------------------------------------------------------------------------------------------
# the trainer
# ----------------------------------------------------------------------------------------------
class Trainer:
    """Mini-batch trainer shared by the PyTorch plug-ins.

    Args:
        model: the network; moved to ``device``. Its output for a batch goes to ``loss_fn`` and,
            through ``to_prediction``, to the correlation metrics.
        loss_fn: ``loss_fn(output, targets) -> scalar tensor`` (mean over the batch), e.g.
            ``torch.nn.L1Loss()``.
        optimizer_factory: ``optimizer_factory(model) -> torch.optim.Optimizer`` (receives the model
            so it can build parameter groups).
        config: a :class:`TrainConfig` (default ``TrainConfig()``).
        scheduler_factory: optional ``scheduler_factory(optimizer, steps_per_epoch, max_epochs) ->
            scheduler``; ``steps_per_epoch`` is the number of optimiser steps of a full epoch
            (after ``max_batches_per_epoch``), for OneCycle/cosine schedules.
        scheduler_interval: ``"epoch"`` (``scheduler.step()`` after each epoch's validation;
            ``ReduceLROnPlateau`` gets ``record[scheduler_monitor]``) or ``"batch"`` (after every
            optimiser step).
        scheduler_monitor: epoch-record key fed to a plateau scheduler (default ``"valid_loss"``;
            falls back to ``"train_loss"`` without validation data).
        transform: ``transform(x, y, training) -> (model_inputs, loss_targets)`` applied to every
            batch on the device. ``x``: the batch of the input array(s) as tensors (``(B, L)
            uint8`` codes for a plain array), ``y``: ``(B,) float32`` or None (prediction).
            Default: :func:`default_transform` (one-hot ``(B, 4, L)``). Put augmentation here (draw
            randomness from torch's global generator).
        to_prediction: maps a model output to ``(B,)`` per-sequence predictions aligned with the
            original batch (e.g. averaging forward/reverse-complement halves); default
            :func:`default_to_prediction`.
        device: a name for :func:`select_device` or a :class:`torch.device`.
        checkpoint_dir: directory for ``last.pt`` and its digest sidecar ``last.pt.json``,
            rewritten atomically after every epoch; a fit that finds there a checkpoint of the same
            run that verifies and loads with ``weights_only=True`` resumes after its last epoch
            (any other: :class:`CheckpointWarning`, fresh start). None: no checkpoints.
        callbacks: ``callback(record)`` called after every epoch (after its checkpoint is written).

    After :meth:`fit`: ``best_epoch``, ``best_score``, ``stop_reason`` (``"early_stopping"``,
    ``"max_epochs"`` or ``"time_limit"``) and ``history`` are set.
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
        callbacks: Sequence[Callable[[dict], None]] = (),
    ) -> None:
        if scheduler_interval not in ("epoch", "batch"):
            raise ValueError(f"scheduler_interval must be 'epoch' or 'batch', got {scheduler_interval!r}")
        self.config = config if config is not None else TrainConfig()
        self.device = device if isinstance(device, torch.device) else select_device(device)
        self.model = model.to(self.device)
        if self.config.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        #: what the steps call: ``model``, or its ``torch.compile`` wrapper (same parameters)
        self.net = self.model if self.config.compile == "off" else torch.compile(
            self.model, mode=None if self.config.compile == "default" else self.config.compile)
        self.loss_fn = loss_fn
        self.optimizer_factory = optimizer_factory
        self.scheduler_factory = scheduler_factory
        self.scheduler_interval = scheduler_interval
        self.scheduler_monitor = scheduler_monitor
        self.transform = transform if transform is not None else default_transform
        self.to_prediction = to_prediction if to_prediction is not None else default_to_prediction
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
        self.callbacks = list(callbacks)
        self.amp_dtype = resolve_precision(self.config.mixed_precision, self.device)
        self.history: list[dict] = []
        self.best_epoch: int | None = None
        self.best_score: float | None = None
        self.stop_reason: str | None = None

    # ----- public ------------------------------------------------------------------------------
    def fit(self, train_x: Inputs, train_y: np.ndarray, valid_x: Inputs | None = None,
            valid_y: np.ndarray | None = None) -> list[dict]:
        """Train, validating after every epoch; restore the best epoch's weights.

        Args:
            train_x: ``(N, L) uint8`` codes (or a tuple of ``(N, ...)`` arrays) of the training rows.
            train_y: ``(N,)`` targets (cast to float32).
            valid_x, valid_y: the validation rows, same layout; without them there is no early
                stopping, the plateau scheduler watches ``train_loss`` and the last epoch's
                weights are kept.

        Returns:
            The history: one dict per epoch (resumed epochs included) with ``epoch``,
            ``train_loss`` (mean batch loss, training mode), ``train_r``/``train_rho`` (on the
            training-mode batch predictions), ``valid_loss``, ``valid_r``, ``valid_rho`` (NaN
            without validation data), ``score`` (the monitored value), ``improved``,
            ``best_epoch``, ``lr`` (first parameter group's rate at the epoch start),
            ``seconds`` (wall time of the epoch incl. validation), ``train_seconds``,
            ``seqs_per_s`` (training sequences/s), ``n_batches`` and ``n_seqs``.

        Raises:
            ValueError: an empty training set, or inputs and targets of different lengths.
            KeyError: ``config.monitor`` is not ``"r+rho"`` nor a key of the epoch record.
            TypeError: with ``checkpoint_dir``, an optimiser/scheduler state or an epoch record
                (e.g. one a callback extended) holds something other than tensors and plain values.

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
        if has_valid:
            xv = _as_tensors(valid_x)
            yv = np.asarray(valid_y, dtype=np.float32)
            if _length(xv) != len(yv):
                raise ValueError(f"{_length(xv)} validation inputs but {len(yv)} targets")
        elif cfg.patience:
            warnings.warn("Trainer.fit: no validation data; early stopping disabled, last epoch kept", stacklevel=2)

        on_device = cfg.data_on_device
        if on_device is None:
            on_device = self.device.type == "cuda" and _nbytes(xt) + _nbytes(yt) <= 4 << 30
        if on_device:
            xt, yt = _move(xt, self.device), _move(yt, self.device)

        steps_per_epoch = self._steps_per_epoch(n)
        optimizer = self.optimizer_factory(self.model)
        scheduler = None
        if self.scheduler_factory is not None:
            scheduler = self.scheduler_factory(optimizer, steps_per_epoch, cfg.max_epochs)
        scaler = self._grad_scaler()

        state = {"history": [], "best_state": None, "best_score": None, "best_epoch": None,
                 "bad_epochs": 0, "elapsed": 0.0, "stop_reason": None, "epoch": 0}
        key = self._run_key(xt, yt, valid_x if has_valid else None, valid_y if has_valid else None)
        resumed = self._try_resume(key, optimizer, scheduler, scaler, state)
        if not resumed:
            torch.manual_seed(cfg.seed)

        progress = self._progress() if cfg.progress else None
        try:
            if progress is not None:
                progress.start()
            epoch = state["epoch"]
            while state["stop_reason"] is None and epoch < cfg.max_epochs:
                epoch += 1
                if cfg.max_train_seconds is not None and state["elapsed"] >= cfg.max_train_seconds:
                    state["stop_reason"] = "time_limit"
                    break
                t0 = time.perf_counter()
                lr = float(optimizer.param_groups[0]["lr"])
                record = {"epoch": epoch}
                record.update(self._train_epoch(epoch, xt, yt, optimizer, scheduler, scaler, state, progress))
                last = epoch >= cfg.max_epochs or (cfg.max_train_seconds is not None
                                                   and state["elapsed"] >= cfg.max_train_seconds)
                validated = has_valid and ((epoch - 1) % cfg.validate_every == 0 or last)
                if validated:
                    vloss, vr, vrho = self._evaluate(xv, yv)
                else:
                    vloss, vr, vrho = math.nan, math.nan, math.nan
                record.update(valid_loss=vloss, valid_r=vr, valid_rho=vrho)
                score = self._score(record)
                if validated or not has_valid:
                    improved = self._improved(score, state["best_score"]) or (not has_valid)
                    if improved:
                        state["best_score"], state["best_epoch"], state["bad_epochs"] = score, epoch, 0
                        state["best_state"] = _cpu_state(self.model.state_dict()) if has_valid else None
                    else:
                        state["bad_epochs"] += 1
                else:
                    improved = False
                if scheduler is not None and self.scheduler_interval == "epoch":
                    if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
                        if validated or not has_valid:
                            scheduler.step(record[self.scheduler_monitor if has_valid else "train_loss"])
                    else:
                        scheduler.step()
                record.update(score=score, improved=bool(improved), best_epoch=state["best_epoch"], lr=lr,
                              seconds=time.perf_counter() - t0)
                state["history"].append(record)
                if has_valid and cfg.patience and state["bad_epochs"] >= cfg.patience:
                    state["stop_reason"] = "early_stopping"
                elif cfg.max_train_seconds is not None and state["elapsed"] >= cfg.max_train_seconds:
                    state["stop_reason"] = "time_limit"
                elif epoch >= cfg.max_epochs:
                    state["stop_reason"] = "max_epochs"
                state["epoch"] = epoch
                self._save_checkpoint(key, optimizer, scheduler, scaler, state)
                if progress is not None:
                    self._log_epoch(progress, record)
                for callback in self.callbacks:
                    callback(record)
        finally:
            if progress is not None:
                progress.stop()

        if state["stop_reason"] is None:
            state["stop_reason"] = "max_epochs"
        if has_valid and state["best_state"] is not None:
            self.model.load_state_dict(state["best_state"])
        self.history = state["history"]
        self.best_epoch, self.best_score = state["best_epoch"], state["best_score"]
        self.stop_reason = state["stop_reason"]
        return self.history

    def predict(self, x: Inputs, batch_size: int | None = None) -> np.ndarray:
        """Predictions of the current model: :func:`predict_batches` with this trainer's device,
        transform and ``to_prediction``. Returns ``(N,) float64``."""
        return predict_batches(self.model, x, batch_size or self._eval_batch_size(), self.device, self.transform,
                               to_prediction=self.to_prediction)

    def time_steps(self, x: Inputs, y: np.ndarray, steps: int = 10, warmup: int = 2) -> dict:
        """Time training steps exactly as :meth:`fit` runs them (forward, loss, backward, step).

        The model is trained on ``warmup + steps`` batches of ``batch_size`` rows drawn (cyclically)
        from ``x``/``y``; a fresh optimiser from ``optimizer_factory`` is used. Memory is the
        peak allocated CUDA memory (reset before the timed steps) on CUDA, the process's peak RSS
        otherwise (``VmHWM``, :func:`harness.resources.peak_rss_bytes`; a lifetime peak: includes
        whatever the process held before).

        Returns:
            ``{"device", "precision", "compile", "channels_last", "batch_size", "steps", "warmup",
            "seconds", "seqs_per_s", "step_seconds" (list, s), "peak_memory_bytes", "memory_kind"}``.
        """
        cfg = self.config
        xt, yt = _as_tensors(x), torch.from_numpy(np.asarray(y, dtype=np.float32))
        n = _length(xt)
        optimizer = self.optimizer_factory(self.model)
        scaler = self._grad_scaler()
        self.model.train()
        times = []
        for i in range(warmup + steps):
            idx = torch.arange(i * cfg.batch_size, (i + 1) * cfg.batch_size) % n
            if i == warmup:
                _sync(self.device)
                if self.device.type == "cuda":
                    torch.cuda.reset_peak_memory_stats(self.device)
            t0 = time.perf_counter()
            self._step(_move(_take(xt, idx), self.device), _move(yt[idx], self.device), optimizer, scaler)
            _sync(self.device)
            if i >= warmup:
                times.append(time.perf_counter() - t0)
        total = float(sum(times))
        if self.device.type == "cuda":
            peak, kind = int(torch.cuda.max_memory_allocated(self.device)), "cuda_max_memory_allocated"
        else:
            peak, kind = peak_rss_bytes(), "peak_rss"
        return {"device": str(self.device), "precision": str(self.amp_dtype or "fp32").replace("torch.", ""),
                "compile": cfg.compile, "channels_last": cfg.channels_last, "batch_size": cfg.batch_size,
                "steps": steps, "warmup": warmup, "seconds": total,
                "seqs_per_s": steps * cfg.batch_size / total if total > 0 else math.nan,
                "step_seconds": times, "peak_memory_bytes": peak, "memory_kind": kind}

    # ----- internals ---------------------------------------------------------------------------
    def _eval_batch_size(self) -> int:
        return self.config.eval_batch_size or 4 * self.config.batch_size

    def _steps_per_epoch(self, n: int) -> int:
        bs = self.config.batch_size
        steps = n // bs if self.config.drop_last else math.ceil(n / bs)
        if not self.config.drop_last and n % bs == 1 and n > 1:
            steps -= 1
        if self.config.max_batches_per_epoch:
            steps = min(steps, self.config.max_batches_per_epoch)
        return max(steps, 1)

    def _layout(self, inputs: Any) -> Any:
        """Model inputs in the configured memory format (4-D tensors channels-last when
        ``config.channels_last``; everything else unchanged)."""
        if not self.config.channels_last:
            return inputs
        if isinstance(inputs, tuple):
            return tuple(self._layout(a) for a in inputs)
        if isinstance(inputs, torch.Tensor) and inputs.ndim == 4:
            return inputs.contiguous(memory_format=torch.channels_last)
        return inputs

    def _grad_scaler(self):
        """A loss scaler for fp16 autocast on CUDA (bf16 and fp32 need none)."""
        if self.amp_dtype == torch.float16 and self.device.type == "cuda":
            return torch.amp.GradScaler("cuda")
        return None

    def _step(self, xb: Any, yb: torch.Tensor, optimizer: torch.optim.Optimizer,
              scaler) -> tuple[torch.Tensor, torch.Tensor]:
        """One optimiser step; returns ``(loss, predictions)`` detached (on the device)."""
        inputs, targets = self.transform(xb, yb, True)
        optimizer.zero_grad(set_to_none=True)
        with _autocast(self.device, self.amp_dtype):
            output = self.net(self._layout(inputs))
            loss = self.loss_fn(output.float() if isinstance(output, torch.Tensor) else output, targets)
        if scaler is not None:
            scaler.scale(loss).backward()
            if self.config.grad_clip_norm is not None:
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip_norm)
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            if self.config.grad_clip_norm is not None:
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip_norm)
            optimizer.step()
        _mark_step(self.device)
        return loss.detach(), self.to_prediction(output).detach().float()

    def _train_epoch(self, epoch, xt, yt, optimizer, scheduler, scaler, state, progress) -> dict:
        cfg = self.config
        n = _length(xt)
        order = (np.random.default_rng([cfg.seed, epoch]).permutation(n) if cfg.shuffle else np.arange(n))
        data_device = (xt[0] if isinstance(xt, tuple) else xt).device
        order_t = torch.from_numpy(order).to(data_device)
        bs = cfg.batch_size
        starts = list(range(0, n, bs))
        if cfg.drop_last and n % bs:
            starts = starts[:-1]
        if starts and n - starts[-1] == 1 and n > 1:
            starts = starts[:-1]  # a single-row batch breaks BatchNorm in training mode
        if cfg.max_batches_per_epoch:
            starts = starts[: cfg.max_batches_per_epoch]
        task = progress.add_task(f"epoch {epoch}", total=len(starts), rate="-", loss="-") if progress else None

        self.model.train()
        # float64 accumulation where the device has it (MPS has none, TPUs emulate it)
        acc_dtype = torch.float32 if self.device.type in ("mps", "xla") else torch.float64
        loss_sum = torch.zeros((), device=self.device, dtype=acc_dtype)
        preds, ys = [], []
        seen = 0
        t0 = time.perf_counter()
        budget = None if cfg.max_train_seconds is None else cfg.max_train_seconds - state["elapsed"]
        for b, start in enumerate(starts):
            idx = order_t[start:start + bs]
            xb, yb = _move(_take(xt, idx), self.device), _move(_take(yt, idx), self.device)
            loss, pred = self._step(xb, yb, optimizer, scaler)
            loss_sum += loss.to(acc_dtype) * len(idx)
            seen += len(idx)
            if pred.shape == yb.shape:
                preds.append(pred)
                ys.append(yb)
            if scheduler is not None and self.scheduler_interval == "batch":
                scheduler.step()
            if task is not None and (b % 10 == 0 or b == len(starts) - 1):
                rate = seen / max(time.perf_counter() - t0, 1e-9)
                progress.update(task, completed=b + 1, rate=f"{rate:,.0f}", loss=f"{loss.item():.4f}")
            if budget is not None and time.perf_counter() - t0 >= budget:
                break
        _sync(self.device)
        train_seconds = time.perf_counter() - t0
        state["elapsed"] += train_seconds
        if task is not None:
            progress.remove_task(task)
        if preds and sum(len(p) for p in preds) == seen:
            r, rho = pearson_spearman(torch.cat(preds).cpu().numpy(), torch.cat(ys).cpu().numpy())
        else:
            r, rho = math.nan, math.nan
        return {"train_loss": float(loss_sum.item() / max(seen, 1)), "train_r": r, "train_rho": rho,
                "train_seconds": train_seconds, "seqs_per_s": seen / train_seconds if train_seconds > 0 else math.nan,
                "n_batches": b + 1 if starts else 0, "n_seqs": seen}

    @torch.no_grad()
    def _evaluate(self, xv: Any, yv: np.ndarray) -> tuple[float, float, float]:
        """Validation loss (row-weighted mean of batch losses), Pearson r and Spearman rho."""
        self.model.eval()
        bs = self._eval_batch_size()
        n = _length(xv)
        yv_t = torch.from_numpy(yv)
        loss_sum, preds = 0.0, []
        for start in range(0, n, bs):
            idx = torch.arange(start, min(start + bs, n))
            xb, yb = _move(_take(xv, idx), self.device), _move(yv_t[idx], self.device)
            inputs, targets = self.transform(xb, yb, False)
            with _autocast(self.device, self.amp_dtype):
                output = self.net(self._layout(inputs))
                loss = self.loss_fn(output.float() if isinstance(output, torch.Tensor) else output, targets)
            _mark_step(self.device)
            loss_sum += float(loss.item()) * len(idx)
            preds.append(self.to_prediction(output).float().cpu())
        pred = torch.cat(preds).numpy()
        r, rho = pearson_spearman(pred, yv)
        return loss_sum / n, r, rho

    def _score(self, record: dict) -> float:
        if self.config.monitor == "r+rho":
            return record["valid_r"] + record["valid_rho"]
        if self.config.monitor not in record:
            raise KeyError(f"monitor {self.config.monitor!r} is not an epoch-record key ({sorted(record)})")
        return float(record[self.config.monitor])

    def _improved(self, score: float, best: float | None) -> bool:
        if best is None:
            return True
        if math.isnan(score):
            return False
        if math.isnan(best):
            return True
        delta = self.config.min_delta
        return score > best + delta if self.config.mode == "max" else score < best - delta

    def _run_key(self, xt, yt, valid_x, valid_y) -> dict:
        """What a checkpoint must match to be resumed: data fingerprint and loop settings."""
        h = hashlib.blake2b(digest_size=16)
        h.update(np.asarray(yt.cpu() if isinstance(yt, torch.Tensor) else yt, dtype=np.float32).tobytes())
        if valid_y is not None:
            h.update(b"|valid|")
            h.update(np.asarray(valid_y, dtype=np.float32).tobytes())
        shapes = [list(a.shape) for a in (xt if isinstance(xt, tuple) else (xt,))]
        n_params = sum(p.numel() for p in self.model.parameters())
        return {"targets": h.hexdigest(), "shapes": shapes, "seed": self.config.seed,
                "batch_size": self.config.batch_size, "n_params": n_params,
                "max_batches_per_epoch": self.config.max_batches_per_epoch}

    def _checkpoint_path(self) -> Path | None:
        return None if self.checkpoint_dir is None else self.checkpoint_dir / CHECKPOINT_NAME

    def _save_checkpoint(self, key, optimizer, scheduler, scaler, state) -> None:
        """Write ``last.pt`` and its digest sidecar (:func:`_write_checkpoint`).

        Raises:
            TypeError: some state is not tensors and plain values (:func:`_plain` names it).
        """
        path = self._checkpoint_path()
        if path is None:
            return
        blob = _plain({
            "format": _CHECKPOINT_FORMAT,
            "key": key,
            "model": _cpu_state(self.model.state_dict()),
            "optimizer": _cpu_state(optimizer.state_dict()),
            "scheduler": None if scheduler is None else _cpu_state(scheduler.state_dict()),
            "scaler": None if scaler is None else scaler.state_dict(),
            "state": state,
            "rng": _rng_state(),
        })
        _write_checkpoint(path, blob)

    def _try_resume(self, key, optimizer, scheduler, scaler, state) -> bool:
        """Resume from ``last.pt`` when it verifies, loads safely and belongs to this run (same
        ``key``); otherwise warn (:class:`CheckpointWarning`, naming the file), leave model,
        optimiser, scheduler, scaler, ``state`` and the generators as they were, and return False."""
        path = self._checkpoint_path()
        if path is None or not (path.is_file() or path.is_symlink()):
            return False

        def refuse(why: str) -> bool:
            warnings.warn(f"{why}; not resumed, the fit starts from scratch", CheckpointWarning, stacklevel=4)
            return False

        try:
            blob = _read_checkpoint(path)
        except (IntegrityError, OSError) as exc:
            return refuse(str(exc))
        if blob.get("format") != _CHECKPOINT_FORMAT or blob.get("key") != key:
            return refuse(f"{path}: checkpoint belongs to another run (data or settings differ)")
        before = (_cpu_state(self.model.state_dict()), copy.deepcopy(optimizer.state_dict()),
                  None if scheduler is None else copy.deepcopy(scheduler.state_dict()),
                  None if scaler is None else scaler.state_dict())
        try:
            saved = _check_loop_state(blob["state"])
            install_rng = _rng_setter(blob["rng"])
            self.model.load_state_dict(blob["model"])
            optimizer.load_state_dict(blob["optimizer"])
            if scheduler is not None and blob["scheduler"] is not None:
                scheduler.load_state_dict(blob["scheduler"])
            if scaler is not None and blob["scaler"] is not None:
                scaler.load_state_dict(blob["scaler"])
        except Exception as exc:  # noqa: BLE001 - a state that does not fit: undo, start over
            self.model.load_state_dict(before[0])
            optimizer.load_state_dict(before[1])
            if scheduler is not None:
                scheduler.load_state_dict(before[2])
            if scaler is not None:
                scaler.load_state_dict(before[3])
            first = (str(exc).strip().splitlines() or [""])[0]
            return refuse(f"{path}: not a resumable state for this model ({type(exc).__name__}: {first})")
        state.update(saved)
        # a fit stopped only by max_epochs / time may continue with a larger limit
        if state["stop_reason"] in ("max_epochs", "time_limit"):
            state["stop_reason"] = None
        install_rng()
        return True

    def _progress(self):
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                                   TimeRemainingColumn)

        return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TextColumn("{task.fields[rate]} seq/s"), TextColumn("loss {task.fields[loss]}"),
                        TimeElapsedColumn(), TimeRemainingColumn())

    @staticmethod
    def _log_epoch(progress, rec: dict) -> None:
        def fmt(key: str) -> str:  # no validation set (or an undefined r): a dash, never "nan"
            value = rec.get(key)
            return "—" if value is None or value != value else f"{value:.4f}"

        mark = "*" if rec["improved"] else " "
        progress.console.print(
            f"epoch {rec['epoch']:3d}  T loss {fmt('train_loss')}  V loss {fmt('valid_loss')}  "
            f"T r {fmt('train_r')}  V r {fmt('valid_r')}  T rho {fmt('train_rho')}  "
            f"V rho {fmt('valid_rho')}  lr {rec['lr']:.2e}  {rec['seqs_per_s']:,.0f} seq/s  "
            f"{rec['seconds']:.1f}s {mark}", soft_wrap=True)


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
