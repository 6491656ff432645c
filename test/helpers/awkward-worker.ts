// Runs the awkward cases on whatever backend and instruction set this process was started with
// (GVPO_BACKEND, GVPO_SIMD) and prints one JSON line of results, for test/trust.test.ts to compare
// with the float64 reference in its own process.
import { backendInfo, gvpoFromLogits, tokenLogprobs } from '../../src/index.js';
import { awkwardCases } from './awkward.js';

const results = awkwardCases().map((c) => {
  const rows = c.sequences * c.tokens;
  const t = tokenLogprobs({
    logits: c.logits,
    dtype: c.dtype,
    targets: c.targets,
    mask: c.mask,
    rows,
    vocab: c.vocab,
    temperature: c.temperature,
  });
  const { name: _name, ...opts } = c;
  const f = gvpoFromLogits(opts);
  return {
    name: c.name,
    logprobs: Array.from(t.logprobs),
    gradLogits: Array.from(f.gradLogits),
    loss: f.loss,
    policyLogprobs: Array.from(f.policyLogprobs),
  };
});
const info = backendInfo();
// Non-finite numbers as strings: JSON has no NaN or Infinity.
const keep = (_k: string, v: unknown) => (typeof v === 'number' && !Number.isFinite(v) ? String(v) : v);
process.stdout.write(JSON.stringify({ backend: info.active, simd: info.simd ?? 'js', results }, keep) + '\n');
