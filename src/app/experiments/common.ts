// What the experiments share: the context they run in, seeds (reported ones and tuning ones kept
// apart), the learning-rate tuning every method gets on the same terms, and table formatting.
import { markdownTable } from '../report.js';
import { fmtCi, meanCi, pairedDiffCi } from '../stats.js';
import type { TfChoice } from '../../tfjs/tf.js';
import type { Job } from './jobs.js';
import type { Pool } from './pool.js';

export interface ExperimentContext {
  quick: boolean;
  /** Seeds per configuration (default 5; 2 with --quick). */
  seeds?: number;
  /** Folder receiving EXPERIMENTS.md and experiments/<name>/. */
  out: string;
  tf: TfChoice;
  progress: 'bar' | 'lines' | 'none';
  pool: Pool;
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

/** The reported seeds: 1..n. */
export function seedsOf(ctx: ExperimentContext): number[] {
  return Array.from({ length: ctx.seeds ?? (ctx.quick ? 2 : 5) }, (_, i) => i + 1);
}

/** Tuning seeds, apart from every reported one. */
export function tuningSeedsOf(ctx: ExperimentContext): number[] {
  return ctx.quick ? [101] : [101, 102];
}

/** The exact command that re-makes a section. */
export function commandOf(name: string, ctx: ExperimentContext): string {
  return `gvpo experiment ${name}${ctx.quick ? ' --quick' : ''}${ctx.seeds ? ` --seeds ${ctx.seeds}` : ''} --tf ${ctx.tf}`;
}

export interface Tuned {
  /** The rate each candidate keeps. */
  lr: Record<string, number>;
  /** The grid each candidate ran, after any extension past an edge. */
  grid: Record<string, number[]>;
  table: string;
}

/**
 * Learning rates tuned per candidate on the same terms: a log grid (each candidate starts from
 * `grid`), every rate run at the tuning seeds, the best mean score kept (higher is better); a
 * choice at an edge of the grid extends it by one more step on that side, up to `extend` times,
 * so that no candidate is left at a rate the grid cut off.
 */
export async function tuneRates<R>(
  ctx: ExperimentContext,
  candidates: string[],
  grid: number[],
  job: (candidate: string, lr: number, seed: number) => Job,
  score: (results: R[]) => number,
  log: (l: string) => void,
  extend = 3,
): Promise<Tuned> {
  const seeds = tuningSeedsOf(ctx);
  const ratio = grid[1] / grid[0];
  const scores = new Map<string, Map<number, number>>(candidates.map((c) => [c, new Map()]));
  const runGrid = async (todo: Array<[string, number]>) => {
    const jobs = todo.flatMap(([c, lr]) => seeds.map((s) => job(c, lr, s)));
    const results = await ctx.pool.run<R>(jobs);
    todo.forEach(([c, lr], i) =>
      scores.get(c)!.set(lr, score(results.slice(i * seeds.length, (i + 1) * seeds.length))),
    );
  };
  await runGrid(candidates.flatMap((c) => grid.map((lr): [string, number] => [c, lr])));
  for (let round = 0; round < extend; round++) {
    const more: Array<[string, number]> = [];
    for (const c of candidates) {
      const rates = [...scores.get(c)!.keys()].sort((a, b) => a - b);
      const best = bestOf(scores.get(c)!);
      if (best === rates[0]) more.push([c, round3(rates[0] / ratio)]);
      else if (best === rates.at(-1)) more.push([c, round3(rates.at(-1)! * ratio)]);
    }
    if (!more.length) break;
    log(`tuning: extending the grid past an edge for ${more.map(([c, lr]) => `${c} (${lr})`).join(', ')}`);
    await runGrid(more);
  }
  const lr: Record<string, number> = {};
  const grids: Record<string, number[]> = {};
  const rows: string[][] = [];
  for (const c of candidates) {
    const s = scores.get(c)!;
    lr[c] = bestOf(s);
    grids[c] = [...s.keys()].sort((a, b) => a - b);
    rows.push([c, grids[c].map((x) => `${x}: ${fmtScore(s.get(x)!)}${x === lr[c] ? ' **(kept)**' : ''}`).join(', ')]);
    log(`tuning: ${c} keeps ${lr[c]}`);
  }
  return {
    lr,
    grid: grids,
    table: markdownTable(['candidate', `score per learning rate (mean over tuning seeds ${seeds.join(', ')})`], rows),
  };
}

function bestOf(s: Map<number, number>): number {
  let best = NaN,
    score = -Infinity;
  for (const [lr, v] of s)
    if (v > score || Number.isNaN(best)) [best, score] = [lr, Number.isFinite(v) ? v : -Infinity];
  return best;
}

const round3 = (x: number) => Number(x.toPrecision(3));
const fmtScore = (x: number) =>
  Number.isFinite(x) ? (Math.abs(x) < 1e-3 && x !== 0 ? x.toExponential(2) : x.toFixed(3)) : 'diverged';

/** `mean ± half` of a metric over runs (a run that diverged is named in the cell); tables give n in their captions. */
export function cell(xs: number[], digits = 3): string {
  return fmtCi(meanCi(xs), digits);
}

/** `mean ± half` of b - a over the same seeds. */
export function pairedCell(a: number[], b: number[], digits = 3): string {
  return fmtCi(pairedDiffCi(a, b), digits);
}

/** A log grid from lo to hi with `per` values per decade. */
export function logGrid(lo: number, hi: number, per = 2): number[] {
  const n = Math.round(Math.log10(hi / lo) * per);
  return Array.from({ length: n + 1 }, (_, i) => round3(lo * 10 ** (i / per)));
}
