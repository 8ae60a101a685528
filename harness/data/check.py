"""Validate a data directory and summarise it: ``harness data check``.

:func:`check_data_dir` reads a directory in the official DREAM 2022 layout (see
:mod:`harness.data.testset`) with the same readers the harness uses, so anything it accepts the
benchmark accepts too, and any bad input stops it with a :class:`~harness.data.readers.DataError`
naming the file, the line and the problem. :func:`render_check` lays the summary out as rich
tables; the ``harness data`` commands are in :mod:`harness.cli.data`.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Group
from rich.table import Table
from rich.text import Text

from .cache import check_training_table
from .readers import MAX_LENGTH, OUTLIER_ABS, OUTLIER_IQRS, BadRows, DataError, DataWarning, read_table
from .simulate import MARKER, is_simulated
from .testset import TRAIN_FILE
from .testset import CATEGORIES, PUBLIC_DIR, SUBSET_DIR, TEST_FILE, load_test_set

#: Extra files of ``public_leaderboard_ids`` reported beside the per-category files.
PUBLIC_EXTRA = ("ground.json", "sample_submission.json")


def _length_histogram(lengths: np.ndarray) -> dict[int, int]:
    values, counts = np.unique(np.asarray(lengths), return_counts=True)
    return {int(v): int(c) for v, c in zip(values, counts)}


def _stats(y: np.ndarray) -> dict[str, float]:
    y = np.asarray(y, dtype=np.float64)
    return {"min": float(y.min()), "max": float(y.max()), "mean": float(y.mean())}


def check_data_dir(
    data_dir: str | os.PathLike,
    train: str | os.PathLike | None = None,
    skip_bad_rows: bool = False,
    snv_pairs: str | os.PathLike | None = None,
    max_length: int = MAX_LENGTH,
) -> dict[str, Any]:
    """Validate a data directory and return a JSON-ready summary.

    Args:
        data_dir: directory in the official layout (must hold the test file).
        train: training file (``sequence<TAB>expression``); default ``train_sequences.txt`` in
            ``data_dir`` when present, else no training file is checked.
        skip_bad_rows: drop bad training rows and count them by problem instead of failing.
        snv_pairs: SNV pair CSV (``alt_pos``/``ref_pos``) used when the official SNV file is absent.
        max_length: longest training sequence accepted, in nt (longer: a bad row).

    Returns:
        A dict with keys

        * ``data_dir`` (str), ``simulated`` (bool: ``SIMULATED.json`` present);
        * ``test``: ``path``, ``rows`` (int), ``lengths`` ({length in nt: count}), ``expression``
          ({``min``, ``max``, ``mean``}, MAUDE scale);
        * ``train``: None, or ``path``, ``rows``, ``lengths``, ``expression`` (bins),
          ``bad_rows`` ({``total``, ``by_problem``: {problem: count}, ``examples``: [str]}) and
          ``outliers`` ({``count``, ``median``, ``reach``, ``examples``}: see
          :func:`harness.data.readers.outliers`);
        * ``subsets``: {category: {``file``, ``present``, ``size``}} (``size``: ids or pairs,
          None when absent; for SNVs the pairs in use, whatever their source);
        * ``public``: {category or extra file: {``file``, ``present``, ``size``}};
        * ``public_ids`` (int or None): distinct test indices on the public board;
        * ``snv_source`` (str), ``missing`` ([relative paths]), ``notes`` ([str]).

    Raises:
        DataError: the directory or the test file is missing, or any file is malformed (message:
            ``file:line: problem``); bad training rows unless ``skip_bad_rows``; a training
            file that cannot be trained on (:func:`harness.data.cache.check_training_table`:
            fewer than 2 rows, a constant target).
    """
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise DataError(f"{data_dir}: no such data directory")
    tests = load_test_set(data_dir, snv_pairs=snv_pairs)
    notes: list[str] = []
    simulated = is_simulated(data_dir)
    if simulated:
        notes.append(f"SIMULATED data ({MARKER} present): not challenge data")

    summary: dict[str, Any] = {
        "data_dir": str(data_dir),
        "simulated": simulated,
        "test": {
            "path": str(data_dir / TEST_FILE),
            "rows": len(tests),
            "lengths": _length_histogram(tests.table.lengths),
            "expression": _stats(tests.table.y),
        },
    }

    train_path = Path(train) if train is not None else (data_dir / TRAIN_FILE)
    if train is None and not train_path.is_file():
        summary["train"] = None
        notes.append(f"no training file ({TRAIN_FILE} absent; pass --train FILE)")
    else:
        bad = BadRows()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DataWarning)  # outliers are reported in the summary's notes
            table = read_table(train_path, skip_bad_rows=skip_bad_rows, bad=bad, max_length=max_length)
        check_training_table(table, train_path)
        summary["train"] = {
            "path": str(train_path),
            "rows": len(table),
            "lengths": _length_histogram(table.lengths),
            "expression": _stats(table.y),
            "bad_rows": {"total": bad.total, "by_problem": dict(sorted(bad.counts.items())), "examples": list(bad.examples)},
            "outliers": table.meta["outliers"],
        }
        if bad.total:
            notes.append(f"{bad.total} bad training rows dropped")
        if table.y.min() < 0 or table.y.max() > 17:
            notes.append("training expression outside the 0..17 sort-bin range")
        far = table.meta["outliers"]
        if far["count"]:
            notes.append(f"{far['count']} training expression value(s) beyond +-{OUTLIER_ABS:g} or more than "
                         f"{OUTLIER_IQRS:g} IQRs from the median {far['median']:.4g}, first: {'; '.join(far['examples'])}")

    missing: list[str] = []
    subsets: dict[str, dict[str, Any]] = {}
    public: dict[str, dict[str, Any]] = {}
    for cat, (csv_name, json_name) in CATEGORIES.items():
        rel = f"{SUBSET_DIR}/{csv_name}"
        present = (data_dir / rel).is_file()
        if not present:
            missing.append(rel)
        ids = tests.categories.get(cat)
        subsets[cat] = {"file": rel, "present": present, "size": None if ids is None else int(len(ids))}
        rel = f"{PUBLIC_DIR}/{json_name}"
        present = (data_dir / rel).is_file()
        if not present:
            missing.append(rel)
        pub = None if tests.public is None else tests.public.get(cat)
        public[cat] = {"file": rel, "present": present, "size": None if pub is None else int(len(pub))}
    for name in PUBLIC_EXTRA:
        rel = f"{PUBLIC_DIR}/{name}"
        present = (data_dir / rel).is_file()
        if not present:
            missing.append(rel)
        public[name] = {"file": rel, "present": present, "size": None}
    summary["subsets"] = subsets
    summary["public"] = public
    public_ids = tests.public_ids
    summary["public_ids"] = None if public_ids is None else int(len(public_ids))
    summary["snv_source"] = tests.snv_source
    if not tests.snv_source.startswith("official"):
        notes.append(f"SNV pairs: {tests.snv_source} (reports must say so)")
    summary["missing"] = missing
    summary["notes"] = notes
    return summary


def _hist_text(hist: dict[int, int], top: int = 3) -> str:
    ordered = sorted(hist.items(), key=lambda kv: (-kv[1], kv[0]))
    shown = ", ".join(f"{length}: {count:,}" for length, count in ordered[:top])
    return shown + (f" (+{len(ordered) - top} lengths)" if len(ordered) > top else "")


def _presence(entry: dict[str, Any]) -> Text:
    return Text("present", style="green") if entry["present"] else Text("missing", style="yellow")


def render_check(summary: dict[str, Any]) -> Group:
    """Rich renderable of a :func:`check_data_dir` summary: files, categories and notes tables."""
    title = f"Data directory {summary['data_dir']}" + (" [SIMULATED]" if summary["simulated"] else "")
    files = Table(title=title)
    files.add_column("file")
    files.add_column("rows", justify="right")
    files.add_column("lengths nt: rows")
    files.add_column("expr min/mean/max")
    for key in ("test", "train"):
        part = summary.get(key)
        if part is None:
            files.add_row(f"{key}: none", "-", "-", "-")
            continue
        e = part["expression"]
        files.add_row(
            f"{key}: {Path(part['path']).name}", f"{part['rows']:,}", _hist_text(part["lengths"]),
            f"{e['min']:.3g} / {e['mean']:.3g} / {e['max']:.3g}",
        )

    cats = Table(title="Categories (test_subset_ids/*.csv, public_leaderboard_ids/*.json)")
    for col, justify in (("category", "left"), ("subset csv", "left"), ("ids/pairs", "right"),
                         ("public json", "left"), ("public", "right")):
        cats.add_column(col, justify=justify)
    for cat, sub in summary["subsets"].items():
        pub = summary["public"][cat]
        cats.add_row(
            cat, _presence(sub), "-" if sub["size"] is None else f"{sub['size']:,}",
            _presence(pub), "-" if pub["size"] is None else f"{pub['size']:,}",
        )
    for name in PUBLIC_EXTRA:
        if name in summary["public"]:
            cats.add_row(name, "", "", _presence(summary["public"][name]), "")

    info = Table(title="Notes", show_header=False)
    info.add_column("key")
    info.add_column("value")
    info.add_row("public ids", "-" if summary["public_ids"] is None else f"{summary['public_ids']:,}")
    info.add_row("SNV source", summary["snv_source"])
    train = summary.get("train")
    if train is not None:
        info.add_row("training file", train["path"])
        if train["bad_rows"]["total"]:
            by = ", ".join(f"{k}: {v}" for k, v in train["bad_rows"]["by_problem"].items())
            info.add_row("bad training rows", f"{train['bad_rows']['total']} ({by})")
            for example in train["bad_rows"]["examples"]:
                info.add_row("", example)
    if summary["missing"]:
        info.add_row("missing", ", ".join(summary["missing"]))
    for note in summary["notes"]:
        info.add_row("note", note)
    return Group(files, cats, info)
