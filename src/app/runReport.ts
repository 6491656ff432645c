// report.md and chart.svg for `gvpo train` (one run) and `gvpo compare` (algorithms over seeds):
// every effective option, the kernels and TensorFlow.js backend, what the two reward figures mean,
// the table and the chart.
import { backendInfo } from '../backend.js';
import { curveCi, fmtCi, meanCi } from './stats.js';
import { markdownTable, type Panel, type Series, svgChart, trailingMean } from './report.js';
import { heldOut, type RunOptions, type RunSummary } from './runOptions.js';
import { ALGO_OPTIONS, type Algo, type StepMetrics } from '../tfjs/trainerOptions.js';
import { ADDITION_MEASURED } from './defaults.js';

// What "exactly right" means per task, for the reading below.
const RIGHT: Record<RunOptions['task'], string> = {
  addition: 'the correct sum',
  bandit: "the response with the highest reward for its prompt, the bandit's best arm",
};

// Where the evaluation prompts come from, per task: addition holds some out; the bandit has only
// the prompts it trains on.
const EVALUATED_ON: Record<RunOptions['task'], string[]> = {
  addition: [
    '**Held-out** figures are measured on a fixed set of evaluation prompts that training never',
    'draws (a fixed hash of the operand pair puts 20% of the pairs out of training and',
    'out of the warm-up, and a second one keeps half of those apart as validation prompts for tuning;',
    'the figures are on the other half).',
  ],
  bandit: [
    "The evaluation figures are measured on a fixed draw of the bandit's prompts, the same prompts",
    'training draws (a bandit keeps none apart: they measure how well the policy answers the prompts',
    'it was trained on).',
  ],
};

const reading = (task: RunOptions['task']) =>
  [
    ...EVALUATED_ON[task],
    `**Greedy accuracy** is the share of them whose argmax answer is exactly right (here: ${RIGHT[task]}):`,
    `what the policy would answer if deployed. **${task === 'addition' ? 'Held-out reward' : 'Reward'} at T = 1** is the mean reward`,
    "of one response sampled at temperature 1 for each: the policy's own distribution, scored.",
    '**Training reward** is the mean reward of the responses the trainer sampled at each step (at the',
    'sampling temperature, and including replayed or demonstration groups when those are on): it is',
    'what the loss sees, and it is noisy. A group whose k rewards are all equal gives no signal to',
    'any group-relative method; the share of such groups is logged per step.',
    '',
    "The loss is the mean over the step's mini-batch updates. With one update per batch and the",
    "previous step's policy as reference, S == Sref when the gradient is taken, so the GVPO loss is",
    'the constant sum (R - mean R)^2 / 2(k-1) and only its gradient, -beta (R - mean R)/(k-1) dS,',
    'moves the policy; with several mini-batches the later ones see S != Sref and the loss moves.',
  ].join('\n');

/** The columns every run summary shows (a run's report, the compare table), and their cells. */
export function summaryHeader(task: RunOptions['task']): string[] {
  return [
    `${heldOut(task)}greedy accuracy before`,
    'after',
    `${heldOut(task)}reward at T = 1 before`,
    'after',
    'training reward (first 10% of steps)',
    'last 10%',
    'groups with no reward variance',
    'KL to initial',
  ];
}
export function summaryCells(r: RunSummary): string[] {
  return [
    r.accuracyBefore.toFixed(3),
    r.accuracyAfter.toFixed(3),
    r.evalRewardBefore.toFixed(3),
    r.evalRewardAfter.toFixed(3),
    r.rewardFirst.toFixed(3),
    r.rewardLast.toFixed(3),
    r.zeroVariance.toFixed(2),
    r.klInitial.toFixed(4),
  ];
}

function initOf(o: RunOptions): string {
  if (o.init) return o.init;
  return o.task === 'addition'
    ? 'checkpoints/addition-warmup.json (shipped)'
    : 'a random tabular policy, drawn from the seed';
}

/** The options of a run, or of a comparison's runs (`algos`, with their list and seeds in
 *  `extra`, which stand for the one algo and seed): those no algorithm of it reads are left out,
 *  as the trainer was not given them, and so is the replay buffer's size with no replay. */
