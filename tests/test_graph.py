"""Correlation graph (ugach_core.graph) on hand-placed points."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ugach_core.graph import graph_stats, knn, label_precision, manifold_neighbors

# 6 pairs: image points in 2-D, text points in 1-D (small integers: squared distances exact)
IMG = np.array([[0, 0], [1, 0], [0, 1], [3, 0], [3, 1], [0, 3]], dtype=np.float32)
TXT = np.array([[0], [4], [1], [2], [6], [3]], dtype=np.float32)

# Full rankings worked out by hand from the squared distances; "<" marks a tie kept in
# index order.  Image, e.g. row 0: d = [0, 1, 1, 9, 10, 9] -> 0, 1<2, 3<5, 4.
IMG_ORDER = np.array([[0, 1, 2, 3, 5, 4],   # d0 = [0, 1, 1, 9, 10, 9]
                      [1, 0, 2, 3, 4, 5],   # d1 = [1, 0, 2, 4, 5, 10]
                      [2, 0, 1, 5, 4, 3],   # d2 = [1, 2, 0, 10, 9, 4]
                      [3, 4, 1, 0, 2, 5],   # d3 = [9, 4, 10, 0, 1, 18]
                      [4, 3, 1, 2, 0, 5],   # d4 = [10, 5, 9, 1, 0, 13]
                      [5, 2, 0, 1, 4, 3]])  # d5 = [9, 10, 4, 18, 13, 0]
TXT_ORDER = np.array([[0, 2, 3, 5, 1, 4],   # t=0: d = [0, 16, 1, 4, 36, 9]
                      [1, 5, 3, 4, 2, 0],   # t=4: d = [16, 0, 9, 4, 4, 1]  (3<4)
                      [2, 0, 3, 5, 1, 4],   # t=1: d = [1, 9, 0, 1, 25, 4]  (0<3)
                      [3, 2, 5, 0, 1, 4],   # t=2: d = [4, 4, 1, 0, 16, 1]  (2<5, 0<1)
                      [4, 1, 5, 3, 2, 0],   # t=6: d = [36, 4, 25, 16, 0, 9]
                      [5, 1, 3, 2, 0, 4]])  # t=3: d = [9, 1, 4, 1, 9, 0]   (1<3, 0<4)


def test_knn_full_rankings_by_hand():
    """knn(x, n) lists every item by increasing distance, ties by smaller index, self first."""
    np.testing.assert_array_equal(knn(IMG, 6), IMG_ORDER)
    np.testing.assert_array_equal(knn(TXT, 6), TXT_ORDER)


@pytest.mark.parametrize("k", [1, 2, 3])
def test_knn_prefix_and_blocking(k):
    """knn(x, k) is the first k columns; block=2 (3 row blocks) and torch input give the same."""
    out = knn(IMG, k)
    assert out.dtype == np.int64 and out.shape == (6, k)
    np.testing.assert_array_equal(out, IMG_ORDER[:, :k])
    np.testing.assert_array_equal(knn(IMG, k, block=2), IMG_ORDER[:, :k])
    np.testing.assert_array_equal(knn(torch.from_numpy(IMG), k, block=4), IMG_ORDER[:, :k])


def test_manifold_neighbors_authors_rule():
    """Row i = [first k_img of image ranking, first k_txt of text ranking], duplicates kept."""
    nb = manifold_neighbors(IMG, TXT, k_img=3, k_txt=2)
    expected = np.array([[0, 1, 2, 0, 2],
                         [1, 0, 2, 1, 5],
                         [2, 0, 1, 2, 0],
                         [3, 4, 1, 3, 2],
                         [4, 3, 1, 4, 1],
                         [5, 2, 0, 5, 1]])
    np.testing.assert_array_equal(nb, expected)
    # the authors' 5 + 5 default on this 6-item set
    np.testing.assert_array_equal(manifold_neighbors(IMG, TXT),
                                  np.concatenate([IMG_ORDER[:, :5], TXT_ORDER[:, :5]], 1))
    # one side only
    np.testing.assert_array_equal(manifold_neighbors(IMG, TXT, 0, 2), TXT_ORDER[:, :2])
    np.testing.assert_array_equal(manifold_neighbors(IMG, TXT, 2, 0), IMG_ORDER[:, :2])


def test_knn_cosine_metric():
    """Cosine ranks by angle: (10,1) is far from (1,0) in Euclid but nearest in angle."""
    x = np.array([[1, 0], [10, 1], [0, 1], [-1, 0]], dtype=np.float32)
    # Euclid, squared: row 0 d = [0, 82, 2, 4]; row 3 d = [4, 122, 2, 0]
    np.testing.assert_array_equal(knn(x, 4)[[0, 3]], [[0, 2, 3, 1], [3, 2, 0, 1]])
    # cosine, 2 - 2cos: row 0 [0, 0.01, 2, 4]; row 1 [0.01, 0, 1.80, 3.99];
    # row 2 [2, 1.80, 0, 2] (0<3 tie); row 3 [4, 3.99, 2, 0]
    np.testing.assert_array_equal(knn(x, 4, metric="cosine"),
                                  [[0, 1, 2, 3], [1, 0, 2, 3], [2, 1, 0, 3], [3, 2, 1, 0]])
    with pytest.raises(ValueError, match="metric"):
        knn(x, 2, metric="manhattan")


def test_knn_exact_duplicates_hand_example():
    """Exact duplicates at distance 0: the item itself first, then the duplicate."""
    x = np.array([[0, 0], [2, 0], [0, 0], [5, 0]], dtype=np.float32)
    np.testing.assert_array_equal(knn(x, 2), [[0, 2], [1, 0], [2, 0], [3, 1]])


def test_knn_exact_duplicates_generic_floats(rng):
    """Self first, then its exact duplicate, also for non-integer features (round-off)."""
    x = rng.random((20, 128)).astype(np.float32)
    x = np.concatenate([x, x])  # item i + 20 duplicates item i
    nb = knn(x, 2)
    first = np.arange(20)
    np.testing.assert_array_equal(nb[:20], np.stack([first, first + 20], 1))
    np.testing.assert_array_equal(nb[20:], np.stack([first + 20, first], 1))


def test_k_out_of_range_errors():
    """k must be in [1, n]; k_img + k_txt >= 1; a too-large k in either space is an error."""
    for k in (0, 7, -1):
        with pytest.raises(ValueError, match=r"k must be in \[1, n=6\]"):
            knn(IMG, k)
    with pytest.raises(ValueError, match=r"got 7 and 1; lower them"):
        manifold_neighbors(IMG, TXT, k_img=7, k_txt=1)
    with pytest.raises(ValueError, match=r"in \[0, 6\] \(the training pairs\).*--set k_img"):
        manifold_neighbors(IMG, TXT, k_img=1, k_txt=7)
    with pytest.raises(ValueError, match="at least 1"):
        manifold_neighbors(IMG, TXT, k_img=0, k_txt=0)


def test_manifold_neighbors_negative_k_raises():
    """A negative k_img is an error, not 'no image neighbours'."""
    with pytest.raises(ValueError, match=r"k_img and k_txt must be in \[0, \d+\].*got -1 and 2"):
        manifold_neighbors(IMG, TXT, k_img=-1, k_txt=2)


def test_manifold_neighbors_input_errors():
    """Row counts must match (one row per pair); NaN/inf features are rejected."""
    with pytest.raises(ValueError, match="one row per pair; got 6 image rows and 5 text rows"):
        manifold_neighbors(IMG, TXT[:5])
    bad = IMG.copy()
    bad[2, 1] = np.nan
    with pytest.raises(ValueError, match=r"image features contain 1 NaN/inf values.*\[2\]"):
        manifold_neighbors(bad, TXT)
    bad_t = TXT.copy()
    bad_t[4, 0] = np.inf
    with pytest.raises(ValueError, match="text features contain 1 NaN/inf"):
        manifold_neighbors(IMG, bad_t)


def test_knn_nan_features_raise():
    """knn itself rejects NaN features instead of returning a meaningless ranking."""
    bad = IMG.copy()
    bad[2, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        knn(bad, 2)


# A hand neighbour list: 4 items, width 3; item 3 does not list itself.
NB = np.array([[0, 1, 1], [1, 0, 2], [2, 2, 0], [0, 1, 2]])
LAB = np.array([[1, 0, 0], [1, 1, 0], [0, 0, 1], [0, 1, 0]])


def test_label_precision_by_hand():
    """Without self: 4 of 8 entries share a label (0.5); with self: 8 of 12 (2/3)."""
    # without self: row0 (0,1)(0,1) yes yes; row1 (1,0) yes (1,2) no; row2 (2,0) no;
    # row3 (3,0) no (3,1) yes (3,2) no  ->  4 / 8
    assert label_precision(NB, LAB) == pytest.approx(0.5)
    # with self adds (0,0), (1,1), (2,2), (2,2): all share -> 8 / 12
    assert label_precision(NB, LAB, include_self=True) == pytest.approx(8 / 12)
    with pytest.raises(ValueError, match="labels has 3 rows but the graph has 4"):
        label_precision(NB, LAB[:3])


def test_graph_stats_by_hand():
    """Distinct 2,3,2,3 -> 2.5; self in 3 of 4 rows; others' lists cover {0,1,2} -> 0.75."""
    s = graph_stats(NB, LAB)
    assert (s.n_items, s.width) == (4, 3)
    assert s.mean_unique == pytest.approx(2.5)
    assert s.self_fraction == pytest.approx(0.75)
    assert s.coverage == pytest.approx(0.75)
    assert s.label_precision == pytest.approx(0.5)
    assert s.label_precision_with_self == pytest.approx(8 / 12)
    s2 = graph_stats(NB)
    assert s2.label_precision is None and s2.label_precision_with_self is None
    assert s2.as_dict()["coverage"] == pytest.approx(0.75)


def test_graph_stats_of_manifold_graph():
    """On the 3+2 graph above: distinct counts 3,4,3,4,3,4 -> 3.5, everyone lists itself."""
    s = graph_stats(manifold_neighbors(IMG, TXT, k_img=3, k_txt=2))
    assert s.mean_unique == pytest.approx(3.5)
    assert s.self_fraction == 1.0
    assert s.coverage == 1.0
