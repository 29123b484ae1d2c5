"""The UGACH trainer: Algorithm 1 of the paper (chapters 6 and 7).

:meth:`Trainer.fit` pretrains D on the pairing, then runs adversarial rounds:

1. **G samples D's negatives**: per query :math:`q` (each modality in turn) a fresh pool
   :math:`P_q`, :math:`x^G \\sim p_\\theta(x|q)` over :math:`P_q \\setminus N(q)`, each
   paired with a manifold pair :math:`x^M \\sim p_\\text{true}(x|q)`.
2. **D epoch** (:meth:`Trainer.d_step`) on the triplets :math:`(q, x^M, x^G)`.
3. **Validation**: MAP@all of D's codes on held-out training pairs; the best D is kept.
4. **G epochs** (:meth:`Trainer.g_step`): :math:`x^G \\sim p_\\theta`, reward from D,
   REINFORCE.

Speed paths, each behind one method: G's codes of every training item once per sampling
pass, D's codes once per G phase (each net is fixed meanwhile), and one fresh pool shared
by the queries of a G step (a uniform random subset for each, so the expected gradient is
unchanged; one query per step, the authors' schedule, is a fresh pool per query).  Every
draw goes through :mod:`ugach_core.sampling` and one checkpointed ``torch.Generator``
(:attr:`Trainer.rng`): a resumed run ends with the codes of an uninterrupted one.  NaN/inf
is looked for once per stage: a :class:`DivergenceError` names the round and the stage.
"""

from __future__ import annotations

import contextlib
import copy
import math
import time
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np
import torch
from tqdm.auto import tqdm

from . import __version__, sampling
from .callbacks import Callback
from .checkpoint import CheckpointError, data_fingerprint, read_checkpoint
from .config import UGACHConfig
from .deferred import DeferredLinear
from .data import CrossModalDataset
from .graph import manifold_neighbors
from .losses import (band_score, discriminator_loss, generator_log_probs, pairwise_sq_dist,
                     reinforce_loss, reward, sq_dist, triplet_score)
from .model import CrossModalHashNet, Discriminator, Generator, input_norm
from .retrieval import encode
from .selection import DIRECTIONS, BestState, retrieval_map
from .utils import atomic_write, get_device, reuse_freed_memory, seed_everything

Triplets = dict[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor]]


class DivergenceError(RuntimeError):
    """Training produced NaN/inf (a loss, a reward or a weight); the message names the
    round and the stage (``pretraining``, ``D step``, ``G step``). Chapter 7."""


_STAGE_LR = {"pretraining": "pretrain_lr", "D step": "d_lr", "G step": "g_lr"}
_NETS = {"G": "generator", "D": "discriminator"}  # the paper's names of the attributes


