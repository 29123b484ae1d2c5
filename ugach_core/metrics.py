"""Retrieval metrics on Hamming rankings, vectorised over queries.

Relevance: a database item is relevant to a query when they share at least one label.
For a ranked list with relevance :math:`r_1, r_2, \\dots` (ties in Hamming distance broken
by database index):

.. math::

    P@i = \\frac{1}{i}\\sum_{j \\le i} r_j, \\qquad
    AP@k = \\frac{\\sum_{i \\le k} P@i \\; r_i}{\\sum_{i \\le k} r_i}, \\qquad
    MAP@k = \\frac{1}{|Q|} \\sum_q AP@k(q)

MAP@all is :math:`k = N` (the authors' code; the denominator is then the number of
relevant items).  MAP@k divides by the relevant items *retrieved in the top k* (the
DCMH/DJSRH convention).  A query with no relevant item in its list scores 0 and still
counts.  Derived in chapter 1.
"""

from __future__ import annotations

import numpy as np

from .retrieval import (as_packed, check_code_lengths, hamming_blocks, pack_codes,
                        rank_by_hamming)


def _pack_labels(labels: np.ndarray) -> np.ndarray | None:
    """Multi-hot labels ``(n, c)`` -> ``(n, W)`` bit sets of the positive entries (one
    uint8/16/32 word up to 32 classes, else uint64 words); None when some entry is negative
    (then only the matrix product is exact)."""
    lab = np.asarray(labels)
    if lab.size and lab.min() < 0:
        return None
    c = lab.shape[1]
    if c > 32:
        return np.asarray(pack_codes(lab > 0))  # plain words: a label set, not a code
    # the narrowest word that holds all classes: less memory traffic per comparison
    dt = np.uint8 if c <= 8 else np.uint16 if c <= 16 else np.uint32
    weights = (np.ones(1, dtype=dt) << np.arange(c, dtype=dt)).astype(dt)
    return ((lab > 0).astype(dt) * weights[None, :]).sum(1, dtype=dt)[:, None]


def relevance(labels_q: np.ndarray, labels_db: np.ndarray) -> np.ndarray:
    """``(Q, c)``, ``(N, c)`` multi-hot -> ``(Q, N)`` bool: share at least one label. Chapter 1."""
    lq, ld = _checked_labels(labels_q, "query"), _checked_labels(labels_db, "database")
    if lq.shape[1] != ld.shape[1]:
        raise ValueError(f"query labels have {lq.shape[1]} classes, database {ld.shape[1]}")
    pq, pd = _pack_labels(lq), _pack_labels(ld)
    if pq is None or pd is None:
        return (lq.astype(np.float32) @ ld.astype(np.float32).T) > 0
    return _shares_label(pq[:, None, :], pd[None, :, :])


def _checked_labels(labels: np.ndarray, what: str) -> np.ndarray:
    """``labels`` as a 2-D finite array, or a ``ValueError`` naming ``what``."""
    lab = np.asarray(labels)
    if lab.ndim != 2 or not np.issubdtype(lab.dtype, np.number) and lab.dtype != bool:
        raise ValueError(f"{what} labels must be a 2-D multi-hot array (items x classes), got "
                         f"shape {lab.shape} and dtype {lab.dtype}")
    if lab.dtype.kind == "f" and not np.isfinite(lab).all():
        raise ValueError(f"{what} labels contain NaN/inf; labels are 0/1 multi-hot")
    return lab


