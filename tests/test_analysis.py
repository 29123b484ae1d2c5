"""Hamming-space analysis (chapter 8): histograms, bit statistics, retrieved lists, maps.

Each statistic is compared with a brute-force loop or a case worked out by hand."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from ugach_core.book.analysis import (SnapshotDiscriminator, as_bits, bit_balance,  # noqa: E402
                                 bit_correlation, bit_entropy, distance_histograms,
                                 format_table, mean_abs_correlation, mean_distance,
                                 plot_bit_balance, plot_bit_correlation,
                                 plot_distance_histograms, plot_umap, relaxed_codes,
                                 separation_auc, text_tags, top_retrieved, umap_embedding,
                                 wikipedia_pair_ids)
from ugach_core.viz import COLORS  # noqa: E402


def _random_case(seed=0, q=13, n=17, bits=9, classes=4):
    rng = np.random.default_rng(seed)
    bq = rng.random((q, bits)) > 0.5
    bd = rng.random((n, bits)) > 0.5
    lq = (rng.random((q, classes)) > 0.6).astype(np.uint8)
    ld = (rng.random((n, classes)) > 0.6).astype(np.uint8)
    return bq, bd, lq, ld


def _brute_histograms(bq, bd, lq, ld, exclude_diagonal=False):
    bits = bq.shape[1]
    rel, irr = np.zeros(bits + 1, int), np.zeros(bits + 1, int)
    for i in range(len(bq)):
        for j in range(len(bd)):
            if exclude_diagonal and i == j:
                continue
            d = int((bq[i] != bd[j]).sum())
            if (lq[i] & ld[j]).any():
                rel[d] += 1
            else:
                irr[d] += 1
    return rel, irr


# ------------------------------------------------------------------------ input checks
def test_as_bits_accepts_01_bool_and_pm1_alike():
    b = np.array([[1, 0, 1], [0, 0, 1]])
    assert np.array_equal(as_bits(b), b.astype(bool))
    assert np.array_equal(as_bits(2 * b - 1), b.astype(bool))
    assert np.array_equal(as_bits(torch.as_tensor(b.astype(bool))), b.astype(bool))


@pytest.mark.parametrize("bad, message", [
    (np.array([0.2, 0.7]), r"codes must be 2-D \(items x bits\), got shape \(2,\)"),
    (np.array([[0.2, 0.9]]), r"got values \[0.2, 0.9\]; binarise relaxed codes first"),
    (np.array([[0, 2]]), r"codes must hold \{0, 1\} or \{-1, \+1\} values, got values \[0, 2\]"),
    (np.zeros((3, 0)), r"codes have no bits \(shape \(3, 0\)\)"),
])
def test_as_bits_rejects_relaxed_or_malformed_codes(bad, message):
    with pytest.raises(ValueError, match=message):
        as_bits(bad)


# -------------------------------------------------------------------------- histograms
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_distance_histograms_match_brute_force(seed):
    bq, bd, lq, ld = _random_case(seed)
    h = distance_histograms(bq, bd, lq, ld)
    rel, irr = _brute_histograms(bq, bd, lq, ld)
    assert np.array_equal(h["relevant"], rel)
    assert np.array_equal(h["irrelevant"], irr)
    assert h["relevant"].sum() + h["irrelevant"].sum() == len(bq) * len(bd)
    assert np.array_equal(h["radius"], np.arange(bq.shape[1] + 1))


def test_distance_histograms_within_one_set_excludes_the_diagonal():
    bq, _, lq, _ = _random_case(3, q=11)
    h = distance_histograms(bq, bq, lq, lq, exclude_diagonal=True)
    rel, irr = _brute_histograms(bq, bq, lq, lq, exclude_diagonal=True)
    assert np.array_equal(h["relevant"], rel) and np.array_equal(h["irrelevant"], irr)
    assert h["relevant"].sum() + h["irrelevant"].sum() == 11 * 10
    full = distance_histograms(bq, bq, lq, lq)
    # the diagonal adds one pair per item at distance 0 (relevant iff it has a label)
    n_lab = int((lq.sum(1) > 0).sum())
    assert full["relevant"][0] - h["relevant"][0] == n_lab
    assert full["irrelevant"][0] - h["irrelevant"][0] == 11 - n_lab


def test_distance_histograms_hand_case():
    bq = np.array([[0, 0, 0, 0]])
    bd = np.array([[0, 0, 0, 0], [1, 1, 0, 0], [1, 1, 1, 1], [1, 0, 0, 0]])
    lq = np.array([[1, 0]])
    ld = np.array([[1, 0], [1, 1], [0, 1], [0, 1]])
    h = distance_histograms(bq, bd, lq, ld)
    assert h["relevant"].tolist() == [1, 0, 1, 0, 0]
    assert h["irrelevant"].tolist() == [0, 1, 0, 0, 1]
    assert mean_distance(h, "relevant") == 1.0
    assert mean_distance(h, "irrelevant") == 2.5


def test_distance_histograms_bad_inputs():
    bq, bd, lq, ld = _random_case()
    with pytest.raises(ValueError, match="bits"):
        distance_histograms(bq, bd[:, :5], lq, ld)
    with pytest.raises(ValueError, match="rows"):
        distance_histograms(bq, bd, lq[:-1], ld)
    with pytest.raises(ValueError, match="exclude_diagonal"):
        distance_histograms(bq, bd, lq, ld, exclude_diagonal=True)
    with pytest.raises(ValueError, match="classes"):
        distance_histograms(bq, bd, lq, ld[:, :2])


@pytest.mark.parametrize("seed", [0, 1])
def test_separation_auc_equals_pairwise_comparison(seed):
    bq, bd, lq, ld = _random_case(seed, q=20, n=25)
    h = distance_histograms(bq, bd, lq, ld)
    rel = (lq[:, None, :] & ld[None, :, :]).any(-1)
    d = (bq[:, None, :] != bd[None, :, :]).sum(-1)
    dr, di = d[rel], d[~rel]
    wins = (dr[:, None] < di[None, :]).mean() + 0.5 * (dr[:, None] == di[None, :]).mean()
    assert separation_auc(h) == pytest.approx(wins, abs=1e-12)


def test_separation_auc_extremes_and_errors():
    assert separation_auc({"relevant": np.array([3, 0, 0]),
                           "irrelevant": np.array([0, 0, 5])}) == 1.0
    assert separation_auc({"relevant": np.array([0, 0, 2]),
                           "irrelevant": np.array([4, 0, 0])}) == 0.0
    assert separation_auc({"relevant": np.array([1, 1]),
                           "irrelevant": np.array([5, 5])}) == 0.5
    with pytest.raises(ValueError, match="at least one relevant and one irrelevant pair"):
        separation_auc({"relevant": np.array([0, 0]), "irrelevant": np.array([1, 0])})
    with pytest.raises(ValueError, match="which must be 'relevant' or 'irrelevant', got 'close'"):
        mean_distance({"radius": np.arange(2), "relevant": np.array([1, 1])}, "close")


# ------------------------------------------------------------------------ bit statistics
def test_bit_balance_hand_case_and_pm1():
    b = np.array([[1, 0, 1], [1, 0, 0], [1, 1, 0], [1, 0, 0]])
    assert bit_balance(b).tolist() == [1.0, 0.25, 0.25]
    assert bit_balance(2 * b - 1).tolist() == [1.0, 0.25, 0.25]
    assert bit_entropy(np.array([0.5, 0.0, 1.0])).tolist() == [1.0, 0.0, 0.0]
    with pytest.raises(ValueError, match="bit_balance needs at least one code"):
        bit_balance(np.zeros((0, 3)))
    with pytest.raises(ValueError, match=r"balances must lie in \[0, 1\]"):
        bit_entropy(np.array([1.5]))


def test_bit_correlation_equals_numpy_corrcoef():
    rng = np.random.default_rng(4)
    base = rng.random((200, 1)) > 0.5
    noisy = base ^ (rng.random((200, 1)) > 0.9)  # base with 10% of the bits flipped
    b = np.concatenate([base, ~base, rng.random((200, 4)) > 0.3, noisy], 1)
    c = bit_correlation(b)
    assert np.allclose(c, np.corrcoef(b.astype(float).T), atol=1e-12)
    assert c[0, 1] == pytest.approx(-1.0)  # a bit and its complement
    assert np.allclose(c, c.T)
    m = mean_abs_correlation(c)
    off = np.abs(c[~np.eye(7, dtype=bool)])
    assert m == pytest.approx(off.mean())


def test_bit_correlation_constant_bit_is_nan_and_left_out():
    b = np.array([[1, 0, 1], [1, 1, 0], [1, 0, 0], [1, 1, 1]])
    c = bit_correlation(b)
    assert np.isnan(c[0]).all() and np.isnan(c[:, 0]).all()
    assert c[1, 2] == pytest.approx(0.0)
    assert mean_abs_correlation(c) == pytest.approx(0.0)
    with pytest.raises(ValueError, match="bit_correlation needs at least two codes"):
        bit_correlation(b[:1])


# ----------------------------------------------------------------------- retrieved lists
def test_top_retrieved_orders_by_distance_then_index():
    q = np.array([0, 0, 0, 0])
    db = np.array([[1, 1, 1, 1], [1, 0, 0, 0], [0, 0, 0, 0], [0, 1, 0, 0], [1, 1, 0, 0]])
    lq = np.array([1, 0])
    ld = np.array([[1, 0], [0, 1], [0, 1], [1, 0], [1, 1]])
    rows = top_retrieved(q, db, lq, ld, k=4, db_ids=list("abcde"), label_names=["x", "y"],
                         db_tags=[["t0"], ["t1"], ["t2"], ["t3"], ["t4"]])
    assert [r["index"] for r in rows] == [2, 1, 3, 4]
    assert [r["distance"] for r in rows] == [0, 1, 1, 2]
    assert [r["id"] for r in rows] == ["c", "b", "d", "e"]
    assert [r["relevant"] for r in rows] == [False, False, True, True]
    assert rows[3]["labels"] == ["x", "y"] and rows[0]["tags"] == ["t2"]
    assert [r["rank"] for r in rows] == [1, 2, 3, 4]


def test_top_retrieved_equals_a_brute_force_ranking():
    """40 items, 12 bits (many tied distances): the first 10 of a sort by (distance,
    index), each distance counted bit by bit."""
    bq, bd, lq, ld = _random_case(5, q=1, n=40, bits=12)
    rows = top_retrieved(bq[0], bd, lq[0], ld, k=10)
    dist = [sum(int(a != b) for a, b in zip(bq[0], bd[j])) for j in range(40)]
    order = sorted(range(40), key=lambda j: (dist[j], j))[:10]
    assert len(set(dist[j] for j in order)) < 10  # ties occur in the first 10
    assert [r["index"] for r in rows] == order
    assert [r["distance"] for r in rows] == [dist[j] for j in order]
    assert [r["relevant"] for r in rows] == [bool((lq[0] & ld[j]).any()) for j in order]


def test_top_retrieved_bad_inputs():
    bq, bd, lq, ld = _random_case()
    with pytest.raises(ValueError, match="k must"):
        top_retrieved(bq[0], bd, lq[0], ld, k=0)
    with pytest.raises(ValueError, match="bits"):
        top_retrieved(bq[0, :4], bd, lq[0], ld)
    with pytest.raises(ValueError, match="one code"):
        top_retrieved(bq[:2], bd, lq[0], ld)
    with pytest.raises(ValueError, match="db_ids"):
        top_retrieved(bq[0], bd, lq[0], ld, db_ids=["a"])
    with pytest.raises(ValueError, match="label rows"):
        top_retrieved(bq[0], bd, lq[0], ld[:3])


def test_format_table_aligns_columns_and_cuts_long_cells():
    rows = [{"rank": 1, "id": "a" * 50, "relevant": True, "labels": ["x", "y"]},
            {"rank": 10, "id": "b", "relevant": False, "labels": []}]
    out = format_table(rows, max_width=10).splitlines()
    assert out[0].split() == ["rank", "id", "relevant", "labels"]
    assert "aaaaaaa..." in out[2] and "yes" in out[2] and "x, y" in out[2]
    assert out[3].split()[:3] == ["10", "b", "no"]
    # every row's second column starts where the header's does
    col = out[0].index("id")
    assert all(line[col - 2:col] == "  " for line in out[2:])
    with pytest.raises(ValueError, match="no rows to format"):
        format_table([])


def test_text_tags_bag_of_tags_and_topics():
    names = ["sky", "dog", "sea"]
    bag = np.array([[0, 1, 1], [0, 0, 0], [1, 0, 0]])
    assert text_tags(bag, names, top=3) == [["dog", "sea"], [], ["sky"]]
    topics = np.array([[0.1, 0.6, 0.3]])
    assert text_tags(topics, top=2) == [["topic2 (0.60)", "topic3 (0.30)"]]
    with pytest.raises(ValueError, match="2 names for 3 text features"):
        text_tags(bag, names[:2])
    with pytest.raises(ValueError, match="top must be >= 1, got 0"):
        text_tags(bag, top=0)


def test_wikipedia_pair_ids_follow_the_loader_row_order(wiki_root):
    from ugach_core.data.wikipedia import load_wikipedia

    data = load_wikipedia(wiki_root)
    txt_ids, img_ids = wikipedia_pair_ids(wiki_root)
    assert len(txt_ids) == len(img_ids) == data.n
    first_test = (wiki_root / "testset_txt_img_cat.list").read_text().split("\n")[0].split("\t")
    assert txt_ids[data.query_idx[0]] == first_test[0]
    assert img_ids[data.query_idx[0]] == first_test[1]
    assert data.labels[data.query_idx[0]].argmax() == int(first_test[2]) - 1


# ---------------------------------------------------------------- before / after, codes
def test_snapshot_keeps_a_copy_not_a_view():
    from ugach_core.model import Discriminator

    class FakeTrainer:
        discriminator = Discriminator(3, 2, 4, hidden=5)

    snap = SnapshotDiscriminator(rounds=(0,))
    snap.on_round_end(FakeTrainer, {"round": 0})
    snap.on_round_end(FakeTrainer, {"round": 1})
    assert list(snap.states) == [0]
    w = snap.states[0]["img.common.weight"].clone()
    with torch.no_grad():
        FakeTrainer.discriminator.img.common.weight.add_(1.0)
    assert torch.equal(snap.states[0]["img.common.weight"], w)


def test_relaxed_codes_match_the_network_and_binarise_to_encode():
    from ugach_core.model import Discriminator
    from ugach_core.retrieval import encode

    torch.manual_seed(0)
    D = Discriminator(6, 3, 8, hidden=16)
    x = np.random.default_rng(0).normal(size=(10, 6)).astype(np.float32)
    h = relaxed_codes(D, x, "img", batch=3)
    assert h.shape == (10, 8) and ((h > 0) & (h < 1)).all()
    assert np.allclose(h, D.encode(torch.as_tensor(x), "img").detach().numpy(), atol=1e-6)
    assert np.array_equal(h > 0.5, encode(D, x, "img"))


# ---------------------------------------------------------------------------------- UMAP
def test_umap_embedding_shapes_determinism_and_separation():
    pytest.importorskip("umap")
    rng = np.random.default_rng(0)
    centres = rng.random((2, 16))
    h_img = np.clip(centres[np.arange(40) % 2] + 0.02 * rng.normal(size=(40, 16)), 0, 1)
    h_txt = np.clip(centres[np.arange(30) % 2] + 0.02 * rng.normal(size=(30, 16)), 0, 1)
    a, t = umap_embedding(h_img, h_txt, n_neighbors=8)
    assert a.shape == (40, 2) and t.shape == (30, 2)
    a2, t2 = umap_embedding(h_img, h_txt, n_neighbors=8)
    assert np.allclose(a, a2) and np.allclose(t, t2)
    # two well separated clusters stay separated: each point's nearest other point in
    # the map has its cluster, in both modalities
    xy = np.concatenate([a, t])
    y = np.concatenate([np.arange(40) % 2, np.arange(30) % 2])
    d = ((xy[:, None] - xy[None]) ** 2).sum(-1)
    np.fill_diagonal(d, np.inf)
    assert (y[d.argmin(1)] == y).all()
    with pytest.raises(ValueError, match=r"same code length, got \(40, 16\) and \(30, 8\)"):
        umap_embedding(h_img, h_txt[:, :8])
    with pytest.raises(ValueError, match=r"n_neighbors must be in \[2, 69\] for 70 points, got 1"):
        umap_embedding(h_img, h_txt, n_neighbors=1)


# --------------------------------------------------------------------------------- plots
def _step_heights(poly) -> dict[float, float]:
    """Bin centre -> height of a filled step histogram (seaborn's ``element="step"``): the
    horizontal edges of its outline, the top one of each bin (heights are >= 0)."""
    v = poly.get_paths()[0].vertices
    out: dict[float, float] = {}
    for (x0, y0), (x1, y1) in zip(v[:-1], v[1:]):
        if y0 == y1 and abs(x1 - x0) == 1.0:
            c = (x0 + x1) / 2
            out[c] = max(out.get(c, 0.0), y0)
    return out


@pytest.mark.parametrize("density", [True, False])
def test_distance_histogram_plot_draws_np_histogram_of_the_pair_distances(density):
    bq, bd, lq, ld = _random_case(4, q=15, n=19, bits=8)
    fig, ax = plt.subplots()
    plot_distance_histograms(distance_histograms(bq, bd, lq, ld), ax=ax, density=density,
                             legend=False)
    d = (bq[:, None, :] != bd[None, :, :]).sum(-1)  # every pair's distance, by brute force
    rel = (lq[:, None, :] & ld[None, :, :]).any(-1)
    edges = np.arange(bq.shape[1] + 2) - 0.5  # one bin per distance 0..l
    polys = {c.get_label().split(" (")[0]: c for c in ax.collections}
    assert list(polys) == ["irrelevant pairs", "relevant pairs"]
    for name, sel, color in (("relevant pairs", rel, COLORS["manifold"]),
                             ("irrelevant pairs", ~rel, COLORS["baseline"])):
        want = np.histogram(d[sel], bins=edges, density=density)[0]
        drawn = _step_heights(polys[name])
        np.testing.assert_allclose([drawn[r] for r in range(bq.shape[1] + 1)], want,
                                   rtol=1e-12)
        assert matplotlib.colors.same_color(polys[name].get_edgecolor(), color)
    # the labels carry the pair counts; with legend=False they are there for a figure legend
    assert ax.get_legend() is None
    assert ax.get_legend_handles_labels()[1] == [f"irrelevant pairs ({(~rel).sum():,})",
                                                f"relevant pairs ({rel.sum():,})"]
    assert ax.get_ylabel() == ("fraction of pairs" if density else "pairs")
    plt.close(fig)


def test_bit_correlation_heatmap_draws_the_matrix():
    rng = np.random.default_rng(5)
    b = rng.random((60, 32)) > 0.5
    b[:, 3] = True  # a constant bit: NaN row and column, drawn grey
    corr = bit_correlation(b)
    fig, ax = plt.subplots()
    mesh = plot_bit_correlation(corr, ax=ax, title="t")
    arr = mesh.get_array()
    assert arr.shape == corr.shape
    np.testing.assert_array_equal(arr.filled(np.nan), corr)  # the matrix, NaN where masked
    assert arr.mask[3].all() and arr.mask[:, 3].all() and arr.mask.sum() == 2 * 32 - 1
    assert (mesh.norm.vmin, mesh.norm.vmax) == (-1, 1)
    assert matplotlib.colors.same_color(mesh.cmap.get_bad(), COLORS["baseline"])
    # bits numbered from 1: bit k is the cell [k-1, k], row 1 on top
    assert [t.get_text() for t in ax.get_xticklabels()] == ["8", "16", "24", "32"]
    np.testing.assert_array_equal(ax.get_xticks(), [7.5, 15.5, 23.5, 31.5])
    assert ax.yaxis_inverted() and ax.get_title() == "t"
    fig.colorbar(mesh, ax=ax)  # what the chapter does with it
    plt.close(fig)
    with pytest.raises(ValueError, match=r"square matrix, got shape \(2, 3\)"):
        plot_bit_correlation(np.zeros((2, 3)))


def test_bit_balance_and_umap_plots_draw_what_they_are_given():
    fig, axes = plt.subplots(1, 2)
    plot_bit_balance(np.array([0.5, 0.25]), ax=axes[0])
    assert [p.get_height() for p in axes[0].patches] == [0.5, 0.25]
    plot_umap(np.zeros((3, 2)), np.ones((2, 2)), np.eye(3)[[0, 1, 2]], np.eye(3)[[0, 1]],
              label_names=["a", "b", "c"], ax=axes[1])
    assert len(axes[1].collections) == 2
    assert [t.get_text() for t in axes[1].get_legend().get_texts()] == ["a", "b", "c", "image",
                                                                       "text"]
    with pytest.raises(ValueError, match="img: 3 points but 2 labels"):
        plot_umap(np.zeros((3, 2)), np.ones((2, 2)), np.zeros(2, int), np.zeros(2, int))
    plt.close(fig)
