// Reference group centring: centered[n] = values[n] - mean of n's group (offsets, G+1).
export function groupCenterRef(
  values: Float64Array,
  offsets: Int32Array,
): { centered: Float64Array; means: Float64Array } {
  const G = offsets.length - 1;
  const centered = new Float64Array(values.length);
  const means = new Float64Array(G);
  for (let g = 0; g < G; g++) {
    let s = 0;
    for (let n = offsets[g]; n < offsets[g + 1]; n++) s += values[n];
    const m = s / (offsets[g + 1] - offsets[g]);
    means[g] = m;
    for (let n = offsets[g]; n < offsets[g + 1]; n++) centered[n] = values[n] - m;
  }
  return { centered, means };
}
