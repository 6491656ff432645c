// GVPOTrainer: the paper's Algorithm 1 on a tfjs policy, structured as the official recipe runs
// it, with GRPO and Dr.GRPO in the same loop so that one option switches algorithm.
//
// Per step: draw prompts; for each, a group of k responses from the current policy (at a
// temperature), from a replay buffer of earlier policies' groups, or from an external sampler
// (demonstrations, a fixed distribution); score them; compute, once and without gradient, the
// token log-probs of pi_theta' (the policy as it is before this step's updates, or a frozen
// model); then `epochs` passes over `miniBatches` mini-batches of whole groups, one optimizer
// update each. After the first update pi_theta' is stale, which is where GVPO's trust region
// acts. GVPO uses no importance weights; GRPO's ratio is against the policy that sampled each
// group (for a replayed group, the policy that generated it, whose log-probs the buffer keeps).
// Every log-prob a loss uses (current, sampling, reference, initial) is taken at the temperature
// its group was sampled at, as verl and TRL do: at one update per batch GRPO's ratio is exactly 1.
import type * as TF from '@tensorflow/tfjs';
import { gvpoLoss } from '../ops/gvpoLoss.js';
import { describe } from '../validate.js';
import { seeded, type Task } from '../tasks/task.js';
import {
  type Batch,
  checkPrompts,
  evaluateGreedy,
  evaluateSampled,
  evaluateSampledAsync,
  evaluationPrompts,
  finiteReward,
  type Group,
  logprobsOf,
  type Packed,
  packBatch,
  subset,
} from './batch.js';
import { atTemperatures, gvpoTermsLoss, policyGradientLoss, sequenceSums } from './losses.js';
import { gvpoFromHiddenTf, gvpoFromLogitsTf, tokenLogprobsFromHiddenTf, tokenLogprobsTf } from './ops.js';
import { hasFusedHead, type Policy } from './policy.js';
import {
  type Algo,
  resolveTrainerOptions,
  type StepMetrics,
  type TrainerConfig,
  type TrainerOptions,
  checkFields,
  checkParts,
  checkTemperature,
  EXTERNAL_GROUP_KEYS,
  seedOf,
  TRAINER_LIMITS,
} from './trainerOptions.js';

// How far above 0 an external sampler's token log-prob may lie (its float32 rounding).
const LOGPROB_ROUNDING = 1e-5;

// The largest reward magnitude (after weighting) a step takes. The losses hold the group-centred
// rewards in float32 (|R - mean R| <= 2e15) and square them there: GVPO's terms loss adds
// sum (a + beta q)^2 / 2 over a mini-batch of up to 2^20 sequences to a float32 scalar (at most
// 2^20 x 4e30 / 2, about 2e36, under float32's 3.4e38), the fused GVPO kernels hand back the loss
// (half the square of c, which holds the centred reward) and the gradient (beta c / (k-1) times
// the softmax's) in float32, and Adam squares gradients that scale with the rewards. GRPO's std
// is taken in float64, but its centred rewards are float32 too. A reward of 1e39 was Infinity
// there and turned every weight NaN; 1e6 trains as 1 does.
const MAX_REWARD = 1e15;

type Tf = typeof TF;

/** The seed of the evaluation prompts (and of their draws) unless the caller gives one: every
 *  evaluation of a run is on the same prompts. */
const EVAL_SEED = 12345;

/**
 * `got` as `count` responses of token ids, each of 1 to `maxTokens` ids in [0, vocab): what the
 * policy's sample() and an external sampler hand the trainer, checked before anything is scored
 * (a response of 1.5 would train as token 1; an empty one has nothing to train; a longer one would
 * be scored whole and trained on its prefix). `who` names where they came from, `expected` what
 * they should be, `shown` what a wrong kind is shown as.
 */
