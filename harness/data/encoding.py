"""Nucleotide codes, one-hot encoding, reverse complement and length policies (NumPy side).

Sequences are held as ``uint8`` codes, A=0, C=1, G=2, T=3, N=4 (every IUPAC ambiguity letter maps
to N), and ``PAD`` (255) beyond a sequence's end. Everything here is vectorised over the whole
array: no per-sequence Python loop.

The sequence primitives of the harness live in two modules with one set of tables:

* this module (NumPy, no torch import, so that the readers, the k-mer baselines and the Keras
  plug-in load without PyTorch): text <-> codes, the complement table :data:`COMPLEMENT`, the
  one-hot table :func:`one_hot_table`, :func:`reverse_complement`, :func:`one_hot`, the length
  policies :func:`fit_length` (N or vector padding) and :func:`fixed_width`, :func:`gc_content`;
* :mod:`harness.data.sequence` (PyTorch, on the device, per batch): one-hot, reverse complement,
  plasmid windows (padding, trimming and shifts in one gather), the strand flag channel and the
  test-time-augmentation (TTA) views and their aggregation -- built from the tables defined here.

The construct (de Boer et al. 2020; DREAM 2022 challenge description) is a 110-nt promoter:
17-nt 5' flank ``TGCATTTTTTTCACATC`` + 80-nt random region + 13-nt 3' flank ``GGTTACGGCTGTT``.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

A, C, G, T, N = 0, 1, 2, 3, 4
PAD = 255
ALPHABET = "ACGTN"

#: The construct's fixed flanks inside the 110-nt test sequences (challenge description).
FLANK_5P = "TGCATTTTTTTCACATC"
FLANK_3P = "GGTTACGGCTGTT"
CONSTRUCT_LENGTH = 110

_IUPAC_AMBIGUOUS = "RYSWKMBDHVN"
#: byte -> code; 254 marks a character that is not a nucleotide letter.
INVALID = 254
_LUT = np.full(256, INVALID, dtype=np.uint8)
for _i, _ch in enumerate("ACGT"):
    _LUT[ord(_ch)] = _i
    _LUT[ord(_ch.lower())] = _i
for _ch in _IUPAC_AMBIGUOUS:
    _LUT[ord(_ch)] = N
    _LUT[ord(_ch.lower())] = N
#: ``(256,) uint8`` code -> code of the complementary base (A<->T, C<->G; N, PAD and every other
#: code map to themselves). The one complement table of the harness.
COMPLEMENT = np.arange(256, dtype=np.uint8)
COMPLEMENT[[A, C, G, T]] = [T, G, C, A]
COMPLEMENT.flags.writeable = False

PadStrategy = Literal["right", "left", "both"]


def encode_bytes(raw: np.ndarray) -> np.ndarray:
    """Map ASCII bytes to codes. ``raw``: any-shape ``uint8``; returns the same shape ``uint8``.

    Letters that are not nucleotides (A, C, G, T, IUPAC ambiguity codes, either case) map to
    ``INVALID`` (254) so callers can report them.
    """
    return _LUT[raw]


def encode(seqs: list[str] | np.ndarray, width: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Encode strings to a padded code matrix.

    Args:
        seqs: ``N`` sequences (str).
        width: columns of the result; default the longest sequence. Longer sequences are cut.

    Returns:
        ``(codes, lengths)``: ``(N, width) uint8`` codes padded with ``PAD``, and ``(N,) int32``
        original lengths.

    Raises:
        ValueError: a sequence holds a character that is not a nucleotide letter (the message
            names the sequence index, the position and the character).
    """
    seqs = [str(s) for s in seqs]
    lengths = np.fromiter((len(s) for s in seqs), dtype=np.int32, count=len(seqs))
    if width is None:
        width = int(lengths.max()) if len(seqs) else 0
    joined = np.frombuffer("".join(seqs).encode("ascii", errors="replace"), dtype=np.uint8)
    codes = ragged_to_matrix(encode_bytes(joined), lengths, width)
    bad = codes == INVALID
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise ValueError(f"sequence {row}: position {col + 1} holds {seqs[row][col]!r}, not a nucleotide letter")
    return codes, lengths


def ragged_to_matrix(flat: np.ndarray, lengths: np.ndarray, width: int) -> np.ndarray:
    """Lay a concatenation of ragged rows into an ``(N, width)`` matrix padded with ``PAD``.

    ``flat``: ``(sum(lengths),) uint8``; rows longer than ``width`` are cut at ``width``.
    """
    n = len(lengths)
    out = np.full((n, width), PAD, dtype=np.uint8)
    if n == 0 or width == 0:
        return out
    starts = np.zeros(n, dtype=np.int64)
    np.cumsum(lengths[:-1], out=starts[1:])
    keep = np.minimum(lengths, width)
    cols = np.arange(width)
    mask = cols[None, :] < keep[:, None]
    out[mask] = flat[(starts[:, None] + cols[None, :])[mask]]
    return out


