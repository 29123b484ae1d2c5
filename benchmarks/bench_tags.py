"""The deferred first layer on sparse tags: the `paper` schedule on the MIRFlickr-shaped
SYNTHETIC stand-in (binary tags with MIRFlickr's tag frequencies, about 0.3 % non-zero;
ReLU'd fc7-like images), with the text layer's refresh as sums of non-zero columns
(``embedding_bag``, the default for inputs under 5 % non-zero) against the same deferred
path with a dense refresh, in one run.  Both paths compute the same weights (tests).

Usage: PYTHONPATH=. python benchmarks/bench_tags.py [--steps 1000]
Writes its section of benchmarks/RESULTS.md and benchmarks/results/paper_tags.json.
"""

from __future__ import annotations

import argparse
import math
import time

from _common import HERE, write_section  # noqa: I001  (sets sys.path)

import torch

import ugach_core as u
from ugach_core.book.provenance import provenance, write_results
from ugach_core.data import make_mirflickr_synthetic
from ugach_core.deferred import DeferredLinear
from bench_paper import STAGES, run_steps, setup_seconds
from bench_train import BITS, N_TRAIN, n_fit_of, random_neighbors


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=1000)
    args = ap.parse_args()
    t0 = time.perf_counter()
    data = make_mirflickr_synthetic(n=N_TRAIN * 6 // 5)
    cfg = u.paper(BITS)
    n_fit = n_fit_of(data, cfg)
    tr = u.Trainer(cfg, data, seed=0, progress=False, neighbors=random_neighbors(n_fit),
                   device="cpu")  # a CPU section, also on a machine with a GPU
    density = float((tr.train_features["txt"] != 0).float().mean())
    out = {}
    for name, below in (("dense refresh", 0.0), ("sparse refresh (default)", 0.05)):
        DeferredLinear.SPARSE_BELOW = below
        setup = setup_seconds(tr)
        d, gi, gt = run_steps(tr, args.steps, seed=2)
        out[name] = {"setup_s": setup, "d_step_s": d - setup / (2 * args.steps),
                     "g_step_s": [gi - setup / args.steps, gt - setup / args.steps]}
    DeferredLinear.SPARSE_BELOW = 0.05
    d_steps = cfg.d_epochs * 2 * math.ceil(n_fit * cfg.n_samples / cfg.d_batch)
    g_steps = cfg.g_epochs * math.ceil(n_fit / cfg.g_batch)
    lines = [f"### The `paper` schedule on MIRFlickr-shaped synthetic tags ({n_fit:,} fitted "
             f"pairs, {density:.2%} of the tag entries non-zero, hidden {cfg.hidden}, "
             f"{BITS} bits)\n",
             "| text layer's refresh | setup s per stage | s per D step | s per G step (img, "
             "txt query) | **steps and setup per round, s** |", "|---|---:|---:|---:|---:|"]
    for name, r in out.items():
        r["round_s"] = (d_steps * r["d_step_s"] + g_steps * sum(r["g_step_s"])
                        + STAGES * r["setup_s"])
        lines.append(f"| {name} | {r['setup_s']:.2f} | {r['d_step_s']:.4f} | "
                     f"{r['g_step_s'][0]:.4f}, {r['g_step_s'][1]:.4f} | "
                     f"**{r['round_s']:,.0f}** |")
    dense, sparse = out["dense refresh"], out["sparse refresh (default)"]
    ratio = dense["round_s"] / sparse["round_s"]
    lines += ["", f"Both rows are the deferred path ({2 * args.steps} D and {2 * args.steps} "
              f"G steps each, setup counted once per stage, {STAGES} stages per "
              f"round); the shared parts of a round (sampling, D's codes, validation) are "
              f"the same for both and left out. **Sparse / dense refresh: {ratio:.2f}x "
              f"faster per round** (setup {dense['setup_s'] / sparse['setup_s']:.1f}x).",
              f"\nBenchmark wall time: {time.perf_counter() - t0:.0f} s."]
    print("\n".join(lines))
    row = {"data": "mirflickr25k-shaped synthetic (binary tags)", "n_fit": n_fit,
           "tag_density": density, "hidden": cfg.hidden, "bits": BITS, "steps": args.steps,
           "d_steps": d_steps, "g_steps": 2 * g_steps, "paths": out, "ratio": ratio}
    write_results(HERE / "results" / "paper_tags.json", [row], provenance(None, "cpu"))
    write_section("paper_tags", "The deferred layer on sparse tags (`benchmarks/bench_tags.py`)",
                  "\n".join(lines))


if __name__ == "__main__":
    main()
