// The fused LM head in a TensorFlow.js model: the model's body gives hidden states [N*T, H], its
// head is a bias-free [V, H] weight (vocab-major, as LLM checkpoints store an lm_head), and
// gvpoFromHiddenTf computes the GVPO loss of hidden * head^T with gradients for both, never
// forming the [N*T, V] logits or their gradient as tensors (gvpo computes them one tile at a time).
// Sampling still needs the next token's logits, which a real LM forms for one position at a time;
// the training pass over whole responses is where the fused head saves the memory.
//
//   npx tsx examples/fused-head.ts          (in this repository, after `npm install`)
import type { Rank, Tensor, Tensor2D } from '@tensorflow/tfjs';
import { gvpoFromHiddenForward } from 'gvpo';
import { gvpoFromHiddenTf, loadTf } from 'gvpo/tfjs';

const { tf } = await loadTf('cpu');
const P = 6,
  T = 4,
  V = 50,
  H = 16; // prompts, tokens per response, vocabulary, hidden width
const k = 8,
  G = 6,
  N = G * k; // responses per prompt, prompts per batch, sequences
const pattern = Array.from({ length: P }, (_, p) => Array.from({ length: T }, (_, t) => (7 * p + 3 * t) % V));
const reward = (p: number, resp: ArrayLike<number>) =>
  Array.from(resp).filter((y, t) => y === pattern[p][t]).length / T;

// the body: prompt (one-hot) -> T hidden states of width H
const body = tf.sequential({
  layers: [
    tf.layers.dense({ inputShape: [P], units: 64, activation: 'tanh' }),
    tf.layers.dense({ units: T * H, activation: 'tanh' }),
    tf.layers.reshape({ targetShape: [T, H] }),
  ],
});
const head = tf.variable(tf.randomNormal<Rank.R2>([V, H], 0, 0.3), true, 'head');
const optimizer = tf.train.adam(0.02);
const hiddenOf = (x: Tensor) => (body.apply(x) as Tensor).reshape([N * T, H]) as Tensor2D;

function draw(z: Float32Array): number {
  const m = Math.max(...z);
  const p = Array.from(z, (v) => Math.exp(v - m));
  let u = Math.random() * p.reduce((a, b) => a + b, 0);
  for (let v = 0; v < p.length; v++) if ((u -= p[v]) <= 0) return v;
  return p.length - 1;
}

const rewardsSeen: number[] = [];
for (let step = 1; step <= 40; step++) {
  const prompts = Array.from({ length: G }, () => Math.floor(Math.random() * P));
  const x = tf.tidy(() =>
    tf
      .oneHot(
        tf.tensor1d(
          prompts.flatMap((p) => Array(k).fill(p)),
          'int32',
        ),
        P,
      )
      .toFloat(),
  );
  const [hidden, weight, logits] = tf.tidy(() => {
    const h = hiddenOf(x);
    return [
      h.dataSync() as Float32Array,
      head.dataSync() as Float32Array,
      tf.matMul(h, head, false, true).dataSync() as Float32Array,
    ];
  });
  const targets = Int32Array.from({ length: N * T }, (_, row) => draw(logits.subarray(row * V, (row + 1) * V)));
  const mask = new Float32Array(N * T).fill(1);
  const rewards = Array.from({ length: N }, (_, n) =>
    reward(prompts[Math.floor(n / k)], targets.subarray(n * T, (n + 1) * T)),
  );
  rewardsSeen.push(rewards.reduce((a, b) => a + b, 0) / N);
  // pi_theta': S of this batch under the policy that sampled it, from the fused head's phase 1
  const referenceLogprobs = gvpoFromHiddenForward({
    hidden,
    weight,
    targets,
    mask,
    sequences: N,
    tokens: T,
    hiddenSize: H,
    vocab: V,
  }).policyLogprobs;

  for (let update = 0; update < 4; update++) {
    optimizer.minimize(
      () =>
        gvpoFromHiddenTf(tf, hiddenOf(x), head, {
          targets,
          mask,
          sequences: N,
          tokens: T,
          referenceLogprobs,
          rewards,
          groups: { size: k },
          beta: 0.1,
        }).loss,
    );
  }
  x.dispose();
  if (step % 10 === 0) console.log(`step ${step}: mean reward ${rewardsSeen.at(-1)!.toFixed(3)}`);
}

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
const [first, last] = [mean(rewardsSeen.slice(0, 5)), mean(rewardsSeen.slice(-5))];
console.log(`mean reward over the first 5 steps ${first.toFixed(3)}, over the last 5 ${last.toFixed(3)}`);
if (!(last > first + 0.3)) throw new Error('the model did not learn');
