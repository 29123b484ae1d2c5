"""The Timer callback: elapsed wall time in every history entry, from a fake clock."""

from __future__ import annotations

import numpy as np
import pytest

from ugach_core import Trainer, smoke
from ugach_core.callbacks import Checkpoint, Timer


def tiny_cfg(**kw):
    base = dict(hidden=32, pretrain_epochs=2, rounds=3, d_batch=64, g_batch=64,
                pretrain_batch=64, pool_fraction=0.25)
    base.update(kw)
    return smoke(8).replace(**base)


class FakeClock:
    """Returns 10, 13, 16, ...: each call advances by 3 seconds."""

    def __init__(self, start: float = 10.0, step: float = 3.0):
        self.t, self.step = start - step, step

    def __call__(self) -> float:
        self.t += self.step
        return self.t


def test_timer_stamps_every_entry_with_the_clock(tiny):
    """Pretraining epochs and rounds (0 included) get elapsed = clock() - clock at fit start;
    with a clock that advances 3 s per call, entry i reads 3 * (i + 1)."""
    cfg = tiny_cfg()
    t = Trainer(cfg, tiny, seed=0, progress=False, callbacks=[Timer(FakeClock())])
    history = t.fit()
    assert len(history) == cfg.pretrain_epochs + 1 + cfg.rounds
    assert [h["elapsed"] for h in history] == [3.0 * (i + 1) for i in range(len(history))]
    assert [h.get("stage") for h in history][:cfg.pretrain_epochs] == ["pretrain"] * 2


def test_timer_real_clock_is_increasing_and_bounded(tiny):
    """With the real clock: elapsed is non-decreasing and below the fit's own wall time."""
    import time

    t = Trainer(tiny_cfg(), tiny, seed=0, progress=False, callbacks=[Timer()])
    t0 = time.perf_counter()
    history = t.fit()
    wall = time.perf_counter() - t0
    el = np.array([h["elapsed"] for h in history])
    assert (np.diff(el) >= 0).all() and el[0] >= 0 and el[-1] <= wall


def test_timer_goes_into_checkpoints_and_restarts_on_resume(tiny, tmp_path):
    """The checkpoint holds the stamped history; a resumed fit() restarts the clock, so its
    new rounds are stamped from the resumed fit's start while the old entries keep theirs."""
    cfg = tiny_cfg()
    Trainer(cfg, tiny, seed=1, progress=False,
            callbacks=[Timer(FakeClock()), Checkpoint(tmp_path / "r.pt", keep_all=True)]).fit()
    resumed = Trainer.resume(tmp_path / "r.round1.pt", tiny, progress=False,
                             callbacks=[Timer(FakeClock(start=100.0, step=5.0))])
    old = [h["elapsed"] for h in resumed.history]
    assert old == [3.0 * (i + 1) for i in range(len(old))]   # 2 epochs + rounds 0, 1
    resumed.fit()
    new = [h["elapsed"] for h in resumed.history[len(old):]]
    assert new == [5.0, 10.0]                                # rounds 2, 3


def test_timer_rejects_a_clock_that_is_not_callable():
    with pytest.raises(TypeError, match="clock must be callable"):
        Timer(clock=3.0)
