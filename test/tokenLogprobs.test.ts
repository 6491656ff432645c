// tokenLogprobs and its gradient: the active backend against the float64 reference over a grid
// of shapes (awkward sizes included) and all dtypes; -inf / NaN rows; thread independence.
import { describe, expect, it } from 'vitest';
import {
  gvpoFromLogits,
  tokenLogprobs,
  tokenLogprobsAsync,
  tokenLogprobsBackward,
  tokenLogprobsFromHidden,
  tokenLogprobsFromHiddenBackward,
} from '../src/index.js';
import { gvpoFromLogitsRef } from '../src/reference/gvpoFromLogits.js';
import { tokenLogprobsBackwardInto, tokenLogprobsF64 } from '../src/reference/tokenLogprobs.js';
import type { DType } from '../src/types.js';
import { allclose, gradClose, TOL } from './helpers/allclose.js';
import { batch, rng } from './helpers/data.js';

const SHAPES: Array<[number, number]> = [
  [1, 1],
  [1, 2],
  [3, 7],
  [5, 123],
  [7, 16],
  [2, 4095],
  [4, 4097],
  [33, 2048],
  [3, 5000],
];
const DTYPES: DType[] = ['float32', 'bfloat16', 'float16'];

function rowsArgs(rows: number, V: number, dtype: DType, seed: number, masked: boolean, temperature = 1) {
  const b = batch(seed, rows, 1, V, dtype);
  const r = rng(seed + 1);
  const mask = masked ? Float32Array.from({ length: rows }, () => (r() < 0.3 ? 0 : 1)) : undefined;
  return { logits: b.logits, dtype, targets: b.targets, mask, rows, vocab: V, temperature };
}

