// What a caller can change between the checks and the work, and what the process must survive:
// group offsets rewritten while an async call waits for its thread, an options getter that gives a
// different array on each read, inputs inherited or non-enumerable, a destination overlapping
// groups.offsets or (inPlace) another input, a worker thread ended with a call in flight, and
// threads that cannot be started. The process-level cases run in child processes against the
// built package (dist/), so that a crash is a failed test rather than a lost run.
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import * as gvpo from '../src/index.js';
import { batch, randomRewards } from './helpers/data.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const native = gvpo.backendInfo().active !== 'js';

/** Runs an ES module snippet (importing './dist/index.js') in a fresh node; its exit and output. */
function child(code: string, env: Record<string, string> = {}, shell = '') {
  // bash only to set limits (shell); the code goes through the environment, unquoted by nothing
  const r = spawnSync('bash', ['-c', `${shell}exec "$0" --input-type=module -e "$GVPO_CHILD_CODE"`, process.execPath], {
    cwd: root,
    env: { ...process.env, ...env, GVPO_CHILD_CODE: code },
    encoding: 'utf8',
    timeout: 120_000,
  });
  return { status: r.status, signal: r.signal, out: r.stdout, err: r.stderr.slice(-2000) };
}

function lossArgs(seed: number, N = 8, T = 16, V = 512) {
  const b = batch(seed, N, T, V, 'float32', 2, 2);
  return {
    ...b,
    rewards: randomRewards(seed, N),
    groups: { offsets: Int32Array.from([0, 3, 8]) },
    beta: 0.1,
    referenceLogprobs: Float64Array.from({ length: N }, (_, n) => -40 - n),
  };
}

describe('group offsets rewritten before an async call runs', () => {
  // One libuv thread, held by a large call, so that the call under test waits in the queue while
  // its offsets are rewritten to indices far outside every buffer.
  const code = (op: string) => `
    import * as g from './dist/index.js';
    const N = 8, T = 4, V = 64, rows = N * T;
    const logits = new Float32Array(rows * V).map((_, i) => Math.sin(i));
    const hidden = new Float32Array(rows * 8).map((_, i) => Math.cos(i)), weight = new Float32Array(V * 8).map((_, i) => Math.sin(3 * i));
    const common = { targets: new Int32Array(rows).fill(1), mask: new Float32Array(rows).fill(1), sequences: N, tokens: T, vocab: V,
      rewards: Float64Array.from({ length: N }, (_, i) => i % 3), beta: 0.1 };
    const make = (offsets) => ({
      gvpoLossAsync: { policyLogprobs: Float64Array.from({ length: N }, (_, i) => -i), referenceLogprobs: new Float64Array(N), rewards: common.rewards, groups: { offsets }, beta: 0.1 },
      groupCenterAsync: { values: Float64Array.from({ length: N }, (_, i) => i * i), groups: { offsets } },
      gvpoFromLogitsAsync: { ...common, logits, groups: { offsets } },
      gvpoFromHiddenAsync: { ...common, hidden, weight, hiddenSize: 8, groups: { offsets } },
    }['${op}']);
    const strip = (r) => JSON.stringify(r, (k, v) => (ArrayBuffer.isView(v) ? Array.from(v) : v));
    const want = strip(await g['${op}'](make(Int32Array.from([0, 3, 8]))));
    const big = g.tokenLogprobsAsync({ logits: new Float32Array(256 * 32768), targets: new Int32Array(256), rows: 256, vocab: 32768 });
    const offsets = Int32Array.from([0, 3, 8]);
    const p = g['${op}'](make(offsets));
    offsets.set([0, -50000000, 50000000]);
    await big;
    const got = strip(await p);
    console.log(got === want ? 'same' : 'different');
  `;
  for (const op of ['gvpoLossAsync', 'groupCenterAsync', 'gvpoFromLogitsAsync', 'gvpoFromHiddenAsync']) {
    it(`${op}: the call uses the offsets it was given, and the process lives`, () => {
      const r = child(code(op), { UV_THREADPOOL_SIZE: '1' });
      expect(r.signal, r.err).toBeNull();
      expect(r.status, r.err).toBe(0);
      expect(r.out.trim()).toBe('same');
    });
  }
});

