// Experiments on the terms and the knobs of GVPO:
//   "robustness"  the group size k in {2, 4, 8, 16} at a fixed number of sequences per step (GVPO
//                 and GRPO), and GVPO's beta over two decades (0.01, 0.1, 1) with the previous
//                 step's policy as reference and with a frozen one, on the text task;
//   "terms"       the paper's ablations (no variance term, no trust-region term) beside the full
//                 loss, and the three terms over a run, on the bandit and on text.
import { markdownTable, type Panel, svgChart } from '../report.js';
import type { RunOptions, RunSummary } from '../runOptions.js';
import { curveCi } from '../stats.js';
import type { TermsAblation } from '../../tfjs/trainerOptions.js';
import { BANDIT, type BanditResult } from './bandit.js';
import { cell, commandOf, type Experiment, type ExperimentContext, seedsOf } from './common.js';
import { METHODS, type MethodId } from './methods.js';
import { banditSteps, COEF, tuneBandit } from './optimum.js';
import {
  band,
  gain,
  overSeeds,
  settingsLine,
  standardPanels,
  TEXT_HEAD,
  textCells,
  textRun,
  tuneText,
} from './textSetup.js';

async function robustness(ctx: ExperimentContext, log: (l: string) => void) {
  const seeds = seedsOf(ctx);
  const methods: MethodId[] = ['gvpo', 'grpo-k3'];
  const tuned = await tuneText(ctx, methods, log);
  const frozenLr = (await tuneText(ctx, ['gvpo'], log, 'frozen')).lr.gvpo;
  const base = (m: MethodId) => ({ ...textRun(ctx, m), learningRate: tuned.lr[m] });
  const sequences = base('gvpo').promptsPerStep * base('gvpo').groupSize;
  const ks = ctx.quick ? [2, 4] : [2, 4, 8, 16];
  const betas = ctx.quick ? [0.01, 1] : [0.01, 0.1, 1];
  const atK = (m: MethodId, k: number): RunOptions => {
    const prompts = Math.max(1, Math.round(sequences / k));
    return { ...base(m), groupSize: k, promptsPerStep: prompts, miniBatches: Math.min(base(m).miniBatches, prompts) };
  };
  const kConfigs = methods.flatMap((m) => ks.map((k) => atK(m, k)));
  // beta with the previous step's policy as reference (the official structure: at each first
  // update the gradient is beta times a policy gradient, a scale Adam removes) and with a frozen
  // one (beta is then the KL strength to a fixed pi_ref, where it sets the optimum)
  const bConfigs = betas.map((beta) => ({ ...base('gvpo'), beta }));
  const fConfigs = betas.map((beta) => ({
    ...textRun(ctx, 'gvpo', { reference: 'frozen' }),
    learningRate: frozenLr,
    beta,
  }));
  const [kRuns, bRuns, fRuns] = await Promise.all([
    overSeeds(ctx, kConfigs, seeds),
    overSeeds(ctx, bConfigs, seeds),
    overSeeds(ctx, fConfigs, seeds),
  ]);
  const kOf = (m: MethodId, i: number) => kRuns[methods.indexOf(m) * ks.length + i];
  const kTable = markdownTable(
    [
      'k (prompts per step)',
      ...methods.flatMap((m) => [
        `${METHODS[m].label}: held-out gain`,
        `${METHODS[m].label}: held-out reward at T = 1`,
      ]),
    ],
    ks.map((k, i) => [
      `${k} (${atK('gvpo', k).promptsPerStep})`,
      ...methods.flatMap((m) => [cell(kOf(m, i).map(gain)), cell(kOf(m, i).map((r) => r.evalRewardAfter))]),
    ]),
  );
  const bTable = markdownTable(
    ['GVPO beta', 'reference', ...TEXT_HEAD],
    [
      ...betas.map((b, i) => [String(b), "previous step's policy", ...textCells(bRuns[i])]),
      ...betas.map((b, i) => [String(b), `frozen at the checkpoint (rate ${frozenLr})`, ...textCells(fRuns[i])]),
    ],
  );
  const markdown = [
    `Command: \`${commandOf('robustness', ctx)}\``,
    '',
    settingsLine(base('gvpo'), seeds),
    '',
    `Group size varies at a fixed ${sequences} sequences per step (fewer prompts for larger k; mini-batches capped by the number of groups), for GVPO and for GRPO ` +
      `(whose std-normalized advantages are the most sensitive to k); beta varies for GVPO at k = ${base('gvpo').groupSize}, with the previous step's policy as reference and ` +
      `with the reference frozen at the checkpoint. Learning rates from the text experiments' tuning (at k = 8 and beta ${base('gvpo').beta}): ` +
      `${methods.map((m) => `${METHODS[m].label} ${tuned.lr[m]}`).join(', ')}; GVPO with the frozen reference ${frozenLr}; n = ${seeds.length} seeds per cell.`,
    '',
    '**Group size:**',
    '',
    kTable,
    '',
    '**GVPO beta over two decades:**',
    '',
    bTable,
    '',
    '![group size](experiments/robustness/group-size.svg)',
    '',
    '![beta](experiments/robustness/beta.svg)',
  ].join('\n');
  return {
    markdown,
    charts: {
      'group-size.svg': svgChart(standardPanels(ks.map((k, i) => [`GVPO, k ${k}`, kOf('gvpo', i)])).slice(0, 2)),
      'beta.svg': svgChart(
        standardPanels([
          ...betas.map((b, i): [string, RunSummary[]] => [`beta ${b}, previous`, bRuns[i]]),
          ...betas.map((b, i): [string, RunSummary[]] => [`beta ${b}, frozen`, fRuns[i]]),
        ]).slice(0, 3),
      ),
    },
  };
}

