"""One frozen configuration dataclass and its named presets.

Every run prints its config first (``print(cfg)``), so a result can always be traced
back to the exact settings.  Presets: :func:`paper` (the authors' released code),
:func:`paper_text` (the formulas printed in the paper), :func:`fast` (batched, a fraction
of the time), :func:`tuned` (``fast`` as chapter 10's study chose), :func:`smoke` (seconds,
for tests and ``UGACH_SMOKE=1``).  Derived in chapter 7 ("Presets: paper, paper_text, fast").
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import functools
import os
import textwrap
import typing
from dataclasses import dataclass, field
from typing import Any, Literal

PRESETS = ("paper", "paper_text", "fast", "tuned", "smoke")
VALID_BITS_RANGE = (1, 4096)
# integer fields and their smallest value (0: the step may be skipped, e.g. rounds=0 is the
# pretrained D alone, g_epochs=0 a frozen G; a round always has a D step)
_INT_MIN = {"hidden": 1, "k_img": 0, "k_txt": 0, "pretrain_epochs": 0, "pretrain_batch": 1,
            "rounds": 0, "d_epochs": 1, "g_epochs": 0, "d_batch": 1, "g_batch": 1,
            "pool_min": 1, "n_samples": 1, "eval_every": 1, "fn_guard": 0}
# real fields: True if they must be > 0, False if >= 0 (always finite)
_REAL_MIN0 = {"init_std": True, "margin": False, "weight_decay": False, "pretrain_lr": True,
              "d_lr": True, "g_lr": True, "temperature": True}


def _is_int(v: Any) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _is_real(v: Any) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


@dataclass(frozen=True)
class UGACHConfig:
    """All settings of one UGACH run.

    Attributes mirror the symbols of the paper: ``bits`` is the code length :math:`l`,
    ``margin`` is :math:`m` (paper) or :math:`\\beta = l/8` (authors' code). Chapter 7.
    """

    preset: str = "custom"  # a label: each preset sets its name, a config built by hand is custom
    bits: int = 32
    # --- model -----------------------------------------------------------------------
    hidden: int = 8192  # width of phi_c
    init_std: float = 0.1  # truncated-normal std of every weight (biases 0), as the authors
    # --- correlation graph ----------------------------------------------------------
    k_img: int = 5  # neighbours taken from image space (self included)
    k_txt: int = 5  # neighbours taken from text space (self included)
    graph_metric: Literal["euclidean", "cosine"] = "euclidean"
    # raw features (authors), z-scored, or scaled to the authors' mean input norm ("fc7")
    feature_norm: Literal["none", "zscore", "fc7"] = "none"
    # --- objective -------------------------------------------------------------------
    margin: float = 4.0  # m (paper: 1) or beta = l/8 (code)
    reward: Literal["sigmoid", "log"] = "sigmoid"  # sigmoid(f) (code) or -log(1-D) (paper)
    d_loss: Literal["hinge", "log"] = "hinge"  # f (code) or -log(1 - sigmoid(f)) (paper)
    g_softmax: Literal["sampled", "pool"] = "sampled"  # normaliser of log p_theta
    reward_baseline: bool = False  # subtract the per-query mean reward (variance reduction)
    # --- optimisation ------------------------------------------------------------------
    optimizer: Literal["sgd", "adam"] = "sgd"
    weight_decay: float = 0.01
    pretrain_epochs: int = 20
    pretrain_lr: float = 0.01
    pretrain_batch: int = 20
    rounds: int = 30
    d_epochs: int = 1
    g_epochs: int = 2
    d_lr: float = 1e-3
    g_lr: float = 1e-2
    d_batch: int = 1  # triplets per D step
    # D's round batches: random triplets ("random"), or whole queries ("query": the
    # n_samples triplets of d_batch // n_samples queries, each query encoded once)
    d_batches: Literal["random", "query"] = "random"
    g_batch: int = 1  # queries per G step
    pool_fraction: float = 1 / 50  # candidate pool = this fraction of the training set
    pool_min: int = 20
    n_samples: int = 2  # G samples (= D negatives) per query and round
    temperature: float = 1.0  # of G's softmax over -d
    # first layers' SGD updates: by autograd and the optimiser, or "deferred" as a scale and
    # a low-rank product (same result, ugach_core.deferred; plain SGD only)
    first_layer: Literal["autograd", "deferred"] = "autograd"
    # "generator": D's negatives are G's picks (UGACH); "random": uniformly random
    # non-neighbours from the pool and no G step (the "no GAN" ablation, chapter 10)
    # "mixed": half of each query's negatives from G, half uniform (a false-negative remedy)
    negatives: Literal["generator", "random", "mixed"] = "generator"
    # manifold pairs x^M: uniform over the neighbour list's columns ("columns"), or each
    # listed item once and the n_samples of a query distinct ("distinct", authors' code)
    positives: Literal["columns", "distinct"] = "columns"
    # exclude manifold pairs from G's pool in G steps too (True), or only from D's
    # negatives (False, authors' code: G can be rewarded for finding a manifold pair)
    g_pool_mask: bool = True
    # pretraining negatives: a fresh random item per query and epoch ("fresh"), or one per
    # query drawn once for all epochs ("fixed", authors' code)
    pretrain_negatives: Literal["fresh", "fixed"] = "fresh"
    # false-negative remedies (0 / False: off).  fn_guard: D's negatives may not be among
    # the query's fn_guard nearest training items in D's code space (likely its class);
    # reward_band: a pick closer to q than its manifold pair (f > m) earns the reward of
    # f' = 2m - f, so G aims at the band around d(q, x^M) instead of "as close as possible"
    fn_guard: int = 0
    reward_band: bool = False
    # --- model selection -------------------------------------------------------------
    val_fraction: float = 0.1  # held-out training pairs used to pick the best D
    eval_every: int = 1  # rounds between validations
    extra: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        lo, hi = VALID_BITS_RANGE
        if not _is_int(self.bits) or not lo <= self.bits <= hi:
            raise ValueError(f"bits must be an integer in [{lo}, {hi}], got {self.bits!r}")
        for name, least in _INT_MIN.items():
            value = getattr(self, name)
            if not _is_int(value) or value < least:
                raise ValueError(f"{name} must be an integer >= {least}, got {value!r}")
        if self.k_img + self.k_txt < 1:
            raise ValueError("k_img and k_txt must not both be 0: the correlation graph needs "
                             "neighbours from at least one modality")
        for name, strict in _REAL_MIN0.items():
            value = getattr(self, name)
            ok = _is_real(value) and math.isfinite(value) and (value > 0 if strict else value >= 0)
            if not ok:
                raise ValueError(f"{name} must be a finite number {'>' if strict else '>='} 0, "
                                 f"got {value!r}")
        for name, allowed in _choices().items():  # the Literal[...] fields
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")
        if not (_is_real(self.pool_fraction) and 0 < self.pool_fraction <= 1):
            raise ValueError(f"pool_fraction must be in (0, 1], got {self.pool_fraction}")
        for name in ("g_pool_mask", "reward_band", "reward_baseline"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be True or False, got {getattr(self, name)!r}")
        if self.first_layer == "deferred" and self.optimizer != "sgd":
            raise ValueError("first_layer='deferred' needs optimizer='sgd' (plain SGD's update "
                             "is a scale and a low-rank product; Adam's is not)")
        if not (_is_real(self.val_fraction) and 0 <= self.val_fraction < 1):
            raise ValueError(f"val_fraction must be in [0, 1) (0: no validation split), got "
                             f"{self.val_fraction}")

    def replace(self, **changes: Any) -> "UGACHConfig":
        """A copy with some fields changed (the config itself is frozen)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "UGACHConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown config fields {sorted(unknown)}; known: {sorted(names)}")
        return cls(**d)

    def __str__(self) -> str:  # printed at the top of every run, lines of <= 88 characters
        items = ", ".join(f"{k}={v}" for k, v in self.to_dict().items() if k != "extra")
        return textwrap.fill(f"UGACHConfig({items})", 88, subsequent_indent=" " * 12)


