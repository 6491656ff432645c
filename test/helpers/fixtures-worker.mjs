// Runs every op on the PyTorch fixtures (test/fixtures/torch-reference.json) on the backend and
// instruction set this process was started with (GVPO_BACKEND, GVPO_SIMD) and prints one JSON
// line of outputs, for test/fixtures.test.ts to compare. Inputs only come from the fixture; where
// a phase needs the previous phase's output it takes this backend's own (logZ), and where it needs
// dL/dS it takes PyTorch's, so that each phase is compared on its own.
import { readFileSync } from 'node:fs';
import * as gvpo from '../../src/index.ts';

const fixtures = JSON.parse(readFileSync(new URL('../fixtures/torch-reference.json', import.meta.url), 'utf8'));
const fromB64 = (s, K) => {
  const b = Buffer.from(s, 'base64');
  return new K(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
};
const num = (x) => (typeof x === 'string' ? Number(x) : x);
const b64 = (a) => Buffer.from(a.buffer, a.byteOffset, a.byteLength).toString('base64');
const list = (a) => Array.from(a, (x) => (Number.isFinite(x) ? x : String(x)));

const out = fixtures.cases.map(({ inputs: c, expected: e }) => {
  const logits = fromB64(c.logits, c.dtype === 'float32' ? Float32Array : Uint16Array);
  const rows = c.sequences * c.tokens;
  const targets = Int32Array.from(c.targets);
  const mask = Float32Array.from(c.mask);
  const base = {
    logits,
    dtype: c.dtype,
    targets,
    mask,
    sequences: c.sequences,
    tokens: c.tokens,
    vocab: c.vocab,
    temperature: c.temperature,
  };
  const ref = c.referenceTokenLogprobs
    ? { referenceTokenLogprobs: Float64Array.from(c.referenceTokenLogprobs) }
    : c.referenceLogprobs
      ? { referenceLogprobs: Float64Array.from(c.referenceLogprobs) }
      : {};
  const loss = {
    rewards: Float64Array.from(c.rewards),
    groups: { offsets: Int32Array.from(c.offsets) },
    beta: c.beta,
    reduction: c.reduction,
  };
  const fused = gvpo.gvpoFromLogits({ ...base, ...ref, ...loss });
  const fwd = gvpo.gvpoForward({ ...base, ...ref });
  const gradS = Float64Array.from(e.gradLogprobs, num);
  const back = gvpo.gvpoBackward({ ...base, logZ: fwd.logZ, gradLogprobs: gradS });
  const rowsArgs = { logits, dtype: c.dtype, targets, mask, rows, vocab: c.vocab, temperature: c.temperature };
  const tok = gvpo.tokenLogprobs(rowsArgs);
  // dL/dl per token = m * dL/dS of its sequence: tokenLogprobsBackward then gives dL/dz too
  const w = Float32Array.from({ length: rows }, (_, r) => mask[r] * gradS[Math.floor(r / c.tokens)]);
  const tokBack = gvpo.tokenLogprobsBackward({ ...rowsArgs, logZ: tok.logZ, gradTokenLogprobs: w });
  const lossOnly = gvpo.gvpoLoss({
    policyLogprobs: Float64Array.from(e.policyLogprobs, num),
    referenceLogprobs: Float64Array.from(e.referenceLogprobs, num),
    ...loss,
  });
  return {
    name: c.name,
    fused: {
      loss: fused.loss,
      terms: fused.terms,
      policyLogprobs: list(fused.policyLogprobs),
      referenceLogprobs: list(fused.referenceLogprobs),
      residuals: list(fused.residuals),
      gradLogprobs: list(fused.gradLogprobs),
      tokenLogprobs: list(fused.tokenLogprobs),
      gradLogits: b64(fused.gradLogits),
    },
    forward: {
      tokenLogprobs: list(fwd.tokenLogprobs),
      logZ: list(fwd.logZ),
      policyLogprobs: list(fwd.policyLogprobs),
      referenceLogprobs: list(fwd.referenceLogprobs),
    },
    backward: { gradLogits: b64(back), w: list(w) },
    tokenLogprobs: { logprobs: list(tok.logprobs), logZ: list(tok.logZ) },
    tokenLogprobsBackward: { gradLogits: b64(tokBack) },
    gvpoLoss: {
      loss: lossOnly.loss,
      terms: lossOnly.terms,
      gradLogprobs: list(lossOnly.gradLogprobs),
      residuals: list(lossOnly.residuals),
    },
  };
});
const info = gvpo.backendInfo();
process.stdout.write(
  `${JSON.stringify({ backend: info.active, simd: info.active === 'js' ? 'js' : info.simd, cases: out })}\n`,
);
