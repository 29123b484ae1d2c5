"""D's whole-query batches (``d_batches="query"``) against random triplet batches (``fast``).

A round of ``fast`` draws ``n_samples`` = 5 triplets per query; random batches of 256
triplets hold ~256 distinct queries, whole-query batches 51 queries with all five of their
triplets, so a D step encodes 51 queries instead of 256 (the speed is timed in
``bench_train.py``).  This script measures what it does to the codes: per data set and
seed, one pretraining of ``fast`` (32 bits) and one correlation graph, then the rounds
twice from that same pretrained D (``Trainer.load_pretrained``), once per batching, so the
two runs differ only in how the rounds' D batches are cut.

Judged on the **validation** split (MAP of the D selected on it, and of the last round's
D); the test MAP of the selected D is printed for reference, not used to choose.  Real data
sets come from ``$UGACH_DATA``; ``mirflickr-synthetic`` is SYNTHETIC (MIRFlickr's shapes,
trained on a seeded subset of ``--mir-train`` pairs as in the study).

Usage: UGACH_DATA=... PYTHONPATH=. python benchmarks/d_batches.py [--seeds 0 1 2 3 4]
           [--data wikipedia cub10 mirflickr-synthetic]
Writes benchmarks/results/d_batches.json and its section of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from _common import HERE, write_section  # noqa: I001  (sets sys.path)

import numpy as np
import torch

from study import load_set
from ugach_core import Trainer, fast
from ugach_core.book.provenance import provenance
from ugach_core.book.tables import cell
from ugach_core.evaluation import mean_std
from ugach_core.utils import atomic_write_text

MODES = ("random", "query")
KEYS = (("val_best", "validation MAP, selected D"), ("val_last", "validation MAP, last round"),
        ("test_best", "test MAP, selected D (reference)"), ("d_epoch_s", "D epoch s"))


def run_seed(name: str, seed: int, bits: int, mir_train: int) -> list[dict]:
    data = load_set(name, seed, mir_train)
    base = Trainer(fast(bits), data, seed=seed, progress=False)
    base.pretrain()
    state, graph = base.pretrained_state(), base.neighbors.cpu().numpy()
    rows = []
    for mode in MODES:
        tr = Trainer(fast(bits).replace(d_batches=mode), data, seed=seed, progress=False,
                     neighbors=graph)
        tr.load_pretrained(state)
        spent, real = [], tr.train_discriminator

        def timed(triplets, real=real, spent=spent):
            t = time.perf_counter()
            out = real(triplets)
            spent.append(time.perf_counter() - t)
            return out

        tr.train_discriminator = timed
        tr.fit()
        test = tr.evaluate()
        rows.append({"data": name, "seed": seed, "d_batches": mode,
                     "val_best": tr.best_score, "val_last": tr.history[-1]["val_map"],
                     "best_round": tr.best_round,
                     "test_best": (test["map_i2t"] + test["map_t2i"]) / 2,
                     "d_epoch_s": float(np.mean(spent))})
        print(json.dumps(rows[-1]), flush=True)
    return rows


def report(rows: list[dict]) -> tuple[str, dict]:
    lines = ["| data | D batches | seeds | " + " | ".join(t for _, t in KEYS) + " |",
             "|---|---|---:|" + "---:|" * len(KEYS)]
    summary: dict = {}
    for name in dict.fromkeys(r["data"] for r in rows):
        for mode in MODES:
            mine = [r for r in rows if r["data"] == name and r["d_batches"] == mode]
            cells = [cell([r[k] for r in mine], 2 if k == "d_epoch_s" else 4) for k, _ in KEYS]
            lines.append(f"| {name} | {mode} | {len(mine)} | " + " | ".join(cells) + " |")
        pairs = {k: [q[k] - r[k] for r in rows for q in rows if r["data"] == q["data"] == name
                     and r["seed"] == q["seed"] and (r["d_batches"], q["d_batches"]) == MODES]
                 for k, _ in KEYS}
        summary[name] = {k: dict(zip(("mean", "std"), mean_std(v))) | {"n": len(v)}
                         for k, v in pairs.items()}
    lines += ["", "Paired differences, whole-query minus random batches (same seed, same "
              "pretrained D), mean ± sample std over seeds:", "",
              "| data | " + " | ".join(t for _, t in KEYS) + " |", "|---|" + "---:|" * len(KEYS)]
    for name, s in summary.items():
        lines.append(f"| {name} | " + " | ".join(
            f"{s[k]['mean']:+.4f} ± {s[k]['std']:.4f}" for k, _ in KEYS) + " |")
    return "\n".join(lines), summary


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", nargs="+", default=["wikipedia", "cub10", "mirflickr-synthetic"])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--bits", type=int, default=32)
    ap.add_argument("--mir-train", type=int, default=1500)
    ap.add_argument("--threads", type=int, default=2)
    argv = sys.argv[1:] if argv is None else list(argv)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    rows = [r for name in args.data for seed in args.seeds
            for r in run_seed(name, seed, args.bits, args.mir_train)]
    table, summary = report(rows)
    prov = provenance(["python", "benchmarks/d_batches.py", *argv], data=args.data,
                      seeds=args.seeds, bits=args.bits, mir_train=args.mir_train,
                      load_average_end=list(os.getloadavg()))
    atomic_write_text(HERE / "results" / "d_batches.json", json.dumps(
        {"provenance": prov, "rows": rows, "summary": summary}, indent=1) + "\n")
    body = (f"`fast` at {args.bits} bits; seeds {', '.join(map(str, args.seeds))}; both "
            "batchings continue from the same pretrained D of each seed. Real data sets "
            "(Wikipedia, CUB-10) and the MIRFlickr-shaped **SYNTHETIC** set (a seeded subset "
            f"of {args.mir_train} training pairs).\n\n{table}\n\nJudged on validation; the "
            "test column is for reference. Wall time: "
            f"{time.perf_counter() - t0:,.0f} s.\n")
    write_section("d_batches", "D's whole-query batches (`benchmarks/d_batches.py`)", body)
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
