"""ugach_core.book.study: the gain of the rounds, summaries over seeds, validation winners."""

from __future__ import annotations

import json

import matplotlib
import pytest

matplotlib.use("Agg")

from ugach_core.book import study  # noqa: E402


def _row(dataset, variant, seed, test, pre, val, rounds=10, negatives="generator"):
    cfg = {"rounds": rounds, "negatives": negatives}
    return {"dataset": dataset, "variant": variant, "seed": seed, "map_i2t": test - 0.01,
            "map_t2i": test + 0.01, "pretrained_map_i2t": pre, "pretrained_map_t2i": pre,
            "val_map": val, "config": cfg}


ROWS = [_row("cub10-split0", "G", 0, 0.55, 0.50, 0.60),
        _row("cub10-split1", "G", 1, 0.57, 0.50, 0.62),
        _row("cub10-split0", "random", 0, 0.60, 0.50, 0.58, negatives="random"),
        _row("cub10-split1", "random", 1, 0.62, 0.50, 0.59, negatives="random"),
        _row("cub10-split0", "pre", 0, 0.50, 0.50, 0.70, rounds=0),
        _row("cub10-split1", "pre", 1, 0.50, 0.50, 0.70, rounds=0),
        {"dataset": "wikipedia", "variant": "CCA-ITQ", "seed": 0, "map_i2t": 0.2,
         "map_t2i": 0.3, "val_map": 0.9, "config": None}]


def test_gain_summary_and_winners(tmp_path):
    path = tmp_path / "r.json"
    path.write_text(json.dumps({"provenance": {"commit": "x"}, "rows": ROWS}))
    prov, rows = study.study_rows(path)
    assert prov == {"commit": "x"} and {r["data"] for r in rows} == {"cub10", "wikipedia"}
    assert rows[0]["gain"] == pytest.approx(0.05) and rows[0]["generator"]
    assert "gain" not in rows[4] and "gain" not in rows[6]  # no rounds: no gain
    summ = study.summary(rows)
    g = summ[("cub10", "G")]
    assert g["n"] == 2 and g["gain"] == pytest.approx(0.06)
    assert g["gain_std"] == pytest.approx(0.02 ** 0.5 / 10)  # sample std of 0.05, 0.07
    # the pretrained D (no rounds) has the best validation MAP but is never a winner
    assert study.winner(summ, "cub10") == "G"
    assert study.winner(summ, "cub10", generator=False) == "random"
    with pytest.raises(ValueError, match="no variant"):
        study.winner(summ, "wikipedia")
    # G wins on validation (0.61 against 0.585) but gains less on test (0.06 against 0.11)
    v = study.verdict(summ, "cub10")
    assert (v["best"], v["best_g"], v["best_r"], v["g_val"], v["g_test"]) == \
        ("G", "G", "random", True, False)
    assert v["words"] == study.VERDICTS[(True, False)] and "gains no more" in v["words"]
    (line,) = study.winner_lines(rows)
    assert line.startswith("cub10: chosen on validation: 'G'; test MAP gain") and "+0.0600" in line
    ax = study.plot_gains(rows)
    assert ax.get_xlabel().startswith("test MAP gain")


def test_overall_winner_averages_validation_over_the_sets():
    """A variant best on one set loses to one better on average; variants missing on a set
    are left out; ``generator`` filters as in ``winner``."""
    rows = [study.derived(r) for r in (
        _row("a", "G1", 0, 0.5, 0.4, 0.90), _row("b", "G1", 0, 0.5, 0.4, 0.10),
        _row("a", "G2", 0, 0.5, 0.4, 0.80), _row("b", "G2", 0, 0.5, 0.4, 0.30),
        _row("a", "G3", 0, 0.5, 0.4, 0.99),                       # only on set a
        _row("a", "R", 0, 0.5, 0.4, 0.95, negatives="random"),
        _row("b", "R", 0, 0.5, 0.4, 0.95, negatives="random"),
        _row("a", "pre", 0, 0.5, 0.5, 0.99, rounds=0), _row("b", "pre", 0, 0.5, 0.5, 0.99,
                                                             rounds=0))]
    summ = study.summary(rows)
    best, ranked = study.overall_winner(summ, ("a", "b"))
    assert best == "G2" and list(ranked) == ["G2", "G1"]
    assert ranked["G2"] == pytest.approx(0.55) and study.winner(summ, "a", True) == "G3"
    assert study.overall_winner(summ, ("a", "b"), generator=None)[0] == "R"
    assert study.overall_winner(summ, ("a",), generator=False)[0] == "R"
    with pytest.raises(ValueError, match="no variant"):
        study.overall_winner(summ, ("a", "c"))


def test_paired_differences_by_seed():
    rows = [study.derived(r) for r in (
        _row("a", "G", 0, 0.55, 0.50, 0.6), _row("a", "G", 1, 0.58, 0.50, 0.6),
        _row("a", "G", 2, 0.60, 0.50, 0.6),
        _row("a", "R", 0, 0.54, 0.50, 0.6, negatives="random"),
        _row("a", "R", 1, 0.59, 0.50, 0.6, negatives="random"))]
    p = study.paired(rows, "a", "G", "R")          # seed 2 ran only G: left out
    assert p["n"] == 2 and p["diffs"] == pytest.approx([0.01, -0.01])
    assert p["mean"] == pytest.approx(0.0) and p["n_pos"] == 1
    assert p["se"] == pytest.approx(0.01)           # std of (0.01, -0.01) is 0.01414 / 1.414
    with pytest.raises(ValueError, match="share 0 seeds"):
        study.paired(rows, "b", "G", "R")


def test_neighbour_precision_by_hand():
    """Two classes on a line, image features by class, text features shuffled: the image
    neighbours share the label, the text ones at about chance; chance counted by hand."""
    import numpy as np

    from ugach_core.data import CrossModalDataset

    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 20)
    img = (y[:, None] * 100.0 + rng.normal(size=(40, 3))).astype(np.float32)
    txt = rng.normal(size=(40, 2)).astype(np.float32)
    labels = np.eye(2, dtype=np.float32)[y]
    data = CrossModalDataset("two-lines", img, txt, labels, train_idx=np.arange(40),
                             query_idx=np.arange(4), db_idx=np.arange(40))
    p = study.neighbour_precision(data, k=3)
    assert p["img"] == 1.0 and p["chance"] == pytest.approx(2 * 20 * 19 / (40 * 39))
    assert abs(p["txt"] - p["chance"]) < 0.2
    assert study.near_chance(p["txt"], p["chance"]) is not study.near_chance(1.0, p["chance"])
    assert study.near_chance(0.5 + 0.199 * 0.5, 0.5) and not study.near_chance(0.61, 0.5)