def decode(codes: np.ndarray, lengths: np.ndarray | None = None) -> list[str]:
    """Codes ``(N, W) uint8`` back to strings (PAD dropped; ``lengths`` cuts rows if given)."""
    letters = np.frombuffer(b"ACGTN", dtype=np.uint8)
    table = np.zeros(256, dtype=np.uint8)
    table[:5] = letters
    chars = table[codes]
    out = []
    for i, row in enumerate(chars):
        s = row[row != 0].tobytes().decode("ascii")
        out.append(s if lengths is None else s[: lengths[i]])
    return out


def one_hot_table(n_value: float = 0.0, dtype: type = np.float32) -> np.ndarray:
    """The one-hot lookup table: ``(256, 4)`` array, row ``code`` = the input vector of that code.

    A, C, G, T -> unit vectors on channels 0..3 (in that order); N, every ambiguity code and PAD
    -> ``n_value`` in all four channels: 0 for the teams that encode N as zeros (Camformers §1.2,
    BHI §1, LegNet's submitted ``Seq2Tensor``), 0.25 for KircherLab (kipoiseq ``ReorderedOneHot``).

    Args:
        n_value: value of the four channels at a non-ACGT code.
        dtype: table dtype (default ``float32``).

    Returns:
        A new ``(256, 4)`` array of ``dtype``.
    """
    table = np.full((256, 4), n_value, dtype=dtype)
    table[:4] = np.eye(4, dtype=dtype)
    return table


def one_hot(codes: np.ndarray, dtype: type = np.float32, layout: Literal["NCL", "NLC"] = "NCL",
            n_value: float = 0.0) -> np.ndarray:
    """One-hot encode codes (:func:`one_hot_table`): A,C,G,T -> channels 0..3; N, ambiguity codes and
    PAD -> ``n_value`` (default 0: all zeros) in every channel.

    Args:
        codes: ``(N, L) uint8``.
        dtype: output dtype (default ``float32``).
        layout: ``"NCL"`` gives ``(N, 4, L)`` (PyTorch Conv1d), ``"NLC"`` gives ``(N, L, 4)`` (Keras).
        n_value: value of the four channels at a non-ACGT code.
    """
    x = one_hot_table(n_value, dtype)[codes]  # (N, L, 4)
    return np.ascontiguousarray(x.transpose(0, 2, 1)) if layout == "NCL" else x


def reverse_complement(codes: np.ndarray, lengths: np.ndarray | None = None) -> np.ndarray:
    """Reverse complement of ``(N, L) uint8`` codes.

    With ``lengths``, each row's first ``lengths[i]`` codes are reverse-complemented in place of
    their span and PAD stays at the end; without, the whole row (PAD included) is reversed.
    """
    rc = COMPLEMENT[codes[:, ::-1]]
    if lengths is None:
        return rc
    n, width = codes.shape
    shift = width - np.minimum(lengths, width)
    cols = (np.arange(width)[None, :] + shift[:, None]) % width
    return np.take_along_axis(rc, cols, axis=1)


