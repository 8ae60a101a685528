"""Benchmark: loading the full-size training file, first (parse + cache) and cached.

Generates a file in the official training format and size (6,739,258 rows, ~805 MB; the
sequence-length distribution and the share of decimal expression values follow the real rows of
``demo_train.txt``: lengths 87-135 nt, 78% at 110 nt, 42% decimals like ``15.1823836007871``),
once, into ``--dir``; then measures, each in a fresh child process,

* ``read_table``: the reader alone (no cache), when ``--read-table`` is given;
* ``first``: :func:`harness.data.cache.load_training` with an empty cache (parse, encode, write);
* ``cached``: the same call again (the source digest, full verification of the cached arrays,
  then a memory-mapped load);
* ``digest``: :func:`harness.integrity.file_digest` of the source file alone (XXH3-128, what
  every ``load_training`` call pays to key the cache on the file's content);

with ``--baseline DIR`` (a directory holding an older ``harness`` package, e.g. made with
``git archive <commit> harness | tar -x -C DIR``), every measurement is also run with that
package first (rows ``before:...``), so before/after ratios come from the same run; reporting wall time, CPU time (user + system of the load call: less sensitive to other jobs on a
shared machine than wall time) and the child's peak resident memory (``VmHWM``, imports
included), with the 1-minute load average before and after.

Usage::

    python benchmarks/bench_data.py --dir /tmp/harness-bench [--rows 6739258] [--repeat 1] [--json out.json]
        [--read-table] [--baseline DIR]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

FULL_ROWS = 6_739_258
#: Length histogram (nt: rows) of the real training rows in demo_train.txt (6,370 rows).
LENGTHS = {
    87: 2, 88: 1, 90: 1, 91: 2, 93: 2, 94: 1, 95: 3, 96: 2, 97: 4, 98: 3, 99: 3, 100: 4, 101: 3,
    102: 6, 103: 5, 104: 11, 105: 17, 106: 29, 107: 50, 108: 152, 109: 812, 110: 5219, 111: 29,
    115: 1, 119: 1, 120: 1, 121: 1, 123: 1, 128: 1, 131: 1, 133: 1, 135: 1,
}
DECIMAL_SHARE = 0.42  # share of non-integer expression values among the same rows
FLANK_5P = b"TGCATTTTTTTCACATC"
FLANK_3P = b"GGTTACGGCTGTT"


def generate(path: Path, rows: int, seed: int = 0) -> None:
    """Write ``rows`` lines ``sequence<TAB>expression`` to ``path`` (via a temporary file).

    Sequences: the 17-nt 5' flank, random A/C/G/T, the 13-nt 3' flank (lengths drawn from
    :data:`LENGTHS`); expression: integers 0-17, or ``DECIMAL_SHARE`` of rows with 13 decimals
    (``15.1823836007871``), as in the real file.
    """
    rng = np.random.default_rng(seed)
    values = np.array(list(LENGTHS), dtype=np.int64)
    weights = np.array(list(LENGTHS.values()), dtype=np.float64)
    seq_len = rng.choice(values, size=rows, p=weights / weights.sum())
    whole = rng.integers(0, 18, size=rows)
    decimal = rng.random(rows) < DECIMAL_SHARE
    whole[decimal] = rng.integers(0, 17, size=int(decimal.sum()))
    int_width = np.where(whole >= 10, 2, 1)
    expr_len = int_width + np.where(decimal, 14, 0)  # '.' + 13 digits
    line_len = seq_len + 1 + expr_len + 1
    ends = np.cumsum(line_len)
    starts = ends - line_len
    total = int(ends[-1])

    buf = np.frombuffer(b"ACGT", dtype=np.uint8)[rng.integers(0, 4, size=total, dtype=np.uint8)]
    for k, b in enumerate(FLANK_5P):
        buf[starts + k] = b
    for k, b in enumerate(FLANK_3P):
        buf[starts + seq_len - len(FLANK_3P) + k] = b
    tab = starts + seq_len
    buf[tab] = ord("\t")
    buf[ends - 1] = ord("\n")
    # expression: integer part, then for decimals '.' and 13 random digits (last one non-zero)
    two = int_width == 2
    buf[tab[two] + 1] = ord("1")
    buf[tab + int_width] = ord("0") + whole % 10
    dec = np.flatnonzero(decimal)
    point = tab[dec] + int_width[dec] + 1
    buf[point] = ord(".")
    for k in range(1, 14):
        low = 1 if k == 13 else 0
        buf[point + k] = ord("0") + rng.integers(low, 10, size=len(dec))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    buf.tofile(tmp)
    os.replace(tmp, path)


def _peak_rss_bytes() -> int | None:
    """Peak resident memory of this program in bytes (``VmHWM``):
    :func:`harness.resources.peak_rss_bytes` of *this* checkout, loaded from its file so that a
    ``--baseline`` child (an older ``harness`` package first on ``sys.path``) measures the same
    way."""
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "harness" / "resources.py"
    spec = importlib.util.spec_from_file_location("_harness_resources", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.peak_rss_bytes()


def _child(mode: str, file: Path, cache: Path) -> None:
    """Run one measurement in this (fresh) process and print a JSON line."""
    from harness.data.cache import load_training
    from harness.data.readers import read_table

    if mode == "digest":
        from harness.integrity import file_digest

        t0, c0 = time.perf_counter(), time.process_time()
        file_digest(file)
        print(json.dumps({"mode": mode, "rows": 0, "width": 0, "wall_s": time.perf_counter() - t0,
                          "cpu_s": time.process_time() - c0, "touch_s": 0.0, "peak_rss_bytes": _peak_rss_bytes(),
                          "checksum": 0, "codes_type": ""}))
        return
    t0, c0 = time.perf_counter(), time.process_time()
    table = read_table(file) if mode == "read_table" else load_training(file, cache_dir=cache)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    peak = _peak_rss_bytes()
    # then read every page of the codes once (what a full epoch does to a memory-mapped cache)
    t1 = time.perf_counter()
    checksum = int(np.asarray(table.lengths).sum()) + int(np.asarray(table.codes[:, 0]).sum())
    touch = time.perf_counter() - t1
    import harness

    print(json.dumps({"mode": mode, "rows": len(table), "width": int(table.codes.shape[1]), "wall_s": wall, "cpu_s": cpu,
                      "touch_s": touch, "peak_rss_bytes": peak, "checksum": checksum,
                      "codes_type": type(table.codes).__name__, "harness": Path(harness.__file__).parent.parent.name}))


def _run_child(mode: str, file: Path, cache: Path, baseline: Path | None = None) -> dict:
    """One measurement in a fresh process; ``baseline``: import ``harness`` from that directory."""
    load_before = os.getloadavg()[0]
    env = dict(os.environ)
    if baseline is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(baseline.resolve()), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    out = subprocess.run(
        [sys.executable, __file__, "--_child", mode, "--file", str(file), "--cache", str(cache)],
        check=True, capture_output=True, text=True, env=env,
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    if baseline is not None:
        result["mode"] = f"before:{mode}"
    result["load_before"] = load_before
    result["load_after"] = os.getloadavg()[0]
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", type=Path, default=Path("/tmp/harness-bench-data"), help="where the generated file and the cache go")
    parser.add_argument("--rows", type=int, default=FULL_ROWS, help=f"rows of the generated file (default {FULL_ROWS:,}, the official size)")
    parser.add_argument("--repeat", type=int, default=1, help="measure first and cached load this many times")
    parser.add_argument("--read-table", action="store_true", help="also time read_table alone")
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    parser.add_argument("--baseline", type=Path, default=None,
                        help="directory with an older harness package: measure it too, first, in the same run")
    parser.add_argument("--_child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--file", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--cache", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args._child:
        _child(args._child, args.file, args.cache)
        return 0

    file = args.dir / f"train_{args.rows}.txt"
    if not file.is_file():
        t0 = time.perf_counter()
        generate(file, args.rows)
        print(f"generated {file} ({file.stat().st_size:,} bytes) in {time.perf_counter() - t0:.1f} s", flush=True)
    cache = args.dir / "cache"
    results = []
    versions = [(args.baseline, args.dir / "cache-baseline")] if args.baseline else []
    versions.append((None, cache))
    if args.read_table:
        for base, _ in versions:
            results.append(_run_child("read_table", file, cache, base))
    for _ in range(args.repeat):
        for base, where in versions:
            shutil.rmtree(where, ignore_errors=True)
            results.append(_run_child("first", file, where, base))
            results.append(_run_child("cached", file, where, base))
    results.append(_run_child("digest", file, cache))
    for where in {where for _, where in versions}:
        shutil.rmtree(where, ignore_errors=True)

    print(f"\n{file}: {file.stat().st_size:,} bytes, {args.rows:,} rows; {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs; {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC")
    print(f"{'load':<19}{'rows':>11}{'width':>7}{'wall s':>9}{'CPU s':>8}{'peak RSS GB':>13}{'read all s':>12}{'load avg before/after':>24}")
    for r in results:
        print(f"{r['mode']:<19}{r['rows']:>11,}{r['width']:>7}{r['wall_s']:>9.2f}{r['cpu_s']:>8.2f}{r['peak_rss_bytes'] / 1e9:>13.2f}{r['touch_s']:>12.2f}"
              f"{r['load_before']:>15.2f} / {r['load_after']:.2f}")
    if args.json:
        args.json.write_text(json.dumps({"file": str(file), "bytes": file.stat().st_size, "rows": args.rows,
                                         "results": results}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
