"""Training throughput and hardware efficiency on MIRFlickr-shaped SYNTHETIC data.

15,000 training pairs (13,500 fitted, 1,500 validation), 4096-d image and 1386-d text
features, 64 bits.  Five trainers are built in one run (``paper`` twice: first with
glibc's default allocator, as the trainer ran before ``reuse_freed_memory``, then reusing
freed memory as ``Trainer.fit`` does now; the other rows reuse it too):

* ``paper``      the authors' schedule (hidden 8192, SGD, one triplet per D step, one query
                 per G step, pool 1/50, 2 samples, 2 G epochs per round) through autograd +
                 SGD; the preset's default deferred first layer is timed in bench_paper.py
                 (it amortises a setup over many steps, which 20 timed steps cannot show);
* ``fast@8192``  the ``fast`` schedule with the same 8192-wide network as ``paper``;
* ``fast@8192, whole queries``  the same with ``d_batches="query"`` (a D step holds whole
                 queries, each encoded once; its effect on MAP: ``d_batches.py``);
* ``fast``       the ``fast`` preset as shipped (hidden 1024).

A full round of ``paper`` takes hours on a CPU, so every part of a round is timed on a
subset of its steps, on the real code path and real shapes, and multiplied by the number
of such steps in a round: D steps (``Trainer.train_discriminator`` on r batches per
direction), G steps (``Trainer.g_step``), the sampling pass (G's codes of every
item, scaled from 2,048 rows, plus the per-chunk sampling work), D's codes for the rewards
and the validation (same encoder cost), and the validation MAP (measured in full).  A
small full round (3,000 pairs) checks this model against one round of ``Trainer.fit``.

Efficiency: the FLOPs the matrix products of a D step and a G step need (forward and
backward of both layers, counted from the shapes), divided by the step's time, against
``torch.matmul`` on exactly those shapes in the same run.

The goal of 50x (``paper`` as before / ``fast@8192, whole queries``) is measured again
``--repeats`` times, the two rows one after the other each time, and the paired ratios
are printed with their median: the machine's speed drifts between runs and within one.

Usage: PYTHONPATH=. python benchmarks/bench_train.py [--device cpu] [--steps 2] [--repeats 5]
Writes its section of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import time

from _common import timeit, write_section  # noqa: I001  (sets sys.path)

import numpy as np
import torch

import ugach_core as u
import ugach_core.utils
from ugach_core import sampling
from ugach_core.losses import generator_log_probs, pairwise_sq_dist
from ugach_core.selection import DIRECTIONS
from ugach_core.data import CrossModalDataset, make_synthetic
from ugach_core.metrics import mean_average_precision

N_TRAIN, D_IMG, D_TXT, BITS = 15_000, 4096, 1386, 64


def random_neighbors(n: int, k: int = 10, seed: int = 0) -> np.ndarray:
    """A random neighbour list (self first): the graph's content does not change the cost
    of a round; building the real one is benchmarked in bench_graph.py."""
    nb = np.random.default_rng(seed).integers(0, n, (n, k))
    nb[:, 0] = np.arange(n)
    return nb


def make_data(n_train: int, d_img: int, d_txt: int) -> CrossModalDataset:
    return make_synthetic(n=n_train * 6 // 5, d_img=d_img, d_txt=d_txt, n_classes=24, seed=0)


def n_fit_of(data: CrossModalDataset, cfg: u.UGACHConfig) -> int:
    return len(data.split_validation(cfg.val_fraction, 0)[0])


class RoundModel:
    """Times the parts of one adversarial round of ``trainer`` and scales them."""

    def __init__(self, tr: u.Trainer, steps: int, sync):
        self.tr, self.steps, self.sync = tr, steps, sync
        self.n = len(tr.fit_idx)
        self.parts: dict[str, float] = {}
        self.step_time: dict[str, float] = {}

    def encode_per_row(self, rows: int = 2048) -> dict[str, float]:
        tr, out = self.tr, {}
        for m in ("img", "txt"):
            x = tr.train_features[m][:rows]
            with torch.no_grad():
                out[m] = timeit(lambda: tr.generator.encode(x, m), repeat=2,
                                sync=self.sync) / len(x)
        return out

    def measure(self, enc_row: dict[str, float], val_map_s: float) -> dict[str, float]:
        tr, cfg, n, r = self.tr, self.tr.cfg, self.n, self.steps
        dev = tr.device
        enc_all = n * (enc_row["img"] + enc_row["txt"])
        # --- sampling pass: encode every item once (scaled) + per-chunk work (measured)
        chunk = max(1, min(1024, (1 << 24) // n))
        fake = {m: torch.rand(n, cfg.bits, device=dev) for m in ("img", "txt")}
        t_chunk = 0.0
        def chunk_work(q: torch.Tensor, qm: str, xm: str) -> None:
            # what Trainer.sample_triplets does per chunk, with G's codes already computed
            pool = sampling.random_pools(n, tr.pool_size, len(q), tr.rng, dev)
            excluded = sampling.exclusion_mask(pool, tr.neighbors[q])
            d = pairwise_sq_dist(fake[qm][q], fake[xm]).gather(1, pool)
            sampling.draw(generator_log_probs(d, cfg.temperature, excluded), cfg.n_samples,
                          tr.rng)
            sampling.positives(tr.neighbors, q, cfg.n_samples, tr.rng)

        for qm, xm in DIRECTIONS.values():
            q = torch.arange(min(chunk, n), device=dev)
            t_chunk += timeit(lambda: chunk_work(q, qm, xm), repeat=2, sync=self.sync)
        self.parts["sampling"] = enc_all + math.ceil(n / chunk) * t_chunk
        # --- D epoch: r real batches per direction through train_discriminator
        m = r * cfg.d_batch
        trip = {k: tuple(torch.randint(0, n, (m,), device=dev) for _ in range(3))
                for k in ("i2t", "t2i")}
        tr.train_discriminator({k: tuple(x[:cfg.d_batch] for x in v)  # warm-up: 1 batch
                                for k, v in trip.items()})
        t_d = timeit(lambda: tr.train_discriminator(trip), repeat=1, warmup=0, sync=self.sync)
        per_step_d = t_d / (2 * d_batches(cfg, m))
        self.step_time["D"] = per_step_d
        d_steps = cfg.d_epochs * 2 * d_batches(cfg, n * cfg.n_samples)
        self.parts["D epoch"] = d_steps * per_step_d
        # --- G epochs: r real steps per direction (D's codes cached as in train_generator)
        t_g = {}
        for qm, _ in DIRECTIONS.values():
            q = torch.randperm(n, device=dev)[:cfg.g_batch]
            t_g[qm] = timeit(lambda: tr.g_step(q, qm, fake), repeat=r, sync=self.sync)
        self.step_time["G img query"], self.step_time["G txt query"] = t_g["img"], t_g["txt"]
        g_steps = cfg.g_epochs * math.ceil(n / cfg.g_batch)
        self.parts["G epochs"] = enc_all + g_steps * (t_g["img"] + t_g["txt"])  # + D cache
        # --- validation: encode val + fit items of both modalities, MAP both ways
        n_all = n + len(tr.val_idx)
        self.parts["validation"] = n_all * (enc_row["img"] + enc_row["txt"]) + val_map_s
        self.d_steps, self.g_steps = d_steps, 2 * g_steps
        return self.parts


def d_batches(cfg: u.UGACHConfig, triplets: int) -> int:
    """D steps per direction and epoch over ``triplets`` query-major triplets."""
    if cfg.d_batches == "query":  # whole queries: d_batch // n_samples of them a step
        return math.ceil(triplets // cfg.n_samples / max(1, cfg.d_batch // cfg.n_samples))
    return math.ceil(triplets / cfg.d_batch)


def hashnet_gemms(m: int, d: int, h: int, l: int, grad: bool) -> list[tuple[int, int, int]]:
    """(M, K, N) of the matrix products of a HashNet on m rows (forward; + backward)."""
    g = [(m, d, h), (m, h, l)]
    if grad:
        g += [(l, m, h), (m, l, h), (h, m, d)]  # dW_h, d phi, dW_c (no gradient for x)
    return g


def gemm_seconds(shapes, device, sync) -> tuple[float, float]:
    """Total FLOPs and the torch.matmul time of the given products."""
    flops, secs = 0.0, 0.0
    for (mm, kk, nn) in shapes:
        a = torch.randn(mm, kk, device=device)
        b = torch.randn(kk, nn, device=device)
        flops += 2.0 * mm * kk * nn
        secs += timeit(lambda: torch.matmul(a, b), repeat=5, sync=sync)
    return flops, secs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--steps", type=int, default=2, help="timed steps per direction")
    ap.add_argument("--paper-steps", type=int, default=20)
    ap.add_argument("--n-train", type=int, default=N_TRAIN)
    ap.add_argument("--no-check", action="store_true", help="skip the small full-round check")
    ap.add_argument("--repeats", type=int, default=5,
                    help="paired re-measurements of `paper` as before vs fast@8192, whole queries")
    args = ap.parse_args()
    dev = torch.device(args.device)
    sync = torch.cuda.synchronize if dev.type == "cuda" else None
    torch.manual_seed(0)
    lines = []

    def say(s=""):
        print(s, flush=True)
        lines.append(s)

    t0 = time.perf_counter()
    data = make_data(args.n_train, D_IMG, D_TXT)
    paper = u.paper(BITS).replace(first_layer="autograd")
    presets = {"paper, glibc's malloc": paper, "paper": paper,
               "fast@8192": u.fast(BITS).replace(hidden=8192),
               "fast@8192, whole queries": u.fast(BITS).replace(hidden=8192, d_batches="query"),
               "fast": u.fast(BITS)}
    n_fit = n_fit_of(data, presets["fast"])
    nb = random_neighbors(n_fit)
    say(f"### One adversarial round, {len(data.train_idx):,} training pairs "
        f"({n_fit:,} fitted), {D_IMG}-d image / {D_TXT}-d text, {BITS} bits (synthetic)\n")
    # validation MAP cost: the same for every preset (1,500 x 13,500 both ways), measured once
    n_val = len(data.train_idx) - n_fit
    cq = np.random.default_rng(1).integers(0, 2, (n_val, BITS)).astype(bool)
    cd = np.random.default_rng(2).integers(0, 2, (n_fit, BITS)).astype(bool)
    lab = data.labels
    t = time.perf_counter()
    for _ in range(2):
        mean_average_precision(cq, cd, lab[:n_val], lab[:n_fit])
    val_map_s = time.perf_counter() - t
    rounds, models = {}, {}
    for name, cfg in presets.items():
        tr = u.Trainer(cfg, data, seed=0, device=dev, progress=False, neighbors=nb)
        rm = RoundModel(tr, args.paper_steps if name.startswith("paper") else args.steps, sync)
        # the first row as the trainer ran before it reused freed memory (fresh mmap pages)
        ugach_core.utils.REUSE_FREED_MEMORY = name != "paper, glibc's malloc"
        with ugach_core.utils.reuse_freed_memory():  # as Trainer.fit, for the bare g_step
            enc = rm.encode_per_row()
            rounds[name] = dict(rm.measure(enc, val_map_s))
        models[name] = rm
        print(name, {k: round(v, 2) for k, v in rounds[name].items()}, rm.step_time, flush=True)
        del tr
    say("| preset | hidden | D steps / round | G steps / round | s per D step | "
        "s per G step (img, txt query) | sampling s | D epoch s | G epochs s | validation s "
        "| **round s** |")
    say("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    total = {}
    for name, parts in rounds.items():
        rm, cfg = models[name], presets[name]
        total[name] = sum(parts.values())
        say(f"| {name} | {cfg.hidden} | {rm.d_steps:,} | {rm.g_steps:,} | "
            f"{rm.step_time['D']:.4f} | {rm.step_time['G img query']:.3f}, "
            f"{rm.step_time['G txt query']:.3f} | {parts['sampling']:.0f} | "
            f"{parts['D epoch']:.0f} | {parts['G epochs']:.0f} | {parts['validation']:.0f} | "
            f"**{total[name]:,.0f}** |")
    say()
    before = "paper, glibc's malloc"
    r8, r1 = total[before] / total["fast@8192"], total[before] / total["fast"]
    rq = total[before] / total["fast@8192, whole queries"]
    say(f"Timed on subsets: {args.paper_steps} D batches and {args.paper_steps} G steps per "
        f"direction for `paper`, {args.steps} for the fast schedules; encoder cost per row "
        "from 2,048 rows; each multiplied by its count in a round (columns above).\n")
    say(f"First row: `paper` with glibc's default allocator, as the trainer ran before "
        "`reuse_freed_memory` (every large tensor a fresh `mmap`); the other rows reuse freed "
        "memory, as `Trainer.fit` does now. Same random stream, same weights: only the time "
        "differs.\n")
    say(f"**Per round, `paper` / `fast@8192` = {total['paper'] / total['fast@8192']:.1f}x; "
        f"`paper` / `fast` (hidden 1024) = {total['paper'] / total['fast']:.1f}x**, all reusing "
        f"freed memory. Against `paper` as before: `fast@8192` **{r8:.1f}x** (goal: 50x), "
        f"`fast` {r1:.1f}x; reusing freed memory makes `paper`'s round "
        f"{total[before] / total['paper']:.2f}x faster.")
    say()
    say(f"`fast@8192, whole queries`: `fast@8192` with `d_batches=\"query\"` (each D step "
        f"{presets['fast'].d_batch // presets['fast'].n_samples} whole queries with their "
        f"{presets['fast'].n_samples} triplets, each query encoded once; its effect on MAP: "
        f"`benchmarks/d_batches.py`): D epoch "
        f"{rounds['fast@8192']['D epoch'] / rounds['fast@8192, whole queries']['D epoch']:.2f}x "
        f"faster than with random batches; **`paper` as before / `fast@8192, whole queries` "
        f"= {rq:.1f}x** (goal: 50x).")
    say()
    # ---- the 50x comparison again: both rows re-measured alternately, paired ratios -------
    # (the machine's speed drifts between runs and within one: a pair measured back to back
    # shares its state, and the spread of the pairs says how far one ratio can be trusted)
    if args.repeats > 0:
        pair, ratios = (before, "fast@8192, whole queries"), []
        for _ in range(args.repeats):
            t = {}
            for name in pair:
                rm = models[name]
                ugach_core.utils.REUSE_FREED_MEMORY = name != before
                with ugach_core.utils.reuse_freed_memory():
                    t[name] = sum(rm.measure(rm.encode_per_row(), val_map_s).values())
            ratios.append(t[pair[0]] / t[pair[1]])
            print("paired repeat", {k: round(v) for k, v in t.items()}, flush=True)
        ugach_core.utils.REUSE_FREED_MEMORY = True
        say(f"Paired repeats: `paper` as before and `fast@8192, whole queries` measured again, "
            f"one after the other, {args.repeats} times in this run; ratios "
            f"{', '.join(f'{x:.1f}x' for x in ratios)}: median **{np.median(ratios):.1f}x**, "
            f"{sum(x >= 50 for x in ratios)} of {args.repeats} at or above the goal of 50x.")
        say()
    # ---- model check: a real round at small size against the same model -----------------
    if not args.no_check:
        small = make_data(3000, 512, 256)
        cfg = u.fast(BITS)
        n_s = n_fit_of(small, cfg)
        tr = u.Trainer(cfg, small, seed=0, device=dev, progress=False,
                       neighbors=random_neighbors(n_s))
        tr.round = 0
        rm = RoundModel(tr, args.steps, sync)
        qs = np.random.default_rng(1).integers(0, 2, (len(small.train_idx) - n_s, BITS))
        ds = np.random.default_rng(2).integers(0, 2, (n_s, BITS))
        t = time.perf_counter()
        for _ in range(2):
            mean_average_precision(qs, ds, small.labels[:len(qs)], small.labels[:n_s])
        val_s = time.perf_counter() - t  # read before timing the encoder below
        with ugach_core.utils.reuse_freed_memory():  # as fit() below
            pred = sum(rm.measure(rm.encode_per_row(), val_s).values())
        tr.cfg = cfg.replace(rounds=1)  # fit() from round 0: exactly one adversarial round
        tr.fit()  # warm-up
        tr.round = 0
        t = time.perf_counter()
        tr.fit()
        real = time.perf_counter() - t
        say(f"Check of the scaling on a small full round (`fast`, 3,000 pairs, 512/256-d): "
            f"predicted {pred:.1f} s, measured one round of `Trainer.fit` {real:.1f} s "
            f"(ratio {real / pred:.2f}).\n")

    # ---- efficiency against torch.matmul -------------------------------------------------
    heap = contextlib.ExitStack()  # the GEMMs' outputs reuse memory as the steps' ones
    heap.enter_context(ugach_core.utils.reuse_freed_memory())
    cfg = presets["fast@8192"]
    h, l, b, p = cfg.hidden, cfg.bits, cfg.d_batch, models["fast@8192"].tr.pool_size
    st = models["fast@8192"].step_time
    say(f"### Efficiency against the hardware (`fast@8192`, batch {b}, pool {p})\n")
    say("FLOPs: the matrix products a step needs (forward and backward of both layers, "
        "no input gradient), from the shapes. GEMM time: `torch.matmul` on exactly those "
        "shapes, same run. Efficiency = achieved FLOP/s / GEMM FLOP/s.\n")
    say("| work | GFLOP | measured s | achieved GFLOP/s | torch.matmul GFLOP/s | "
        "**efficiency** |")
    say("|---|---:|---:|---:|---:|---:|")
    d_shapes = {  # one D step per direction: query net on b rows, item net on 2b rows
        "D step (image query)": hashnet_gemms(b, D_IMG, h, l, True)
        + hashnet_gemms(2 * b, D_TXT, h, l, True),
        "D step (text query)": hashnet_gemms(b, D_TXT, h, l, True)
        + hashnet_gemms(2 * b, D_IMG, h, l, True)}
    g_shapes = {
        "G step (image query)": hashnet_gemms(cfg.g_batch, D_IMG, h, l, True)
        + hashnet_gemms(p, D_TXT, h, l, True),
        "G step (text query)": hashnet_gemms(cfg.g_batch, D_TXT, h, l, True)
        + hashnet_gemms(p, D_IMG, h, l, True)}
    eff = {}
    gem = {}
    for key, shapes in {**d_shapes, **g_shapes}.items():
        gem[key] = gemm_seconds(shapes, dev, sync)
    # D step time was measured as the mean over both directions: compare with the mean
    d_fl = sum(gem[k][0] for k in d_shapes) / 2
    d_gs = sum(gem[k][1] for k in d_shapes) / 2
    rows = [("D step (mean of both directions)", d_fl, st["D"], d_gs),
            ("G step (image query)", gem["G step (image query)"][0], st["G img query"],
             gem["G step (image query)"][1]),
            ("G step (text query)", gem["G step (text query)"][0], st["G txt query"],
             gem["G step (text query)"][1])]
    for name, fl, sec, gs in rows:
        eff[name] = gs / sec
        say(f"| {name} | {fl / 1e9:.1f} | {sec:.3f} | {fl / sec / 1e9:.1f} | "
            f"{fl / gs / 1e9:.1f} | **{gs / sec:.0%}** |")
    # epochs: D epoch = its steps; G epoch = its steps + D's codes of every item (forward)
    rm = models["fast@8192"]
    n = rm.n
    n_d = rm.d_steps
    d_ep = (n_d * d_fl, n_d * st["D"], n_d * d_gs)
    gsteps = rm.g_steps // 2
    enc_fl, enc_gs = gemm_seconds(hashnet_gemms(2048, D_IMG, h, l, False)
                                  + hashnet_gemms(2048, D_TXT, h, l, False), dev, sync)
    enc_meas = rm.parts["G epochs"] - gsteps * (st["G img query"] + st["G txt query"])
    g_ep = (gsteps * (gem["G step (image query)"][0] + gem["G step (text query)"][0])
            + enc_fl * n / 2048,
            rm.parts["G epochs"],
            gsteps * (gem["G step (image query)"][1] + gem["G step (text query)"][1])
            + enc_gs * n / 2048)
    for name, (fl, sec, gs) in (("D epoch (full size, scaled)", d_ep),
                               ("G epoch (full size, scaled, with D's codes)", g_ep)):
        eff[name] = gs / sec
        say(f"| {name} | {fl / 1e9:,.0f} | {sec:,.0f} | {fl / sec / 1e9:.1f} | "
            f"{fl / gs / 1e9:.1f} | **{gs / sec:.0%}** |")
    say()
    say(f"Encoding every item for D's reward codes: {enc_meas:.0f} s of the G epoch.")
    say(f"Goal >= 50 % of the GEMM throughput: D epoch {eff['D epoch (full size, scaled)']:.0%},"
        f" G epoch {eff['G epoch (full size, scaled, with D' + chr(39) + 's codes)']:.0%}.")
    heap.close()
    say(f"\nBenchmark wall time: {time.perf_counter() - t0:.0f} s.")
    write_section("train", "Training throughput and efficiency (`benchmarks/bench_train.py`)",
                  "\n".join(lines), device=args.device)


if __name__ == "__main__":
    main()
