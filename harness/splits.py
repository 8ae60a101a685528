"""Hold-out and K-fold splits of the training rows, seeded and saved as a run manifest.

A split is an assignment ``(N,) int16``: the fold in which each training row is held out, or -1
for a row that is never held out (the training-only part of a hold-out split). Fold ``k``'s model
trains on ``assignment != k`` and predicts ``assignment == k`` (its out-of-fold predictions).
Every method of a run reads the same manifest, so all see identical folds.

Kinds: ``holdout`` (one fold, a seeded fraction held out), ``kfold`` (K folds) and ``none``: one
fold, every row ``-1``, so fold 0's model trains on every training row and predicts no training
row (a run without out-of-fold predictions). ``none`` is the teams' protocol: each team trained
its submitted model on all training rows (Camformers and High Schoolers held out validation rows of
their own inside training, which their plug-ins still do inside ``fit``; the teams' write-ups), so
only such a run reproduces a challenge entry.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .data.table import SeqTable
from .io import read_json, write_json, write_npy

#: Split kinds (``harness run --split``).
KINDS = ("holdout", "kfold", "none")


@dataclass(frozen=True)
class SplitSpec:
    """How to split: ``kind`` ``"holdout"`` (one fold, ``holdout_fraction`` held out), ``"kfold"``
    (``folds`` folds), shuffled with ``seed``, or ``"none"`` (one fold that holds out no row; ``folds``
    and ``holdout_fraction`` are unused, ``seed`` seeds the fold's model).

    Raises:
        ValueError: an unknown kind, ``kfold`` with fewer than 2 folds, or a hold-out fraction
            outside (0, 1).
    """

    kind: str = "holdout"
    folds: int = 5
    holdout_fraction: float = 0.1
    seed: int = 0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"split kind must be one of {', '.join(map(repr, KINDS))}, got {self.kind!r}")
        if self.kind == "kfold" and self.folds < 2:
            raise ValueError(f"kfold needs at least 2 folds, got {self.folds}")
        if self.kind == "holdout" and not 0 < self.holdout_fraction < 1:
            raise ValueError(f"holdout fraction must be in (0, 1), got {self.holdout_fraction}")

    @property
    def n_folds(self) -> int:
        """Models fitted per method: ``folds`` for ``kfold``, else 1."""
        return self.folds if self.kind == "kfold" else 1

    @property
    def holds_out(self) -> bool:
        """False for ``none``: no training row gets an out-of-fold prediction."""
        return self.kind != "none"


def make_assignment(n: int, spec: SplitSpec) -> np.ndarray:
    """Fold assignment for ``n`` rows: ``(n,) int16`` (see module doc). Deterministic for a spec.

    Uses scikit-learn's ``KFold(shuffle=True)`` / ``train_test_split`` with ``random_state=seed``;
    ``none`` is all -1 (no row held out).
    """
    from sklearn.model_selection import KFold, train_test_split  # ~1.9 s to import: not for `harness --help`

    out = np.full(n, -1, dtype=np.int16)
    rows = np.arange(n)
    if spec.kind == "none":
        return out
    if spec.kind == "holdout":
        _, held = train_test_split(rows, test_size=spec.holdout_fraction, random_state=spec.seed)
        out[held] = 0
    else:
        for k, (_, held) in enumerate(KFold(spec.folds, shuffle=True, random_state=spec.seed).split(rows)):
            out[held] = k
    return out


def fingerprint(table: SeqTable) -> str:
    """A content hash (BLAKE2b, 16 hex digits) of a table's sequences and targets."""
    h = hashlib.blake2b(digest_size=8)
    h.update(np.ascontiguousarray(table.codes).tobytes())
    h.update(np.ascontiguousarray(table.lengths).tobytes())
    if table.y is not None:
        h.update(np.ascontiguousarray(table.y).tobytes())
    return h.hexdigest()


def load_or_create(run_dir: Path, table: SeqTable, spec: SplitSpec) -> np.ndarray:
    """The run's split: read ``split.json``/``split.npy`` from ``run_dir`` or create and save them.

    Returns:
        ``(N,) int16`` assignment (module doc).

    Raises:
        ValueError: the saved manifest was made for other training data or another split spec
            (the message says what differs); use a new ``--out`` directory. Or ``split.npy`` is not
            the assignment the manifest describes (unreadable, pickled, wrong shape or dtype, a fold
            outside ``-1..n_folds-1``; the file is named), or ``split.json`` is not a JSON object
            (named).
    """
    manifest = {"spec": asdict(spec), "n_rows": len(table), "train_fingerprint": fingerprint(table)}
    json_path, npy_path = run_dir / "split.json", run_dir / "split.npy"
    if json_path.is_file() and npy_path.is_file():
        saved = read_json(json_path, dict)  # ValueError naming the file: not JSON, or not an object
        diff = [k for k in manifest if saved.get(k) != manifest[k]]
        if diff:
            raise ValueError(f"{json_path}: this run directory was split for other {'/'.join(diff)} "
                             f"(saved {[saved.get(k) for k in diff]}, now {[manifest[k] for k in diff]}); "
                             "use another --out")
        return _read_assignment(npy_path, len(table), spec)
    assignment = make_assignment(len(table), spec)
    write_npy(npy_path, assignment)
    write_json(json_path, manifest)
    return assignment


def _read_assignment(path: Path, n: int, spec: SplitSpec) -> np.ndarray:
    """``split.npy`` checked against the manifest: ``(n,)`` integers in ``-1..n_folds-1``, and for
    ``none`` all -1 (never pickled objects: ``allow_pickle=False``)."""
    try:
        a = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise ValueError(f"{path}: not a readable split assignment ({exc}); use another --out") from exc
    if a.shape != (n,) or a.dtype.kind not in "iu":
        raise ValueError(f"{path}: shape {a.shape} dtype {a.dtype}, expected ({n},) integers; use another --out")
    low, high = (-1, -1) if not spec.holds_out else (-1, spec.n_folds - 1)
    if n and (a.min() < low or a.max() > high):
        raise ValueError(f"{path}: fold numbers {int(a.min())}..{int(a.max())} outside {low}..{high} "
                         f"of a {spec.kind} split; use another --out")
    return a.astype(np.int16, copy=False)
