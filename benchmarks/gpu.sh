#!/usr/bin/env bash
# Full-size benchmarks on a CUDA machine (target: under 5 minutes in all): one MIRFlickr-shaped
# adversarial round (paper vs fast, synthetic data), the 20,000 x 4096 kNN graph, and the
# 1,000 x 1,000,000 Hamming ranking.  Each script writes its "... on a GPU" section into
# benchmarks/results/*_gpu.md and rebuilds benchmarks/RESULTS.md; with $OUT set, copies land
# there too.
# Usage: benchmarks/gpu.sh [PYTHON]     (from the repository root)
set -euo pipefail
py=${1:-python3}
cd "$(dirname "$0")/.."
export PYTHONPATH=.${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
"$py" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'no CUDA device')"
start=$(date +%s)
timeout 200 "$py" benchmarks/bench_train.py --device cuda --steps 5 --paper-steps 200
timeout 200 "$py" benchmarks/bench_graph.py --device cuda --mem-n 10000 20000 40000
timeout 150 "$py" benchmarks/bench_retrieval.py --device cuda
echo "gpu.sh: $(( $(date +%s) - start )) s in all"
if [ -n "${OUT:-}" ]; then cp benchmarks/RESULTS.md benchmarks/results/*_gpu.md "$OUT"/; fi
