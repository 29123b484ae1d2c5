"""ugach_core.sampling and the authors' sampling options of the trainer (positives,
generator pool, pretraining negatives)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ugach_core import Trainer, sampling
from ugach_core.config import paper, paper_text


def test_exclusion_mask_and_membership():
    pool = torch.tensor([[3, 1, 4], [1, 5, 1]])
    nb = torch.tensor([[1, 5, 1], [1, 5, 5]])
    assert sampling.membership(pool, nb).tolist() == [[False, True, False], [True, True, True]]
    # the second row is made only of manifold pairs: left whole
    assert sampling.exclusion_mask(pool, nb).tolist() == [[False, True, False],
                                                          [False, False, False]]
    with pytest.raises(ValueError, match=r"expected pool \(B, P\) and sets \(B, k\)"):
        sampling.membership(pool, nb[:1])


def test_random_pools_are_subsets_without_repeats():
    g = torch.Generator().manual_seed(0)
    p = sampling.random_pools(30, 8, 5, g)
    assert p.shape == (5, 8) and all(len(set(r)) == 8 for r in p.tolist())
    assert torch.equal(sampling.random_pools(4, 4, 2, g), torch.arange(4).expand(2, 4))
    with pytest.raises(ValueError, match=r"pool size must be in \[1, 30\], got 0"):
        sampling.random_pools(30, 0, 1, g)


def test_column_positives_weight_repeated_entries():
    """Columns: the query listed twice in 10 columns is drawn 2/10 of the time."""
    nb = torch.tensor([[0, 1, 2, 3, 4, 0, 5, 6, 7, 8]])
    q = torch.zeros(20000, dtype=torch.long)
    x = sampling.positives(nb, q, 2, torch.Generator().manual_seed(1)).reshape(-1)
    assert abs((x == 0).float().mean().item() - 0.2) < 0.01


def test_distinct_positives_dedupe_and_never_repeat_within_a_query():
    """Distinct: the 9 listed items equally likely (self 1/9, not 2/10), and a query's
    draws are distinct items."""
    nb = torch.tensor([[0, 1, 2, 3, 4, 0, 5, 6, 7, 8]])
    q = torch.zeros(20000, dtype=torch.long)
    x = sampling.positives(nb, q, 2, torch.Generator().manual_seed(1), distinct=True)
    assert (x[:, 0] != x[:, 1]).all()
    freq = np.bincount(x.reshape(-1).numpy(), minlength=9) / x.numel()
    assert np.abs(freq - 1 / 9).max() < 0.01


def test_distinct_positives_fall_back_when_a_row_lists_too_few_items():
    nb = torch.tensor([[3, 3, 3], [1, 2, 1]])
    x = sampling.positives(nb, torch.tensor([0, 1]), 4, torch.Generator().manual_seed(0),
                           distinct=True)
    assert (x[0] == 3).all()
    assert set(x[1].tolist()) == {1, 2} and (x[1, :2] != x[1, 1:3]).all()


def test_uniform_draw_only_eligible_items():
    excluded = torch.tensor([[True, False, True, False]])
    cols = sampling.uniform_draw(excluded.expand(5000, -1), 3, torch.Generator().manual_seed(0))
    assert set(cols.reshape(-1).tolist()) == {1, 3}


def test_other_items_never_the_query():
    q = torch.arange(50).repeat(40)
    x = sampling.other_items(q, 50, torch.Generator().manual_seed(0))
    assert (x != q).all() and x.min() >= 0 and x.max() < 50


def test_paper_presets_take_the_authors_sampling():
    for cfg in (paper(32), paper_text(32)):
        assert (cfg.positives, cfg.g_pool_mask, cfg.pretrain_negatives) == (
            "distinct", False, "fixed")


def _spy(trainer, name):
    calls = []
    original = getattr(trainer, name)

    def spy(*args):
        calls.append(args)
        return original(*args)

    setattr(trainer, name, spy)
    return calls


@pytest.mark.parametrize("mode", ["fresh", "fixed"])
def test_pretraining_negatives_fixed_or_fresh(tiny, tiny_cfg, mode):
    """'fixed': each query meets the same negative in every epoch; 'fresh': new ones."""
    t = Trainer(tiny_cfg(pretrain_epochs=3, pretrain_negatives=mode), tiny, seed=0,
                progress=False)
    calls = _spy(t, "d_step")
    t.pretrain()
    per_epoch = len(calls) // 3
    negs = []
    for e in range(3):
        neg = {}
        for q, _, n, qm, _ in calls[e * per_epoch:(e + 1) * per_epoch]:
            neg.update({(qm, int(a)): int(b) for a, b in zip(q, n)})
        negs.append(neg)
    same = negs[0] == negs[1] == negs[2]
    assert same if mode == "fixed" else not same
    assert all(k[1] != v for k, v in negs[0].items())


@pytest.mark.parametrize("mask", [True, False])
def test_generator_pool_mask_option(tiny, tiny_cfg, mask):
    """g_pool_mask=False lets G's draws in G steps be manifold pairs (the authors' code);
    True never does (unless the whole pool is made of them)."""
    t = Trainer(tiny_cfg(g_pool_mask=mask, pool_fraction=1.0, n_samples=8), tiny, seed=0,
                progress=False)
    q = torch.arange(len(t.fit_idx))
    hits = 0
    for _ in range(20):
        items, _ = t._generator_draw(q[:1], "img", with_grad=False)
        hits += int(torch.isin(items, t.neighbors[0]).sum())
    assert (hits == 0) if mask else (hits > 0)


# ------------------------------------------------------- remedies for G's false negatives
def test_band_score_by_hand():
    from ugach_core.losses import band_score
    f = torch.tensor([0.0, 1.0, 2.0, 3.0, 5.0])
    assert band_score(f, 2.0).tolist() == [0.0, 1.0, 2.0, 1.0, -1.0]


def test_nearest_marks_the_k_nearest_of_all_items():
    d_all = torch.tensor([[5.0, 1.0, 3.0, 0.5, 9.0]])
    pool = torch.tensor([[0, 1, 2, 4]])
    assert sampling.nearest(d_all.gather(1, pool), d_all, 2).tolist() == [
        [False, True, False, False]]  # the 2 nearest are items 3 and 1; 3 is not pooled


def test_fn_guard_keeps_negatives_out_of_ds_top_k(tiny, tiny_cfg):
    from ugach_core.losses import pairwise_sq_dist
    t = Trainer(tiny_cfg(fn_guard=6, pool_fraction=0.5), tiny, seed=0, progress=False)
    t.pretrain()
    h = t.relaxed_codes(t.discriminator)
    q, _, neg = t.sample_triplets()["i2t"]
    d = pairwise_sq_dist(h["img"][q], h["txt"])
    kth = d.kthvalue(6, dim=1).values
    inside = d.gather(1, neg[:, None])[:, 0] <= kth
    assert not inside.any()
    t0 = Trainer(tiny_cfg(pool_fraction=0.5), tiny, seed=0, progress=False)
    t0.pretrain()
    q0, _, neg0 = t0.sample_triplets()["i2t"]  # without the guard some picks are inside
    d0 = pairwise_sq_dist(h["img"][q0], h["txt"])
    assert (d0.gather(1, neg0[:, None])[:, 0] <= d0.kthvalue(6, dim=1).values).any()


def test_mixed_negatives_train_g_and_draw_half_uniform(tiny, tiny_cfg, monkeypatch):
    calls = []
    real = sampling.uniform_draw
    monkeypatch.setattr(sampling, "uniform_draw",
                        lambda e, s, g: calls.append(s) or real(e, s, g))
    t = Trainer(tiny_cfg(negatives="mixed", n_samples=4, rounds=1), tiny, seed=0,
                progress=False)
    g0 = [p.detach().clone() for p in t.generator.parameters()]
    t.fit()
    assert calls and set(calls) == {2}
    assert any(not torch.equal(a, b) for a, b in zip(g0, t.generator.parameters()))
    assert "reward" in t.history[-1]


def test_reward_band_changes_g_steps_only_through_the_reward(tiny, tiny_cfg):
    a = Trainer(tiny_cfg(rounds=1), tiny, seed=0, progress=False)
    b = Trainer(tiny_cfg(rounds=1, reward_band=True), tiny, seed=0, progress=False)
    for t in (a, b):
        t.fit()
    # round 1's D step runs before any G step: the band cannot reach it
    assert a.history[-1]["d_loss"] == b.history[-1]["d_loss"]
    assert a.history[-1]["reward"] > b.history[-1]["reward"]  # band rewards are lower


def test_remedy_options_are_checked(tiny_cfg):
    with pytest.raises(ValueError, match="fn_guard must be an integer >= 0"):
        tiny_cfg(fn_guard=-1)
    with pytest.raises(ValueError, match="reward_band must be True or False"):
        tiny_cfg(reward_band=1)


def test_query_batches_keep_each_querys_triplets_together():
    gen = torch.Generator().manual_seed(0)
    got = sampling.query_batches(7, 3, 8, gen)  # 8 // 3 = 2 queries a batch
    assert [len(b) for b in got] == [6, 6, 6, 3]
    assert sorted(torch.cat(got).tolist()) == list(range(21))  # every triplet once
    for b in got:  # whole queries: rows i*3, i*3+1, i*3+2
        rows = b.view(-1, 3)
        assert (rows % 3 == torch.arange(3)).all() and (rows // 3 == rows[:, :1] // 3).all()
    assert [len(b) for b in sampling.query_batches(4, 3, 1, gen)] == [3] * 4  # >= 1 query


def test_d_step_on_whole_queries_equals_the_repeated_queries(tiny, tiny_cfg):
    """Encoding each query once and repeating its code is the same D step as encoding it
    once per triplet (same loss and weights up to rounding)."""
    a, b = (Trainer(tiny_cfg(), tiny, seed=0, progress=False) for _ in range(2))
    q = torch.tensor([3, 9, 20])
    pos, neg = torch.tensor([1, 2, 4, 5, 6, 7]), torch.tensor([10, 11, 12, 13, 14, 15])
    la = a.d_step(q, pos, neg, "img", a.opt_d)
    lb = b.d_step(q.repeat_interleave(2), pos, neg, "img", b.opt_d)
    assert la > 0 and torch.allclose(la, lb, rtol=1e-6)
    for pa, pb in zip(a.discriminator.parameters(), b.discriminator.parameters()):
        assert torch.allclose(pa, pb, rtol=1e-5, atol=1e-7)
    for bad in ((q, pos[:5], neg[:5]), (q, pos, neg[:4]), (q[:0], pos, neg)):
        with pytest.raises(ValueError, match="whole number of triplets per query"):
            a.d_step(*bad, "img", a.opt_d)


def test_query_grouped_d_batches_in_a_round(tiny, tiny_cfg, monkeypatch):
    """d_batches="query": every D step of a round holds whole queries (one q each, its
    n_samples triplets), every triplet once per epoch; the default draws random triplets."""
    for mode in ("query", "random"):
        t = Trainer(tiny_cfg(d_batches=mode, n_samples=3, d_batch=20, rounds=1), tiny, seed=0,
                    progress=False)
        calls, real = [], t.d_step
        monkeypatch.setattr(t, "d_step", lambda q, pos, neg, qm, opt: calls.append(
            (qm, q.clone(), pos.clone())) or real(q, pos, neg, qm, opt))
        t.pretrain()
        calls.clear()
        t.fit()
        n = len(t.fit_idx)
        for qm in ("img", "txt"):
            mine = [(q, pos) for m, q, pos in calls if m == qm]
            assert sum(len(pos) for _, pos in mine) == 3 * n
            if mode == "query":
                assert len(mine) == -(-n // 6)  # 20 // 3 = 6 queries a step
                assert sorted(torch.cat([q for q, _ in mine]).tolist()) == list(range(n))
                assert all(len(pos) == 3 * len(q) for q, pos in mine)
            else:
                assert len(mine) == -(-3 * n // 20)
                assert all(len(pos) == len(q) for q, pos in mine)
    with pytest.raises(ValueError, match="d_batches"):
        tiny_cfg(d_batches="grouped")
