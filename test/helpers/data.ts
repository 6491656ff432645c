// Seeded random inputs (mulberry32 + Box-Muller), so a failing case can be re-run exactly.
import { encodeHalf as toHalf } from '../../src/reference/dtype.js';
import { seeded } from '../../src/tasks/task.js';
import type { DType } from '../../src/types.js';

/** mulberry32, the package's own seeded generator. */
export const rng = seeded;

export function normal(r: () => number): number {
  return Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r());
}

export interface Batch {
  logits: Float32Array | Uint16Array;
  dtype: DType;
  targets: Int32Array;
  mask: Float32Array;
  sequences: number;
  tokens: number;
  vocab: number;
}

/** N sequences of T tokens over V; the first `prompt` tokens of each are masked out. */
export function batch(
  seed: number,
  N: number,
  T: number,
  V: number,
  dtype: DType = 'float32',
  scale = 3,
  prompt = 0,
): Batch {
  const r = rng(seed);
  const f = new Float32Array(N * T * V);
  for (let i = 0; i < f.length; i++) f[i] = normal(r) * scale;
  const targets = new Int32Array(N * T);
  const mask = new Float32Array(N * T);
  for (let i = 0; i < N * T; i++) {
    targets[i] = Math.floor(r() * V);
    mask[i] = i % T >= prompt ? 1 : 0;
  }
  const logits = dtype === 'float32' ? f : toHalf(f, dtype);
  return { logits, dtype, targets, mask, sequences: N, tokens: T, vocab: V };
}

export function randomRewards(seed: number, N: number): Float64Array {
  const r = rng(seed);
  return Float64Array.from({ length: N }, () => Math.round(r() * 4) / 4);
}
