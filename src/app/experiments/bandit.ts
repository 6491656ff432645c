// One run on the bandit whose optimum is known in closed form: 4 prompts x 6 one-token responses
// with fixed rewards (seed 7), a tabular softmax policy initialized per seed, the reference frozen
// at that initial policy, so that pi* = pi_ref exp(R/c)/Z for KL strength c. Groups come from the
// policy itself or from a sampler whose probabilities are known (and handed to the trainer, so
// the baselines' importance ratios are the correct ones); GVPO uses none.
import { BanditTask, meanKl, tiltedOptimum } from '../../tasks/bandit.js';
import { seeded } from '../../tasks/task.js';
import { TabularPolicy } from '../../tfjs/policies.js';
import { loadTf, type TfChoice } from '../../tfjs/tf.js';
import { GVPOTrainer } from '../../tfjs/trainer.js';
import type { ExternalSampler, StepMetrics, TermsAblation, TrainerOptions } from '../../tfjs/trainerOptions.js';
import { type MethodId, methodOptions } from './methods.js';

export type Sampler = 'on-policy' | 'uniform' | 'skewed' | 'demonstrations' | 'half replay';
export const SAMPLERS: Sampler[] = ['on-policy', 'uniform', 'skewed', 'demonstrations', 'half replay'];

export const BANDIT = { prompts: 4, responses: 6, rewardSeed: 7, groupSize: 8, promptsPerStep: 8, miniBatches: 4 };

export interface BanditSpec {
  method: MethodId;
  sampler: Sampler;
  /** KL strength: GVPO's beta, the baselines' KL coefficient. */
  coef: number;
  lr: number;
  seed: number;
  steps: number;
  terms?: TermsAblation;
  /** Adam at `lr` (default), or plain SGD at `lr`. */
  optimizer?: 'adam' | 'sgd';
}

export interface BanditResult {
  /** [step, KL(pi* || pi)] every 5 steps, and [step, KL(pi || pi_ref)]. */
  toOptimum: Array<[number, number]>;
  fromRef: Array<[number, number]>;
  /** At the end: KL(pi* || pi), KL(pi || pi_ref), E_pi[R] and E_pi*[R] (means over prompts). */
  final: number;
  klRef: number;
  reward: number;
  optimumReward: number;
  /** Per step: GVPO's terms (a diagnostic for every method), the loss, the clip fraction. */
  metrics: Array<Pick<StepMetrics, 'step' | 'advantage' | 'trustRegion' | 'variance' | 'loss' | 'clipFraction'>>;
}

function draw(p: ArrayLike<number>, rand: () => number): number {
  let u = rand();
  for (let i = 0; i < p.length; i++) if ((u -= p[i]) <= 0) return i;
  return p.length - 1;
}

/** A fixed distribution per prompt as an external sampler that gives its log-probs. */
function fixed(probs: (prompt: number) => number[]): ExternalSampler {
  return (prompt, k, rand) => {
    const p = probs(prompt[0]);
    const responses = Array.from({ length: k }, () => [draw(p, rand)]);
    return { responses, tokenLogprobs: responses.map(([y]) => [Math.log(p[y])]) };
  };
}

/** The sampler's trainer options: an external distribution, replay, or none (on-policy). */
export function samplerOptions(s: Sampler, task: BanditTask): Partial<TrainerOptions> {
  const V = task.vocab;
  if (s === 'uniform') return { externalResponses: fixed(() => Array(V).fill(1 / V)) };
  if (s === 'skewed') return { externalResponses: fixed(() => [0.4, 0.25, 0.15, 0.1, 0.06, 0.04]) };
  if (s === 'demonstrations') {
    // an expert: 80% from softmax(R/0.1) (mostly the best answers), 20% uniform so it covers pi_ref's support
    return {
      externalResponses: fixed((p) => {
        const e = task.rewards[p].map((r) => Math.exp(r / 0.1));
        const z = e.reduce((a, b) => a + b);
        return e.map((x) => (0.8 * x) / z + 0.2 / V);
      }),
    };
  }
  if (s === 'half replay') return { replay: { ratio: 0.5, capacity: 64 } };
  return {};
}

