"""Ablations: train named config variants over seeds and report them in one table.

Each :class:`Variant` is a name and a :class:`~ugach_core.config.UGACHConfig` (or ``None``
for the CCA-ITQ baseline).  :func:`run_grid` trains every variant for every seed with the
library's :class:`~ugach_core.train.Trainer`, scores the validation-selected discriminator
with :func:`~ugach_core.evaluation.retrieval_scores` (MAP@all and MAP@50, image->text and
text->image; the same function scores CCA-ITQ) and records the wall time of each run.
:func:`summarize` gives mean and standard deviation over seeds, and
:func:`compare_to_reference` says which differences exceed the seed spread.

Variants whose pretraining stage is identical (they differ only in the graph, the number of
rounds or the negatives of the adversarial rounds) share it within a seed: the first one
pretrains, the others restore its state (weights, optimiser, random stream), which gives
exactly the codes of a separate run (tested).  Each row's wall time still includes the
pretraining time.

Derived in chapter 10 ("Ablations and baselines") of the book.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from ..baselines import cca_itq_scores
from ..callbacks import LogTestMAP
from ..config import UGACHConfig
from ..data import CrossModalDataset
from ..evaluation import mean_std, retrieval_scores
from ..train import Trainer

METRICS = ("map_i2t", "map_t2i", "map50_i2t", "map50_t2i")
# fields that act only after pretraining: variants differing only here share a pretrained D
POST_PRETRAIN_FIELDS = ("k_img", "k_txt", "graph_metric", "rounds", "negatives", "positives",
                        "g_pool_mask", "fn_guard", "reward_band", "d_lr", "g_lr",
                        "temperature", "g_softmax", "reward", "reward_baseline", "d_epochs",
                        "g_epochs", "d_batch", "d_batches", "g_batch", "n_samples",
                        "pool_fraction", "pool_min", "eval_every")


@dataclass(frozen=True)
class Variant:
    """One row of the ablation table: ``cfg=None`` means the CCA-ITQ baseline."""

    name: str
    group: str
    cfg: UGACHConfig | None
    note: str = ""


def default_variants(base: UGACHConfig) -> list[Variant]:
    """The ablation grid around ``base`` (normally ``fast(bits)``), CCA-ITQ last.

    - ``no GAN``: D's negatives are uniform non-neighbours, G is never trained
      (``negatives="random"``);
    - ``no graph``: the pretrained D alone (pairs only, ``rounds=0``);
    - k sweep: ``k_img + k_txt`` manifold pairs per query (self included in each list);
    - margins :math:`m \\in \\{0, 1, l/8, l/4\\}` (both stages);
    - the paper's objective (``paper_text``: :math:`m = 1`, log reward, log D loss, pool
      softmax) on ``base``'s schedule.
    """
    l = base.bits
    v = [
        Variant(base.preset, "preset", base, "reference: margin l/8, k 5+5"),
        Variant("no GAN (random negatives)", "no GAN", base.replace(negatives="random"),
                "uniform non-neighbours as D's negatives, G not trained"),
        Variant("no graph (pretrained D)", "no graph", base.replace(rounds=0),
                "pairs only: the pretraining stage"),
    ]
    for ki, kt, what in ((1, 1, "self only"), (10, 10, ""), (10, 0, "image only"),
                         (0, 10, "text only")):
        v.append(Variant(f"k {ki}+{kt}", "k sweep", base.replace(k_img=ki, k_txt=kt), what))
    for m, what in ((1.0, "paper"), (l / 4, "l/4"), (0.0, "no margin")):
        v.append(Variant(f"margin {m:g}", "margin", base.replace(margin=m), what))
    v.append(Variant(f"{base.preset} + paper_text objective", "objective",
                     base.replace(margin=1.0, reward="log", d_loss="log", g_softmax="pool"),
                     "m = 1, log reward, log D loss, pool softmax"))
    v.append(Variant("CCA-ITQ", "baseline", None, "linear baseline"))
    return v


def pretrain_key(cfg: UGACHConfig) -> UGACHConfig:
    """``cfg`` with the fields that act only after pretraining set to the defaults: two
    configs with the same key have identical pretrained discriminators for one seed."""
    defaults = {f.name: f.default for f in dataclasses.fields(UGACHConfig)
                if f.name in POST_PRETRAIN_FIELDS}
    return cfg.replace(**defaults)


def train_variant(cfg: UGACHConfig, data: CrossModalDataset, seed: int,
                  cache: dict[Any, tuple[dict[str, Any], float]] | None = None
                  ) -> tuple[Trainer, float]:
    """Train one config; returns the trainer and the wall time in seconds.

    ``cache``: pretrained states keyed by (:func:`pretrain_key`, seed).  A hit replaces
    ``pretrain()`` by restoring that state, and its recorded pretraining time is added to
    the wall time, so the time always covers a whole run."""
    key = (pretrain_key(cfg), seed)
    t0 = time.perf_counter()
    trainer = Trainer(cfg, data, seed=seed, progress=False,
                      callbacks=[LogTestMAP(rounds=[0])])  # the pretrained D's test MAP
    extra = 0.0
    if cache is not None and key in cache:
        state, extra = cache[key]
        trainer.load_pretrained(state)
    elif cache is not None:
        tp = time.perf_counter()
        trainer.pretrain()
        cache[key] = (trainer.pretrained_state(), time.perf_counter() - tp)
    trainer.fit()
    return trainer, time.perf_counter() - t0 + extra


def run_variant(variant: Variant, data: CrossModalDataset, seed: int, bits: int,
                cache: dict[Any, tuple[dict[str, Any], float]] | None = None
                ) -> dict[str, Any]:
    """One row: scores (:data:`METRICS`) of the validation-selected D, the same scores of
    the last D (``last_map_i2t``, ...; UGACH variants only), wall time ``train_seconds``,
    rounds run, the selected round ``best_round``, the config, and the test MAP@all of the
    pretrained D (``pretrained_map_i2t``, ``pretrained_map_t2i``; never used to select)."""
    row: dict[str, Any] = {"variant": variant.name, "group": variant.group,
                           "note": variant.note, "seed": seed, "bits": bits,
                           "dataset": data.name, "synthetic": data.synthetic}
    if variant.cfg is None:  # CCA-ITQ, exactly as the command line's --baseline runs it
        sc = cca_itq_scores(data, bits, seed=seed)  # scores, train_seconds, cca_reg, val_map
        row.update(sc, config={"method": "cca_itq", "bits": bits, "reg": sc["cca_reg"]})
        return row
    if variant.cfg.bits != bits:
        raise ValueError(f"variant {variant.name!r} has {variant.cfg.bits} bits, not {bits}")
    trainer, secs = train_variant(variant.cfg, data, seed, cache)
    codes = trainer.codes("best")
    sc = retrieval_scores(codes["img"], codes["txt"], data)
    last = trainer.codes("current")  # D after the last round, whatever validation says
    sc_last = retrieval_scores(last["img"], last["txt"], data)
    row.update({f"last_{k}": v for k, v in sc_last.items()})
    r0 = next(h for h in trainer.history if h.get("round") == 0)
    row.update(pretrained_map_i2t=r0["test_map_i2t"], pretrained_map_t2i=r0["test_map_t2i"])
    row.update(sc, train_seconds=secs, rounds_done=trainer.round,
               best_round=trainer.best_round, val_map=trainer.best_score,
               config=variant.cfg.to_dict())
    return row


def run_grid(data: CrossModalDataset, variants: Sequence[Variant], seeds: Iterable[int],
             bits: int, on_row: Callable[[dict[str, Any]], None] | None = None,
             share_pretraining: bool = True) -> list[dict[str, Any]]:
    """Every variant for every seed (seed-major: all variants of seed 0 first).

    ``on_row`` is called after each row (e.g. to print it or to write partial results)."""
    if not variants:
        raise ValueError("no variants given")
    names = [v.name for v in variants]
    if len(set(names)) != len(names):
        raise ValueError(f"variant names must be unique, got {names}")
    rows: list[dict[str, Any]] = []
    cache: dict[Any, tuple[dict[str, Any], float]] | None = {} if share_pretraining else None
    for seed in seeds:
        for v in variants:
            row = run_variant(v, data, seed, bits, cache)
            rows.append(row)
            if on_row is not None:
                on_row(row)
        if cache is not None:
            cache.clear()  # states of one seed are never reused by another
    return rows


def summarize(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per variant (in first-seen order): number of seeds, mean and sample standard deviation
    (:func:`~ugach_core.evaluation.mean_std`: ``ddof=1``, NaN with one seed) of each metric,
    of ``map_avg`` (the mean of the two directions' MAP@all), of ``last_map_avg`` (the same
    for the last D, where the rows have it) and of the wall time."""
    order: list[str] = []
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        if r["variant"] not in groups:
            order.append(r["variant"])
        groups.setdefault(r["variant"], []).append(r)
    out = []
    for name in order:
        rs = groups[name]
        s: dict[str, Any] = {"variant": name, "group": rs[0].get("group", ""),
                             "note": rs[0].get("note", ""), "n": len(rs)}
        cols = {m: [r[m] for r in rs] for m in METRICS}
        cols["map_avg"] = [(r["map_i2t"] + r["map_t2i"]) / 2 for r in rs]
        if all("last_map_i2t" in r for r in rs):  # the last D instead of the selected one
            cols["last_map_avg"] = [(r["last_map_i2t"] + r["last_map_t2i"]) / 2 for r in rs]
        cols["train_seconds"] = [r["train_seconds"] for r in rs]
        for m, vals in cols.items():
            s[m], s[m + "_std"] = mean_std(vals)
        out.append(s)
    return out