describe('a worker thread ended with a native call in flight', () => {
  it.runIf(native)('the process lives, and goes on computing', () => {
    const r = child(`
      import { Worker } from 'node:worker_threads';
      import * as g from './dist/index.js';
      const body = "import('" + new URL('./dist/index.js', 'file://' + process.cwd() + '/').href + "').then(g => {" +
        "const V = 32768, rows = 64; for (let i = 0; i < 4; i++) g.tokenLogprobsAsync({ logits: new Float32Array(rows * V), targets: new Int32Array(rows), rows, vocab: V });" +
        "g.gvpoLossAsync({ policyLogprobs: new Float64Array(4), referenceLogprobs: new Float64Array(4), rewards: Float64Array.from([0, 1, 0, 1]), groups: { size: 2 }, beta: 0.1 });" +
        "return import('node:worker_threads'); }).then((w) => w.parentPort.postMessage('started'))";
      for (let i = 0; i < 10; i++) {
        const w = new Worker(body, { eval: true });
        await new Promise((res) => w.once('message', res));
        await w.terminate();
      }
      const r = await g.groupCenterAsync({ values: [1, 2, 3, 4], groups: { size: 2 } });
      console.log(Array.from(r.centered).join(','));
    `);
    expect(r.signal, r.err).toBeNull();
    expect(r.status, r.err).toBe(0);
    expect(r.out.trim()).toBe('-0.5,0.5,-0.5,0.5');
  });

  // A synchronous call that a termination interrupts cannot throw into the worker's JavaScript any
  // more: node-addon-api must let that go (NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS) rather than
  // abort the whole process from an uncaught C++ exception.
  it.runIf(native)('terminated in a loop of synchronous calls, every op: the process lives', () => {
    const r = child(`
      import { Worker } from 'node:worker_threads';
      const url = new URL('./dist/index.js', 'file://' + process.cwd() + '/').href;
      const calls = {
        groupCenter: "g.groupCenter({ values: [1, 2], groups: { size: 2 } })",
        gvpoLoss: "g.gvpoLoss({ policyLogprobs: new Float64Array(4), referenceLogprobs: new Float64Array(4), rewards: Float64Array.from([0, 1, 0, 1]), groups: { size: 2 }, beta: 0.1 })",
        tokenLogprobs: "g.tokenLogprobs({ logits: new Float32Array(4 * 64), targets: new Int32Array(4), rows: 4, vocab: 64 })",
        sequenceLogprobs: "g.sequenceLogprobs({ tokenLogprobs: new Float32Array(8), mask: new Uint8Array(8).fill(1), sequences: 2, tokens: 4 })",
      };
      let n = 0;
      for (const [op, call] of Object.entries(calls)) {
        for (let i = 0; i < 3; i++) {
          const w = new Worker("import('" + url + "').then(async (g) => { (await import('node:worker_threads')).parentPort.postMessage('ready'); for (;;) " + call + "; })", { eval: true });
          const first = await new Promise((res) => { w.once('message', res); w.once('error', (e) => res(op + ': ' + e.message)); });
          if (first !== 'ready') throw new Error(String(first));
          await new Promise((res) => setTimeout(res, 20));
          await w.terminate();
          n++;
        }
      }
      console.log('terminated ' + n);
    `);
    expect(r.signal, r.err).toBeNull();
    expect(r.status, r.err).toBe(0);
    expect(r.out.trim()).toBe('terminated 12');
  });
});

describe('threads that cannot be started', () => {
  // 512 threads' stacks do not fit in 3 GB of address space: the kernels run on the threads they
  // could start (the calling one at least) and give the same result.
  it.runIf(native)('the call still returns the result of one thread, never an abort', () => {
    const code = `
      import * as g from './dist/index.js';
      const rows = 2048, vocab = 65536; // enough work for 512 threads, whose stacks need 4 GB
      const logits = new Uint16Array(rows * vocab).map((_, i) => 0x3f80 + (i % 61)); // bfloat16 1.0 .. 1.47
      const a = { logits, dtype: 'bfloat16', targets: Int32Array.from({ length: rows }, (_, r) => (r * 7) % vocab), rows, vocab };
      const one = g.tokenLogprobs({ ...a, threads: 1 }).logprobs;
      for (const f of ['sync', 'async']) {
        const many = f === 'sync' ? g.tokenLogprobs({ ...a, threads: 1024 }) : await g.tokenLogprobsAsync({ ...a, threads: 1024 });
        console.log(f, many.logprobs.every((x, i) => x === one[i]) ? 'same' : 'different');
      }
    `;
    const r = child(code, {}, 'ulimit -v 3000000; ');
    expect(r.signal, r.err).toBeNull();
    expect(r.status, r.err).toBe(0);
    expect(r.out.trim().split('\n')).toEqual(['sync same', 'async same']);
  });
});

