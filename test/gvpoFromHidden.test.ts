// The fused LM head: against the float64 reference over awkward shapes and every dtype, against
// PyTorch float64 autograd fixtures (scripts/make-fixtures-hidden.py), against central finite
// differences, against gvpoFromLogits on the materialized logits; the two phases, the async
// twin, masked rows, V = 1, non-finite rows, thread-count independence and bad input.
// Gradients are compared relative to their scale: max |got - want| <= tol * max |want|.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  backendInfo,
  gvpoFromHidden,
  gvpoFromHiddenAsync,
  gvpoFromHiddenBackward,
  gvpoFromHiddenBackwardAsync,
  gvpoFromHiddenForward,
  gvpoFromHiddenForwardAsync,
  gvpoFromLogits,
  gvpoLoss,
  tokenLogprobsBackward,
} from '../src/index.js';
import type { FromHiddenOpts } from '../src/checked.js';
import { encodeHalf } from '../src/reference/dtype.js';
import { gvpoFromHiddenRef } from '../src/reference/gvpoFromHidden.js';
import type { DType, GvpoFromHiddenArgs } from '../src/types.js';
import { lossBetweenPhases } from './helpers/phases.js';
import { allclose } from './helpers/allclose.js';
import { bf16Products, type HeadCase, productClose, productSums } from './helpers/bf16Products.js';
import { normal, rng } from './helpers/data.js';

type Ref = 'token' | 'sequence' | 'none';

function args(
  seed: number,
  N: number,
  T: number,
  H: number,
  V: number,
  offsets: number[],
  dtype: DType,
  o: { tau?: number; ref?: Ref; prompt?: number } = {},
): GvpoFromHiddenArgs {
  const r = rng(seed);
  const h = Float32Array.from({ length: N * T * H }, () => normal(r));
  const w = Float32Array.from({ length: V * H }, () => (normal(r) * 1.5) / Math.sqrt(H));
  const targets = new Int32Array(N * T),
    mask = new Float32Array(N * T);
  const prompt = o.prompt ?? 1;
  for (let i = 0; i < N * T; i++) {
    mask[i] = i % T >= prompt || T === 1 ? 1 : 0;
    targets[i] = mask[i] ? Math.floor(r() * V) : -5; // masked targets may hold anything
  }
  const a: GvpoFromHiddenArgs = {
    hidden: dtype === 'float32' ? h : encodeHalf(h, dtype),
    weight: dtype === 'float32' ? w : encodeHalf(w, dtype),
    dtype,
    targets,
    mask,
    sequences: N,
    tokens: T,
    hiddenSize: H,
    vocab: V,
    rewards: Float64Array.from({ length: N }, () => Math.round(r() * 4) / 4),
    groups: { offsets: Int32Array.from(offsets) },
    beta: 0.1,
    temperature: o.tau ?? 1,
  };
  if (o.ref === 'token')
    a.referenceTokenLogprobs = Float64Array.from({ length: N * T }, () => -Math.abs(normal(r)) * 2);
  if (o.ref === 'sequence') a.referenceLogprobs = Float64Array.from({ length: N }, () => -Math.abs(normal(r)) * 5);
  return a;
}

function refOpts(a: GvpoFromHiddenArgs, reduction: 'mean' | 'sum' = 'mean'): FromHiddenOpts {
  const rows = a.sequences * a.tokens;
  return {
    ...a,
    dtype: a.dtype ?? 'float32',
    mask: a.mask as Float32Array,
    rows,
    temperature: a.temperature ?? 1,
    referenceTokenLogprobs: a.referenceTokenLogprobs as Float64Array | undefined,
    referenceLogprobs: a.referenceLogprobs as Float64Array | undefined,
    rewards: a.rewards as Float64Array,
    offsets: (a.groups as { offsets: Int32Array }).offsets,
    reduction,
    gradHidden: new Float32Array(rows * a.hiddenSize),
    gradWeight: new Float32Array(a.vocab * a.hiddenSize),
    accumulate: false,
  };
}

