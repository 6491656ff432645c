// The trainer as the official recipe runs it: mini-batches of whole groups and epochs, the flat
// GVPO loss under one on-policy update, the paper's ablations as losses on S (against the kernel
// and against their closed-form gradients), GRPO's clipped ratio against the policy that sampled
// each group (replayed groups included).
import type * as TF from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { BanditTask, GVPOTrainer, gvpoLossTf, loadTf, TabularPolicy } from '../src/tfjs/index.js';
import { gvpoTermsLoss, policyGradientLoss } from '../src/tfjs/losses.js';
import { tokenLogprobsTf } from '../src/tfjs/ops.js';
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

/** Group-centered copy (float64). */
function center(x: ArrayLike<number>, k: number): number[] {
  const out: number[] = [];
  for (let g = 0; g < x.length; g += k) {
    const m = Array.from({ length: k }, (_, i) => x[g + i]).reduce((a, b) => a + b) / k;
    for (let i = 0; i < k; i++) out.push(x[g + i] - m);
  }
  return out;
}

describe('GVPO terms as a loss on S', () => {
  const k = 4;
  const G = 3;
  const r = seeded(9);
  const S = Float32Array.from({ length: k * G }, () => -5 * r());
  const Sref = Float64Array.from({ length: k * G }, () => -5 * r());
  const R = Float64Array.from({ length: k * G }, () => Math.round(r() * 3) / 3);
  const beta = 0.3;
  const grad = (terms: 'all' | 'no-variance' | 'no-trust-region') =>
    Array.from(
      tf
        .grad((s) => gvpoTermsLoss(tf, s as never, Sref, R, k, beta, terms))(tf.tensor1d(S))
        .dataSync(),
    );

  it("with every term equals the kernel's loss and gradient", () => {
    const kernel = (s: TF.Tensor) =>
      gvpoLossTf(tf, s as TF.Tensor1D, { referenceLogprobs: Sref, rewards: R, groups: { size: k }, beta }).loss;
    expect(gvpoTermsLoss(tf, tf.tensor1d(S), Sref, R, k, beta, 'all').dataSync()[0]).toBeCloseTo(
      kernel(tf.tensor1d(S)).dataSync()[0],
      5,
    );
    const want = Array.from(tf.grad(kernel)(tf.tensor1d(S)).dataSync());
    grad('all').forEach((g, i) => expect(g).toBeCloseTo(want[i], 6));
  });

  it('without a term has the gradient its closed form gives', () => {
    const a = center(R, k);
    const p = center(S, k);
    const q = center(Sref, k);
    // dL/dS = beta/(k-1) (beta (p - q) - a) / G, minus the dropped term's share
    const noVar = a.map((_, n) => ((-beta / (k - 1)) * (a[n] + beta * q[n])) / G);
    const noTr = a.map((_, n) => ((beta / (k - 1)) * (beta * p[n] - a[n])) / G);
    grad('no-variance').forEach((g, i) => expect(g).toBeCloseTo(noVar[i], 6));
    grad('no-trust-region').forEach((g, i) => expect(g).toBeCloseTo(noTr[i], 6));
  });
});

describe('GRPO clipped ratio', () => {
  it('is 1 on-policy, and a ratio past 1 + eps with a positive advantage has no gradient', () => {
    const V = 3;
    const logits = tf.tensor2d([0.1, 0.5, -0.2, 0.3, 0.0, 0.7], [2, V]); // 2 sequences of 1 token, one group
    const targets = Int32Array.from([1, 2]);
    const lp = Array.from({ length: 2 }, (_, n) => {
      const row = logits.arraySync()[n];
      return row[targets[n]] - Math.log(row.reduce((s, z) => s + Math.exp(z), 0));
    });
    const mb = {
      targets,
      mask: Float32Array.from([1, 1]),
      rewards: Float64Array.from([1, 0]),
      groupSize: 2,
      tokens: 1,
    };
    const run = (behavior: number[]) => {
      let frac = NaN;
      const g = tf
        .grad((z) =>
          policyGradientLoss(tf, tokenLogprobsTf(tf, z as TF.Tensor2D, targets), mb, {
            algo: 'drgrpo',
            behaviorTokens: Float32Array.from(behavior),
            oldTokens: Float32Array.from(lp),
            referenceTokens: Float32Array.from(lp),
            clip: 0.2,
            klCoef: 0,
            klIn: 'loss',
            importanceCap: 0,
            onClipFraction: (f) => {
              frac = f;
            },
          }),
        )(logits)
        .arraySync() as number[][];
      return { g, frac };
    };
    const on = run(lp);
    expect(on.frac).toBe(0);
    // on-policy Dr.GRPO: dLoss/dz = -A/(N*T) (onehot - softmax), A = +-0.5
    expect(on.g[0][1]).toBeCloseTo((-0.5 / 2) * (1 - Math.exp(lp[0])), 5);
    // the first sequence's sampler gave it half the probability it has now: ratio 2 > 1.2, A > 0: clipped
    const off = run([lp[0] - Math.log(2), lp[1]]);
    expect(off.frac).toBe(0.5);
    off.g[0].forEach((x) => expect(x).toBeCloseTo(0, 7));
  });
});

