// gvpoFromLogits (forward + loss + gradient): native CPU into a reused buffer, in place, and the
// TypeScript reference. Floor: two reads of the logits and one float32 write of the gradient at
// the same-run bandwidths.
import { backendInfo, gvpoFromLogits } from '../src/index.js';
import { gvpoFromLogitsRef } from '../src/reference/gvpoFromLogits.js';
import { fusedArgs, type Inputs, time, timeSlow } from './lib.js';
import type { OpResult } from './tokenLogprobs.bench.js';

export function benchGvpoFromLogits(x: Inputs, threads: number, withReference: boolean): OpResult[] {
  const args = fusedArgs(x, threads);
  const out = new Float32Array(x.N * x.T * x.V); // reused: fresh pages cost a fault each
  const res: OpResult[] = [
    {
      path: `native cpu (${backendInfo().simd})`,
      t: time('gvpoFromLogits native', () => void gvpoFromLogits({ ...args, out })),
    },
  ];
  if (x.dtype === 'float32') {
    // in place: each call overwrites the logits with a gradient, which is still valid input
    const z = Float32Array.from(x.logits as Float32Array);
    res.push({
      path: `native cpu (${backendInfo().simd}), inPlace`,
      t: time('gvpoFromLogits inPlace', () => void gvpoFromLogits({ ...args, logits: z, inPlace: true })),
    });
  }
  if (withReference) {
    const offsets = Int32Array.from({ length: x.N / x.k + 1 }, (_, g) => g * x.k);
    const o = { ...args, offsets, reduction: 'mean' as const, inPlace: false, out };
    res.push({ path: 'TypeScript reference', t: timeSlow(() => void gvpoFromLogitsRef(o), 2) });
  }
  return res;
}
