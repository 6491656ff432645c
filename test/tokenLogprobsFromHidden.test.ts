// The fused LM head for any loss: l (and H) and the gradients for upstream dL/dl and dL/dH,
// against the float64 reference over awkward shapes, every dtype and temperatures far from 1;
// against PyTorch float64 autograd fixtures (scripts/make-fixtures-hidden.py); against central
// finite differences of the float64 loss; against tokenLogprobs on the materialized logits;
// the mask's liveness semantics, V = 1, one row, non-finite rows, gradWeight into a caller's
// buffer and accumulated, the async twins, thread-count independence.
// Gradients are compared relative to their scale: max |got - want| <= tol * max |want|.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  backendInfo,
  gvpoFromHidden,
  tokenLogprobs,
  tokenLogprobsBackward,
  tokenLogprobsFromHidden,
  tokenLogprobsFromHiddenAsync,
  tokenLogprobsFromHiddenBackward,
  tokenLogprobsFromHiddenBackwardAsync,
} from '../src/index.js';
import type { HiddenRowsOpts } from '../src/checked.js';
import { decodeHalf, encodeHalf } from '../src/reference/dtype.js';
import {
  tokenLogprobsFromHiddenBackwardInto,
  tokenLogprobsFromHiddenF64,
  tokenLogprobsFromHiddenRef,
} from '../src/reference/tokenLogprobsFromHidden.js';
import type { DType, TokenLogprobsFromHiddenArgs } from '../src/types.js';
import { allclose } from './helpers/allclose.js';
import { bf16Products, productClose } from './helpers/bf16Products.js';
import { normal, rng } from './helpers/data.js';

interface Case extends TokenLogprobsFromHiddenArgs {
  gradTokenLogprobs: Float32Array;
  gradEntropy: Float32Array;
}

/** rows x H hidden states, V x H weight with |z/tau| of order 10 at any temperature; a quarter of
 *  the rows masked (mask values other than 1 on live rows), with garbage targets, NaN hidden
 *  states and NaN upstream there. */
function draw(seed: number, rows: number, H: number, V: number, dtype: DType, tau: number, masked = true): Case {
  const r = rng(seed);
  const h = Float32Array.from({ length: rows * H }, () => normal(r));
  const w = Float32Array.from({ length: V * H }, () => ((normal(r) * 1.5) / Math.sqrt(H)) * Math.min(1, 10 * tau));
  const targets = new Int32Array(rows),
    mask = new Float32Array(rows);
  const gl = new Float32Array(rows),
    gh = new Float32Array(rows);
  for (let i = 0; i < rows; i++) {
    mask[i] = masked && rows > 1 && r() < 0.25 ? 0 : r() < 0.3 ? 0.5 : 1;
    targets[i] = mask[i] ? Math.floor(r() * V) : i % 2 ? -3 : V + 7;
    gl[i] = mask[i] ? (r() < 0.2 ? 0 : normal(r)) : NaN;
    gh[i] = mask[i] ? (r() < 0.2 ? 0 : normal(r)) : NaN;
    if (!mask[i]) h.fill(NaN, i * H, (i + 1) * H);
  }
  return {
    hidden: dtype === 'float32' ? h : encodeHalf(h, dtype),
    weight: dtype === 'float32' ? w : encodeHalf(w, dtype),
    dtype,
    targets,
    mask,
    rows,
    hiddenSize: H,
    vocab: V,
    temperature: tau,
    gradTokenLogprobs: gl,
    gradEntropy: gh,
  };
}

function opts(a: TokenLogprobsFromHiddenArgs): HiddenRowsOpts {
  return {
    ...a,
    dtype: a.dtype ?? 'float32',
    mask: a.mask as Float32Array | undefined,
    temperature: a.temperature ?? 1,
    entropy: true,
  };
}

