"""The challenge test set: sequences, MAUDE truth, categories and public-leaderboard ids.

Layout of a data directory (official release, Zenodo 10633252):

    filtered_test_data_with_MAUDE_expression.txt   71,103 rows, row i = test index i
    test_subset_ids/{high_exp,low_exp,yeast,all_random,challenging}_seqs.csv   (pos)
    test_subset_ids/{all_SNVs,motif_perturbation,motif_tiling}_seqs.csv       (alt_pos, ref_pos)
    public_leaderboard_ids/{high,low,yeast,random,challenging,SNVs,motif_perturbation,motif_tiling}_exp_indices.json

Every category is read as a set, as the official evaluation script (Zenodo 7395397) reads it: a
single category is the distinct ``pos`` values (``np.unique``; ``yeast_seqs.csv`` has 964 rows but
578 distinct ids, ``challenging_seqs.csv`` 1,981 rows, 1,953 ids) and a pair category the distinct
``(alt_pos, ref_pos)`` rows (``motif_perturbation_seqs.csv``: 3,527 rows, 3,287 pairs;
``motif_tiling_seqs.csv``: 2,653 rows, 2,624 pairs). :attr:`TestSet.notes` says how many duplicate
rows each file had.

``all_SNVs_seqs.csv`` (44,340 pairs) is part of the official release (listed under
``data/test_subset_ids/`` in the organisers' repository, de-Boer-Lab/random-promoter-dream-challenge-2022)
but may be absent from a data directory; :func:`load_test_set` then takes
``snv_pairs`` (e.g. the reconstructed file). Without either, ``categories`` has no ``SNVs``: the
4,670 public SNV pairs still make the public board exact, while the private and full boards are
scored without SNVs and marked partial (:class:`harness.scoring.BoardScore`).
:attr:`TestSet.snv_source` records which source was used.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .readers import DataError, read_public_ids, read_subset_ids, read_table
from .table import SeqTable

TEST_FILE = "filtered_test_data_with_MAUDE_expression.txt"
#: the official training file's name (used when no --train is given)
TRAIN_FILE = "train_sequences.txt"
SUBSET_DIR = "test_subset_ids"
PUBLIC_DIR = "public_leaderboard_ids"

#: category -> (subset csv, public json). Order is the challenge's.
CATEGORIES: dict[str, tuple[str, str]] = {
    "high": ("high_exp_seqs.csv", "high_exp_indices.json"),
    "low": ("low_exp_seqs.csv", "low_exp_indices.json"),
    "yeast": ("yeast_seqs.csv", "yeast_exp_indices.json"),
    "random": ("all_random_seqs.csv", "random_exp_indices.json"),
    "challenging": ("challenging_seqs.csv", "challenging_exp_indices.json"),
    "SNVs": ("all_SNVs_seqs.csv", "SNVs_exp_indices.json"),
    "motif_perturbation": ("motif_perturbation_seqs.csv", "motif_perturbation_exp_indices.json"),
    "motif_tiling": ("motif_tiling_seqs.csv", "motif_tiling_exp_indices.json"),
}
PAIR_CATEGORIES = ("SNVs", "motif_perturbation", "motif_tiling")


def resolve_data_dir(data: str | os.PathLike | None) -> Path | None:
    """The data directory: ``data`` if given, else ``$HARNESS_DATA``, else None (simulated default)."""
    value = data if data is not None else os.environ.get("HARNESS_DATA")
    return Path(value) if value else None


@dataclass
class TestSet:
    """Test sequences with truth and category membership.

    Attributes:
        table: the test sequences; ``table.y`` is the measured (MAUDE) expression, ``(N,) float32``.
        categories: category -> ``(n,) int64`` distinct test indices (sorted), or ``(n, 2) int64``
            distinct (alt, ref) pairs (sorted) for pair categories. Only categories whose complete
            member list is known: ``SNVs`` is absent when neither the official file nor
            ``snv_pairs`` is available.
        public: category -> the public-leaderboard members in the same shapes, distinct (None when
            the directory has no ``public_leaderboard_ids``).
        snv_source: where the SNV pairs came from (official file, a given file, public pairs
            only, or ``"none"``), with the pair count.
        notes: what loading changed, e.g. duplicate rows of a category file counted once.
        simulated: True for the project's simulated default data.
        truth: ``(N,) float64`` measured expression as the official script reads it (Python
            ``float`` of the second column; ``table.y`` is its float32 copy). None for a test set
            built by hand: :attr:`expression` then falls back to ``table.y``.
    """

    table: SeqTable
    categories: dict[str, np.ndarray]
    public: dict[str, np.ndarray] | None = None
    snv_source: str = "none"
    simulated: bool = False
    directory: Path | None = None
    notes: list[str] = field(default_factory=list)
    truth: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.table)

    @property
    def expression(self) -> np.ndarray:
        """``(N,) float64`` measured expression: :attr:`truth`, else ``table.y`` widened."""
        return self.truth if self.truth is not None else np.asarray(self.table.y, dtype=np.float64)

    @property
    def public_ids(self) -> np.ndarray | None:
        """Sorted unique test indices on the public board, ``(n,) int64`` (9,045 in the challenge)."""
        if self.public is None:
            return None
        return np.unique(np.concatenate([ids.ravel() for ids in self.public.values()]))


def load_test_set(data_dir: str | os.PathLike, snv_pairs: str | os.PathLike | None = None) -> TestSet:
    """Load the test set and categories from a data directory in the official layout.

    Args:
        data_dir: directory holding the test file and the id folders.
        snv_pairs: a CSV with ``alt_pos``/``ref_pos`` to use when the official
            ``test_subset_ids/all_SNVs_seqs.csv`` is absent.

    Returns:
        The :class:`TestSet`; every category is a set (duplicate rows counted once, as in the
        official evaluation script, Zenodo 7395397).

    Raises:
        DataError: the test file is missing or bad, an id file is bad, or an id is out of range.
    """
    data_dir = Path(data_dir)
    test_path = data_dir / TEST_FILE
    if not test_path.is_file():
        raise DataError(f"{data_dir}: no test file {TEST_FILE} (is this a DREAM 2022 data directory?)")
    table = read_table(test_path)
    n = len(table)
    if len(table.meta["line"]) and table.meta["line"][-1] != n:
        raise DataError(f"{test_path}: row i must be test index i, but bad rows were dropped")
    truth = _truth64(test_path, n)

    notes: list[str] = []
    public = None
    if (data_dir / PUBLIC_DIR).is_dir():
        public = {}
        for cat, (_, pub) in CATEGORIES.items():
            path = data_dir / PUBLIC_DIR / pub
            if path.is_file():
                public[cat] = _distinct(_check_range(read_public_ids(path)[0], n, path), path, notes)

    categories: dict[str, np.ndarray] = {}
    snv_source = "none"
    for cat, (csv_name, _) in CATEGORIES.items():
        path = data_dir / SUBSET_DIR / csv_name
        if path.is_file():
            categories[cat] = _distinct(_check_range(read_subset_ids(path), n, path), path, notes)
            if cat == "SNVs":
                snv_source = f"official ({path})"
    if "SNVs" not in categories and snv_pairs is not None:
        pairs = _check_range(read_subset_ids(snv_pairs), n, snv_pairs)
        if pairs.ndim != 2:
            raise DataError(f"{snv_pairs}: SNV pairs need 'alt_pos' and 'ref_pos' columns")
        categories["SNVs"] = _distinct(pairs, snv_pairs, notes)
        snv_source = f"given file ({snv_pairs})"
    if "SNVs" in categories:
        snv_source += f", {len(categories['SNVs'])} pairs"
    elif public is not None and "SNVs" in public:
        snv_source = (f"public leaderboard SNV pairs only (official all_SNVs_seqs.csv absent), {len(public['SNVs'])} pairs; "
                      "private and full boards have no SNV category")
    ordered = {c: categories[c] for c in CATEGORIES if c in categories}
    simulated = (data_dir / "SIMULATED.json").is_file()  # marker of harness.data.simulate
    return TestSet(table, ordered, public, snv_source, simulated=simulated, directory=data_dir, notes=notes, truth=truth)


def _truth64(path: Path, n: int) -> np.ndarray:
    """The test file's second column as float64, parsed by Python ``float`` as the official script
    does (``read_table`` has already checked every row, so this is one plain pass)."""
    with open(path, "rb") as fh:
        lines = fh.read().splitlines()
    if len(lines) != n:
        raise DataError(f"{path}: {len(lines)} lines but {n} rows; blank lines are not allowed in the test file")
    return np.array([float(line.rpartition(b"\t")[2]) for line in lines], dtype=np.float64)


def _distinct(ids: np.ndarray, path, notes: list[str]) -> np.ndarray:
    """The distinct ids (``(n,)``) or distinct (alt, ref) rows (``(n, 2)``), sorted; a note when rows repeat."""
    out = np.unique(ids, axis=0) if ids.ndim == 2 else np.unique(ids)
    if len(out) != len(ids):
        what = "pairs" if ids.ndim == 2 else "ids"
        notes.append(f"{path}: {len(ids):,} rows, {len(out):,} distinct {what}; each counts once (official evaluation)")
    return out


def _check_range(ids: np.ndarray, n: int, path) -> np.ndarray:
    if ids.size and (ids.min() < 0 or ids.max() >= n):
        raise DataError(f"{path}: test index out of range 0..{n - 1} (found {ids.min()}..{ids.max()})")
    return ids
