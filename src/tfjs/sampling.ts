// Drawing one token from a row of logits at a temperature, the policies' shared sampler.

/** A token id drawn from softmax(logits[offset .. offset+V) / temperature), with u = rand(). */
export function drawFrom(logits: ArrayLike<number>, offset: number, V: number, temperature: number, rand: () => number): number {
  let m = -Infinity;
  for (let v = 0; v < V; v++) m = Math.max(m, logits[offset + v] / temperature);
  let s = 0;
  const p = new Float64Array(V);
  for (let v = 0; v < V; v++) s += p[v] = Math.exp(logits[offset + v] / temperature - m);
  let u = rand() * s;
  for (let v = 0; v < V; v++) if ((u -= p[v]) <= 0) return v;
  return V - 1;
}
