// One backend's answers (the environment picks it: GVPO_BACKEND, GVPO_SIMD) to the cases of
// test/rowIndependence.test.ts, as JSON on stdout: gradients whose rows must not depend on the
// other rows' upstream, and backwards given a NaN logit.
import * as g from '../../src/index.ts';

const H = 4;
const V = 5;
const hidden = new Float32Array([0.3, -0.2, 0.5, 0.1, 0.7, 0.2, -0.4, 0.9, -0.6, 0.1, 0.3, -0.8]);
const weight = Float32Array.from({ length: V * H }, (_, i) => Math.sin(i + 1));
const targets = new Int32Array([1, 3, 4]);
const mask = new Float32Array([1, 1, 1]);
const head = { hidden, weight, targets, mask, hiddenSize: H, vocab: V };
const gvpoArgs = { ...head, sequences: 3, tokens: 1 };
const out = { backend: g.backendInfo().active, simd: g.backendInfo().simd, cases: [] };
const push = (name, x) => out.cases.push({ name, values: Array.from(x, (v) => (Number.isFinite(v) ? v : String(v))) });

// the fused GVPO head's two phases: dL/dS of sequence 0 from 0 to far past float32's range
const fw = g.gvpoFromHiddenForward(gvpoArgs);
for (const s0 of [0, 1e30, 1e60, 1e75, 1e80, 1e300]) {
  const r = g.gvpoFromHiddenBackward({ ...gvpoArgs, logZ: fw.logZ, gradLogprobs: [s0, 1, -2] });
  push(`gvpoFromHiddenBackward dH, dL/dS0 = ${s0}`, r.gradHidden);
  push(`gvpoFromHiddenBackward dW, dL/dS0 = ${s0}`, r.gradWeight);
}
// the per-token head at a small temperature: g / tau past 2^100 for row 0 only
for (const g0 of [0, 1e30, 3e38]) {
  const tau = 1e-3;
  const f = g.tokenLogprobsFromHidden({ ...head, rows: 3, temperature: tau });
  const r = g.tokenLogprobsFromHiddenBackward({
    ...head,
    rows: 3,
    temperature: tau,
    logZ: f.logZ,
    gradTokenLogprobs: new Float32Array([g0, 1, -2]),
  });
  push(`tokenLogprobsFromHiddenBackward dH, g0 = ${g0}`, r.gradHidden);
  push(`tokenLogprobsFromHiddenBackward dW, g0 = ${g0}`, r.gradWeight);
}
// a NaN logit between the forward and the backward, at the target and elsewhere
const logits = new Float32Array([1, 2, 3, 0.5, -1, 0.5, 2, 0]);
const lt = new Int32Array([2, 0]);
const tf = g.tokenLogprobs({ logits, targets: lt, rows: 2, vocab: 4 });
for (const at of [2, 1]) {
  const bad = logits.slice();
  bad[at] = NaN;
  for (const logZ of [tf.logZ, tf.logZ.slice()]) {
    const grad = g.tokenLogprobsBackward({
      logits: bad,
      targets: lt,
      rows: 2,
      vocab: 4,
      logZ,
      gradTokenLogprobs: new Float32Array([1, 1]),
    });
    push(`tokenLogprobsBackward, NaN at ${at}${logZ === tf.logZ ? '' : ' (a copy of logZ)'}`, grad);
  }
  const lm = new Float32Array([1, 1]);
  const gf = g.gvpoForward({ logits, targets: lt, mask: lm, sequences: 2, tokens: 1, vocab: 4 });
  const gb = g.gvpoBackward({
    logits: bad,
    targets: lt,
    mask: lm,
    sequences: 2,
    tokens: 1,
    vocab: 4,
    logZ: gf.logZ,
    gradLogprobs: [1, 1],
  });
  push(`gvpoBackward, NaN at ${at}`, gb);
}
process.stdout.write(JSON.stringify(out));
