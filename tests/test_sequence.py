"""Device-side sequence primitives (harness.data.sequence) against their NumPy counterparts."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from harness.data import encoding, sequence
from harness.data.construct import VECTOR_DOWNSTREAM, VECTOR_UPSTREAM

SEQS = ["ACGTNACG", "TTGCA", "GGGGCCCCAT"]


def _codes():
    codes, lengths = encoding.encode(SEQS)
    return codes, lengths


@pytest.mark.parametrize("n_value", [0.0, 0.25])
def test_one_hot_codes_matches_numpy_one_hot(n_value):
    codes, _ = _codes()
    got = sequence.one_hot_codes(torch.from_numpy(codes), n_value=n_value)
    assert got.shape == (3, 4, codes.shape[1]) and got.dtype == torch.float32 and got.is_contiguous()
    np.testing.assert_array_equal(got.numpy(), encoding.one_hot(codes, n_value=n_value))
    assert sequence.one_hot_codes(torch.from_numpy(codes), torch.float16).dtype == torch.float16


def test_reverse_complement_codes_matches_numpy_and_one_hot_flip():
    codes, lengths = encoding.encode(["ACGTNACG", "TTGCAGGA"])  # equal lengths: whole rows
    rc = sequence.reverse_complement_codes(torch.from_numpy(codes))
    np.testing.assert_array_equal(rc.numpy(), encoding.reverse_complement(codes, lengths))
    assert encoding.decode(rc.numpy()) == ["CGTNACGT", "TCCTGCAA"]
    x = sequence.one_hot_codes(torch.from_numpy(codes))
    views = sequence.with_reverse_complement(x)
    assert views.shape == (2, 2, 4, 8)
    torch.testing.assert_close(views[:, 0], x, rtol=0, atol=0)
    torch.testing.assert_close(views[:, 1], sequence.one_hot_codes(rc), rtol=0, atol=0)


def test_vector_window_is_fit_length_with_vector_fill_and_shifts_move_it():
    codes, lengths = _codes()
    up = torch.from_numpy(encoding.encode([VECTOR_UPSTREAM])[0][0])
    down = torch.from_numpy(encoding.encode([VECTOR_DOWNSTREAM])[0][0])
    width = 12
    expected = encoding.fit_length(codes, lengths, width, strategy=np.array(["both", "left", "right"]),
                                   fill=(VECTOR_UPSTREAM, VECTOR_DOWNSTREAM))
    # fit_length "both" puts floor(short / 2) on the 5' side: 12 - 8 = 4 -> 2, "left": all 7
    left = np.array([2, 7, 0])
    got = sequence.vector_window(torch.from_numpy(codes), torch.from_numpy(lengths), torch.from_numpy(-left), width,
                                 up, down)
    np.testing.assert_array_equal(got.numpy(), expected)
    views = sequence.shifted_windows(torch.from_numpy(codes), torch.from_numpy(lengths), torch.from_numpy(left),
                                     (-1, 0, 2), width, up, down)
    assert views.shape == (3, 3, width)
    np.testing.assert_array_equal(views[:, 1].numpy(), expected)
    # shift -1: one more upstream nt in front, the last nt out; +2: two nt out in front
    np.testing.assert_array_equal(views[:, 0, 1:].numpy(), expected[:, :-1])
    np.testing.assert_array_equal(views[:, 2, :-2].numpy(), expected[:, 2:])


def test_flag_channel_and_average_views():
    flag = sequence.flag_channel(torch.tensor([0, 1], dtype=torch.uint8), 2, 5, torch.device("cpu"))
    assert flag.shape == (2, 1, 5) and flag.dtype == torch.float32
    assert flag[0].eq(0).all() and flag[1].eq(1).all()
    const = sequence.flag_channel(1.0, 3, 4, torch.device("cpu"))
    assert const.shape == (3, 1, 4) and const.eq(1).all()
    out = torch.tensor([[1.0, 3.0], [2.0, 2.0]])
    torch.testing.assert_close(sequence.average_views(out), torch.tensor([2.0, 2.0]))


def test_numpy_vector_window_is_the_torch_twin_in_blocks(monkeypatch):
    rng = np.random.default_rng(0)
    lengths = rng.integers(0, 30, 50)
    codes, lengths = encoding.encode(["".join(rng.choice(list("ACGTN"), n)) for n in lengths], width=30)
    up, down = encoding.encode([VECTOR_UPSTREAM])[0][0], encoding.encode([VECTOR_DOWNSTREAM])[0][0]
    start = rng.integers(-20, 20, len(codes))
    expected = sequence.vector_window(torch.from_numpy(codes), torch.from_numpy(lengths), torch.from_numpy(start), 25,
                                      torch.from_numpy(up), torch.from_numpy(down)).numpy()
    monkeypatch.setattr(encoding, "_WINDOW_BLOCK", 7)  # several blocks
    np.testing.assert_array_equal(encoding.vector_window(codes, lengths, start, 25, up, down), expected)
    # no sequence column at all: the window is all vector
    empty = encoding.vector_window(np.zeros((2, 0), np.uint8), np.zeros(2), np.array([-3, -1]), 3, up, down)
    assert empty.tolist() == [up[-3:].tolist(), [up[-1], down[0], down[1]]]
