// The supervised warm-up that makes the addition task's starting policy: a small causal
// transformer trained by cross-entropy on demonstrations that carry a systematic mistake.
//
// Why a mistake: RL with an exact-match verifier can only reinforce answers the policy already
// samples. The demonstrations are right except on prompts whose units digits carry, where a
// `carryDropped` share of them forgets the carry (37+45 -> 72, written as a + b - 10), the way a
// learner copies a common slip from imperfect data. The policy learns addition and the slip: on
// carry prompts the right answer keeps real probability (about 1 - carryDropped) but is not the
// argmax, so greedy answers are wrong there and sampled groups still find the right one. That is
// the situation RL fine-tuning is used for, and a verifier is what fixes it.
//
// Deterministic given its seed (on one TensorFlow.js backend): the initial weights, the prompts,
// the mistakes and the order are all drawn from seeded generators. Only training prompts are used;
// the held-out split never is.
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import type * as TF from '@tensorflow/tfjs';
import { AdditionTask, EOS, PAD } from '../tasks/addition.js';
import { seeded } from '../tasks/task.js';
import { evaluateGreedy, evaluateSampled } from './batch.js';
import { tokenLogprobsTf } from './ops.js';
import { TransformerPolicy } from './transformerPolicy.js';

type Tf = typeof TF;

/**
 * The supervised warm-up that makes the addition starting policy (warmup() below): a causal
 * transformer of width 32 (2 blocks, 4 heads, MLP 128: 26,656 parameters, a 143 KB checkpoint),
 * 1000 Adam steps of 128 demonstrations, 70% of the carry prompts' demonstrations dropping the
 * carry; about 100 s on 2 cores. The shipped checkpoints/addition-warmup.json is this recipe with
 * these values on the wasm backend (held-out greedy accuracy 0.574 on the test half of the held-out
 * pairs, 0.538 on all of them: 0.96 on prompts without a
 * units carry, 0.01 on those with one, where the right answer is sampled about a quarter of the
 * time). Shorter warm-ups leave the digits themselves uncertain, and RL then trades carries for
 * over-carries at units sums 8-9.
 */
export const WARMUP_DEFAULTS = {
  steps: 1000,
  width: 32,
  layers: 2,
  heads: 4,
  batch: 128,
  learningRate: 1e-2,
  carryDropped: 0.7,
  seed: 1,
};

export interface WarmupOptions {
  tf: Tf;
  out: string;
  steps?: number;
  seed?: number;
  /** Width D of the transformer. */
  width?: number;
  layers?: number;
  heads?: number;
  /** Demonstrations per step. */
  batch?: number;
  /** Peak Adam rate: linear warm-up over the first 50 steps, then a cosine decay to 0. */
  learningRate?: number;
  /** Share of the carry prompts' demonstrations that drop the units carry. */
  carryDropped?: number;
  /** Held-out prompts the result is measured on (default 500). */
  evalPrompts?: number;
  /** Called every 50 steps with the step and the mean token cross-entropy. */
  onProgress?: (step: number, loss: number) => void;
}

export interface WarmupResult {
  /** Held-out greedy exact-match accuracy and sampled reward at temperature 1 (evalPrompts prompts). */
  accuracy: number;
  sampledReward: number;
  parameters: number;
  seconds: number;
}

/** The demonstrated answer to a + b: right, or with the units carry dropped (rand < carryDropped). */
export function demonstration(a: number, b: number, carryDropped: number, rand: () => number): number {
  const carries = (a % 10) + (b % 10) >= 10;
  return carries && rand() < carryDropped ? a + b - 10 : a + b;
}

export async function warmup(o: WarmupOptions): Promise<WarmupResult> {
  const d = WARMUP_DEFAULTS;
  const { tf } = o;
  const steps = o.steps ?? d.steps,
    seed = o.seed ?? d.seed,
    batch = o.batch ?? d.batch,
    lr = o.learningRate ?? d.learningRate;
  const drop = o.carryDropped ?? d.carryDropped;
  const width = o.width ?? d.width;
  const task = new AdditionTask();
  const policy = new TransformerPolicy(
    tf,
    {
      vocab: task.vocab,
      maxTokens: task.maxTokens,
      eos: EOS,
      pad: PAD,
      promptTokens: task.promptTokens,
      width,
      heads: o.heads ?? d.heads,
      layers: o.layers ?? d.layers,
      mlp: 4 * width,
    },
    seed,
  );
  const opt = tf.train.adam(lr);
  const rand = seeded(seed);
  const T = task.maxTokens;
  const t0 = performance.now();
  for (let s = 1; s <= steps; s++) {
    const prompts = task.samplePrompts(batch, rand);
    const targets = new Int32Array(batch * T);
    const mask = new Float32Array(batch * T);
    prompts.forEach((p, n) => {
      const [a, b] = AdditionTask.operands(p);
      AdditionTask.response(demonstration(a, b, drop, rand)).forEach((tok, t) => {
        targets[n * T + t] = tok;
        mask[n * T + t] = 1;
      });
    });
    (opt as unknown as { learningRate: number }).learningRate =
      lr * Math.min(1, s / 50) * 0.5 * (1 + Math.cos((Math.PI * s) / steps));
    const m = tf.tensor1d(mask);
    const loss = opt.minimize(
      () => tokenLogprobsTf(tf, policy.logits(prompts, targets), targets).mul(m).sum().div(m.sum()).neg() as TF.Scalar,
      true,
      policy.variables,
    )!;
    if (o.onProgress && (s % 50 === 0 || s === steps)) o.onProgress(s, loss.dataSync()[0]);
    loss.dispose();
    m.dispose();
  }
  const seconds = (performance.now() - t0) / 1000;
  mkdirSync(dirname(o.out), { recursive: true });
  policy.save(o.out);
  const n = o.evalPrompts ?? 500;
  return {
    accuracy: evaluateGreedy(policy, task, n, 12345),
    sampledReward: evaluateSampled(policy, task, n, 12345, 1),
    parameters: policy.size,
    seconds,
  };
}
