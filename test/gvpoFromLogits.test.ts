// The fused op: against the float64 reference (all dtypes, ragged groups, masks), its gradient
// against central finite differences of the reference loss in float64, the two phases against
// the fused call, in place, the async twin, and no reference (Sref = S).
import { describe, expect, it } from 'vitest';
import {
  backendInfo,
  gvpoBackward,
  gvpoBackwardAsync,
  gvpoForward,
  gvpoForwardAsync,
  gvpoFromLogits,
  gvpoFromLogitsAsync,
  tokenLogprobs,
} from '../src/index.js';
import { gvpoFromLogitsRef } from '../src/reference/gvpoFromLogits.js';
import type { FromLogitsOpts } from '../src/checked.js';
import type { DType } from '../src/types.js';
import { lossBetweenPhases } from './helpers/phases.js';
import { allclose, gradClose } from './helpers/allclose.js';
import { batch, normal, randomRewards, rng } from './helpers/data.js';

function args(seed: number, N: number, T: number, V: number, dtype: DType, offsets: Int32Array, prompt = 1) {
  const b = batch(seed, N, T, V, dtype, 2, prompt);
  const r = rng(seed + 9);
  const referenceTokenLogprobs = Float64Array.from({ length: N * T }, () => -Math.abs(normal(r)) * 3);
  return {
    ...b,
    referenceTokenLogprobs,
    rewards: randomRewards(seed, N),
    groups: { offsets },
    beta: 0.1,
    temperature: 0.8,
  };
}

function refOpts(a: ReturnType<typeof args>, reduction: 'mean' | 'sum' = 'mean'): FromLogitsOpts {
  return { ...a, offsets: a.groups.offsets, reduction, inPlace: false };
}

