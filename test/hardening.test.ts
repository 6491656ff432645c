// Reliability: no leak over 10,000 calls, identical results from worker threads and
// many in-flight async calls, a responsive event loop during a large async call, hostile input
// drawn at random (every call returns the reference's answer or throws the documented error,
// inputs untouched), and what happens to inputs mutated or detached during an async call.
import fc from 'fast-check';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import v8 from 'node:v8';
import vm from 'node:vm';
import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import * as gvpo from '../src/index.js';
import { gvpoFromLogitsRef } from '../src/reference/gvpoFromLogits.js';
import { gradClose } from './helpers/allclose.js';
import { batch, randomRewards, rng } from './helpers/data.js';

const LEAK_CALLS = Number(process.env.GVPO_LEAK_CALLS ?? 10000);
const HOSTILE_RUNS = Number(process.env.GVPO_HOSTILE_RUNS ?? 2000);
const native = gvpo.backendInfo().active !== 'js';

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;
const rssMiB = () => {
  gc();
  return process.memoryUsage().rss / 2 ** 20;
};

function args(seed: number, N = 4, T = 8, V = 2048) {
  const b = batch(seed, N, T, V, 'float32', 2, 2);
  return {
    ...b,
    rewards: randomRewards(seed, N),
    groups: { size: 2 },
    beta: 0.1,
    referenceLogprobs: Float64Array.from({ length: N }, (_, n) => -60 - n),
  };
}

