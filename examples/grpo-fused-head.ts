// A GRPO loss of your own on the fused LM head: tokenLogprobsFromHiddenTf gives the per-token
// log-probs (and entropies) of hidden * head^T as differentiable tfjs tensors without forming the
// [N*T, V] logits, and any tfjs loss on them trains the body and the head through gvpo's kernels.
// Here: GRPO as in DeepSeekMath, with group-normalized advantages (R - mean) / std, the ratio
// pi / pi_old clipped at 1 +- 0.2 per token, and a small entropy bonus; pi_old's token log-probs
// come from the kernel directly (tokenLogprobsFromHidden) once per batch, before its updates.
//
//   npx tsx examples/grpo-fused-head.ts          (in this repository, after `npm install`)
import type { Rank, Tensor, Tensor2D } from '@tensorflow/tfjs';
import { tokenLogprobsFromHidden } from 'gvpo';
import { loadTf, tokenLogprobsFromHiddenTf } from 'gvpo/tfjs';

const { tf } = await loadTf('cpu');
const P = 6,
  T = 4,
  V = 50,
  H = 16; // prompts, tokens per response, vocabulary, hidden width
const k = 8,
  G = 6,
  N = G * k; // responses per prompt, prompts per batch, sequences
const CLIP = 0.2,
  ENTROPY_BONUS = 0.01;
const pattern = Array.from({ length: P }, (_, p) => Array.from({ length: T }, (_, t) => (7 * p + 3 * t) % V));
const reward = (p: number, resp: ArrayLike<number>) =>
  Array.from(resp).filter((y, t) => y === pattern[p][t]).length / T;

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
  // pi_old: the sampling policy's token log-probs, straight from the kernel
  const oldLogprobs = tokenLogprobsFromHidden({
    hidden,
    weight,
    targets,
    mask,
    rows: N * T,
    hiddenSize: H,
    vocab: V,
  }).logprobs;
  // GRPO's advantage: each reward normalized within its group, the same for every token of a response
  const advantages = new Float32Array(N * T);
  for (let g = 0; g < G; g++) {
    const r = rewards.slice(g * k, (g + 1) * k);
    const mean = r.reduce((a, b) => a + b, 0) / k;
    const std = Math.sqrt(r.reduce((a, b) => a + (b - mean) ** 2, 0) / (k - 1));
    for (let i = 0; i < k; i++) advantages.fill((r[i] - mean) / (std + 1e-4), (g * k + i) * T, (g * k + i + 1) * T);
  }

  for (let update = 0; update < 4; update++) {
    optimizer.minimize(() =>
      tf.tidy(() => {
        const { logprobs, entropy } = tokenLogprobsFromHiddenTf(tf, hiddenOf(x), head, {
          targets,
          mask,
          entropy: true,
        });
        const ratio = tf.exp(logprobs.sub(tf.tensor1d(oldLogprobs)));
        const A = tf.tensor1d(advantages);
        const clipped = tf.minimum(ratio.mul(A), tf.clipByValue(ratio, 1 - CLIP, 1 + CLIP).mul(A));
        return clipped.mean().add(entropy!.mean().mul(ENTROPY_BONUS)).neg() as ReturnType<typeof tf.scalar>;
      }),
    );
  }
  x.dispose();
  if (step % 10 === 0) console.log(`step ${step}: mean reward ${rewardsSeen.at(-1)!.toFixed(3)}`);
}

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
const [first, last] = [mean(rewardsSeen.slice(0, 5)), mean(rewardsSeen.slice(-5))];
console.log(`mean reward over the first 5 steps ${first.toFixed(3)}, over the last 5 ${last.toFixed(3)}`);
if (!(last > first + 0.3)) throw new Error('the model did not learn');