def _shares_label(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Broadcast ``a & b != 0`` over the last (word) axis, one word at a time."""
    if a.shape[-1] == 1:  # one word: contiguous 1-D operands are much faster
        a, b = a[..., 0], b[..., 0]
        return np.not_equal(np.bitwise_and(a, b), 0)
    out = (a[..., 0] & b[..., 0]) != 0
    for w in range(1, a.shape[-1]):
        out |= (a[..., w] & b[..., w]) != 0
    return out


def average_precision(rel_ranked: np.ndarray, n_relevant: np.ndarray | None = None
                      ) -> np.ndarray:
    """AP of each row of a ranked relevance matrix ``(Q, K)`` (bool or 0/1) -> ``(Q,)``.

    ``n_relevant``: denominator per query; default = relevant items in the ``K`` ranks.
    Computed as :math:`\\sum_i r_i \\, \\mathrm{cum}_i / i`, a cumulative sum and one
    matrix-vector product per block of rows (no per-query loop). Chapter 1.
    """
    r = np.asarray(rel_ranked)
    if r.ndim != 2:
        raise ValueError(f"rel_ranked must be 2-D (queries x ranks), got shape {r.shape}")
    if r.dtype != bool:
        if not np.isin(r, (0, 1)).all():
            raise ValueError("rel_ranked must hold 0/1 (or bool) relevance")
        r = r.astype(bool)
    q, k = r.shape
    inv_rank = 1.0 / np.arange(1, k + 1, dtype=np.float64)
    num = np.empty(q)
    cnt = np.empty(q)
    step = max(1, (1 << 22) // max(k, 1))  # rows per chunk: ~32 MB of float64
    for s in range(0, q, step):
        cum = np.cumsum(r[s:s + step], axis=1, dtype=np.float64)  # exact integers
        cnt[s:s + step] = cum[:, -1] if k else 0.0
        cum *= r[s:s + step]  # P@i * i at the relevant ranks, 0 elsewhere
        num[s:s + step] = cum @ inv_rank
    den = cnt if n_relevant is None else np.asarray(n_relevant, dtype=np.float64)
    if den.shape != (q,):
        raise ValueError(f"n_relevant must hold one count per row ({q},), got {den.shape}")
    return np.divide(num, den, out=np.zeros_like(num), where=den > 0)


def _gather_rows(a: np.ndarray, order: np.ndarray) -> np.ndarray:
    """``a[i, order[i]]`` for every row, as one flat gather (``take_along_axis`` is slower)."""
    flat = order + (np.arange(len(order), dtype=order.dtype) * a.shape[1])[:, None]
    return a.ravel()[flat]


def _ranked_blocks(q_codes, db_codes, labels_q, labels_db, topk, block, fn):
    """Hamming-rank ``block`` queries at a time (on a few threads) and return
    ``[fn(dist, order, rel, rel_ranked), ...]`` per block: ``dist (b, N)`` small unsigned
    ints, ``order (b, K)``, ``rel()`` / ``rel_ranked()`` callables giving the relevance
    ``(b, N)`` and the relevance in ranked order ``(b, K)``.  Codes: 0/1 ``(n, l)`` or
    :class:`~ugach_core.retrieval.PackedCodes`; query and database of the same length."""
    labels_q, labels_db = _checked_labels(labels_q, "query"), _checked_labels(labels_db,
                                                                              "database")
    qp, dp = as_packed(q_codes, "query codes"), as_packed(db_codes, "database codes")
    check_code_lengths(qp, dp)
    if len(qp) == 0 or isinstance(block, bool) or not isinstance(block, (int, np.integer)) \
            or block < 1:
        raise ValueError(f"need at least one query and a block of >= 1 queries, got {len(qp)} "
                         f"queries and block={block!r}")
    if len(qp) != len(labels_q) or len(dp) != len(labels_db):
        raise ValueError(
            f"codes and labels must have the same number of rows: queries {len(qp)} codes vs "
            f"{len(labels_q)} labels, database {len(dp)} codes vs {len(labels_db)} labels"
        )
    if labels_q.shape[1] != labels_db.shape[1]:
        raise ValueError(f"query labels have {labels_q.shape[1]} classes, database "
                         f"{labels_db.shape[1]}")
    lq, ld = _pack_labels(labels_q), _pack_labels(labels_db)

    def work(s, e, dist):  # dist: uint8/uint16, (b, N)
        order = rank_by_hamming(dist, topk)
        if lq is None or ld is None:
            rel = lambda: relevance(labels_q[s:e], labels_db)  # noqa: E731
            ranked = lambda: np.take_along_axis(rel(), order, 1)  # noqa: E731
        else:
            rel = lambda: _shares_label(lq[s:e, None, :], ld[None, :, :])  # noqa: E731
            ranked = lambda: _gather_rows(rel(), order)  # noqa: E731
        return fn(dist, order, rel, ranked)

    return hamming_blocks(qp, dp, work, block)


def mean_average_precision(q_codes: np.ndarray, db_codes: np.ndarray, labels_q: np.ndarray,
                           labels_db: np.ndarray, k: int | None = None, block: int = 256
                           ) -> float:
    """MAP@k of Hamming ranking (``k=None``: MAP@all).  Codes ``(Q, l)``, ``(N, l)`` in {0,1}
    or :class:`~ugach_core.retrieval.PackedCodes`, the same code length ``l`` (a
    ``ValueError`` naming both lengths otherwise). Chapter 1."""
    if k is not None and (isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1):
        raise ValueError(f"k must be an integer >= 1 (or None for MAP@all), got {k!r}")
    aps = _ranked_blocks(q_codes, db_codes, labels_q, labels_db, k, block,
                         lambda dist, order, rel, ranked: average_precision(ranked()))
    return float(np.concatenate(aps).mean())


def precision_at_k(q_codes: np.ndarray, db_codes: np.ndarray, labels_q: np.ndarray,
                   labels_db: np.ndarray, ks: list[int] | np.ndarray, block: int = 256
                   ) -> np.ndarray:
    """Mean precision at each rank in ``ks`` (``P@k`` curve), shape ``(len(ks),)``. Chapter 8."""
    ks = np.asarray(ks, dtype=np.int64)
    n_db = len(db_codes)
    if ks.size == 0 or ks.min() < 1 or ks.max() > n_db:
        raise ValueError(f"every k must be in [1, {n_db}] (the database size), got {ks.tolist()}")
    kmax = int(ks.max())

    def fn(dist, order, rel, ranked):
        cum = np.cumsum(ranked(), axis=1, dtype=np.int64)
        return (cum[:, ks - 1] / ks[None, :]).sum(0), len(order)

    parts = _ranked_blocks(q_codes, db_codes, labels_q, labels_db, kmax, block, fn)
    return sum(p for p, _ in parts) / sum(n for _, n in parts)


def pr_curve_hamming(q_codes: np.ndarray, db_codes: np.ndarray, labels_q: np.ndarray,
                     labels_db: np.ndarray, block: int = 256) -> dict[str, np.ndarray]:
    """Precision and recall of "retrieve everything within Hamming radius r", r = 0..l.

    Per query, precision is averaged over the queries that retrieve at least one item at
    that radius (``n_queries`` says how many); recall over queries with a relevant item.
    Returns ``radius``, ``precision``, ``recall``, ``n_queries`` arrays of length l + 1. Chapter 8.
    """
    q_codes, db_codes = as_packed(q_codes, "query codes"), as_packed(db_codes,
                                                                      "database codes")
    bits = q_codes.bits
    radii = np.arange(bits + 1)
    p_sum = np.zeros(bits + 1)
    p_cnt = np.zeros(bits + 1)
    r_sum = np.zeros(bits + 1)
    r_cnt = 0

    def fn(dist, order, rel, ranked):
        # histogram of distances for all and for relevant items, then cumulative over r
        rel = rel()
        q = dist.shape[0]
        offs = (np.arange(q)[:, None] * (bits + 1) + dist).ravel()
        all_h = np.bincount(offs, minlength=q * (bits + 1)).reshape(q, bits + 1)
        rel_h = np.bincount(offs, weights=rel.ravel(), minlength=q * (bits + 1)).reshape(
            q, bits + 1)
        ret = np.cumsum(all_h, 1)
        hit = np.cumsum(rel_h, 1)
        nrel = rel.sum(1)
        ok = ret > 0
        has = nrel > 0
        return (np.where(ok, hit / np.maximum(ret, 1), 0).sum(0), ok.sum(0),
                (hit[has] / nrel[has, None]).sum(0), int(has.sum()))

    for ps, pc, rs, rc in _ranked_blocks(q_codes, db_codes, labels_q, labels_db, 1, block, fn):
        p_sum += ps
        p_cnt += pc
        r_sum += rs
        r_cnt += rc
    precision = np.divide(p_sum, p_cnt, out=np.zeros_like(p_sum), where=p_cnt > 0)
    recall = r_sum / max(r_cnt, 1)
    return {"radius": radii, "precision": precision, "recall": recall, "n_queries": p_cnt}
