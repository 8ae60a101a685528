"""Nucleotide codes, one-hot, reverse complement, length policies (harness.data.encoding)."""

from __future__ import annotations

import numpy as np
import pytest

from harness.data import encoding
from harness.data.encoding import A, C, G, N, PAD, T, decode, encode, fit_length, gc_content, one_hot, reverse_complement


def test_encode_codes_lengths_and_iupac():
    codes, lengths = encode(["ACGT", "acgtn", "RYSWKMBDHV", "A"])
    assert codes.dtype == np.uint8 and lengths.dtype == np.int32
    assert codes.shape == (4, 10)
    assert lengths.tolist() == [4, 5, 10, 1]
    assert codes[0, :4].tolist() == [A, C, G, T]
    assert codes[1, :5].tolist() == [A, C, G, T, N]
    assert (codes[2] == N).all()  # every IUPAC ambiguity letter maps to N
    assert (codes[0, 4:] == PAD).all() and (codes[3, 1:] == PAD).all()
    assert decode(codes, lengths) == ["ACGT", "ACGTN", "NNNNNNNNNN", "A"]


def test_encode_width_cuts_and_rejects_non_nucleotides():
    codes, lengths = encode(["ACGTACGT"], width=3)
    assert codes.tolist() == [[A, C, G]] and lengths.tolist() == [8]
    with pytest.raises(ValueError, match=r"sequence 1: position 3 holds 'X'"):
        encode(["ACGT", "ACXT"])


@pytest.mark.parametrize("layout", ["NCL", "NLC"])
def test_one_hot_channels(layout):
    codes, _ = encode(["ACGTNR", "TTA"])  # row 1 is padded with PAD
    x = one_hot(codes, layout=layout)
    assert x.dtype == np.float32
    if layout == "NCL":
        assert x.shape == (2, 4, 6)
        x = x.transpose(0, 2, 1)
    else:
        assert x.shape == (2, 6, 4)
    np.testing.assert_array_equal(x[0, :4], np.eye(4))  # A, C, G, T -> channels 0..3
    assert (x[0, 4:] == 0).all()  # N and IUPAC R -> zeros
    np.testing.assert_array_equal(x[1, :3], np.eye(4)[[3, 3, 0]])
    assert (x[1, 3:] == 0).all()  # PAD -> zeros
    assert x.sum() == 7


def test_one_hot_dtype_and_invalid_code():
    codes = np.array([[A, encoding.INVALID, PAD, T]], dtype=np.uint8)
    x = one_hot(codes, dtype=np.uint8, layout="NLC")
    assert x.dtype == np.uint8
    assert x[0].tolist() == [[1, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 1]]


def test_reverse_complement_without_lengths_reverses_whole_row():
    codes, _ = encode(["AACGN", "GT"])
    rc = reverse_complement(codes)
    assert rc[0].tolist() == [N, C, G, T, T]
    assert rc[1].tolist() == [PAD, PAD, PAD, A, C]  # PAD is reversed with the row


def test_reverse_complement_with_lengths_keeps_pad_at_end():
    codes, lengths = encode(["AACGN", "GT", "TTTG"])
    rc = reverse_complement(codes, lengths)
    assert decode(rc, lengths) == ["NCGTT", "AC", "CAAA"]
    assert rc[1, 2:].tolist() == [PAD, PAD, PAD]
    assert rc[2, 4] == PAD


def test_reverse_complement_is_an_involution():
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 30, 200).astype(np.int32)
    codes = np.full((200, 30), PAD, dtype=np.uint8)
    mask = np.arange(30)[None, :] < lengths[:, None]
    codes[mask] = rng.integers(0, 5, mask.sum())
    twice = reverse_complement(reverse_complement(codes, lengths), lengths)
    np.testing.assert_array_equal(twice, codes)
    np.testing.assert_array_equal(reverse_complement(reverse_complement(codes)), codes)
    # complement pairs A<->T, C<->G; base counts swap accordingly
    rc = reverse_complement(codes, lengths)
    assert ((rc == A).sum(), (rc == C).sum()) == ((codes == T).sum(), (codes == G).sum())


def _fit(seqs, target, **kw):
    codes, lengths = encode(seqs)
    return decode(fit_length(codes, lengths, target, **kw))


