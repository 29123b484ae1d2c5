"""Retrieval speed: top-k Hamming ranking of 1,000 queries against 1,000,000 64-bit codes
(packed popcount path vs faiss ``IndexBinaryFlat`` vs a float matrix product), and
MAP@all of 2,000 queries against 18,015 database items (the MIRFlickr-25K protocol size).

Usage: PYTHONPATH=. python benchmarks/bench_retrieval.py [--n-db 1000000] [--n-q 1000]
Writes its section of benchmarks/RESULTS.md.  The top-k codes are random (synthetic); the
MAP codes are synthetic codes correlated with the labels, which are the real MIRFlickr-25K
labels when ``$UGACH_DATA/mirflickr25k/mirflickr25k-lall.mat`` exists, else synthetic
multi-hot labels of the same shape.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from _common import write_section  # noqa: I001  (sets sys.path)

import numpy as np
import torch

from ugach_core.metrics import mean_average_precision
from ugach_core.retrieval import hamming_distance, hamming_topk, pack_codes


def reference_map(q, db, lq, ld):
    """MAP@all the straightforward way (full argsort of ``d * N + index`` keys, cumsum in
    float64): the definition the library's faster path must reproduce."""
    d = hamming_distance(pack_codes(q), pack_codes(db)).astype(np.int64)
    n = d.shape[1]
    order = np.argsort(d * n + np.arange(n)[None, :], axis=1)
    rel = ((lq.astype(np.float32) @ ld.astype(np.float32).T) > 0)
    r = np.take_along_axis(rel, order, 1).astype(np.float64)
    cum = np.cumsum(r, 1)
    num = (cum / np.arange(1, n + 1)[None, :] * r).sum(1)
    return float(np.where(cum[:, -1] > 0, num / np.maximum(cum[:, -1], 1), 0).mean())


