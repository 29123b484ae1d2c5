"""Data parallelism for the batched presets with ``torch.distributed`` (chapter 7; README
"Scaling up").

Every process builds the same :class:`DataParallelTrainer` with the same seed and data, so
all of them draw the same batches, pools and triplets from :attr:`Trainer.rng`.  A D step
(pretraining and rounds) computes its loss on this process's share of the batch's rows;
before the optimiser steps, each gradient is weighted by the share's size and summed over
the processes (one ``all_reduce`` per parameter), which gives every process the gradient of
the whole batch's mean loss and so the same weights:

.. math:: \\nabla \\frac1B \\sum_{i \\le B} \\ell_i
          = \\sum_r \\frac{B_r}{B} \\, \\nabla \\frac1{B_r} \\sum_{i \\in r} \\ell_i

The G steps, the sampling and the validation run whole on every process (a G step shares
one pool among its queries, and encoding that pool is its main cost).  The result equals a
one-process run at the same global batch up to the order of floating-point sums.

    torchrun --standalone --nproc-per-node 2 train.py   # train.py: init_process_group("gloo")
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist

from .train import Trainer


class DataParallelTrainer(Trainer):
    """A :class:`~ugach_core.train.Trainer` whose D steps are split over the processes of
    the default ``torch.distributed`` group (initialise it first, e.g. ``gloo`` on CPUs).
    Derived in chapter 7 (eq-data-parallel)."""

    def __init__(self, *args: Any, **kwargs: Any):
        if not dist.is_initialized():  # before building the nets and the graph
            raise RuntimeError("DataParallelTrainer needs torch.distributed: call "
                               "dist.init_process_group('gloo') first (run under torchrun)")
        super().__init__(*args, **kwargs)
        if self.cfg.first_layer != "autograd":
            raise ValueError("data parallelism splits batches of D steps: use a batched "
                             "preset (fast) with first_layer='autograd'")
        if self.cfg.d_batches != "random":
            raise ValueError("data parallelism splits D's batches by triplet: use "
                             "d_batches='random'")
        self.rank, self.world = dist.get_rank(), dist.get_world_size()
        self._share = 1.0
        for opt in (self.opt_pre, self.opt_d):
            opt.register_step_pre_hook(self._sum_gradients)

    def d_step(self, q: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor, qm: str,
               opt: torch.optim.Optimizer) -> torch.Tensor:
        """:meth:`Trainer.d_step` on this process's rows of the batch; returns the loss of
        the whole batch."""
        rows = torch.arange(len(q), device=q.device).tensor_split(self.world)[self.rank]
        self._share = len(rows) / len(q)
        if len(rows) == 0:  # fewer rows than processes: contribute a zero gradient
            rows = torch.arange(len(q), device=q.device)
        loss = super().d_step(q[rows], pos[rows], neg[rows], qm, opt) * self._share
        dist.all_reduce(loss)
        return loss

    def _sum_gradients(self, opt: torch.optim.Optimizer, *_: Any) -> None:
        for group in opt.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    p.grad.mul_(self._share)
                    dist.all_reduce(p.grad)


__all__ = ["DataParallelTrainer"]
