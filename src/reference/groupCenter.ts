// Reference group centring: centered[n] = values[n] - mean of n's group (offsets, G+1).

/** The mean of values[b, e); a sum that overflows though every value is finite (values near
 *  1e308) is taken again scaled by 2^-32, exactly. */
export function groupMean(values: ArrayLike<number>, b: number, e: number): number {
  let s = 0;
  for (let n = b; n < e; n++) s += values[n];
  if (Number.isFinite(s)) return s / (e - b);
  let t = 0;
  for (let n = b; n < e; n++) t += values[n] * 2 ** -32;
  return Number.isFinite(t) ? (t / (e - b)) * 2 ** 32 : s / (e - b);
}

export function groupCenterRef(
  values: Float64Array,
  offsets: Int32Array,
): { centered: Float64Array; means: Float64Array } {
  const G = offsets.length - 1;
  const centered = new Float64Array(values.length);
  const means = new Float64Array(G);
  for (let g = 0; g < G; g++) {
    const m = groupMean(values, offsets[g], offsets[g + 1]);
    means[g] = m;
    for (let n = offsets[g]; n < offsets[g + 1]; n++) centered[n] = values[n] - m;
  }
  return { centered, means };
}
