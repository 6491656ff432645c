// Reference fused LM head, float64 throughout: the fallback and the oracle of the native engine
// (and the head gvpoFromHidden's reference runs through). With z = hidden * weight^T one row at
// a time (never rows*V), x = z / tau and p = softmax(x[r,:]):
//   l[r] = x[r,y] - logZ[r] <= 0        H[r] = -sum_v p log p  in [0, log V]
// logZ is held as the row's max z and lse = log sum_v exp((z_v - max) / tau) (tokenLogprobs'
// reference says why), and every exponent is taken as (z - max) / tau - lse.
//   dz[r,v] = (gl[r] ([v == y] - p) - gH[r] p (log p + H[r])) / tau
//   dL/dhidden[r,:] = sum_v dz[r,v] weight[v,:]      dL/dweight[v,:] (=|+=) sum_r dz[r,v] hidden[r,:]
// Masked rows (mask == 0) are never read: l = logZ = H = 0, no gradient. V = 1: l = H = 0, no
// gradient. A live row whose logZ is not finite gets l = H = NaN; one whose target lies outside
// [0, V) (the callers refuse that first) gets l = NaN and a NaN gradient row.
import type { HiddenRowsBackwardOpts, HiddenRowsOpts } from '../checked.js';
import type { TokenLogprobsFromHiddenGrads, TokenLogprobsFromHiddenResult } from '../types.js';
import { finite32, float32Below, reader } from './dtype.js';
import { scaled } from './tokenLogprobs.js';

/** What the head reads, whichever op calls it (gvpoFromHidden's batches hold these fields too). */
export type HeadOpts = Pick<
  HiddenRowsOpts,
  'hidden' | 'weight' | 'dtype' | 'targets' | 'mask' | 'rows' | 'hiddenSize' | 'vocab' | 'temperature'
>;

/** The head as float64 matrices, and the logits z of row r into z (length V). */
function head(o: HeadOpts) {
  const H = o.hiddenSize,
    V = o.vocab;
  const hid = reader(o.hidden, o.dtype),
    wr = reader(o.weight, o.dtype);
  const hidden = new Float64Array(o.rows * H),
    weight = new Float64Array(V * H);
  for (let i = 0; i < hidden.length; i++) hidden[i] = hid(i);
  for (let i = 0; i < weight.length; i++) weight[i] = wr(i);
  const logits = (r: number, z: Float64Array) => {
    for (let v = 0; v < V; v++) {
      let s = 0;
      for (let h = 0; h < H; h++) s += hidden[r * H + h] * weight[v * H + h];
      z[v] = s;
    }
  };
  return { hidden, weight, logits };
}

/** A row's log-normalizer in parts: logZ = max / tau + lse; the exponent of p_v is u(z_v). */
interface RowLogZ {
  logZ: number;
  max: number;
  lse: number;
  u: (z: number) => number;
}

function rowLogZ(z: Float64Array, invTau: number): RowLogZ {
  let m = -Infinity,
    nan = false;
  for (const v of z) {
    if (Number.isNaN(v)) nan = true;
    else if (v > m) m = v;
  }
  const u = (v: number) => scaled(v - m, invTau) - lse;
  let lse: number;
  if (nan || m === Infinity)
    lse = NaN; // as the kernels: a +inf logit gives a NaN row
  else if (m === -Infinity) lse = m;
  else {
    let rest = 0,
      n = 0; // as tokenLogprobs' reference: the max's terms apart from the rest
    for (const v of z) {
      if (v === m) n++;
      else rest += Math.exp(scaled(v - m, invTau));
    }
    lse = Math.log1p(rest + (n - 1));
  }
  const logZ = m === -Infinity || Number.isNaN(lse) ? lse : scaled(m, invTau) + lse;
  return { logZ, max: m, lse, u };
}

/** -sum p log p of softmax(z / tau), clamped to [0, log V] (rounding), NaN when logZ is not finite. */
function entropyOf(z: Float64Array, st: RowLogZ): number {
  if (!finite32(st.logZ)) return NaN;
  let h = 0;
  for (const v of z) {
    const u = st.u(v);
    if (u > -Infinity) h -= Math.exp(u) * u;
  }
  return Math.min(Math.max(h, 0), Math.log(z.length));
}

export interface HeadF64 {
  logprobs: Float64Array;
  logZ: Float64Array;
  /** Each live row's split (logZ's parts), for the fused op's backward. */
  rowMax: Float64Array;
  lse: Float64Array;
  entropy?: Float64Array;
  nonFiniteRows: number;
}

export function tokenLogprobsFromHiddenF64(o: HeadOpts, withEntropy: boolean): HeadF64 {
  const { logits } = head(o);
  const V = o.vocab,
    invTau = 1 / o.temperature;
  const x = new Float64Array(V);
  const logprobs = new Float64Array(o.rows),
    logZ = new Float64Array(o.rows),
    rowMax = new Float64Array(o.rows),
    lse = new Float64Array(o.rows);
  const entropy = withEntropy ? new Float64Array(o.rows) : undefined;
  let nonFiniteRows = 0;
  for (let r = 0; r < o.rows; r++) {
    if (o.mask && o.mask[r] === 0) continue;
    logits(r, x);
    const st = rowLogZ(x, invTau);
    const lz = st.logZ;
    logZ[r] = lz;
    rowMax[r] = st.max;
    lse[r] = st.lse;
    if (entropy) entropy[r] = V === 1 && finite32(lz) ? 0 : entropyOf(x, st);
    const y = o.targets[r];
    if (finite32(lz) && y >= 0 && y < V) logprobs[r] = V === 1 ? 0 : Math.min(st.u(x[y]), 0);
    else {
      logprobs[r] = NaN;
      nonFiniteRows++;
    }
  }
  return { logprobs, logZ, rowMax, lse, entropy, nonFiniteRows };
}

