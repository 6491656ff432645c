// Experiments on the text task, GVPO alone:
//   "robustness"  group size k in {2, 4, 8, 16} at a fixed number of sequences per step, and
//                 beta over two decades (0.01, 0.1, 1);
//   "terms"       the paper's ablations (no variance term, no trust-region term) next to the full
//                 loss, and the three terms over a run.
import { markdownTable, svgChart } from '../report.js';
import type { RunOptions, RunSummary } from '../runOptions.js';
import { commandOf, type Experiment, type ExperimentContext, overSeeds, RESULT_HEAD, resultCells, seedsOf, settingsLine, textBase, tuneText } from './common.js';
import { banditRun, BETA, type Curve } from './optimum.js';
import { curveCi, fmtCi, meanCi } from '../stats.js';
import { band, standardPanels } from './text.js';

async function robustness(ctx: ExperimentContext, log: (l: string) => void) {
  const tuned = await tuneText(ctx, ['gvpo'], log);
  const seeds = seedsOf(ctx);
  const base = textBase(ctx, { learningRate: tuned.lr.gvpo });
  const sequences = base.promptsPerStep * base.groupSize;
  const ks = ctx.quick ? [2, 4] : [2, 4, 8, 16];
  const betas = ctx.quick ? [0.01, 1] : [0.01, 0.1, 1];
  const runs: Record<string, RunSummary[]> = {};
  const configs: Array<[string, RunOptions]> = [
    ...ks.map((k): [string, RunOptions] => {
      const prompts = Math.max(1, Math.round(sequences / k));
      return [`k ${k} (${prompts} prompts)`, { ...base, groupSize: k, promptsPerStep: prompts, miniBatches: Math.min(base.miniBatches, prompts) }];
    }),
    ...betas.filter((b) => b !== base.beta || ctx.quick).map((b): [string, RunOptions] => [`beta ${b} (k ${base.groupSize})`, { ...base, beta: b }]),
  ];
  for (const [name, o] of configs) runs[name] = await overSeeds(o, seeds, log);
  const kKeys = Object.keys(runs).filter((n) => n.startsWith('k '));
  const bKeys = [...Object.keys(runs).filter((n) => n.startsWith('beta ')), ...(ctx.quick ? [] : [`k ${base.groupSize} (${base.promptsPerStep} prompts)`])];
  const table = markdownTable(['configuration', ...RESULT_HEAD], Object.keys(runs).map((k) => [k, ...resultCells(runs[k])]));
  const markdown = [
    `Command: \`${commandOf('robustness', ctx)}\``, '', settingsLine(base, seeds), '',
    `Group size varies at a fixed ${sequences} sequences per step (fewer prompts for larger k; mini-batches capped by the number of groups); beta varies at k = ${base.groupSize} ` +
    `(the k = ${base.groupSize} row is the beta = ${base.beta} point). GVPO's learning rate from the text experiment's tuning: ${tuned.lr.gvpo}.`, '',
    table, '', '![group size](experiments/robustness/group-size.svg)', '', '![beta](experiments/robustness/beta.svg)',
  ].join('\n');
  return {
    markdown,
    charts: {
      'group-size.svg': svgChart(standardPanels(kKeys.map((k) => [k, runs[k]])).slice(0, 2)),
      'beta.svg': svgChart(standardPanels(bKeys.map((k) => [k, runs[k]])).slice(0, 3)),
    },
  };
}

