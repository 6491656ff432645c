// The text experiments' shared set-up: the addition task from the shipped warm-up checkpoint at
// an experiment's size, runs over seeds on the pool, learning rates tuned per method (stored in
// experiments/text/tuned.json so that every text experiment uses the same ones), and the tables'
// cells from held-out metrics.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { makeDirs } from '../dirs.js';
import { markdownTable, type Panel, type Series, trailingMean } from '../report.js';
import { resolveRunOptions, type RunOptions, type RunSummary } from '../runOptions.js';
import { curveCi } from '../stats.js';
import type { StepMetrics } from '../../tfjs/trainerOptions.js';
import { cell, type ExperimentContext, logGrid, pairedCell, type Tuned, tuneRates } from './common.js';
import { METHODS, type MethodId, methodOptions } from './methods.js';

/** Steps, groups and evaluation of a text run at the experiments' size (and --quick's). */
export const TEXT_SIZE = {
  full: { steps: 40, promptsPerStep: 8, groupSize: 8, miniBatches: 4, evalEvery: 10, evalPrompts: 200 },
  quick: { steps: 3, promptsPerStep: 4, groupSize: 4, miniBatches: 2, evalEvery: 0, evalPrompts: 20 },
};
/** GVPO's beta, and the baselines' KL coefficient where they have one. */
export const TEXT_COEF = 0.1;
export const TEXT_GRID = logGrid(1e-5, 1e-3, 2);

/**
 * A text run: addition from the shipped checkpoint, the official recipe's structure (4
 * mini-batches of whole groups per step, previous-step reference, beta 0.1), sampled at
 * temperature 1 so that every fresh group is on-policy, `method`'s options on top.
 */
export function textRun(ctx: ExperimentContext, method: MethodId, over: Partial<RunOptions> = {}): RunOptions {
  const size = ctx.quick ? TEXT_SIZE.quick : TEXT_SIZE.full;
  return resolveRunOptions({
    task: 'addition',
    temperature: 1,
    epochs: 1,
    reference: 'previous',
    tf: ctx.tf,
    progress: 'none',
    ...size,
    ...methodOptions(method, TEXT_COEF),
    ...over,
  });
}

/** `o` at each seed, all on the pool at once; results grouped like `configs`. */
export async function overSeeds(
  ctx: ExperimentContext,
  configs: RunOptions[],
  seeds: number[],
): Promise<RunSummary[][]> {
  const jobs = configs.flatMap((o) => seeds.map((seed) => ({ kind: 'text' as const, spec: { ...o, seed } })));
  const flat = await ctx.pool.run<RunSummary>(jobs);
  return configs.map((_, i) => flat.slice(i * seeds.length, (i + 1) * seeds.length));
}

/** The held-out gain in greedy exact-match accuracy over a run. */
export const gain = (r: RunSummary) => r.accuracyAfter - r.accuracyBefore;

/**
 * Learning rates for the text task, per method, on the tuning seeds: the score is the greedy
 * accuracy gain plus the reward at temperature 1 at the end, both on the task's validation prompts
 * (never trained on, and apart from the held-out prompts the tables report). Stored in
 * experiments/text/tuned.json: the other text experiments reuse the rates.
 */
export async function tuneText(
  ctx: ExperimentContext,
  methods: MethodId[],
  log: (l: string) => void,
  reference: 'previous' | 'frozen' = 'previous',
): Promise<Tuned> {
  const path = join(ctx.out, 'experiments', 'text', `tuned${ctx.quick ? '-quick' : ''}.json`);
  const key = (m: MethodId) => `${m}@${reference}`;
  const stored = (
    existsSync(path) ? JSON.parse(readFileSync(path, 'utf8')) : { lr: {}, grid: {}, tables: {} }
  ) as Tuned & { tables: Record<string, string> };
  const missing = methods.filter((m) => stored.lr[key(m)] === undefined);
  if (missing.length) {
    const grid = ctx.quick ? [1e-3] : TEXT_GRID;
    const t = await tuneRates<RunSummary>(
      ctx,
      missing.map(key),
      grid,
      (c, lr, seed) => {
        const m = c.split('@')[0] as MethodId;
        // scored on the task's validation prompts, apart from the held-out ones the tables report
        return {
          kind: 'text',
          spec: { ...textRun(ctx, m, { reference, evalSplit: 'validation' }), learningRate: lr, seed },
        };
      },
      (rs) => rs.reduce((a, r) => a + gain(r) + r.evalRewardAfter, 0) / rs.length,
      log,
      ctx.quick ? 0 : 2,
    );
    Object.assign(stored.lr, t.lr);
    Object.assign(stored.grid, t.grid);
    stored.tables[`${reference}: ${missing.join(', ')}`] = t.table;
    makeDirs(join(ctx.out, 'experiments', 'text'));
    writeFileSync(path, JSON.stringify(stored, null, 2));
  }
  const lr = Object.fromEntries(methods.map((m) => [m, stored.lr[key(m)]]));
  return {
    lr,
    grid: Object.fromEntries(methods.map((m) => [m, stored.grid[key(m)]])),
    // the tuning runs of this reference (another experiment's, stored beside them, are its own)
    table: Object.entries(stored.tables)
      .filter(([k]) => k.startsWith(`${reference}: `))
      .map(([, t]) => t)
      .join('\n\n'),
  };
}