/** The float64 reference: values, and the gradients for the case's upstream. */
function reference(c: Case, withEntropyGrad = true) {
  const o = opts(c);
  const f = tokenLogprobsFromHiddenF64(o, true);
  const g = tokenLogprobsFromHiddenBackwardInto(
    o,
    {
      logZ: f.logZ,
      entropy: f.entropy,
      gradLogprobs: c.gradTokenLogprobs,
      gradEntropy: withEntropyGrad ? c.gradEntropy : undefined,
    },
    { gradHidden: new Float32Array(c.rows * c.hiddenSize), gradWeight: new Float32Array(c.vocab * c.hiddenSize) },
    false,
  );
  return { ...f, ...g };
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

/**
 * The float64 sums of |dz[r,v] weight[v,h]| and |dz[r,v] hidden[r,h]| behind each gradient element,
 * dz = (gl ([v = y] - p) - gH p (log p + H)) / tau: what bfloat16 products' rounding of dz scales with.
 */
function productSums(
  c: TokenLogprobsFromHiddenArgs,
  logZ: ArrayLike<number>,
  entropy: ArrayLike<number>,
  gl: ArrayLike<number>,
  gh?: ArrayLike<number>,
) {
  const { rows, hiddenSize: H, vocab: V } = c,
    tau = c.temperature ?? 1;
  const dec = (x: Float32Array | Uint16Array) =>
    c.dtype === 'bfloat16' || c.dtype === 'float16' ? decodeHalf(x as Uint16Array, c.dtype) : (x as Float32Array);
  const h = dec(c.hidden),
    w = dec(c.weight);
  const aH = new Float64Array(rows * H),
    aW = new Float64Array(V * H);
  for (let r = 0; r < rows; r++) {
    if (c.mask && !(c.mask as Float32Array)[r]) continue;
    const a = gl[r],
      b = gh ? gh[r] : 0;
    if (!a && !b) continue;
    for (let v = 0; v < V; v++) {
      let z = 0;
      for (let k = 0; k < H; k++) z += h[r * H + k] * w[v * H + k];
      const lp = z / tau - logZ[r],
        p = Math.exp(lp);
      const dz = Math.abs((a * ((v === c.targets[r] ? 1 : 0) - p) - b * p * (lp + entropy[r])) / tau);
      for (let k = 0; k < H; k++) {
        aH[r * H + k] += dz * Math.abs(w[v * H + k]);
        aW[v * H + k] += dz * Math.abs(h[r * H + k]);
      }
    }
  }
  return { aH, aW };
}

/** The gradients against a reference: to tol of their scale, and where bfloat16 head inputs are
 *  multiplied in bfloat16 (avx512bf16), also to 2^-8 of each element's sum of |products|. */
function gradsClose(
  c: TokenLogprobsFromHiddenArgs,
  got: { gradHidden: Float32Array; gradWeight: Float32Array },
  want: { gradHidden: ArrayLike<number>; gradWeight: ArrayLike<number> },
  stats: { logZ: ArrayLike<number>; entropy: ArrayLike<number> },
  gl: ArrayLike<number>,
  gh: ArrayLike<number> | undefined,
  tol: number,
  what: string,
): void {
  if (!bf16Products(c.dtype)) {
    scaleClose(got.gradHidden, want.gradHidden, tol, `${what} dL/dhidden`);
    scaleClose(got.gradWeight, want.gradWeight, tol, `${what} dL/dweight`);
    return;
  }
  const sums = productSums(c, stats.logZ, stats.entropy, gl, gh);
  productClose(got.gradHidden, want.gradHidden, sums.aH, tol, `${what} dL/dhidden`);
  productClose(got.gradWeight, want.gradWeight, sums.aW, tol, `${what} dL/dweight`);
}

/** gradsClose for the case's own upstream, against its reference() (whose stats it takes). */
function caseGradsClose(
  c: Case,
  got: { gradHidden: Float32Array; gradWeight: Float32Array },
  want: ReturnType<typeof reference>,
  what: string,
): void {
  const stats = want as { logZ: ArrayLike<number>; entropy: ArrayLike<number> };
  gradsClose(c, got, want, stats, c.gradTokenLogprobs, c.gradEntropy, 1e-4, what);
}

const same = (a: Float32Array, b: Float32Array) =>
  Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));

function forwardArgs(c: Case): TokenLogprobsFromHiddenArgs {
  const { gradTokenLogprobs: _gl, gradEntropy: _gh, ...a } = c;
  return a;
}

/** The forward with entropies, then the backward of the case's upstream from its logZ and H. */
function forwardBackward(c: Case) {
  const f = tokenLogprobsFromHidden({ ...forwardArgs(c), entropy: true });
  const g = tokenLogprobsFromHiddenBackward({
    ...forwardArgs(c),
    logZ: f.logZ,
    entropy: f.entropy,
    gradTokenLogprobs: c.gradTokenLogprobs,
    gradEntropy: c.gradEntropy,
  });
  return { f, g };
}

