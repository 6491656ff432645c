// What the experiments share: the context they run in, the text task's base settings (full and
// quick), runs over seeds, the learning-rate grid tuned per algorithm, and formatting.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { markdownTable } from '../report.js';
import { resolveRunOptions, type RunOptions, type RunSummary } from '../runOptions.js';
import { trainRun } from '../runs.js';
import type { TfChoice } from '../../tfjs/tf.js';
import type { Algo } from '../../tfjs/trainerOptions.js';
import { fmtCi, meanCi } from '../stats.js';

export interface ExperimentContext {
  quick: boolean;
  /** Seeds per configuration (default 5; 2 with --quick). */
  seeds?: number;
  /** Folder receiving EXPERIMENTS.md and experiments/<name>/. */
  out: string;
  tf: TfChoice;
  progress: 'bar' | 'lines' | 'none';
}

export interface ExperimentResult {
  /** The section's body (markdown); charts are referenced as experiments/<name>/<file>. */
  markdown: string;
  charts: Record<string, string>;
}

export interface Experiment {
  title: string;
  run(ctx: ExperimentContext, log: (line: string) => void): Promise<ExperimentResult>;
}

export function seedsOf(ctx: ExperimentContext): number[] {
  return Array.from({ length: ctx.seeds ?? (ctx.quick ? 2 : 5) }, (_, i) => i + 1);
}

/** The exact command that re-makes a section. */
export function commandOf(name: string, ctx: ExperimentContext): string {
  return `gvpo experiment ${name}${ctx.quick ? ' --quick' : ''}${ctx.seeds ? ` --seeds ${ctx.seeds}` : ''} --tf ${ctx.tf}`;
}

/**
 * The text task's base run: addition from the shipped warm-up checkpoint, the official recipe's
 * structure (4 mini-batches of whole groups per step, previous-step reference, beta 0.1), sampled
 * at temperature 1 so that every fresh group is on-policy.
 */
export function textBase(ctx: ExperimentContext, over: Partial<RunOptions> = {}): RunOptions {
  const size = ctx.quick
    ? { steps: 3, promptsPerStep: 4, groupSize: 4, miniBatches: 2, evalEvery: 0, evalPrompts: 20 }
    : { steps: 60, promptsPerStep: 16, groupSize: 8, miniBatches: 4, evalEvery: 15, evalPrompts: 200 };
  return resolveRunOptions({ task: 'addition', temperature: 1, beta: 0.1, epochs: 1, tf: ctx.tf, progress: 'none', ...size, ...over });
}

export const TEXT_LR_GRID = [1e-4, 3e-4];
export const TUNING_SEEDS = [101, 102];

/** Runs `o` once per seed. */
export async function overSeeds(o: RunOptions, seeds: number[], log: (l: string) => void): Promise<RunSummary[]> {
  const out: RunSummary[] = [];
  for (const seed of seeds) {
    out.push(await trainRun({ ...o, seed }));
    const r = out.at(-1)!;
    log(`${o.algo} lr ${o.learningRate} seed ${seed}: accuracy ${r.accuracyBefore.toFixed(3)} -> ${r.accuracyAfter.toFixed(3)}, reward ${r.rewardFirst.toFixed(3)} -> ${r.rewardLast.toFixed(3)} (${r.seconds.toFixed(1)} s)`);
  }
  return out;
}

/**
 * Mean reward of the policy's own samples over the last fifth of a run's steps: E_pi[R] at
 * temperature 1 (replayed and demonstration groups left out).
 */
export function finalReward(r: RunSummary): number {
  const tail = r.metrics.slice(-Math.max(1, Math.floor(r.metrics.length / 5)));
  return tail.reduce((a, m) => a + m.rewardPolicy, 0) / tail.length;
}

export interface Tuned {
  lr: Record<string, number>;
  table: string;
}

/**
 * The text task's learning rate per algorithm: each algorithm runs on the same grid at the tuning
 * seeds (not the reported ones) and keeps the rate with the highest final sampled reward. The
 * choice is stored in experiments/text/tuned.json so that the other text experiments reuse it.
 */
export async function tuneText(ctx: ExperimentContext, algos: Algo[], log: (l: string) => void, variant?: { tag: string; over: Partial<RunOptions> }): Promise<Tuned> {
  const path = join(ctx.out, 'experiments', 'text', `tuned${ctx.quick ? '-quick' : ''}.json`);
  const stored: Tuned = existsSync(path) ? JSON.parse(readFileSync(path, 'utf8')) as Tuned : { lr: {}, table: '' };
  const key = (a: Algo) => `${a}${variant?.tag ?? ''}`;
  const missing = algos.filter((a) => stored.lr[key(a)] === undefined);
  if (!missing.length) return stored;
  const grid = ctx.quick ? TEXT_LR_GRID.slice(0, 1) : TEXT_LR_GRID;
  const seeds = ctx.quick ? TUNING_SEEDS.slice(0, 1) : TUNING_SEEDS;
  const rows: Array<Array<string | number>> = [];
  for (const algo of missing) {
    let best = { lr: grid[0], score: -Infinity };
    for (const lr of grid) {
      const runs = await overSeeds(textBase(ctx, { ...variant?.over, algo, learningRate: lr }), seeds, log);
      const score = meanCi(runs.map(finalReward)).mean;
      rows.push([key(algo), lr, score.toFixed(3), meanCi(runs.map((r) => r.accuracyAfter)).mean.toFixed(3)]);
      if (score > best.score) best = { lr, score };
    }
    stored.lr[key(algo)] = best.lr;
    rows.push([`**${key(algo)} keeps ${best.lr}**`, '', '', '']);
  }
  stored.table = [stored.table, markdownTable(['algorithm', 'learning rate', `final sampled reward (mean of seeds ${seeds.join(', ')})`, 'greedy accuracy after'], rows)].filter(Boolean).join('\n\n');
  mkdirSync(join(ctx.out, 'experiments', 'text'), { recursive: true });
  writeFileSync(path, JSON.stringify(stored, null, 2));
  return stored;
}

/** One row of a results table: accuracy after, its change, final sampled reward, KL to initial. */
export function resultCells(runs: RunSummary[]): string[] {
  return [
    fmtCi(meanCi(runs.map((r) => r.accuracyAfter))),
    fmtCi(meanCi(runs.map((r) => r.accuracyAfter - r.accuracyBefore))),
    fmtCi(meanCi(runs.map(finalReward))),
    fmtCi(meanCi(runs.map((r) => r.klInitial)), 4),
  ];
}
export const RESULT_HEAD = ['greedy accuracy after', 'change in greedy accuracy', "reward of the policy's samples, last 20% of steps", 'KL to initial (last step)'];

export function settingsLine(o: RunOptions, seeds: number[]): string {
  return `Settings: task \`${o.task}\` from \`checkpoints/addition-warmup.json\`, ${o.steps} steps of ${o.promptsPerStep} prompts x k = ${o.groupSize} responses, ` +
    `${o.miniBatches} mini-batches of whole groups per step, ${o.epochs} epoch, reference \`${o.reference}\`, beta ${o.beta}, temperature ${o.temperature}, ` +
    `Adam, greedy accuracy on ${o.evalPrompts} fixed prompts every ${o.evalEvery || 'n/a'} steps; seeds ${seeds.join(', ')}; TensorFlow.js \`${o.tf}\`.`;
}
