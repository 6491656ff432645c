// The package as a new user gets it: `npm pack`, then the tarball installed into an empty app with
// lifecycle scripts disabled and a PATH that holds only node, npm and sh (no compiler, make or
// python3). The native CPU backend must be active from the prebuilt binary, `require` and `import`
// must work with types for both, TensorFlow.js must be absent and named when asked for, the command
// must run with @tensorflow/tfjs alone, and the app's node_modules must stay under 60 MB. Slow (a pack and an install): CI runs it
// (`npm run test:pack`, GVPO_TEST_PACK_INSTALL=1); a plain `npm test` skips it.
import { execFileSync, spawnSync } from 'node:child_process';
import {
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  realpathSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const enabled = process.env.GVPO_TEST_PACK_INSTALL === '1';
const MB = 1024 * 1024;

let tmp = '';
let app = '';
let env: Record<string, string> = {};

/** The environment of a shell with no npm run around it, no GVPO_* switches, and PATH = bin. */
function cleanEnv(bin: string): Record<string, string> {
  const e: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (v !== undefined && !/^(npm_|GVPO_|NODE_OPTIONS$|INIT_CWD$|VITEST)/i.test(k)) e[k] = v;
  }
  return { ...e, PATH: bin };
}

function run(cmd: string, args: string[], extra: Record<string, string> = {}) {
  const r = spawnSync(cmd, args, { cwd: app, env: { ...env, ...extra }, encoding: 'utf8', timeout: 300_000 });
  return { status: r.status, out: `${r.stdout}${r.stderr}`, stdout: r.stdout };
}

function node(code: string, type: 'commonjs' | 'module' = 'commonjs') {
  const r = run(process.execPath, ['--input-type', type, '-e', code]);
  if (r.status !== 0) throw new Error(`node exited with ${r.status}:\n${r.out}`);
  return r.stdout;
}

function duBytes(path: string): number {
  const st = lstatSync(path);
  if (!st.isDirectory()) return st.size;
  return readdirSync(path).reduce((s, f) => s + duBytes(join(path, f)), 0);
}

// l = z[y] - logsumexp(z): for z = [0, ln 2] and y = 1, ln(2/3).
const PROBE = `
const info = g.backendInfo();
const { logprobs } = g.tokenLogprobs({ logits: new Float32Array([0, Math.LN2]), targets: new Int32Array([1]), rows: 1, vocab: 2 });
console.log(JSON.stringify({ info, logprob: logprobs[0] }));`;

