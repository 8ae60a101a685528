"""Base class of the PyTorch plug-ins: what every one of them does the same way.

A PyTorch plug-in derives from :class:`TorchMethod` instead of :class:`harness.method.Method`, its
config from :class:`TorchConfig`, sets the class attribute ``Net`` to its ``nn.Module`` class (built
as ``Net(config)``) and keeps only what is its own: the recipe (data handling, ``make_trainer``,
``fit``, ``predict``) and the extra fitted state it saves. The base gives it:

* the runtime settings of :class:`TorchConfig` (evaluation batch, mixed precision, ``torch.compile``,
  time budget, progress display) and :meth:`TorchMethod.train_config`, which turns them and the
  recipe's loop settings into a :class:`harness.torch_train.TrainConfig`;

* ``model`` / ``history`` / ``best_epoch`` attributes (None / ``[]`` / None until fitted or loaded);
* :meth:`TorchMethod.build_model` (``torch.manual_seed(seed)``, then ``Net(config)``) and
  :meth:`TorchMethod.num_parameters` (counted on the ``meta`` device: no memory, no init time);
* persistence: ``model.pt`` (the CPU ``state_dict``, written atomically, read back with
  ``torch.load(weights_only=True)``) and ``state.json``
  (``best_epoch``, ``history`` and whatever :meth:`TorchMethod._extra_state` returns, NaN/inf as
  ``null``), read back by :meth:`TorchMethod._load_state`;
* :meth:`TorchMethod._on_device` for prediction: the model runs on the method's device and is back
  on the CPU afterwards, also after an error.

The core never imports a plug-in: this module depends on :mod:`harness.method`,
:mod:`harness.io` and :mod:`harness.torch_train` only.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
from pathlib import Path
from typing import Any, ClassVar, Iterator

import numpy as np
import torch
from torch import nn

from .io import atomic_open, read_json, write_json
from .method import Method, MethodConfig
from .torch_train import COMPILE_MODES, TrainConfig, select_device

__all__ = ["LEGACY_STATE_FILE", "MODEL_FILE", "STATE_FILE", "TorchConfig", "TorchMethod", "json_safe"]

#: the weights: a ``torch.save``-d ``state_dict`` of CPU tensors.
MODEL_FILE = "model.pt"
#: ``best_epoch``, ``history`` and the plug-in's extra state, as strict JSON.
STATE_FILE = "state.json"
#: what camformers, legnet and highschoolers called :data:`STATE_FILE` before this base class
#: (same content); read when a saved directory has no :data:`STATE_FILE`.
LEGACY_STATE_FILE = "history.json"


def json_safe(obj: Any) -> Any:
    """``obj`` with every non-finite float (NaN, +-inf; Python or NumPy floats) replaced by None,
    recursing into dicts, lists and tuples (tuples come back as lists), so that
    :func:`harness.io.write_json` (which refuses NaN) writes it as strict JSON with ``null``.

    E.g. the per-epoch records of :class:`harness.torch_train.Trainer`: ``valid_r`` is NaN when an
    epoch's predictions are constant. Anything else is returned unchanged (not copied)."""
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, (float, np.floating)) and not math.isfinite(obj):
        return None
    return obj


