// Seeded inputs of the fused LM head for bench/: hidden states ~ N(0, 1)-ish, a head weight
// scaled by 1/sqrt(H) (logits of order 1), targets uniform, 1/4 of each sequence masked as prompt.
import { encodeHalf } from '../src/reference/dtype.js';
import type { DType, GvpoFromHiddenArgs, TokenLogprobsFromHiddenArgs } from '../src/types.js';
import { seededRandom, tokenInputs } from './lib.js';

export interface HiddenInputs {
  N: number;
  T: number;
  H: number;
  V: number;
  k: number;
  dtype: DType;
  args: GvpoFromHiddenArgs;
  referenceTokenLogprobs: Float64Array;
}

export function makeHiddenInputs(
  N: number,
  T: number,
  H: number,
  V: number,
  k: number,
  dtype: DType,
  seed = 1,
): HiddenInputs {
  const next = seededRandom(seed);
  const noise = (n: number, scale: number) =>
    Float32Array.from({ length: n }, () => (next() + next() + next() - 1.5) * 2 * scale);
  const h = noise(N * T * H, 1),
    w = noise(V * H, 1 / Math.sqrt(H));
  const { targets, mask, referenceTokenLogprobs, rewards } = tokenInputs(next, N, T, V);
  const args: GvpoFromHiddenArgs = {
    hidden: dtype === 'float32' ? h : encodeHalf(h, dtype),
    weight: dtype === 'float32' ? w : encodeHalf(w, dtype),
    dtype,
    targets,
    mask,
    sequences: N,
    tokens: T,
    hiddenSize: H,
    vocab: V,
    referenceTokenLogprobs,
    rewards,
    groups: { size: k },
    beta: 0.1,
    temperature: 1,
  };
  return { N, T, H, V, k, dtype, args, referenceTokenLogprobs };
}

/** Rows for the head for any loss (every row live, no mask): hidden, weight and targets as above,
 *  and the upstream dL/dl and dL/dH of a loss on both outputs. */
export interface HeadInputs {
  rows: number;
  H: number;
  V: number;
  dtype: DType;
  args: TokenLogprobsFromHiddenArgs;
  gradTokenLogprobs: Float32Array;
  gradEntropy: Float32Array;
}

export function makeHeadInputs(rows: number, H: number, V: number, dtype: DType, seed = 1): HeadInputs {
  const next = seededRandom(seed);
  const noise = (n: number, scale: number) =>
    Float32Array.from({ length: n }, () => (next() + next() + next() - 1.5) * 2 * scale);
  const h = noise(rows * H, 1),
    w = noise(V * H, 1 / Math.sqrt(H));
  const targets = Int32Array.from({ length: rows }, () => Math.floor(next() * V));
  const args: TokenLogprobsFromHiddenArgs = {
    hidden: dtype === 'float32' ? h : encodeHalf(h, dtype),
    weight: dtype === 'float32' ? w : encodeHalf(w, dtype),
    dtype,
    targets,
    rows,
    hiddenSize: H,
    vocab: V,
    temperature: 1,
    entropy: true,
  };
  return { rows, H, V, dtype, args, gradTokenLogprobs: noise(rows, 1 / rows), gradEntropy: noise(rows, 0.1 / rows) };
}
