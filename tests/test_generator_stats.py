"""Measurements of the generator's policy (ugach_core.book.generator_stats) against brute force."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ugach_core import Trainer
from ugach_core.book.generator_stats import (SUMMARY_KEYS, GeneratorStatsLogger,
                                             direction_stats, generator_policy_stats,
                                             label_relevance, policy_entropy, pool_mass,
                                             query_subset, retrieval_map, uniform_mass)
from ugach_core.sampling import exclusion_mask, membership, random_pools
from ugach_core.losses import generator_log_probs


def test_membership_and_mass_small_example():
    """Hand-computed: pool [3, 1, 4], neighbours {1, 5}; p = [0.5, 0.3, 0.2]."""
    pool = torch.tensor([[3, 1, 4]])
    member = membership(pool, torch.tensor([[1, 5, 1]]))
    assert member.tolist() == [[False, True, False]]
    p = torch.tensor([[0.5, 0.3, 0.2]])
    assert pool_mass(p, member).item() == pytest.approx(0.3)
    assert uniform_mass(member).item() == pytest.approx(1 / 3)
    # excluding the member leaves 2 eligible items, none of them a member
    excluded = exclusion_mask(pool, torch.tensor([[1, 5, 1]]))
    assert uniform_mass(member, excluded).item() == 0.0
    # a row made only of manifold pairs keeps its whole pool
    assert not exclusion_mask(pool, torch.tensor([[4, 3, 1]])).any()


def test_label_relevance():
    lq = np.array([[1, 0, 0], [0, 1, 1]])
    lx = np.array([[[1, 1, 0], [0, 1, 0]], [[0, 0, 1], [1, 0, 0]]])
    assert label_relevance(lq, lx).tolist() == [[True, False], [True, False]]
    with pytest.raises(ValueError, match=r"expected labels \(B, c\) and \(B, P, c\), got "
                                         r"\(2, 3\) and \(2, 2, 2\)"):
        label_relevance(lq, lx[:, :, :2])


def test_entropy_uniform_is_log_p_and_masked_terms_count_zero():
    for n in (1, 2, 7, 196):
        assert policy_entropy(torch.full((1, n), -math.log(n))).item() == pytest.approx(math.log(n))
    d = torch.zeros(1, 5)
    mask = torch.tensor([[True, False, True, False, False]])
    log_p = generator_log_probs(d, 1.0, mask)  # uniform over the 3 eligible items
    assert policy_entropy(log_p).item() == pytest.approx(math.log(3))
    # a peaked policy has less entropy than the uniform one
    peaked = torch.log_softmax(torch.tensor([[5.0, 0.0, 0.0]]), -1)
    assert policy_entropy(peaked).item() < math.log(3) - 0.5


def test_pool_mass_equals_brute_force_enumeration(tiny, tiny_cfg):
    """The library's masses and entropy equal a per-query loop over a full pool."""
    cfg = tiny_cfg(pool_fraction=1.0)
    tr = Trainer(cfg, tiny, seed=0, progress=False)
    n = len(tr.fit_idx)
    q = torch.arange(0, n, 7)
    pools = random_pools(n, n, len(q), torch.Generator())
    st = direction_stats(tr, q, "img", "txt", pools, 3, torch.Generator().manual_seed(0))
    lab = tiny.labels[tr.fit_idx] > 0
    with torch.no_grad():
        h_txt = tr.generator.encode(tr.train_features["txt"], "txt")
        for row, qi in enumerate(q.tolist()):
            h_q = tr.generator.encode(tr.train_features["img"][qi:qi + 1], "img")[0]
            w = torch.exp(-((h_txt - h_q) ** 2).sum(1).double() / cfg.temperature)
            nb = set(tr.neighbors[qi].tolist())
            in_nb = torch.tensor([i in nb for i in range(n)])
            rel = torch.tensor([bool((lab[qi] & lab[i]).any()) for i in range(n)])
            p_all = w / w.sum()
            assert st.mass_manifold[row] == pytest.approx(p_all[in_nb].sum().item(), rel=1e-4)
            assert st.mass_manifold_chance[row] == pytest.approx(in_nb.sum().item() / n)
            w_ex = torch.where(in_nb, torch.zeros_like(w), w)  # manifold pairs excluded
            p_ex = w_ex / w_ex.sum()
            assert st.mass_relevant[row] == pytest.approx(p_ex[rel].sum().item(), rel=1e-4)
            n_e = n - int(in_nb.sum())
            assert st.mass_relevant_chance[row] == pytest.approx(
                (rel & ~in_nb).sum().item() / n_e)
            nz = p_ex[p_ex > 0]
            assert st.entropy[row] == pytest.approx(-(nz * nz.log()).sum().item(), rel=1e-4)
            assert st.entropy_max[row] == pytest.approx(math.log(n_e))
    assert st.reward.shape == (len(q), 3)
    assert ((st.reward >= 0.5) & (st.reward < 1)).all()  # sigmoid of f >= 0