def compare_to_reference(summary: Sequence[dict[str, Any]], reference: str,
                         metric: str = "map_avg", z: float = 2.0) -> list[dict[str, Any]]:
    r"""Difference of each variant's mean ``metric`` to the reference's, and whether it
    exceeds the seed spread.

    .. math::
        \Delta = \bar y_v - \bar y_\text{ref}, \qquad
        \mathrm{SE} = \sqrt{s_v^2 / n_v + s_\text{ref}^2 / n_\text{ref}}, \qquad
        \text{clear} \iff |\Delta| > z\,\mathrm{SE}

    with :math:`s` the standard deviation over seeds.  Variants with one seed (or a
    reference with one) get ``clear=None``: their spread is unknown.
    """
    by = {s["variant"]: s for s in summary}
    if reference not in by:
        raise ValueError(f"reference {reference!r} not in the summary ({sorted(by)})")
    ref = by[reference]
    out = []
    for s in summary:
        delta = s[metric] - ref[metric]
        var = s[metric + "_std"] ** 2 / s["n"] + ref[metric + "_std"] ** 2 / ref["n"]
        se = math.sqrt(var) if not math.isnan(var) else math.nan
        clear = None if math.isnan(se) else bool(abs(delta) > z * se)
        out.append({"variant": s["variant"], "delta": delta, "se": se, "clear": clear})
    return out


