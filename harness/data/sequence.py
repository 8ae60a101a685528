"""Sequence primitives on the device (PyTorch): one-hot, reverse complement, plasmid windows,
shifts, the strand flag and test-time augmentation (TTA) views and their aggregation.

The PyTorch plug-ins keep ``uint8`` codes (:mod:`harness.data.encoding`: A0 C1 G2 T3 N4 PAD255) on
the host and turn each batch into model input on the device inside their batch transform
(:class:`harness.training.SeqTrainer`). Everything a transform needs that is not the team's own
recipe is here, once; the tables come from :mod:`harness.data.encoding` (:data:`~harness.data.
encoding.COMPLEMENT`, :func:`~harness.data.encoding.one_hot_table`), which is the NumPy side of the
same primitives (torch-free, for the readers, the k-mer baselines and the Keras plug-in).

Augmentation in the style of gReLU's ``Augmenter`` / ``augment_aggfunc``: a transform builds
``V`` views of every sequence as one ``(B, V, ...)`` batch -- the sequence and its reverse
complement (:func:`with_reverse_complement`), shifted windows in the plasmid context
(:func:`shifted_windows`) -- the network runs them as ``B * V`` rows, and :func:`average_views`
aggregates its ``(B, V)`` outputs back to one prediction per sequence (the "mean" aggregation of
every team that averages strands or shifts: BHI's post-hoc conjoined TTA, LegNet's two strands).
"""

from __future__ import annotations

import torch

from .encoding import COMPLEMENT, one_hot_table

__all__ = ["average_views", "flag_channel", "one_hot_codes", "one_hot_reverse_complement",
           "reverse_complement_codes", "shifted_windows", "vector_window", "with_reverse_complement"]

#: device-side copies of the encoding tables, by (table, device, dtype, n_value)
_TABLES: dict[tuple, torch.Tensor] = {}


def _table(kind: str, device: torch.device, dtype: torch.dtype | None = None, n_value: float = 0.0) -> torch.Tensor:
    key = (kind, str(device), dtype, float(n_value))
    table = _TABLES.get(key)
    if table is None:
        if kind == "complement":
            table = torch.from_numpy(COMPLEMENT.copy()).to(device)
        else:
            table = torch.from_numpy(one_hot_table(float(n_value))).to(device=device, dtype=dtype)
        _TABLES[key] = table
    return table


def one_hot_codes(codes: torch.Tensor, dtype: torch.dtype = torch.float32, n_value: float = 0.0) -> torch.Tensor:
    """One-hot encode nucleotide codes on their device.

    Args:
        codes: ``(B, L)`` integer tensor of :mod:`harness.data.encoding` codes (A0 C1 G2 T3 N4
            PAD255), any device.
        dtype: output dtype.
        n_value: value of the four channels at N, PAD and every other non-ACGT code (0: all zeros,
            the Camformers write-up §1.2 / BHI §1 / LegNet submitted-code encoding).

    Returns:
        ``(B, 4, L)`` contiguous tensor: A, C, G, T -> channels 0..3 (:func:`harness.data.encoding.
        one_hot_table`).
    """
    table = _table("one_hot", codes.device, dtype, n_value)
    return table[codes.long()].transpose(1, 2).contiguous()


def reverse_complement_codes(codes: torch.Tensor) -> torch.Tensor:
    """Reverse complement of whole ``(B, L)`` code rows on their device (A<->T, C<->G; N, PAD stay).

    Same result as :func:`harness.data.encoding.reverse_complement` without lengths (PAD columns
    included, so use it on fixed-length rows). Returns ``(B, L)`` of ``codes``' dtype.
    """
    table = _table("complement", codes.device)
    return table[torch.flip(codes, dims=[1]).long()].to(codes.dtype)


def one_hot_reverse_complement(x: torch.Tensor) -> torch.Tensor:
    """Reverse complement of one-hot input ``(..., 4, L)``: the flip along both the channel and the
    length axis (channel c -> 3 - c is the complement in A, C, G, T order). Same shape."""
    return x.flip(-2, -1)