function checkResponses(
  got: unknown,
  count: number,
  vocab: number,
  maxTokens: number,
  who: string,
  expected: string,
  shown: unknown = got,
): number[][] {
  if (!Array.isArray(got) || got.length !== count)
    throw new RangeError(
      `GVPOTrainer: ${who} must return ${expected}, got ${Array.isArray(got) ? `${got.length}` : describe(shown)}`,
    );
  const out: number[][] = [];
  for (let i = 0; i < count; i++) {
    const r: unknown = got[i]; // an index loop: a hole in a sparse array is a missing response
    if (!Array.isArray(r) && !(ArrayBuffer.isView(r) && !(r instanceof DataView)))
      throw new TypeError(`GVPOTrainer: ${who}: response ${i} must be an array of token ids, got ${describe(r)}`);
    const ids = Array.from(r as ArrayLike<unknown>);
    const at = ids.findIndex((t) => typeof t !== 'number' || !Number.isInteger(t) || t < 0 || t >= vocab);
    if (at >= 0)
      throw new RangeError(
        `GVPOTrainer: ${who}: response ${i} holds ${describe(ids[at])} at position ${at}, not a token id in [0, ${vocab})`,
      );
    if (ids.length < 1 || ids.length > maxTokens)
      throw new RangeError(
        `GVPOTrainer: ${who}: response ${i} has ${ids.length} tokens; a response needs 1 to policy.maxTokens = ${maxTokens}`,
      );
    out.push(ids as number[]);
  }
  return out;
}

/** What failed after a step's updates (its evaluation, onMetrics): an Error saying that the
 *  updates were made, with the step's metrics (`metrics`) and the error (`cause`). */
function afterUpdate(what: string, m: StepMetrics, e: unknown): Error {
  const why = e instanceof Error ? e.message : String(e);
  return Object.assign(
    new Error(
      `GVPOTrainer: ${what} at step ${m.step}, after the step's updates (its metrics are on this error's \`metrics\`): ${why}`,
      { cause: e },
    ),
    { metrics: m },
  );
}

/** How many evaluation prompts: an integer in [1, TRAINER_LIMITS.evalPrompts] (they are sampled
 *  all at once). */
function evalCount(n: unknown): number {
  const max = TRAINER_LIMITS.evalPrompts;
  if (typeof n !== 'number')
    throw new TypeError(`GVPOTrainer: evaluation needs an integer n in [1, ${max}] prompts, got ${describe(n)}`);
  if (!Number.isInteger(n) || n < 1 || n > max)
    throw new RangeError(`GVPOTrainer: evaluation needs an integer n in [1, ${max}] prompts, got ${describe(n)}`);
  return n;
}
export type { Algo, RewardSpec, StepMetrics, TermsAblation, TrainerOptions } from './trainerOptions.js';

interface UpdateTotals {
  loss: number;
  advantage: number;
  trustRegion: number;
  variance: number;
  constant: number;
  clipFraction: number;
  updates: number;
}

export class GVPOTrainer {
  readonly tf: Tf;
  readonly policy: Policy;
  readonly task: Task;
  readonly algo: Algo;
  readonly beta: number;
  readonly k: number;
  /** Every option, checked and resolved once. */
  readonly config: Readonly<TrainerConfig>;
  private temp: number;
  private readonly optimizer: TF.Optimizer;
  /** Whether the optimizer is the trainer's own Adam (else the caller's, with a rate of its own). */
  private readonly ownOptimizer: boolean;
  private readonly rand: () => number;
  /** The stream of the sequences drawn only to measure the KLs (see measure): training never reads it. */
  private readonly probeRand: () => number;
  private readonly initial: Policy;
  private readonly frozen?: Policy;
  /** Whether the frozen reference is the trainer's own clone (freed by dispose). */
  private readonly ownFrozen: boolean;
  private readonly buffer: Group[] = [];
  private stepCount = 0;
  /** The last step called: each step() starts when the previous one has settled. */
  private running: Promise<unknown> = Promise.resolve();
  /** Steps called and not yet settled: while any is, dispose() leaves the freeing to the last. */
  private pending = 0;
  private disposed = false;
  private freed = false;