def format_summary(summary: Sequence[dict[str, Any]]) -> str:
    """Fixed-width table: MAP@all both directions and their mean (mean +- std over seeds),
    MAP@50 means, wall time."""

    def pm(s: dict[str, Any], m: str) -> str:
        sd = s[m + "_std"]
        return f"{s[m]:.4f} +- {sd:.4f}" if not math.isnan(sd) else f"{s[m]:.4f}         "

    head = (f"{'variant':<34} {'n':>2} {'MAP I->T':>16} {'MAP T->I':>16} {'mean MAP':>16} "
            f"{'@50 I->T':>8} {'@50 T->I':>8} {'wall s':>7}")
    lines = [head, "-" * len(head)]
    for s in summary:
        lines.append(f"{s['variant']:<34} {s['n']:>2} {pm(s, 'map_i2t'):>16} "
                     f"{pm(s, 'map_t2i'):>16} {pm(s, 'map_avg'):>16} {s['map50_i2t']:>8.4f} "
                     f"{s['map50_t2i']:>8.4f} {s['train_seconds']:>7.1f}")
    return "\n".join(lines)


def rows_from_results(path: str | Path, variant: str, group: str, bits: int,
                      note: str = "") -> list[dict[str, Any]]:
    """Rows of a results file written by ``python -m ugach_core train`` (e.g. a GPU run of
    a preset) for code length ``bits``, renamed to ``variant``; [] when the file is absent."""
    path = Path(path)
    if not path.is_file():
        return []
    rows = []
    for r in json.loads(path.read_text()):
        if r.get("bits") != bits:
            continue
        rows.append({**r, "variant": variant, "group": group, "note": note})
    return rows