def test_retrieval_map_equals_trainer(tiny, tiny_cfg):
    tr = Trainer(tiny_cfg(), tiny, seed=1, progress=False)
    tr.pretrain()
    v = tr.validate()
    m = retrieval_map(tr.discriminator, tr, "val")
    assert m["i2t"] == pytest.approx(v["val_map_i2t"])
    assert m["t2i"] == pytest.approx(v["val_map_t2i"])
    e = tr.evaluate("current")
    t = retrieval_map(tr.discriminator, tr, "test")
    assert t["i2t"] == pytest.approx(e["map_i2t"]) and t["t2i"] == pytest.approx(e["map_t2i"])
    with pytest.raises(ValueError, match="split must be 'val' or 'test', got 'train'"):
        retrieval_map(tr.discriminator, tr, "train")


def test_stats_are_seeded_and_chance_matches_uniform_policy(tiny, tiny_cfg):
    tr = Trainer(tiny_cfg(), tiny, seed=2, progress=False)
    a = generator_policy_stats(tr, n_queries=50, seed=3).summary()
    b = generator_policy_stats(tr, n_queries=50, seed=3).summary()
    assert a == b
    assert generator_policy_stats(tr, n_queries=50, seed=4).summary() != a  # seed matters
    assert set(a) == set(SUMMARY_KEYS)
    assert 0 < a["entropy_norm"] <= 1 + 1e-9
    # a generator whose codes are all equal is the uniform policy: mass = chance, H = max
    with torch.no_grad():
        for net in (tr.generator.img, tr.generator.txt):
            net.hash.weight.zero_()
    u = generator_policy_stats(tr, n_queries=50, seed=3).summary()
    assert u["mass_manifold"] == pytest.approx(u["mass_manifold_chance"], rel=1e-6)
    assert u["mass_relevant"] == pytest.approx(u["mass_relevant_chance"], rel=1e-6)
    assert u["entropy"] == pytest.approx(u["entropy_max"], rel=1e-6)
    assert u["entropy_norm"] == pytest.approx(1.0)


def test_query_subset_and_pools():
    s = query_subset(100, 10, seed=0)
    assert len(s) == 10 and len(set(s.tolist())) == 10 and torch.all(s[1:] > s[:-1])
    assert torch.equal(query_subset(5, None), torch.arange(5))
    p = random_pools(30, 8, 4, torch.Generator().manual_seed(0))
    assert p.shape == (4, 8) and all(len(set(r)) == 8 for r in p.tolist())
    with pytest.raises(ValueError, match=r"pool size must be in \[1, 30\], got 31"):
        random_pools(30, 31, 1, torch.Generator())