export function optionsTable(o: RunOptions, extra: Record<string, string> = {}, algos: Algo[] = [o.algo]): string {
  const shown = (k: string) => {
    if (k in ALGO_OPTIONS) return algos.some((a) => ALGO_OPTIONS[k as keyof typeof ALGO_OPTIONS].includes(a));
    if (k === 'replayCapacity') return o.replayRatio > 0;
    return !(k === 'algo' && 'algos' in extra) && !(k === 'seed' && 'seeds' in extra);
  };
  const rows = Object.entries({ ...o, init: initOf(o), ...extra })
    .filter(([k, v]) => v !== undefined && k !== 'progress' && shown(k))
    .map(([k, v]) => [k, `\`${String(v)}\``]);
  return markdownTable(['option', 'value'], rows);
}

/** For addition: what the main job gave when its defaults were chosen, next to this run. */
function expectation(o: RunOptions, r: RunSummary): string[] {
  if (o.task !== 'addition') return [];
  const e = ADDITION_MEASURED;
  const range = (xs: number[]) => `${Math.min(...xs).toFixed(3)}-${Math.max(...xs).toFixed(3)}`;
  const points = (x: number) => `${x >= 0 ? '+' : ''}${(100 * x).toFixed(1)} points`;
  return [
    '## What to expect',
    '',
    'The starting checkpoint learned addition from demonstrations that forget the units carry 70% of',
    'the time, so on carry prompts its greedy answer is wrong while the right one is still sampled about',
    'a quarter of the time; RL with the exact-match reward can find and reinforce it. With the defaults',
    `(\`gvpo train\`, seeds 1 to 5) held-out greedy accuracy went from ${e.accuracyBefore.toFixed(3)} to ${range(e.accuracyAfter)}, most of it in the`,
    `first 30 steps, and the held-out reward at T = 1 from ${e.rewardBefore.toFixed(3)} to ${range(e.rewardAfter)}.`,
    `**This run:** held-out greedy accuracy ${r.accuracyBefore.toFixed(3)} -> ${r.accuracyAfter.toFixed(3)} (${points(r.accuracyAfter - r.accuracyBefore)}),`,
    `held-out reward at T = 1 ${r.evalRewardBefore.toFixed(3)} -> ${r.evalRewardAfter.toFixed(3)} (${points(r.evalRewardAfter - r.evalRewardBefore)}).`,
    '',
  ];
}

function setupLine(backend: string): string {
  const info = backendInfo();
  return `Kernels: ${info.active} (${info.simd ?? 'no SIMD'}, ${info.threads} threads); TensorFlow.js: ${backend}.`;
}

function perRunSeries(runs: RunSummary[], f: (m: StepMetrics) => number | undefined, smoothIt: boolean): Series[] {
  return runs.map((r) => {
    const pts = r.metrics.map((m): [number, number] => [m.step, f(m) ?? NaN]).filter(([, y]) => Number.isFinite(y));
    return {
      name: `${r.algo} seed ${r.seed}`,
      points: smoothIt ? trailingMean(pts) : pts,
      markers: !smoothIt && pts.length < 40,
    };
  });
}

export function runReport(o: RunOptions, runs: RunSummary[], backend: string): { svg: string; markdown: string } {
  const r = runs[0];
  const acc: Array<[number, number]> = [
    [0, r.accuracyBefore],
    ...r.metrics.filter((m) => m.accuracy !== undefined).map((m): [number, number] => [m.step, m.accuracy!]),
  ];
  const rew: Array<[number, number]> = [
    [0, r.evalRewardBefore],
    ...r.metrics.filter((m) => m.evalReward !== undefined).map((m): [number, number] => [m.step, m.evalReward!]),
  ];
  const panels: Panel[] = [
    {
      title: 'training reward',
      yLabel: 'mean reward',
      series: [
        { name: 'per step', points: r.metrics.map((m) => [m.step, m.rewardMean]), dashed: true },
        { name: 'trailing mean of 10 steps', points: trailingMean(r.metrics.map((m) => [m.step, m.rewardMean])) },
      ],
    },
    {
      title: `${heldOut(o.task)}evaluation (${o.evalPrompts} fixed prompts)`,
      yLabel: 'accuracy / reward',
      series: [
        { name: 'greedy exact-match accuracy', points: acc, markers: true },
        { name: 'reward sampled at T = 1', points: rew, markers: true, dashed: true },
      ],
    },
    {
      title: 'loss and GVPO terms (mean over updates)',
      yLabel: 'value',
      series: (['loss', 'advantage', 'trustRegion', 'variance'] as const).map((k) => ({
        name: k,
        points: r.metrics.map((m): [number, number] => [m.step, m[k]]),
      })),
    },
    {
      title: 'KL estimates',
      yLabel: 'nats',
      series: [
        { name: "KL(pi_theta' || pi) after the step", points: r.metrics.map((m) => [m.step, m.klPrevious]) },
        { name: 'KL to the initial policy', points: r.metrics.map((m) => [m.step, m.klInitial]) },
      ],
    },
  ];
  const last = r.metrics.at(-1)!;
  const markdown = [
    `# gvpo train: ${o.algo} on ${o.task}`,
    '',
    setupLine(backend),
    '',
    '## Result',
    '',
    markdownTable(
      [
        ...summaryHeader(o.task),
        'entropy (last step)',
        ...(o.algo === 'gvpo' ? [] : ['clip fraction (last step)']),
        'seconds',
      ],
      [
        [
          ...summaryCells(r),
          last.entropy.toFixed(3),
          ...(o.algo === 'gvpo' ? [] : [last.clipFraction.toFixed(3)]),
          r.seconds.toFixed(1),
        ],
      ],
    ),
    '',
    '![reward, accuracy, loss terms and KL over steps](chart.svg)',
    '',
    ...expectation(o, r),
    '## How to read it',
    '',
    reading(o.task),
    '',
    '## Every option of this run (defaults included)',
    '',
    optionsTable(o),
    '',
  ].join('\n');
  return { svg: svgChart(panels), markdown };
}

