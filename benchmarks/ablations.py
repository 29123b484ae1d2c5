"""The ablation grid of chapter 10 on the real Wikipedia pairs.

Trains every variant of :func:`ugach_core.book.ablations.default_variants` around the ``fast``
preset (no GAN, no graph, k sweep, margins, the paper's objective on the fast schedule,
CCA-ITQ) for a few seeds at one code length, and writes
``book/results/wikipedia_ablations/results.json`` atomically: ``{"provenance": {...},
"rows": [...]}``, one row per (variant, seed) with its scores, wall time and config.
The file is rewritten after every row, so an interrupted run keeps what it finished.
The provenance (the one record of :mod:`ugach_core.book.provenance`, plus the grid's data,
bits, seeds and wall time) records the command, and every row says ``smoke``: under
``UGACH_SMOKE=1`` the variants shrink (a quick check of the script) and ``--out`` must lie
outside ``book/results``.

    PYTHONPATH=. UGACH_DATA=/path/to/data nice -n 5 python benchmarks/ablations.py

Torch runs on one thread by default (``--threads``): on a small shared CPU this is several
times faster than two competing threads, and it makes the wall times comparable.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import torch  # noqa: E402

from ugach_core.book.ablations import (default_variants, format_summary, run_grid,  # noqa: E402
                                       summarize)
from ugach_core.book.provenance import provenance, write_results  # noqa: E402
from ugach_core.config import get_preset, smoke_mode  # noqa: E402
from ugach_core.data import load  # noqa: E402
from ugach_core.utils import get_device  # noqa: E402

OUT = REPO / "book" / "results" / "wikipedia_ablations" / "results.json"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bits", type=int, default=32)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    ap.add_argument("--out", type=Path, default=OUT)
    argv = sys.argv[1:] if argv is None else list(argv)
    args = ap.parse_args(argv)
    if smoke_mode() and args.out.resolve().is_relative_to((REPO / "book" / "results").resolve()):
        ap.error("UGACH_SMOKE=1 shrinks every variant: smoke rows do not go into book/results; "
                 "pass --out elsewhere, or unset UGACH_SMOKE for the real grid")
    torch.set_num_threads(args.threads)

    try:
        data = load("wikipedia")
    except FileNotFoundError as e:
        ap.error(str(e))
    print(data.summary())
    variants = default_variants(get_preset("fast", args.bits))  # smoke under UGACH_SMOKE=1
    t_start = time.perf_counter()
    device = get_device()  # where run_grid's trainers run
    prov = provenance(["python", "benchmarks/ablations.py", *argv], device,
                      dataset=data.name, synthetic=data.synthetic, bits=args.bits,
                      seeds=args.seeds, script="benchmarks/ablations.py",
                      load_average_start=list(os.getloadavg()),
                      note="shared CPU (other jobs ran at the same time): wall times are "
                           "noisy; variants with identical pretraining share it within a "
                           "seed, and every row's wall time includes the pretraining time")
    rows: list[dict] = []

    def write(final: bool = False) -> None:
        p = {**prov, "total_wall_seconds": time.perf_counter() - t_start,
             "complete": final, "load_average_end": list(os.getloadavg())}
        write_results(args.out, rows, p)

    def on_row(r: dict) -> None:
        r["smoke"] = smoke_mode()
        rows.append(r)
        print(f"seed {r['seed']} {r['variant']:<34} MAP i2t {r['map_i2t']:.4f} "
              f"t2i {r['map_t2i']:.4f}  {r['train_seconds']:.1f} s", flush=True)
        write()

    args.out.parent.mkdir(parents=True, exist_ok=True)
    run_grid(data, variants, args.seeds, args.bits, on_row=on_row)
    write(final=True)
    print()
    print(format_summary(summarize(rows)))
    print(f"\nwrote {args.out} ({time.perf_counter() - t_start:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
