#!/usr/bin/env bash
# The `paper` preset (the authors' batch-1 SGD schedule; or PRESET, e.g. paper_text) on Wikipedia, one process per code
# length in parallel on one GPU (batch-1 steps leave the GPU mostly idle).  Each run stops
# after the round that ends past TIME_LIMIT seconds; results.json records rounds_done.
# Usage: benchmarks/paper_preset_gpu.sh DATA_ROOT OUT_DIR [TIME_LIMIT] [PYTHON] [PRESET]
set -u
root=${1:?data root}; out=${2:?output folder}; limit=${3:-420}; py=${4:-python3}; preset=${5:-paper}
export PYTHONUNBUFFERED=1
pids=()
for b in 16 32 64 128; do
  mkdir -p "$out/$preset$b"
  # checkpoints next to the run's results: a second run into another OUT_DIR starts fresh
  "$py" -m ugach_core train --data wikipedia --root "$root" --bits "$b" --preset "$preset" \
    --seed 0 --out "$out/$preset$b" --time-limit "$limit" \
    --no-progress -v > "$out/$preset$b/log.txt" 2>&1 &
  pids+=($!)
done
status=0
for p in "${pids[@]}"; do wait "$p" || status=1; done
for b in 16 32 64 128; do tail -n 4 "$out/$preset$b/log.txt"; done
(( status == 0 )) || { echo "some runs failed: see the logs above" >&2; exit 1; }
