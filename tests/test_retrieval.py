"""Packed Hamming distances and ranking (ugach_core.retrieval) against naive computations."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ugach_core.model import CrossModalHashNet
from ugach_core.retrieval import encode, hamming_distance, pack_codes, rank_by_hamming


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
    # torch bool input packs the same way
    np.testing.assert_array_equal(pack_codes(torch.from_numpy(db)), pack_codes(db))


def test_rank_by_hamming_hand_ties():
    """dist [2,1,0,1,4,3] -> order 2, 1<3 (tie by index), 0, 5, 4."""
    dist = np.array([[2, 1, 0, 1, 4, 3]])
    np.testing.assert_array_equal(rank_by_hamming(dist), [[2, 1, 3, 0, 5, 4]])
    np.testing.assert_array_equal(rank_by_hamming(dist, topk=2), [[2, 1]])
    np.testing.assert_array_equal(rank_by_hamming(dist, topk=3), [[2, 1, 3]])


@pytest.mark.parametrize("topk", [None, 1, 4, 29, 30, 100])
def test_rank_by_hamming_equals_stable_argsort(topk, rng):
    """Ranking (with and without topk) == stable argsort of the distances, many ties (4 bits)."""
    dist = rng.integers(0, 5, size=(9, 30)).astype(np.int32)
    expected = np.argsort(dist, axis=1, kind="stable")
    if topk is not None:
        expected = expected[:, :topk]
    np.testing.assert_array_equal(rank_by_hamming(dist, topk), expected)


@pytest.mark.parametrize("bad", [np.array([[0, 2, 1]]), np.array([[0.0, 0.5, 1.0]]),
                                 np.array([[-1, 0, 1]])])
def test_codes_outside_01_raise(bad):
    """Codes with values other than 0/1 are rejected with a hint to binarise."""
    with pytest.raises(ValueError, match="only 0/1"):
        pack_codes(bad)


def test_float_01_codes_accepted():
    """Float 0.0/1.0 codes pack like the equivalent bools."""
    c = np.array([[0.0, 1.0, 1.0], [1.0, 0.0, 0.0]])
    np.testing.assert_array_equal(pack_codes(c), pack_codes(c.astype(bool)))


def test_non_2d_codes_raise():
    """A 1-D code vector is rejected (items x bits expected)."""
    with pytest.raises(ValueError, match="2-D"):
        pack_codes(np.array([0, 1, 1]))


def test_mismatched_code_lengths_raise():
    """24-bit queries vs 65-bit database (1 vs 2 words) is a ValueError naming the shapes."""
    q = pack_codes(np.zeros((2, 24), bool))
    db = pack_codes(np.zeros((3, 65), bool))
    with pytest.raises(ValueError, match="different code lengths"):
        hamming_distance(q, db)


def test_encode_binarises_model_output(torch_seed):
    """encode = (net(x) > 0.5) in batches, and restores the training flag."""
    m = CrossModalHashNet(d_img=5, d_txt=3, bits=6, hidden=16)
    x = torch.randn(10, 5)
    m.train()
    codes = encode(m, x.numpy(), "img", batch=3)
    assert codes.dtype == bool and codes.shape == (10, 6)
    np.testing.assert_array_equal(codes, (m.img(x) > 0.5).numpy())
    assert m.img.training
