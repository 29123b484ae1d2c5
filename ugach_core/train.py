"""The UGACH trainer: discriminator pretraining, then adversarial rounds with REINFORCE.

One round (chapter 6, "The adversarial game and REINFORCE"):

1. **G samples D's training data.**  For every query :math:`q` (each modality in turn) a
   fresh random pool :math:`P_q` of the other modality, :math:`x^G \\sim p_\\theta(x|q)` over
   :math:`P_q` (manifold pairs of :math:`q` excluded: the authors reject such draws), each
   paired with a random manifold pair :math:`x^M` from the correlation graph.
2. **D epoch** on the triplets :math:`(q, x^M, x^G)`: minimise ``discriminator_loss`` of
   :math:`f_\\phi(x^G, q) = \\max(0, m + d(q, x^M) - d(q, x^G))`.
3. **Validation**: MAP@all of D's codes on held-out training pairs; the best D is kept.
4. **G epochs**: sample :math:`x^G \\sim p_\\theta`, reward from D, REINFORCE step.  The
   queries of one G step share one fresh random pool (with one query per step, the
   authors' schedule, that is a fresh pool per query), so a step encodes ``g_batch + P``
   items instead of every training item; each query's pool is still a uniform random
   subset, so the expected gradient per query is unchanged.

Work that gives the same result is done once: G's codes of every training item once per
sampling pass (G is fixed while it samples), D's codes of every training item once per
G phase (D is fixed while it rewards), and with ``g_softmax="sampled"`` only the sampled
items are re-encoded with gradients.

Every random draw goes through one ``torch.Generator`` whose state is checkpointed, so a
resumed run ends with exactly the codes of an uninterrupted one (on the same device).

NaN/inf is looked for once per stage (the stage's mean loss, already one transfer, and one
finite check of the weights), not per step: a :class:`DivergenceError` names the round and
the stage, and a checkpoint is never written with such weights.
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

from . import __version__
from .cache import data_fingerprint
from .callbacks import Callback, Checkpoint
from .config import UGACHConfig
from .data import CrossModalDataset
from .graph import manifold_neighbors
from .losses import (discriminator_loss, generator_log_probs, pairwise_sq_dist,
                     reinforce_loss, reward, sq_dist, triplet_score)
from .metrics import mean_average_precision
from .model import CrossModalHashNet, Discriminator, Generator
from .retrieval import encode
from .utils import atomic_write, get_device, seed_everything

DIRECTIONS = (("img", "txt"), ("txt", "img"))  # (query modality, item modality): i2t, t2i


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be read or does not fit the data / code length given."""


class DivergenceError(RuntimeError):
    """Training produced NaN/inf (a loss, a reward or a weight); the message names the
    round and the stage (``pretraining``, ``D step``, ``G step``)."""


# what each stage's learning rate is called in the config (for the divergence hint)
_STAGE_LR = {"pretraining": "pretrain_lr", "D step": "d_lr", "G step": "g_lr"}
# keys a checkpoint needs to encode with its D, and to resume training
_MODEL_KEYS = ("config", "dataset", "D")
_RESUME_KEYS = ("config", "dataset", "D", "G", "seed", "round", "history", "fit_idx",
                "val_idx", "opt_pre", "opt_d", "opt_g", "rng", "best_state", "best_score",
                "best_round")


