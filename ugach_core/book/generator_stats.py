"""What the generator's policy does: mass, entropy, rewards and retrieval quality of G.

For a query :math:`q` of one modality and a candidate pool :math:`P_q` of the other, the
generator samples from

.. math::

    p_\\theta(x|q) = \\frac{e^{-d_\\theta(q, x)/T}}{\\sum_{x' \\in E_q} e^{-d_\\theta(q, x')/T}},
    \\quad x \\in E_q = P_q \\setminus N(q),

where :math:`N(q)` are the query's manifold pairs (the correlation graph's neighbour list,
``trainer.neighbors``), excluded from the pool as the trainer's default does (a pool made
only of manifold pairs falls back to the whole pool).  The measured policy is always this
one, with manifold pairs drawn by columns: the settings ``g_pool_mask=False`` (``paper``'s G
steps), ``positives="distinct"``, ``fn_guard`` and ``reward_band`` are not applied here.
This module measures, for a set of queries:

* the mass on manifold pairs of the policy *without* the exclusion (how far G has moved
  towards the graph's :math:`p_\\text{true}`), and on label-relevant items;
* the entropy of :math:`p_\\theta`, also divided by its maximum :math:`\\log |E_q|`;
* the rewards :math:`r = \\rho(f_\\phi(x^G, q))` that D gives to items drawn from the policy,
  and to items drawn uniformly from the same pools (the chance reference);
* MAP@all of G's own binary codes next to D's.

Every quantity comes with the value of a *uniform* policy over the same pools, so a plot can
draw chance.  :class:`GeneratorStatsLogger` is a callback that adds the summary to each
round's logs.  Derived in chapter 9 ("The generator's sampling behaviour").

Pools are drawn from the logger's own ``torch.Generator``: measuring never touches the
trainer's random stream, so a run with the logger gives the same codes as one without.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np
import torch

from .. import sampling
from ..callbacks import Callback
from ..losses import generator_log_probs, pairwise_sq_dist, reward, sq_dist, triplet_score
from ..selection import DIRECTIONS
from ..selection import retrieval_map as selection_map
from ..viz import COLORS, DIRECTION_COLORS

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes

    from ..model import CrossModalHashNet
    from ..train import Trainer

#: Keys that :meth:`GeneratorStats.summary` (and so :class:`GeneratorStatsLogger`) writes.
SUMMARY_KEYS: tuple[str, ...] = (
    "mass_manifold", "mass_manifold_chance", "mass_relevant", "mass_relevant_chance",
    "entropy", "entropy_max", "entropy_norm", "reward_mean", "reward_q10", "reward_q50",
    "reward_q90", "reward_uniform_mean", "reward_gap", "f_zero", "f_zero_uniform")


# ------------------------------------------------------------------------ pure functions
def label_relevance(labels_q: np.ndarray | torch.Tensor, labels_items: np.ndarray | torch.Tensor
                    ) -> torch.Tensor:
    """:math:`\\mathrm{rel}(q, x) = \\mathbb{1}[\\ell_q^\\top \\ell_x > 0]`: the query and the
    item share at least one label.

    ``labels_q (B, c)`` and ``labels_items (B, P, c)`` multi-hot -> ``(B, P)`` bool.
    """
    lq = torch.as_tensor(np.asarray(labels_q) if not torch.is_tensor(labels_q) else labels_q) > 0
    lx = torch.as_tensor(np.asarray(labels_items) if not torch.is_tensor(labels_items)
                         else labels_items) > 0
    if lq.ndim != 2 or lx.ndim != 3 or lx.shape[0] != lq.shape[0] or lx.shape[2] != lq.shape[1]:
        raise ValueError(f"expected labels (B, c) and (B, P, c), got {tuple(lq.shape)} and "
                         f"{tuple(lx.shape)}")
    return (lq[:, None, :] & lx).any(-1)


def pool_mass(p: torch.Tensor, member: torch.Tensor) -> torch.Tensor:
    """Probability mass of the policy on a subset of each pool.

    .. math::

        M_A(q) = \\sum_{x \\in P_q} p_\\theta(x|q)\\, \\mathbb{1}[x \\in A_q]

    ``p (B, P)`` probabilities (rows sum to 1), ``member (B, P)`` bool -> ``(B,)``.
    """
    if p.shape != member.shape:
        raise ValueError(f"p and member must have the same shape, got {tuple(p.shape)} and "
                         f"{tuple(member.shape)}")
    return (p * member.to(p.dtype)).sum(-1)


def uniform_mass(member: torch.Tensor, excluded: torch.Tensor | None = None) -> torch.Tensor:
    """:math:`M_A` of the uniform policy over the eligible items :math:`E_q` (the chance line).

    .. math::

        M_A^\\text{unif}(q) = \\frac{|A_q \\cap E_q|}{|E_q|}

    ``member (B, P)`` bool; ``excluded (B, P)`` bool or None (then :math:`E_q = P_q`).
    Returns ``(B,)`` float.
    """
    eligible = torch.ones_like(member) if excluded is None else ~excluded
    n_e = eligible.sum(-1).clamp_min(1)
    return (member & eligible).sum(-1).double() / n_e.double()


def policy_entropy(log_p: torch.Tensor) -> torch.Tensor:
    """Entropy of each row of a policy given as log-probabilities.

    .. math::

        H(p_\\theta(\\cdot|q)) = -\\sum_{x} p_\\theta(x|q) \\log p_\\theta(x|q)

    (terms with :math:`p = 0`, e.g. excluded items with :math:`\\log p = -\\infty`, count 0).
    ``log_p (B, P)`` -> ``(B,)``; at most :math:`\\log` of the number of items with
    :math:`p > 0`, reached by the uniform policy.
    """
    p = log_p.exp()
    return -torch.where(p > 0, p * log_p, torch.zeros_like(log_p)).sum(-1)


# --------------------------------------------------------------------- per-query snapshot
@dataclass
class DirectionStats:
    """Per-query measurements of one retrieval direction (all arrays have ``B`` rows).

    ``mass_manifold``: :math:`M_{N(q)}` of the policy over the whole pool (no exclusion);
    ``mass_relevant``: :math:`M_{\\mathrm{rel}}` of the sampling policy (manifold pairs
    excluded); ``*_chance``: the same for the uniform policy; ``entropy`` and
    ``entropy_max = log |E_q|`` of the sampling policy; ``reward`` / ``f`` ``(B, S)``:
    D's reward and triplet score of the policy's draws; ``reward_uniform`` / ``f_uniform``
    of uniform draws from :math:`E_q` (same manifold pairs).
    """

    mass_manifold: np.ndarray
    mass_manifold_chance: np.ndarray
    mass_relevant: np.ndarray
    mass_relevant_chance: np.ndarray
    entropy: np.ndarray
    entropy_max: np.ndarray
    f: np.ndarray
    reward: np.ndarray
    f_uniform: np.ndarray
    reward_uniform: np.ndarray


@dataclass
class GeneratorStats:
    """Measurements of G's policy for both directions (``per_direction["i2t"|"t2i"]``)."""

    per_direction: dict[str, DirectionStats] = field(default_factory=dict)

    def summary(self, prefix: str = "") -> dict[str, float]:
        """Means over queries and both directions, as plain floats (``SUMMARY_KEYS``).

        ``entropy_norm`` is the mean of :math:`H / \\log |E_q|`; ``reward_q10/50/90`` are
        quantiles of the rewards of all draws; ``reward_gap`` is
        ``reward_mean - reward_uniform_mean``; ``f_zero`` (``f_zero_uniform``) is the
        fraction of the policy's (uniform) draws with :math:`f_\\phi = 0`: beyond the
        margin, rejected outright by D, reward :math:`\\rho(0)`.
        """
        if not self.per_direction:
            raise ValueError("no directions measured")
        cat = lambda name: np.concatenate([np.ravel(getattr(s, name))  # noqa: E731
                                           for s in self.per_direction.values()])
        ent, ent_max = cat("entropy"), cat("entropy_max")
        r = cat("reward")
        out = {
            "mass_manifold": cat("mass_manifold").mean(),
            "mass_manifold_chance": cat("mass_manifold_chance").mean(),
            "mass_relevant": cat("mass_relevant").mean(),
            "mass_relevant_chance": cat("mass_relevant_chance").mean(),
            "entropy": ent.mean(), "entropy_max": ent_max.mean(),
            "entropy_norm": np.mean(np.divide(ent, ent_max, out=np.ones_like(ent),
                                              where=ent_max > 0)),
            "reward_mean": r.mean(), "reward_q10": np.quantile(r, 0.1),
            "reward_q50": np.quantile(r, 0.5), "reward_q90": np.quantile(r, 0.9),
            "reward_uniform_mean": cat("reward_uniform").mean(),
        }
        out["reward_gap"] = out["reward_mean"] - out["reward_uniform_mean"]
        out["f_zero"] = (cat("f") == 0).mean()  # draws that D rejects outright (f = 0)
        out["f_zero_uniform"] = (cat("f_uniform") == 0).mean()
        return {prefix + k: float(out[k]) for k in SUMMARY_KEYS}


