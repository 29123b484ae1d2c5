"""The book's one figure style: readable sizes, a light grid, fixed colours.

Colours are fixed per *meaning*, so a figure in chapter 6 reads like one in chapter 1:

* ``COLORS["img"]`` / ``COLORS["txt"]``: the image and the text modality (also the
  image->text and text->image directions, coloured by the *query* modality);
* ``COLORS["generator"]``: an item picked by the generator, :math:`x^G \\sim p_\\theta(x|q)`;
* ``COLORS["manifold"]``: a manifold pair :math:`x^M` from the correlation graph;
* ``COLORS["baseline"]``: baselines, reference lines, chance levels.

The palette is Okabe & Ito's colour-blind-safe set.  :func:`set_book_style` applies it
through seaborn's theme (``whitegrid``) plus the book's own sizes (:data:`BOOK_RC`).
Helpers draw on a given ``Axes`` (or a new one) and return it; they never call
``plt.show()`` (the notebook does).  seaborn (and pandas, which it needs) is imported by
the functions that use it, on first use.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

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

#: The book's matplotlib settings on top of seaborn's ``whitegrid`` theme (which already
#: draws a light grid and, with :data:`CYCLE` as its palette, sets the colour cycle):
#: the sizes, no top/right spines, legend frames and handles, line widths, saved-figure settings.
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
    "legend.handlelength": 3.0,  # long enough to tell a dashed or dotted line from a solid one
    "grid.linestyle": "-",
    "axes.spines.top": False,
    "axes.spines.right": False,
    "lines.linewidth": 2.0,
    "lines.markersize": 5,
}


def set_book_style() -> None:
    """Apply the book's figure style to the current session: seaborn's ``whitegrid`` theme
    (``notebook`` context) with :data:`CYCLE` as the palette, then :data:`BOOK_RC`."""
    import seaborn as sns

    sns.set_theme(context="notebook", style="whitegrid", palette=list(CYCLE),
                  color_codes=False, rc=BOOK_RC)


def axes_or_new(ax: Axes | None) -> Axes:
    """``ax``, or the axes of a new figure when ``ax`` is None."""
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
    ax = axes_or_new(ax)
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
    ax = axes_or_new(ax)
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
    ax = axes_or_new(ax)
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


def plot_pool_policy(p: Sequence[float] | np.ndarray,
                     relevant: Sequence[bool] | np.ndarray | None = None,
                     manifold: Sequence[bool] | np.ndarray | None = None,
                     picks: Sequence[int] | np.ndarray | None = None,
                     ax: Axes | None = None) -> Axes:
    """The generator's policy :math:`p_\\theta(x|q)` over one query's pool, as bars sorted by
    probability (chapter 4, "The generator").

    ``p (P,)``: probabilities over the pool; ``relevant (P,)`` bool: the item shares a label
    with the query (orange bar, else grey); ``manifold (P,)`` bool: the item is a manifold
    pair of the query (``COLORS["manifold"]`` star above its bar); ``picks``: pool columns
    drawn from the policy (``COLORS["generator"]`` triangles, one per draw, stacked).
    """
    from matplotlib.patches import Patch

    ax = axes_or_new(ax)
    p = np.asarray(p, dtype=float)
    if p.ndim != 1:
        raise ValueError(f"p must be one query's probabilities, shape (P,), got {p.shape}")
    order = np.argsort(-p, kind="stable")
    pos = np.empty_like(order)
    pos[order] = np.arange(len(p))  # bar position of each pool column
    rel = np.zeros(len(p), bool) if relevant is None else np.asarray(relevant, bool)
    colors = np.where(rel[order], CYCLE[4], COLORS["baseline"])
    ax.bar(np.arange(len(p)), p[order], width=1.0, color=colors, linewidth=0)
    top = p.max()
    if manifold is not None:
        man = np.flatnonzero(np.asarray(manifold, bool))
        ax.scatter(pos[man], p[man] + 0.06 * top, marker="*", s=90, color=COLORS["manifold"],
                   zorder=3, label="manifold pair $x^M$")
    if picks is not None:
        cols, counts = np.unique(np.asarray(picks, dtype=int), return_counts=True)
        for c, k in zip(cols, counts):
            ys = p[c] + top * (0.14 + 0.07 * np.arange(k))
            ax.scatter(np.full(k, pos[c]), ys, marker="v", s=30, color=COLORS["generator"],
                       zorder=3, label="draw $x^G$" if c == cols[0] else None)
    ax.set_xlim(-1, len(p))
    ax.set_xlabel("pool items, sorted by probability")
    ax.set_ylabel(r"$p_\theta(x \mid q)$")
    handles = ax.get_legend_handles_labels()[0]
    handles.append(Patch(color=CYCLE[4], label="shares a label with $q$"))
    ax.legend(handles=handles, loc="upper right")
    return ax


__all__ += ["plot_pool_policy"]


def plot_round_logs(history: Sequence[Mapping[str, Any]], keys: Sequence[str] = ("d_loss",),
                    ax: Axes | None = None, colors: Mapping[str, str] | None = None,
                    labels: Mapping[str, str] | None = None) -> Axes:
    """Per-round scalars of a :meth:`ugach_core.train.Trainer.fit` history (chapter 6,
    "The adversarial game and REINFORCE"), e.g. ``d_loss``, ``g_loss``, ``reward``.

    Only adversarial rounds (``stage == "adversarial"``) are drawn, one line per key, against
    ``round``; a round that did not record a key is skipped.  ``colors`` / ``labels``
    optionally fix a colour / legend text per key (default: the key itself).
    """
    ax = axes_or_new(ax)
    rows = [h for h in history if h.get("stage") == "adversarial" and "round" in h]
    for key in keys:
        pts = [(h["round"], h[key]) for h in rows if h.get(key) is not None]
        if not pts:
            continue
        r, v = zip(*pts)
        kw = {"color": colors[key]} if colors and key in colors else {}
        ax.plot(r, v, marker="o", label=(labels or {}).get(key, key), **kw)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("adversarial round")
    if len(keys) == 1:
        ax.set_ylabel((labels or {}).get(keys[0], keys[0]))
    if ax.get_legend_handles_labels()[0] and len(keys) > 1:
        ax.legend()
    return ax


__all__ += ["plot_round_logs"]


def plot_over_seeds(rows: Sequence[Mapping[str, Any]], x: str, y: str, hue: str | None = None,
                    ax: Axes | None = None, kind: str = "point", order: Sequence[Any] | None = None,
                    hue_order: Sequence[Any] | None = None,
                    palette: Mapping[Any, str] | Sequence[str] | None = None,
                    **kwargs: Any) -> Axes:
    """Mean over seeds (or any repeated runs) with error bars of one *sample* standard
    deviation, for results over seeds and variants (chapter 10 and the study).

    ``rows``: one dict per run (e.g. the rows of :func:`ugach_core.book.ablations.run_grid`),
    holding at least the columns ``x``, ``y`` (and ``hue``); the runs sharing a (``x``,
    ``hue``) cell are aggregated.  For each cell seaborn draws the mean :math:`\\bar y` and a
    bar of half-length

    .. math:: s = \\sqrt{\\frac{1}{n-1} \\sum_{i=1}^n (y_i - \\bar y)^2}

    (``errorbar="sd"``: pandas' ``std``, ``ddof=1``, the same :math:`s` as
    :func:`ugach_core.evaluation.mean_std`); a cell with one run has no bar.

    ``kind="point"``: :func:`seaborn.pointplot`, means not joined (pass ``linestyle="-"``
    to join them along an ordered ``x``), levels of ``hue`` dodged apart; ``kind="bar"``:
    :func:`seaborn.barplot`.  The orientation follows the data (a numeric ``x`` with a
    categorical ``y`` gives horizontal rows).  ``order`` / ``hue_order``: the category
    orders (default: first seen); ``palette``: a colour per ``hue`` level (a mapping or a
    list; default the book's :data:`CYCLE`); other keyword arguments go to seaborn (e.g.
    ``native_scale=True``, ``dodge=``, ``orient=``).  Returns the Axes.
    """
    import pandas as pd
    import seaborn as sns

    if kind not in ("point", "bar"):
        raise ValueError(f"kind must be 'point' or 'bar', got {kind!r}")
    cols = [c for c in (x, y, hue) if c is not None]
    rows = list(rows)
    if not rows:
        raise ValueError("plot_over_seeds needs at least one row (one per run)")
    for i, r in enumerate(rows):
        missing = [c for c in cols if c not in r]
        if missing:
            raise ValueError(f"row {i} has no column(s) {missing}")
    df = pd.DataFrame([{c: r[c] for c in cols} for r in rows])
    ax = axes_or_new(ax)
    kw: dict[str, Any] = {"errorbar": "sd", "capsize": 0.15}
    if hue is None:
        kw["color"] = CYCLE[0]
    else:
        n_levels = len(hue_order) if hue_order is not None else df[hue].nunique()
        if palette is None and n_levels <= len(CYCLE):
            palette = list(CYCLE[:n_levels])
        kw["palette"] = palette
    if kind == "point":
        kw.update(linestyle="none", linewidth=1.5, markersize=6)
        if hue is not None:
            kw["dodge"] = 0.3
    else:
        kw["saturation"] = 1.0  # the book's colours as they are (seaborn dims bars)
    kw.update(kwargs)
    plot = sns.pointplot if kind == "point" else sns.barplot
    plot(data=df, x=x, y=y, hue=hue, order=order, hue_order=hue_order, ax=ax, **kw)
    return ax


__all__ += ["plot_over_seeds"]
