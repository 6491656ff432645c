// The loss between a fused op's two phases: gvpoLoss over phase 1's S and Sref, with the batch's
// rewards, groups and beta (what the one call computes between them).
import { gvpoLoss } from '../../src/index.js';
import type { Groups, NumbersLike } from '../../src/types.js';

export function lossBetweenPhases(
  phase1: { policyLogprobs: Float64Array; referenceLogprobs: Float64Array },
  batch: { rewards: NumbersLike; groups: Groups; beta: number },
) {
  return gvpoLoss({
    policyLogprobs: phase1.policyLogprobs,
    referenceLogprobs: phase1.referenceLogprobs,
    rewards: batch.rewards,
    groups: batch.groups,
    beta: batch.beta,
  });
}