describe('tokenLogprobsFromHidden', () => {
  // [rows, H, V]: H and V off the vector widths and tile edges, V = 1 and 2, one row, several
  // vocabulary chunks.
  const shapes: Array<[number, number, number]> = [
    [7, 17, 37],
    [1, 33, 300],
    [5, 9, 1],
    [3, 5, 2],
    [12, 70, 600],
    [40, 20, 257],
  ];
  const taus = [1, 0.7, 1e-3, 30];
  let i = 0;
  for (const dtype of ['float32', 'bfloat16', 'float16'] as DType[]) {
    for (const [R, H, V] of shapes) {
      const tau = taus[i++ % taus.length];
      it(`${dtype} rows=${R} H=${H} V=${V} tau=${tau}: l, H and both gradients match the float64 reference`, () => {
        const c = draw(i * 101 + V, R, H, V, dtype, tau);
        const want = reference(c);
        const { f, g } = forwardBackward(c);
        expect(f.nonFiniteRows).toBe(0);
        const lz = Array.from(want.logZ, Math.abs);
        allclose(f.logZ, want.logZ, { atol: 2e-5, rtol: 5e-6 }, 'logZ');
        allclose(
          f.logprobs.map((x, r) => x / (1 + lz[r])),
          want.logprobs.map((x, r) => x / (1 + lz[r])),
          { atol: 1e-5, rtol: 0 },
          'l',
        );
        allclose(f.entropy!, want.entropy!, { atol: 2e-5, rtol: 2e-5 }, 'H');
        caseGradsClose(c, g, want, '');
        for (let r = 0; r < R; r++) {
          expect(f.logprobs[r]).toBeLessThanOrEqual(0);
          expect(f.entropy![r]).toBeGreaterThanOrEqual(0);
          if ((c.mask as Float32Array)[r] === 0 || V === 1) {
            expect(Math.abs(f.logprobs[r]) + Math.abs(f.entropy![r])).toBe(0);
            expect(g.gradHidden.subarray(r * H, (r + 1) * H).every((x) => x === 0)).toBe(true);
          }
          if ((c.mask as Float32Array)[r] === 0) expect(f.logZ[r]).toBe(0);
        }
        if (V === 1) expect(g.gradWeight.every((x) => x === 0)).toBe(true);
      });
    }
  }

  const fixtures = JSON.parse(
    readFileSync(new URL('./fixtures/tokenLogprobsFromHidden.json', import.meta.url), 'utf8'),
  );
  for (const f of fixtures.cases) {
    it(`matches PyTorch float64 autograd: ${f.name}`, () => {
      const half = f.dtype !== 'float32';
      const nan = (xs: Array<number | null>) => Float32Array.from(xs, (x) => (x === null ? NaN : x));
      const a: TokenLogprobsFromHiddenArgs = {
        hidden: half ? Uint16Array.from(f.hiddenBits) : Float32Array.from(f.hidden),
        weight: half ? Uint16Array.from(f.weightBits) : Float32Array.from(f.weight),
        dtype: f.dtype,
        targets: Int32Array.from(f.targets),
        mask: Float32Array.from(f.mask),
        rows: f.rows,
        hiddenSize: f.hiddenSize,
        vocab: f.vocab,
        temperature: f.temperature,
      };
      const got = tokenLogprobsFromHidden({ ...a, entropy: true });
      allclose(got.logprobs, f.logprobs, { atol: 2e-5, rtol: 2e-5 }, 'l');
      allclose(got.entropy!, f.entropy, { atol: 2e-5, rtol: 2e-5 }, 'H');
      allclose(got.logZ, f.logZ, { atol: 2e-5, rtol: 2e-6 }, 'logZ');
      const g = tokenLogprobsFromHiddenBackward({
        ...a,
        logZ: got.logZ,
        entropy: got.entropy,
        gradTokenLogprobs: nan(f.gradTokenLogprobs),
        ...(f.gradEntropy ? { gradEntropy: nan(f.gradEntropy) } : {}),
      });
      gradsClose(a, g, f, f, nan(f.gradTokenLogprobs), f.gradEntropy ? nan(f.gradEntropy) : undefined, 1e-4, 'fixture');
    });
  }

  it('the reference gradients equal central finite differences of sum gl*l + gH*H (float64)', () => {
    for (const tau of [1, 0.05]) {
      const c = draw(77, 5, 4, 9, 'float32', tau, false);
      const base = opts(c);
      const h = Float64Array.from(c.hidden as Float32Array),
        w = Float64Array.from(c.weight as Float32Array);
      const lossAt = (hh: Float64Array, ww: Float64Array) => {
        const f = tokenLogprobsFromHiddenF64(
          { ...base, hidden: hh as unknown as Float32Array, weight: ww as unknown as Float32Array },
          true,
        );
        let s = 0;
        for (let r = 0; r < c.rows; r++) s += c.gradTokenLogprobs[r] * f.logprobs[r] + c.gradEntropy[r] * f.entropy![r];
        return s;
      };
      const want = reference(c);
      const eps = 1e-6;
      const fd = (x: Float64Array, at: (y: Float64Array) => number) =>
        Float64Array.from(x, (_, k) => {
          const up = x.slice();
          up[k] += eps;
          const dn = x.slice();
          dn[k] -= eps;
          return (at(up) - at(dn)) / (2 * eps);
        });
      // the reference's gradients are float32 arrays: compare at float32 precision
      scaleClose(
        want.gradHidden,
        fd(h, (y) => lossAt(y, w)),
        1e-5,
        `dL/dhidden vs FD (tau ${tau})`,
      );
      scaleClose(
        want.gradWeight,
        fd(w, (y) => lossAt(h, y)),
        1e-5,
        `dL/dweight vs FD (tau ${tau})`,
      );
    }
  });

  it('agrees with tokenLogprobs and its backward on the materialized logits', () => {
    const c = draw(5, 9, 24, 200, 'float32', 0.9);
    const { rows, hiddenSize: H, vocab: V } = c;
    const hid = c.hidden as Float32Array,
      w = c.weight as Float32Array;
    const logits = new Float32Array(rows * V);
    for (let r = 0; r < rows; r++) {
      for (let v = 0; v < V; v++) {
        let s = 0;
        for (let k = 0; k < H; k++) s += hid[r * H + k] * w[v * H + k];
        logits[r * V + v] = s;
      }
    }
    const viaLogits = tokenLogprobs({ logits, targets: c.targets, mask: c.mask, rows, vocab: V, temperature: 0.9 });
    const got = tokenLogprobsFromHidden(forwardArgs(c));
    expect(got.entropy).toBeUndefined();
    allclose(got.logprobs, viaLogits.logprobs, { atol: 3e-5, rtol: 3e-5 }, 'l');
    const dz = tokenLogprobsBackward({
      logits,
      targets: c.targets,
      mask: c.mask,
      rows,
      vocab: V,
      temperature: 0.9,
      logZ: viaLogits.logZ,
      gradTokenLogprobs: c.gradTokenLogprobs,
    });
    const dH = new Float64Array(rows * H);
    for (let r = 0; r < rows; r++) {
      for (let v = 0; v < V; v++) for (let k = 0; k < H; k++) dH[r * H + k] += dz[r * V + v] * w[v * H + k];
    }
    const g = tokenLogprobsFromHiddenBackward({
      ...forwardArgs(c),
      logZ: got.logZ,
      gradTokenLogprobs: c.gradTokenLogprobs,
    });
    scaleClose(g.gradHidden, dH, 1e-4, 'dL/dhidden via the logits op');
  });

  it('mask values are liveness, not weights; no mask means every row is live', () => {
    const c = draw(8, 6, 11, 50, 'float32', 1, false);
    const live = Float32Array.from(c.mask as Float32Array, (m) => (m ? 1 : 0));
    const a = tokenLogprobsFromHidden({ ...forwardArgs(c), entropy: true });
    const b = tokenLogprobsFromHidden({ ...forwardArgs(c), mask: live, entropy: true });
    const d = tokenLogprobsFromHidden({ ...forwardArgs(c), mask: undefined, entropy: true });
    expect(same(a.logprobs, b.logprobs) && same(a.entropy!, b.entropy!) && same(a.logprobs, d.logprobs)).toBe(true);
    const up = { logZ: a.logZ, gradTokenLogprobs: c.gradTokenLogprobs, gradEntropy: c.gradEntropy };
    const ga = tokenLogprobsFromHiddenBackward({ ...forwardArgs(c), ...up });
    const gb = tokenLogprobsFromHiddenBackward({ ...forwardArgs(c), mask: live, ...up });
    expect(same(ga.gradHidden, gb.gradHidden) && same(ga.gradWeight, gb.gradWeight)).toBe(true);
  });

  it("gradWeight: the caller's buffer overwritten, or added to with accumulate; gradEntropy alone; H recomputed", () => {
    const c = draw(12, 10, 13, 90, 'bfloat16', 1.1);
    const f = tokenLogprobsFromHidden({ ...forwardArgs(c), entropy: true });
    const up = { logZ: f.logZ, gradTokenLogprobs: c.gradTokenLogprobs, gradEntropy: c.gradEntropy };
    const fresh = tokenLogprobsFromHiddenBackward({ ...forwardArgs(c), ...up, entropy: f.entropy });
    const mine = new Float32Array(90 * 13).fill(7);
    const over = tokenLogprobsFromHiddenBackward({ ...forwardArgs(c), ...up, entropy: f.entropy, gradWeight: mine });
    expect(over.gradWeight).toBe(mine);
    expect(same(mine, fresh.gradWeight)).toBe(true);
    const acc = Float32Array.from({ length: 90 * 13 }, (_, k) => (k % 5) - 2);
    const start = acc.slice();
    tokenLogprobsFromHiddenBackward({
      ...forwardArgs(c),
      ...up,
      entropy: f.entropy,
      gradWeight: acc,
      accumulate: true,
    });
    scaleClose(
      acc,
      Float64Array.from(start, (x, k) => x + fresh.gradWeight[k]),
      1e-6,
      'accumulated dL/dweight',
    );
    // the backward recomputes H when it is not given (or given as the forward's flag)
    for (const entropy of [undefined, true]) {
      const rec = tokenLogprobsFromHiddenBackward({ ...forwardArgs(c), ...up, entropy });
      scaleClose(rec.gradHidden, fresh.gradHidden, 1e-6, 'dL/dhidden with H recomputed');
      scaleClose(rec.gradWeight, fresh.gradWeight, 1e-6, 'dL/dweight with H recomputed');
    }
    // an entropy bonus alone: gl = 0 everywhere
    const zero = new Float32Array(c.rows);
    const onlyH = tokenLogprobsFromHiddenBackward({
      ...forwardArgs(c),
      ...up,
      gradTokenLogprobs: zero,
      entropy: f.entropy,
    });
    const want = reference({ ...c, gradTokenLogprobs: zero });
    gradsClose(
      c,
      onlyH,
      want,
      want as { logZ: ArrayLike<number>; entropy: ArrayLike<number> },
      zero,
      c.gradEntropy,
      1e-4,
      'H alone:',
    );
  });

  it('an upstream near float32 max at tau < 1 (g / tau past its range): the reference gradients, not NaN', () => {
    const c = draw(77, 12, 20, 200, 'float32', 0.5);
    // small hidden states and weights, so that both gradients fit float32 at these coefficients
    for (const x of [c.hidden as Float32Array, c.weight as Float32Array]) x.forEach((v, k) => (x[k] = v * 1e-3));
    const r = rng(78);
    for (const g of [c.gradTokenLogprobs, c.gradEntropy])
      g.forEach((v, k) => (g[k] = Number.isNaN(v) ? v : (r() < 0.5 ? -1 : 1) * (1e37 + r() * 3e38)));
    const want = reference(c);
    const { g } = forwardBackward(c);
    expect(Math.max(...Array.from(want.gradHidden, Math.abs))).toBeGreaterThan(1e30);
    caseGradsClose(c, g, want, 'g / tau beyond float32:');
  });

  it('the async twins match the sync calls; results do not depend on the thread count', async () => {
    const c = draw(31, 300, 64, 700, 'float32', 1);
    const s = tokenLogprobsFromHidden({ ...forwardArgs(c), entropy: true, threads: 1 });
    const t = await tokenLogprobsFromHiddenAsync({ ...forwardArgs(c), entropy: true, threads: 3 });
    expect(same(s.logprobs, t.logprobs) && same(s.entropy!, t.entropy!) && same(s.logZ, t.logZ)).toBe(true);
    const up = { logZ: s.logZ, entropy: s.entropy, gradTokenLogprobs: c.gradTokenLogprobs, gradEntropy: c.gradEntropy };
    const gs = tokenLogprobsFromHiddenBackward({ ...forwardArgs(c), ...up, threads: 1 });
    const ga = await tokenLogprobsFromHiddenBackwardAsync({ ...forwardArgs(c), ...up, threads: 3 });
    expect(same(gs.gradHidden, ga.gradHidden) && same(gs.gradWeight, ga.gradWeight)).toBe(true);
  });

  it('a NaN hidden state on a live row gives that row NaN l and H, reported; a NaN upstream a NaN gradient row', () => {
    const c = draw(3, 5, 6, 20, 'float32', 1, false);
    (c.hidden as Float32Array)[2 * 6 + 1] = NaN;
    const f = tokenLogprobsFromHidden({ ...forwardArgs(c), entropy: true });
    expect(f.nonFiniteRows).toBe(1);
    expect(Number.isNaN(f.logprobs[2]) && Number.isNaN(f.entropy![2])).toBe(true);
    expect(Number.isFinite(f.logprobs[0]) && Number.isFinite(f.entropy![0])).toBe(true);
    const gl = Float32Array.from(c.gradTokenLogprobs, (x, r) => (r === 2 ? 0 : r === 4 ? NaN : x || 1));
    const g = tokenLogprobsFromHiddenBackward({ ...forwardArgs(c), logZ: f.logZ, gradTokenLogprobs: gl });
    expect(g.gradHidden.subarray(4 * 6, 5 * 6).every(Number.isNaN)).toBe(true);
    expect(g.gradHidden.subarray(0, 6).every(Number.isFinite)).toBe(true);
  });

  it('a target on a -inf logit gives l = -inf (as tokenLogprobs), not a NaN row; H <= log V in float32', () => {
    // z = hidden * weight = [0, -inf, 1] in each row; row 0's target is the -inf logit
    const args = {
      hidden: Float32Array.from([1, 1]),
      weight: Float32Array.from([0, -Infinity, 1]),
      targets: Int32Array.from([1, 2]),
      rows: 2,
      hiddenSize: 1,
      vocab: 3,
    };
    const logits = Float32Array.from([0, -Infinity, 1, 0, -Infinity, 1]);
    const want = tokenLogprobs({ logits, targets: args.targets, rows: 2, vocab: 3 });
    for (const f of [
      tokenLogprobsFromHidden({ ...args, entropy: true }),
      tokenLogprobsFromHiddenRef({ ...args, dtype: 'float32', temperature: 1, entropy: true }),
    ]) {
      expect(f.logprobs[0]).toBe(-Infinity);
      expect(want.logprobs[0]).toBe(-Infinity);
      expect(f.nonFiniteRows).toBe(0);
      expect(f.logprobs[1]).toBeCloseTo(want.logprobs[1], 6);
      expect(Number.isFinite(f.logZ[0]) && Number.isFinite(f.entropy![0])).toBe(true);
    }
    // a uniform row has H = log V exactly; float32 rounding to nearest would land above it for
    // most V, so the bound is rounded down
    for (const V of [2, 3, 5, 6, 7, 10, 11, 13, 50, 1000, 50000]) {
      const row = {
        ...args,
        weight: new Float32Array(V).fill(0.25),
        targets: Int32Array.from([0, 1]),
        vocab: V,
        entropy: true,
      };
      for (const f of [
        tokenLogprobsFromHidden(row),
        tokenLogprobsFromHiddenRef({ ...row, dtype: 'float32', temperature: 1 }),
      ]) {
        expect(f.entropy![0]).toBeLessThanOrEqual(Math.log(V));
        expect(Math.log(V) - f.entropy![0]).toBeLessThan(Math.log(V) * 2 ** -22);
      }
    }
  });

  it('refuses bad input with the argument named, before any work', async () => {
    const c = draw(1, 4, 3, 6, 'float32', 1, false);
    const a = forwardArgs(c);
    expect(() => tokenLogprobsFromHidden({ ...a, entropi: true } as TokenLogprobsFromHiddenArgs)).toThrow(
      /did you mean 'entropy'/,
    );
    expect(() => tokenLogprobsFromHidden({ ...a, entropy: 1 as unknown as boolean })).toThrow(TypeError);
    const f = tokenLogprobsFromHidden(a);
    const b = { ...a, logZ: f.logZ, gradTokenLogprobs: c.gradTokenLogprobs };
    expect(() => tokenLogprobsFromHiddenBackward({ ...b, accumulate: true })).toThrow(RangeError);
    expect(() => tokenLogprobsFromHiddenBackward({ ...b, gradWeight: new Float32Array(17) })).toThrow(
      /gradWeight must be of length vocab\*hiddenSize = 18/,
    );
    await expect(tokenLogprobsFromHiddenBackwardAsync({ ...b, gradEntropy: new Float32Array(3) })).rejects.toThrow(
      RangeError,
    );
  });

  it('runs on the backend it reports', () => {
    expect(['cuda', 'cpu', 'js']).toContain(backendInfo().active);
  });
});

