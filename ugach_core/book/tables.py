"""Result tables and report text from the stored results files, for the chapters' prose.

Nothing here trains or measures: every function reads rows (dicts, as the command line's
``results.json`` and ``benchmarks/ablations.py`` store them) or summaries made from them
(:func:`~ugach_core.book.ablations.summarize`) and returns Markdown or plain text.  Means
over seeds come with the *sample* standard deviation of
:func:`~ugach_core.evaluation.mean_std`; a single seed shows its value alone.

* reading: :func:`read_results` (either file format; smoke rows refused),
  :func:`provenance_summary` / :func:`provenance_text` (where the rows came from);
* chapter 7: :func:`method_rows`, :func:`markdown_table`, :func:`results_table`,
  :func:`published_table`, :func:`mean_of`;
* chapter 10: :func:`stored_preset_rows`, :func:`ablation_table`, :func:`ablation_numbers`,
  :func:`verdict`, :func:`preset_run_words`, :func:`name_lines`.
"""

from __future__ import annotations

import json
import math
import textwrap
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from .. import config
from ..evaluation import mean_std
from .ablations import rows_from_results
from .notes import Markdown

BITS = (16, 32, 64, 128)
ARROW = {"i2t": "I→T", "t2i": "T→I"}
METRIC = {"map": "MAP@all", "map50": "MAP@50"}
DASH = "–"
NBSP = "\u00a0"
#: the provenance keys :func:`provenance_summary` prints, where the rows have them
SHOWN_PROVENANCE = ("commit", "clean", "date", "hardware", "device", "torch")


# ------------------------------------------------------------------------- reading
def read_results(path: str | Path, smoke_ok: bool = False) -> list[dict[str, Any]]:
    """The rows of a results file: a list of rows (``python -m ugach_core train``) or
    ``{"provenance": ..., "rows": [...]}`` (``benchmarks/ablations.py``).  Raises
    ``ValueError`` when a row is a smoke-mode row, unless ``smoke_ok``."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    rows = data["rows"] if isinstance(data, dict) else data
    smoke = [r for r in rows if r.get("smoke")]
    if smoke and not smoke_ok:
        raise ValueError(f"{path}: {len(smoke)} smoke-mode rows (UGACH_SMOKE=1 or --preset "
                         "smoke); a results file for the book must hold full-size runs")
    return rows


def _wrap(text: str, indent: str) -> str:
    return textwrap.fill(text, 78, subsequent_indent=indent, break_long_words=False,
                         break_on_hyphens=False)


def provenance_summary(path: str | Path, rows: Sequence[Mapping[str, Any]]) -> str:
    """Where the rows of one command-line results file came from: presets, data, seeds,
    then each of :data:`SHOWN_PROVENANCE` (one value, or the list of distinct values) and
    the rows' notes."""
    seeds = sorted({r["seed"] for r in rows})
    kind = "SYNTHETIC" if any(r["synthetic"] for r in rows) else "real"
    lines = [f"{path}: {len(rows)} runs",
             _wrap(f"    presets   {', '.join(sorted({r['preset'] for r in rows}))}; data "
                   f"{', '.join(sorted({r['dataset'] for r in rows}))} ({kind}); seeds "
                   f"{seeds}", " " * 14)]
    for key in SHOWN_PROVENANCE:
        if not any(key in r for r in rows):
            continue
        vals = sorted({str(r.get(key)) for r in rows})
        lines.append(f"    {key:<9} {vals[0] if len(vals) == 1 else vals}")
    for note in sorted({r["note"] for r in rows if r.get("note")}):
        lines.append(_wrap(f"    note      {note}", " " * 14))
    return "\n".join(lines)


def provenance_text(record: Mapping[str, Any], keys: Iterable[str]) -> str:
    """``key: value`` lines of a provenance record (those of ``keys`` it has), wrapped."""
    return "\n".join(textwrap.fill(f"{k}: {record[k]}", 78, initial_indent="  ",
                                   subsequent_indent="    ")
                     for k in keys if k in record)


# ---------------------------------------------------------------------- chapter 7
def cell(values: Sequence[float], digits: int = 3) -> str:
    """One table cell: ``–`` (no value), the value (one seed), or ``mean ± std`` with the
    sample standard deviation over seeds."""
    if len(values) == 0:
        return DASH
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    m, s = mean_std(values)
    return f"{m:.{digits}f} ± {s:.{digits}f}"


def _select(rows: Iterable[Mapping[str, Any]], preset: str, bits: int) -> list:
    return [r for r in rows if r["preset"] == preset and r["bits"] == bits]


