// The `gvpo` command's flags: one table (name, value kind, rule, help), a parser that refuses
// unknown flags (naming the closest), missing values and out-of-range values with exit code 2,
// all before TensorFlow.js loads.
import { existsSync, statSync } from 'node:fs';
import { ALGOS as TRAINER_ALGOS, TRAINER_DEFAULTS, TRAINER_LIMITS } from '../tfjs/trainerOptions.js';
import { isSamplingTemperature, SAMPLING_TEMPERATURE } from '../validate.js';
import { WARMUP_DEFAULTS } from '../tfjs/warmup.js';
import { CLI_DEFAULTS, RUN_DEFAULTS, TASK_DEFAULTS, WARMUP_OUT } from './defaults.js';

export class UsageError extends Error {}

/** An error message, or undefined when valid; `values`, where the flag takes one of a list, is
 *  what help shows in place of V. */
type Rule = ((v: string) => string | undefined) & { values?: string };

interface Flag {
  /** 'bool' flags take no value. */
  kind: 'bool' | 'value';
  help: string;
  rule?: Rule;
  /** Shown in help; the value itself comes from defaults.ts. */
  shown?: string;
}

// Numbers are read strictly: Number() would also take ' 2', '+2', '0x10' (16), '1e1' for an
// integer and '-0' for a count, none of which a user means as written. An integer flag takes
// decimal digits (a minus sign only where negatives are allowed), a real one a decimal or
// scientific number.
const INTEGER = /^\d+$/;
const SIGNED_INTEGER = /^-?\d+$/;
const DECIMAL = /^-?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;
const int =
  (min: number, max = Number.MAX_SAFE_INTEGER): Rule =>
  (v) => {
    const x = Number(v);
    const digits = (min < 0 ? SIGNED_INTEGER : INTEGER).test(v);
    if (digits && x >= min && x <= max) return undefined;
    // an unbounded count (--steps) may be large, but no larger than a double counts exactly
    const range =
      max !== Number.MAX_SAFE_INTEGER ? `in [${min}, ${max}]` : x > max ? `in [${min}, 2^53 - 1]` : `>= ${min}`;
    return `an integer ${range}${digits ? '' : ', written in decimal digits'}`;
  };
const real =
  (test: (x: number) => boolean, what: string): Rule =>
  (v) =>
    !DECIMAL.test(v)
      ? `${what}, written in decimal or scientific notation (such as 0.001 or 1e-3)`
      : Number.isFinite(Number(v)) && test(Number(v))
        ? undefined
        : what;
const oneOf = (...allowed: string[]): Rule =>
  Object.assign((v: string) => (allowed.includes(v) ? undefined : `one of ${allowed.join(', ')}`), {
    values: allowed.join('|'),
  });
const listOf = (...allowed: string[]): Rule =>
  Object.assign(
    (v: string) =>
      v.split(',').every((x, i, all) => allowed.includes(x) && all.indexOf(x) === i)
        ? undefined
        : `a comma-separated list of distinct names from ${allowed.join(', ')}`,
    { values: `${allowed.join(',')}` },
  );
// a device (/dev/zero) or a pipe would be read without end
const file: Rule = (v) =>
  !existsSync(v) ? 'an existing file' : statSync(v).isFile() ? undefined : 'a regular file (not a directory or device)';

const d = TRAINER_DEFAULTS;
const L = TRAINER_LIMITS;
/** Seeds a comparison or an experiment runs: each is a whole run. */
const MAX_SEEDS = 1000;
/** The warm-up transformer's widest: 2 blocks of width 1024 hold about 25 million parameters. */
const MAX_WIDTH = 1024;
const byTask = (k: keyof (typeof TASK_DEFAULTS)['addition']) =>
  `addition ${TASK_DEFAULTS.addition[k]}, bandit ${TASK_DEFAULTS.bandit[k]}`;
const ALGOS = [...TRAINER_ALGOS];

