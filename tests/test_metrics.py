"""Retrieval metrics (ugach_core.metrics) against hand rankings and plain-loop references."""

from __future__ import annotations

import numpy as np
import pytest

from ugach_core.metrics import (average_precision, mean_average_precision, pr_curve_hamming,
                                precision_at_k, relevance)
from ugach_core.retrieval import pack_codes

# 1 query (code 0000, labels {0, 1}) and 6 database items.
Q_CODE = np.array([[0, 0, 0, 0]])
DB_CODES = np.array([[0, 0, 1, 1],   # db0: d=2, labels {0}     relevant
                     [1, 0, 0, 0],   # db1: d=1, labels {2}     not relevant
                     [0, 0, 0, 0],   # db2: d=0, labels {1}     relevant
                     [0, 1, 0, 0],   # db3: d=1, labels {0, 1}  relevant
                     [1, 1, 1, 1],   # db4: d=4, labels {2}     not relevant
                     [0, 1, 1, 1]])  # db5: d=3, labels {1, 2}  relevant
Q_LAB = np.array([[1, 1, 0]])
DB_LAB = np.array([[1, 0, 0], [0, 0, 1], [0, 1, 0], [1, 1, 0], [0, 0, 1], [0, 1, 1]])
# order by (distance, index): db2, db1, db3 (tie with db1 at d=1), db0, db5, db4
# ranked relevance: 1 0 1 1 1 0
AP_ALL = (1 / 1 + 2 / 3 + 3 / 4 + 4 / 5) / 4  # = 0.8041667


def test_relevance_shares_a_label():
    """Relevant = at least one shared label (multi-label)."""
    np.testing.assert_array_equal(relevance(Q_LAB, DB_LAB), [[1, 0, 1, 1, 0, 1]])
    with pytest.raises(ValueError, match="classes"):
        relevance(Q_LAB, DB_LAB[:, :2])


def test_map_all_hand_ranking():
    """MAP@all = (1 + 2/3 + 3/4 + 4/5) / 4 = 0.80417 (tie db1 < db3 broken by index)."""
    assert AP_ALL == pytest.approx(0.8041666667)
    assert mean_average_precision(Q_CODE, DB_CODES, Q_LAB, DB_LAB) == pytest.approx(AP_ALL)
    # swapping db1 and db3 changes the tie order -> ranked relevance 1 1 0 1 1 0
    swapped = [0, 3, 2, 1, 4, 5]
    assert mean_average_precision(Q_CODE, DB_CODES[swapped], Q_LAB, DB_LAB[swapped]) == \
        pytest.approx((1 + 1 + 3 / 4 + 4 / 5) / 4)


@pytest.mark.parametrize("k, expected", [(1, 1.0), (2, 1.0), (3, (1 + 2 / 3) / 2),
                                         (4, (1 + 2 / 3 + 3 / 4) / 3), (6, AP_ALL),
                                         (50, AP_ALL)])
def test_map_at_k_hand_ranking(k, expected):
    """MAP@k divides by the relevant items retrieved in the top k (1 0 1 1 1 0 ranking)."""
    assert mean_average_precision(Q_CODE, DB_CODES, Q_LAB, DB_LAB, k=k) == pytest.approx(expected)


def test_query_without_relevant_items_scores_zero():
    """A query sharing no label scores 0 and still counts: MAP = (0.80417 + 0) / 2."""
    q = np.array([[0, 0, 0, 0], [1, 1, 1, 1]])
    q_lab = np.array([[1, 1, 0], [0, 0, 0]])
    assert mean_average_precision(q, DB_CODES, q_lab, DB_LAB) == pytest.approx(AP_ALL / 2)
    assert mean_average_precision(q, DB_CODES, q_lab, DB_LAB, k=3) == \
        pytest.approx((1 + 2 / 3) / 2 / 2)


def test_map_k_must_be_positive():
    """k < 1 is a ValueError."""
    with pytest.raises(ValueError, match="k must be an integer >= 1"):
        mean_average_precision(Q_CODE, DB_CODES, Q_LAB, DB_LAB, k=0)


@pytest.mark.parametrize("kw, what", [
    (dict(k=2.5), "k must be an integer"), (dict(k=True), "k must be an integer"),
    (dict(block=0), "block of >= 1"), (dict(labels_q="1d"), "query labels must be a 2-D"),
    (dict(labels_db="3d"), "database labels must be a 2-D"),
    (dict(labels_q="nan"), "NaN/inf"), (dict(q_codes="none"), "at least one query")])
