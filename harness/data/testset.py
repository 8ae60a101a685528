"""The challenge test set: sequences, MAUDE truth, categories and public-leaderboard ids.

Layout of a data directory (official release, Zenodo 10633252):

    filtered_test_data_with_MAUDE_expression.txt   71,103 rows, row i = test index i
    test_subset_ids/{high_exp,low_exp,yeast,all_random,challenging}_seqs.csv   (pos)
    test_subset_ids/{all_SNVs,motif_perturbation,motif_tiling}_seqs.csv       (alt_pos, ref_pos)
    public_leaderboard_ids/{high,low,yeast,random,challenging,SNVs,motif_perturbation,motif_tiling}_exp_indices.json

The official ``all_SNVs_seqs.csv`` is missing from every public copy; :func:`load_test_set` then
takes ``snv_pairs`` (e.g. the reconstructed file) or falls back to the public SNV pairs only, and
records which in :attr:`TestSet.snv_source`.
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
        categories: category -> ``(n,) int64`` test indices, or ``(n, 2) int64`` (alt, ref) pairs
            for pair categories.
        public: category -> the public-leaderboard members in the same shapes (None when the
            directory has no ``public_leaderboard_ids``).
        snv_source: where the SNV pairs came from (official file, a given file, or public only).
        simulated: True for the project's simulated default data.
    """

    table: SeqTable
    categories: dict[str, np.ndarray]
    public: dict[str, np.ndarray] | None = None
    snv_source: str = "none"
    simulated: bool = False
    directory: Path | None = None
    notes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.table)

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

    public = None
    if (data_dir / PUBLIC_DIR).is_dir():
        public = {}
        for cat, (_, pub) in CATEGORIES.items():
            path = data_dir / PUBLIC_DIR / pub
            if path.is_file():
                public[cat] = _check_range(read_public_ids(path)[0], n, path)

    categories: dict[str, np.ndarray] = {}
    snv_source = "none"
    for cat, (csv_name, _) in CATEGORIES.items():
        path = data_dir / SUBSET_DIR / csv_name
        if path.is_file():
            categories[cat] = _check_range(read_subset_ids(path), n, path)
            if cat == "SNVs":
                snv_source = f"official ({path})"
    if "SNVs" not in categories:
        if snv_pairs is not None:
            pairs = _check_range(read_subset_ids(snv_pairs), n, snv_pairs)
            if pairs.ndim != 2:
                raise DataError(f"{snv_pairs}: SNV pairs need 'alt_pos' and 'ref_pos' columns")
            categories["SNVs"] = pairs
            snv_source = f"given file ({snv_pairs})"
        elif public is not None and "SNVs" in public:
            categories["SNVs"] = public["SNVs"]
            snv_source = "public leaderboard SNV pairs only (official all_SNVs_seqs.csv absent)"
    if "SNVs" in categories:
        snv_source += f", {len(categories['SNVs'])} pairs"
    ordered = {c: categories[c] for c in CATEGORIES if c in categories}
    simulated = (data_dir / "SIMULATED.json").is_file()  # marker of harness.data.simulate
    return TestSet(table, ordered, public, snv_source, simulated=simulated, directory=data_dir)


def _check_range(ids: np.ndarray, n: int, path) -> np.ndarray:
    if ids.size and (ids.min() < 0 or ids.max() >= n):
        raise DataError(f"{path}: test index out of range 0..{n - 1} (found {ids.min()}..{ids.max()})")
    return ids
