// A step's data as the trainer holds it: groups of k responses, packed into padded arrays
// (N = G*k sequences of T tokens), the log-probs computed once per step, and the helpers that cut
// mini-batches of whole groups and measure greedy accuracy.
import type * as TF from '@tensorflow/tfjs';
import { tokenLogprobs } from '../ops/tokenLogprobs.js';
import { tokenLogprobsFromHidden } from '../ops/tokenLogprobsFromHidden.js';
import { seeded, type Task } from '../tasks/task.js';
import { describe } from '../validate.js';
import { hasFusedHead, type Policy } from './policy.js';

type Tf = typeof TF;

export interface Group {
  prompt: number[];
  responses: number[][];
  rewards: number[];
  source: 'policy' | 'replay' | 'external';
  /**
   * Token log-probs [k*T] under the distribution that generated each response: kept for replayed
   * groups, given for external ones where the sampler's probabilities are known (`behaviorKnown`
   * marks which responses; the others are treated as sampled by the current policy).
   */
  behaviorTokens?: Float32Array;
  behaviorKnown?: boolean[];
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
  behaviorTok: Float32Array;
  /** S [N] and token log-probs [N*T] under the policy before this step's updates; S under the initial policy. */
  currentSeq: Float64Array;
  currentTok: Float32Array;
  initSeq: Float64Array;
  /** Mean entropy (nats) of the policy before the updates, over response tokens. */
  entropy: number;
  /** A step with no group the policy sampled: sequences drawn from pi_theta' only to measure the
   *  KLs on, with their log-probs under it (the trainer's measure). */
  probe?: { packed: Packed; currentSeq: Float64Array };
}

export function packBatch(groups: Group[], k: number, T: number): Packed {
  const responses = groups.flatMap((g) => g.responses);
  const targets = new Int32Array(responses.length * T);
  const mask = new Float32Array(responses.length * T);
  responses.forEach((r, n) =>
    r.slice(0, T).forEach((tok, t) => {
      targets[n * T + t] = tok;
      mask[n * T + t] = 1;
    }),
  );
  for (const g of groups) {
    if (g.responses.length !== k)
      throw new RangeError(`GVPOTrainer: every group must hold groupSize = ${k} responses, got ${g.responses.length}`);
  }
  return {
    prompts: groups.flatMap((g) => g.responses.map(() => g.prompt)),
    targets,
    mask,
    rewards: Float64Array.from(groups.flatMap((g) => g.rewards)),
    sources: groups.map((g) => g.source),
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
    prompts: rows.map((n) => b.prompts[n]),
    sources: gs.map((g) => b.sources[g]),
    targets: pick(b.targets, T),
    mask: pick(b.mask, T),
    rewards: pick(b.rewards, 1),
    temperatures: pick(b.temperatures, 1),
    refSeq: pick(b.refSeq, 1),
    refTok: pick(b.refTok, T),
    behaviorTok: pick(b.behaviorTok, T),
    currentSeq: pick(b.currentSeq, 1),
    currentTok: pick(b.currentTok, T),
    initSeq: pick(b.initSeq, 1),
    entropy: b.entropy,
  };
}

/** The one temperature every sequence shares, or undefined when they differ. */
export function sharedTemperature(temperatures: Float64Array): number | undefined {
  return temperatures.every((t) => t === temperatures[0]) ? temperatures[0] : undefined;
}

/**
 * Token log-probs [N*T], sequence log-probs [N] and mean entropy (nats per response token) under
 * `policy`, each sequence at the temperature it was sampled at (b.temperatures), no gradient. A
 * fused-head policy goes through tokenLogprobsFromHidden (the logits never exist whole); others
 * through tokenLogprobs on their logits.
 */
export function logprobsOf(
  tf: Tf,
  policy: Policy,
  b: Packed,
): { token: Float32Array; seq: Float64Array; entropy: number } {
  const N = b.rewards.length;
  const shared = sharedTemperature(b.temperatures);
  // mixed temperatures: divide each row (a logit row, or the hidden state the head maps linearly)
  // by its own, kernel at 1
  const scaled = (x: Float32Array, width: number, T: number) =>
    shared === undefined ? Float32Array.from(x, (v, i) => v / b.temperatures[Math.floor(i / width / T)]) : x;
  const temperature = shared ?? 1;
  let token: Float32Array;
  let entropy = 0;
  let live = 0;
  if (hasFusedHead(policy)) {
    const h = tf.tidy(() => policy.hiddenStates(b.prompts, b.targets));
    const [rows, hiddenSize] = h.shape;
    const hidden = scaled(h.dataSync() as Float32Array, hiddenSize, rows / N);
    h.dispose();
    const weight = policy.head.dataSync() as Float32Array;
    const r = tokenLogprobsFromHidden({
      hidden,
      weight,
      targets: b.targets,
      mask: b.mask,
      rows,
      hiddenSize,
      vocab: policy.vocab,
      temperature,
      entropy: true,
    });
    token = r.logprobs;
    for (let i = 0; i < rows; i++) if (b.mask[i]) [entropy, live] = [entropy + r.entropy![i], live + 1];
  } else {
    const logits = policy.logits(b.prompts, b.targets);
    const [rows, vocab] = logits.shape;
    const z = scaled(logits.dataSync() as Float32Array, vocab, rows / N);
    logits.dispose();
    const r = tokenLogprobs({ logits: z, targets: b.targets, mask: b.mask, rows, vocab, temperature });
    token = r.logprobs;
    for (let i = 0; i < rows; i++) {
      if (!b.mask[i]) continue;
      for (let v = 0; v < vocab; v++) {
        const lp = z[i * vocab + v] / temperature - r.logZ[i];
        entropy -= Math.exp(lp) * lp;
      }
      live++;
    }
  }
  const T = token.length / N;
  const seq = new Float64Array(N);
  for (let i = 0; i < token.length; i++) if (b.mask[i]) seq[Math.floor(i / T)] += b.mask[i] * token[i];
  return { token, seq, entropy: live ? entropy / live : 0 };
}