  constructor(o: TrainerOptions) {
    const c = resolveTrainerOptions(o);
    const p = checkParts(o, c.reference);
    if (c.evalSplit === 'validation' && typeof p.task.validationPrompts !== 'function')
      throw new TypeError(
        `GVPOTrainer: evalSplit 'validation' needs a task with validationPrompts(); '${String(p.task.name)}' has none`,
      );
    // evaluation steps come after their step's update: a task that cannot give its evaluation
    // prompts (an AdditionTask holding none out, or fewer than evalPrompts) is refused here,
    // before any update, by the draw every evaluation makes. Only a split of the task's own is
    // drawn: samplePrompts, which evaluation falls back to, may be a cursor over a dataset that a
    // draw here would move.
    const split = c.evalSplit === 'validation' || typeof p.task.heldOutPrompts === 'function';
    if (c.evalEvery > 0 && split) {
      try {
        evaluationPrompts(p.task, c.evalPrompts, EVAL_SEED, c.evalSplit);
      } catch (e) {
        throw new RangeError(
          `GVPOTrainer: evalEvery ${c.evalEvery} evaluates on the task's ${c.evalSplit === 'validation' ? 'validation' : 'held-out'} prompts, which it cannot give (${(e as Error).message}); set evalEvery 0 or give the task such prompts`,
        );
      }
    }
    this.config = Object.freeze(c); // read by every step: a write would take effect half-way, unchecked
    this.tf = p.tf;
    this.policy = p.policy;
    this.task = p.task;
    this.algo = c.algo;
    this.beta = c.beta;
    this.k = c.groupSize;
    this.temp = c.temperature;
    this.ownOptimizer = p.optimizer === undefined;
    this.optimizer = p.optimizer ?? p.tf.train.adam(c.learningRate);
    this.rand = seeded(c.seed);
    this.probeRand = seeded((c.seed ^ 0x5bd1e995) >>> 0);
    this.initial = p.policy.clone();
    this.ownFrozen = c.reference === 'frozen' && p.referencePolicy === undefined;
    if (c.reference === 'frozen') this.frozen = p.referencePolicy ?? p.policy.clone();
  }

