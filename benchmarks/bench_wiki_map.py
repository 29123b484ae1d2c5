"""MAP on the real Wikipedia set: the `fast` preset trained now, with the current library,
against the `paper` preset's stored results (book/results/wikipedia_paper_gpu/results.json,
produced by benchmarks/paper_preset_gpu.sh) and the stored `fast` results of an earlier
library version (book/results/wikipedia_fast/results.json).  Every number printed is
either computed in this run or read from those files (their provenance is printed).

Usage: UGACH_DATA=/path/to/data PYTHONPATH=. python benchmarks/bench_wiki_map.py [--bits 16 32 64 128]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections import defaultdict

from _common import REPO, write_section  # noqa: I001  (sets sys.path)

import ugach_core as u
from ugach_core.evaluation import mean_std


def _fast_rows(path):
    return [r for r in json.load(open(path)) if r.get("preset") == "fast"] if path.exists() else []


def _seeds(path) -> str:
    return ", ".join(str(x) for x in sorted({r["seed"] for r in _fast_rows(path)})) or "-"


def _commits(path) -> str:
    return ", ".join(sorted({str(r.get("commit") or "?")[:7] for r in _fast_rows(path)})) or "-"


def _pm(values) -> str:
    """Mean +- sample std over seeds (the std only with more than one seed)."""
    mean, sd = mean_std(values)
    return f"{mean:.4f}" + (f" +- {sd:.4f}" if len(values) > 1 else "")


def stored(path):
    rows = json.load(open(path))
    out = defaultdict(list)
    for r in rows:
        out[(r["preset"], r["bits"])].append(r)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bits", type=int, nargs="+", default=[16, 32, 64, 128])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--root", default=os.environ.get("UGACH_DATA"))
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    data = u.load("wikipedia", root=args.root)
    paper_f = REPO / "book/results/wikipedia_paper_gpu/results.json"
    fast_f = REPO / "book/results/wikipedia_fast/results.json"
    paper, old_fast = stored(paper_f), stored(fast_f)
    lines = []

    def say(s=""):
        print(s, flush=True)
        lines.append(s)

    say(f"### MAP@all on Wikipedia ({data.protocol})\n")
    say(f"`fast (now)`: trained in this run, seed {args.seed}, current working tree. `paper`: "
        f"read from `{paper_f.relative_to(REPO)}`. `fast (stored)`: read from "
        f"`{fast_f.relative_to(REPO)}` (mean +- sample std over seeds {_seeds(fast_f)}, commit "
        f"{_commits(fast_f)}).\n")
    say("| bits | fast (now) I->T | T->I | train s | paper I->T | T->I | paper rounds | "
        "paper hardware, commit | fast (stored) I->T | T->I | fast (now) >= paper both ways |")
    say("|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---|")
    for bits in args.bits:
        t = time.perf_counter()
        tr = u.Trainer(u.fast(bits), data, seed=args.seed, device=args.device, progress=False)
        tr.fit()
        secs = time.perf_counter() - t
        m = tr.evaluate()
        p = paper.get(("paper", bits), [])
        f = old_fast.get(("fast", bits), [])
        if p:
            p0 = p[0]
            pm = (p0["map_i2t"], p0["map_t2i"])
            ok = m["map_i2t"] >= pm[0] and m["map_t2i"] >= pm[1]
            pcol = (f"{pm[0]:.4f} | {pm[1]:.4f} | {p0.get('rounds_done', '?')}/"
                    f"{p0.get('config', {}).get('rounds', 30)} | {p0['hardware']}, "
                    f"{p0['commit']}")
        else:
            ok, pcol = None, "- | - | - | no stored result"
        fcol = " | ".join(_pm([r[k] for r in f]) for k in ("map_i2t", "map_t2i")) if f \
            else "- | -"
        say(f"| {bits} | {m['map_i2t']:.4f} | {m['map_t2i']:.4f} | {secs:.0f} | {pcol} | {fcol} "
            f"| {ok} |")
    say()
    say("The stored `paper` runs stopped after 5-6 of their 30 rounds (time limit; see the "
        "`note` field of the results file), so they are a partial baseline.")
    write_section("wiki_map", "MAP on Wikipedia, fast vs paper (`benchmarks/bench_wiki_map.py`)",
                  "\n".join(lines), device=args.device)


if __name__ == "__main__":
    main()