describe('gvpoFromLogits', () => {
  const cases: Array<[number, number, number, number[]]> = [
    [4, 3, 17, [0, 2, 4]],
    [6, 5, 123, [0, 3, 4, 6]],
    [5, 1, 2049, [0, 5]],
    [3, 2, 1, [0, 3]],
    [8, 4, 500, [0, 1, 4, 8]],
  ];
  for (const dtype of ['float32', 'bfloat16', 'float16'] as DType[]) {
    for (const [N, T, V, off] of cases) {
      it(`${dtype} N=${N} T=${T} V=${V} groups ${off.join(',')}: matches the reference`, () => {
        const a = args(N * 100 + V, N, T, V, dtype, Int32Array.from(off));
        const got = gvpoFromLogits(a);
        const want = gvpoFromLogitsRef(refOpts(a));
        expect(got.loss).toBeCloseTo(want.loss, 6);
        allclose(got.policyLogprobs, want.policyLogprobs, { atol: 1e-4, rtol: 1e-5 }, 'S');
        allclose(got.gradLogprobs, want.gradLogprobs, { atol: 1e-6, rtol: 1e-4 }, 'dL/dS');
        gradClose(got.gradLogits, want.gradLogits, 1e-4);
        for (const k of ['advantage', 'trustRegion', 'variance', 'constant'] as const) {
          expect(got.terms[k]).toBeCloseTo(want.terms[k], 6);
        }
      });
    }
  }

  it('gradient equals central finite differences of the float64 reference loss', () => {
    const N = 4,
      T = 3,
      V = 7;
    const a = args(42, N, T, V, 'float32', Int32Array.from([0, 2, 4]));
    const z = Float64Array.from(a.logits as Float32Array);
    const lossAt = (zz: Float64Array) =>
      gvpoFromLogitsRef({ ...refOpts(a, 'sum'), logits: zz as unknown as Float32Array }).loss;
    const analytic = gvpoFromLogitsRef({ ...refOpts(a, 'sum'), logits: z as unknown as Float32Array }).gradLogits;
    const h = 1e-6;
    const fd = new Float64Array(z.length);
    for (let i = 0; i < z.length; i++) {
      const up = z.slice();
      up[i] += h;
      const dn = z.slice();
      dn[i] -= h;
      fd[i] = (lossAt(up) - lossAt(dn)) / (2 * h);
    }
    gradClose(analytic, fd, 1e-5, 1e-9);
    // and the active backend's gradient is the reference's
    gradClose(gvpoFromLogits({ ...a, reduction: 'sum' }).gradLogits, analytic, 1e-5);
    // masked (prompt) tokens get exactly zero gradient
    for (let n = 0; n < N; n++) for (let v = 0; v < V; v++) expect(analytic[n * T * V + v]).toBe(0);
  });

  it('phase 1 + gvpoLoss + phase 2 equals the fused call', () => {
    const a = args(5, 6, 4, 300, 'bfloat16', Int32Array.from([0, 3, 6]));
    const fused = gvpoFromLogits(a);
    const f = gvpoForward(a);
    const l = lossBetweenPhases(f, a);
    const g = gvpoBackward({ ...a, logZ: f.logZ, gradLogprobs: l.gradLogprobs });
    // on the CPU bit-identical; where CUDA is active the fused call runs there and the phases
    // (which have no CUDA twin) on the CPU: equal to float32's rounding of the token log-probs
    if (backendInfo().active === 'cuda')
      expect(Math.abs(l.loss - fused.loss)).toBeLessThan(1e-6 * Math.abs(fused.loss));
    else expect(l.loss).toBe(fused.loss);
    // native: bit-identical; the reference rounds the handed-over logZ to float32
    gradClose(g, fused.gradLogits, 1e-6);
  });

  it("the two phases are the fused call's equal far from 0: phase 2 takes phase 1's exact parts of logZ", async () => {
    // |z/tau| near 1e4 (logZ's float32 rounding alone moves p by 1e-3) and dominant rows (1 - p
    // below float32's ulp of logZ): phase 2 from logZ alone gave a target gradient of c 1.2e-4
    // where it is 0, and rows that no longer summed to 0
    const N = 4,
      T = 2,
      V = 50,
      r = rng(41);
    const logits = new Float32Array(N * T * V);
    for (let row = 0; row < N * T; row++)
      for (let v = 0; v < V; v++)
        logits[row * V + v] = row % 2 === 0 ? 1000 + 3 * normal(r) : v === row % V ? 30 : normal(r);
    const a = {
      logits,
      targets: Int32Array.from({ length: N * T }, (_, row) => row % V),
      mask: new Float32Array(N * T).fill(1),
      sequences: N,
      tokens: T,
      vocab: V,
      temperature: 0.1,
      rewards: [1, 0, 0.5, 2],
      groups: { size: 2 },
      beta: 0.1,
    };
    const fused = gvpoFromLogits(a);
    const f = gvpoForward(a);
    const l = lossBetweenPhases(f, a);
    const sync = gvpoBackward({ ...a, logZ: f.logZ, gradLogprobs: l.gradLogprobs });
    const fa = await gvpoForwardAsync(a);
    const async = await gvpoBackwardAsync({ ...a, logZ: fa.logZ, gradLogprobs: l.gradLogprobs });
    if (backendInfo().active === 'cuda') gradClose(sync, fused.gradLogits, 1e-6);
    else expect(Array.from(sync)).toEqual(Array.from(fused.gradLogits));
    expect(Array.from(async)).toEqual(Array.from(sync));
    // the result keeps its public fields only; a logZ edited after phase 1 is phase 2's to use
    expect(Object.keys(f).sort()).toEqual(
      ['logZ', 'nonFiniteRows', 'policyLogprobs', 'referenceLogprobs', 'tokenLogprobs'].sort(),
    );
    f.logZ[0] = NaN;
    const edited = gvpoBackward({ ...a, logZ: f.logZ, gradLogprobs: l.gradLogprobs });
    expect(edited.subarray(0, V).every(Number.isNaN)).toBe(true);
    expect(Array.from(edited.subarray(V))).toEqual(Array.from(sync.subarray(V)));
  });

  it('in place overwrites the float32 logits with the same gradient, and is refused for 16-bit logits', () => {
    const a = args(8, 4, 3, 1000, 'float32', Int32Array.from([0, 4]));
    const expected = gvpoFromLogits(a).gradLogits;
    const z = Float32Array.from(a.logits as Float32Array);
    const r = gvpoFromLogits({ ...a, logits: z, inPlace: true });
    expect(r.gradLogits).toBe(z);
    expect(Array.from(z)).toEqual(Array.from(expected));
    const h = args(8, 4, 3, 10, 'bfloat16', Int32Array.from([0, 4]));
    expect(() => gvpoFromLogits({ ...h, inPlace: true })).toThrow(RangeError);
  });

  it('without a reference, Sref = S: the gradient is the pure advantage term', () => {
    const a = args(9, 4, 2, 50, 'float32', Int32Array.from([0, 4]));
    const { referenceTokenLogprobs: _unused, ...noRef } = a;
    const r = gvpoFromLogits({ ...noRef, reduction: 'sum' });
    const mean = a.rewards.reduce((x, y) => x + y) / 4;
    allclose(
      r.gradLogprobs,
      Array.from(a.rewards, (R) => (-a.beta * (R - mean)) / 3),
      { atol: 1e-12, rtol: 1e-9 },
    );
  });

  it('the async twin equals the sync call; inputs are untouched', async () => {
    const a = args(10, 6, 3, 700, 'float16', Int32Array.from([0, 2, 6]));
    const before = Uint16Array.from(a.logits as Uint16Array);
    const s = gvpoFromLogits(a);
    const p = await gvpoFromLogitsAsync(a);
    expect(p.loss).toBe(s.loss);
    expect(Array.from(p.gradLogits)).toEqual(Array.from(s.gradLogits));
    expect(Array.from(a.logits)).toEqual(Array.from(before));
  });

  it("a dL/dS beyond float32's range: the reference's gradient, inf only where an element passes that range, never NaN", () => {
    // beta = 1e22 puts dL/dS near 1e44: p * dL/dS / tau fits float32 for p below ~1e-6
    const a = { ...args(21, 4, 2, 300, 'float32', Int32Array.from([0, 4])), beta: 1e22 };
    const got = gvpoFromLogits(a);
    const want = gvpoFromLogitsRef(refOpts(a));
    expect(Math.max(...Array.from(got.gradLogprobs, Math.abs))).toBeGreaterThan(1e40);
    allclose(got.gradLogprobs, want.gradLogprobs, { atol: 0, rtol: 1e-4 }, 'dL/dS');
    let compared = 0;
    for (let i = 0; i < want.gradLogits.length; i++) {
      const g = got.gradLogits[i];
      const w = want.gradLogits[i];
      expect(Number.isNaN(g), `element ${i}`).toBe(false);
      if (!Number.isFinite(w)) expect(g, `element ${i}`).toBe(w);
      else if (Math.abs(w) > 1e30) {
        compared++;
        expect(Math.abs(g - w), `element ${i}: ${g} vs ${w}`).toBeLessThanOrEqual(1e-3 * Math.abs(w));
      }
    }
    expect(compared).toBeGreaterThan(50);
  });
  it('at temperature 1e-38 S keeps a token log-prob past float32 (-4e38), as the reference does', () => {
    // l = z_y/tau - logZ is finite in double and -inf in float32: tokenLogprobs shows -inf, but S
    // sums l in double (it summed the float32 -inf: S -inf, the loss NaN, no row counted)
    const N = 4,
      T = 3,
      V = 5;
    const logits = Float32Array.from({ length: N * T * V }, (_, i) => Math.sin(i * 1.7) * 2);
    const a = {
      logits,
      targets: Int32Array.from({ length: N * T }, (_, i) => (i * 3) % V),
      mask: new Float32Array(N * T).fill(1),
      sequences: N,
      tokens: T,
      vocab: V,
      rewards: [1, 0, 0.5, 1],
      groups: { size: 2 },
      beta: 0.1,
      temperature: 1e-38,
    };
    const r = gvpoFromLogits(a);
    const ref = gvpoFromLogitsRef({
      ...a,
      dtype: 'float32',
      rewards: Float64Array.from(a.rewards),
      offsets: Int32Array.from([0, 2, 4]),
      reduction: 'mean',
      inPlace: false,
    } as FromLogitsOpts);
    expect(r.policyLogprobs.every(Number.isFinite)).toBe(true);
    expect(r.tokenLogprobs.some((l) => l === -Infinity)).toBe(true);
    allclose(r.policyLogprobs, ref.policyLogprobs, { atol: 0, rtol: 1e-6 }, 'S');
    expect(r.loss).toBeCloseTo(ref.loss, 12);
    expect(r.gradLogits.every(Number.isFinite)).toBe(true);
    const f = gvpoForward(a);
    expect(Array.from(f.policyLogprobs)).toEqual(Array.from(r.policyLogprobs));
  });

  it('a non-finite row is NaN in its own sequence only and is counted', () => {
    const a = args(11, 4, 2, 20, 'float32', Int32Array.from([0, 2, 4]));
    const z = Float32Array.from(a.logits as Float32Array);
    z.fill(-Infinity, (2 * 2 + 1) * 20, (2 * 2 + 2) * 20); // sequence 2, token 1
    const r = gvpoFromLogits({ ...a, logits: z });
    expect(r.nonFiniteRows).toBe(1);
    expect(Number.isNaN(r.policyLogprobs[2])).toBe(true);
    expect(Number.isFinite(r.policyLogprobs[0]) && Number.isFinite(r.policyLogprobs[1])).toBe(true);
    expect(tokenLogprobs({ logits: z, targets: a.targets, rows: 8, vocab: 20 }).nonFiniteRows).toBe(1);
  });
});
