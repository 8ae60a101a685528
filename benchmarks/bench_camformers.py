"""Training-throughput benchmark of the Camformers plug-in (paper profile by default).

Times ``--steps`` optimiser steps (after ``--warmup`` untimed ones) of exactly the training step
that :meth:`submissions.camformers.Camformers.fit` runs -- the same :class:`harness.training.SeqTrainer`
(one-hot on the device, forward, L1 loss, backward, AdamW step; bf16 autocast on CUDA) -- and
reports training sequences/s and peak memory (peak RSS of the process on CPU,
``torch.cuda.max_memory_allocated`` on CUDA).

Usage::

    python benchmarks/bench_camformers.py                      # paper profile, CPU, 3 timed steps
    python benchmarks/bench_camformers.py --device cuda --steps 50 --warmup 5
    python benchmarks/bench_camformers.py --profile cpu --steps 20 --json out.json

Batches come from real training rows (``--data``, default the dev_train file, filtered and padded
as in ``fit``) or, with ``--data random``, from uniformly random A/C/G/T sequences; throughput does
not depend on the values.
"""

from __future__ import annotations

import numpy as np

from _common import config_for, parser, report, trainer_for
from harness.data import read_table
from submissions.camformers import Camformers, model_codes, select_training_rows


def batches(data: str, config, n_rows: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``(n_rows, seq_len) uint8`` codes and ``(n_rows,) float32`` targets for the timed steps."""
    if data == "random":
        rng = np.random.default_rng(seed)
        return (rng.integers(0, 4, size=(n_rows, config.seq_len)).astype(np.uint8),
                rng.uniform(0, 17, n_rows).astype(np.float32))
    table = read_table(data)
    table = table.subset(select_training_rows(table.codes, table.lengths, config.seq_len, config.length_tolerance,
                                              config.max_n))
    idx = np.random.default_rng(seed).permutation(len(table))[:n_rows]
    table = table.subset(idx)
    return model_codes(table, config.seq_len), table.y


def main(argv: list[str] | None = None) -> dict:
    args = parser("camformers", __doc__, steps=3).parse_args(argv)
    config = config_for("camformers", args)
    method = Camformers(config, seed=args.seed, device=args.device)
    trainer = trainer_for(method, args)
    codes, y = batches(args.data, config, (args.steps + args.warmup) * config.batch_size, args.seed)
    result = trainer.time_steps(codes, y, steps=args.steps, warmup=args.warmup)
    return report(result, args, "camformers", method.num_parameters())


if __name__ == "__main__":
    main()
