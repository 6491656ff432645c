// Numeric tests (theorems, leaks, child processes per instruction set) run for seconds on a
// 2-core machine and longer while it is busy: a generous per-test limit, so that a slow machine
// is not a failure. Benchmarks never run here.
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
});
