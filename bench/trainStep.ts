// One tfjs GVPO training step of a policy with a V = 32768 LM head, in a child process of its own:
//   tsx bench/trainStep.ts <fused|dense|plain>
//   fused: fusedHeadLoss (gvpoFromHiddenTf: the logits never exist as tensors)
//   dense: the same policy's logits (tf.matMul) + gvpoFromLogitsTf
//   plain: the same logits + the loss in plain tfjs ops (logSoftmax, one-hot, group centring)
// Step = loss + gradients of every variable + an SGD update. Prints JSON: median step seconds of
// 3 steps after a warm-up, and VmHWM before and after.
import { readFileSync } from 'node:fs';
import type * as TF from '@tensorflow/tfjs';
import { FusedHeadPolicy, fusedHeadLoss, gvpoFromLogitsTf } from '../src/tfjs/index.js';
import { tfjsWithBackend } from './peers/tfjs.js';

const head = process.argv[2];
const tf = await tfjsWithBackend('cpu');
const V = 32768,
  N = 32,
  T = 16,
  k = 4;
const policy = new FusedHeadPolicy(tf, { vocab: V, window: 4, embed: 16, hidden: 64, maxTokens: T, eos: 0, pad: 1 }, 7);
let s = 3;
const next = () => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 4294967296;
const prompts = Array.from({ length: N }, () => [2 + Math.floor(next() * 100), 2 + Math.floor(next() * 100)]);
const responses = Int32Array.from({ length: N * T }, () => Math.floor(next() * V));
const mask = Float32Array.from({ length: N * T }, (_, i) => (i % T < T - 1 ? 1 : 0));
const Sref = Float64Array.from({ length: N }, () => -70 - next());
const rewards = Float64Array.from({ length: N }, () => (next() < 0.5 ? 1 : 0));
const args = {
  targets: responses,
  mask,
  sequences: N,
  referenceLogprobs: Sref,
  rewards,
  groups: { size: k },
  beta: 0.1,
};

function plainLoss(z: TF.Tensor2D): TF.Scalar {
  const lp = tf
    .logSoftmax(z)
    .mul(tf.oneHot(tf.tensor1d(responses, 'int32'), V))
    .sum(1)
    .reshape([N, T]);
  const r = lp
    .mul(tf.tensor2d(mask, [N, T]))
    .sum(1)
    .sub(tf.tensor1d(Float32Array.from(Sref)))
    .mul(0.1)
    .reshape([N / k, k]);
  const R = tf.tensor2d(Float32Array.from(rewards), [N / k, k]);
  return r
    .sub(r.mean(1, true))
    .sub(R.sub(R.mean(1, true)))
    .square()
    .sum()
    .div(2 * (k - 1))
    .div(N / k) as TF.Scalar;
}

const loss = (): TF.Scalar => {
  if (head === 'fused') return fusedHeadLoss(tf, policy, prompts, responses, args);
  const z = policy.logits(prompts, responses);
  if (head === 'dense') return gvpoFromLogitsTf(tf, z, { ...args, tokens: T, vocab: V }).loss;
  return plainLoss(z);
};
const label = {
  fused: 'fused head (gvpoFromHiddenTf)',
  dense: 'Dense head (tf.matMul) + gvpoFromLogitsTf',
  plain: 'Dense head + plain tfjs loss',
}[head];
if (!label) throw new Error(`unknown head ${head}`);
const opt = tf.train.sgd(0.01);
const vmhwm = () => Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'))![1]) * 1024;
const step = () => tf.tidy(() => void opt.minimize(loss, false, policy.variables));
const baseline = vmhwm();
step();
const t: number[] = [];
for (let i = 0; i < 3; i++) {
  const t0 = process.hrtime.bigint();
  step();
  t.push(Number(process.hrtime.bigint() - t0) / 1e9);
}
t.sort((a, b) => a - b);
console.log(JSON.stringify({ label, stepSeconds: t[1], baselineRssBytes: baseline, peakRssBytes: vmhwm() }));
