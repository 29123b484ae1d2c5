"""Compare result files of `python -m ugach_core train` runs: MAP per method and code length
(mean over seeds, `ugach_core.evaluation.mean_std`) and the ratio of training times, all
computed from the files given.

Usage: python benchmarks/compare_presets.py RESULTS.json [RESULTS.json ...]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict

from _common import REPO  # noqa: F401, I001  (puts the repository on sys.path)

import numpy as np

from ugach_core.evaluation import mean_std


def main(paths: list[str]) -> None:
    try:
        rows = [r for p in paths for r in json.load(open(p))]
    except (OSError, ValueError) as e:
        sys.exit(f"error: cannot read a results file ({e}); pass the results.json files that "
                 "`python -m ugach_core train` wrote")
    groups: dict[tuple[str, int], list[dict]] = defaultdict(list)
    for r in rows:
        groups[(r["preset"], r["bits"])].append(r)
    print(f"{'method':<10} {'bits':>4} {'runs':>4} {'MAP I->T':>9} {'MAP T->I':>9} "
          f"{'@50 I->T':>9} {'@50 T->I':>9} {'median s':>9} {'rounds':>7}  hardware")
    for (preset, bits), rs in sorted(groups.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        m = {k: mean_std([r[k] for r in rs])[0] for k in ("map_i2t", "map_t2i", "map50_i2t",
                                                         "map50_t2i")}
        secs = np.median([r["train_seconds"] for r in rs])
        rounds = rs[0].get("rounds_done", "-")
        total = rs[0].get("config", {}).get("rounds", "-") if rs[0].get("config") else "-"
        print(f"{preset:<10} {bits:>4} {len(rs):>4} {m['map_i2t']:>9.4f} {m['map_t2i']:>9.4f} "
              f"{m['map50_i2t']:>9.4f} {m['map50_t2i']:>9.4f} {secs:>9.1f} "
              f"{str(rounds) + '/' + str(total):>7}  {rs[0].get('hardware', '?')}")
    presets = {p for p, _ in groups}
    if {"fast", "paper"} <= presets:
        print("\nfast vs paper (same code length):")
        for bits in sorted({b for _, b in groups}):
            f, p = groups.get(("fast", bits)), groups.get(("paper", bits))
            if not f or not p:
                continue
            tf = np.median([r["train_seconds"] for r in f])
            tp = np.median([r["train_seconds"] for r in p])
            better = all(mean_std([r[k] for r in f])[0] >= mean_std([r[k] for r in p])[0]
                         for k in ("map_i2t", "map_t2i"))
            done = p[0].get("rounds_done") or 1
            planned = p[0].get("config", {}).get("rounds", done)
            print(f"  {bits:>3} bits: fast {tf:.1f} s ({f[0].get('hardware')}) vs paper "
                  f"{tp:.1f} s for {done} of its {planned} rounds ({p[0].get('hardware')}):"
                  f" time ratio {tf / tp:.3f} (against its whole run time, graph and pretraining "
                  f"included, scaled by {planned}/{done} rounds, which overstates a full run: "
                  f"{tf / (tp * planned / done):.4f}); fast MAP >= paper MAP in "
                  f"both directions: {better}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("results", nargs="+", help="results.json files of train runs")
    main(ap.parse_args().results)
