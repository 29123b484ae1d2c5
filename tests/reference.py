"""Independent references shared by several test files: written from the definitions,
one item at a time, never calling the library."""

from __future__ import annotations

import numpy as np


def brute_map(q, db, lq, ldb, k=None) -> float:
    """MAP@k from the definition, one query at a time: rank the database by Hamming
    distance (ties by index); AP = mean precision at the ranks of the relevant items among
    the first k (0 without any); MAP = mean AP."""
    aps = []
    for i in range(len(q)):
        dist = [int(np.sum(q[i] != db[j])) for j in range(len(db))]
        ranked = sorted(range(len(db)), key=lambda j: (dist[j], j))[:k]
        hits, prec = 0, []
        for r, j in enumerate(ranked, start=1):
            if np.any((lq[i] > 0) & (ldb[j] > 0)):
                hits += 1
                prec.append(hits / r)
        aps.append(sum(prec) / hits if hits else 0.0)
    return sum(aps) / len(aps)
