// Experiments on the text task (addition from the warm-up checkpoint):
//   "text"        GVPO vs GRPO vs Dr.GRPO with the official recipe's structure;
//   "off-policy"  a share of each step's groups replayed from earlier policies (history:current
//                 0:8, 2:6, 4:4), GVPO with no weights vs GRPO with its clipped ratio.
import { markdownTable, type Panel, type Series, svgChart, trailingMean } from '../report.js';
import type { RunOptions, RunSummary } from '../runOptions.js';
import type { Algo, StepMetrics } from '../../tfjs/trainerOptions.js';
import { commandOf, type Experiment, type ExperimentContext, overSeeds, RESULT_HEAD, resultCells, seedsOf, settingsLine, textBase, tuneText } from './common.js';
import { curveCi } from '../stats.js';

/** Mean curve with a 95% band over runs, of a per-step metric (optionally smoothed). */
export function band(name: string, runs: RunSummary[], f: (m: StepMetrics) => number | undefined, smooth = false, withStart?: (r: RunSummary) => number): Series {
  const c = curveCi(runs.map((r) => {
    const pts = r.metrics.map((m): [number, number] => [m.step, f(m) ?? NaN]).filter(([, y]) => Number.isFinite(y));
    const all: Array<[number, number]> = withStart ? [[0, withStart(r)], ...pts] : pts;
    return smooth ? trailingMean(all) : all;
  }));
  return { name, points: c.mean, band: c.band, markers: c.mean.length < 12 };
}

export function standardPanels(groups: Array<[string, RunSummary[]]>): Panel[] {
  return [
    { title: 'greedy exact-match accuracy', yLabel: 'accuracy', series: groups.map(([n, rs]) => band(n, rs, (m) => m.accuracy, false, (r) => r.accuracyBefore)) },
    { title: "reward of the policy's samples (trailing mean of 10)", yLabel: 'mean reward', series: groups.map(([n, rs]) => band(n, rs, (m) => m.rewardPolicy, true)) },
    { title: 'KL to the initial policy', yLabel: 'nats', series: groups.map(([n, rs]) => band(n, rs, (m) => m.klInitial)) },
    { title: "KL(pi_theta' || pi) over each step", yLabel: 'nats', series: groups.map(([n, rs]) => band(n, rs, (m) => m.klPrevious)) },
  ];
}

/** The algorithms over seeds at one structure (each at its tuned learning rate). */
async function compareAt(ctx: ExperimentContext, algos: Algo[], log: (l: string) => void, variant?: { tag: string; over: Partial<RunOptions> }) {
  const tuned = await tuneText(ctx, algos, log, variant);
  const runs: Record<string, RunSummary[]> = {};
  let base: RunOptions = textBase(ctx);
  for (const algo of algos) {
    base = textBase(ctx, { ...variant?.over, algo, learningRate: tuned.lr[`${algo}${variant?.tag ?? ''}`] });
    runs[algo] = await overSeeds(base, seedsOf(ctx), log);
  }
  const clip = (rs: RunSummary[]) => rs.flatMap((r) => r.metrics.map((m) => m.clipFraction));
  const table = markdownTable(['algorithm (learning rate)', ...RESULT_HEAD, 'clip fraction (mean over steps)'],
    algos.map((a) => [`${a} (${tuned.lr[`${a}${variant?.tag ?? ''}`]})`, ...resultCells(runs[a]), a === 'gvpo' ? 'n/a' : (clip(runs[a]).reduce((x, y) => x + y, 0) / clip(runs[a]).length).toFixed(3)]));
  return { runs, table, tuned, base };
}

