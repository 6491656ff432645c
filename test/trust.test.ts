// What a user must be able to trust (docs/DESIGN.md, "Bad input" and "Shared semantics"): no input
// crashes the process, token log-probs are never positive on any backend or instruction set,
// masked rows contribute nothing anywhere, options are checked as strictly as arrays, typed arrays
// from another realm work, and async twins reject rather than throw.
import { spawnSync } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import vm from 'node:vm';
import { describe, expect, it } from 'vitest';
import * as gvpo from '../src/index.js';
import { gvpoFromLogitsRef } from '../src/reference/gvpoFromLogits.js';
import { tokenLogprobsF64 } from '../src/reference/tokenLogprobs.js';
import { awkwardCases } from './helpers/awkward.js';
import { batch } from './helpers/data.js';
import { dominantCases } from './helpers/dominant-worker.js';

const root = fileURLToPath(new URL('..', import.meta.url));

/** Runs a script under tsx in a child process with extra environment; returns its exit and output. */
function child(file: string, env: Record<string, string>) {
  const r = spawnSync(process.execPath, ['--import', 'tsx', file], {
    cwd: root,
    env: { ...process.env, ...env },
    encoding: 'utf8',
    timeout: 120_000,
    maxBuffer: 1 << 28,
  });
  return { status: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr };
}

function catchErr(f: () => unknown): Error | undefined {
  try {
    f();
  } catch (e) {
    return e as Error;
  }
  return undefined;
}

const N = 4,
  T = 3,
  V = 11;
const args = () => ({ ...batch(3, N, T, V), rewards: [1, 0, 1, 0], groups: { size: 2 }, beta: 0.1 });

describe('options are checked like arrays', () => {
  it('an unknown option name is refused with the closest known one, for every op', () => {
    const a = args();
    const rows = { logits: a.logits, targets: a.targets, rows: N * T, vocab: V };
    const cases: Array<[() => unknown, string]> = [
      [
        () => gvpo.gvpoFromLogits({ ...a, temprature: 0.5 } as never),
        "gvpoFromLogits: options has no field 'temprature' (did you mean 'temperature'?)",
      ],
      [
        () => gvpo.tokenLogprobs({ ...rows, mask: undefined, Vocab: 3 } as never),
        "tokenLogprobs: options has no field 'Vocab' (did you mean 'vocab'?)",
      ],
      [
        () =>
          gvpo.gvpoLoss({
            policyLogprobs: [1, 2],
            referenceLogprobs: [1, 2],
            rewards: [0, 1],
            groups: { size: 2 },
            beta: 1,
            redution: 'sum',
          } as never),
        "gvpoLoss: options has no field 'redution' (did you mean 'reduction'?)",
      ],
      [
        () => gvpo.groupCenter({ values: [1, 2], groups: { size: 2 }, grups: 1 } as never),
        "groupCenter: options has no field 'grups' (did you mean 'groups'?)",
      ],
      [
        () =>
          gvpo.sequenceLogprobs({
            tokenLogprobs: new Float32Array(4),
            mask: new Float32Array(4),
            sequences: 2,
            tokens: 2,
            token: 2,
          } as never),
        "sequenceLogprobs: options has no field 'token' (did you mean 'tokens'?)",
      ],
    ];
    for (const [f, msg] of cases) expect(f).toThrow(new TypeError(msg));
  });

  it('contradictions are refused: inPlace with out, groups with both size and offsets', () => {
    const a = args();
    expect(() => gvpo.gvpoFromLogits({ ...a, inPlace: true, out: new Float32Array(N * T * V) })).toThrow(
      new RangeError('gvpoFromLogits: out must be absent when inPlace is true, got an out buffer as well'),
    );
    expect(() =>
      gvpo.gvpoFromLogits({ ...a, groups: { size: 2, offsets: Int32Array.from([0, 2, 4]) } as never }),
    ).toThrow(new RangeError('gvpoFromLogits: groups must be either { size } or { offsets }, got both'));
    expect(() => gvpo.groupCenter({ values: [1, 2], groups: { size: 2, count: 1 } as never })).toThrow(TypeError);
  });

  it('an out buffer overlapping an input is refused; a disjoint view of the same buffer is fine', () => {
    const a = args();
    const z = a.logits as Float32Array;
    const shared = new Float32Array(2 * z.length);
    shared.set(z);
    const logits = shared.subarray(0, z.length);
    const overlapping = shared.subarray(3, 3 + z.length);
    const e = catchErr(() => gvpo.gvpoFromLogits({ ...a, logits, out: overlapping }));
    expect(e).toBeInstanceOf(RangeError);
    expect(e!.message).toBe(
      'gvpoFromLogits: out must be a buffer that does not overlap the inputs (use inPlace to write over the logits), got a view overlapping logits',
    );
    expect(Array.from(logits)).toEqual(Array.from(z)); // refused before any work
    const disjoint = shared.subarray(z.length);
    const r = gvpo.gvpoFromLogits({ ...a, logits, out: disjoint });
    expect(r.gradLogits).toBe(disjoint);
    expect(Array.from(disjoint)).toEqual(Array.from(gvpo.gvpoFromLogits(a).gradLogits));
  });

  it('toHalf and fromHalf check their arguments', () => {
    expect(() => gvpo.toHalf(Float32Array.of(1), 'float32' as never)).toThrow(
      new RangeError("toHalf: dtype must be 'bfloat16' | 'float16', got 'float32'"),
    );
    expect(() => gvpo.toHalf(Float32Array.of(1), 'fp16' as never)).toThrow(
      new RangeError("toHalf: dtype must be 'bfloat16' | 'float16', got 'fp16'"),
    );
    expect(() => gvpo.toHalf('abc' as never, 'float16')).toThrow(
      new TypeError("toHalf: values must be a Float32Array, Float64Array or number[], got 'abc'"),
    );
    expect(() => gvpo.toHalf([1, '2'] as never, 'float16')).toThrow(
      new TypeError("toHalf: values[1] must be a number, got '2'"),
    );
    expect(() => gvpo.fromHalf(Float32Array.of(1.5, 2) as never, 'bfloat16')).toThrow(
      new TypeError('fromHalf: bits must be a Uint16Array, got Float32Array'),
    );
    expect(() => gvpo.fromHalf(new Uint16Array(1), 7 as never)).toThrow(
      new TypeError("fromHalf: dtype must be 'bfloat16' | 'float16', got 7"),
    );
    // a DataView, a Buffer or a subclass is named as what it is, not as "TypedArray"
    expect(() => gvpo.toHalf(new DataView(new ArrayBuffer(8)) as never, 'float16')).toThrow(
      new TypeError('toHalf: values must be a Float32Array, Float64Array or number[], got DataView'),
    );
    expect(() => gvpo.fromHalf(Buffer.from([0, 60]) as never, 'bfloat16')).toThrow(
      new TypeError('fromHalf: bits must be a Uint16Array, got Buffer (a Uint8Array)'),
    );
    class Halves extends Int16Array {}
    expect(() => gvpo.fromHalf(new Halves(2) as never, 'float16')).toThrow(
      new TypeError('fromHalf: bits must be a Uint16Array, got Halves (an Int16Array)'),
    );
    expect(Array.from(gvpo.fromHalf(gvpo.toHalf([1.5, -2, 65504], 'float16'), 'float16'))).toEqual([1.5, -2, 65504]);
  });
});