def test_callback_adds_keys_and_does_not_change_training(tiny, tiny_cfg):
    """The logger writes its keys into every round of the history (round 0 included) and
    leaves the trainer's random stream alone: the codes equal those of a run without it."""
    cb = GeneratorStatsLogger(n_queries=40)
    with_cb = Trainer(tiny_cfg(), tiny, seed=4, progress=False, callbacks=[cb])
    with_cb.fit()
    plain = Trainer(tiny_cfg(), tiny, seed=4, progress=False)
    plain.fit()
    rounds = [h for h in with_cb.history if "round" in h]
    assert [h["round"] for h in rounds] == [0, 1, 2]
    for h in rounds:
        for k in SUMMARY_KEYS:
            assert np.isfinite(h["gen_" + k])
        for k in ("map_G", "map_D", "map_G_i2t", "map_D_t2i"):
            assert 0 <= h["gen_" + k] <= 1
        assert h["gen_map_D"] == pytest.approx(h["val_map"])
    assert sorted(cb.records) == [0, 1, 2]
    for m in ("img", "txt"):
        assert np.array_equal(with_cb.codes()[m], plain.codes()[m])
    with pytest.raises(ValueError, match="every must be >= 1, got 0"):
        GeneratorStatsLogger(every=0)


def test_plots_draw_the_recorded_series():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ugach_core.book.generator_stats import (DirectionStats, GeneratorStats, plot_map_g_vs_d,
                                            plot_policy_mass, plot_reward_hist)

    hist = [{"stage": "pretrain", "epoch": 1}]
    for r in range(3):
        hist.append({"round": r, "gen_mass_manifold": 0.01 * r, "gen_mass_manifold_chance": 0.005,
                     "gen_mass_relevant": 0.1 + r, "gen_mass_relevant_chance": 0.1,
                     **{f"gen_map_{n}_{d}": 0.2 for n in "GD" for d in ("i2t", "t2i")}})
    ax = plot_policy_mass(hist, sets=("manifold",))
    assert len(ax.lines) == 2 and list(ax.lines[0].get_xdata()) == [0, 1, 2]
    assert len(plot_policy_mass(hist).lines) == 4
    with pytest.raises(ValueError, match=r"sets must be among \['manifold', 'relevant'\], "
                                         r"got \['other'\]"):
        plot_policy_mass(hist, sets=("other",))
    assert len(plot_map_g_vs_d(hist).lines) == 4
    z = np.zeros(3)
    st = GeneratorStats({"i2t": DirectionStats(z, z, z, z, z, z, np.zeros((3, 2)),
                                               np.full((3, 2), 0.6), np.zeros((3, 2)),
                                               np.full((3, 2), 0.5))})
    assert len(plot_reward_hist(st).patches) > 0
    plt.close("all")


def test_negative_label_share_leaves_training_unchanged():
    from ugach_core.book.generator_stats import NegativeLabelLogger, negative_label_share
    from ugach_core.config import smoke
    from ugach_core.data import load
    from ugach_core.train import Trainer

    data = load("synthetic")
    cfg = smoke(16)
    plain = Trainer(cfg, data, seed=0, progress=False)
    plain.fit()
    logged = Trainer(cfg, data, seed=0, progress=False, callbacks=[NegativeLabelLogger()])
    logged.fit()
    for m in ("img", "txt"):
        assert (plain.codes()[m] == logged.codes()[m]).all()
    rows = [h for h in logged.history if "round" in h]
    assert [h["round"] for h in rows] == [0, 1, 2]
    for h in rows:
        assert 0 <= h["neg_relevant"] <= 1 and 0 <= h["pos_relevant"] <= 1
    # chance by brute force: two distinct random training items share a label
    lab = data.labels[logged.fit_idx] > 0
    rel = (lab.astype(int) @ lab.T.astype(int)) > 0
    n = len(lab)
    chance = (rel.sum() - rel.diagonal().sum()) / (n * (n - 1))
    assert rows[0]["relevant_chance"] == pytest.approx(chance)
    # uniform negatives share a label about as often as chance; graph positives more often
    rand = Trainer(cfg.replace(negatives="random", n_samples=8), data, seed=0, progress=False)
    rand.pretrain()
    st = negative_label_share(rand)
    # within 5 standard errors, counting each query once (its 8 draws are not independent)
    se = (chance * (1 - chance) / (2 * len(rand.fit_idx))) ** 0.5
    assert abs(st["neg_relevant"] - chance) < 5 * se
    assert st["pos_relevant"] > chance + 10 * se
