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
import { seeded, type Task } from '../tasks/task.js';
import { TRAINER_DEFAULTS } from './defaults.js';
import { hasFusedHead } from './fusedHeadPolicy.js';
import { atTemperatures, gvpoTermsLoss, type GvpoTerms, type MiniBatchTensors, policyGradientLoss, sequenceLogprobsTf } from './losses.js';
import { gvpoFromLogitsTf } from './ops.js';
import type { Policy } from './policies.js';
import { type Batch, evaluateGreedy, evaluateSampled, type Group, logprobsOf, packBatch, subset } from './batch.js';

type Tf = typeof TF;
export type Algo = 'gvpo' | 'grpo' | 'drgrpo';
export type { GvpoTerms };

export interface RewardSpec {
  fn: (prompt: number[], response: number[]) => number | Promise<number>;
  weight?: number;
}

export interface TrainerOptions {
  tf: Tf;
  policy: Policy;
  task: Task;
  algo?: Algo;
  beta?: number;
  groupSize?: number;
  promptsPerStep?: number;
  /** Optimizer updates per pass over the step's groups (whole groups per mini-batch). */
  miniBatches?: number;
  epochs?: number;
  learningRate?: number;
  optimizer?: TF.Optimizer;
  /** Sampling temperature of the current policy; the losses' log-probs are taken at it too. */
  temperature?: number;
  reference?: 'previous' | 'frozen';
  /** The frozen reference (default: a copy of the policy at construction). */
  referencePolicy?: Policy;
  rewards?: RewardSpec[];
  /** Share of each step's groups drawn from a buffer of earlier policies' groups. */
  replay?: { ratio: number; capacity?: number };
  /** Externally supplied responses (demonstrations, a fixed distribution): k per prompt. */
  externalResponses?: (prompt: number[], k: number, rand: () => number) => number[][];
  /** Share of the non-replayed groups taken from externalResponses (1: all). */
  externalRatio?: number;
  /** GRPO / Dr.GRPO: clip range of the ratio and k3 KL coefficient to pi_theta'. */
  clip?: number;
  klCoef?: number;
  /** GVPO: keep all terms, or drop the variance or trust-region term (ablations). */
  terms?: GvpoTerms;
  seed?: number;
  /**
   * Every `evalEvery` steps (0: never), on `evalPrompts` evaluation prompts (the task's held-out
   * split where it has one): greedy exact-match accuracy and the reward sampled at temperature 1.
   */
  evalEvery?: number;
  evalPrompts?: number;
  onMetrics?: (m: StepMetrics) => void;
}

