// gvpo: the GVPO loss and its gradient, fused (docs/DESIGN.md, "The public surface"). The
// public surface, nothing else.
export {
  tokenLogprobs,
  tokenLogprobsAsync,
  tokenLogprobsBackward,
  tokenLogprobsBackwardAsync,
} from './ops/tokenLogprobs.js';
export { sequenceLogprobs, sequenceLogprobsAsync } from './ops/sequenceLogprobs.js';
export { groupCenter, groupCenterAsync } from './ops/groupCenter.js';
export { gvpoLoss, gvpoLossAsync } from './ops/gvpoLoss.js';
export {
  gvpoFromLogits,
  gvpoFromLogitsAsync,
  gvpoForward,
  gvpoForwardAsync,
  gvpoBackward,
  gvpoBackwardAsync,
} from './ops/gvpoFromLogits.js';
export {
  gvpoFromHidden,
  gvpoFromHiddenAsync,
  gvpoFromHiddenForward,
  gvpoFromHiddenForwardAsync,
  gvpoFromHiddenBackward,
  gvpoFromHiddenBackwardAsync,
} from './ops/gvpoFromHidden.js';
export {
  tokenLogprobsFromHidden,
  tokenLogprobsFromHiddenAsync,
  tokenLogprobsFromHiddenBackward,
  tokenLogprobsFromHiddenBackwardAsync,
} from './ops/tokenLogprobsFromHidden.js';
export { backendInfo } from './backend.js';
export { toHalf, fromHalf } from './ops/half.js';
export type * from './types.js';