@torch.no_grad()
def direction_stats(trainer: "Trainer", queries: torch.Tensor, qm: str, xm: str,
                    pools: torch.Tensor, n_samples: int,
                    generator: torch.Generator | None = None) -> DirectionStats:
    """Measure G's policy for queries ``queries (B,)`` of modality ``qm`` over ``pools (B, P)``
    of modality ``xm`` (local indices into ``trainer.fit_idx``).

    Policy: :func:`ugach_core.losses.generator_log_probs` of G's distances
    :math:`d_\\theta(q, x) = \\lVert h_\\theta(q) - h_\\theta(x) \\rVert^2`; draws
    :math:`x^G \\sim p_\\theta` and uniform draws from :math:`E_q`, each paired with a random
    manifold pair :math:`x^M`, scored with D's relaxed codes:
    :math:`r = \\rho(f_\\phi) = \\rho(\\max(0, m + d_\\phi(q, x^M) - d_\\phi(q, x^G)))`,
    :math:`\\rho` = ``reward(., cfg.reward)``.
    """
    cfg, dev = trainer.cfg, trainer.device
    q, pool = queries.to(dev), pools.to(dev)
    member = sampling.membership(pool, trainer.neighbors[q])  # x in N(q)
    excluded = sampling.exclusion_mask(pool, trainer.neighbors[q])
    lab = trainer.data.labels[trainer.fit_idx]
    q_np, pool_np = q.cpu().numpy(), pool.cpu().numpy()
    rel = label_relevance(lab[q_np], lab[pool_np]).to(dev)  # shares a label with q

    # every item of the pools' modality is encoded once, pools are gathered from it
    h_g = trainer.relaxed_codes(trainer.generator)  # h_theta of every training item
    h_q, h_x = h_g[qm][q], h_g[xm]  # (B, l), (n_fit, l)
    d = pairwise_sq_dist(h_q, h_x).gather(1, pool)  # d_theta(q, x) over the pools, (B, P)
    log_p_all = generator_log_probs(d, cfg.temperature)  # no exclusion
    log_p = generator_log_probs(d, cfg.temperature, excluded)  # the sampling policy

    cols_g = sampling.draw(log_p, n_samples, generator)
    cols_u = sampling.uniform_draw(excluded, n_samples, generator)
    x_M = sampling.positives(trainer.neighbors, q, n_samples, generator)  # (B, S)

    h_d = trainer.relaxed_codes(trainer.discriminator)  # h_phi of every training item
    hq_d, hx_d = h_d[qm][q], h_d[xm]

    def d_phi(items: torch.Tensor) -> torch.Tensor:  # d_phi(q, x), (B, S)
        return sq_dist(hq_d, hx_d[items])

    d_pos = d_phi(x_M)
    f_g = triplet_score(d_pos, d_phi(pool.gather(1, cols_g)), cfg.margin)
    f_u = triplet_score(d_pos, d_phi(pool.gather(1, cols_u)), cfg.margin)
    n_eligible = (~excluded).sum(1).double()
    np_ = lambda t: t.detach().double().cpu().numpy()  # noqa: E731
    return DirectionStats(
        mass_manifold=np_(pool_mass(log_p_all.exp(), member)),
        mass_manifold_chance=np_(uniform_mass(member)),
        mass_relevant=np_(pool_mass(log_p.exp(), rel)),
        mass_relevant_chance=np_(uniform_mass(rel, excluded)),
        entropy=np_(policy_entropy(log_p)),
        entropy_max=np_(torch.log(n_eligible)),
        f=np_(f_g), reward=np_(reward(f_g, cfg.reward)), f_uniform=np_(f_u),
        reward_uniform=np_(reward(f_u, cfg.reward)))