  /**
   * Frees what the trainer made: its copies of the initial policy and of the frozen reference
   * (not a referencePolicy the caller passed), its optimizer's state (not a caller's optimizer)
   * and the replay buffer. The policy stays the caller's. A step under way finishes first (and
   * the freeing waits for it), also one whose step() came just before dispose() and has not begun
   * its work; steps queued behind it, and later ones, are refused.
   */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    if (this.pending === 0) this.free();
  }

  private free(): void {
    if (this.freed) return;
    this.freed = true;
    this.initial.dispose?.();
    if (this.ownFrozen) this.frozen?.dispose?.();
    if (this.ownOptimizer) this.optimizer.dispose();
    this.buffer.length = 0;
  }

  /**
   * The temperature fresh groups are sampled at (may be changed between steps, e.g. annealed);
   * a group keeps the one it was sampled at, also when replayed.
   */
  get temperature(): number {
    return this.temp;
  }
  set temperature(t: number) {
    this.temp = checkTemperature('temperature', t);
  }

  /**
   * One step: sample and score groups, log-probs of pi_theta', the updates, the metrics. Steps
   * called without awaiting the previous one run one after another, in call order (a step that
   * began while another awaited its rewards would sample from the policy before that one's
   * updates); one that fails does not stop the next.
   */
  step(): Promise<StepMetrics> {
    // a step with none ahead of it is under way from this call, though its work starts a
    // microtask later: a dispose() meanwhile waits for it rather than refusing it
    const underWay = this.pending === 0 && !this.disposed;
    this.pending++;
    const next = this.running.then(() => this.runStep(underWay));
    this.running = next.catch(() => undefined);
    return next;
  }

  /** `underWay`: the step had none ahead of it when step() was called before any dispose(). */
  private async runStep(underWay: boolean): Promise<StepMetrics> {
    try {
      if (this.disposed && !underWay) throw new Error('GVPOTrainer: step() after dispose()');
      const t0 = performance.now();
      const groups = await this.sampleGroups();
      const batch = this.prepare(groups);
      const totals = this.update(batch);
      const m = await this.measure(batch, totals, t0);
      await this.report(m);
      return m;
    } finally {
      // the last step to settle after dispose() frees what the trainer made
      if (--this.pending === 0 && this.disposed) this.free();
    }
  }

  /** A count of `x` in expectation: its whole part, and one more with the probability of its
   *  fraction, drawn only where there is one (a whole share, 0.57 x 100 = 56.99999999999999
   *  included, leaves the random stream as it was). */
  private share(x: number): number {
    if (Math.abs(x - Math.round(x)) < 1e-9) return Math.round(x);
    const n = Math.floor(x);
    return this.rand() < x - n ? n + 1 : n;
  }

  /** Fresh groups from the policy or the external sampler, then replayed ones (not rescored). */
  private async sampleGroups(): Promise<Group[]> {
    const c = this.config;
    const P = c.promptsPerStep;
    // ratio x P groups replayed in expectation: its whole part, and one more with the probability
    // of its fraction (rounding would replay every group of a step, and so sample none ever
    // again, wherever ratio x P rounds up to P)
    const nReplay = Math.min(this.buffer.length, this.buffer.length > 0 ? this.share(c.replayRatio * P) : 0);
    const fresh = P - nReplay;
    const prompts = checkPrompts(this.task.samplePrompts(fresh, this.rand), fresh, 'task.samplePrompts');
    // the external sampler's share likewise (rounding gave 0.1 of 4 fresh groups none, ever)
    const nExternal = c.externalResponses ? this.share(c.externalRatio * fresh) : 0;
    const groups: Group[] = [];
    for (let i = 0; i < nExternal; i++) groups.push(await this.external(prompts[i]));
    const own = prompts.slice(nExternal);
    const sampled = checkResponses(
      this.policy.sample(
        own.flatMap((p) => Array.from({ length: this.k }, () => p)),
        this.temperature,
        this.rand,
      ),
      own.length * this.k,
      this.policy.vocab,
      this.policy.maxTokens,
      'policy.sample',
      `one response per prompt it was given (${own.length} prompts x groupSize ${this.k}), each an array of token ids`,
    );
    for (let i = 0; i < own.length; i++) {
      const responses = sampled.slice(i * this.k, (i + 1) * this.k);
      groups.push({
        prompt: own[i],
        responses,
        rewards: await this.score(own[i], responses),
        source: 'policy',
        temperature: this.temperature,
      });
    }
    // replayed groups: distinct, drawn uniformly from the buffer
    const idx = this.buffer.map((_, i) => i);
    for (let i = 0; i < nReplay; i++) {
      const j = i + Math.floor(this.rand() * (idx.length - i));
      [idx[i], idx[j]] = [idx[j], idx[i]];
      groups.push({ ...this.buffer[idx[i]], source: 'replay' });
    }
    return groups;
  }

  /** One external group: its responses and, where the sampler says, their token log-probs. */
  private async external(prompt: number[]): Promise<Group> {
    const T = this.policy.maxTokens;
    // a sampler may be async (a model served elsewhere); its answer is held to ExternalGroup's
    // contract. It gets a copy of the prompt: what it does to it changes nothing here.
    const got: unknown = await this.config.externalResponses!([...prompt], this.k, this.rand);
    const where = `externalResponses([${prompt.join(', ')}])`;
    // a misspelled field (logprobs for tokenLogprobs) would otherwise read as none given
    if (typeof got === 'object' && got !== null && !Array.isArray(got) && !ArrayBuffer.isView(got))
      checkFields(`${where}'s group`, got, EXTERNAL_GROUP_KEYS);
    const given = (Array.isArray(got) ? { responses: got } : (got ?? {})) as {
      responses?: unknown;
      tokenLogprobs?: unknown;
    };
    const responses = checkResponses(
      given.responses,
      this.k,
      this.policy.vocab,
      T,
      where,
      `groupSize = ${this.k} responses (an array, or { responses, tokenLogprobs? })`,
      got,
    );
    const tokenLogprobs = given.tokenLogprobs ?? undefined; // null: not given
    if (tokenLogprobs !== undefined && !(Array.isArray(tokenLogprobs) && tokenLogprobs.length === this.k))
      throw new RangeError(
        `GVPOTrainer: ${where}: tokenLogprobs must hold one entry (or null) per response, ${this.k}, got ${Array.isArray(tokenLogprobs) ? tokenLogprobs.length : describe(tokenLogprobs)}`,
      );
    for (let i = 0; i < this.k && tokenLogprobs; i++) {
      const lp = tokenLogprobs[i] as ArrayLike<number> | null | undefined;
      if (lp === null || lp === undefined) continue;
      const n = responses[i].length; // at most T (checked above)
      // one per token: more would be a log-prob of some other response, silently cut
      if (typeof lp !== 'object' || typeof lp.length !== 'number' || lp.length !== n)
        throw new RangeError(
          `GVPOTrainer: ${where}: tokenLogprobs[${i}] must hold one log-prob for each of the response's ${n} tokens, got ${typeof lp === 'object' ? `${lp.length} values` : describe(lp)}`,
        );
      // a probability is at most 1: a positive log-prob would make every importance ratio
      // against this sampler too small (and is refused for every algorithm, as NaN is); a
      // sampler's float32 rounding may leave one a hair above 0, which is let through
      for (let t = 0; t < n; t++)
        if (typeof lp[t] !== 'number' || !Number.isFinite(lp[t]) || lp[t] > LOGPROB_ROUNDING)
          throw new RangeError(
            `GVPOTrainer: ${where}: tokenLogprobs[${i}][${t}] must be a finite log-prob <= 0 (up to ${LOGPROB_ROUNDING} of rounding), got ${describe(lp[t])}`,
          );
    }
    const group: Group = {
      prompt,
      responses,
      rewards: await this.score(prompt, responses),
      source: 'external',
      temperature: this.temperature,
    };
    if (tokenLogprobs) {
      group.behaviorTokens = new Float32Array(this.k * T);
      group.behaviorKnown = responses.map((r, i) => {
        const lp = tokenLogprobs[i];
        if (!lp) return false;
        for (let t = 0; t < Math.min(r.length, T); t++) group.behaviorTokens![i * T + t] = lp[t];
        return true;
      });
    }
    return group;
  }

  /** Each response's reward (the weighted sum of the reward functions), checked to be a finite
   *  number of magnitude at most MAX_REWARD before any update uses it: a bad one is refused with
   *  the prompt and response it came from. */
  private async score(prompt: number[], responses: number[][]): Promise<number[]> {
    const own = this.config.rewards === undefined;
    const specs = this.config.rewards ?? [{ fn: (p: number[], r: number[]) => this.task.reward(p, r), weight: 1 }];
    return Promise.all(
      responses.map(async (r, i) => {
        let total = 0;
        for (const [j, s] of specs.entries()) {
          // copies: a function that writes to its arguments changes neither what is trained nor
          // what the next function scores
          const who = `GVPOTrainer: ${own ? 'task.reward' : `rewards[${j}].fn`}`;
          const where = `response ${i} [${r.join(', ')}] of prompt [${prompt.join(', ')}]`;
          total += (s.weight ?? 1) * finiteReward(await s.fn([...prompt], [...r]), who, where);
        }
        if (!Number.isFinite(total))
          throw new RangeError(
            `GVPOTrainer: the weighted reward of response ${i} of prompt [${prompt.join(', ')}] is ${total}; rewards and weights must keep it finite`,
          );
        if (Math.abs(total) > MAX_REWARD)
          throw new RangeError(
            `GVPOTrainer: the weighted reward of response ${i} [${r.join(', ')}] of prompt [${prompt.join(', ')}] is ${total}; the losses take rewards of magnitude at most 1e15 (they square them in float32)`,
          );
        return total;
      }),
    );
  }

  /**
   * Packs the groups and computes, before any update and at each group's sampling temperature,
   * the log-probs of pi_theta' (Sref), of the policy that sampled each group (GRPO's ratio) and
   * of the initial policy; fresh groups enter the replay buffer with their generating policy's
   * token log-probs and their temperature.
   */
  private prepare(groups: Group[]): Batch {
    const b = packBatch(groups, this.k, this.policy.maxTokens);
    const current = logprobsOf(this.tf, this.policy, b);
    const ref = this.frozen ? logprobsOf(this.tf, this.frozen, b) : current;
    const T = this.policy.maxTokens;
    // the current policy at the sampling temperature is the distribution fresh groups came from;
    // replayed groups keep their generator's log-probs, external ones their sampler's when known
    const behavior = Float32Array.from(current.token);
    groups.forEach((g, i) => {
      const span = [i * this.k * T, (i + 1) * this.k * T] as const;
      if (g.source === 'replay') behavior.set(g.behaviorTokens!, span[0]);
      else if (g.source === 'external' && g.behaviorTokens) {
        g.behaviorKnown!.forEach(
          (known, j) => known && behavior.set(g.behaviorTokens!.subarray(j * T, (j + 1) * T), span[0] + j * T),
        );
      } else if (this.config.replayRatio > 0 && g.source === 'policy')
        this.remember({ ...g, behaviorTokens: current.token.slice(...span) });
    });
    const init = logprobsOf(this.tf, this.initial, b);
    return {
      ...b,
      refSeq: ref.seq,
      refTok: ref.token,
      behaviorTok: behavior,
      currentSeq: current.seq,
      currentTok: current.token,
      initSeq: init.seq,
      entropy: current.entropy,
      probe: groups.some((g) => g.source === 'policy') ? undefined : this.probe(groups),
    };
  }

  /**
   * For a step with no group the policy sampled (external or replayed groups only): k responses
   * to each of its prompts from pi_theta', drawn from a stream of their own (training never sees
   * them), and their log-probs under pi_theta', on which measure() estimates the KLs.
   */
  private probe(groups: Group[]): { packed: Packed; currentSeq: Float64Array } {
    const prompts = groups.flatMap((g) => Array.from({ length: this.k }, () => g.prompt));
    const responses = this.policy.sample(prompts, this.temperature, this.probeRand);
    const packed = packBatch(
      groups.map((g, i) => ({
        prompt: g.prompt,
        responses: responses.slice(i * this.k, (i + 1) * this.k),
        rewards: new Array<number>(this.k).fill(0), // not scored: only the log-probs are used
        source: 'policy' as const,
        temperature: this.temperature,
      })),
      this.k,
      this.policy.maxTokens,
    );
    return { packed, currentSeq: logprobsOf(this.tf, this.policy, packed).seq };
  }

  private remember(g: Group): void {
    this.buffer.push(g);
    if (this.buffer.length > this.config.replayCapacity) this.buffer.shift();
  }

  /** `epochs` shuffled passes over the groups, each in mini-batches of ceil(G / miniBatches) whole
   *  groups: `miniBatches` optimizer updates per pass where G is a multiple of it, fewer elsewhere. */
  private update(b: Batch): UpdateTotals {
    const G = b.rewards.length / this.k;
    const order = Array.from({ length: G }, (_, g) => g);
    const perBatch = Math.ceil(G / this.config.miniBatches);
    const t: UpdateTotals = {
      loss: 0,
      advantage: 0,
      trustRegion: 0,
      variance: 0,
      constant: 0,
      clipFraction: 0,
      updates: 0,
    };
    for (let e = 0; e < this.config.epochs; e++) {
      for (let i = G - 1; i > 0; i--) {
        const j = Math.floor(this.rand() * (i + 1));
        [order[i], order[j]] = [order[j], order[i]];
      }
      for (let s = 0; s < G; s += perBatch) this.updateOn(subset(b, order.slice(s, s + perBatch), this.k), t);
    }
    for (const key of ['loss', 'advantage', 'trustRegion', 'variance', 'constant', 'clipFraction'] as const)
      t[key] /= Math.max(t.updates, 1);
    return t;
  }

  /** One optimizer update on one mini-batch; adds its loss and GVPO's terms at that point to `t`. */
  private updateOn(mb: Batch, t: UpdateTotals): void {
    const c = this.config;
    const T = this.policy.maxTokens;
    const N = mb.rewards.length;
    let S: Float64Array | undefined;
    // tidy: a loss that throws (a kernel refusing its input) leaves no tensor behind
    const loss = this.tf.tidy(
      () =>
        this.optimizer.minimize(
          () => {
            const x = this.differentiable(mb);
            if (this.algo === 'gvpo' && c.terms === 'all') {
              const args = {
                targets: mb.targets,
                mask: mb.mask,
                sequences: N,
                tokens: T,
                referenceLogprobs: mb.refSeq,
                rewards: mb.rewards,
                groups: { size: this.k },
                beta: this.beta,
                temperature: x.temperature,
              };
              const r =
                'hidden' in x
                  ? gvpoFromHiddenTf(this.tf, x.hidden, x.head, args)
                  : gvpoFromLogitsTf(this.tf, x.logits, { ...args, vocab: this.policy.vocab });
              S = r.result().policyLogprobs; // the kernel ran in the forward pass
              return r.loss;
            }
            const lp =
              'hidden' in x
                ? this.headTokenLogprobs(x.hidden, x.head, mb, x.temperature)
                : tokenLogprobsTf(this.tf, x.logits, mb.targets, x.temperature);
            const s = sequenceSums(this.tf, lp, mb.mask, T);
            S = Float64Array.from(s.dataSync());
            if (this.algo === 'gvpo')
              return gvpoTermsLoss(this.tf, s, mb.refSeq, mb.rewards, this.k, this.beta, c.terms);
            return policyGradientLoss(
              this.tf,
              lp,
              { targets: mb.targets, mask: mb.mask, rewards: mb.rewards, groupSize: this.k, tokens: T },
              {
                algo: this.algo,
                behaviorTokens: mb.behaviorTok,
                oldTokens: mb.currentTok,
                referenceTokens: mb.refTok,
                clip: c.clip,
                klCoef: c.klCoef,
                klIn: c.klIn,
                importanceCap: c.importanceCap,
                onClipFraction: (f) => {
                  t.clipFraction += f;
                },
              },
            );
          },
          true,
          this.policy.variables,
        ) as TF.Scalar,
    );
    t.loss += loss.dataSync()[0];
    loss.dispose();
    // the policy's weights left float32's range (an update too large for them)
    if (!S!.every(Number.isFinite)) throw this.diverged("the policy's log-probs are no longer finite");
    const terms = gvpoLoss({
      policyLogprobs: S!,
      referenceLogprobs: mb.refSeq,
      rewards: mb.rewards,
      groups: { size: this.k },
      beta: this.beta,
    }).terms;
    t.advantage += terms.advantage;
    t.trustRegion += terms.trustRegion;
    t.variance += terms.variance;
    t.constant += terms.constant;
    t.updates++;
  }

  private diverged(what: string): Error {
    const c = this.config;
    const rate = this.ownOptimizer ? `learningRate ${c.learningRate}` : "the caller's optimizer";
    // the KL strength the algorithm's loss reads: GVPO's beta, a baseline's klCoef where it has one
    const kl = this.algo === 'gvpo' ? ['beta', this.beta] : c.klCoef > 0 ? ['klCoef', c.klCoef] : undefined;
    return new Error(
      `GVPOTrainer: ${what}: its weights diverged (${rate}${kl ? `, ${kl[0]} ${kl[1]}` : ''}); lower the learning rate${kl ? ` (or ${kl[0]})` : ''}`,
    );
  }

  /**
   * What the loss differentiates, at the mini-batch's sampling temperatures: a fused-head
   * policy's hidden states and head weight (the logits never exist as a tensor), or the logits.
   */
  private differentiable(
    mb: Batch,
  ): { hidden: TF.Tensor2D; head: TF.Tensor2D; temperature: number } | { logits: TF.Tensor2D; temperature: number } {
    const T = this.policy.maxTokens;
    if (hasFusedHead(this.policy)) {
      const { x, temperature } = atTemperatures(
        this.tf,
        this.policy.hiddenStates(mb.prompts, mb.targets),
        mb.temperatures,
        T,
      );
      return { hidden: x, head: this.policy.head as TF.Tensor2D, temperature };
    }
    const { x, temperature } = atTemperatures(this.tf, this.policy.logits(mb.prompts, mb.targets), mb.temperatures, T);
    return { logits: x, temperature };
  }

  /** Token log-probs [N*T] of a fused-head policy through the per-token fused head: no logits tensor. */
  private headTokenLogprobs(hidden: TF.Tensor2D, head: TF.Tensor2D, mb: Batch, temperature: number): TF.Tensor1D {
    return tokenLogprobsFromHiddenTf(this.tf, hidden, head, { targets: mb.targets, mask: mb.mask, temperature })
      .logprobs;
  }

  /**
   * k3 estimates of KL(pi || pi_theta') and KL(pi || pi_init), pi the policy after the step's
   * updates: the mean of r - 1 - log r, r = pi_other(y) / pi(y), over sequences pi_theta' sampled
   * (taken as samples of pi): the step's own groups, else the probe's. Never negative.
   */
  private klEstimates(b: Batch): { previous: number; initial: number } {
    let on: { packed: Packed; currentSeq: Float64Array; initSeq?: Float64Array };
    if (b.probe) on = b.probe;
    else {
      const own = b.sources.flatMap((s, g) => (s === 'policy' ? [g] : []));
      const sub = own.length === b.sources.length ? b : subset(b, own, this.k);
      on = { packed: sub, currentSeq: sub.currentSeq, initSeq: sub.initSeq };
    }
    const after = logprobsOf(this.tf, this.policy, on.packed).seq;
    // a step whose last update left float32's range: say so now rather than at the next step
    if (!after.every(Number.isFinite)) throw this.diverged("the policy's log-probs are no longer finite");
    const init = on.initSeq ?? logprobsOf(this.tf, this.initial, on.packed).seq;
    const k3 = (logRatio: number) => Math.exp(logRatio) - 1 - logRatio;
    let previous = 0;
    let initial = 0;
    for (let n = 0; n < after.length; n++) {
      previous += k3(on.currentSeq[n] - after[n]);
      initial += k3(init[n] - after[n]);
    }
    return { previous: previous / after.length, initial: initial / after.length };
  }

  /** Hands a step's metrics to onMetrics, awaiting it where it is async. The step's updates are
   *  made by then: an onMetrics that throws or rejects rejects the step with an error that says
   *  so and carries the metrics (`metrics`). */
  private async report(m: StepMetrics): Promise<void> {
    try {
      await this.config.onMetrics?.({ ...m }); // a copy: what step() resolves to stays as measured
    } catch (e) {
      throw afterUpdate('onMetrics threw', m, e);
    }
  }

  private async measure(b: Batch, t: UpdateTotals, t0: number): Promise<StepMetrics> {
    const kl = this.klEstimates(b);
    const N = b.rewards.length;
    const mean = b.rewards.reduce((a, x) => a + x, 0) / N;
    const std = Math.sqrt(b.rewards.reduce((a, x) => a + (x - mean) ** 2, 0) / N);
    let own = 0;
    let ownCount = 0;
    b.sources.forEach((s, g) => {
      if (s !== 'policy') return;
      for (let i = 0; i < this.k; i++) own += b.rewards[g * this.k + i];
      ownCount += this.k;
    });
    let flat = 0;
    for (let g = 0; g < N; g += this.k) if (b.rewards.subarray(g, g + this.k).every((r) => r === b.rewards[g])) flat++;
    const tokens = b.mask.reduce((a, x) => a + (x ? 1 : 0), 0);
    const step = ++this.stepCount;
    const every = this.config.evalEvery;
    const seconds = (performance.now() - t0) / 1000;
    const m: StepMetrics = {
      step,
      algo: this.algo,
      loss: t.loss,
      advantage: t.advantage,
      trustRegion: t.trustRegion,
      variance: t.variance,
      constant: t.constant,
      rewardMean: mean,
      rewardStd: std,
      rewardPolicy: ownCount ? own / ownCount : NaN,
      klPrevious: kl.previous,
      klInitial: kl.initial,
      entropy: b.entropy,
      clipFraction: t.clipFraction,
      zeroVarianceGroups: flat / (N / this.k),
      updates: t.updates,
      tokensPerSecond: (tokens * this.config.epochs) / seconds,
      seconds,
    };
    if (every > 0 && step % every === 0) {
      try {
        // accuracy needs the task's answers; the reward is awaited (task.reward may be async)
        if (this.task.answer) m.accuracy = this.evaluate(this.config.evalPrompts);
        m.evalReward = await evaluateSampledAsync(
          this.policy,
          this.task,
          this.config.evalPrompts,
          EVAL_SEED,
          1, // evaluateReward's temperature, one response per prompt
          1,
          this.config.evalSplit,
        );
      } catch (e) {
        throw afterUpdate("the step's evaluation failed", m, e);
      }
    }
    return m;
  }

  /** Exact-match accuracy of greedy answers on `n` evaluation prompts (held-out where the task has
   *  a split; its validation prompts with evalSplit 'validation'), fixed by `seed`. */
  evaluate(n: number, seed = EVAL_SEED): number {
    if (typeof this.task.answer !== 'function')
      throw new TypeError(
        `GVPOTrainer: evaluate() measures exact-match accuracy against the task's answer(), which '${String(this.task.name)}' does not have; evaluateReward() scores with task.reward`,
      );
    return evaluateGreedy(this.policy, this.task, evalCount(n), seedOf('evaluate: seed', seed), this.config.evalSplit);
  }

  /** Mean task reward (task.reward, not the trainer's `rewards`, which shape training only: the
   *  figure stays comparable whatever rewards train) of one response sampled at `temperature` for
   *  each of the same `n` evaluation prompts. task.reward is called synchronously here. */
  evaluateReward(n: number, temperature = 1, seed = EVAL_SEED): number {
    return evaluateSampled(
      this.policy,
      this.task,
      evalCount(n),
      seedOf('evaluateReward: seed', seed),
      checkTemperature('evaluateReward: temperature', temperature),
      1,
      this.config.evalSplit,
    );
  }
}
