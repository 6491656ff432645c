#!/usr/bin/env bash
# What a GPU machine runs (no Node needed there): build the CUDA harnesses for sm_90, check every
# CUDA kernel against the CPU kernels, measure the fused step against the same-run copy
# bandwidth, and time PyTorch eager (and Liger-Kernel, where its source is given) on the same GPU
# and sizes. Writes to ${OUT:-.}: test-cuda.log, RESULTS-gpu.md (copy it to bench/RESULTS-gpu.md),
# and with the options below node-tests.log, profile.log and sanitizer.log. Every step runs; the exit status
# is non-zero when any check failed.
#   bash scripts/gpu-check.sh
# Options, in the environment:
#   GVPO_BUILD=dir       harnesses already built for sm_90 (gvpo_test_cuda, gvpo_bench_cuda) in dir
#   LIGER_SRC=dir        Liger-Kernel's source (the folder holding liger_kernel), timed beside ours;
#                        it is brought for the run and never part of this repository
#   GVPO_PROFILE=1       Nsight Compute's speed-of-light and memory sections for the logits kernels
#   GVPO_SANITIZE=1      gvpo_test_cuda again under compute-sanitizer (memcheck, then racecheck, which
#                        takes minutes); or the tools named, GVPO_SANITIZE="memcheck synccheck"
#   GVPO_NODE_TESTS=1    the Node test files that need no TensorFlow.js, with build/Release/gvpo.node
#                        built with CUDA, so that CUDA is the active backend (needs node, node_modules)
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-.}
failed=0
step() { # step NAME SECONDS COMMAND...: runs it under a time limit, notes a failure and goes on
  local name=$1 limit=$2
  shift 2
  local t0=$SECONDS
  echo "== $name" >&2
  timeout "$limit" "$@" || {
    echo "== $name FAILED (exit $?)" >&2
    failed=1
  }
  echo "== $name: $((SECONDS - t0)) s" >&2
}

B=${GVPO_BUILD:-build-gpu}
if [ ! -x "$B/gvpo_test_cuda" ] || [ ! -x "$B/gvpo_bench_cuda" ]; then
  cmake -S . -B "$B" -DGVPO_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build "$B" -j "$(nproc)" --target gvpo_test_cuda gvpo_bench_cuda >/dev/null || exit 1
fi
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,temperature.gpu --format=csv,noheader >&2 || true

step "gvpo_test_cuda" 300 bash -c "set -o pipefail; '$B/gvpo_test_cuda' 2>&1 | tee '$OUT/test-cuda.log'"

{
  step "bench: logits" 120 "$B/gvpo_bench_cuda" logits
  step "PyTorch eager: logits" 120 env PYTHONUNBUFFERED=1 python3 bench/peers/torch_gvpo_gpu.py
  [ -n "${LIGER_SRC:-}" ] && step "Liger-Kernel: logits" 180 env PYTHONUNBUFFERED=1 python3 bench/peers/liger_gpu.py logits
  step "bench: head" 120 "$B/gvpo_bench_cuda" head
  step "PyTorch eager: head" 120 env PYTHONUNBUFFERED=1 python3 bench/peers/torch_gvpo_hidden_gpu.py
  [ -n "${LIGER_SRC:-}" ] && step "Liger-Kernel: head" 180 env PYTHONUNBUFFERED=1 python3 bench/peers/liger_gpu.py hidden
} > "$OUT/RESULTS-gpu.md"
python3 bench/peers/gpu_ratios.py "$OUT/RESULTS-gpu.md" >> "$OUT/RESULTS-gpu.md"
cat "$OUT/RESULTS-gpu.md"

if [ "${GVPO_NODE_TESTS:-}" = 1 ]; then
  # the files without TensorFlow.js, less the two that build or pack the package
  files=$(grep -L -E "tensorflow|/tfjs" test/*.test.ts | grep -v -E "buildNative|packageInstall" | tr '\n' ' ')
  # shellcheck disable=SC2086
  step "Node tests, CUDA active" 420 bash -c "GVPO_TEST_QUICK=1 node node_modules/vitest/vitest.mjs run $files \
    > '$OUT/node-tests.log' 2>&1; s=\$?; tail -n 40 '$OUT/node-tests.log'; exit \$s"
fi

tool() { command -v "$1" || echo "/usr/local/cuda/bin/$1"; }
if [ "${GVPO_PROFILE:-}" = 1 ]; then
  # a quarter of the bench's rows: the profiler replays each kernel several times
  step "ncu: logits kernels" 120 bash -c "'$(tool ncu)' --clock-control none --section SpeedOfLight \
    --section MemoryWorkloadAnalysis -k regex:token_logprobs --launch-skip 21 --launch-count 2 '$B/gvpo_bench_cuda' logits 16 256 151936 \
    > '$OUT/profile.log' 2>&1; s=\$?; grep -E '^  [a-z_]+|DRAM Throughput|Memory Throughput|Duration' '$OUT/profile.log' | head -n 30; exit \$s"
fi

if [ -n "${GVPO_SANITIZE:-}" ]; then
  tools=$GVPO_SANITIZE
  [ "$tools" = 1 ] && tools="memcheck racecheck"
  for t in $tools; do
    step "compute-sanitizer $t" 120 bash -c "'$(tool compute-sanitizer)' --tool $t --error-exitcode 99 '$B/gvpo_test_cuda' \
      >> '$OUT/sanitizer.log' 2>&1; s=\$?; grep -E 'ERROR SUMMARY|passed|Invalid|Race|Error' '$OUT/sanitizer.log' | tail -n 8; exit \$s"
  done
fi
exit $failed
