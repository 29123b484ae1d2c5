"""The fast paths give the results of the straightforward computations they replace.

Each test compares an optimised routine (radix/selection ranking, block-wise Hamming top-k,
cumulative-sum AP, packed-label relevance, top-k kNN, cached codes in the trainer, one
matrix product for pool distances) with a direct reference written here, on inputs with
many ties, and checks that a seed still fixes every result.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ugach_core import Trainer, smoke
from ugach_core.graph import knn
from ugach_core import sampling
from ugach_core.losses import generator_log_probs, pairwise_sq_dist, sq_dist
from ugach_core.metrics import (average_precision, mean_average_precision, pr_curve_hamming,
                                precision_at_k, relevance)
from ugach_core.retrieval import hamming_distance, hamming_topk, pack_codes, rank_by_hamming


# ------------------------------------------------------------------------- references
def ref_rank(dist: np.ndarray) -> np.ndarray:
    """Order by (distance, index): argsort of unique int64 keys."""
    d = np.asarray(dist).astype(np.int64)
    n = d.shape[1]
    return np.argsort(d * n + np.arange(n)[None, :], axis=1)


def ref_ap(rel: np.ndarray, n_rel=None) -> np.ndarray:
    r = np.asarray(rel, dtype=np.float64)
    cum = np.cumsum(r, 1)
    num = (cum / np.arange(1, r.shape[1] + 1)[None, :] * r).sum(1)
    den = cum[:, -1] if n_rel is None else np.asarray(n_rel, float)
    return np.where(den > 0, num / np.where(den > 0, den, 1), 0.0)


def naive_hamming(a, b) -> np.ndarray:
    """Hamming distances (Q, N) by comparing every bit: no packing, no popcount."""
    return (np.asarray(a, bool)[:, None, :] != np.asarray(b, bool)[None, :, :]).sum(-1)


def ref_map(q, db, lq, ld, k=None):
    d = naive_hamming(q, db)
    order = ref_rank(d)[:, :k]
    rel = (np.asarray(lq, float) @ np.asarray(ld, float).T) > 0
    return float(ref_ap(np.take_along_axis(rel, order, 1)).mean())


# ---------------------------------------------------------------------------- ranking
@pytest.mark.parametrize("bits", [3, 64, 100, 300])
@pytest.mark.parametrize("k", [1, 5, 40, 400])
def test_hamming_topk_equals_full_sort(bits, k, rng):
    """Block-wise top-k == first k of the full (distance, index) sort; uint8 and uint16
    distances, few bits (every distance tied many times), k up to N."""
    q_bits, db_bits = rng.integers(0, 2, (13, bits)), rng.integers(0, 2, (400, bits))
    q, db = pack_codes(q_bits), pack_codes(db_bits)
    full = naive_hamming(q_bits, db_bits)
    for block in (None, 1, 5):
        idx, dist = hamming_topk(q, db, k, block=block, backend="numpy")
        np.testing.assert_array_equal(idx, ref_rank(full)[:, :k])
        np.testing.assert_array_equal(dist, np.take_along_axis(full, idx, 1))
    with pytest.raises(ValueError, match="k must be"):
        hamming_topk(q, db, 401)
    with pytest.raises(ValueError, match="backend"):
        hamming_topk(q, db, 3, backend="gpu")


@pytest.mark.parametrize("bits,n,k", [(3, 400, 40), (16, 50_000, 1000), (64, 70_000, 100),
                                      (100, 3000, 3000)])
def test_hamming_topk_faiss_backend_breaks_ties_by_index(bits, n, k, rng):
    """The optional faiss backend returns exactly the numpy result, ties included (few bits:
    thousands of items per distance; databases larger than faiss's internal blocks)."""
    pytest.importorskip("faiss")
    q = pack_codes(rng.integers(0, 2, (17, bits)))
    db = pack_codes(rng.integers(0, 2, (n, bits)))
    ref_idx, ref_dist = hamming_topk(q, db, k, backend="numpy")
    idx, dist = hamming_topk(q, db, k, backend="faiss")
    np.testing.assert_array_equal(dist, ref_dist)
    np.testing.assert_array_equal(idx, ref_idx)


def test_hamming_topk_faiss_backend_missing(monkeypatch, rng):
    """backend='faiss' without faiss says how to install it; 'auto' falls back to numpy."""
    import ugach_core.retrieval as retrieval

    monkeypatch.setattr(retrieval, "_faiss", lambda: None)
    q_bits, db_bits = rng.integers(0, 2, (3, 16)), rng.integers(0, 2, (50, 16))
    q, db = pack_codes(q_bits), pack_codes(db_bits)
    with pytest.raises(ImportError, match="faiss-cpu"):
        hamming_topk(q, db, 5, backend="faiss")
    np.testing.assert_array_equal(hamming_topk(q, db, 5)[0],
                                  ref_rank(naive_hamming(q_bits, db_bits))[:, :5])


@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.uint16, np.float64])
@pytest.mark.parametrize("topk", [None, 2, 30, 600])
def test_rank_paths_agree(dtype, topk, rng):
    """Radix sort, radius selection and key argsort give one order, whatever the dtype
    (small ints, values > 255, floats, negatives)."""
    for hi, lo in ((4, 0), (700, 0), (5, -3)):
        dist = rng.integers(lo, hi, size=(6, 600))
        if dtype == np.uint16 and lo < 0:
            continue
        dist = dist.astype(dtype)
        np.testing.assert_array_equal(rank_by_hamming(dist, topk), ref_rank(dist)[:, :topk])


