"""What the training-throughput benchmarks of the PyTorch plug-ins share (``bench_<method>.py``):
the command line, the profile with its overrides, the machine record and the report.

The scripts run as ``python benchmarks/bench_<method>.py``, which puts this folder on
``sys.path``; they import this module as ``_common``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import sys
from pathlib import Path

import numpy as np
import torch

from harness.method import MethodConfig
from harness.registry import load_profile
from harness.torch_method import TorchMethod
from harness.training import SeqTrainer

#: default ``--data``: the real training rows, ``../shared/data/dream2022/dev_train.txt`` beside the
#: repository (where the tests read them too).
DEFAULT_DATA = str(Path(__file__).resolve().parents[1].parent / "shared" / "data" / "dream2022" / "dev_train.txt")


def machine() -> dict:
    """Where the numbers were taken: CPU model, usable cores, 1-minute load average, torch
    version/threads, Python, date and (when present) the GPU."""
    cpu = platform.processor() or "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    info = {"cpu": cpu, "cores": cores, "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
            "python": platform.python_version(), "date": dt.datetime.now().astimezone().isoformat(timespec="seconds")}
    if hasattr(os, "getloadavg"):
        info["load_avg_1min"] = round(os.getloadavg()[0], 2)
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def parser(method: str, doc: str, steps: int = 2, threads_help: str = "torch.set_num_threads (CPU)"
           ) -> argparse.ArgumentParser:
    """The options every benchmark takes (``--profile``, ``--device``, ``--steps``, ``--warmup``,
    ``--batch-size``, ``--mixed-precision``, ``--compile``, ``--channels-last``, ``--threads``,
    ``--data``, ``--seed``, ``--json``);
    the description is the first paragraph of ``doc``. A script adds its own options to it."""
    ap = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    ap.add_argument("--profile", default="paper", help=f"profile of {method} (shipped <package>/configs/{method}.toml; default: paper)")
    ap.add_argument("--device", default="cpu", help="auto, cpu, cuda[:i], tpu, mps (default: cpu)")
    ap.add_argument("--steps", type=int, default=steps, help="timed training steps")
    ap.add_argument("--warmup", type=int, default=1, help="untimed warm-up steps")
    ap.add_argument("--batch-size", type=int, default=None, help="override the profile's batch size")
    ap.add_argument("--mixed-precision", default=None, help="override: auto, bf16, fp16, off")
    ap.add_argument("--compile", default=None, help="override: torch.compile mode (default, max-autotune, "
                    "reduce-overhead) or off; compilation happens in the warm-up steps")
    ap.add_argument("--channels-last", action="store_true", help="channels-last memory format (Camformers)")
    ap.add_argument("--threads", type=int, default=None, help=threads_help)
    ap.add_argument("--data", default=DEFAULT_DATA, help="training file, or 'random'")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, default=None, help="also write the result here")
    return ap


def config_for(method: str, args: argparse.Namespace) -> MethodConfig:
    """The ``--profile`` config of ``method`` with the ``--batch-size`` / ``--mixed-precision`` /
    ``--compile`` / ``--channels-last`` overrides and the progress display off."""
    config = load_profile(method, args.profile).config
    if args.batch_size:
        config.batch_size = args.batch_size
    if args.mixed_precision:
        config.mixed_precision = args.mixed_precision
    if args.compile:
        config.compile = args.compile
    if args.channels_last:
        if not hasattr(config, "channels_last"):
            raise SystemExit(f"--channels-last: {method} has no 2-D convolutions (no channels_last setting)")
        config.channels_last = True
    config.progress = False
    return config


def trainer_for(method: TorchMethod, args: argparse.Namespace) -> SeqTrainer:
    """The plug-in's training path, :meth:`harness.torch_method.TorchMethod.make_trainer` (the one
    entry point ``fit`` uses), with torch's thread count set to ``--threads``, else, on the CPU,
    to the method's :meth:`~harness.torch_method.TorchMethod.cpu_threads` where it sets one (what
    its ``fit`` does)."""
    threads = args.threads or (method.cpu_threads() if args.device == "cpu" else 0)
    if threads:
        torch.set_num_threads(threads)
    return method.make_trainer()


def report(result: dict, args: argparse.Namespace, method: str, parameters: int, *, batch_note: str = "",
           extra: str = "", **fields) -> dict:
    """Complete ``result`` (from :meth:`harness.training.SeqTrainer.time_steps`) with ``profile``,
    ``parameters``, ``fields``, ``machine`` and ``command``; print it as JSON and a one-line
    summary (``batch_note`` after the batch size, ``extra`` at the end); write it to ``--json``
    when given. Returns ``result``."""
    result.update(profile=args.profile, parameters=parameters, **fields, machine=machine(),
                  command=" ".join([Path(sys.executable).name, *sys.argv]))
    mem = result["peak_memory_bytes"]
    print(json.dumps(result, indent=2))
    layout = "".join([f" compile={result['compile']}" if result.get("compile", "off") != "off" else "",
                      " channels-last" if result.get("channels_last") else ""])
    print(f"\n{method} [{args.profile}] {result['device']} {result['precision']}{layout}: "
          f"{result['seqs_per_s']:.2f} train seq/s (batch {result['batch_size']}{batch_note}, {args.steps} timed "
          f"steps, median step {np.median(result['step_seconds']):.2f} s), peak memory "
          f"{'n/a' if mem is None else f'{mem / 2**30:.2f} GiB'} ({result['memory_kind']}){extra}")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return result
