// sequenceLogprobs: S[n] = sum_t m[n,t] * l[n,t] (float64).
import { sequenceLogprobsRef } from '../reference/sequenceLogprobs.js';
import type { SequenceLogprobsArgs } from '../types.js';
import { dim, expectLength, isKind, maskOf, plain, product, snapshot, typed, typeError } from '../validate.js';
import { runAsync, runSync } from './run.js';

const FN = 'sequenceLogprobs';

function normalize(args: unknown) {
  const a = snapshot(FN, args, ['tokenLogprobs', 'mask', 'sequences', 'tokens']);
  const sequences = dim(FN, 'sequences', a.sequences);
  const tokens = dim(FN, 'tokens', a.tokens);
  const rows = product(FN, 'sequences*tokens', [sequences, tokens]);
  const mask = maskOf(FN, a.mask, false) as Float32Array;
  expectLength(FN, 'mask', mask.length, rows, 'sequences*tokens');
  const v = a.tokenLogprobs;
  if (!isKind(v, Float32Array) && !isKind(v, Float64Array)) {
    typeError(FN, 'tokenLogprobs', 'a Float32Array or Float64Array', v);
  }
  const lp = typed(FN, 'tokenLogprobs', v, isKind(v, Float32Array) ? Float32Array : Float64Array); // live, fixed-length
  expectLength(FN, 'tokenLogprobs', (lp as Float32Array).length, rows, 'sequences*tokens');
  return plain({ tokenLogprobs: lp as Float32Array | Float64Array, mask, sequences, tokens });
}

type Norm = ReturnType<typeof normalize>;
const reference = (o: Norm) => ({ values: sequenceLogprobsRef(o.tokenLogprobs, o.mask, o.sequences, o.tokens) });

/** S[n] = sum_t m[n,t] * l[n,t]: sequence log-probs from token log-probs, in float64. */
export function sequenceLogprobs(args: SequenceLogprobsArgs): Float64Array {
  const o = normalize(args);
  return runSync(FN, o, () => reference(o)).values;
}

export async function sequenceLogprobsAsync(args: SequenceLogprobsArgs): Promise<Float64Array> {
  const o = normalize(args);
  return (await runAsync(FN, o, () => reference(o))).values;
}
