// Reference S[n] = sum_t m[n,t] * l[n,t] in float64; masked tokens are skipped entirely.
export function sequenceLogprobsRef(
  tokenLogprobs: ArrayLike<number>,
  mask: Float32Array,
  sequences: number,
  tokens: number,
): Float64Array {
  const out = new Float64Array(sequences);
  for (let n = 0; n < sequences; n++) {
    let s = 0;
    for (let t = n * tokens; t < (n + 1) * tokens; t++) if (mask[t] !== 0) s += mask[t] * tokenLogprobs[t];
    out[n] = s;
  }
  return out;
}
