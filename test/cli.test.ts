// The `gvpo` command as a user meets it, spawned as a child process from the built package:
// usage errors end with one line and exit code 2 (no stack trace), before TensorFlow.js loads;
// help and version; progress on a pipe as plain lines; warmup never overwrites without --force;
// a run writes its report with every option.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { scratchDir } from './helpers/scratch.js';

// each case spawns node; on 2 loaded cores a spawn can take a second or more
vi.setConfig({ testTimeout: 90_000 });

const CLI = join(import.meta.dirname, '..', 'dist', 'app', 'cli.js');

function gvpo(...args: string[]) {
  return gvpoWith({}, ...args);
}

/** The command run in `cwd`, with `node` flags before it (e.g. an --import hook). */
function gvpoWith(o: { cwd?: string; node?: string[]; timeout?: number }, ...args: string[]) {
  const r = spawnSync(process.execPath, [...(o.node ?? []), CLI, ...args], {
    encoding: 'utf8',
    timeout: o.timeout ?? 120_000,
    cwd: o.cwd,
  });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

// Runs the command as if @tensorflow/tfjs-backend-wasm were not installed.
const WITHOUT_WASM = ['--import', join(import.meta.dirname, 'helpers', 'without-wasm.mjs')];

function expectUsageError(r: ReturnType<typeof gvpo>, message: RegExp) {
  expect(r.code).toBe(2);
  expect(r.err).toMatch(message);
  expect(r.err).not.toMatch(/\n\s+at /); // no stack trace
}

describe('gvpo usage errors', () => {
  it('an unknown flag names the closest one', () => {
    expectUsageError(gvpo('train', '--setps', '5'), /unknown option --setps .*did you mean --steps\?/);
    expectUsageError(
      gvpo('compare', '--algos', 'gvpo', '--sedes', '2'),
      /unknown option --sedes .*did you mean --seeds\?/,
    );
    // compare runs each of --algos: it takes no --algo
    expectUsageError(
      gvpo('compare', '--algo', 'gvpo'),
      /unknown option --algo for `gvpo compare`; did you mean --algos\?/,
    );
  });
  it('an unknown command names the closest one', () => {
    expectUsageError(gvpo('trian'), /unknown command 'trian'; did you mean 'train'\?/);
    expectUsageError(gvpo('experiment', 'optimun'), /unknown experiment 'optimun'; did you mean 'optimum'\?/);
  });
  it("a flag that none of the run's algorithms reads is refused before TensorFlow.js loads", () => {
    expectUsageError(
      gvpo('train', '--tf', 'node-gpu', '--clip', '0.3'),
      /--clip is read by grpo, drgrpo only: with --algo gvpo it would do nothing/,
    );
    expectUsageError(
      gvpo('train', '--tf', 'node-gpu', '--algo', 'grpo', '--terms', 'no-variance'),
      /--terms is read by gvpo only: with --algo grpo/,
    );
    expectUsageError(
      gvpo('compare', '--tf', 'node-gpu', '--algos', 'gvpo,drgrpo', '--importance-cap', '5'),
      /--importance-cap is read by reinforce only: with --algos gvpo,drgrpo it would do nothing/,
    );
    expectUsageError(
      gvpo('train', '--tf', 'node-gpu', '--replay-capacity', '8'),
      /--replay-capacity sizes the replay buffer: it needs --replay-ratio/,
    );
    expectUsageError(
      gvpo('train', '--tf', 'node-gpu', '--algo', 'grpo', '--kl-in', 'reward'),
      /--kl-in places the KL term whose coefficient is --kl-coef: it needs --kl-coef/,
    );
    // the KL in the reward against the policy that sampled: always 0
    expectUsageError(
      gvpo('train', '--tf', 'node-gpu', '--algo', 'grpo', '--kl-coef', '0.1', '--kl-in', 'reward'),
      /--kl-in reward with --reference previous \(the default\) would do nothing: .* add --reference frozen, or take --kl-in loss/,
    );
    // compare runs seeds 1 to --seeds: --seed was accepted and ignored
    expectUsageError(
      gvpo('compare', '--tf', 'node-gpu', '--seed', '3'),
      /unknown option --seed for `gvpo compare`; did you mean --seeds\?/,
    );
    // compare takes --algos, and says so
    expectUsageError(
      gvpo('compare', '--tf', 'node-gpu', '--algos', 'gvpo', '--clip', '0.3'),
      /--clip is read by grpo, drgrpo only: with --algos gvpo it would do nothing/,
    );
  });
  it('a missing value', () => {
    expectUsageError(gvpo('train', '--steps'), /--steps needs a value/);
    expectUsageError(gvpo('train', '--beta', '--steps', '3'), /--beta needs a value/);
  });
  // --tf node-gpu is not installed here: had TensorFlow.js loaded first, that would be the error
  it('values out of range are refused before TensorFlow.js loads', () => {
    expectUsageError(gvpo('train', '--tf', 'node-gpu', '--steps', '0'), /--steps must be an integer >= 1, got '0'/);
    expectUsageError(gvpo('train', '--tf', 'node-gpu', '--beta', '0'), /--beta must be a number > 0, got '0'/);
    expectUsageError(
      gvpo('train', '--tf', 'node-gpu', '--group-size', '1'),
      /--group-size must be an integer in \[2, 4096\], got '1'/,
    );
    expectUsageError(gvpo('train', '--replay-ratio', '1'), /--replay-ratio must be a number in \[0, 1\)/);
    expectUsageError(
      gvpo('train', '--tf', 'node-gpu', '--algo', 'grpo', '--clip', '1'),
      /--clip must be a number in \(0, 1\), or none, got '1'/,
    );
    expectUsageError(gvpo('train', '--tf', 'node-gpu', '--algo', 'grpo', '--clip', 'Infinity'), /--clip must be/);
    expectUsageError(gvpo('train', '--algo', 'ppo'), /--algo must be one of gvpo, grpo, drgrpo, reinforce, got 'ppo'/);
    expectUsageError(gvpo('train', '--kl-in', 'advantage'), /--kl-in must be one of loss, reward, got 'advantage'/);
    expectUsageError(
      gvpo('train', '--importance-cap', '0.5'),
      /--importance-cap must be 0 or a number >= 1, got '0.5'/,
    );
    expectUsageError(gvpo('train', '--prompts', '2', '--mini-batches', '4'), /--mini-batches \(4\) must not exceed/);
    expectUsageError(gvpo('compare', '--algos', 'gvpo,ppo'), /--algos must be a comma-separated list/);
    expectUsageError(gvpo('train', '--init', '/no/such/file.json'), /--init must be an existing file/);
    expectUsageError(gvpo('train', 'extra'), /unexpected argument 'extra'/);
    expectUsageError(gvpo('train', '--quiet=yes'), /--quiet takes no value/);
    expectUsageError(gvpo('warmup', '--hidden', '30'), /--hidden must be a multiple of 4, got '30'/);
    // a seed keeps 32 bits; a temperature needs a float32 reciprocal
    expectUsageError(
      gvpo('train', '--seed', '4294967296'),
      /--seed must be an integer in \[0, 4294967295\], got '4294967296'/,
    );
    expectUsageError(
      gvpo('train', '--temperature', '1e-300'),
      /--temperature must be a number from 1e-6 to float32's max, about 3\.4e38 .*, got '1e-300'/,
    );
    // the trainer's bound, before TensorFlow.js loads: 1e-38 ran, then failed in the first step
    // on an internal "referenceLogprobs must be finite numbers, got NaN" (exit 1)
    expectUsageError(
      gvpo('train', '--tf', 'node-gpu', '--steps', '2', '--temperature', '1e-38'),
      /^gvpo: --temperature must be a number from 1e-6 to float32's max, about 3\.4e38 \(logits divided by a smaller one overflow the float32 losses\), got '1e-38'\n$/,
    );
    // an algorithm listed twice would run twice into one folder (a flag given twice: the last wins,
    // so that `npm start -- --task bandit` overrides the script's own --task)
    expectUsageError(
      gvpo('compare', '--algos', 'gvpo,gvpo'),
      /--algos must be a comma-separated list of distinct names/,
    );
  });
  it('help and version', () => {
    for (const args of [[], ['--help'], ['-h'], ['help']]) {
      const r = gvpo(...args);
      expect(r.code).toBe(0);
      expect(r.out).toMatch(/usage: gvpo <command>/);
    }
    for (const args of [
      ['help', 'train'],
      ['train', '--help'],
      ['train', '-h'],
      // --help wins over a flag that would be refused, wherever it stands
      ['train', '--steps', '0', '--help'],
      ['train', '--setps', '5', '-h'],
    ]) {
      const r = gvpo(...args);
      expect(r.code).toBe(0);
      expect(r.out).toMatch(/--mini-batches V +optimizer updates per pass .*\(default: 4\)/);
    }
    const v = gvpo('--version');
    expect(v.code).toBe(0);
    expect(v.out.trim()).toBe(
      JSON.parse(readFileSync(join(import.meta.dirname, '..', 'package.json'), 'utf8')).version,
    );
    expectUsageError(gvpo('help', 'nope'), /no help for 'nope'/);
  });
  it('help shows the values a flag takes, and compare lists --algos only', () => {
    const train = gvpo('help', 'train').out;
    expect(train).toMatch(/--terms all\|no-variance\|no-trust-region\n +GVPO's terms kept/);
    expect(train).toMatch(/--tf auto\|cpu\|wasm\|node\|node-gpu\n +TensorFlow.js backend: wasm/);
    expect(train).toMatch(/--algo gvpo\|grpo\|drgrpo\|reinforce/);
    const compare = gvpo('compare', '--help').out;
    expect(compare).toMatch(/--algos gvpo,grpo,drgrpo,reinforce\n +algorithms to compare/);
    expect(compare).not.toMatch(/--algo /);
  });
  it('a bad --init file is named with what is wrong, before TensorFlow.js loads', () => {
    const dir = scratchDir('gvpo-cli-');
    const file = (name: string, text: string) => {
      writeFileSync(join(dir, name), text);
      return join(dir, name);
    };
    const pkg = file('package.json', JSON.stringify({ name: 'app', version: '1.0.0' }));
    expectUsageError(
      gvpo('train', '--tf', 'node-gpu', '--init', pkg),
      new RegExp(`--init ${pkg} is not a policy file: it has no 'kind'.*gvpo warmup`),
    );
    const broken = file('broken.json', '{"kind": "char-mlp", "config": {');
    expectUsageError(
      gvpo('train', '--tf', 'node-gpu', '--init', broken),
      new RegExp(`--init ${broken} is not valid JSON \\(.+\\)`),
    );
    // a char-mlp of vocab 2, window 1, hidden 2: six arrays of 4 or 2 values
    const config = { vocab: 2, window: 1, hidden: 2, maxTokens: 1, eos: 0, pad: 1 };
    const values = (n: number, at = -1, v = 0) =>
      Buffer.from(Float32Array.from({ length: n }, (_, i) => (i === at ? v : 0.5)).buffer).toString('base64');
    const sizes = [4, 2, 4, 2, 4, 2];
    const policyFile = (name: string, c: object, ws: Array<{ shape?: number[]; data: string }>) =>
      file(name, JSON.stringify({ kind: 'char-mlp', config: c, weights: ws }));
    const short = policyFile('short.json', config, [
      { shape: [2, 2], data: values(3) },
      ...sizes.slice(1).map((n) => ({ data: values(n) })),
    ]);
    expectUsageError(
      gvpo('train', '--tf', 'node-gpu', '--init', short),
      /weights\[0\] holds 12 bytes, not the 16 of shape \[2, 2\]/,
    );
    const noConfig = policyFile('noconfig.json', {}, [{ shape: [2, 2], data: values(3) }]);
    expectUsageError(
      gvpo('train', '--tf', 'node-gpu', '--init', noConfig),
      /noconfig.json is not a policy file: its char-mlp config does not hold: config.vocab must be an integer in \[1, 2\^31\), got undefined/,
    );
    const nan = policyFile(
      'nan.json',
      config,
      sizes.map((n, i) => ({ data: values(n, i === 2 ? 1 : -1, Number.NaN) })),
    );
    expectUsageError(
      gvpo('train', '--tf', 'node-gpu', '--init', nan),
      /nan.json is not a policy file: weights\[2\] holds NaN at index 1/,
    );
    const transposed = policyFile('transposed.json', { ...config, hidden: 3 }, [
      { shape: [3, 2], data: values(6) },
      ...[3, 9, 3, 6, 2].map((n) => ({ data: values(n) })),
    ]);
    expectUsageError(
      gvpo('train', '--tf', 'node-gpu', '--init', transposed),
      /weights\[0\] has shape \[3, 2\] where the config gives \[2, 3\]/,
    );
    // a depth that asks for 120 million arrays is refused from the count, without listing them
    const deep = file(
      'deep.json',
      JSON.stringify({
        kind: 'transformer',
        config: { vocab: 4, maxTokens: 2, eos: 0, pad: 1, promptTokens: 2, width: 4, heads: 1, layers: 1e7, mlp: 4 },
        weights: [],
      }),
    );
    expectUsageError(
      gvpo('train', '--tf', 'node-gpu', '--init', deep),
      /config.layers = 10000000 needs 120000005 weight arrays, the file holds 0/,
    );
    const tabular = file(
      'tabular.json',
      JSON.stringify({
        kind: 'tabular',
        config: { prompts: 1, vocab: 2 },
        weights: [{ shape: [1, 2], data: Buffer.from(new Float32Array(2).buffer).toString('base64') }],
      }),
    );
    expectUsageError(
      gvpo('train', '--tf', 'node-gpu', '--init', tabular),
      new RegExp(`--init ${tabular} holds a tabular \\(bandit\\) policy; --task addition needs a sequence policy`),
    );
    // a sequence policy of another vocabulary (it failed with exit 1 after TensorFlow.js loaded,
    // not naming --init)
    const shapes = [[8 * 5, 4], [4], [4, 4], [4], [4, 5], [5]];
    const other = file(
      'vocab5.json',
      JSON.stringify({
        kind: 'char-mlp',
        config: { vocab: 5, window: 8, hidden: 4, maxTokens: 4, eos: 0, pad: 1 },
        weights: shapes.map((shape) => ({
          shape,
          data: Buffer.from(new Float32Array(shape.reduce((a, b) => a * b, 1)).buffer).toString('base64'),
        })),
      }),
    );
    expectUsageError(
      gvpo('train', '--tf', 'node-gpu', '--init', other),
      new RegExp(`--init ${other} holds a policy of vocab 5 and maxTokens 4; --task addition needs vocab 14`),
    );
  });
  it('a run whose weights diverge says so and what to lower, without a stack trace', () => {
    const r = gvpo('train', '--tf', 'cpu', '--lr', '1e6', '--steps', '3', '--eval-every', '0', '--quiet');
    expect(r.code).toBe(1);
    expect(r.err).toMatch(
      /the policy's log-probs are no longer finite: its weights diverged .*lower the learning rate/,
    );
    expect(r.err).not.toMatch(/\n\s+at /);
  });
  it('an output folder that cannot be written is refused before the run starts', () => {
    const dir = scratchDir('gvpo-cli-');
    writeFileSync(join(dir, 'file'), '');
    const under = join(dir, 'file', 'run');
    expectUsageError(
      gvpo('train', '--tf', 'node-gpu', '--task', 'bandit', '--out', under),
      new RegExp(`--out ${under}: cannot write there \\(ENOTDIR`),
    );
    // an --out folder that is a file: said so, not EEXIST
    for (const cmd of [
      ['experiment', 'optimum'],
      ['train', '--task', 'bandit'],
      ['compare', '--task', 'bandit'],
    ])
      expectUsageError(
        gvpo(...cmd, '--tf', 'node-gpu', '--out', join(dir, 'file')),
        new RegExp(`--out ${join(dir, 'file')}: cannot write there \\(it is a file; --out names a folder\\)`),
      );
    expectUsageError(
      gvpo('warmup', '--tf', 'node-gpu', '--out', join(under, 'w.json')),
      /the folder of --out .*: cannot write there/,
    );
    // under /proc, Node's recursive mkdirSync never returns: refused within the spawn's timeout
    if (existsSync('/proc/self')) {
      for (const args of [
        ['train', '--tf', 'node-gpu', '--task', 'bandit', '--out', '/proc/gvpo-x/run'],
        ['warmup', '--tf', 'node-gpu', '--out', '/proc/gvpo-x/w.json'],
      ])
        expectUsageError(gvpoWith({ timeout: 20_000 }, ...args), /cannot write there \(ENOENT/);
    }
  });
  it('warmup refuses a directory (or what is not a regular file) as --out, --force or not, before it trains', () => {
    // it said "pass --force to overwrite it", and with --force trained ~40 s before EISDIR (exit 1)
    const dir = scratchDir('gvpo-cli-');
    for (const force of [[], ['--force']]) {
      const r = gvpo('warmup', '--tf', 'node-gpu', '--steps', '1', '--out', dir, ...force);
      expectUsageError(
        r,
        new RegExp(
          `^gvpo: --out ${dir} is a directory; warmup's --out is the checkpoint file to write \\(such as ${join(dir, 'warmup.json')}\\)\\n$`,
        ),
      );
    }
    if (existsSync('/dev/null'))
      expectUsageError(
        gvpo('warmup', '--tf', 'node-gpu', '--out', '/dev/null', '--force'),
        /--out \/dev\/null is not a regular file/,
      );
  });
  it('warmup refuses to overwrite a checkpoint without --force', () => {
    const path = join(scratchDir('gvpo-cli-'), 'w.json');
    writeFileSync(path, 'keep');
    expectUsageError(gvpo('warmup', '--out', path, '--steps', '1'), /exists; pass --force/);
    expect(readFileSync(path, 'utf8')).toBe('keep');
    expectUsageError(
      gvpo('warmup', '--out', join(import.meta.dirname, '..', 'checkpoints', 'addition-warmup.json')),
      /the shipped checkpoint/,
    );
  });
});

describe('gvpo train and experiment', () => {
  it('on a pipe: plain progress lines, no tfjs banner, a report with every option and the chart', () => {
    const out = scratchDir('gvpo-cli-');
    const r = gvpo('train', '--task', 'bandit', '--steps', '4', '--eval-every', '2', '--out', out);
    expect(r.code).toBe(0);
    expect(r.err).not.toMatch(/\r/);
    expect(r.err).toMatch(/step 4\/4/);
    expect(r.err).not.toMatch(/Hi, looks like|tfjs-node/);
    const report = readFileSync(join(out, 'report.md'), 'utf8');
    for (const option of ['miniBatches', 'epochs', 'reference', 'replayRatio', 'terms', 'learningRate', 'init'])
      expect(report).toMatch(new RegExp(`\\| ${option} \\|`));
    // what GVPO does not read was not given to it: not listed as an option of the run
    for (const option of ['clip', 'klCoef', 'klIn', 'importanceCap', 'replayCapacity'])
      expect(report).not.toMatch(new RegExp(`\\| ${option} \\|`));
    // a run of a second or two said "in 0 s"
    expect(r.out).toMatch(/, in \d+\.\d s\n/);
    expect(report).toMatch(/\| init \| `a random tabular policy/);
    expect(report).toMatch(/exactly\s+right \(here: the response with the highest reward for its prompt/);
    expect(report).toMatch(/!\[.*\]\(chart\.svg\)/);
    expect(readFileSync(join(out, 'chart.svg'), 'utf8')).toMatch(/greedy exact-match accuracy/);
    // the bandit evaluates on the prompts it trains on: nothing is called held-out
    expect(report + r.out).not.toMatch(/held-out|training never\s+draws/i);
    expect(report).toMatch(/the same prompts\s+training draws/);
    expect(readFileSync(join(out, 'metrics.jsonl'), 'utf8').trim().split('\n')).toHaveLength(4);
    const quiet = gvpo('train', '--task', 'bandit', '--steps', '2', '--quiet', '--out', out);
    expect(quiet.code).toBe(0);
    expect(quiet.err).toBe('');
  });

  it('--clip none trains GRPO without the clip, and its report says so', () => {
    const out = scratchDir('gvpo-cli-');
    const r = gvpo('train', '--task', 'bandit', '--algo', 'grpo', '--clip', 'none', '--steps', '2', '--out', out);
    expect(r.code).toBe(0);
    expect(readFileSync(join(out, 'report.md'), 'utf8')).toMatch(/\| clip \| `Infinity` \|/);
  });

  it("a comparison's report lists its algorithms and seeds, not one run's algo and seed, and the options they read", () => {
    const out = scratchDir('gvpo-cli-');
    const r = gvpo(
      'compare',
      '--task',
      'bandit',
      '--steps',
      '2',
      '--seeds',
      '2',
      '--algos',
      'gvpo,reinforce',
      '--quiet',
      '--out',
      out,
    );
    expect(r.code, r.err).toBe(0);
    const report = readFileSync(join(out, 'report.md'), 'utf8');
    const options = report.slice(report.indexOf('## Every option'));
    expect(options).toMatch(/\| algos \| `gvpo,reinforce` \|/);
    expect(options).toMatch(/\| seeds \| `1,2` \|/);
    expect(options).not.toMatch(/\| (algo|seed) \|/);
    // read by one of them (REINFORCE's KL and weights; GVPO's terms), and not by either (GRPO's clip)
    for (const option of ['klCoef', 'importanceCap', 'terms']) expect(options).toMatch(new RegExp(`\\| ${option} \\|`));
    expect(options).not.toMatch(/\| clip \|/);
  });

  it('without @tensorflow/tfjs-backend-wasm the default falls back to cpu and says so; --tf wasm names --tf cpu', () => {
    const out = scratchDir('gvpo-cli-');
    const r = gvpoWith({ node: WITHOUT_WASM }, 'train', '--task', 'bandit', '--steps', '2', '--out', out);
    expect(r.code, r.err).toBe(0);
    expect(r.err).toMatch(
      /@tensorflow\/tfjs-backend-wasm is not installed, so TensorFlow.js runs on its cpu backend.*--tf cpu/,
    );
    expect(r.err).toMatch(/@tensorflow\/tfjs \(cpu\)/);
    expect(readFileSync(join(out, 'report.md'), 'utf8')).toMatch(/\| tf \| `cpu` \|/);
    const asked = gvpoWith(
      { node: WITHOUT_WASM },
      'train',
      '--task',
      'bandit',
      '--steps',
      '2',
      '--out',
      out,
      '--tf',
      'wasm',
    );
    expect(asked.code).toBe(1);
    expect(asked.err).toMatch(/`npm install @tensorflow\/tfjs-backend-wasm`.*`gvpo --tf cpu`/);
  });

  // The fast loop (`npm test`) runs one experiment (the cheapest, 6 s of CPU); the full run all five.
  const quick = process.env.GVPO_TEST_QUICK === '1';
  it(`${quick ? 'an experiment' : 'every experiment'} at --quick size writes its section and charts, under runs/ by default, never the EXPERIMENTS.md of the folder it runs in`, () => {
    const cwd = scratchDir('gvpo-exp-');
    writeFileSync(join(cwd, 'EXPERIMENTS.md'), "the app's own file\n");
    const out = join(cwd, 'runs');
    mkdirSync(out);
    writeFileSync(join(out, 'EXPERIMENTS.md'), '# Experiments\n\nkept by hand\n');
    const r = gvpoWith({ cwd, timeout: 400_000 }, 'experiment', quick ? 'terms' : 'all', '--quick', '--quiet');
    expect(r.code, r.err).toBe(0);
    expect(readFileSync(join(cwd, 'EXPERIMENTS.md'), 'utf8')).toBe("the app's own file\n");
    expect(existsSync(join(cwd, 'experiments'))).toBe(false);
    const doc = readFileSync(join(out, 'EXPERIMENTS.md'), 'utf8');
    expect(doc).toMatch(/kept by hand/);
    const charts: Record<string, string[]> = {
      optimum: ['kl.svg', 'frontier.svg'],
      text: ['curves.svg', 'curves-stale.svg'],
      'off-policy': ['curves.svg'],
      robustness: ['group-size.svg', 'beta.svg'],
      terms: ['terms.svg', 'bandit.svg'],
    };
    for (const [name, files] of Object.entries(charts).filter(([name]) => !quick || name === 'terms')) {
      expect(doc).toContain(`<!-- begin experiment ${name} -->`);
      expect(doc).toContain(`gvpo experiment ${name} --quick`);
      for (const f of files) expect(existsSync(join(out, 'experiments', name, f)), `${name}/${f}`).toBe(true);
    }
  }, 420_000);
});