/** Which prompts an evaluation draws: the task's held-out test prompts (the figures reported), or
 *  its validation prompts (for tuning, apart from them). */
export type EvalSplit = 'test' | 'validation';

/** What a task's `who`(n) returned, held to n prompts: a task that gives fewer or more would
 *  turn an accuracy (counted over n) into another number, a step into other groups. */
export function checkPrompts(got: unknown, n: number, who: string): number[][] {
  if (!Array.isArray(got))
    throw new TypeError(`GVPOTrainer: ${who}(${n}) must return an array of ${n} prompts, got ${describe(got)}`);
  if (got.length !== n) throw new RangeError(`GVPOTrainer: ${who}(${n}) must return ${n} prompts, got ${got.length}`);
  // a hole or a non-array would be blamed on the policy that samples from it
  for (let i = 0; i < n; i++)
    if (!Object.prototype.hasOwnProperty.call(got, i) || !Array.isArray(got[i]))
      throw new TypeError(
        `GVPOTrainer: ${who}(${n})[${i}] must be a prompt (an array of token ids), got ${describe(got[i])}`,
      );
  return got as number[][];
}

/** `n` evaluation prompts from `seed`: held-out ones where the task has a split (its validation
 *  ones for `split` 'validation', which the task must have). */
export function evaluationPrompts(task: Task, n: number, seed: number, split: EvalSplit = 'test'): number[][] {
  const rand = seeded(seed);
  if (split === 'validation') {
    if (!task.validationPrompts)
      throw new RangeError(`evaluation: the task '${task.name}' has no validation prompts (evalSplit 'validation')`);
    return checkPrompts(task.validationPrompts(n, rand), n, 'task.validationPrompts');
  }
  return task.heldOutPrompts
    ? checkPrompts(task.heldOutPrompts(n, rand), n, 'task.heldOutPrompts')
    : checkPrompts(task.samplePrompts(n, rand), n, 'task.samplePrompts');
}

/** Exact-match accuracy of greedy (argmax at every token) answers on `n` evaluation prompts from `seed` (of `split`). */
export function evaluateGreedy(policy: Policy, task: Task, n: number, seed: number, split: EvalSplit = 'test'): number {
  if (!task.answer) return NaN;
  const prompts = evaluationPrompts(task, n, seed, split);
  // a temperature of 1e-4 makes every draw the argmax unless two logits tie to 1e-4, and then
  // breaks the tie at random, from a stream apart from the prompts' (the same stream would tie
  // each token's draw to its prompt's)
  const out = policy.sample(prompts, 1e-4, seeded(seed + 2));
  let ok = 0;
  prompts.forEach((p, i) => {
    const want = task.answer!(p);
    if (want.length === out[i].length && want.every((t, j) => t === out[i][j])) ok++;
  });
  return ok / n;
}

/** A reward function's value as a number (a boolean, a pass/fail check, counts 1 or 0), or a
 *  TypeError (not a number: a Promise says where an async reward goes) or RangeError (not finite)
 *  naming `who` and the response it scored (`where`). */
export function finiteReward(got: unknown, who: string, where: string): number {
  const v = typeof got === 'boolean' ? Number(got) : got;
  if (typeof v === 'number' && Number.isFinite(v)) return v;
  const E = typeof v === 'number' ? RangeError : TypeError;
  const why =
    got instanceof Promise
      ? ": this evaluation calls task.reward synchronously (a trainer step's evaluation, evalEvery, awaits an async one; in training an async reward may also go in the trainer's `rewards`)"
      : '';
  throw new E(`${who} must return a finite number, got ${describe(v)} for ${where}${why}`);
}

/** What a sampled evaluation scores: `samples` responses per evaluation prompt (`n` from `seed`,
 *  of `split`), sampled at `temperature`, and the task.reward call of each. */
function sampledForEvaluation(
  policy: Policy,
  task: Task,
  n: number,
  seed: number,
  temperature = 1,
  samples = 1,
  split: EvalSplit = 'test',
): Array<{ score: () => unknown; where: string }> {
  const prompts = evaluationPrompts(task, n, seed, split).flatMap((p) => Array.from({ length: samples }, () => p));
  const out = policy.sample(prompts, temperature, seeded(seed + 1));
  return prompts.map((p, i) => ({
    score: () => task.reward([...p], [...out[i]]),
    where: `[${out[i].join(', ')}] of prompt [${p.join(', ')}]`,
  }));
}

type EvaluationDraw = Parameters<typeof sampledForEvaluation>;

/** Mean task reward (task.reward, called synchronously) of the draw's responses
 *  (sampledForEvaluation). A reward that is not a finite number (a Promise: an async reward) is
 *  refused with the prompt and response it came from. */
export function evaluateSampled(...draw: EvaluationDraw): number {
  const scored = sampledForEvaluation(...draw);
  let sum = 0;
  for (const { score, where } of scored) sum += finiteReward(score(), 'evaluation: task.reward', where);
  return sum / scored.length;
}

/** evaluateSampled with task.reward awaited: a task whose reward is async (a judge served
 *  elsewhere) is evaluated too. The same prompts and responses, their rewards awaited together. */
export async function evaluateSampledAsync(...draw: EvaluationDraw): Promise<number> {
  const scored = sampledForEvaluation(...draw);
  const got = await Promise.all(scored.map(({ score }) => score()));
  let sum = 0;
  scored.forEach(({ where }, i) => (sum += finiteReward(got[i], 'evaluation: task.reward', where)));
  return sum / scored.length;
}