def test_hamming_distance_large_code_lengths(rng):
    """Distances above 255 (uint16 accumulation) and 1 word (uint8) are exact."""
    for bits in (64, 1000):
        a = rng.integers(0, 2, (3, bits))
        b = rng.integers(0, 2, (5, bits))
        np.testing.assert_array_equal(hamming_distance(pack_codes(a), pack_codes(b)),
                                      naive_hamming(a, b))


# ---------------------------------------------------------------------------- metrics
def test_average_precision_equals_reference(rng):
    rel = rng.random((40, 90)) < rng.random((40, 1))  # densities from 0 to 1
    rel[0] = False  # a query without relevant items scores 0
    np.testing.assert_allclose(average_precision(rel), ref_ap(rel), rtol=1e-12, atol=0)
    n_rel = rel.sum(1) + 3
    np.testing.assert_allclose(average_precision(rel, n_rel), ref_ap(rel, n_rel), rtol=1e-12)
    np.testing.assert_allclose(average_precision(rel.astype(np.int8)), ref_ap(rel))
    with pytest.raises(ValueError, match="0/1"):
        average_precision(rel * 2)


@pytest.mark.parametrize("n_classes", [5, 10, 24, 40, 70])
def test_map_and_curves_equal_reference(n_classes, rng):
    """MAP@all / MAP@k with packed labels (uint8..uint64 words) == the direct computation;
    P@k and the PR curve agree with direct counts."""
    bits = 12
    q = rng.integers(0, 2, (30, bits)).astype(bool)
    db = rng.integers(0, 2, (250, bits)).astype(bool)
    lq = (rng.random((30, n_classes)) < 0.1).astype(np.uint8)
    ld = (rng.random((250, n_classes)) < 0.1).astype(np.uint8)
    np.testing.assert_array_equal(relevance(lq, ld), (lq.astype(float) @ ld.T) > 0)
    for k in (None, 1, 17, 250):
        assert mean_average_precision(q, db, lq, ld, k=k, block=7) == pytest.approx(
            ref_map(q, db, lq, ld, k), abs=1e-12)
    d = naive_hamming(q, db)
    order = ref_rank(d)
    rel = (lq.astype(float) @ ld.T.astype(float)) > 0
    ranked = np.take_along_axis(rel, order, 1)
    ks = np.array([1, 10, 250])
    np.testing.assert_allclose(precision_at_k(q, db, lq, ld, ks, block=9),
                               (np.cumsum(ranked, 1)[:, ks - 1] / ks).mean(0))
    pr = pr_curve_hamming(q, db, lq, ld, block=4)
    for r in (0, 3, bits):
        ret = d <= r
        hit = (ret & rel).sum(1)
        ok = ret.sum(1) > 0
        assert pr["n_queries"][r] == ok.sum()
        if ok.any():
            assert pr["precision"][r] == pytest.approx((hit[ok] / ret.sum(1)[ok]).mean())