describe('arrays from elsewhere', () => {
  it('typed arrays from a vm context are accepted and give the same result', () => {
    const a = args();
    const ctx = vm.createContext({ src: a });
    const foreign = vm.runInContext(
      '({ logits: new Float32Array(src.logits), targets: new Int32Array(src.targets), mask: new Float64Array(src.mask), ' +
        'rewards: new Float64Array([1, 0, 1, 0]), offsets: new Int32Array([0, 2, 4]) })',
      ctx,
    );
    expect(foreign.logits instanceof Float32Array).toBe(false); // really another realm
    const got = gvpo.gvpoFromLogits({
      ...a,
      logits: foreign.logits,
      targets: foreign.targets,
      mask: foreign.mask,
      rewards: foreign.rewards,
      groups: { offsets: foreign.offsets },
    });
    const want = gvpo.gvpoFromLogits(a);
    expect(got.loss).toBe(want.loss);
    expect(Array.from(got.gradLogits)).toEqual(Array.from(want.gradLogits));
  });

  it('a Proxy around a typed array is refused with a message naming the argument', () => {
    const a = args();
    const e = catchErr(() => gvpo.gvpoFromLogits({ ...a, logits: new Proxy(a.logits, {}) }));
    expect(e).toBeInstanceOf(TypeError);
    expect(e!.message).toBe('gvpoFromLogits: logits must be a Float32Array, got a Proxy');
  });

  it('a revoked Proxy as the options or the groups, and a Symbol anywhere, get the usual message', () => {
    const a = args();
    const revoked = () => {
      const p = Proxy.revocable({}, {});
      p.revoke();
      return p.proxy;
    };
    expect(() => gvpo.gvpoFromLogits(revoked() as never)).toThrow(
      'gvpoFromLogits: options must be an object, got a Proxy',
    );
    expect(() => gvpo.gvpoFromLogits({ ...a, groups: revoked() } as never)).toThrow(
      'gvpoFromLogits: groups must be { size } or { offsets }, got a Proxy',
    );
    // a live Proxy is read like the object it wraps
    const viaProxy = gvpo.gvpoFromLogits({ ...a, groups: new Proxy(a.groups, {}) });
    expect(viaProxy.loss).toBe(gvpo.gvpoFromLogits(a).loss);
    expect(() => gvpo.gvpoFromLogits({ ...a, beta: Symbol('b') } as never)).toThrow(
      'gvpoFromLogits: beta must be a finite number > 0, got Symbol(b)',
    );
  });
});

