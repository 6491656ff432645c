// The fuzzer: hostile calls of every public function, async twin and helper, and of the native
// addon called directly, each run in a child process (test/helpers/fuzz-worker.mjs, cases drawn
// in test/helpers/fuzz-cases.mjs) so that a crash is one failed case rather than a lost test run.
// Once per instruction set the machine has (GVPO_SIMD) and once on the TypeScript backend. A case
// fails when its process dies (signal or non-zero exit) while it runs, when it throws anything but
// a TypeError or RangeError (async twins must reject, never throw), when it modifies inputs it was
// refused, or when it returns a positive token log-prob, a non-zero log-prob or gradient on a
// masked row, or a non-zero one with V = 1. GVPO_FUZZ_SEED and GVPO_FUZZ_CASES override the
// defaults; the last console line gives the counts.
import { spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { backendInfo } from '../src/index.js';
import { backendConfigs } from './helpers/backends.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const WORKER = 'test/helpers/fuzz-worker.mjs';
const SEED = Number(process.env.GVPO_FUZZ_SEED ?? 20261122);
const CASES = Number(process.env.GVPO_FUZZ_CASES ?? 500);
const CHILD_TIMEOUT_MS = 90_000;

interface Outcome {
  cases: number;
  hostile: number;
  failures: string[];
}

interface Child {
  lines: string[];
  code: number | null;
  signal: NodeJS.Signals | null;
  stderr: string;
}

function runChild(env: Record<string, string>, start: number, count: number): Promise<Child> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, ['--expose-gc', '--import', 'tsx', WORKER], {
      cwd: root,
      env: {
        ...process.env,
        ...env,
        GVPO_FUZZ_SEED: String(SEED),
        FUZZ_START: String(start),
        FUZZ_COUNT: String(count),
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let stderr = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (stderr = (stderr + d).slice(-2000)));
    const timer = setTimeout(() => p.kill('SIGKILL'), CHILD_TIMEOUT_MS);
    p.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ lines: out.split('\n').filter(Boolean), code, signal, stderr });
    });
  });
}

/** Cases [0, CASES) of one configuration; a child that dies is charged with the case it was
 *  running, and a fresh child goes on from the next one. */
async function fuzz(env: Record<string, string>): Promise<Outcome> {
  const o: Outcome = { cases: 0, hostile: 0, failures: [] };
  const envText = Object.entries(env)
    .map(([k, v]) => `${k}=${v}`)
    .join(' ');
  const repro = (i: number) =>
    `${envText} GVPO_FUZZ_SEED=${SEED} FUZZ_START=${i} FUZZ_COUNT=1 node --expose-gc --import tsx ${WORKER}`;
  let start = 0;
  while (start < CASES) {
    const c = await runChild(env, start, CASES - start);
    let running: { i: number; what: string } | undefined;
    let next = start;
    let done = false;
    for (const l of c.lines) {
      const m = /^([BE]) (\d+) (.*)$/.exec(l);
      if (l === 'DONE') done = true;
      if (!m) continue;
      const i = Number(m[2]);
      if (m[1] === 'B') {
        running = { i, what: m[3] };
        continue;
      }
      o.cases++;
      if (running && !/ valid$/.test(running.what)) o.hostile++;
      if (m[3].startsWith('fail'))
        o.failures.push(`case ${i} [${running?.what}]: ${m[3].slice(5)}\n    re-run: ${repro(i)}`);
      running = undefined;
      next = i + 1;
    }
    if (done && c.code === 0) break;
    const how = c.signal ? `signal ${c.signal}` : `exit code ${c.code}`;
    if (running) {
      o.cases++;
      o.hostile++;
      o.failures.push(
        `case ${running.i} [${running.what}]: the process died (${how}): ${c.stderr.trim().split('\n').slice(-3).join(' | ')}\n    re-run: ${repro(running.i)}`,
      );
      next = running.i + 1;
    } else {
      o.failures.push(`the worker died between cases after case ${next - 1} (${how}): ${c.stderr.trim().slice(-500)}`);
      if (next === start) break; // it could not even start: no case to charge, no progress
    }
    start = next;
  }
  return o;
}

const all = backendConfigs();
const totals: Outcome = { cases: 0, hostile: 0, failures: [] };
// Two children at a time (CI has 2 cores).
const results = new Map<string, Promise<Outcome>>();
let chain: Promise<unknown>[] = [Promise.resolve(), Promise.resolve()];
all.forEach((env, k) => {
  const label = Object.entries(env)
    .map(([a, b]) => `${a}=${b}`)
    .join(' ');
  const p = chain[k % 2].then(() => fuzz(env));
  chain[k % 2] = p;
  results.set(label, p);
});

describe('fuzz: hostile calls in child processes', () => {
  for (const [label, p] of results) {
    it(`${label}: ${CASES} cases, no crash, only TypeError/RangeError, invariants kept`, async () => {
      const o = await p;
      totals.cases += o.cases;
      totals.hostile += o.hostile;
      totals.failures.push(...o.failures.map((f) => `${label}: ${f}`));
      expect(o.cases).toBe(CASES);
      expect(o.failures, o.failures.join('\n')).toEqual([]);
    }, 300_000);
  }
  afterAll(() => {
    console.log(
      `fuzz: seed ${SEED}, ${all.length} configurations (${[...results.keys()].join(', ')}): ` +
        `cases ${totals.cases}, hostile calls ${totals.hostile}, failures ${totals.failures.length}`,
    );
  });
});

describe.runIf(backendInfo().active !== 'js')(
  'the addon called directly: getters and buffers that change under it',
  () => {
    // Each in its own process: on a build that used the array memory it read before a getter ran,
    // these die with SIGSEGV.
    const modes = ['detach-sync', 'fresh-async', 'shrink-sync', 'shrink-async'];
    for (const mode of modes) {
      it(`${mode}: the process lives and the call answers`, async () => {
        const c = await new Promise<Child>((resolve) => {
          const p = spawn(
            process.execPath,
            ['--expose-gc', '--import', 'tsx', 'test/helpers/addon-getters.mjs', mode],
            { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] },
          );
          let out = '',
            stderr = '';
          p.stdout.on('data', (d) => (out += d));
          p.stderr.on('data', (d) => (stderr += d));
          p.on('close', (code, signal) => resolve({ lines: out.split('\n').filter(Boolean), code, signal, stderr }));
        });
        expect({ code: c.code, signal: c.signal, stderr: c.stderr.slice(-500) }).toEqual({
          code: 0,
          signal: null,
          stderr: '',
        });
        expect(c.lines.at(-1)).toMatch(
          mode === 'fresh-async'
            ? /^fulfilled$/
            : /^TypeError: \w+: \w+ must be a typed array (that stays as it was|over a fixed-length ArrayBuffer)/,
        );
      }, 60_000);
    }
  },
);