export const TEXT_HEAD = [
  'held-out greedy accuracy after',
  'gain over the start',
  'held-out reward at T = 1 after',
  'KL to the start (last step)',
  'groups with no reward variance',
];

/** One table row's cells: held-out accuracy after, its gain, held-out sampled reward, KL, flat groups. */
export function textCells(rs: RunSummary[]): string[] {
  return [
    cell(rs.map((r) => r.accuracyAfter)),
    cell(rs.map(gain)),
    cell(rs.map((r) => r.evalRewardAfter)),
    cell(
      rs.map((r) => r.klInitial),
      4,
    ),
    cell(
      rs.map((r) => r.zeroVariance),
      2,
    ),
  ];
}

/** GVPO's held-out gain minus each other's, paired over seeds. */
export function pairedGainTable(
  runs: Partial<Record<MethodId, RunSummary[]>>,
  label: (m: MethodId) => string = (m) => METHODS[m].label,
): string {
  const gvpo = runs.gvpo!;
  const others = (Object.keys(runs) as MethodId[]).filter((m) => m !== 'gvpo');
  return markdownTable(
    [
      'baseline',
      'GVPO gain minus baseline gain (held-out greedy accuracy)',
      'GVPO minus baseline (held-out reward at T = 1)',
    ],
    others.map((m) => [
      label(m),
      pairedCell(runs[m]!.map(gain), gvpo.map(gain)),
      pairedCell(
        runs[m]!.map((r) => r.evalRewardAfter),
        gvpo.map((r) => r.evalRewardAfter),
      ),
    ]),
  );
}

/** Mean curve with a 95% band over runs, of a per-step metric (optionally smoothed). */
export function band(
  name: string,
  runs: RunSummary[],
  f: (m: StepMetrics) => number | undefined,
  smooth = false,
  withStart?: (r: RunSummary) => number,
): Series {
  const c = curveCi(
    runs.map((r) => {
      const pts = r.metrics.map((m): [number, number] => [m.step, f(m) ?? NaN]).filter(([, y]) => Number.isFinite(y));
      const all: Array<[number, number]> = withStart ? [[0, withStart(r)], ...pts] : pts;
      return smooth ? trailingMean(all) : all;
    }),
  );
  return { name, points: c.mean, band: c.band, markers: c.mean.length < 12 };
}

/** Held-out greedy accuracy, the policy's own training reward, KL to the start, KL over a step. */
export function standardPanels(groups: Array<[string, RunSummary[]]>): Panel[] {
  return [
    {
      title: 'held-out greedy exact-match accuracy',
      yLabel: 'accuracy',
      series: groups.map(([n, rs]) =>
        band(
          n,
          rs,
          (m) => m.accuracy,
          false,
          (r) => r.accuracyBefore,
        ),
      ),
    },
    {
      title: "training reward of the policy's samples (trailing mean of 10)",
      yLabel: 'mean reward',
      series: groups.map(([n, rs]) => band(n, rs, (m) => m.rewardPolicy, true)),
    },
    {
      title: 'KL to the starting policy',
      yLabel: 'nats',
      series: groups.map(([n, rs]) => band(n, rs, (m) => m.klInitial)),
    },
    {
      title: "KL(pi || pi_theta') over each step",
      yLabel: 'nats',
      series: groups.map(([n, rs]) => band(n, rs, (m) => m.klPrevious)),
    },
  ];
}

export function settingsLine(o: RunOptions, seeds: number[]): string {
  return (
    `Settings: task \`${o.task}\` from \`checkpoints/addition-warmup.json\`, ${o.steps} steps of ${o.promptsPerStep} prompts x k = ${o.groupSize} responses, ` +
    `${o.miniBatches} mini-batches of whole groups per step, ${o.epochs} epoch(s), reference \`${o.reference}\`, KL strength ${TEXT_COEF} (GVPO's beta; the baselines' KL coefficient where they have one), ` +
    `sampled at temperature ${o.temperature}, Adam; held-out greedy accuracy and reward at temperature 1 on ${o.evalPrompts} prompts never trained on` +
    `${o.evalEvery ? `, every ${o.evalEvery} steps` : ''}; seeds ${seeds.join(', ')}; TensorFlow.js \`${o.tf}\`. Cells: mean ± 95% interval (t-distribution) over the n = ${seeds.length} seeds (a cell with diverged runs says how many).`
  );
}
