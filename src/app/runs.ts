// What the `gvpo` command runs: a training run on a shipped task (metrics JSONL, SVG chart,
// report.md), comparisons of algorithms over seeds, and the supervised warm-up that makes the
// addition task's starting policy.
import { appendFileSync, existsSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { makeDirs } from './dirs.js';
import { jsonLine, markdownTable, progressLine, secondsText } from './report.js';
import { AdditionTask } from '../tasks/addition.js';
import { BanditTask } from '../tasks/bandit.js';
import { seeded, type Task } from '../tasks/task.js';
import { CLI_DEFAULTS } from './defaults.js';
import { CHECKPOINT, type RunOptions, type RunSummary } from './runOptions.js';
import { loadPolicy } from '../tfjs/loadPolicy.js';
import { TabularPolicy } from '../tfjs/policies.js';
import type { Policy } from '../tfjs/policy.js';
import { logprobsOf, packBatch } from '../tfjs/batch.js';
import { compareReport, runReport, summaryCells, summaryHeader } from './runReport.js';
import { loadTf, type TfChoice } from '../tfjs/tf.js';
import type * as TF from '@tensorflow/tfjs';
import { GVPOTrainer } from '../tfjs/trainer.js';
import {
  ALGO_OPTIONS,
  type Algo,
  type ExternalSampler,
  type StepMetrics,
  type TrainerOptions,
} from '../tfjs/trainerOptions.js';
import { warmup as runWarmup, WARMUP_DEFAULTS, type WarmupResult } from '../tfjs/warmup.js';

type TfModule = typeof TF;

/** The task and its starting policy: a random tabular one for the bandit, a checkpoint for addition. */
export async function setup(o: RunOptions): Promise<{ policy: Policy; task: Task; backend: string }> {
  const { tf, backend } = await loadTf(o.tf);
  if (o.task === 'bandit') {
    const task = new BanditTask();
    if (o.init) return { policy: loadPolicy(tf, o.init), task, backend };
    const r = seeded(o.seed + 99);
    const init = Float32Array.from({ length: task.prompts * task.vocab }, () => r() * 2 - 1);
    return { policy: new TabularPolicy(tf, task.prompts, task.vocab, init), task, backend };
  }
  const path = o.init ?? CHECKPOINT;
  if (!existsSync(path))
    throw new Error(`the addition starting policy ${path} is missing: run \`gvpo warmup --out ${path}\``);
  return { policy: loadPolicy(tf, path), task: new AdditionTask(), backend };
}

/**
 * Demonstrations: the task's right answer as one of the k responses, the rest sampled by the
 * policy. The solver gives its answer with probability 1 (token log-probs 0), which the
 * baselines' importance ratios use; the sampled responses are the policy's own.
 */
function demonstrationSampler(task: Task, policy: Policy, temperature: number): ExternalSampler {
  return (prompt, k, rand) => {
    const answer = task.answer!(prompt);
    const responses = [
      answer,
      ...policy.sample(
        Array.from({ length: k - 1 }, () => prompt),
        temperature,
        rand,
      ),
    ];
    return { responses, tokenLogprobs: responses.map((_, i) => (i === 0 ? answer.map(() => 0) : null)) };
  };
}

/**
 * A fixed sampler: the starting policy, frozen, at the sampling temperature; its token log-probs
 * are computed for the responses it draws, so the baselines' ratios are the correct ones.
 */
function fixedSampler(tf: TfModule, policy: Policy, temperature: number): ExternalSampler {
  const T = policy.maxTokens;
  return (prompt, k, rand) => {
    const responses = policy.sample(
      Array.from({ length: k }, () => prompt),
      temperature,
      rand,
    );
    const packed = packBatch(
      [{ prompt, responses, rewards: new Array(k).fill(0), source: 'external', temperature }],
      k,
      T,
    );
    const lp = logprobsOf(tf, policy, packed).token;
    return { responses, tokenLogprobs: responses.map((r, i) => lp.subarray(i * T, i * T + r.length)) };
  };
}

/** The external sampler of a run's options, and the share of fresh groups it draws. */
function externalSampler(
  tf: TfModule,
  o: RunOptions,
  task: Task,
  policy: Policy,
): { externalResponses?: ExternalSampler; externalRatio?: number } {
  if (o.demonstrations > 0 && o.fixedSampler > 0)
    throw new RangeError('a run takes demonstrations or a fixed sampler, not both');
  if (o.demonstrations > 0)
    return { externalResponses: demonstrationSampler(task, policy, o.temperature), externalRatio: o.demonstrations };
  if (o.fixedSampler > 0)
    return { externalResponses: fixedSampler(tf, policy.clone(), o.temperature), externalRatio: o.fixedSampler };
  return {};
}

/** The options of a run that its algorithm reads: the trainer refuses one that it would not
 *  (a comparison's runs share one set of options, each algorithm taking its own). */
function algoOptions(o: RunOptions): Partial<TrainerOptions> {
  const all = { clip: o.clip, klCoef: o.klCoef, klIn: o.klIn, importanceCap: o.importanceCap, terms: o.terms };
  return Object.fromEntries(
    Object.entries(all).filter(([key]) => ALGO_OPTIONS[key as keyof typeof ALGO_OPTIONS].includes(o.algo)),
  );
}

/** The progress bar or line of a step; `accuracy` is the last evaluation's, shown until the next. */
function showProgress(o: RunOptions, m: StepMetrics, t0: number, accuracy: number | undefined): void {
  const fields = {
    reward: m.rewardMean,
    loss: m.loss,
    'kl(init)': m.klInitial,
    ...(accuracy === undefined ? {} : { accuracy }),
  };
  const line = progressLine(m.step, o.steps, (performance.now() - t0) / 1000, fields);
  if (o.progress === 'bar')
    process.stderr.write(`\r${line}\x1b[K`); // the rest of a longer line cleared
  else if (o.progress === 'lines' && (m.step % Math.max(1, Math.round(o.steps / 10)) === 0 || m.step === o.steps))
    process.stderr.write(`${line}\n`);
}

/** One training run; writes metrics.jsonl, chart.svg and report.md to `o.out` when given. */
export async function trainRun(o: RunOptions): Promise<RunSummary> {
  const { policy, task, backend } = await setup(o);
  const { tf } = await loadTf(o.tf);
  const metrics: StepMetrics[] = [];
  const trainer = new GVPOTrainer({
    tf,
    policy,
    task,
    algo: o.algo,
    beta: o.beta,
    groupSize: o.groupSize,
    seed: o.seed,
    promptsPerStep: o.promptsPerStep,
    miniBatches: o.miniBatches,
    epochs: o.epochs,
    learningRate: o.learningRate,
    temperature: o.temperature,
    reference: o.reference,
    replay: o.replayRatio > 0 ? { ratio: o.replayRatio, capacity: o.replayCapacity } : undefined,
    ...externalSampler(tf, o, task, policy),
    ...algoOptions(o),
    evalEvery: o.evalEvery,
    evalPrompts: o.evalPrompts,
    evalSplit: o.evalSplit,
    onMetrics: (m) => {
      metrics.push(m);
      // as the run goes: a run stopped early keeps its steps
      if (o.out) appendFileSync(join(o.out, 'metrics.jsonl'), jsonLine(m));
    },
  });
  const accuracyBefore = trainer.evaluate(o.evalPrompts);
  const evalRewardBefore = trainer.evaluateReward(o.evalPrompts);
  if (o.out) {
    // this run's files only: a previous run's report and chart would read as this one's
    makeDirs(o.out);
    for (const f of ['report.md', 'chart.svg']) rmSync(join(o.out, f), { force: true });
    writeFileSync(join(o.out, 'metrics.jsonl'), '');
  }
  const t0 = performance.now();
  let accuracy: number | undefined = accuracyBefore;
  for (let s = 0; s < o.steps; s++) {
    const m = await trainer.step();
    accuracy = m.accuracy ?? accuracy;
    showProgress(o, m, t0, accuracy);
  }
  if (o.progress === 'bar') process.stderr.write('\n');
  const last = metrics.at(-1)!;
  const accuracyAfter = last.accuracy ?? trainer.evaluate(o.evalPrompts);
  const evalRewardAfter = last.evalReward ?? trainer.evaluateReward(o.evalPrompts);
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / Math.max(xs.length, 1);
  const tail = Math.max(1, Math.floor(metrics.length / 10));
  const summary: RunSummary = {
    algo: o.algo,
    seed: o.seed,
    accuracyBefore,
    accuracyAfter,
    evalRewardBefore,
    evalRewardAfter,
    zeroVariance: mean(metrics.map((m) => m.zeroVarianceGroups)),
    rewardFirst: mean(metrics.slice(0, tail).map((m) => m.rewardMean)),
    rewardLast: mean(metrics.slice(-tail).map((m) => m.rewardMean)),
    klInitial: last.klInitial,
    seconds: (performance.now() - t0) / 1000,
    metrics,
  };
  if (o.out) {
    const r = runReport(o, [summary], backend);
    writeFileSync(join(o.out, 'chart.svg'), r.svg);
    writeFileSync(join(o.out, 'report.md'), r.markdown);
  }
  return summary;
}

/** Runs each algorithm over seeds with the same options; one report.md and chart.svg for all. */
export async function compareRuns(base: RunOptions, algos: Algo[], seeds: number[]): Promise<RunSummary[]> {
  const runs: RunSummary[] = [];
  for (const algo of algos) {
    for (const seed of seeds) {
      if (base.progress !== 'none') process.stderr.write(`${algo} seed ${seed}\n`);
      runs.push(
        await trainRun({ ...base, algo, seed, out: base.out ? join(base.out, `${algo}-seed${seed}`) : undefined }),
      );
    }
  }
  if (base.out) {
    const { backend } = await loadTf(base.tf);
    const r = compareReport(base, algos, seeds, runs, backend);
    writeFileSync(join(base.out, 'chart.svg'), r.svg);
    writeFileSync(join(base.out, 'report.md'), r.markdown);
  }
  return runs;
}

export function summaryTable(task: RunOptions['task'], runs: RunSummary[]): string {
  return markdownTable(
    ['algo', 'seed', ...summaryHeader(task), 'seconds'],
    runs.map((r) => [r.algo, r.seed, ...summaryCells(r), secondsText(r.seconds)]),
  );
}

/** The supervised warm-up (the library's warmup()) on the chosen TensorFlow.js, with progress on a terminal. */
export async function warmup(
  out: string,
  steps = WARMUP_DEFAULTS.steps,
  seed = WARMUP_DEFAULTS.seed,
  tfChoice: TfChoice = CLI_DEFAULTS.tf,
  width = WARMUP_DEFAULTS.width,
): Promise<WarmupResult> {
  const { tf } = await loadTf(tfChoice);
  const r = await runWarmup({
    tf,
    out,
    steps,
    seed,
    width,
    onProgress: (s, loss) => {
      if (process.stderr.isTTY) process.stderr.write(`\rwarm-up step ${s}/${steps}, cross-entropy ${loss.toFixed(3)}`);
    },
  });
  if (process.stderr.isTTY) process.stderr.write('\n');
  return r;
}

/**
 * Loads TensorFlow.js and makes its first tensor at once, with tfjs's own "install tfjs-node"
 * banner filtered out, so that it never lands in the middle of a progress bar; returns the
 * backend's name. Progress output names the backend instead.
 */
export async function quietTf(choice: TfChoice): Promise<string> {
  const warn = console.warn;
  console.warn = (...args: unknown[]) => {
    if (!args.some((a) => typeof a === 'string' && a.includes('tfjs-node'))) warn(...args);
  };
  try {
    const { tf, backend } = await loadTf(choice);
    tf.tensor1d([0]).dispose();
    return backend;
  } finally {
    console.warn = warn;
  }
}
