"""Packed Hamming distances and ranking (ugach_core.retrieval) against naive computations."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ugach_core.model import CrossModalHashNet
from ugach_core.retrieval import (PackedCodes, encode, hamming_distance, hamming_topk,
                                  pack_codes, rank_by_hamming)


def _naive_hamming(q: np.ndarray, db: np.ndarray) -> np.ndarray:
    return np.array([[int(sum(a != b for a, b in zip(qi, di))) for di in db] for qi in q])


def test_hamming_hand_example():
    """0000 vs [0011, 1000, 1111]: distances 2, 1, 4; a 70-bit pair differing in bits 0 and 69: 2."""
    q = np.array([[0, 0, 0, 0]])
    db = np.array([[0, 0, 1, 1], [1, 0, 0, 0], [1, 1, 1, 1]])
    np.testing.assert_array_equal(hamming_distance(pack_codes(q), pack_codes(db)), [[2, 1, 4]])
    a, b = np.zeros((1, 70), bool), np.zeros((1, 70), bool)
    b[0, [0, 69]] = True  # first word and second word
    assert pack_codes(a).shape == (1, 2) and pack_codes(a).dtype == np.uint64
    assert hamming_distance(pack_codes(a), pack_codes(b))[0, 0] == 2


@pytest.mark.parametrize("bits", [1, 16, 63, 64, 65, 128])
def test_packed_hamming_equals_naive(bits, rng):
    """Popcount of XOR over packed words == count of differing bits, word boundaries included."""
    q = rng.integers(0, 2, size=(7, bits))
    db = rng.integers(0, 2, size=(11, bits)).astype(bool)
    dist = hamming_distance(pack_codes(q), pack_codes(db), block=3)
    assert dist.shape == (7, 11)
    np.testing.assert_array_equal(dist, _naive_hamming(q, db.astype(int)))


def test_pack_codes_hand_words():
    """Bit j of a code is bit 63 - j of its word (big-endian), zero padding after the code:
    [0, 1, 1] -> 0b011 << 61 = 0x6000...; 65 ones -> words 2**64 - 1 and 1 << 63."""
    expected = np.array([[0x6000000000000000]], dtype=np.uint64)
    for c in (np.array([[0, 1, 1]]), np.array([[0.0, 1.0, 1.0]]),
              torch.tensor([[False, True, True]])):
        p = pack_codes(c)
        np.testing.assert_array_equal(p, expected)
        assert p.bits == 3
    p = pack_codes(np.ones((1, 65), bool))
    np.testing.assert_array_equal(p, np.array([[2**64 - 1, 1 << 63]], dtype=np.uint64))
    assert p.bits == 65


def test_rank_by_hamming_hand_ties():
    """dist [2,1,0,1,4,3] -> order 2, 1<3 (tie by index), 0, 5, 4."""
    dist = np.array([[2, 1, 0, 1, 4, 3]])
    np.testing.assert_array_equal(rank_by_hamming(dist), [[2, 1, 3, 0, 5, 4]])
    np.testing.assert_array_equal(rank_by_hamming(dist, topk=2), [[2, 1]])
    np.testing.assert_array_equal(rank_by_hamming(dist, topk=3), [[2, 1, 3]])


@pytest.mark.parametrize("dtype", [np.int32, np.uint8, np.int64])
@pytest.mark.parametrize("topk", [None, 1, 4, 29, 30, 100])
def test_rank_by_hamming_equals_sorted_by_distance_then_index(topk, dtype, rng):
    """Ranking (with and without topk) == Python's sort by the key (distance, index), with
    many ties (distances 0..4); the library's own sorts are not the reference."""
    dist = rng.integers(0, 5, size=(9, 30)).astype(dtype)
    expected = [sorted(range(30), key=lambda j: (int(row[j]), j))[:topk] for row in dist]
    np.testing.assert_array_equal(rank_by_hamming(dist, topk), expected)


@pytest.mark.parametrize("bad", [np.array([[0, 2, 1]]), np.array([[0.0, 0.5, 1.0]]),
                                 np.array([[-1, 0, 1]])])
def test_codes_outside_01_raise(bad):
    """Codes with values other than 0/1 are rejected with a hint to binarise."""
    with pytest.raises(ValueError, match="only 0/1"):
        pack_codes(bad)


