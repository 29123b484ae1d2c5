"""The study of what makes UGACH work (``benchmarks/study.py``), read for chapter 10 and the
README: gains of the rounds over the pretrained discriminator, the validation winners, and
one figure.

For a run with test MAP :math:`M_{I\\to T}, M_{T\\to I}` of its validation-selected D and
:math:`M^0_{I\\to T}, M^0_{T\\to I}` of its pretrained D (round 0), the gain of the rounds is

.. math:: \\Delta = \\tfrac12\\big(M_{I\\to T} + M_{T\\to I}\\big)
          - \\tfrac12\\big(M^0_{I\\to T} + M^0_{T\\to I}\\big),

reported as mean :math:`\\pm` sample standard deviation over seeds.  Winners are chosen on
validation MAP only (mean over seeds); the test gain is reported, never used to choose.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from ..data import CrossModalDataset
from ..evaluation import mean_std
from ..graph import knn, label_precision

PRETTY = {"cub10": "CUB-10", "wikipedia": "Wikipedia",
          "mirflickr25k-synthetic": "MIRFlickr-shaped SYNTHETIC", "synthetic": "SYNTHETIC"}


def neighbour_precision(data: CrossModalDataset, k: int = 5) -> dict[str, float]:
    """How often a training item's ``k`` nearest neighbours in each feature space (self
    excluded, Euclidean, raw features as the graph uses them) share a label with it,
    :func:`~ugach_core.graph.label_precision`, and the chance level: two distinct random
    training items share a label.  Returns ``{"img", "txt", "chance"}``.  Chapters 7, 10."""
    idx = data.train_idx
    lab = np.asarray(data.labels[idx]) > 0
    out = {m: label_precision(knn(getattr(data, m)[idx], k + 1), lab) for m in ("img", "txt")}
    share = (lab.astype(np.float64) @ lab.T.astype(np.float64)) > 0
    n = len(idx)
    out["chance"] = float((share.sum() - np.trace(share)) / (n * (n - 1)))
    return out


def near_chance(precision: float, chance: float) -> bool:
    """The book's rule for neighbours "near chance" (chapter 3): less than a fifth of the way
    from chance to perfect, :math:`(p - p_0) / (1 - p_0) < 0.2`."""
    return (precision - chance) / (1 - chance) < 0.2


def neighbour_summary(path: str | Path) -> dict[str, dict[str, Any]]:
    """The file of ``benchmarks/graph_precision.py`` per data set: the image-space and
    text-space precision and the chance level, each the mean over the set's splits, and
    ``img_near_chance``, whether :func:`near_chance` holds for the image neighbours of every
    split.  Chapters 7 and 10."""
    rows = json.loads(Path(path).read_text(encoding="utf-8"))["rows"]
    out: dict[str, dict[str, Any]] = {}
    for name in dict.fromkeys(r["data"] for r in rows):
        rs = [r for r in rows if r["data"] == name]
        out[name] = {k: float(np.mean([r[k] for r in rs])) for k in ("img", "txt", "chance")}
        out[name]["img_near_chance"] = all(near_chance(r["img"], r["chance"]) for r in rs)
        out[name]["splits"] = len(rs)
    return out


def data_name(dataset: str) -> str:
    """The data set of a row (``cub10-split3`` -> ``cub10``: one split per seed)."""
    return dataset.split("-split")[0]


def derived(r: Mapping[str, Any]) -> dict[str, Any]:
    """Row ``r`` of a study results file with ``data`` (the data set), ``test_map`` (mean
    of both directions), ``gain`` (:math:`\\Delta`, rows with rounds only), ``generator``
    (whether G picked any of D's negatives) and ``rounds`` (the configured number of
    rounds; 0 for the pretrained D and CCA-ITQ) added."""
    cfg = r.get("config") or {}
    out = {**r, "data": data_name(r["dataset"]), "rounds": int(cfg.get("rounds", 0)),
           "test_map": (r["map_i2t"] + r["map_t2i"]) / 2}
    out["generator"] = out["rounds"] > 0 and cfg.get("negatives") != "random"
    if "pretrained_map_i2t" in r and out["rounds"] > 0:
        out["gain"] = out["test_map"] - (r["pretrained_map_i2t"]
                                         + r["pretrained_map_t2i"]) / 2
    return out


def study_rows(path: str | Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """``(provenance, rows)`` of a study results file, each row :func:`derived`."""
    rec = json.loads(Path(path).read_text(encoding="utf-8"))
    return rec["provenance"], [derived(r) for r in rec["rows"]]


def summary(rows: Iterable[Mapping[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    """``{(data, variant): {n, test_map, test_map_std, gain, gain_std, val_map,
    generator, rounds}}``: means and sample standard deviations over seeds."""
    groups: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["data"], r["variant"]), []).append(r)
    out = {}
    for key, rs in groups.items():
        s: dict[str, Any] = {"n": len(rs), "generator": rs[0]["generator"],
                             "rounds": rs[0]["rounds"]}
        for k in ("test_map", "gain"):
            if all(k in r for r in rs):
                s[k], s[k + "_std"] = mean_std([r[k] for r in rs])
        vals = [r["val_map"] for r in rs if r.get("val_map") is not None]
        s["val_map"] = float(np.mean(vals)) if len(vals) == len(rs) else float("nan")
        out[key] = s
    return out


def winner(summ: Mapping[tuple[str, str], Mapping[str, Any]], data: str,
           generator: bool | None = None) -> str:
    """The variant with adversarial rounds of best mean validation MAP on ``data``
    (``generator``: only variants with / without G's negatives; None: any)."""
    cands = {v: s["val_map"] for (d, v), s in summ.items()
             if d == data and s["rounds"] > 0 and not np.isnan(s["val_map"])
             and (generator is None or s["generator"] == generator)}
    if not cands:
        raise ValueError(f"no variant with rounds and a validation MAP on {data!r}")
    return max(cands, key=cands.get)


def overall_winner(summ: Mapping[tuple[str, str], Mapping[str, Any]], datas: Sequence[str],
                   generator: bool | None = True) -> tuple[str, dict[str, float]]:
    """The variant with rounds of best validation MAP averaged over the data sets ``datas``
    (each variant's mean over seeds, then over sets; only variants run on all of them), and
    that average per variant, best first: how :func:`ugach_core.config.tuned` was chosen.
    ``generator`` as in :func:`winner`."""
    names = {v for (_, v), s in summ.items() if s["rounds"] > 0
             and (generator is None or s["generator"] == generator)}
    score = {v: float(np.mean([summ[(d, v)]["val_map"] for d in datas])) for v in names
             if all((d, v) in summ for d in datas)}
    score = {v: x for v, x in score.items() if not np.isnan(x)}
    if not score:
        raise ValueError(f"no variant with rounds and validation MAPs on all of {datas}")
    ranked = dict(sorted(score.items(), key=lambda kv: -kv[1]))
    return next(iter(ranked)), ranked


def paired(rows: Iterable[Mapping[str, Any]], data: str, a: str, b: str,
           key: str = "gain") -> dict[str, Any]:
    """Variant ``a`` minus variant ``b`` on ``data``, seed by seed (the variants of one seed
    share its split, pretraining and initial weights): the differences
    :math:`d_s = y_{a,s} - y_{b,s}`, their mean :math:`\\bar d`, the paired standard error
    :math:`s_d / \\sqrt{n}` (``ddof=1``), ``n`` and ``n_pos`` (seeds with :math:`d_s > 0`).
    ``rows`` as :func:`derived` returns them; only seeds that ran both variants count."""
    ys: dict[str, dict[int, float]] = {a: {}, b: {}}
    for r in rows:
        if r["data"] == data and r["variant"] in ys and key in r:
            ys[r["variant"]][r["seed"]] = r[key]
    seeds = sorted(set(ys[a]) & set(ys[b]))
    if len(seeds) < 2:
        raise ValueError(f"{a!r} and {b!r} share {len(seeds)} seeds on {data!r}; need 2")
    d = np.array([ys[a][s] - ys[b][s] for s in seeds])
    return {"diffs": d.tolist(), "mean": float(d.mean()), "n": len(d),
            "se": float(d.std(ddof=1) / np.sqrt(len(d))), "n_pos": int((d > 0).sum())}


#: the study's answer on one data set, keyed by (validation chooses a configuration with
#: G's negatives, G's best gains more on test than the best with uniform negatives)
VERDICTS = {
    (True, True): "a configuration with a generator wins on validation and gains more "
                  "than uniform negatives",
    (True, False): "a configuration with a generator wins on validation but gains no more "
                   "than uniform negatives",
    (False, False): "no configuration with a generator beats uniform negatives",
    (False, True): "no configuration with a generator wins on validation, though one "
                   "gains more on test"}


def verdict(summ: Mapping[tuple[str, str], Mapping[str, Any]], data: str) -> dict[str, Any]:
    """The study on ``data``: the validation winner ``best``, the validation-best variants
    with G's negatives ``best_g`` and with uniform ones ``best_r``; ``g_val`` (``best``
    uses G's negatives), ``g_test`` (``best_g`` gains more on test than ``best_r``) and
    ``words``, the :data:`VERDICTS` sentence for the pair."""
    best, best_g = winner(summ, data), winner(summ, data, generator=True)
    best_r = winner(summ, data, generator=False)
    g_val = bool(summ[(data, best)]["generator"])
    g_test = bool(summ[(data, best_g)]["gain"] > summ[(data, best_r)]["gain"])
    return {"best": best, "best_g": best_g, "best_r": best_r, "g_val": g_val,
            "g_test": g_test, "words": VERDICTS[(g_val, g_test)]}


def winner_lines(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """One line per data set: the validation winner and its test gain (mean +- std);
    ``rows`` as :func:`derived` returns them."""
    summ, lines = summary(rows), []
    for d in sorted({r["data"] for r in rows}):
        try:
            best = winner(summ, d)
        except ValueError:
            continue
        s = summ[(d, best)]
        lines.append(f"{d}: chosen on validation: {best!r}; test MAP gain over its "
                     f"pretrained D {s['gain']:+.4f} +- {s['gain_std']:.4f} ({s['n']} seeds)")
    return lines


def plot_gains(rows: Sequence[Mapping[str, Any]], order: Sequence[str] | None = None,
               ax: Any = None) -> Any:
    """The gain :math:`\\Delta` of every variant with rounds (rows) on every data set
    (colours): mean over seeds with sample-std error bars; the line at 0 is the pretrained
    D.  Returns the Axes."""
    from ..viz import COLORS, plot_over_seeds

    shown = [{**r, "data set": PRETTY.get(r["data"], r["data"])} for r in rows if "gain" in r]
    dodge = 0.45 if len({r["data set"] for r in shown}) > 1 else False
    ax = plot_over_seeds(shown, x="gain", y="variant", hue="data set", order=order, ax=ax,
                         dodge=dodge)
    ax.axvline(0, color=COLORS["baseline"], linestyle=":", linewidth=1)
    ax.set_xlabel("test MAP gain over the pretrained D (mean of both directions)")
    ax.set_ylabel("")
    return ax


__all__ = ["PRETTY", "VERDICTS", "data_name", "derived", "near_chance", "neighbour_precision",
           "neighbour_summary", "plot_gains", "study_rows", "summary", "verdict", "winner",
           "winner_lines"]