def plot_ablation(summary: Sequence[dict[str, Any]], ax: Any = None,
                  metrics: Sequence[tuple[str, str]] = (("map_i2t", "image→text"),
                                                        ("map_t2i", "text→image")),
                  reference: str | None = None, legend: bool = True) -> Any:
    """Dot plot: one row per variant (first-seen order from the top, at heights
    ``n-1, ..., 0``), mean MAP with error bars of one sample standard deviation over seeds
    (a seaborn point plot, :func:`ugach_core.viz.plot_over_seeds`; no bar for a single
    seed), one colour per direction (``COLORS["img"]`` for image queries, ``COLORS["txt"]``
    for text queries).  ``reference``: a variant whose means are drawn as dotted vertical
    lines.  ``legend=False``: no legend drawn, but the labelled markers stay on ``ax``
    (e.g. for one legend of the whole figure from ``ax.get_legend_handles_labels()``).

    ``summary``: either the per-seed rows of :func:`run_grid` (one dict per run; seaborn
    computes mean and standard deviation from them) or the output of :func:`summarize`
    (``m`` and ``m + "_std"`` per variant), drawn from two pseudo-runs
    :math:`\\bar y \\pm s/\\sqrt2`, which have exactly the mean :math:`\\bar y` and the
    sample standard deviation :math:`s` (one run when :math:`s` is NaN)."""
    import matplotlib.pyplot as plt

    from ..viz import COLORS, plot_over_seeds

    is_summary = all(m + "_std" in s for s in summary for m, _ in metrics)
    order = list(dict.fromkeys(s["variant"] for s in summary))
    pos = {v: len(order) - 1 - i for i, v in enumerate(order)}  # first variant on top
    runs: list[dict[str, Any]] = []
    for s in summary:
        for m, label in metrics:
            sd = s[m + "_std"] if is_summary else math.nan
            vals = [s[m]] if math.isnan(sd) else [s[m] - sd / math.sqrt(2),
                                                  s[m] + sd / math.sqrt(2)]
            runs += [{"variant": s["variant"], "y": pos[s["variant"]], "metric": label,
                      "MAP": v} for v in vals]
    if ax is None:
        _, ax = plt.subplots(figsize=(8.0, 0.38 * len(order) + 1.2))
    colors = [COLORS["img"], COLORS["txt"], COLORS["generator"], COLORS["manifold"]]
    labels = [label for _, label in metrics]
    plot_over_seeds(runs, x="MAP", y="y", hue="metric", ax=ax, hue_order=labels,
                    palette=dict(zip(labels, colors)), orient="h", native_scale=True,
                    dodge=0.3 if len(metrics) > 1 else False)
    if reference is not None and reference in pos:
        for label, c in zip(labels, colors):
            ref = [r["MAP"] for r in runs if r["variant"] == reference and r["metric"] == label]
            ax.axvline(float(np.mean(ref)), color=c, linestyle=":", linewidth=1)
    ax.set_yticks(list(pos.values()), labels=order)
    ax.set_ylabel("")
    ax.set_xlabel("MAP@all (mean ± std over seeds)")
    if ax.get_legend() is not None:
        ax.get_legend().remove()  # seaborn's, titled "metric"
    if legend:
        ax.legend(loc="best")
    return ax
