"""dream-harness: benchmarking and ensembling harness for the Random Promoter DREAM Challenge 2022.

``harness.load_run(path)`` and ``harness.score(pred, data_dir, board)`` (:mod:`harness.api`) are
imported on first use, so ``import harness`` stays light (no NumPy, pandas or PyTorch).
"""

__version__ = "0.1.0"

#: names served lazily from :mod:`harness.api`
_API = ("load_run", "score", "Run")
__all__ = ["__version__", *_API]


def __getattr__(name: str):
    if name in _API:
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'harness' has no attribute {name!r}")
