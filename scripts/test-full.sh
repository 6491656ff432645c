#!/usr/bin/env bash
# `npm run test:full`: the whole matrix, which CI runs after `npm install` (.ci/run). `npm test` is
# the fast loop; this is everything: the formatting checked, the tests, benchmarks and examples
# type-checked, the vitest suite at full size (fuzz, leak checks, property and
# hostile-input runs, the source build's quiet output), the C++ harness plain and under
# AddressSanitizer + UndefinedBehaviorSanitizer on every instruction set with the CUDA host code on
# the CPU, the packed package installed with scripts disabled and no compiler, and the suite again
# on the TypeScript backend alone.
set -euo pipefail
cd "$(dirname "$0")/.."
unset GVPO_TEST_QUICK
step() { echo; echo "== test:full: $*"; }
step "formatting (Prettier, clang-format)"
npm run -s format:check
step "types of the tests, benchmarks and examples (tsc)"
npm run -s typecheck
step "vitest, full size"
npx vitest run
step "the C++ harness: plain and sanitizers, every instruction set"
bash scripts/test-native.sh
step "the packed package"
npm run test:pack
step "the TypeScript backend alone"
GVPO_BACKEND=js GVPO_PROPERTY_RUNS=200 npx vitest run
