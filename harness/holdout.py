"""The internal validation split of a fit: the rows a method holds out of ``train`` for early
stopping / model selection when :meth:`harness.method.Method.fit` gets no validation table.

One function, :func:`holdout_split`, parametrised by the teams' rules so that each plug-in keeps
its documented split (and, with the same seed, the same rows as before this module existed):

=================  ==========================  =============================  =======================
plug-in            size                        draw (``generator``)           source
=================  ==========================  =============================  =======================
camformers, bhi    fraction                    ``"sklearn"``                  team: ``train_test_split``
kircherlab         fraction                    ``"sklearn"``, stratified by   team: ``train_test_split(
                                               class (plain when impossible)  stratify=...)``
highschoolers      row count or fraction,      ``"numpy"``                    harness (team: the last
                   ``ceil``                                                   104,448 rows)
kmer-ridge/lgbm    fraction, ``round``         ``"numpy"``                    harness
=================  ==========================  =============================  =======================

``"sklearn"`` is scikit-learn's ``train_test_split(shuffle=True, random_state=seed)`` (a legacy
``RandomState`` permutation, its own rounding of ``fraction * n``); ``"numpy"`` is the first rows
of ``numpy.random.default_rng(seed).permutation(n)``. No torch import: the k-mer baselines and
the Keras plug-in use it too.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np

__all__ = ["holdout_size", "holdout_split"]


def holdout_size(n: int, size: float, rounding: Literal["ceil", "round"] = "ceil") -> int:
    """Validation rows of a hold-out of ``size`` out of ``n`` rows.

    Args:
        n: rows to split.
        size: a fraction in (0, 1), or a whole row count >= 1.
        rounding: for a fraction, ``"ceil"`` (``ceil(size * n)``, scikit-learn's rule) or
            ``"round"`` (``round(size * n)``, at least 1).

    Raises:
        ValueError: ``size`` <= 0, or ``rounding`` unknown.
    """
    if not size > 0:
        raise ValueError(f"hold-out size must be > 0 (a fraction in (0, 1) or a row count), got {size}")
    if size >= 1:
        return int(size)
    if rounding == "ceil":
        return int(math.ceil(size * n))
    if rounding == "round":
        return max(1, int(round(size * n)))
    raise ValueError(f"rounding must be 'ceil' or 'round', got {rounding!r}")


def holdout_split(n: int, size: float, seed: int, *, generator: Literal["sklearn", "numpy"] = "sklearn",
                  rounding: Literal["ceil", "round"] = "ceil", stratify: np.ndarray | None = None,
                  min_rows: int = 1, who: str = "fit") -> tuple[np.ndarray, np.ndarray]:
    """Seeded random split of ``n`` rows into training and validation indices.

    Args:
        n: rows to split.
        size: validation share: a fraction in (0, 1) or (``generator="numpy"``) a whole row count.
        seed: the method's seed (``random_state`` / ``default_rng`` seed).
        generator: ``"sklearn"`` (``train_test_split`` and its rounding) or ``"numpy"``
            (first :func:`holdout_size` rows of ``default_rng(seed).permutation(n)``).
        rounding: fraction rounding of the ``"numpy"`` draw (:func:`holdout_size`).
        stratify: ``(n,)`` class labels for a stratified ``"sklearn"`` split; it falls back to the
            plain split where a class has fewer than 2 rows or scikit-learn refuses (e.g. fewer
            validation rows than classes).
        min_rows: both parts must keep at least this many rows.
        who: the caller's name for error messages (e.g. ``"highschoolers.fit"``).

    Returns:
        ``(train_idx, valid_idx)``: sorted ``int64`` index arrays, disjoint, covering ``0..n-1``.

    Raises:
        ValueError: ``size`` out of range, or a part would keep fewer than ``min_rows`` rows
            (the message names ``who`` and the sizes).
    """
    if generator not in ("sklearn", "numpy"):
        raise ValueError(f"generator must be 'sklearn' or 'numpy', got {generator!r}")
    if generator == "numpy":
        n_valid = holdout_size(n, size, rounding)
        if n_valid < min_rows or n - n_valid < min_rows:
            raise _too_few(who, n_valid, n, min_rows)
        perm = np.random.default_rng(seed).permutation(n)
        return np.sort(perm[n_valid:]).astype(np.int64), np.sort(perm[:n_valid]).astype(np.int64)
    if not 0 < size < 1:
        raise ValueError(f"{who}: the validation fraction must be in (0, 1), got {size}")
    if n < 2 * max(min_rows, 1):
        raise _too_few(who, None, n, min_rows)
    from sklearn.model_selection import train_test_split

    idx = np.arange(n)
    tr = va = None
    if stratify is not None:
        counts = np.unique(np.asarray(stratify), return_counts=True)[1]
        if len(counts) and counts.min() >= 2:
            try:
                tr, va = train_test_split(idx, test_size=size, random_state=seed, shuffle=True, stratify=stratify)
            except ValueError:
                pass  # e.g. fewer validation rows than classes: the plain split below
    if tr is None:
        tr, va = train_test_split(idx, test_size=size, random_state=seed, shuffle=True)
    if len(va) < min_rows or len(tr) < min_rows:
        raise _too_few(who, len(va), n, min_rows)
    return np.sort(tr).astype(np.int64), np.sort(va).astype(np.int64)


def _too_few(who: str, n_valid: int | None, n: int, min_rows: int) -> ValueError:
    what = f"{n} rows cannot be split" if n_valid is None else f"a hold-out of {n_valid} of {n} rows leaves"
    return ValueError(f"{who}: {what} into training and validation parts of >= {min_rows} row(s) each; use more "
                      "rows or another validation size")