@functools.cache
def _choices() -> dict[str, tuple[Any, ...]]:
    """The allowed values of every ``Literal[...]`` field of :class:`UGACHConfig`."""
    hints = typing.get_type_hints(UGACHConfig)
    return {k: typing.get_args(h) for k, h in hints.items() if typing.get_origin(h) is Literal}


def paper(bits: int = 32) -> UGACHConfig:
    """The authors' released code: margin ``l/8``, SGD, D batch 1, reward ``sigmoid(f)``,
    distinct positives from the de-duplicated neighbour list, G's pool not masked in G steps
    (only D's negatives avoid manifold pairs), one fixed negative per query in pretraining.

    The authors pretrain D in a separate script and keep its best checkpoint; the number of
    pretraining epochs (20 here) is ours, the best epoch is picked on validation.  The authors
    select on the test queries; here ``val_fraction`` (10 %) of the training pairs are held
    out for it, so D and G fit 13,500 of MIRFlickr's 15,000 pairs and the pool (1/50) holds
    270 items, not 300 (``val_fraction=0``: all 15,000 and 300, but no model selection).
    Not reproduced: the authors' D loop skips the first triplet of each epoch. Chapter 7."""
    return UGACHConfig(
        preset="paper", bits=bits, hidden=8192, margin=bits / 8, reward="sigmoid",
        d_loss="hinge", g_softmax="sampled", optimizer="sgd", weight_decay=0.01,
        pretrain_epochs=20, pretrain_lr=0.01, pretrain_batch=20, rounds=30, d_epochs=1,
        g_epochs=2, d_lr=1e-3, g_lr=1e-2, d_batch=1, g_batch=1, pool_fraction=1 / 50,
        n_samples=2, positives="distinct", g_pool_mask=False, pretrain_negatives="fixed",
        first_layer="deferred",
    )


