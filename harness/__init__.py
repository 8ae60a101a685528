"""dream-harness: benchmarking and ensembling harness for the Random Promoter DREAM Challenge 2022."""

__version__ = "0.1.0"
