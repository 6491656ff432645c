// The defaults of the `gvpo` command: per task (the size of a run and the rates tuned for its
// policy), the supervised warm-up, and the command's own. The trainer's defaults are the
// library's (TRAINER_DEFAULTS in src/tfjs/trainerOptions.ts).
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

/** `gvpo train`: share of fresh groups that carry the task's right answer as one response. */
export const RUN_DEFAULTS = { demonstrations: 0 };

/** The command's own defaults: the TensorFlow.js backend (wasm's XNNPACK kernels run these small
 * policies about 15x faster than the pure-JS cpu backend; without @tensorflow/tfjs-backend-wasm
 * the command says so and runs on cpu), seeds per comparison, and where `gvpo experiment` writes
 * (a folder of its own: never the EXPERIMENTS.md of the app it runs in). */
export const CLI_DEFAULTS = { tf: 'wasm' as const, seeds: 5, algos: 'gvpo,grpo,drgrpo', experimentsOut: 'runs' };
