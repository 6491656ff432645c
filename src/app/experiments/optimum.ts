// Experiment "optimum": on the bandit (bandit.ts), where pi* = pi_ref exp(R/c)/Z is known, where
// each method lands: KL(pi* || pi) and the reward gap from every sampler at one KL strength, and the
// reward-vs-KL(pi || pi_ref) frontier over a sweep of the strength, on-policy.
import { markdownTable, type Panel, svgChart } from '../report.js';
import { curveCi, meanCi } from '../stats.js';
import { BANDIT, type BanditResult, type BanditSpec, frontier, type Sampler, SAMPLERS } from './bandit.js';
import {
  cell,
  commandOf,
  type Experiment,
  type ExperimentContext,
  pairedCell,
  seedsOf,
  tuneRates,
  tuningSeedsOf,
} from './common.js';
import { METHODS, type MethodId } from './methods.js';

/** The KL strength of the sampler comparison (GVPO's beta, the baselines' KL coefficient). */
export const COEF = 0.5;
const COEFS = [0.1, 0.2, 0.5, 1, 2];
export const BANDIT_METHODS: MethodId[] = [
  'gvpo',
  'grpo-k3',
  'grpo-kl-reward',
  'drgrpo-k3',
  'drgrpo-kl-reward',
  'reinforce-kl-reward',
  'reinforce-is',
];
const FRONTIER_METHODS: MethodId[] = [
  'gvpo',
  'grpo-k3',
  'grpo-kl-reward',
  'drgrpo-k3',
  'drgrpo-kl-reward',
  'reinforce-kl-reward',
];
export const BANDIT_GRID = [0.003, 0.01, 0.03, 0.1, 0.3];
/** The long runs: GVPO and its closest competitor, past the tables' steps, under Adam and SGD. */
const LONG_METHODS: MethodId[] = ['gvpo', 'reinforce-kl-reward'];
const LONG_SAMPLERS: Sampler[] = ['on-policy', 'uniform'];
/** SGD's rate for GVPO; REINFORCE's is COEF times it, so that on fresh groups both take the same
 *  step (GVPO's gradient is beta times REINFORCE's with the exact KL in the reward). */
const SGD_LR = 1;

const job = (spec: BanditSpec) => ({ kind: 'bandit' as const, spec });
/** Tuning score: closeness to pi*, the geometric mean of KL(pi* || pi) over the tuning seeds. */
export const banditScore = (rs: BanditResult[]) =>
  -rs.reduce((a, r) => a + Math.log10(Math.max(r.final, 1e-15)), 0) / rs.length;

export function banditSteps(ctx: ExperimentContext): number {
  return ctx.quick ? 10 : 150;
}

/** Each method's learning rate: tuned on-policy at COEF, at the tuning seeds. */
export async function tuneBandit(ctx: ExperimentContext, methods: MethodId[], log: (l: string) => void) {
  const steps = banditSteps(ctx);
  const grid = ctx.quick ? [0.03, 0.1] : BANDIT_GRID;
  return tuneRates<BanditResult>(
    ctx,
    methods,
    grid,
    (m, lr, seed) => job({ method: m as MethodId, sampler: 'on-policy', coef: COEF, lr, seed, steps }),
    banditScore,
    log,
    ctx.quick ? 0 : 3,
  );
}

