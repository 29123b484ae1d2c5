"""Trainer behaviour: determinism, resume, checkpoints, model selection, sampling rules."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from ugach_core import Trainer
from ugach_core.callbacks import Callback, Checkpoint, LogTestMAP
from ugach_core.data import make_synthetic
from ugach_core.checkpoint import CheckpointError, load_discriminator, read_checkpoint
from ugach_core.train import DivergenceError

def strip_time(history):
    return [{k: v for k, v in h.items() if k != "seconds"} for h in history]


def test_same_seed_same_codes(tiny, tiny_cfg):
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
def test_resume_equals_uninterrupted(tiny, tiny_cfg, tmp_path, preset_kw):
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


def test_best_discriminator_is_selected_on_validation(tiny, tiny_cfg):
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


def test_generated_items_avoid_manifold_pairs(tiny, tiny_cfg):
    """G's draws never hit a manifold pair of the query (the authors reject such draws)."""
    t = Trainer(tiny_cfg(pool_fraction=0.5), tiny, seed=0, progress=False)
    trip = t.sample_triplets()
    nb = t.neighbors.cpu().numpy()
    for key in ("i2t", "t2i"):
        q, pos, neg = (x.cpu().numpy() for x in trip[key])
        assert len(q) == len(t.fit_idx) * t.cfg.n_samples
        assert all(p in nb[i] for i, p in zip(q, pos))  # positives come from the graph
        assert not any(g in nb[i] for i, g in zip(q, neg))


def test_callbacks_are_called(tiny, tiny_cfg):
    """Callback hooks fire once per pretraining epoch and once per round (plus round 0)."""
    seen = {"start": 0, "pre": 0, "round": [], "end": 0}

    class Spy(Callback):
        def on_fit_start(self, tr): seen["start"] += 1
        def on_pretrain_epoch_end(self, tr, e, logs): seen["pre"] += 1
        def on_round_end(self, tr, logs): seen["round"].append(logs["round"])
        def on_fit_end(self, tr): seen["end"] += 1

    Trainer(tiny_cfg(pretrain_epochs=2, rounds=3), tiny, seed=0, progress=False,
            callbacks=[Spy()]).fit()
    assert seen == {"start": 1, "pre": 2, "round": [0, 1, 2, 3], "end": 1}


def test_corrupt_and_foreign_checkpoints(tiny, tiny_cfg, tmp_path):
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


def test_checkpoint_write_is_atomic(tiny, tiny_cfg, tmp_path, monkeypatch):
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


def test_bad_training_inputs(tiny, tiny_cfg):
    """Wrong neighbour lists and impossible code lengths fail with clear messages."""
    with pytest.raises(ValueError, match="neighbour list"):
        Trainer(tiny_cfg(), tiny, neighbors=np.zeros((3, 2), dtype=int), progress=False)
    with pytest.raises(ValueError, match="bits must be an integer"):
        tiny_cfg(bits=0)


# --------------------------------------------------------------- time limit and resuming


def test_time_limit_stops_after_a_round_checkpoints_it_and_resumes(tiny, tiny_cfg, tmp_path):
    """fit(time_limit=0) ends after round 1 (every round ends past 0 s); the history holds
    the 2 pretraining epochs and rounds 0, 1; the checkpoint written at the end of fit()
    holds round 1 even though ``every=5`` would not have written it; resuming it ends
    with exactly the codes and history of an uninterrupted run."""
    cfg = tiny_cfg(pretrain_epochs=2, rounds=3)
    full = Trainer(cfg, tiny, seed=4, progress=False)
    full.fit()
    path = tmp_path / "limited.pt"
    t = Trainer(cfg, tiny, seed=4, progress=False, callbacks=[Checkpoint(path, every=5)])
    history = t.fit(time_limit=0)
    assert t.round == 1
    assert [h.get("stage") for h in history] == ["pretrain", "pretrain", "pretrained",
                                                 "adversarial"]
    assert [h["round"] for h in history if "round" in h] == [0, 1]
    assert read_checkpoint(path)["round"] == 1
    resumed = Trainer.resume(path, tiny, progress=False)
    resumed.fit()
    assert resumed.round == 3
    assert [h["round"] for h in resumed.history if "round" in h] == [0, 1, 2, 3]
    assert strip_time(resumed.history) == strip_time(full.history)
    for m in ("img", "txt"):
        assert np.array_equal(resumed.codes()[m], full.codes()[m])


