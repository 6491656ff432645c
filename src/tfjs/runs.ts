// What the `gvpo` command runs: a training run on a shipped task (metrics JSONL, SVG, report),
// the supervised warm-up that makes the addition task's reference policy, and comparisons of
// algorithms over seeds.
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { backendInfo } from '../backend.js';
import { markdownTable, progressLine, type Series, smooth, svgChart } from '../report.js';
import { AdditionTask, ADDITION_VOCAB, EOS, PAD } from '../tasks/addition.js';
import { BanditTask } from '../tasks/bandit.js';
import { seeded, type Task } from '../tasks/task.js';
import { tokenLogprobsTf } from './ops.js';
import { CharPolicy, loadPolicy, type Policy, TabularPolicy } from './policies.js';
import { loadTf, type TfChoice } from './tf.js';
import { type Algo, GVPOTrainer, type StepMetrics } from './trainer.js';

export const CHECKPOINT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'checkpoints', 'addition-warmup.json');

export interface RunOptions {
  task: 'addition' | 'bandit';
  algo: Algo;
  steps: number;
  groupSize: number;
  beta: number;
  seed: number;
  out?: string;
  learningRate?: number;
  promptsPerStep?: number;
  temperature?: number;
  tf?: TfChoice;
  evalPrompts?: number;
  quiet?: boolean;
}

export interface RunSummary {
  algo: Algo;
  seed: number;
  accuracyBefore: number;
  accuracyAfter: number;
  rewardFirst: number;
  rewardLast: number;
  klInitial: number;
  seconds: number;
  metrics: StepMetrics[];
}

async function setup(o: RunOptions): Promise<{ policy: Policy; task: Task; backend: string }> {
  const { tf, backend } = await loadTf(o.tf ?? 'auto');
  if (o.task === 'bandit') {
    const task = new BanditTask();
    const r = seeded(o.seed + 99);
    const init = Float32Array.from({ length: task.prompts * task.vocab }, () => r() * 2 - 1);
    return { policy: new TabularPolicy(tf, task.prompts, task.vocab, init), task, backend };
  }
  if (!existsSync(CHECKPOINT)) throw new Error(`the addition reference policy ${CHECKPOINT} is missing: run \`gvpo warmup\``);
  return { policy: loadPolicy(tf, CHECKPOINT), task: new AdditionTask(), backend };
}

/** One training run; writes metrics.jsonl, plot.svg and report.md to `out` when given. */
export async function trainRun(o: RunOptions): Promise<RunSummary> {
  const { policy, task, backend } = await setup(o);
  const { tf } = await loadTf(o.tf ?? 'auto');
  const metrics: StepMetrics[] = [];
  if (o.out) mkdirSync(o.out, { recursive: true });
  const lines: string[] = [];
  const trainer = new GVPOTrainer({
    tf, policy, task, algo: o.algo, beta: o.beta, groupSize: o.groupSize, seed: o.seed,
    promptsPerStep: o.promptsPerStep ?? (o.task === 'bandit' ? 16 : 32),
    learningRate: o.learningRate ?? (o.task === 'bandit' ? 0.05 : 3e-4),
    // Addition samples below temperature 1: the warm-up policy is over-dispersed at 1, and GVPO
    // reaches the same optimum from any sampling distribution (Theorem 2), with no weights.
    temperature: o.temperature ?? (o.task === 'bandit' ? 1 : 0.6),
    onMetrics: (m) => {
      metrics.push(m);
      lines.push(JSON.stringify(m));
    },
  });
  const evalN = o.evalPrompts ?? 500;
  const accuracyBefore = trainer.evaluate(evalN);
  const t0 = performance.now();
  for (let s = 0; s < o.steps; s++) {
    const m = await trainer.step();
    if (!o.quiet) {
      process.stderr.write(`\r${progressLine(s + 1, o.steps, (performance.now() - t0) / 1000, { reward: m.rewardMean, loss: m.loss, kl: m.klInitial })}`);
    }
  }
  if (!o.quiet) process.stderr.write('\n');
  const accuracyAfter = trainer.evaluate(evalN);
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / Math.max(xs.length, 1);
  const tail = Math.max(1, Math.floor(metrics.length / 10));
  const summary: RunSummary = {
    algo: o.algo, seed: o.seed, accuracyBefore, accuracyAfter,
    rewardFirst: mean(metrics.slice(0, tail).map((m) => m.rewardMean)),
    rewardLast: mean(metrics.slice(-tail).map((m) => m.rewardMean)),
    klInitial: metrics.at(-1)?.klInitial ?? 0,
    seconds: (performance.now() - t0) / 1000,
    metrics,
  };
  if (o.out) {
    writeFileSync(join(o.out, 'metrics.jsonl'), `${lines.join('\n')}\n`);
    writeFileSync(join(o.out, 'plot.svg'), chart([summary]));
    writeFileSync(join(o.out, 'report.md'), report(o, [summary], backend));
  }
  return summary;
}