def method_rows(rows: Sequence[Mapping[str, Any]], preset: str, label: str,
                metrics: Sequence[str] = ("map", "map50"), rounds: bool = False,
                bits: Sequence[int] = BITS) -> list[list[str]]:
    """Table rows of one method: ``[label, measure, one cell per code length]`` for every
    metric (``map``: MAP@all, ``map50``: MAP@50) and direction, and with ``rounds`` a row
    ``rounds done`` (``r of R``, from the first run at that code length)."""
    out = []
    for metric in metrics:
        for d in ("i2t", "t2i"):
            out.append([label, f"{METRIC[metric]} {ARROW[d]}",
                        *[cell([r[f"{metric}_{d}"] for r in _select(rows, preset, b)])
                          for b in bits]])
    if rounds:
        done = []
        for b in bits:
            sel = _select(rows, preset, b)
            done.append(DASH if not sel else
                        f"{sel[0]['rounds_done']} of {sel[0]['config']['rounds']}")
        out.append([label, "rounds done", *done])
    return out


def markdown_table(head: Sequence[str], body: Sequence[Sequence[str]],
                   caption: str = "") -> str:
    """A Markdown table (under ``caption`` when given); a first column that repeats the
    row above is left empty, so each method is named once."""
    lines = ([caption, ""] if caption else []) + \
        ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for k, r in enumerate(body):
        r = list(r)
        if k and r[0] == body[k - 1][0]:
            r[0] = ""
        lines.append("| " + " | ".join(str(c) for c in r) + " |")
    return "\n".join(lines)


def n_seeds(rows: Iterable[Mapping[str, Any]], preset: str) -> int:
    """The number of distinct seeds of ``preset`` in ``rows``."""
    return len({r["seed"] for r in rows if r["preset"] == preset})


def results_table(rows: Sequence[Mapping[str, Any]],
                  methods: Mapping[str, str] | None = None, caption: str = "",
                  metrics: Sequence[str] = ("map", "map50"), map_only: Sequence[str] = (),
                  rounds: Sequence[str] = (), bits: Sequence[int] = BITS) -> str:
    """The Markdown table of a results file: one block of rows per method
    (:func:`method_rows`), columns the code lengths.

    ``methods``: preset -> label, in table order (default: every preset of ``rows``, in
    sorted order, labelled ``\\`preset\\`, n seed(s)``).  Presets in ``map_only`` show
    MAP@all only; presets in ``rounds`` also show the rounds done."""
    if methods is None:
        methods = {p: f"`{p}`, {n_seeds(rows, p)} seed(s)"
                   for p in sorted({r["preset"] for r in rows})}
    body = []
    for preset, label in methods.items():
        body += method_rows(rows, preset, label, ("map",) if preset in map_only else metrics,
                            preset in rounds, bits)
    return markdown_table(["method", "measure", *[f"{b} bits" for b in bits]], body, caption)


def published_table(published: Mapping[str, Any], bits: Sequence[int] = BITS) -> str:
    """The published MAP@all numbers of ``published.json`` as a Markdown table (method,
    data, task, code lengths), with their protocols in the caption and the features of
    each data set in a line below."""
    body, features = [], {}
    entries = [e for e in published["entries"] if e["metric"] == "map"]
    for e in entries:
        features[e["dataset"]] = e["features"]
        body.append([e["label"].replace(", published", ""), e["dataset"],
                     ARROW[e["direction"]], *[f"{e['map'][str(b)]:.3f}" for b in bits]])
    protocols = sorted({e["protocol"] for e in entries})
    table = markdown_table(
        ["method", "data", "task", *[f"{b} bits" for b in bits]], body,
        f"**Published** ({'; '.join(protocols)}; not produced by this project)")
    return table + "\n\nFeatures: " + "; ".join(f"{d}: {f}" for d, f in features.items()) + "."


def mean_of(rows: Iterable[Mapping[str, Any]], preset: str, bits: int, key: str) -> float:
    """Mean of ``key`` over the runs of ``preset`` at ``bits`` (NaN when there are none)."""
    vals = [r[key] for r in _select(rows, preset, bits)]
    return float(np.mean(vals)) if vals else math.nan


