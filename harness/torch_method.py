"""Base class of the PyTorch plug-ins: what every one of them does the same way.

A PyTorch plug-in derives from :class:`TorchMethod` instead of :class:`harness.method.Method`, its
config from :class:`TorchConfig`, sets the class attribute ``Net`` to its ``nn.Module`` class (built
as ``Net(config)``) and declares only what is its own recipe; the base owns the loop. It is a
template method (as the Prix Fixe trainer or lm-evaluation-harness's ``TemplateLM``):

:meth:`TorchMethod.fit`
    ``require_targets`` -> :meth:`~TorchMethod.prepare_fit` (the plug-in: filter, internal
    validation split with :func:`harness.holdout.holdout_split`, encode; returns a
    :class:`FitData`) -> :meth:`~TorchMethod.make_trainer` -> ``SeqTrainer.fit`` (resumable from
    ``work_dir/checkpoints``; the best or last epoch's weights as the recipe's ``monitor`` says)
    -> :meth:`~TorchMethod.after_fit` (the plug-in's post-training step, e.g. SWA weights) ->
    ``model`` on the CPU in eval mode.

:meth:`TorchMethod.predict`
    :meth:`~TorchMethod.predict_inputs` -> :meth:`~TorchMethod.predict_rows` (batched, the
    method's device, its transform and :meth:`~TorchMethod.to_prediction`, fp32) ->
    :meth:`~TorchMethod.postprocess`.

:meth:`TorchMethod.make_trainer` -- **the one entry point to the training path** (used by ``fit``,
``harness tune``, ``benchmarks/bench_<method>.py`` and ``benchmarks/device_check.py``)::

    make_trainer(model=None, *, checkpoint_dir=None, n_train=None) -> harness.training.SeqTrainer

builds a :class:`~harness.training.SeqTrainer` from the recipe's hooks: :meth:`~TorchMethod.
loop_settings` (batch, epochs, early stopping, monitor ...; ``n_train`` = training rows the fit
will pass, for the rules that depend on it), :meth:`~TorchMethod.loss`, :meth:`~TorchMethod.
make_optimizer`, :meth:`~TorchMethod.make_scheduler` with :attr:`~TorchMethod.scheduler_interval`
/ :attr:`~TorchMethod.scheduler_monitor`, :meth:`~TorchMethod.transform` and
:meth:`~TorchMethod.to_prediction`; the trainer's epoch callbacks are the instance's
:attr:`~TorchMethod.epoch_callbacks` (how ``harness tune`` reports and prunes).

The base also gives:

* the runtime settings of :class:`TorchConfig` (evaluation batch, mixed precision, ``torch.compile``,
  time budget, progress display) and :meth:`TorchMethod.train_config`, which turns them and the
  recipe's loop settings into a :class:`harness.training.TrainConfig`;

* ``model`` / ``history`` / ``best_epoch`` attributes (None / ``[]`` / None until fitted or loaded);
* :meth:`TorchMethod.build_model` (``torch.manual_seed(seed)``, then ``Net(config)``) and
  :meth:`TorchMethod.num_parameters` (counted on the ``meta`` device: no memory, no init time);
* persistence: ``model.pt`` (the CPU ``state_dict``, written atomically, read back with
  ``torch.load(weights_only=True)``) and ``state.json``
  (``best_epoch``, ``history`` and whatever :meth:`TorchMethod._extra_state` returns, NaN/inf as
  ``null``), read back by :meth:`TorchMethod._load_state`;
* :meth:`TorchMethod._on_device` for prediction: the model runs on the method's device and is back
  on the CPU afterwards, also after an error;
* :meth:`TorchMethod.cpu_threads` / :meth:`TorchMethod.threads`: an optional torch thread count
  while fitting/predicting on the CPU (BHI's LSTM), restored afterwards.

The core never imports a plug-in: this module depends on :mod:`harness.method`,
:mod:`harness.io`, :mod:`harness.data.table` and :mod:`harness.training` only.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterator

import numpy as np
import torch
from torch import nn

from .data.table import SeqTable
from .io import atomic_open, read_json, write_json
from .method import Method, MethodConfig, require_targets
from .tracking import method_run_name
from .training import (BatchTransform, Inputs, RuntimeSettings, TrainConfig, SeqTrainer, default_to_prediction,
                          default_transform, predict_batches, select_device)

__all__ = ["LEGACY_STATE_FILE", "MODEL_FILE", "STATE_FILE", "FitData", "TorchConfig", "TorchMethod", "json_safe"]

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

    E.g. the per-epoch records of :class:`harness.training.SeqTrainer`: ``valid_r`` is NaN when an
    epoch's predictions are constant. Anything else is returned unchanged (not copied)."""
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, (float, np.floating)) and not math.isfinite(obj):
        return None
    return obj


