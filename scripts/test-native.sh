#!/usr/bin/env bash
# The C++ harness (native/tests, no Node) built plainly and with AddressSanitizer +
# UndefinedBehaviorSanitizer, run once per instruction set this machine has (GVPO_SIMD).
#   --quick   the fast loop (`npm test`): the plain build of the CPU kernels' and the fused
#             heads' tests, once per instruction set; no sanitizers, no CUDA code on the CPU
#             (the full run, `npm run test:full`, and CI run those)
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v cmake >/dev/null; then echo "test-native: cmake not found, C++ harness skipped"; exit 0; fi
quick=0; [ "${1:-}" = --quick ] && quick=1
variants="plain asan"; [ $quick = 1 ] && variants=plain
for variant in $variants; do
  dir=build-tests-$variant
  flag=OFF; [ "$variant" = asan ] && flag=ON
  targets="gvpo_test_cpu gvpo_test_hidden gvpo_test_token_logprobs_from_hidden"
  [ $quick = 0 ] && targets="$targets gvpo_test_gemm_tile gvpo_test_row_sweep gvpo_test_cuda_host"
  cmake -S . -B "$dir" -DGVPO_SANITIZE=$flag -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  cmake --build "$dir" -j 2 --target $targets >/dev/null
  if [ $quick = 0 ]; then
    echo "== $variant CUDA code on the CPU: the GEMM tile, the logits kernels' rows, the host code"
    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 "./$dir/gvpo_test_gemm_tile"
    ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 "./$dir/gvpo_test_row_sweep"
    ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 "./$dir/gvpo_test_cuda_host"
  fi
  # avx512bf16 (the fused head's bfloat16 products; avx512 where the CPU lacks them) shares the
  # row kernels of avx512, so only the heads' harnesses run it.
  for simd in avx512bf16 avx512 avx2 sse2; do
    echo "== $variant GVPO_SIMD=$simd"
    [ "$simd" = avx512bf16 ] || GVPO_SIMD=$simd ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 "./$dir/gvpo_test_cpu"
    GVPO_SIMD=$simd ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 "./$dir/gvpo_test_hidden"
    GVPO_SIMD=$simd ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
      "./$dir/gvpo_test_token_logprobs_from_hidden"
  done
done