def query_subset(n_items: int, n_queries: int | None, seed: int = 0) -> torch.Tensor:
    """A fixed, sorted random subset of ``n_queries`` local query indices (all when None)."""
    if n_queries is None or n_queries >= n_items:
        return torch.arange(n_items)
    if n_queries < 1:
        raise ValueError(f"n_queries must be >= 1 or None, got {n_queries}")
    g = torch.Generator().manual_seed(seed)
    return torch.randperm(n_items, generator=g)[:n_queries].sort().values


def generator_policy_stats(trainer: "Trainer", n_queries: int | None = 512,
                           n_samples: int | None = None, pool_size: int | None = None,
                           seed: int = 0) -> GeneratorStats:
    """:func:`direction_stats` for both directions on a seeded query subset.

    ``n_queries``: queries per direction (None: every training item); ``n_samples``: draws
    per query (default ``cfg.n_samples``); ``pool_size``: default the trainer's pool size.
    The same ``seed`` gives the same queries, pools and draws' random numbers, so calls on
    successive rounds compare like with like.
    """
    n = len(trainer.fit_idx)
    p = trainer.pool_size if pool_size is None else pool_size
    s = trainer.cfg.n_samples if n_samples is None else n_samples
    gen = torch.Generator().manual_seed(seed)
    q = query_subset(n, n_queries, seed)
    out = GeneratorStats()
    for key, (qm, xm) in DIRECTIONS.items():
        pools = sampling.random_pools(n, p, len(q), gen)
        out.per_direction[key] = direction_stats(trainer, q, qm, xm, pools, s, gen)
    return out