@dataclasses.dataclass
class TorchConfig(MethodConfig, RuntimeSettings):
    """The runtime settings every PyTorch plug-in's config carries beside its recipe:
    :class:`harness.training.RuntimeSettings` (evaluation batch, mixed precision, ``torch.compile``,
    time budget, devices, progress display), declared there once and handed to every fit's
    :class:`~harness.training.TrainConfig` by :meth:`TorchMethod.train_config`. A plug-in
    redeclares a field to give it another default (e.g. bf16 autocast where its team trained in
    reduced precision).

    ``eval_batch_size``, ``compile``, ``max_train_seconds``, ``devices`` and ``progress`` are
    runtime fields (:attr:`harness.method.MethodConfig.RUNTIME_FIELDS`: a run directory resumes
    after a change of them); ``mixed_precision`` is part of the recipe, because autocast rounds
    every training step to bf16/fp16 and the fit follows another trajectory.

    Raises:
        ValueError: as :meth:`harness.training.RuntimeSettings.check_runtime`.
    """

    def __post_init__(self) -> None:
        self.check_runtime()


@dataclasses.dataclass
class FitData:
    """What :meth:`TorchMethod.prepare_fit` hands to the trainer.

    Attributes:
        train_x: training inputs of :meth:`harness.training.SeqTrainer.fit`: ``(N, ...)`` array
            (e.g. ``(N, L) uint8`` codes) or a tuple of them.
        train_y: ``(N,)`` targets (float32 after the recipe's target transform).
        valid_x, valid_y: validation rows in the same layout, or None (no validation: no early
            stopping, the last epoch is kept).
        extra: anything the plug-in's :meth:`TorchMethod.after_fit` needs from the preparation
            (e.g. encoded validation codes); not used by the base.
    """

    train_x: Inputs
    train_y: np.ndarray
    valid_x: Inputs | None = None
    valid_y: np.ndarray | None = None
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def n_train(self) -> int:
        """Training rows (the first input array's length)."""
        return len(self.train_x[0] if isinstance(self.train_x, tuple) else self.train_x)