def paper_text(bits: int = 32) -> UGACHConfig:
    """The paper's formulas: ``m = 1``, ``log D`` value, G softmax over the pool. Chapter 7."""
    return paper(bits).replace(preset="paper_text", margin=1.0, reward="log", d_loss="log",
                               g_softmax="pool")


def fast(bits: int = 32) -> UGACHConfig:
    """Batched UGACH: Adam, 256 triplets / queries a step, z-scored inputs, hidden 1024.

    Chapter 10's study (32 bits, 5 seeds, test MAP gain over the pretrained D): on the real
    sets no generator beats uniform negatives (CUB-10 +0.023 against +0.045, Wikipedia +0.003
    against +0.004; these settings gain +0.006 and +0.001); on the MIRFlickr-shaped SYNTHETIC
    set validation chooses `D lr 1e-3` (+0.011; `fast` +0.001), G ahead by under the seed spread."""
    return UGACHConfig(
        preset="fast", bits=bits, hidden=1024, margin=bits / 8, reward="sigmoid",
        d_loss="hinge", g_softmax="pool", reward_baseline=True, optimizer="adam",
        weight_decay=0.0, pretrain_epochs=50, pretrain_lr=1e-3, pretrain_batch=256,
        rounds=10, d_epochs=1, g_epochs=1, d_lr=1e-5, g_lr=1e-4, d_batch=256, g_batch=256,
        pool_fraction=1 / 10, n_samples=5, feature_norm="zscore")


def tuned(bits: int = 32) -> UGACHConfig:
    """`fast` with the rounds chapter 10's study chose: half of D's negatives uniform, none
    among D's 10 nearest items of the query, D's round learning rate 1e-3 (best mean
    validation MAP over the study's sets among configurations with a generator; test MAP
    gain over the pretrained D: CUB-10 +0.023, Wikipedia +0.000, MIRFlickr-shaped SYNTHETIC
    +0.010).  The command line's default."""
    return fast(bits).replace(preset="tuned", negatives="mixed", fn_guard=10, d_lr=1e-3)


def smoke(bits: int = 16) -> UGACHConfig:
    """Seconds on a CPU: tiny network, two rounds; tests and ``UGACH_SMOKE=1``. Chapter 7."""
    return fast(bits).replace(preset="smoke", hidden=64, pretrain_epochs=2, rounds=2,
                              pool_fraction=0.2, pool_min=8, n_samples=2)


def smoke_mode() -> bool:
    """True when the environment asks for the tiny configuration (``UGACH_SMOKE=1``). Chapter 7."""
    return os.environ.get("UGACH_SMOKE", "0").strip().lower() not in ("", "0", "false", "no")


def get_preset(name: str, bits: int = 32) -> UGACHConfig:
    """Look a preset up by name; under ``UGACH_SMOKE=1`` every preset is shrunk to smoke's sizes.

    It keeps its name and every other setting (objective, sampling, optimiser) so the
    notebooks exercise the same code path, only smaller. Chapter 7.
    """
    table = {"paper": paper, "paper_text": paper_text, "fast": fast, "tuned": tuned,
             "smoke": smoke}
    if name not in table:
        raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    cfg = table[name](bits)
    if smoke_mode() and name != "smoke":
        small = smoke(bits)
        cfg = cfg.replace(
            hidden=small.hidden, pretrain_epochs=small.pretrain_epochs, rounds=small.rounds,
            pool_fraction=small.pool_fraction, pool_min=small.pool_min,
            d_epochs=1, g_epochs=1, d_batch=max(cfg.d_batch, 64), g_batch=max(cfg.g_batch, 64),
            pretrain_batch=max(cfg.pretrain_batch, 64),
        )
    return cfg
