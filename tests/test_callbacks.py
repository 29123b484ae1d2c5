"""Callbacks: the Timer (elapsed wall time in every history entry, from a fake clock) and
the Checkpoint schedule (which rounds it writes, against a stub trainer)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from ugach_core import Trainer
from ugach_core.callbacks import Checkpoint, Timer


class FakeClock:
    """Returns 10, 13, 16, ...: each call advances by 3 seconds."""

    def __init__(self, start: float = 10.0, step: float = 3.0):
        self.t, self.step = start - step, step

    def __call__(self) -> float:
        self.t += self.step
        return self.t


def test_timer_stamps_every_entry_with_the_clock(tiny, tiny_cfg):
    """Pretraining epochs and rounds (0 included) get elapsed = clock() - clock at fit start;
    with a clock that advances 3 s per call, the 2 epochs and rounds 0..3 read 3, 6, ... 18."""
    t = Trainer(tiny_cfg(pretrain_epochs=2, rounds=3), tiny, seed=0, progress=False,
                callbacks=[Timer(FakeClock())])
    history = t.fit()
    assert [h["elapsed"] for h in history] == [3.0, 6.0, 9.0, 12.0, 15.0, 18.0]
    assert [h.get("stage") for h in history][:2] == ["pretrain"] * 2


def test_timer_real_clock_is_increasing_and_bounded(tiny, tiny_cfg):
    """With the real clock: elapsed is non-decreasing and below the fit's own wall time."""
    import time

    t = Trainer(tiny_cfg(), tiny, seed=0, progress=False, callbacks=[Timer()])
    t0 = time.perf_counter()
    history = t.fit()
    wall = time.perf_counter() - t0
    el = np.array([h["elapsed"] for h in history])
    assert (np.diff(el) >= 0).all() and el[0] >= 0 and el[-1] <= wall


def test_timer_goes_into_checkpoints_and_restarts_on_resume(tiny, tiny_cfg, tmp_path):
    """The checkpoint holds the stamped history; a resumed fit() restarts the clock, so its
    new rounds are stamped from the resumed fit's start while the old entries keep theirs."""
    cfg = tiny_cfg(pretrain_epochs=2, rounds=3)
    Trainer(cfg, tiny, seed=1, progress=False,
            callbacks=[Timer(FakeClock()), Checkpoint(tmp_path / "r.pt", keep_all=True)]).fit()
    resumed = Trainer.resume(tmp_path / "r.round1.pt", tiny, progress=False,
                             callbacks=[Timer(FakeClock(start=100.0, step=5.0))])
    old = [h["elapsed"] for h in resumed.history]
    assert old == [3.0, 6.0, 9.0, 12.0]                      # 2 epochs + rounds 0, 1
    resumed.fit()
    new = [h["elapsed"] for h in resumed.history[len(old):]]
    assert new == [5.0, 10.0]                                # rounds 2, 3


def test_timer_rejects_a_clock_that_is_not_callable():
    with pytest.raises(TypeError, match="clock must be callable"):
        Timer(clock=3.0)


# ------------------------------------------------------------------ Checkpoint schedule


class StubTrainer:
    """Just what Checkpoint uses: ``cfg.rounds``, ``round`` and ``save_checkpoint``, which
    records (file name, round)."""

    def __init__(self, rounds: int):
        self.cfg = SimpleNamespace(rounds=rounds)
        self.round = -1
        self.saved: list[tuple[str, int]] = []

    def save_checkpoint(self, path: Path) -> Path:
        self.saved.append((Path(path).name, self.round))
        return Path(path)


def _run(cb: Checkpoint, t: StubTrainer, last: int) -> None:
    """Rounds 0..last, then the end of fit()."""
    for r in range(last + 1):
        t.round = r
        cb.on_round_end(t, {"round": r})
    cb.on_fit_end(t)


def test_checkpoint_every_two_rounds_and_the_last(tmp_path):
    """every=2, 5 rounds: rounds 0, 2, 4 and 5 (the last); fit's end adds nothing new."""
    t = StubTrainer(rounds=5)
    _run(Checkpoint(tmp_path / "c.pt", every=2), t, last=5)
    assert t.saved == [("c.pt", 0), ("c.pt", 2), ("c.pt", 4), ("c.pt", 5)]


def test_checkpoint_writes_the_round_a_time_limit_stopped_at(tmp_path):
    """every=5, a time limit stops fit() after round 3 of 10: round 0 by the schedule, then
    round 3 at fit's end (else the work of rounds 1-3 is lost); keep_all names both."""
    t = StubTrainer(rounds=10)
    _run(Checkpoint(tmp_path / "c.pt", every=5, keep_all=True), t, last=3)
    assert t.saved == [("c.pt", 0), ("c.round0.pt", 0), ("c.pt", 3), ("c.round3.pt", 3)]


@pytest.mark.parametrize("every", [0, -1, 1.5])
def test_checkpoint_every_must_be_a_positive_integer(tmp_path, every):
    with pytest.raises(ValueError, match="every must be an integer >= 1"):
        Checkpoint(tmp_path / "c.pt", every=every)


def test_log_test_map_of_listed_rounds_only(tiny, tiny_cfg):
    """rounds=[0]: the pretrained D's test MAP is in round 0's logs and nowhere else, and
    equals evaluating that D directly."""
    from ugach_core.callbacks import LogTestMAP
    t = Trainer(tiny_cfg(rounds=2), tiny, seed=0, progress=False,
                callbacks=[LogTestMAP(rounds=[0])])
    t.pretrain()
    direct = t.evaluate("current")
    t.fit()
    rounds = {h["round"]: h for h in t.history if "round" in h}
    assert rounds[0]["test_map_i2t"] == direct["map_i2t"]
    assert rounds[0]["test_map_t2i"] == direct["map_t2i"]
    assert all("test_map_i2t" not in rounds[r] for r in (1, 2))
