// Experiments on the text task (textSetup.ts):
//   "text"        GVPO and the baselines at the official recipe's structure (4 mini-batches of
//                 whole groups per step, previous-step reference), then the staleness sweep: 1, 4,
//                 8 and 16 updates per sampled batch, each method at its tuned rate, and at 8 and
//                 16 GRPO and Dr.GRPO again without their clip;
//   "off-policy"  a frozen reference and groups the policy did not sample: replayed from earlier
//                 policies (history:current 0:8, 2:6, 4:4), drawn by a fixed sampler (the warm-up
//                 checkpoint), or demonstrations from the task's solver; GVPO without importance
//                 weights against GRPO with the correct ratio and REINFORCE with truncated weights
//                 and with none.
import { markdownTable, svgChart } from '../report.js';
import type { RunOptions, RunSummary } from '../runOptions.js';
import { meanCi } from '../stats.js';
import { cell, commandOf, type Experiment, type ExperimentContext, pairedCell, seedsOf } from './common.js';
import { gradientIdentity } from './identity.js';
import { METHODS, type MethodId } from './methods.js';
import {
  gain,
  overSeeds,
  pairedGainTable,
  settingsLine,
  standardPanels,
  TEXT_COEF,
  TEXT_HEAD,
  textCells,
  textRun,
  tuneText,
} from './textSetup.js';

/** The baselines at the official structure, with the shared pi_theta' as every method's reference. */
export const TEXT_METHODS: MethodId[] = ['gvpo', 'grpo-k3', 'drgrpo', 'reinforce'];
/** Updates per sampled batch: [mini-batches, epochs]. */
const STALENESS: Array<[number, number]> = [
  [1, 1],
  [4, 1],
  [4, 2],
  [4, 4],
];

/** The clip's ablation: each clipped method and itself without the clip, at its tuned rate, at
 *  the staleness where the clipped methods kept more of their gain than GVPO. */
const NO_CLIP: Array<[MethodId, MethodId]> = [
  ['grpo-k3', 'grpo-k3-noclip'],
  ['drgrpo', 'drgrpo-noclip'],
];
const NO_CLIP_AT: Array<[number, number]> = [
  [4, 2],
  [4, 4],
];

function clipCell(rs: RunSummary[], m: MethodId): string {
  return METHODS[m].algo === 'gvpo'
    ? 'n/a'
    : cell(
        rs.map((r) => r.metrics.reduce((a, x) => a + x.clipFraction, 0) / r.metrics.length),
        3,
      );
}

