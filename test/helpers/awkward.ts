// The awkward cases, built deterministically so that every backend and instruction set (each in
// its own process) computes on the same inputs: sizes that are not vector multiples, one-token
// vocabularies, logits near exp's limits and near 1e4, -inf entries and a row that is -inf across
// its whole first 2048-element tile, the maximum in the last element, constant rows, extreme
// temperatures and betas, 16-bit logits near their limits, ragged groups with groups of size 1,
// mask weights that are not 0/1, tied maxima at temperatures near 0 and near float32's max.
import { encodeHalf } from '../../src/reference/dtype.js';
import type { DType } from '../../src/types.js';
import { normal, rng, type Batch } from './data.js';

export interface AwkwardCase extends Batch {
  name: string;
  temperature: number;
  beta: number;
  rewards: Float64Array;
  groups: { offsets: Int32Array };
  referenceLogprobs: Float64Array;
}

type Fill = (r: () => number, v: number, V: number, row: number) => number;

const FILLS: Record<string, Fill> = {
  normal: (r) => normal(r) * 3,
  near80: (r) => 80 - Math.abs(normal(r)) * 0.5,
  near1e4: (r) => 1e4 + normal(r) * 3,
  minusInf: (r, v) => (v % 5 === 1 ? -Infinity : normal(r) * 3),
  firstTileInf: (r, v) => (v < 2048 ? -Infinity : normal(r)),
  maxLast: (r, v, V) => (v === V - 1 ? 50 : normal(r)),
  constant: () => 1.25,
  // three tied maxima per row (at a temperature near 0 every other token's p underflows)
  ties: (r, v) => (v % 4 === 1 ? 5 : 5 - 1 - Math.abs(normal(r))),
  // ties near float32's max: max/tau is past any precision that would keep log 3 beside it
  tiesNearMax: (r, v) => (v % 4 === 1 ? 3.4e38 : 3.3e38 - Math.abs(normal(r)) * 1e36),
};

function build(
  name: string,
  seed: number,
  V: number,
  T: number,
  fill: Fill,
  dtype: DType,
  temperature: number,
  beta: number,
  scale = 1,
): AwkwardCase {
  const offsets = Int32Array.from([0, 1, 3, 4, 7]); // a group of 1, of 2, of 1 and of 3
  const N = 7;
  const r = rng(seed);
  const f = new Float32Array(N * T * V);
  for (let row = 0; row < N * T; row++) {
    for (let v = 0; v < V; v++) f[row * V + v] = fill(r, v, V, row) * scale;
  }
  const targets = new Int32Array(N * T);
  const mask = new Float32Array(N * T);
  for (let i = 0; i < N * T; i++) {
    targets[i] = Math.floor(r() * V);
    mask[i] = i % 4 === 3 ? 0 : i % 3 === 0 ? 0.5 : i % 5 === 0 ? 2.5 : 1;
  }
  if (V >= 2) targets[0] = V - 1; // the maximum's own token (maxLast), or any last token
  const rewards = Float64Array.from({ length: N }, () => Math.round(r() * 4) / 4);
  const referenceLogprobs = Float64Array.from({ length: N }, () => -Math.abs(normal(r)) * 5);
  const logits = dtype === 'float32' ? f : encodeHalf(f, dtype);
  return {
    name,
    logits,
    dtype,
    targets,
    mask,
    sequences: N,
    tokens: T,
    vocab: V,
    temperature,
    beta,
    rewards,
    groups: { offsets },
    referenceLogprobs,
  };
}

export function awkwardCases(): AwkwardCase[] {
  const out: AwkwardCase[] = [];
  let seed = 1;
  for (const V of [1, 2, 15, 17, 4099]) {
    for (const fill of ['normal', 'near80', 'minusInf', 'maxLast', 'constant']) {
      out.push(build(`V=${V} ${fill}`, seed++, V, V === 4099 ? 1 : 2, FILLS[fill], 'float32', 1, 0.1));
    }
  }
  out.push(build('V=4099 first tile -inf', seed++, 4099, 1, FILLS.firstTileInf, 'float32', 1, 0.1));
  out.push(build('near 1e4, tau 1e-6', seed++, 17, 1, FILLS.near1e4, 'float32', 1e-6, 0.1));
  out.push(build('near 1e4, tau 2.7', seed++, 17, 2, FILLS.near1e4, 'float32', 2.7, 0.1));
  out.push(build('tau 1e-6', seed++, 15, 1, FILLS.normal, 'float32', 1e-6, 1e-3));
  out.push(build('tau 2.7, beta 10', seed++, 15, 2, FILLS.normal, 'float32', 2.7, 10));
  out.push(build('beta 1e-3', seed++, 17, 2, FILLS.normal, 'float32', 1, 1e-3));
  out.push(build('V=1 near80 tau 0.3', seed++, 1, 1, FILLS.near80, 'float32', 0.3, 0.1));
  out.push(build('bf16 near its max', seed++, 17, 1, FILLS.normal, 'bfloat16', 1, 0.1, 1e37));
  out.push(build('bf16 subnormal', seed++, 17, 1, FILLS.normal, 'bfloat16', 1, 0.1, 1e-39));
  out.push(build('fp16 near its max', seed++, 17, 1, (r) => 60000 + normal(r) * 1000, 'float16', 1, 0.1));
  out.push(build('fp16 subnormal', seed++, 17, 1, FILLS.normal, 'float16', 1e-6, 0.1, 1e-6));
  out.push(build('bf16 V=4099 first tile -inf', seed++, 4099, 1, FILLS.firstTileInf, 'bfloat16', 0.7, 0.1));
  out.push(build('fp16 minusInf tau 2.7', seed++, 17, 2, FILLS.minusInf, 'float16', 2.7, 0.1));
  // beta ~ tau keeps dL/dz = beta c / tau within float32 (S is about -1e30 off the ties)
  out.push(build('ties, tau 1e-30', seed++, 11, 2, FILLS.ties, 'float32', 1e-30, 1e-30));
  out.push(build('ties, tau 1e-12', seed++, 11, 2, FILLS.ties, 'float32', 1e-12, 1e-12));
  out.push(build('ties near 3.4e38', seed++, 11, 2, FILLS.tiesNearMax, 'float32', 1, 0.1));
  return out;
}
