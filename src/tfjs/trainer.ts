// GVPOTrainer: the paper's Algorithm 1 on a tfjs policy, with GRPO and Dr.GRPO as baseline
// losses in the same loop so that one flag switches algorithm and runs compare fairly.
//
// Per step: snapshot pi_theta' (the current policy for reference 'previous', a fixed model for
// 'frozen'); draw prompts; sample k responses per prompt from the sampling distribution (the
// policy at a temperature, a replay buffer of earlier groups, or externally supplied responses);
// score them (several reward functions, sync or async, weighted); compute Sref under pi_theta'
// without gradient; then `epochs` passes of mini-batches made of whole groups, each one
// optimizer step. No importance weights anywhere for GVPO.
import type * as TF from '@tensorflow/tfjs';
import { gvpoLoss } from '../ops/gvpoLoss.js';
import { tokenLogprobs } from '../ops/tokenLogprobs.js';
import { seeded, type Task } from '../tasks/task.js';
import { hasFusedHead } from './fusedHeadPolicy.js';
import { gvpoFromLogitsTf, tokenLogprobsTf } from './ops.js';
import type { Policy } from './policies.js';

type Tf = typeof TF;
export type Algo = 'gvpo' | 'grpo' | 'drgrpo';

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
  epochs?: number;
  /** Groups per mini-batch (never splits a group); default: all groups of the step. */
  groupsPerMiniBatch?: number;
  learningRate?: number;
  optimizer?: TF.Optimizer;
  /** Sampling temperature of the current policy. */
  temperature?: number;
  reference?: 'previous' | 'frozen';
  /** The frozen reference (default: a copy of the policy at construction). */
  referencePolicy?: Policy;
  rewards?: RewardSpec[];
  /** Fraction of each step's groups drawn from a buffer of earlier groups (Sref recomputed). */
  replay?: { ratio: number; capacity?: number };
  /** Externally supplied responses (demonstrations, a fixed distribution): k per prompt. */
  externalResponses?: (prompt: number[], k: number, rand: () => number) => number[][];
  /** Fraction of groups taken from externalResponses (1: all). */
  externalRatio?: number;
  /** GRPO / Dr.GRPO: clip range and KL coefficient (to pi_theta'). */
  clip?: number;
  klCoef?: number;
  seed?: number;
  onMetrics?: (m: StepMetrics) => void;
}

export interface StepMetrics {
  step: number;
  algo: Algo;
  loss: number;
  rewardMean: number;
  rewardStd: number;
  advantage: number;
  trustRegion: number;
  variance: number;
  constant: number;
  klPrevious: number;
  klInitial: number;
  entropy: number;
  tokensPerSecond: number;
  seconds: number;
}

interface Group {
  prompt: number[];
  responses: number[][];
  rewards: number[];
}

export class GVPOTrainer {
  readonly tf: Tf;
  readonly policy: Policy;
  readonly task: Task;
  readonly algo: Algo;
  readonly beta: number;
  readonly k: number;
  private readonly o: TrainerOptions;
  private readonly optimizer: TF.Optimizer;
  private readonly rand: () => number;
  private readonly initial: Policy;
  private readonly frozen?: Policy;
  private readonly buffer: Group[] = [];
  private stepCount = 0;

  constructor(o: TrainerOptions) {
    this.o = o;
    this.tf = o.tf;
    this.policy = o.policy;
    this.task = o.task;
    this.algo = o.algo ?? 'gvpo';
    this.beta = o.beta ?? 0.1;
    this.k = o.groupSize ?? 8;
    if (this.k < 2) throw new RangeError(`GVPOTrainer: groupSize must be an integer >= 2, got ${this.k}`);
    this.optimizer = o.optimizer ?? o.tf.train.adam(o.learningRate ?? 1e-3);
    this.rand = seeded(o.seed ?? 1);
    this.initial = o.policy.clone();
    if ((o.reference ?? 'previous') === 'frozen') this.frozen = o.referencePolicy ?? o.policy.clone();
  }

  /** Pads responses to T tokens: targets (padding 0) and the mask (1 on response tokens). */
  private pack(responses: number[][]): { targets: Int32Array; mask: Float32Array } {
    const T = this.policy.maxTokens;
    const targets = new Int32Array(responses.length * T);
    const mask = new Float32Array(responses.length * T);
    responses.forEach((r, n) => r.slice(0, T).forEach((tok, t) => {
      targets[n * T + t] = tok;
      mask[n * T + t] = 1;
    }));
    return { targets, mask };
  }

