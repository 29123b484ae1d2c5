"""The "no GAN" option of the trainer and the ablation runner."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ugach_core import Trainer
from ugach_core import sampling
from ugach_core.baselines import cca_itq_scores
from ugach_core.book.ablations import (Variant, compare_to_reference, default_variants,
                                  format_summary, pretrain_key, rows_from_results, run_grid,
                                  summarize, train_variant)
from ugach_core.config import UGACHConfig, fast
from reference import brute_map


# ------------------------------------------------------------------- config field
def test_negatives_field_validated_and_defaults():
    assert UGACHConfig().negatives == "generator"
    assert fast(32).negatives == "generator"
    with pytest.raises(ValueError, match="negatives"):
        UGACHConfig(negatives="uniform")
    cfg = fast(32).replace(negatives="random")
    assert UGACHConfig.from_dict(cfg.to_dict()) == cfg
    old = fast(32).to_dict()
    del old["negatives"]  # a config stored before the field existed
    assert UGACHConfig.from_dict(old).negatives == "generator"


# ------------------------------------------------------------- random negatives
def test_random_negatives_are_non_neighbours_and_uniform(tiny, tiny_cfg):
    """Every draw avoids the query's manifold pairs (when its pool has any other item), and
    over many draws every non-neighbour is hit about equally often."""
    cfg = tiny_cfg(negatives="random", pool_fraction=1.0, n_samples=4)
    t = Trainer(cfg, tiny, seed=0, progress=False)
    n = len(t.fit_idx)
    q = torch.zeros(4000, dtype=torch.long)  # one query, many draws
    pool = sampling.random_pools(n, t.pool_size, len(q), t.rng)
    excluded = sampling.exclusion_mask(pool, t.neighbors[q])
    items = pool.gather(1, sampling.uniform_draw(excluded, 4, t.rng)).reshape(-1).numpy()
    nb = set(t.neighbors[0].tolist())
    assert not nb & set(items.tolist())
    counts = np.bincount(items, minlength=n)
    allowed = np.array([i not in nb for i in range(n)])
    expected = len(items) / allowed.sum()
    assert counts[~allowed].sum() == 0
    # chi-square-like check: no allowed item is far from its expected count
    assert np.all(np.abs(counts[allowed] - expected) < 6 * np.sqrt(expected))
    trip = t.sample_triplets()
    for key in ("i2t", "t2i"):
        qq, pos, neg = trip[key]
        assert len(qq) == len(pos) == len(neg) == n * cfg.n_samples
        hit = (t.neighbors[qq] == neg[:, None]).any(1)
        assert not hit.any()
        assert (t.neighbors[qq] == pos[:, None]).any(1).all()


def test_random_negatives_never_touch_generator(tiny, tiny_cfg):
    cfg = tiny_cfg(negatives="random")
    t = Trainer(cfg, tiny, seed=0, progress=False)
    g0 = [p.detach().clone() for p in t.generator.parameters()]
    d0 = [p.detach().clone() for p in t.discriminator.parameters()]
    hist = t.fit()
    assert all(torch.equal(a, b) for a, b in zip(g0, t.generator.parameters()))
    assert not all(torch.equal(a, b) for a, b in zip(d0, t.discriminator.parameters()))
    rounds = [h for h in hist if h.get("stage") == "adversarial"]
    assert len(rounds) == cfg.rounds
    assert all("g_loss" not in h and "reward" not in h and math.isfinite(h["d_loss"])
               for h in rounds)


def test_random_negatives_change_the_result_generator_default_unchanged(tiny, tiny_cfg):
    a = Trainer(tiny_cfg(), tiny, seed=3, progress=False)
    b = Trainer(tiny_cfg(negatives="generator"), tiny, seed=3, progress=False)
    c = Trainer(tiny_cfg(negatives="random"), tiny, seed=3, progress=False)
    for t in (a, b, c):
        t.fit()
    assert np.array_equal(a.codes("current")["img"], b.codes("current")["img"])
    da, db, dc = (list(t.discriminator.parameters()) for t in (a, b, c))
    assert all(torch.equal(x, y) for x, y in zip(da, db))
    assert not all(torch.equal(x, y) for x, y in zip(da, dc))  # other negatives, other D


# --------------------------------------------------------------------- runner
@pytest.mark.parametrize("change", [
    dict(k_img=2, k_txt=1, negatives="random"),
    dict(d_lr=3e-4, g_lr=2e-3, temperature=0.5, g_softmax="sampled", reward="log",
         reward_baseline=False, fn_guard=3, reward_band=True, n_samples=3, pool_fraction=0.3,
         positives="distinct", g_pool_mask=False, negatives="mixed", d_batches="query")])
def test_shared_pretraining_gives_the_codes_of_a_separate_run(tiny, tiny_cfg, change):
    """A variant that restores a cached pretrained state ends with exactly the codes of an
    independent run of the same config (every field of POST_PRETRAIN_FIELDS acts only
    after pretraining)."""
    base = tiny_cfg()
    other = base.replace(**change)
    assert pretrain_key(base) == pretrain_key(other)
    assert pretrain_key(base) != pretrain_key(base.replace(margin=0.5))
    cache: dict = {}
    train_variant(base, tiny, seed=5, cache=cache)
    assert len(cache) == 1
    shared, secs = train_variant(other, tiny, seed=5, cache=cache)
    alone, _ = train_variant(other, tiny, seed=5, cache=None)
    for m in ("img", "txt"):
        assert np.array_equal(shared.codes()[m], alone.codes()[m])
        assert np.array_equal(shared.codes("current")[m], alone.codes("current")[m])
    assert secs > next(iter(cache.values()))[1]  # the wall time includes pretraining


def test_run_grid_rows_summary_and_comparison(tiny, tiny_cfg):
    base = tiny_cfg()
    variants = [Variant("ref", "preset", base), Variant("no graph", "no graph",
                                                        base.replace(rounds=0)),
                Variant("CCA-ITQ", "baseline", None)]
    seen = []
    rows = run_grid(tiny, variants, seeds=[0, 1], bits=8, on_row=seen.append)
    assert len(rows) == 6 and seen == rows
    assert [r["variant"] for r in rows[:3]] == ["ref", "no graph", "CCA-ITQ"]
    for r in rows:
        assert 0 < r["map_i2t"] <= 1 and 0 < r["map50_t2i"] <= 1 and r["train_seconds"] > 0
    for r in rows[:2] + rows[3:5]:  # UGACH rows also score the last round's D
        assert 0 < r["last_map_i2t"] <= 1 and 0 < r["last_map50_t2i"] <= 1
    assert "last_map_i2t" not in rows[2]
    # CCA-ITQ: the command line's baseline function, shrinkage chosen on validation pairs
    want = cca_itq_scores(tiny, 8, seed=1)
    cca = rows[5]
    for key in ("map_i2t", "map_t2i", "map50_i2t", "map50_t2i", "cca_reg", "val_map"):
        assert cca[key] == pytest.approx(want[key], abs=1e-12), key
    assert cca["config"] == {"method": "cca_itq", "bits": 8, "reg": want["cca_reg"]}
    ng = [r for r in rows if r["variant"] == "no graph"]
    # no rounds: the last D is the selected (pretrained) one
    assert all(r["last_map_i2t"] == r["map_i2t"] for r in ng)
    assert all(r["rounds_done"] == 0 and r["best_round"] == 0 for r in ng)
    # the trainer's own evaluation agrees with the rows (same function as for CCA-ITQ)
    t, _ = train_variant(base, tiny, seed=0)
    assert t.evaluate()["map_i2t"] == pytest.approx(rows[0]["map_i2t"])
    assert t.evaluate(topk=50)["map_t2i"] == pytest.approx(rows[0]["map50_t2i"])

    summ = summarize(rows)
    assert [s["variant"] for s in summ] == ["ref", "no graph", "CCA-ITQ"]
    a, b = [r["map_i2t"] for r in rows if r["variant"] == "ref"]
    assert a != b  # two seeds, two results: the spread is not trivially 0
    # two values: mean (a + b) / 2, sample std sqrt(2 ((a - b) / 2)^2 / (2 - 1)) = |a - b| / sqrt 2
    assert summ[0]["map_i2t"] == pytest.approx((a + b) / 2)
    assert summ[0]["map_i2t_std"] == pytest.approx(abs(a - b) / math.sqrt(2))
    avg = [(r["map_i2t"] + r["map_t2i"]) / 2 for r in rows if r["variant"] == "ref"]
    assert summ[0]["map_avg"] == pytest.approx((avg[0] + avg[1]) / 2)
    assert "last_map_avg" in summ[0] and "last_map_avg" not in summ[2]
    cmp = compare_to_reference(summ, "ref")
    assert cmp[0]["delta"] == 0 and cmp[0]["clear"] is False
    assert "ref" in format_summary(summ)
    with pytest.raises(ValueError, match="reference 'missing' not in the summary"):
        compare_to_reference(summ, "missing")


def test_compare_to_reference_by_hand():
    summ = [{"variant": "a", "n": 3, "map_avg": 0.30, "map_avg_std": 0.01},
            {"variant": "b", "n": 3, "map_avg": 0.32, "map_avg_std": 0.01},
            {"variant": "c", "n": 3, "map_avg": 0.305, "map_avg_std": 0.01},
            {"variant": "d", "n": 1, "map_avg": 0.40, "map_avg_std": float("nan")}]
    out = {c["variant"]: c for c in compare_to_reference(summ, "a")}
    se = math.sqrt(2 * 0.01 ** 2 / 3)
    assert out["b"]["se"] == pytest.approx(se)
    assert out["b"]["clear"] is True  # 0.02 > 2 * 0.00816
    assert out["c"]["clear"] is False  # 0.005 < 0.0163
    assert out["d"]["clear"] is None and out["d"]["delta"] == pytest.approx(0.10)


def test_summarize_three_seeds_by_hand():
    """Mean and sample std (n - 1) of 0.20, 0.23, 0.26: 0.23 and sqrt((0.03^2 + 0 + 0.03^2)
    / 2) = 0.03 (the population std would be 0.0245); wall time 1, 2, 6 s: 3 +- sqrt(7)."""
    rows = [{"variant": "x", "map_i2t": m, "map_t2i": 0.5, "map50_i2t": 0.1,
             "map50_t2i": 0.3, "train_seconds": t} for m, t in ((0.20, 1), (0.23, 2),
                                                                 (0.26, 6))]
    s = summarize(rows)[0]
    assert s["n"] == 3 and s["map_i2t"] == pytest.approx(0.23)
    assert s["map_i2t_std"] == pytest.approx(0.03)
    assert s["map_t2i_std"] == 0.0
    assert s["map_avg"] == pytest.approx(0.365) and s["map_avg_std"] == pytest.approx(0.015)
    assert s["train_seconds"] == pytest.approx(3.0)
    assert s["train_seconds_std"] == pytest.approx(math.sqrt(7))


def test_summarize_single_seed_has_nan_std():
    rows = [{"variant": "x", "group": "g", "map_i2t": 0.2, "map_t2i": 0.4, "map50_i2t": 0.1,
             "map50_t2i": 0.3, "train_seconds": 5.0}]
    s = summarize(rows)[0]
    assert s["n"] == 1 and math.isnan(s["map_i2t_std"]) and s["map_avg"] == pytest.approx(0.3)


def test_default_variants_and_errors(tiny, tmp_path):
    v = default_variants(fast(32))
    names = [x.name for x in v]
    assert len(set(names)) == len(names)
    assert v[0].cfg == fast(32) and v[-1].cfg is None
    by = {x.name: x.cfg for x in v}
    assert by["no GAN (random negatives)"].negatives == "random"
    assert by["no graph (pretrained D)"].rounds == 0
    assert by["margin 8"].margin == 8.0 and by["margin 0"].margin == 0.0
    assert (by["k 10+0"].k_img, by["k 10+0"].k_txt) == (10, 0)
    with pytest.raises(ValueError, match="unique"):
        run_grid(tiny, [v[0], v[0]], [0], 32)
    with pytest.raises(ValueError, match="bits"):
        run_grid(tiny, [v[0]], [0], 16)
    assert rows_from_results(tmp_path / "absent.json", "paper", "preset", 32) == []
    f = tmp_path / "r.json"
    f.write_text('[{"bits": 16, "map_i2t": 0.1}, {"bits": 32, "map_i2t": 0.2}]')
    got = rows_from_results(f, "paper (GPU)", "preset", 32, "note")
    assert got == [{"bits": 32, "map_i2t": 0.2, "variant": "paper (GPU)", "group": "preset",
                    "note": "note"}]




def test_rows_score_the_selected_codes(tiny, tiny_cfg):
    """A row's MAP@all and MAP@50 are those of the validation-selected D's codes, computed
    here by brute force from the codes of a separate run with the same seed."""
    base = tiny_cfg()
    row = run_grid(tiny, [Variant("ref", "preset", base)], [2], 8)[0]
    t, _ = train_variant(base, tiny, seed=2)
    c = t.codes()
    q, db, lab = tiny.query_idx, tiny.db_idx, tiny.labels
    for key, a, b in (("i2t", c["img"], c["txt"]), ("t2i", c["txt"], c["img"])):
        assert row[f"map_{key}"] == pytest.approx(brute_map(a[q], b[db], lab[q], lab[db]))
        assert row[f"map50_{key}"] == pytest.approx(
            brute_map(a[q], b[db], lab[q], lab[db], 50))
