"""How often each feature space's nearest neighbours share a label, on the study's real sets.

For Wikipedia and CUB-10 (split seeds 0-4, the study's splits): the label precision of every
training item's 5 nearest neighbours in image space and in text space (self excluded,
Euclidean, raw features, as the correlation graph uses them) and the chance level (two
distinct random training items share a label), by
:func:`ugach_core.book.study.neighbour_precision`.  Chapters 7 and 10 read the file to say
which set's image neighbours are near chance; ``tests/test_results_files.py`` recomputes it
from the data when the data is there.

Usage: PYTHONPATH=. UGACH_DATA=... python benchmarks/graph_precision.py
Writes book/results/graph_precision/results.json (a second or two on a CPU).
"""

from __future__ import annotations

import argparse
import sys

from _common import REPO  # noqa: I001  (sets sys.path)

import ugach_core as u
from ugach_core.book.provenance import provenance, write_results
from ugach_core.book.study import near_chance, neighbour_precision

K = 5
SETS = [("wikipedia", None)] + [("cub10", s) for s in range(5)]


def main() -> None:
    argparse.ArgumentParser(description=__doc__.split("\n")[0]).parse_args()  # --help only
    prov = provenance(None, "cpu")
    rows = []
    for name, split in SETS:
        try:
            data = u.load(name) if split is None else u.load(name, split_seed=split)
        except FileNotFoundError as e:
            sys.exit(f"error: {e}")
        p = neighbour_precision(data, K)
        rows.append({"data": name, "split_seed": split, "k": K, "n_train": len(data.train_idx),
                     "img": p["img"], "txt": p["txt"], "chance": p["chance"],
                     "img_near_chance": near_chance(p["img"], p["chance"]),
                     "txt_near_chance": near_chance(p["txt"], p["chance"]),
                     "smoke": prov["smoke"]})
        print(f"{name:<10} split {split!s:<4} image {p['img']:.3f}  text {p['txt']:.3f}  "
              f"chance {p['chance']:.3f}")
    out = REPO / "book" / "results" / "graph_precision" / "results.json"
    write_results(out, rows, prov)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
