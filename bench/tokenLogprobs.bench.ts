// tokenLogprobs: native CPU (sync), the TypeScript reference, and the roofline it is held to:
// one streaming read of the logits (napkin math: N*T*V*esz bytes / read bandwidth).
import { backendInfo, tokenLogprobs } from '../src/index.js';
import { tokenLogprobsF64 } from '../src/reference/tokenLogprobs.js';
import { type Inputs, time, type Timing, timeSlow } from './lib.js';

export interface OpResult {
  path: string;
  t: Timing;
}

export function benchTokenLogprobs(x: Inputs, threads: number, withReference: boolean): OpResult[] {
  const args = { logits: x.logits, dtype: x.dtype, targets: x.targets, rows: x.N * x.T, vocab: x.V, threads };
  const out: OpResult[] = [
    { path: `native cpu (${backendInfo().simd})`, t: time('tokenLogprobs native', () => void tokenLogprobs(args)) },
  ];
  if (withReference) {
    const o = { ...args, temperature: 1 };
    out.push({ path: 'TypeScript reference', t: timeSlow(() => void tokenLogprobsF64(o), 3) });
  }
  return out;
}