const ABLATIONS: TermsAblation[] = ['all', 'no-variance', 'no-trust-region'];

function bandOf(name: string, curves: Array<Array<[number, number]>>, dashed = false) {
  const c = curveCi(curves);
  return { name, points: c.mean, band: c.band, dashed };
}

async function terms(ctx: ExperimentContext, log: (l: string) => void) {
  const seeds = seedsOf(ctx);
  // the bandit: GVPO's rate as the optimum experiment tunes it, the reference frozen, on-policy
  const steps = banditSteps(ctx);
  const lr = (await tuneBandit(ctx, ['gvpo'], log)).lr.gvpo;
  const banditSpecs = ABLATIONS.flatMap((t) =>
    seeds.map((seed) => ({
      method: 'gvpo' as MethodId,
      sampler: 'on-policy' as const,
      coef: COEF,
      lr,
      seed,
      steps,
      terms: t,
    })),
  );
  const textTuned = await tuneText(ctx, ['gvpo'], log);
  const textConfigs = ABLATIONS.map((t) => ({ ...textRun(ctx, 'gvpo'), learningRate: textTuned.lr.gvpo, terms: t }));
  const [banditFlat, text] = await Promise.all([
    ctx.pool.run<BanditResult>(banditSpecs.map((spec) => ({ kind: 'bandit' as const, spec }))),
    overSeeds(ctx, textConfigs, seeds),
  ]);
  const bandit = ABLATIONS.map((_, i) => banditFlat.slice(i * seeds.length, (i + 1) * seeds.length));
  const banditTable = markdownTable(
    ['GVPO terms kept', `KL(pi* ‖ pi) after ${steps} steps`, 'KL(pi ‖ pi_ref) at the end', 'E_pi[R] - E_pi*[R]'],
    ABLATIONS.map((t, i) => [
      t,
      cell(
        bandit[i].map((r) => r.final),
        4,
      ),
      cell(
        bandit[i].map((r) => r.klRef),
        3,
      ),
      cell(
        bandit[i].map((r) => r.reward - r.optimumReward),
        3,
      ),
    ]),
  );
  const termCurves = (rs: BanditResult[], key: 'advantage' | 'trustRegion' | 'variance') =>
    rs.map((r) => r.metrics.map((m): [number, number] => [m.step, m[key]]));
  const banditPanels: Panel[] = [
    {
      title: 'bandit: distance to pi*',
      yLabel: 'KL(pi* || pi)',
      logY: true,
      series: ABLATIONS.map((t, i) =>
        bandOf(
          t,
          bandit[i].map((r) => r.toOptimum),
        ),
      ),
    },
    {
      title: 'bandit: distance from the reference',
      yLabel: 'KL(pi || pi_ref)',
      series: ABLATIONS.map((t, i) =>
        bandOf(
          t,
          bandit[i].map((r) => r.fromRef),
        ),
      ),
    },
    {
      title: 'bandit, full GVPO: its terms over the run',
      yLabel: 'value',
      series: (['advantage', 'trustRegion', 'variance'] as const).map((k) => bandOf(k, termCurves(bandit[0], k))),
    },
  ];
  const textTable = markdownTable(
    ['GVPO terms kept', ...TEXT_HEAD, 'entropy, last step'],
    ABLATIONS.map((t, i) => [t, ...textCells(text[i]), cell(text[i].map((r) => r.metrics.at(-1)!.entropy))]),
  );
  const textPanels: Panel[] = [
    {
      title: 'text, full GVPO: its terms over the run (mean over updates)',
      yLabel: 'value',
      series: (['advantage', 'trustRegion', 'variance'] as const).map((k) => band(k, text[0], (m) => m[k])),
    },
    {
      title: 'loss minimized (mean over updates)',
      yLabel: 'value',
      series: ABLATIONS.map((t, i) => band(t, text[i], (m) => m.loss)),
    },
    ...standardPanels(ABLATIONS.map((t, i): [string, RunSummary[]] => [t, text[i]])).slice(0, 3),
    {
      title: 'entropy of the policy (nats per token)',
      yLabel: 'nats',
      series: ABLATIONS.map((t, i) => band(t, text[i], (m) => m.entropy)),
    },
  ];
  const markdown = [
    `Command: \`${commandOf('terms', ctx)}\``,
    '',
    'The ablations write the loss on S as its decomposition (advantage + trust region + variance + constant, each scaled by 1/(k-1) per group) and drop one term: ' +
      'without the variance term dL/dS = -beta/(k-1) (a + beta q) no longer depends on S, a policy gradient with no restoring force; without the trust-region term ' +
      "dL/dS = beta/(k-1) (beta p - a) pulls the centered log-probs to R/beta with no anchor to pi_theta'. The terms logged are GVPO's at each update, whatever loss was minimized.",
    '',
    `**On the bandit** (the optimum experiment's set-up: ${BANDIT.prompts} prompts x ${BANDIT.responses} responses, the reference frozen at the initial policy, beta ${COEF}, ` +
      `${BANDIT.promptsPerStep} prompts x k = ${BANDIT.groupSize} per step, ${BANDIT.miniBatches} mini-batches, Adam at GVPO's tuned ${lr}, on-policy, ${steps} steps; n = ${seeds.length} seeds), ` +
      'where the policy has to move far from pi_ref:',
    '',
    banditTable,
    '',
    '![the ablations on the bandit](experiments/terms/bandit.svg)',
    '',
    `**On text** (${settingsLine(textConfigs[0], seeds)} GVPO's tuned rate ${textTuned.lr.gvpo}):`,
    '',
    textTable,
    '',
    '![terms, loss, accuracy, reward, KL and entropy over steps](experiments/terms/terms.svg)',
  ].join('\n');
  return { markdown, charts: { 'bandit.svg': svgChart(banditPanels), 'terms.svg': svgChart(textPanels) } };
}

export const robustnessExperiment: Experiment = { title: '4. Robustness: group size and beta', run: robustness };
export const termsExperiment: Experiment = { title: '5. The terms: ablations and diagnostics', run: terms };