describe('async twins', () => {
  const bad = { nonsense: true } as never;
  const twins = Object.entries(gvpo).filter(([name]) => name.endsWith('Async')) as Array<
    [string, (a: never) => Promise<unknown>]
  >;
  it('there is one for every heavy op', () => {
    expect(twins.map(([n]) => n).sort()).toEqual([
      'groupCenterAsync',
      'gvpoBackwardAsync',
      'gvpoForwardAsync',
      'gvpoFromHiddenAsync',
      'gvpoFromHiddenBackwardAsync',
      'gvpoFromHiddenForwardAsync',
      'gvpoFromLogitsAsync',
      'gvpoLossAsync',
      'sequenceLogprobsAsync',
      'tokenLogprobsAsync',
      'tokenLogprobsBackwardAsync',
      'tokenLogprobsFromHiddenAsync',
      'tokenLogprobsFromHiddenBackwardAsync',
    ]);
  });
  for (const [name, f] of twins) {
    it(`${name} rejects bad input, never throwing synchronously`, async () => {
      let p: Promise<unknown> | undefined;
      expect(() => {
        p = f(bad);
      }).not.toThrow();
      await expect(p).rejects.toBeInstanceOf(TypeError);
      let q: Promise<unknown> | undefined;
      expect(() => {
        q = f(undefined as never);
      }).not.toThrow();
      await expect(q).rejects.toThrow(/options must be an object, got undefined/);
    });
  }
});

describe('masked rows contribute nothing', () => {
  // Row 0 is masked with a target of -1 and a non-zero incoming gradient: it used to be written
  // at grad[-1] (a heap corruption that aborted the process).
  const opts = (target: number, mask: Float32Array | Float64Array) => ({
    logits: Float32Array.of(1, 2, 3, 4, 0.1, 0.2, 0.3, 0.4),
    targets: Int32Array.of(target, 0),
    mask,
    rows: 2,
    vocab: 4,
    logZ: Float32Array.of(4.5, 1.6),
    gradTokenLogprobs: Float32Array.of(1, 1),
  });

  it('the crash cases of tokenLogprobsBackward, each in a child process', () => {
    const script = `import { tokenLogprobsBackward } from '../src/index.js';
      const mk = (t, m) => ({ logits: Float32Array.of(1,2,3,4,.1,.2,.3,.4), targets: Int32Array.of(t, 0), mask: m, rows: 2, vocab: 4,
        logZ: Float32Array.of(4.5, 1.6), gradTokenLogprobs: Float32Array.of(1, 1) });
      for (const t of [-1, 4, 2147483647, -2147483648]) {
        for (const m of [Float32Array.of(0, 1), Float64Array.of(1e-50, 1)]) {
          const g = tokenLogprobsBackward(mk(t, m));
          if (g.slice(0, 4).some((x) => x !== 0)) throw new Error('masked row got a gradient');
        }
      }
      console.log('survived');`;
    const file = `${root}/test/.crash-case.ts`;
    writeFileSync(file, script);
    try {
      const r = child(file, {});
      expect(r.signal).toBeNull();
      expect(r.stderr).toBe('');
      expect(r.stdout.trim()).toBe('survived');
      expect(r.status).toBe(0);
    } finally {
      rmSync(file);
    }
  });

  it('a masked row gets a zero gradient and the live row the reference one', () => {
    const g = gvpo.tokenLogprobsBackward(opts(-1, Float32Array.of(0, 1)));
    expect(Array.from(g.slice(0, 4))).toEqual([0, 0, 0, 0]);
    const z = [0.1, 0.2, 0.3, 0.4];
    const lz = 1.6;
    const want = z.map((x, v) => (v === 0 ? 1 : 0) - Math.exp(x - lz));
    for (let v = 0; v < 4; v++) expect(g[4 + v]).toBeCloseTo(want[v], 6);
  });

  it('a live row with a bad target is refused with the index', () => {
    expect(() =>
      gvpo.tokenLogprobsBackward(
        opts(0, Float32Array.of(1, 1)) && { ...opts(0, Float32Array.of(1, 1)), targets: Int32Array.of(0, -1) },
      ),
    ).toThrow(
      new RangeError(
        'tokenLogprobsBackward: targets must be token ids in [0, 4) where the mask is non-zero, got -1 at index 1',
      ),
    );
  });
});

