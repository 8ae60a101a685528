"""kmer-lgbm under CPU contention: fit time of the default profile with the machine idle and with
busy processes on every core, for thread settings side by side.

LightGBM parallelises each boosting round with OpenMP. With the GNU OpenMP runtime's default
(active) wait policy, threads that finish a parallel region spin before sleeping; when another
process holds a core, the spinning threads and the one that was descheduled trade the cores and
each round waits for the slowest thread. The measurement below is what sized the default
(``KmerLGBMConfig.n_jobs`` and :func:`baselines.kmer.lightgbm_threads`).

    python benchmarks/bench_contention.py [--rows 20000] [--repeats 3] [--json out.json]

Each variant runs in a fresh Python process (the OpenMP runtime reads its environment once, at
load), alternating idle and busy, and the script prints a Markdown table of median seconds and
the busy/idle ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

CHILD = r"""
import sys, time
import numpy as np
from harness.data import read_table
from harness.registry import load_profile, get
cls = get("kmer-lgbm")
cfg = load_profile(cls, "default").config
import dataclasses
n_jobs = int(sys.argv[2])
if n_jobs != 0:
    cfg = dataclasses.replace(cfg, n_jobs=n_jobs)
table = read_table(sys.argv[1])
t0 = time.perf_counter()
cls(cfg, seed=0).fit(table)
print(time.perf_counter() - t0)
"""

#: (label, n_jobs passed to the config (0 = the profile's own), extra environment)
VARIANTS = [
    ("n_jobs=-1 (all cores), OpenMP active wait", -1, {"OMP_WAIT_POLICY": "ACTIVE"}),
    ("n_jobs=-1 (all cores), OpenMP passive wait", -1, {"OMP_WAIT_POLICY": "PASSIVE"}),
    ("n_jobs=1", 1, {}),
    ("default profile as shipped", 0, {}),
]


def _fit_seconds(train: str, n_jobs: int, env: dict) -> float:
    full = {**os.environ, **env}
    if not env:
        full.pop("OMP_WAIT_POLICY", None)
    out = subprocess.run([sys.executable, "-c", CHILD, train, str(n_jobs)], env=full, check=True,
                         capture_output=True, text=True)
    return float(out.stdout.strip().splitlines()[-1])


def _hogs() -> list[subprocess.Popen]:
    n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=20000, help="simulated training rows")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", default=None)
    ap.add_argument("--variants", default=None, help="comma-separated indices into the variant list (default: all)")
    args = ap.parse_args()

    from harness.data.simulate import simulate_dataset

    with tempfile.TemporaryDirectory() as tmp:
        data = simulate_dataset(tmp, n_train=args.rows, n_test=300, seed=0)
        train = str(data / "train_sequences.txt")
        rows = []
        chosen = VARIANTS if args.variants is None else [VARIANTS[int(i)] for i in args.variants.split(",")]
        for label, n_jobs, env in chosen:
            idle, busy = [], []
            for _ in range(args.repeats):
                idle.append(_fit_seconds(train, n_jobs, env))
                hogs = _hogs()
                try:
                    time.sleep(0.5)
                    busy.append(_fit_seconds(train, n_jobs, env))
                finally:
                    for h in hogs:
                        h.kill()
                        h.wait()
            r = {"variant": label, "idle_s": statistics.median(idle), "busy_s": statistics.median(busy),
                 "ratio": statistics.median(busy) / statistics.median(idle), "idle_all": idle, "busy_all": busy}
            rows.append(r)
            if len(rows) == 1:
                print(f"| kmer-lgbm fit, {args.rows:,} simulated rows | idle s | busy s | busy / idle |")
                print("|---|---:|---:|---:|")
            print(f"| {r['variant']} | {r['idle_s']:.1f} | {r['busy_s']:.1f} | {r['ratio']:.2f}x |", flush=True)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"rows": args.rows, "cores": len(os.sched_getaffinity(0)), "results": rows}, fh, indent=2)


if __name__ == "__main__":
    main()
