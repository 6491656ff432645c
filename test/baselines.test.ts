// The baselines the experiments compare GVPO with, as trainer options: REINFORCE with the group-mean
// baseline, the KL as the k3 term of the loss or as an exact penalty in the reward (verl's
// use_kl_in_reward), importance weights against a sampler whose probabilities are known. And the
// identity the experiments lean on: with a frozen reference and on-policy samples, GVPO's gradient
// is beta times REINFORCE's with the exact KL (coefficient beta) in the reward.
import type * as TF from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { BanditTask, GVPOTrainer, loadTf, TabularPolicy } from '../src/tfjs/index.js';
import { gvpoTermsLoss, klPenalizedRewards, policyGradientLoss, sequenceSums } from '../src/tfjs/losses.js';
import { seeded } from '../src/tasks/task.js';

const { tf } = await loadTf('cpu');

// two groups of k = 3 sequences of T = 2 tokens; the last token of some sequences is padding
const k = 3,
  T = 2,
  N = 6;
const r = seeded(5);
const lpValues = Float32Array.from({ length: N * T }, () => -3 * r() - 0.01);
const refTokens = Float32Array.from({ length: N * T }, () => -3 * r() - 0.01);
const mask = Float32Array.from([1, 1, 1, 0, 1, 1, 1, 1, 1, 0, 1, 1]);
const rewards = Float64Array.from([1, 0, 0.5, 0, 0, 1]);
const batch = { targets: new Int32Array(N * T), mask, rewards, groupSize: k, tokens: T };
const base = {
  behaviorTokens: lpValues,
  oldTokens: lpValues,
  referenceTokens: refTokens,
  clip: 0.2,
  klCoef: 0,
  klIn: 'loss' as const,
  importanceCap: 0,
};
const grad = (f: (lp: TF.Tensor) => TF.Scalar) => Array.from(tf.grad(f)(tf.tensor1d(lpValues)).dataSync());
const sumMasked = (x: ArrayLike<number>, n: number) =>
  Array.from({ length: T }, (_, t) => mask[n * T + t] * x[n * T + t]).reduce((a, b) => a + b);

describe('the KL in the reward', () => {
  it('is R - coef * sum_t m (log pi_b - log pi_ref), per sequence', () => {
    const got = klPenalizedRewards(rewards, lpValues, refTokens, mask, 0.3);
    for (let n = 0; n < N; n++)
      expect(got[n]).toBeCloseTo(rewards[n] - 0.3 * (sumMasked(lpValues, n) - sumMasked(refTokens, n)), 12);
  });
});

describe('REINFORCE with the group-mean baseline', () => {
  it('has the gradient -(R_n - mean R)/(G (k-1)) per live token', () => {
    const g = grad((lp) => policyGradientLoss(tf, lp, batch, { ...base, algo: 'reinforce' }));
    for (let n = 0; n < N; n++) {
      const grp = Math.floor(n / k) * k;
      const mean = (rewards[grp] + rewards[grp + 1] + rewards[grp + 2]) / k;
      for (let t = 0; t < T; t++)
        expect(g[n * T + t]).toBeCloseTo((mask[n * T + t] * -(rewards[n] - mean)) / (2 * (k - 1)), 6);
    }
  });

  it('times beta, with the exact KL at coefficient beta in the reward, is the GVPO gradient (frozen reference, on-policy)', () => {
    const beta = 0.4;
    const Sref = Float64Array.from({ length: N }, (_, n) => sumMasked(refTokens, n));
    const gvpo = grad((lp) => gvpoTermsLoss(tf, sequenceSums(tf, lp, mask, T), Sref, rewards, k, beta, 'all'));
    const reinforce = grad((lp) =>
      policyGradientLoss(tf, lp, batch, { ...base, algo: 'reinforce', klCoef: beta, klIn: 'reward' }),
    );
    const scale = Math.max(...gvpo.map(Math.abs));
    expect(scale).toBeGreaterThan(1e-3);
    gvpo.forEach((x, i) => expect(Math.abs(x - beta * reinforce[i])).toBeLessThan(1e-6 * scale));
    // and without the KL in the reward it is not
    const plain = grad((lp) => policyGradientLoss(tf, lp, batch, { ...base, algo: 'reinforce' }));
    expect(Math.max(...gvpo.map((x, i) => Math.abs(x - beta * plain[i])))).toBeGreaterThan(1e-3 * scale);
  });

  it('importance-weighted: min(pi/pi_b, cap) per sequence, the truncated share reported', () => {
    // sequence 0 was sampled with 1/3 of its current probability (ratio 3), sequence 3 with 2x it (0.5)
    const behavior = Float32Array.from(lpValues);
    behavior[0] -= Math.log(3);
    behavior[6] += Math.log(2);
    let frac = NaN;
    const g = grad((lp) =>
      policyGradientLoss(tf, lp, batch, {
        ...base,
        algo: 'reinforce',
        behaviorTokens: behavior,
        importanceCap: 2,
        onClipFraction: (f) => {
          frac = f;
        },
      }),
    );
    const plain = grad((lp) => policyGradientLoss(tf, lp, batch, { ...base, algo: 'reinforce' }));
    expect(frac).toBeCloseTo(1 / N, 12);
    expect(g[0]).toBeCloseTo(2 * plain[0], 6);
    expect(g[6]).toBeCloseTo(0.5 * plain[6], 6);
    expect(g[2]).toBeCloseTo(plain[2], 6);
  });
});

