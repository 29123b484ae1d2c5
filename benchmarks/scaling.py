"""Per-item costs of each stage, measured in one run, and the data size at which each stage
outgrows this machine (README "Scaling up").  SYNTHETIC data of MIRFlickr's shapes
(4096-d images, 1386-d tags), 64 bits.

Cost models (n: training pairs for the graph and training, N: database codes):

- kNN graph, exact (``ugach_core.graph.knn``): time ``a n^2 d``; memory: the features,
  ``4 n d`` bytes.
- ``fast`` training: a pretraining epoch ``a n``; an adversarial round ``a n + b n^2`` (the
  D epoch grows with n, G's pools and the sampling pass with n^2), fitted on two sizes and
  checked on a third; a run is ``pretrain_epochs`` epochs and ``rounds`` rounds; memory:
  the features, twice (all items and the fitted copy).
- Retrieval (``hamming_topk``, top 100): time ``a Q N``; memory 8 bytes per 64-bit code.

"Outgrows" = needs more than this machine's memory, or more than one day on its CPU.
Usage: PYTHONPATH=. python benchmarks/scaling.py
Writes its section of benchmarks/RESULTS.md and benchmarks/results/scaling.json.
"""

from __future__ import annotations

import argparse
import math
import time

from _common import HERE, write_section  # noqa: I001  (sets sys.path)

import numpy as np
import torch

import ugach_core as u
from ugach_core.book.provenance import provenance, write_results
from ugach_core.graph import knn
from ugach_core.retrieval import hamming_topk, pack_codes
from bench_train import D_IMG, D_TXT, make_data, random_neighbors

DAY = 86_400.0
NUSWIDE_N, NUSWIDE_TRAIN, MIR_TRAIN = 186_577, 5_000, 15_000


def mem_total() -> float:
    """This machine's memory in bytes (``MemTotal``)."""
    with open("/proc/meminfo") as f:
        return float(next(ln for ln in f if ln.startswith("MemTotal")).split()[1]) * 1024


def fast_costs(n_train: int) -> tuple[float, float, int]:
    """(seconds of one pretraining epoch, of one adversarial round, fitted pairs)."""
    data = make_data(n_train, D_IMG, D_TXT)
    cfg = u.fast(64).replace(pretrain_epochs=1, rounds=1)
    n_fit = len(data.split_validation(cfg.val_fraction, 0)[0])
    tr = u.Trainer(cfg, data, seed=0, progress=False, neighbors=random_neighbors(n_fit),
                   device="cpu")  # a CPU section, also on a machine with a GPU
    t = time.perf_counter()
    tr.pretrain()
    t_pre = time.perf_counter() - t
    tr.fit()
    return t_pre, tr.history[-1]["seconds"], n_fit


