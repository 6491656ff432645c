// GVPO's theorems on a policy small enough to solve exactly (a softmax over 6 responses for each
// of 4 prompts), through the trainer:
//   1. the unique minimizer is pi* = pi_ref exp(R/beta) / Z
//   2. it is reached when responses come from any sampling distribution covering pi_ref's
//      support (on-policy, uniform, a skewed fixed one), with no importance weights
//   3. n exactly solved steps, each against the previous policy, give pi_0 exp(n R / beta) / Z
import { describe, expect, it } from 'vitest';
import { BanditTask, GVPOTrainer, loadTf, meanKl, TabularPolicy, tiltedOptimum } from '../src/tfjs/index.js';
import { seeded } from '../src/tasks/task.js';

const { tf } = await loadTf('cpu');

function setup(seed: number) {
  const task = new BanditTask(4, 6, seed);
  const r = seeded(seed + 1);
  const init = Float32Array.from({ length: 24 }, () => r() * 2 - 1);
  return { task, policy: new TabularPolicy(tf, 4, 6, init) };
}

const skew = [0.4, 0.25, 0.15, 0.1, 0.06, 0.04];
const SAMPLERS: Record<string, ((p: number[], k: number, rand: () => number) => number[][]) | undefined> = {
  'on-policy': undefined,
  uniform: (_p, k, rand) => Array.from({ length: k }, () => [Math.floor(rand() * 6)]),
  'skewed fixed': (_p, k, rand) =>
    Array.from({ length: k }, () => {
      let u = rand();
      for (let i = 0; i < 6; i++) if ((u -= skew[i]) <= 0) return [i];
      return [5];
    }),
};

describe('Theorems 1 and 2: convergence to pi_ref exp(R/beta)/Z from any sampling distribution', () => {
  for (const [name, sampler] of Object.entries(SAMPLERS)) {
    it(`${name} sampling reaches KL(pi* || pi) < 1e-3`, async () => {
      const beta = 0.5;
      const { task, policy } = setup(3);
      const ref = policy.probs();
      const target = tiltedOptimum(ref, task.rewards, beta);
      const trainer = new GVPOTrainer({
        tf,
        policy,
        task,
        beta,
        groupSize: 8,
        promptsPerStep: 8,
        miniBatches: 1,
        learningRate: 0.05,
        reference: 'frozen',
        externalResponses: sampler,
        seed: 11,
      });
      const start = meanKl(target, policy.probs());
      for (let s = 0; s < 400; s++) await trainer.step();
      const kl = meanKl(target, policy.probs());
      expect(start).toBeGreaterThan(0.05);
      expect(kl).toBeLessThan(1e-3);
    });
  }
});

describe('Theorem 3: iterated exact steps against the previous policy', () => {
  it('n = 3 steps give pi_0 exp(3R/beta)/Z', async () => {
    const beta = 1;
    const { task, policy } = setup(5);
    const pi0 = policy.probs();
    // every response once per group: each step's loss pins every ratio, so many epochs solve it
    const trainer = new GVPOTrainer({
      tf,
      policy,
      task,
      beta,
      groupSize: 6,
      promptsPerStep: 16,
      miniBatches: 1,
      epochs: 400,
      learningRate: 0.05,
      reference: 'previous',
      externalResponses: (_p, k) => Array.from({ length: k }, (_, i) => [i]),
      seed: 2,
    });
    const n = 3;
    for (let s = 0; s < n; s++) await trainer.step();
    const kl = meanKl(tiltedOptimum(pi0, task.rewards, beta, n), policy.probs());
    expect(kl).toBeLessThan(1e-3);
    // and not merely one step's worth
    expect(meanKl(tiltedOptimum(pi0, task.rewards, beta, 1), policy.probs())).toBeGreaterThan(1e-2);
  });
});
