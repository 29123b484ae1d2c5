"""The unsupervised correlation graph.

One kNN graph per modality, :math:`w(p, q) = 1` if :math:`x_p` is among the :math:`k`
nearest neighbours of :math:`x_q`.  Because every image is paired with a text, a neighbour
found in either space gives a *manifold pair* in the other modality.  The authors' code
(``KNN/knn_mir_cross5.py``) takes, for item :math:`i`, the first ``k_img`` entries of its
image-space ranking and the first ``k_txt`` of its text-space ranking (self included in
both, not de-duplicated, not symmetrised); the same list serves both retrieval directions.
Derived in chapter 3 ("Correlation graphs").

Memory stays :math:`O(nk + n \\cdot \\text{block})`: distances are computed one block of rows
at a time and never stored as an :math:`n \\times n` matrix; the ``k`` smallest of a row are
selected in linear time (``topk``, with a stable-sort fallback for rows whose ``k``-th
distance is tied), so the cost is one GEMM plus :math:`O(n^2)` cheap passes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .utils import check_features


def knn(x: np.ndarray | torch.Tensor, k: int, metric: str = "euclidean", block: int = 1024,
        device: str | torch.device | None = None) -> np.ndarray:
    """Indices of the ``k`` nearest neighbours of every row of ``x`` (self included).

    ``x (n, d)`` -> ``(n, k)`` int64, row ``i`` sorted by increasing distance, ties broken by
    the smaller index; the item itself always comes first (also ahead of exact duplicates,
    so "self included" holds whatever the round-off).  ``metric``: ``"euclidean"`` (the
    authors') or ``"cosine"``. Chapter 3.
    """
    if torch.is_tensor(x):
        if not torch.isfinite(x).all():
            raise ValueError("features contain NaN/inf values; clean them before building a graph")
    else:
        x = torch.as_tensor(check_features(x, "features"))
    n = x.shape[0]
    if not 1 <= k <= n:
        raise ValueError(f"k must be in [1, n={n}], got {k}")
    dev = torch.device(device) if device is not None else x.device
    x = x.to(dev, torch.float32)
    if metric == "cosine":
        x = torch.nn.functional.normalize(x, dim=1)
    elif metric != "euclidean":
        raise ValueError(f"metric must be 'euclidean' or 'cosine', got {metric!r}")
    sq = (x * x).sum(1)
    out = np.empty((n, k), dtype=np.int64)
    for s in range(0, n, block):
        e = min(n, s + block)
        # squared distances of the block to everything: ||a||^2 + ||b||^2 - 2 a.b
        # (evaluated in this order, with in-place steps: two (block, n) buffers at most)
        g = x[s:e] @ x.T
        d = sq[s:e, None] + sq[None, :]
        d.sub_(g.mul_(2.0))
        del g
        d.clamp_(min=0.0)
        rows = torch.arange(e - s, device=dev)
        d[rows, rows + s] = -1.0  # self first, despite round-off and duplicates
        out[s:e] = _smallest_k(d, k).cpu().numpy()
    return out


def _smallest_k(d: torch.Tensor, k: int) -> torch.Tensor:
    """Column indices of the ``k`` smallest entries of each row of ``d (b, n)``, ordered by
    ``(value, index)``: the first ``k`` of a stable sort, in :math:`O(b n)` time.

    ``topk`` finds the ``k`` smallest values; when the ``k``-th value is tied with an entry
    left out (``count(d <= kth) > k``), which one ``topk`` kept is unspecified, so such
    rows fall back to the stable sort.  Every other row holds exactly the right set,
    which is then ordered by value and, within a value, by index."""
    b, n = d.shape
    if 4 * k >= n:
        return torch.sort(d, dim=1, stable=True).indices[:, :k]
    vals, idx = torch.topk(d, k, dim=1, largest=False, sorted=False)
    idx, perm = torch.sort(idx, dim=1)  # index order ...
    vals = vals.gather(1, perm)
    res = idx.gather(1, torch.sort(vals, dim=1, stable=True).indices)  # ... then value
    kth = vals.max(1, keepdim=True).values
    tied = ((d <= kth).sum(1) > k).nonzero().squeeze(1)
    if len(tied):
        res[tied] = torch.sort(d[tied], dim=1, stable=True).indices[:, :k]
    return res


def manifold_neighbors(img: np.ndarray, txt: np.ndarray, k_img: int = 5, k_txt: int = 5,
                       metric: str = "euclidean", block: int = 1024,
                       device: str | torch.device | None = None) -> np.ndarray:
    """The authors' cross graph: ``[knn_img[i, :k_img], knn_txt[i, :k_txt]]`` per item.

    ``img (n, d1)``, ``txt (n, d2)`` (paired rows, raw training features) -> ``(n, k_img +
    k_txt)`` int64 indices into the training set.  Duplicates are kept: with
    ``positives="columns"`` (the library's default) positives are drawn uniformly from this
    list, so an item found in both spaces, typically the item itself, is drawn more often;
    the authors' code (``positives="distinct"``, the ``paper`` presets) de-duplicates it
    first.  For a query of either modality, the positives are the *other* modality's items
    at these indices. Chapter 3.
    """
    img = check_features(img, "image features")
    txt = check_features(txt, "text features")
    if img.shape[0] != txt.shape[0]:
        raise ValueError(f"image and text features must have one row per pair; got "
                         f"{img.shape[0]} image rows and {txt.shape[0]} text rows")
    if not (0 <= k_img <= len(img) and 0 <= k_txt <= len(img)):
        raise ValueError(f"k_img and k_txt must be in [0, {len(img)}] (the training pairs), got "
                         f"{k_img} and {k_txt}; lower them (command line: --set k_img=...)")
    parts = []
    if k_img > 0:
        parts.append(knn(img, k_img, metric, block, device))
    if k_txt > 0:
        parts.append(knn(txt, k_txt, metric, block, device))
    if not parts:
        raise ValueError("k_img + k_txt must be at least 1")
    return np.concatenate(parts, axis=1)


@dataclass(frozen=True)
class GraphStats:
    """Summary of a neighbour list (see :func:`graph_stats`). Chapter 3."""

    n_items: int
    width: int
    mean_unique: float  # mean number of distinct neighbours per item
    self_fraction: float  # fraction of items that list themselves
    coverage: float  # fraction of items that appear in someone else's list
    label_precision: float | None  # P(neighbour shares a label), self excluded
    label_precision_with_self: float | None

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def label_precision(neighbors: np.ndarray, labels: np.ndarray, include_self: bool = False
                    ) -> float:
    """Fraction of (item, listed neighbour) pairs that share at least one label.

    ``neighbors (n, k)``, ``labels (n, c)`` multi-hot.  Each listed entry counts once
    (duplicates included, as they are sampled); ``include_self=False`` drops entries equal
    to the item itself, which always "share" its labels. Chapter 3.
    """
    lab = np.asarray(labels) > 0
    if lab.shape[0] != neighbors.shape[0]:
        raise ValueError(f"labels has {lab.shape[0]} rows but the graph has {neighbors.shape[0]}")
    rows = np.arange(neighbors.shape[0])[:, None]
    share = (lab[rows] & lab[neighbors]).any(-1)  # (n, k)
    keep = np.ones_like(share) if include_self else neighbors != rows
    return float(share[keep].mean()) if keep.any() else float("nan")


def graph_stats(neighbors: np.ndarray, labels: np.ndarray | None = None) -> GraphStats:
    """Statistics of a neighbour list: distinct neighbours, self-inclusion, coverage, and,
    when labels are known, the label precision of the manifold pairs. Chapter 3."""
    neighbors = np.asarray(neighbors)
    n, k = neighbors.shape
    srt = np.sort(neighbors, axis=1)
    uniq = 1 + (np.diff(srt, axis=1) != 0).sum(1)
    rows = np.arange(n)[:, None]
    self_frac = float((neighbors == rows).any(1).mean())
    others = neighbors[neighbors != rows]
    coverage = float(np.unique(others).size / n) if others.size else 0.0
    lp = lps = None
    if labels is not None:
        lp = label_precision(neighbors, labels, include_self=False)
        lps = label_precision(neighbors, labels, include_self=True)
    return GraphStats(n, k, float(uniq.mean()), self_frac, coverage, lp, lps)