export const RUN_FLAGS: Record<string, Flag> = {
  task: {
    kind: 'value',
    rule: oneOf('addition', 'bandit'),
    shown: 'addition',
    help: 'the task: two-digit addition (a small transformer, held-out prompts) or a 4-prompt bandit (tabular)',
  },
  algo: {
    kind: 'value',
    rule: oneOf(...ALGOS),
    shown: d.algo,
    help: 'the loss: gvpo; grpo (std-normalized advantages, clipped ratio); drgrpo (mean-centered, clipped ratio); reinforce (group-mean baseline)',
  },
  steps: { kind: 'value', rule: int(1), shown: byTask('steps'), help: 'sampled steps' },
  'group-size': {
    kind: 'value',
    rule: int(2, L.groupSize),
    shown: byTask('groupSize'),
    help: `k, responses per prompt (prompts x group size at most ${L.sequencesPerStep})`,
  },
  beta: {
    kind: 'value',
    rule: real((x) => x > 0, 'a number > 0'),
    shown: String(d.beta),
    help: "GVPO's KL coefficient",
  },
  prompts: {
    kind: 'value',
    rule: int(1, L.promptsPerStep),
    shown: byTask('promptsPerStep'),
    help: 'prompts (groups) per step',
  },
  'mini-batches': {
    kind: 'value',
    rule: int(1, L.miniBatches),
    shown: String(d.miniBatches),
    help: 'optimizer updates per pass over a step (whole groups each)',
  },
  epochs: { kind: 'value', rule: int(1, L.epochs), shown: String(d.epochs), help: "passes over each step's groups" },
  lr: {
    kind: 'value',
    rule: real((x) => x > 0, 'a number > 0'),
    shown: byTask('learningRate'),
    help: 'Adam learning rate',
  },
  temperature: {
    kind: 'value',
    // the trainer's rule (validate.ts), so that the command refuses before TensorFlow.js loads
    rule: real(isSamplingTemperature, SAMPLING_TEMPERATURE),
    shown: byTask('temperature'),
    help: 'sampling temperature',
  },
  reference: {
    kind: 'value',
    rule: oneOf('previous', 'frozen'),
    shown: d.reference,
    help: "pi_theta': the policy before each step's updates, or the initial one",
  },
  'replay-ratio': {
    kind: 'value',
    rule: real((x) => x >= 0 && x < 1, 'a number in [0, 1)'),
    shown: String(d.replayRatio),
    help: "share of each step's groups replayed from earlier policies' samples",
  },
  'replay-capacity': {
    kind: 'value',
    rule: int(1),
    shown: String(d.replayCapacity),
    help: 'groups the replay buffer holds',
  },
  demonstrations: {
    kind: 'value',
    rule: real((x) => x >= 0 && x <= 1, 'a number in [0, 1]'),
    shown: String(RUN_DEFAULTS.demonstrations),
    help: 'share of fresh groups that include the right answer as a response',
  },
  clip: {
    kind: 'value',
    rule: (v) => (v === 'none' ? undefined : real((x) => x > 0 && x < 1, 'a number in (0, 1), or none')(v)),
    shown: String(d.clip),
    help: 'GRPO / Dr.GRPO ratio clip range; none: no clip (the plain importance-weighted surrogate)',
  },
  'kl-coef': {
    kind: 'value',
    rule: real((x) => x >= 0, 'a number >= 0'),
    shown: String(d.klCoef),
    help: 'grpo / drgrpo / reinforce: KL coefficient to the reference',
  },
  'kl-in': {
    kind: 'value',
    rule: oneOf('loss', 'reward'),
    shown: d.klIn,
    help: 'where that KL goes: the k3 term of the loss, or an exact penalty in the reward',
  },
  'importance-cap': {
    kind: 'value',
    rule: real((x) => x === 0 || x >= 1, '0 or a number >= 1'),
    shown: String(d.importanceCap),
    help: 'reinforce: truncate importance weights pi/pi_sampler at this (0: none)',
  },
  terms: {
    kind: 'value',
    rule: oneOf('all', 'no-variance', 'no-trust-region'),
    shown: d.terms,
    help: "GVPO's terms kept (the paper's ablations)",
  },
  'eval-every': {
    kind: 'value',
    rule: int(0),
    shown: byTask('evalEvery'),
    help: 'greedy accuracy and reward at T = 1 on the evaluation prompts every N steps (0: before and after only); greedy accuracy is the share of prompts whose argmax answer is right (addition: the sum; bandit: the best-reward response)',
  },
  'eval-prompts': {
    kind: 'value',
    rule: int(1, L.evalPrompts),
    shown: byTask('evalPrompts'),
    help: 'prompts in the evaluation set (held-out for addition)',
  },
  init: {
    kind: 'value',
    rule: file,
    shown: 'checkpoints/addition-warmup.json',
    help: 'starting policy (a file written by gvpo warmup)',
  },
  seed: { kind: 'value', rule: int(0, 2 ** 32 - 1), shown: String(d.seed), help: 'random seed' },
  out: { kind: 'value', shown: 'runs/<task>-<algo>', help: 'folder for report.md, chart.svg, metrics.jsonl' },
  tf: {
    kind: 'value',
    rule: oneOf('auto', 'cpu', 'wasm', 'node', 'node-gpu'),
    shown: CLI_DEFAULTS.tf,
    help: 'TensorFlow.js backend: wasm (@tensorflow/tfjs-backend-wasm; the cpu backend when it is not installed), cpu (in @tensorflow/tfjs), node / node-gpu (@tensorflow/tfjs-node / -node-gpu), auto (node-gpu or node when installed, else cpu)',
  },
  quiet: { kind: 'bool', help: 'no progress output' },
  help: { kind: 'bool', help: 'this help' },
};

