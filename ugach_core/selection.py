"""Model selection on the validation split: MAP of a net's codes, and the best state kept.

The same rule serves pretraining (best epoch) and the adversarial rounds (best round):
keep a copy of the weights whenever the validation MAP beats the best so far; without a
validation split the last state is kept.  Test data is never looked at.  Chapter 7.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np
import torch

from .evaluation import two_way_map
from .model import CrossModalHashNet
from .retrieval import encode

#: (query modality, item modality) of image->text and text->image retrieval
DIRECTIONS: dict[str, tuple[str, str]] = {"i2t": ("img", "txt"), "t2i": ("txt", "img")}


@torch.no_grad()
def retrieval_map(model: CrossModalHashNet, features: Mapping[str, torch.Tensor],
                  labels: np.ndarray, q_idx: np.ndarray, db_idx: np.ndarray,
                  topk: int | None = None) -> dict[str, float]:
    """:func:`~ugach_core.evaluation.two_way_map` of ``model``'s binary codes of the
    ``features`` rows ``q_idx`` (queries) and ``db_idx`` (database). Chapter 7."""
    codes = {m: np.zeros((len(labels), model.bits), bool) for m in features}
    for m, x in features.items():
        for idx in (q_idx, db_idx):
            codes[m][idx] = encode(model, x[torch.as_tensor(idx, device=x.device)], m)
    return two_way_map(codes, labels, q_idx, db_idx, topk)


class BestState:
    """Keeps the weights with the best validation score seen so far.

    :meth:`consider` with ``score=None`` (no validation split) always keeps the state,
    so the last one wins. Chapter 7."""

    def __init__(self) -> None:
        self.score = -math.inf
        self.round = -1
        self.state: dict[str, torch.Tensor] | None = None

    def consider(self, model: torch.nn.Module, score: float | None, round_: int) -> bool:
        """Keep ``model``'s weights if ``score`` beats the best (or is None); True if kept."""
        if score is not None and not score > self.score:
            return False
        if score is not None:
            self.score = score
        self.round = round_
        self.state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        return True

    def state_dict(self) -> dict[str, Any]:
        return {"best_state": self.state, "best_score": self.score, "best_round": self.round}

    def load_state_dict(self, sd: Mapping[str, Any]) -> None:
        self.state, self.score = sd["best_state"], sd["best_score"]
        self.round = sd["best_round"]


__all__ = ["BestState", "DIRECTIONS", "retrieval_map"]
