"""Training-throughput benchmark of the LegNet plug-in (paper profile by default).

Times ``--steps`` optimiser steps (after ``--warmup`` untimed ones) of exactly the training step
that :meth:`submissions.legnet.LegNet.fit` runs -- the same :class:`harness.torch_train.Trainer`
(6-channel encoding and soft labels on the device, forward, KL loss, backward, AdamW step; fp32
unless ``--mixed-precision``) -- and reports training sequences/s (rows of the reverse-complement
doubled training set) and peak memory (peak RSS of the process on CPU,
``torch.cuda.max_memory_allocated`` on CUDA). Optionally (``--predict N``) also times strand-averaged
prediction of ``N`` sequences.

Usage::

    python benchmarks/bench_legnet.py                         # paper profile, CPU, 2 timed steps
    python benchmarks/bench_legnet.py --device cuda --steps 50 --warmup 5
    python benchmarks/bench_legnet.py --profile cpu --steps 10 --predict 4096 --json out.json

Batches come from real training rows (``--data``, default the dev_train file, padded and doubled
as in ``fit``) or, with ``--data random``, from uniformly random A/C/G/T sequences; throughput does
not depend on the values. CPU numbers on a shared machine depend on its load: the result records
the 1-minute load average and the process CPU time next to the wall time.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

from harness.data import read_table
from harness.data.table import SeqTable
from harness.registry import load_profile
from harness.torch_train import predict_batches
from submissions.legnet import LegNet, LegNetTransform, expected_bin, legnet_codes, training_arrays

DEFAULT_DATA = "/work/shared/data/dream2022/dev_train.txt"


def machine() -> dict:
    """Where the numbers were taken: CPU model, usable cores, load, torch version/threads, GPU."""
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


def rows(data: str, n_rows: int, seed: int) -> SeqTable:
    """``n_rows`` training rows (``--data`` file, random subset; or random 110-nt constructs)."""
    if data == "random":
        rng = np.random.default_rng(seed)
        body = rng.choice(np.array(list("ACGT")), size=(n_rows, 80))
        seqs = ["TGCATTTTTTTCACATC" + "".join(b) + "GGTTACGGCTGTT" for b in body]
        return SeqTable.from_strings(seqs, rng.uniform(0, 17, n_rows).astype(np.float32))
    table = read_table(data)
    idx = np.random.default_rng(seed).permutation(len(table))[:n_rows]
    return table.subset(idx)


def main(argv: list[str] | None = None) -> dict:
    """Run the benchmark; print and return the result dict (see :meth:`Trainer.time_steps`), with
    ``profile``, ``parameters``, ``cpu_seconds`` (process CPU time of the timed and warm-up steps),
    ``machine``, ``command`` and, with ``--predict``, ``predict_seqs_per_s``."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--profile", default="paper", help="configs/legnet.toml profile (default: paper)")
    ap.add_argument("--device", default="cpu", help="auto, cpu, cuda[:i], tpu, mps (default: cpu)")
    ap.add_argument("--steps", type=int, default=2, help="timed training steps")
    ap.add_argument("--warmup", type=int, default=1, help="untimed warm-up steps")
    ap.add_argument("--batch-size", type=int, default=None, help="override the profile's batch size")
    ap.add_argument("--mixed-precision", default=None, help="override: auto, bf16, fp16, off")
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (CPU)")
    ap.add_argument("--predict", type=int, default=0, help="also time prediction of this many sequences")
    ap.add_argument("--data", default=DEFAULT_DATA, help="training file, or 'random'")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, default=None, help="also write the result here")
    args = ap.parse_args(argv)

    if args.threads:
        torch.set_num_threads(args.threads)
    config = load_profile("legnet", args.profile).config
    if args.batch_size:
        config.batch_size = args.batch_size
    if args.mixed_precision:
        config.mixed_precision = args.mixed_precision
    config.progress = False
    method = LegNet(config, seed=args.seed, device=args.device)
    trainer = method.make_trainer()
    n_train = (args.steps + args.warmup) * config.batch_size
    table = rows(args.data, max((n_train + 1) // 2, args.predict), args.seed)
    x, y = training_arrays(table, config.seq_len)  # doubled: forward strands then reverse complements
    order = np.random.default_rng(args.seed).permutation(len(y))[:n_train]
    cpu0 = time.process_time()
    result = trainer.time_steps(tuple(a[order] for a in x), y[order], steps=args.steps, warmup=args.warmup)
    result["cpu_seconds"] = time.process_time() - cpu0
    if args.predict:
        codes = legnet_codes(table.subset(np.arange(args.predict)), config.seq_len)
        t0 = time.perf_counter()
        predict_batches(trainer.model, codes, config.eval_batch_size, trainer.device, LegNetTransform(config),
                        to_prediction=expected_bin)
        result["predict_seqs_per_s"] = args.predict / (time.perf_counter() - t0)
    result.update(profile=args.profile, parameters=method.num_parameters(), machine=machine(),
                  command=" ".join([Path(sys.executable).name, *sys.argv]))
    mem = result["peak_memory_bytes"]
    print(json.dumps(result, indent=2))
    extra = f", predict {result['predict_seqs_per_s']:.1f} seq/s (both strands)" if args.predict else ""
    print(f"\nlegnet [{args.profile}] {result['device']} {result['precision']}: "
          f"{result['seqs_per_s']:.2f} train seq/s (batch {result['batch_size']}, {args.steps} timed steps, "
          f"median step {np.median(result['step_seconds']):.2f} s), peak memory "
          f"{'n/a' if mem is None else f'{mem / 2**30:.2f} GiB'} ({result['memory_kind']}){extra}")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
