// Reference GVPO through the fused LM head, float64 throughout: the fallback and the oracle of the
// native op. The head is tokenLogprobsFromHidden's reference; this composes it with the loss:
//   phase 1  l, logZ = the head's forward (live rows: mask != 0); S = sum_t m l; Sref
//   loss     gvpoLossRef
//   phase 2  gl[r] = m[r] dL/dS[n(r)] -> the head's backward -> dL/dhidden, dL/dweight
import type { FromHiddenOpts, HeadGradDest, HiddenBackwardOpts, HiddenBatchOpts } from '../checked.js';
import type { GvpoFromHiddenForwardResult, GvpoFromHiddenGrads, GvpoFromHiddenResult } from '../types.js';
import { gvpoLossRef } from './gvpoLoss.js';
import { sequenceLogprobsRef } from './sequenceLogprobs.js';
import {
  type HeadUpstream,
  tokenLogprobsFromHiddenBackwardInto,
  tokenLogprobsFromHiddenF64,
} from './tokenLogprobsFromHidden.js';

export function gvpoFromHiddenForwardF64(o: HiddenBatchOpts) {
  const { logprobs, logZ, rowMax, lse, nonFiniteRows } = tokenLogprobsFromHiddenF64(o, false);
  const S = sequenceLogprobsRef(logprobs, o.mask, o.sequences, o.tokens);
  const Sref = o.referenceTokenLogprobs
    ? sequenceLogprobsRef(o.referenceTokenLogprobs, o.mask, o.sequences, o.tokens)
    : o.referenceLogprobs
      ? Float64Array.from(o.referenceLogprobs)
      : Float64Array.from(S); // no reference given: pi_theta' is the current policy
  return { logprobs, logZ, split: { rowMax, lse }, nonFiniteRows, S, Sref };
}

/** Phase 1's result, with each row's parts of logZ (rowMax, rowLse) for phase 2. */
export function gvpoFromHiddenForwardRef(
  o: HiddenBatchOpts,
): GvpoFromHiddenForwardResult & { rowMax: Float64Array; rowLse: Float64Array } {
  const f = gvpoFromHiddenForwardF64(o);
  return {
    policyLogprobs: f.S,
    referenceLogprobs: f.Sref,
    tokenLogprobs: Float32Array.from(f.logprobs),
    logZ: Float32Array.from(f.logZ),
    nonFiniteRows: f.nonFiniteRows,
    rowMax: f.split.rowMax,
    rowLse: f.split.lse,
  };
}

/** dL/dhidden into o.gradHidden and dL/dweight into o.gradWeight (overwritten, or added to with
 *  o.accumulate), from dL/dS and logZ. */
function backwardInto(
  o: HiddenBatchOpts & HeadGradDest,
  logZ: ArrayLike<number>,
  gradSeq: ArrayLike<number>,
  split?: HeadUpstream['split'],
) {
  const gl = new Float64Array(o.rows);
  for (let r = 0; r < o.rows; r++) gl[r] = o.mask[r] === 0 ? 0 : o.mask[r] * gradSeq[Math.floor(r / o.tokens)];
  // every field of the upstream given (undefined where absent): none read through a prototype
  const up = { logZ, gradLogprobs: gl, split, entropy: undefined, gradEntropy: undefined };
  return tokenLogprobsFromHiddenBackwardInto(o, up, o, o.accumulate);
}

/** Phase 2, from logZ or, given them, from phase 1's parts of it. */
export function gvpoFromHiddenBackwardRef(
  o: HiddenBackwardOpts,
  parts?: { rowMax: ArrayLike<number>; rowLse: ArrayLike<number> },
): GvpoFromHiddenGrads {
  const g = backwardInto(o, o.logZ, o.gradLogprobs, parts && { rowMax: parts.rowMax, lse: parts.rowLse });
  return { gradHidden: g.gradHidden, gradWeight: g.gradWeight };
}

export function gvpoFromHiddenRef(o: FromHiddenOpts): GvpoFromHiddenResult {
  const f = gvpoFromHiddenForwardF64(o);
  const loss = gvpoLossRef(f.S, f.Sref, o.rewards, o.offsets, o.beta, o.reduction);
  const g = backwardInto(o, f.logZ, loss.gradLogprobs, f.split);
  return {
    ...loss,
    gradHidden: g.gradHidden,
    gradWeight: g.gradWeight,
    policyLogprobs: f.S,
    referenceLogprobs: f.Sref,
    tokenLogprobs: Float32Array.from(f.logprobs),
    logZ: Float32Array.from(f.logZ),
    nonFiniteRows: f.nonFiniteRows,
  };
}