describe.runIf(native)('leaks: resident memory stays flat', () => {
  const a = args(1);
  const rows = { logits: a.logits, targets: a.targets, rows: 32, vocab: 2048 };
  const lz = gvpo.tokenLogprobs(rows).logZ;
  const f = gvpo.gvpoForward(a);
  // the fused head: hidden 32 x 16, weight 256 x 16 (small: its per-thread tiles and gradients
  // are allocated on the libuv threads' malloc arenas, whose resident size wanders with them)
  const hb = batch(3, 4, 8, 16, 'float32', 1, 2),
    wb = batch(4, 256, 1, 16, 'float32', 0.25);
  const head = {
    hidden: hb.logits,
    weight: wb.logits,
    targets: hb.targets,
    mask: hb.mask,
    sequences: 4,
    tokens: 8,
    hiddenSize: 16,
    vocab: 256,
    rewards: a.rewards,
    groups: a.groups,
    beta: 0.1,
    referenceLogprobs: a.referenceLogprobs,
  };
  const headBack = { ...head, logZ: gvpo.gvpoFromHiddenForward(head).logZ, gradLogprobs: [1, -1, 0.5, -0.5] };
  const ops: Array<[string, () => unknown, () => Promise<unknown>]> = [
    ['tokenLogprobs', () => gvpo.tokenLogprobs(rows), () => gvpo.tokenLogprobsAsync(rows)],
    [
      'tokenLogprobsBackward',
      () => gvpo.tokenLogprobsBackward({ ...rows, logZ: lz, gradTokenLogprobs: new Float32Array(32).fill(1) }),
      () => gvpo.tokenLogprobsBackwardAsync({ ...rows, logZ: lz, gradTokenLogprobs: new Float32Array(32).fill(1) }),
    ],
    [
      'sequenceLogprobs',
      () => gvpo.sequenceLogprobs({ tokenLogprobs: f.tokenLogprobs, mask: a.mask, sequences: 4, tokens: 8 }),
      () => gvpo.sequenceLogprobsAsync({ tokenLogprobs: f.tokenLogprobs, mask: a.mask, sequences: 4, tokens: 8 }),
    ],
    [
      'groupCenter',
      () => gvpo.groupCenter({ values: a.rewards, groups: a.groups }),
      () => gvpo.groupCenterAsync({ values: a.rewards, groups: a.groups }),
    ],
    [
      'gvpoLoss',
      () =>
        gvpo.gvpoLoss({
          policyLogprobs: f.policyLogprobs,
          referenceLogprobs: f.referenceLogprobs,
          rewards: a.rewards,
          groups: a.groups,
          beta: 0.1,
        }),
      () =>
        gvpo.gvpoLossAsync({
          policyLogprobs: f.policyLogprobs,
          referenceLogprobs: f.referenceLogprobs,
          rewards: a.rewards,
          groups: a.groups,
          beta: 0.1,
        }),
    ],
    ['gvpoForward', () => gvpo.gvpoForward(a), () => gvpo.gvpoForwardAsync(a)],
    [
      'gvpoBackward',
      () => gvpo.gvpoBackward({ ...a, logZ: f.logZ, gradLogprobs: [1, -1, 0.5, -0.5] }),
      () => gvpo.gvpoBackwardAsync({ ...a, logZ: f.logZ, gradLogprobs: [1, -1, 0.5, -0.5] }),
    ],
    ['gvpoFromLogits', () => gvpo.gvpoFromLogits(a), () => gvpo.gvpoFromLogitsAsync(a)],
    ['gvpoFromHidden', () => gvpo.gvpoFromHidden(head), () => gvpo.gvpoFromHiddenAsync(head)],
    ['gvpoFromHiddenForward', () => gvpo.gvpoFromHiddenForward(head), () => gvpo.gvpoFromHiddenForwardAsync(head)],
    [
      'gvpoFromHiddenBackward',
      () => gvpo.gvpoFromHiddenBackward(headBack),
      () => gvpo.gvpoFromHiddenBackwardAsync(headBack),
    ],
  ];
  // Resident memory is sampled after each eighth of the calls (after a full GC). The allocator
  // and V8's external-memory heuristics move it by tens of MiB either way, so the test compares
  // the mean of the last four samples with the mean of the first four: a leak of 5 KiB per call
  // would move it by 25 MiB (the gradient-returning ops allocate 256 KiB per call). A one-off
  // step (the allocator taking a new arena for a thread of the pool: 28 MiB once in a CI run,
  // flat before and after) is told from a leak by a second round of the same calls: a leak
  // drifts in both, so the test fails only where both rounds drift past the bound.
  const BOUND_MIB = 24;
  const round = async (sync: () => unknown, asyncFn: () => Promise<unknown>) => {
    const rss: number[] = [];
    for (let q = 0; q < 8; q++) {
      for (let i = 0; i < LEAK_CALLS / 8; i++) sync();
      for (let i = 0; i < LEAK_CALLS / 8; i += 50) await Promise.all(Array.from({ length: 50 }, asyncFn));
      rss.push(rssMiB());
    }
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    return { drift: mean(rss.slice(4)) - mean(rss.slice(0, 4)), rss };
  };
  for (const [name, sync, asyncFn] of ops) {
    it(`${name}: ${LEAK_CALLS} sync and ${LEAK_CALLS} async calls, resident memory flat within ${BOUND_MIB} MiB`, async () => {
      for (let i = 0; i < 500; i++) sync();
      for (let i = 0; i < 500; i++) await asyncFn();
      let r = await round(sync, asyncFn);
      if (r.drift >= BOUND_MIB) r = await round(sync, asyncFn);
      expect(r.drift, `resident MiB by eighth: ${r.rss.map((x) => x.toFixed(1)).join(', ')}`).toBeLessThan(BOUND_MIB);
    }, 240_000);
  }

  it('large gradients are freed: 300 calls of 8 MiB each', () => {
    const big = args(2, 4, 16, 32768); // 4*16*32768*4 = 8 MiB per gradient
    for (let i = 0; i < 20; i++) gvpo.gvpoFromLogits(big);
    const before = rssMiB();
    for (let i = 0; i < 300; i++) gvpo.gvpoFromLogits(big);
    expect(rssMiB() - before).toBeLessThan(2 * 8 * 20);
  }, 120_000);
});