/** The environments that pick every backend and every instruction set this machine can run. */
function everyBackend(): Array<Record<string, string>> {
  const info = gvpo.backendInfo();
  const runs: Array<Record<string, string>> = [{ GVPO_BACKEND: 'js' }];
  if (info.active === 'cuda') runs.push({ GVPO_BACKEND: 'cuda' });
  if (info.compiled.includes('cpu')) {
    const sets = info.simd?.startsWith('avx512')
      ? ['avx512', 'avx2', 'sse2']
      : info.simd === 'avx2'
        ? ['avx2', 'sse2']
        : [info.simd ?? 'sse2']; // avx512bf16: the same row kernels as avx512
    for (const s of sets) runs.push({ GVPO_BACKEND: 'cpu', GVPO_SIMD: s });
  }
  return runs;
}

describe('the awkward cases on every backend and instruction set', () => {
  const cases = awkwardCases();
  const runs = everyBackend();
  // The float64 reference, once.
  const refs = cases.map((c) => {
    const rows = c.sequences * c.tokens;
    const tok = tokenLogprobsF64({ ...c, rows, mask: c.mask });
    const f = gvpoFromLogitsRef({
      ...c,
      rows,
      offsets: c.groups.offsets,
      reduction: 'mean',
      inPlace: false,
      out: new Float32Array(rows * c.vocab),
    } as never);
    return { tok, f };
  });
  const worst: string[] = [];

  for (const env of runs) {
    const label = env.GVPO_SIMD ?? env.GVPO_BACKEND;
    it(`${label}: l <= 0, masked rows 0, values and gradients within tolerance of the float64 reference`, () => {
      const r = child('test/helpers/awkward-worker.ts', env);
      expect(r.signal).toBeNull();
      expect(r.status, r.stderr).toBe(0);
      const num = (_k: string, v: unknown) => (v === 'NaN' || v === 'Infinity' || v === '-Infinity' ? Number(v) : v);
      const out = JSON.parse(r.stdout, num) as {
        simd: string;
        results: Array<{ name: string; logprobs: number[]; gradLogits: number[]; loss: number }>;
      };
      if (env.GVPO_SIMD) expect(out.simd).toBe(env.GVPO_SIMD);
      let worstL = 0,
        worstG = 0,
        worstLoss = 0;
      out.results.forEach((res, i) => {
        const c = cases[i],
          ref = refs[i];
        expect(res.name).toBe(c.name);
        res.logprobs.forEach((l, row) => {
          const want = ref.tok.logprobs[row];
          if (c.mask[row] === 0) return expect(l, `${c.name} masked row ${row}`).toBe(0);
          if (!Number.isFinite(ref.tok.logZ[row])) return expect(l, `${c.name} row ${row} NaN`).toBeNaN();
          expect(l, `${c.name} row ${row} positive`).toBeLessThanOrEqual(0);
          if (want === -Infinity) return expect(l, `${c.name} row ${row}: target at a -inf logit`).toBe(-Infinity);
          const err = Math.abs(l - want) / (1 + Math.abs(want));
          worstL = Math.max(worstL, err);
          expect(err, `${c.name} row ${row}: ${l} vs ${want}`).toBeLessThanOrEqual(c.dtype === 'float32' ? 2e-6 : 4e-6);
        });
        // The gradient, relative to the largest entry of the reference (not elementwise).
        const g = ref.f.gradLogits as Float32Array;
        let scale = 0,
          err = 0;
        for (let k = 0; k < g.length; k++) if (Number.isFinite(g[k])) scale = Math.max(scale, Math.abs(g[k]));
        for (let k = 0; k < g.length; k++) {
          const got = res.gradLogits[k];
          if (Number.isNaN(g[k])) {
            expect(got, `${c.name} grad ${k} NaN`).toBeNaN();
            continue;
          }
          const row = Math.floor(k / c.vocab);
          if (c.mask[row] === 0) expect(got, `${c.name} masked row ${row} gradient`).toBe(0);
          err = Math.max(err, Math.abs(got - g[k]));
        }
        const rel = scale > 0 ? err / scale : err;
        worstG = Math.max(worstG, rel);
        expect(rel, `${c.name} gradient`).toBeLessThanOrEqual(2e-5);
        if (Number.isFinite(ref.f.loss)) {
          const le = Math.abs(res.loss - ref.f.loss) / (1e-12 + Math.abs(ref.f.loss));
          worstLoss = Math.max(worstLoss, le);
          expect(le, `${c.name} loss ${res.loss} vs ${ref.f.loss}`).toBeLessThanOrEqual(1e-4);
        }
      });
      worst.push(
        `${label}: worst l ${worstL.toExponential(2)} (rel. to 1+|l|), gradient ${worstG.toExponential(2)} (rel. to max|g|), loss ${worstLoss.toExponential(2)}`,
      );
    }, 120_000);
  }
  it('prints the worst errors per backend and instruction set', () => {
    console.log(`awkward cases (${cases.length}):\n  ${worst.join('\n  ')}`);
    expect(worst.length).toBe(runs.length);
  });
});