def retrieval_map(model: "CrossModalHashNet", trainer: "Trainer", split: str = "val",
                  topk: int | None = None) -> dict[str, float]:
    """MAP of ``model``'s binary codes (G or D), both directions and their mean.

    ``split="val"``: queries = the validation pairs, database = the training pairs fitted
    on (as :meth:`Trainer.validate`); ``split="test"``: the data set's query / database
    protocol (as :meth:`Trainer.evaluate`).  Returns ``{"i2t", "t2i", "mean"}``, MAP@all
    (:func:`ugach_core.metrics.mean_average_precision`) unless ``topk``.
    """
    if split == "val":
        q_idx, db_idx = trainer.val_idx, trainer.fit_idx
    elif split == "test":
        q_idx, db_idx = trainer.data.query_idx, trainer.data.db_idx
    else:
        raise ValueError(f"split must be 'val' or 'test', got {split!r}")
    if len(q_idx) == 0:
        raise ValueError(f"the {split!r} split has no queries")
    return selection_map(model, trainer.features, trainer.data.labels, q_idx, db_idx, topk)


# ------------------------------------------------------------------------------ callback
class GeneratorStatsLogger(Callback):
    """Adds G's policy statistics and G's / D's MAP to each round's logs.

    Keys (with ``prefix``, default ``"gen_"``): every name of :data:`SUMMARY_KEYS`, plus
    ``map_G``, ``map_D`` (mean of both directions) and ``map_G_i2t`` ... ``map_D_t2i`` on
    ``split``.  Round 0 (D after pretraining, G untouched) is measured too.  The draws of
    each measured round are kept in :attr:`records` (``{round: GeneratorStats}``) for
    histograms.  The logger uses its own random generator (seeded with ``seed`` at every
    round: the same queries and pools each round), never the trainer's.
    """

    def __init__(self, n_queries: int | None = 512, n_samples: int | None = None,
                 split: str = "val", every: int = 1, seed: int = 0, prefix: str = "gen_",
                 keep_records: bool = True):
        if every < 1:
            raise ValueError(f"every must be >= 1, got {every}")
        self.n_queries, self.n_samples, self.split = n_queries, n_samples, split
        self.every, self.seed, self.prefix, self.keep_records = every, seed, prefix, keep_records
        self.records: dict[int, GeneratorStats] = {}

    def on_round_end(self, trainer: "Trainer", logs: dict[str, Any]) -> None:
        r = logs["round"]
        if r % self.every and r != trainer.cfg.rounds:
            return
        stats = generator_policy_stats(trainer, self.n_queries, self.n_samples, seed=self.seed)
        logs.update(stats.summary(self.prefix))
        for name, model in (("G", trainer.generator), ("D", trainer.discriminator)):
            m = retrieval_map(model, trainer, self.split)
            logs[f"{self.prefix}map_{name}"] = m["mean"]
            logs[f"{self.prefix}map_{name}_i2t"] = m["i2t"]
            logs[f"{self.prefix}map_{name}_t2i"] = m["t2i"]
        if self.keep_records:
            self.records[r] = stats