async function compare(ctx: ExperimentContext, log: (l: string) => void) {
  const seeds = seedsOf(ctx);
  const methods = TEXT_METHODS;
  const tuned = await tuneText(ctx, methods, log);
  const configs = methods.map((m) => ({ ...textRun(ctx, m), learningRate: tuned.lr[m] }));
  // the staleness sweep, each method at its own tuned rate (tuned at the official structure's 4
  // updates, whose row is the main table's runs)
  const sweep = ctx.quick ? STALENESS.slice(0, 2) : STALENESS;
  const official = sweep.findIndex(([mb, ep]) => mb === configs[0].miniBatches && ep === configs[0].epochs);
  const staleConfigs = sweep
    .filter((_, i) => i !== official)
    .flatMap(([miniBatches, epochs]) =>
      methods.map((m) => ({ ...textRun(ctx, m), learningRate: tuned.lr[m], miniBatches, epochs })),
    );
  const noClipAt = ctx.quick ? sweep.slice(-1) : NO_CLIP_AT;
  const noClipConfigs = noClipAt.flatMap(([miniBatches, epochs]) =>
    NO_CLIP.map(([m, off]) => ({ ...textRun(ctx, off), learningRate: tuned.lr[m], miniBatches, epochs })),
  );
  const [main, others, noClip] = await Promise.all([
    overSeeds(ctx, configs, seeds),
    overSeeds(ctx, staleConfigs, seeds),
    overSeeds(ctx, noClipConfigs, seeds),
  ]);
  const stale =
    official < 0
      ? others
      : [...others.slice(0, official * methods.length), ...main, ...others.slice(official * methods.length)];
  const runs = Object.fromEntries(methods.map((m, i) => [m, main[i]])) as Record<MethodId, RunSummary[]>;
  for (const m of methods)
    log(`${m}: held-out gain ${meanCi(runs[m].map((r) => r.accuracyAfter - r.accuracyBefore)).mean.toFixed(3)}`);
  const table = markdownTable(
    ['method (learning rate)', ...TEXT_HEAD, 'clip fraction (GRPO, Dr.GRPO)'],
    methods.map((m) => [`${METHODS[m].label} (${tuned.lr[m]})`, ...textCells(runs[m]), clipCell(runs[m], m)]),
  );
  const staleTable = markdownTable(
    ['updates per sampled batch', ...methods.map((m) => `${METHODS[m].label}: held-out gain`)],
    sweep.map(([mb, ep], i) => [
      `${mb * ep} (${mb} mini-batches x ${ep} epochs)`,
      ...methods.map((_, j) => cell(stale[i * methods.length + j].map((r) => r.accuracyAfter - r.accuracyBefore))),
    ]),
  );
  const staleKl = markdownTable(
    ['updates per sampled batch', ...methods.map((m) => `${METHODS[m].label}: KL to the start`)],
    sweep.map(([mb, ep], i) => [
      `${mb * ep}`,
      ...methods.map((_, j) =>
        cell(
          stale[i * methods.length + j].map((r) => r.klInitial),
          4,
        ),
      ),
    ]),
  );
  // GVPO against each method at every staleness, paired over seeds
  const stalePaired = markdownTable(
    ['updates per sampled batch', ...methods.slice(1).map((m) => `GVPO gain minus ${METHODS[m].label}'s`)],
    sweep.map(([mb, ep], i) => [
      `${mb * ep}`,
      ...methods
        .slice(1)
        .map((_, j) => pairedCell(stale[i * methods.length + j + 1].map(gain), stale[i * methods.length].map(gain))),
    ]),
  );
  const clipTable = markdownTable(
    [
      'updates per sampled batch',
      'method',
      'held-out gain with the clip',
      'without it',
      'without minus with (paired)',
      'GVPO minus without (paired)',
      'KL to the start with the clip',
      'without it',
      'clip fraction with the clip',
    ],
    noClipAt.flatMap(([mb, ep], i) => {
      const at = sweep.findIndex(([b, e]) => b === mb && e === ep);
      return NO_CLIP.map(([m], j) => {
        const off = noClip[i * NO_CLIP.length + j];
        const on = stale[at * methods.length + methods.indexOf(m)];
        const gvpo = stale[at * methods.length + methods.indexOf('gvpo')];
        return [
          `${mb * ep}`,
          METHODS[m].label,
          cell(on.map(gain)),
          cell(off.map(gain)),
          pairedCell(on.map(gain), off.map(gain)),
          pairedCell(off.map(gain), gvpo.map(gain)),
          cell(
            on.map((r) => r.klInitial),
            4,
          ),
          cell(
            off.map((r) => r.klInitial),
            4,
          ),
          clipCell(on, m),
        ];
      });
    }),
  );
  const base: RunOptions = configs[0];
  const identity = await gradientIdentity(ctx.tf, TEXT_COEF, tuned.lr.gvpo);
  const markdown = [
    `Command: \`${commandOf('text', ctx)}\``,
    '',
    settingsLine(base, seeds),
    '',
    `Methods: GVPO (beta ${TEXT_COEF}, the previous step's policy as pi_theta', as the official recipe runs it); GRPO (advantages divided by the group's std, ratio clipped at 1 ± 0.2 ` +
      `against the sampling policy, per-sequence token mean, the k3 KL term at coefficient ${TEXT_COEF} to the same pi_theta': the shared structure, not DeepSeekMath's k3 term to a frozen reference at 0.04, which experiment 3 runs at ${TEXT_COEF}); Dr.GRPO (mean-centered advantages, the same clipped ratio, ` +
      `a constant normalizer, no KL, as its authors run it); REINFORCE with the group-mean baseline (RLOO's scaling, no KL). With pi_theta' the previous step's policy, an exact KL penalty ` +
      `in the reward is 0 at sampling time, so the KL-in-reward variants coincide with the no-KL ones here (the bandit experiment separates them). ` +
      `Every log-prob is taken at the sampling temperature.`,
    '',
    `Learning rates, tuned per method on a log grid at the tuning seeds (score: greedy accuracy gain + reward at T = 1 at the end, on the task's validation prompts: a half of the held-out operand pairs, apart from the half every table reports):`,
    '',
    '<details><summary>tuning runs</summary>',
    '',
    tuned.table,
    '',
    '</details>',
    '',
    `**The official structure** (${base.miniBatches} mini-batches, 1 epoch: ${base.miniBatches} updates per sampled batch), each method at its tuned rate:`,
    '',
    table,
    '',
    '**Paired over seeds** (the same seeds, so the same prompts and the same starting point):',
    '',
    pairedGainTable(runs),
    '',
    '![held-out accuracy, training reward and KL over steps](experiments/text/curves.svg)',
    '',
    `**Staleness**: updates per sampled batch, each method at its tuned rate (tuned at ${base.miniBatches} updates; that row is the table above): held-out greedy accuracy gain, and KL to the starting policy.`,
    '',
    staleTable,
    '',
    'Paired over seeds:',
    '',
    stalePaired,
    '',
    staleKl,
    '',
    `![the same at ${sweep[sweep.length - 1][0] * sweep[sweep.length - 1][1]} updates per sampled batch](experiments/text/curves-stale.svg)`,
    '',
    "**The clip's share under reuse**: GRPO and Dr.GRPO again with the ratio unclipped (the plain importance-weighted surrogate, `clip: Infinity`), each at its clipped version's tuned rate, on the same seeds:",
    '',
    clipTable,
    '',
    "**GVPO against REINFORCE, numerically.** With a frozen reference, per sequence, GVPO's gradient is dL/dS = beta/((k-1)G) (beta (p - q) - a) and " +
      "REINFORCE's with the exact KL at coefficient beta in the reward (computed at the sampling policy, verl's use_kl_in_reward) is -1/((k-1)G) (a - beta (p_old - q)), " +
      'with a, p, q, p_old the group-centered rewards, log-probs, reference log-probs and sampling-time log-probs. So GVPO = beta REINFORCE + beta²/((k-1)G) (p - p_old): ' +
      "a group-baseline policy gradient with the exact KL in the reward at the first update on fresh groups, and apart from it by the variance term's pull back to p_old " +
      "once the policy moves within a step. Measured with the library's own losses on one batch of 16 prompts x 8 from the shipped checkpoint after 10 GVPO steps away " +
      `from it (beta ${TEXT_COEF}, Adam at GVPO's tuned rate), through 3 updates on that batch:`,
    '',
    identity,
  ].join('\n');
  const last = (sweep.length - 1) * methods.length;
  return {
    markdown,
    charts: {
      'curves.svg': svgChart(standardPanels(methods.map((m) => [METHODS[m].label, runs[m]]))),
      'curves-stale.svg': svgChart(standardPanels(methods.map((m, j) => [METHODS[m].label, stale[last + j]]))),
    },
  };
}

