// The options of a run of the `gvpo` command (train, compare, experiments), all resolved, and what
// a run returns.
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TfChoice } from '../tfjs/tf.js';
import { type Algo, type StepMetrics, TRAINER_DEFAULTS, type TrainerConfig } from '../tfjs/trainerOptions.js';
import { CLI_DEFAULTS, RUN_DEFAULTS, TASK_DEFAULTS, type TaskName } from './defaults.js';

export const CHECKPOINT = join(
  dirname(fileURLToPath(import.meta.url)),
  '..',
  '..',
  'checkpoints',
  'addition-warmup.json',
);

/** The trainer's options a run sets (the trainer checks them; the command's flags parse them). */
type TrainerKnobs = Pick<
  TrainerConfig,
  | 'algo'
  | 'beta'
  | 'groupSize'
  | 'promptsPerStep'
  | 'miniBatches'
  | 'epochs'
  | 'learningRate'
  | 'temperature'
  | 'reference'
  | 'replayRatio'
  | 'replayCapacity'
  | 'clip'
  | 'klCoef'
  | 'klIn'
  | 'importanceCap'
  | 'terms'
  | 'seed'
  | 'evalEvery'
  | 'evalPrompts'
  | 'evalSplit'
>;

/** Every option of a run, all resolved (resolveRunOptions fills what was not given). */
export interface RunOptions extends TrainerKnobs {
  task: TaskName;
  steps: number;
  /** Share of fresh groups whose first response is the task's right answer (a demonstration), the rest sampled. */
  demonstrations: number;
  /** Share of fresh groups drawn by a fixed sampler: the starting policy, frozen, at the sampling temperature. */
  fixedSampler: number;
  /** Starting policy (addition: the shipped warm-up checkpoint). */
  init?: string;
  out?: string;
  tf: TfChoice;
  progress: 'bar' | 'lines' | 'none';
}

export function resolveRunOptions(o: Partial<RunOptions> & { task?: TaskName }): RunOptions {
  const task = o.task ?? 'addition';
  const t = TASK_DEFAULTS[task];
  const d = TRAINER_DEFAULTS;
  const pick = <K extends keyof RunOptions>(key: K, fallback: RunOptions[K]): RunOptions[K] =>
    (o[key] === undefined ? fallback : o[key]) as RunOptions[K];
  return {
    task,
    algo: pick('algo', d.algo),
    steps: pick('steps', t.steps),
    groupSize: pick('groupSize', t.groupSize),
    beta: pick('beta', d.beta),
    seed: pick('seed', d.seed),
    promptsPerStep: pick('promptsPerStep', t.promptsPerStep),
    miniBatches: pick('miniBatches', d.miniBatches),
    epochs: pick('epochs', d.epochs),
    learningRate: pick('learningRate', t.learningRate),
    temperature: pick('temperature', t.temperature),
    reference: pick('reference', d.reference),
    replayRatio: pick('replayRatio', d.replayRatio),
    replayCapacity: pick('replayCapacity', d.replayCapacity),
    demonstrations: pick('demonstrations', RUN_DEFAULTS.demonstrations),
    fixedSampler: pick('fixedSampler', RUN_DEFAULTS.fixedSampler),
    clip: pick('clip', d.clip),
    klCoef: pick('klCoef', d.klCoef),
    klIn: pick('klIn', d.klIn),
    importanceCap: pick('importanceCap', d.importanceCap),
    terms: pick('terms', d.terms),
    evalEvery: pick('evalEvery', t.evalEvery),
    evalPrompts: pick('evalPrompts', t.evalPrompts),
    evalSplit: pick('evalSplit', d.evalSplit),
    init: o.init,
    out: o.out,
    tf: pick('tf', CLI_DEFAULTS.tf),
    progress: pick('progress', 'none'),
  };
}

export interface RunSummary {
  algo: Algo;
  seed: number;
  /** Greedy exact-match accuracy on the evaluation prompts (held-out for addition; its validation
   *  prompts in a tuning run), before and after. */
  accuracyBefore: number;
  accuracyAfter: number;
  /** Reward sampled at temperature 1 on the same prompts, before and after. */
  evalRewardBefore: number;
  evalRewardAfter: number;
  /** Share of groups with zero reward variance, mean over the run's steps. */
  zeroVariance: number;
  rewardFirst: number;
  rewardLast: number;
  klInitial: number;
  seconds: number;
  metrics: StepMetrics[];
}

/** 'held-out ' where the evaluation prompts are kept out of training (addition); the bandit's
 *  four prompts are the ones it trains on. */
export function heldOut(task: TaskName): string {
  return task === 'addition' ? 'held-out ' : '';
}
