// tokenLogprobs: fused log-softmax + gather (and its gradient, tokenLogprobsBackward).
import { tokenLogprobsBackwardInto, tokenLogprobsF64 } from '../reference/tokenLogprobs.js';
import type { RowsOpts } from '../normalized.js';
import type { TokenLogprobsArgs, TokenLogprobsResult } from '../types.js';
import { expectLength, typed } from '../validate.js';
import { normalizeDest, normalizeRows } from './normalize.js';
import { runAsync, runSync } from './run.js';

const FN = 'tokenLogprobs';

function reference(o: RowsOpts): TokenLogprobsResult {
  const r = tokenLogprobsF64(o);
  return { logprobs: Float32Array.from(r.logprobs), logZ: Float32Array.from(r.logZ), nonFiniteRows: r.nonFiniteRows };
}

/** l[r] = z[r,y]/tau - logsumexp(z[r,:]/tau) for R rows of V logits; masked rows give 0. */
export function tokenLogprobs(args: TokenLogprobsArgs): TokenLogprobsResult {
  const o = normalizeRows(FN, args);
  return runSync(FN, o, () => reference(o));
}

export function tokenLogprobsAsync(args: TokenLogprobsArgs): Promise<TokenLogprobsResult> {
  try {
    const o = normalizeRows(FN, args);
    return runAsync(FN, o, () => reference(o));
  } catch (e) {
    return Promise.reject(e);
  }
}

export interface TokenLogprobsBackwardArgs extends TokenLogprobsArgs {
  logZ: Float32Array;
  /** dLoss/dl per row. */
  gradLogprobs: Float32Array;
  inPlace?: boolean;
  out?: Float32Array;
}

const BFN = 'tokenLogprobsBackward';

function normalizeBackward(args: TokenLogprobsBackwardArgs) {
  const o = normalizeRows(BFN, args);
  const logZ = typed(BFN, 'logZ', args.logZ, Float32Array);
  expectLength(BFN, 'logZ', logZ.length, o.rows, 'rows');
  const gradLogprobs = typed(BFN, 'gradLogprobs', args.gradLogprobs, Float32Array);
  expectLength(BFN, 'gradLogprobs', gradLogprobs.length, o.rows, 'rows');
  const dest = normalizeDest(BFN, args as unknown as Record<string, unknown>, o);
  return { ...o, ...dest, logZ, gradLogprobs };
}

function backwardReference(o: ReturnType<typeof normalizeBackward>): { gradLogits: Float32Array } {
  const out = o.inPlace ? (o.logits as Float32Array) : (o.out ?? new Float32Array(o.rows * o.vocab));
  tokenLogprobsBackwardInto(out, o, o.logZ, o.gradLogprobs);
  return { gradLogits: out };
}

/** grad[r,v] = g[r]/tau * ([v == y[r]] - softmax(z[r,:]/tau)[v]): the logits' gradient of sum g*l. */
export function tokenLogprobsBackward(args: TokenLogprobsBackwardArgs): Float32Array {
  const o = normalizeBackward(args);
  return runSync(BFN, o, () => backwardReference(o)).gradLogits;
}

export async function tokenLogprobsBackwardAsync(args: TokenLogprobsBackwardArgs): Promise<Float32Array> {
  const o = normalizeBackward(args);
  return (await runAsync(BFN, o, () => backwardReference(o))).gradLogits;
}
