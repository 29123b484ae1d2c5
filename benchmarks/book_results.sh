#!/usr/bin/env bash
# Full-size results files for the book: `python -m ugach_core train` for one data set and
# one preset at the code lengths 16/32/64/128 and N seeds, one process per (bits, seed),
# merged into one list in RESULTS/<dataset>_<preset>/results.json (written atomically; the
# rows are exactly what `train --out` writes: MAP@all/@50 both ways, config, provenance).
# The folder is named after the data set the runs report (e.g. `mirflickr25k-synthetic`
# for the labelled stand-in), so a stand-in never lands where the real data set's results go.
#
# Usage: benchmarks/book_results.sh DATASET PRESET [NSEEDS] [-- EXTRA TRAIN ARGS...]
#   e.g. benchmarks/book_results.sh wikipedia fast 3 -- --baseline
#        benchmarks/book_results.sh mirflickr25k fast 3 -- --root /content/drive/MyDrive/ugach_data
#        JOBS=4 benchmarks/book_results.sh wikipedia paper 1 -- --time-limit 400   # one GPU
# Environment: PY (python, default python3), RESULTS (default book/results), WORK (per-run
# folders, checkpoints and logs; default /tmp/ugach_book_results/DATASET_PRESET), BITS
# (default "16 32 64 128"), JOBS (runs at a time, default 1). Each run's log goes next to
# the merged file as log_<bits>b_seed<seed>.txt. Smoke-mode rows (UGACH_SMOKE=1) are
# refused unless RESULTS is set to a folder outside book/results.
set -euo pipefail
dataset=${1:?usage: book_results.sh DATASET PRESET [NSEEDS] [-- EXTRA TRAIN ARGS]}
preset=${2:?preset (paper, paper_text, fast, tuned)}
nseeds=3
shift 2
if [[ $# -gt 0 && $1 != "--" ]]; then nseeds=$1; shift; fi   # NSEEDS may be left out
[[ ${1:-} == "--" ]] && shift
extra=("$@")
here=$(cd "$(dirname "$0")/.." && pwd)
py=${PY:-python3}
results=${RESULTS:-$here/book/results}
work=${WORK:-/tmp/ugach_book_results/${dataset}_${preset}}
bits_list=${BITS:-16 32 64 128}
jobs=${JOBS:-1}
[[ $nseeds =~ ^[1-9][0-9]*$ ]] || { echo "NSEEDS must be a positive integer, got '$nseeds'" >&2; exit 2; }
mkdir -p "$work"
export PYTHONUNBUFFERED=1

run_one() {  # bits seed
  local dir="$work/${1}b_seed$2"
  mkdir -p "$dir"
  "$py" -m ugach_core train --data "$dataset" --preset "$preset" --bits "$1" --seed "$2" \
    --out "$dir" --no-progress -v "${extra[@]}" > "$dir/log.txt" 2>&1 \
    && echo "done: $dataset $preset ${1} bits seed $2" \
    || { echo "FAILED: $dataset $preset ${1} bits seed $2 (see $dir/log.txt)" >&2; return 1; }
}

pids=()
status=0
for b in $bits_list; do
  for ((s = 0; s < nseeds; s++)); do
    # a fresh run: never merge a stale file, nor meet an earlier run's checkpoint
    rm -f "$work/${b}b_seed$s/results.json" "$work/${b}b_seed$s"/ugach_*.pt
    run_one "$b" "$s" & pids+=($!)
    if (( ${#pids[@]} >= jobs )); then wait "${pids[0]}" || status=1; pids=("${pids[@]:1}"); fi
  done
done
for p in "${pids[@]}"; do wait "$p" || status=1; done
(( status == 0 )) || { echo "some runs failed; nothing merged" >&2; exit 1; }

"$py" - "$work" "$results" "$preset" "$nseeds" "$bits_list" "${RESULTS:+set}" <<'PY'
import json, os, shutil, sys, tempfile
from pathlib import Path

work, results, preset, nseeds, bits_list, results_set = sys.argv[1:7]
rows = []
for b in bits_list.split():
    for s in range(int(nseeds)):
        d = Path(work) / f"{b}b_seed{s}"
        rows += json.loads((d / "results.json").read_text())
names = sorted({r["dataset"] for r in rows})
if len(names) != 1:
    sys.exit(f"the runs report different data sets {names}; nothing merged")
if any(r.get("smoke") for r in rows) and not results_set:
    sys.exit("smoke-mode rows (UGACH_SMOKE=1) do not go into book/results; set RESULTS")
order = {"cca_itq": 0}
rows.sort(key=lambda r: (r["bits"], r["seed"], order.get(r["preset"], 1)))
folder = Path(results) / f"{names[0].replace(' ', '_')}_{preset}"
folder.mkdir(parents=True, exist_ok=True)
fd, tmp = tempfile.mkstemp(dir=folder, prefix=".results.", suffix=".json")
with os.fdopen(fd, "w") as f:
    json.dump(rows, f, indent=1, default=float)
os.replace(tmp, folder / "results.json")          # atomic: readers see old or new, never half
for b in bits_list.split():
    for s in range(int(nseeds)):
        shutil.copyfile(Path(work) / f"{b}b_seed{s}" / "log.txt", folder / f"log_{b}b_seed{s}.txt")
print(f"wrote {folder / 'results.json'}: {len(rows)} rows "
      f"({', '.join(sorted({r['preset'] for r in rows}))}; data {names[0]}"
      f"{', SYNTHETIC' if any(r['synthetic'] for r in rows) else ''})")
PY