describe('tokenLogprobs', () => {
  for (const dtype of DTYPES) {
    for (const [R, V] of SHAPES) {
      it(`${dtype} ${R}x${V} matches the float64 reference (mask, temperature)`, () => {
        for (const [masked, tau] of [
          [false, 1],
          [true, 0.7],
        ] as const) {
          const a = rowsArgs(R, V, dtype, R * 1000 + V, masked, tau);
          const got = tokenLogprobs(a);
          const want = tokenLogprobsF64({ ...a, temperature: tau });
          allclose(got.logZ, want.logZ, TOL[dtype], 'logZ');
          allclose(
            got.logprobs,
            want.logprobs,
            { atol: 1e-5 * (1 + Math.max(...Array.from(want.logZ, Math.abs))), rtol: 1e-5 },
            'logprobs',
          );
          expect(got.nonFiniteRows).toBe(0);
          if (masked)
            for (let r = 0; r < R; r++) if (a.mask![r] === 0) expect([got.logprobs[r], got.logZ[r]]).toEqual([0, 0]);
        }
      });
    }
  }

  it('-inf logits are exact zeros of probability; an all -inf row and a NaN row give NaN for that row only', () => {
    const V = 37;
    const z = new Float32Array(4 * V).map((_, i) => 0.01 * (i % 13));
    z[5] = -Infinity;
    for (let v = 0; v < V; v++) z[V + v] = -Infinity;
    z[2 * V + 3] = NaN;
    const targets = Int32Array.from([1, 0, 2, 4]);
    const a = { logits: z, targets, rows: 4, vocab: V };
    const got = tokenLogprobs(a);
    const want = tokenLogprobsF64({ ...a, dtype: 'float32', temperature: 1 });
    expect(got.nonFiniteRows).toBe(2);
    expect(Number.isNaN(got.logprobs[1]) && Number.isNaN(got.logprobs[2])).toBe(true);
    allclose([got.logprobs[0], got.logprobs[3]], [want.logprobs[0], want.logprobs[3]], TOL.float32);
    const grad = tokenLogprobsBackward({ ...a, logZ: got.logZ, gradTokenLogprobs: new Float32Array(4).fill(1) });
    expect(Math.abs(grad[5])).toBe(0);
    expect(Number.isNaN(grad[V]) && Number.isNaN(grad[2 * V])).toBe(true);
    expect(grad.subarray(3 * V).every(Number.isFinite)).toBe(true);
  });

  it('a row whose logZ overflows float32 (finite max and lse) is NaN in the backwards given its logZ, as l is', () => {
    // 3e38 / 0.05 is past float32: l is NaN and counted; the row's max and lse are finite, and a
    // backward that took them gave [-20, 20, 0, 0] (the head: dL/dweight [-inf, inf, 0])
    const a = { logits: Float32Array.from([3e38, -3e38, 0, 1, 0, 1, 2, 3]), targets: Int32Array.from([1, 2]) };
    const rows = { ...a, rows: 2, vocab: 4, temperature: 0.05 };
    const f = tokenLogprobs(rows);
    expect(f.nonFiniteRows).toBe(1);
    const g = tokenLogprobsBackward({ ...rows, logZ: f.logZ, gradTokenLogprobs: Float32Array.of(1, 1) });
    expect(g.subarray(0, 4).every(Number.isNaN)).toBe(true);
    expect(g.subarray(4).every(Number.isFinite)).toBe(true);
    const head = {
      hidden: Float32Array.of(1e38, 1),
      weight: Float32Array.of(3, -3, 0),
      targets: Int32Array.of(1, 2),
      rows: 2,
      hiddenSize: 1,
      vocab: 3,
      temperature: 0.05,
    };
    const h = tokenLogprobsFromHidden(head);
    expect(h.nonFiniteRows).toBe(1);
    const hb = tokenLogprobsFromHiddenBackward({ ...head, logZ: h.logZ, gradTokenLogprobs: Float32Array.of(1, 0) });
    expect(Number.isNaN(hb.gradHidden[0])).toBe(true);
    expect(Array.from(hb.gradWeight).every(Number.isNaN)).toBe(true);
  });

  it('logits near -3e38 and +3e38: l as the float64 reference gives it, -inf only below float32 range', () => {
    const a = 1.5 * 2 ** 127;
    const z = Float32Array.from([a, -a, 0.5 * a, -0.75 * a, 0]);
    for (const temperature of [1, 7, 1e20, 1e38])
      for (const y of [0, 1, 3]) {
        const args = { logits: z, targets: Int32Array.of(y), rows: 1, vocab: 5, temperature };
        const got = tokenLogprobs(args);
        const want = tokenLogprobsF64({ ...args, dtype: 'float32' });
        const l = Math.fround(want.logprobs[0]);
        if (Number.isFinite(l)) allclose(got.logprobs, [l], { atol: 1e-6, rtol: 1e-6 }, `l, tau ${temperature}`);
        else expect(got.logprobs[0]).toBe(-Infinity);
        allclose(got.logZ, want.logZ, { atol: 1e-6, rtol: 1e-6 }, `logZ, tau ${temperature}`);
        expect(got.nonFiniteRows).toBe(0);
      }
  });

  it('a weight g with g / tau beyond float32: the gradient is the reference, never NaN', () => {
    for (const dtype of DTYPES) {
      const a = { ...rowsArgs(3, 700, dtype, 13, false), temperature: 0.05 };
      const g = Float32Array.of(3e38, -1e37, 2e-3);
      const got = tokenLogprobsBackward({ ...a, logZ: tokenLogprobs(a).logZ, gradTokenLogprobs: g });
      const want = new Float32Array(3 * 700);
      tokenLogprobsBackwardInto(want, a, tokenLogprobsF64(a).logZ, g);
      let compared = 0;
      for (let i = 0; i < want.length; i++) {
        expect(Number.isNaN(got[i]), `${dtype} element ${i}`).toBe(false);
        if (!Number.isFinite(want[i])) expect(got[i], `${dtype} element ${i}`).toBe(want[i]);
        else if (Math.abs(want[i]) > 1e-30 * Math.abs(g[Math.floor(i / 700)] / a.temperature)) {
          compared++;
          expect(Math.abs(got[i] - want[i]), `${dtype} element ${i}`).toBeLessThanOrEqual(1e-3 * Math.abs(want[i]));
        }
      }
      expect(compared).toBeGreaterThan(100);
    }
  });

  it('does not depend on the thread count', () => {
    const a = rowsArgs(64, 3001, 'float32', 7, true);
    const one = tokenLogprobs({ ...a, threads: 1 });
    for (const threads of [2, 3, 8]) {
      const many = tokenLogprobs({ ...a, threads });
      expect(Buffer.from(many.logprobs.buffer).equals(Buffer.from(one.logprobs.buffer))).toBe(true);
      expect(Buffer.from(many.logZ.buffer).equals(Buffer.from(one.logZ.buffer))).toBe(true);
    }
  });

  it('the async twin gives the sync result and leaves inputs untouched', async () => {
    const a = rowsArgs(16, 999, 'bfloat16', 3, true);
    const copy = Uint16Array.from(a.logits as Uint16Array);
    const sync = tokenLogprobs(a);
    const asyncR = await tokenLogprobsAsync(a);
    expect(Array.from(asyncR.logprobs)).toEqual(Array.from(sync.logprobs));
    expect(Array.from(a.logits)).toEqual(Array.from(copy));
  });
});