def test_negative_label_values_use_the_product(rng):
    """Labels with negative entries (not multi-hot) fall back to the matrix product."""
    lq = rng.integers(-1, 2, (6, 4))
    ld = rng.integers(-1, 2, (9, 4))
    np.testing.assert_array_equal(relevance(lq, ld), (lq @ ld.T) > 0)
    q = rng.integers(0, 2, (6, 8))
    db = rng.integers(0, 2, (9, 8))
    assert mean_average_precision(q, db, lq, ld) == pytest.approx(ref_map(q, db, lq, ld))


# ------------------------------------------------------------------------------ graph
def ref_knn(x: np.ndarray, k: int) -> np.ndarray:
    x = torch.as_tensor(x, dtype=torch.float32)
    sq = (x * x).sum(1)
    d = (sq[:, None] + sq[None, :] - 2.0 * (x @ x.T)).clamp(min=0)
    d.fill_diagonal_(-1.0)
    return torch.sort(d, dim=1, stable=True).indices[:, :k].numpy()


@pytest.mark.parametrize("k", [1, 3, 6])
def test_knn_topk_path_equals_stable_sort(k, rng):
    """Integer grid points: many exactly tied distances, duplicates included; the top-k
    path (with its stable-sort fallback for tied rows) == a full stable sort."""
    x = rng.integers(0, 3, (90, 2)).astype(np.float32)  # 9 distinct points, 90 rows
    np.testing.assert_array_equal(knn(x, k, block=16), ref_knn(x, k))
    y = rng.standard_normal((70, 5)).astype(np.float32)  # no ties: pure top-k path
    np.testing.assert_array_equal(knn(y, k, block=32), ref_knn(y, k))


# ----------------------------------------------------------------------------- losses
def test_pairwise_sq_dist_equals_broadcast(torch_seed):
    hq = torch.rand(7, 16, dtype=torch.float64, requires_grad=True)
    hx = torch.rand(11, 16, dtype=torch.float64, requires_grad=True)
    a = pairwise_sq_dist(hq, hx)
    b = sq_dist(hq, hx.unsqueeze(0).expand(7, -1, -1))
    torch.testing.assert_close(a, b)
    ga = torch.autograd.grad(a.sum(), (hq, hx))
    gb = torch.autograd.grad(b.sum(), (hq, hx))
    for u, v in zip(ga, gb):
        torch.testing.assert_close(u, v)
    with pytest.raises(ValueError, match="codes"):
        pairwise_sq_dist(hq, hx[:, :3])


# ---------------------------------------------------------------------------- trainer

def cfg_for(**kw):
    base = dict(hidden=32, pretrain_epochs=1, rounds=2, d_batch=64, g_batch=32,
                pretrain_batch=64, pool_fraction=0.25)
    base.update(kw)
    return smoke(8).replace(**base)


@pytest.mark.parametrize("kw", [{}, dict(g_softmax="sampled", optimizer="sgd", g_batch=1,
                                         d_batch=1, reward_baseline=False, rounds=1)])
def test_same_seed_same_codes_fast_paths(tiny, kw):
    """Fused optimisers, cached codes and shared pools keep runs reproducible."""
    runs = [Trainer(cfg_for(**kw), tiny, seed=5, progress=False) for _ in range(2)]
    for t in runs:
        t.fit()
    for m in ("img", "txt"):
        np.testing.assert_array_equal(runs[0].codes()[m], runs[1].codes()[m])
        np.testing.assert_array_equal(runs[0].codes("current")[m],
                                      runs[1].codes("current")[m])


