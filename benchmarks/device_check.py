"""Device check: training speed, memory and GPU utilisation of the PyTorch ``paper`` profiles on one
accelerator, a LegNet correctness probe, and wall-time projections of the full paper trainings.

One command, sized to finish within 8 minutes on one H200 (``--budget``, default 470 s), writes
``device_check.json`` and ``device_check.md`` into ``--out`` after every step (a run stopped
early keeps what it measured; ``"complete": false`` until the end). Order: the four ``paper``
rows, the probe, then the speed rows (LegNet's first); a row that would overrun the budget is
skipped and marked so, and one that fails records its error without stopping the others:

1. **Throughput** -- for camformers, bhi, highschoolers and legnet, in the ``paper`` profile (the
   recipe's precision: fp32) and the speed profile ``paper-fast`` (autocast bf16 + ``torch.compile``;
   where a plug-in has no ``paper-fast`` the check uses ``paper`` with ``mixed_precision="auto"``,
   ``compile="default"`` and says so in the row's note): steady-state training sequences/s
   through the real training path -- the plug-in's own ``make_trainer`` and the same
   :meth:`harness.training.SeqTrainer.fit` that ``fit`` runs, the encoded training arrays the
   plug-in builds resident on the GPU (``data_on_device``), one-hot/augmentation per batch in the
   plug-in's transform -- over ``--measure-seconds`` (default 30) after ``--warmup-steps``
   (default 20; compilation happens there) untimed steps; peak GPU memory
   (``torch.cuda.max_memory_allocated``, the resident data included); GPU utilisation sampled
   through NVML (``torch.cuda.utilization``, else ``nvidia-smi``) during the timed fit; and the
   prediction rate of the plug-in's ``predict`` (TTA and strand averaging included).
   Training rows are a generated file in the official format (``bench_data.generate``: real
   length mix of 87-135 nt, random bases; throughput does not depend on the values), read with
   :func:`harness.data.read_table`. Per-row loop settings changed for timing only: no validation,
   no early stopping, full batches (``drop_last``), epochs of one pass over the ``--rows`` rows.
2. **Correctness probe** -- LegNet ``paper`` fitted for ``--probe-epochs`` x ``--probe-steps``
   batches (its OneCycle schedule over those steps) with :meth:`submissions.legnet.LegNet.fit`
   on a *simulated* training file of ``--probe-rows`` rows in the official layout
   (:func:`harness.data.simulate.simulate_dataset`: planted motif effects, so a model that learns
   shows it), 10,000 rows held out: the training and validation losses must fall. Then the same
   weights predict ``--probe-compare`` held-out sequences on the device and on the CPU; they must
   agree within ``--tolerance`` expression bins (largest absolute difference; default 0.02 on the
   0-17 scale) with PyTorch's defaults (TF32 allowed in cuDNN convolutions), and within
   ``--tolerance-strict`` (default 0.001) with TF32 off on the GPU.
3. **Projections** from the measured rates, for the recipe read from each plug-in's config and
   trainer (epochs, steps per epoch, batch, hold-out, validation cadence) on the full training
   file (6,739,258 rows, :data:`harness.data.fetch.MANIFEST`): the wall time of each team's full
   paper training, and of ``harness run --methods legnet,camformers,bhi,highschoolers --split
   kfold --folds 5`` (20 fits on 4/5 of the rows, each predicting its held-out fifth and the
   71,103 test sequences) on 1 GPU (the sum) and on 8 GPUs (the 20 jobs placed longest first,
   one job per GPU). Validation and prediction time use the measured prediction rate.
   Camformers' epochs are its cap (50; early stopping usually ends sooner): an upper bound.
4. **Targets** (benchmarks, not tests): LegNet ``paper`` full training <= 1 h; a Camformers
   ``paper`` epoch over 6,739,258 rows <= 10 min in fp32; GPU utilisation >= 90 % during
   steady-state training.

``--smoke --device cpu`` runs the same code on tiny shapes (each plug-in's ``cpu`` profile with
the recipe/speed profile's precision settings, ``torch.compile`` off, a 2,048-row file, 1-second
windows) in well under 5 minutes; ``tests/test_device_check.py`` runs it. Smoke numbers are not
benchmarks.

Usage::

    python benchmarks/device_check.py --device cuda --out runs/device-check     # the GPU check
    python benchmarks/device_check.py --smoke --device cpu --out /tmp/dc         # CI-sized
    python benchmarks/device_check.py --carry-help                              # wheels to carry

On the GPU machine lent through the workplace's ``device`` tool
------------------------------------------------------------------
That machine has no network; its image has PyTorch, NumPy, SciPy, pandas, scikit-learn, rich,
click, xxhash and nvidia-ml-py, but not pydantic (the profile loader needs it) or Lightning (the
PyTorch plug-ins train through it), nor lightgbm,
optuna or tomlkit (not used by this check: only ``harness tune`` and the k-mer baseline import
them). The project is not installed there: this script puts the repository root on
``sys.path`` and imports the four plug-ins directly. Carry pydantic, Lightning and their
dependencies as wheels (12 wheels, 6.5 MB measured; the carry limit is 64 MiB with the working
tree, ~1.5 MB) -- here, in the
repository root::

    echo /.whl/ >> .git/info/exclude
    python benchmarks/device_check.py --carry-help     # prints the pip download command

then call the tool's ``run`` with ``carry: [".whl"]``, ``timeout_s: 600`` and the command (one
line)::

    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade
        --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site || exit;
        PYTHONUNBUFFERED=1 python3 benchmarks/device_check.py --device cuda --out $OUT

``$OUT/device_check.json`` and ``$OUT/device_check.md`` come back (generated data stays in a
temporary directory on the machine). Before importing anything heavy the script checks that the
packages it needs are importable and, if not, prints what to carry and exits with status 2.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import copy
import dataclasses
import importlib
import importlib.metadata
import json
import math
import multiprocessing
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import warnings
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # the project need not be installed (the GPU machine)
    sys.path.insert(0, str(ROOT))

#: modules this check imports (module -> distribution to carry when it is missing)
REQUIRED = {"numpy": "numpy", "scipy": "scipy", "pandas": "pandas", "sklearn": "scikit-learn", "torch": "torch",
            "rich": "rich", "click": "click", "xxhash": "xxhash", "pydantic": "pydantic", "lightning": "lightning"}
#: carried to the GPU machine: pydantic and Lightning with what they need beside themselves (their
#: wheels' Requires-Dist; PyYAML, fsspec and tqdm are small and may be missing from its image)
CARRY = ("pydantic", "pydantic-core", "annotated-types", "typing-inspection", "typing-extensions", "lightning",
         "pytorch-lightning", "lightning-utilities", "torchmetrics", "fsspec", "tqdm", "PyYAML")
#: the PyTorch plug-ins, in the order they are measured
METHODS = ("camformers", "bhi", "highschoolers", "legnet")
#: the order of the speed-profile rows (the last ones are skipped first when the budget runs out)
FAST_ORDER = ("legnet", "camformers", "bhi", "highschoolers")
#: the speed profile, and what stands in for it where a plug-in does not declare one
FAST_PROFILE = "paper-fast"
FAST_OVERRIDES = {"mixed_precision": "auto", "compile": "default"}
#: the teams' own training times, beside the projections (LegNet: the project's issue brief; Camformers:
#: write-up §3, "about 16 hours" end to end on one core of a TPU v3-8, ~28 min per epoch)
TEAM_REFERENCE = {
    "legnet": "~8 h on one A5000 (80 epochs x 1,000 batches x 1,024)",
    "camformers": "~16 h end to end on one TPU v3-8 core (~28 min per epoch)",
}
KFOLD_COMMAND = "harness run --methods legnet,camformers,bhi,highschoolers --split kfold --folds 5"
TARGET_LEGNET_HOURS = 1.0
TARGET_CAMFORMERS_EPOCH_MINUTES = 10.0
TARGET_GPU_UTILISATION = 90.0
#: rough warm-up cost in seconds used to decide whether a row still fits the budget
WARMUP_ESTIMATE = {"off": 10.0, "compiled": 60.0}
PROBE_ESTIMATE = 60.0
#: largest batch of a --smoke row
SMOKE_BATCH = 32


# ----------------------------------------------------------------------------------------------
# packages and carry instructions
# ----------------------------------------------------------------------------------------------
def missing_packages() -> list[str]:
    """Distributions of :data:`REQUIRED` whose module does not import here."""
    missing = []
    for module, dist in REQUIRED.items():
        try:
            importlib.import_module(module)
        except ImportError:
            missing.append(dist)
    return missing


def carry_help() -> str:
    """How to bring the packages the GPU machine lacks (:data:`CARRY`: pydantic, Lightning and their dependencies, the versions
    installed here) as wheels for its Python 3.12 on x86-64."""
    pins = []
    for dist in CARRY:
        try:
            pins.append(f"{dist}=={importlib.metadata.version(dist)}")
        except importlib.metadata.PackageNotFoundError:
            pins.append(dist)
    platforms = " ".join(f"--platform {p}" for p in ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64",
                                                     "manylinux_2_17_x86_64", "manylinux2014_x86_64",
                                                     "manylinux1_x86_64"))
    return "\n".join([
        "Wheels for the GPU machine (no network there; Python 3.12, x86-64). In the repository root:",
        "",
        "    echo /.whl/ >> .git/info/exclude",
        f"    python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp "
        f"{platforms} -d .whl {' '.join(pins)}",
        "",
        "Then run there (tool `run`, carry [\".whl\"], timeout_s 600):",
        "",
        "    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "
        ".whl/*.whl && export PYTHONPATH=/tmp/site || exit; PYTHONUNBUFFERED=1 python3 benchmarks/device_check.py "
        "--device cuda --out $OUT",
        "",
        "lightgbm, optuna and tomlkit are not needed by this check (only `harness tune` and the k-mer baseline "
        "import them); xxhash, nvidia-ml-py and the scientific stack are in the machine's image.",
    ])


# ----------------------------------------------------------------------------------------------
# plug-in adapters: what each plug-in's fit does with a table before its SeqTrainer sees it
# ----------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Adapter:
    """How one plug-in turns training rows into its SeqTrainer's inputs, mirroring its ``fit``.

    Attributes:
        module: the plug-in module (imported lazily).
        cls_name: the method class in it.
        arrays: ``arrays(method, table) -> (x, y)``: the training inputs ``fit`` hands to
            :meth:`SeqTrainer.fit` (filtered, encoded, doubled...), for the rows it keeps.
        kept: ``kept(method, table) -> (N,) bool``: rows ``fit`` keeps (its training filter).
        holdout: ``holdout(method, n_kept) -> int``: rows ``fit`` holds out for validation when no
            validation table is given.
        ready: ``ready(method, trainer, table)``: make ``method`` predict with ``trainer``'s model
            (and whatever fitted state ``predict`` needs).
        rows_per_kept_row: SeqTrainer rows per kept training row (2: LegNet's reverse-complement doubling).
    """

    module: str
    cls_name: str
    arrays: Callable[[Any, Any], tuple[Any, Any]]
    kept: Callable[[Any, Any], Any]
    holdout: Callable[[Any, int], int]
    ready: Callable[[Any, Any, Any], None]
    rows_per_kept_row: int = 1

    def cls(self) -> type:
        return getattr(importlib.import_module(self.module), self.cls_name)


def _all_rows(method, table):
    import numpy as np

    return np.ones(len(table), dtype=bool)


def _plain_ready(method, trainer, table) -> None:
    method.model = trainer.model


def _camformers_kept(method, table):
    from submissions.camformers import select_training_rows

    cfg = method.config
    return select_training_rows(table.codes, table.lengths, cfg.seq_len, cfg.length_tolerance, cfg.max_n)


def _camformers_arrays(method, table):
    from submissions.camformers import model_codes

    kept = table.subset(_camformers_kept(method, table))
    return model_codes(kept, method.config.seq_len), kept.y


def _fraction_holdout(fraction: float, n: int, minimum: int = 2) -> int:
    """scikit-learn ``train_test_split(test_size=fraction)``: ``ceil(fraction * n)`` rows."""
    return math.ceil(fraction * n) if fraction > 0 and n >= minimum else 0


def _bhi_arrays(method, table):
    import numpy as np

    method.target_std = float(np.std(table.y.astype(np.float64)))
    return method.training_inputs(table), method.standardize(table.y)


def _bhi_ready(method, trainer, table) -> None:
    from submissions.bhi import quantile_landmarks, standardized_mean

    method.model = trainer.model
    method.target_loc = standardized_mean(table.y, method.config.target_center, method.target_std)
    method.quantiles = quantile_landmarks(method.standardize(table.y), method.config.n_quantiles)


def _highschoolers_kept(method, table):
    import numpy as np

    return np.asarray(table.lengths) <= method.config.seq_len


def _highschoolers_arrays(method, table):
    from submissions.highschoolers import model_codes

    kept = table.subset(_highschoolers_kept(method, table))
    return model_codes(kept, method.config.seq_len), kept.y


def _highschoolers_holdout(method, n: int) -> int:
    size = method.config.valid_size
    return int(size) if size >= 1 else math.ceil(size * n)


def _legnet_arrays(method, table):
    from submissions.legnet import training_arrays

    return training_arrays(table, method.config.seq_len)


ADAPTERS = {
    "camformers": Adapter("submissions.camformers", "Camformers", _camformers_arrays, _camformers_kept,
                          lambda m, n: _fraction_holdout(m.config.valid_fraction, n), _plain_ready),
    "bhi": Adapter("submissions.bhi", "BHI", _bhi_arrays, _all_rows,
                   lambda m, n: _fraction_holdout(m.config.valid_fraction, n, minimum=20), _bhi_ready),
    "highschoolers": Adapter("submissions.highschoolers", "HighSchoolers", _highschoolers_arrays, _highschoolers_kept,
                             _highschoolers_holdout, _plain_ready),
    "legnet": Adapter("submissions.legnet", "LegNet", _legnet_arrays, _all_rows, lambda m, n: 0, _plain_ready,
                      rows_per_kept_row=2),
}


# ----------------------------------------------------------------------------------------------
# configs
# ----------------------------------------------------------------------------------------------
def resolve_config(name: str, profile: str, smoke: bool):
    """The config of ``name`` for a measured profile, with the progress display off.

    ``profile`` ``"paper"`` or :data:`FAST_PROFILE`; a plug-in without ``paper-fast`` gets
    ``paper`` + :data:`FAST_OVERRIDES`. With ``smoke`` the architecture and batch come from the
    plug-in's ``cpu`` profile, the precision settings from the resolved profile, and
    ``torch.compile`` is off. Returns ``(config, note)``; ``note`` says what was substituted.
    """
    from harness.registry import load_profile, profile_names

    cls = ADAPTERS[name].cls()
    notes = []
    if profile == FAST_PROFILE and FAST_PROFILE not in profile_names(cls):
        config = load_profile(cls, "paper").config
        for key, value in FAST_OVERRIDES.items():
            setattr(config, key, value)
        overrides = ", ".join(f"{k}={v}" for k, v in FAST_OVERRIDES.items())
        notes.append(f"no [{FAST_PROFILE}] profile: paper + {overrides}")
    else:
        config = load_profile(cls, profile).config
    if smoke:
        small = load_profile(cls, "cpu").config
        small.mixed_precision = config.mixed_precision
        if config.compile != "off":
            notes.append(f"smoke: compile {config.compile} -> off")
        small.compile = "off"
        small.batch_size = min(small.batch_size, SMOKE_BATCH)
        config = small
        notes.append(f"smoke: cpu-profile shapes, batch <= {SMOKE_BATCH}")
    config.progress = False
    return config, "; ".join(notes)


# ----------------------------------------------------------------------------------------------
# measurement helpers
# ----------------------------------------------------------------------------------------------
class UtilisationSampler:
    """Samples the GPU's utilisation (percent of the sample period in which a kernel ran, NVML)
    every ``interval`` seconds in a background thread, between ``start()`` and ``stop()``.

    Source: ``torch.cuda.utilization`` (NVML through nvidia-ml-py), else ``nvidia-smi
    --query-gpu=utilization.gpu``; on a non-CUDA device, or with neither, no samples
    (``summary()["source"]`` is None). Samples in the first ``skip`` seconds (the data copy onto
    the device at the start of a fit) are left out of the summary.
    """

    def __init__(self, device, interval: float = 0.2, skip: float = 1.0) -> None:
        self.device, self.interval, self.skip = device, interval, skip
        self.samples: list[tuple[float, float]] = []
        self.source: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._read = self._pick_source()

    def _pick_source(self) -> Callable[[], float] | None:
        import torch

        if self.device.type != "cuda":
            return None
        try:
            torch.cuda.utilization(self.device)
            self.source = "nvml (torch.cuda.utilization)"
            return lambda: float(torch.cuda.utilization(self.device))
        except Exception:  # noqa: BLE001 - pynvml missing or NVML unusable: try nvidia-smi
            pass
        smi = shutil.which("nvidia-smi")
        if smi is None:
            return None
        index = self.device.index if self.device.index is not None else torch.cuda.current_device()
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        if visible:
            index = visible.split(",")[index].strip()
        cmd = [smi, "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits", "-i", str(index)]

        def read() -> float:
            return float(subprocess.run(cmd, capture_output=True, text=True, timeout=5, check=True).stdout.split()[0])

        try:
            read()
        except Exception:  # noqa: BLE001 - nvidia-smi present but not answering
            return None
        self.source = "nvidia-smi"
        self.interval = max(self.interval, 0.5)
        return read

    def start(self) -> None:
        if self._read is None:
            return
        t0 = time.perf_counter()

        def loop() -> None:
            while not self._stop.wait(self.interval):
                try:
                    self.samples.append((time.perf_counter() - t0, self._read()))
                except Exception:  # noqa: BLE001 - a failed read is a missing sample
                    pass

        self._thread = threading.Thread(target=loop, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def summary(self) -> dict:
        """``{"source", "samples", "mean", "median", "min", "p10"}`` in percent (None without samples)."""
        import numpy as np

        values = np.array([v for t, v in self.samples if t >= self.skip] or [v for _, v in self.samples])
        if self.source is None or values.size == 0:
            return {"source": self.source, "samples": 0, "mean": None, "median": None, "min": None, "p10": None}
        return {"source": self.source, "samples": int(values.size), "mean": float(values.mean()),
                "median": float(np.median(values)), "min": float(values.min()),
                "p10": float(np.percentile(values, 10))}


def _nbytes(x) -> int:
    if isinstance(x, tuple):
        return sum(a.nbytes for a in x)
    return int(x.nbytes)


def _peak_memory(device) -> tuple[int | None, str]:
    import torch

    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device)), "cuda_max_memory_allocated"
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024), "peak_rss"


def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def recipe(name: str, method, trainer, n_rows: int, kept_fraction: float) -> dict:
    """What one paper fit of ``name`` trains on ``n_rows`` training-file rows: the plug-in's own
    filter (``kept_fraction`` of the rows, measured on the generated file), hold-out, doubling,
    and its trainer's epochs, steps per epoch and batch (read from ``trainer.config`` before any
    timing override).

    Returns ``{"rows", "kept_rows", "valid_rows", "trainer_rows", "epochs", "steps_per_epoch",
    "batch_size", "train_seqs", "validations", "valid_seqs"}``; ``train_seqs`` counts SeqTrainer
    rows (LegNet: strands), ``valid_seqs`` sequences predicted for validation.
    """
    adapter = ADAPTERS[name]
    cfg = trainer.config
    kept = int(round(n_rows * kept_fraction))
    valid = adapter.holdout(method, kept)
    trainer_rows = (kept - valid) * adapter.rows_per_kept_row
    steps = trainer._steps_per_epoch(trainer_rows)  # the SeqTrainer's own rule (drop_last, max_batches_per_epoch)
    per_epoch = min(steps * cfg.batch_size, trainer_rows)
    epochs = cfg.max_epochs
    validations = 0
    if valid:
        validations = len(range(1, epochs + 1, cfg.validate_every))
        validations += 0 if (epochs - 1) % cfg.validate_every == 0 else 1  # the last epoch is always validated
    return {"rows": n_rows, "kept_rows": kept, "valid_rows": valid, "trainer_rows": trainer_rows, "epochs": epochs,
            "steps_per_epoch": steps, "batch_size": cfg.batch_size, "train_seqs": epochs * per_epoch,
            "validations": validations, "valid_seqs": validations * valid}


def measure(name: str, profile: str, table, device, args, deadline: float) -> dict:
    """One throughput row: warm-up fit, timed fit, peak memory, GPU utilisation, prediction rate,
    and the recipe on the full training file (see the module docstring)."""
    import numpy as np
    import torch

    from harness.data.fetch import MANIFEST

    adapter = ADAPTERS[name]
    config, note = resolve_config(name, profile, args.smoke)
    method = adapter.cls()(config, seed=args.seed, device=str(device))
    x, y = adapter.arrays(method, table)
    trainer = method.make_trainer()
    full_rows = {Path(r.path).name: r.rows for r in MANIFEST["dream2022"]}
    n_full = full_rows["train_sequences.txt"]
    kept_fraction = float(np.mean(adapter.kept(method, table)))
    full = recipe(name, method, trainer, n_full, kept_fraction)
    fold = recipe(name, method, trainer, n_full - n_full // 5, kept_fraction)
    result = {"method": name, "profile": profile, "note": note, "parameters": method.num_parameters(),
              "precision": str(trainer.amp_dtype or "fp32").replace("torch.", ""), "compile": trainer.config.compile,
              "batch_size": trainer.config.batch_size, "trainer_rows": int(len(y)), "data_bytes": _nbytes(x) + y.nbytes,
              "kept_fraction": kept_fraction, "recipe_full": full, "recipe_fold": fold}

    tc = trainer.config  # timing overrides: no validation, no early stopping, full batches, no checkpoints
    tc.progress, tc.patience, tc.drop_last, tc.validate_every = False, None, True, 1
    tc.max_epochs, tc.max_batches_per_epoch, tc.max_train_seconds = 1, args.warmup_steps, 0.0
    t0 = time.perf_counter()
    trainer.fit(x, y)
    _sync(device)
    result["warmup_seconds"] = time.perf_counter() - t0
    result["warmup_steps"] = args.warmup_steps

    window = max(min(args.measure_seconds, deadline - time.perf_counter() - 5.0), min(args.measure_seconds, 5.0))
    tc.max_epochs, tc.max_batches_per_epoch, tc.max_train_seconds = 1_000_000, None, window
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    sampler = UtilisationSampler(device)
    sampler.start()
    t0 = time.perf_counter()
    try:
        history = trainer.fit(x, y)
        _sync(device)
    finally:
        sampler.stop()
    wall = time.perf_counter() - t0
    peak, kind = _peak_memory(device)
    seqs = sum(r["n_seqs"] for r in history)
    train_seconds = sum(r["train_seconds"] for r in history)
    result.update(measure_seconds_asked=window, epochs_timed=len(history), timed_seqs=seqs,
                  train_seconds=train_seconds, fit_wall_seconds=wall,
                  seqs_per_s=seqs / train_seconds if train_seconds > 0 else math.nan,
                  seqs_per_s_wall=seqs / wall if wall > 0 else math.nan,
                  peak_memory_bytes=peak, memory_kind=kind, gpu_utilisation=sampler.summary())

    adapter.ready(method, trainer, table)
    n_pred = min(args.predict_rows, len(table))
    method.predict(table.subset(np.arange(min(n_pred, 256))))  # warm-up (cuDNN algorithm choice)
    t0 = time.perf_counter()
    method.predict(table.subset(np.arange(n_pred)))
    result["predict_rows"] = n_pred
    result["predict_seqs_per_s"] = n_pred / (time.perf_counter() - t0)
    return result


def project(rows: list[dict], n_test: int) -> dict:
    """Wall-time projections from the measured rows (see the module docstring, item 3)."""
    out: dict[str, Any] = {"full_paper_training": [], "kfold5": {}, "assumptions": [
        "training time = SeqTrainer rows of the recipe / steady-state train seq/s of the row",
        "validation and prediction time = sequences / the measured predict seq/s (the plug-in's predict; "
        "its fp32 eval path, TTA included)",
        "camformers: its epoch cap (50) with early stopping off -- an upper bound",
        "8 GPUs: one (method, fold) job per GPU, 20 jobs placed longest first; harness run does not yet pin "
        "jobs to GPUs (give each worker its own CUDA_VISIBLE_DEVICES)",
        "data loading, model saving and process start-up are not included",
    ]}
    for row in rows:
        if row.get("error") or row.get("skipped") or not (row.get("seqs_per_s") or 0) > 0:
            continue
        rate, prate = row["seqs_per_s"], row["predict_seqs_per_s"]
        full, fold = row["recipe_full"], row["recipe_fold"]
        train_h = full["train_seqs"] / rate / 3600
        valid_h = full["valid_seqs"] / prate / 3600
        epoch_min = full["steps_per_epoch"] * full["batch_size"] / rate / 60
        entry = {"method": row["method"], "profile": row["profile"], "precision": row["precision"],
                 "compile": row["compile"], "epochs": full["epochs"], "steps_per_epoch": full["steps_per_epoch"],
                 "batch_size": full["batch_size"], "train_seqs": full["train_seqs"], "valid_seqs": full["valid_seqs"],
                 "epoch_minutes": epoch_min, "hours": train_h + valid_h, "team": TEAM_REFERENCE.get(row["method"])}
        if row["method"] == "camformers":
            entry["epoch_minutes_6739258_rows"] = full["rows"] / rate / 60
        out["full_paper_training"].append(entry)
        held = full["rows"] // 5
        fold_s = (fold["train_seqs"] / rate + fold["valid_seqs"] / prate + (held + n_test) / prate)
        kf = out["kfold5"].setdefault(row["profile"], {"per_fold_hours": {}})
        kf["per_fold_hours"][row["method"]] = fold_s / 3600
    for profile, kf in out["kfold5"].items():
        hours = kf["per_fold_hours"]
        jobs = sorted([h for h in hours.values() for _ in range(5)], reverse=True)
        gpus = [0.0] * 8
        for h in jobs:  # longest processing time first
            gpus[gpus.index(min(gpus))] += h
        kf.update(command=f"{KFOLD_COMMAND} --profile {profile} --device cuda", methods=sorted(hours),
                  complete=len(hours) == len(METHODS), gpus_1_hours=sum(jobs), gpus_8_hours=max(gpus))
    return out


def targets(rows: list[dict], projections: dict) -> list[dict]:
    """The benchmark targets: ``{"target", "value", "met"}`` (``met`` None when not measured)."""
    found = {(p["method"], p["profile"]): p for p in projections["full_paper_training"]}
    legnet, cam = found.get(("legnet", "paper")), found.get(("camformers", "paper"))
    out = [
        {"target": f"LegNet paper full training <= {TARGET_LEGNET_HOURS:g} h",
         "value": None if legnet is None else f"{legnet['hours']:.2f} h",
         "met": None if legnet is None else legnet["hours"] <= TARGET_LEGNET_HOURS},
        {"target": f"Camformers paper epoch over 6,739,258 rows <= {TARGET_CAMFORMERS_EPOCH_MINUTES:g} min (fp32)",
         "value": None if cam is None else f"{cam['epoch_minutes_6739258_rows']:.1f} min",
         "met": None if cam is None else cam["epoch_minutes_6739258_rows"] <= TARGET_CAMFORMERS_EPOCH_MINUTES},
    ]
    for row in rows:
        util = (row.get("gpu_utilisation") or {}).get("mean")
        if row.get("error") or row.get("skipped"):
            continue
        out.append({"target": f"GPU utilisation >= {TARGET_GPU_UTILISATION:g} %: {row['method']} {row['profile']}",
                    "value": None if util is None else f"{util:.1f} %",
                    "met": None if util is None else util >= TARGET_GPU_UTILISATION})
    return out


# ----------------------------------------------------------------------------------------------
# the correctness probe
# ----------------------------------------------------------------------------------------------
def probe(data_dir: Path, device, args) -> dict:
    """LegNet ``paper`` short fit on the simulated file, then device vs CPU predictions of the same
    weights (see the module docstring, item 2)."""
    import numpy as np
    import torch

    from harness.data import read_table
    from harness.data.testset import TRAIN_FILE
    from submissions.legnet import LegNet

    t0 = time.perf_counter()
    table = read_table(data_dir / TRAIN_FILE)
    read_s = time.perf_counter() - t0
    order = np.random.default_rng(args.seed).permutation(len(table))
    n_valid = min(10_000, max(len(table) // 10, 2))
    valid, train = table.subset(np.sort(order[:n_valid])), table.subset(np.sort(order[n_valid:]))
    config, note = resolve_config("legnet", "paper", args.smoke)
    config.max_epochs, config.batches_per_epoch = args.probe_epochs, args.probe_steps
    method = LegNet(config, seed=args.seed, device=str(device))
    t0 = time.perf_counter()
    method.fit(train, valid)
    fit_s = time.perf_counter() - t0
    hist = method.history
    first, last = hist[0], hist[-1]
    loss_falls = bool(last["train_loss"] < first["train_loss"] and last["valid_loss"] < first["valid_loss"])

    sample = valid.subset(np.arange(min(args.probe_compare, len(valid))))
    on_cpu = LegNet(config, seed=args.seed, device="cpu")
    on_cpu.model = copy.deepcopy(method.model).cpu()
    pred_cpu = on_cpu.predict(sample)
    pred_dev = method.predict(sample)
    diff = np.abs(pred_dev - pred_cpu)
    compare = {"rows": len(sample), "max_abs_diff": float(diff.max()), "mean_abs_diff": float(diff.mean()),
               "pearson": float(np.corrcoef(pred_dev, pred_cpu)[0, 1]) if np.ptp(pred_cpu) > 0 else None,
               "tolerance": args.tolerance}
    compare["agree"] = bool(compare["max_abs_diff"] <= args.tolerance)
    if device.type == "cuda":  # the same without TF32 (cuDNN convolutions, matmuls): full fp32 on both sides
        before = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
        torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
        try:
            strict = float(np.abs(method.predict(sample) - pred_cpu).max())
        finally:
            torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = before
        compare.update(max_abs_diff_tf32_off=strict, tolerance_tf32_off=args.tolerance_strict)
        compare["agree"] = bool(compare["agree"] and strict <= args.tolerance_strict)
    return {"method": "legnet", "profile": "paper", "note": note, "file_rows": len(table), "read_seconds": read_s,
            "train_rows": len(train), "valid_rows": len(valid), "epochs": args.probe_epochs,
            "steps_per_epoch": args.probe_steps, "batch_size": config.batch_size, "fit_seconds": fit_s,
            "history": [{k: r.get(k) for k in ("epoch", "train_loss", "valid_loss", "valid_r", "valid_rho",
                                                 "seqs_per_s")} for r in hist],
            "loss_falls": loss_falls, "compare": compare, "passed": bool(loss_falls and compare["agree"])}


def _simulate(out_dir: str, rows: int, seed: int) -> str:
    """The probe's training file (child process on a GPU run; runs while the GPU is measured)."""
    from harness.data.simulate import simulate_dataset

    return str(simulate_dataset(out_dir, n_train=rows, n_test=300, seed=seed))


