"""Training-throughput benchmark of the LegNet plug-in (paper profile by default).

Times ``--steps`` optimiser steps (after ``--warmup`` untimed ones) of exactly the training step
that :meth:`submissions.legnet.LegNet.fit` runs -- the same :class:`harness.training.SeqTrainer`
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

import time

import numpy as np

from _common import config_for, parser, report, trainer_for
from harness.data import read_table
from harness.data.table import SeqTable
from submissions.legnet import LegNet, training_arrays


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
    """Run the benchmark; print and return the result dict (see :meth:`SeqTrainer.time_steps`), with
    ``profile``, ``parameters``, ``cpu_seconds`` (process CPU time of the timed and warm-up steps),
    ``machine``, ``command`` and, with ``--predict``, ``predict_seqs_per_s``."""
    ap = parser("legnet", __doc__)
    ap.add_argument("--predict", type=int, default=0, help="also time prediction of this many sequences")
    args = ap.parse_args(argv)
    config = config_for("legnet", args)
    method = LegNet(config, seed=args.seed, device=args.device)
    trainer = trainer_for(method, args)
    n_train = (args.steps + args.warmup) * config.batch_size
    table = rows(args.data, max((n_train + 1) // 2, args.predict), args.seed)
    x, y = training_arrays(table, config.seq_len)  # doubled: forward strands then reverse complements
    order = np.random.default_rng(args.seed).permutation(len(y))[:n_train]
    cpu0 = time.process_time()
    result = trainer.time_steps(tuple(a[order] for a in x), y[order], steps=args.steps, warmup=args.warmup)
    result["cpu_seconds"] = time.process_time() - cpu0
    if args.predict:
        codes = method.predict_inputs(table.subset(np.arange(args.predict)))
        method.model = trainer.model
        t0 = time.perf_counter()
        method.predict_rows(codes)  # what predict runs: both strands, averaged
        result["predict_seqs_per_s"] = args.predict / (time.perf_counter() - t0)
    extra = f", predict {result['predict_seqs_per_s']:.1f} seq/s (both strands)" if args.predict else ""
    return report(result, args, "legnet", method.num_parameters(), extra=extra)


if __name__ == "__main__":
    main()
