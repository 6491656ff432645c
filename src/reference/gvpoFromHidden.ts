// Reference fused LM head, float64 throughout: the fallback and the oracle of the native kernel.
//   z[r,v] = sum_h hidden[r,h] * weight[v,h]            (one row of V at a time, never N*T*V)
//   then the math of gvpoFromLogits, and
//   dL/dhidden[r,:] = sum_v dz[r,v] * weight[v,:]      dL/dweight[v,:] = sum_r dz[r,v] * hidden[r,:]
//   with dz[r,v] = m[r] dL/dS[n(r)] / tau ([v == y] - softmax(z[r,:]/tau)[v]).
// Masked rows are never read; l <= 0, and l = 0 with no gradient when V = 1.
import type { FromHiddenOpts, HiddenBackwardOpts, HiddenBatchOpts } from '../checked.js';
import type { GvpoFromHiddenForwardResult, GvpoFromHiddenGrads, GvpoFromHiddenResult } from '../types.js';
import { reader } from './dtype.js';
import { gvpoLossRef } from './gvpoLoss.js';
import { sequenceLogprobsRef } from './sequenceLogprobs.js';

/** The head as float64 matrices, and the logits of row r into z (length V). */
function head(o: HiddenBatchOpts) {
  const H = o.hiddenSize, V = o.vocab;
  const hid = reader(o.hidden, o.dtype), wr = reader(o.weight, o.dtype);
  const hidden = new Float64Array(o.rows * H), weight = new Float64Array(V * H);
  for (let i = 0; i < hidden.length; i++) hidden[i] = hid(i);
  for (let i = 0; i < weight.length; i++) weight[i] = wr(i);
  const invTau = 1 / o.temperature;
  const logits = (r: number, z: Float64Array) => {
    for (let v = 0; v < V; v++) {
      let s = 0;
      for (let h = 0; h < H; h++) s += hidden[r * H + h] * weight[v * H + h];
      z[v] = s * invTau;
    }
  };
  return { hidden, weight, logits };
}

function logsumexp(z: Float64Array): number {
  let m = -Infinity;
  for (const x of z) {
    if (Number.isNaN(x)) return NaN;
    if (x > m) m = x;
  }
  if (m === -Infinity || m === Infinity) return m;
  let s = 0;
  for (const x of z) s += Math.exp(x - m);
  return m + Math.log(s);
}

export function gvpoFromHiddenForwardF64(o: HiddenBatchOpts) {
  const { logits } = head(o);
  const z = new Float64Array(o.vocab);
  const logprobs = new Float64Array(o.rows), logZ = new Float64Array(o.rows);
  let nonFiniteRows = 0;
  for (let r = 0; r < o.rows; r++) {
    if (o.mask[r] === 0) continue;
    logits(r, z);
    const lz = logsumexp(z);
    logZ[r] = lz;
    const y = o.targets[r];
    if (Number.isFinite(lz) && y >= 0 && y < o.vocab) logprobs[r] = o.vocab === 1 ? 0 : Math.min(z[y] - lz, 0);
    else {
      logprobs[r] = NaN;
      nonFiniteRows++;
    }
  }
  const S = sequenceLogprobsRef(logprobs, o.mask, o.sequences, o.tokens);
  const Sref = o.referenceTokenLogprobs
    ? sequenceLogprobsRef(o.referenceTokenLogprobs, o.mask, o.sequences, o.tokens)
    : o.referenceLogprobs
      ? Float64Array.from(o.referenceLogprobs)
      : Float64Array.from(S); // no reference given: pi_theta' is the current policy
  return { logprobs, logZ, nonFiniteRows, S, Sref };
}

export function gvpoFromHiddenForwardRef(o: HiddenBatchOpts): GvpoFromHiddenForwardResult {
  const f = gvpoFromHiddenForwardF64(o);
  return {
    policyLogprobs: f.S,
    referenceLogprobs: f.Sref,
    tokenLogprobs: Float32Array.from(f.logprobs),
    logZ: Float32Array.from(f.logZ),
    nonFiniteRows: f.nonFiniteRows,
  };
}

/** dL/dhidden and dL/dweight into o.gradHidden / o.gradWeight, from dL/dS and logZ. */
function backwardInto(o: HiddenBatchOpts & GvpoFromHiddenGrads, logZ: ArrayLike<number>, gradSeq: ArrayLike<number>) {
  const H = o.hiddenSize, V = o.vocab, invTau = 1 / o.temperature;
  const { hidden, weight, logits } = head(o);
  const dH = new Float64Array(o.rows * H), dW = new Float64Array(V * H);
  const z = new Float64Array(V);
  for (let r = 0; r < o.rows && V > 1; r++) {
    const g = o.mask[r] === 0 ? 0 : o.mask[r] * gradSeq[Math.floor(r / o.tokens)];
    if (g === 0) continue;
    const y = o.targets[r], lz = logZ[r];
    const bad = !Number.isFinite(lz) || y < 0 || y >= V;
    logits(r, z);
    for (let v = 0; v < V; v++) {
      const dz = bad ? NaN : g * invTau * ((v === y ? 1 : 0) - Math.exp(Math.min(0, z[v] - lz))); // p <= 1 whatever the rounding of lz
      for (let h = 0; h < H; h++) {
        dH[r * H + h] += dz * weight[v * H + h];
        dW[v * H + h] += dz * hidden[r * H + h];
      }
    }
  }
  o.gradHidden.set(dH);
  o.gradWeight.set(dW);
  return { gradHidden: o.gradHidden, gradWeight: o.gradWeight };
}

export function gvpoFromHiddenBackwardRef(o: HiddenBackwardOpts): GvpoFromHiddenGrads {
  return backwardInto(o, o.logZ, o.gradLogprobs);
}

export function gvpoFromHiddenRef(o: FromHiddenOpts): GvpoFromHiddenResult {
  const f = gvpoFromHiddenForwardF64(o);
  const loss = gvpoLossRef(f.S, f.Sref, o.rewards, o.offsets, o.beta, o.reduction);
  const g = backwardInto(o, f.logZ, loss.gradLogprobs);
  return {
    ...loss,
    ...g,
    policyLogprobs: f.S,
    referenceLogprobs: f.Sref,
    tokenLogprobs: Float32Array.from(f.logprobs),
    logZ: Float32Array.from(f.logZ),
    nonFiniteRows: f.nonFiniteRows,
  };
}
