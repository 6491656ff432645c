// tokenLogprobsFromHidden: the fused LM head for any loss. Per-token log-probs l[r] (and, on
// request, the entropy H[r]) of the logits z = hidden * weight^T, never materialized (the native
// engine computes them one tile at a time); its backward takes the upstream gradients of any loss
// on l (and H) and returns dL/dhidden and dL/dweight (into the caller's gradWeight, or added to it).
import {
  tokenLogprobsFromHiddenBackwardRef,
  tokenLogprobsFromHiddenRef,
} from '../reference/tokenLogprobsFromHidden.js';
import type {
  TokenLogprobsFromHiddenArgs,
  TokenLogprobsFromHiddenBackwardArgs,
  TokenLogprobsFromHiddenGrads,
  TokenLogprobsFromHiddenResult,
} from '../types.js';
import { keepParts, partsOf, withParts } from './logZParts.js';
import { normalizeHiddenRows, normalizeHiddenRowsBackward } from './normalize.js';
import { runAsync, runSync } from './run.js';

const FN = 'tokenLogprobsFromHidden';
const BFN = 'tokenLogprobsFromHiddenBackward';

/** l = z[y]/tau - logZ <= 0 per row (and H >= 0 with `entropy: true`), z = hidden * weight^T. */
export function tokenLogprobsFromHidden(args: TokenLogprobsFromHiddenArgs): TokenLogprobsFromHiddenResult {
  const o = normalizeHiddenRows(args);
  return keepParts(
    runSync(FN, { ...o, split: true }, () => tokenLogprobsFromHiddenRef(o)),
    o.temperature,
  );
}

export async function tokenLogprobsFromHiddenAsync(
  args: TokenLogprobsFromHiddenArgs,
): Promise<TokenLogprobsFromHiddenResult> {
  const o = normalizeHiddenRows(args);
  return keepParts(await runAsync(FN, { ...o, split: true }, () => tokenLogprobsFromHiddenRef(o)), o.temperature);
}

/** dL/dhidden and dL/dweight of any loss with upstream dL/dl (gradTokenLogprobs) and dL/dH
 *  (gradEntropy): dL/dz = (gl ([v = y] - p) - gH p (log p + H)) / tau. Exact from the forward's
 *  own logZ array (logZParts.ts). */
export function tokenLogprobsFromHiddenBackward(
  args: TokenLogprobsFromHiddenBackwardArgs,
): TokenLogprobsFromHiddenGrads {
  const o = normalizeHiddenRowsBackward(args);
  const parts = partsOf(o.logZ, o.temperature);
  return runSync(BFN, withParts(o, parts), () => tokenLogprobsFromHiddenBackwardRef(o, parts));
}

export async function tokenLogprobsFromHiddenBackwardAsync(
  args: TokenLogprobsFromHiddenBackwardArgs,
): Promise<TokenLogprobsFromHiddenGrads> {
  const o = normalizeHiddenRowsBackward(args);
  const parts = partsOf(o.logZ, o.temperature);
  return runAsync(BFN, withParts(o, parts), () => tokenLogprobsFromHiddenBackwardRef(o, parts));
}