function chart(runs: RunSummary[]): string {
  const series = (f: (m: StepMetrics) => number, smoothIt: boolean): Series[] =>
    runs.map((r) => {
      const pts = r.metrics.map((m): [number, number] => [m.step, f(m)]);
      return { name: `${r.algo} seed ${r.seed}`, points: smoothIt ? smooth(pts) : pts };
    });
  return svgChart([
    { title: 'reward (mean per step, smoothed)', series: series((m) => m.rewardMean, true) },
    { title: 'KL to the initial policy', series: series((m) => m.klInitial, false) },
  ]);
}

export function summaryTable(runs: RunSummary[]): string {
  return markdownTable(
    ['algo', 'seed', 'exact match before', 'exact match after', 'reward (first 10%)', 'reward (last 10%)', 'KL to initial', 'seconds'],
    runs.map((r) => [r.algo, r.seed, r.accuracyBefore.toFixed(3), r.accuracyAfter.toFixed(3), r.rewardFirst.toFixed(3), r.rewardLast.toFixed(3), r.klInitial.toFixed(4), r.seconds.toFixed(0)]),
  );
}

function report(o: RunOptions, runs: RunSummary[], backend: string): string {
  const info = backendInfo();
  return [
    `# gvpo ${o.task} run`,
    '',
    `Command options: ${JSON.stringify({ ...o, out: undefined })}`,
    `Kernels: ${info.active} (${info.simd ?? 'no SIMD'}, ${info.threads} threads); TensorFlow.js: ${backend}.`,
    '',
    summaryTable(runs),
    '',
    '![reward and KL](plot.svg)',
    '',
  ].join('\n');
}

/** Runs each algorithm over seeds on the same task and writes one table and one chart. */
export async function compareRuns(base: Omit<RunOptions, 'algo' | 'seed'>, algos: Algo[], seeds: number[]): Promise<RunSummary[]> {
  const runs: RunSummary[] = [];
  for (const algo of algos) {
    for (const seed of seeds) {
      if (!base.quiet) process.stderr.write(`${algo} seed ${seed}\n`);
      runs.push(await trainRun({ ...base, algo, seed, out: base.out ? join(base.out, `${algo}-seed${seed}`) : undefined }));
    }
  }
  if (base.out) {
    const { backend } = await loadTf(base.tf ?? 'auto');
    writeFileSync(join(base.out, 'compare.svg'), chart(runs));
    writeFileSync(join(base.out, 'compare.md'), report({ ...base, algo: algos.join(',') as Algo, seed: seeds[0] }, runs, backend).replace('plot.svg', 'compare.svg'));
  }
  return runs;
}

/**
 * The supervised warm-up that makes the addition reference policy: cross-entropy on correct
 * answers (through gvpo's token log-prob kernel), stopped early on purpose so that the policy
 * is right on some prompts only and RL has something to improve.
 */
export async function warmup(out: string, steps = 300, seed = 1, tfChoice: TfChoice = 'auto'): Promise<number> {
  const { tf } = await loadTf(tfChoice);
  const task = new AdditionTask();
  const policy = new CharPolicy(tf, { vocab: ADDITION_VOCAB, window: 8, hidden: 128, maxTokens: task.maxTokens, eos: EOS, pad: PAD }, seed);
  const opt = tf.train.adam(3e-3);
  const rand = seeded(seed);
  const T = task.maxTokens;
  for (let s = 0; s < steps; s++) {
    const prompts = task.samplePrompts(128, rand);
    const targets = new Int32Array(prompts.length * T);
    const mask = new Float32Array(prompts.length * T);
    prompts.forEach((p, n) => task.answer(p).forEach((tok, t) => {
      targets[n * T + t] = tok;
      mask[n * T + t] = 1;
    }));
    const m = tf.tensor1d(mask);
    opt.minimize(() => tokenLogprobsTf(tf, policy.logits(prompts, targets), targets).mul(m).sum().div(m.sum()).neg() as never, false, policy.variables);
    m.dispose();
    if (s % 50 === 0) process.stderr.write(`\rwarm-up step ${s}/${steps}`);
  }
  process.stderr.write('\n');
  mkdirSync(dirname(out), { recursive: true });
  policy.save(out);
  const trainer = new GVPOTrainer({ tf, policy, task });
  return trainer.evaluate(500);
}