/** max |got - want| <= tol * max |want| (+ a floor for gradients that are zero). */
function scaleClose(got: ArrayLike<number>, want: ArrayLike<number>, tol: number, what: string): void {
  expect(got.length, `${what}: length`).toBe(want.length);
  let scale = 0,
    err = 0,
    at = -1;
  for (let i = 0; i < want.length; i++) scale = Math.max(scale, Math.abs(want[i]));
  for (let i = 0; i < want.length; i++) {
    const e = Math.abs(got[i] - want[i]);
    if (!(e <= err)) {
      err = e;
      at = i;
    }
  }
  if (!(err <= tol * scale + 1e-12)) {
    throw new Error(`${what}[${at}]: got ${got[at]}, want ${want[at]} (max err ${err}, scale ${scale}, tol ${tol})`);
  }
}

/** The gradients against want: float32's tolerance, or the bfloat16 products' allowance. */
function gradsClose(
  a: GvpoFromHiddenArgs,
  got: { gradHidden: Float32Array; gradWeight: Float32Array },
  want: {
    gradHidden: ArrayLike<number>;
    gradWeight: ArrayLike<number>;
    logZ: Float32Array;
    gradLogprobs: Float64Array;
  },
  tol: number,
): void {
  if (bf16Products(a.dtype)) {
    const { aH, aW } = productSums(a as HeadCase, want.logZ, want.gradLogprobs);
    productClose(got.gradHidden, want.gradHidden, aH, tol, 'dL/dhidden');
    productClose(got.gradWeight, want.gradWeight, aW, tol, 'dL/dweight');
    return;
  }
  scaleClose(got.gradHidden, want.gradHidden, tol, 'dL/dhidden');
  scaleClose(got.gradWeight, want.gradWeight, tol, 'dL/dweight');
}