  /** Token and sequence log-probs of the batch under `policy`, without gradient. */
  private logprobs(policy: Policy, prompts: number[][], targets: Int32Array, mask: Float32Array) {
    const logits = policy.logits(prompts, targets);
    const z = logits.dataSync() as Float32Array;
    const [rows, vocab] = logits.shape;
    const tok = tokenLogprobs({ logits: z, targets, mask, rows, vocab });
    // mean entropy over response tokens, from the same logits
    let ent = 0;
    let count = 0;
    for (let r = 0; r < rows; r++) {
      if (!mask[r]) continue;
      let h = 0;
      for (let v = 0; v < vocab; v++) {
        const lp = z[r * vocab + v] - tok.logZ[r];
        h -= Math.exp(lp) * lp;
      }
      ent += h;
      count++;
    }
    logits.dispose();
    const T = this.policy.maxTokens;
    const seq = new Float64Array(prompts.length);
    for (let r = 0; r < rows; r++) if (mask[r]) seq[Math.floor(r / T)] += mask[r] * tok.logprobs[r];
    return { token: tok.logprobs, seq, entropy: count ? ent / count : 0 };
  }

  private async sampleGroups(): Promise<Group[]> {
    const P = this.o.promptsPerStep ?? 8;
    const prompts = this.task.samplePrompts(P, this.rand);
    const groups: Group[] = [];
    const nReplay = Math.min(this.buffer.length, Math.round((this.o.replay?.ratio ?? 0) * P));
    const nExternal = this.o.externalResponses ? Math.round((this.o.externalRatio ?? 1) * P) : 0;
    for (let i = 0; i < P; i++) {
      if (i < nReplay) {
        groups.push(this.buffer[Math.floor(this.rand() * this.buffer.length)]);
        continue;
      }
      const prompt = prompts[i];
      const responses = i < nReplay + nExternal
        ? this.o.externalResponses!(prompt, this.k, this.rand)
        : this.policy.sample(Array.from({ length: this.k }, () => prompt), this.o.temperature ?? 1, this.rand);
      groups.push({ prompt, responses, rewards: await this.score(prompt, responses) });
    }
    if (this.o.replay) {
      const cap = this.o.replay.capacity ?? 256;
      for (const g of groups.slice(nReplay)) {
        this.buffer.push(g);
        if (this.buffer.length > cap) this.buffer.shift();
      }
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

  /** One step of Algorithm 1. */
  async step(): Promise<StepMetrics> {
    const t0 = performance.now();
    const groups = await this.sampleGroups();
    const prompts = groups.flatMap((g) => g.responses.map(() => g.prompt));
    const responses = groups.flatMap((g) => g.responses);
    const rewards = Float64Array.from(groups.flatMap((g) => g.rewards));
    const { targets, mask } = this.pack(responses);
    const offsets = Int32Array.from({ length: groups.length + 1 }, (_, g) => g * this.k);
    // pi_theta': the policy as it is now ('previous') or the fixed model ('frozen')
    const ref = this.logprobs(this.frozen ?? this.policy, prompts, targets, mask);
    const before = this.frozen ? this.logprobs(this.policy, prompts, targets, mask) : ref;
    const init = this.logprobs(this.initial, prompts, targets, mask);

    const T = this.policy.maxTokens;
    const order = groups.map((_, g) => g);
    const perBatch = this.o.groupsPerMiniBatch ?? groups.length;
    let lossSum = 0;
    let lossCount = 0;
    for (let e = 0; e < (this.o.epochs ?? 1); e++) {
      for (let i = order.length - 1; i > 0; i--) {
        const j = Math.floor(this.rand() * (i + 1));
        [order[i], order[j]] = [order[j], order[i]];
      }
      for (let b = 0; b < order.length; b += perBatch) {
        const gs = order.slice(b, b + perBatch);
        const rows = gs.flatMap((g) => Array.from({ length: this.k }, (_, i) => g * this.k + i));
        const pick = <A extends Float64Array | Float32Array | Int32Array>(a: A, width: number) => {
          const out = new (a.constructor as { new (n: number): A })(rows.length * width);
          rows.forEach((n, i) => out.set(a.subarray(n * width, (n + 1) * width), i * width));
          return out;
        };
        const mb = {
          prompts: rows.map((n) => prompts[n]),
          targets: pick(targets, T),
          mask: pick(mask, T),
          rewards: pick(rewards, 1),
          Sref: pick(ref.seq, 1),
          refTok: pick(ref.token, T),
        };
        const loss = this.optimizer.minimize(() => this.loss(mb), true, this.policy.variables);
        lossSum += loss!.dataSync()[0];
        lossCount++;
        loss!.dispose();
      }
    }
    const after = this.logprobs(this.policy, prompts, targets, mask);
    const terms = gvpoLoss({ policyLogprobs: after.seq, referenceLogprobs: ref.seq, rewards, groups: { offsets }, beta: this.beta }).terms;
    const seconds = (performance.now() - t0) / 1000;
    const k3 = (logRatio: number) => Math.exp(logRatio) - 1 - logRatio; // KL(q||p), x ~ q, logRatio = log p/q
    let klPrev = 0;
    let klInit = 0;
    for (let n = 0; n < rewards.length; n++) {
      klPrev += k3(ref.seq[n] - after.seq[n]);
      klInit += k3(init.seq[n] - after.seq[n]);
    }
    const mean = rewards.reduce((a, b) => a + b, 0) / rewards.length;
    const std = Math.sqrt(rewards.reduce((a, b) => a + (b - mean) ** 2, 0) / rewards.length);
    const tokens = mask.reduce((a, b) => a + (b ? 1 : 0), 0);
    const m: StepMetrics = {
      step: ++this.stepCount, algo: this.algo, loss: lossSum / Math.max(lossCount, 1), rewardMean: mean, rewardStd: std,
      ...terms, klPrevious: klPrev / rewards.length, klInitial: klInit / rewards.length, entropy: before.entropy,
      tokensPerSecond: (tokens * (this.o.epochs ?? 1)) / seconds, seconds,
    };
    this.o.onMetrics?.(m);
    return m;
  }

  private loss(mb: { prompts: number[][]; targets: Int32Array; mask: Float32Array; rewards: Float64Array; Sref: Float64Array; refTok: Float32Array }): TF.Scalar {
    const tf = this.tf;
    const N = mb.prompts.length;
    const T = this.policy.maxTokens;
    if (this.algo === 'gvpo' && hasFusedHead(this.policy)) {  // the logits never materialise
      return this.policy.fusedLoss(mb.prompts, mb.targets, {
        targets: mb.targets, mask: mb.mask, sequences: N, referenceLogprobs: mb.Sref, rewards: mb.rewards,
        groups: { size: this.k }, beta: this.beta,
      });
    }
    const logits = this.policy.logits(mb.prompts, mb.targets);
    if (this.algo === 'gvpo') {
      return gvpoFromLogitsTf(tf, logits, {
        targets: mb.targets, mask: mb.mask, sequences: N, tokens: T, vocab: this.policy.vocab,
        referenceLogprobs: mb.Sref, rewards: mb.rewards, groups: { size: this.k }, beta: this.beta,
      }).loss;
    }
    // GRPO / Dr.GRPO: token-level clipped ratio to pi_theta' with group advantages
    const adv = new Float32Array(N * T);
    for (let g = 0; g < N / this.k; g++) {
      const r = mb.rewards.subarray(g * this.k, (g + 1) * this.k);
      const mean = r.reduce((a, b) => a + b, 0) / this.k;
      const std = Math.sqrt(r.reduce((a, b) => a + (b - mean) ** 2, 0) / (this.k - 1));
      for (let i = 0; i < this.k; i++) {
        const a = this.algo === 'grpo' ? (r[i] - mean) / (std + 1e-6) : r[i] - mean;
        for (let t = 0; t < T; t++) adv[(g * this.k + i) * T + t] = a;
      }
    }
    const clip = this.o.clip ?? 0.2;
    const lp = tokenLogprobsTf(tf, logits, mb.targets).reshape([N, T]);
    const old = tf.tensor2d(mb.refTok, [N, T]);
    const mask = tf.tensor2d(mb.mask, [N, T]);
    const A = tf.tensor2d(adv, [N, T]);
    const ratio = tf.exp(lp.sub(old));
    let perTok = tf.minimum(ratio.mul(A), tf.clipByValue(ratio, 1 - clip, 1 + clip).mul(A)).neg();
    if (this.o.klCoef) {
      const d = old.sub(lp); // k3 estimator of KL(pi || pi_theta')
      perTok = perTok.add(tf.exp(d).sub(d).sub(1).mul(this.o.klCoef));
    }
    const masked = perTok.mul(mask);
    if (this.algo === 'grpo') return masked.sum(1).div(mask.sum(1).maximum(1)).mean() as TF.Scalar;
    return masked.sum().div(N * T) as TF.Scalar; // Dr.GRPO: a constant normaliser
  }

  /** Exact-match accuracy of greedy-ish (low temperature) answers on `n` prompts. */
  evaluate(n: number, seed = 12345, temperature = 1e-3): number {
    if (!this.task.answer) return NaN;
    const rand = seeded(seed);
    const prompts = this.task.samplePrompts(n, rand);
    const out = this.policy.sample(prompts, temperature, rand);
    let ok = 0;
    prompts.forEach((p, i) => {
      const want = this.task.answer!(p);
      if (want.length === out[i].length && want.every((t, j) => t === out[i][j])) ok++;
    });
    return ok / n;
  }
}
