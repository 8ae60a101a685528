"""SIMULATED data: random yeast promoters with planted motif effects (NOT challenge data).

Everything this module writes is made up by a random-number generator. It exists so the harness
can run end to end, in tests and on a fresh machine, without downloading the Random Promoter
DREAM Challenge 2022 data. Scores measured on it say nothing about the real challenge. A
directory written here is marked by ``SIMULATED.json`` (see :func:`is_simulated`), and every
report built on it should say so.

Layout
------
:func:`simulate_dataset` writes the challenge's official layout, so the same readers load it
(:func:`harness.data.readers.read_table`, :func:`harness.data.testset.load_test_set`)::

    train_sequences.txt                              sequence<TAB>expression (bins 0..17)
    filtered_test_data_with_MAUDE_expression.txt     sequence<TAB>truth (MAUDE-like scale)
    test_subset_ids/{high_exp,low_exp,yeast,all_random,challenging}_seqs.csv    ,tag,sequence,pos,exp
    test_subset_ids/{all_SNVs,motif_perturbation,motif_tiling}_seqs.csv
        ,alt_tag,ref_tag,alt_sequence,ref_sequence,alt_pos,ref_pos,alt_exp,ref_exp
    public_leaderboard_ids/{high,low,yeast,random,challenging,SNVs,motif_perturbation,
        motif_tiling}_exp_indices.json   {"i": truth} or {"alt,ref": [alt_truth, ref_truth]}
    public_leaderboard_ids/ground.json             {"i": truth} for every public index
    public_leaderboard_ids/sample_submission.json  {"i": random prediction} (submission format)
    SIMULATED.json                                 marker: parameters, seed, planted motifs

Sequences
---------
Every sequence is the 110-nt construct: 17-nt 5' flank ``TGCATTTTTTTCACATC`` + 80-nt variable
region + 13-nt 3' flank ``GGTTACGGCTGTT``. Training variable regions are uniform random and,
like the real training file, a few are shorter or longer (about 82 % are exactly 110 nt, the rest
100..113 nt) and about 0.3 % carry a run of N (an unread stretch; the expression is computed from
the sequence before the N were written, as the cell saw it).

Expression model
----------------
A latent activity ``a`` (arbitrary units) is computed for every sequence by
:func:`latent_activity`:

    a = sum_m effect_m * min(S_m, cap_m)
        + GC_COEF * (gc - 0.5)
        + INTERACTION_COEF * min(S_Reb1, 1) * min(S_polyT, 1)

* ``S_m`` is the weighted occupancy of motif ``m`` (see :data:`MOTIFS`): every window of the
  sequence whose centre lies in the variable region (the constant flanks are not scanned), on
  both strands, whose bases match the motif's IUPAC consensus counts 1 when it matches exactly and ``mismatch_weight`` when exactly one specified position mismatches (only
  for motifs with ``max_mismatches=1``); N in the sequence never matches. A hit is multiplied by
  a position weight ``1 + position_slope * (x - 0.5)``, ``x`` being the window centre's relative
  place in the variable region (0 = its 5' end, 1 = its 3' end next to the 3' flank, nearer the
  TSS; clipped to 0..1), and by ``rc_weight`` when it lies on the reverse strand.
* Planted motifs (simplified consensus strings of real yeast factors; effect in latent units,
  one-mismatch weight, reverse-strand weight, position slope; occupancy capped at 2):

  ======  =================  ======  ========  ======  =====
  name    consensus          effect  1-mm w.   rc w.   slope
  ======  =================  ======  ========  ======  =====
  Reb1    ``TTACCCGG``       +1.0    0.35      1.0     +0.6
  Abf1    ``TCRTNNNNNNACG``  +0.8    0.3       1.0     +0.4
  Rap1    ``ACCCATACA``      +1.2    0.3       0.8     +0.5
  TATA    ``TATAWAWR``       +0.7    0.25      0.3     +1.0
  Gcn4    ``TGACTCA``        +0.6    0.3       1.0     0
  polyT   ``TTTTTTTT``       +0.5    0.4       0.6     -0.4
  Mig1    ``SYGGGG``         -0.9    (exact)   1.0     +0.5
  ======  =================  ======  ========  ======  =====

  Every activator raises expression, the Mig1-like GC box lowers it; the TATA box works mostly
  on the forward strand and near the 3' end; poly-dA (the reverse strand of poly-dT) counts 0.6x.
* ``gc`` is the G+C fraction of the whole sequence; ``GC_COEF < 0``: AT-rich promoters express
  more.
* The one pairwise interaction is a Reb1 x poly-dT synergy (``INTERACTION_COEF > 0``).

The latent is standardised with fixed constants, ``z = (a - LATENT_CENTER) / LATENT_SCALE``
(roughly mean 0, sd 1 over uniform random sequences), then observed two ways:

* Training target: each sequence is read ``m`` times (``m = 1`` for ~75 % of sequences, else
  2..4); a read falls in sort bin ``clip(round(BIN_CENTER + BIN_SCALE * z + e), 0, 17)`` with
  ``e ~ Normal(0, TRAIN_READ_SD)``; the target is the mean of the reads, so most values are
  integers and some are fractional averages, always within 0..17.
* Test truth (MAUDE-like): ``MAUDE_LIMIT * tanh((MAUDE_CENTER + MAUDE_SCALE * z + e) / MAUDE_LIMIT)``
  with ``e ~ Normal(0, TEST_NOISE_SD)``: continuous, lower noise, saturating near +-MAUDE_LIMIT.

Test categories (built the way the challenge built its own)
------------------------------------------------------------
* ``high`` / ``low``: candidates with 2..3 planted activators (high) or 1..2 Mig1 boxes on a
  GC-rich background (low); the top (bottom) third of 3x candidates by latent activity is kept
  ("designed").
* ``yeast``: native-like: AT-rich background (A,T 32 %; C,G 18 %), 0..2 planted motifs and
  30 % of them a poly-dT tract of 8..14 nt.
* ``random``: uniform random variable regions.
* ``challenging``: conflicting strong activators (Rap1/Reb1) and Mig1 repressor boxes.
* ``SNVs``: reference sequences (A,T-leaning background, half of them with a planted motif) and
  1..3 alternatives
  each that differ from their reference at exactly one position (half of them inside the
  planted motif when the reference has one); pairs are (alt, ref).
* ``motif_perturbation``: a few random references each with one planted motif; alternatives
  insert a motif (either strand) at a random place or disrupt the planted one with 1..3
  substitutions: every alt differs from its ref only inside one motif-sized window.
* ``motif_tiling``: a few random references; a motif is written at successive positions
  (stride chosen to fit the requested size); pairs are (tiled alt, background ref).

Sizes (``n_test`` = 7000 by default): high and low 4 % each, yeast 6 %, random 16 %,
challenging 6 %, motif_perturbation ``n_test / 700`` refs + 8 % alts, motif_tiling
``n_test / 2300`` refs + about 6 % alts, SNVs the rest (a third refs, two thirds alts). Every test
sequence is distinct. Test rows are shuffled so category membership cannot be read from the index. About 13 % of
each category (of the members, or of the pairs) forms the public leaderboard.

Determinism: the same ``seed`` and sizes give byte-identical files; the test set depends only
on ``(seed, n_test)`` and the training set only on ``(seed, n_train)``.
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .. import io
from . import encoding
from .encoding import FLANK_3P, FLANK_5P, PAD
from .testset import CATEGORIES, PUBLIC_DIR, SUBSET_DIR, TEST_FILE, TRAIN_FILE

#: Version of the generator; bump when the output for a seed changes (names the cache folder).
VERSION = "simulated-v1"
#: Marker file of a simulated data directory.
MARKER = "SIMULATED.json"
#: Training file name of the challenge.

REGION_START = len(FLANK_5P)  # 17
REGION_LENGTH = 80
FLANK_TOTAL = len(FLANK_5P) + len(FLANK_3P)  # 30

_IUPAC = {
    "A": "A", "C": "C", "G": "G", "T": "T", "R": "AG", "Y": "CT", "S": "CG", "W": "AT", "K": "GT",
    "M": "AC", "B": "CGT", "D": "AGT", "H": "ACT", "V": "ACG", "N": "ACGT",
}


@dataclass(frozen=True)
class Motif:
    """A planted motif and its effect on the latent activity.

    Attributes:
        name: factor name (e.g. ``"Reb1"``).
        consensus: IUPAC consensus on the forward strand (``N`` matches any base).
        effect: latent units added per unit of occupancy (negative for a repressor).
        max_mismatches: 0 (exact matches only) or 1 (one mismatching specified position allowed).
        mismatch_weight: occupancy of a one-mismatch hit (an exact hit counts 1).
        rc_weight: multiplier of hits on the reverse strand.
        position_slope: hit weight ``1 + position_slope * (x - 0.5)``, ``x`` in 0..1 from the 5'
            to the 3' end of the variable region.
        cap: occupancy is clipped at ``cap`` before multiplying by ``effect``.
    """

    name: str
    consensus: str
    effect: float
    max_mismatches: int = 1
    mismatch_weight: float = 0.3
    rc_weight: float = 1.0
    position_slope: float = 0.0
    cap: float = 2.0

    @property
    def length(self) -> int:
        return len(self.consensus)


#: The planted motifs (simplified consensus strings of real yeast transcription factors).
MOTIFS: tuple[Motif, ...] = (
    Motif("Reb1", "TTACCCGG", 1.0, 1, 0.35, 1.0, 0.6),
    Motif("Abf1", "TCRTNNNNNNACG", 0.8, 1, 0.3, 1.0, 0.4),
    Motif("Rap1", "ACCCATACA", 1.2, 1, 0.3, 0.8, 0.5),
    Motif("TATA", "TATAWAWR", 0.7, 1, 0.25, 0.3, 1.0),
    Motif("Gcn4", "TGACTCA", 0.6, 1, 0.3, 1.0, 0.0),
    Motif("polyT", "TTTTTTTT", 0.5, 1, 0.4, 0.6, -0.4),
    Motif("Mig1", "SYGGGG", -0.9, 0, 0.0, 1.0, 0.5),
)
MOTIF_NAMES = tuple(m.name for m in MOTIFS)
ACTIVATORS = tuple(m.name for m in MOTIFS if m.effect > 0)
REPRESSORS = tuple(m.name for m in MOTIFS if m.effect < 0)

GC_COEF = -2.0
INTERACTION = ("Reb1", "polyT")
INTERACTION_COEF = 0.6
#: Standardisation of the latent (about its mean and sd over uniform random sequences).
LATENT_CENTER = 0.125
LATENT_SCALE = 0.52
#: Training observation: sort bins 0..17.
BIN_CENTER = 11.0
BIN_SCALE = 1.9
TRAIN_READ_SD = 1.2
#: Test observation: MAUDE-like scale.
MAUDE_CENTER = 0.15
MAUDE_SCALE = 0.5
MAUDE_LIMIT = 1.8
TEST_NOISE_SD = 0.06
PUBLIC_FRACTION = 0.13
#: Training variable-region length offsets from 80 nt and their probabilities (100..113 nt).
_LENGTH_DELTAS = np.array([3, 2, 1, 0, -1, -2, -3, -4, -5, -6, -7, -8, -9, -10])
_LENGTH_PROBS = np.array([0.001, 0.002, 0.005, 0.82, 0.125, 0.024, 0.008, 0.005, 0.003, 0.002, 0.0015, 0.0012, 0.001, 0.001])
N_RUN_FRACTION = 0.003

_MOTIF_BY_NAME = {m.name: m for m in MOTIFS}


# --------------------------------------------------------------------------------------------
# expression model


def _allowed(consensus: str) -> np.ndarray:
    """``(L, 4) bool``: which of A, C, G, T each consensus position accepts."""
    mask = np.zeros((len(consensus), 4), dtype=bool)
    for k, ch in enumerate(consensus.upper()):
        for base in _IUPAC[ch]:
            mask[k, "ACGT".index(base)] = True
    return mask


def _code_luts(mask: np.ndarray) -> np.ndarray:
    """``(L, 256) bool`` lookup: code -> matches position k (sequence N and PAD never match)."""
    lut = np.zeros((len(mask), 256), dtype=bool)
    lut[:, :4] = mask
    return lut


def motif_occupancy(codes: np.ndarray, lengths: np.ndarray, motifs: tuple[Motif, ...] = MOTIFS) -> np.ndarray:
    """Weighted occupancy ``S_m`` of every motif in every sequence (see the module docstring).

    Args:
        codes: ``(N, W) uint8`` codes (:mod:`harness.data.encoding`), PAD after each sequence.
        lengths: ``(N,) int`` sequence lengths in nt.
        motifs: the motifs to scan (default :data:`MOTIFS`).

    Returns:
        ``(N, len(motifs)) float64`` occupancies (0 where no window matches), before ``cap``.
    """
    codes = np.asarray(codes, dtype=np.uint8)
    lengths = np.asarray(lengths, dtype=np.int64)
    n, width = codes.shape
    out = np.zeros((n, len(motifs)), dtype=np.float64)
    span = np.maximum(lengths - FLANK_TOTAL, 1).astype(np.float64)
    for j, motif in enumerate(motifs):
        length = motif.length
        n_win = width - length + 1
        if n_win <= 0 or n == 0:
            continue
        fwd_mask = _allowed(motif.consensus)
        rc_mask = fwd_mask[::-1, ::-1]  # reverse the positions, complement A<->T, C<->G
        starts = np.arange(n_win)
        centre = starts[None, :] + length / 2.0
        # windows inside the sequence whose centre lies in the variable region (flanks are constant)
        valid = (starts[None, :] + length <= lengths[:, None]) & (centre >= REGION_START) & (
            centre <= (lengths - len(FLANK_3P))[:, None]
        )
        x = np.clip((centre - REGION_START) / span[:, None], 0.0, 1.0)
        pos_weight = 1.0 + motif.position_slope * (x - 0.5)
        for mask, strand_weight in ((fwd_mask, 1.0), (rc_mask, motif.rc_weight)):
            lut = _code_luts(mask)
            matches = np.zeros((n, n_win), dtype=np.int16)
            for k in range(length):
                matches += lut[k][codes[:, k : k + n_win]]
            miss = length - matches
            hit = np.where(miss == 0, 1.0, 0.0)
            if motif.max_mismatches >= 1:
                hit = hit + np.where(miss == 1, motif.mismatch_weight, 0.0)
            out[:, j] += strand_weight * (hit * pos_weight * valid).sum(axis=1)
    return out


def latent_activity(codes: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """The noise-free latent activity ``a`` of the simulator's expression model.

    Args:
        codes: ``(N, W) uint8`` codes, PAD after each sequence.
        lengths: ``(N,) int`` lengths in nt.

    Returns:
        ``(N,) float64`` latent activity in arbitrary units (larger = more expression);
        ``(a - LATENT_CENTER) / LATENT_SCALE`` is roughly standard normal on random sequences.
    """
    occ = motif_occupancy(codes, lengths)
    caps = np.array([m.cap for m in MOTIFS])
    effects = np.array([m.effect for m in MOTIFS])
    latent = (np.minimum(occ, caps) * effects).sum(axis=1)
    latent += GC_COEF * (encoding.gc_content(codes) - 0.5)
    ia, ib = (MOTIF_NAMES.index(name) for name in INTERACTION)
    latent += INTERACTION_COEF * np.minimum(occ[:, ia], 1.0) * np.minimum(occ[:, ib], 1.0)
    return latent


def _standardise(latent: np.ndarray) -> np.ndarray:
    return (latent - LATENT_CENTER) / LATENT_SCALE


def observe_bins(latent: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Training targets from latent activity: mean of 1..4 noisy sort-bin reads.

    Args:
        latent: ``(N,) float64`` latent activity.
        rng: random generator.

    Returns:
        ``(N,) float64`` in 0..17 (integers for single reads, fractional averages otherwise).
    """
    n = len(latent)
    mu = BIN_CENTER + BIN_SCALE * _standardise(latent)
    n_reads = np.where(rng.random(n) < 0.75, 1, rng.integers(2, 5, n))
    reads = np.clip(np.rint(mu[:, None] + rng.normal(0.0, TRAIN_READ_SD, (n, 4))), 0, 17)
    used = np.arange(4)[None, :] < n_reads[:, None]
    return (reads * used).sum(axis=1) / n_reads


