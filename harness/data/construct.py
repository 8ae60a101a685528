"""The reporter construct around the 80-nt random region: fixed flanks and the plasmid (vector) context.

Sequences in the DREAM 2022 data are 110 nt: 17-nt 5' flank + 80-nt random region + 13-nt 3'
flank (:data:`harness.data.encoding.FLANK_5P`, :data:`~harness.data.encoding.FLANK_3P`). In the
cell they sit inside the pTpA yeast expression plasmid (de Boer et al. 2020, Nat. Biotechnol.;
Vaishnav et al. 2022). Methods that pad with the "real vector sequence" (BHI write-up §1: padding
short sequences and test-time shifts; LegNet: padding to 150 nt) need the plasmid nucleotides
beyond the flanks. They are taken from the pTpA plasmid sequence as published with the
challenge winners' code (autosome-ru/LegNet, ``dream_ablation/dream_preprocess.py``, constant
``PLASMID``), upper-cased:

* :data:`VECTOR_UPSTREAM`: the 120 nt immediately 5' of the 17-nt flank;
* :data:`VECTOR_DOWNSTREAM`: the 120 nt immediately 3' of the 13-nt flank (the start of the
  YFP reporter ORF follows after 85 nt);
* :data:`VECTOR_FURTHER_UPSTREAM`: the 125 nt 5' of :data:`VECTOR_UPSTREAM` (LegNet pads to up to
  262 nt with :data:`PLASMID_UPSTREAM` = both upstream parts, 245 nt).

Use them as the ``fill=(VECTOR_UPSTREAM, VECTOR_DOWNSTREAM)`` pair of
:func:`harness.data.encoding.fit_length`, or as the context of
:func:`harness.data.encoding.vector_window` / :func:`harness.data.sequence.vector_window`.
"""

from __future__ import annotations

from .encoding import FLANK_3P, FLANK_5P

#: 120 nt of pTpA 5' of the 17-nt flank ``TGCATTTTTTTCACATC`` (ends ...GATTCGAAC).
VECTOR_UPSTREAM = (
    "GTTGAGTGTTGTTCCAGTTTGGAACAAGAGTCCACTATTAAAGAACGTGGACTCCAACGTCAAAGGGCGAAAAACCGTCTATCAGGGCGA"
    "TGGCCCACTACGTGAACCATCACCCTAATCAAGTGCTAGCAGGAATGATGCAAAAGGTTCCCGATTCGAAC"
)[-120:]
#: 120 nt of pTpA 3' of the 13-nt flank ``GGTTACGGCTGTT`` (starts TCTTAATTAA...).
VECTOR_DOWNSTREAM = (
    "TCTTAATTAAAAAAAGATAGAAAACATTAGGAGTGTAACACAAGACTTTCGGATCCTGAGCAGGCAAGATAAACGAAGGCAAAG"
    "ATGTCTAAAGGTGAAGAATTATTCACTGGTGTTGTCCCAATTTTGGTTGAATTAGATGG"
)[:120]
#: 125 nt of pTpA 5' of :data:`VECTOR_UPSTREAM` (same published plasmid; ends ...CCACTATTAA).
VECTOR_FURTHER_UPSTREAM = (
    "TTTTTGTTAAATCAGCTCATTTTTTAACCAATAGGCCGAAATCGGCAAAATCCCTTATAAATCAAAAGAATAGACCGAGATAGGGTTGAGTG"
    "TTGTTCCAGTTTGGAACAAGAGTCCACTATTAA"
)
#: the 245 nt of pTpA immediately 5' of the 17-nt flank.
PLASMID_UPSTREAM = VECTOR_FURTHER_UPSTREAM + VECTOR_UPSTREAM
#: the construct with the random region as 80 N, plus the vector context on both sides (350 nt).
CONSTRUCT = VECTOR_UPSTREAM + FLANK_5P + "N" * 80 + FLANK_3P + VECTOR_DOWNSTREAM
