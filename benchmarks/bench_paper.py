"""The ``paper`` schedule's deferred first layer against autograd + SGD, in one run, on
MIRFlickr-shaped SYNTHETIC data (15,000 pairs, 13,500 fitted, 4096-d image, 1386-d text,
hidden 8192, 64 bits, the ``paper`` preset).

1. Equivalence: from one state and one random stream, ``--check-steps`` D steps (batch 1)
   and as many G steps (one query each) per direction on both paths; the largest relative
   weight difference and the share of equal bits of D's codes are printed.  These steps
   also time the autograd path.
2. Speed: the deferred path runs ``--steps`` D and G steps per direction (several refreshes
   of its cached pre-activations, so their cost is in the mean); setup (the first
   ``X W^T``) is timed apart and counted once per stage.
3. A round of each: the steps of a round times the per-step cost, plus the parts both
   share (sampling pass, D's codes for the rewards, validation), measured once.
4. The memory floor of a dense exact step: read the first-layer weights once (forward) and
   read and write them once (update), at the copy bandwidth measured in this run.
5. On a GPU, the peak memory of one trainer of the ``paper`` preset through every stage of
   a run (pretraining steps, the sampling pass, D steps, G steps, D's codes, validation),
   which a full run repeats round after round.

Every timer waits for the device (``torch.cuda.synchronize``) before it reads the clock.

Usage: PYTHONPATH=. python benchmarks/bench_paper.py [--steps 1500] [--check-steps 100]
Writes its section of benchmarks/RESULTS.md and the numbers to
benchmarks/results/paper[_gpu].json (chapter 7 reads them).
"""

from __future__ import annotations

import argparse
import math
import time

from _common import HERE, write_section  # noqa: I001  (sets sys.path)

import torch

import ugach_core as u
import ugach_core.utils
from ugach_core.book.provenance import provenance, write_results
from bench_train import BITS, D_IMG, D_TXT, N_TRAIN, make_data, n_fit_of, random_neighbors

#: deferred stages per round, each with its setup: the D epoch and the G epochs (all of a
#: round's G epochs run in one stage, Trainer.train_generator)
STAGES = 2


