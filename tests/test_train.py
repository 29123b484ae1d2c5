"""Trainer behaviour: determinism, resume, checkpoints, model selection, sampling rules."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from ugach_core import Trainer, smoke
from ugach_core.callbacks import Callback, Checkpoint, LogTestMAP
from ugach_core.data import make_synthetic
from ugach_core.train import CheckpointError, load_discriminator, read_checkpoint



def tiny_cfg(**kw):
    base = dict(hidden=32, pretrain_epochs=2, rounds=3, d_batch=64, g_batch=64,
                pretrain_batch=64, pool_fraction=0.25)
    base.update(kw)
    return smoke(8).replace(**base)


def strip_time(history):
    return [{k: v for k, v in h.items() if k != "seconds"} for h in history]


def test_same_seed_same_codes(tiny):
    """Two runs with one seed give identical codes and histories; another seed differs."""
    a = Trainer(tiny_cfg(), tiny, seed=7, progress=False)
    b = Trainer(tiny_cfg(), tiny, seed=7, progress=False)
    c = Trainer(tiny_cfg(), tiny, seed=8, progress=False)
    for t in (a, b, c):
        t.fit()
    ca, cb, cc = a.codes(), b.codes(), c.codes()
    assert np.array_equal(ca["img"], cb["img"]) and np.array_equal(ca["txt"], cb["txt"])
    assert strip_time(a.history) == strip_time(b.history)
    assert not np.array_equal(ca["img"], cc["img"])


@pytest.mark.parametrize("preset_kw", [{}, dict(g_softmax="sampled", reward="log", d_loss="log",
                                                 optimizer="sgd", d_batch=1, g_batch=4,
                                                 reward_baseline=False)])
def test_resume_equals_uninterrupted(tiny, tmp_path, preset_kw):
    """Resuming from the round-1 checkpoint ends with exactly the uninterrupted codes."""
    cfg = tiny_cfg(**preset_kw)
    full = Trainer(cfg, tiny, seed=1, progress=False,
                   callbacks=[Checkpoint(tmp_path / "run.pt", keep_all=True)])
    full.fit()
    assert (tmp_path / "run.round1.pt").exists() and (tmp_path / "run.round0.pt").exists()
    resumed = Trainer.resume(tmp_path / "run.round1.pt", tiny, progress=False)
    assert resumed.round == 1
    resumed.fit()
    for m in ("img", "txt"):
        assert np.array_equal(full.codes()[m], resumed.codes()[m])
        assert np.array_equal(full.codes("current")[m], resumed.codes("current")[m])
    assert strip_time(full.history) == strip_time(resumed.history)


def test_best_discriminator_is_selected_on_validation(tiny):
    """The kept D is the round with the highest validation MAP, never a test number."""
    t = Trainer(tiny_cfg(rounds=4), tiny, seed=2, progress=False, callbacks=[LogTestMAP()])
    t.fit()
    rounds = [h for h in t.history if "round" in h and "val_map" in h]
    best = max(rounds, key=lambda h: h["val_map"])
    assert t.best_round == best["round"]
    assert t.best_score == pytest.approx(best["val_map"])
    assert set(t.val_idx) <= set(tiny.train_idx)
    assert set(t.val_idx).isdisjoint(t.fit_idx)
    # the test MAP logged for plots is the current D's, evaluated on the test protocol
    assert all("test_map_i2t" in h for h in rounds)


def test_generated_items_avoid_manifold_pairs(tiny):
    """G's draws never hit a manifold pair of the query (the authors reject such draws)."""
    t = Trainer(tiny_cfg(pool_fraction=0.5), tiny, seed=0, progress=False)
    trip = t.sample_triplets()
    nb = t.neighbors.cpu().numpy()
    for key in ("i2t", "t2i"):
        q, pos, neg = (x.cpu().numpy() for x in trip[key])
        assert len(q) == len(t.fit_idx) * t.cfg.n_samples
        assert all(p in nb[i] for i, p in zip(q, pos))  # positives come from the graph
        assert not any(g in nb[i] for i, g in zip(q, neg))


def test_callbacks_are_called(tiny):
    """Callback hooks fire once per pretraining epoch and once per round (plus round 0)."""
    seen = {"start": 0, "pre": 0, "round": [], "end": 0}

    class Spy(Callback):
        def on_fit_start(self, tr): seen["start"] += 1
        def on_pretrain_epoch_end(self, tr, e, logs): seen["pre"] += 1
        def on_round_end(self, tr, logs): seen["round"].append(logs["round"])
        def on_fit_end(self, tr): seen["end"] += 1

    cfg = tiny_cfg()
    Trainer(cfg, tiny, seed=0, progress=False, callbacks=[Spy()]).fit()
    assert seen == {"start": 1, "pre": cfg.pretrain_epochs, "round": [0, 1, 2, 3], "end": 1}


def test_corrupt_and_foreign_checkpoints(tiny, tmp_path):
    """Missing, truncated, foreign and mismatched checkpoints raise CheckpointError."""
    t = Trainer(tiny_cfg(rounds=1), tiny, seed=0, progress=False)
    t.fit()
    good = t.save_checkpoint(tmp_path / "good.pt")
    with pytest.raises(CheckpointError, match="does not exist"):
        read_checkpoint(tmp_path / "nope.pt")
    raw = good.read_bytes()
    (tmp_path / "trunc.pt").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(CheckpointError, match="corrupt"):
        Trainer.resume(tmp_path / "trunc.pt", tiny)
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="corrupt"):
        load_discriminator(tmp_path / "junk.pt")
    torch.save({"weights": torch.zeros(2)}, tmp_path / "foreign.pt")
    with pytest.raises(CheckpointError, match="not a UGACH checkpoint"):
        read_checkpoint(tmp_path / "foreign.pt")
    other = make_synthetic(n=120, d_img=30, d_txt=12, seed=1)
    with pytest.raises(CheckpointError, match="dims"):
        load_discriminator(good, other)
    with pytest.raises(CheckpointError, match="8-bit codes, not 16"):
        load_discriminator(good, tiny, bits=16)
    d = load_discriminator(good, tiny, bits=8)
    assert d.bits == 8


def test_checkpoint_write_is_atomic(tiny, tmp_path, monkeypatch):
    """A crash while writing leaves the previous checkpoint intact and no temp files."""
    t = Trainer(tiny_cfg(rounds=1), tiny, seed=0, progress=False)
    path = t.save_checkpoint(tmp_path / "c.pt")
    before = path.read_bytes()

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", boom)
    with pytest.raises(OSError, match="disk full"):
        t.save_checkpoint(path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]


def test_bad_training_inputs(tiny):
    """Wrong neighbour lists and impossible code lengths fail with clear messages."""
    with pytest.raises(ValueError, match="neighbour list"):
        Trainer(tiny_cfg(), tiny, neighbors=np.zeros((3, 2), dtype=int), progress=False)
    with pytest.raises(ValueError, match="bits"):
        tiny_cfg(bits=0)
