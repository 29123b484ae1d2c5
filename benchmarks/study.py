"""What makes UGACH work: a study of the adversarial rounds over data sets, variants and seeds.

For each data set (CUB-10, whose split is drawn per seed; Wikipedia; the MIRFlickr-shaped
SYNTHETIC set) and seed, every variant of :func:`study_variants` is trained at one code
length by :func:`ugach_core.book.ablations.run_grid` (variants that differ only after
pretraining share it within a seed; a test checks that this gives the codes of separate
runs).  Each row holds the test MAP of the validation-selected discriminator, the test MAP
of the pretrained one (``pretrained_map_*``: the gain of the rounds, never used to select),
its validation MAP and selected round.  The winner per data set is chosen on validation
MAP only (mean over seeds), and its test gain over its own pretrained D is reported.

Writes ``book/results/study/results.json`` atomically after every row
(``{"provenance": {...}, "rows": [...]}``, the one provenance record).  A full run is
hours on a 2-core CPU (5 seeds x 3 data sets x ~17 variants); ``--quick`` runs the smoke
configuration of the three "stage" variants on the ``--data`` and ``--seeds`` given (the
test passes ``--data synthetic --seeds 0``: seconds).
``--merge`` keeps the rows of the data sets not run now from an existing file, and their
provenance records under ``provenance["earlier"]`` (each names its ``data``), so data sets
can be run one at a time.

    PYTHONPATH=. UGACH_DATA=/path/to/data nice -n 5 python benchmarks/study.py
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from ugach_core.book.ablations import Variant, run_grid  # noqa: E402
from ugach_core.book.provenance import provenance, write_results  # noqa: E402
from ugach_core.book.study import data_name, derived, winner_lines  # noqa: E402
from ugach_core.config import UGACHConfig, fast, smoke  # noqa: E402
from ugach_core.data import CrossModalDataset, load, make_mirflickr_synthetic  # noqa: E402

OUT = REPO / "book" / "results" / "study" / "results.json"
DATASETS = ("cub10", "wikipedia", "mirflickr-synthetic")
ROW_NAME = {"mirflickr-synthetic": "mirflickr25k-synthetic"}  # --data name -> row name


def study_variants(base: UGACHConfig) -> list[Variant]:
    """The study's grid around ``base`` (normally ``fast(bits)``), each with its reason.

    ``fast`` trains D in the rounds with learning rate 1e-5, which hides both what the
    graph's positives add and what G's false negatives take away; the remedies are
    therefore also run at 1e-3."""
    hi = dict(d_lr=1e-3)
    v = [("pretrained D only", "stage", dict(rounds=0), "pairs only, no rounds"),
         ("graph + G negatives", "stage", {}, "the preset: UGACH"),
         ("graph + random negatives", "stage", dict(negatives="random"), "no G"),
         ("G: authors' objective", "objective",
          dict(g_softmax="sampled", reward_baseline=False), "softmax over the sampled"),
         ("G: paper's objective", "objective",
          dict(g_softmax="pool", reward="log", d_loss="log", margin=1.0,
               reward_baseline=False), "log D value function, m = 1"),
         ("D lr 1e-4", "d_lr", dict(d_lr=1e-4), ""),
         ("D lr 1e-3", "d_lr", hi, ""),
         ("temperature 0.5", "temperature", dict(temperature=0.5), ""),
         ("temperature 2", "temperature", dict(temperature=2.0), ""),
         ("20 rounds", "rounds", dict(rounds=2 * base.rounds), ""),
         ("random negatives, D lr 1e-3", "remedy", dict(negatives="random", **hi), "no G"),
         ("mixed negatives, D lr 1e-3", "remedy", dict(negatives="mixed", **hi),
          "half G's hard negatives, half uniform: dilutes the false ones"),
         ("fn_guard 10, D lr 1e-3", "remedy", dict(fn_guard=10, **hi),
          "D's own 10 nearest items of a query are likely its class: never negatives"),
         ("reward band, D lr 1e-3", "remedy", dict(reward_band=True, **hi),
          "G is rewarded for picks near the manifold pair's distance, not closer"),
         ("mixed + fn_guard 10, D lr 1e-3", "remedy",
          dict(negatives="mixed", fn_guard=10, **hi), "both")]
    out = [Variant(name, group, base.replace(**kw), note) for name, group, kw, note in v]
    return out + [Variant("CCA-ITQ", "baseline", None, "regularised, chosen on validation")]


def load_set(name: str, seed: int, mir_train: int | None = None) -> CrossModalDataset:
    """The data set of a seed.  ``mir_train``: the MIRFlickr-shaped set trains on a seeded
    subset of this many of the protocol's 15,000 training pairs (queries and database
    unchanged; the same subset for every seed), so that the study fits a CPU."""
    if name == "cub10":
        return load("cub10", split_seed=seed)  # no official split: one per seed
    if name == "mirflickr-synthetic":
        data = make_mirflickr_synthetic()
        if mir_train is None or mir_train >= len(data.train_idx):
            return data
        rng = np.random.default_rng(0)
        train = np.sort(rng.choice(data.train_idx, size=mir_train, replace=False))
        return dataclasses.replace(
            data, train_idx=train, protocol=data.protocol.replace(
                f"{len(data.train_idx)} training pairs",
                f"{mir_train} training pairs (a seeded subset of the protocol's "
                f"{len(data.train_idx)})"))
    return load(name)


def merge_earlier(old: dict[str, Any], data: list[str]
                  ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The rows of an earlier results file whose data set is not in ``data``, and the
    provenance records that computed them (the earlier file's own, then its ``earlier``)."""
    base = [ROW_NAME.get(d, d) for d in data]
    kept = [r for r in old["rows"] if data_name(r["dataset"]) not in base]
    prov = dict(old["provenance"])
    records = [*prov.pop("earlier", []), prov]
    left = {data_name(r["dataset"]) for r in kept}
    return kept, [p for p in records
                  if left & {ROW_NAME.get(d, d) for d in p.get("data", [])}]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", nargs="+", default=list(DATASETS),
                    choices=[*DATASETS, "synthetic"])
    ap.add_argument("--bits", type=int, default=32)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    ap.add_argument("--quick", action="store_true",
                    help="smoke configuration, three variants (a check of the script)")
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--mir-train", type=int, default=None,
                    help="train the MIRFlickr-shaped set on a seeded subset of this many of "
                         "its 15,000 training pairs (default: all)")
    ap.add_argument("--merge", action="store_true",
                    help="keep the rows of other data sets from an existing --out file")
    argv = sys.argv[1:] if argv is None else list(argv)
    args = ap.parse_args(argv)
    if args.mir_train is not None and args.mir_train < 2:
        ap.error(f"--mir-train must be at least 2 training pairs, got {args.mir_train}")
    if args.quick and args.out.resolve().is_relative_to((REPO / "book" / "results").resolve()):
        ap.error("--quick rows do not go into book/results; pass --out elsewhere")
    torch.set_num_threads(args.threads)
    base = smoke(args.bits) if args.quick else fast(args.bits)
    variants = study_variants(base)
    if args.quick:
        variants = [v for v in variants if v.group == "stage"]
    prov = provenance(["python", "benchmarks/study.py", *argv], data=args.data,
                      bits=args.bits, seeds=args.seeds, smoke=args.quick,
                      mir_train=args.mir_train,
                      script="benchmarks/study.py", load_average_start=list(os.getloadavg()))
    rows: list[dict[str, Any]] = []
    if args.merge and args.out.exists():
        kept, earlier = merge_earlier(json.loads(args.out.read_text()), args.data)
        rows.extend(kept)
        prov["earlier"] = earlier
    t_start = time.perf_counter()

    def write(final: bool = False) -> None:
        write_results(args.out, rows, {**prov, "complete": final,
                                       "total_wall_seconds": time.perf_counter() - t_start})

    def on_row(r: dict[str, Any]) -> None:
        r["smoke"] = args.quick
        rows.append(r)
        pre = r.get("pretrained_map_i2t")
        print(f"{r['dataset']:<20} seed {r['seed']} {r['variant']:<32} MAP i2t "
              f"{r['map_i2t']:.4f} t2i {r['map_t2i']:.4f}" + (
                  "" if pre is None else f" (pretrained {pre:.4f} / "
                  f"{r['pretrained_map_t2i']:.4f})"), flush=True)
        write()

    args.out.parent.mkdir(parents=True, exist_ok=True)
    for name in args.data:
        for seed in args.seeds:
            run_grid(load_set(name, seed, args.mir_train), variants, [seed], args.bits,
                     on_row=on_row)
    write(final=True)
    print("\n".join(["", *winner_lines([derived(r) for r in rows]),
                     f"wrote {args.out}"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