async function compare(ctx: ExperimentContext, log: (l: string) => void) {
  const algos: Algo[] = ['gvpo', 'grpo', 'drgrpo'];
  const recipe = await compareAt(ctx, algos, log);
  // 4 epochs: 16 updates per sampled batch, so pi_theta' is stale for 15 of them
  const stale = await compareAt(ctx, algos, log, { tag: '@epochs4', over: { epochs: ctx.quick ? 2 : 4 } });
  const seeds = seedsOf(ctx);
  const before = recipe.runs.gvpo[0].accuracyBefore;
  const markdown = [
    `Command: \`${commandOf('text', ctx)}\``, '', settingsLine(recipe.base, seeds), '',
    `Greedy accuracy of the starting checkpoint on the evaluation prompts: ${before.toFixed(3)}. GRPO: advantages divided by the group's std, ratio clipped at 1 ± 0.2 against the policy that sampled the group, per-sequence token mean; Dr.GRPO: mean-centred advantages, constant normaliser; neither has a KL penalty here (as in the official GVPO script, which sets use_kl_loss=False).`, '',
    `Learning rates, tuned per algorithm and per structure on the same grid (final reward of the policy's samples at tuning seeds, not the reported ones):`, '', stale.tuned.table, '',
    `**The official structure** (${recipe.base.miniBatches} mini-batches, 1 epoch: ${recipe.base.miniBatches} updates per sampled batch):`, '',
    recipe.table, '', '![accuracy, reward and KL over steps](experiments/text/curves.svg)', '',
    `**Staler** (${stale.base.miniBatches} mini-batches, ${stale.base.epochs} epochs: ${stale.base.miniBatches * stale.base.epochs} updates per sampled batch):`, '',
    stale.table, '', '![the same with more updates per batch](experiments/text/curves-epochs.svg)',
  ].join('\n');
  return {
    markdown,
    charts: {
      'curves.svg': svgChart(standardPanels(algos.map((a) => [a, recipe.runs[a]]))),
      'curves-epochs.svg': svgChart(standardPanels(algos.map((a) => [a, stale.runs[a]]))),
    },
  };
}

async function offPolicy(ctx: ExperimentContext, log: (l: string) => void) {
  const algos: Algo[] = ['gvpo', 'grpo'];
  const tuned = await tuneText(ctx, algos, log);
  const seeds = seedsOf(ctx);
  const shares: Array<[string, number]> = [['0:8', 0], ['2:6', 0.25], ['4:4', 0.5]];
  const runs: Record<string, RunSummary[]> = {};
  let base = textBase(ctx);
  for (const algo of algos) {
    for (const [name, ratio] of shares) {
      base = textBase(ctx, { algo, learningRate: tuned.lr[algo], replayRatio: ratio, replayCapacity: 4 * textBase(ctx).promptsPerStep });
      runs[`${algo} ${name}`] = await overSeeds(base, seeds, log);
    }
  }
  const keys = Object.keys(runs);
  const table = markdownTable(['algorithm, history:current', ...RESULT_HEAD], keys.map((k) => [k, ...resultCells(runs[k])]));
  const markdown = [
    `Command: \`${commandOf('off-policy', ctx)}\``, '', settingsLine(base, seeds), '',
    `History:current is the share of each step's groups replayed from a buffer of the last ${4 * base.promptsPerStep} groups generated by earlier policies (the ratios 0:8, 2:6, 4:4 of the paper's ablation, applied to ${base.promptsPerStep} groups per step). ` +
    `Replayed groups keep their rewards; GVPO recomputes Sref under pi_theta' and uses no importance weight; GRPO's ratio is taken against the stored log-probs of the policy that generated each group, clipped at 1 ± 0.2. ` +
    `Learning rates from the text experiment's tuning: ${algos.map((a) => `${a} ${tuned.lr[a]}`).join(', ')}.`, '',
    table, '', '![accuracy, reward and KL over steps](experiments/off-policy/curves.svg)',
  ].join('\n');
  return { markdown, charts: { 'curves.svg': svgChart(standardPanels(keys.map((k) => [k, runs[k]]))) } };
}

export const text: Experiment = { title: '2. GVPO vs GRPO vs Dr.GRPO on the text task', run: compare };
export const offPolicyExperiment: Experiment = { title: '3. Off-policy data', run: offPolicy };