def observe_maude(latent: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Test truth from latent activity on a MAUDE-like continuous scale.

    Returns:
        ``(N,) float64``, strictly inside ``(-MAUDE_LIMIT, MAUDE_LIMIT)``.
    """
    value = MAUDE_CENTER + MAUDE_SCALE * _standardise(latent) + rng.normal(0.0, TEST_NOISE_SD, len(latent))
    return MAUDE_LIMIT * np.tanh(value / MAUDE_LIMIT)


# --------------------------------------------------------------------------------------------
# sequence construction


def _flank_codes() -> tuple[np.ndarray, np.ndarray]:
    return encoding.encode([FLANK_5P])[0][0], encoding.encode([FLANK_3P])[0][0]


def _constructs(rng: np.random.Generator, n: int, probs=(0.25, 0.25, 0.25, 0.25)) -> np.ndarray:
    """``(n, 110) uint8``: flanks around a random 80-nt region drawn with base ``probs``."""
    f5, f3 = _flank_codes()
    region = rng.choice(4, size=(n, REGION_LENGTH), p=np.asarray(probs, dtype=float)).astype(np.uint8)
    return np.concatenate([np.broadcast_to(f5, (n, len(f5))), region, np.broadcast_to(f3, (n, len(f3)))], axis=1)


def _instantiate(motif: Motif, rng: np.random.Generator, n: int, rc: np.ndarray | None = None) -> np.ndarray:
    """``(n, L) uint8`` concrete instances of ``motif`` (IUPAC positions drawn at random);
    rows where ``rc`` is True are reverse-complemented."""
    mask = _allowed(motif.consensus)
    out = np.empty((n, motif.length), dtype=np.uint8)
    for k in range(motif.length):
        choices = np.flatnonzero(mask[k]).astype(np.uint8)
        out[:, k] = choices[rng.integers(0, len(choices), n)]
    if rc is not None and rc.any():
        out[rc] = encoding.reverse_complement(out[rc])
    return out


def _write(codes: np.ndarray, rows: np.ndarray, pos: np.ndarray, inst: np.ndarray) -> None:
    """Write ``inst`` ``(k, L)`` into ``codes[rows[i], pos[i] : pos[i] + L]``."""
    if len(rows):
        codes[rows[:, None], pos[:, None] + np.arange(inst.shape[1])[None, :]] = inst


def _plant(codes: np.ndarray, rng: np.random.Generator, choice: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Plant motif ``MOTIFS[choice[i]]`` (skip where -1) into row i at a random place and strand.

    Returns ``(pos, rc)``: ``(n,) int64`` start column (-1 where nothing planted) and ``(n,) bool``.
    """
    n = len(codes)
    pos = np.full(n, -1, dtype=np.int64)
    rc = rng.random(n) < 0.5
    for j, motif in enumerate(MOTIFS):
        rows = np.flatnonzero(choice == j)
        if not len(rows):
            continue
        pos[rows] = REGION_START + rng.integers(0, REGION_LENGTH - motif.length + 1, len(rows))
        _write(codes, rows, pos[rows], _instantiate(motif, rng, len(rows), rc[rows]))
    return pos, rc & (pos >= 0)


def _pick(rng: np.random.Generator, names: tuple[str, ...], n: int) -> np.ndarray:
    idx = np.array([MOTIF_NAMES.index(name) for name in names])
    return idx[rng.integers(0, len(idx), n)]


def _duplicates(refs: np.ndarray, alts: np.ndarray) -> np.ndarray:
    """Indices of ``alts`` rows equal to a ref or to an earlier alt, ``(k,) int64``."""
    rows = np.concatenate([refs, alts])
    _, first = np.unique(rows, axis=0, return_index=True)
    repeated = np.ones(len(rows), dtype=bool)
    repeated[first] = False  # np.unique keeps the first occurrence: refs come before alts
    return np.flatnonzero(repeated[len(refs):])


def _train_set(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Training codes ``(n, W) uint8``, lengths ``(n,) int32`` and targets ``(n,) float64``."""
    f5, f3 = _flank_codes()
    region_len = REGION_LENGTH + rng.choice(_LENGTH_DELTAS, size=n, p=_LENGTH_PROBS / _LENGTH_PROBS.sum())
    lengths = (region_len + FLANK_TOTAL).astype(np.int32)
    width = int(lengths.max())
    region = rng.integers(0, 4, size=(n, width), dtype=np.uint8)
    cols = np.arange(width)[None, :]
    codes = np.full((n, width), PAD, dtype=np.uint8)
    codes[:, : len(f5)] = f5
    in_region = (cols >= REGION_START) & (cols < (REGION_START + region_len)[:, None])
    codes[in_region] = region[in_region]
    tail = cols - (REGION_START + region_len)[:, None]
    in_tail = (tail >= 0) & (tail < len(f3))
    codes[in_tail] = f3[tail[in_tail]]
    y = observe_bins(latent_activity(codes, lengths), rng)
    # a few sequences carry a run of N (unread bases), written after the expression was drawn
    n_rows = np.flatnonzero(rng.random(n) < N_RUN_FRACTION)
    run = rng.integers(1, 21, len(n_rows))
    start = REGION_START + rng.integers(0, np.maximum(region_len[n_rows] - run, 1))
    run_mask = (cols >= start[:, None]) & (cols < (start + run)[:, None])
    sub = codes[n_rows]
    sub[run_mask] = encoding.N
    codes[n_rows] = sub
    return codes, lengths, y


# --------------------------------------------------------------------------------------------
# test set


@dataclass
class _Block:
    """Sequences of one category before shuffling (indices local to the whole test set)."""

    codes: np.ndarray
    tags: list[str]


def _category_sizes(n_test: int) -> dict[str, int]:
    """Members per single category and alt counts of the pair categories (rest goes to SNVs)."""
    if n_test < 300:
        raise ValueError(f"n_test must be at least 300 to fill every category, got {n_test}")
    return {
        "high": round(0.04 * n_test), "low": round(0.04 * n_test), "yeast": round(0.06 * n_test),
        "random": round(0.16 * n_test), "challenging": round(0.06 * n_test),
        "perturbation_refs": max(2, round(n_test / 700)), "perturbation_alts": round(0.08 * n_test),
        "tiling_refs": max(1, round(n_test / 2300)), "tiling_alts": round(0.06 * n_test),
    }


def _test_set(rng: np.random.Generator, n_test: int) -> dict:
    """Build every test category; returns codes, tags and category ids before shuffling."""
    size = _category_sizes(n_test)
    blocks: list[np.ndarray] = []
    tags: list[str] = []
    cats: dict[str, np.ndarray] = {}
    pair_tags: dict[str, tuple[list[str], list[str]]] = {}

    def add(codes: np.ndarray, new_tags: list[str]) -> np.ndarray:
        start = sum(len(b) for b in blocks)
        blocks.append(codes)
        tags.extend(new_tags)
        return np.arange(start, start + len(codes), dtype=np.int64)

    def lat(codes: np.ndarray) -> np.ndarray:
        return latent_activity(codes, np.full(len(codes), codes.shape[1]))

    # high: 2..3 planted activators, keep the top third of 3x candidates
    n = size["high"]
    pool = _constructs(rng, 3 * n)
    n_sites = rng.integers(2, 4, 3 * n)
    for slot in range(3):
        _plant(pool, rng, np.where(n_sites > slot, _pick(rng, ACTIVATORS, 3 * n), -1))
    best = np.sort(np.argsort(-lat(pool), kind="stable")[:n])
    cats["high"] = add(pool[best], [f"GA.sim.high_{i}" for i in range(n)])

    # low: GC-rich background with 1..2 Mig1 boxes, keep the bottom third of 3x candidates
    n = size["low"]
    pool = _constructs(rng, 3 * n, (0.22, 0.28, 0.28, 0.22))
    n_sites = rng.integers(1, 3, 3 * n)
    for slot in range(2):
        _plant(pool, rng, np.where(n_sites > slot, _pick(rng, REPRESSORS, 3 * n), -1))
    worst = np.sort(np.argsort(lat(pool), kind="stable")[:n])
    cats["low"] = add(pool[worst], [f"GA.sim.low_{i}" for i in range(n)])

    # yeast: AT-rich native-like background, 0..2 motifs, half with a poly-dT tract
    n = size["yeast"]
    codes = _constructs(rng, n, (0.32, 0.18, 0.18, 0.32))
    n_sites = rng.integers(0, 3, n)
    for slot in range(2):
        _plant(codes, rng, np.where(n_sites > slot, rng.integers(0, len(MOTIFS), n), -1))
    tract = np.flatnonzero(rng.random(n) < 0.3)
    t_len = rng.integers(8, 15, len(tract))
    t_pos = REGION_START + rng.integers(0, REGION_LENGTH - t_len + 1)
    cols = np.arange(codes.shape[1])[None, :]
    sub = codes[tract]
    sub[(cols >= t_pos[:, None]) & (cols < (t_pos + t_len)[:, None])] = encoding.T
    codes[tract] = sub
    cats["yeast"] = add(codes, [f"YSIM{i:04d}.{k}" for i, k in enumerate(rng.integers(0, 10, n))])

    # random
    n = size["random"]
    cats["random"] = add(_constructs(rng, n), [f"HQ_{i}" for i in range(n)])

    # challenging: strong activators and repressors together
    n = size["challenging"]
    codes = _constructs(rng, n)
    for slot in range(2):
        _plant(codes, rng, np.where((slot == 0) | (rng.random(n) < 0.5), _pick(rng, ("Rap1", "Reb1"), n), -1))
        _plant(codes, rng, np.where((slot == 0) | (rng.random(n) < 0.5), _pick(rng, REPRESSORS, n), -1))
    cats["challenging"] = add(codes, [f"GA.sim.conflict_{i}" for i in range(n)])

    # motif perturbation: refs with one planted motif; alts insert a motif or disrupt the planted one
    n_ref, n_alt = size["perturbation_refs"], size["perturbation_alts"]
    refs = _constructs(rng, n_ref)
    ref_motif = rng.integers(0, len(MOTIFS), n_ref)
    ref_pos, ref_rc = _plant(refs, rng, ref_motif)
    owner = np.arange(n_alt) % n_ref
    alts = refs[owner].copy()
    disrupt = np.zeros(n_alt, dtype=bool)
    ins_motif = np.zeros(n_alt, dtype=np.int64)
    ins_rc = np.zeros(n_alt, dtype=bool)
    n_mut = np.zeros(n_alt, dtype=np.int64)
    edit_pos = np.zeros(n_alt, dtype=np.int64)
    todo = np.arange(n_alt)
    while len(todo):  # redraw alts equal to their ref or to another alt
        alts[todo] = refs[owner[todo]]
        disrupt[todo] = rng.random(len(todo)) < 0.4
        ins_motif[todo] = rng.integers(0, len(MOTIFS), len(todo))
        ins_rc[todo] = rng.random(len(todo)) < 0.5
        for j, motif in enumerate(MOTIFS):
            rows = todo[~disrupt[todo] & (ins_motif[todo] == j)]
            edit_pos[rows] = REGION_START + rng.integers(0, REGION_LENGTH - motif.length + 1, len(rows))
            _write(alts, rows, edit_pos[rows], _instantiate(motif, rng, len(rows), ins_rc[rows]))
        rows = todo[disrupt[todo]]
        n_mut[rows] = rng.integers(1, 4, len(rows))
        edit_pos[rows] = ref_pos[owner[rows]]
        mlen = np.array([MOTIFS[m].length for m in ref_motif[owner[rows]]], dtype=np.int64)
        # distinct offsets inside the motif: sort random keys, positions past the motif last
        offsets = np.argsort(rng.random((len(rows), 13)) + (np.arange(13)[None, :] >= mlen[:, None]), axis=1)
        for k in range(3):
            sel = n_mut[rows] > k
            col = edit_pos[rows[sel]] + offsets[sel, k]
            alts[rows[sel], col] = (alts[rows[sel], col] + rng.integers(1, 4, int(sel.sum()))) % 4
        todo = _duplicates(refs, alts)
    alt_tags = []
    for i in range(n_alt):
        r = owner[i]
        if disrupt[i]:
            m = MOTIFS[ref_motif[r]]
            alt_tags.append(f"rand{r}_{m.name}{'.RC' if ref_rc[r] else ''}.mut{n_mut[i]}_{edit_pos[i] - REGION_START}")
        else:
            m = MOTIFS[ins_motif[i]]
            alt_tags.append(f"rand{r}_{m.name}{'.RC' if ins_rc[i] else ''}_{edit_pos[i] - REGION_START}")
    ref_ids = add(refs, [f"rand{r}" for r in range(n_ref)])
    alt_ids = add(alts, alt_tags)
    cats["motif_perturbation"] = np.stack([alt_ids, ref_ids[owner]], axis=1)
    pair_tags["motif_perturbation"] = (alt_tags, [f"rand{r}" for r in owner])

    # motif tiling: successive positions of a few motifs in a few backgrounds
    n_ref, target = size["tiling_refs"], size["tiling_alts"]
    tile_names = ("Reb1", "polyT", "Gcn4", "Mig1")
    combos = sum(REGION_LENGTH - _MOTIF_BY_NAME[t].length + 1 for t in tile_names) * n_ref
    stride = max(1, math.ceil(combos / target))
    owner_l, pos_l, motif_l, tag_l = [], [], [], []
    for name in tile_names:
        for r in range(n_ref):
            for p in range(0, REGION_LENGTH - _MOTIF_BY_NAME[name].length + 1, stride):
                owner_l.append(r)
                pos_l.append(REGION_START + p)
                motif_l.append(name)
                tag_l.append(f"rand{r + 1000}_{name}_{p}")
    owner = np.array(owner_l)
    tile_pos = np.array(pos_l, dtype=np.int64)
    motif_l = np.array(motif_l)
    instances = {name: _instantiate(_MOTIF_BY_NAME[name], rng, 1) for name in tile_names}  # one per motif
    refs = _constructs(rng, n_ref)
    redraw = np.arange(n_ref)
    while len(redraw):  # redraw a background whose tiled copies repeat (e.g. the motif is in it)
        refs[redraw] = _constructs(rng, len(redraw))
        alts = refs[owner].copy()
        for name in tile_names:
            rows = np.flatnonzero(motif_l == name)
            _write(alts, rows, tile_pos[rows], np.repeat(instances[name], len(rows), axis=0))
        redraw = np.unique(owner[_duplicates(refs, alts)])
    ref_ids = add(refs, [f"rand{r + 1000}" for r in range(n_ref)])
    alt_ids = add(alts, tag_l)
    cats["motif_tiling"] = np.stack([alt_ids, ref_ids[owner]], axis=1)
    pair_tags["motif_tiling"] = (tag_l, [f"rand{r + 1000}" for r in owner])

    # SNVs: the rest. refs (half with a planted motif) + 1..3 single-nucleotide alts each
    n_snv = n_test - sum(len(b) for b in blocks)
    if n_snv < 2:
        raise ValueError(f"n_test={n_test} leaves no room for SNV pairs")
    n_ref = max(1, n_snv // 3)
    n_alt = n_snv - n_ref
    refs = _constructs(rng, n_ref, (0.3, 0.2, 0.2, 0.3))
    ref_motif = np.where(rng.random(n_ref) < 0.5, rng.integers(0, len(MOTIFS), n_ref), -1)
    ref_pos, _ = _plant(refs, rng, ref_motif)
    owner = np.concatenate([np.arange(n_ref), rng.integers(0, n_ref, n_alt - n_ref)]) if n_alt >= n_ref else np.arange(n_alt)
    owner = np.sort(owner)
    mlen = np.array([m.length for m in MOTIFS])
    snv_pos = np.empty(n_alt, dtype=np.int64)
    shift = np.empty(n_alt, dtype=np.int64)
    todo = np.arange(n_alt)
    while len(todo):  # redraw (ref, position, base) duplicates so every alt sequence is distinct
        inside = (ref_motif[owner[todo]] >= 0) & (rng.random(len(todo)) < 0.5)
        lo = np.where(inside, ref_pos[owner[todo]], REGION_START)
        span = np.where(inside, mlen[ref_motif[owner[todo]]], REGION_LENGTH)
        snv_pos[todo] = lo + (rng.random(len(todo)) * span).astype(np.int64)
        shift[todo] = rng.integers(1, 4, len(todo))
        key = (owner * 1000 + snv_pos) * 4 + shift
        _, first = np.unique(key, return_index=True)
        dup = np.ones(n_alt, dtype=bool)
        dup[first] = False
        todo = np.flatnonzero(dup)
    alts = refs[owner].copy()
    alts[np.arange(n_alt), snv_pos] = (alts[np.arange(n_alt), snv_pos] + shift) % 4
    letters = np.array(list("ACGT"))
    ref_tags = [f"snvref{r}" for r in range(n_ref)]
    snv_alt_tags = [
        f"snvref{o}_{p - REGION_START}{letters[refs[o, p]]}>{letters[alts[i, p]]}"
        for i, (o, p) in enumerate(zip(owner.tolist(), snv_pos.tolist()))
    ]
    ref_ids = add(refs, ref_tags)
    alt_ids = add(alts, snv_alt_tags)
    cats["SNVs"] = np.stack([alt_ids, ref_ids[owner]], axis=1)
    pair_tags["SNVs"] = (snv_alt_tags, [ref_tags[o] for o in owner])

    return {"codes": np.concatenate(blocks), "tags": tags, "categories": cats, "pair_tags": pair_tags,
            "tiling_stride": stride}


# --------------------------------------------------------------------------------------------
# writing


def _format_values(values: np.ndarray) -> list[str]:
    """Integers as ``"11"``, other values with 15 significant digits (like the real files)."""
    return [str(int(v)) if float(v).is_integer() else f"{v:.15g}" for v in values.tolist()]


def _table_text(seqs: list[str], values: np.ndarray) -> str:
    return "".join(f"{s}\t{v}\n" for s, v in zip(seqs, _format_values(values)))


def _round_json(values: np.ndarray) -> list[float]:
    return [float(f"{v:.15g}") for v in np.asarray(values, dtype=np.float64).ravel().tolist()]


def simulate_dataset(out_dir: str | os.PathLike, n_train: int = 20000, n_test: int = 7000, seed: int = 0) -> Path:
    """Write a SIMULATED dataset in the official DREAM 2022 layout (see the module docstring).

    Args:
        out_dir: directory to write (created; existing files of the layout are replaced).
        n_train: training sequences (>= 1).
        n_test: test sequences (>= 300 so that every category is filled).
        seed: random seed; the same seed and sizes give identical files.

    Returns:
        ``out_dir`` as a :class:`~pathlib.Path`. ``SIMULATED.json`` is written last, so a
        directory holding it is complete.

    Raises:
        ValueError: ``n_train < 1`` or ``n_test < 300``.
    """
    if n_train < 1:
        raise ValueError(f"n_train must be at least 1, got {n_train}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    train_ss, test_ss, public_ss = np.random.SeedSequence(seed).spawn(3)

    # training file
    t_codes, t_lengths, t_y = _train_set(np.random.default_rng(train_ss), n_train)
    io.write_text(out / TRAIN_FILE, _table_text(encoding.decode(t_codes, t_lengths), t_y))

    # test file: build, shuffle, observe
    rng = np.random.default_rng(test_ss)
    built = _test_set(rng, n_test)
    order = rng.permutation(n_test)  # row j of the file holds built sequence order[j]
    where = np.empty(n_test, dtype=np.int64)
    where[order] = np.arange(n_test)
    codes = built["codes"][order]
    seqs = encoding.decode(codes)
    truth = observe_maude(latent_activity(codes, np.full(n_test, codes.shape[1])), rng)
    io.write_text(out / TEST_FILE, _table_text(seqs, truth))
    tags = [built["tags"][i] for i in order]

    # category csvs
    cats = {c: where[ids] for c, ids in built["categories"].items()}
    for cat, (csv_name, _) in CATEGORIES.items():
        ids = cats[cat]
        if ids.ndim == 1:
            frame = pd.DataFrame({"tag": [tags[i] for i in ids], "sequence": [seqs[i] for i in ids],
                                  "pos": ids, "exp": np.nan})
        else:
            alt_tags, ref_tags = built["pair_tags"][cat]
            frame = pd.DataFrame({
                "alt_tag": alt_tags, "ref_tag": ref_tags,
                "alt_sequence": [seqs[i] for i in ids[:, 0]], "ref_sequence": [seqs[i] for i in ids[:, 1]],
                "alt_pos": ids[:, 0], "ref_pos": ids[:, 1], "alt_exp": np.nan, "ref_exp": np.nan,
            })
        io.write_text(out / SUBSET_DIR / csv_name, frame.to_csv(index=True))

    # public leaderboard: ~13 % of each category's members (or pairs)
    prng = np.random.default_rng(public_ss)
    ground: dict[str, float] = {}
    public_sizes = {}
    for cat, (_, json_name) in CATEGORIES.items():
        ids = cats[cat]
        k = max(1, round(PUBLIC_FRACTION * len(ids)))
        chosen = ids[prng.choice(len(ids), size=k, replace=False)]
        public_sizes[cat] = k
        if chosen.ndim == 1:
            obj = {str(i): v for i, v in zip(chosen.tolist(), _round_json(truth[chosen]))}
        else:
            vals = _round_json(truth[chosen])
            obj = {f"{a},{r}": [vals[2 * j], vals[2 * j + 1]] for j, (a, r) in enumerate(chosen.tolist())}
        io.write_json(out / PUBLIC_DIR / json_name, obj)
        for i in np.unique(chosen).tolist():
            ground[str(i)] = _round_json(truth[[i]])[0]
    io.write_json(out / PUBLIC_DIR / "ground.json", ground)
    guesses = _round_json(prng.normal(MAUDE_CENTER, 0.75, len(ground)))
    io.write_json(out / PUBLIC_DIR / "sample_submission.json", dict(zip(ground, guesses)))

    marker = {
        "simulated": True,
        "note": "SIMULATED data from harness.data.simulate: not Random Promoter DREAM Challenge 2022 data; "
                "scores on it say nothing about the challenge.",
        "version": VERSION,
        "seed": seed,
        "n_train": n_train,
        "n_test": n_test,
        "motifs": [asdict(m) for m in MOTIFS],
        "model": {
            "gc_coef": GC_COEF, "interaction": list(INTERACTION), "interaction_coef": INTERACTION_COEF,
            "latent_center": LATENT_CENTER, "latent_scale": LATENT_SCALE,
            "bin_center": BIN_CENTER, "bin_scale": BIN_SCALE, "train_read_sd": TRAIN_READ_SD,
            "maude_center": MAUDE_CENTER, "maude_scale": MAUDE_SCALE, "maude_limit": MAUDE_LIMIT,
            "test_noise_sd": TEST_NOISE_SD, "n_run_fraction": N_RUN_FRACTION,
        },
        "categories": {c: len(ids) for c, ids in cats.items()},
        "public": public_sizes,
        "public_fraction": PUBLIC_FRACTION,
        "tiling_stride": built["tiling_stride"],
    }
    io.write_json(out / MARKER, marker)
    return out


def is_simulated(data_dir: str | os.PathLike) -> bool:
    """True when ``data_dir`` holds the ``SIMULATED.json`` marker written by :func:`simulate_dataset`."""
    return (Path(data_dir) / MARKER).is_file()


def cache_root() -> Path:
    """The harness cache: ``$HARNESS_CACHE``, else ``$XDG_CACHE_HOME/dream-harness``, else
    ``~/.cache/dream-harness``."""
    if os.environ.get("HARNESS_CACHE"):
        return Path(os.environ["HARNESS_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "dream-harness"


def default_data_dir() -> Path:
    """The simulated default data directory ``<cache_root()>/simulated-v1``, generated if missing.

    Generation (default sizes, seed 0, a few seconds) goes to a temporary folder beside the target
    that is then renamed into place, so a concurrent reader never sees a partial directory; when
    two processes race, the first rename wins and the other's copy is discarded.

    Returns:
        The directory (holds ``SIMULATED.json``).

    Raises:
        FileExistsError: the target exists but is not a simulated data directory (left untouched).
    """
    target = cache_root() / VERSION
    if is_simulated(target):
        return target
    if target.exists() and any(target.iterdir()):
        raise FileExistsError(f"{target} exists but holds no {MARKER}; remove it to regenerate the simulated data")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{VERSION}.", dir=target.parent))
    try:
        simulate_dataset(tmp)
        with contextlib.suppress(FileNotFoundError, OSError):
            if target.exists() and not any(target.iterdir()):
                target.rmdir()
        try:
            os.rename(tmp, target)
        except OSError:
            if not is_simulated(target):
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target