# --------------------------------------------------------------------- chapter 10
def preset_changes(config_dict: Mapping[str, Any], preset: str, bits: int) -> dict[str, Any]:
    """The settings of a stored run's ``config_dict`` that differ from today's ``preset`` at
    ``bits`` (never shrunk by ``UGACH_SMOKE``), each with the run's value; fields the run's
    config lacks (added later) take their defaults of :class:`~ugach_core.config.UGACHConfig`."""
    then = {**config.UGACHConfig().to_dict(), **config_dict}
    now = getattr(config, preset)(bits).to_dict()
    return {k: then[k] for k in now if k not in ("extra", "preset") and then[k] != now[k]}


def stored_preset_rows(path: str | Path, preset: str, bits: int) -> list[dict[str, Any]]:
    """Rows of a command-line results file of ``preset`` at ``bits`` (e.g. a GPU run), as
    rows of the ablation table: the variant name says how many of its rounds ran, the
    note names the hardware and any setting in which the run differs from today's preset
    (a run made before the preset changed; ``first_layer`` only changes how the same
    updates are computed).  [] when the file is absent."""
    out = rows_from_results(path, preset, "preset", bits)
    for r in out:
        done, total = r["rounds_done"], r["config"]["rounds"]
        if done < total:
            r["variant"] = f"{preset} (GPU, {done} of {total} rounds)"
            r["note"] = (f"{r['hardware']}; stopped by a time limit after {done} of "
                         f"{total} rounds")
        else:
            r["variant"], r["note"] = f"{preset} (GPU)", r["hardware"]
        old = [f"{k}={v!r}" for k, v in preset_changes(r["config"], preset, r["bits"]).items()
               if k != "first_layer"]
        if old:
            r["note"] += f"; ran before the preset changed: {', '.join(old)}"
    return out


def pm(s: Mapping[str, Any], key: str, digits: int = 3) -> str:
    """``mean ± std`` of a summary's ``key`` (the mean alone when the std is NaN or
    absent); non-breaking spaces keep a cell on one line."""
    sd = s.get(key + "_std", math.nan)
    return f"{s[key]:.{digits}f}" + ("" if math.isnan(sd) else f"{NBSP}±{NBSP}{sd:.{digits}f}")


def _mark(c: Mapping[str, Any] | None) -> str:
    return f"{NBSP}**\\***" if c is not None and c["clear"] else ""


WHAT_PRESET = {"paper": "authors' code, batch-1 schedule",
               "paper_text": "paper's formulas, batch-1 schedule"}


def ablation_table(summary: Sequence[Mapping[str, Any]], rows: Sequence[Mapping[str, Any]],
                   cmp_all: Mapping[str, Mapping[str, Any]],
                   cmp_last: Mapping[str, Mapping[str, Any]],
                   not_run: Sequence[str] = (), caption: str = "") -> str:
    """The ablation table in Markdown: per variant its note, seeds, MAP@all both ways, the
    mean MAP of the selected and of the last D (``mean ± std``, ``*`` where
    :func:`~ugach_core.book.ablations.compare_to_reference` calls the difference clear),
    MAP@50 both ways, the selected rounds and the wall time; a line per preset of
    ``not_run``."""
    notes = {r["variant"]: r.get("note") or DASH for r in rows}
    selected: dict[str, list[str]] = {}
    for r in rows:
        if "best_round" in r:
            selected.setdefault(r["variant"], []).append(str(r["best_round"]))
    body = []
    for s in summary:
        v = s["variant"]
        last = pm(s, "last_map_avg") + _mark(cmp_last.get(v)) if "last_map_avg" in s \
            else DASH
        body.append([v, notes[v], str(s["n"]), f"{s['map_i2t']:.3f}", f"{s['map_t2i']:.3f}",
                     pm(s, "map_avg") + _mark(cmp_all.get(v)), last,
                     f"{s['map50_i2t']:.3f}", f"{s['map50_t2i']:.3f}",
                     ", ".join(selected.get(v, [DASH])), f"{s['train_seconds']:.1f}"])
    for p in not_run:
        body.append([p, WHAT_PRESET.get(p, ""), "0", "not run here"] + [""] * 7)
    head = ["variant", "what it is", "seeds", "MAP I→T", "MAP T→I", "mean MAP",
            "mean MAP, last D", "MAP@50 I→T", "MAP@50 T→I", "selected round", "wall s"]
    table = markdown_table(head, body)
    return f"{caption}\n\n{table}" if caption else table