def wall_cpu(fn):
    t, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - t, time.process_time() - c


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n-db", type=int, default=1_000_000)
    ap.add_argument("--n-q", type=int, default=1000)
    ap.add_argument("--bits", type=int, default=64)
    ap.add_argument("--k", type=int, default=100)
    ap.add_argument("--device", default="cpu", help="device of the float-matmul baseline")
    ap.add_argument("--repeat", type=int, default=2, help="alternating runs of ours and faiss")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    lines = []

    def say(s=""):
        print(s, flush=True)
        lines.append(s)

    # ---- 1. top-k ranking --------------------------------------------------------------
    db = rng.integers(0, 2, (args.n_db, args.bits)).astype(bool)
    q = rng.integers(0, 2, (args.n_q, args.bits)).astype(bool)
    dbp, qp = pack_codes(db), pack_codes(q)
    k = args.k
    say(f"### Top-{k} Hamming ranking, {args.n_q:,} queries x {args.n_db:,} codes of "
        f"{args.bits} bits (random codes)\n")
    hamming_topk(qp[:8], dbp, k, backend="numpy")  # warm-up
    try:
        import faiss
        index = faiss.IndexBinaryFlat(args.bits)
        index.add(np.packbits(db, axis=1))
        qb = np.packbits(q, axis=1)
        index.search(qb[:8], k)
    except ImportError:
        faiss = index = None
    # alternate ours and faiss (the load of a shared machine drifts); keep the faster of each
    best = {}
    for _ in range(args.repeat):
        runs = [("ours", lambda: hamming_topk(qp, dbp, k, backend="numpy"))]
        if index is not None:
            runs.append(("faiss", lambda: index.search(qb, k)))
            runs.append(("ours_faiss", lambda: hamming_topk(qp, dbp, k, backend="faiss")))
        for name, fn in runs:
            res, t, c = wall_cpu(fn)
            if name not in best or t < best[name][1]:
                best[name] = (res, t, c)
    (idx, dist), t_ours, c_ours = best["ours"]
    # exactness: the first queries against the full (distance, index) sort
    full = hamming_distance(qp[:20], dbp).astype(np.int64)
    ref = np.argsort(full * args.n_db + np.arange(args.n_db)[None, :], axis=1)[:, :k]
    assert np.array_equal(ref, idx[:20]), "hamming_topk differs from the full sort"
    say(f"Ours and faiss ran alternately {args.repeat} times each; the faster run of each is "
        "shown (CPU s = process CPU time of that run, all threads).\n")
    say("| method | wall s | CPU s | queries/s | result |")
    say("|---|---:|---:|---:|---|")
    say(f"| `ugach_core.retrieval.hamming_topk` (packed popcount, numpy) | {t_ours:.2f} | "
        f"{c_ours:.2f} | {args.n_q / t_ours:,.0f} | ties by index, equal to the full sort "
        f"(checked on 20 queries) |")
    t_faiss = None
    if index is not None:
        (fd, fi), t_faiss, c_faiss = best["faiss"]
        same = bool(np.array_equal(fd, dist))
        say(f"| faiss `IndexBinaryFlat` ({faiss.omp_get_max_threads()} threads) | "
            f"{t_faiss:.2f} | {c_faiss:.2f} | {args.n_q / t_faiss:,.0f} | same distances: "
            f"{same}; own tie order |")
        (fi2, fd2), t_of, c_of = best["ours_faiss"]
        same2 = bool(np.array_equal(fi2, idx) and np.array_equal(fd2, dist))
        say(f"| `hamming_topk(backend=\"faiss\")` (faiss + re-sort of ties by index; the "
            f"default when faiss is installed) | {t_of:.2f} | {c_of:.2f} | "
            f"{args.n_q / t_of:,.0f} | equal to the numpy path (indices and distances): "
            f"{same2} |")
    else:
        say("| faiss `IndexBinaryFlat` | - | - | - | faiss not installed |")
    # float matmul: d = (l - <±1, ±1>) / 2, then topk, blocks of queries
    dev = torch.device(args.device)
    dbf = torch.from_numpy(db).to(dev, torch.float32).mul_(2).sub_(1)
    qf = torch.from_numpy(q).to(dev, torch.float32).mul_(2).sub_(1)

    def float_topk():
        out = []
        step = max(1, (1 << 25) // args.n_db)
        for s in range(0, args.n_q, step):
            d = (args.bits - qf[s:s + step] @ dbf.T) / 2
            out.append(d.topk(k, dim=1, largest=False).values)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        return torch.cat(out)

    (qf[:8] @ dbf.T).topk(k, dim=1, largest=False)  # warm-up
    if dev.type == "cuda":  # nothing queued may land inside the timed call
        torch.cuda.synchronize()
    fv, t_mm, c_mm = wall_cpu(float_topk)
    same = bool(np.array_equal(np.sort(fv.cpu().numpy(), 1).astype(np.int32), dist))
    say(f"| float32 matmul of ±1 codes + `torch.topk` ({dev.type}) | {t_mm:.2f} | {c_mm:.2f} | "
        f"{args.n_q / t_mm:,.0f} | same distances: {same}; ties unordered |")
    say()
    if t_faiss:
        say(f"**Ratio (speed of ours / speed of faiss): {t_faiss / t_ours:.2f}** "
            f"(goal >= 0.8; in CPU time {c_faiss / c_ours:.2f}); speed of ours / float "
            f"matmul: {t_mm / t_ours:.2f}. With faiss installed, `hamming_topk` uses it: "
            f"speed of `hamming_topk(backend=\"faiss\")` / faiss: {t_faiss / t_of:.2f}.")
    else:
        say(f"Ours / float matmul: {t_mm / t_ours:.2f} (faiss not installed: no faiss ratio).")
    say()

    # ---- 2. MAP@all 2,000 x 18,015 -----------------------------------------------------
    nq, nd = 2000, 18015
    lab_file = Path(os.environ.get("UGACH_DATA", REPO_DATA)) / "mirflickr25k" / \
        "mirflickr25k-lall.mat"
    if lab_file.is_file():
        from scipy.io import loadmat
        labels = np.asarray(loadmat(lab_file)["LAll"], dtype=np.uint8)[: nq + nd]
        src = f"real MIRFlickr-25K labels ({lab_file.name}, first {nq + nd:,} items)"
    else:
        labels = (rng.random((nq + nd, 24)) < 0.15).astype(np.uint8)
        src = "synthetic labels (24 classes, density 0.15; real MIRFlickr labels not found)"
    perm = rng.permutation(len(labels))
    lq, ld = labels[perm[:nq]], labels[perm[nq:nq + nd]]
    # codes that carry some label signal (random codes would make every AP alike)
    proto = rng.integers(0, 2, (24, args.bits))
    def codes(lab):
        score = lab @ proto / np.maximum(lab.sum(1, keepdims=True), 1)
        return (score + 0.35 * rng.normal(size=score.shape)) > 0.5
    cq, cd = codes(lq), codes(ld)
    mean_average_precision(cq[:50], cd, lq[:50], ld)  # warm-up
    ours = [wall_cpu(lambda: mean_average_precision(cq, cd, lq, ld)) for _ in range(3)]
    m_ours = ours[0][0]
    t_best = min(o[1] for o in ours)
    t_med = float(np.median([o[1] for o in ours]))
    c_med = float(np.median([o[2] for o in ours]))
    m_ref, t_ref, c_ref = wall_cpu(lambda: reference_map(cq, cd, lq, ld))
    say(f"### MAP@all, {nq:,} queries x {nd:,} database items, {args.bits} bits\n")
    say(f"Labels: {src}; codes: synthetic ({args.bits} bits derived from the labels plus "
        "noise).\n")
    say("| path | MAP@all | wall s (median of 3) | best wall s | CPU s |")
    say("|---|---:|---:|---:|---:|")
    say(f"| `ugach_core.metrics.mean_average_precision` | {m_ours:.6f} | {t_med:.3f} | "
        f"{t_best:.3f} | {c_med:.3f} |")
    say(f"| reference (full argsort + float64 cumsum) | {m_ref:.6f} | {t_ref:.3f} | - | "
        f"{c_ref:.3f} |")
    say()
    say(f"Same MAP: {abs(m_ours - m_ref) < 1e-12}; speed-up over the reference "
        f"{t_ref / t_med:.1f}x; **under 1 s: {t_med < 1.0}** (median wall time; best "
        f"{t_best:.3f} s, CPU time {c_med:.3f} s on the shared machine).")
    write_section("retrieval", "Retrieval (`benchmarks/bench_retrieval.py`)", "\n".join(lines),
                  device=args.device)


REPO_DATA = str(Path(__file__).resolve().parents[2] / "shared" / "data")

if __name__ == "__main__":
    main()