describe('concurrency', () => {
  it('4 worker threads calling at once give the sequential result', async () => {
    const here = dirname(fileURLToPath(import.meta.url));
    const dist = pathToFileURL(join(here, '..', 'dist', 'index.js')).href;
    // each worker rebuilds the same inputs from the seed with the built package, then runs 20 calls
    const code = `
      const { parentPort, workerData } = require('node:worker_threads');
      (async () => {
        const g = await import(${JSON.stringify(dist)});
        const { N, T, V, data, targets, mask, rewards, referenceLogprobs } = workerData;
        const logits = new Float32Array(data);
        const out = [];
        for (let i = 0; i < 20; i++) {
          const r = await g.gvpoFromLogitsAsync({ logits, targets, mask, sequences: N, tokens: T, vocab: V, rewards, referenceLogprobs, groups: { size: 2 }, beta: 0.1 });
          out.push(r.loss, r.gradLogits.reduce((s, x, j) => s + x * ((j % 7) + 1), 0));
        }
        parentPort.postMessage(out);
      })().catch((e) => parentPort.postMessage(String(e)));`;
    const a = args(3, 8, 16, 4096);
    const seq = gvpo.gvpoFromLogits(a);
    const want = [seq.loss, seq.gradLogits.reduce((s, x, j) => s + x * ((j % 7) + 1), 0)];
    const results = await Promise.all(
      Array.from(
        { length: 4 },
        () =>
          new Promise<unknown>((resolve, reject) => {
            const w = new Worker(code, {
              eval: true,
              workerData: {
                N: 8,
                T: 16,
                V: 4096,
                data: (a.logits as Float32Array).slice().buffer,
                targets: a.targets,
                mask: a.mask,
                rewards: a.rewards,
                referenceLogprobs: a.referenceLogprobs,
              },
            });
            w.once('message', (m) => {
              resolve(m);
              void w.terminate();
            });
            w.once('error', reject);
          }),
      ),
    );
    for (const r of results) {
      expect(Array.isArray(r), String(r)).toBe(true);
      for (let i = 0; i < 40; i += 2) expect([(r as number[])[i], (r as number[])[i + 1]]).toEqual(want);
    }
  }, 60_000);

  it('64 in-flight async calls on shared and separate inputs equal the sync results', async () => {
    const shared = args(4);
    const separate = Array.from({ length: 32 }, (_, i) => args(100 + i));
    const want = [...Array(32).fill(gvpo.gvpoFromLogits(shared)), ...separate.map((a) => gvpo.gvpoFromLogits(a))];
    const got = await Promise.all([
      ...Array.from({ length: 32 }, () => gvpo.gvpoFromLogitsAsync(shared)),
      ...separate.map((a) => gvpo.gvpoFromLogitsAsync(a)),
    ]);
    got.forEach((g, i) => {
      expect(g.loss).toBe(want[i].loss);
      expect(Buffer.from(g.gradLogits.buffer).equals(Buffer.from(want[i].gradLogits.buffer))).toBe(true);
    });
  });

  it.runIf(native)(
    'the event loop stays responsive during a large async call',
    async () => {
      // A compute-bound call of about a second on one thread (the fused head: 8 x 256 rows,
      // H = 256, V = 32768, 4 GEMM passes), so that the other core serves the event loop and
      // the call is long against a busy machine's scheduling noise. (A logits call is now
      // ~20 ms: a 10 ms bound on the loop's lag beside it measured the machine, not the binding.)
      // Where it takes under 100 ms (a GPU), the batch is doubled until it does not.
      let N = 4,
        a: gvpo.GvpoFromHiddenArgs,
        callMs: number;
      do {
        N *= 2;
        a = head(N);
        gvpo.gvpoFromHidden(a); // warm the pages
        const t0 = performance.now();
        gvpo.gvpoFromHidden(a);
        callMs = performance.now() - t0;
      } while (callMs < 150 && N < 512);
      let maxLag = 0;
      let last = performance.now();
      const timer = setInterval(() => {
        const now = performance.now();
        maxLag = Math.max(maxLag, now - last - 1);
        last = now;
      }, 1);
      await gvpo.gvpoFromHiddenAsync(a);
      clearInterval(timer);
      // a sync call blocks the loop for callMs; the async one lets 1 ms timers run throughout
      expect(callMs).toBeGreaterThan(100);
      expect(maxLag).toBeLessThan(callMs / 4);
    },
    60_000,
  );
});

function head(N: number): gvpo.GvpoFromHiddenArgs {
  const T = 256,
    H = 256,
    V = 32768;
  const r = rng(1),
    rand = () => r() - 0.5;
  return {
    hidden: Float32Array.from({ length: N * T * H }, rand),
    weight: Float32Array.from({ length: V * H }, () => rand() / 16),
    targets: Int32Array.from({ length: N * T }, (_, i) => (i * 7919) % V),
    mask: new Float32Array(N * T).fill(1),
    sequences: N,
    tokens: T,
    hiddenSize: H,
    vocab: V,
    rewards: Float64Array.from({ length: N }, (_, n) => n % 2),
    groups: { size: 4 },
    beta: 0.1,
    threads: 1,
    gradWeight: new Float32Array(V * H),
  };
}

