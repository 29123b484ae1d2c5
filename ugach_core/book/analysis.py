"""Looking inside the Hamming space: distance histograms, bit statistics, 2-D maps, and
retrieved lists (chapter 8, "The Hamming space").

Codes are ``(n, l)`` arrays in :math:`\\{0, 1\\}` (bool or 0/1 integers, what
:func:`ugach_core.retrieval.encode` returns) or in :math:`\\{-1, +1\\}` (the paper's
:math:`b = \\operatorname{sgn}(h - 0.5)`); every function here maps both to the same bits,
:math:`+1 \\leftrightarrow 1`.  Relevance is :func:`ugach_core.metrics.relevance`: two items
are relevant to each other when they share at least one label.

Plot helpers draw on a given ``Axes`` (or a new one), use the book's colours
(:data:`ugach_core.viz.COLORS`) and never call ``plt.show()``.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.ticker import MaxNLocator

from ..callbacks import Callback
from ..metrics import relevance
from ..retrieval import hamming_distance, pack_codes
from ..viz import COLORS, axes_or_new

#: Ten distinguishable colours for class labels (matplotlib's ``tab10``); the book's
#: :data:`ugach_core.viz.COLORS` keep their meaning (modality, generator, graph).
LABEL_COLORS: tuple[str, ...] = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                                 "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")

#: Marker per modality in 2-D maps (colour is taken by the label there).
MODALITY_MARKERS: dict[str, str] = {"img": "o", "txt": "^"}


# --------------------------------------------------------------------------- input checks
def as_bits(codes: np.ndarray | torch.Tensor, name: str = "codes") -> np.ndarray:
    """``codes (n, l)`` in {0, 1} (bool or int) or in {-1, +1} -> bool ``(n, l)``, True for
    the bit value 1 (= +1).

    Raises ``ValueError`` on a non-2-D array or on other values (relaxed codes :math:`h`
    must be binarised first: ``h > 0.5``)."""
    c = codes.detach().cpu().numpy() if torch.is_tensor(codes) else np.asarray(codes)
    if c.ndim != 2:
        raise ValueError(f"{name} must be 2-D (items x bits), got shape {c.shape}")
    if c.shape[1] == 0:
        raise ValueError(f"{name} have no bits (shape {c.shape})")
    if c.dtype == bool:
        return c
    vals = np.unique(c)
    if np.isin(vals, (0, 1)).all():
        return c.astype(bool)
    if np.isin(vals, (-1, 1)).all():
        return c > 0
    raise ValueError(f"{name} must hold {{0, 1}} or {{-1, +1}} values, got values "
                     f"{vals[:5].tolist()}{'...' if len(vals) > 5 else ''}; binarise relaxed "
                     "codes first (h > 0.5)")


# ------------------------------------------------------------------ distance histograms
def distance_histograms(codes_q: np.ndarray, codes_db: np.ndarray, labels_q: np.ndarray,
                        labels_db: np.ndarray, exclude_diagonal: bool = False
                        ) -> dict[str, np.ndarray]:
    """Histograms of Hamming distances over all (query, item) pairs, split by relevance.

    .. math::

        n_\\text{rel}(r) = \\big|\\{(i, j) : d_H(b_i, b_j) = r,\\ \\text{rel}(i, j)\\}\\big|,
        \\qquad
        n_\\text{irr}(r) = \\big|\\{(i, j) : d_H(b_i, b_j) = r,\\ \\neg\\text{rel}(i, j)\\}\\big|

    for :math:`r = 0, \\dots, l`, with :math:`\\text{rel}(i, j)` = "share at least one label".
    Within one modality and one set (``codes_q is codes_db``) pass
    ``exclude_diagonal=True`` to drop the pairs :math:`(i, i)` (distance 0, always
    relevant when the item has a label).

    ``codes_q (Q, l)``, ``codes_db (N, l)``; ``labels_q (Q, c)``, ``labels_db (N, c)``
    multi-hot.  Returns ``radius (l+1,)``, ``relevant (l+1,)``, ``irrelevant (l+1,)``
    (int64 pair counts).
    """
    bq, bd = as_bits(codes_q, "codes_q"), as_bits(codes_db, "codes_db")
    if bq.shape[1] != bd.shape[1]:
        raise ValueError(f"codes_q have {bq.shape[1]} bits, codes_db {bd.shape[1]}")
    lq, ld = np.asarray(labels_q), np.asarray(labels_db)
    if len(lq) != len(bq) or len(ld) != len(bd):
        raise ValueError(f"codes and labels must have the same number of rows: {len(bq)} vs "
                         f"{len(lq)} (queries), {len(bd)} vs {len(ld)} (database)")
    if exclude_diagonal and len(bq) != len(bd):
        raise ValueError("exclude_diagonal needs the same items on both sides "
                         f"(got {len(bq)} queries and {len(bd)} database items)")
    bits = bq.shape[1]
    dist = hamming_distance(pack_codes(bq), pack_codes(bd))  # d_H, (Q, N)
    rel = relevance(lq, ld)  # rel(i, j), (Q, N) bool
    keep = np.ones_like(rel)
    if exclude_diagonal:
        np.fill_diagonal(keep, False)
    n_rel = np.bincount(dist[rel & keep], minlength=bits + 1)
    n_irr = np.bincount(dist[~rel & keep], minlength=bits + 1)
    return {"radius": np.arange(bits + 1), "relevant": n_rel.astype(np.int64),
            "irrelevant": n_irr.astype(np.int64)}


def separation_auc(hist: dict[str, np.ndarray]) -> float:
    """Probability that a random relevant pair is closer than a random irrelevant pair,
    ties counting one half (the area under the ROC curve of "relevant if
    :math:`d_H \\le r`"), from the counts of :func:`distance_histograms`:

    .. math::

        \\text{AUC} = \\sum_r p_\\text{rel}(r) \\Big(\\sum_{s > r} p_\\text{irr}(s)
                      + \\tfrac12 p_\\text{irr}(r)\\Big),
        \\qquad p_\\bullet(r) = n_\\bullet(r) / \\textstyle\\sum_s n_\\bullet(s)

    0.5: the distance does not separate relevant from irrelevant pairs; 1: every relevant
    pair is closer than every irrelevant one.
    """
    n_rel, n_irr = (np.asarray(hist[k], dtype=np.float64) for k in ("relevant", "irrelevant"))
    if n_rel.shape != n_irr.shape or n_rel.ndim != 1:
        raise ValueError(f"relevant and irrelevant counts must be 1-D of one length, got "
                         f"{n_rel.shape} and {n_irr.shape}")
    if n_rel.sum() == 0 or n_irr.sum() == 0:
        raise ValueError("the AUC needs at least one relevant and one irrelevant pair")
    p_rel, p_irr = n_rel / n_rel.sum(), n_irr / n_irr.sum()
    farther = p_irr[::-1].cumsum()[::-1] - p_irr  # sum_{s > r} p_irr(s)
    return float((p_rel * (farther + 0.5 * p_irr)).sum())


def mean_distance(hist: dict[str, np.ndarray], which: str) -> float:
    """Mean Hamming distance :math:`\\sum_r r\\, n(r) / \\sum_r n(r)` of the ``"relevant"`` or
    ``"irrelevant"`` pairs of a histogram from :func:`distance_histograms`."""
    if which not in ("relevant", "irrelevant"):
        raise ValueError(f"which must be 'relevant' or 'irrelevant', got {which!r}")
    n = np.asarray(hist[which], dtype=np.float64)
    if n.sum() == 0:
        raise ValueError(f"the histogram has no {which} pairs")
    return float((np.asarray(hist["radius"]) * n).sum() / n.sum())


# ------------------------------------------------------------------------ bit statistics
def bit_balance(codes: np.ndarray | torch.Tensor) -> np.ndarray:
    """Fraction of items whose bit :math:`k` is +1 (= 1), per bit:

    .. math:: \\beta_k = \\frac{1}{n} \\sum_{i=1}^n \\mathbb{1}[b_{ik} = +1], \\qquad k = 1..l

    A bit carries the most information (1 bit of entropy) when :math:`\\beta_k = 0.5`; a
    bit with :math:`\\beta_k \\in \\{0, 1\\}` is constant and useless for ranking.
    ``codes (n, l)`` -> ``(l,)`` float64.
    """
    b = as_bits(codes)
    if len(b) == 0:
        raise ValueError("bit_balance needs at least one code")
    return b.mean(0, dtype=np.float64)


def bit_entropy(balance: np.ndarray) -> np.ndarray:
    """Entropy in bits of each bit, :math:`H_k = -\\beta_k \\log_2 \\beta_k
    - (1 - \\beta_k) \\log_2 (1 - \\beta_k)` (0 for a constant bit), from :func:`bit_balance`."""
    p = np.asarray(balance, dtype=np.float64)
    if ((p < 0) | (p > 1)).any():
        raise ValueError("balances must lie in [0, 1]")
    with np.errstate(divide="ignore", invalid="ignore"):
        h = -(p * np.log2(p) + (1 - p) * np.log2(1 - p))
    return np.nan_to_num(h, nan=0.0)


def bit_correlation(codes: np.ndarray | torch.Tensor) -> np.ndarray:
    """Pearson correlation of every pair of bits over the items, in the :math:`\\pm 1` form
    :math:`s_{ik} = 2 b_{ik} - 1`:

    .. math::

        C_{kk'} = \\frac{\\frac1n \\sum_i s_{ik} s_{ik'} - \\bar s_k \\bar s_{k'}}
                        {\\sigma_k \\sigma_{k'}}, \\qquad
        \\sigma_k^2 = 1 - \\bar s_k^2

    (:math:`s^2 = 1`, so the variance is :math:`1 - \\bar s_k^2`.)  Two bits with
    :math:`|C_{kk'}| \\approx 1` say the same thing twice: the code is effectively shorter.
    A constant bit has no correlation: its row and column are NaN (its diagonal too).
    ``codes (n, l)`` -> ``(l, l)`` float64, symmetric.
    """
    b = as_bits(codes)
    if len(b) < 2:
        raise ValueError("bit_correlation needs at least two codes")
    s = 2.0 * b - 1.0  # s_ik in {-1, +1}
    mean = s.mean(0)  # \bar s_k
    cov = s.T @ s / len(s) - np.outer(mean, mean)
    sd = np.sqrt(np.clip(1.0 - mean ** 2, 0.0, None))  # sigma_k
    with np.errstate(divide="ignore", invalid="ignore"):
        corr = cov / np.outer(sd, sd)
    const = sd == 0
    corr[const, :] = np.nan
    corr[:, const] = np.nan
    return np.clip(corr, -1.0, 1.0)


def mean_abs_correlation(corr: np.ndarray) -> float:
    """Mean :math:`|C_{kk'}|` over the pairs :math:`k \\ne k'` (NaN entries of constant bits
    left out); 0 for independent bits."""
    c = np.asarray(corr, dtype=np.float64)
    if c.ndim != 2 or c.shape[0] != c.shape[1] or c.shape[0] < 2:
        raise ValueError(f"corr must be a square matrix of at least 2 bits, got {c.shape}")
    off = c[~np.eye(len(c), dtype=bool)]
    off = off[~np.isnan(off)]
    return float(np.abs(off).mean()) if off.size else float("nan")


# ------------------------------------------------------------------------------ 2-D maps
def umap_embedding(h_img: np.ndarray | torch.Tensor, h_txt: np.ndarray | torch.Tensor,
                   n_neighbors: int = 10, min_dist: float = 0.3, random_state: int = 0
                   ) -> tuple[np.ndarray, np.ndarray]:
    """One shared 2-D UMAP map of the relaxed codes of both modalities.

    The rows of ``h_img (n_i, l)`` and ``h_txt (n_t, l)`` (values in (0, 1)) are stacked and
    embedded together with Euclidean distances, the distance that the networks' training
    loss uses (:math:`d(q, x) = \\lVert h(q) - h(x) \\rVert^2`), so an image and a text land
    close when their codes are close.  ``random_state`` fixes the layout (UMAP then runs
    single-threaded).  Returns ``(xy_img (n_i, 2), xy_txt (n_t, 2))``.

    Needs ``umap-learn`` (imported here, on first use; numba compiles it on the first
    call, some seconds).
    """
    try:
        import umap  # noqa: PLC0415 - optional and slow to import
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("umap_embedding needs the umap-learn package: "
                          "pip install umap-learn") from e
    a = h_img.detach().cpu().numpy() if torch.is_tensor(h_img) else np.asarray(h_img)
    t = h_txt.detach().cpu().numpy() if torch.is_tensor(h_txt) else np.asarray(h_txt)
    if a.ndim != 2 or t.ndim != 2 or a.shape[1] != t.shape[1]:
        raise ValueError(f"h_img and h_txt must be 2-D with the same code length, got "
                         f"{a.shape} and {t.shape}")
    n = len(a) + len(t)
    if n_neighbors < 2 or n_neighbors >= n:
        raise ValueError(f"n_neighbors must be in [2, {n - 1}] for {n} points, got "
                         f"{n_neighbors}")
    x = np.concatenate([a, t]).astype(np.float32)
    reducer = umap.UMAP(n_neighbors=n_neighbors, min_dist=min_dist, n_components=2,
                        metric="euclidean", random_state=random_state, n_jobs=1)
    xy = reducer.fit_transform(x)
    return xy[:len(a)], xy[len(a):]


# -------------------------------------------------------------------- retrieved lists
def text_tags(txt: np.ndarray, names: Sequence[str] | None = None, top: int = 3,
              min_weight: float = 0.0) -> list[list[str]]:
    """The ``top`` strongest text features of each row, as readable tags.

    For a bag of tags (MIRFlickr's 1,386-d 0/1 vectors with ``names`` = the tag list) these
    are the item's tags; for topic proportions (Wikipedia's 10-d LDA vectors) they are the
    dominant topics, written ``"topic7 (0.41)"``.  Features with weight
    ``<= min_weight`` are left out.  ``txt (n, d)`` -> ``n`` lists of strings.
    """
    x = np.asarray(txt, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"txt must be 2-D (items x features), got shape {x.shape}")
    if names is not None and len(names) != x.shape[1]:
        raise ValueError(f"{len(names)} names for {x.shape[1]} text features")
    if top < 1:
        raise ValueError(f"top must be >= 1, got {top}")
    binary = np.isin(x, (0, 1)).all()
    order = np.argsort(-x, axis=1, kind="stable")[:, :top]
    out = []
    for row, cols in zip(x, order):
        tags = []
        for c in cols:
            if row[c] <= min_weight:
                break
            name = names[c] if names is not None else f"topic{c + 1}"
            tags.append(name if binary else f"{name} ({row[c]:.2f})")
        out.append(tags)
    return out


def wikipedia_pair_ids(folder: str | Path) -> tuple[list[str], list[str]]:
    """``(text_ids, image_ids)`` of the Wikipedia pairs, in the row order of
    :func:`ugach_core.data.wikipedia.load_wikipedia` (training list, then test list)."""
    from ..data.wikipedia import read_list

    folder = Path(folder)
    t_tr, i_tr, _ = read_list(folder / "trainset_txt_img_cat.list")
    t_te, i_te, _ = read_list(folder / "testset_txt_img_cat.list")
    return t_tr + t_te, i_tr + i_te


def top_retrieved(query_code: np.ndarray, db_codes: np.ndarray, query_labels: np.ndarray,
                  db_labels: np.ndarray, k: int = 5, db_ids: Sequence[str] | None = None,
                  label_names: Sequence[str] | None = None,
                  db_tags: Sequence[Sequence[str]] | None = None) -> list[dict[str, Any]]:
    """The ``k`` nearest database items of one query in Hamming distance, one dict per
    rank (ties broken by database index, as in every ranking of the library).

    ``query_code (l,)``, ``db_codes (N, l)``; ``query_labels (c,)``, ``db_labels (N, c)``
    multi-hot.  Each row: ``rank`` (1-based), ``index`` (database row), ``id``
    (``db_ids[index]`` or the index), ``distance`` (:math:`d_H`), ``labels`` (names, or
    class numbers), ``relevant`` (shares a label with the query), ``tags`` (when
    ``db_tags`` is given).
    """
    q = as_bits(np.atleast_2d(query_code), "query_code")
    d = as_bits(db_codes, "db_codes")
    if q.shape[0] != 1:
        raise ValueError(f"query_code must be one code (l,), got shape {np.shape(query_code)}")
    if q.shape[1] != d.shape[1]:
        raise ValueError(f"query code has {q.shape[1]} bits, database codes {d.shape[1]}")
    ld = np.asarray(db_labels)
    if len(ld) != len(d):
        raise ValueError(f"{len(d)} database codes but {len(ld)} label rows")
    for nm, seq in (("db_ids", db_ids), ("db_tags", db_tags)):
        if seq is not None and len(seq) != len(d):
            raise ValueError(f"{nm} has {len(seq)} entries for {len(d)} database items")
    if not 1 <= k <= len(d):
        raise ValueError(f"k must be in [1, {len(d)}], got {k}")
    dist = hamming_distance(pack_codes(q), pack_codes(d))[0]  # d_H(q, x_j), (N,)
    order = np.lexsort((np.arange(len(d)), dist))[:k]  # by distance, then index
    rel = relevance(np.atleast_2d(query_labels), ld[order])[0]
    rows = []
    for rank, (j, r) in enumerate(zip(order, rel), 1):
        cls = np.flatnonzero(ld[j])
        row = {"rank": rank, "index": int(j), "id": db_ids[j] if db_ids is not None else str(j),
               "distance": int(dist[j]),
               "labels": [label_names[c] for c in cls] if label_names is not None
               else [str(c) for c in cls],
               "relevant": bool(r)}
        if db_tags is not None:
            row["tags"] = list(db_tags[j])
        rows.append(row)
    return rows


def format_table(rows: Sequence[dict[str, Any]], columns: Sequence[str] | None = None,
                 max_width: int = 40) -> str:
    """A fixed-width text table of ``rows`` (dicts, e.g. from :func:`top_retrieved`); lists
    are joined with commas, booleans written ``yes`` / ``no``, cells cut at ``max_width``
    characters (with ``...``)."""
    if not rows:
        raise ValueError("no rows to format")
    columns = list(columns) if columns is not None else list(rows[0])

    def cell(v: Any) -> str:
        if isinstance(v, bool):
            s = "yes" if v else "no"
        elif isinstance(v, (list, tuple)):
            s = ", ".join(map(str, v))
        else:
            s = str(v)
        return s if len(s) <= max_width else s[:max_width - 3] + "..."

    table = [[cell(r.get(c, "")) for c in columns] for r in rows]
    widths = [max(len(c), *(len(t[i]) for t in table)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths)),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(v.ljust(w) for v, w in zip(t, widths)) for t in table]
    return "\n".join(line.rstrip() for line in lines)


# --------------------------------------------------------------- before / after training
class SnapshotDiscriminator(Callback):
    """Keeps a copy of D's weights at the end of the given rounds (round 0 = D after
    pretraining, before any adversarial round), in :attr:`states` ``{round: state_dict}``.

    >>> snap = SnapshotDiscriminator(rounds=(0,))                  # doctest: +SKIP
    >>> Trainer(cfg, data, callbacks=[snap]).fit(); snap.states[0]
    """

    def __init__(self, rounds: Iterable[int] = (0,)):
        self.rounds = set(int(r) for r in rounds)
        self.states: dict[int, dict[str, torch.Tensor]] = {}

    def on_round_end(self, trainer: Any, logs: dict[str, Any]) -> None:
        if logs["round"] in self.rounds:
            self.states[logs["round"]] = copy.deepcopy(trainer.discriminator.state_dict())


@torch.no_grad()
def relaxed_codes(model: torch.nn.Module, x: np.ndarray | torch.Tensor, modality: str,
                  batch: int = 4096) -> np.ndarray:
    """Relaxed codes :math:`h(x) = \\sigma(W_h \\phi_c(x) + b_h)` of features ``x (n, d)``
    through ``model``'s ``modality`` network, ``(n, l)`` float32 in (0, 1)."""
    p = next(model.parameters())
    xt = torch.as_tensor(np.asarray(x) if not torch.is_tensor(x) else x, dtype=torch.float32)
    was_training = model.training
    model.eval()
    try:
        out = [model.encode(xt[s:s + batch].to(p.device), modality).cpu()
               for s in range(0, len(xt), batch)]
    finally:
        model.train(was_training)
    return torch.cat(out).numpy() if out else np.zeros((0, model.bits), np.float32)


# ------------------------------------------------------------------------------- plots
def plot_distance_histograms(hist: dict[str, np.ndarray], ax: Axes | None = None,
                             density: bool = True, title: str | None = None,
                             legend: bool = True) -> Axes:
    """Relevant and irrelevant pairs' Hamming distances from :func:`distance_histograms`,
    as two filled step histograms (:func:`seaborn.histplot` of the radii weighted by the
    pair counts, one bin per distance; ``COLORS["manifold"]`` relevant,
    ``COLORS["baseline"]`` irrelevant); ``density=True`` scales each to sum 1 (their sizes
    differ a lot).  Each histogram is labelled with its number of pairs, so
    ``ax.get_legend_handles_labels()`` gives a figure legend even with ``legend=False``;
    ``legend=True`` draws it on ``ax``."""
    import seaborn as sns

    ax = axes_or_new(ax)
    r = np.asarray(hist["radius"])
    for key, color, name in (("irrelevant", COLORS["baseline"], "irrelevant pairs"),
                             ("relevant", COLORS["manifold"], "relevant pairs")):
        n = np.asarray(hist[key], dtype=np.float64)
        sns.histplot(x=r, weights=n, discrete=True, element="step", fill=True, alpha=0.15,
                     stat="probability" if density and n.sum() > 0 else "count",
                     color=color, linewidth=2.0, label=f"{name} ({int(n.sum()):,})", ax=ax)
    ax.set_xlabel("Hamming distance $d_H$")
    ax.set_ylabel("fraction of pairs" if density else "pairs")
    ax.set_xlim(r[0] - 0.5, r[-1] + 0.5)
    ax.set_ylim(bottom=0)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if title:
        ax.set_title(title)
    if legend:
        ax.legend(loc="upper left")
    return ax


def plot_bit_balance(balance: np.ndarray, ax: Axes | None = None, color: str | None = None,
                     title: str | None = None) -> Axes:
    """One bar per bit: the fraction :math:`\\beta_k` of +1 (from :func:`bit_balance`),
    with the ideal 0.5 as a dotted line."""
    ax = axes_or_new(ax)
    p = np.asarray(balance, dtype=np.float64)
    ax.bar(np.arange(1, len(p) + 1), p, width=0.8, color=color or COLORS["img"])
    ax.axhline(0.5, color=COLORS["baseline"], linestyle=":", linewidth=1.2)
    ax.set_xlim(0.3, len(p) + 0.7)
    ax.set_ylim(0, 1)
    ax.set_xlabel("bit $k$")
    ax.set_ylabel(r"fraction of +1, $\beta_k$")
    if title:
        ax.set_title(title)
    return ax


def plot_bit_correlation(corr: np.ndarray, ax: Axes | None = None, title: str | None = None):
    """Heatmap of a bit correlation matrix (from :func:`bit_correlation`) with
    :func:`seaborn.heatmap`: square cells, bits numbered from 1, diverging colours fixed
    to [-1, 1] (NaN of constant bits drawn grey), no colour bar of its own.  Returns the
    drawn mesh (a ``QuadMesh``; its ``get_array()`` is the matrix, NaN masked), for
    ``fig.colorbar``."""
    import matplotlib as mpl
    import seaborn as sns

    ax = axes_or_new(ax)
    c = np.asarray(corr, dtype=np.float64)
    if c.ndim != 2 or c.shape[0] != c.shape[1]:
        raise ValueError(f"corr must be a square matrix, got shape {c.shape}")
    cmap = mpl.colormaps["RdBu_r"].with_extremes(bad=COLORS["baseline"])
    sns.heatmap(c, cmap=cmap, vmin=-1, vmax=1, square=True, cbar=False, xticklabels=False,
                yticklabels=False, ax=ax)
    ticks = MaxNLocator(nbins=5, integer=True, min_n_ticks=1,
                        steps=[1, 1.6, 2, 4, 8, 10]).tick_values(1, len(c))  # 8, 16, 24, 32
    ticks = ticks[(ticks >= 1) & (ticks <= len(c))].astype(int)  # bit k: cell [k-1, k]
    ax.set_xticks(ticks - 0.5, labels=ticks)
    ax.set_yticks(ticks - 0.5, labels=ticks)
    ax.set_xlabel("bit $k'$")
    ax.set_ylabel("bit $k$")
    if title:
        ax.set_title(title)
    return ax.collections[-1]


def plot_umap(xy_img: np.ndarray, xy_txt: np.ndarray, labels_img: np.ndarray,
              labels_txt: np.ndarray, label_names: Sequence[str] | None = None,
              ax: Axes | None = None, title: str | None = None, legend: bool = True,
              s: float = 12.0) -> Axes:
    """Scatter of a 2-D map from :func:`umap_embedding`: colour = label (first label of a
    multi-label item, :data:`LABEL_COLORS`), marker = modality (circle image, triangle
    text; :data:`MODALITY_MARKERS`).  ``labels_* (n, c)`` multi-hot or ``(n,)`` class ids."""
    ax = axes_or_new(ax)

    def ids(lab: np.ndarray) -> np.ndarray:
        lab = np.asarray(lab)
        return lab.argmax(1) if lab.ndim == 2 else lab.astype(int)

    groups = (("img", np.asarray(xy_img), ids(labels_img)),
              ("txt", np.asarray(xy_txt), ids(labels_txt)))
    n_cls = int(max(g[2].max(initial=0) for g in groups)) + 1
    if n_cls > len(LABEL_COLORS):
        raise ValueError(f"{n_cls} classes, but only {len(LABEL_COLORS)} label colours")
    for mod, xy, y in groups:
        if len(xy) != len(y):
            raise ValueError(f"{mod}: {len(xy)} points but {len(y)} labels")
        ax.scatter(xy[:, 0], xy[:, 1], c=[LABEL_COLORS[i] for i in y], s=s,
                   marker=MODALITY_MARKERS[mod], alpha=0.7, linewidths=0)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.grid(False)
    if title:
        ax.set_title(title)
    if legend:
        from matplotlib.lines import Line2D

        names = label_names if label_names is not None else [str(i) for i in range(n_cls)]
        handles = [Line2D([], [], marker="s", linestyle="", color=LABEL_COLORS[i],
                          label=names[i]) for i in range(n_cls)]
        handles += [Line2D([], [], marker=MODALITY_MARKERS[m], linestyle="", color="k",
                           markerfacecolor="none", label=nm)
                    for m, nm in (("img", "image"), ("txt", "text"))]
        ax.legend(handles=handles, loc="center left", bbox_to_anchor=(1.0, 0.5),
                  fontsize=9)
    return ax


__all__ = ["LABEL_COLORS", "MODALITY_MARKERS", "SnapshotDiscriminator", "as_bits",
           "bit_balance", "bit_correlation", "bit_entropy", "distance_histograms",
           "format_table", "mean_abs_correlation", "mean_distance", "plot_bit_balance",
           "plot_bit_correlation", "plot_distance_histograms", "plot_umap", "relaxed_codes",
           "separation_auc", "text_tags", "top_retrieved", "umap_embedding",
           "wikipedia_pair_ids"]
