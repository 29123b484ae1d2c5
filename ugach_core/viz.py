"""The book's one figure style: readable sizes, a light grid, fixed colours.

Colours are fixed per *meaning*, so a figure in chapter 6 reads like one in chapter 1:

* ``COLORS["img"]`` / ``COLORS["txt"]``: the image and the text modality (also the
  image->text and text->image directions, coloured by the *query* modality);
* ``COLORS["generator"]``: an item picked by the generator, :math:`x^G \\sim p_\\theta(x|q)`;
* ``COLORS["manifold"]``: a manifold pair :math:`x^M` from the correlation graph;
* ``COLORS["baseline"]``: baselines, reference lines, chance levels.

The palette is Okabe & Ito's colour-blind-safe set.  Helpers draw on a given ``Axes`` (or
a new one) and return it; they never call ``plt.show()`` (the notebook does).
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.ticker import MaxNLocator

COLORS: dict[str, str] = {
    "img": "#0072B2",  # blue
    "txt": "#D55E00",  # vermillion
    "generator": "#CC79A7",  # reddish purple
    "manifold": "#009E73",  # bluish green
    "baseline": "#7F7F7F",  # grey
}

#: The colour cycle for anything without a fixed meaning (Okabe-Ito order).
CYCLE: tuple[str, ...] = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00",
                          "#56B4E9", "#F0E442", "#000000")

#: Query-modality colour of each retrieval direction.
DIRECTION_COLORS: dict[str, str] = {"i2t": COLORS["img"], "t2i": COLORS["txt"]}

BOOK_RC: dict[str, Any] = {
    "figure.figsize": (6.4, 4.0),
    "figure.dpi": 100,
    "savefig.dpi": 150,
    "savefig.bbox": "tight",
    "font.size": 11,
    "axes.titlesize": 12,
    "axes.labelsize": 11,
    "xtick.labelsize": 10,
    "ytick.labelsize": 10,
    "legend.fontsize": 10,
    "legend.frameon": True,
    "legend.framealpha": 0.85,
    "legend.edgecolor": "none",
    "axes.grid": True,
    "grid.alpha": 0.3,
    "grid.linestyle": "-",
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.prop_cycle": mpl.cycler(color=list(CYCLE)),
    "lines.linewidth": 2.0,
    "lines.markersize": 5,
}


def set_book_style() -> None:
    """Apply the book's matplotlib settings (:data:`BOOK_RC`) to the current session."""
    mpl.rcParams.update(BOOK_RC)


def _axes(ax: Axes | None) -> Axes:
    if ax is not None:
        return ax
    _, new_ax = plt.subplots()
    return new_ax


def plot_map_per_round(history: Sequence[Mapping[str, Any]], ax: Axes | None = None) -> Axes:
    """MAP per adversarial round from a :meth:`ugach_core.train.Trainer.fit` history.

    Plots ``val_map_i2t`` / ``val_map_t2i`` (solid) and, when present, ``test_map_i2t`` /
    ``test_map_t2i`` (dashed) against ``round``; round 0 is D after pretraining.  Entries
    with ``stage == "pretrain"`` (or without a ``round``) are skipped, and so is a key in a
    round that did not record it.
    """
    ax = _axes(ax)
    rows = [h for h in history if h.get("stage") != "pretrain" and "round" in h]
    series = [("val_map_i2t", "i2t", "validation", "-"), ("val_map_t2i", "t2i", "validation", "-"),
              ("test_map_i2t", "i2t", "test", "--"), ("test_map_t2i", "t2i", "test", "--")]
    names = {"i2t": "image->text", "t2i": "text->image"}
    for key, direction, split, style in series:
        pts = [(h["round"], h[key]) for h in rows if h.get(key) is not None]
        if not pts:
            continue
        r, m = zip(*pts)
        ax.plot(r, m, style, marker="o", color=DIRECTION_COLORS[direction],
                label=f"{names[direction]} ({split})")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("adversarial round (0 = after pretraining)")
    ax.set_ylabel("MAP@all")
    if ax.get_legend_handles_labels()[0]:
        ax.legend()
    return ax


def plot_pr_curve(curves: Mapping[str, Mapping[str, np.ndarray]], ax: Axes | None = None,
                  colors: Mapping[str, str] | None = None) -> Axes:
    """Precision-recall curves of Hamming-radius retrieval, one per entry of ``curves``.

    ``curves[name]`` is the dict returned by :func:`ugach_core.metrics.pr_curve_hamming`
    (``radius``, ``precision``, ``recall``, ``n_queries``).  Radii at which no query
    retrieves anything (``n_queries == 0``) have no defined precision and are not drawn.
    ``colors`` optionally fixes a colour per name (e.g. ``COLORS["baseline"]``).
    """
    ax = _axes(ax)
    for name, c in curves.items():
        precision, recall = np.asarray(c["precision"]), np.asarray(c["recall"])
        keep = np.asarray(c.get("n_queries", np.ones_like(precision))) > 0
        kw = {"color": colors[name]} if colors and name in colors else {}
        ax.plot(recall[keep], precision[keep], marker="o", label=name, **kw)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_xlim(0, 1.02)
    ax.set_ylim(0, 1.02)
    if curves:
        ax.legend()
    return ax


def plot_precision_at_k(ks: Sequence[int] | np.ndarray, curves: Mapping[str, np.ndarray],
                        ax: Axes | None = None, colors: Mapping[str, str] | None = None
                        ) -> Axes:
    """Precision@k curves: ``curves[name]`` has one value per entry of ``ks`` (as returned
    by :func:`ugach_core.metrics.precision_at_k`)."""
    ax = _axes(ax)
    ks = np.asarray(ks)
    for name, p in curves.items():
        p = np.asarray(p)
        if p.shape != ks.shape:
            raise ValueError(f"curve {name!r} has shape {p.shape}, ks has {ks.shape}")
        kw = {"color": colors[name]} if colors and name in colors else {}
        ax.plot(ks, p, marker="o", label=name, **kw)
    ax.set_xlabel("k (items retrieved)")
    ax.set_ylabel("precision@k")
    ax.set_ylim(0, 1.02)
    if curves:
        ax.legend()
    return ax


__all__ = ["BOOK_RC", "COLORS", "CYCLE", "DIRECTION_COLORS", "plot_map_per_round",
           "plot_pr_curve", "plot_precision_at_k", "set_book_style"]
