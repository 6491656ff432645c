// Experiment "optimum": on the bandit (4 prompts x 6 one-token responses, tabular softmax policy)
// with a frozen reference, where pi* = pi_ref exp(R/beta)/Z is known in closed form, KL(pi* || pi)
// over steps for GVPO, GRPO and Dr.GRPO when groups come on-policy, from a uniform or a skewed
// fixed distribution, from demonstrations, or half from replay.
import { markdownTable, svgChart } from '../report.js';
import { BanditTask, meanKl, tiltedOptimum } from '../../tasks/bandit.js';
import { seeded } from '../../tasks/task.js';
import { TabularPolicy } from '../../tfjs/policies.js';
import { loadTf } from '../../tfjs/tf.js';
import { GVPOTrainer } from '../../tfjs/trainer.js';
import type { Algo, TrainerOptions } from '../../tfjs/trainerOptions.js';
import { commandOf, type Experiment, type ExperimentContext, seedsOf, TUNING_SEEDS } from './common.js';
import { curveCi, fmtCi, meanCi } from '../stats.js';

export const BETA = 0.5;
const ALGOS: Algo[] = ['gvpo', 'grpo', 'drgrpo'];
const LR_GRID = [0.02, 0.05, 0.1];
type Sampler = 'on-policy' | 'uniform' | 'skewed fixed' | 'demonstrations' | 'half replay';
const SAMPLERS: Sampler[] = ['on-policy', 'uniform', 'skewed fixed', 'demonstrations', 'half replay'];

function draw(p: ArrayLike<number>, rand: () => number): number {
  let u = rand();
  for (let i = 0; i < p.length; i++) if ((u -= p[i]) <= 0) return i;
  return p.length - 1;
}

/** The sampler's options: an external distribution, replay, or none (on-policy). */
function samplerOptions(s: Sampler, task: BanditTask): Partial<TrainerOptions> {
  const V = task.vocab;
  const fixed = (probs: (p: number) => number[]) => ({
    externalResponses: (prompt: number[], k: number, rand: () => number) => Array.from({ length: k }, () => [draw(probs(prompt[0]), rand)]),
  });
  if (s === 'uniform') return fixed(() => Array(V).fill(1 / V));
  if (s === 'skewed fixed') return fixed(() => [0.4, 0.25, 0.15, 0.1, 0.06, 0.04]);
  if (s === 'demonstrations') {
    // an expert: 80% from softmax(R/0.1) (mostly the best answers), 20% uniform so it covers pi_ref's support
    return fixed((p) => {
      const e = task.rewards[p].map((r) => Math.exp(r / 0.1));
      const z = e.reduce((a, b) => a + b);
      return e.map((x) => (0.8 * x) / z + 0.2 / V);
    });
  }
  if (s === 'half replay') return { replay: { ratio: 0.5, capacity: 64 } };
  return {};
}

export interface Curve {
  /** KL(pi* || pi) and KL(pi || pi_ref) over steps. */
  points: Array<[number, number]>;
  fromRef: Array<[number, number]>;
  final: number;
  reward: number;
}

/** One bandit run from a seeded random initial policy, KL(pi* || pi) every 5 steps. */
export async function banditRun(ctx: ExperimentContext, algo: Algo, sampler: Sampler, lr: number, seed: number, steps: number, extra: Partial<TrainerOptions> = {}): Promise<Curve> {
  const { tf } = await loadTf(ctx.tf);
  const task = new BanditTask(4, 6, 7);
  const r = seeded(seed * 7919);
  const policy = new TabularPolicy(tf, 4, 6, Float32Array.from({ length: 24 }, () => r() * 2 - 1));
  const target = tiltedOptimum(policy.probs(), task.rewards, BETA);
  const trainer = new GVPOTrainer({
    tf, policy, task, algo, beta: BETA, groupSize: 8, promptsPerStep: 8, miniBatches: 4, learningRate: lr, reference: 'frozen',
    // GRPO and Dr.GRPO get the same KL strength to the same frozen reference, as a k3 penalty
    klCoef: algo === 'gvpo' ? 0 : BETA, seed, ...samplerOptions(sampler, task), ...extra,
  });
  const ref = policy.probs();
  const points: Array<[number, number]> = [[0, meanKl(target, ref)]];
  const fromRef: Array<[number, number]> = [[0, 0]];
  for (let s = 1; s <= steps; s++) {
    await trainer.step();
    if (s % 5 === 0 || s === steps) {
      points.push([s, meanKl(target, policy.probs())]);
      fromRef.push([s, meanKl(policy.probs(), ref)]);
    }
  }
  const probs = policy.probs();
  const reward = probs.reduce((a, p, i) => a + p.reduce((b, q, k) => b + q * task.rewards[i][k], 0), 0) / probs.length;
  const optimum = target.reduce((a, p, i) => a + p.reduce((b, q, k) => b + q * task.rewards[i][k], 0), 0) / target.length;
  policy.theta.dispose();
  return { points, fromRef, final: points.at(-1)![1], reward: reward - optimum };
}