describe('hostile input', () => {
  const N = 4,
    T = 3,
    V = 17;
  const base = () => ({
    ...batch(7, N, T, V, 'float32', 2, 1),
    rewards: [1, 0, 0.5, 0],
    groups: { size: 2 } as object,
    beta: 0.1,
  });
  const nasty = fc.oneof(
    fc.constantFrom(
      undefined,
      null,
      NaN,
      Infinity,
      -Infinity,
      -1,
      0,
      0.5,
      2 ** 31,
      2 ** 53,
      2 ** 64,
      '3',
      true,
      {},
      [],
      () => 0,
      10n,
    ),
    fc.constantFrom(
      new Float64Array(N * T * V),
      new Int32Array(N * T),
      new Uint16Array(4),
      new Float32Array(0),
      new Uint8Array(N * T),
    ),
  );
  const FIELDS = [
    'logits',
    'dtype',
    'targets',
    'mask',
    'sequences',
    'tokens',
    'vocab',
    'rewards',
    'groups',
    'beta',
    'temperature',
    'reduction',
    'inPlace',
    'referenceLogprobs',
    'threads',
  ];

  it(`${HOSTILE_RUNS} random mixes of valid and invalid arguments: the reference's answer or a TypeError/RangeError, inputs untouched`, () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.constantFrom(...FIELDS), nasty), { maxLength: 3 }),
        fc.boolean(),
        fc.nat(40),
        fc.boolean(),
        (edits, shared, offset, detach) => {
          const a: Record<string, unknown> = base();
          // valid variants too: SharedArrayBuffer storage, a view at a byte offset, a detached buffer
          const z = a.logits as Float32Array;
          if (shared) {
            const s = new Float32Array(new SharedArrayBuffer((z.length + offset) * 4), offset * 4, z.length);
            s.set(z);
            a.logits = s;
          } else if (offset) {
            const s = new Float32Array(z.length + offset).subarray(offset);
            s.set(z);
            a.logits = s;
          }
          if (detach) {
            const t = new Int32Array(N * T);
            structuredClone(t.buffer, { transfer: [t.buffer] });
            a.targets = t;
          }
          for (const [k, v] of edits) a[k] = v;
          const snapshot = ArrayBuffer.isView(a.logits) ? Array.from(a.logits as Float32Array) : undefined;
          let result: gvpo.GvpoFromLogitsResult | undefined;
          try {
            result = gvpo.gvpoFromLogits(a as never);
          } catch (e) {
            if (!(e instanceof TypeError || e instanceof RangeError)) throw e;
            expect((e as Error).message).toMatch(/^gvpoFromLogits: \S+ must be /);
          }
          if (snapshot && !a.inPlace) expect(Array.from(a.logits as Float32Array)).toEqual(snapshot);
          if (result) {
            const want = gvpoFromLogitsRef({
              ...a,
              offsets: Int32Array.from([0, 2, 4]),
              dtype: 'float32',
              temperature: (a.temperature as number) ?? 1,
              reduction: (a.reduction as 'mean') ?? 'mean',
              inPlace: false,
              rewards: Float64Array.from(a.rewards as number[]),
              mask: a.mask as Float32Array,
              referenceLogprobs: a.referenceLogprobs as Float64Array,
            } as never);
            if (!a.inPlace) gradClose(result.gradLogits, want.gradLogits, 1e-4, 1e-6);
          }
        },
      ),
      { numRuns: HOSTILE_RUNS, seed: 6 },
    );
  }, 120_000);
});

describe('buffer ownership during async calls', () => {
  it.runIf(native)(
    'an input detached (transferred) while the call runs: the call rejects and the process lives',
    async () => {
      const a = args(8, 16, 64, 32768);
      const p = gvpo.gvpoFromLogitsAsync(a);
      structuredClone((a.logits as Float32Array).buffer, { transfer: [(a.logits as Float32Array).buffer] });
      gc(); // the transferred copy is garbage now: without the pin its memory would be freed mid-read
      await expect(p).rejects.toThrow(/logits was detached \(transferred\) while the call was running/);
    },
  );

  it('an input mutated while the call runs: no crash; the documented contract is unspecified values', async () => {
    const a = args(9, 16, 64, 8192);
    const p = gvpo.gvpoFromLogitsAsync(a);
    (a.logits as Float32Array).fill(0);
    const r = await p;
    expect(r.gradLogits.length).toBe(16 * 64 * 8192);
  });

  it("a gradient returned for the caller is never the caller's logits unless inPlace", async () => {
    const a = args(10);
    const r = await gvpo.gvpoFromLogitsAsync(a);
    expect(r.gradLogits).not.toBe(a.logits);
    const want = gvpoFromLogitsRef({
      ...a,
      offsets: Int32Array.from([0, 2, 4]),
      dtype: 'float32',
      temperature: 1,
      reduction: 'mean',
      inPlace: false,
    });
    gradClose(r.gradLogits, want.gradLogits, 1e-4);
  });
});