describe('a destination overlapping an input is refused however it is given', () => {
  it('an out that a getter swaps for the logits on a later read', () => {
    const a = lossArgs(1);
    const logits = a.logits as Float32Array;
    const before = logits.slice();
    let reads = 0;
    const opts: Record<string, unknown> = { ...a, out: new Float32Array(logits.length) };
    Object.defineProperty(opts, 'out', {
      enumerable: true,
      get: () => (++reads === 1 ? new Float32Array(logits.length) : new Float32Array(logits.buffer)),
    });
    // read once: the fresh array is what the kernels write, and the logits stay untouched
    const r = gvpo.gvpoFromLogits(opts as never);
    expect(reads).toBe(1);
    expect(r.gradLogits.buffer).not.toBe(logits.buffer);
    expect(logits).toEqual(before);
  });

  it('logits inherited from a prototype or not enumerable, with out over them', () => {
    const a = lossArgs(2);
    const logits = a.logits as Float32Array;
    const { logits: _, ...rest } = a;
    const inherited = Object.assign(Object.create({ logits }), rest, { out: new Float32Array(logits.buffer) });
    expect(() => gvpo.gvpoFromLogits(inherited)).toThrow(
      'gvpoFromLogits: out must be a buffer that does not overlap the inputs (use inPlace to write over the logits), got a view overlapping logits',
    );
    const hidden = { ...rest, out: new Float32Array(logits.buffer) };
    Object.defineProperty(hidden, 'logits', { value: logits, enumerable: false });
    expect(() => gvpo.gvpoFromLogits(hidden as never)).toThrow(/out must be .* got a view overlapping logits/);
  });

  it('out or gradWeight over groups.offsets', () => {
    const a = lossArgs(3);
    const n = (a.logits as Float32Array).length;
    const buf = new ArrayBuffer(n * 4);
    const offsets = new Int32Array(buf, 0, 3);
    offsets.set([0, 3, 8]);
    expect(() => gvpo.gvpoFromLogits({ ...a, groups: { offsets }, out: new Float32Array(buf) })).toThrow(
      /out must be .* got a view overlapping groups\.offsets/,
    );
    expect(Array.from(offsets)).toEqual([0, 3, 8]);
  });

  it('inPlace with another input over the logits', () => {
    const rows = 6,
      vocab = 16;
    const logits = new Float32Array(rows * vocab).map((_, i) => Math.sin(i));
    const before = logits.slice();
    const base = {
      logits,
      targets: new Int32Array(rows),
      rows,
      vocab,
      logZ: gvpo.tokenLogprobs({ logits, targets: new Int32Array(rows), rows, vocab }).logZ,
      inPlace: true,
    };
    expect(() =>
      gvpo.tokenLogprobsBackward({ ...base, gradTokenLogprobs: new Float32Array(logits.buffer, 4 * vocab, rows) }),
    ).toThrow(
      'tokenLogprobsBackward: logits must be an array that no other input overlaps when inPlace is true (the gradient is written over it), got a view overlapping gradTokenLogprobs',
    );
    expect(() =>
      gvpo.tokenLogprobsBackward({
        ...base,
        logZ: new Float32Array(logits.buffer, 0, rows),
        gradTokenLogprobs: new Float32Array(rows).fill(1),
      }),
    ).toThrow(/got a view overlapping logZ/);
    expect(logits).toEqual(before);
  });
});

describe('the TypeScript backend agrees with the kernels on rows past float32', () => {
  it('z/tau past float32 range: l = NaN and the row is reported, on every backend', () => {
    const r = gvpo.tokenLogprobs({
      logits: Float32Array.from([3e38, 0, 1, 0]),
      targets: Int32Array.from([0, 1]),
      rows: 2,
      vocab: 2,
      temperature: 0.5,
    });
    expect(Number.isNaN(r.logprobs[0])).toBe(true);
    expect(r.logprobs[1]).toBeCloseTo(-2 - Math.log1p(Math.exp(-2)), 5);
    expect(r.nonFiniteRows).toBe(1);
    const inf = gvpo.tokenLogprobs({
      logits: Float32Array.from([Infinity, 0]),
      targets: new Int32Array(1),
      rows: 1,
      vocab: 2,
    });
    expect(Number.isNaN(inf.logprobs[0])).toBe(true);
    expect(Number.isNaN(inf.logZ[0])).toBe(true);
    expect(inf.nonFiniteRows).toBe(1);
  });
});