def test_non_2d_codes_raise():
    """A 1-D code vector is rejected (items x bits expected), and so are codes of 0 bits or
    codes packed twice."""
    with pytest.raises(ValueError, match="2-D"):
        pack_codes(np.array([0, 1, 1]))
    with pytest.raises(ValueError, match="codes have no bits"):
        pack_codes(np.zeros((3, 0), bool))
    with pytest.raises(ValueError, match="already packed"):
        pack_codes(pack_codes(np.zeros((3, 4), bool)))


def test_mismatched_code_lengths_raise():
    """24-bit queries vs 65-bit database (1 vs 2 words) is a ValueError naming both lengths."""
    q = pack_codes(np.zeros((2, 24), bool))
    db = pack_codes(np.zeros((3, 65), bool))
    with pytest.raises(ValueError, match="24 bits.*65 bits"):
        hamming_distance(q, db)


def _topk_numpy(q, db):
    return hamming_topk(q, db, 2, backend="numpy")


def _topk_auto(q, db):
    return hamming_topk(q, db, 2)


@pytest.mark.parametrize("fn", [hamming_distance, _topk_numpy, _topk_auto])
@pytest.mark.parametrize("packed", [True, False])
def test_24_vs_32_bit_codes_raise(fn, packed, rng):
    """24-bit and 32-bit codes both fill one 64-bit word: the word count cannot tell them
    apart, the carried bit length must.  Both orders, packed and unpacked input."""
    c24 = rng.integers(0, 2, size=(4, 24)).astype(bool)
    c32 = rng.integers(0, 2, size=(5, 32)).astype(bool)
    a, b = (pack_codes(c24), pack_codes(c32)) if packed else (c24, c32)
    with pytest.raises(ValueError, match="query codes have 24 bits but database codes "
                                         "have 32 bits"):
        fn(a, b)
    with pytest.raises(ValueError, match="query codes have 32 bits but database codes "
                                         "have 24 bits"):
        fn(b, a)


def test_unpacked_codes_are_packed_on_the_fly():
    """hamming_distance / hamming_topk take 0/1 codes as well: 0000 vs [0011, 1000, 1111]."""
    q = np.array([[0, 0, 0, 0]])
    db = np.array([[0, 0, 1, 1], [1, 0, 0, 0], [1, 1, 1, 1]], dtype=bool)
    np.testing.assert_array_equal(hamming_distance(q, db), [[2, 1, 4]])
    idx, dist = hamming_topk(q, db, 2, backend="numpy")
    np.testing.assert_array_equal(idx, [[1, 0]])
    np.testing.assert_array_equal(dist, [[1, 2]])


def test_plain_word_arrays_are_rejected():
    """Plain uint64 words carry no code length: a ValueError that says how to wrap them."""
    words = np.zeros((2, 1), dtype=np.uint64)
    with pytest.raises(ValueError, match=r"no code length.*PackedCodes\(words, bits\)"):
        hamming_distance(words, pack_codes(np.zeros((3, 24), bool)))
    with pytest.raises(ValueError, match=r"no code length.*PackedCodes\(words, bits\)"):
        hamming_topk(pack_codes(np.zeros((3, 24), bool)), words, 1)


def test_packed_codes_keep_their_length(tmp_path):
    """Row slices, fancy indexing and a torch.save round trip keep ``bits``; wrapping words
    checks the word count and that the padding after the last bit is zero."""
    p = pack_codes(np.ones((4, 24), bool))
    assert p[1:3].bits == 24 and p[[0, 2]].bits == 24
    torch.save({"codes": p}, tmp_path / "p.pt")
    back = torch.load(tmp_path / "p.pt", weights_only=False)["codes"]
    assert isinstance(back, PackedCodes) and back.bits == 24
    np.testing.assert_array_equal(back, p)
    words = np.array([[0xFFFFFF0000000000]], dtype=np.uint64)  # 24 ones, then zeros
    assert PackedCodes(words, 24).bits == 24
    with pytest.raises(ValueError, match="padding bits after the first 20 bits are set"):
        PackedCodes(words, 20)  # bits 20..23 are set: these words hold a longer code
    with pytest.raises(ValueError, match="65 bits need 2 words, got 1"):
        PackedCodes(words, 65)


def test_encode_binarises_model_output(torch_seed):
    """encode = (net(x) > 0.5) in batches, and restores the training flag."""
    m = CrossModalHashNet(d_img=5, d_txt=3, bits=6, hidden=16)
    x = torch.randn(10, 5)
    m.train()
    codes = encode(m, x.numpy(), "img", batch=3)
    assert codes.dtype == bool and codes.shape == (10, 6)
    np.testing.assert_array_equal(codes, (m.img(x) > 0.5).numpy())
    assert m.img.training
