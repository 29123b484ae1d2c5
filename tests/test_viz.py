"""Plot helpers: what they draw, read back from the matplotlib artists (Agg backend)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from ugach_core.viz import COLORS, plot_pool_policy, plot_round_logs  # noqa: E402


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
