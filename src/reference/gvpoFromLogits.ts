// Reference fused GVPO from logits, in its two phases:
//   phase 1 (forward):  token log-probs and logZ, S, Sref
//   phase 2 (backward): dL/dS -> dL/dz[r,v] = m[r] dL/dS[n(r)] / tau ([v==y] - softmax)
// with the loss in between. Float64 throughout; outputs rounded to the public dtypes.
import type { BackwardOpts, ForwardOpts, FromLogitsOpts, GradDest } from '../checked.js';
import type { GvpoForwardResult, GvpoFromLogitsResult } from '../types.js';
import { gvpoLossRef } from './gvpoLoss.js';
import { sequenceLogprobsRef } from './sequenceLogprobs.js';
import { tokenLogprobsBackwardInto, tokenLogprobsF64 } from './tokenLogprobs.js';

// Rows are sequences x tokens (callers that build the options by hand may leave `rows` out); no
// prototype, as the normalized options have none (a field left out reads as absent).
function rows<O extends ForwardOpts | BackwardOpts>(o: O): O & { rows: number } {
  return Object.assign(Object.create(null) as O, o, { rows: o.sequences * o.tokens });
}

export function gvpoForwardF64(o: ForwardOpts) {
  const tok = tokenLogprobsF64(rows(o));
  const S = sequenceLogprobsRef(tok.logprobs, o.mask, o.sequences, o.tokens);
  const Sref = o.referenceTokenLogprobs
    ? sequenceLogprobsRef(o.referenceTokenLogprobs, o.mask, o.sequences, o.tokens)
    : o.referenceLogprobs
      ? Float64Array.from(o.referenceLogprobs)
      : Float64Array.from(S); // no reference given: pi_theta' is the current policy
  return { tok, S, Sref };
}

/** Phase 1's result, with each row's parts of logZ (rowMax, rowLse) for phase 2. */
export function gvpoForwardRef(o: ForwardOpts): GvpoForwardResult & { rowMax: Float64Array; rowLse: Float64Array } {
  const { tok, S, Sref } = gvpoForwardF64(o);
  return {
    policyLogprobs: S,
    referenceLogprobs: Sref,
    tokenLogprobs: Float32Array.from(tok.logprobs),
    logZ: Float32Array.from(tok.logZ),
    nonFiniteRows: tok.nonFiniteRows,
    rowMax: tok.rowMax,
    rowLse: tok.lse,
  };
}

export function gradDestination(o: BackwardOpts | FromLogitsOpts, d: GradDest): Float32Array {
  if (d.inPlace) return o.logits as Float32Array;
  return d.out ?? new Float32Array(o.sequences * o.tokens * o.vocab);
}

function perToken(o: { mask: Float32Array; tokens: number }, gradSeq: ArrayLike<number>): Float64Array {
  const g = new Float64Array(o.mask.length);
  for (let r = 0; r < g.length; r++) g[r] = o.mask[r] * gradSeq[Math.floor(r / o.tokens)];
  return g;
}

/** Phase 2, from logZ or, given them, from phase 1's parts of it. */
export function gvpoBackwardRef(
  o: BackwardOpts,
  parts?: { rowMax: ArrayLike<number>; rowLse: ArrayLike<number> },
): Float32Array {
  const out = gradDestination(o, o);
  const split = parts && { rowMax: parts.rowMax, lse: parts.rowLse };
  tokenLogprobsBackwardInto(out, rows(o), o.logZ, perToken(o, o.gradLogprobs), split);
  return out;
}

export function gvpoFromLogitsRef(o: FromLogitsOpts): GvpoFromLogitsResult {
  const { tok, S, Sref } = gvpoForwardF64(o);
  const loss = gvpoLossRef(S, Sref, o.rewards, o.offsets, o.beta, o.reduction);
  const out = gradDestination(o, o);
  tokenLogprobsBackwardInto(out, rows(o), tok.logZ, perToken(o, loss.gradLogprobs), tok);
  return {
    ...loss,
    gradLogits: out,
    policyLogprobs: S,
    referenceLogprobs: Sref,
    tokenLogprobs: Float32Array.from(tok.logprobs),
    logZ: Float32Array.from(tok.logZ),
    nonFiniteRows: tok.nonFiniteRows,
  };
}
