"""Data layer: official-format readers, sequence encoding, the test set and the simulated default."""

from .encoding import FLANK_3P, FLANK_5P, decode, encode, fit_length, one_hot, reverse_complement
from .readers import BadRows, DataError, read_public_ids, read_subset_ids, read_table
from .table import SeqTable
from .testset import CATEGORIES, PAIR_CATEGORIES, TestSet, load_test_set, resolve_data_dir

__all__ = [
    "FLANK_3P", "FLANK_5P", "decode", "encode", "fit_length", "one_hot", "reverse_complement",
    "BadRows", "DataError", "read_public_ids", "read_subset_ids", "read_table", "SeqTable",
    "CATEGORIES", "PAIR_CATEGORIES", "TestSet", "load_test_set", "resolve_data_dir",
]