# ----------------------------------------------------------------------------------------------
# report
# ----------------------------------------------------------------------------------------------
def _gib(b) -> str:
    return "n/a" if b is None else f"{b / 2**30:.2f} GiB"


def _num(v, fmt: str = ",.0f") -> str:
    return "n/a" if v is None or (isinstance(v, float) and not math.isfinite(v)) else format(v, fmt)


def markdown(report: dict) -> str:
    """The report as Markdown: machine, throughput table, probe, projections, targets."""
    m = report["machine"]
    lines = [f"# Device check{' (SMOKE: tiny shapes, not benchmarks)' if report['smoke'] else ''}", "",
             f"- Device: {report['device']}" + (f" ({m.get('gpu')})" if m.get("gpu") else ""),
             f"- Machine: {m.get('cpu')}, {m.get('cores')} cores; torch {m.get('torch')}, CUDA {m.get('cuda')}, "
             f"Python {m.get('python')}; {m.get('date')}",
             f"- Command: `{report['command']}`",
             f"- Complete: {'yes' if report['complete'] else 'no'}; elapsed {report['elapsed_seconds']:.0f} s "
             f"of a {report['budget_seconds']:.0f} s budget", "",
             "## Training throughput (real training path: plug-in trainer, data resident on the device)", "",
             "| method | profile | precision | compile | batch | train seq/s | peak memory | GPU util mean / p10 | "
             "warm-up s | timed s | predict seq/s | note |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in report["rows"]:
        if r.get("error") or r.get("skipped"):
            lines.append(f"| {r['method']} | {r['profile']} | | | | | | | | | | "
                         f"{'ERROR: ' + r['error'] if r.get('error') else 'skipped: ' + r['skipped']} |")
            continue
        u = r["gpu_utilisation"]
        util = "n/a" if u["mean"] is None else f"{u['mean']:.0f} % / {u['p10']:.0f} %"
        lines.append(f"| {r['method']} | {r['profile']} | {r['precision']} | {r['compile']} | {r['batch_size']} | "
                     f"**{_num(r['seqs_per_s'])}** | {_gib(r['peak_memory_bytes'])} | {util} | "
                     f"{r['warmup_seconds']:.1f} | {r['train_seconds']:.1f} | {_num(r['predict_seqs_per_s'])} | "
                     f"{r['note']} |")
    p = report.get("probe")
    lines += ["", "## Correctness probe (LegNet paper, simulated full-format file)", ""]
    if p is None:
        lines.append("not run")
    elif p.get("error"):
        lines.append(f"ERROR: {p['error']}")
    else:
        c = p["compare"]
        lines += [f"- {p['file_rows']:,} rows ({p['train_rows']:,} train / {p['valid_rows']:,} held out), "
                  f"{p['epochs']} epochs x {p['steps_per_epoch']} batches x {p['batch_size']}, "
                  f"fit {p['fit_seconds']:.1f} s"
                  + (f"; {p['note']}" if p["note"] else ""),
                  "", "| epoch | train loss | valid loss | valid r | train seq/s |", "|---|---|---|---|---|"]
        for h in p["history"]:
            lines.append(f"| {h['epoch']} | {_num(h['train_loss'], '.4f')} | {_num(h['valid_loss'], '.4f')} | "
                         f"{_num(h['valid_r'], '.4f')} | {_num(h['seqs_per_s'])} |")
        strict = c.get("max_abs_diff_tf32_off")
        lines += ["", f"- Loss falls: **{'yes' if p['loss_falls'] else 'NO'}**",
                  f"- Device vs CPU predictions of the same weights ({c['rows']:,} sequences, expression bins): "
                  f"max |diff| {c['max_abs_diff']:.2e}, mean {c['mean_abs_diff']:.2e}, Pearson "
                  f"{_num(c['pearson'], '.7f')}; tolerance {c['tolerance']:g}: "
                  f"**{'agree' if c['agree'] else 'DISAGREE'}**"
                  + (f"; TF32 off: max |diff| {strict:.2e}, tolerance {c['tolerance_tf32_off']:g}"
                     if strict is not None else ""),
                  f"- Probe: **{'passed' if p['passed'] else 'FAILED'}**"]
    pr = report["projections"]
    lines += ["", "## Projections (full training file, 6,739,258 rows)", "",
              "| method | profile | epochs x steps x batch | epoch min | full paper training h | team |",
              "|---|---|---|---|---|---|"]
    for e in pr["full_paper_training"]:
        lines.append(f"| {e['method']} | {e['profile']} | {e['epochs']} x {e['steps_per_epoch']:,} x "
                     f"{e['batch_size']:,} | {e['epoch_minutes']:.1f} | **{e['hours']:.2f}** | {e['team'] or ''} |")
    lines += ["", "| profile | command | per-fold h (fit + predict) | 1 GPU h | 8 GPUs h |", "|---|---|---|---|---|"]
    for profile, kf in pr["kfold5"].items():
        per = ", ".join(f"{k} {v:.2f}" for k, v in sorted(kf["per_fold_hours"].items()))
        mark = "" if kf["complete"] else " (methods missing)"
        lines.append(f"| {profile} | `{kf['command']}` | {per} | **{kf['gpus_1_hours']:.2f}**{mark} | "
                     f"**{kf['gpus_8_hours']:.2f}**{mark} |")
    lines += [""] + [f"- {a}" for a in pr["assumptions"]]
    lines += ["", "## Targets", "", "| target | value | met |", "|---|---|---|"]
    for t in report["targets"]:
        met = "n/a" if t["met"] is None else ("yes" if t["met"] else "**no**")
        lines.append(f"| {t['target']} | {t['value'] or 'n/a'} | {met} |")
    return "\n".join(lines) + "\n"


def _command(argv: list[str]) -> str:
    """The command line as run, with ``--out``'s value as ``<out>`` (no machine paths in a report)."""
    words = ["python", "benchmarks/device_check.py"]
    hide = False
    for word in argv:
        words.append("<out>" if hide else ("--out=<out>" if word.startswith("--out=") else word))
        hide = word == "--out"
    return " ".join(words)


def _machine(device) -> dict:
    import torch

    from _common import machine

    info = machine()
    info["cuda"] = torch.version.cuda
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info.update(gpu=props.name, gpu_memory_bytes=int(props.total_memory),
                    multiprocessors=props.multi_processor_count, cudnn=torch.backends.cudnn.version())
    return info


# ----------------------------------------------------------------------------------------------
# main
# ----------------------------------------------------------------------------------------------
#: option -> (GPU default, --smoke default)
DEFAULTS = {"measure_seconds": (30.0, 0.5), "warmup_steps": (20, 2), "rows": (500_000, 1024),
            "predict_rows": (20_000, 128), "probe_rows": (500_000, 2000), "probe_epochs": (5, 3),
            "probe_steps": (60, 8), "probe_compare": (1024, 64), "budget": (470.0, 240.0)}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cuda", help="cuda, cuda:<i>, cpu, auto (default: cuda)")
    ap.add_argument("--out", type=Path, default=Path("runs/device-check"), help="where the JSON and Markdown go")
    ap.add_argument("--smoke", action="store_true", help="tiny shapes (cpu profiles, compile off): a CI-sized run")
    ap.add_argument("--methods", default=",".join(METHODS), help="comma-separated subset of " + ", ".join(METHODS))
    ap.add_argument("--profiles", default=f"paper,{FAST_PROFILE}", help="profiles to measure")
    helps = {"measure_seconds": "seconds of timed training per row", "warmup_steps": "untimed steps before them",
             "rows": "rows of the generated training file", "predict_rows": "sequences for the prediction rate",
             "probe_rows": "rows of the simulated probe file", "probe_epochs": "probe epochs",
             "probe_steps": "probe batches per epoch", "probe_compare": "sequences predicted on the device and the CPU",
             "budget": "seconds for the whole check; rows that would overrun it are skipped"}
    for key, (gpu, smoke) in DEFAULTS.items():
        ap.add_argument("--" + key.replace("_", "-"), type=type(gpu), default=None,
                        help=f"{helps[key]} (default {gpu:,}; with --smoke {smoke:,})")
    ap.add_argument("--tolerance", type=float, default=0.02,
                    help="largest |device - CPU| probe prediction in expression bins, PyTorch's defaults "
                         "(TF32 in cuDNN convolutions; default 0.02)")
    ap.add_argument("--tolerance-strict", type=float, default=1e-3,
                    help="the same with TF32 off on the GPU (default 0.001)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--carry-help", action="store_true", help="print which wheels to carry to the GPU machine and exit")
    args = ap.parse_args(argv)
    for key, (gpu, smoke) in DEFAULTS.items():
        if getattr(args, key) is None:
            setattr(args, key, smoke if args.smoke else gpu)
    args.methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = sorted(set(args.methods) - set(METHODS))
    if unknown:
        ap.error(f"--methods: unknown {', '.join(unknown)}; choose from {', '.join(METHODS)}")
    args.profiles = [p.strip() for p in args.profiles.split(",") if p.strip()]
    bad = sorted(set(args.profiles) - {"paper", FAST_PROFILE})
    if bad:
        ap.error(f"--profiles: unknown {', '.join(bad)}; choose from paper, {FAST_PROFILE}")
    return args


def main(argv: list[str] | None = None) -> dict:
    """Run the check; returns the report dict (also written to ``--out``)."""
    args = parse_args(argv)
    if args.carry_help:
        print(carry_help())
        return {}
    missing = missing_packages()
    if missing:
        print(f"device_check: missing packages: {', '.join(missing)}\n\n{carry_help()}", file=sys.stderr)
        raise SystemExit(2)

    import torch  # after the package check

    from bench_data import generate
    from harness.data import read_table
    from harness.data.fetch import MANIFEST
    from harness.io import write_json, write_text
    from harness.torch_method import json_safe
    from harness.training import select_device

    start = time.perf_counter()
    deadline = start + args.budget
    device = select_device(args.device)
    if args.smoke and device.type == "cpu":
        torch.set_num_threads(1)  # tiny shapes: thread barriers cost more than they give on a busy machine
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    n_test = {Path(r.path).name: r.rows for r in MANIFEST["dream2022"]}["filtered_test_data_with_MAUDE_expression.txt"]
    report: dict[str, Any] = {"smoke": args.smoke, "device": str(device), "complete": False,
                              "command": _command(sys.argv[1:] if argv is None else argv),
                              "budget_seconds": args.budget, "settings": {k: getattr(args, k) for k in DEFAULTS},
                              "machine": _machine(device), "rows": [], "probe": None}

    def save() -> None:
        report["elapsed_seconds"] = time.perf_counter() - start
        report["projections"] = project(report["rows"], n_test)
        report["targets"] = targets(report["rows"], report["projections"])
        write_json(out / "device_check.json", json_safe(report))
        write_text(out / "device_check.md", markdown(report))

    with tempfile.TemporaryDirectory(prefix="device-check-") as tmp:
        tmp = Path(tmp)
        # the probe's simulated file: in a child process while the GPU is measured (spawn: no CUDA state)
        pool = None
        if device.type == "cuda":
            pool = concurrent.futures.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
            probe_data = pool.submit(_simulate, str(tmp / "probe"), args.probe_rows, args.seed)
        t0 = time.perf_counter()
        generate(tmp / "train.txt", args.rows, seed=args.seed)
        table = read_table(tmp / "train.txt")
        report["data"] = {"rows": len(table), "generate_and_read_seconds": time.perf_counter() - t0,
                          "source": "bench_data.generate (official format, random bases, real length mix)"}
        save()

        # paper rows first (the targets), then the probe, then the compiled rows, LegNet's first: a
        # row that would overrun the budget is skipped, and compilation makes those the long ones
        plan = [(name, profile) for profile in args.profiles
                for name in sorted(args.methods, key=(FAST_ORDER if profile == FAST_PROFILE else METHODS).index)]
        for i, (name, profile) in enumerate(plan):
            compiled = profile != "paper" and not args.smoke
            need = args.measure_seconds + WARMUP_ESTIMATE["compiled" if compiled else "off"]
            reserve = PROBE_ESTIMATE if report["probe"] is None else 0.0
            row: dict[str, Any] = {"method": name, "profile": profile}
            if time.perf_counter() + need + reserve > deadline:
                row["skipped"] = f"budget ({args.budget:.0f} s) would be exceeded"
            else:
                print(f"[{time.perf_counter() - start:6.1f} s] {name} {profile} ...", flush=True)
                try:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore", UserWarning)
                        row = measure(name, profile, table, device, args, deadline - reserve)
                except Exception as exc:  # noqa: BLE001 - one failing row must not lose the others
                    traceback.print_exc()
                    first = (str(exc).strip().splitlines() or [""])[0]
                    row["error"] = f"{type(exc).__name__}: {first}"
                finally:
                    torch.compiler.reset()  # drop the row's compiled graphs (and the weights they hold)
                    if device.type == "cuda":
                        torch.cuda.empty_cache()
            report["rows"].append(row)
            print(json.dumps({k: row.get(k) for k in ("method", "profile", "seqs_per_s", "peak_memory_bytes",
                                                       "predict_seqs_per_s", "skipped", "error")}), flush=True)
            save()
            last_of_paper = profile == "paper" and (i + 1 == len(plan) or plan[i + 1][1] != "paper")
            if report["probe"] is None and (last_of_paper or i + 1 == len(plan)):
                print(f"[{time.perf_counter() - start:6.1f} s] probe ...", flush=True)
                try:
                    data_dir = Path(probe_data.result() if pool else _simulate(str(tmp / "probe"), args.probe_rows,
                                                                              args.seed))
                    report["probe"] = probe(data_dir, device, args)
                except Exception as exc:  # noqa: BLE001
                    traceback.print_exc()
                    report["probe"] = {"error": f"{type(exc).__name__}: {exc}", "passed": False}
                print(json.dumps({k: report["probe"].get(k) for k in ("loss_falls", "compare", "passed", "error")}),
                      flush=True)
                save()
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    report["complete"] = all(not (r.get("error") or r.get("skipped")) for r in report["rows"]) and bool(
        report["probe"] and not report["probe"].get("error"))
    save()
    print(markdown(report))
    return report


if __name__ == "__main__":
    main()