describe.runIf(enabled)('the packed package, installed without scripts or a compiler', { timeout: 120_000 }, () => {
  beforeAll(() => {
    tmp = mkdtempSync(join(tmpdir(), 'gvpo-pack-'));
    // A real pack: prepare (TypeScript, both module builds) and prepack (the prebuilt binary) run.
    // (Its --json output is mixed with the scripts' output: the tarball is found on disk.)
    execFileSync('npm', ['pack', '--pack-destination', tmp], {
      cwd: root,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: cleanEnv(process.env.PATH ?? ''),
    });
    const tarball = join(
      tmp,
      readdirSync(tmp).find((f) => f.endsWith('.tgz'))!,
    );

    const bin = join(tmp, 'bin');
    mkdirSync(bin);
    symlinkSync(process.execPath, join(bin, 'node'));
    symlinkSync('/bin/sh', join(bin, 'sh')); // npm runs scripts with it
    symlinkSync(
      realpathSync(execFileSync('sh', ['-c', 'command -v npm'], { encoding: 'utf8' }).trim()),
      join(bin, 'npm'),
    );
    env = cleanEnv(bin);
    app = join(tmp, 'app');
    mkdirSync(app);
    writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'app', version: '1.0.0', private: true }));
    const r = run('npm', ['install', tarball, '--ignore-scripts', '--prefer-offline', '--no-audit', '--no-fund']);
    if (r.status !== 0) throw new Error(`npm install failed:\n${r.out}`);
  }, 600_000);

  afterAll(() => {
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  it('runs in an environment with no compiler, make or python3', () => {
    const r = run('/bin/sh', [
      '-c',
      'for c in g++ gcc c++ cc clang make cmake python3 python; do command -v $c; done; true',
    ]);
    expect(r.stdout.trim()).toBe('');
  });

  it('require(): the native CPU backend from the prebuilt binary, computing right', () => {
    const { info, logprob } = JSON.parse(node(`const g = require('gvpo');${PROBE}`));
    expect(info.active).toBe('cpu');
    expect(info.compiled).toEqual(['js', 'cpu']);
    expect(info.loadErrors.filter((e: string) => !e.startsWith('cuda:'))).toEqual([]);
    expect(logprob).toBeCloseTo(Math.log(2 / 3), 6);
  });

  it('import: the same, from the ES module build', () => {
    const { info, logprob } = JSON.parse(node(`import * as g from 'gvpo';${PROBE}`, 'module'));
    expect(info.active).toBe('cpu');
    expect(logprob).toBeCloseTo(Math.log(2 / 3), 6);
  });

  it('types resolve for require and import callers', () => {
    writeFileSync(
      join(app, 'a.cts'),
      "import g = require('gvpo');\nexport const n: number = g.backendInfo().threads;\n",
    );
    writeFileSync(
      join(app, 'b.mts'),
      "import { backendInfo } from 'gvpo';\nexport const n: number = backendInfo().threads;\n",
    );
    writeFileSync(
      join(app, 'c.cts'),
      "import t = require('gvpo/tfjs');\nexport const f: typeof t.loadTf = t.loadTf;\n",
    );
    writeFileSync(join(app, 'd.mts'), "import { loadTf } from 'gvpo/tfjs';\nexport const f: typeof loadTf = loadTf;\n");
    // node16, not nodenext: under it a CommonJS file cannot require an ES module, so types that
    // gave `require` callers the ES module declarations would fail here. gvpo/tfjs's declarations
    // name TensorFlow.js types, absent here: its files skip the check of declaration files.
    const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');
    const args = [
      '--noEmit',
      '--strict',
      '--module',
      'node16',
      '--types',
      'node',
      '--typeRoots',
      join(root, 'node_modules', '@types'),
    ];
    for (const r of [
      run(process.execPath, [tsc, ...args, 'a.cts', 'b.mts']),
      run(process.execPath, [tsc, ...args, '--skipLibCheck', 'c.cts', 'd.mts']),
    ]) {
      expect(r.out).toBe('');
      expect(r.status).toBe(0);
    }
  });

  it('TensorFlow.js is not installed, and gvpo/tfjs and the command name it', () => {
    expect(() => node("require.resolve('@tensorflow/tfjs')")).toThrow(/Cannot find module/);
    const msg = node("require('gvpo/tfjs').loadTf().then(() => console.log('loaded'), (e) => console.log(e.message))");
    expect(msg).toContain('`npm install @tensorflow/tfjs`');
    const info = run(join(app, 'node_modules', '.bin', 'gvpo'), ['info']);
    expect(info.status).toBe(0);
    expect(JSON.parse(info.stdout).tfjs).toContain('npm install @tensorflow/tfjs');
    const train = run(join(app, 'node_modules', '.bin', 'gvpo'), ['train', '--steps', '1']);
    expect(train.status).toBe(1);
    expect(train.out).toContain('`npm install @tensorflow/tfjs`');
    for (const args of [[], ['help']]) {
      const h = run(join(app, 'node_modules', '.bin', 'gvpo'), args);
      expect(h.status).toBe(0);
      expect(h.out).toContain(
        '@tensorflow/tfjs is not installed; train, compare, experiment, warmup need it: `npm install @tensorflow/tfjs`.',
      );
    }
  });

  it('with @tensorflow/tfjs added (and no wasm backend), the command trains: it says so and runs on cpu', () => {
    // `npm install @tensorflow/tfjs` from the checkout's own copy (this app has no network to fetch
    // it): its dependencies resolve from there, gvpo's imports from the app, where no
    // @tensorflow/tfjs-backend-wasm is
    mkdirSync(join(app, 'node_modules', '@tensorflow'), { recursive: true });
    symlinkSync(join(root, 'node_modules', '@tensorflow', 'tfjs'), join(app, 'node_modules', '@tensorflow', 'tfjs'));
    expect(() => node("require.resolve('@tensorflow/tfjs-backend-wasm')")).toThrow(/Cannot find module/);
    const train = run(join(app, 'node_modules', '.bin', 'gvpo'), [
      'train',
      '--task',
      'bandit',
      '--steps',
      '2',
      '--out',
      join(tmp, 'run'),
    ]);
    expect(train.status, train.out).toBe(0);
    expect(train.out).toMatch(
      /@tensorflow\/tfjs-backend-wasm is not installed, so TensorFlow.js runs on its cpu backend/,
    );
    expect(train.out).not.toMatch(/Hi, looks like/);
    rmSync(join(app, 'node_modules', '@tensorflow'), { recursive: true, force: true });
  });

  it('the install step keeps the prebuilt binary, and a failed source build does not fail it', () => {
    const keep = run('npm', ['rebuild', 'gvpo']);
    expect(keep.status, keep.out).toBe(0);
    expect(keep.out).not.toContain('building the native addon');
    const failed = run('npm', ['rebuild', 'gvpo', '--foreground-scripts'], { GVPO_BUILD_FROM_SOURCE: '1' });
    expect(failed.status, failed.out).toBe(0);
    expect(failed.out).toContain('the native build failed');
    const { info } = JSON.parse(node(`const g = require('gvpo');${PROBE}`));
    expect(info.active).toBe('cpu');
  });

  it('weighs under 60 MB installed', () => {
    const bytes = duBytes(join(app, 'node_modules'));
    console.log(`installed size: ${(bytes / MB).toFixed(2)} MiB (app/node_modules)`);
    expect(bytes).toBeLessThan(60 * MB);
  });
});
