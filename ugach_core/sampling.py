"""Every random draw of UGACH, as pure functions of a passed ``torch.Generator``.

The trainer, the generator statistics and the chapters call these functions, so a rule
(which pool, which items are excluded, how positives and negatives are drawn) is written
once.  Draws happen on the CPU generator and are moved to the device of the indices they
gather from, so a run is reproducible for a given seed whatever the device.

Derived in chapters 3 (positives), 4 (pools, exclusion, draws from :math:`p_\\theta`) and
10 (uniform negatives) of the book.
"""

from __future__ import annotations

import torch


def batches(n: int, size: int, gen: torch.Generator,
            device: torch.device | str = "cpu") -> list[torch.Tensor]:
    """A random permutation of ``range(n)`` cut into batches of ``size``. Chapter 7."""
    perm = torch.randperm(n, generator=gen).to(device)
    return [perm[s:s + size] for s in range(0, n, size)]


def query_batches(n: int, per_query: int, size: int, gen: torch.Generator,
                  device: torch.device | str = "cpu") -> list[torch.Tensor]:
    """Batches of query-major triplets (query ``i`` owns rows ``i * S .. i * S + S - 1``,
    ``S = per_query``) that keep each query's triplets together: a random permutation of
    the ``n`` queries cut into groups of ``max(1, size // S)`` queries. Chapter 7."""
    offsets = torch.arange(per_query, device=device)
    return [(b[:, None] * per_query + offsets).reshape(-1)
            for b in batches(n, max(1, size // per_query), gen, device)]


def random_pools(n: int, size: int, b: int, gen: torch.Generator,
                 device: torch.device | str = "cpu") -> torch.Tensor:
    """``(b, size)`` candidate pools :math:`P_q`: uniform subsets of ``range(n)`` without
    replacement within a pool (every item, in order, when ``size == n``).  Chapter 4."""
    if not 1 <= size <= n:
        raise ValueError(f"pool size must be in [1, {n}], got {size}")
    if size == n:
        return torch.arange(n, device=device).expand(b, n).contiguous()
    return torch.rand(b, n, generator=gen).topk(size, dim=1).indices.to(device)


def membership(pool: torch.Tensor, sets: torch.Tensor) -> torch.Tensor:
    """:math:`\\mathbb{1}[x_{bj} \\in A_b]` for ``pool (B, P)`` and ``sets (B, k)`` item
    indices (a set may list an item twice); returns ``(B, P)`` bool. Chapter 4."""
    if pool.ndim != 2 or sets.ndim != 2 or pool.shape[0] != sets.shape[0]:
        raise ValueError(f"expected pool (B, P) and sets (B, k) with the same B, got "
                         f"{tuple(pool.shape)} and {tuple(sets.shape)}")
    return (pool[:, :, None] == sets[:, None, :]).any(-1)


def exclusion_mask(pool: torch.Tensor, neighbors_q: torch.Tensor,
                   also: torch.Tensor | None = None) -> torch.Tensor:
    """True where a pool item is a manifold pair of its query, :math:`x \\in N(q)` (or
    flagged in ``also``): the authors reject such draws, so the eligible set is
    :math:`E_q = P_q \\setminus N(q)`.  A row with nothing left is left whole (all
    False).  Chapter 4."""
    member = membership(pool, neighbors_q) if also is None else \
        membership(pool, neighbors_q) | also
    return member & ~member.all(1, keepdim=True)


def nearest(d_pool: torch.Tensor, d_all: torch.Tensor, k: int) -> torch.Tensor:
    """True where a pool item is among the ``k`` nearest of all items to its query:
    ``d_pool (b, P)`` distances to the pool, ``d_all (b, n)`` to every item (the
    ``fn_guard`` remedy keeps D's negatives out of D's own top-k). Chapter 9."""
    return d_pool <= d_all.kthvalue(min(k, d_all.shape[1]), dim=1, keepdim=True).values


def positives(neighbors: torch.Tensor, q: torch.Tensor, s: int, gen: torch.Generator,
              distinct: bool = False) -> torch.Tensor:
    """``(b, s)`` manifold pairs :math:`x^M \\sim p_\\text{true}(x|q)` of queries ``q``
    from the neighbour lists ``neighbors[q] (b, k)``.  Chapter 3.

    ``distinct=False``: uniform over the ``k`` columns, with replacement (an item listed
    twice, such as the query itself, found in both modalities, is twice as likely).
    ``distinct=True``, the authors' code: each listed item once, the ``s`` drawn without
    replacement (a row of fewer than ``s`` distinct items repeats them in turn)."""
    nb = neighbors[q]
    if not distinct:
        cols = torch.randint(nb.shape[1], (len(q), s), generator=gen).to(nb.device)
        return nb.gather(1, cols)
    k = nb.shape[1]
    earlier = torch.ones(k, k, dtype=torch.bool, device=nb.device).tril(-1)
    repeat = ((nb[:, :, None] == nb[:, None, :]) & earlier).any(2)  # listed before
    keys = torch.rand(len(q), k, generator=gen).to(nb.device) + repeat  # repeats last
    order = keys.argsort(1)
    take = torch.arange(s, device=nb.device) % (~repeat).sum(1, keepdim=True)
    return nb.gather(1, order.gather(1, take))


def draw(log_p: torch.Tensor, s: int, gen: torch.Generator) -> torch.Tensor:
    """``(B, s)`` columns drawn with replacement from each row of ``exp(log_p) (B, P)``:
    :math:`x \\sim p_\\theta(x|q)` over a pool.  Chapter 4."""
    return torch.multinomial(log_p.exp().cpu(), s, replacement=True,
                             generator=gen).to(log_p.device)


def uniform_draw(excluded: torch.Tensor, s: int, gen: torch.Generator) -> torch.Tensor:
    """``(B, s)`` columns uniform over the eligible pool items,
    :math:`x \\sim \\mathcal{U}(P_q \\setminus N(q))` (``excluded (B, P)`` bool, from
    :func:`exclusion_mask`).  The "no GAN" negatives of chapter 10."""
    weights = (~excluded).float().cpu()
    return torch.multinomial(weights, s, replacement=True, generator=gen).to(excluded.device)


def other_items(q: torch.Tensor, n: int, gen: torch.Generator) -> torch.Tensor:
    """One uniformly random item other than each query, :math:`x^- \\ne q`: the negatives
    of pretraining (eq-pretrain, chapter 7; used in chapter 5)."""
    return (q + torch.randint(n - 1, (len(q),), generator=gen).to(q.device) + 1) % n


__all__ = ["batches", "draw", "exclusion_mask", "membership", "nearest", "other_items", "positives",
           "random_pools", "uniform_draw"]