def ablation_caption(grid: str, bits: int, reference: str, provenance: Mapping[str, Any],
                     tiny: bool = False) -> str:
    """The caption of :func:`ablation_table`: data and code length, what the cells are,
    the meaning of ``*``, and the CPU rows' hardware (and torch threads) from the grid's
    provenance; a TINY grid says that its numbers mean nothing."""
    threads = "" if tiny else f", {provenance.get('torch_threads')} torch thread"
    return (("**TINY in-notebook grid (the code runs; the numbers mean nothing).** "
             if tiny else "")
            + f"{grid}, {bits} bits; means over seeds, and for the two mean-MAP columns "
            "also ± the sample standard deviation over seeds; "
            f"**\\*** = differs from `{reference}` by more than twice the standard error "
            "of the difference (see *Telling a difference from noise*). "
            f"CPU rows: {provenance['hardware']}{threads}; GPU rows: see their note. "
            "Wall time = the whole training run (graph, pretraining, rounds).")


def verdict(c: Mapping[str, Any]) -> Markdown:
    """The words of eq-abl-clear for one comparison (pasted with ``{glue:text}``)."""
    if c["clear"] is None:
        return Markdown("of unknown spread (one seed)")
    return Markdown("more than twice its standard error" if c["clear"]
                    else "within twice its standard error")


def ablation_numbers(by: Mapping[str, Mapping[str, Any]],
                     cmp_all: Mapping[str, Mapping[str, Any]],
                     cmp_last: Mapping[str, Mapping[str, Any]], reference: str,
                     names: Mapping[str, str]) -> dict[str, Any]:
    """The numbers chapter 10's prose pastes, by glue name.

    For the reference: ``ref_avg``, ``ref_avg_std``, ``ref_i2t``, ``ref_t2i``,
    ``ref_last``, ``ref_wall``.  For each ``short -> variant`` of ``names``:
    ``<short>_avg`` (mean MAP), ``_d`` and ``_se`` (difference to the reference and its
    standard error), ``_wall``, ``_i2t``, ``_t2i``, ``_v`` (:func:`verdict`), and where the
    variant has a last D: ``_last``, ``_last_d``, ``_last_se``, ``_last_v``."""
    ref = by[reference]
    out: dict[str, Any] = {"ref_avg": ref["map_avg"], "ref_avg_std": ref["map_avg_std"],
                           "ref_i2t": ref["map_i2t"], "ref_t2i": ref["map_t2i"],
                           "ref_last": ref["last_map_avg"], "ref_wall": ref["train_seconds"]}
    for short, name in names.items():
        s, c = by[name], cmp_all[name]
        out.update({f"{short}_avg": s["map_avg"], f"{short}_d": c["delta"],
                    f"{short}_se": c["se"], f"{short}_wall": s["train_seconds"],
                    f"{short}_i2t": s["map_i2t"], f"{short}_t2i": s["map_t2i"],
                    f"{short}_v": verdict(c)})
        if name in cmp_last:
            cl = cmp_last[name]
            out.update({f"{short}_last": s["last_map_avg"], f"{short}_last_d": cl["delta"],
                        f"{short}_last_se": cl["se"], f"{short}_last_v": verdict(cl)})
    return {k: v if isinstance(v, Markdown) else float(v) for k, v in out.items()}


def preset_run_words(rows: Sequence[Mapping[str, Any]], preset: str) -> Markdown:
    """A clause on the stored run of ``preset`` among ``rows`` (its mean MAP, wall time and
    rounds), or that it was not run."""
    got = [r for r in rows if r["variant"].startswith(preset + " ")]
    if not got:
        return Markdown(f"{preset} was not run here (no stored GPU result)")
    r = got[0]
    return Markdown(f"{preset} reaches a mean MAP of {(r['map_i2t'] + r['map_t2i']) / 2:.4f} "
                    f"after {r['train_seconds']:.0f} s on the GPU, stopped after "
                    f"{r['rounds_done']} of its {r['config']['rounds']} rounds")


def name_lines(names: Sequence[str], width: int = 78) -> str:
    """``names`` separated by ``;`` on lines of at most ``width`` characters (indented by
    two spaces), broken between names, never inside one."""
    lines, line = [], " "
    for n in names:
        if len(line) + len(n) > width - 2 and line.strip():
            lines.append(line.rstrip(";"))
            line = " "
        line += f" {n};"
    lines.append(line.rstrip(";"))
    return "\n".join(lines)


__all__ = ["BITS", "ablation_caption", "ablation_numbers", "ablation_table", "cell",
           "markdown_table", "mean_of", "method_rows", "n_seeds", "name_lines", "pm",
           "preset_run_words", "provenance_summary", "provenance_text", "published_table",
           "read_results", "results_table", "stored_preset_rows", "verdict"]