class Trainer:
    """Trains UGACH on ``data`` with configuration ``cfg``.

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
        self.gen = torch.Generator()  # the one stream for every draw during training
        self.gen.manual_seed(seed)
        self.fit_idx, self.val_idx = data.split_validation(cfg.val_fraction, seed)
        if len(self.fit_idx) < 2:
            raise ValueError(f"need at least 2 training pairs, got {len(self.fit_idx)}")
        self.X = {"img": torch.as_tensor(data.img, device=self.device),
                  "txt": torch.as_tensor(data.txt, device=self.device)}
        fit_t = torch.as_tensor(self.fit_idx, device=self.device)
        self.F = {m: x[fit_t] for m, x in self.X.items()}  # training features, local indices
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
        self.G = Generator(d_img, d_txt, cfg.bits, cfg.hidden, cfg.init_std).to(self.device)
        self.D = Discriminator(d_img, d_txt, cfg.bits, cfg.hidden, cfg.init_std).to(self.device)
        if cfg.feature_norm == "zscore":
            for m in ("img", "txt"):
                mu, sd = self.F[m].mean(0), self.F[m].std(0)
                for net in (self.G, self.D):
                    net.net(m).set_input_norm(mu, sd)
        self.opt_pre = self._optimizer(self.D, cfg.pretrain_lr)
        self.opt_d = self._optimizer(self.D, cfg.d_lr)
        self.opt_g = self._optimizer(self.G, cfg.g_lr)
        self.pool_size = min(len(self.fit_idx), max(cfg.pool_min,
                                                    int(round(cfg.pool_fraction * len(self.fit_idx)))))
        self.round = -1  # -1: not pretrained; 0: pretrained; r: r adversarial rounds done
        self.history: list[dict[str, Any]] = []
        self.best_score = -math.inf
        self.best_round = -1
        self.best_state: dict[str, torch.Tensor] | None = None
        self._d_codes: dict[str, torch.Tensor] | None = None  # set during G epochs only
        self._fingerprint: str | None = None  # of the data, computed on first use

    # ----------------------------------------------------------------------------- utils
    def _optimizer(self, model: torch.nn.Module, lr: float) -> torch.optim.Optimizer:
        # fused kernels: one pass over the weights per step instead of about eight (the
        # update of a 8192-wide net otherwise costs as much as its batch-256 step)
        # (older torch releases have no fused kernels on the CPU, or none for SGD: fall back)
        cls = torch.optim.SGD if self.cfg.optimizer == "sgd" else torch.optim.Adam
        params = list(model.parameters())
        if self.device.type in ("cpu", "cuda"):
            try:
                return cls(params, lr=lr, weight_decay=self.cfg.weight_decay, fused=True)
            except (RuntimeError, TypeError, ValueError):
                pass
        return cls(params, lr=lr, weight_decay=self.cfg.weight_decay)

    def _nonfinite(self, values: dict[str, float], nets: Iterable[str]) -> list[str]:
        """What is NaN/inf among ``values`` (a stage's mean losses) and the weights of the
        nets named in ``nets`` (``"D"``, ``"G"``): one device sync per net."""
        bad = [f"{k} is {v}" for k, v in values.items() if not math.isfinite(v)]
        for name in nets:
            params = list(getattr(self, name).named_parameters())
            ok = torch.stack([torch.isfinite(p).all() for _, p in params]).cpu()
            if not bool(ok.all()):
                first = params[int((~ok).nonzero()[0, 0])][0]
                bad.append(f"the weights of {name} contain NaN/inf (first: {first})")
        return bad

    def _check_finite(self, round_: int, stage: str, values: dict[str, float],
                      nets: Iterable[str], detail: str = "") -> None:
        """Raise :class:`DivergenceError`, naming ``round_`` and ``stage``, when a value or
        a weight is NaN/inf.  Called once at the end of each stage, never per step."""
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
        """Runs one stage; an error inside it (e.g. torch refusing NaN sampling
        probabilities) while a net's weights are NaN/inf becomes a :class:`DivergenceError`
        naming the round and stage.  Costs nothing unless an error is raised."""
        try:
            yield
        except RuntimeError as e:
            if not isinstance(e, DivergenceError):
                self._check_finite(round_, stage, {}, nets)
            raise

    def _randint(self, high: int, size: tuple[int, ...]) -> torch.Tensor:
        return torch.randint(high, size, generator=self.gen).to(self.device)

    def _perm(self, n: int) -> torch.Tensor:
        return torch.randperm(n, generator=self.gen).to(self.device)

    def _pools(self, b: int) -> torch.Tensor:
        """(b, P) random candidate pools, without replacement within a pool."""
        n, p = len(self.fit_idx), self.pool_size
        if p == n:
            return torch.arange(n, device=self.device).expand(b, n).contiguous()
        return torch.rand(b, n, generator=self.gen).topk(p, dim=1).indices.to(self.device)

    def _positives(self, q: torch.Tensor, s: int) -> torch.Tensor:
        """(b, s) random manifold pairs of queries ``q`` (local indices)."""
        cols = self._randint(self.neighbors.shape[1], (len(q), s))
        return self.neighbors[q].gather(1, cols)

    def _sample_generated(self, q: torch.Tensor, qm: str, xm: str, with_grad: bool,
                          h_items: torch.Tensor | None = None, shared_pool: bool = False):
        """Draw ``n_samples`` items per query from :math:`p_\\theta` over a fresh pool.

        Returns ``(items (b, S), d_G over the pool (b, P), mask (b, P), sample columns)``.
        Manifold pairs of the query are masked out of the pool (rejection in the authors'
        code); a pool made only of manifold pairs falls back to the unmasked pool.
        ``h_items``: G's codes of every training item of modality ``xm`` when already
        computed (no gradient; the pool's rows are gathered from it).  ``shared_pool``:
        one pool for all queries of ``q`` (what :meth:`generator_step` uses).
        """
        cfg = self.cfg
        pool = self._pools(1 if shared_pool else len(q)).expand(len(q), -1)
        mask = (pool[:, :, None] == self.neighbors[q][:, None, :]).any(-1)
        mask &= ~mask.all(1, keepdim=True)
        with torch.set_grad_enabled(with_grad):
            h_q = self.G.encode(self.F[qm][q], qm)
            if h_items is not None:  # d_G to every item, then each query's pool columns
                d = pairwise_sq_dist(h_q, h_items).gather(1, pool)
            elif shared_pool:  # one pool: a (b, P) distance matrix from one product
                d = pairwise_sq_dist(h_q, self.G.encode(self.F[xm][pool[0]], xm))
            else:
                if pool.numel() >= len(self.fit_idx):  # cheaper: encode every item, gather
                    h_pool = self.G.encode(self.F[xm], xm)[pool]
                else:  # small batches: encode the pools only
                    h_pool = self.G.encode(self.F[xm][pool.reshape(-1)], xm).view(
                        len(q), -1, cfg.bits)
                d = sq_dist(h_q, h_pool)  # d_G(q, x), (b, P)
        logp = generator_log_probs(d.detach(), cfg.temperature, mask)
        cols = torch.multinomial(logp.exp().cpu(), cfg.n_samples, replacement=True,
                                 generator=self.gen).to(self.device)
        return pool.gather(1, cols), d, mask, cols

    def _sample_random(self, q: torch.Tensor) -> torch.Tensor:
        """``n_samples`` uniformly random non-neighbours per query, ``(b, S)`` local indices.

        The "no GAN" ablation (``negatives="random"``): the same fresh pool :math:`P_q` and
        the same exclusion of manifold pairs as :meth:`_sample_generated`, but every
        remaining pool item is equally likely, :math:`x^G \\sim \\mathcal{U}(P_q \\setminus
        \\mathcal{N}(q))` (a pool made only of manifold pairs falls back to the whole pool)."""
        pool = self._pools(len(q))
        mask = (pool[:, :, None] == self.neighbors[q][:, None, :]).any(-1)
        mask &= ~mask.all(1, keepdim=True)
        weights = (~mask).float().cpu()  # uniform over the allowed pool items
        cols = torch.multinomial(weights, self.cfg.n_samples, replacement=True,
                                 generator=self.gen).to(self.device)
        return pool.gather(1, cols)

    def _batches(self, n: int, size: int) -> list[torch.Tensor]:
        perm = self._perm(n)
        return [perm[s:s + size] for s in range(0, n, size)]

    # ------------------------------------------------------------------------ evaluation
    @torch.no_grad()
    def _map(self, model: CrossModalHashNet, q_idx: np.ndarray, db_idx: np.ndarray,
             topk: int | None = None) -> dict[str, float]:
        lab = self.data.labels
        out = {}
        for (qm, xm), key in zip(DIRECTIONS, ("i2t", "t2i")):
            bq = encode(model, self.X[qm][torch.as_tensor(q_idx, device=self.device)], qm)
            bx = encode(model, self.X[xm][torch.as_tensor(db_idx, device=self.device)], xm)
            out[key] = mean_average_precision(bq, bx, lab[q_idx], lab[db_idx], k=topk)
        return out

    def validate(self) -> dict[str, float]:
        """MAP@all of the current D on the validation split (queries: held-out training
        pairs; database: the training pairs D is fitted on)."""
        if len(self.val_idx) == 0:
            return {}
        m = self._map(self.D, self.val_idx, self.fit_idx)
        return {"val_map_i2t": m["i2t"], "val_map_t2i": m["t2i"],
                "val_map": (m["i2t"] + m["t2i"]) / 2}

    def _consider_best(self, logs: dict[str, Any]) -> None:
        score = logs.get("val_map")
        if score is None:  # no validation split: the last D is the result
            self.best_state = copy.deepcopy(self.D.state_dict())
            self.best_round = logs["round"]
        elif score > self.best_score:
            self.best_score, self.best_round = score, logs["round"]
            self.best_state = {k: v.detach().clone() for k, v in self.D.state_dict().items()}

    def best_discriminator(self) -> Discriminator:
        """D with the weights selected on validation (the current D if none selected yet)."""
        if self.best_state is None:
            return self.D
        d_img, d_txt = self.data.dims
        best = Discriminator(d_img, d_txt, self.cfg.bits, self.cfg.hidden).to(self.device)
        best.load_state_dict(self.best_state)
        return best

    def evaluate(self, which: str = "best", topk: int | None = None) -> dict[str, float]:
        """MAP of D's codes on the test protocol (queries vs database), both directions.

        ``which``: ``"best"`` (validation-selected D) or ``"current"``.  Returns
        ``map_i2t``, ``map_t2i`` (MAP@all when ``topk`` is None, else MAP@topk).
        """
        model = self.best_discriminator() if which == "best" else self.D
        m = self._map(model, self.data.query_idx, self.data.db_idx, topk)
        return {"map_i2t": m["i2t"], "map_t2i": m["t2i"]}

    def codes(self, which: str = "best") -> dict[str, np.ndarray]:
        """Binary codes of every item of the data set, ``{"img": (n, l), "txt": (n, l)}``."""
        model = self.best_discriminator() if which == "best" else self.D
        return {m: encode(model, self.X[m], m) for m in ("img", "txt")}

    # -------------------------------------------------------------------------- training
    def _triplet_loss(self, q, pos, neg, qm, xm) -> torch.Tensor:
        h_q = self.D.encode(self.F[qm][q], qm)
        h_x = self.D.encode(self.F[xm][torch.cat([pos, neg])], xm)  # one GEMM for both
        d_pos = sq_dist(h_q, h_x[:len(pos)])  # d(q, x^M)
        d_neg = sq_dist(h_q, h_x[len(pos):])  # d(q, x^G)
        f = triplet_score(d_pos, d_neg, self.cfg.margin)  # f_phi(x^G, q)
        return discriminator_loss(f, self.cfg.d_loss)

    def pretrain(self) -> None:
        """Stage 1: D learns from the pairing alone (positive = the paired item, one random
        other item as negative), keeping the epoch with the best validation MAP."""
        cfg, n = self.cfg, len(self.fit_idx)
        best, best_state = -math.inf, None
        for epoch in range(1, cfg.pretrain_epochs + 1):
            losses = []
            for qm, xm in DIRECTIONS:
                for q in self._batches(n, cfg.pretrain_batch):
                    neg = (q + self._randint(n - 1, (len(q),)) + 1) % n  # any item but q
                    loss = self._triplet_loss(q, q, neg, qm, xm)
                    self.opt_pre.zero_grad(set_to_none=True)
                    loss.backward()
                    self.opt_pre.step()
                    losses.append(loss.detach())
            loss = _mean(losses)
            self._check_finite(0, "pretraining", {"pretrain_loss": loss}, nets=("D",),
                              detail=f" (epoch {epoch})")
            logs = {"epoch": epoch, "pretrain_loss": loss, **self.validate()}
            for cb in self.callbacks:
                cb.on_pretrain_epoch_end(self, epoch, logs)
            self.history.append({"stage": "pretrain", **logs})
            score = logs.get("val_map", epoch)  # no validation: keep the last epoch
            if score > best:
                best, best_state = score, copy.deepcopy(self.D.state_dict())
        if best_state is not None:
            self.D.load_state_dict(best_state)

    def sample_triplets(self) -> dict[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """Step 1 of a round: G draws ``n_samples`` items per query, each paired with a
        random manifold pair.  Returns ``{"i2t"|"t2i": (q, x_M, x_G)}``, each (n * S,).

        With ``negatives="random"`` the draws are uniform non-neighbours instead
        (:meth:`_sample_random`); G is not used."""
        n, s = len(self.fit_idx), self.cfg.n_samples
        out = {}
        use_g = self.cfg.negatives == "generator"
        h_all = self._all_codes(self.G) if use_g else None  # G is fixed while it samples
        chunk = max(1, min(1024, (1 << 24) // n))  # (chunk, n) distances: <= 64 MB
        for (qm, xm), key in zip(DIRECTIONS, ("i2t", "t2i")):
            qs, ps, gs = [], [], []
            for start in range(0, n, chunk):
                q = torch.arange(start, min(n, start + chunk), device=self.device)
                if h_all is not None:
                    items, *_ = self._sample_generated(q, qm, xm, with_grad=False,
                                                       h_items=h_all[xm])
                else:
                    items = self._sample_random(q)
                qs.append(q.repeat_interleave(s))
                ps.append(self._positives(q, s).reshape(-1))
                gs.append(items.reshape(-1))
            out[key] = (torch.cat(qs), torch.cat(ps), torch.cat(gs))
        return out

    def train_discriminator(self, triplets) -> float:
        """Step 2: ``d_epochs`` passes over the triplets (i2t, then t2i), ``d_batch`` each."""
        losses = []
        for _ in range(self.cfg.d_epochs):
            for (qm, xm), key in zip(DIRECTIONS, ("i2t", "t2i")):
                q, pos, neg = triplets[key]
                for b in self._batches(len(q), self.cfg.d_batch):
                    loss = self._triplet_loss(q[b], pos[b], neg[b], qm, xm)
                    self.opt_d.zero_grad(set_to_none=True)
                    loss.backward()
                    self.opt_d.step()
                    losses.append(loss.detach())  # no device sync per step
        return _mean(losses)

    def generator_step(self, q: torch.Tensor, qm: str, xm: str) -> tuple[float, float]:
        """One REINFORCE step of G on queries ``q``; returns (loss, mean reward).

        The queries share one fresh pool (see the module docstring).  With
        ``g_softmax="sampled"`` the pool is scored without gradients and only the query and
        its sampled items are re-encoded with gradients (the same values, a fraction of the
        back-propagation)."""
        loss, r = self._generator_step(q, qm, xm)
        return loss.item(), r.mean().item()

    def _generator_step(self, q: torch.Tensor, qm: str, xm: str
                        ) -> tuple[torch.Tensor, torch.Tensor]:
        cfg = self.cfg
        pool_grad = cfg.g_softmax == "pool"
        items, d_pool, mask, cols = self._sample_generated(q, qm, xm, with_grad=pool_grad,
                                                           shared_pool=True)
        if pool_grad:  # paper: log p over the whole pool
            logp = generator_log_probs(d_pool, cfg.temperature, mask).gather(1, cols)
        else:  # authors' code: softmax over the S sampled items only
            h_q = self.G.encode(self.F[qm][q], qm)
            h_s = self.G.encode(self.F[xm][items.reshape(-1)], xm).view(len(q), -1, cfg.bits)
            logp = torch.log_softmax(-sq_dist(h_q, h_s) / cfg.temperature, dim=1)
        with torch.no_grad():  # reward from the fixed discriminator
            pos = self._positives(q, cfg.n_samples)
            cache = self._d_codes
            if cache is not None:  # D's codes of every training item, computed once
                h_q = cache[qm][q]
                hx = lambda idx: cache[xm][idx]  # noqa: E731
            else:
                h_q = self.D.encode(self.F[qm][q], qm)
                hx = lambda idx: self.D.encode(self.F[xm][idx.reshape(-1)], xm).view(  # noqa: E731
                    len(q), -1, cfg.bits)
            f = triplet_score(sq_dist(h_q, hx(pos)), sq_dist(h_q, hx(items)), cfg.margin)
            r = reward(f, cfg.reward)  # (b, S)
            base = r.mean(1, keepdim=True) if cfg.reward_baseline else None
        loss = reinforce_loss(logp, r, base)
        self.opt_g.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_g.step()
        return loss.detach(), r

    @torch.no_grad()
    def _all_codes(self, model: CrossModalHashNet, batch: int = 4096) -> dict[str, torch.Tensor]:
        """Relaxed codes ``h`` of every training item, ``{"img"|"txt": (n_fit, l)}``, in
        batches (the hidden layer of all items at once would need n x hidden floats)."""
        return {m: torch.cat([model.encode(self.F[m][s:s + batch], m)
                              for s in range(0, len(self.fit_idx), batch)])
                for m in ("img", "txt")}

    def _discriminator_codes(self) -> dict[str, torch.Tensor]:
        """D's relaxed codes ``h`` of every training item, ``{"img"|"txt": (n_fit, l)}``."""
        return self._all_codes(self.D)

    def train_generator(self) -> tuple[float, float]:
        """Step 4: ``g_epochs`` passes over all queries (both modalities), ``g_batch`` each.

        D does not change during these epochs, so its codes of every training item are
        computed once here and reused by every step's reward."""
        losses, rewards = [], []
        self._d_codes = self._discriminator_codes()
        try:
            for _ in range(self.cfg.g_epochs):
                for qm, xm in DIRECTIONS:
                    for q in self._batches(len(self.fit_idx), self.cfg.g_batch):
                        lo, re = self._generator_step(q, qm, xm)
                        losses.append(lo)
                        rewards.append(re.mean())
        finally:
            self._d_codes = None
        return _mean(losses), _mean(rewards)

    def adversarial_round(self) -> dict[str, Any]:
        t0 = time.perf_counter()
        triplets = self.sample_triplets()
        r = self.round + 1
        with self._stage(r, "D step", ("D",)):
            d_loss = self.train_discriminator(triplets)
        self._check_finite(r, "D step", {"d_loss": d_loss}, nets=("D",))
        logs: dict[str, Any] = {"round": r, "d_loss": d_loss}
        if r % self.cfg.eval_every == 0 or r == self.cfg.rounds:
            logs.update(self.validate())
        if self.cfg.g_epochs > 0 and self.cfg.negatives == "generator":  # "random": no G
            with self._stage(r, "G step", ("G",)):
                logs["g_loss"], logs["reward"] = self.train_generator()
            self._check_finite(r, "G step", {"g_loss": logs["g_loss"],
                                            "reward": logs["reward"]}, nets=("G",))
        logs["seconds"] = time.perf_counter() - t0
        return logs

    def fit(self, time_limit: float | None = None) -> list[dict[str, Any]]:
        """Pretrain D (unless resumed past it), run the remaining rounds.

        ``time_limit`` (seconds, >= 0): stop after the first round that ends past it
        (pretraining always runs to its end); :attr:`round` then says how many rounds ran,
        callbacks still get ``on_fit_end`` (a :class:`~ugach_core.callbacks.Checkpoint`
        writes the last round there), and another ``fit()`` or a resume continues exactly.
        Returns the history: one dict per pretraining epoch and per round.  The
        validation-selected D is :meth:`best_discriminator`; :attr:`D` stays the last one,
        so a resumed run continues exactly.  NaN/inf in a loss or a weight stops training
        with a :class:`DivergenceError` naming the round and the stage."""
        if time_limit is not None and not time_limit >= 0:
            raise ValueError(f"time_limit must be >= 0 seconds, got {time_limit}")
        t_start = time.perf_counter()
        for cb in self.callbacks:
            cb.on_fit_start(self)
        if self.round < 0:
            self.pretrain()
            self.round = 0
            logs = {"round": 0, "stage": "pretrained", **self.validate()}
            self._consider_best(logs)
            self._end_round(logs)
        bar = tqdm(total=self.cfg.rounds, initial=self.round, desc=f"UGACH {self.cfg.bits} bits",
                   disable=not self.progress, leave=False)
        while self.round < self.cfg.rounds:
            logs = self.adversarial_round()
            self.round += 1
            logs["stage"] = "adversarial"
            if "val_map" in logs or len(self.val_idx) == 0:
                self._consider_best(logs)
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

    def _end_round(self, logs: dict[str, Any]) -> None:
        self.history.append(logs)  # callbacks may still add keys (e.g. test MAP) to it
        # checkpoints go last, so they hold every key the other callbacks added
        for cb in sorted(self.callbacks, key=lambda c: isinstance(c, Checkpoint)):
            cb.on_round_end(self, logs)

    # ----------------------------------------------------------------------- checkpoints
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume: config, weights, optimisers, RNG, round, history."""
        return {
            "format": "ugach-checkpoint", "version": __version__, "config": self.cfg.to_dict(),
            "seed": self.seed, "round": self.round, "history": copy.deepcopy(self.history),
            "dataset": {"name": self.data.name, "dims": list(self.data.dims), "n": self.data.n,
                        "fingerprint": self.data_fingerprint()},
            "fit_idx": torch.as_tensor(self.fit_idx), "val_idx": torch.as_tensor(self.val_idx),
            "G": self.G.state_dict(), "D": self.D.state_dict(),
            "opt_pre": self.opt_pre.state_dict(), "opt_d": self.opt_d.state_dict(),
            "opt_g": self.opt_g.state_dict(), "rng": self.gen.get_state(),
            "best_state": self.best_state, "best_score": self.best_score,
            "best_round": self.best_round,
        }

    def data_fingerprint(self) -> str:
        """:func:`~ugach_core.cache.data_fingerprint` of the data (features and labels),
        computed once; stored in checkpoints so a resume on other data is refused."""
        if self._fingerprint is None:
            self._fingerprint = data_fingerprint(self.data)
        return self._fingerprint

    def save_checkpoint(self, path: str | Path) -> Path:
        """Write :meth:`state_dict` to ``path`` atomically (temp file + rename).

        Weights with NaN/inf are never written: a :class:`DivergenceError` instead, and
        ``path`` keeps its last good checkpoint."""
        bad = self._nonfinite({}, ("D", "G"))
        if bad:
            raise DivergenceError(
                f"round {self.round}: not writing checkpoint {path}, which keeps its last good "
                f"state: {'; '.join(bad)} (changed after the round's own checks, e.g. by a "
                "callback). Find what broke the weights, then resume from that file")
        sd = self.state_dict()
        return atomic_write(path, lambda tmp: torch.save(sd, tmp))

    def load_state_dict(self, sd: dict[str, Any]) -> None:
        self.G.load_state_dict(sd["G"])
        self.D.load_state_dict(sd["D"])
        self.opt_pre.load_state_dict(sd["opt_pre"])
        self.opt_d.load_state_dict(sd["opt_d"])
        self.opt_g.load_state_dict(sd["opt_g"])
        self.gen.set_state(sd["rng"])
        self.round, self.history = sd["round"], copy.deepcopy(sd["history"])
        self.best_state, self.best_score = sd["best_state"], sd["best_score"]
        self.best_round = sd["best_round"]

    @classmethod
    def resume(cls, path: str | Path, data: CrossModalDataset, **kwargs: Any) -> "Trainer":
        """A trainer restored from a checkpoint written by :meth:`save_checkpoint`;
        ``fit()`` then runs the remaining rounds.

        Resuming needs the data the checkpoint was trained on (same features and labels:
        its fingerprint is checked) and the same split into fitted and validation pairs
        (same ``seed``, ``val_fraction`` and training pairs); anything else is a
        :class:`CheckpointError`, since the saved graph, optimiser state and best
        validation score would not belong to the new split."""
        sd = read_checkpoint(path, data, resume=True)
        cfg = UGACHConfig.from_dict(sd["config"])
        kwargs.setdefault("seed", sd["seed"])
        fp = sd["dataset"].get("fingerprint")  # absent in checkpoints of older versions
        if fp is not None and fp != data_fingerprint(data):
            raise CheckpointError(
                f"{path} was trained on different data ({sd['dataset'].get('name')}, "
                f"fingerprint {fp}) than the data given ({data.name}, fingerprint "
                f"{data_fingerprint(data)}): same shape, other features or labels. Resume "
                "with the data it was trained on, or start a new run")
        trainer = cls(cfg, data, **kwargs)
        if not (np.array_equal(trainer.fit_idx, sd["fit_idx"].numpy())
                and np.array_equal(trainer.val_idx, sd["val_idx"].numpy())):
            raise CheckpointError(
                f"{path} was trained on a different split of this data set into fitted and "
                f"validation pairs ({len(sd['fit_idx'])} + {len(sd['val_idx'])} pairs; here "
                f"{len(trainer.fit_idx)} + {len(trainer.val_idx)}). Resume with the "
                f"checkpoint's seed={sd['seed']} and val_fraction={cfg.val_fraction} on the "
                "same training pairs, or start a new run")
        trainer._fingerprint = fp
        trainer.load_state_dict(sd)
        return trainer


def _mean(values: list[torch.Tensor]) -> float:
    """Mean of per-step scalars kept on the device (one transfer instead of one per step)."""
    return float(torch.stack(values).double().mean().item()) if values else float("nan")


def read_checkpoint(path: str | Path, data: CrossModalDataset | None = None,
                    resume: bool = False) -> dict[str, Any]:
    """Read and check a checkpoint; a clear :class:`CheckpointError` when it is missing,
    corrupt, not a UGACH checkpoint, incomplete (it lacks what encoding needs, or with
    ``resume=True`` what resuming needs), or made for other feature dimensions."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise CheckpointError(f"checkpoint {path} is corrupt or unreadable ({type(e).__name__}: "
                              f"{str(e)[:200]}); retrain or use an earlier checkpoint") from e
    if not isinstance(sd, dict) or sd.get("format") != "ugach-checkpoint":
        raise CheckpointError(f"{path} is not a UGACH checkpoint (no 'format' tag)")
    missing = sorted(k for k in (_RESUME_KEYS if resume else _MODEL_KEYS) if k not in sd)
    if missing:
        need = "resuming" if resume else "loading its discriminator"
        raise CheckpointError(
            f"checkpoint {path} lacks {missing}, which {need} needs: it is incomplete (cut "
            "short, or not written by Trainer.save_checkpoint). Use a complete checkpoint "
            "(an earlier one, e.g. Checkpoint(keep_all=True) files) or retrain")
    if data is not None and list(data.dims) != list(sd["dataset"]["dims"]):
        raise CheckpointError(
            f"checkpoint {path} was trained on features of dims {sd['dataset']['dims']} "
            f"({sd['dataset']['name']}); the data given has {list(data.dims)} ({data.name})")
    return sd


def load_discriminator(path: str | Path, data: CrossModalDataset | None = None,
                       bits: int | None = None, device: str | torch.device | None = None
                       ) -> Discriminator:
    """The validation-selected D of a checkpoint (for encoding / evaluation).

    ``bits``: when given, must match the checkpoint's code length."""
    sd = read_checkpoint(path, data)
    cfg = UGACHConfig.from_dict(sd["config"])
    if bits is not None and bits != cfg.bits:
        raise CheckpointError(f"checkpoint {path} has {cfg.bits}-bit codes, not {bits}; pass "
                              f"--bits {cfg.bits} or pick the checkpoint of {bits} bits")
    d_img, d_txt = sd["dataset"]["dims"]
    model = Discriminator(d_img, d_txt, cfg.bits, cfg.hidden)
    model.load_state_dict(sd["best_state"] if sd.get("best_state") is not None else sd["D"])
    return model.to(get_device(device))