def with_reverse_complement(x: torch.Tensor, dim: int = 1) -> torch.Tensor:
    """Stack one-hot input ``(..., 4, L)`` with its reverse complement along a new axis ``dim``:
    e.g. ``(B, 4, L) -> (B, 2, 4, L)``, view 0 forward, view 1 reverse complement."""
    return torch.stack([x, one_hot_reverse_complement(x)], dim)


def vector_window(codes: torch.Tensor, lengths: torch.Tensor, start: torch.Tensor, width: int,
                  upstream: torch.Tensor, downstream: torch.Tensor) -> torch.Tensor:
    """A ``width``-nt window of each sequence in its plasmid context (padding, trimming and shifting
    in one gather).

    Position ``p`` is counted from the first nt of the sequence: ``p < 0`` reads
    ``upstream[len(upstream) + p]`` (the vector 5' of the sequence), ``0 <= p < length`` the
    sequence, ``p >= length`` ``downstream[p - length]`` (the vector 3' of it). With
    ``start = -left_pad`` this is :func:`harness.data.encoding.fit_length` with
    ``fill=(upstream, downstream)`` and ``truncate="right"``; adding a shift ``k`` moves the window
    ``k`` nt 3'-ward (BHI §3 TTA).

    Args:
        codes: ``(B, W) uint8`` nucleotide codes. Only positions ``< W`` are read from it, so
            ``W`` must cover every in-sequence position the window reaches.
        lengths: ``(B,)`` integer sequence lengths in nt (values above ``W`` act as ``W``).
        start: ``(B,)`` integer window start (position of the window's first nt).
        width: window length in nt.
        upstream, downstream: ``uint8`` code vectors of the vector flanks, on ``codes``' device.
            They must be long enough for the windows (callers check); a position beyond them
            repeats their last (upstream: first) nt.

    Returns:
        ``(B, width) uint8`` codes on ``codes``' device.
    """
    n_cols = codes.shape[1]
    pos = start.long()[:, None] + torch.arange(width, device=codes.device)
    length = lengths.long().clamp(max=n_cols)[:, None]
    up = upstream[(pos + len(upstream)).clamp(0, len(upstream) - 1)]
    seq = codes.gather(1, pos.clamp(0, n_cols - 1))
    down = downstream[(pos - length).clamp(0, len(downstream) - 1)]
    return torch.where(pos < 0, up, torch.where(pos < length, seq, down))


def shifted_windows(codes: torch.Tensor, lengths: torch.Tensor, left_pad: torch.Tensor, shifts: tuple[int, ...],
                    width: int, upstream: torch.Tensor, downstream: torch.Tensor) -> torch.Tensor:
    """Shift views: ``(B, len(shifts), width) uint8`` windows (:func:`vector_window`) starting at
    ``shift - left_pad`` for each shift in nt (negative: 5'-ward, the upstream vector moves in)."""
    return torch.stack([vector_window(codes, lengths, k - left_pad, width, upstream, downstream) for k in shifts], 1)


def flag_channel(flag: torch.Tensor | float, batch: int, length: int, device: torch.device) -> torch.Tensor:
    """A constant input channel, e.g. LegNet's reverse-strand flag (0 forward, 1 reverse complement).

    Args:
        flag: ``(B,)`` tensor (one value per row) or a scalar (every row).
        batch, length: ``B`` and ``L`` of the result.
        device: where to build it.

    Returns:
        ``(B, 1, L) float32``, each row constant along the sequence.
    """
    if isinstance(flag, torch.Tensor):
        return flag.to(device=device, dtype=torch.float32).reshape(batch, 1, 1).expand(batch, 1, length)
    return torch.full((batch, 1, length), float(flag), dtype=torch.float32, device=device)


def average_views(output: torch.Tensor) -> torch.Tensor:
    """TTA aggregation: model outputs ``(B, V)`` (``V`` views of each sequence: strands, shifts) ->
    ``(B,)`` mean over the views (BHI's post-hoc conjoined mean; LegNet's strand average)."""
    return output.mean(dim=1)