class Trainer:
    """Trains UGACH on ``data`` with configuration ``cfg`` (chapters 6 and 7).

    Public state: :attr:`generator`, :attr:`discriminator` (G and D), :attr:`features`
    (every item, on the device), :attr:`train_features` (the pairs D and G are fitted on,
    local indices), :attr:`neighbors` (the correlation graph, ``(n_fit, k)`` local
    indices), :attr:`rng` (the one random stream), :attr:`round`, :attr:`history`, :attr:`best`.

    >>> trainer = Trainer(smoke(16), load("synthetic"), seed=0)   # doctest: +SKIP
    >>> history = trainer.fit()
    >>> trainer.evaluate()["map_i2t"]
    """

    def __init__(self, cfg: UGACHConfig, data: CrossModalDataset, seed: int = 0,
                 device: str | torch.device | None = None,
                 callbacks: Iterable[Callback] = (), progress: bool = True,
                 neighbors: np.ndarray | None = None):
        self.cfg, self.data, self.seed = cfg, data, seed
        self.device = get_device(device)
        self.callbacks = list(callbacks)
        self.progress = progress
        seed_everything(seed)
        self.rng = torch.Generator().manual_seed(seed)
        self.fit_idx, self.val_idx = data.split_validation(cfg.val_fraction, seed)
        if len(self.fit_idx) < 2:
            raise ValueError(f"need at least 2 training pairs, got {len(self.fit_idx)}")
        self.features = {"img": torch.as_tensor(data.img, device=self.device),
                         "txt": torch.as_tensor(data.txt, device=self.device)}
        fit_t = torch.as_tensor(self.fit_idx, device=self.device)
        self.train_features = {m: x[fit_t] for m, x in self.features.items()}
        if neighbors is None:
            neighbors = manifold_neighbors(data.img[self.fit_idx], data.txt[self.fit_idx],
                                           cfg.k_img, cfg.k_txt, cfg.graph_metric,
                                           device=self.device)
        neighbors = np.asarray(neighbors)
        if neighbors.shape[0] != len(self.fit_idx) or neighbors.min() < 0 or \
                neighbors.max() >= len(self.fit_idx):
            raise ValueError(f"neighbour list must be (n_fit={len(self.fit_idx)}, k) with "
                             f"indices into the training pairs; got shape {neighbors.shape}")
        self.neighbors = torch.as_tensor(neighbors, dtype=torch.long, device=self.device)
        d_img, d_txt = data.dims
        self.generator = Generator(d_img, d_txt, cfg.bits, cfg.hidden, cfg.init_std).to(self.device)
        self.discriminator = Discriminator(d_img, d_txt, cfg.bits, cfg.hidden,
                                           cfg.init_std).to(self.device)
        if cfg.feature_norm != "none":
            for m, x in self.train_features.items():
                for net in (self.generator, self.discriminator):
                    net.net(m).set_input_norm(*input_norm(x, m, cfg.feature_norm))
        self.opt_pre = self._optimizer(self.discriminator, cfg.pretrain_lr)
        self.opt_d = self._optimizer(self.discriminator, cfg.d_lr)
        self.opt_g = self._optimizer(self.generator, cfg.g_lr)
        n = len(self.fit_idx)
        self.pool_size = min(n, max(cfg.pool_min, int(round(cfg.pool_fraction * n))))
        self.round = -1  # -1: not pretrained; 0: pretrained; r: r adversarial rounds done
        self.history: list[dict[str, Any]] = []
        self.best = BestState()  # the validation-selected D of round 0 .. round
        self._fingerprint: str | None = None
        # first_layer="deferred": the net whose first layers are deferred in this stage
        self._deferred: tuple[CrossModalHashNet | None, dict[str, DeferredLinear]] = (None, {})
        self._pending: list[tuple[DeferredLinear, torch.Tensor, torch.Tensor]] = []

    # ------------------------------------------------------------------- Algorithm 1
    @reuse_freed_memory()  # a step's large tensors reuse the last step's memory
    def fit(self, time_limit: float | None = None) -> list[dict[str, Any]]:
        """Pretrain D (unless resumed past it), then the remaining adversarial rounds.

        ``time_limit`` (seconds): stop after the first round that ends past it; another
        ``fit()`` or a resume continues exactly.  Returns the history (one dict per
        pretraining epoch and per round).  The selected D is :meth:`best_discriminator`;
        :attr:`discriminator` stays the last one."""
        if time_limit is not None and not time_limit >= 0:
            raise ValueError(f"time_limit must be >= 0 seconds, got {time_limit}")
        t_start = time.perf_counter()
        for cb in self.callbacks:
            cb.on_fit_start(self)
        if self.round < 0:
            self.pretrain()  # D learns from the pairing alone: round 0
        bar = tqdm(total=self.cfg.rounds, initial=self.round, desc=f"UGACH {self.cfg.bits} bits",
                   disable=not self.progress, leave=False)
        while self.round < self.cfg.rounds:
            t0, r = time.perf_counter(), self.round + 1
            triplets = self.sample_triplets()  # 1. G picks D's negatives
            logs: dict[str, Any] = {"round": r, "stage": "adversarial",
                                    "d_loss": self.train_discriminator(triplets)}  # 2.
            if r % self.cfg.eval_every == 0 or r == self.cfg.rounds:
                logs.update(self.validate())  # 3. validation MAP
            if self.cfg.g_epochs > 0 and self.cfg.negatives != "random":
                logs["g_loss"], logs["reward"] = self.train_generator()  # 4. REINFORCE
            logs["seconds"] = time.perf_counter() - t0
            self.round = r
            if "val_map" in logs or len(self.val_idx) == 0:
                self.best.consider(self.discriminator, logs.get("val_map"), r)  # keep the best D
            self._end_round(logs)
            bar.update(1)
            bar.set_postfix({k: f"{logs[k]:.3f}" for k in ("d_loss", "reward", "val_map")
                             if k in logs})
            if time_limit is not None and time.perf_counter() - t_start > time_limit:
                break
        bar.close()
        for cb in self.callbacks:
            cb.on_fit_end(self)
        return self.history

    def d_step(self, q: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor, qm: str,
               opt: torch.optim.Optimizer) -> torch.Tensor:
        """One gradient step of D on triplets (local indices, queries of modality ``qm``):

        .. math:: \\min_\\phi \\; \\ell\\big(f_\\phi(x^G, q)\\big), \\quad
                  f_\\phi = \\max\\big(0,\\, m + d_\\phi(q, x^M) - d_\\phi(q, x^G)\\big)

        ``q`` holds one query per triplet, or one per ``len(pos) // len(q)`` consecutive
        triplets (whole-query batches: each query encoded once).  Returns the loss (on the
        device, no sync).  Derived in chapter 5."""
        xm = "txt" if qm == "img" else "img"
        if len(pos) != len(neg) or len(q) == 0 or len(pos) % len(q):
            raise ValueError(f"a D step needs as many positives as negatives and a whole "
                             f"number of triplets per query; got {len(q)} queries, "
                             f"{len(pos)} positives, {len(neg)} negatives")
        h_q = self._encode(self.discriminator, qm, q)
        if len(q) < len(pos):  # whole queries, each owning len(pos) // len(q) triplets
            h_q = h_q.repeat_interleave(len(pos) // len(q), 0)
        h_x = self._encode(self.discriminator, xm, torch.cat([pos, neg]))  # one GEMM
        f = triplet_score(sq_dist(h_q, h_x[:len(pos)]), sq_dist(h_q, h_x[len(pos):]),
                          self.cfg.margin)
        loss = discriminator_loss(f, self.cfg.d_loss)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        self._deferred_step(opt)
        return loss.detach()

    def g_step(self, q: torch.Tensor, qm: str, d_codes: dict[str, torch.Tensor] | None = None
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """One REINFORCE step of G on queries ``q`` (one shared fresh pool):

        .. math:: \\nabla_\\theta J \\approx \\frac1S \\sum_s \\nabla_\\theta
                  \\log p_\\theta(x_s|q)\\, \\big(r(x_s, q) - b\\big)

        ``d_codes``: D's relaxed codes of every training item (computed here when None).
        Returns (loss, rewards ``(b, S)``), on the device.  Derived in chapter 6."""
        cfg, xm = self.cfg, ("txt" if qm == "img" else "img")
        items, log_p = self._generator_draw(q, qm, with_grad=True)
        with torch.no_grad():  # reward from the fixed discriminator
            codes = d_codes or self.relaxed_codes(self.discriminator)
            h_q, h_x = codes[qm][q], codes[xm]
            pos = self._positives(q, cfg.n_samples)
            f = triplet_score(sq_dist(h_q, h_x[pos]), sq_dist(h_q, h_x[items]), cfg.margin)
            r = reward(band_score(f, cfg.margin) if cfg.reward_band else f, cfg.reward)
        loss = reinforce_loss(log_p, r, r.mean(1, keepdim=True) if cfg.reward_baseline else None)
        self.opt_g.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_g.step()
        self._deferred_step(self.opt_g)
        return loss.detach(), r

    # ---------------------------------------------------------------------- stages
    def pretrain(self) -> None:
        """Stage 1: D learns from the pairing alone (positive = the paired item, one random
        other item as negative), keeping the epoch with the best validation MAP; then
        round 0 is validated, selected and reported."""
        cfg, n = self.cfg, len(self.fit_idx)
        best, fixed = BestState(), None
        if cfg.pretrain_negatives == "fixed":  # one negative per query for all epochs
            every = torch.arange(n, device=self.device)
            fixed = {qm: sampling.other_items(every, n, self.rng) for qm in ("img", "txt")}
        for epoch in range(1, cfg.pretrain_epochs + 1):
            with self._stage(0, "pretraining", ("D",)), self.deferring(self.discriminator):
                losses = [self.d_step(q, q, sampling.other_items(q, n, self.rng) if fixed is
                                      None else fixed[qm][q], qm, self.opt_pre)
                          for qm, _ in DIRECTIONS.values()
                          for q in sampling.batches(n, cfg.pretrain_batch, self.rng, self.device)]
            loss = _mean(losses)
            self._check_finite(0, "pretraining", {"pretrain_loss": loss}, ("D",),
                               f" (epoch {epoch})")
            logs = {"epoch": epoch, "pretrain_loss": loss, **self.validate()}
            for cb in self.callbacks:
                cb.on_pretrain_epoch_end(self, epoch, logs)
            self.history.append({"stage": "pretrain", **logs})
            best.consider(self.discriminator, logs.get("val_map"), epoch)
        if best.state is not None:
            self.discriminator.load_state_dict(best.state)
        self._pretrained()

    def _pretrained(self) -> None:
        self.round = 0
        logs = {"round": 0, "stage": "pretrained", **self.validate()}
        self.best.consider(self.discriminator, logs.get("val_map"), 0)
        self._end_round(logs)

    def pretrained_state(self) -> dict[str, Any]:
        """What pretraining leaves behind; :meth:`load_pretrained` continues from it exactly
        (same seed and pretraining config)."""
        return copy.deepcopy({"D": self.discriminator.state_dict(),
                              "opt_pre": self.opt_pre.state_dict(),
                              "rng": self.rng.get_state(),
                              "history": [h for h in self.history if h["stage"] == "pretrain"]})

    def load_pretrained(self, state: dict[str, Any]) -> None:
        """Start from :meth:`pretrained_state` of another trainer instead of pretraining."""
        self.discriminator.load_state_dict(state["D"])
        self.opt_pre.load_state_dict(state["opt_pre"])
        self.rng.set_state(state["rng"])
        self.history.extend(copy.deepcopy(state["history"]))
        self._pretrained()

    def sample_triplets(self) -> Triplets:
        """Step 1 of a round: ``n_samples`` negatives per query, each paired with a manifold
        pair.  Returns ``{"i2t"|"t2i": (q, x_M, x_G)}``, each ``(n * S,)``.  Negatives
        are G's draws, uniform non-neighbours (``negatives="random"``) or half of each
        (``"mixed"``); with ``fn_guard`` never among D's own nearest items of the query."""
        cfg, n = self.cfg, len(self.fit_idx)
        s_g = {"generator": cfg.n_samples, "random": 0, "mixed": (cfg.n_samples + 1) // 2}[
            cfg.negatives]  # per query: G's draws, the rest uniform
        h_g = self.relaxed_codes(self.generator) if s_g else None  # G is fixed while it samples
        h_d = self.relaxed_codes(self.discriminator) if cfg.fn_guard else None
        chunk = max(1, min(1024, (1 << 24) // n))  # (chunk, n) distances: <= 64 MB
        out = {}
        for key, (qm, xm) in DIRECTIONS.items():
            qs, ps, gs = [], [], []
            for start in range(0, n, chunk):
                q = torch.arange(start, min(n, start + chunk), device=self.device)
                pool = sampling.random_pools(n, self.pool_size, len(q), self.rng, self.device)
                guard = None
                if h_d is not None:  # D's own top-k of each query
                    d_all = pairwise_sq_dist(h_d[qm][q], h_d[xm])
                    guard = sampling.nearest(d_all.gather(1, pool), d_all, cfg.fn_guard)
                excluded = sampling.exclusion_mask(pool, self.neighbors[q], guard)
                cols = []
                if h_g is not None:  # G's distances to every item, gathered per pool
                    d = pairwise_sq_dist(h_g[qm][q], h_g[xm]).gather(1, pool)
                    log_p = generator_log_probs(d, cfg.temperature, excluded)
                    cols.append(sampling.draw(log_p, s_g, self.rng))
                if s_g < cfg.n_samples:
                    cols.append(sampling.uniform_draw(excluded, cfg.n_samples - s_g, self.rng))
                cols = torch.cat(cols, 1) if len(cols) > 1 else cols[0]
                qs.append(q.repeat_interleave(cfg.n_samples))
                gs.append(pool.gather(1, cols).reshape(-1))
                ps.append(self._positives(q, cfg.n_samples).reshape(-1))
            out[key] = (torch.cat(qs), torch.cat(ps), torch.cat(gs))
        return out

    def train_discriminator(self, triplets: Triplets) -> float:
        """Step 2: ``d_epochs`` passes over the triplets (i2t, then t2i), ``d_batch`` each
        (random triplets, or whole queries with ``d_batches="query"``)."""
        cfg, r, s = self.cfg, self.round + 1, self.cfg.n_samples
        grouped = cfg.d_batches == "query"  # triplets are query-major: s rows per query

        def cut(t: int) -> list[torch.Tensor]:
            return (sampling.query_batches(t // s, s, cfg.d_batch, self.rng, self.device)
                    if grouped else sampling.batches(t, cfg.d_batch, self.rng, self.device))

        with self._stage(r, "D step", ("D",)), self.deferring(self.discriminator):
            losses = [self.d_step(q[b][::s] if grouped else q[b], pos[b], neg[b], qm, self.opt_d)
                      for _ in range(cfg.d_epochs) for key, (qm, _) in DIRECTIONS.items()
                      for q, pos, neg in [triplets[key]] for b in cut(len(q))]
        loss = _mean(losses)
        self._check_finite(r, "D step", {"d_loss": loss}, ("D",))
        return loss

    def train_generator(self) -> tuple[float, float]:
        """Step 4: ``g_epochs`` passes over all queries (both modalities), ``g_batch`` each;
        returns the mean loss and reward.  D's codes are computed once (D is fixed here)."""
        r, n = self.round + 1, len(self.fit_idx)
        with self._stage(r, "G step", ("G",)), self.deferring(self.generator):
            d_codes = self.relaxed_codes(self.discriminator)
            steps = [self.g_step(q, qm, d_codes)
                     for _ in range(self.cfg.g_epochs) for qm, _ in DIRECTIONS.values()
                     for q in sampling.batches(n, self.cfg.g_batch, self.rng, self.device)]
        loss, rew = _mean([s[0] for s in steps]), _mean([s[1].mean() for s in steps])
        self._check_finite(r, "G step", {"g_loss": loss, "reward": rew}, ("G",))
        return loss, rew

    def _generator_draw(self, q: torch.Tensor, qm: str, with_grad: bool
                        ) -> tuple[torch.Tensor, torch.Tensor]:
        """``n_samples`` draws from :math:`p_\\theta` over one fresh pool shared by the
        queries ``q``; returns the items ``(b, S)`` and their :math:`\\log p_\\theta`
        (over the pool with ``g_softmax="pool"``, else a softmax over the S sampled
        items, the authors' code, which re-encodes only those)."""
        cfg, xm = self.cfg, ("txt" if qm == "img" else "img")
        pool = sampling.random_pools(len(self.fit_idx), self.pool_size, 1, self.rng,
                                     self.device).expand(len(q), -1)
        excluded = sampling.exclusion_mask(pool, self.neighbors[q]) if cfg.g_pool_mask \
            else torch.zeros(pool.shape, dtype=torch.bool, device=pool.device)
        with torch.set_grad_enabled(with_grad and cfg.g_softmax == "pool"):
            h_q = self._encode(self.generator, qm, q)
            d = pairwise_sq_dist(h_q, self._encode(self.generator, xm, pool[0]))  # (b, P)
        cols = sampling.draw(generator_log_probs(d.detach(), cfg.temperature, excluded),
                             cfg.n_samples, self.rng)
        items = pool.gather(1, cols)
        if cfg.g_softmax == "pool":
            return items, generator_log_probs(d, cfg.temperature, excluded).gather(1, cols)
        with torch.set_grad_enabled(with_grad):
            h_q = self._encode(self.generator, qm, q)
            h_s = self._encode(self.generator, xm, items.reshape(-1)).view(len(q), -1, cfg.bits)
            return items, torch.log_softmax(-sq_dist(h_q, h_s) / cfg.temperature, dim=1)

    def _positives(self, q: torch.Tensor, s: int) -> torch.Tensor:
        return sampling.positives(self.neighbors, q, s, self.rng,
                                  distinct=self.cfg.positives == "distinct")

    def _encode(self, net: CrossModalHashNet, m: str, idx: torch.Tensor) -> torch.Tensor:
        """Relaxed codes of training items ``idx`` of modality ``m``; inside a stage with
        ``first_layer="deferred"`` through :class:`~ugach_core.deferred.DeferredLinear`."""
        owner, layers = self._deferred
        if owner is not net:
            return net.encode(self.train_features[m][idx], m)
        a = layers[m].rows(idx)
        if torch.is_grad_enabled():  # its gradient is the layer's update (_deferred_step)
            self._pending.append((layers[m], idx, a.requires_grad_()))
        return net.net(m).head(a)

    @contextlib.contextmanager
    def deferring(self, net: CrossModalHashNet) -> Iterator[None]:
        """A stage of steps on ``net`` (e.g. ``g_step`` outside ``fit``): with "deferred"
        first layers, their updates are deferred until it ends (exact after). Chapter 7."""
        if self.cfg.first_layer != "deferred":
            yield
            return
        with torch.no_grad():
            self._deferred = (net, {m: DeferredLinear(net.net(m).common, net.net(m).normalise(x))
                                    for m, x in self.train_features.items()})
        try:
            yield
        finally:
            for layer in self._deferred[1].values():
                layer.close()
            self._deferred, self._pending = (None, {}), []

    def _deferred_step(self, opt: torch.optim.Optimizer) -> None:
        """The SGD step of the deferred first layers used since the last one (each decayed
        once, as the optimiser decays every parameter with a gradient)."""
        group, steps = opt.param_groups[0], {}
        for layer, idx, a in self._pending:
            grad = a.grad if a.grad is not None else torch.zeros_like(a)
            steps.setdefault(layer, []).append((idx, grad))
        for layer, parts in steps.items():
            layer.step(torch.cat([i for i, _ in parts]), torch.cat([g for _, g in parts]),
                       group["lr"], group["weight_decay"])
        self._pending.clear()

    @torch.no_grad()
    def relaxed_codes(self, model: CrossModalHashNet, batch: int = 4096
                      ) -> dict[str, torch.Tensor]:
        """Relaxed codes ``h`` of every training pair, ``{"img"|"txt": (n_fit, l)}``."""
        return {m: torch.cat([model.encode(x[s:s + batch], m) for s in range(0, len(x), batch)])
                for m, x in self.train_features.items()}

    # ----------------------------------------------------------------- evaluation
    def validate(self) -> dict[str, float]:
        """MAP@all of the current D on the validation split (queries: held-out training
        pairs; database: the training pairs D is fitted on)."""
        if len(self.val_idx) == 0:
            return {}
        m = retrieval_map(self.discriminator, self.features, self.data.labels, self.val_idx,
                          self.fit_idx)
        return {"val_map_i2t": m["i2t"], "val_map_t2i": m["t2i"], "val_map": m["mean"]}

    @property
    def best_round(self) -> int:
        """The round of the validation-selected D (-1 before pretraining ends)."""
        return self.best.round

    @property
    def best_score(self) -> float:
        """Its validation MAP (``-inf`` without a validation split)."""
        return self.best.score

    def best_discriminator(self) -> Discriminator:
        """D with the weights selected on validation (the current D if none selected yet)."""
        if self.best.state is None:
            return self.discriminator
        d_img, d_txt = self.data.dims
        best = Discriminator(d_img, d_txt, self.cfg.bits, self.cfg.hidden).to(self.device)
        best.load_state_dict(self.best.state)
        return best

    def evaluate(self, which: str = "best", topk: int | None = None) -> dict[str, float]:
        """MAP of D's codes on the test protocol (queries vs database), both directions:
        ``map_i2t``, ``map_t2i`` (@all, or @``topk``).  ``which``: "best" or "current"."""
        model = self.best_discriminator() if which == "best" else self.discriminator
        m = retrieval_map(model, self.features, self.data.labels, self.data.query_idx,
                          self.data.db_idx, topk)
        return {"map_i2t": m["i2t"], "map_t2i": m["t2i"]}

    def codes(self, which: str = "best") -> dict[str, np.ndarray]:
        """Binary codes of every item of the data set, ``{"img": (n, l), "txt": (n, l)}``."""
        model = self.best_discriminator() if which == "best" else self.discriminator
        return {m: encode(model, x, m) for m, x in self.features.items()}

    # --------------------------------------------------------------------- plumbing
    def _optimizer(self, model: torch.nn.Module, lr: float) -> torch.optim.Optimizer:
        # fused kernels: one pass over the weights per step, not ~8 (else fall back)
        cls = torch.optim.SGD if self.cfg.optimizer == "sgd" else torch.optim.Adam
        params = list(model.parameters())
        if self.device.type in ("cpu", "cuda"):
            try:
                return cls(params, lr=lr, weight_decay=self.cfg.weight_decay, fused=True)
            except (RuntimeError, TypeError, ValueError):
                pass
        return cls(params, lr=lr, weight_decay=self.cfg.weight_decay)

    def _end_round(self, logs: dict[str, Any]) -> None:
        self.history.append(logs)  # callbacks may still add keys (e.g. test MAP) to it
        # checkpoints go last (Checkpoint.order)
        for cb in sorted(self.callbacks, key=lambda c: getattr(c, "order", 0)):
            cb.on_round_end(self, logs)

    def _nonfinite(self, values: dict[str, float], nets: Iterable[str]) -> list[str]:
        bad = [f"{k} is {v}" for k, v in values.items() if not math.isfinite(v)]
        for name in nets:
            params = list(getattr(self, _NETS[name]).named_parameters())
            ok = torch.stack([torch.isfinite(p).all() for _, p in params]).cpu()
            if not bool(ok.all()):
                first = params[int((~ok).nonzero()[0, 0])][0]
                bad.append(f"the weights of {name} contain NaN/inf (first: {first})")
        return bad

    def _check_finite(self, round_: int, stage: str, values: dict[str, float],
                      nets: Iterable[str], detail: str = "") -> None:
        """:class:`DivergenceError` naming ``round_`` and ``stage`` if anything is NaN/inf."""
        bad = self._nonfinite(values, nets)
        if bad:
            lr = _STAGE_LR[stage]
            raise DivergenceError(
                f"training diverged in round {round_}, stage '{stage}'{detail}: "
                f"{'; '.join(bad)}. Stopped before this state reached any checkpoint, so the "
                f"last checkpoint on disk is the last good one; lower {lr} (now "
                f"{getattr(self.cfg, lr)}) or check the features for extreme values, then "
                "resume from that checkpoint or retrain")

    @contextlib.contextmanager
    def _stage(self, round_: int, stage: str, nets: tuple[str, ...]) -> Iterator[None]:
        """An error inside a stage (e.g. torch refusing NaN probabilities) while a net's
        weights are NaN/inf becomes a :class:`DivergenceError`; free unless one is raised."""
        try:
            with reuse_freed_memory():
                yield
        except RuntimeError as e:
            if not isinstance(e, DivergenceError):
                self._check_finite(round_, stage, {}, nets)
            raise

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume: config, weights, optimisers, RNG, round, history."""
        return {
            "format": "ugach-checkpoint", "version": __version__, "config": self.cfg.to_dict(),
            "seed": self.seed, "round": self.round, "history": copy.deepcopy(self.history),
            "dataset": {"name": self.data.name, "dims": list(self.data.dims), "n": self.data.n,
                        "fingerprint": self.data_fingerprint()},
            "fit_idx": torch.as_tensor(self.fit_idx), "val_idx": torch.as_tensor(self.val_idx),
            "G": self.generator.state_dict(), "D": self.discriminator.state_dict(),
            "opt_pre": self.opt_pre.state_dict(), "opt_d": self.opt_d.state_dict(),
            "opt_g": self.opt_g.state_dict(), "rng": self.rng.get_state(),
            **self.best.state_dict(),
        }

    def load_state_dict(self, sd: dict[str, Any]) -> None:
        for name in ("G", "D", "opt_pre", "opt_d", "opt_g"):
            getattr(self, _NETS.get(name, name)).load_state_dict(sd[name])
        self.rng.set_state(sd["rng"])
        self.round, self.history = sd["round"], copy.deepcopy(sd["history"])
        self.best.load_state_dict(sd)

    def data_fingerprint(self) -> str:
        """:func:`~ugach_core.checkpoint.data_fingerprint` of the data, computed once."""
        if self._fingerprint is None:
            self._fingerprint = data_fingerprint(self.data)
        return self._fingerprint

    def save_checkpoint(self, path: str | Path) -> Path:
        """Write :meth:`state_dict` to ``path`` atomically (temp file + rename); weights
        with NaN/inf are refused (:class:`DivergenceError`), so ``path`` keeps its last
        good checkpoint."""
        bad = self._nonfinite({}, ("D", "G"))
        if bad:
            raise DivergenceError(
                f"round {self.round}: not writing checkpoint {path}, which keeps its last good "
                f"state: {'; '.join(bad)} (changed after the round's own checks, e.g. by a "
                "callback). Find what broke the weights, then resume from that file")
        sd = self.state_dict()
        return atomic_write(path, lambda tmp: torch.save(sd, tmp))

    @classmethod
    def resume(cls, path: str | Path, data: CrossModalDataset, **kwargs: Any) -> "Trainer":
        """A trainer restored from :meth:`save_checkpoint`'s file; ``fit()`` then runs the
        remaining rounds.  Needs the same data (fingerprint checked) and the same split
        into fitted and validation pairs, else a :class:`CheckpointError`."""
        sd = read_checkpoint(path, data, resume=True)
        cfg = UGACHConfig.from_dict(sd["config"])
        kwargs.setdefault("seed", sd["seed"])
        trainer = cls(cfg, data, **kwargs)
        if not (np.array_equal(trainer.fit_idx, sd["fit_idx"].numpy())
                and np.array_equal(trainer.val_idx, sd["val_idx"].numpy())):
            raise CheckpointError(
                f"{path} was trained on a different split of this data set into fitted and "
                f"validation pairs ({len(sd['fit_idx'])} + {len(sd['val_idx'])} pairs; here "
                f"{len(trainer.fit_idx)} + {len(trainer.val_idx)}). Resume with the "
                f"checkpoint's seed={sd['seed']} and val_fraction={cfg.val_fraction} on the "
                "same training pairs, or start a new run")
        trainer._fingerprint = sd["dataset"].get("fingerprint")
        try:
            trainer.load_state_dict(sd)
        except (RuntimeError, TypeError, ValueError, KeyError) as e:
            raise CheckpointError(f"{path} is damaged: its state does not fit its own config "
                                  f"({' '.join(str(e).split())[:200]}); resume from an earlier "
                                  "checkpoint or retrain") from None
        return trainer


def _mean(values: list[torch.Tensor]) -> float:
    """Mean of per-step scalars kept on the device (one transfer instead of one per step)."""
    return float(torch.stack(values).double().mean().item()) if values else float("nan")


__all__ = ["DivergenceError", "Trainer"]