def test_map_bad_arguments_are_valueerrors_naming_them(kw, what):
    """Each of these used to end in an IndexError/TypeError from inside NumPy, or (labels
    of shape (n, c, 1)) in a perfect score."""
    args = dict(q_codes=Q_CODE, db_codes=DB_CODES, labels_q=Q_LAB, labels_db=DB_LAB)
    for key, v in kw.items():
        if v == "1d":
            v = np.asarray(Q_LAB)[:, 0]
        elif v == "3d":
            v = np.asarray(DB_LAB)[:, :, None]
        elif v == "nan":
            v = np.asarray(Q_LAB, dtype=float) * np.nan
        elif v == "none":
            v = np.asarray(Q_CODE)[:0]
            args["labels_q"] = np.asarray(Q_LAB)[:0]
        args[key] = v
    with pytest.raises(ValueError, match=what):
        mean_average_precision(**args)


def test_average_precision_n_relevant_needs_one_count_per_row():
    with pytest.raises(ValueError, match="one count per row"):
        average_precision(np.ones((3, 4), bool), n_relevant=[1, 2])


def test_ranking_arguments_are_checked():
    from ugach_core.retrieval import hamming_topk, rank_by_hamming

    with pytest.raises(ValueError, match="2-D"):
        rank_by_hamming(np.arange(5))
    with pytest.raises(ValueError, match="NaN/inf"):
        rank_by_hamming(np.array([[0.5, np.nan]]))
    for k in (None, 2.5, True):
        with pytest.raises(ValueError, match="k must be an integer"):
            hamming_topk(Q_CODE, DB_CODES, k)


def test_map_codes_labels_row_mismatch():
    """Codes and labels must have the same number of rows."""
    with pytest.raises(ValueError, match="same number of rows"):
        mean_average_precision(Q_CODE, DB_CODES, Q_LAB, DB_LAB[:5])


def test_average_precision_hand_vectors():
    """[1,0,1,0] -> (1 + 2/3)/2; [0,0,0,0] -> 0; [0,1,0,1] -> (1/2 + 2/4)/2; fixed denominators."""
    r = np.array([[1, 0, 1, 0], [0, 0, 0, 0], [0, 1, 0, 1]])
    np.testing.assert_allclose(average_precision(r), [5 / 6, 0.0, 0.5])
    np.testing.assert_allclose(average_precision(r.astype(bool), n_relevant=[4, 1, 4]),
                               [(1 + 2 / 3) / 4, 0.0, 1 / 4])


# ------------------------------------------------------------------ brute-force references


def _ranking(q_code, db_codes):
    """Plain loops: database indices sorted by (Hamming distance, index)."""
    dists = [sum(int(a) != int(b) for a, b in zip(q_code, d)) for d in db_codes]
    return sorted(range(len(db_codes)), key=lambda j: (dists[j], j)), dists


def _is_rel(lq, ld):
    return any(a > 0 and b > 0 for a, b in zip(lq, ld))


def ref_map(q_codes, db_codes, lq, ld, k=None):
    aps = []
    for qi in range(len(q_codes)):
        order, _ = _ranking(q_codes[qi], db_codes)
        order = order if k is None else order[:k]
        hits, s = 0, 0.0
        for rank, j in enumerate(order, 1):
            if _is_rel(lq[qi], ld[j]):
                hits += 1
                s += hits / rank
        aps.append(s / hits if hits else 0.0)
    return sum(aps) / len(aps)


def ref_precision_at_k(q_codes, db_codes, lq, ld, ks):
    out = []
    for k in ks:
        tot = 0.0
        for qi in range(len(q_codes)):
            order, _ = _ranking(q_codes[qi], db_codes)
            tot += sum(_is_rel(lq[qi], ld[j]) for j in order[:k]) / k
        out.append(tot / len(q_codes))
    return out


def ref_pr_curve(q_codes, db_codes, lq, ld):
    bits = len(q_codes[0])
    prec, rec, nq = [], [], []
    for r in range(bits + 1):
        p_vals, r_vals = [], []
        for qi in range(len(q_codes)):
            _, dists = _ranking(q_codes[qi], db_codes)
            rel = [_is_rel(lq[qi], ld[j]) for j in range(len(db_codes))]
            got = [j for j in range(len(db_codes)) if dists[j] <= r]
            hit = sum(rel[j] for j in got)
            if got:
                p_vals.append(hit / len(got))
            if sum(rel):
                r_vals.append(hit / sum(rel))
        prec.append(sum(p_vals) / len(p_vals) if p_vals else 0.0)
        rec.append(sum(r_vals) / len(r_vals) if r_vals else 0.0)
        nq.append(len(p_vals))
    return prec, rec, nq


def _random_case(rng, nq, ndb, bits, classes=4):
    q = rng.integers(0, 2, size=(nq, bits))
    db = rng.integers(0, 2, size=(ndb, bits)).astype(bool)
    lq = (rng.random((nq, classes)) < 0.3).astype(np.uint8)  # some queries have no label
    ld = (rng.random((ndb, classes)) < 0.3).astype(np.uint8)
    return q, db, lq, ld


SIZES = [(1, 6, 3), (5, 30, 24), (13, 57, 100), (20, 40, 4)]


