// The defaults of the `gvpo` command: per task (the size of a run and the rates tuned for its
// policy), the supervised warm-up, and the command's own. The trainer's defaults are the
// library's (TRAINER_DEFAULTS in src/tfjs/trainerOptions.ts).
import { TRAINER_DEFAULTS } from '../tfjs/trainerOptions.js';

export type TaskName = 'addition' | 'bandit';

/** What a task changes: its size of run and the learning rate tuned for its policy. */
export const TASK_DEFAULTS: Record<
  TaskName,
  {
    steps: number;
    promptsPerStep: number;
    groupSize: number;
    learningRate: number;
    temperature: number;
    evalEvery: number;
    evalPrompts: number;
  }
> = {
  // The main job (`npm start` is `gvpo train` with these): from the shipped checkpoint, 200 steps
  // of 16 prompts x 8 responses sampled at temperature 1 (on-policy), Adam 1e-4. Measured on the
  // 2-core machine (AMD EPYC, avx512bf16, the final kernels): 26-28 s quiet, 57-76 s at load 7 to
  // 15. On the test half of the held-out pairs (an AMD EPYC Zen 3, avx2): held-out greedy accuracy
  // 0.574 -> 0.898, 0.934, 0.928, 0.932, 0.926 (seeds 1 to 5) in 56-66 s.
  // On 40-step runs every rate from 1e-5 to 3e-4 learned and 1e-3 collapsed GVPO and Dr.GRPO;
  // 1e-4 is inside the range that learned fastest for all three.
  addition: {
    steps: 200,
    promptsPerStep: 16,
    groupSize: 8,
    learningRate: 1e-4,
    temperature: 1,
    evalEvery: 10,
    evalPrompts: 500,
  },
  bandit: {
    steps: 100,
    promptsPerStep: 16,
    groupSize: TRAINER_DEFAULTS.groupSize,
    learningRate: 0.05,
    temperature: 1,
    evalEvery: 10,
    evalPrompts: TRAINER_DEFAULTS.evalPrompts,
  },
};

/**
 * What the addition main job gives (seeds 1 to 5 from the shipped checkpoint, 500 held-out
 * prompts of the test half, avx2): report.md sets each run against it.
 */
export const ADDITION_MEASURED = {
  accuracyBefore: 0.574,
  accuracyAfter: [0.898, 0.934, 0.928, 0.932, 0.926],
  rewardBefore: 0.63,
  rewardAfter: [0.802, 0.814, 0.834, 0.822, 0.83],
};

/** `gvpo warmup`: where it writes, unless told (the recipe's own defaults are the library's WARMUP_DEFAULTS). */
export const WARMUP_OUT = 'runs/addition-warmup.json';

/** `gvpo train`: shares of fresh groups that carry the task's right answer as one response, or
 *  that a fixed sampler (the starting policy, frozen) draws. */
export const RUN_DEFAULTS = { demonstrations: 0, fixedSampler: 0 };

/** The command's own defaults: the TensorFlow.js backend (wasm's XNNPACK kernels run these small
 * policies about 15x faster than the pure-JS cpu backend; without @tensorflow/tfjs-backend-wasm
 * the command says so and runs on cpu), seeds per comparison, and where `gvpo experiment` writes
 * (a folder of its own: never the EXPERIMENTS.md of the app it runs in). */
export const CLI_DEFAULTS = { tf: 'wasm' as const, seeds: 5, algos: 'gvpo,grpo,drgrpo', experimentsOut: 'runs' };
