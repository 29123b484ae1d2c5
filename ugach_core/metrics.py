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

from .retrieval import hamming_distance, pack_codes, rank_by_hamming


def relevance(labels_q: np.ndarray, labels_db: np.ndarray) -> np.ndarray:
    """``(Q, c)``, ``(N, c)`` multi-hot -> ``(Q, N)`` bool: share at least one label."""
    lq = np.asarray(labels_q, dtype=np.float32)
    ld = np.asarray(labels_db, dtype=np.float32)
    if lq.shape[1] != ld.shape[1]:
        raise ValueError(f"query labels have {lq.shape[1]} classes, database {ld.shape[1]}")
    return (lq @ ld.T) > 0


def average_precision(rel_ranked: np.ndarray, n_relevant: np.ndarray | None = None
                      ) -> np.ndarray:
    """AP of each row of a ranked relevance matrix ``(Q, K)`` (bool or 0/1) -> ``(Q,)``.

    ``n_relevant``: denominator per query; default = relevant items in the ``K`` ranks.
    """
    r = np.asarray(rel_ranked, dtype=np.float64)
    cum = np.cumsum(r, axis=1)
    prec = cum / np.arange(1, r.shape[1] + 1)[None, :]
    num = (prec * r).sum(1)
    den = cum[:, -1] if n_relevant is None else np.asarray(n_relevant, dtype=np.float64)
    return np.divide(num, den, out=np.zeros_like(num), where=den > 0)


def _ranked_relevance(q_codes, db_codes, labels_q, labels_db, topk, block):
    if np.shape(q_codes)[1] != np.shape(db_codes)[1]:
        raise ValueError(f"query codes have {np.shape(q_codes)[1]} bits but database codes "
                         f"{np.shape(db_codes)[1]}; encode both with the same model")
    qp, dp = pack_codes(q_codes), pack_codes(db_codes)
    if len(qp) != len(labels_q) or len(dp) != len(labels_db):
        raise ValueError(
            f"codes and labels must have the same number of rows: queries {len(qp)} codes vs "
            f"{len(labels_q)} labels, database {len(dp)} codes vs {len(labels_db)} labels"
        )
    for s in range(0, len(qp), block):
        dist = hamming_distance(qp[s:s + block], dp)
        order = rank_by_hamming(dist, topk)
        rel = relevance(labels_q[s:s + block], labels_db)
        yield s, dist, order, rel


def mean_average_precision(q_codes: np.ndarray, db_codes: np.ndarray, labels_q: np.ndarray,
                           labels_db: np.ndarray, k: int | None = None, block: int = 256
                           ) -> float:
    """MAP@k of Hamming ranking (``k=None``: MAP@all).  Codes ``(Q, l)``, ``(N, l)`` in {0,1}."""
    labels_q, labels_db = np.asarray(labels_q), np.asarray(labels_db)
    if k is not None and k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    aps = []
    for _, _, order, rel in _ranked_relevance(q_codes, db_codes, labels_q, labels_db, k, block):
        aps.append(average_precision(np.take_along_axis(rel, order, 1)))
    return float(np.concatenate(aps).mean())


def precision_at_k(q_codes: np.ndarray, db_codes: np.ndarray, labels_q: np.ndarray,
                   labels_db: np.ndarray, ks: list[int] | np.ndarray, block: int = 256
                   ) -> np.ndarray:
    """Mean precision at each rank in ``ks`` (``P@k`` curve), shape ``(len(ks),)``."""
    ks = np.asarray(ks, dtype=np.int64)
    n_db = len(db_codes)
    if ks.size == 0 or ks.min() < 1 or ks.max() > n_db:
        raise ValueError(f"every k must be in [1, {n_db}] (the database size), got {ks.tolist()}")
    kmax = int(ks.max())
    tot = np.zeros(len(ks))
    nq = 0
    for _, _, order, rel in _ranked_relevance(q_codes, db_codes, np.asarray(labels_q),
                                              np.asarray(labels_db), kmax, block):
        cum = np.cumsum(np.take_along_axis(rel, order, 1), axis=1)
        tot += (cum[:, ks - 1] / ks[None, :]).sum(0)
        nq += len(order)
    return tot / nq


def pr_curve_hamming(q_codes: np.ndarray, db_codes: np.ndarray, labels_q: np.ndarray,
                     labels_db: np.ndarray, block: int = 256) -> dict[str, np.ndarray]:
    """Precision and recall of "retrieve everything within Hamming radius r", r = 0..l.

    Per query, precision is averaged over the queries that retrieve at least one item at
    that radius (``n_queries`` says how many); recall over queries with a relevant item.
    Returns ``radius``, ``precision``, ``recall``, ``n_queries`` arrays of length l + 1.
    """
    bits = np.asarray(q_codes).shape[1]
    radii = np.arange(bits + 1)
    p_sum = np.zeros(bits + 1)
    p_cnt = np.zeros(bits + 1)
    r_sum = np.zeros(bits + 1)
    r_cnt = 0
    for _, dist, _, rel in _ranked_relevance(q_codes, db_codes, np.asarray(labels_q),
                                             np.asarray(labels_db), 1, block):
        # histogram of distances for all and for relevant items, then cumulative over r
        q = dist.shape[0]
        offs = (np.arange(q)[:, None] * (bits + 1) + dist).ravel()
        all_h = np.bincount(offs, minlength=q * (bits + 1)).reshape(q, bits + 1)
        rel_h = np.bincount(offs, weights=rel.ravel(), minlength=q * (bits + 1)).reshape(
            q, bits + 1)
        ret = np.cumsum(all_h, 1)
        hit = np.cumsum(rel_h, 1)
        nrel = rel.sum(1)
        ok = ret > 0
        p_sum += np.where(ok, hit / np.maximum(ret, 1), 0).sum(0)
        p_cnt += ok.sum(0)
        has = nrel > 0
        r_sum += (hit[has] / nrel[has, None]).sum(0)
        r_cnt += int(has.sum())
    precision = np.divide(p_sum, p_cnt, out=np.zeros_like(p_sum), where=p_cnt > 0)
    recall = r_sum / max(r_cnt, 1)
    return {"radius": radii, "precision": precision, "recall": recall, "n_queries": p_cnt}