def test_time_limit_must_not_be_negative(tiny, tiny_cfg):
    t = Trainer(tiny_cfg(), tiny, seed=0, progress=False)
    with pytest.raises(ValueError, match="time_limit must be >= 0 seconds, got -1"):
        t.fit(time_limit=-1)


@pytest.fixture
def round1_checkpoint(tiny, tiny_cfg, tmp_path_factory):
    """A checkpoint of round 1, the last round of a run on ``tiny`` (seed 5)."""
    path = tmp_path_factory.mktemp("ckpt") / "r.pt"
    Trainer(tiny_cfg(rounds=1, pretrain_epochs=1), tiny, seed=5, progress=False,
            callbacks=[Checkpoint(path)]).fit()
    return path


def test_resume_on_a_different_split_is_refused(tiny, round1_checkpoint):
    """Resuming needs the same fit/validation split: another seed (another random
    validation split) or other training pairs are a CheckpointError that says how to
    resume; a split that keeps the pairs but changes their features is refused too."""
    with pytest.raises(CheckpointError, match=r"different split.*seed=5"):
        Trainer.resume(round1_checkpoint, tiny, seed=6, progress=False)
    fewer = dataclasses.replace(tiny, train_idx=tiny.train_idx[10:])
    with pytest.raises(CheckpointError, match="different split"):
        Trainer.resume(round1_checkpoint, fewer, progress=False)
    other_features = dataclasses.replace(tiny, img=tiny.img + 1.0)
    with pytest.raises(CheckpointError, match="different data"):
        Trainer.resume(round1_checkpoint, other_features, progress=False)
    # the same data and split resume (and the query / database protocol plays no part)
    assert Trainer.resume(round1_checkpoint, tiny, progress=False).round == 1


@pytest.mark.parametrize("drop", [["opt_d", "history"], ["rng"], ["dataset"], ["fit_idx"]])
def test_incomplete_checkpoint_names_the_missing_keys(tiny, round1_checkpoint, tmp_path, drop):
    """A checkpoint without some of its keys is a CheckpointError that lists them and says
    what to do, not a KeyError in the middle of resuming."""
    sd = torch.load(round1_checkpoint, weights_only=True)
    for k in drop:
        del sd[k]
    torch.save(sd, tmp_path / "part.pt")
    names = ", ".join(repr(k) for k in sorted(drop))
    with pytest.raises(CheckpointError, match=rf"lacks \[{names}\].*complete checkpoint"):
        Trainer.resume(tmp_path / "part.pt", tiny, progress=False)


def test_load_discriminator_needs_only_the_model_keys(tiny, round1_checkpoint, tmp_path):
    """Encoding needs config, D and the data dims: optimiser state may be missing, D not."""
    sd = torch.load(round1_checkpoint, weights_only=True)
    for k in ("opt_pre", "opt_d", "opt_g", "rng", "history"):
        del sd[k]
    torch.save(sd, tmp_path / "model_only.pt")
    assert load_discriminator(tmp_path / "model_only.pt", tiny).bits == 8
    del sd["D"]
    torch.save(sd, tmp_path / "no_d.pt")
    with pytest.raises(CheckpointError, match=r"lacks \['D'\]"):
        load_discriminator(tmp_path / "no_d.pt", tiny)


def test_no_validation_split_keeps_the_last_discriminator(tiny, tiny_cfg, tmp_path):
    """val_fraction=0 (and no protocol validation set): no validation MAP anywhere, every
    training pair is fitted on, and the result is the last D (best_round = rounds)."""
    assert tiny.val_idx.size == 0
    t = Trainer(tiny_cfg(val_fraction=0.0, rounds=2), tiny, seed=0, progress=False,
                callbacks=[Checkpoint(tmp_path / "nv.pt")])
    history = t.fit()
    assert len(t.val_idx) == 0 and np.array_equal(t.fit_idx, tiny.train_idx)
    assert not any("val_map" in h for h in history)
    assert t.best_round == 2 and t.best_score == -math.inf
    best, last = t.best_discriminator().state_dict(), t.discriminator.state_dict()
    assert all(torch.equal(best[k], last[k]) for k in last)
    res = t.evaluate()
    assert all(0.0 <= res[k] <= 1.0 for k in ("map_i2t", "map_t2i"))
    assert Trainer.resume(tmp_path / "nv.pt", tiny, progress=False).best_round == 2