describe('the recipe structure', () => {
  it('takes miniBatches x epochs updates per step, each on whole groups', async () => {
    const { task, policy } = bandit();
    const t = new GVPOTrainer({
      tf,
      policy,
      task,
      groupSize: 4,
      promptsPerStep: 8,
      miniBatches: 4,
      epochs: 2,
      learningRate: 0.05,
      seed: 1,
    });
    expect((await t.step()).updates).toBe(8);
    const t3 = new GVPOTrainer({
      tf,
      policy,
      task,
      groupSize: 4,
      promptsPerStep: 6,
      miniBatches: 4,
      learningRate: 0.05,
      seed: 1,
    });
    expect((await t3.step()).updates).toBe(3); // 6 groups in mini-batches of ceil(6/4) = 2 whole groups
  });

  it('with one update and the previous-step reference, the loss is the constant sum (R - mean R)^2 / 2(k-1); with four it moves', async () => {
    const { task, policy } = bandit();
    const k = 4;
    const G = 8;
    const constant = (rewards: number[]) => center(rewards, k).reduce((s, a) => s + (a * a) / (2 * (k - 1)), 0) / G;
    const seen: number[][] = [];
    const one = new GVPOTrainer({
      tf,
      policy,
      task,
      groupSize: k,
      promptsPerStep: G,
      miniBatches: 1,
      learningRate: 0.1,
      seed: 2,
      rewards: [
        {
          fn: (p, r) => {
            const v = task.reward(p, r);
            seen.at(-1)!.push(v);
            return v;
          },
        },
      ],
    });
    for (let s = 0; s < 3; s++) {
      seen.push([]);
      const m = await one.step();
      expect(m.loss).toBeCloseTo(constant(seen.at(-1)!), 6);
    }
    const four = new GVPOTrainer({
      tf,
      policy: bandit().policy,
      task,
      groupSize: k,
      promptsPerStep: G,
      miniBatches: 4,
      epochs: 2,
      learningRate: 0.3,
      seed: 2,
      rewards: [
        {
          fn: (p, r) => {
            const v = task.reward(p, r);
            seen.at(-1)!.push(v);
            return v;
          },
        },
      ],
    });
    const gaps: number[] = [];
    for (let s = 0; s < 3; s++) {
      seen.push([]);
      gaps.push(Math.abs((await four.step()).loss - constant(seen.at(-1)!)));
    }
    expect(Math.max(...gaps)).toBeGreaterThan(1e-4);
  });

  it("GRPO's ratio on a replayed group is against the policy that generated it", async () => {
    const clipOf = async (replay?: { ratio: number; capacity: number }) => {
      const { task, policy } = bandit(4);
      const t = new GVPOTrainer({
        tf,
        policy,
        task,
        algo: 'grpo',
        groupSize: 4,
        promptsPerStep: 8,
        miniBatches: 1,
        learningRate: 0.5,
        seed: 3,
        replay,
      });
      const f: number[] = [];
      for (let s = 0; s < 6; s++) f.push((await t.step()).clipFraction);
      return f;
    };
    // one update per step on fresh groups: the ratio is exactly 1 when the gradient is taken
    expect(await clipOf()).toEqual([0, 0, 0, 0, 0, 0]);
    // replayed groups were sampled by earlier policies, which a large learning rate left behind
    expect(Math.max(...(await clipOf({ ratio: 0.5, capacity: 16 })))).toBeGreaterThan(0);
  });

  it('refuses a replay ratio of 1 and zero mini-batches', () => {
    const { task, policy } = bandit();
    expect(() => new GVPOTrainer({ tf, policy, task, replay: { ratio: 1 } })).toThrow(RangeError);
    expect(() => new GVPOTrainer({ tf, policy, task, miniBatches: 0 })).toThrow(/miniBatches/);
  });
});
