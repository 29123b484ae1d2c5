"""Scores and losses of UGACH as pure functions (no state, no modules).

Notation (chapters 4-6): ``h_q`` the relaxed code of a query, ``h_x`` of a candidate of the
other modality, :math:`d(q, x) = \\lVert h(q) - h(x) \\rVert^2`, ``x_M`` a manifold pair from
the correlation graph, ``x_G`` an item picked by the generator, ``m`` the margin.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def sq_dist(h_q: torch.Tensor, h_x: torch.Tensor) -> torch.Tensor:
    """:math:`d(q, x) = \\lVert h(q) - h(x) \\rVert_2^2`.

    Shapes: ``h_q (B, l)`` with ``h_x (B, l)`` -> ``(B,)``; ``h_q (B, l)`` with
    ``h_x (B, N, l)`` -> ``(B, N)``. Chapter 4.
    """
    if h_x.ndim == h_q.ndim + 1:
        h_q = h_q.unsqueeze(-2)
    return ((h_q - h_x) ** 2).sum(-1)


def pairwise_sq_dist(h_q: torch.Tensor, h_x: torch.Tensor) -> torch.Tensor:
    """:math:`d(q, x) = \\lVert h(q)\\rVert^2 + \\lVert h(x)\\rVert^2 - 2\\, h(q)^\\top h(x)` for
    every query and item: ``h_q (B, l)``, ``h_x (N, l)`` -> ``(B, N)``.

    The same quantity as :func:`sq_dist` on a broadcast ``(B, N, l)`` difference, as one
    matrix product (no ``(B, N, l)`` intermediate); equal up to float round-off, clamped
    at 0 (codes in (0, 1) keep the cancellation error near ``l * 1e-7``). Chapter 4.
    """
    if h_q.ndim != 2 or h_x.ndim != 2 or h_q.shape[1] != h_x.shape[1]:
        raise ValueError(f"expected (B, l) and (N, l) codes, got {tuple(h_q.shape)} and "
                         f"{tuple(h_x.shape)}")
    d = (h_q * h_q).sum(1, keepdim=True) + (h_x * h_x).sum(1)[None, :] - 2.0 * (h_q @ h_x.T)
    return d.clamp_min(0.0)


def generator_log_probs(d: torch.Tensor, temperature: float = 1.0,
                        mask: torch.Tensor | None = None) -> torch.Tensor:
    """:math:`\\log p_\\theta(x|q) = -d(q,x)/T - \\log \\sum_{x' \\in \\text{pool}} e^{-d(q,x')/T}`.

    ``d (B, P)``: G's distances from each query to its pool; ``mask (B, P)`` bool, True
    where an item is excluded from the pool (its probability becomes 0).  Returns (B, P).
    The paper has :math:`T = 1`. Chapter 4.
    """
    logits = -d / temperature
    if mask is not None:
        logits = logits.masked_fill(mask, float("-inf"))
    return torch.log_softmax(logits, dim=-1)


def triplet_score(d_pos: torch.Tensor, d_neg: torch.Tensor, margin: float) -> torch.Tensor:
    """:math:`f_\\phi(x^G, q) = \\max(0,\\ m + d(q, x^M) - d(q, x^G))`.

    ``d_pos``: D's distance to the manifold pair, ``d_neg``: to the generated item; any
    matching shapes.  The paper has :math:`m = 1`; the authors' code uses
    :math:`\\beta = l / 8`. Chapter 5.
    """
    return F.relu(margin + d_pos - d_neg)


def discriminator_prob(f: torch.Tensor) -> torch.Tensor:
    """:math:`D(x^G | q) = \\sigma(f_\\phi(x^G, q))`: D's belief that ``x^G`` is a manifold pair
    (always >= 0.5 because :math:`f \\ge 0`). Chapter 5."""
    return torch.sigmoid(f)


def discriminator_loss(f: torch.Tensor, kind: str = "hinge") -> torch.Tensor:
    """D's loss on a batch of triplet scores ``f (B,)``.

    * ``"hinge"`` (authors' code): :math:`\\operatorname{mean} f_\\phi`.
    * ``"log"`` (paper's value function): D maximises :math:`\\log(1 - D(x^G|q))`, i.e.
      minimises :math:`-\\log(1 - \\sigma(f)) = \\operatorname{softplus}(f)`.  With the triplet
      score, the manifold term :math:`\\log D(x^M|q)` of :math:`V(G, D)` is folded into
      :math:`f` (its :math:`d(q, x^M)`). Chapter 5.
    """
    if kind == "hinge":
        return f.mean()
    if kind == "log":
        return F.softplus(f).mean()
    raise ValueError(f"kind must be 'hinge' or 'log', got {kind!r}")


def reward(f: torch.Tensor, kind: str = "sigmoid") -> torch.Tensor:
    """Reward of a generated item, from the (fixed) discriminator's score ``f``.

    * ``"sigmoid"`` (authors' code): :math:`r = \\sigma(f) \\in [0.5, 1)`.
    * ``"log"`` (paper): G minimises :math:`\\log(1 - D(x^G|q))`, i.e. maximises
      :math:`r = -\\log(1 - \\sigma(f)) = \\log(1 + e^{f})`. Chapter 6.
    """
    if kind == "sigmoid":
        return torch.sigmoid(f)
    if kind == "log":
        return F.softplus(f)
    raise ValueError(f"kind must be 'sigmoid' or 'log', got {kind!r}")


def band_score(f: torch.Tensor, margin: float) -> torch.Tensor:
    """The ``reward_band`` remedy: :math:`f' = f` for :math:`f \\le m`, :math:`2m - f`
    beyond, so a pick closer to the query than its manifold pair (a likely false
    negative) earns less than one at the manifold pair's distance.  Chapter 10."""
    return torch.where(f > margin, 2 * margin - f, f)


def reinforce_loss(log_p: torch.Tensor, r: torch.Tensor,
                   baseline: torch.Tensor | float | None = None) -> torch.Tensor:
    """REINFORCE surrogate whose gradient is the policy gradient.

    .. math::

        \\nabla_\\theta J = \\mathbb{E}_{x \\sim p_\\theta}[(r(x, q) - b)\\,
        \\nabla_\\theta \\log p_\\theta(x|q)]
        \\approx \\frac{1}{S}\\sum_s (r_s - b)\\, \\nabla_\\theta \\log p_\\theta(x_s|q)

    Returns :math:`-\\frac{1}{BS}\\sum_{b,s} (r_{bs} - b_b) \\log p_\\theta(x_{bs}|q_b)`
    (minimised): the per-query surrogate averaged over the batch.  The reward is a constant
    (no gradient flows into D).  ``log_p`` and ``r`` have the same shape, e.g. (B, S). Chapter 6.
    """
    adv = r.detach()
    if baseline is not None:
        adv = adv - (baseline.detach() if isinstance(baseline, torch.Tensor) else baseline)
    return -(log_p * adv).mean()