def negative_label_share(trainer: "Trainer") -> dict[str, float]:
    """What D is handed in the next round, judged by the labels (never used in training):
    the share of its negatives :math:`x^G` and of its positives :math:`x^M` that share a
    label with their query, and the chance level (two random training items).

    .. math:: s^G = \\frac{1}{|T|} \\sum_{(q, x^M, x^G) \\in T}
              \\mathbb{1}[\\ell_q^\\top \\ell_{x^G} > 0]

    over the triplets :math:`T` of :meth:`~ugach_core.train.Trainer.sample_triplets` (both
    directions).  A negative that shares the query's label is a *false negative*: D is
    taught to push a relevant item away.  The authors' code prints the same quantity for
    G's picks as "Pos sample ratio".  The trainer's random stream is restored afterwards,
    so training is unchanged."""
    state = trainer.rng.get_state()
    try:
        triplets = trainer.sample_triplets()
    finally:
        trainer.rng.set_state(state)
    lab = torch.as_tensor(trainer.data.labels[trainer.fit_idx] > 0)
    q, pos, neg = (torch.cat([t[i].cpu() for t in triplets.values()]) for i in range(3))
    share = lambda x: float((lab[q] & lab[x]).any(-1).double().mean())  # noqa: E731
    n, lf, hits = len(lab), lab.float(), 0.0
    for s in range(0, n, 1024):  # pairs that share a label, 1024 rows at a time
        hits += float((lf[s:s + 1024] @ lf.T > 0).double().sum())
    chance = (hits - float(lab.any(-1).double().sum())) / (n * (n - 1))  # not x with x
    return {"neg_relevant": share(neg), "pos_relevant": share(pos),
            "relevant_chance": chance}


class NegativeLabelLogger(Callback):
    """Adds :func:`negative_label_share` to the logs of every round (``neg_relevant``,
    ``pos_relevant``, ``relevant_chance``; round 0: the negatives the pretrained D would
    get from the untrained G)."""

    def on_round_end(self, trainer: "Trainer", logs: dict[str, Any]) -> None:
        logs.update(negative_label_share(trainer))


# ---------------------------------------------------------------------------------- plots
def _rows(history: Sequence[Mapping[str, Any]], key: str) -> tuple[list[int], list[float]]:
    pts = [(h["round"], h[key]) for h in history
           if h.get("stage") != "pretrain" and "round" in h and h.get(key) is not None]
    return ([p[0] for p in pts], [p[1] for p in pts]) if pts else ([], [])


