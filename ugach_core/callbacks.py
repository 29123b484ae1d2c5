"""Callbacks: evaluation, checkpointing and logging live here, not in the training loop."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable

if TYPE_CHECKING:  # pragma: no cover
    from .train import Trainer


class Callback:
    """Hooks called by :meth:`ugach_core.train.Trainer.fit`.  ``logs`` is the dict that
    becomes the round's history entry; callbacks may add keys to it.  At the end of a
    round callbacks run in increasing :attr:`order` (ties: the order given), so one that
    reads the keys others add (a checkpoint) sets a higher one. Chapter 7."""

    order: int = 0

    def on_fit_start(self, trainer: "Trainer") -> None: ...

    def on_pretrain_epoch_end(self, trainer: "Trainer", epoch: int, logs: dict[str, Any]) -> None: ...

    def on_round_end(self, trainer: "Trainer", logs: dict[str, Any]) -> None: ...

    def on_fit_end(self, trainer: "Trainer") -> None: ...


class PrintLogger(Callback):
    """Prints one line per round (losses, rewards, validation MAP). Chapter 7."""

    def __init__(self, file: Any = None):
        self.file = file

    def on_round_end(self, trainer: "Trainer", logs: dict[str, Any]) -> None:
        keys = ("d_loss", "g_loss", "reward", "val_map", "test_map_i2t", "test_map_t2i")
        parts = [f"{k}={logs[k]:.4f}" for k in keys if isinstance(logs.get(k), float)]
        print(f"round {logs['round']:>3}: " + " ".join(parts), file=self.file, flush=True)


class Checkpoint(Callback):
    """Writes the full training state to ``path`` (atomically) every ``every`` rounds and at
    the end of every ``fit()`` (the last round, also when ``fit(time_limit=...)`` stopped
    early), so :meth:`Trainer.resume` continues exactly where it stopped.  With
    ``keep_all=True`` each written round also goes to ``<stem>.round<r>.pt``.  Weights with
    NaN/inf are never written (:meth:`Trainer.save_checkpoint` refuses), so ``path`` always
    holds the last good state. Chapter 7."""

    order = 100  # after every callback that adds keys to the round's logs

    def __init__(self, path: str | Path, every: int = 1, keep_all: bool = False):
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"every must be an integer >= 1 (rounds between checkpoints), "
                             f"got {every!r}")
        self.path, self.every, self.keep_all = Path(path), every, keep_all
        self.saved_round: int | None = None  # the round ``path`` holds, when written here

    def _save(self, trainer: "Trainer") -> None:
        trainer.save_checkpoint(self.path)
        if self.keep_all:
            r = trainer.round
            trainer.save_checkpoint(self.path.with_name(f"{self.path.stem}.round{r}.pt"))
        self.saved_round = trainer.round

    def on_round_end(self, trainer: "Trainer", logs: dict[str, Any]) -> None:
        r = logs["round"]
        if r % self.every == 0 or r == trainer.cfg.rounds:
            self._save(trainer)

    def on_fit_end(self, trainer: "Trainer") -> None:
        if trainer.round >= 0 and self.saved_round != trainer.round:
            self._save(trainer)


class LogTestMAP(Callback):
    """Adds MAP@all on the *test* protocol to the logs of every ``every``-th round, or of
    the rounds listed in ``rounds`` (for plots and reports only; model selection never
    looks at it).  Keys ``test_map_i2t``, ``test_map_t2i``; ``LogTestMAP(rounds=[0])``
    records the pretrained D's test MAP in the history, so the gain of the rounds can be
    reported next to the selected D's. Chapter 7."""

    def __init__(self, every: int = 1, rounds: Iterable[int] | None = None):
        self.every, self.rounds = every, None if rounds is None else set(rounds)

    def on_round_end(self, trainer: "Trainer", logs: dict[str, Any]) -> None:
        r = logs["round"]
        if r in self.rounds if self.rounds is not None else r % self.every == 0:
            res = trainer.evaluate(which="current", topk=None)
            logs["test_map_i2t"], logs["test_map_t2i"] = res["map_i2t"], res["map_t2i"]


class Timer(Callback):
    """Adds wall-clock time to the logs (chapter 7, "Callbacks and history").

    Key ``elapsed``: seconds since this :meth:`~ugach_core.train.Trainer.fit` call started,
    :math:`t_\\text{now} - t_\\text{fit start}`, on every pretraining epoch and every round
    (round 0 included), so the history can be plotted against time as well as rounds.  A
    resumed run starts its clock again at its own ``fit()``.  ``clock`` is the time source
    (default :func:`time.perf_counter`; tests pass a fake one).
    """

    def __init__(self, clock: Callable[[], float] = time.perf_counter):
        if not callable(clock):
            raise TypeError(f"clock must be callable, got {type(clock).__name__}")
        self.clock = clock
        self.t0: float | None = None

    def on_fit_start(self, trainer: "Trainer") -> None:
        self.t0 = self.clock()

    def _stamp(self, logs: dict[str, Any]) -> None:
        if self.t0 is None:  # hooks called outside fit(): start the clock now
            self.t0 = self.clock()
        logs["elapsed"] = float(self.clock() - self.t0)

    def on_pretrain_epoch_end(self, trainer: "Trainer", epoch: int, logs: dict[str, Any]) -> None:
        self._stamp(logs)

    def on_round_end(self, trainer: "Trainer", logs: dict[str, Any]) -> None:
        self._stamp(logs)
