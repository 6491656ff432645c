// GVPOTrainer beyond the theorems: every algorithm raises the bandit's reward; replay mixing and
// externally supplied responses feed the same loop; async and weighted rewards; metrics carry
// every field; a policy survives save/load.
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  AdditionTask,
  BanditTask,
  CharPolicy,
  GVPOTrainer,
  loadPolicy,
  loadTf,
  meanKl,
  TabularPolicy,
  tiltedOptimum,
  type StepMetrics,
} from '../src/tfjs/index.js';
import { EOS, PAD } from '../src/tasks/addition.js';
import { seeded } from '../src/tasks/task.js';

const { tf } = await loadTf('cpu');

function bandit(seed = 3) {
  const task = new BanditTask(4, 6, seed);
  const r = seeded(seed);
  return {
    task,
    policy: new TabularPolicy(
      tf,
      4,
      6,
      Float32Array.from({ length: 24 }, () => r() - 0.5),
    ),
  };
}

function expectedReward(task: BanditTask, policy: TabularPolicy): number {
  return policy.probs().reduce((s, p, i) => s + p.reduce((a, q, k) => a + q * task.rewards[i][k], 0), 0) / task.prompts;
}

describe('GVPOTrainer', () => {
  for (const algo of ['gvpo', 'grpo', 'drgrpo'] as const) {
    it(`${algo} raises the bandit's expected reward`, async () => {
      const { task, policy } = bandit();
      const before = expectedReward(task, policy);
      const t = new GVPOTrainer({
        tf,
        policy,
        task,
        algo,
        learningRate: 0.05,
        groupSize: 8,
        promptsPerStep: 8,
        seed: 4,
        klCoef: algo === 'grpo' ? 0.01 : 0,
      });
      for (let s = 0; s < 60; s++) await t.step();
      expect(expectedReward(task, policy)).toBeGreaterThan(before + 0.1);
    });
  }

  it('mixes replayed groups and external responses into the same loss, with async weighted rewards', async () => {
    const { task, policy } = bandit();
    const metrics: StepMetrics[] = [];
    let calls = 0;
    const t = new GVPOTrainer({
      tf,
      policy,
      task,
      groupSize: 8,
      learningRate: 0.05,
      seed: 5,
      replay: { ratio: 0.5, capacity: 16 },
      externalResponses: (p) => [[task.answer(p)[0]], [0], [1], [2], [3], [4], [5], [task.answer(p)[0]]],
      externalRatio: 0.25,
      rewards: [
        {
          fn: async (p, r) => {
            calls++;
            return task.reward(p, r);
          },
          weight: 2,
        },
        { fn: () => 0.5, weight: -1 },
      ],
      onMetrics: (m) => metrics.push(m),
    });
    const before = expectedReward(task, policy);
    for (let s = 0; s < 40; s++) await t.step();
    expect(calls).toBeGreaterThan(0);
    expect(expectedReward(task, policy)).toBeGreaterThan(before + 0.1);
    const m = metrics.at(-1)!;
    for (const k of [
      'loss',
      'rewardMean',
      'rewardStd',
      'rewardPolicy',
      'advantage',
      'trustRegion',
      'variance',
      'constant',
      'klPrevious',
      'klInitial',
      'entropy',
      'clipFraction',
      'tokensPerSecond',
    ]) {
      expect(Number.isFinite(m[k as keyof StepMetrics] as number), k).toBe(true);
    }
    // weighted sum: 2 * R - 0.5, so rewards live in [-0.5, 1.5]
    expect(m.rewardMean).toBeGreaterThan(-0.5);
  });

  it('a char policy saved and loaded gives the same logits', () => {
    const task = new AdditionTask();
    const p = new CharPolicy(
      tf,
      { vocab: task.vocab, window: 8, hidden: 16, maxTokens: task.maxTokens, eos: EOS, pad: PAD },
      3,
    );
    const path = join(mkdtempSync(join(os.tmpdir(), 'gvpo-')), 'p.json');
    p.save(path);
    const q = loadPolicy(tf, path);
    const prompts = task.samplePrompts(3, seeded(1));
    const responses = new Int32Array(3 * task.maxTokens).fill(1);
    expect(Array.from(q.logits(prompts, responses).dataSync())).toEqual(
      Array.from(p.logits(prompts, responses).dataSync()),
    );
  });

  it('logs the share of groups with no reward variance, and held-out greedy accuracy and reward at T = 1 on evaluation steps', async () => {
    const { task, policy } = bandit();
    const metrics: StepMetrics[] = [];
    // prompt 0 always scores 1 (a flat group), the others score the response's parity
    const rewards = [{ fn: (p: number[], r: number[]) => (p[0] === 0 ? 1 : r[0] % 2) }];
    const t = new GVPOTrainer({
      tf,
      policy,
      task,
      groupSize: 8,
      promptsPerStep: 8,
      seed: 9,
      rewards,
      evalEvery: 2,
      evalPrompts: 50,
      onMetrics: (m) => metrics.push(m),
    });
    await t.step();
    const m = await t.step();
    expect(metrics[0].accuracy).toBeUndefined();
    expect(m.accuracy).toBe(t.evaluate(50));
    expect(m.evalReward).toBe(t.evaluateReward(50));
    expect(m.evalReward!).toBeGreaterThan(0);
    // the flat groups are at least the prompt-0 ones; with 6 arms and k = 8 a parity group is rarely flat
    expect(m.zeroVarianceGroups).toBeGreaterThan(0);
    expect(m.zeroVarianceGroups).toBeLessThan(1);
    const flat = new GVPOTrainer({
      tf,
      policy: policy.clone(),
      task,
      groupSize: 4,
      seed: 9,
      rewards: [{ fn: () => 1 }],
      onMetrics: (x) => metrics.push(x),
    });
    expect((await flat.step()).zeroVarianceGroups).toBe(1);
  });

  it('refuses a group size below 2', () => {
    const { task, policy } = bandit();
    expect(() => new GVPOTrainer({ tf, policy, task, groupSize: 1 })).toThrow(RangeError);
  });
});

