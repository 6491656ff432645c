// Seeded inputs of the fused LM head for bench/: hidden states ~ N(0, 1)-ish, a head weight
// scaled by 1/sqrt(H) (logits of order 1), targets uniform, 1/4 of each sequence masked as prompt.
import { encodeHalf } from '../src/reference/dtype.js';
import type { DType, GvpoFromHiddenArgs } from '../src/types.js';

export interface HiddenInputs {
  N: number; T: number; H: number; V: number; k: number;
  dtype: DType;
  args: GvpoFromHiddenArgs;
  referenceTokenLogprobs: Float64Array;
}

export function makeHiddenInputs(N: number, T: number, H: number, V: number, k: number, dtype: DType, seed = 1): HiddenInputs {
  let s = seed >>> 0;
  const next = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 4294967296);
  const noise = (n: number, scale: number) => Float32Array.from({ length: n }, () => (next() + next() + next() - 1.5) * 2 * scale);
  const h = noise(N * T * H, 1), w = noise(V * H, 1 / Math.sqrt(H));
  const targets = new Int32Array(N * T), mask = new Float32Array(N * T);
  const prompt = Math.floor(T / 4);
  for (let i = 0; i < N * T; i++) {
    targets[i] = Math.floor(next() * V);
    mask[i] = i % T >= prompt ? 1 : 0;
  }
  const referenceTokenLogprobs = Float64Array.from({ length: N * T }, () => -10 - next());
  const rewards = Float64Array.from({ length: N }, () => (next() < 0.5 ? 1 : 0));
  const args: GvpoFromHiddenArgs = {
    hidden: dtype === 'float32' ? h : encodeHalf(h, dtype), weight: dtype === 'float32' ? w : encodeHalf(w, dtype), dtype,
    targets, mask, sequences: N, tokens: T, hiddenSize: H, vocab: V, referenceTokenLogprobs, rewards,
    groups: { size: k }, beta: 0.1, temperature: 1,
  };
  return { N, T, H, V, k, dtype, args, referenceTokenLogprobs };
}