async function run(ctx: ExperimentContext, log: (l: string) => void) {
  const steps = banditSteps(ctx);
  const seeds = seedsOf(ctx);
  const tuned = await tuneBandit(ctx, BANDIT_METHODS, log);
  const samplers = SAMPLERS; // every one at --quick too: each has its own code
  const coefs = ctx.quick ? [0.5, 1] : COEFS;
  // every run of the comparison and the sweep in one batch, for the pool
  const specs: BanditSpec[] = [
    ...samplers.flatMap((sampler) =>
      BANDIT_METHODS.flatMap((method) =>
        seeds.map((seed) => ({ method, sampler, coef: COEF, lr: tuned.lr[method], seed, steps })),
      ),
    ),
    ...coefs
      .filter((c) => c !== COEF)
      .flatMap((coef) =>
        FRONTIER_METHODS.flatMap((method) =>
          seeds.map((seed) => ({ method, sampler: 'on-policy' as Sampler, coef, lr: tuned.lr[method], seed, steps })),
        ),
      ),
  ];
  // the long runs: 4x the steps, Adam at the tuned rates and plain SGD
  const longSteps = 4 * steps;
  const optimizers = ['adam', 'sgd'] as const;
  const longSpecs: BanditSpec[] = optimizers.flatMap((optimizer) =>
    LONG_SAMPLERS.flatMap((sampler) =>
      LONG_METHODS.flatMap((method) =>
        seeds.map((seed) => ({
          method,
          sampler,
          coef: COEF,
          lr: optimizer === 'adam' ? tuned.lr[method] : method === 'gvpo' ? SGD_LR : COEF * SGD_LR,
          seed,
          steps: longSteps,
          optimizer,
        })),
      ),
    ),
  );
  const all = await ctx.pool.run<BanditResult>([...specs, ...longSpecs].map(job));
  const results = all.slice(0, specs.length);
  const longOf = (optimizer: string, sampler: Sampler, method: MethodId) =>
    seeds.map(
      (seed) =>
        all[
          specs.length +
            longSpecs.findIndex(
              (s) => s.optimizer === optimizer && s.sampler === sampler && s.method === method && s.seed === seed,
            )
        ],
    );
  const at = (r: BanditResult, step: number) => r.toOptimum.find(([s]) => s === step)![1];
  const worstAfter = (r: BanditResult, step: number) =>
    Math.max(...r.toOptimum.filter(([s]) => s > step).map(([, kl]) => kl));
  const range = (xs: number[]) => `${fmtKl(Math.min(...xs))} to ${fmtKl(Math.max(...xs))}`;
  const longTable = markdownTable(
    [
      'optimizer (rate)',
      'sampler',
      'method',
      `KL(pi* ‖ pi) at step ${steps}`,
      `worst over steps ${steps + 5}-${longSteps} (every 5)`,
      `at step ${longSteps}`,
    ],
    optimizers.flatMap((o) =>
      LONG_SAMPLERS.flatMap((sampler) =>
        LONG_METHODS.map((m) => {
          const rs = longOf(o, sampler, m);
          const lr = rs.length ? longSpecs.find((s) => s.optimizer === o && s.method === m)!.lr : NaN;
          return [
            `${o === 'adam' ? 'Adam' : 'SGD'} (${lr})`,
            sampler,
            METHODS[m].label,
            range(rs.map((r) => at(r, steps))),
            range(rs.map((r) => worstAfter(r, steps))),
            range(rs.map((r) => r.final)),
          ];
        }),
      ),
    ),
  );
  const of = (method: MethodId, sampler: Sampler, coef: number) =>
    seeds.map(
      (seed) =>
        results[
          specs.findIndex((s) => s.method === method && s.sampler === sampler && s.coef === coef && s.seed === seed)
        ],
    );
  for (const sampler of samplers)
    log(
      `${sampler}: ${BANDIT_METHODS.map((m) => `${m} ${meanCi(of(m, sampler, COEF).map((r) => r.final)).mean.toExponential(1)}`).join(', ')}`,
    );

  const klTable = markdownTable(
    ['method (learning rate)', ...samplers],
    BANDIT_METHODS.map((m) => [
      `${METHODS[m].label} (${tuned.lr[m]})`,
      ...samplers.map((s) =>
        cell(
          of(m, s, COEF).map((r) => r.final),
          4,
        ),
      ),
    ]),
  );
  const gapTable = markdownTable(
    ['method', ...samplers],
    BANDIT_METHODS.map((m) => [
      METHODS[m].label,
      ...samplers.map((s) =>
        cell(
          of(m, s, COEF).map((r) => r.reward - r.optimumReward),
          3,
        ),
      ),
    ]),
  );
  // headline: GVPO against each baseline, paired over seeds: log10 KL(pi*||pi) of the baseline minus GVPO's
  const log10 = (rs: BanditResult[]) => rs.map((r) => Math.log10(Math.max(r.final, 1e-15)));
  const pairedTable = markdownTable(
    ['baseline', ...samplers],
    BANDIT_METHODS.filter((m) => m !== 'gvpo').map((m) => [
      METHODS[m].label,
      ...samplers.map((s) => pairedCell(log10(of('gvpo', s, COEF)), log10(of(m, s, COEF)), 2)),
    ]),
  );
  const sweepTable = markdownTable(
    ['method', ...coefs.map((c) => `c = ${c}`)],
    FRONTIER_METHODS.map((m) => [
      METHODS[m].label,
      ...coefs.map((c) =>
        cell(
          of(m, 'on-policy', c).map((r) => r.final),
          4,
        ),
      ),
    ]),
  );

  const klPanels: Panel[] = samplers.map((s) => ({
    title: `${s} sampling`,
    yLabel: 'KL(pi* || pi)',
    logY: true,
    series: BANDIT_METHODS.map((m) => {
      const c = curveCi(of(m, s, COEF).map((r) => r.toOptimum));
      return { name: METHODS[m].label, points: c.mean, band: c.band };
    }),
  }));
  // the exact frontier (means over the seeds' references) and where each method lands
  const fine = Array.from({ length: 41 }, (_, i) => 0.05 * 10 ** (i / 20));
  const exact = seeds.map((s) => frontier(s, fine));
  const frontierPanel: Panel = {
    title: 'on-policy: reward against KL to the reference, c swept',
    xLabel: 'KL(pi || pi_ref)',
    yLabel: 'E_pi[R]',
    series: [
      {
        name: 'exact frontier pi*_c',
        dashed: true,
        points: fine.map((_, i): [number, number] => [
          mean(exact.map((f) => f[i].kl)),
          mean(exact.map((f) => f[i].reward)),
        ]),
      },
      ...FRONTIER_METHODS.map((m) => ({
        name: METHODS[m].label,
        markers: true,
        points: coefs.map((c): [number, number] => [
          mean(of(m, 'on-policy', c).map((r) => r.klRef)),
          mean(of(m, 'on-policy', c).map((r) => r.reward)),
        ]),
      })),
    ],
  };
  const markdown = [
    `Command: \`${commandOf('optimum', ctx)}\``,
    '',
    `Settings: a bandit of ${BANDIT.prompts} prompts x ${BANDIT.responses} one-token responses (rewards fixed, seed ${BANDIT.rewardSeed}), a tabular softmax policy initialized uniformly in [-1, 1] per seed, ` +
      `the reference frozen at that initial policy; ${steps} steps of ${BANDIT.promptsPerStep} prompts x k = ${BANDIT.groupSize}, ${BANDIT.miniBatches} mini-batches per step, Adam. ` +
      `Every method gets the same KL strength c to the same reference (GVPO's beta; the baselines' KL coefficient), so all target pi* = pi_ref exp(R/c)/Z. ` +
      `Samplers: the policy itself; uniform; a fixed skewed distribution (0.4, 0.25, 0.15, 0.1, 0.06, 0.04); demonstrations from an expert (80% softmax(R/0.1), 20% uniform); ` +
      `half of each step's groups replayed from a buffer of the 64 latest groups. The samplers' probabilities are known and handed to the trainer: GRPO's and Dr.GRPO's clipped ratios and REINFORCE's truncated importance weights (cap 5) are against the distribution that drew each response; GVPO uses none. ` +
      `Seeds ${seeds.join(', ')}: each cell is the mean ± 95% interval (t-distribution) over n = ${seeds.length} seeds, and names any run that diverged (left out of its mean).`,
    '',
    `Learning rates: each method tuned on-policy at c = ${COEF} on a log grid (extended past an edge when the best rate sat on it), at tuning seeds ${tuningSeedsOf(ctx).join(', ')}, ` +
      'keeping the rate with the smallest geometric-mean KL(pi* ‖ pi).',
    '',
    '<details><summary>tuning runs (score: -mean log10 KL(pi* ‖ pi))</summary>',
    '',
    tuned.table,
    '',
    '</details>',
    '',
    `**KL(pi* ‖ pi) after ${steps} steps, c = ${COEF}:**`,
    '',
    klTable,
    '',
    `**E_pi[R] - E_pi*[R] (0 at the optimum; above 0 means the KL was not paid):**`,
    '',
    gapTable,
    '',
    `**Paired over seeds: log10 KL(pi* ‖ pi) of the baseline minus GVPO's (above 0: GVPO is closer to pi*):**`,
    '',
    pairedTable,
    '',
    '![KL to the optimum over steps, one panel per sampler](experiments/optimum/kl.svg)',
    '',
    `**The frontier, on-policy: KL(pi*_c ‖ pi) after ${steps} steps for each KL strength c** (learning rates as tuned at c = ${COEF}):`,
    '',
    sweepTable,
    '',
    '![reward against KL to the reference; the exact frontier and where each method lands](experiments/optimum/frontier.svg)',
    '',
    `**Past ${steps} steps: ${longSteps} steps at c = ${COEF}**, GVPO and REINFORCE (group baseline, KL in reward) from two samplers, under Adam at the tuned rates and under plain SGD ` +
      `(GVPO at ${SGD_LR}, REINFORCE at ${COEF * SGD_LR}: the same step on fresh groups, its gradient being GVPO's divided by beta). Each cell: the range of KL(pi* ‖ pi) over the ${seeds.length} seeds:`,
    '',
    longTable,
  ].join('\n');
  return { markdown, charts: { 'kl.svg': svgChart(klPanels), 'frontier.svg': svgChart([frontierPanel]) } };
}

const fmtKl = (x: number) => (x === 0 ? '0' : x.toExponential(0));

function mean(xs: number[]): number {
  return xs.reduce((a, b) => a + b, 0) / xs.length;
}

export const optimum: Experiment = { title: '1. The exact optimum (bandit, frozen reference)', run };