def test_codes_computed_once_equal_direct_encoding(tiny):
    """The rewards of a G phase read D's codes computed once for every training item: they
    equal encoding the queried items directly."""
    t = Trainer(cfg_for(), tiny, seed=1, progress=False)
    codes = t.relaxed_codes(t.discriminator, batch=7)  # several batches
    idx = torch.tensor([0, 3, 17, 5])
    for m in ("img", "txt"):
        with torch.no_grad():
            direct = t.discriminator.encode(t.train_features[m][idx], m)
        torch.testing.assert_close(codes[m][idx], direct, rtol=1e-5, atol=1e-6)


def _reference_triplets(t, key, qm, xm):
    """sample_triplets' first direction written out plainly: G encodes each pool itself."""
    n, s = len(t.fit_idx), t.cfg.n_samples
    q = torch.arange(n)
    pool = sampling.random_pools(n, t.pool_size, n, t.rng)
    excluded = sampling.exclusion_mask(pool, t.neighbors[q])
    with torch.no_grad():
        h_q = t.generator.encode(t.train_features[qm], qm)
        h_p = t.generator.encode(t.train_features[xm][pool.reshape(-1)], xm).view(n, -1, t.cfg.bits)
    log_p = generator_log_probs(sq_dist(h_q, h_p), t.cfg.temperature, excluded)
    neg = pool.gather(1, sampling.draw(log_p, s, t.rng))
    pos = sampling.positives(t.neighbors, q, s, t.rng)
    return q.repeat_interleave(s), pos.reshape(-1), neg.reshape(-1)


def test_cached_sampling_equals_direct_encoding(tiny):
    """Sampling from G's codes computed once == encoding every pool in place."""
    t = Trainer(cfg_for(), tiny, seed=2, progress=False)
    state = t.rng.get_state()
    got = t.sample_triplets()["i2t"]
    t.rng.set_state(state)
    ref = _reference_triplets(t, "i2t", "img", "txt")
    for u, v in zip(got, ref):
        assert torch.equal(u, v)


def test_sampled_softmax_gradient_equals_pool_path(tiny):
    """g_softmax='sampled': re-encoding only the sampled items gives the log-softmax over
    the sampled columns of the pool distances, and its gradient."""
    cfg = cfg_for(g_softmax="sampled", reward_baseline=False)
    t = Trainer(cfg, tiny, seed=4, progress=False)
    q, n = torch.arange(8), len(t.fit_idx)
    state = t.rng.get_state()
    items, logp = t._generator_draw(q, "img", with_grad=True)
    t.rng.set_state(state)
    pool = sampling.random_pools(n, t.pool_size, 1, t.rng).expand(len(q), -1)
    excluded = sampling.exclusion_mask(pool, t.neighbors[q])
    d = pairwise_sq_dist(t.generator.encode(t.train_features["img"][q], "img"),
                         t.generator.encode(t.train_features["txt"][pool[0]], "txt"))
    cols = sampling.draw(generator_log_probs(d.detach(), cfg.temperature, excluded),
                         cfg.n_samples, t.rng)
    assert torch.equal(items, pool.gather(1, cols))
    logp_ref = torch.log_softmax(-d.gather(1, cols) / cfg.temperature, dim=1)
    torch.testing.assert_close(logp, logp_ref, rtol=1e-5, atol=1e-5)
    params = list(t.generator.parameters())
    g_new = torch.autograd.grad(logp.sum(), params, allow_unused=True, retain_graph=True)
    g_ref = torch.autograd.grad(logp_ref.sum(), params, allow_unused=True)
    for u, v in zip(g_new, g_ref):
        if u is None or v is None:
            assert (u is None or not u.abs().sum()) and (v is None or not v.abs().sum())
        else:
            torch.testing.assert_close(u, v, rtol=1e-4, atol=1e-5)