@pytest.mark.parametrize("nq, ndb, bits", SIZES)
@pytest.mark.parametrize("k", [None, 5])
def test_map_equals_brute_force(nq, ndb, bits, k, rng):
    """Vectorised, blocked MAP == plain-loop MAP (sort by (distance, index))."""
    q, db, lq, ld = _random_case(rng, nq, ndb, bits)
    expected = ref_map(q, db, lq, ld, k)
    assert mean_average_precision(q, db, lq, ld, k=k) == pytest.approx(expected, abs=1e-12)
    assert mean_average_precision(q, db, lq, ld, k=k, block=3) == pytest.approx(expected,
                                                                                 abs=1e-12)


@pytest.mark.parametrize("nq, ndb, bits", SIZES[1:])
def test_precision_at_k_equals_brute_force(nq, ndb, bits, rng):
    """Mean P@k at ks = 1, 5, N == plain loops."""
    q, db, lq, ld = _random_case(rng, nq, ndb, bits)
    ks = [1, 5, ndb]
    np.testing.assert_allclose(precision_at_k(q, db, lq, ld, ks, block=4),
                               ref_precision_at_k(q, db, lq, ld, ks), atol=1e-12)


@pytest.mark.parametrize("nq, ndb, bits", [(5, 30, 24), (20, 40, 4), (9, 25, 7)])
def test_pr_curve_equals_brute_force(nq, ndb, bits, rng):
    """Precision/recall within radius r = 0..l == plain loops, with the documented averaging."""
    q, db, lq, ld = _random_case(rng, nq, ndb, bits)
    out = pr_curve_hamming(q, db, lq, ld, block=4)
    prec, rec, nqs = ref_pr_curve(q, db, lq, ld)
    np.testing.assert_array_equal(out["radius"], np.arange(bits + 1))
    np.testing.assert_allclose(out["precision"], prec, atol=1e-12)
    np.testing.assert_allclose(out["recall"], rec, atol=1e-12)
    np.testing.assert_array_equal(out["n_queries"], nqs)
    assert out["recall"][-1] == pytest.approx(1.0)  # radius l retrieves everything


def test_pr_curve_hand_example():
    """Hand query: radius 0 -> {db2} P=1 R=1/4; radius 1 -> {db1,db2,db3} P=2/3 R=2/4."""
    out = pr_curve_hamming(Q_CODE, DB_CODES, Q_LAB, DB_LAB)
    np.testing.assert_allclose(out["precision"], [1, 2 / 3, 3 / 4, 4 / 5, 4 / 6])
    np.testing.assert_allclose(out["recall"], [1 / 4, 2 / 4, 3 / 4, 1, 1])


METRICS = {
    "map": lambda q, db, lq, ld: mean_average_precision(q, db, lq, ld),
    "map@2": lambda q, db, lq, ld: mean_average_precision(q, db, lq, ld, k=2),
    "p@k": lambda q, db, lq, ld: precision_at_k(q, db, lq, ld, [1, 3]),
    "pr": lambda q, db, lq, ld: pr_curve_hamming(q, db, lq, ld),
}


@pytest.mark.parametrize("metric", sorted(METRICS))
@pytest.mark.parametrize("packed", [True, False])
def test_metrics_reject_24_vs_32_bit_codes(metric, packed, rng):
    """24-bit queries against a 32-bit database (one 64-bit word each once packed) are an
    error naming both lengths, not a silently wrong score; packed and unpacked codes."""
    q, _, lq, ld = _random_case(rng, 3, 5, 24)
    db = rng.integers(0, 2, size=(5, 32))
    if packed:
        q, db = pack_codes(q), pack_codes(db)
    with pytest.raises(ValueError, match="query codes have 24 bits but database codes "
                                         "have 32 bits"):
        METRICS[metric](q, db, lq, ld)


def test_metrics_accept_packed_codes():
    """Codes packed with pack_codes give the hand values of the unpacked hand example."""
    q, db = pack_codes(Q_CODE), pack_codes(DB_CODES)
    assert mean_average_precision(q, db, Q_LAB, DB_LAB) == pytest.approx(AP_ALL)
    # ranked relevance 1 0 1 1 1 0: P@1 = 1, P@3 = 2/3
    np.testing.assert_allclose(precision_at_k(q, db, Q_LAB, DB_LAB, [1, 3]), [1, 2 / 3])
    out = pr_curve_hamming(q, db, Q_LAB, DB_LAB)
    np.testing.assert_array_equal(out["radius"], [0, 1, 2, 3, 4])
    np.testing.assert_allclose(out["precision"], [1, 2 / 3, 3 / 4, 4 / 5, 4 / 6])


@pytest.mark.parametrize("ks", [[0], [7]])
def test_precision_at_k_out_of_range_raises_valueerror(ks):
    """ks outside [1, N] are a clear ValueError."""
    with pytest.raises(ValueError, match=r"every k must be in \[1, 6\]"):
        precision_at_k(Q_CODE, DB_CODES, Q_LAB, DB_LAB, ks)
