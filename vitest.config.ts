// Numeric tests (theorems, leaks, child processes per instruction set) run for seconds on a
// 2-core machine and longer while it is busy: a generous per-test limit, so that a slow machine
// is not a failure. Benchmarks never run here.
//
// Two sizes. `npm test` sets GVPO_TEST_QUICK=1, the fast loop: every test runs, the randomized and
// repeated ones at a fraction of their size (fuzz cases, leak-check calls, hostile-input and
// property runs; a size given in the environment wins), and the few that rebuild the addon are
// left to the full run. A bare `vitest run`, and so `npm run test:full` and CI, runs everything at
// full size.
import { availableParallelism } from 'node:os';
import { defineConfig } from 'vitest/config';

const QUICK_SIZES: Record<string, string> = {
  GVPO_FUZZ_CASES: '100', // full: 500 per configuration
  GVPO_LEAK_CALLS: '2000', // full: 10000 sync and 10000 async calls per op
  GVPO_HOSTILE_RUNS: '500', // full: 2000
  GVPO_PROPERTY_RUNS: '300', // full: 1000
};
const quick = process.env.GVPO_TEST_QUICK === '1';

export default defineConfig({
  test: {
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // vitest's default on 2 cores is one worker; most tests wait on child processes or native
    // threads, so two files at a time use the machine better
    maxWorkers: Math.max(2, availableParallelism() - 1),
    env: quick ? Object.fromEntries(Object.entries(QUICK_SIZES).filter(([k]) => process.env[k] === undefined)) : {},
  },
});