# ------------------------------------------------------------------------- divergence


def _poison(net: torch.nn.Module) -> None:
    with torch.no_grad():
        next(net.parameters())[0, 0] = float("nan")


@pytest.mark.parametrize("stage, net", [("D step", "D"), ("G step", "G")])
def test_divergence_stops_with_round_and_stage_and_keeps_last_checkpoint(
        tiny, tiny_cfg, tmp_path, monkeypatch, stage, net):
    """A NaN weight after a D (or G) step of round 2 stops fit() with an error naming round 2
    and the stage; the checkpoint on disk stays the round-1 one and still resumes."""
    path = tmp_path / "c.pt"
    t = Trainer(tiny_cfg(rounds=3), tiny, seed=0, progress=False,
                callbacks=[Checkpoint(path)])
    method = "d_step" if net == "D" else "g_step"
    original = getattr(t, method)

    def poisoned(*args):
        out = original(*args)
        if t.round == 1:  # during round 2
            _poison(t.discriminator if net == "D" else t.generator)
        return out

    monkeypatch.setattr(t, method, poisoned)
    with pytest.raises(DivergenceError, match=rf"round 2, stage '{stage}'.*weights of {net}"):
        t.fit()
    assert read_checkpoint(path)["round"] == 1
    back = Trainer.resume(path, tiny, progress=False)
    assert all(torch.isfinite(p).all() for p in back.discriminator.parameters())


def test_divergence_inside_a_stage_is_reported_as_divergence(tiny, tiny_cfg, monkeypatch):
    """G turns NaN after the first G step of round 1; the next step's sampling fails inside
    torch (NaN probabilities) before the stage ends: still a DivergenceError naming round 1
    and the G step, chained to torch's error."""
    t = Trainer(tiny_cfg(rounds=2), tiny, seed=0, progress=False)
    original = t.g_step

    def poisoned(*args):
        out = original(*args)
        _poison(t.generator)
        return out

    monkeypatch.setattr(t, "g_step", poisoned)
    with pytest.raises(DivergenceError, match=r"round 1, stage 'G step'.*weights of G") as e:
        t.fit()
    assert isinstance(e.value.__context__, RuntimeError)


def test_divergence_in_pretraining_from_a_huge_learning_rate(tiny, tiny_cfg):
    """Adam steps of 1e38 (near the float32 maximum) overflow the weights in the first
    pretraining epoch: stopped in round 0, stage 'pretraining', with a hint at pretrain_lr."""
    t = Trainer(tiny_cfg(pretrain_lr=1e38, optimizer="adam"), tiny, seed=0, progress=False)
    with pytest.raises(DivergenceError, match=r"round 0, stage 'pretraining' \(epoch 1\).*"
                                              r"lower pretrain_lr"):
        t.fit()


def test_checkpoint_never_overwrites_a_good_file_with_nan_weights(tiny, tiny_cfg, tmp_path):
    """A callback that breaks D after round 2 (it runs before the Checkpoint callback):
    the checkpoint refuses to write, the round-1 file stays and loads."""
    path = tmp_path / "c.pt"

    class Breaker(Callback):
        def on_round_end(self, trainer, logs):
            if logs["round"] == 2:
                _poison(trainer.discriminator)

    t = Trainer(tiny_cfg(rounds=3), tiny, seed=0, progress=False,
                callbacks=[Checkpoint(path), Breaker()])
    with pytest.raises(DivergenceError, match=rf"round 2.*not writing .*{path.name}"):
        t.fit()
    assert read_checkpoint(path)["round"] == 1
    assert load_discriminator(path, tiny).bits == 8


def test_atomic_write_gives_the_file_the_mode_open_would(tmp_path):
    """mkstemp makes 0600 files; results and checkpoints follow the umask like any file."""
    import os

    from ugach_core.utils import atomic_write_text

    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "r.json", "[]")
        assert (tmp_path / "r.json").stat().st_mode & 0o777 == 0o644
    finally:
        os.umask(old)