describe('temperature: every log-prob a loss uses is taken at the sampling temperature', () => {
  const task = new AdditionTask();
  // a random policy never adds right: reward the first token's parity so that groups vary
  const rewards = [{ fn: (_p: number[], r: number[]) => r[0] % 2 }];
  const charPolicy = (seed: number) =>
    new CharPolicy(
      tf,
      { vocab: task.vocab, window: 8, hidden: 16, maxTokens: task.maxTokens, eos: EOS, pad: PAD },
      seed,
    );

  for (const algo of ['grpo', 'drgrpo'] as const) {
    it(`${algo}: with one update per batch at T = 0.6 the ratio is exactly 1 (no token clipped, even at clip 1e-6)`, async () => {
      const metrics: StepMetrics[] = [];
      const t = new GVPOTrainer({
        tf,
        policy: charPolicy(2),
        task,
        algo,
        temperature: 0.6,
        miniBatches: 1,
        epochs: 1,
        groupSize: 4,
        promptsPerStep: 4,
        learningRate: 1e-2,
        clip: 1e-6,
        rewards,
        seed: 3,
        onMetrics: (m) => metrics.push(m),
      });
      for (let s = 0; s < 3; s++) await t.step();
      expect(metrics.map((m) => m.clipFraction)).toEqual([0, 0, 0]);
      // and a second update on the same batch does move the ratio: the check can fail
      const two: StepMetrics[] = [];
      const t2 = new GVPOTrainer({
        tf,
        policy: charPolicy(2),
        task,
        algo,
        temperature: 0.6,
        miniBatches: 1,
        epochs: 2,
        groupSize: 4,
        promptsPerStep: 4,
        learningRate: 1e-2,
        clip: 1e-6,
        rewards,
        seed: 3,
        onMetrics: (m) => two.push(m),
      });
      await t2.step();
      expect(two[0].clipFraction).toBeGreaterThan(0);
    });
  }

  it('a replayed group keeps the temperature it was sampled at', async () => {
    // learning rate 0: the policy never moves, so every ratio must be exactly 1, the replayed
    // groups' (sampled at 0.6) included, after fresh sampling moves to 1.3
    const metrics: StepMetrics[] = [];
    const t = new GVPOTrainer({
      tf,
      policy: charPolicy(5),
      task,
      algo: 'grpo',
      temperature: 0.6,
      miniBatches: 1,
      groupSize: 4,
      promptsPerStep: 4,
      optimizer: tf.train.sgd(0),
      clip: 1e-6,
      rewards,
      replay: { ratio: 0.5, capacity: 8 },
      seed: 4,
      onMetrics: (m) => metrics.push(m),
    });
    await t.step();
    t.temperature = 1.3;
    for (let s = 0; s < 2; s++) await t.step();
    expect(metrics.map((m) => m.clipFraction)).toEqual([0, 0, 0]);
  });

  it('GVPO at T = 0.5 reaches the optimum of the tempered policy: softmax(theta/T) = pi_ref,T exp(R/beta)/Z', async () => {
    const T = 0.5,
      beta = 0.5;
    const { task: bt, policy } = bandit(6);
    const tempered = () =>
      policy.probs().map((p) => {
        const z = Array.from(p, (q) => Math.log(q) / T);
        const m = Math.max(...z);
        const e = z.map((x) => Math.exp(x - m));
        const s = e.reduce((a, b) => a + b);
        return Float64Array.from(e, (x) => x / s);
      });
    const target = tiltedOptimum(tempered(), bt.rewards, beta);
    const trainer = new GVPOTrainer({
      tf,
      policy,
      task: bt,
      beta,
      temperature: T,
      groupSize: 8,
      promptsPerStep: 8,
      miniBatches: 1,
      learningRate: 0.05,
      reference: 'frozen',
      externalResponses: (_p, k, rand) => Array.from({ length: k }, () => [Math.floor(rand() * 6)]),
      seed: 12,
    });
    expect(meanKl(target, tempered())).toBeGreaterThan(0.05);
    for (let s = 0; s < 300; s++) await trainer.step();
    expect(meanKl(target, tempered())).toBeLessThan(1e-3);
  });
});