def test_fit_length_n_padding_strategies():
    assert _fit(["ACG"], 6, strategy="right") == ["ACGNNN"]
    assert _fit(["ACG"], 6, strategy="left") == ["NNNACG"]
    assert _fit(["ACG"], 6, strategy="both") == ["NACGNN"]  # the extra nt goes 3'
    assert _fit(["ACG"], 7, strategy="both") == ["NNACGNN"]
    assert _fit(["ACGTAC"], 6, strategy="left") == ["ACGTAC"]  # exact length untouched


def test_fit_length_vector_flank_takes_adjacent_vector_bases():
    up, down = "GGGGGCTAG", "TCAGGGGGG"
    assert _fit(["AAA"], 6, strategy="right", fill=(up, down)) == ["AAATCA"]
    assert _fit(["AAA"], 6, strategy="left", fill=(up, down)) == ["TAGAAA"]
    assert _fit(["AAA"], 7, strategy="both", fill=(up, down)) == ["AGAAATC"]


def test_fit_length_per_row_strategy_and_truncation():
    codes, lengths = encode(["AC", "AC", "AC", "ACGTTGCA"])
    out = decode(fit_length(codes, lengths, 4, strategy=np.array(["right", "left", "both", "right"])))
    assert out == ["ACNN", "NNAC", "NACN", "ACGT"]
    out = decode(fit_length(codes, lengths, 4, truncate="left"))
    assert out[3] == "TGCA" and out[0] == "ACNN"
    assert fit_length(codes, lengths, 4).shape == (4, 4)


def test_fit_length_errors():
    codes, lengths = encode(["AC"])
    with pytest.raises(ValueError, match="unknown padding strategy"):
        fit_length(codes, lengths, 4, strategy="middle")
    with pytest.raises(ValueError, match="vector flank too short"):
        fit_length(codes, lengths, 10, fill=("AC", "GTTTTTTTTT"))
    with pytest.raises(ValueError, match="fill must be"):
        fit_length(codes, lengths, 4, fill="A")


def test_gc_content_ignores_n_and_pad():
    codes, _ = encode(["GGCC", "ATGN", "NNN"])
    np.testing.assert_allclose(gc_content(codes), [1.0, 1 / 3, 0.0])


def test_flanks_are_the_construct():
    assert len(encoding.FLANK_5P) + 80 + len(encoding.FLANK_3P) == encoding.CONSTRUCT_LENGTH == 110


def test_one_hot_table_is_the_one_table_with_an_n_value():
    table = encoding.one_hot_table()
    assert table.shape == (256, 4) and table.dtype == np.float32
    np.testing.assert_array_equal(table[:4], np.eye(4))
    assert (table[4:] == 0).all()
    kipoi = encoding.one_hot_table(0.25)  # KircherLab's N (kipoiseq ReorderedOneHot)
    assert (kipoi[[N, PAD]] == 0.25).all() and (kipoi[:4] == np.eye(4)).all()
    codes = encode(["ACGTN"])[0]
    np.testing.assert_array_equal(one_hot(codes, layout="NLC", n_value=0.25)[0], kipoi[[A, C, G, T, N]])
    np.testing.assert_array_equal(one_hot(codes)[0], np.eye(5, 4).T)  # default: N -> zeros, (N, 4, L)


def test_complement_table_is_read_only_and_an_involution():
    assert encoding.COMPLEMENT[[A, C, G, T, N, PAD]].tolist() == [T, G, C, A, N, PAD]
    np.testing.assert_array_equal(encoding.COMPLEMENT[encoding.COMPLEMENT], np.arange(256))
    with pytest.raises(ValueError):
        encoding.COMPLEMENT[A] = A


def test_fixed_width_cuts_or_pad_extends():
    codes, lengths = encode(["ACGTA", "AC"])
    out, length = encoding.fixed_width(codes, lengths, 3)
    assert out.tolist() == [[A, C, G], [A, C, PAD]] and length.tolist() == [3, 2] and length.dtype == np.int32
    out, length = encoding.fixed_width(codes, lengths, 7)
    assert out.shape == (2, 7) and (out[:, 5:] == PAD).all() and length.tolist() == [5, 2]