@dataclasses.dataclass
class TorchConfig(MethodConfig):
    """The runtime settings every PyTorch plug-in's config carries beside its recipe: speed, time
    budget and display. None of them changes what the recipe learns (``mixed_precision`` and
    ``compile`` change float rounding only). A plug-in redeclares a field to give it another
    default (e.g. bf16 autocast where its team trained in reduced precision).

    Attributes:
        eval_batch_size: sequences per forward pass at validation and prediction (a plug-in with
            test-time augmentation runs several model rows per sequence).
        mixed_precision: autocast mode (:func:`harness.torch_train.resolve_precision`): ``"auto"``
            (bf16 on CUDA where supported, else fp16; fp32 elsewhere), ``"bf16"``, ``"fp16"`` or
            ``"off"`` (fp32).
        compile: ``torch.compile`` mode for the training and validation steps, ``"off"`` or one of
            :data:`harness.torch_train.COMPILE_MODES`.
        max_train_seconds: training time budget in s, 0 = none (CPU profiles only).
        progress: show the progress bar and per-epoch lines.

    Raises:
        ValueError: ``eval_batch_size`` < 1, an unknown ``mixed_precision`` or ``compile`` mode,
            or a negative ``max_train_seconds``.
    """

    eval_batch_size: int = 1024
    mixed_precision: str = "off"
    compile: str = "off"
    max_train_seconds: float = 0.0
    progress: bool = True

    def __post_init__(self) -> None:
        if self.eval_batch_size < 1:
            raise ValueError(f"eval_batch_size must be >= 1, got {self.eval_batch_size}")
        if self.mixed_precision not in ("auto", "bf16", "fp16", "off"):
            raise ValueError(f"mixed_precision must be 'auto', 'bf16', 'fp16' or 'off', got {self.mixed_precision!r}")
        if self.compile != "off" and self.compile not in COMPILE_MODES:
            raise ValueError(f"compile must be 'off' or one of {', '.join(COMPILE_MODES)}, got {self.compile!r}")
        if self.max_train_seconds < 0:
            raise ValueError(f"max_train_seconds must be >= 0, got {self.max_train_seconds}")


