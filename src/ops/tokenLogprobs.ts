// tokenLogprobs: fused log-softmax + gather (and its gradient, tokenLogprobsBackward).
import { tokenLogprobsBackwardInto, tokenLogprobsF64 } from '../reference/tokenLogprobs.js';
import type { RowsOpts } from '../checked.js';
import type { TokenLogprobsArgs, TokenLogprobsBackwardArgs, TokenLogprobsResult } from '../types.js';
import { expectLength, plain, snapshot, typed } from '../validate.js';
import { keepParts, type LogZParts, partsOf, withParts } from './logZParts.js';
import { KEYS, normalizeDest, normalizeRows, settle } from './normalize.js';
import { runAsync, runSync } from './run.js';

const FN = 'tokenLogprobs';

/** The result with each row's parts of logZ (logZParts.ts), which keepParts sets aside. */
function reference(o: RowsOpts): TokenLogprobsResult & LogZParts {
  const r = tokenLogprobsF64(o);
  return {
    logprobs: Float32Array.from(r.logprobs),
    logZ: Float32Array.from(r.logZ),
    nonFiniteRows: r.nonFiniteRows,
    rowMax: r.rowMax,
    rowLse: r.lse,
  };
}

/** l[r] = z[r,y]/tau - logsumexp(z[r,:]/tau) <= 0 for R rows of V logits; masked rows give 0. */
export function tokenLogprobs(args: TokenLogprobsArgs): TokenLogprobsResult {
  const o = normalizeRows(FN, snapshot(FN, args, KEYS.tokenLogprobs));
  return keepParts(
    runSync(FN, { ...o, split: true }, () => reference(o)),
    o.temperature,
  );
}

export async function tokenLogprobsAsync(args: TokenLogprobsArgs): Promise<TokenLogprobsResult> {
  const o = normalizeRows(FN, snapshot(FN, args, KEYS.tokenLogprobs));
  return keepParts(await runAsync(FN, { ...o, split: true }, () => reference(o)), o.temperature);
}

const BFN = 'tokenLogprobsBackward';

function normalizeBackward(args: TokenLogprobsBackwardArgs) {
  const a = snapshot(BFN, args, KEYS.tokenLogprobsBackward);
  const o = normalizeRows(BFN, a);
  const logZ = typed(BFN, 'logZ', a.logZ, Float32Array);
  expectLength(BFN, 'logZ', logZ.length, o.rows, 'rows');
  const gradTokenLogprobs = typed(BFN, 'gradTokenLogprobs', a.gradTokenLogprobs, Float32Array);
  expectLength(BFN, 'gradTokenLogprobs', gradTokenLogprobs.length, o.rows, 'rows');
  const dest = normalizeDest(BFN, a, o);
  settle(BFN, a);
  return plain({ ...o, ...dest, logZ, gradTokenLogprobs });
}

function backwardReference(
  o: ReturnType<typeof normalizeBackward>,
  parts: LogZParts | undefined,
): { gradLogits: Float32Array } {
  const out = o.inPlace ? (o.logits as Float32Array) : (o.out as Float32Array);
  const split = parts && { rowMax: parts.rowMax, lse: parts.rowLse };
  tokenLogprobsBackwardInto(out, o, o.logZ, o.gradTokenLogprobs, split);
  return { gradLogits: out };
}

/** grad[r,v] = w[r]/tau * ([v == y[r]] - softmax(z[r,:]/tau)[v]): the logits' gradient of sum w*l
 *  (0 on masked rows and when V = 1). Exact from the forward's own logZ array (logZParts.ts). */
export function tokenLogprobsBackward(args: TokenLogprobsBackwardArgs): Float32Array {
  const o = normalizeBackward(args);
  const parts = partsOf(o.logZ, o.temperature);
  return runSync(BFN, withParts(o, parts), () => backwardReference(o, parts)).gradLogits;
}

export async function tokenLogprobsBackwardAsync(args: TokenLogprobsBackwardArgs): Promise<Float32Array> {
  const o = normalizeBackward(args);
  const parts = partsOf(o.logZ, o.temperature);
  return (await runAsync(BFN, withParts(o, parts), () => backwardReference(o, parts))).gradLogits;
}