def fit_length(
    codes: np.ndarray,
    lengths: np.ndarray,
    target: int,
    strategy: PadStrategy = "right",
    fill: str | tuple[str, str] = "N",
    truncate: Literal["right", "left"] = "right",
) -> np.ndarray:
    """Pad or truncate every sequence to ``target`` nt.

    Args:
        codes: ``(N, W) uint8`` codes, ``lengths``: ``(N,) int`` true lengths.
        target: output length in nt.
        strategy: where short sequences are padded: ``"right"`` (3' end), ``"left"`` (5' end) or
            ``"both"`` (half each side, the extra nt on the 3' side); a ``(N,)`` array of these
            strings gives a per-sequence choice (augmentation, e.g. BHI's 4:3:2 mix).
        fill: ``"N"`` pads with N (3' N-padding, Camformers write-up §1.1). A pair
            ``(upstream, downstream)`` of vector (plasmid) sequences pads with the real vector
            flank: the 5' side takes the last nt of ``upstream``, the 3' side the first nt of
            ``downstream`` (BHI write-up §1).
        truncate: which end loses nt when a sequence is longer than ``target`` (``"right"``:
            keep the first ``target`` nt).

    Returns:
        ``(N, target) uint8`` codes.

    Raises:
        ValueError: unknown strategy, or a vector flank shorter than the padding it must supply.
    """
    n = len(codes)
    lengths = np.asarray(lengths, dtype=np.int64)
    strategies = np.broadcast_to(np.asarray(strategy), (n,))
    unknown = set(np.unique(strategies)) - {"right", "left", "both"}
    if unknown:
        raise ValueError(f"unknown padding strategy {sorted(unknown)}; use 'right', 'left' or 'both'")
    short = np.maximum(target - lengths, 0)
    left_pad = np.where(strategies == "left", short, np.where(strategies == "both", short // 2, 0))
    keep = np.minimum(lengths, target)
    offset = np.where(lengths > target, lengths - target, 0) if truncate == "left" else np.zeros(n, dtype=np.int64)

    cols = np.arange(target)[None, :]
    src = cols - left_pad[:, None] + offset[:, None]  # column in the source row
    inside = (src >= 0) & (src < (keep + offset)[:, None]) & (cols >= left_pad[:, None])
    out = np.full((n, target), N, dtype=np.uint8)
    rows = np.broadcast_to(np.arange(n)[:, None], (n, target))
    out[inside] = codes[rows[inside], src[inside]]

    if isinstance(fill, str):
        if fill != "N":
            raise ValueError(f"fill must be 'N' or an (upstream, downstream) pair of vector sequences, got {fill!r}")
        return out
    upstream, downstream = fill
    up = encode([upstream])[0][0]
    down = encode([downstream])[0][0]
    if short.max(initial=0) > min(len(up), len(down)):
        raise ValueError(f"vector flank too short: needs {short.max()} nt, upstream has {len(up)}, downstream {len(down)}")
    # 5' padding: column c < left_pad takes upstream[len(up) - left_pad + c]
    lmask = cols < left_pad[:, None]
    out[lmask] = up[(len(up) - left_pad[:, None] + cols)[lmask]]
    # 3' padding: column c >= left_pad + keep takes downstream[c - left_pad - keep]
    end = (left_pad + keep)[:, None]
    rmask = cols >= end
    out[rmask] = down[(cols - end)[rmask]]
    return out


def fixed_width(codes: np.ndarray, lengths: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Cut or PAD-extend a code matrix to ``width`` columns (no padding policy: PAD, not N, fills).

    Args:
        codes: ``(N, W) uint8`` (PAD-filled beyond each length).
        lengths: ``(N,)`` lengths in nt.
        width: columns of the result.

    Returns:
        ``(codes (N, width) uint8, lengths (N,) int32 clipped to width)``.
    """
    out = np.full((len(codes), width), PAD, dtype=np.uint8)
    w = min(width, codes.shape[1])
    out[:, :w] = codes[:, :w]
    return out, np.minimum(np.asarray(lengths, dtype=np.int64), width).astype(np.int32)


#: rows per block of :func:`vector_window` (bounds its int64 index arrays to ~block x width).
_WINDOW_BLOCK = 1 << 16


def vector_window(codes: np.ndarray, lengths: np.ndarray, start: np.ndarray, width: int,
                  upstream: np.ndarray, downstream: np.ndarray) -> np.ndarray:
    """A ``width``-nt window of each sequence in its plasmid context: vector padding, trimming and
    shifting in one gather (the NumPy twin of :func:`harness.data.sequence.vector_window`).

    Position ``p`` is counted from the first nt of the sequence: ``p < 0`` reads
    ``upstream[len(upstream) + p]`` (the vector 5' of the sequence), ``0 <= p < length`` the
    sequence, ``p >= length`` ``downstream[p - length]`` (the vector 3' of it). ``start =
    -left_pad`` pads ``left_pad`` nt 5' (and the rest 3'); ``start = length - width`` keeps the
    3'-most ``width`` nt (5' padding / 5' truncation, LegNet); ``start = ceil(d / 2)`` centres a
    sequence ``d`` nt too long (KircherLab).

    Args:
        codes: ``(N, W) uint8`` codes (PAD beyond each length).
        lengths: ``(N,)`` lengths in nt (values above ``W`` act as ``W``).
        start: ``(N,)`` integer position of each window's first nt.
        width: window length in nt.
        upstream, downstream: ``uint8`` code vectors of the vector 5' / 3' of the sequence. The
            caller checks that they are long enough; a position beyond them repeats their first
            (upstream) / last (downstream) nt.

    Returns:
        ``(N, width) uint8`` codes. Computed in blocks of rows, so memory stays bounded.
    """
    codes = np.asarray(codes)
    n, n_cols = codes.shape
    lengths = np.minimum(np.asarray(lengths, dtype=np.int64), n_cols)
    start = np.asarray(start, dtype=np.int64)
    upstream, downstream = np.asarray(upstream, dtype=np.uint8), np.asarray(downstream, dtype=np.uint8)
    out = np.empty((n, width), dtype=np.uint8)
    cols = np.arange(width, dtype=np.int64)[None, :]
    for lo in range(0, n, _WINDOW_BLOCK):
        hi = min(lo + _WINDOW_BLOCK, n)
        pos = start[lo:hi, None] + cols
        length = lengths[lo:hi, None]
        if n_cols:
            seq = np.take_along_axis(codes[lo:hi], np.clip(pos, 0, n_cols - 1), axis=1)
        else:
            seq = np.full(pos.shape, N, dtype=np.uint8)  # no sequence column: every position is vector
        up = upstream[np.clip(pos + len(upstream), 0, len(upstream) - 1)] if len(upstream) else seq
        down = downstream[np.clip(pos - length, 0, len(downstream) - 1)] if len(downstream) else seq
        out[lo:hi] = np.where(pos < 0, up, np.where(pos < length, seq, down))
    return out


def gc_content(codes: np.ndarray) -> np.ndarray:
    """GC fraction per sequence over its A/C/G/T positions. ``(N, L) uint8`` -> ``(N,) float64``."""
    acgt = (codes < 4).sum(axis=1)
    gc = ((codes == C) | (codes == G)).sum(axis=1)
    return np.divide(gc, acgt, out=np.zeros(len(codes)), where=acgt > 0)