describe('gvpoFromHidden', () => {
  // [N, T, H, V, offsets]: H and V off the vector widths, V = 1, T = 1, size-1 groups.
  const shapes: Array<[number, number, number, number, number[]]> = [
    [4, 3, 17, 37, [0, 2, 4]],
    [5, 1, 33, 129, [0, 1, 3, 5]],
    [3, 2, 5, 1, [0, 3]],
    [6, 4, 70, 300, [0, 3, 4, 6]],
  ];
  const refs: Ref[] = ['token', 'sequence', 'none'];
  let i = 0;
  for (const dtype of ['float32', 'bfloat16', 'float16'] as DType[]) {
    for (const [N, T, H, V, off] of shapes) {
      const ref = refs[i % 3],
        tau = i % 2 ? 0.7 : 1;
      i++;
      it(`${dtype} N=${N} T=${T} H=${H} V=${V} groups ${off} tau=${tau} Sref ${ref}: matches the float64 reference`, () => {
        const a = args(N * 1000 + V + H, N, T, H, V, off, dtype, { tau, ref });
        const got = gvpoFromHidden(a);
        const want = gvpoFromHiddenRef(refOpts(a));
        expect(got.loss).toBeCloseTo(want.loss, 6);
        expect(got.nonFiniteRows).toBe(0);
        allclose(got.tokenLogprobs, want.tokenLogprobs, { atol: 2e-5, rtol: 2e-5 }, 'l');
        allclose(got.policyLogprobs, want.policyLogprobs, { atol: 1e-4, rtol: 1e-5 }, 'S');
        gradsClose(a, got, want, 1e-4);
        for (const k of ['advantage', 'trustRegion', 'variance', 'constant'] as const) {
          expect(got.terms[k]).toBeCloseTo(want.terms[k], 6);
        }
        for (let r = 0; r < N * T; r++) {
          expect(got.tokenLogprobs[r]).toBeLessThanOrEqual(0);
          if ((a.mask as Float32Array)[r] === 0 || V === 1) {
            expect(got.tokenLogprobs[r]).toBe(0);
            expect(got.gradHidden.subarray(r * H, (r + 1) * H).every((x) => x === 0)).toBe(true);
          }
        }
      });
    }
  }

  const fixtures = JSON.parse(readFileSync(new URL('./fixtures/gvpoFromHidden.json', import.meta.url), 'utf8'));
  for (const f of fixtures.cases) {
    it(`matches PyTorch float64 autograd: ${f.name}`, () => {
      const bf = f.dtype === 'bfloat16';
      const a: GvpoFromHiddenArgs = {
        hidden: bf ? Uint16Array.from(f.hiddenBits) : Float32Array.from(f.hidden),
        weight: bf ? Uint16Array.from(f.weightBits) : Float32Array.from(f.weight),
        dtype: f.dtype,
        targets: Int32Array.from(f.targets),
        mask: Float32Array.from(f.mask),
        sequences: f.sequences,
        tokens: f.tokens,
        hiddenSize: f.hiddenSize,
        vocab: f.vocab,
        temperature: f.temperature,
        beta: f.beta,
        rewards: f.rewards,
        groups: { offsets: Int32Array.from(f.offsets) },
        ...(f.referenceTokenLogprobs ? { referenceTokenLogprobs: Float64Array.from(f.referenceTokenLogprobs) } : {}),
        ...(f.referenceLogprobs ? { referenceLogprobs: f.referenceLogprobs } : {}),
      };
      const got = gvpoFromHidden(a);
      expect(Math.abs(got.loss - f.loss)).toBeLessThanOrEqual(1e-5 * (1 + Math.abs(f.loss)));
      allclose(got.policyLogprobs, f.policyLogprobs, { atol: 1e-4, rtol: 1e-5 }, 'S');
      const stats = bf16Products(a.dtype)
        ? gvpoFromHiddenRef(refOpts(a))
        : { logZ: got.logZ, gradLogprobs: got.gradLogprobs };
      gradsClose(
        a,
        got,
        {
          gradHidden: f.gradHidden,
          gradWeight: f.gradWeight,
          logZ: stats.logZ,
          gradLogprobs: stats.gradLogprobs as Float64Array,
        },
        1e-4,
      );
    });
  }

  it('gradients equal central finite differences of the float64 reference loss', () => {
    const a = args(7, 4, 2, 3, 5, [0, 2, 4], 'float32', { tau: 0.8, ref: 'token', prompt: 0 });
    const h = Float64Array.from(a.hidden as Float32Array),
      w = Float64Array.from(a.weight as Float32Array);
    const lossAt = (hh: Float64Array, ww: Float64Array) =>
      gvpoFromHiddenRef({
        ...refOpts(a, 'sum'),
        hidden: hh as unknown as Float32Array,
        weight: ww as unknown as Float32Array,
      }).loss;
    const analytic = gvpoFromHiddenRef({
      ...refOpts(a, 'sum'),
      hidden: h as unknown as Float32Array,
      weight: w as unknown as Float32Array,
    });
    const eps = 1e-6;
    const fd = (x: Float64Array, at: (y: Float64Array) => number) =>
      Float64Array.from(x, (_, i) => {
        const up = x.slice();
        up[i] += eps;
        const dn = x.slice();
        dn[i] -= eps;
        return (at(up) - at(dn)) / (2 * eps);
      });
    scaleClose(
      analytic.gradHidden,
      fd(h, (y) => lossAt(y, w)),
      1e-5,
      'dL/dhidden vs FD',
    );
    scaleClose(
      analytic.gradWeight,
      fd(w, (y) => lossAt(h, y)),
      1e-5,
      'dL/dweight vs FD',
    );
  });

  it('agrees with gvpoFromLogits on the materialized logits', () => {
    const a = args(11, 4, 3, 24, 200, [0, 2, 4], 'float32', { tau: 0.9, ref: 'token' });
    const rows = 12,
      H = 24,
      V = 200,
      hid = a.hidden as Float32Array,
      w = a.weight as Float32Array;
    const logits = new Float32Array(rows * V);
    for (let r = 0; r < rows; r++) {
      for (let v = 0; v < V; v++) {
        let s = 0;
        for (let k = 0; k < H; k++) s += hid[r * H + k] * w[v * H + k];
        logits[r * V + v] = s;
      }
    }
    const { hidden: _h, weight: _w, hiddenSize: _H, ...rest } = a;
    const viaLogits = gvpoFromLogits({ ...rest, logits });
    const got = gvpoFromHidden(a);
    expect(got.loss).toBeCloseTo(viaLogits.loss, 6);
    allclose(got.tokenLogprobs, viaLogits.tokenLogprobs, { atol: 3e-5, rtol: 3e-5 }, 'l');
    const dH = new Float64Array(rows * H); // dL/dhidden = dL/dz * W
    for (let r = 0; r < rows; r++) {
      for (let v = 0; v < V; v++)
        for (let k = 0; k < H; k++) dH[r * H + k] += viaLogits.gradLogits[r * V + v] * w[v * H + k];
    }
    scaleClose(got.gradHidden, dH, 1e-4, 'dL/dhidden via the logits op');
  });

  it('agrees with gvpoFromLogits where |z/tau| is 1e5: the one call keeps logZ in two parts', () => {
    // H = 1, so the head's logits are exactly the logits op's. A float32 logZ of 1e5 is 0.004 off,
    // p then 0.4 %, and dL/dhidden = dL/dz W cancels 25000x between the two near-equal weight
    // rows: it came out -105.9 where the logits op gives -1.96 (and l 0.004 off).
    const weight = Float32Array.from([1000.37, 1000.33, 0]);
    const hidden = Float32Array.from([1, 0.5, -0.75, 1]);
    const rows = 4,
      V = 3;
    const logits = new Float32Array(rows * V);
    for (let r = 0; r < rows; r++) for (let v = 0; v < V; v++) logits[r * V + v] = hidden[r] * weight[v];
    const common = {
      targets: Int32Array.from([1, 0, 2, 0]),
      mask: Float32Array.from([1, 1, 1, 1]),
      sequences: 4,
      tokens: 1,
      vocab: V,
      rewards: [0, 1, 0.5, 2],
      groups: { size: 2 },
      beta: 1,
      temperature: 0.01,
    };
    const viaLogits = gvpoFromLogits({ ...common, logits });
    const got = gvpoFromHidden({ ...common, hidden, weight, hiddenSize: 1 });
    allclose(got.tokenLogprobs, viaLogits.tokenLogprobs, { atol: 1e-5, rtol: 1e-5 }, 'l');
    const dH = new Float64Array(rows);
    const dW = new Float64Array(V);
    for (let r = 0; r < rows; r++) {
      for (let v = 0; v < V; v++) {
        dH[r] += viaLogits.gradLogits[r * V + v] * weight[v];
        dW[v] += viaLogits.gradLogits[r * V + v] * hidden[r];
      }
    }
    // float32's own rounding of dL/dz (6e-8 of 98), times the 25000x cancellation: ~2e-3 of the scale
    scaleClose(got.gradHidden, dH, 1e-2, 'dL/dhidden via the logits op');
    scaleClose(got.gradWeight, dW, 1e-5, 'dL/dweight via the logits op');
  });

  it('at temperature 1e-38 S keeps a token log-prob past float32 (-4e38), as the js backend does', () => {
    const N = 4,
      T = 3,
      V = 5;
    const weight = Float32Array.from({ length: V }, (_, i) => Math.sin(i * 1.7) * 2);
    const hidden = Float32Array.from({ length: N * T }, (_, i) => [1, 0.5, -0.5, 1][i % 4]);
    const a = {
      hidden,
      weight,
      hiddenSize: 1,
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
    const r = gvpoFromHidden(a);
    // S of -5.8e38 and -6.0e38: sums of token log-probs some of which are -inf in float32
    expect(Array.from(r.policyLogprobs, (x) => Number(x.toPrecision(4)))).toEqual([
      -5.818e38, -4.481e38, -9.951e37, -6.008e38,
    ]);
    expect(r.loss).toBeCloseTo(0.15625, 12);
    expect(r.nonFiniteRows).toBe(0);
    expect(r.gradHidden.every(Number.isFinite)).toBe(true);
  });

  it('the two phases reproduce the fused call; the async twin matches the sync call', async () => {
    const a = args(5, 6, 3, 40, 90, [0, 3, 6], 'bfloat16', { tau: 1.2, ref: 'sequence' });
    const fused = gvpoFromHidden(a);
    const f = gvpoFromHiddenForward({ ...a });
    allclose(f.policyLogprobs, fused.policyLogprobs, { atol: 0, rtol: 0 }, 'S');
    const loss = lossBetweenPhases(f, a);
    const g = gvpoFromHiddenBackward({ ...a, logZ: f.logZ, gradLogprobs: loss.gradLogprobs });
    scaleClose(g.gradHidden, fused.gradHidden, 1e-6, 'phase 2 dL/dhidden');
    scaleClose(g.gradWeight, fused.gradWeight, 1e-6, 'phase 2 dL/dweight');
    const b = await gvpoFromHiddenAsync(a);
    expect(b.loss).toBe(fused.loss);
    expect(Buffer.from(b.gradWeight.buffer).equals(Buffer.from(fused.gradWeight.buffer))).toBe(true);
  });

  it("far from 0 the two phases equal the fused call: phase 2 takes phase 1's exact parts of logZ", async () => {
    // logits near 3e3 / 0.7 (logZ's float32 rounding alone moves p by 2e-4) and a dominant row:
    // phase 2 from logZ alone gave dL/dweight where it is 0 (a gradient of 0.75 for a row of p = 1)
    const H = 2,
      V = 3,
      N = 2,
      T = 2;
    const a = {
      hidden: Float32Array.from([3000.1, 2000.3, 2999.7, 2000.1, 1, 0.5, 0.2, -0.3]),
      weight: Float32Array.from([1.1, 0.9, -1, 0.5, 1.0995, 0.9]),
      targets: Int32Array.from([0, 2, 1, 0]),
      mask: new Float32Array(N * T).fill(1),
      sequences: N,
      tokens: T,
      hiddenSize: H,
      vocab: V,
      temperature: 0.7,
      rewards: [1, 0],
      groups: { size: 2 },
      beta: 0.5,
    };
    const fused = gvpoFromHidden(a);
    const f = gvpoFromHiddenForward(a);
    const loss = lossBetweenPhases(f, a);
    const g = gvpoFromHiddenBackward({ ...a, logZ: f.logZ, gradLogprobs: loss.gradLogprobs });
    const fa = await gvpoFromHiddenForwardAsync(a);
    const ga = await gvpoFromHiddenBackwardAsync({ ...a, logZ: fa.logZ, gradLogprobs: loss.gradLogprobs });
    if (backendInfo().active === 'cuda') {
      scaleClose(g.gradWeight, fused.gradWeight, 1e-6, 'phase 2 dL/dweight');
    } else {
      expect(Array.from(g.gradWeight)).toEqual(Array.from(fused.gradWeight));
      expect(Array.from(g.gradHidden)).toEqual(Array.from(fused.gradHidden));
    }
    expect(Array.from(ga.gradWeight)).toEqual(Array.from(g.gradWeight));
    expect(Object.keys(f)).not.toContain('rowMax');
  });

  it("gradWeight: the caller's buffer overwritten, or added to with accumulate; shards of a batch add into one", async () => {
    const a = args(7, 6, 4, 24, 130, [0, 3, 6], 'float32', { ref: 'token' });
    const { tokens: T, hiddenSize: H, vocab: V } = a;
    const fresh = gvpoFromHidden(a);
    const mine = new Float32Array(V * H).fill(7);
    const over = gvpoFromHidden({ ...a, gradWeight: mine });
    expect(over.gradWeight).toBe(mine);
    expect(Buffer.from(mine.buffer).equals(Buffer.from(fresh.gradWeight.buffer))).toBe(true);
    const start = Float32Array.from({ length: V * H }, (_, k) => Math.sin(k));
    const acc = Float32Array.from(start);
    const added = await gvpoFromHiddenAsync({ ...a, gradWeight: acc, accumulate: true });
    expect(added.gradWeight).toBe(acc);
    scaleClose(
      acc,
      Float64Array.from(start, (x, k) => x + fresh.gradWeight[k]),
      1e-6,
      'accumulated dL/dweight',
    );
    // Two shards (sequences 0-2 and 3-5): phase 1 each, the loss over both, then phase 2 of each
    // into one buffer, the second adding to the first. One options object per shard serves both
    // phases, gradWeight and accumulate included.
    const shard = (s0: number, s1: number): GvpoFromHiddenArgs => ({
      ...a,
      hidden: (a.hidden as Float32Array).slice(s0 * T * H, s1 * T * H),
      targets: a.targets.slice(s0 * T, s1 * T),
      mask: (a.mask as Float32Array).slice(s0 * T, s1 * T),
      referenceTokenLogprobs: (a.referenceTokenLogprobs as Float64Array).slice(s0 * T, s1 * T),
      rewards: (a.rewards as Float64Array).slice(s0, s1),
      groups: { offsets: Int32Array.from([0, s1 - s0]) },
      sequences: s1 - s0,
    });
    const dW = new Float32Array(V * H).fill(NaN);
    const shards = [shard(0, 3), shard(3, 6)].map((s, i) => ({ ...s, gradWeight: dW, accumulate: i > 0 }));
    const f = shards.map((s) => gvpoFromHiddenForward(s));
    const loss = gvpoLoss({
      policyLogprobs: Float64Array.from([...f[0].policyLogprobs, ...f[1].policyLogprobs]),
      referenceLogprobs: Float64Array.from([...f[0].referenceLogprobs, ...f[1].referenceLogprobs]),
      rewards: a.rewards,
      groups: a.groups,
      beta: a.beta,
    });
    // CUDA's phases and its one call may round l differently in float32 (the CPU's are bit-equal)
    if (backendInfo().active === 'cuda') expect(Math.abs(loss.loss - fresh.loss)).toBeLessThan(1e-6 * fresh.loss);
    else expect(loss.loss).toBeCloseTo(fresh.loss, 12);
    shards.forEach((s, i) =>
      gvpoFromHiddenBackward({ ...s, logZ: f[i].logZ, gradLogprobs: loss.gradLogprobs.slice(3 * i, 3 * i + 3) }),
    );
    scaleClose(dW, fresh.gradWeight, 1e-6, 'dL/dweight of two shards added into one buffer');
  });

  it("a dL/dS beyond float32's range: both gradients are the reference's, not NaN; accumulate too", () => {
    // beta = 1e20 puts dL/dS near 1e40; at tau = 1e4 the coefficients dL/dS / tau and both
    // gradients fit float32 again
    for (const dtype of ['float32', 'bfloat16'] as DType[]) {
      const a = { ...args(31, 4, 3, 16, 50, [0, 4], dtype, { tau: 1e4, ref: 'sequence' }), beta: 1e20 };
      const want = gvpoFromHiddenRef(refOpts(a));
      const top = Math.max(...Array.from(want.gradLogprobs, Math.abs));
      expect(top).toBeGreaterThan(1e39);
      const got = gvpoFromHidden(a);
      allclose(got.gradLogprobs, want.gradLogprobs, { atol: 0, rtol: 1e-4 }, 'dL/dS');
      gradsClose(a, got, want, 1e-4);
      const start = Float32Array.from({ length: a.vocab * a.hiddenSize }, (_, k) => 1e30 * Math.sin(k));
      const acc = gvpoFromHidden({ ...a, gradWeight: Float32Array.from(start), accumulate: true }).gradWeight;
      scaleClose(
        acc,
        Float64Array.from(start, (x, k) => x + got.gradWeight[k]),
        1e-6,
        `${dtype}: accumulated dL/dweight`,
      );
    }
  });

  it('results do not depend on the thread count', () => {
    const a = args(9, 8, 40, 64, 700, [0, 4, 8], 'float32');
    const one = gvpoFromHidden({ ...a, threads: 1 }),
      three = gvpoFromHidden({ ...a, threads: 3 });
    expect(Buffer.from(one.gradHidden.buffer).equals(Buffer.from(three.gradHidden.buffer))).toBe(true);
    expect(Buffer.from(one.gradWeight.buffer).equals(Buffer.from(three.gradWeight.buffer))).toBe(true);
    expect(one.loss).toBe(three.loss);
  });

  it('a tiny temperature, or a phase-2 logZ below the true one, gives finite gradients, log-probs <= 0', () => {
    // z/tau near 1e31: logZ's rounding is far above 1 in absolute terms, so z/tau - logZ can come
    // out positive for the row's largest logit; a probability is still at most 1, never inf.
    // (No reference at 1e-30: the policy is its own, so dL/dS stays finite; with one, dL/dS ~ 1e30
    // and the true gradient, ~1e60, overflows float32.)
    for (const [tau, ref] of [
      [1e-30, 'none'],
      [1e-6, 'sequence'],
    ] as const) {
      const a = args(21, 4, 9, 37, 700, [0, 2, 4], 'float32', { tau, ref });
      const got = gvpoFromHidden(a);
      expect(
        got.tokenLogprobs.every((x) => x <= 0),
        `tau ${tau}`,
      ).toBe(true);
      expect(got.gradHidden.every(Number.isFinite), `tau ${tau}: dL/dhidden`).toBe(true);
      expect(got.gradWeight.every(Number.isFinite), `tau ${tau}: dL/dweight`).toBe(true);
    }
    // below about 2.9e-39, 1/tau is infinite in float32: refused, as is a float64 mask weight
    // that is infinite once narrowed to float32
    const small = args(23, 2, 3, 5, 20, [0, 2], 'float32');
    expect(() => gvpoFromHidden({ ...small, temperature: 1e-39 })).toThrow(
      /temperature must be a number whose float32 value and reciprocal are finite/,
    );
    expect(() =>
      gvpoFromHidden({
        ...small,
        mask: Float64Array.from(small.mask as Float32Array, (x, i) => (i === 1 ? 1e300 : x)),
      }),
    ).toThrow(/mask must be finite float32 weights, got 1e\+300 at index 1/);
    const a = args(22, 4, 5, 19, 300, [0, 2, 4], 'float32', { prompt: 0 });
    const logZ = gvpoFromHiddenForward(a).logZ.map((x) => x - 200);
    const back = gvpoFromHiddenBackward({ ...a, logZ, gradLogprobs: [1, -1, 0.5, -0.5] });
    expect(back.gradHidden.every(Number.isFinite)).toBe(true);
    expect(back.gradWeight.every(Number.isFinite)).toBe(true);
    const logits = Float32Array.from({ length: 20 * 300 }, (_, i) => Math.sin(i) * 30);
    const g = tokenLogprobsBackward({
      logits,
      targets: a.targets.map((t) => Math.max(t, 0)),
      rows: 20,
      vocab: 300,
      logZ: new Float32Array(20).fill(-200),
      gradTokenLogprobs: new Float32Array(20).fill(1),
    });
    expect(g.every(Number.isFinite)).toBe(true);
  });

  it('a NaN in a hidden row gives that row NaN, reported', () => {
    const a = args(3, 2, 3, 6, 20, [0, 2], 'float32', { prompt: 0 });
    (a.hidden as Float32Array)[4 * 6 + 1] = NaN;
    const got = gvpoFromHiddenForward(a);
    expect(got.nonFiniteRows).toBe(1);
    expect(Number.isNaN(got.tokenLogprobs[4])).toBe(true);
    expect(Number.isFinite(got.tokenLogprobs[0])).toBe(true);
  });

  it('refuses bad input with the argument named, before any work', async () => {
    const a = args(1, 2, 2, 4, 6, [0, 2], 'float32');
    expect(() => gvpoFromHidden({ ...a, temprature: 2 } as GvpoFromHiddenArgs)).toThrow(/did you mean 'temperature'/);
    expect(() => gvpoFromHidden({ ...a, weight: new Float32Array(23) })).toThrow(RangeError);
    expect(() => gvpoFromHidden({ ...a, weight: new Float32Array(23) })).toThrow(/weight.*vocab\*hiddenSize/);
    expect(() => gvpoFromHidden({ ...a, hidden: new Float64Array(16) as unknown as Float32Array })).toThrow(TypeError);
    expect(() => gvpoFromHidden({ ...a, dtype: 'bfloat16' })).toThrow(/hidden/);
    expect(() => gvpoFromHidden({ ...a, hiddenSize: 0 })).toThrow(RangeError);
    const t = Int32Array.from(a.targets);
    t[3] = 6;
    expect(() => gvpoFromHidden({ ...a, targets: t })).toThrow(/targets/);
    await expect(gvpoFromHiddenAsync({ ...a, beta: -1 })).rejects.toThrow(RangeError);
    expect(() => gvpoFromHidden({ ...a, accumulate: true })).toThrow(
      new RangeError(
        'gvpoFromHidden: gradWeight must be a Float32Array to add to when accumulate is true, got undefined',
      ),
    );
    expect(() => gvpoFromHidden({ ...a, gradWeight: new Float32Array(23) })).toThrow(
      new RangeError('gvpoFromHidden: gradWeight must be of length vocab*hiddenSize = 24, got length 23'),
    );
    expect(() => gvpoFromHidden({ ...a, gradWeight: a.weight as Float32Array })).toThrow(
      new RangeError(
        'gvpoFromHidden: gradWeight must be a buffer that does not overlap the inputs, got a view overlapping weight',
      ),
    );
    const phase2 = { ...a, logZ: new Float32Array(4), gradLogprobs: new Float64Array(2) };
    expect(() => gvpoFromHiddenBackward({ ...phase2, accumulate: 1 as unknown as boolean })).toThrow(
      new TypeError('gvpoFromHiddenBackward: accumulate must be a boolean, got 1'),
    );
  });

  it('runs on the backend it reports', () => {
    expect(['cuda', 'cpu', 'js']).toContain(backendInfo().active);
  });
});
