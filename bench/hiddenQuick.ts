// gvpoFromHidden at the bench's shape (N = 16, T = 256, H = 512, V = 32768, 3072 of 4096 rows
// live; the rate counts the flops of the live rows, as the bench does) against the mean of the
// peak probes taken right before and right after each call (on a shared machine the FMA rate
// drifts within seconds): the FMA probe, or the bfloat16 dot-product probe for bfloat16 on the
// avx512bf16 level. The bench runs it with GVPO_SIMD=avx2 (and =avx512) for the narrower rows
// (--json: one JSON line of medians at the end).
//   node --import tsx bench/hiddenQuick.ts <float32|bfloat16> [reps] [--json]      (GVPO_SIMD=avx2 ...)
import { backendInfo, gvpoFromHidden } from '../src/index.js';
import { makeHiddenInputs } from './hiddenInputs.js';
import { headPeak, timeAgainstProbe } from './gvpoFromHidden.bench.js';

const dtype = (process.argv[2] ?? 'float32') as 'float32' | 'bfloat16';
const reps = Number(process.argv[3] ?? 3);
const threads = 2,
  H = 512,
  V = 32768;
const x = makeHiddenInputs(16, 256, H, V, 4, dtype);
const live = (x.args.mask as Float32Array).reduce((n, m) => n + (m !== 0 ? 1 : 0), 0);
const flops = 4 * 2 * live * H * V;
const gradWeight = new Float32Array(V * H); // reused, as the bench's in-process rows do
const r = timeAgainstProbe(
  () => void gvpoFromHidden({ ...x.args, threads, gradWeight }),
  flops,
  reps,
  threads,
  headPeak(dtype).peak,
);
const simd = backendInfo().simd;
if (process.argv.includes('--json')) {
  console.log(
    JSON.stringify({ simd, medianSeconds: r.t.median, spreadSeconds: r.t.spread, ofPeak: r.ofPeak, peak: r.peak }),
  );
} else {
  console.log(
    `${simd} ${dtype}: median ${(r.t.median * 1e3).toFixed(0)} ms, ${(flops / r.t.median / 1e9).toFixed(0)} GFLOP/s, ` +
      `probe ${(r.peak / 1e9).toFixed(0)} GFLOP/s -> ${(r.ofPeak * 100).toFixed(0)}% of peak (median over ${reps} calls)`,
  );
}
