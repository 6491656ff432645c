// Reference GVPO loss (docs/DESIGN.md, "The math"), from the definition:
//   r = beta (S - Sref);  c = (r - mean_g r) - (R - mean_g R)
//   L = sum_g 1/(k_g-1) sum c^2/2;  dL/dS = beta c/(k_g-1);  'mean' divides by #groups with k>=2
// and the paper's three-term reading with a = R - mean R, p = S - mean S, q = Sref - mean Sref.
import type { GvpoLossResult } from '../types.js';
import { groupCenterRef } from './groupCenter.js';

export function gvpoLossRef(
  S: Float64Array,
  Sref: Float64Array,
  R: Float64Array,
  offsets: Int32Array,
  beta: number,
  reduction: 'mean' | 'sum',
): GvpoLossResult {
  const N = S.length;
  const a = groupCenterRef(R, offsets).centered;
  const p = groupCenterRef(S, offsets).centered;
  const q = groupCenterRef(Sref, offsets).centered;
  const gradLogprobs = new Float64Array(N);
  const residuals = new Float64Array(N);
  const t = { loss: 0, advantage: 0, trustRegion: 0, variance: 0, constant: 0 };
  let live = 0;
  for (let g = 0; g + 1 < offsets.length; g++) {
    const k = offsets[g + 1] - offsets[g];
    if (k < 2) continue; // contributes 0; residuals and gradients stay 0
    live++;
    const inv = 1 / (k - 1);
    for (let n = offsets[g]; n < offsets[g + 1]; n++) {
      const c = beta * (p[n] - q[n]) - a[n];
      residuals[n] = c;
      gradLogprobs[n] = beta * c * inv;
      t.loss += 0.5 * inv * c * c;
      t.advantage += -beta * inv * a[n] * p[n];
      t.trustRegion += -beta * beta * inv * p[n] * q[n];
      t.variance += 0.5 * beta * beta * inv * p[n] * p[n];
      t.constant += 0.5 * inv * (a[n] + beta * q[n]) ** 2;
    }
  }
  const s = reduction === 'mean' && live > 0 ? 1 / live : 1;
  if (s !== 1) for (let n = 0; n < N; n++) gradLogprobs[n] *= s;
  return {
    loss: t.loss * s,
    gradLogprobs,
    residuals,
    terms: {
      advantage: t.advantage * s,
      trustRegion: t.trustRegion * s,
      variance: t.variance * s,
      constant: t.constant * s,
    },
  };
}