def test_shared_pool_is_one_uniform_pool(tiny):
    """A G step's queries share one pool drawn like a single query's pool; manifold pairs
    are excluded per query."""
    t = Trainer(cfg_for(), tiny, seed=6, progress=False)
    q = torch.arange(10)
    state = t.rng.get_state()
    items, _ = t._generator_draw(q, "img", with_grad=False)
    t.rng.set_state(state)
    pool = sampling.random_pools(len(t.fit_idx), t.pool_size, 1, t.rng)[0]
    nb = t.neighbors[q]
    for i in range(10):
        assert set(items[i].tolist()) <= set(pool.tolist())
        in_graph = torch.isin(pool, nb[i])
        if not in_graph.all():
            assert not torch.isin(items[i], nb[i]).any()


def test_optimizer_falls_back_when_fused_kernels_are_missing(tiny, monkeypatch):
    """Where torch has no fused kernel (older releases on the CPU), the trainer still builds
    its optimisers, unfused."""
    import ugach_core.train as train_mod

    real_sgd, real_adam = torch.optim.SGD, torch.optim.Adam

    def no_fused(real):
        def make(*a, fused=None, **kw):
            if fused:
                raise RuntimeError("fused=True requires all the params to be on cuda")
            return real(*a, **kw)
        return make

    monkeypatch.setattr(train_mod.torch.optim, "SGD", no_fused(real_sgd))
    monkeypatch.setattr(train_mod.torch.optim, "Adam", no_fused(real_adam))
    for opt in ("sgd", "adam"):
        tr = Trainer(cfg_for(optimizer=opt), tiny, seed=0, progress=False)
        assert not tr.opt_d.defaults.get("fused")


# ------------------------------------------------------------------ freed memory reused
_FAULTS = """
import resource, sys, torch
from ugach_core import utils

def faults():  # page faults of three 64 MB tensors, written (every page touched)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(3):
        torch.ones(1 << 24)
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

outside = faults()
with utils.reuse_freed_memory() as on:
    faults()  # the first tensor maps the pages; later ones reuse them
    with utils.reuse_freed_memory() as inner:
        pass
    inside = faults()  # still on after the inner context ended
print(outside, inside, on, inner, utils._heap_depth)
"""


@pytest.mark.skipif(__import__("platform").libc_ver()[0] != "glibc", reason="glibc only")
@pytest.mark.parametrize("switch", ["1", "0"])
def test_reuse_freed_memory_keeps_large_blocks(switch: str):
    """In a fresh process (no large free blocks in its heap yet) glibc maps fresh pages for
    every 64 MB tensor; inside the context a tensor allocated again reuses the freed
    pages, nested contexts keep it on until the outermost ends, and
    ``UGACH_REUSE_MEMORY=0`` turns it off."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "UGACH_REUSE_MEMORY": switch}
    out = subprocess.run([sys.executable, "-c", _FAULTS], env=env, capture_output=True,
                         text=True, check=True).stdout.split()
    outside, inside = int(out[0]), int(out[1])
    assert outside > 3 * 10_000, out  # 16,384 pages a tensor, fresh each time
    assert out[2:] == (["True", "True", "0"] if switch == "1" else ["False", "False", "0"])
    if switch == "1":
        assert inside < outside / 20, out
    else:
        assert inside > 3 * 10_000, out


def test_reusing_freed_memory_changes_no_weight():
    """A smoke run with and without reused memory ends with the same weights and codes."""
    from ugach_core import utils
    from ugach_core.data import make_synthetic

    data = make_synthetic(n=300, d_img=48, d_txt=24, n_classes=4, seed=0)
    runs = []
    old = utils.REUSE_FREED_MEMORY
    try:
        for flag in (True, False):
            utils.REUSE_FREED_MEMORY = flag
            tr = Trainer(smoke(16), data, seed=3, progress=False)
            tr.fit()
            runs.append((tr.discriminator.state_dict(), tr.codes("current")))
    finally:
        utils.REUSE_FREED_MEMORY = old
    (w1, c1), (w2, c2) = runs
    assert all(torch.equal(w1[k], w2[k]) for k in w1)
    assert all(np.array_equal(c1[m], c2[m]) for m in c1)
