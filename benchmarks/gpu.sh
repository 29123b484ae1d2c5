#!/usr/bin/env bash
# Full-size benchmarks on a CUDA machine, in parts (each under its own time limit):
#   deferred   the deferred first layer equals autograd + SGD on CUDA (tests/test_deferred.py)
#   paper      the `paper` schedule: deferred vs autograd per round, peak GPU memory
#              (bench_paper.py, about 1-3 min)
#   train      one MIRFlickr-shaped adversarial round, paper vs fast (bench_train.py)
#   graph      the 20,000 x 4096 kNN graph (bench_graph.py)
#   retrieval  the 1,000 x 1,000,000 Hamming ranking (bench_retrieval.py)
# Each benchmark writes its "... on a GPU" section into benchmarks/results/*_gpu.md (and
# paper_gpu.json) and rebuilds benchmarks/RESULTS.md; with $OUT set, copies land there too.
# A lent GPU gives one command at most 10 minutes: run "deferred paper" first, the rest after.
# Usage: benchmarks/gpu.sh [PYTHON] [PART ...]   (from the repository root; default: all)
set -euo pipefail
py=${1:-python3}
shift || true
parts=${*:-deferred paper train graph retrieval}
cd "$(dirname "$0")/.."
export PYTHONPATH=.${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
for part in $parts; do
  case $part in deferred|paper|train|graph|retrieval) ;;
    *) echo "unknown part '$part' (deferred, paper, train, graph, retrieval)" >&2; exit 2 ;;
  esac
done
"$py" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'no CUDA device')"
start=$(date +%s)
rc=0
copy() {  # whatever ran, its sections reach $OUT, also when a part failed or timed out
  if [ -n "${OUT:-}" ]; then
    cp benchmarks/RESULTS.md benchmarks/results/*_gpu.* "$OUT"/ 2>/dev/null || true
  fi
}
trap copy EXIT
for part in $parts; do
  case $part in
    deferred) timeout 120 "$py" -m pytest -q -p no:cacheprovider tests/test_deferred.py \
      || { rc=$?; echo "gpu.sh: part $part failed (exit $rc)" >&2; } ;;
    paper) timeout 300 "$py" benchmarks/bench_paper.py --device cuda \
      || { rc=$?; echo "gpu.sh: part $part failed (exit $rc)" >&2; } ;;
    train) timeout 200 "$py" benchmarks/bench_train.py --device cuda --steps 5 --paper-steps 200 \
      || { rc=$?; echo "gpu.sh: part $part failed (exit $rc)" >&2; } ;;
    graph) timeout 200 "$py" benchmarks/bench_graph.py --device cuda --mem-n 10000 20000 40000 \
      || { rc=$?; echo "gpu.sh: part $part failed (exit $rc)" >&2; } ;;
    retrieval) timeout 150 "$py" benchmarks/bench_retrieval.py --device cuda \
      || { rc=$?; echo "gpu.sh: part $part failed (exit $rc)" >&2; } ;;
  esac
done
echo "gpu.sh: $(( $(date +%s) - start )) s in all"
exit $rc
