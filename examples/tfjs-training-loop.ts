// The GVPO loss dropped into a TensorFlow.js model's own training loop. The model is a plain
// tf.Sequential that maps a prompt (one-hot) to logits for each of T response tokens; the loop
// samples k responses per prompt, scores them, and minimizes gvpoFromLogitsTf with a tfjs
// optimizer: the loss and its gradient to the logits come from gvpo's fused kernel, and tfjs
// carries the gradient back into the model's weights. The reference pi_theta' is the model before
// each batch's updates (its token log-probs are taken once per batch), as in the GVPO recipe.
//
//   npx tsx examples/tfjs-training-loop.ts          (in this repository, after `npm install`)
import type { Tensor } from '@tensorflow/tfjs';
import { tokenLogprobs } from 'gvpo';
import { gvpoFromLogitsTf, loadTf } from 'gvpo/tfjs';

const { tf } = await loadTf('cpu');
const P = 6,
  T = 4,
  V = 5; // prompts, tokens per response, vocabulary
const k = 8,
  G = 6; // responses per prompt, prompts per batch: N = G*k sequences
const N = G * k;
// the reward: the share of a response's tokens that match the prompt's hidden pattern
const pattern = Array.from({ length: P }, (_, p) => Array.from({ length: T }, (_, t) => (p + 2 * t) % V));
const reward = (p: number, resp: ArrayLike<number>) =>
  Array.from(resp).filter((y, t) => y === pattern[p][t]).length / T;

/** A token drawn from softmax(z). */
function draw(z: Float32Array): number {
  const m = Math.max(...z);
  const p = Array.from(z, (v) => Math.exp(v - m));
  let u = Math.random() * p.reduce((a, b) => a + b, 0);
  for (let v = 0; v < p.length; v++) if ((u -= p[v]) <= 0) return v;
  return p.length - 1;
}

const model = tf.sequential({
  layers: [
    tf.layers.dense({ inputShape: [P], units: 32, activation: 'tanh' }),
    tf.layers.dense({ units: T * V }),
    tf.layers.reshape({ targetShape: [T, V] }),
  ],
});
const optimizer = tf.train.adam(0.02);

const rewardsSeen: number[] = [];
for (let step = 1; step <= 40; step++) {
  // G prompts, each repeated k times (consecutive: groups of size k)
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
  const logits = model.predict(x) as Tensor; // [N, T, V]
  const logitsData = Float32Array.from(await logits.data());
  logits.dispose();
  // every token drawn from softmax(logits): the responses, as the kernels' Int32Array targets
  const targets = Int32Array.from({ length: N * T }, (_, row) => draw(logitsData.subarray(row * V, (row + 1) * V)));
  const mask = new Float32Array(N * T).fill(1); // every token is a response token here
  const rewards = Array.from({ length: N }, (_, n) =>
    reward(prompts[Math.floor(n / k)], targets.subarray(n * T, (n + 1) * T)),
  );
  rewardsSeen.push(rewards.reduce((a, b) => a + b, 0) / N);
  // pi_theta': this batch's policy, fixed for its updates
  const referenceTokenLogprobs = tokenLogprobs({ logits: logitsData, targets, rows: N * T, vocab: V }).logprobs;

  for (let update = 0; update < 4; update++) {
    optimizer.minimize(() => {
      const z = model.apply(x) as Tensor;
      return gvpoFromLogitsTf(tf, z, {
        targets,
        mask,
        sequences: N,
        tokens: T,
        vocab: V,
        referenceTokenLogprobs,
        rewards,
        groups: { size: k },
        beta: 0.1,
      }).loss;
    });
  }
  x.dispose();
  if (step % 10 === 0) console.log(`step ${step}: mean reward ${rewardsSeen.at(-1)!.toFixed(3)}`);
}

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
const [first, last] = [mean(rewardsSeen.slice(0, 5)), mean(rewardsSeen.slice(-5))];
console.log(`mean reward over the first 5 steps ${first.toFixed(3)}, over the last 5 ${last.toFixed(3)}`);
if (!(last > first + 0.3)) throw new Error('the model did not learn');