describe('the head beside a huge max/tau', () => {
  // two vocabulary rows alike (tied logits, exact in float32): l = -log 2 however close to 0
  // the temperature; logZ's parts are kept apart, as in tokenLogprobs
  const w0 = [1, 0.5, 1.5, -0.25];
  const hidden = Float32Array.from([0.5, -1.25, 2, 0.75]);
  const weight = Float32Array.from([...w0, ...w0, 0, 0, 0, 0]); // z = [2.6875, 2.6875, 0]
  for (const tau of [1e-12, 1e-30]) {
    it(`tau ${tau}: l = -log 2 and H = log 2, from the reference and the active backend, and S in gvpoFromHidden`, () => {
      const a = { hidden, weight, targets: Int32Array.from([0]), rows: 1, hiddenSize: 4, vocab: 3, temperature: tau };
      const ref = tokenLogprobsFromHiddenF64({ ...a, dtype: 'float32' }, true);
      expect(ref.logprobs[0]).toBeCloseTo(-Math.LN2, 12);
      expect(ref.entropy![0]).toBeCloseTo(Math.LN2, 12);
      const got = tokenLogprobsFromHidden({ ...a, entropy: true });
      expect(got.logprobs[0]).toBeCloseTo(-Math.LN2, 6);
      expect(got.entropy![0]).toBeCloseTo(Math.LN2, 6);
      const h = gvpoFromHidden({
        hidden: Float32Array.from([...hidden, ...hidden]),
        weight,
        targets: Int32Array.from([0, 1]),
        mask: Float32Array.from([1, 1]),
        sequences: 2,
        tokens: 1,
        hiddenSize: 4,
        vocab: 3,
        temperature: tau,
        rewards: [1, 0],
        groups: { size: 2 },
        beta: 1,
        referenceLogprobs: [0, 0],
      });
      expect(h.policyLogprobs[0]).toBeCloseTo(-Math.LN2, 6);
      expect(h.policyLogprobs[1]).toBeCloseTo(-Math.LN2, 6);
    });
  }
});

describe('accumulate at a huge coefficient', () => {
  it("keeps the caller's small dL/dweight entries (they were scaled down by 2^-e and flushed)", () => {
    const H = 2,
      V = 3;
    const a = {
      hidden: Float32Array.from([1, 0]),
      weight: Float32Array.from([1, 0, 0.5, 0, 0, 0]),
      targets: Int32Array.from([0]),
      rows: 1,
      hiddenSize: H,
      vocab: V,
      temperature: 1e-30,
    };
    const f = tokenLogprobsFromHidden(a);
    for (const g of [1e30, 1e10]) {
      const acc = new Float32Array(6).fill(1e-36);
      acc[1] = 3e-30;
      acc[3] = 1e-20;
      const out = tokenLogprobsFromHiddenBackward({
        ...a,
        logZ: f.logZ,
        gradTokenLogprobs: Float32Array.from([g]),
        gradWeight: acc,
        accumulate: true,
      }).gradWeight;
      // hidden's column 1 is 0: those entries get nothing added
      expect([out[1], out[3], out[5]]).toEqual([Math.fround(3e-30), Math.fround(1e-20), Math.fround(1e-36)]);
    }
  });
});
