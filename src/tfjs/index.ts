// gvpo/tfjs: the GVPO losses as differentiable TensorFlow.js ops, policies, tasks and the trainer.
export { gvpoLossTf, gvpoFromLogitsTf, gvpoFromHiddenTf, tokenLogprobsTf, tokenLogprobsFromHiddenTf } from './ops.js';
export type { GvpoFromHiddenTfArgs, GvpoFromLogitsTfArgs, TokenLogprobsFromHiddenTfArgs } from './ops.js';
export { GVPOTrainer } from './trainer.js';
export { fusedHeadLoss } from './losses.js';
export { TRAINER_DEFAULTS, resolveTrainerOptions } from './trainerOptions.js';
export type {
  Algo,
  ExternalGroup,
  ExternalSampler,
  KlPlacement,
  RewardSpec,
  StepMetrics,
  TermsAblation,
  TrainerConfig,
  TrainerOptions,
} from './trainerOptions.js';
export { hasFusedHead } from './policy.js';
export type { FusedHead, Policy } from './policy.js';
export type { EvalSplit } from './batch.js';
export { CharPolicy, TabularPolicy } from './policies.js';
export type { CharPolicyConfig } from './policies.js';
export { FusedHeadPolicy } from './fusedHeadPolicy.js';
export type { FusedHeadPolicyConfig } from './fusedHeadPolicy.js';
export { TransformerPolicy } from './transformerPolicy.js';
export type { TransformerPolicyConfig } from './transformerPolicy.js';
export { loadPolicy } from './loadPolicy.js';
export { loadTf, MissingPeerError } from './tf.js';
export type { LoadedTf, TfChoice } from './tf.js';
export { AdditionTask } from '../tasks/addition.js';
export { BanditTask, tiltedOptimum, meanKl } from '../tasks/bandit.js';
export { seeded } from '../tasks/task.js';
export type { Task } from '../tasks/task.js';
