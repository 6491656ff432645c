// gvpoLoss: the GVPO loss over sequence log-probs, dL/dS, residuals and the diagnostic terms.
import { gvpoLossRef } from '../reference/gvpoLoss.js';
import type { GvpoLossArgs, GvpoLossResult } from '../types.js';
import { numbersOf, plain, rangeError, snapshot } from '../validate.js';
import { normalizeLoss } from './normalize.js';
import { runAsync, runSync } from './run.js';

const FN = 'gvpoLoss';

function normalize(args: unknown) {
  const a = snapshot(FN, args, ['policyLogprobs', 'referenceLogprobs', 'rewards', 'groups', 'beta', 'reduction']);
  const policyLogprobs = numbersOf(FN, 'policyLogprobs', a.policyLogprobs);
  const N = policyLogprobs.length;
  if (N === 0) rangeError(FN, 'policyLogprobs', 'a non-empty array', 'length 0');
  const referenceLogprobs = numbersOf(FN, 'referenceLogprobs', a.referenceLogprobs, N, 'policyLogprobs.length');
  return plain({ policyLogprobs, referenceLogprobs, ...normalizeLoss(FN, a, N) });
}

type Norm = ReturnType<typeof normalize>;
const reference = (o: Norm) =>
  gvpoLossRef(o.policyLogprobs, o.referenceLogprobs, o.rewards, o.offsets, o.beta, o.reduction);

/** The GVPO loss over sequence log-probs, with dL/dS, the residuals and the terms (docs/DESIGN.md, "The math"). */
export function gvpoLoss(args: GvpoLossArgs): GvpoLossResult {
  const o = normalize(args);
  return runSync(FN, o, () => reference(o));
}

export async function gvpoLossAsync(args: GvpoLossArgs): Promise<GvpoLossResult> {
  const o = normalize(args);
  return runAsync(FN, o, () => reference(o));
}