/** The result, with each row's parts of logZ (rowMax, rowLse) for the backward. */
export function tokenLogprobsFromHiddenRef(
  o: HiddenRowsOpts,
): TokenLogprobsFromHiddenResult & { rowMax: Float64Array; rowLse: Float64Array } {
  const f = tokenLogprobsFromHiddenF64(o, o.entropy);
  const r: TokenLogprobsFromHiddenResult & { rowMax: Float64Array; rowLse: Float64Array } = {
    logprobs: Float32Array.from(f.logprobs),
    logZ: Float32Array.from(f.logZ),
    nonFiniteRows: f.nonFiniteRows,
    rowMax: f.rowMax,
    rowLse: f.lse,
  };
  if (f.entropy) {
    const most = float32Below(Math.log(o.vocab)); // H <= log V in float32 too
    r.entropy = Float32Array.from(f.entropy, (h) => Math.min(Math.fround(h), most));
  }
  return r;
}

/** The upstream gradients and the forward's statistics the backward reads (gl, gh, entropy may be
 *  absent: 0, 0, recomputed where gh is non-zero; split, the forward's own parts of logZ, absent
 *  when only a caller's logZ is known). */
export interface HeadUpstream {
  logZ: ArrayLike<number>;
  split?: { rowMax: ArrayLike<number>; lse: ArrayLike<number> };
  entropy?: ArrayLike<number>;
  gradLogprobs?: ArrayLike<number>;
  gradEntropy?: ArrayLike<number>;
}

/** dL/dhidden into gradHidden (overwritten) and dL/dweight into gradWeight (overwritten, or added
 *  to with accumulate). */
export function tokenLogprobsFromHiddenBackwardInto(
  o: HeadOpts,
  up: HeadUpstream,
  grads: TokenLogprobsFromHiddenGrads,
  accumulate: boolean,
): TokenLogprobsFromHiddenGrads {
  const H = o.hiddenSize,
    V = o.vocab,
    invTau = 1 / o.temperature;
  const { hidden, weight, logits } = head(o);
  const dH = new Float64Array(o.rows * H),
    dW = accumulate ? Float64Array.from(grads.gradWeight) : new Float64Array(V * H);
  const x = new Float64Array(V);
  for (let r = 0; r < o.rows && V > 1; r++) {
    if (o.mask && o.mask[r] === 0) continue;
    const gl = up.gradLogprobs ? up.gradLogprobs[r] : 0,
      gh = up.gradEntropy ? up.gradEntropy[r] : 0;
    if (gl === 0 && gh === 0) continue;
    const y = o.targets[r],
      lz = up.logZ[r];
    const bad = !Number.isFinite(lz) || y < 0 || y >= V;
    logits(r, x);
    // H from the forward, or from these logits (against their own logZ, as a forward pass would)
    const ent = gh === 0 ? 0 : up.entropy ? up.entropy[r] : entropyOf(x, rowLogZ(x, invTau));
    const m = up.split ? up.split.rowMax[r] : 0,
      ls = up.split ? up.split.lse[r] : lz;
    for (let v = 0; v < V; v++) {
      const u = Math.min(0, scaled(x[v] - m, invTau) - ls),
        p = Math.exp(u); // p <= 1 whatever the rounding of lz
      const entTerm = gh === 0 || p === 0 ? 0 : gh * p * (u + ent);
      // the target's 1 - p from expm1: 1 - p cancels where p is near 1 (a dominant target)
      const dz = bad ? NaN : (gl * (v === y ? -Math.expm1(u) : -p) - entTerm) * invTau;
      for (let h = 0; h < H; h++) {
        dH[r * H + h] += dz * weight[v * H + h];
        dW[v * H + h] += dz * hidden[r * H + h];
      }
    }
  }
  grads.gradHidden.set(dH);
  grads.gradWeight.set(dW);
  return grads;
}

/** The backward from logZ or, given them, from the forward's parts of it. */
export function tokenLogprobsFromHiddenBackwardRef(
  o: HiddenRowsBackwardOpts,
  parts?: { rowMax: ArrayLike<number>; rowLse: ArrayLike<number> },
): TokenLogprobsFromHiddenGrads {
  return tokenLogprobsFromHiddenBackwardInto(
    o,
    {
      logZ: o.logZ,
      split: parts && { rowMax: parts.rowMax, lse: parts.rowLse },
      entropy: o.entropy,
      gradLogprobs: o.gradTokenLogprobs,
      gradEntropy: o.gradEntropy,
    },
    { gradHidden: o.gradHidden, gradWeight: o.gradWeight },
    o.accumulate,
  );
}