export function compareReport(
  o: RunOptions,
  algos: Algo[],
  seeds: number[],
  runs: RunSummary[],
  backend: string,
): { svg: string; markdown: string } {
  const byAlgo = (a: Algo) => runs.filter((r) => r.algo === a);
  const curve = (a: Algo, f: (r: RunSummary) => Array<[number, number]>): Series => {
    const c = curveCi(byAlgo(a).map(f));
    return { name: `${a} (mean, 95% band)`, points: c.mean, band: c.band, markers: c.mean.length < 40 };
  };
  const accCurve = (r: RunSummary): Array<[number, number]> => [
    [0, r.accuracyBefore],
    ...r.metrics.filter((m) => m.accuracy !== undefined).map((m): [number, number] => [m.step, m.accuracy!]),
  ];
  const panels: Panel[] = [
    {
      title: 'sampled reward (trailing mean of 10)',
      yLabel: 'mean reward',
      series: algos.map((a) => curve(a, (r) => trailingMean(r.metrics.map((m) => [m.step, m.rewardMean])))),
    },
    {
      title: `${heldOut(o.task)}greedy exact-match accuracy`,
      yLabel: 'accuracy',
      series: algos.map((a) => curve(a, accCurve)),
    },
    {
      title: 'KL to the initial policy',
      yLabel: 'nats',
      series: algos.map((a) => curve(a, (r) => r.metrics.map((m) => [m.step, m.klInitial]))),
    },
    {
      title: 'loss (mean over updates)',
      yLabel: 'value',
      series: algos.map((a) => curve(a, (r) => r.metrics.map((m) => [m.step, m.loss]))),
    },
  ];
  const table = markdownTable(
    [
      'algo',
      `${heldOut(o.task)}greedy accuracy after (95% CI)`,
      'change from before',
      `${heldOut(o.task)}reward at T = 1 after`,
      'training reward, last 10%',
      'KL to initial',
      'seconds per run',
    ],
    algos.map((a) => {
      const rs = byAlgo(a);
      return [
        a,
        fmtCi(meanCi(rs.map((r) => r.accuracyAfter))),
        fmtCi(meanCi(rs.map((r) => r.accuracyAfter - r.accuracyBefore))),
        fmtCi(meanCi(rs.map((r) => r.evalRewardAfter))),
        fmtCi(meanCi(rs.map((r) => r.rewardLast))),
        fmtCi(meanCi(rs.map((r) => r.klInitial)), 4),
        meanCi(rs.map((r) => r.seconds)).mean.toFixed(1),
      ];
    }),
  );
  const markdown = [
    `# gvpo compare: ${algos.join(' vs ')} on ${o.task}, seeds ${seeds.join(', ')}`,
    '',
    setupLine(backend),
    '',
    '## Result (mean ± 95% interval over seeds, t-distribution)',
    '',
    table,
    '',
    '![reward, accuracy, KL and loss over steps](chart.svg)',
    '',
    'Each run has its own report in `<algo>-seed<seed>/report.md`.',
    '',
    '## How to read it',
    '',
    reading(o.task),
    '',
    '## Every option of these runs (defaults included)',
    '',
    optionsTable(o, { algos: algos.join(','), seeds: seeds.join(',') }, algos),
    '',
  ].join('\n');
  return { svg: svgChart(panels), markdown };
}
