// gvpoLoss, groupCenter and sequenceLogprobs against definitions written here, finite
// differences of the loss in float64, and the four-term identity.
import { describe, expect, it } from 'vitest';
import { groupCenter, gvpoLoss, gvpoLossAsync, sequenceLogprobs } from '../src/index.js';
import { groupCenterRef } from '../src/reference/groupCenter.js';
import { allclose } from './helpers/allclose.js';
import { normal, rng } from './helpers/data.js';

const TIGHT = { atol: 1e-12, rtol: 1e-10 };

function layout(sizes: number[]): Int32Array {
  const off = new Int32Array(sizes.length + 1);
  sizes.forEach((k, g) => (off[g + 1] = off[g] + k));
  return off;
}

// The loss straight from its definition (docs/DESIGN.md, "The math"), sharing nothing with the implementation.
function definition(S: number[], Q: number[], R: number[], sizes: number[], beta: number, reduction: 'mean' | 'sum') {
  let L = 0;
  let live = 0;
  let start = 0;
  for (const k of sizes) {
    const idx = Array.from({ length: k }, (_, i) => start + i);
    start += k;
    if (k < 2) continue;
    live++;
    const r = idx.map((n) => beta * (S[n] - Q[n]));
    const mr = r.reduce((a, b) => a + b) / k;
    const mR = idx.reduce((a, n) => a + R[n], 0) / k;
    L += idx.reduce((a, n, j) => a + (r[j] - mr - (R[n] - mR)) ** 2, 0) / 2 / (k - 1);
  }
  return reduction === 'mean' && live > 0 ? L / live : L;
}

function draw(seed: number, sizes: number[]) {
  const r = rng(seed);
  const N = sizes.reduce((a, b) => a + b);
  const S = Array.from({ length: N }, () => normal(r) * 5 - 20);
  const Q = S.map((s) => s + normal(r));
  const R = Array.from({ length: N }, () => Math.round(r() * 3));
  return { S, Q, R };
}

describe('gvpoLoss', () => {
  const layouts = [[4, 4, 4], [3, 1, 5, 2], [2], [1, 1, 7], [8]];
  for (const sizes of layouts) {
    for (const reduction of ['mean', 'sum'] as const) {
      it(`groups ${sizes.join(',')} ${reduction}: loss, dL/dS (finite differences) and the four terms`, () => {
        const { S, Q, R } = draw(sizes.length * 17 + sizes[0], sizes);
        const beta = 0.1;
        const groups = { offsets: layout(sizes) };
        const out = gvpoLoss({ policyLogprobs: S, referenceLogprobs: Q, rewards: R, groups, beta, reduction });
        expect(out.loss).toBeCloseTo(definition(S, Q, R, sizes, beta, reduction), 12);
        const { advantage, trustRegion, variance, constant } = out.terms;
        expect(Math.abs(advantage + trustRegion + variance + constant - out.loss)).toBeLessThan(1e-9 * (1 + out.loss));
        const h = 1e-5;
        const fd = S.map((_, n) => {
          const up = S.slice();
          up[n] += h;
          const dn = S.slice();
          dn[n] -= h;
          return (
            (definition(up, Q, R, sizes, beta, reduction) - definition(dn, Q, R, sizes, beta, reduction)) / (2 * h)
          );
        });
        allclose(out.gradLogprobs, fd, { atol: 1e-8, rtol: 1e-5 }, 'dL/dS');
        // residuals: the paper's weights are -c; c sums to zero inside each group
        let start = 0;
        for (const k of sizes) {
          const sum = out.residuals.slice(start, start + k).reduce((a, b) => a + b, 0);
          expect(Math.abs(sum)).toBeLessThan(1e-9);
          if (k === 1) expect([out.residuals[start], out.gradLogprobs[start]]).toEqual([0, 0]);
          start += k;
        }
      });
    }
  }

  it('rewards are centered by the mean only, never divided by the group std', () => {
    const base = gvpoLoss({
      policyLogprobs: [0, 0, 0],
      referenceLogprobs: [0, 0, 0],
      rewards: [0, 1, 2],
      groups: { size: 3 },
      beta: 1,
    });
    const scaled = gvpoLoss({
      policyLogprobs: [0, 0, 0],
      referenceLogprobs: [0, 0, 0],
      rewards: [0, 10, 20],
      groups: { size: 3 },
      beta: 1,
    });
    expect(scaled.loss / base.loss).toBeCloseTo(100, 10);
  });

  it('{ size } and { offsets } agree; the async twin agrees', async () => {
    const { S, Q, R } = draw(3, [4, 4]);
    const a = { policyLogprobs: S, referenceLogprobs: Q, rewards: R, beta: 0.5 };
    const bySize = gvpoLoss({ ...a, groups: { size: 4 } });
    const byOff = await gvpoLossAsync({ ...a, groups: { offsets: layout([4, 4]) } });
    expect(byOff.loss).toBe(bySize.loss);
    expect(Array.from(byOff.gradLogprobs)).toEqual(Array.from(bySize.gradLogprobs));
  });
});

describe('groupCenter and sequenceLogprobs', () => {
  it('centers equal and ragged groups', () => {
    const values = [1, 2, 3, 10, 5, 7];
    const eq = groupCenter({ values: [1, 2, 3, 9, 5, 7], groups: { size: 3 } });
    allclose(eq.centered, [-1, 0, 1, 2, -2, 0], TIGHT);
    allclose(eq.means, [2, 7], TIGHT);
    const rag = groupCenter({ values, groups: { offsets: Int32Array.from([0, 1, 4, 6]) } });
    allclose(rag.centered, [0, -3, -2, 5, -1, 1], TIGHT);
  });

  it('sums token log-probs under a weighted mask, skipping NaN at masked positions', () => {
    const lp = Float32Array.from([-1, -2, NaN, -4, -0.5, -0.25]);
    const mask = Float32Array.from([1, 0.5, 0, 1, 1, 0]);
    allclose(sequenceLogprobs({ tokenLogprobs: lp, mask, sequences: 2, tokens: 3 }), [-2, -4.5], TIGHT);
  });
});

describe('group means of values near float64 max', () => {
  it('centre [1e308, 1e308] to 0 (the sum overflows, the mean does not), here and in the loss', () => {
    const c = groupCenter({ values: [1e308, 1e308, -1e308, 1e308], groups: { size: 2 } });
    expect(Array.from(c.means)).toEqual([1e308, 0]);
    expect(Array.from(c.centered)).toEqual([0, 0, -1e308, 1e308]);
    expect(groupCenterRef(Float64Array.from([1e308, 1e308]), Int32Array.from([0, 2])).means[0]).toBe(1e308);
    const r = gvpoLoss({
      policyLogprobs: [-1, -2],
      referenceLogprobs: [-1, -2],
      rewards: [1e308, 1e308],
      groups: { size: 2 },
      beta: 0.1,
    });
    expect(r.loss).toBe(0);
    expect(Array.from(r.gradLogprobs)).toEqual([0, 0]);
    expect(r.terms.advantage).toBe(0);
  });
});
