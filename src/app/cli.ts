#!/usr/bin/env node
// The `gvpo` command: `gvpo help` lists its commands, `gvpo help <command>` their options. Usage
// errors (an unknown flag, a missing or out-of-range value) are found before TensorFlow.js loads and end with a one-line message and exit code 2, never a stack trace.
import { accessSync, constants, existsSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { makeDirs } from './dirs.js';
import { secondsText } from './report.js';
import { closest, commandHelp, COMMANDS, generalHelp, parseFlags, type Parsed, UsageError } from './cliArgs.js';
import { CLI_DEFAULTS, WARMUP_OUT } from './defaults.js';
import { WARMUP_DEFAULTS } from '../tfjs/warmup.js';
import type { RunOptions } from './runOptions.js';
import type { TfChoice } from '../tfjs/tf.js';
import { ALGO_OPTIONS, type Algo, TRAINER_LIMITS } from '../tfjs/trainerOptions.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

function version(): string {
  return (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
}

/** The run options the flags give; what they leave out is filled by resolveRunOptions. */
function runOptions(p: Parsed): Partial<RunOptions> {
  const v = p.values;
  const n = (k: string) => (v[k] === undefined ? undefined : Number(v[k]));
  const o: Partial<RunOptions> = {
    task: v.task as RunOptions['task'],
    algo: v.algo as Algo,
    steps: n('steps'),
    groupSize: n('group-size'),
    beta: n('beta'),
    promptsPerStep: n('prompts'),
    miniBatches: n('mini-batches'),
    epochs: n('epochs'),
    learningRate: n('lr'),
    temperature: n('temperature'),
    reference: v.reference as RunOptions['reference'],
    replayRatio: n('replay-ratio'),
    replayCapacity: n('replay-capacity'),
    demonstrations: n('demonstrations'),
    clip: v.clip === 'none' ? Infinity : n('clip'),
    klCoef: n('kl-coef'),
    klIn: v['kl-in'] as RunOptions['klIn'],
    importanceCap: n('importance-cap'),
    terms: v.terms as RunOptions['terms'],
    evalEvery: n('eval-every'),
    evalPrompts: n('eval-prompts'),
    init: v.init,
    seed: n('seed'),
    out: v.out,
    tf: v.tf as RunOptions['tf'],
  };
  if (o.init && o.task === 'bandit') throw new UsageError('--init applies to --task addition only');
  return o;
}

/**
 * Loads TensorFlow.js for a command. The default backend, wasm, falls back to cpu (saying so, unless
 * `quiet`) when @tensorflow/tfjs-backend-wasm is not installed, so that `npm install gvpo
 * @tensorflow/tfjs` is enough to run the command; a backend named by --tf never falls back.
 */
async function startTf(p: Parsed, quiet: boolean): Promise<{ tf: TfChoice; backend: string; note?: string }> {
  const { quietTf } = await import('./runs.js');
  const asked = p.values.tf as TfChoice | undefined;
  const choice = asked ?? CLI_DEFAULTS.tf;
  try {
    return { tf: choice, backend: await quietTf(choice) };
  } catch (e) {
    const { code, peer } = e as { code?: string; peer?: string };
    if (asked || code !== 'GVPO_MISSING_PEER' || peer !== '@tensorflow/tfjs-backend-wasm') throw e;
    const note = `${peer} is not installed, so TensorFlow.js runs on its cpu backend, several times slower for these policies: \`npm install ${peer}\` for the default (--tf wasm), or pass --tf cpu to choose cpu and drop this line`;
    if (!quiet) console.error(`gvpo: ${note}`);
    return { tf: 'cpu', backend: await quietTf('cpu'), note };
  }
}

/** Fails at once, before a long run, when the folder `dir` cannot be made or written to; `what`
 *  names it in the message. */
function checkWritable(dir: string, what: string): void {
  // a file where the folder should be: makeDirs would say EEXIST, which does not say that
  if (existsSync(dir) && !statSync(dir).isDirectory())
    throw new UsageError(`${what}: cannot write there (it is a file; --out names a folder)`);
  try {
    makeDirs(dir);
    const probe = join(dir, `.gvpo-write-check-${process.pid}`);
    writeFileSync(probe, '');
    rmSync(probe);
  } catch (e) {
    throw new UsageError(`${what}: cannot write there (${(e as Error).message})`);
  }
}

/** A bad --init file is found before TensorFlow.js loads: the message names the file and what is wrong. */
async function checkInit(path: string | undefined): Promise<void> {
  if (!path) return;
  const { readPolicyFile } = await import('../tfjs/loadPolicy.js');
  let kind: string;
  let config: Record<string, number>;
  try {
    ({ kind, config } = readPolicyFile(path));
  } catch (e) {
    throw new UsageError(`--init ${(e as Error).message.replace(/^loadPolicy: /, '')}`);
  }
  if (kind === 'tabular') {
    throw new UsageError(
      `--init ${path} holds a tabular (bandit) policy; --task addition needs a sequence policy such as \`gvpo warmup\` writes`,
    );
  }
  const { ADDITION_VOCAB, AdditionTask } = await import('../tasks/addition.js');
  const { maxTokens } = new AdditionTask();
  if (config.vocab !== ADDITION_VOCAB || config.maxTokens < maxTokens)
    throw new UsageError(
      `--init ${path} holds a policy of vocab ${config.vocab} and maxTokens ${config.maxTokens}; --task addition needs vocab ${ADDITION_VOCAB} and maxTokens >= ${maxTokens} (as \`gvpo warmup\` writes)`,
    );
}

function progressMode(p: Parsed): RunOptions['progress'] {
  if (p.bools.has('quiet')) return 'none';
  return process.stderr.isTTY ? 'bar' : 'lines';
}

// The flags of the options only some algorithms read (the trainer's ALGO_OPTIONS).
const ALGO_FLAGS = {
  clip: 'clip',
  klCoef: 'kl-coef',
  klIn: 'kl-in',
  importanceCap: 'importance-cap',
  terms: 'terms',
} as const satisfies Record<keyof typeof ALGO_OPTIONS, string>;

/** A flag that none of the run's algorithms reads, or --replay-capacity with no replay, would be
 *  accepted and do nothing: refused. */
function checkFlagsApply(p: Parsed, cmd: 'train' | 'compare', algos: Algo[]): void {
  for (const [key, flag] of Object.entries(ALGO_FLAGS) as Array<[keyof typeof ALGO_OPTIONS, string]>) {
    if (p.values[flag] !== undefined && !algos.some((a) => ALGO_OPTIONS[key].includes(a)))
      throw new UsageError(
        `--${flag} is read by ${ALGO_OPTIONS[key].join(', ')} only: ${cmd === 'train' ? `with --algo ${algos[0]}` : `with --algos ${algos.join(',')}`} it would do nothing`,
      );
  }
  // as the trainer: klIn places the KL whose coefficient is klCoef; a buffer's size needs a ratio
  if (p.values['kl-in'] !== undefined && p.values['kl-coef'] === undefined)
    throw new UsageError('--kl-in places the KL term whose coefficient is --kl-coef: it needs --kl-coef');
  if (p.values['replay-capacity'] !== undefined && p.values['replay-ratio'] === undefined)
    throw new UsageError('--replay-capacity sizes the replay buffer: it needs --replay-ratio');
}

async function train(p: Parsed, cmd: 'train' | 'compare'): Promise<void> {
  const { heldOut, resolveRunOptions } = await import('./runOptions.js');
  const { summaryTable } = await import('./runs.js');
  const o = resolveRunOptions({ ...runOptions(p), progress: progressMode(p) });
  const algos = cmd === 'train' ? [o.algo] : ((p.values.algos ?? CLI_DEFAULTS.algos).split(',') as Algo[]);
  checkFlagsApply(p, cmd, algos);
  if (o.klIn === 'reward' && o.klCoef > 0 && o.reference === 'previous')
    throw new UsageError(
      `--kl-in reward with --reference previous${p.values.reference === undefined ? ' (the default)' : ''} would do nothing: the penalty is log(pi_old / pi_ref) at the step's start, where pi_ref is pi_old; add --reference frozen, or take --kl-in loss`,
    );
  // a step holds all its sequences at once (the trainer refuses more, after TensorFlow.js has loaded)
  if (o.promptsPerStep * o.groupSize > TRAINER_LIMITS.sequencesPerStep)
    throw new UsageError(
      `--prompts x --group-size must be at most 2^20 = ${TRAINER_LIMITS.sequencesPerStep} sequences per step, got ${o.promptsPerStep} x ${o.groupSize} = ${o.promptsPerStep * o.groupSize}`,
    );
  if (o.miniBatches > o.promptsPerStep)
    throw new UsageError(
      `--mini-batches (${o.miniBatches}) must not exceed the groups per step, --prompts (${o.promptsPerStep})`,
    );
  o.out ??= `runs/${o.task}-${cmd === 'compare' ? 'compare' : o.algo}`;
  await checkInit(o.init);
  checkWritable(o.out, `--out ${o.out}`);
  const { compareRuns, trainRun } = await import('./runs.js');
  const started = await startTf(p, o.progress === 'none');
  const backend = started.backend;
  o.tf = started.tf;
  const { backendInfo } = await import('../backend.js');
  const info = backendInfo();
  if (o.progress !== 'none')
    console.error(
      `gvpo ${cmd}: kernels on ${info.active}${info.simd ? ` (${info.simd})` : ''}, ${info.threads} threads; ${backend}`,
    );
  if (cmd === 'train') {
    const r = await trainRun(o);
    console.log(summaryTable(o.task, [r]));
    const held = heldOut(o.task);
    console.log(
      `\n${held}greedy accuracy ${r.accuracyBefore.toFixed(3)} -> ${r.accuracyAfter.toFixed(3)} (${r.accuracyAfter >= r.accuracyBefore ? '+' : ''}${(100 * (r.accuracyAfter - r.accuracyBefore)).toFixed(1)} points), ` +
        `${held}reward at temperature 1 ${r.evalRewardBefore.toFixed(3)} -> ${r.evalRewardAfter.toFixed(3)}, in ${secondsText(r.seconds)} s`,
    );
    console.log(`report: ${o.out}/report.md  chart: ${o.out}/chart.svg  metrics: ${o.out}/metrics.jsonl`);
    return;
  }
  const seeds = Array.from({ length: Number(p.values.seeds ?? CLI_DEFAULTS.seeds) }, (_, i) => i + 1);
  await compareRuns(o, algos, seeds);
  console.log(`report: ${o.out}/report.md  chart: ${o.out}/chart.svg`);
}

async function warmupCommand(p: Parsed): Promise<void> {
  const out = resolve(p.values.out ?? WARMUP_OUT);
  // warmup's --out is the checkpoint file: a folder (or a device, a pipe) there could not be
  // written after the whole warm-up, --force or not
  const kind = existsSync(out) ? statSync(out) : undefined;
  if (kind && !kind.isFile())
    throw new UsageError(
      `--out ${out} is ${kind.isDirectory() ? 'a directory' : 'not a regular file (a device, pipe or socket)'}; warmup's --out is the checkpoint file to write (such as ${join(out, 'warmup.json')})`,
    );
  if (existsSync(out) && !p.bools.has('force')) {
    throw new UsageError(
      `${out} exists; pass --force to overwrite it${out === resolve(ROOT, 'checkpoints', 'addition-warmup.json') ? ' (it is the shipped checkpoint)' : ''}, or choose another --out`,
    );
  }
  checkWritable(dirname(out), `the folder of --out ${out}`);
  if (kind) {
    // --force over a file that cannot be written would fail only after the warm-up
    try {
      accessSync(out, constants.W_OK);
    } catch (e) {
      throw new UsageError(`--out ${out}: cannot write there (${(e as Error).message})`);
    }
  }
  const { warmup } = await import('./runs.js');
  const { tf } = await startTf(p, false);
  const r = await warmup(
    out,
    Number(p.values.steps ?? WARMUP_DEFAULTS.steps),
    Number(p.values.seed ?? WARMUP_DEFAULTS.seed),
    tf,
    Number(p.values.hidden ?? WARMUP_DEFAULTS.width),
  );
  console.log(
    `wrote ${out} (${r.parameters} parameters, ${secondsText(r.seconds)} s); on 500 held-out prompts: greedy exact-match accuracy ${r.accuracy.toFixed(3)}, reward sampled at temperature 1 ${r.sampledReward.toFixed(3)}`,
  );
}

async function experimentCommand(p: Parsed): Promise<void> {
  const { EXPERIMENTS, runExperiment } = await import('./experiments/index.js');
  const name = p.positionals[0];
  const names = [...Object.keys(EXPERIMENTS), 'all'];
  if (!name) throw new UsageError(`gvpo experiment needs a name: ${names.join(', ')}`);
  if (!names.includes(name)) {
    const near = closest(name, names);
    throw new UsageError(
      `unknown experiment '${name}'${near ? `; did you mean '${near}'?` : ''} (one of ${names.join(', ')})`,
    );
  }
  if (p.positionals.length > 1) throw new UsageError(`unexpected argument '${p.positionals[1]}'`);
  const out = p.values.out ?? CLI_DEFAULTS.experimentsOut;
  checkWritable(out, `--out ${out}`);
  const { tf } = await startTf(p, p.bools.has('quiet'));
  for (const n of name === 'all' ? Object.keys(EXPERIMENTS) : [name]) {
    await runExperiment(n, {
      quick: p.bools.has('quick'),
      seeds: p.values.seeds ? Number(p.values.seeds) : undefined,
      out,
      tf,
      progress: progressMode(p),
    });
  }
}

async function info(p: Parsed): Promise<void> {
  // The kernels need no TensorFlow.js: without it, info says what to install instead.
  const t = await startTf(p, true).catch((e: Error) => ({ backend: e.message, note: undefined }));
  const { backendInfo } = await import('../backend.js');
  console.log(JSON.stringify({ ...backendInfo(), tfjs: t.backend, ...(t.note ? { tfjsNote: t.note } : {}) }, null, 2));
}

/** The command list, and what to install first where TensorFlow.js is missing (an install of the
 *  kernels alone): every command but info (and help) needs it. */
function help(): string {
  try {
    createRequire(import.meta.url).resolve('@tensorflow/tfjs');
    return generalHelp();
  } catch {
    const need = Object.keys(COMMANDS).filter((c) => c !== 'info' && c !== 'help');
    return `${generalHelp()}\n\n@tensorflow/tfjs is not installed; ${need.join(', ')} need it: \`npm install @tensorflow/tfjs\`.`;
  }
}

/** Whether `name` is a command: an own key of COMMANDS, never one of Object.prototype's (`__proto__`,
 *  `toString`) that a plain lookup would find. */
const isCommand = (name: string) => Object.hasOwn(COMMANDS, name);

async function main(argv: string[]): Promise<void> {
  const [cmd, ...rest] = argv;
  if (!cmd || cmd === '-h' || cmd === '--help') return void console.log(help());
  if (cmd === '--version' || cmd === '-v') {
    if (rest.length) throw new UsageError(`unexpected argument '${rest[0]}' for \`gvpo ${cmd}\``);
    return void console.log(version());
  }
  if (!isCommand(cmd)) {
    const near = closest(cmd, Object.keys(COMMANDS));
    throw new UsageError(`unknown command '${cmd}'${near ? `; did you mean '${near}'?` : ''}\n${generalHelp()}`);
  }
  if (cmd === 'help') {
    const topic = rest[0];
    if (topic !== undefined && !isCommand(topic))
      throw new UsageError(`no help for '${topic}': commands are ${Object.keys(COMMANDS).join(', ')}`);
    if (rest.length > 1) throw new UsageError(`unexpected argument '${rest[1]}' for \`gvpo help\``);
    return void console.log(topic ? commandHelp(topic) : help());
  }
  // --help wins wherever it stands, before any other flag is judged
  if (rest.includes('--help') || rest.includes('-h')) return void console.log(commandHelp(cmd));
  const p = parseFlags(cmd, rest, COMMANDS[cmd].flags);
  if (cmd !== 'experiment' && p.positionals.length)
    throw new UsageError(`unexpected argument '${p.positionals[0]}' for \`gvpo ${cmd}\``);
  if (cmd === 'train' || cmd === 'compare') return train(p, cmd);
  if (cmd === 'warmup') return warmupCommand(p);
  if (cmd === 'experiment') return experimentCommand(p);
  return info(p);
}

main(process.argv.slice(2)).catch((e: unknown) => {
  if (e instanceof UsageError) {
    console.error(`gvpo: ${e.message}`);
    process.exit(2);
  }
  console.error(`gvpo: ${(e as Error).message ?? e}`);
  if (process.env.GVPO_DEBUG) console.error((e as Error).stack);
  process.exit(1);
});
