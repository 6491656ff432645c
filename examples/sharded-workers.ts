// The fused op's two phases with the batch sharded over worker threads, as data-parallel training
// shards a batch over devices. Each worker holds some responses of every group (no group lives on
// one worker), so the group statistics need every shard:
//   phase 1, per shard   gvpoForward: the logits -> S and Sref per sequence, logZ per token (kept)
//   once, on S (N values) gvpoLoss over the whole batch: the loss and dL/dS per sequence
//   phase 2, per shard   gvpoBackward: dL/dS -> dL/dlogits for the shard's own logits
// Only N numbers per phase cross between threads, never the logits. The result equals the one-call
// gvpoFromLogits on the whole batch, which this example checks.
//
//   npx tsx examples/sharded-workers.ts          (in this repository, after `npm install`)
import { Worker } from 'node:worker_threads';
import { gvpoFromLogits, gvpoLoss } from 'gvpo';

const G = 3,
  k = 4,
  N = G * k; // 3 groups of 4 responses
const T = 5,
  V = 300; // tokens per response, vocabulary
const WORKERS = 2;
// Worker w holds the responses n with n % WORKERS === w: two of each group here.
const shardOf = (w: number) => Array.from({ length: N }, (_, n) => n).filter((n) => n % WORKERS === w);

/** What a worker holds: its sequences' rows of every per-token array (sharded-workers.worker.mjs). */
interface Shard {
  logits: Float32Array;
  targets: Int32Array;
  mask: Float32Array;
  referenceTokenLogprobs: Float32Array;
  sequences: number;
  tokens: number;
  vocab: number;
}

// The whole batch, made up: logits, sampled tokens, masks with prompt and padding positions,
// a reference policy's token log-probs, and rewards.
let seed = 7;
const rand = () => (seed = (seed * 16807) % 2147483647) / 2147483647;
const logits = Float32Array.from({ length: N * T * V }, () => 4 * rand() - 2);
const targets = Int32Array.from({ length: N * T }, () => Math.floor(rand() * V));
const mask = Float32Array.from({ length: N * T }, (_, i) => (i % T === 0 || rand() < 0.2 ? 0 : 1));
const referenceTokenLogprobs = Float32Array.from({ length: N * T }, () => -8 * rand());
const rewards = Array.from({ length: N }, () => Math.round(rand()));
const groups = { size: k };
const beta = 0.1;

const rowsOf = <A extends Float32Array | Int32Array>(a: A, ns: number[], width: number): A => {
  const out = new (a.constructor as new (n: number) => A)(ns.length * width);
  ns.forEach((n, i) => out.set(a.subarray(n * width, (n + 1) * width), i * width));
  return out;
};
const shards = Array.from({ length: WORKERS }, (_, w) => shardOf(w));
// (the worker is plain JavaScript: Node 20 does not run a worker's TypeScript through tsx)
const workers = shards.map(
  (ns) =>
    new Worker(new URL('./sharded-workers.worker.mjs', import.meta.url), {
      workerData: {
        logits: rowsOf(logits, ns, T * V),
        targets: rowsOf(targets, ns, T),
        mask: rowsOf(mask, ns, T),
        referenceTokenLogprobs: rowsOf(referenceTokenLogprobs, ns, T),
        sequences: ns.length,
        tokens: T,
        vocab: V,
      } satisfies Shard,
    }),
);
const next = (w: Worker) =>
  new Promise<any>((resolve, reject) => {
    w.once('message', resolve);
    w.once('error', reject);
  });

// phase 1 on every shard; S and Sref put back in batch order
const S = new Float64Array(N),
  Sref = new Float64Array(N);
(await Promise.all(workers.map(next))).forEach((f, w) =>
  shards[w].forEach((n, i) => {
    S[n] = f.policyLogprobs[i];
    Sref[n] = f.referenceLogprobs[i];
  }),
);
// the loss once, over whole groups
const l = gvpoLoss({ policyLogprobs: S, referenceLogprobs: Sref, rewards, groups, beta });
// phase 2: each shard gets its sequences' dL/dS and returns its logits' gradient
const replies = workers.map(next);
workers.forEach((w, i) => w.postMessage(Float64Array.from(shards[i], (n) => l.gradLogprobs[n])));
const gradLogits = new Float32Array(N * T * V);
(await Promise.all(replies)).forEach((g: Float32Array, w) =>
  shards[w].forEach((n, i) => gradLogits.set(g.subarray(i * T * V, (i + 1) * T * V), n * T * V)),
);
await Promise.all(workers.map((w) => w.terminate()));

// the same batch in one call
const one = gvpoFromLogits({
  logits,
  targets,
  mask,
  sequences: N,
  tokens: T,
  vocab: V,
  referenceTokenLogprobs,
  rewards,
  groups,
  beta,
});
let scale = 0,
  diff = 0;
for (let i = 0; i < gradLogits.length; i++) {
  scale = Math.max(scale, Math.abs(one.gradLogits[i]));
  diff = Math.max(diff, Math.abs(gradLogits[i] - one.gradLogits[i]));
}
console.log(`loss: sharded ${l.loss.toPrecision(10)}, one call ${one.loss.toPrecision(10)}`);
console.log(`dL/dlogits: largest difference ${diff.toExponential(2)} (largest value ${scale.toExponential(2)})`);
// phase 2 is given phase 1's own logZ array, so it takes the row statistics phase 1 kept beside it,
// as the one call does: equal up to float32 rounding (the same bits on the CPU)
if (Math.abs(l.loss - one.loss) > 1e-9 * Math.max(1, Math.abs(one.loss)) || diff > 1e-5 * scale) {
  throw new Error('the sharded result differs from the one-call result');
}
