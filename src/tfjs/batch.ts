// A step's data as the trainer holds it: groups of k responses, packed into padded arrays
// (N = G*k sequences of T tokens), the log-probs computed once per step, and the helpers that cut
// mini-batches of whole groups and measure greedy accuracy.
import { tokenLogprobs } from '../ops/tokenLogprobs.js';
import { seeded, type Task } from '../tasks/task.js';
import type { Policy } from './policies.js';

export interface Group {
  prompt: number[];
  responses: number[][];
  rewards: number[];
  source: 'policy' | 'replay' | 'external';
  /** Token log-probs [k*T] under the policy that generated the group (kept for replay). */
  behaviourTokens?: Float32Array;
  /**
   * The temperature the responses were sampled at. Every log-prob taken of this group (current,
   * sampling, reference policy) is taken at it, also when the group is replayed later.
   */
  temperature: number;
}

export interface Packed {
  prompts: number[][];
  /** [N*T] response tokens, 0 past the end. */
  targets: Int32Array;
  /** [N*T] 1 on response tokens. */
  mask: Float32Array;
  rewards: Float64Array;
  /** [G] where each group came from. */
  sources: Array<Group['source']>;
  /** [N] the temperature each sequence was sampled at (its group's). */
  temperatures: Float64Array;
}

export interface Batch extends Packed {
  /** Sref [N] and token log-probs [N*T] under pi_theta'. */
  refSeq: Float64Array;
  refTok: Float32Array;
  /** [N*T] token log-probs of the policy that sampled each sequence. */
  behaviourTok: Float32Array;
  /** S [N] under the policy before this step's updates, and under the initial policy. */
  currentSeq: Float64Array;
  initSeq: Float64Array;
  /** Mean entropy (nats) of the policy before the updates, over response tokens. */
  entropy: number;
}

export function packBatch(groups: Group[], k: number, T: number): Packed {
  const responses = groups.flatMap((g) => g.responses);
  const targets = new Int32Array(responses.length * T);
  const mask = new Float32Array(responses.length * T);
  responses.forEach((r, n) => r.slice(0, T).forEach((tok, t) => {
    targets[n * T + t] = tok;
    mask[n * T + t] = 1;
  }));
  for (const g of groups) {
    if (g.responses.length !== k) throw new RangeError(`GVPOTrainer: every group must hold groupSize = ${k} responses, got ${g.responses.length}`);
  }
  return {
    prompts: groups.flatMap((g) => g.responses.map(() => g.prompt)),
    targets, mask, rewards: Float64Array.from(groups.flatMap((g) => g.rewards)), sources: groups.map((g) => g.source),
    temperatures: Float64Array.from(groups.flatMap((g) => g.responses.map(() => g.temperature))),
  };
}

/** The rows of groups `gs` (whole groups of k), every per-sequence and per-token array cut alike. */
export function subset(b: Batch, gs: number[], k: number): Batch {
  const rows = gs.flatMap((g) => Array.from({ length: k }, (_, i) => g * k + i));
  const T = b.targets.length / b.rewards.length;
  function pick<A extends Float64Array | Float32Array | Int32Array>(a: A, width: number): A {
    const out = new (a.constructor as { new (n: number): A })(rows.length * width);
    rows.forEach((n, i) => out.set(a.subarray(n * width, (n + 1) * width), i * width));
    return out;
  }
  return {
    prompts: rows.map((n) => b.prompts[n]), sources: gs.map((g) => b.sources[g]), targets: pick(b.targets, T), mask: pick(b.mask, T), rewards: pick(b.rewards, 1),
    temperatures: pick(b.temperatures, 1),
    refSeq: pick(b.refSeq, 1), refTok: pick(b.refTok, T), behaviourTok: pick(b.behaviourTok, T),
    currentSeq: pick(b.currentSeq, 1), initSeq: pick(b.initSeq, 1), entropy: b.entropy,
  };
}

/** The one temperature every sequence shares, or undefined when they differ. */
export function sharedTemperature(temperatures: Float64Array): number | undefined {
  return temperatures.every((t) => t === temperatures[0]) ? temperatures[0] : undefined;
}

/**
 * Token log-probs [N*T], sequence log-probs [N] and mean entropy under `policy`, each sequence at
 * the temperature it was sampled at (b.temperatures: the logits divided by it), no gradient.
 */
export function logprobsOf(policy: Policy, b: Packed): { token: Float32Array; seq: Float64Array; entropy: number } {
  const logits = policy.logits(b.prompts, b.targets);
  let z = logits.dataSync() as Float32Array;
  const [rows, vocab] = logits.shape;
  logits.dispose();
  const T = rows / b.rewards.length;
  let temperature = sharedTemperature(b.temperatures);
  if (temperature === undefined) {
    // mixed temperatures: divide each row by its own and run the kernel at 1
    z = Float32Array.from(z, (x, i) => x / b.temperatures[Math.floor(i / vocab / T)]);
    temperature = 1;
  }
  const tok = tokenLogprobs({ logits: z, targets: b.targets, mask: b.mask, rows, vocab, temperature });
  let ent = 0;
  let count = 0;
  for (let r = 0; r < rows; r++) {
    if (!b.mask[r]) continue;
    for (let v = 0; v < vocab; v++) {
      const lp = z[r * vocab + v] / temperature - tok.logZ[r];
      ent -= Math.exp(lp) * lp;
    }
    count++;
  }
  const seq = new Float64Array(b.rewards.length);
  for (let r = 0; r < rows; r++) if (b.mask[r]) seq[Math.floor(r / T)] += b.mask[r] * tok.logprobs[r];
  return { token: tok.logprobs, seq, entropy: count ? ent / count : 0 };
}

/** `n` evaluation prompts from `seed`: held-out ones where the task has a split. */
export function evaluationPrompts(task: Task, n: number, seed: number): number[][] {
  const rand = seeded(seed);
  return task.heldOutPrompts ? task.heldOutPrompts(n, rand) : task.samplePrompts(n, rand);
}

/** Exact-match accuracy of greedy (argmax at every token) answers on `n` evaluation prompts from `seed`. */
export function evaluateGreedy(policy: Policy, task: Task, n: number, seed: number): number {
  if (!task.answer) return NaN;
  const prompts = evaluationPrompts(task, n, seed);
  // a temperature of 1e-4 makes every draw the argmax unless two logits tie to 1e-4
  const out = policy.sample(prompts, 1e-4, seeded(seed));
  let ok = 0;
  prompts.forEach((p, i) => {
    const want = task.answer!(p);
    if (want.length === out[i].length && want.every((t, j) => t === out[i][j])) ok++;
  });
  return ok / n;
}

/** Mean reward of `samples` responses per evaluation prompt (`n` from `seed`), sampled at `temperature`. */
export function evaluateSampled(policy: Policy, task: Task, n: number, seed: number, temperature = 1, samples = 1): number {
  const prompts = evaluationPrompts(task, n, seed).flatMap((p) => Array.from({ length: samples }, () => p));
  const out = policy.sample(prompts, temperature, seeded(seed + 1));
  return prompts.reduce((a, p, i) => a + task.reward(p, out[i]), 0) / prompts.length;
}
