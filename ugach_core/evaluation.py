"""The functions that turn codes into the numbers every table reports (chapter 1)."""

from __future__ import annotations

import numpy as np

from .data import CrossModalDataset
from .metrics import mean_average_precision


def two_way_map(codes: dict[str, np.ndarray], labels: np.ndarray, q_idx: np.ndarray,
                db_idx: np.ndarray, topk: int | None = None) -> dict[str, float]:
    """MAP (@all, or @``topk``) of image->text and text->image retrieval and their mean:
    queries ``q_idx`` of one modality against the database ``db_idx`` of the other.
    ``codes``: ``{"img", "txt"}`` binary codes ``(n, l)`` of every item. Chapter 1."""
    out = {f"{qm[0]}2{xm[0]}": mean_average_precision(codes[qm][q_idx], codes[xm][db_idx],
                                                      labels[q_idx], labels[db_idx], k=topk)
           for qm, xm in (("img", "txt"), ("txt", "img"))}
    return {**out, "mean": (out["i2t"] + out["t2i"]) / 2}


def retrieval_scores(codes_img: np.ndarray, codes_txt: np.ndarray, data: CrossModalDataset,
                     topk: int = 50) -> dict[str, float]:
    """MAP@all and MAP@``topk`` of the test protocol, image->text and text->image.

    ``codes_img``, ``codes_txt``: (n, l) binary codes of *every* item of ``data`` (each
    modality encoded separately).  Queries are ``data.query_idx``, the database
    ``data.db_idx``. Chapter 1.
    """
    if len(codes_img) != data.n or len(codes_txt) != data.n:
        raise ValueError(f"need codes for all {data.n} items, got {len(codes_img)} image and "
                         f"{len(codes_txt)} text codes")
    codes, lab, q, db = {"img": codes_img, "txt": codes_txt}, data.labels, data.query_idx, \
        data.db_idx
    m, m_k = two_way_map(codes, lab, q, db), two_way_map(codes, lab, q, db, topk)
    return {"map_i2t": m["i2t"], f"map{topk}_i2t": m_k["i2t"], "map_t2i": m["t2i"],
            f"map{topk}_t2i": m_k["t2i"]}


def mean_std(values) -> tuple[float, float]:
    """Mean and *sample* standard deviation over seeds, as papers report them:

    .. math:: \\bar x = \\frac1n \\sum_i x_i, \\qquad
              s = \\sqrt{\\frac{1}{n-1} \\sum_i (x_i - \\bar x)^2}

    ``values``: (n,) numbers, one per seed.  ``s`` is NaN for a single seed (no spread can
    be estimated from one run); an empty input is an error.  Every "mean ± std over seeds"
    in the library, the benchmarks and the book comes from this function. Chapter 10.
    """
    a = np.asarray(values, dtype=np.float64).ravel()
    if a.size == 0:
        raise ValueError("mean_std needs at least one value (one per seed), got none")
    return float(a.mean()), float(a.std(ddof=1)) if a.size > 1 else float("nan")
