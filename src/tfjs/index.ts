// gvpo/tfjs: the GVPO losses as differentiable TensorFlow.js ops, policies, tasks and the trainer.
export { gvpoLossTf, gvpoFromLogitsTf, gvpoFromHiddenTf, tokenLogprobsTf } from './ops.js';
export { FusedHeadPolicy, hasFusedHead } from './fusedHeadPolicy.js';
export type { FusedHead, FusedHeadPolicyConfig } from './fusedHeadPolicy.js';
export { TransformerPolicy } from './transformerPolicy.js';
export type { TransformerPolicyConfig } from './transformerPolicy.js';
export { GVPOTrainer } from './trainer.js';
export type { Algo, RewardSpec, StepMetrics, TrainerOptions } from './trainer.js';
export { CharPolicy, TabularPolicy, loadPolicy } from './policies.js';
export type { CharPolicyConfig, Policy } from './policies.js';
export { loadTf } from './tf.js';
export type { LoadedTf, TfChoice } from './tf.js';
export { AdditionTask } from '../tasks/addition.js';
export { BanditTask, tiltedOptimum, meanKl } from '../tasks/bandit.js';
export type { Task } from '../tasks/task.js';
export { trainRun, compareRuns, warmup } from './runs.js';