describe('GRPO and Dr.GRPO with the KL', () => {
  it('as a k3 loss term adds coef * (1 - pi_ref/pi) per live token to the gradient; in the reward it changes the advantages', () => {
    const klLoss = grad((lp) => policyGradientLoss(tf, lp, batch, { ...base, algo: 'drgrpo', klCoef: 0.5 }));
    const none = grad((lp) => policyGradientLoss(tf, lp, batch, { ...base, algo: 'drgrpo' }));
    for (let i = 0; i < N * T; i++) {
      // d/dlp of coef*(exp(ref - lp) - (ref - lp) - 1) / (N*T) = coef * (1 - exp(ref - lp)) / (N*T)
      expect(klLoss[i] - none[i]).toBeCloseTo(
        (mask[i] * 0.5 * (1 - Math.exp(refTokens[i] - lpValues[i]))) / (N * T),
        6,
      );
    }
    const klReward = grad((lp) =>
      policyGradientLoss(tf, lp, batch, { ...base, algo: 'drgrpo', klCoef: 0.5, klIn: 'reward' }),
    );
    const shaped = klPenalizedRewards(rewards, lpValues, refTokens, mask, 0.5);
    const want = grad((lp) => policyGradientLoss(tf, lp, { ...batch, rewards: shaped }, { ...base, algo: 'drgrpo' }));
    klReward.forEach((x, i) => expect(x).toBeCloseTo(want[i], 7));
  });
});

describe("GRPO's clip fraction", () => {
  it('counts exactly the live tokens whose gradient the clip zeroes, not every ratio outside the band', () => {
    // ratios e^0.5 (above 1 + clip) and e^-0.5 (below 1 - clip) on tokens with positive and
    // negative advantages: the clip binds only above with A > 0 and below with A < 0
    const behavior = Float32Array.from(lpValues, (x, i) => x + [0.5, -0.5, 0, 0.5][i % 4]);
    for (const algo of ['grpo', 'drgrpo'] as const) {
      let frac = NaN;
      const g = grad((lp) =>
        policyGradientLoss(tf, lp, batch, {
          ...base,
          algo,
          behaviorTokens: behavior,
          onClipFraction: (f) => {
            frac = f;
          },
        }),
      );
      let live = 0,
        zeroed = 0,
        outside = 0;
      for (let i = 0; i < N * T; i++) {
        if (!mask[i]) continue;
        live++;
        const a =
          rewards[Math.floor(i / T)] -
          rewards.slice(Math.floor(i / T / k) * k, Math.floor(i / T / k) * k + k).reduce((x, y) => x + y) / k;
        if (a !== 0 && g[i] === 0) zeroed++;
        if (Math.abs(Math.exp(lpValues[i] - behavior[i]) - 1) > 0.2) outside++;
      }
      expect(zeroed).toBeGreaterThan(0);
      expect(outside).toBeGreaterThan(zeroed); // the old count (every ratio outside) was larger
      expect(frac).toBeCloseTo(zeroed / live, 12);
    }
  });
});

describe("GRPO's and Dr.GRPO's clip: Infinity", () => {
  it('gives the unclipped surrogate: -A ratio per live token over the normalizer, none counted as clipped', () => {
    // ratios e^+-0.5 and e^+-1.5, far outside 1 +- 0.2: with the clip most of these tokens get no gradient
    const behavior = Float32Array.from(lpValues, (x, i) => x + [0.5, -0.5, 1.5, -1.5][i % 4]);
    for (const algo of ['grpo', 'drgrpo'] as const) {
      let frac = NaN;
      const opts = { ...base, algo, behaviorTokens: behavior };
      const g = grad((lp) =>
        policyGradientLoss(tf, lp, batch, {
          ...opts,
          clip: Infinity,
          onClipFraction: (f) => {
            frac = f;
          },
        }),
      );
      const clipped = grad((lp) => policyGradientLoss(tf, lp, batch, opts));
      expect(frac).toBe(0);
      let differs = 0;
      for (let n = 0; n < N; n++) {
        const grp = rewards.slice(Math.floor(n / k) * k, Math.floor(n / k) * k + k);
        const mean = grp.reduce((x, y) => x + y) / k;
        const sd = Math.sqrt(grp.reduce((x, y) => x + (y - mean) ** 2, 0) / (k - 1));
        const a = algo === 'grpo' ? (rewards[n] - mean) / (sd + 1e-6) : rewards[n] - mean;
        const live = mask[n * T] + mask[n * T + 1];
        for (let t = 0; t < T; t++) {
          const i = n * T + t;
          const ratio = Math.exp(lpValues[i] - behavior[i]);
          // d/dlp of -(1/N) sum_n (1/|n|) sum_t m A ratio (GRPO), or -(1/(N T)) sum m A ratio (Dr.GRPO)
          const want = (-mask[i] * a * ratio) / (algo === 'grpo' ? N * live : N * T);
          expect(g[i]).toBeCloseTo(want, 6);
          if (Math.abs(g[i] - clipped[i]) > 1e-6) differs++;
        }
      }
      expect(differs).toBeGreaterThan(0); // the clip did bind on these tokens
    }
  });

  it('is an option the trainer takes: clip in (0, 1), or Infinity', () => {
    const task = new BanditTask(4, 6, 7);
    const policy = new TabularPolicy(tf, 4, 6);
    expect(() => new GVPOTrainer({ tf, policy, task, algo: 'grpo', clip: Infinity })).not.toThrow();
    for (const clip of [1, 2, -Infinity, Number.NaN])
      expect(() => new GVPOTrainer({ tf, policy, task, algo: 'drgrpo', clip })).toThrow(
        /clip must be a number in \(0, 1\), or Infinity/,
      );
  });
});

