"""Binary codes and Hamming ranking on bit-packed codes.

Codes are packed 64 bits to a word (:class:`PackedCodes`, which carries the code length
:math:`l`, so codes of different lengths are never compared); the Hamming distance of two
codes is :math:`d_H(b_q, b_x) = \\sum_w \\operatorname{popcount}(b_q^{(w)} \\oplus b_x^{(w)})`.
Ranking sorts by Hamming distance and breaks ties by database index, so every ranking
(and every MAP) is deterministic.  Derived in chapter 1 ("Cross-modal retrieval in
Hamming space").

Speed: distances are small integers (:math:`0 \\dots l`), so they are kept in ``uint8``
(``uint16`` above 192 bits, three 64-bit words), a full ranking is a linear-time stable radix sort
(``numpy.argsort(kind="stable")`` on 8/16-bit keys), and a top-``k`` ranking only sorts the
items within the ``k``-th smallest radius.  Blocks of queries run on several threads (NumPy
releases the GIL), and memory stays ``O(block * N)``.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, TypeVar

import numpy as np
import torch

from .model import CrossModalHashNet

T = TypeVar("T")
_BLOCK_ELEMS = 1 << 22  # query x database pairs per block (4 Mi: a few MB of temporaries)
_CACHE_WORDS = 1 << 16  # uint64 XOR temporaries per slice (512 KB: stays in L2)


class PackedCodes(np.ndarray):
    """Binary codes packed 64 bits to a word, ``(n, ceil(l / 64))`` uint64, that know their
    code length ``bits`` (:math:`l`).

    24-bit and 32-bit codes both fill one word, so the word count alone cannot tell them
    apart; every Hamming function compares ``bits`` instead.  Bit ``j`` of a code is bit
    ``63 - j % 64`` of word ``j // 64`` (big-endian), and the padding after bit ``l - 1`` is
    zero.  An ``ndarray`` subclass: row slices and row indexing keep ``bits``, as does
    pickling (``torch.save``).  Made by :func:`pack_codes`, or from words packed elsewhere
    with ``PackedCodes(words, bits)``, which checks the word count and the padding. Chapter 1.
    """

    bits: int | None

    def __new__(cls, words: np.ndarray, bits: int) -> "PackedCodes":
        w = np.asarray(words)
        if w.ndim != 2 or w.dtype != np.uint64:
            raise ValueError(f"packed words must be a 2-D uint64 array (items x words), got "
                             f"shape {w.shape} and dtype {w.dtype}")
        if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)) or bits < 1:
            raise ValueError(f"bits must be a positive integer, got {bits!r}")
        bits = int(bits)
        if w.shape[1] != -(-bits // 64):
            raise ValueError(f"{bits} bits need {-(-bits // 64)} words, got {w.shape[1]}")
        pad = 64 * w.shape[1] - bits
        if pad and w.shape[0] and (w[:, -1] & np.uint64((1 << pad) - 1)).any():
            raise ValueError(f"padding bits after the first {bits} bits are set: these words "
                             f"hold codes longer than {bits} bits")
        out = w.view(cls)
        out.bits = bits
        return out

    def __array_finalize__(self, obj: Any) -> None:
        self.bits = getattr(obj, "bits", None)

    def __reduce__(self) -> tuple:
        fn, args, state = super().__reduce__()
        return fn, args, (state, self.bits)

    def __setstate__(self, state: tuple) -> None:
        nd_state, self.bits = state
        super().__setstate__(nd_state)


def pack_codes(codes: np.ndarray | torch.Tensor) -> PackedCodes:
    """``codes (n, l)`` in {0, 1} (bool or int) -> :class:`PackedCodes` ``(n, ceil(l / 64))``
    uint64 words with ``bits = l``. Chapter 1."""
    if isinstance(codes, PackedCodes):
        raise ValueError("codes are already packed (a PackedCodes array); pass them as they are")
    c = codes.detach().cpu().numpy() if torch.is_tensor(codes) else np.asarray(codes)
    if c.ndim != 2:
        raise ValueError(f"codes must be 2-D (items x bits), got shape {c.shape}")
    if c.shape[1] == 0:
        raise ValueError(f"codes have no bits (shape {c.shape})")
    if c.dtype != bool:
        if not np.isin(c, (0, 1)).all():
            hint = (" (already packed words? wrap them with PackedCodes(words, bits))"
                    if c.dtype == np.uint64 else "")
            raise ValueError("codes must contain only 0/1 (or be boolean); got other values. "
                             f"Binarise with h > 0.5 first{hint}")
        c = c.astype(bool)
    n, bits = c.shape
    words = -(-bits // 64)
    padded = np.zeros((n, words * 64), dtype=bool)
    padded[:, :bits] = c
    return PackedCodes(np.packbits(padded, axis=1).view(">u8").astype(np.uint64), bits)


def as_packed(codes: np.ndarray | torch.Tensor, what: str = "codes") -> PackedCodes:
    """``codes`` as :class:`PackedCodes`: packed codes pass through, 0/1 codes ``(n, l)``
    are packed with :func:`pack_codes`.  A plain uint64 array is refused: it may be packed
    words, whose code length is unknown.  ``what`` names the argument in errors. Chapter 1."""
    if isinstance(codes, PackedCodes):
        if codes.bits is None or codes.ndim != 2:
            raise ValueError(f"{what}: packed codes must be 2-D with a code length, got shape "
                             f"{codes.shape}, bits {codes.bits}; pack them with pack_codes")
        return codes
    if not torch.is_tensor(codes) and np.asarray(codes).dtype == np.uint64:
        raise ValueError(f"{what} is a plain uint64 array with no code length: 24-bit and "
                         "32-bit codes both fill one word. Pack 0/1 codes with "
                         "pack_codes(codes), or wrap packed words with PackedCodes(words, bits) "
                         "(0/1 codes stored as uint64: cast them to bool)")
    return pack_codes(codes)


def check_code_lengths(q_packed: PackedCodes, db_packed: PackedCodes) -> int:
    """The common code length of query and database codes, or a ``ValueError`` naming
    both lengths when they differ. Chapter 1."""
    if q_packed.bits != db_packed.bits:
        raise ValueError(f"query codes have {q_packed.bits} bits but database codes have "
                         f"{db_packed.bits} bits; encode queries and database with models of "
                         "the same code length")
    return int(q_packed.bits)


def _dist_dtype(words: int) -> np.dtype:
    """Smallest unsigned type that holds a distance of ``64 * words`` bits."""
    return np.dtype(np.uint8) if 64 * words <= 255 else np.dtype(np.uint16)


def _hamming_block(q: np.ndarray, db_t: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """``q (b, W)`` uint64, ``db_t (W, N)`` uint64 (word-major) -> ``(b, N)`` distances.

    The database is walked in slices that keep the XOR temporaries in the core's cache."""
    b, n = q.shape[0], db_t.shape[1]
    out = np.empty((b, n), dtype=dtype)
    step = max(1024, _CACHE_WORDS // max(b, 1))
    x = np.empty((b, min(step, n)), dtype=np.uint64)
    cnt = np.empty((b, min(step, n)), dtype=np.uint8)
    direct = db_t.shape[0] == 1 and dtype == np.uint8  # one word: count straight into out
    for c0 in range(0, n, step):
        c1 = min(n, c0 + step)
        xs, cs, os_ = x[:, :c1 - c0], cnt[:, :c1 - c0], out[:, c0:c1]
        for w in range(db_t.shape[0]):
            np.bitwise_xor(q[:, w, None], db_t[w, None, c0:c1], out=xs)
            if direct:
                np.bitwise_count(xs, out=os_)
            elif w == 0:
                np.bitwise_count(xs, out=cs)
                os_[...] = cs
            else:
                np.bitwise_count(xs, out=cs)
                np.add(os_, cs, out=os_, casting="unsafe")
    return out


def _threads() -> int:
    return max(1, min(torch.get_num_threads(), os.cpu_count() or 1))


def _query_blocks(nq: int, n_db: int, block: int | None) -> list[tuple[int, int]]:
    size = block if block is not None else max(1, min(nq, _BLOCK_ELEMS // max(n_db, 1)))
    return [(s, min(nq, s + size)) for s in range(0, nq, size)]


def _map_blocks(fn: Callable[[int, int], T], blocks: list[tuple[int, int]]) -> list[T]:
    """``fn(s, e)`` for every block, on a few threads, results in block order."""
    if len(blocks) <= 1 or _threads() == 1:
        return [fn(s, e) for s, e in blocks]
    with ThreadPoolExecutor(_threads()) as pool:
        return list(pool.map(lambda se: fn(*se), blocks))


def hamming_blocks(q_codes: PackedCodes | np.ndarray, db_codes: PackedCodes | np.ndarray,
                   fn: Callable[[int, int, np.ndarray], T], block: int | None = None
                   ) -> list[T]:
    """``[fn(s, e, d_H(q[s:e], db)), ...]`` over blocks of queries, in block order.

    The one speed path of every Hamming computation (:func:`hamming_distance`,
    :func:`hamming_topk`, the metrics): codes (packed or 0/1, same code length :math:`l`)
    ``(Q, l)``, ``(N, l)``; each block's distances ``(e - s, N)`` are popcounts of XOR in
    an unsigned type that holds :math:`l` (uint8 up to 192 bits, else uint16).
    ``block`` queries at a time (default: about 4 M pairs per block), on a few threads. Chapter 1.
    """
    q, db = as_packed(q_codes, "query codes"), as_packed(db_codes, "database codes")
    check_code_lengths(q, db)
    q, db = np.asarray(q), np.asarray(db)  # plain words from here on
    dt = _dist_dtype(q.shape[1])
    db_t = np.ascontiguousarray(db.T)
    return _map_blocks(lambda s, e: fn(s, e, _hamming_block(q[s:e], db_t, dt)),
                       _query_blocks(len(q), len(db), block))


def hamming_distance(q_packed: PackedCodes | np.ndarray, db_packed: PackedCodes | np.ndarray,
                     block: int | None = None) -> np.ndarray:
    """All Hamming distances :math:`d_H(b_q, b_x)`: ``(Q, l)`` x ``(N, l)`` -> ``(Q, N)``
    int32, through :func:`hamming_blocks` (packed or 0/1 codes of one code length). Chapter 1."""
    out = np.empty((len(q_packed), len(db_packed)), dtype=np.int32)

    def fn(s: int, e: int, d: np.ndarray) -> None:
        out[s:e] = d

    hamming_blocks(q_packed, db_packed, fn, block)
    return out


def _small_uint(dist: np.ndarray) -> np.ndarray | None:
    """``dist`` as uint8/uint16 when it holds non-negative integers that fit, else None."""
    if dist.dtype in (np.uint8, np.uint16):
        return dist
    if not np.issubdtype(dist.dtype, np.integer) or dist.size == 0:
        return None
    lo, hi = int(dist.min()), int(dist.max())
    if lo < 0 or hi > np.iinfo(np.uint16).max:
        return None
    return dist.astype(np.uint8 if hi <= 255 else np.uint16)


def _topk_small(d: np.ndarray, k: int) -> np.ndarray:
    """First ``k`` of the ``(distance, index)`` order of every row of small-integer ``d``.

    Per row: a radius ``r`` with at least ``k`` items at distance <= r (guessed from a
    histogram of a sample of the row, then checked by counting), the items within ``r``
    (in index order), a stable sort of those by distance.  Exact whatever the guess: a
    guess too small is raised until the count reaches ``k``."""
    b, n = d.shape
    out = np.empty((b, k), dtype=np.int64)
    m = min(n, 1 << 16)
    for i in range(b):
        row = d[i]
        cum = np.cumsum(np.bincount(row[:m]))
        # radius where the sample predicts 2k + 16 items in the full row
        r = int(np.searchsorted(cum * (n / m), 2 * k + 16))
        within = row <= r
        while np.count_nonzero(within) < k:  # ends: at r = max distance every item counts
            r += 1
            within = row <= r
        cand = np.flatnonzero(within)
        out[i] = cand[np.argsort(row[cand], kind="stable")[:k]]
    return out


def _rank_rows(d: np.ndarray, topk: int | None) -> np.ndarray:
    n = d.shape[1]
    small = _small_uint(d)
    if small is not None:
        if topk is None or topk >= n or topk * 8 > n:
            order = np.argsort(small, axis=1, kind="stable")  # radix sort: O(N) per row
            return order if topk is None or topk >= n else order[:, :topk]
        return _topk_small(small, topk)
    key = d.astype(np.int64) * n + np.arange(n, dtype=np.int64)[None, :]
    if topk is None or topk >= n:
        return np.argsort(key, axis=1)
    part = np.argpartition(key, topk - 1, axis=1)[:, :topk]
    order = np.argsort(np.take_along_axis(key, part, 1), axis=1)
    return np.take_along_axis(part, order, 1)


def rank_by_hamming(dist: np.ndarray, topk: int | None = None) -> np.ndarray:
    """Database indices ordered by ``(Hamming distance, index)`` per query: ``(Q, N or k)``.

    Integer distances in ``[0, 65535]`` use a stable radix sort (full ranking) or a
    radius-bounded selection (``topk``); other inputs an ``argsort`` of the unique keys
    ``d * N + index``.  Both give the same order. Chapter 1."""
    dist = np.asarray(dist)
    if dist.ndim != 2 or (dist.dtype.kind == "f" and not np.isfinite(dist).all()):
        raise ValueError(f"dist must be a finite 2-D array (queries x items), got shape "
                         f"{dist.shape}" + (" with NaN/inf" if dist.ndim == 2 else ""))
    if topk is not None and (isinstance(topk, bool) or not isinstance(topk, (int, np.integer))
                             or topk < 1):
        raise ValueError(f"topk must be an integer >= 1 (or None), got {topk!r}")
    return _rank_rows(dist, topk)


def _faiss():
    """The faiss module when it is installed (optional: ``pip install faiss-cpu``), else None."""
    try:
        import faiss  # noqa: PLC0415
    except ImportError:
        return None
    return faiss


def hamming_topk(q_packed: PackedCodes | np.ndarray, db_packed: PackedCodes | np.ndarray, k: int,
                 block: int | None = None, backend: str = "auto"
                 ) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` nearest database codes of every query, ties broken by database index.

    ``(Q, l)``, ``(N, l)`` codes (:class:`PackedCodes` or 0/1, the same code length ``l``)
    -> ``(indices (Q, k) int64, distances (Q, k) int32)``.
    Equal to ``rank_by_hamming(hamming_distance(q, db), k)`` without ever holding the
    ``(Q, N)`` matrix.

    ``backend``: ``"numpy"`` computes blocks of queries on a few threads; ``"faiss"`` uses
    faiss ``IndexBinaryFlat`` (an optional dependency) and re-sorts its top ``k`` by
    (distance, index): faiss's heap keeps the first-seen item among equal distances, i.e.
    the lowest index, so the result is the same (``tests/test_perf_paths.py`` checks this on
    tie-heavy codes); ``"auto"`` (default) takes faiss when it is installed, else numpy. Chapter 1.
    """
    q_packed, db_packed = as_packed(q_packed, "query codes"), as_packed(db_packed,
                                                                        "database codes")
    check_code_lengths(q_packed, db_packed)
    n = db_packed.shape[0]
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= n:
        raise ValueError(f"k must be an integer in [1, N={n}], got {k!r}")
    if backend not in ("auto", "numpy", "faiss"):
        raise ValueError(f"backend must be 'auto', 'numpy' or 'faiss', got {backend!r}")
    faiss = _faiss() if backend != "numpy" else None
    if backend == "faiss" and faiss is None:
        raise ImportError("backend='faiss' needs faiss: pip install faiss-cpu (or use "
                          "backend='numpy')")
    if faiss is not None:
        # d_H is the popcount of the XOR, whatever the byte order: view the words as bytes
        q8 = np.ascontiguousarray(q_packed).view(np.uint8)  # plain arrays: no ``bits``
        db8 = np.ascontiguousarray(db_packed).view(np.uint8)
        index = faiss.IndexBinaryFlat(db8.shape[1] * 8)
        index.add(db8)
        dist, idx = index.search(q8, k)
        order = np.lexsort((idx, dist), axis=-1)  # by distance, then by index
        return (np.take_along_axis(idx, order, 1).astype(np.int64),
                np.take_along_axis(dist, order, 1).astype(np.int32))
    idx = np.empty((len(q_packed), k), dtype=np.int64)
    dist = np.empty((len(q_packed), k), dtype=np.int32)

    def fn(s: int, e: int, d: np.ndarray) -> None:
        idx[s:e] = _rank_rows(d, k)
        dist[s:e] = np.take_along_axis(d, idx[s:e], 1)

    hamming_blocks(q_packed, db_packed, fn, block)
    return idx, dist


@torch.no_grad()
def encode(model: CrossModalHashNet, x: np.ndarray | torch.Tensor, modality: str,
           batch: int = 4096, device: str | torch.device | None = None) -> np.ndarray:
    """Binary codes ``(n, l)`` bool of ``x`` through ``model``'s ``modality`` net. Chapter 2."""
    net = model.net(modality)
    dev = device or next(net.parameters()).device
    was_training = net.training
    net.eval()
    xt = torch.as_tensor(np.asarray(x, dtype=np.float32) if not torch.is_tensor(x) else x)
    out = [net.codes(xt[s:s + batch].to(dev)).cpu() for s in range(0, xt.shape[0], batch)]
    net.train(was_training)
    return torch.cat(out).numpy()
