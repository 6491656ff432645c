// Every default of the trainer and of the `gvpo` command, in one place. The trainer's follow the
// official GVPO recipe (jszkc/GVPO, run_qwen2-7b_math_gvpo.sh): beta 0.1, k = 4 responses per
// prompt, the batch split into 4 mini-batches of whole groups (one optimizer update each, so the
// last three run against a pi_theta' that is already stale), one epoch, the previous step's policy
// as reference, rewards centred by the group mean only.
import type { Algo, GvpoTerms } from './trainer.js';

export const TRAINER_DEFAULTS = {
  algo: 'gvpo' as Algo,
  beta: 0.1,
  groupSize: 4,
  promptsPerStep: 8,
  miniBatches: 4,
  epochs: 1,
  learningRate: 1e-3,
  temperature: 1,
  reference: 'previous' as 'previous' | 'frozen',
  replayRatio: 0,
  replayCapacity: 256,
  externalRatio: 1,
  /** `gvpo train`: share of fresh groups that carry the task's right answer as one response. */
  demonstrations: 0,
  /** GRPO / Dr.GRPO: PPO clip range and the k3 KL coefficient to pi_theta'. */
  clip: 0.2,
  klCoef: 0,
  terms: 'all' as GvpoTerms,
  seed: 1,
  /** Greedy accuracy every N steps (0: only before and after the run). */
  evalEvery: 0,
  evalPrompts: 200,
};

export type TaskName = 'addition' | 'bandit';

/** What a task changes: its size of run and the learning rate tuned for its policy. */
export const TASK_DEFAULTS: Record<TaskName, { steps: number; promptsPerStep: number; learningRate: number; temperature: number; evalEvery: number }> = {
  // Sampled below temperature 1: the warm-up policy is over-dispersed at 1, and GVPO reaches the
  // same optimum from any sampling distribution that covers the reference's support.
  // 1e-4: with 4 updates per sampled batch, 3e-4 lowered the policy's own reward for GVPO, GRPO
  // and Dr.GRPO alike in the text experiment's tuning (EXPERIMENTS.md, section 2).
  addition: { steps: 60, promptsPerStep: 32, learningRate: 1e-4, temperature: 0.6, evalEvery: 10 },
  bandit: { steps: 100, promptsPerStep: 16, learningRate: 0.05, temperature: 1, evalEvery: 10 },
};

/** The supervised warm-up that makes an addition starting policy. */
export const WARMUP_DEFAULTS = { steps: 300, hidden: 128, seed: 1, out: 'runs/addition-warmup.json' };

/** The command's own defaults: the TensorFlow.js backend (wasm's XNNPACK kernels run these small
 * policies about 15x faster than the pure-JS cpu backend) and seeds per comparison. */
export const CLI_DEFAULTS = { tf: 'wasm' as const, seeds: 5, algos: 'gvpo,grpo,drgrpo' };
