"""Training-throughput benchmark of the BHI (DeepGXP) plug-in (paper profile by default).

Times ``--steps`` optimiser steps (after ``--warmup`` untimed ones) of exactly the training step
that :meth:`submissions.bhi.BHI.fit` runs -- the same :class:`harness.torch_train.Trainer` (per-batch
vector padding drawn 4:3:2 and one-hot on the device, forward on the sequence and its reverse
complement, conjoined Huber loss, backward, AdamW step; bf16 autocast on CUDA) -- and reports
training sequences/s (each sequence is run on both strands, so the network sees twice as many
rows) and peak memory (peak RSS of the process on CPU, ``torch.cuda.max_memory_allocated`` on CUDA).

Usage::

    python benchmarks/bench_bhi.py                      # paper profile, CPU, 2 timed steps
    python benchmarks/bench_bhi.py --device cuda --steps 50 --warmup 5
    python benchmarks/bench_bhi.py --profile cpu --steps 20 --json out.json

Batches come from real training rows (``--data``, default the dev_train file, trimmed as in
``fit``) or, with ``--data random``, from uniformly random 110-nt A/C/G/T sequences; throughput does
not depend on the values.
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

from harness.data import read_table
from harness.data.table import SeqTable
from harness.registry import load_profile
from submissions.bhi import BHI

DEFAULT_DATA = "/work/shared/data/dream2022/dev_train.txt"


def machine() -> dict:
    """Where the numbers were taken: CPU model and usable cores, load, torch version/threads, GPU."""
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
        info["load_average_1min"] = os.getloadavg()[0]
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def batches(method: BHI, data: str, n_rows: int, seed: int) -> tuple[tuple[np.ndarray, np.ndarray], np.ndarray]:
    """Training inputs ``((n_rows, seq_len) uint8 codes, (n_rows,) int32 lengths)`` and ``(n_rows,)
    float32`` standardised targets for the timed steps."""
    rng = np.random.default_rng(seed)
    if data == "random":
        codes = rng.integers(0, 4, size=(n_rows, method.config.seq_len)).astype(np.uint8)
        table = SeqTable(codes, np.full(n_rows, method.config.seq_len, dtype=np.int32),
                         rng.uniform(0, 17, n_rows).astype(np.float32))
    else:
        table = read_table(data)
        table = table.subset(rng.permutation(len(table))[:n_rows])
    method.target_std = float(np.std(table.y))
    return method.training_inputs(table), method.standardize(table.y)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--profile", default="paper", help="configs/bhi.toml profile (default: paper)")
    ap.add_argument("--device", default="cpu", help="auto, cpu, cuda[:i], tpu, mps (default: cpu)")
    ap.add_argument("--steps", type=int, default=2, help="timed training steps")
    ap.add_argument("--warmup", type=int, default=1, help="untimed warm-up steps")
    ap.add_argument("--batch-size", type=int, default=None, help="override the profile's batch size")
    ap.add_argument("--mixed-precision", default=None, help="override: auto, bf16, fp16, off")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch.set_num_threads (CPU); default: the profile's cpu_threads, else torch's default")
    ap.add_argument("--data", default=DEFAULT_DATA, help="training file, or 'random'")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, default=None, help="also write the result here")
    args = ap.parse_args(argv)

    config = load_profile("bhi", args.profile).config
    if args.threads:
        torch.set_num_threads(args.threads)
    elif config.cpu_threads and args.device == "cpu":
        torch.set_num_threads(config.cpu_threads)  # what fit does on the CPU (BHIConfig.cpu_threads)
    if args.batch_size:
        config.batch_size = args.batch_size
    if args.mixed_precision:
        config.mixed_precision = args.mixed_precision
    config.progress = False
    method = BHI(config, seed=args.seed, device=args.device)
    trainer = method.make_trainer()
    x, y = batches(method, args.data, (args.steps + args.warmup) * config.batch_size, args.seed)
    result = trainer.time_steps(x, y, steps=args.steps, warmup=args.warmup)
    result.update(profile=args.profile, parameters=method.num_parameters(), model_rows_per_sequence=2,
                  machine=machine(), command=" ".join([Path(sys.executable).name, *sys.argv]))
    mem = result["peak_memory_bytes"]
    print(json.dumps(result, indent=2))
    print(f"\nbhi [{args.profile}] {result['device']} {result['precision']}: "
          f"{result['seqs_per_s']:.2f} train seq/s (batch {result['batch_size']} x 2 strands, "
          f"{args.steps} timed steps, "
          f"median step {np.median(result['step_seconds']):.2f} s), peak memory "
          f"{'n/a' if mem is None else f'{mem / 2**30:.2f} GiB'} ({result['memory_kind']})")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
