"""In-memory sequence tables: uint8 codes + lengths (+ targets)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import encoding


@dataclass
class SeqTable:
    """A set of sequences with optional targets.

    Attributes:
        codes: ``(N, W) uint8`` nucleotide codes (see :mod:`harness.data.encoding`), PAD-filled.
        lengths: ``(N,) int32`` sequence lengths in nt.
        y: ``(N,) float32`` targets (training: expression bin 0-17; test: MAUDE expression) or None.
        source: where the rows came from (a path or ``"simulated"``), for messages and reports.
    """

    codes: np.ndarray
    lengths: np.ndarray
    y: np.ndarray | None = None
    source: str = ""
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.codes.ndim != 2 or self.codes.dtype != np.uint8:
            raise ValueError(f"codes must be (N, W) uint8, got {self.codes.shape} {self.codes.dtype}")
        if len(self.lengths) != len(self.codes):
            raise ValueError(f"{len(self.codes)} sequences but {len(self.lengths)} lengths")
        if self.y is not None and len(self.y) != len(self.codes):
            raise ValueError(f"{len(self.codes)} sequences but {len(self.y)} targets")

    @classmethod
    def from_strings(cls, seqs, y=None, source: str = "") -> "SeqTable":
        """Build from ``N`` strings and optional ``(N,)`` targets (cast to float32)."""
        codes, lengths = encoding.encode(list(seqs))
        return cls(codes, lengths, None if y is None else np.asarray(y, dtype=np.float32), source)

    def __len__(self) -> int:
        return len(self.codes)

    def subset(self, index: np.ndarray) -> "SeqTable":
        """Rows ``index`` (int array or boolean mask) as a new table (copies)."""
        return SeqTable(
            self.codes[index], self.lengths[index], None if self.y is None else self.y[index], self.source, dict(self.meta)
        )

    def sequences(self) -> list[str]:
        """The sequences as strings."""
        return encoding.decode(self.codes, self.lengths)

    def fixed_length(self, target: int, strategy: encoding.PadStrategy = "right", fill="N") -> np.ndarray:
        """``(N, target) uint8`` codes padded/truncated by :func:`harness.data.encoding.fit_length`."""
        return encoding.fit_length(self.codes, self.lengths, target, strategy, fill)