// One logit s above the rest: 1 - p is the sum of the other terms, far below float32's ulp of 1,
// and l, dL/dz at the target and the entropy are all of its size. They must keep their relative
// precision (the sweeps sum the max's own term, 1, apart from the rest: in the same float32 lane
// it swallowed up to 63 of the small terms, errors of 1e-3 to 20 % of l).
describe('a dominant token: l, 1 - p and the entropy keep their relative precision', () => {
  const cases = dominantCases();
  // float64 from the logits the kernels saw: u = (z - z_y)/tau, S = sum over v != y of e^u
  const exact = cases.map((c) => {
    let S = 0;
    const u = c.z.map((z) => (z - c.z[c.target]) / c.temperature);
    u.forEach((x, v) => (S += v === c.target ? 0 : Math.exp(x)));
    const l = -Math.log1p(S);
    let pu = 0;
    u.forEach((x, v) => (pu += v === c.target ? 0 : (Math.exp(x) / (1 + S)) * x));
    return { l, oneMinusP: -Math.expm1(l), H: -l - pu };
  });
  for (const env of everyBackend()) {
    const label = env.GVPO_SIMD ?? env.GVPO_BACKEND;
    it(`${label}: within 2e-6 (l, dL/dz[y] fused and two-phase) and 5e-6 (H) of float64, relative`, () => {
      const r = child('test/helpers/dominant-worker.ts', env);
      expect(r.signal).toBeNull();
      expect(r.status, r.stderr).toBe(0);
      const out = JSON.parse(r.stdout) as {
        simd: string;
        results: Array<{
          name: string;
          l: number;
          gradTarget: number;
          phaseGradTarget: number;
          tokenGradTarget: number;
          dLdS: number;
          headL: number | null;
          headH: number | null;
          headGradTarget: number | null;
        }>;
      };
      if (env.GVPO_SIMD) expect(out.simd).toBe(env.GVPO_SIMD);
      const rel = (got: number, want: number) => Math.abs(got / want - 1);
      out.results.forEach((res, i) => {
        const c = cases[i],
          e = exact[i];
        expect(res.name).toBe(c.name);
        expect(rel(res.l, e.l), `${c.name}: l ${res.l} vs ${e.l}`).toBeLessThanOrEqual(2e-6);
        const g = (res.dLdS * e.oneMinusP) / c.temperature;
        expect(rel(res.gradTarget, g), `${c.name}: dL/dz[y] ${res.gradTarget} vs ${g}`).toBeLessThanOrEqual(2e-6);
        // the two-phase backwards, each from its forward's logZ (whose float32 rounding alone is
        // |logZ| 2^-24, above 1 - p here): as exact as the fused op
        const g1 = e.oneMinusP / c.temperature;
        expect(
          rel(res.phaseGradTarget, g),
          `${c.name}: gvpoBackward ${res.phaseGradTarget} vs ${g}`,
        ).toBeLessThanOrEqual(2e-6);
        expect(
          rel(res.tokenGradTarget, g1),
          `${c.name}: tokenLogprobsBackward ${res.tokenGradTarget} vs ${g1}`,
        ).toBeLessThanOrEqual(2e-6);
        if (res.headL === null || res.headH === null || res.headGradTarget === null) return;
        expect(
          rel(res.headGradTarget, g1),
          `${c.name}: head backward ${res.headGradTarget} vs ${g1}`,
        ).toBeLessThanOrEqual(2e-6);
        expect(rel(res.headL, e.l), `${c.name}: head l ${res.headL} vs ${e.l}`).toBeLessThanOrEqual(2e-6);
        expect(rel(res.headH, e.H), `${c.name}: head H ${res.headH} vs ${e.H}`).toBeLessThanOrEqual(5e-6);
      });
    }, 120_000);
  }
});