class TorchMethod(Method):
    """A :class:`~harness.method.Method` whose model is one ``nn.Module`` trained with PyTorch.

    Class attributes:
        Net: the network class; ``Net(config)`` builds it from the method's config. Its
            ``forward`` signature and input/output shapes are the plug-in's (each documents them).

    Attributes:
        model: the fitted or loaded network, on the CPU between calls (None before fit/load).
        history: per-epoch records (dicts of floats/ints) of
            :class:`harness.torch_train.Trainer` (``[]`` before fit; as saved after load).
        best_epoch: the 1-based epoch whose weights ``model`` holds (None before fit).

    Persistence (:meth:`~harness.method.Method.save` / :meth:`~harness.method.Method.load`): a
    directory with ``method.json``, :data:`MODEL_FILE` and :data:`STATE_FILE`. ``save`` raises
    RuntimeError before :meth:`fit` (``model`` None); ``load`` raises FileNotFoundError without
    ``method.json`` or :data:`MODEL_FILE`, and RuntimeError when the weights do not match the saved
    config's network.

    Args: as :class:`~harness.method.Method`.
    """

    framework: ClassVar[str] = "pytorch"
    Net: ClassVar[type[nn.Module]]

    def __init__(self, config: MethodConfig | None = None, *, seed: int = 0, device: str = "auto",
                 work_dir: str | os.PathLike | None = None) -> None:
        super().__init__(config, seed=seed, device=device, work_dir=work_dir)
        self.model: nn.Module | None = None
        self.history: list[dict] = []
        self.best_epoch: int | None = None

    @property
    def _label(self) -> str:
        return self.name or type(self).__name__

    # ----- the network -------------------------------------------------------------------------
    def build_model(self) -> nn.Module:
        """A freshly initialised ``Net(config)`` on the CPU, in training mode; the global torch RNG
        is seeded with ``seed`` first, so the same seed gives the same initial weights."""
        torch.manual_seed(self.seed)
        return self.Net(self.config)

    def num_parameters(self) -> int:
        """Trainable parameters of the network this config builds (built on the ``meta`` device:
        no memory is allocated and nothing is initialised)."""
        with torch.device("meta"):
            net = self.Net(self.config)
        return sum(p.numel() for p in net.parameters() if p.requires_grad)

    @property
    def checkpoint_dir(self) -> Path | None:
        """Where :meth:`fit` keeps its resumable per-epoch checkpoint: ``work_dir/checkpoints``, or
        None (no checkpointing) without a ``work_dir``."""
        return None if self.work_dir is None else self.work_dir / "checkpoints"

    def train_config(self, **loop) -> TrainConfig:
        """The :class:`~harness.torch_train.TrainConfig` of a fit: the recipe's loop settings
        ``loop`` (``batch_size``, ``max_epochs``, ``patience``, ``monitor``, ...) plus this config's
        :class:`TorchConfig` runtime settings and the method's ``seed`` (``loop`` may override any
        of them; ``max_train_seconds`` 0 becomes None)."""
        cfg = self.config
        return TrainConfig(**{"eval_batch_size": cfg.eval_batch_size, "mixed_precision": cfg.mixed_precision,
                              "compile": cfg.compile, "max_train_seconds": cfg.max_train_seconds or None,
                              "progress": cfg.progress, "seed": self.seed, **loop})

    # ----- prediction --------------------------------------------------------------------------
    def _fitted_model(self) -> nn.Module:
        """``model``; raises RuntimeError (``"<name>: predict called before fit/load"``) if None."""
        if self.model is None:
            raise RuntimeError(f"{self._label}: predict called before fit/load")
        return self.model

    @contextlib.contextmanager
    def _on_device(self) -> Iterator[torch.device]:
        """Context for a prediction: yields the method's device (:func:`select_device`, which
        raises RuntimeError for a requested device this machine lacks) for ``predict_batches``
        to move ``model`` to; on exit, also after an error, ``model`` is moved back to the CPU so
        a method holds no accelerator memory between calls."""
        try:
            yield select_device(self.device)
        finally:
            if self.model is not None:
                self.model.cpu()

    # ----- persistence -------------------------------------------------------------------------
    def _extra_state(self) -> dict[str, Any]:
        """The plug-in's own fitted state for :data:`STATE_FILE` beside ``best_epoch`` and
        ``history`` (JSON-serialisable; non-finite floats become ``null``). Default: nothing."""
        return {}

    def _restore_extra_state(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`_extra_state` saved, from the whole loaded ``state`` dict (``{}``
        when the directory has no state file). Default: nothing."""

    def _save_state(self, path: Path) -> None:
        """Write :data:`MODEL_FILE` (the CPU ``state_dict``, atomically) and :data:`STATE_FILE`
        (``best_epoch``, ``history`` and :meth:`_extra_state`, NaN/inf written as ``null``).

        Raises:
            RuntimeError: the method is not fitted (``model`` is None).
            ValueError: :meth:`_extra_state` returns a ``best_epoch`` or ``history`` key.
        """
        if self.model is None:
            raise RuntimeError(f"{self._label}: save called before fit")
        extra = self._extra_state()
        clash = sorted({"best_epoch", "history"} & extra.keys())
        if clash:
            raise ValueError(f"{self._label}: _extra_state may not set {clash} (the base class saves them)")
        with atomic_open(path / MODEL_FILE, "wb") as fh:
            torch.save({k: v.detach().cpu() for k, v in self.model.state_dict().items()}, fh)
        write_json(path / STATE_FILE, json_safe({"best_epoch": self.best_epoch, **extra, "history": self.history}))

    def _load_state(self, path: Path) -> None:
        """Rebuild ``Net(config)``, load :data:`MODEL_FILE` into it (CPU, eval mode) and restore
        ``best_epoch``, ``history`` and the extra state from :data:`STATE_FILE` (or
        :data:`LEGACY_STATE_FILE`; with neither, ``best_epoch`` None and ``history`` ``[]``).

        :data:`MODEL_FILE` is read with ``torch.load(weights_only=True)``: a file holding anything
        but tensors and plain values (e.g. a planted pickle) is refused, never executed.

        Raises:
            FileNotFoundError: :data:`MODEL_FILE` is missing, a link or not a regular file.
            ValueError: it does not load as a state dict of tensors (planted, truncated or not a
                weights file); the message names it.
            RuntimeError: its weights do not fit this config's network (``load_state_dict``).
        """
        file = path / MODEL_FILE
        if file.is_symlink() or not file.is_file():
            raise FileNotFoundError(f"{file}: missing or not a regular file (links are not followed)")
        try:
            weights = torch.load(file, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - refused globals, corrupt archive: never executed
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise ValueError(f"{file}: not a weights file of tensors ({first})") from None
        if not (isinstance(weights, dict) and all(isinstance(v, torch.Tensor) for v in weights.values())):
            raise ValueError(f"{file}: holds a {type(weights).__name__}, not a state dict of tensors")
        model = self.Net(self.config)
        model.load_state_dict(weights)
        self.model = model.eval()
        state: dict[str, Any] = {}
        for name in (STATE_FILE, LEGACY_STATE_FILE):
            if (path / name).is_file():
                state = read_json(path / name)
                break
        self.best_epoch = state.get("best_epoch")
        self.history = state.get("history", [])
        self._restore_extra_state(state)