def clock(device: torch.device) -> float:
    """``time.perf_counter()`` once the work queued on ``device`` has finished."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


def copy_bandwidth(device: torch.device, mb: int = 256) -> float:
    """Bytes per second of ``copy_`` between two ``mb`` MB buffers (read + write)."""
    a = torch.ones(mb << 18, device=device)
    b = torch.empty_like(a)
    best = math.inf
    for _ in range(5):
        t = clock(device)
        b.copy_(a)
        best = min(best, clock(device) - t)
    return 2 * a.numel() * 4 / best


def run_steps(tr: u.Trainer, k: int, seed: int) -> tuple[float, float, float]:
    """k D steps and k G steps per direction; returns (D s/step, G img-query s/step,
    G txt-query s/step), setup included."""
    n, dev = len(tr.fit_idx), tr.device
    g = torch.Generator().manual_seed(seed)
    trip = {d: tuple(torch.randint(0, n, (k,), generator=g) for _ in range(3))
            for d in ("i2t", "t2i")}
    t = clock(dev)
    tr.train_discriminator(trip)
    out = [(clock(dev) - t) / (2 * k)]
    d_codes = tr.relaxed_codes(tr.discriminator)
    q = torch.randint(0, n, (k,), generator=g)
    for qm in ("img", "txt"):  # freed memory reused as in Trainer.fit (unless switched off)
        with tr.deferring(tr.generator), ugach_core.utils.reuse_freed_memory():
            t = clock(dev)
            for i in range(k):
                tr.g_step(q[i:i + 1], qm, d_codes)
        out.append((clock(dev) - t) / k)
    return tuple(out)


def rel_diff(tr: u.Trainer, ref: u.Trainer, net: str) -> float:
    """||w - w_ref|| / ||w_ref|| over all weights of ``net`` ("D" or "G")."""
    name = {"D": "discriminator", "G": "generator"}[net]
    a, b = (torch.cat([p.detach().flatten() for p in getattr(t, name).parameters()])
            for t in (tr, ref))
    return float((a - b).norm() / b.norm())


def setup_seconds(tr: u.Trainer) -> float:
    """One stage's setup: the deferred layers' first X W^T for both modalities."""
    t = clock(tr.device)
    with tr.deferring(tr.discriminator):
        pass
    return clock(tr.device) - t


def every_stage(tr: u.Trainer, steps: int = 50) -> None:
    """One pass of ``tr`` through every stage of a run, ``steps`` steps each: pretraining
    steps, the sampling pass, D steps, G steps per query modality (with D's codes), and
    validation."""
    n, q = len(tr.fit_idx), torch.arange(tr.cfg.pretrain_batch, device=tr.device)
    with tr.deferring(tr.discriminator):
        for _ in range(steps):
            tr.d_step(q, q, (q + 1) % n, "img", tr.opt_pre)
    trip = {k: tuple(x[:steps] for x in v) for k, v in tr.sample_triplets().items()}
    tr.train_discriminator(trip)
    run_steps(tr, steps, seed=4)
    tr.validate()


def peak_memory(cfg: u.UGACHConfig, data: u.CrossModalDataset, nb, dev: torch.device) -> float:
    """Peak bytes allocated on the GPU ``dev`` by one trainer of ``cfg`` (its features, nets,
    optimisers and graph) through :func:`every_stage`."""
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats(dev)
    base = torch.cuda.memory_allocated(dev)
    every_stage(u.Trainer(cfg, data, seed=0, device=dev, progress=False, neighbors=nb))
    torch.cuda.synchronize(dev)
    return float(torch.cuda.max_memory_allocated(dev) - base)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--check-steps", type=int, default=100)
    args = ap.parse_args()
    dev = torch.device(args.device)
    t0 = time.perf_counter()
    lines: list[str] = []

    def say(s: str = "") -> None:
        print(s, flush=True)
        lines.append(s)

    data = make_data(N_TRAIN, D_IMG, D_TXT)
    cfg = u.paper(BITS)
    nb = random_neighbors(n_fit_of(data, cfg))
    # autograd as the trainer ran before it reused freed memory (glibc's malloc: every large
    # tensor a fresh mmap), timed first: after a reuse context the heap holds large freed
    # blocks, which glibc would then reuse anyway
    ugach_core.utils.REUSE_FREED_MEMORY = False
    before = u.Trainer(cfg.replace(first_layer="autograd"), data, seed=0, device=dev,
                       progress=False, neighbors=nb)
    t_before = run_steps(before, args.check_steps, seed=5)
    del before
    ugach_core.utils.REUSE_FREED_MEMORY = True
    ref, new, pert = (u.Trainer(cfg.replace(first_layer=f), data, seed=0, device=dev,
                                progress=False, neighbors=nb)
                      for f in ("autograd", "deferred", "autograd"))
    with torch.no_grad():  # a rounding-sized change: every weight times (1 + 1e-7 N(0, 1))
        g = torch.Generator(device=dev).manual_seed(5)
        for p in list(pert.discriminator.parameters()) + list(pert.generator.parameters()):
            p.mul_(1 + 1e-7 * torch.randn(p.shape, generator=g, device=dev))
    n, k = len(ref.fit_idx), args.check_steps
    say(f"### The `paper` schedule, {N_TRAIN:,} training pairs ({n:,} fitted), "
        f"{D_IMG}-d image / {D_TXT}-d text, hidden {cfg.hidden}, {BITS} bits (synthetic)\n")
    # --- 1. equivalence (and the autograd path's timing) --------------------------------
    for tr in (ref, new):
        run_steps(tr, 1, seed=1)
    first = {net: rel_diff(new, ref, net) for net in ("D", "G")}
    t_ref = run_steps(ref, k, seed=3)
    run_steps(new, k, seed=3)
    for kk, seed in ((1, 1), (k, 3)):
        run_steps(pert, kk, seed=seed)
    worst = {net: rel_diff(new, ref, net) for net in ("D", "G")}
    noise = {net: rel_diff(pert, ref, net) for net in ("D", "G")}
    def codes(t: u.Trainer, m: str) -> torch.Tensor:
        return t.discriminator.net(m).codes(t.features[m])

    same, same_pert = (min(float((codes(tr, m) == codes(ref, m)).float().mean())
                           for m in ("img", "txt")) for tr in (new, pert))
    del pert
    say(f"Equivalence, as the relative distance of all weights ||w - w_ref|| / ||w_ref|| "
        f"from autograd + SGD (`w_ref`) on one random stream. After 2 D steps and 2 G "
        f"steps from one state: deferred D {first['D']:.1e}, G {first['G']:.1e}. After "
        f"{2 * (k + 1)} of each: deferred D {worst['D']:.1e}, G {worst['G']:.1e}; autograd "
        f"+ SGD started from weights changed by 1e-7 (relative, random) D {noise['D']:.1e}, "
        f"G {noise['G']:.1e}. D's binary codes of all {data.n:,} items agree with the "
        f"reference on {same:.3%} (deferred) and {same_pert:.3%} (perturbed autograd) of "
        "bits: at this width and learning rate the batch-1 trajectory amplifies "
        "rounding-sized differences, so after many steps the deferred path is as close to "
        "autograd as autograd is to itself.\n")
    # --- 2. steady-state speed of the deferred path --------------------------------------
    setup = setup_seconds(new)
    t_new = run_steps(new, args.steps, seed=2)
    per_new = [t_new[0] - setup / (2 * args.steps)] + [
        t - setup / args.steps for t in t_new[1:]]
    # --- 3. a round --------------------------------------------------------------------
    t = clock(dev)
    ref.sample_triplets()
    sampling_s = clock(dev) - t
    t = clock(dev)
    ref.relaxed_codes(ref.discriminator)
    codes_s = clock(dev) - t
    t = clock(dev)
    ref.validate()
    val_s = clock(dev) - t
    d_steps = cfg.d_epochs * 2 * math.ceil(n * cfg.n_samples / cfg.d_batch)
    g_steps = cfg.g_epochs * math.ceil(n / cfg.g_batch)  # per query modality
    shared = sampling_s + codes_s + val_s
    rounds = {"before": d_steps * t_before[0] + g_steps * (t_before[1] + t_before[2]) + shared,
              "autograd": d_steps * t_ref[0] + g_steps * (t_ref[1] + t_ref[2]) + shared,
              "deferred": d_steps * per_new[0] + g_steps * (per_new[1] + per_new[2])
              + shared + STAGES * setup}
    say("| path | s per D step | s per G step (img, txt query) | D epoch s | G epochs s | "
        "shared s | **round s** | 30 rounds h |")
    say("|---|---:|---:|---:|---:|---:|---:|---:|")
    for key, name, st in (("before", "autograd + SGD, glibc's malloc (before)", t_before),
                          ("autograd", "autograd + SGD", t_ref),
                          ("deferred", "deferred (`paper` default)", per_new)):
        say(f"| {name} | {st[0]:.4f} | {st[1]:.4f}, {st[2]:.4f} | {d_steps * st[0]:,.0f} | "
            f"{g_steps * (st[1] + st[2]):,.0f} | {shared:.0f} | **{rounds[key]:,.0f}** | "
            f"{30 * rounds[key] / 3600:.1f} |")
    say()
    say(f"Steps per round: {d_steps:,} D, {2 * g_steps:,} G. Autograd timed on {2 * k} steps "
        f"of each kind; deferred on {2 * args.steps}, with its setup ({setup:.1f} s per stage, "
        f"{STAGES} stages per round: D, G) counted once per stage. Shared: sampling pass "
        f"{sampling_s:.0f} s, D's codes {codes_s:.0f} s, validation {val_s:.0f} s. The first row "
        "is the trainer as it ran before it reused freed memory (`reuse_freed_memory`: glibc "
        "served every large tensor with a fresh `mmap`); the others reuse it, as "
        "`Trainer.fit` does now. Same steps, same weights: only the time differs.\n")
    say(f"**Per round, deferred is {rounds['autograd'] / rounds['deferred']:.1f}x faster than "
        f"autograd + SGD** (goal: at least 3x on the 2-core CPU); D step "
        f"{t_ref[0] / per_new[0]:.1f}x, G step {(t_ref[1] + t_ref[2]) / sum(per_new[1:]):.1f}x. "
        f"Against autograd as before: **{rounds['before'] / rounds['deferred']:.1f}x**; "
        f"reusing freed memory alone makes autograd's round "
        f"{rounds['before'] / rounds['autograd']:.2f}x faster.\n")
    # --- 4. the memory floor of a dense exact step ----------------------------------------
    bw = copy_bandwidth(dev)
    h, l = cfg.hidden, cfg.bits
    weights = 4 * (h * (D_IMG + D_TXT) + 2 * h * l)  # bytes of the D (or G) weights
    floor = 3 * weights / bw
    say(f"Memory floor of a dense exact step (read every weight once for the forward pass, "
        f"read and write it once for the update: {3 * weights / 1e6:,.0f} MB) at the copy "
        f"bandwidth measured here ({bw / 1e9:.1f} GB/s): {floor * 1e3:.1f} ms. D step / floor: "
        f"autograd {t_ref[0] / floor:.1f}, deferred {per_new[0] / floor:.2f}; G step / floor: "
        f"autograd {(t_ref[1] + t_ref[2]) / 2 / floor:.1f}, deferred "
        f"{sum(per_new[1:]) / 2 / floor:.2f}. Below 1 means under the dense floor: the "
        "deferred step never reads the dense first layer.")
    peak = None
    if dev.type == "cuda":  # --- 5. peak GPU memory of one trainer -------------------------
        del ref, new
        peak = peak_memory(cfg, data, nb, dev)
        say(f"\nPeak GPU memory of one `paper` trainer through every stage of a run "
            f"(pretraining, sampling, D and G steps, D's codes, validation; a full run "
            f"repeats them): **{peak / 1e9:.2f} GB** (goal: under 4 GB).")
    say(f"\nBenchmark wall time: {time.perf_counter() - t0:.0f} s.")
    row = {"data": "mirflickr25k-shaped synthetic", "n_fit": n, "hidden": h, "bits": l,
           "d_steps": d_steps, "g_steps": 2 * g_steps, "check_steps": 2 * (k + 1),
           "rel_diff_first": first, "rel_diff": worst, "rel_diff_perturbed": noise,
           "same_bits": same, "same_bits_perturbed": same_pert,
           "round_s_autograd": rounds["autograd"], "round_s_deferred": rounds["deferred"],
           "round_s_autograd_before": rounds["before"],
           "d_step_s": {"autograd": t_ref[0], "deferred": per_new[0], "before": t_before[0]},
           "g_step_s": {"autograd": t_ref[1:], "deferred": per_new[1:], "before": t_before[1:]},
           "setup_s": setup, "shared_s": shared, "copy_bandwidth": bw, "floor_s": floor,
           "peak_gpu_bytes": peak}
    suffix = "_gpu" if dev.type == "cuda" else ""
    write_results(HERE / "results" / f"paper{suffix}.json", [row], provenance(None, dev))
    write_section("paper", "The `paper` schedule's speed (`benchmarks/bench_paper.py`)",
                  "\n".join(lines), device=args.device)


if __name__ == "__main__":
    main()