async function run(ctx: ExperimentContext, log: (l: string) => void) {
  const steps = ctx.quick ? 10 : 150;
  const seeds = seedsOf(ctx);
  const grid = ctx.quick ? [0.05] : LR_GRID;
  const tuneSeeds = ctx.quick ? TUNING_SEEDS.slice(0, 1) : TUNING_SEEDS;
  const lr: Record<string, number> = {};
  const tuneRows: Array<Array<string | number>> = [];
  for (const algo of ALGOS) {
    let best = { lr: grid[0], kl: Infinity };
    for (const x of grid) {
      const kl = meanCi(await Promise.all(tuneSeeds.map((s) => banditRun(ctx, algo, 'on-policy', x, s, steps))).then((c) => c.map((v) => v.final))).mean;
      tuneRows.push([algo, x, kl.toExponential(2)]);
      if (kl < best.kl) best = { lr: x, kl };
    }
    lr[algo] = best.lr;
    log(`${algo}: learning rate ${best.lr}`);
  }
  const results: Record<string, Record<string, Curve[]>> = {};
  for (const sampler of SAMPLERS) {
    results[sampler] = {};
    for (const algo of ALGOS) {
      results[sampler][algo] = [];
      for (const seed of seeds) results[sampler][algo].push(await banditRun(ctx, algo, sampler, lr[algo], seed, steps));
      log(`${sampler} ${algo}: final KL ${fmtCi(meanCi(results[sampler][algo].map((c) => c.final)), 4)}`);
    }
  }
  const table = markdownTable(['sampling', ...ALGOS.map((a) => `${a}: KL(pi* ‖ pi) after ${steps} steps`), ...ALGOS.map((a) => `${a}: E_pi[R] - E_pi*[R]`)],
    SAMPLERS.map((s) => [s, ...ALGOS.map((a) => fmtCi(meanCi(results[s][a].map((c) => c.final)), 4)), ...ALGOS.map((a) => fmtCi(meanCi(results[s][a].map((c) => c.reward)), 3))]));
  const svg = svgChart(SAMPLERS.map((s) => ({
    title: `${s} sampling`, yLabel: 'KL(pi* || pi)', logY: true,
    series: ALGOS.map((a) => {
      const c = curveCi(results[s][a].map((x) => x.points));
      return { name: `${a} (lr ${lr[a]})`, points: c.mean, band: c.band };
    }),
  })));
  const markdown = [
    `Command: \`${commandOf('optimum', ctx)}\``, '',
    `Settings: bandit with 4 prompts x 6 one-token responses (rewards fixed, seed 7), a tabular softmax policy initialised uniformly in [-1, 1] per seed, ` +
    `reference frozen at that initial policy, beta ${BETA}, ${steps} steps of 8 prompts x k = 8, 4 mini-batches per step, Adam. ` +
    `GRPO and Dr.GRPO get a k3 KL penalty of coefficient beta to the same frozen reference (clip 0.2). Samplers: the policy itself; uniform; a fixed skewed distribution ` +
    `(0.4, 0.25, 0.15, 0.1, 0.06, 0.04); demonstrations from an expert (80% softmax(R/0.1), 20% uniform); half of each step's groups replayed from a buffer of 64 earlier groups. ` +
    `No importance weights anywhere for GVPO; GRPO's ratio is to the policy that sampled a group (for an external sampler its log-probs are not known, so the current policy stands in, as any on-policy implementation would). ` +
    `Seeds ${seeds.join(', ')}; means ± 95% intervals (t-distribution).`, '',
    `Learning rate per algorithm: grid ${grid.join(', ')} on on-policy sampling at tuning seeds ${tuneSeeds.join(', ')}, lowest final KL kept: ` +
    `${ALGOS.map((a) => `${a} ${lr[a]}`).join(', ')}.`, '',
    '<details><summary>tuning runs</summary>', '', markdownTable(['algorithm', 'learning rate', 'final KL (mean of tuning seeds)'], tuneRows), '', '</details>', '',
    table, '', '![KL to the optimum over steps, one panel per sampler](experiments/optimum/kl.svg)',
  ].join('\n');
  return { markdown, charts: { 'kl.svg': svg } };
}

export const optimum: Experiment = { title: '1. The exact optimum (bandit, frozen reference)', run };
