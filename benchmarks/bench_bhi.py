"""Training-throughput benchmark of the BHI (DeepGXP) plug-in (paper profile by default).

Times ``--steps`` optimiser steps (after ``--warmup`` untimed ones) of exactly the training step
that :meth:`submissions.bhi.BHI.fit` runs -- the same :class:`harness.training.SeqTrainer` (per-batch
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

import numpy as np

from _common import config_for, parser, report, trainer_for
from harness.data import read_table
from harness.data.table import SeqTable
from submissions.bhi import BHI


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
    args = parser("bhi", __doc__, threads_help="torch.set_num_threads (CPU); default: the profile's cpu_threads, "
                  "else torch's default").parse_args(argv)
    config = config_for("bhi", args)
    method = BHI(config, seed=args.seed, device=args.device)
    trainer = trainer_for(method, args)
    x, y = batches(method, args.data, (args.steps + args.warmup) * config.batch_size, args.seed)
    result = trainer.time_steps(x, y, steps=args.steps, warmup=args.warmup)
    return report(result, args, "bhi", method.num_parameters(), batch_note=" x 2 strands", model_rows_per_sequence=2)


if __name__ == "__main__":
    main()
