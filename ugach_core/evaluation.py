"""One function that turns codes into the numbers every table reports."""

from __future__ import annotations

import numpy as np

from .data import CrossModalDataset
from .metrics import mean_average_precision


def retrieval_scores(codes_img: np.ndarray, codes_txt: np.ndarray, data: CrossModalDataset,
                     topk: int = 50) -> dict[str, float]:
    """MAP@all and MAP@``topk`` of the test protocol, image->text and text->image.

    ``codes_img``, ``codes_txt``: (n, l) binary codes of *every* item of ``data`` (each
    modality encoded separately).  Queries are ``data.query_idx``, the database
    ``data.db_idx``.
    """
    q, db, lab = data.query_idx, data.db_idx, data.labels
    if len(codes_img) != data.n or len(codes_txt) != data.n:
        raise ValueError(f"need codes for all {data.n} items, got {len(codes_img)} image and "
                         f"{len(codes_txt)} text codes")
    out = {}
    for key, bq, bx in (("i2t", codes_img[q], codes_txt[db]), ("t2i", codes_txt[q], codes_img[db])):
        out[f"map_{key}"] = mean_average_precision(bq, bx, lab[q], lab[db])
        out[f"map{topk}_{key}"] = mean_average_precision(bq, bx, lab[q], lab[db], k=topk)
    return out


def mean_std(values) -> tuple[float, float]:
    """Mean and *sample* standard deviation over seeds, as papers report them:

    .. math:: \\bar x = \\frac1n \\sum_i x_i, \\qquad
              s = \\sqrt{\\frac{1}{n-1} \\sum_i (x_i - \\bar x)^2}

    ``values``: (n,) numbers, one per seed.  ``s`` is NaN for a single seed (no spread can
    be estimated from one run); an empty input is an error.  Every "mean ± std over seeds"
    in the library, the benchmarks and the book comes from this function.
    """
    a = np.asarray(values, dtype=np.float64).ravel()
    if a.size == 0:
        raise ValueError("mean_std needs at least one value (one per seed), got none")
    return float(a.mean()), float(a.std(ddof=1)) if a.size > 1 else float("nan")