async function terms(ctx: ExperimentContext, log: (l: string) => void) {
  const tuned = await tuneText(ctx, ['gvpo'], log);
  const seeds = seedsOf(ctx);
  const base = textBase(ctx, { learningRate: tuned.lr.gvpo });
  const variants = ['all', 'no-variance', 'no-trust-region'] as const;
  const runs: Record<string, RunSummary[]> = {};
  for (const t of variants) runs[t] = await overSeeds({ ...base, terms: t }, seeds, log);
  const entropy = (rs: RunSummary[]) => rs.map((r) => r.metrics.at(-1)!.entropy);
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  const table = markdownTable(['GVPO terms kept', ...RESULT_HEAD, 'entropy, last step (mean)'],
    variants.map((t) => [t, ...resultCells(runs[t]), mean(entropy(runs[t])).toFixed(3)]));
  const diag = svgChart([
    { title: 'full GVPO: its terms over the run (mean over updates)', yLabel: 'value', series: (['advantage', 'trustRegion', 'variance', 'constant'] as const).map((k) => band(k, runs.all, (m) => m[k])) },
    { title: 'loss minimised (mean over updates)', yLabel: 'value', series: variants.map((t) => band(t, runs[t], (m) => m.loss)) },
    ...standardPanels(variants.map((t) => [t, runs[t]])).slice(0, 3),
    { title: 'entropy of the policy (nats per token)', yLabel: 'nats', series: variants.map((t) => band(t, runs[t], (m) => m.entropy)) },
  ]);
  // the same ablations where the policy must travel far from a frozen reference: the bandit
  const banditSteps = ctx.quick ? 10 : 150;
  const bandit: Record<string, Curve[]> = {};
  for (const t of variants) {
    bandit[t] = [];
    for (const seed of seeds) bandit[t].push(await banditRun(ctx, 'gvpo', 'on-policy', 0.05, seed, banditSteps, { terms: t }));
    log(`bandit ${t}: KL(pi* || pi) ${fmtCi(meanCi(bandit[t].map((c) => c.final)), 4)}`);
  }
  const banditTable = markdownTable(['GVPO terms kept', `KL(pi* ‖ pi) after ${banditSteps} steps`, 'KL(pi ‖ pi_ref) at the end', 'E_pi[R] - E_pi*[R]'],
    variants.map((t) => [t, fmtCi(meanCi(bandit[t].map((c) => c.final)), 4), fmtCi(meanCi(bandit[t].map((c) => c.fromRef.at(-1)![1])), 3), fmtCi(meanCi(bandit[t].map((c) => c.reward)), 3)]));
  const banditSvg = svgChart([
    { title: 'bandit, frozen reference: distance to pi*', yLabel: 'KL(pi* || pi)', logY: true, series: variants.map((t) => ({ name: t, ...bandOf(bandit[t].map((c) => c.points)) })) },
    { title: 'bandit: distance from the reference', yLabel: 'KL(pi || pi_ref)', series: variants.map((t) => ({ name: t, ...bandOf(bandit[t].map((c) => c.fromRef)) })) },
  ]);
  const markdown = [
    `Command: \`${commandOf('terms', ctx)}\``, '', settingsLine(base, seeds), '',
    'The ablations keep the loss on S written as its decomposition (advantage + trust region + variance + constant, each scaled by 1/(k-1) per group) and drop one term: ' +
    'without the variance term dL/dS = -beta/(k-1) (a + beta q) no longer depends on S, a policy gradient with no restoring force; without the trust-region term ' +
    'dL/dS = beta/(k-1) (beta p - a) pulls the centred log-probs to R/beta with no anchor to pi_theta\'. The terms shown are GVPO\'s at each update, whatever loss was minimised. ' +
    `Learning rate from the text experiment's tuning: ${tuned.lr.gvpo}.`, '',
    table, '', '![terms, loss, accuracy, reward, KL and entropy over steps](experiments/terms/terms.svg)', '',
    `**On the bandit** (the optimum experiment's set-up: 4 prompts x 6 responses, tabular policy, reference frozen at the initial policy, beta ${BETA}, ` +
    `8 prompts x k = 8 per step, 4 mini-batches, Adam at 0.05, on-policy sampling, ${banditSteps} steps, seeds ${seeds.join(', ')}), where the policy has to move far from pi_ref:`, '',
    banditTable, '', '![the ablations on the bandit](experiments/terms/bandit.svg)',
  ].join('\n');
  return { markdown, charts: { 'terms.svg': diag, 'bandit.svg': banditSvg } };
}

function bandOf(curves: Array<Array<[number, number]>>) {
  const c = curveCi(curves);
  return { points: c.mean, band: c.band };
}

export const robustnessExperiment: Experiment = { title: '4. Robustness: group size and beta', run: robustness };
export const termsExperiment: Experiment = { title: '5. The terms: ablations and diagnostics', run: terms };