class TorchMethod(Method):
    """A :class:`~harness.method.Method` whose model is one ``nn.Module`` trained with PyTorch.

    Class attributes:
        Net: the network class; ``Net(config)`` builds it from the method's config. Its
            ``forward`` signature and input/output shapes are the plug-in's (each documents them).

    Attributes:
        model: the fitted or loaded network, on the CPU between calls (None before fit/load).
        history: per-epoch records (dicts of floats/ints) of
            :class:`harness.training.SeqTrainer` (``[]`` before fit; as saved after load).
        best_epoch: the 1-based epoch whose weights ``model`` holds (None before fit).
        epoch_callbacks: ``callback(record)`` functions that :meth:`make_trainer` gives every
            trainer it builds (called after each epoch with its record; ``harness tune`` appends
            its pruning reporter here). Empty by default.

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
        self.epoch_callbacks: list[Callable[[dict], None]] = []

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
        """The :class:`~harness.training.TrainConfig` of a fit: the recipe's loop settings
        ``loop`` (``batch_size``, ``max_epochs``, ``patience``, ``monitor``, ...) plus this config's
        :class:`TorchConfig` runtime settings and the method's ``seed`` (``loop`` may override any
        of them)."""
        runtime = {f.name: getattr(self.config, f.name) for f in dataclasses.fields(RuntimeSettings)}
        return TrainConfig(**{**runtime, "seed": self.seed, **loop})

    # ----- the recipe's hooks (override) ------------------------------------------------------
    #: when the scheduler steps: ``"epoch"`` or ``"batch"`` (:class:`~harness.training.SeqTrainer`).
    scheduler_interval: ClassVar[str] = "epoch"
    #: the epoch-record key a ``ReduceLROnPlateau`` scheduler watches.
    scheduler_monitor: ClassVar[str] = "valid_loss"

    def prepare_fit(self, train: SeqTable, valid: SeqTable | None) -> FitData:
        """The recipe's data preparation for :meth:`fit` (targets already checked): filter rows,
        hold out the internal validation split when ``valid`` is None and the recipe has one
        (:func:`harness.holdout.holdout_split`), encode inputs and targets. Plug-ins override it;
        the default encodes ``codes`` as they are, with no hold-out.

        Raises:
            ValueError: too few rows (the plug-in's message names it and the rule).
        """
        valid_x = valid_y = None
        if valid is not None and len(valid) > 0:
            valid_x, valid_y = valid.codes, np.asarray(valid.y, dtype=np.float32)
        return FitData(train.codes, np.asarray(train.y, dtype=np.float32), valid_x, valid_y)

    def loop_settings(self, n_train: int | None = None) -> dict[str, Any]:
        """The recipe's :class:`~harness.training.TrainConfig` loop settings (``batch_size``,
        ``max_epochs``, ``patience``, ``monitor``, ``drop_last`` ...), merged by
        :meth:`train_config` with the runtime settings. ``n_train``: training rows of the coming
        fit (None: not known, e.g. a benchmark), for rules that depend on it. Default: ``{}``."""
        return {}

    def loss(self) -> Callable[[Any, Any], torch.Tensor]:
        """``loss_fn(output, targets) -> scalar`` of the recipe. Default: ``nn.MSELoss()``."""
        return nn.MSELoss()

    def make_optimizer(self, net: nn.Module) -> torch.optim.Optimizer:
        """The recipe's optimiser for ``net``'s parameters. Default: ``AdamW`` with PyTorch's defaults."""
        return torch.optim.AdamW(net.parameters())

    def make_scheduler(self, optimizer: torch.optim.Optimizer, steps_per_epoch: int, max_epochs: int) -> Any:
        """The recipe's learning-rate scheduler (stepped per :attr:`scheduler_interval`), or None.
        ``steps_per_epoch``: optimiser steps of a full epoch. Default: None."""
        return None

    def transform(self) -> BatchTransform:
        """The batch transform ``(x, y, training) -> (model_inputs, targets)`` on the device
        (encoding, augmentation, TTA views; :mod:`harness.data.sequence`). Default:
        :func:`harness.training.default_transform` (one-hot ``(B, 4, L)``)."""
        return default_transform

    def to_prediction(self, output: Any) -> torch.Tensor:
        """Model output of a batch -> ``(B,)`` predictions (e.g. the mean over TTA views,
        :func:`harness.data.sequence.average_views`). Default: ``(B,)`` / ``(B, 1)`` -> ``(B,)``."""
        return default_to_prediction(output)

    def after_fit(self, trainer: SeqTrainer, data: FitData) -> None:
        """The recipe's step after training, before ``model`` is taken from ``trainer`` (e.g. SWA
        weights, a convergence warning). Default: nothing."""

    def predict_inputs(self, seqs: SeqTable) -> Inputs:
        """Model-ready inputs of the rows to predict (e.g. fixed-length codes). Default: ``codes``."""
        return seqs.codes

    def postprocess(self, pred: np.ndarray, seqs: SeqTable) -> np.ndarray:
        """The recipe's map from network predictions ``(N,) float64`` to what :meth:`predict`
        returns (same shape). Default: unchanged."""
        return pred

    def cpu_threads(self) -> int:
        """Torch intra-op threads while fitting / predicting on the CPU; 0 (default): leave torch's
        setting."""
        return 0

    # ----- the template ------------------------------------------------------------------------
    def make_trainer(self, model: nn.Module | None = None, *, checkpoint_dir: str | os.PathLike | None = None,
                     n_train: int | None = None) -> SeqTrainer:
        """The :class:`~harness.training.SeqTrainer` of this recipe: what :meth:`fit` trains with,
        and the one entry point of the tuner and the benchmarks.

        Args:
            model: the network to train (default: :meth:`build_model`, i.e. seeded ``Net(config)``).
            checkpoint_dir: where the trainer keeps its resumable checkpoint (None: none).
            n_train: training rows of the coming fit, for :meth:`loop_settings` (None: unknown).

        Returns:
            A trainer on the method's device (:func:`~harness.training.select_device`, which
            raises RuntimeError for a device this machine lacks) with the recipe's loss,
            optimiser, scheduler, transform, ``to_prediction`` and :attr:`epoch_callbacks`.
        """
        return SeqTrainer(
            model if model is not None else self.build_model(), self.loss(), self.make_optimizer,
            config=self.train_config(**self.loop_settings(n_train)), scheduler_factory=self.make_scheduler,
            scheduler_interval=self.scheduler_interval, scheduler_monitor=self.scheduler_monitor,
            transform=self.transform(), to_prediction=self.to_prediction, device=select_device(self.device),
            checkpoint_dir=checkpoint_dir, log_dir=None if checkpoint_dir is None else self.work_dir,
            loggers=self.loggers, run_name=method_run_name(self), callbacks=self.epoch_callbacks)

    def fit(self, train: SeqTable, valid: SeqTable | None = None) -> None:
        """Train from scratch (resuming from ``work_dir/checkpoints`` when an interrupted fit of the
        same data left one there): :meth:`prepare_fit`, :meth:`make_trainer`, ``SeqTrainer.fit``,
        :meth:`after_fit`; sets ``model`` (CPU, eval mode), ``history`` and ``best_epoch``.

        Args:
            train: training rows with ``y``.
            valid: optional validation rows with ``y`` (what the recipe does with them, and without
                them, is the plug-in's :meth:`prepare_fit`).

        Raises:
            ValueError: ``train`` (or ``valid``) has no targets (``"<name>.fit: training/validation
                tables need targets (y)"``), or the plug-in's preparation refuses the rows.
            RuntimeError: the method's device is not available.
        """
        require_targets(self._label, train, valid)
        data = self.prepare_fit(train, valid)
        trainer = self.make_trainer(checkpoint_dir=self.checkpoint_dir, n_train=data.n_train)
        with self.threads(trainer.device):
            self.history = trainer.fit(data.train_x, data.train_y, data.valid_x, data.valid_y)
        self.best_epoch = trainer.best_epoch
        self.after_fit(trainer, data)
        self.model = trainer.model.cpu().eval()

    def predict(self, seqs: SeqTable) -> np.ndarray:
        """Predictions ``(len(seqs),) float64``: :meth:`predict_inputs`, :meth:`predict_rows`,
        :meth:`postprocess`.

        Raises:
            RuntimeError: the method is neither fitted nor loaded, or its device is not available.
        """
        self._fitted_model()
        return self.postprocess(self.predict_rows(self.predict_inputs(seqs)), seqs)

    def predict_rows(self, inputs: Inputs) -> np.ndarray:
        """Network predictions of model-ready ``inputs`` (``(N, ...)`` array or tuple): eval mode,
        batches of ``eval_batch_size``, the method's device (back on the CPU afterwards), the
        recipe's :meth:`transform` and :meth:`to_prediction`, fp32. Returns ``(N,) float64``.

        Raises:
            RuntimeError: the method is neither fitted nor loaded, or its device is not available.
        """
        model = self._fitted_model()
        with self._on_device() as device, self.threads(device):
            return predict_batches(model, inputs, self.config.eval_batch_size, device, self.transform(),
                                   to_prediction=self.to_prediction)

    @contextlib.contextmanager
    def threads(self, device: torch.device) -> Iterator[None]:
        """Context: torch's intra-op thread count set to :meth:`cpu_threads` when running on the
        CPU and it is > 0, restored afterwards (also after an error); otherwise nothing."""
        threads = self.cpu_threads()
        if threads <= 0 or device.type != "cpu":
            yield
            return
        before = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            yield
        finally:
            torch.set_num_threads(before)

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
