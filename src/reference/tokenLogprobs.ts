// Reference token log-probs: plain float64 loops, the oracle for every native path.
//   logZ[r] = logsumexp_v z[r,v]/tau,  l[r] = z[r,y[r]]/tau - logZ[r] <= 0
//   backward: grad[r,v] = g[r]/tau * ([v == y[r]] - exp(z[r,v]/tau - logZ[r]))
// Each row is kept as its max m (in the logits' units) and lse = log sum_v exp((z[v] - m)/tau),
// logZ = m/tau + lse, and l = (z[y] - m)/tau - lse: lse (at most log V) is not lost next to a
// huge m/tau (tau near 0, logits near 3e38), where z[y]/tau - logZ would keep only m's bits. The
// fused backward takes the same split; the two-phase backward has only the caller's logZ.
// Masked rows are never read: l = 0, logZ = 0, gradient 0. With V = 1, l = 0 and the gradient is
// 0 exactly. A row whose logZ is not finite in float32 (a NaN or +inf logit, every logit -inf, or
// z/tau past float32's range) gives l = NaN and is counted in nonFiniteRows, as the kernels do.
// Targets are checked by the callers; one out of range here gives a NaN row.
import type { RowsOpts } from '../checked.js';
import { finite32, reader } from './dtype.js';

export interface TokenLogprobsF64 {
  logprobs: Float64Array;
  logZ: Float64Array;
  /** Each row's split: its max logit and log sum exp((z - max)/tau) (0 and logZ when masked). */
  rowMax: Float64Array;
  lse: Float64Array;
  nonFiniteRows: number;
}

// d / tau where d = 0 gives 0 even when 1/tau overflowed (tau below 5.6e-309).
export function scaled(d: number, invTau: number): number {
  return d === 0 ? 0 : d * invTau;
}

export function tokenLogprobsF64(o: RowsOpts): TokenLogprobsF64 {
  const { rows, vocab: V, targets, mask } = o;
  const z = reader(o.logits, o.dtype);
  const invTau = 1 / o.temperature;
  const logprobs = new Float64Array(rows);
  const logZ = new Float64Array(rows);
  const rowMax = new Float64Array(rows);
  const lse = new Float64Array(rows);
  let nonFiniteRows = 0;
  for (let r = 0; r < rows; r++) {
    if (mask && mask[r] === 0) continue; // masked: 0, 0 and no exp
    const base = r * V;
    let m = -Infinity;
    let nan = false;
    for (let v = 0; v < V; v++) {
      const x = z(base + v);
      if (x > m) m = x;
      else if (Number.isNaN(x)) nan = true;
    }
    let ls: number;
    if (nan || m === Infinity) ls = NaN;
    else if (m === -Infinity)
      ls = m; // all -inf
    else {
      // log(n + rest) with n >= 1 the elements equal to m (terms of exactly 1) kept apart: for a
      // dominant token rest is far below double's ulp of 1, and 1 - p = rest / (n + rest)
      let rest = 0,
        n = 0;
      for (let v = 0; v < V; v++) {
        const x = z(base + v);
        if (x === m) n++;
        else rest += Math.exp(scaled(x - m, invTau));
      }
      ls = Math.log1p(rest + (n - 1));
    }
    const lz = m === -Infinity ? ls : scaled(m, invTau) + ls;
    rowMax[r] = m;
    lse[r] = ls;
    logZ[r] = lz;
    const y = targets[r];
    // logZ is returned in float32: one past float32's range (z/tau near 3e38) is not finite there
    if (finite32(lz) && y >= 0 && y < V) {
      logprobs[r] = V === 1 ? 0 : Math.min(scaled(z(base + y) - m, invTau) - ls, 0);
    } else {
      logprobs[r] = NaN;
      nonFiniteRows++;
    }
  }
  return { logprobs, logZ, rowMax, lse, nonFiniteRows };
}

/**
 * Writes grad[r,v] for live rows with g[r] != 0 (zeros elsewhere) into `out`, which may be the
 * float32 logits themselves: each element is read before it is written. p = exp(z/tau - logZ),
 * or, given a row's split (the fused op's own forward), exp((z - max)/tau - lse).
 */
export function tokenLogprobsBackwardInto(
  out: Float32Array | Float64Array,
  o: RowsOpts,
  logZ: ArrayLike<number>,
  g: ArrayLike<number>,
  split?: { rowMax: ArrayLike<number>; lse: ArrayLike<number> },
): void {
  const { rows, vocab: V, targets, mask } = o;
  const z = reader(o.logits, o.dtype);
  const invTau = 1 / o.temperature;
  for (let r = 0; r < rows; r++) {
    const base = r * V;
    const gr = g[r];
    if (gr === 0 || (mask && mask[r] === 0) || V === 1) {
      out.fill(0, base, base + V);
      continue;
    }
    if (!Number.isFinite(logZ[r]) || !Number.isFinite(gr) || !(targets[r] >= 0 && targets[r] < V)) {
      out.fill(NaN, base, base + V);
      continue;
    }
    const c = gr * invTau;
    const m = split ? split.rowMax[r] : 0;
    const ls = split ? split.lse[r] : logZ[r];
    const x = (zv: number) => Math.min(0, scaled(zv - m, invTau) - ls); // <= 0 whatever the rounding (NaN stays NaN)
    const zy = z(base + targets[r]); // read before out (which may be the logits) is written
    for (let v = 0; v < V; v++) out[base + v] = -c * Math.exp(x(z(base + v)));
    // the target's c (1 - p) in one rounding: from a stored -c p the sum would cancel (p near 1)
    // or keep an overflowed -inf (c beyond float32's range)
    out[base + targets[r]] = -c * Math.expm1(x(zy));
  }
}
