// Reference token log-probs: plain float64 loops, the oracle for every native path.
//   logZ[r] = logsumexp_v z[r,v]/tau,  l[r] = z[r,y[r]]/tau - logZ[r] <= 0
//   backward: grad[r,v] = g[r]/tau * ([v == y[r]] - exp(z[r,v]/tau - logZ[r]))
// Masked rows are never read: l = 0, logZ = 0, gradient 0. With V = 1, l = 0 and the gradient is
// 0 exactly. A row whose logZ is not finite in float32 (a NaN or +inf logit, every logit -inf, or
// z/tau past float32's range) gives l = NaN and is counted in nonFiniteRows, as the kernels do.
// Targets are checked by the callers; one out of range here gives a NaN row.
import type { RowsOpts } from '../checked.js';
import { finite32, reader } from './dtype.js';

export interface TokenLogprobsF64 {
  logprobs: Float64Array;
  logZ: Float64Array;
  nonFiniteRows: number;
}

export function tokenLogprobsF64(o: RowsOpts): TokenLogprobsF64 {
  const { rows, vocab: V, targets, mask } = o;
  const z = reader(o.logits, o.dtype);
  const invTau = 1 / o.temperature;
  const logprobs = new Float64Array(rows);
  const logZ = new Float64Array(rows);
  let nonFiniteRows = 0;
  for (let r = 0; r < rows; r++) {
    if (mask && mask[r] === 0) continue; // masked: 0, 0 and no exp
    const base = r * V;
    let m = -Infinity;
    let nan = false;
    for (let v = 0; v < V; v++) {
      const x = z(base + v) * invTau;
      if (x > m) m = x;
      else if (Number.isNaN(x)) nan = true;
    }
    let lz: number;
    if (nan || m === Infinity) lz = NaN;
    else if (m === -Infinity)
      lz = m; // all -inf
    else {
      let s = 0;
      for (let v = 0; v < V; v++) s += Math.exp(z(base + v) * invTau - m);
      lz = m + Math.log(s);
    }
    logZ[r] = lz;
    const y = targets[r];
    // logZ is returned in float32: one past float32's range (z/tau near 3e38) is not finite there
    if (finite32(lz) && y >= 0 && y < V) {
      logprobs[r] = V === 1 ? 0 : Math.min(z(base + y) * invTau - lz, 0);
    } else {
      logprobs[r] = NaN;
      nonFiniteRows++;
    }
  }
  return { logprobs, logZ, nonFiniteRows };
}

/**
 * Writes grad[r,v] for live rows with g[r] != 0 (zeros elsewhere) into `out`, which may be the
 * float32 logits themselves: each element is read before it is written.
 */
export function tokenLogprobsBackwardInto(
  out: Float32Array | Float64Array,
  o: RowsOpts,
  logZ: ArrayLike<number>,
  g: ArrayLike<number>,
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
    const lz = logZ[r];
    const zy = z(base + targets[r]); // read before out (which may be the logits) is written
    // p <= 1 whatever the rounding of lz (NaN stays NaN)
    for (let v = 0; v < V; v++) out[base + v] = -c * Math.exp(Math.min(0, z(base + v) * invTau - lz));
    // the target's c (1 - p) in one rounding: from a stored -c p the sum would cancel (p near 1)
    // or keep an overflowed -inf (c beyond float32's range)
    out[base + targets[r]] = -c * Math.expm1(Math.min(0, zy * invTau - lz));
  }
}