export interface StepMetrics {
  step: number;
  algo: Algo;
  /** The loss minimised, averaged over the step's mini-batch updates. */
  loss: number;
  /** GVPO's terms at each update (for every algorithm: a diagnostic), averaged like the loss. */
  advantage: number;
  trustRegion: number;
  variance: number;
  constant: number;
  /** Mean and std of the rewards of all the step's groups (replayed and external included). */
  rewardMean: number;
  rewardStd: number;
  /** Mean reward of the groups the current policy sampled this step (NaN when none). */
  rewardPolicy: number;
  /** Share of the step's groups whose k rewards are all equal: no signal for any group-relative method. */
  zeroVariance: number;
  /** KL(pi_theta' || pi) after the step's updates and KL to the initial policy (k3 estimates). */
  klPrevious: number;
  klInitial: number;
  entropy: number;
  /** GRPO / Dr.GRPO: share of response tokens whose ratio left [1 - clip, 1 + clip]. */
  clipFraction: number;
  updates: number;
  /** On evaluation steps: greedy exact-match accuracy and the reward sampled at temperature 1. */
  accuracy?: number;
  evalReward?: number;
  tokensPerSecond: number;
  seconds: number;
}

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
  /**
   * The temperature fresh groups are sampled at (may be changed between steps, e.g. annealed);
   * a group keeps the one it was sampled at, also when replayed.
   */
  temperature: number;
  private readonly o: TrainerOptions;
  private readonly optimizer: TF.Optimizer;
  private readonly rand: () => number;
  private readonly initial: Policy;
  private readonly frozen?: Policy;
  private readonly buffer: Group[] = [];
  private stepCount = 0;

  constructor(o: TrainerOptions) {
    const d = TRAINER_DEFAULTS;
    this.o = o;
    this.tf = o.tf;
    this.policy = o.policy;
    this.task = o.task;
    this.algo = o.algo ?? d.algo;
    this.beta = o.beta ?? d.beta;
    this.k = o.groupSize ?? d.groupSize;
    this.temperature = o.temperature ?? d.temperature;
    if (!Number.isInteger(this.k) || this.k < 2) throw new RangeError(`GVPOTrainer: groupSize must be an integer >= 2, got ${this.k}`);
    if (!(this.beta > 0)) throw new RangeError(`GVPOTrainer: beta must be > 0, got ${this.beta}`);
    const mb = o.miniBatches ?? d.miniBatches;
    if (!Number.isInteger(mb) || mb < 1) throw new RangeError(`GVPOTrainer: miniBatches must be an integer >= 1, got ${mb}`);
    const ratio = o.replay?.ratio ?? 0;
    if (!(ratio >= 0 && ratio < 1)) throw new RangeError(`GVPOTrainer: replay.ratio must lie in [0, 1), got ${ratio}`);
    this.optimizer = o.optimizer ?? o.tf.train.adam(o.learningRate ?? d.learningRate);
    this.rand = seeded(o.seed ?? d.seed);
    this.initial = o.policy.clone();
    if ((o.reference ?? d.reference) === 'frozen') this.frozen = o.referencePolicy ?? o.policy.clone();
  }

  /** One step: sample and score groups, log-probs of pi_theta', the updates, the metrics. */
  async step(): Promise<StepMetrics> {
    const t0 = performance.now();
    const groups = await this.sampleGroups();
    const batch = this.prepare(groups);
    const totals = this.update(batch);
    return this.measure(batch, totals, t0);
  }

  /** Fresh groups from the policy or the external sampler, then replayed ones (not rescored). */
  private async sampleGroups(): Promise<Group[]> {
    const P = this.o.promptsPerStep ?? TRAINER_DEFAULTS.promptsPerStep;
    const nReplay = Math.min(this.buffer.length, Math.round((this.o.replay?.ratio ?? 0) * P));
    const fresh = P - nReplay;
    const prompts = this.task.samplePrompts(fresh, this.rand);
    const nExternal = this.o.externalResponses ? Math.round((this.o.externalRatio ?? TRAINER_DEFAULTS.externalRatio) * fresh) : 0;
    const groups: Group[] = [];
    for (let i = 0; i < nExternal; i++) {
      const responses = this.o.externalResponses!(prompts[i], this.k, this.rand);
      groups.push({ prompt: prompts[i], responses, rewards: await this.score(prompts[i], responses), source: 'external', temperature: this.temperature });
    }
    const own = prompts.slice(nExternal);
    const sampled = this.policy.sample(own.flatMap((p) => Array.from({ length: this.k }, () => p)), this.temperature, this.rand);
    for (let i = 0; i < own.length; i++) {
      const responses = sampled.slice(i * this.k, (i + 1) * this.k);
      groups.push({ prompt: own[i], responses, rewards: await this.score(own[i], responses), source: 'policy', temperature: this.temperature });
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

  private async score(prompt: number[], responses: number[][]): Promise<number[]> {
    const specs = this.o.rewards ?? [{ fn: (p: number[], r: number[]) => this.task.reward(p, r), weight: 1 }];
    return Promise.all(responses.map(async (r) => {
      let total = 0;
      for (const s of specs) total += (s.weight ?? 1) * (await s.fn(prompt, r));
      return total;
    }));
  }

  /**
   * Packs the groups and computes, before any update and at each group's sampling temperature,
   * the log-probs of pi_theta' (Sref), of the policy that sampled each group (GRPO's ratio) and
   * of the initial policy; fresh groups enter the replay buffer with their generating policy's
   * token log-probs and their temperature.
   */
  private prepare(groups: Group[]): Batch {
    const b = packBatch(groups, this.k, this.policy.maxTokens);
    // the current policy at the sampling temperature is the distribution fresh groups came from
    const current = logprobsOf(this.policy, b);
    const ref = this.frozen ? logprobsOf(this.frozen, b) : current;
    const T = this.policy.maxTokens;
    const behaviour = Float32Array.from(current.token);
    groups.forEach((g, i) => {
      const span = [i * this.k * T, (i + 1) * this.k * T] as const;
      if (g.source === 'replay') behaviour.set(g.behaviourTokens!, span[0]);
      else if (this.o.replay && g.source === 'policy') this.remember({ ...g, behaviourTokens: current.token.slice(...span) });
    });
    const init = logprobsOf(this.initial, b);
    return { ...b, refSeq: ref.seq, refTok: ref.token, behaviourTok: behaviour, currentSeq: current.seq, initSeq: init.seq, entropy: current.entropy };
  }

  private remember(g: Group): void {
    this.buffer.push(g);
    if (this.buffer.length > (this.o.replay?.capacity ?? TRAINER_DEFAULTS.replayCapacity)) this.buffer.shift();
  }

  /** `epochs` shuffled passes over the groups, `miniBatches` optimizer updates per pass. */
  private update(b: Batch): UpdateTotals {
    const G = b.rewards.length / this.k;
    const order = Array.from({ length: G }, (_, g) => g);
    const perBatch = Math.ceil(G / (this.o.miniBatches ?? TRAINER_DEFAULTS.miniBatches));
    const t: UpdateTotals = { loss: 0, advantage: 0, trustRegion: 0, variance: 0, constant: 0, clipFraction: 0, updates: 0 };
    for (let e = 0; e < (this.o.epochs ?? TRAINER_DEFAULTS.epochs); e++) {
      for (let i = G - 1; i > 0; i--) {
        const j = Math.floor(this.rand() * (i + 1));
        [order[i], order[j]] = [order[j], order[i]];
      }
      for (let s = 0; s < G; s += perBatch) this.updateOn(subset(b, order.slice(s, s + perBatch), this.k), t);
    }
    for (const key of ['loss', 'advantage', 'trustRegion', 'variance', 'constant', 'clipFraction'] as const) t[key] /= Math.max(t.updates, 1);
    return t;
  }

  /** One optimizer update on one mini-batch; adds its loss and GVPO's terms at that point to `t`. */
  private updateOn(mb: Batch, t: UpdateTotals): void {
    let S: Float64Array | undefined;
    const fused = this.algo === 'gvpo' && (this.o.terms ?? TRAINER_DEFAULTS.terms) === 'all' && hasFusedHead(this.policy);
    // the fused LM head never materialises the logits in its loss: S for the diagnostics comes
    // from a separate no-gradient pass, at the same weights the gradient is taken at
    if (fused) S = logprobsOf(this.policy, mb).seq;
    const loss = this.optimizer.minimize(() => {
      if (fused && hasFusedHead(this.policy)) {
        return this.policy.fusedLoss(mb.prompts, mb.targets, {
          targets: mb.targets, mask: mb.mask, sequences: mb.rewards.length, referenceLogprobs: mb.refSeq, rewards: mb.rewards,
          groups: { size: this.k }, beta: this.beta, temperatures: mb.temperatures,
        });
      }
      const { x: logits, temperature } = atTemperatures(this.tf, this.policy.logits(mb.prompts, mb.targets), mb.temperatures, this.policy.maxTokens);
      const tensors: MiniBatchTensors = { logits, targets: mb.targets, mask: mb.mask, rewards: mb.rewards, groupSize: this.k, tokens: this.policy.maxTokens, temperature };
      if (this.algo !== 'gvpo') {
        S = Float64Array.from(sequenceLogprobsTf(this.tf, tensors).dataSync());
        return policyGradientLoss(this.tf, tensors, {
          algo: this.algo, behaviourTokens: mb.behaviourTok, referenceTokens: mb.refTok,
          clip: this.o.clip ?? TRAINER_DEFAULTS.clip, klCoef: this.o.klCoef ?? TRAINER_DEFAULTS.klCoef,
          onClipFraction: (f) => { t.clipFraction += f; },
        });
      }
      const terms = this.o.terms ?? TRAINER_DEFAULTS.terms;
      if (terms !== 'all') {
        const s = sequenceLogprobsTf(this.tf, tensors);
        S = Float64Array.from(s.dataSync());
        return gvpoTermsLoss(this.tf, s, mb.refSeq, tensors, this.beta, terms);
      }
      const r = gvpoFromLogitsTf(this.tf, logits, {
        targets: mb.targets, mask: mb.mask, sequences: mb.rewards.length, tokens: this.policy.maxTokens, vocab: this.policy.vocab,
        referenceLogprobs: mb.refSeq, rewards: mb.rewards, groups: { size: this.k }, beta: this.beta, temperature,
      });
      S = r.result().policyLogprobs; // the kernel ran in the forward pass
      return r.loss;
    }, true, this.policy.variables);
    t.loss += loss!.dataSync()[0];
    loss!.dispose();
    const terms = gvpoLoss({ policyLogprobs: S!, referenceLogprobs: mb.refSeq, rewards: mb.rewards, groups: { size: this.k }, beta: this.beta }).terms;
    t.advantage += terms.advantage;
    t.trustRegion += terms.trustRegion;
    t.variance += terms.variance;
    t.constant += terms.constant;
    t.updates++;
  }

  private measure(b: Batch, t: UpdateTotals, t0: number): StepMetrics {
    const after = logprobsOf(this.policy, b);
    // k3 estimates on the step's sequences: r - 1 - log r with r = pi_other / pi
    const k3 = (logRatio: number) => Math.exp(logRatio) - 1 - logRatio;
    const N = b.rewards.length;
    let klPrev = 0;
    let klInit = 0;
    for (let n = 0; n < N; n++) {
      klPrev += k3(b.currentSeq[n] - after.seq[n]);
      klInit += k3(b.initSeq[n] - after.seq[n]);
    }
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
    const every = this.o.evalEvery ?? TRAINER_DEFAULTS.evalEvery;
    const seconds = (performance.now() - t0) / 1000;
    const m: StepMetrics = {
      step, algo: this.algo, loss: t.loss, advantage: t.advantage, trustRegion: t.trustRegion, variance: t.variance, constant: t.constant,
      rewardMean: mean, rewardStd: std, rewardPolicy: ownCount ? own / ownCount : NaN, zeroVariance: flat / (N / this.k), klPrevious: klPrev / N, klInitial: klInit / N, entropy: b.entropy,
      clipFraction: t.clipFraction, updates: t.updates, tokensPerSecond: (tokens * (this.o.epochs ?? TRAINER_DEFAULTS.epochs)) / seconds, seconds,
    };
    if (every > 0 && step % every === 0) {
      const n = this.o.evalPrompts ?? TRAINER_DEFAULTS.evalPrompts;
      m.accuracy = this.evaluate(n);
      m.evalReward = this.evaluateReward(n);
    }
    this.o.onMetrics?.(m);
    return m;
  }

  /** Exact-match accuracy of greedy answers on `n` evaluation prompts (held-out where the task has a split), fixed by `seed`. */
  evaluate(n: number, seed = 12345): number {
    return evaluateGreedy(this.policy, this.task, n, seed);
  }

  /** Mean reward of one response sampled at `temperature` for each of the same `n` evaluation prompts. */
  evaluateReward(n: number, temperature = 1, seed = 12345): number {
    return evaluateSampled(this.policy, this.task, n, seed, temperature);
  }
}
