"""The first layer under the authors' batch-1 SGD schedule, updated without its gradient.

Plain SGD (no momentum) with weight decay :math:`\\lambda` changes the first layer
:math:`W_c` (``hidden x d``) of a step on rows :math:`x_1..x_m` by a scale and a rank-m
product of the backward signal :math:`\\delta` and the inputs:

.. math:: W_c \\leftarrow (1 - \\eta\\lambda)\\, W_c - \\eta\\, \\delta^\\top X_B
          \\quad\\Rightarrow\\quad W_t = s_t \\big(W_0 + U^\\top V\\big)

with :math:`s_t = \\prod (1 - \\eta\\lambda)`, the rows of :math:`U` the scaled signals
:math:`-\\eta\\,\\delta / s` and the rows of :math:`V` the inputs.  The pre-activations of
the training items follow without touching :math:`W`:
:math:`X W_t^\\top = s_t \\big(Z + (X V^\\top) U\\big)` with :math:`Z = X W_0^\\top` computed
once.  A step then reads :math:`O(r (d + h))` numbers instead of writing a dense
``hidden x d`` gradient and reading and writing the weights (about 5 passes over 128 MB
for MIRFlickr's 4096-d images).  When the corrections have cost as much as recomputing
:math:`Z`, :math:`W` is materialised and :math:`Z` recomputed from it.  One step equals autograd
+ ``torch.optim.SGD`` up to float rounding; over 200 steps the tests hold it to 1e-5
relative on small shapes (at MIRFlickr's width the batch-1 trajectory amplifies rounding
on either path: ``benchmarks/bench_paper.py``).  Chapter 7.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class DeferredLinear:
    """``linear``'s weight over fixed inputs ``x`` (``(n, d)``, normalised), SGD updates kept
    as scale and low-rank product until :meth:`close`; bias left to optimiser. Chapter 7."""

    #: inputs with fewer non-zero entries than this share take the sparse refresh
    SPARSE_BELOW = 0.05

    def __init__(self, linear: nn.Linear, x: torch.Tensor, max_rank: int = 4096,
                 sparse_below: float | None = None):
        self.weight, self.x = linear.weight, x
        sparse_below = self.SPARSE_BELOW if sparse_below is None else sparse_below
        h, d = self.weight.shape
        self.u = torch.empty(max_rank, h, dtype=x.dtype, device=x.device)
        self.v = torch.empty(max_rank, d, dtype=x.dtype, device=x.device)
        # sparse inputs (MIRFlickr's tags: 0.3 % non-zero): X W^T as sums of nnz columns of W
        # (embedding_bag); the refresh schedule stays the dense one (bench_tags.py)
        self._bags = None
        if int(torch.count_nonzero(x)) < sparse_below * x.numel():
            nz = x.nonzero()  # row-major: rows ascending
            self._bags = (nz[:, 1], torch.searchsorted(nz[:, 0].contiguous(), torch.arange(
                x.shape[0], device=x.device)), x[nz[:, 0], nz[:, 1]])
        self._refresh_cost = x.shape[0] * d * h  # multiply-adds of a dense X W^T
        self._refresh()

    def _refresh(self) -> None:
        w = self.weight.detach()
        if self._bags is None:
            self.z = self.x @ w.T  # (n, h)
        else:
            cols, offsets, values = self._bags
            self.z = F.embedding_bag(cols, w.T.contiguous(), offsets, mode="sum",
                                     per_sample_weights=values)
        self.scale, self.rank, self.spent = 1.0, 0, 0

    def rows(self, idx: torch.Tensor) -> torch.Tensor:
        """Pre-activations :math:`W_t x_i` (no bias) of items ``idx``, shape ``(m, h)``."""
        z, r = self.z[idx], self.rank
        if r:
            z = z.addmm_(self.x[idx] @ self.v[:r].T, self.u[:r])
            # small m is bound by reading U and V: count it as 16 rows
            self.spent += max(len(idx), 16) * r * (self.u.shape[1] + self.v.shape[1])
        return z.mul_(self.scale)

    def step(self, idx: torch.Tensor, grad: torch.Tensor, lr: float, wd: float) -> None:
        """One SGD step: ``grad`` is dL/d(pre-activation) of the rows ``idx`` (``(m, h)``)."""
        r, m = self.rank, len(idx)
        if r + m > self.u.shape[0] or self.spent >= self._refresh_cost:
            self.materialise()
            if m > self.u.shape[0]:  # more rows than the rank budget: a dense update
                with torch.no_grad():
                    self.weight.mul_(1.0 - lr * wd).addmm_(grad.T, self.x[idx], alpha=-lr)
            self._refresh()
            if m > self.u.shape[0]:
                return
            r = 0
        self.scale *= 1.0 - lr * wd
        torch.mul(grad, -lr / self.scale, out=self.u[r:r + m])
        self.v[r:r + m] = self.x[idx]
        self.rank += m

    @torch.no_grad()
    def materialise(self) -> None:
        """Write :math:`W_t` into the layer's weight (in place)."""
        w, r = self.weight, self.rank
        if r:
            w.addmm_(self.u[:r].T, self.v[:r], beta=self.scale, alpha=self.scale)
        elif self.scale != 1.0:
            w.mul_(self.scale)
        self.scale, self.rank = 1.0, 0

    def close(self) -> None:
        """Materialise the weight and free the caches."""
        self.materialise()
        del self.z, self.u, self.v
