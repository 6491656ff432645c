#!/usr/bin/env bash
# What a GPU machine runs (no Node needed there): build the CUDA harnesses for sm_90, check every
# CUDA kernel against the CPU kernels, measure the fused step against the same-run copy
# bandwidth, and time PyTorch eager on the same GPU and sizes. Writes to ${OUT:-.}:
# test-cuda.log, RESULTS-gpu.md (copy it to bench/RESULTS-gpu.md).
#   bash scripts/gpu-check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-.}
cmake -S . -B build-gpu -DGVPO_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build-gpu -j 16 --target gvpo_test_cuda gvpo_bench_cuda >/dev/null
./build-gpu/gvpo_test_cuda | tee "$OUT/test-cuda.log"
./build-gpu/gvpo_bench_cuda > "$OUT/RESULTS-gpu.md"
PYTHONUNBUFFERED=1 python3 bench/peers/torch_gvpo_gpu.py >> "$OUT/RESULTS-gpu.md"
PYTHONUNBUFFERED=1 python3 bench/peers/torch_gvpo_hidden_gpu.py >> "$OUT/RESULTS-gpu.md"
cat "$OUT/RESULTS-gpu.md"
