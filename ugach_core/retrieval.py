"""Binary codes and Hamming ranking on bit-packed codes.

Codes are packed 64 bits to a word; the Hamming distance of two codes is
:math:`d_H(b_q, b_x) = \\sum_w \\operatorname{popcount}(b_q^{(w)} \\oplus b_x^{(w)})`.
Ranking sorts by Hamming distance and breaks ties by database index, so every ranking
(and every MAP) is deterministic.  Derived in chapter 1 ("Cross-modal retrieval in
Hamming space").
"""

from __future__ import annotations

import numpy as np
import torch

from .model import CrossModalHashNet


def pack_codes(codes: np.ndarray | torch.Tensor) -> np.ndarray:
    """``codes (n, l)`` in {0, 1} (bool or int) -> ``(n, ceil(l / 64))`` uint64 words."""
    c = codes.detach().cpu().numpy() if torch.is_tensor(codes) else np.asarray(codes)
    if c.ndim != 2:
        raise ValueError(f"codes must be 2-D (items x bits), got shape {c.shape}")
    if c.dtype != bool:
        if not np.isin(c, (0, 1)).all():
            raise ValueError("codes must contain only 0/1 (or be boolean); got other values. "
                             "Binarise with h > 0.5 first")
        c = c.astype(bool)
    n, bits = c.shape
    words = -(-bits // 64)
    padded = np.zeros((n, words * 64), dtype=bool)
    padded[:, :bits] = c
    return np.packbits(padded, axis=1).view(">u8").astype(np.uint64)


def hamming_distance(q_packed: np.ndarray, db_packed: np.ndarray, block: int = 512
                     ) -> np.ndarray:
    """All Hamming distances between packed codes: ``(Q, W)`` x ``(N, W)`` -> ``(Q, N)`` int32.

    Popcount of XOR (``numpy.bitwise_count``), computed ``block`` queries at a time.
    """
    if q_packed.ndim != 2 or db_packed.ndim != 2 or q_packed.shape[1] != db_packed.shape[1]:
        raise ValueError(
            f"packed codes must be 2-D with the same number of words; got {q_packed.shape} "
            f"and {db_packed.shape} (different code lengths?)"
        )
    out = np.empty((q_packed.shape[0], db_packed.shape[0]), dtype=np.int32)
    for s in range(0, q_packed.shape[0], block):
        x = q_packed[s:s + block, None, :] ^ db_packed[None, :, :]
        out[s:s + block] = np.bitwise_count(x).sum(-1, dtype=np.int32)
    return out


def rank_by_hamming(dist: np.ndarray, topk: int | None = None) -> np.ndarray:
    """Database indices ordered by ``(Hamming distance, index)`` per query: ``(Q, N or k)``."""
    n = dist.shape[1]
    key = dist.astype(np.int64) * n + np.arange(n, dtype=np.int64)[None, :]
    if topk is None or topk >= n:
        return np.argsort(key, axis=1)
    part = np.argpartition(key, topk - 1, axis=1)[:, :topk]
    order = np.argsort(np.take_along_axis(key, part, 1), axis=1)
    return np.take_along_axis(part, order, 1)


@torch.no_grad()
def encode(model: CrossModalHashNet, x: np.ndarray | torch.Tensor, modality: str,
           batch: int = 4096, device: str | torch.device | None = None) -> np.ndarray:
    """Binary codes ``(n, l)`` bool of features ``x`` through ``model``'s ``modality`` net."""
    net = model.net(modality)
    dev = device or next(net.parameters()).device
    was_training = net.training
    net.eval()
    xt = torch.as_tensor(np.asarray(x, dtype=np.float32) if not torch.is_tensor(x) else x)
    out = [net.codes(xt[s:s + batch].to(dev)).cpu() for s in range(0, xt.shape[0], batch)]
    net.train(was_training)
    return torch.cat(out).numpy()