describe('trainer options for the baselines', () => {
  const bandit = (seed: number) => {
    const task = new BanditTask(4, 6, 7);
    const q = seeded(seed);
    return {
      task,
      policy: new TabularPolicy(
        tf,
        4,
        6,
        Float32Array.from({ length: 24 }, () => q() - 0.5),
      ),
    };
  };

  it('refuses an unknown algorithm, KL placement or an importance cap below 1', () => {
    const { task, policy } = bandit(1);
    expect(() => new GVPOTrainer({ tf, policy, task, algo: 'ppo' as never })).toThrow(/algo must be/);
    expect(() => new GVPOTrainer({ tf, policy, task, klIn: 'advantage' as never })).toThrow(/klIn must be/);
    expect(() => new GVPOTrainer({ tf, policy, task, algo: 'reinforce', importanceCap: 0.5 })).toThrow(
      /importanceCap must be/,
    );
    expect(() => new GVPOTrainer({ tf, policy, task, beta: Number.NaN })).toThrow(RangeError);
  });

  it("reinforce with the KL in the reward raises the bandit's expected reward", async () => {
    const { task, policy } = bandit(2);
    const expected = () =>
      policy.probs().reduce((a, p, i) => a + p.reduce((b, x, v) => b + x * task.rewards[i][v], 0), 0) / 4;
    const before = expected();
    const t = new GVPOTrainer({
      tf,
      policy,
      task,
      algo: 'reinforce',
      klCoef: 0.1,
      klIn: 'reward',
      reference: 'frozen',
      groupSize: 6,
      promptsPerStep: 8,
      learningRate: 0.1,
      seed: 2,
    });
    for (let s = 0; s < 30; s++) await t.step();
    expect(expected()).toBeGreaterThan(before + 0.1);
  });

  it("GRPO's ratio on external groups is against the sampler's log-probs when it gives them", async () => {
    const clipAtFirstUpdate = async (known: boolean) => {
      const { task, policy } = bandit(3);
      // a skewed fixed sampler, far from the policy: its log-probs are known
      const probs = [0.7, 0.1, 0.1, 0.05, 0.03, 0.02];
      const t = new GVPOTrainer({
        tf,
        policy,
        task,
        algo: 'grpo',
        groupSize: 4,
        promptsPerStep: 8,
        miniBatches: 1,
        learningRate: 0.01,
        seed: 3,
        externalResponses: (_prompt, kk, rand) => {
          const responses = Array.from({ length: kk }, () => {
            let u = rand();
            for (let v = 0; v < probs.length; v++) if ((u -= probs[v]) <= 0) return [v];
            return [probs.length - 1];
          });
          return known ? { responses, tokenLogprobs: responses.map((y) => [Math.log(probs[y[0]])]) } : responses;
        },
      });
      return (await t.step()).clipFraction;
    };
    expect(await clipAtFirstUpdate(false)).toBe(0); // unknown: the current policy stands in, ratio 1
    expect(await clipAtFirstUpdate(true)).toBeGreaterThan(0.3);
  });

  it('logs the share of groups whose rewards are all equal', async () => {
    const { task, policy } = bandit(4);
    const t = new GVPOTrainer({
      tf,
      policy,
      task,
      groupSize: 2,
      promptsPerStep: 8,
      seed: 4,
      rewards: [{ fn: () => 1 }],
    });
    expect((await t.step()).zeroVarianceGroups).toBe(1);
    const t2 = new GVPOTrainer({ tf, policy, task, groupSize: 4, promptsPerStep: 8, seed: 4 });
    expect((await t2.step()).zeroVarianceGroups).toBeLessThan(1);
  });
});