// compare runs each of --algos at seeds 1 to --seeds: --algo and --seed have no meaning there
const { algo: _algo, seed: _seed, ...withoutAlgo } = RUN_FLAGS;

export const COMMANDS: Record<string, { summary: string; usage: string; flags: Record<string, Flag> }> = {
  train: {
    summary: 'one training run: progress, report.md, chart.svg, metrics.jsonl',
    usage: 'gvpo train [options]',
    flags: RUN_FLAGS,
  },
  compare: {
    summary: 'algorithms side by side over seeds, one report with 95% intervals',
    usage: 'gvpo compare [options] [--algos gvpo,grpo] [--seeds N]',
    flags: {
      ...withoutAlgo,
      algos: { kind: 'value', rule: listOf(...ALGOS), shown: CLI_DEFAULTS.algos, help: 'algorithms to compare' },
      seeds: {
        kind: 'value',
        rule: int(1, MAX_SEEDS),
        shown: String(CLI_DEFAULTS.seeds),
        help: 'seeds 1..N per algorithm',
      },
      out: {
        kind: 'value',
        shown: 'runs/<task>-compare',
        help: 'folder for report.md, chart.svg and one folder per run',
      },
    },
  },
  experiment: {
    summary: 'one of the experiments: writes its EXPERIMENTS.md section and charts',
    usage:
      'gvpo experiment <optimum|text|off-policy|robustness|terms|all> [--quick] [--seeds N] [--out DIR] [--tf ...]',
    flags: {
      quick: { kind: 'bool', help: 'a small size (a smoke test, numbers not meaningful)' },
      seeds: { kind: 'value', rule: int(2, MAX_SEEDS), shown: '5; 2 with --quick', help: 'seeds per configuration' },
      out: {
        kind: 'value',
        shown: CLI_DEFAULTS.experimentsOut,
        help: 'folder that receives EXPERIMENTS.md and experiments/<name>/ (in the gvpo repository, `--out .` re-makes its own)',
      },
      tf: RUN_FLAGS.tf,
      quiet: RUN_FLAGS.quiet,
      help: RUN_FLAGS.help,
    },
  },
  warmup: {
    summary: 'the supervised warm-up that makes an addition starting policy',
    usage: 'gvpo warmup [--out FILE] [--steps N] [--hidden D] [--seed S] [--force]',
    flags: {
      out: { kind: 'value', shown: WARMUP_OUT, help: 'checkpoint to write' },
      steps: { kind: 'value', rule: int(1), shown: String(WARMUP_DEFAULTS.steps), help: 'supervised steps' },
      hidden: {
        kind: 'value',
        rule: (v) =>
          int(WARMUP_DEFAULTS.heads, MAX_WIDTH)(v) ??
          (Number(v) % WARMUP_DEFAULTS.heads ? `a multiple of ${WARMUP_DEFAULTS.heads}` : undefined),
        shown: String(WARMUP_DEFAULTS.width),
        help: `width of the transformer (a multiple of its ${WARMUP_DEFAULTS.heads} heads)`,
      },
      seed: RUN_FLAGS.seed,
      tf: RUN_FLAGS.tf,
      force: { kind: 'bool', help: 'overwrite --out if it exists (the shipped checkpoint included)' },
      help: RUN_FLAGS.help,
    },
  },
  info: {
    summary: 'backendInfo() and the TensorFlow.js backend',
    usage: 'gvpo info [--tf auto|cpu|wasm|node|node-gpu]',
    flags: { tf: RUN_FLAGS.tf, help: RUN_FLAGS.help },
  },
  help: { summary: "this text, or one command's options", usage: 'gvpo help [command]', flags: {} },
};