describe('tokenLogprobsBackward', () => {
  for (const dtype of DTYPES) {
    it(`${dtype}: matches the float64 reference gradient`, () => {
      for (const [R, V] of [
        [5, 123],
        [3, 4097],
        [1, 1],
      ]) {
        const a = rowsArgs(R, V, dtype, R + V, true, 0.9);
        const r = rng(5);
        const g = Float32Array.from({ length: R }, (_, i) => (a.mask![i] ? r() - 0.5 : 0));
        const lz = tokenLogprobs(a).logZ;
        const got = tokenLogprobsBackward({ ...a, logZ: lz, gradTokenLogprobs: g });
        const want = new Float64Array(R * V);
        tokenLogprobsBackwardInto(
          want,
          { ...a, temperature: 0.9 },
          tokenLogprobsF64({ ...a, mask: undefined, temperature: 0.9 }).logZ,
          g,
        );
        gradClose(got, want);
      }
    });
  }

  it('in place writes the same gradient over the logits', () => {
    const a = rowsArgs(6, 1000, 'float32', 11, false);
    const lz = tokenLogprobs(a).logZ;
    const g = new Float32Array(6).fill(0.3);
    const fresh = tokenLogprobsBackward({ ...a, logZ: lz, gradTokenLogprobs: g });
    const z = Float32Array.from(a.logits as Float32Array);
    const inPlace = tokenLogprobsBackward({ ...a, logits: z, logZ: lz, gradTokenLogprobs: g, inPlace: true });
    expect(inPlace).toBe(z);
    expect(Array.from(z)).toEqual(Array.from(fresh));
  });
});

describe('a huge max/tau', () => {
  // logZ = max/tau + lse is held as its two parts: next to a max/tau of 5e30 (or 3.4e38) in
  // double, log 2 would keep no bits, and l = z_y/tau - logZ of two tied maxima would read 0.
  const cases: Array<[string, number[], number]> = [
    ['ties at tau 1e-30', [5, 5, 3], 1e-30],
    ['ties at tau 1e-12', [5, 5, 3], 1e-12],
    ['ties near 3.4e38', [3.4e38, 3.4e38, 0], 1],
  ];
  for (const [name, z, tau] of cases) {
    it(`${name}: l = -log 2 from the reference and from the active backend, and p = 1/2 in the fused gradient`, () => {
      const a = { logits: Float32Array.from(z), targets: Int32Array.from([0]), rows: 1, vocab: 3, temperature: tau };
      expect(tokenLogprobsF64({ ...a, dtype: 'float32' }).logprobs[0]).toBeCloseTo(-Math.LN2, 12);
      expect(tokenLogprobs(a).logprobs[0]).toBeCloseTo(-Math.LN2, 6);
      const b = {
        logits: Float32Array.from([...z, ...z]),
        targets: Int32Array.from([0, 1]),
        mask: Float32Array.from([1, 1]),
        sequences: 2,
        tokens: 1,
        vocab: 3,
        temperature: tau,
        rewards: [1, 0],
        groups: { size: 2 },
        beta: 1,
        referenceLogprobs: [0, 0],
      };
      const ref = { ...b, dtype: 'float32', rows: 2, offsets: Int32Array.from([0, 2]), reduction: 'mean' };
      for (const r of [gvpoFromLogits(b), gvpoFromLogitsRef(ref as never)]) {
        expect(r.policyLogprobs[0]).toBeCloseTo(-Math.LN2, 6);
        const g = r.gradLogits;
        // row 0: c (1 - 1/2) at its target, -c/2 at the other tied maximum, 0 at the third
        expect(Math.abs(g[0])).toBeGreaterThan(0);
        expect(g[0] + g[1]).toBe(0);
        expect(g[2]).toBe(0);
      }
    });
  }
});

describe('signed zeros', () => {
  it('a gradient that underflows to 0 has the same bits wherever the output buffer starts', () => {
    const V = 64;
    const logits = Float32Array.from({ length: 2 * V }, (_, i) => Math.sin(i));
    const a = { logits, targets: Int32Array.from([0, 1]), rows: 2, vocab: V, temperature: 1e30 };
    const logZ = tokenLogprobs(a).logZ;
    const bits = (off: number) => {
      const out = new Float32Array(new ArrayBuffer(4 * (2 * V + 16)), off, 2 * V);
      tokenLogprobsBackward({ ...a, logZ, gradTokenLogprobs: Float32Array.from([-1e-20, 1e-20]), out });
      return Array.from(out, (x) => (Object.is(x, -0) ? '-0' : String(x)));
    };
    const at0 = bits(0);
    expect(at0.slice(V + 2)).toEqual(Array(V - 2).fill('-0')); // -(1e-50 underflowed to +0) * p
    for (const off of [4, 8, 16, 36]) expect(bits(off)).toEqual(at0);
  });
});
