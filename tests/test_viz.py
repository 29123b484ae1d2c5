"""Plot helpers: what they draw, read back from the matplotlib artists (Agg backend)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from ugach_core.evaluation import mean_std  # noqa: E402
from ugach_core.viz import (BOOK_RC, COLORS, CYCLE, plot_over_seeds,  # noqa: E402
                            plot_pool_policy, plot_round_logs, set_book_style)


def test_pool_policy_sorts_bars_and_marks_manifold_pairs_and_draws():
    p = np.array([0.1, 0.5, 0.15, 0.25])
    fig, ax = plt.subplots()
    plot_pool_policy(p, relevant=[False, True, False, True], manifold=[False, False, True, False],
                     picks=[1, 1, 3], ax=ax)
    heights = [b.get_height() for b in ax.patches if b.get_width() == 1.0]
    assert heights == sorted(p, reverse=True)
    stars = [c for c in ax.collections if c.get_label() == "manifold pair $x^M$"]
    # item 2 (p = 0.15) sits at bar position 2 of the sorted bars
    assert len(stars) == 1 and stars[0].get_offsets()[0][0] == 2
    draws = np.concatenate([c.get_offsets() for c in ax.collections
                            if c not in stars])
    assert sorted(draws[:, 0].tolist()) == [0, 0, 1]  # two draws of item 1, one of item 3
    labels = ax.get_legend_handles_labels()[1]
    assert "draw $x^G$" in labels
    plt.close(fig)
    with pytest.raises(ValueError, match="shape"):
        plot_pool_policy(np.ones((2, 3)))


def test_round_logs_draws_adversarial_rounds_only():
    history = [{"stage": "pretrain", "epoch": 0, "d_loss": 9.0},
               {"stage": "adversarial", "round": 1, "d_loss": 1.0, "g_loss": 2.0},
               {"stage": "adversarial", "round": 2, "d_loss": 0.5},
               {"stage": "adversarial", "round": 3, "d_loss": 0.25, "g_loss": 1.0}]
    fig, ax = plt.subplots()
    plot_round_logs(history, keys=("d_loss", "g_loss"), ax=ax,
                    colors={"d_loss": COLORS["generator"]})
    lines = {ln.get_label(): ln for ln in ax.get_lines()}
    np.testing.assert_array_equal(lines["d_loss"].get_xdata(), [1, 2, 3])
    np.testing.assert_array_equal(lines["d_loss"].get_ydata(), [1.0, 0.5, 0.25])
    np.testing.assert_array_equal(lines["g_loss"].get_xdata(), [1, 3])  # round 2 has no g_loss
    assert matplotlib.colors.same_color(lines["d_loss"].get_color(), COLORS["generator"])
    plt.close(fig)


def test_book_style_is_seaborn_whitegrid_with_the_book_palette_and_sizes():
    sns = pytest.importorskip("seaborn")
    with matplotlib.rc_context():  # the theme is global: restored after the test
        set_book_style()
        rc = matplotlib.rcParams
        cycle = rc["axes.prop_cycle"].by_key()["color"]
        assert [matplotlib.colors.to_hex(c) for c in cycle] == [c.lower() for c in CYCLE]
        assert [matplotlib.colors.to_hex(c) for c in sns.color_palette()] == \
            [c.lower() for c in CYCLE]
        assert rc["axes.grid"] and rc["axes.facecolor"] == "white"  # whitegrid
        assert matplotlib.colors.same_color(rc["grid.color"], ".8")
        for key, value in BOOK_RC.items():  # the book's own settings win over the theme
            assert rc[key] == value or list(rc[key]) == list(value), key
        assert not rc["axes.spines.top"] and rc["font.size"] == 11


def test_book_style_legend_shows_a_dashed_line_as_dashed():
    """A legend handle holds two dash periods of a dashed line at least, so a dashed line
    with a marker in the middle (test MAP in ``plot_map_per_round``) does not look solid."""
    pytest.importorskip("seaborn")
    from ugach_core.viz import plot_map_per_round  # noqa: PLC0415

    with matplotlib.rc_context():
        set_book_style()
        history = [{"stage": "adversarial", "round": r, "val_map_i2t": 0.3, "test_map_i2t": 0.2}
                   for r in range(3)]
        fig, ax = plt.subplots()
        plot_map_per_round(history, ax=ax)
        legend = ax.get_legend()
        test = [h for h, t in zip(legend.legend_handles, legend.get_texts())
                if "(test)" in t.get_text()]
        assert len(test) == 1 and test[0].get_linestyle() == "--"
        # "--" draws rcParams' dash pattern, in points, scaled by the line width
        period = sum(matplotlib.rcParams["lines.dashed_pattern"]) * test[0].get_linewidth()
        handle = matplotlib.rcParams["legend.handlelength"] * legend.prop.get_size_in_points()
        assert handle >= 2 * period, (handle, period)
        plt.close(fig)


def _mean_points(ax) -> dict[float, float]:
    """Position -> mean of a vertical point plot: the lines drawn with markers."""
    out = {}
    for ln in ax.get_lines():
        if ln.get_marker() in ("None", "", " ", None) or len(ln.get_xdata()) == 0:
            continue
        out.update(zip(np.round(ln.get_xdata(), 6), ln.get_ydata()))
    return out


def _error_bars(ax) -> dict[float, float]:
    """Position -> half-length of each vertical error bar (caps included in the line,
    NaN-separated), NaN for a bar seaborn did not draw."""
    out = {}
    for ln in ax.get_lines():
        x, y = (np.asarray(d, dtype=float) for d in (ln.get_xdata(), ln.get_ydata()))
        if ln.get_marker() not in ("None", "", " ", None) or len(x) == 0:
            continue
        if np.isnan(y).all():
            out[round(float(np.nanmedian(x)), 6)] = np.nan
        else:
            out[round(float(np.nanmedian(x)), 6)] = (np.nanmax(y) - np.nanmin(y)) / 2
    return out


def _seed_rows():
    rng = np.random.default_rng(0)
    rows = [{"bits": b, "seed": s, "map": rng.normal(0.3 + b / 200, 0.02)}
            for b in (16, 32, 64) for s in range(4)]
    rows.append({"bits": 128, "seed": 0, "map": 0.9})  # one seed: no spread, no bar
    return rows


def test_over_seeds_point_plot_draws_mean_and_sample_std():
    rows = _seed_rows()
    fig, ax = plt.subplots()
    assert plot_over_seeds(rows, x="bits", y="map", ax=ax) is ax
    means, bars = _mean_points(ax), _error_bars(ax)
    for i, b in enumerate((16, 32, 64)):
        vals = [r["map"] for r in rows if r["bits"] == b]
        m, s = mean_std(vals)
        assert np.isclose(means[i], m, rtol=1e-12)
        assert np.isclose(bars[i], s, rtol=1e-12)  # the sample std (ddof=1) ...
        assert not np.isclose(bars[i], np.std(vals), rtol=1e-3)  # ... not the ddof=0 one
    assert means[3] == 0.9 and np.isnan(bars[3])
    assert [t.get_text() for t in ax.get_xticklabels()] == ["16", "32", "64", "128"]
    assert matplotlib.colors.same_color(ax.get_lines()[0].get_color(), CYCLE[0])
    plt.close(fig)


def test_over_seeds_bar_plot_with_hue_uses_the_palette_and_sample_std():
    rows = [{"variant": v, "dir": d, "seed": s, "map": 0.1 * i + 0.05 * j + 0.01 * s ** 2}
            for i, v in enumerate(("a", "b")) for j, d in enumerate(("i2t", "t2i"))
            for s in range(3)]
    fig, ax = plt.subplots()
    plot_over_seeds(rows, x="variant", y="map", hue="dir", kind="bar", ax=ax,
                    palette={"i2t": COLORS["img"], "t2i": COLORS["txt"]})
    assert len(ax.containers) == 2  # one group of bars per hue level, in hue order
    s = mean_std([0.0, 0.01, 0.04])[1]  # every cell's seeds are offset by 0, .01, .04
    half = _error_bars(ax)
    for container, d in zip(ax.containers, ("i2t", "t2i")):
        for p, v in zip(container, ("a", "b")):  # one bar per x category
            vals = [r["map"] for r in rows if r["variant"] == v and r["dir"] == d]
            assert np.isclose(p.get_height(), np.mean(vals), rtol=1e-12)
            assert np.isclose(half[round(p.get_x() + p.get_width() / 2, 6)], s, rtol=1e-12)
            assert matplotlib.colors.same_color(p.get_facecolor(),
                                                COLORS["img" if d == "i2t" else "txt"])
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["i2t", "t2i"]
    plt.close(fig)


def test_over_seeds_rejects_bad_input():
    with pytest.raises(ValueError, match="kind must be 'point' or 'bar', got 'box'"):
        plot_over_seeds(_seed_rows(), "bits", "map", kind="box")
    with pytest.raises(ValueError, match=r"row 0 has no column\(s\) \['dir'\]"):
        plot_over_seeds(_seed_rows(), "bits", "map", hue="dir")
    with pytest.raises(ValueError, match="needs at least one row"):
        plot_over_seeds([], "bits", "map")
    plt.close("all")


def _horizontal_marks(ax):
    """(y -> mean, y -> error half-length) of a horizontal point plot."""
    means, half = {}, {}
    for ln in ax.get_lines():
        x, y = (np.asarray(d, dtype=float) for d in (ln.get_xdata(), ln.get_ydata()))
        if len(x) == 0:
            continue
        if ln.get_marker() not in ("None", "", " ", None):
            means.update(zip(np.round(y, 6), x))
        else:
            half[round(float(np.nanmedian(y)), 6)] = ((np.nanmax(x) - np.nanmin(x)) / 2
                                                      if not np.isnan(x).all() else np.nan)
    return means, half


def test_plot_ablation_from_rows_or_summary_draws_mean_and_sample_std():
    from ugach_core.book.ablations import plot_ablation, summarize

    rng = np.random.default_rng(1)
    rows = [{"variant": v, "seed": s, "map_i2t": rng.normal(0.4 + 0.1 * i, 0.02),
             "map_t2i": rng.normal(0.5 + 0.1 * i, 0.02), "map50_i2t": 0.0, "map50_t2i": 0.0,
             "train_seconds": 1.0}
            for s in range(3) for i, v in enumerate(("ref", "other"))]
    rows.append({**rows[0], "variant": "one run"})  # a single seed: no bar
    summary = summarize(rows)
    for data in (rows, summary):
        fig, ax = plt.subplots()
        plot_ablation(data, ax=ax, reference="ref", legend=False)
        means, half = _horizontal_marks(ax)
        # first variant on top: heights 2, 1, 0; image->text 0.15 below, text->image above
        for s, y in zip(summary, (2, 1, 0)):
            for m, off in (("map_i2t", -0.15), ("map_t2i", 0.15)):
                key = round(y + off, 6)
                assert np.isclose(means[key], s[m], rtol=1e-12)
                if s["n"] > 1:
                    assert np.isclose(half[key], s[m + "_std"], rtol=1e-9)  # ddof=1
                else:
                    assert np.isnan(half[key])
        assert dict(zip(ax.get_yticks(), (t.get_text() for t in ax.get_yticklabels()))) == \
            {2: "ref", 1: "other", 0: "one run"}
        ref_lines = [ln for ln in ax.get_lines() if ln.get_linestyle() == ":"]
        assert [ln.get_xdata()[0] for ln in ref_lines] == pytest.approx(
            [summary[0]["map_i2t"], summary[0]["map_t2i"]], rel=1e-12)
        assert ax.get_legend() is None  # legend=False: none drawn, the labels stay on ax
        assert ax.get_legend_handles_labels()[1] == ["image→text", "text→image"]
        plt.close(fig)