describe('helpers and environment', () => {
  it('toHalf refuses holes and Proxies, and rounds a float64 to bfloat16 once', () => {
    // eslint-disable-next-line no-sparse-arrays
    expect(() => gvpo.toHalf([1, , 3] as number[], 'float16')).toThrow(
      'toHalf: values[1] must be a number, got undefined',
    );
    expect(() => gvpo.toHalf(new Proxy([1, 2], {}), 'bfloat16')).toThrow(TypeError);
    // 1 + 2^-8 + 2^-30: float32 rounds it to the bfloat16 midpoint 1 + 2^-8; the nearest is above
    expect(gvpo.toHalf([1 + 2 ** -8 + 2 ** -30], 'bfloat16')[0]).toBe(0x3f81);
    expect(gvpo.toHalf([1 + 2 ** -8 - 2 ** -30], 'bfloat16')[0]).toBe(0x3f80);
    expect(gvpo.toHalf(Float32Array.from([1 + 2 ** -8]), 'bfloat16')[0]).toBe(0x3f80); // a tie: to even
    expect(gvpo.toHalf([-(1 + 2 ** -8 + 2 ** -30)], 'bfloat16')[0]).toBe(0xbf81);
  });

  it('GVPO_SIMD with an unknown value is refused, naming the values it takes', () => {
    const r = child("import('./dist/index.js').then((g) => g.backendInfo())", { GVPO_SIMD: 'avx9000' });
    expect(r.status).not.toBe(0);
    expect(r.err).toContain("GVPO_SIMD must be 'avx512bf16' | 'avx512' | 'avx2' | 'sse2' | 'generic', got 'avx9000'");
  });

  it('GVPO_NUM_THREADS that is not a positive whole number is refused, not half read', () => {
    for (const bad of ['abc', '-3', '1.5', '8abc', '0', ' 2']) {
      const r = child("import('./dist/index.js').then((g) => g.backendInfo())", { GVPO_NUM_THREADS: bad });
      expect(r.status, bad).not.toBe(0);
      expect(r.err).toContain(`GVPO_NUM_THREADS must be a positive whole number (1 to 1024 are used), got '${bad}'`);
    }
    const ok = child("import('./dist/index.js').then((g) => console.log(g.backendInfo().threads))", {
      GVPO_NUM_THREADS: '3',
    });
    expect(ok.status, ok.err).toBe(0);
    // backendInfo().threads is the addon's count wherever the addon loads, whichever backend runs
    expect(ok.out.trim()).toBe(gvpo.backendInfo().compiled.includes('cpu') ? '3' : '1');
  });
});

describe('the task helpers refuse what they cannot compute', () => {
  it('seeded, BanditTask, tiltedOptimum, meanKl and hasFusedHead name the bad argument', async () => {
    const { BanditTask, tiltedOptimum, meanKl, seeded, hasFusedHead } = await import('../src/tfjs/index.js');
    // the class and the whole message: a string is a TypeError quoted as it came, not a
    // RangeError that reads like the number
    const refuses = (f: () => unknown, Class: typeof TypeError | typeof RangeError, message: string) => {
      let caught: unknown;
      try {
        f();
      } catch (e) {
        caught = e;
      }
      expect(caught).toBeInstanceOf(Class);
      expect((caught as Error).message).toBe(message);
    };
    refuses(() => seeded('x' as never), TypeError, "seeded: seed must be an integer, got 'x'");
    refuses(() => new BanditTask(4, 0), RangeError, 'BanditTask: vocab must be an integer >= 1, got 0');
    refuses(() => new BanditTask('4' as never), TypeError, "BanditTask: prompts must be an integer >= 1, got '4'");
    refuses(() => new BanditTask(4, 6, 1.5), RangeError, 'BanditTask: seed must be an integer, got 1.5');
    const { AdditionTask } = await import('../src/tasks/addition.js');
    refuses(
      () => new AdditionTask({ digits: '2' as never }),
      TypeError,
      "AdditionTask: digits must be an integer in [1, 6], got '2'",
    );
    refuses(
      () => new AdditionTask({ heldOut: 1 }),
      RangeError,
      'AdditionTask: heldOut must be a number in [0, 1), got 1',
    );
    refuses(
      () => tiltedOptimum([[1]], [[0]], 1, null as never),
      TypeError,
      'tiltedOptimum: scale must be a finite number, got null',
    );
    expect(() => tiltedOptimum([[0.5, 0.5]], [[0, 1]], -1)).toThrow(
      'tiltedOptimum: beta must be a finite number > 0, got -1',
    );
    expect(() => meanKl([[0.5, 0.5]], [])).toThrow(
      /meanKl: p and q must be arrays of distributions of the same shapes/,
    );
    expect(hasFusedHead(null as never)).toBe(false);
    expect(meanKl([[0.5, 0.5]], [[0.5, 0.5]])).toBe(0);
  });
});
