// Quick timing of gvpoFromHidden at the bench's shape (N = 16, T = 256, H = 512, V = 32768,
// 3072 of 4096 rows live; the rate counts the flops of the live rows, as the bench does) against
// the mean of the FMA probes taken right before and right after each call (on a shared machine
// the FMA rate drifts within seconds):
//   node --import tsx bench/hiddenQuick.ts <float32|bfloat16> [reps]      (GVPO_SIMD=avx2 ...)
import { gvpoFromHidden } from '../src/index.js';
import { makeHiddenInputs } from './hiddenInputs.js';
import { fmaPeak } from './gvpoFromHidden.bench.js';

const dtype = (process.argv[2] ?? 'float32') as 'float32' | 'bfloat16';
const reps = Number(process.argv[3] ?? 3);
const threads = 2, H = 512, V = 32768;
const x = makeHiddenInputs(16, 256, H, V, 4, dtype);
const live = (x.args.mask as Float32Array).reduce((n, m) => n + (m !== 0 ? 1 : 0), 0);
const flops = 4 * 2 * live * H * V;
const ratios: number[] = [];
for (let i = 0; i < reps; i++) {
  const before = fmaPeak(threads);
  const t0 = performance.now();
  gvpoFromHidden({ ...x.args, threads });
  const s = (performance.now() - t0) / 1e3;
  const peak = (before + fmaPeak(threads)) / 2;
  ratios.push(flops / s / peak);
  console.log(`${dtype} ${(s * 1e3).toFixed(0)} ms ${(flops / s / 1e9).toFixed(0)} GFLOP/s, probe ${(peak / 1e9).toFixed(0)} -> ${((flops / s / peak) * 100).toFixed(0)}%`);
}
ratios.sort((a, b) => a - b);
console.log(`median ${(ratios[reps >> 1] * 100).toFixed(0)}% of peak`);