def plot_policy_mass(history: Sequence[Mapping[str, Any]], ax: "Axes | None" = None,
                     prefix: str = "gen_", sets: Sequence[str] = ("manifold", "relevant")
                     ) -> "Axes":
    """Mass of :math:`p_\\theta` on manifold pairs and/or on label-relevant items per round
    (solid), with the uniform policy's value (dotted, same colour) as the chance line.

    ``sets``: any of ``"manifold"``, ``"relevant"`` (the two differ by a factor of about
    20 on Wikipedia; one axis each reads better)."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    known = {"manifold": ("mass_manifold", COLORS["manifold"], "on manifold pairs"),
             "relevant": ("mass_relevant", COLORS["generator"], "on label-relevant items")}
    bad = [x for x in sets if x not in known]
    if bad:
        raise ValueError(f"sets must be among {sorted(known)}, got {bad}")
    if ax is None:
        _, ax = plt.subplots()
    for key, color, label in (known[x] for x in sets):
        r, v = _rows(history, prefix + key)
        rc, vc = _rows(history, prefix + key + "_chance")
        if r:
            ax.plot(r, v, marker="o", color=color, label=label)
        if rc:
            ax.plot(rc, vc, linestyle=":", color=color, linewidth=1.5, label=label + ", uniform")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("adversarial round (0 = after pretraining)")
    ax.set_ylabel(r"mass of $p_\theta(x|q)$")
    if ax.get_legend_handles_labels()[0]:
        ax.legend()
    return ax


def plot_map_g_vs_d(history: Sequence[Mapping[str, Any]], ax: "Axes | None" = None,
                    prefix: str = "gen_") -> "Axes":
    """MAP@all of G's codes (dashed, squares) and D's codes (solid, circles) per round, per
    direction (coloured by query modality)."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    if ax is None:
        _, ax = plt.subplots()
    names = {"i2t": "image->text", "t2i": "text->image"}
    for net, style, marker in (("D", "-", "o"), ("G", "--", "s")):
        for d in ("i2t", "t2i"):
            r, v = _rows(history, f"{prefix}map_{net}_{d}")
            if r:
                ax.plot(r, v, style, marker=marker, color=DIRECTION_COLORS[d],
                        label=f"{net}, {names[d]}")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("adversarial round (0 = after pretraining)")
    ax.set_ylabel("MAP@all")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(ncol=2)
    return ax


def plot_reward_hist(stats: GeneratorStats, ax: "Axes | None" = None, bins: int = 40,
                     title: str | None = None) -> "Axes":
    """Histogram of D's rewards for the policy's draws (``COLORS["generator"]``) and for
    uniform draws from the same pools (``COLORS["baseline"]``), both directions pooled."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots()
    r = np.concatenate([s.reward.ravel() for s in stats.per_direction.values()])
    u = np.concatenate([s.reward_uniform.ravel() for s in stats.per_direction.values()])
    lo, hi = min(r.min(), u.min()), max(r.max(), u.max())
    edges = np.linspace(lo, hi if hi > lo else lo + 1e-6, bins + 1)
    ax.hist(u, bins=edges, color=COLORS["baseline"], alpha=0.6, label="uniform draws")
    ax.hist(r, bins=edges, histtype="step", linewidth=2, color=COLORS["generator"],
            label=r"draws $x^G \sim p_\theta$")
    ax.set_yscale("log")
    ax.set_xlabel("reward from D")
    ax.set_ylabel("draws (log scale)")
    if title:
        ax.set_title(title)
    ax.legend()
    return ax


def entropy_uniform(n: int) -> float:
    """:math:`\\log n`, the entropy of the uniform policy over ``n`` items."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    return math.log(n)


__all__ = ["DirectionStats", "GeneratorStats", "GeneratorStatsLogger", "NegativeLabelLogger",
           "SUMMARY_KEYS", "direction_stats", "entropy_uniform",
           "generator_policy_stats", "label_relevance", "negative_label_share", "plot_map_g_vs_d",
           "plot_policy_mass", "plot_reward_hist", "policy_entropy", "pool_mass",
           "query_subset", "retrieval_map", "uniform_mass"]