const expectedReward = (pi: Float64Array[], task: BanditTask) =>
  pi.reduce((a, p, i) => a + p.reduce((b, q, k) => b + q * task.rewards[i][k], 0), 0) / pi.length;

/** The initial (and reference) policy of a seed: logits uniform in [-1, 1]. */
export function initialLogits(seed: number): Float32Array {
  const r = seeded(seed * 7919);
  return Float32Array.from({ length: BANDIT.prompts * BANDIT.responses }, () => r() * 2 - 1);
}

export async function banditRun(tfChoice: TfChoice, s: BanditSpec): Promise<BanditResult> {
  const { tf } = await loadTf(tfChoice);
  const task = new BanditTask(BANDIT.prompts, BANDIT.responses, BANDIT.rewardSeed);
  const policy = new TabularPolicy(tf, BANDIT.prompts, BANDIT.responses, initialLogits(s.seed));
  const ref = policy.probs();
  const target = tiltedOptimum(ref, task.rewards, s.coef);
  const metrics: BanditResult['metrics'] = [];
  const trainer = new GVPOTrainer({
    tf,
    policy,
    task,
    groupSize: BANDIT.groupSize,
    promptsPerStep: BANDIT.promptsPerStep,
    miniBatches: BANDIT.miniBatches,
    ...(s.optimizer === 'sgd' ? { optimizer: tf.train.sgd(s.lr) } : { learningRate: s.lr }),
    reference: 'frozen',
    seed: s.seed,
    terms: s.terms,
    ...methodOptions(s.method, s.coef),
    ...samplerOptions(s.sampler, task),
    onMetrics: (m) =>
      metrics.push({
        step: m.step,
        advantage: m.advantage,
        trustRegion: m.trustRegion,
        variance: m.variance,
        loss: m.loss,
        clipFraction: m.clipFraction,
      }),
  });
  const toOptimum: Array<[number, number]> = [[0, meanKl(target, ref)]];
  const fromRef: Array<[number, number]> = [[0, 0]];
  for (let step = 1; step <= s.steps; step++) {
    await trainer.step();
    if (step % 5 === 0 || step === s.steps) {
      const pi = policy.probs();
      toOptimum.push([step, meanKl(target, pi)]);
      fromRef.push([step, meanKl(pi, ref)]);
    }
  }
  const pi = policy.probs();
  policy.theta.dispose();
  return {
    toOptimum,
    fromRef,
    final: toOptimum.at(-1)![1],
    klRef: fromRef.at(-1)![1],
    reward: expectedReward(pi, task),
    optimumReward: expectedReward(target, task),
    metrics,
  };
}

/** The exact frontier of a seed's reference: (KL(pi*_c || pi_ref), E_pi*_c[R]) over strengths c. */
export function frontier(seed: number, coefs: number[]): Array<{ coef: number; kl: number; reward: number }> {
  const task = new BanditTask(BANDIT.prompts, BANDIT.responses, BANDIT.rewardSeed);
  const logits = initialLogits(seed);
  const ref = Array.from({ length: BANDIT.prompts }, (_, p) => {
    const row = Array.from(logits.subarray(p * BANDIT.responses, (p + 1) * BANDIT.responses));
    const m = Math.max(...row);
    const e = row.map((x) => Math.exp(x - m));
    const z = e.reduce((a, b) => a + b);
    return Float64Array.from(e, (x) => x / z);
  });
  return coefs.map((coef) => {
    const pi = tiltedOptimum(ref, task.rewards, coef);
    return { coef, kl: meanKl(pi, ref), reward: expectedReward(pi, task) };
  });
}