/** Edit distance with adjacent transpositions (optimal string alignment): "setps" is 1 from "steps". */
function distance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) =>
    Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)),
  );
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1])
        d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1);
    }
  }
  return d[a.length][b.length];
}

/** The known name nearest to `name` (edit distance), if it is near enough to be a typo. */
export function closest(name: string, known: string[]): string | undefined {
  let best: string | undefined;
  let bestD = Infinity;
  for (const k of known) {
    const dd = k.startsWith(name) || name.startsWith(k) ? 1 : distance(name, k);
    if (dd < bestD) [best, bestD] = [k, dd];
  }
  return bestD <= Math.max(2, Math.floor(name.length / 3)) ? best : undefined;
}

export interface Parsed {
  positionals: string[];
  values: Record<string, string>;
  bools: Set<string>;
}

/** Parses `args` against a command's flags; throws UsageError on anything it cannot accept. */
export function parseFlags(cmd: string, args: string[], flags: Record<string, Flag>): Parsed {
  const out: Parsed = { positionals: [], values: {}, bools: new Set() };
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === '-h') {
      out.bools.add('help');
      continue;
    }
    if (!a.startsWith('--')) {
      if (a.startsWith('-') && !/^-\d/.test(a))
        throw new UsageError(`unknown option '${a}' (options are spelled --name)`);
      out.positionals.push(a);
      continue;
    }
    const eq = a.indexOf('=');
    const name = a.slice(2, eq < 0 ? undefined : eq);
    // an own property only: `--__proto__` or `--toString` must not find Object.prototype's
    const flag = Object.hasOwn(flags, name) ? flags[name] : undefined;
    if (!flag) {
      const near = closest(name, Object.keys(flags));
      throw new UsageError(`unknown option --${name} for \`gvpo ${cmd}\`${near ? `; did you mean --${near}?` : ''}`);
    }
    if (flag.kind === 'bool') {
      if (eq >= 0) throw new UsageError(`--${name} takes no value`);
      out.bools.add(name);
      continue;
    }
    let v: string | undefined = eq >= 0 ? a.slice(eq + 1) : args[i + 1];
    if (eq < 0 && (v === undefined || (v.startsWith('-') && !/^-\.?\d/.test(v)))) v = undefined;
    else if (eq < 0) i++;
    if (v === undefined || v === '') throw new UsageError(`--${name} needs a value (${flag.help})`);
    const bad = flag.rule?.(v);
    if (bad) throw new UsageError(`--${name} must be ${bad}, got '${v}'`);
    out.values[name] = v;
  }
  return out;
}

export function commandHelp(cmd: string): string {
  const c = COMMANDS[cmd];
  const lines = [`usage: ${c.usage}`, '', c.summary];
  const entries = Object.entries(c.flags);
  if (entries.length) lines.push('', 'options:');
  for (const [name, f] of entries) {
    const left = `  --${name}${f.kind === 'value' ? ` ${f.rule?.values ?? 'V'}` : ''}`;
    const right = `${f.help}${f.shown ? ` (default: ${f.shown})` : ''}`;
    // a long list of values gets a line of its own, the help below it
    lines.push(left.length < 22 ? `${left.padEnd(22)} ${right}` : `${left}\n${' '.repeat(23)}${right}`);
  }
  return lines.join('\n');
}

export function generalHelp(): string {
  return [
    'usage: gvpo <command> [options]',
    '',
    'commands:',
    ...Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(11)} ${c.summary}`),
    '',
    '`gvpo help <command>` or `gvpo <command> --help` lists its options; `gvpo --version` prints the version.',
  ].join('\n');
}
