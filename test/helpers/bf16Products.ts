// The fused head's bfloat16 products (the avx512bf16 level: vdpbf16ps for bfloat16 hidden states
// and weights): the logits and everything of the forward are exact products accumulated in
// float32, but dZ is rounded to bfloat16 where it meets the inputs, so each gradient element may
// be off by 2^-9 of its sum of |products| (allowed: 2^-8) on top of float32's tolerance.
import { backendInfo } from '../../src/index.js';
import { decodeHalf } from '../../src/reference/dtype.js';
import type { DType, NumbersLike } from '../../src/types.js';

/** Whether this process multiplies bfloat16 head inputs in bfloat16. */
export const bf16Products = (dtype: DType | undefined): boolean =>
  dtype === 'bfloat16' && backendInfo().simd === 'avx512bf16';

export interface HeadCase {
  hidden: Float32Array | Uint16Array;
  weight: Float32Array | Uint16Array;
  dtype?: DType;
  targets: Int32Array;
  mask: NumbersLike;
  tokens: number;
  hiddenSize: number;
  vocab: number;
  temperature?: number;
}

/** The float64 sums of |dZ[r,v] W[v,h]| (per dL/dhidden element) and |dZ[r,v] hidden[r,h]| (per
 *  dL/dweight element), dZ = m dL/dS / tau (onehot - softmax) from a reference's logZ and dL/dS. */
export function productSums(
  a: HeadCase,
  logZ: ArrayLike<number>,
  gradLogprobs: ArrayLike<number>,
): { aH: Float64Array; aW: Float64Array } {
  const { tokens: T, hiddenSize: H, vocab: V } = a,
    rows = a.targets.length,
    tau = a.temperature ?? 1;
  const dec = (x: Float32Array | Uint16Array) =>
    a.dtype === 'bfloat16' || a.dtype === 'float16' ? decodeHalf(x as Uint16Array, a.dtype) : (x as Float32Array);
  const h = dec(a.hidden),
    w = dec(a.weight);
  const aH = new Float64Array(rows * H),
    aW = new Float64Array(V * H);
  for (let r = 0; r < rows; r++) {
    const g = Number(a.mask[r]) * Number(gradLogprobs[Math.floor(r / T)]);
    if (g === 0) continue;
    for (let v = 0; v < V; v++) {
      let z = 0;
      for (let k = 0; k < H; k++) z += h[r * H + k] * w[v * H + k];
      const dz = Math.abs((g / tau) * ((v === a.targets[r] ? 1 : 0) - Math.exp(z / tau - logZ[r])));
      for (let k = 0; k < H; k++) {
        aH[r * H + k] += dz * Math.abs(w[v * H + k]);
        aW[v * H + k] += dz * Math.abs(h[r * H + k]);
      }
    }
  }
  return { aH, aW };
}

/** |got - want| <= 2^-8 * sums + tol * max |want| + atol, element by element. */
export function productClose(
  got: ArrayLike<number>,
  want: ArrayLike<number>,
  sums: Float64Array,
  tol: number,
  what: string,
  atol = 1e-12,
): void {
  let scale = 0;
  for (let i = 0; i < want.length; i++) scale = Math.max(scale, Math.abs(want[i]));
  for (let i = 0; i < want.length; i++) {
    const e = Math.abs(got[i] - want[i]);
    if (!(e <= 2 ** -8 * sums[i] + tol * scale + atol)) {
      throw new Error(
        `${what}[${i}]: got ${got[i]}, want ${want[i]} (err ${e}, |products| ${sums[i]}, scale ${scale})`,
      );
    }
  }
}