def main() -> None:
    argparse.ArgumentParser(description=__doc__.split("\n")[0]).parse_args()  # --help only
    torch.manual_seed(0)
    ram = mem_total()
    row: dict = {"ram_gb": ram / 1e9, "d_img": D_IMG, "d_txt": D_TXT, "bits": 64}
    # kNN graph: a n^2 d, d = the dims of both spaces (manifold_neighbors runs knn on each)
    n0, d_graph = 6_000, D_IMG + D_TXT
    x = torch.randn(n0, D_IMG)
    knn(x[:1000], 5)  # warm-up
    t = time.perf_counter()
    knn(x, 5)
    row["knn_s_at"] = [n0, time.perf_counter() - t]
    a_knn = row["knn_s_at"][1] / (n0 ** 2 * D_IMG)
    row["knn_day_n"] = math.sqrt(DAY / (a_knn * d_graph))
    row["knn_mem_n"] = ram / (4 * d_graph)
    row["knn_s_nuswide_train"] = a_knn * NUSWIDE_TRAIN ** 2 * d_graph
    row["knn_s_nuswide_all"] = a_knn * NUSWIDE_N ** 2 * d_graph
    # fast training: pretraining epoch a n, round a n + b n^2
    sizes = (1_500, 3_000, 6_000)
    costs = [fast_costs(n) for n in sizes]
    (p1, r1, m1), (p2, r2, m2), (p3, r3, m3) = costs
    row["fast_measured"] = [{"n_train": n, "n_fit": m, "pretrain_epoch_s": p, "round_s": r}
                            for n, (p, r, m) in zip(sizes, costs)]
    a_pre = (p1 / m1 + p2 / m2) / 2
    b = (r2 / m2 - r1 / m1) / (m2 - m1)  # r/n = a + b n through the two points
    a = r1 / m1 - b * m1
    row["fast_model"] = {"pretrain_s_per_pair": a_pre, "round_a": a, "round_b": b}
    row["fast_check"] = {"n_fit": m3, "predicted_round_s": a * m3 + b * m3 ** 2,
                         "measured_round_s": r3}
    cfg = u.fast(64)

    def run_s(n_fit: float) -> float:
        return cfg.pretrain_epochs * a_pre * n_fit + cfg.rounds * (a * n_fit + b * n_fit ** 2)

    n_mir = MIR_TRAIN * (1 - cfg.val_fraction)
    row["fast_run_s_mirflickr"] = run_s(n_mir)
    row["fast_run_s_nuswide_train"] = run_s(NUSWIDE_TRAIN * (1 - cfg.val_fraction))
    lo, hi = 1.0, 1e9  # the n at which a run takes one day
    while hi / lo > 1.001:
        mid = math.sqrt(lo * hi)
        lo, hi = (mid, hi) if run_s(mid) < DAY else (lo, mid)
    row["fast_day_n"] = lo
    row["fast_mem_n"] = ram / (2 * 4 * (D_IMG + D_TXT))
    # retrieval: a Q N
    n_db, n_q = 1_000_000, 200
    rng = np.random.default_rng(0)
    db = pack_codes(rng.integers(0, 2, (n_db, 64), dtype=np.uint8))
    q = pack_codes(rng.integers(0, 2, (n_q, 64), dtype=np.uint8))
    hamming_topk(q[:10], db, 100)
    t = time.perf_counter()
    hamming_topk(q, db, 100)
    row["topk_s_at"] = [n_q, n_db, time.perf_counter() - t]
    a_q = row["topk_s_at"][2] / (n_q * n_db)
    row["topk_ms_per_query_nuswide"] = 1e3 * a_q * NUSWIDE_N
    row["topk_ms_per_query_1e9"] = 1e3 * a_q * 1e9
    row["topk_mem_n"] = ram / 8
    write_results(HERE / "results" / "scaling.json", [row], provenance(None, "cpu"))
    f = row["fast_check"]
    body = f"""
### Per-item costs and where each stage outgrows this machine ({ram / 1e9:.0f} GB, 1 day)

SYNTHETIC data of MIRFlickr's shapes ({D_IMG}-d images, {D_TXT}-d tags), 64 bits.

| stage | measured | model | NUS-WIDE | outgrows this machine at |
|---|---|---|---|---|
| exact kNN graph | {row['knn_s_at'][1]:.1f} s at n = {n0:,} (image space) | a n^2 d, d = \
{D_IMG} + {D_TXT} (both spaces) | \
{row['knn_s_nuswide_train']:.0f} s on its 5,000 training pairs; \
{row['knn_s_nuswide_all'] / 3600:.1f} h on all {NUSWIDE_N:,} | \
n = {row['knn_day_n']:,.0f} (1 day); n = {row['knn_mem_n']:,.0f} (features fill the memory) |
| `fast` run (50 epochs + 10 rounds) | round {r1:.1f} / {r2:.1f} / {r3:.1f} s at \
{m1:,} / {m2:,} / {m3:,} pairs | a n + b n^2 | {row['fast_run_s_nuswide_train']:.0f} s \
(5,000 training pairs); MIRFlickr 15,000: {row['fast_run_s_mirflickr']:.0f} s | \
n = {row['fast_day_n']:,.0f} (1 day); n = {row['fast_mem_n']:,.0f} (memory) |
| Hamming top-100 | {row['topk_s_at'][2]:.2f} s for {n_q} queries x {n_db:,} codes | a Q N | \
{row['topk_ms_per_query_nuswide']:.2f} ms per query | {row['topk_ms_per_query_1e9']:,.0f} ms \
per query at 10^9 codes; N = {row['topk_mem_n']:,.0f} (8 B codes fill the memory) |

Check of the round model at {m3:,} fitted pairs (fitted on the two smaller sizes): predicted \
{f['predicted_round_s']:.1f} s, measured {f['measured_round_s']:.1f} s \
(ratio {f['measured_round_s'] / f['predicted_round_s']:.2f}).
"""
    write_section("scaling", "Scaling up (`benchmarks/scaling.py`)", body)


if __name__ == "__main__":
    main()