/** Off-policy sources of a step's groups: [name, run options]; every one at --quick too (each
 *  has its own code: a quick run once left out the fixed sampler, which had stopped working). */
function sources(base: (m: MethodId) => RunOptions, m: MethodId): Array<[string, RunOptions]> {
  const o = base(m);
  return [
    ['on-policy (0:8)', o],
    ['replay 2:6', { ...o, replayRatio: 0.25, replayCapacity: 4 * o.promptsPerStep }],
    ['replay 4:4', { ...o, replayRatio: 0.5, replayCapacity: 4 * o.promptsPerStep }],
    ['fixed sampler (the warm-up checkpoint), half the groups', { ...o, fixedSampler: 0.5 }],
    ['demonstrations in half the groups', { ...o, demonstrations: 0.5 }],
  ];
}

// REINFORCE twice: with truncated importance weights, and with none (as GVPO), the KL in the
// reward both times
const OFF_POLICY_METHODS: MethodId[] = ['gvpo', 'grpo-k3', 'reinforce-is', 'reinforce-kl-reward'];

async function offPolicy(ctx: ExperimentContext, log: (l: string) => void) {
  const seeds = seedsOf(ctx);
  const methods = OFF_POLICY_METHODS;
  const tuned = await tuneText(ctx, methods, log, 'frozen');
  const base = (m: MethodId) => ({ ...textRun(ctx, m, { reference: 'frozen' }), learningRate: tuned.lr[m] });
  const names = sources(base, 'gvpo').map(([n]) => n);
  const configs = methods.flatMap((m) => sources(base, m).map(([, o]) => o));
  const results = await overSeeds(ctx, configs, seeds);
  const of = (m: MethodId, i: number) => results[methods.indexOf(m) * names.length + i];
  const table = markdownTable(
    ['source of the groups', 'method (learning rate)', ...TEXT_HEAD],
    names.flatMap((n, i) => methods.map((m) => [n, `${METHODS[m].label} (${tuned.lr[m]})`, ...textCells(of(m, i))])),
  );
  const paired = names
    .map((n, i) => `${n}:\n\n${pairedGainTable(Object.fromEntries(methods.map((m) => [m, of(m, i)])))}`)
    .join('\n\n');
  const shown = Math.min(2, names.length - 1); // the chart's source: replay 4:4 in a full run
  const markdown = [
    `Command: \`${commandOf('off-policy', ctx)}\``,
    '',
    settingsLine(base('gvpo'), seeds),
    '',
    `The reference is frozen at the warm-up checkpoint (KL strength ${TEXT_COEF} for every method). History:current is the share of each step's groups replayed from a buffer ` +
      `of the ${4 * base('gvpo').promptsPerStep} latest groups generated by earlier policies; the fixed sampler is the warm-up checkpoint itself at temperature 1; ` +
      `a demonstration group holds the solver's answer as one of its k responses, the others sampled by the policy. Every sampler's probabilities are known and handed to the ` +
      `trainer: GRPO's clipped ratio and REINFORCE's weights (truncated at 5) are against the distribution that drew each response (the solver gives its answer with probability 1); ` +
      `GVPO uses no importance weight anywhere, nor does the second REINFORCE (both REINFORCEs take the KL in the reward as the log-ratio of the policy at the start of the step to the reference, on each response). Learning rates tuned on-policy with the frozen reference: ${methods.map((m) => `${METHODS[m].label} ${tuned.lr[m]}`).join(', ')}.`,
    '',
    table,
    '',
    '**Paired over seeds, per source:**',
    '',
    paired,
    '',
    `![held-out accuracy, training reward and KL over steps, ${names[shown]}](experiments/off-policy/curves.svg)`,
  ].join('\n');
  return {
    markdown,
    charts: { 'curves.svg': svgChart(standardPanels(methods.map((m) => [METHODS[m].label, of(m, shown)]))) },
  };
}

export const text: Experiment = { title: '2. Text: the official structure, and staleness', run: compare };
export const offPolicyExperiment: Experiment = { title: '3. Off-policy text', run: offPolicy };
