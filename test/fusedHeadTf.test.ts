// gvpoFromHiddenTf, tokenLogprobsFromHiddenTf and the fused-head policy: values and gradients (to
// the hidden states and to the head's weight) equal TensorFlow.js's own autodiff of the plain
// formulation (matMul, logSoftmax, one-hot gather, the entropy, the GVPO loss in tfjs ops) on the
// cpu backend; the policy's fused loss has the same variable gradients as its materialized logits
// through gvpoFromLogitsTf; a trainer step runs through it.
import { join } from 'node:path';
import type * as TF from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import {
  AdditionTask,
  FusedHeadPolicy,
  fusedHeadLoss,
  GVPOTrainer,
  gvpoFromHiddenTf,
  gvpoFromLogitsTf,
  loadPolicy,
  gvpoLossTf,
  loadTf,
  tokenLogprobsFromHiddenTf,
  tokenLogprobsTf,
} from '../src/tfjs/index.js';
import { EOS, PAD } from '../src/tasks/addition.js';
import { gradClose } from './helpers/allclose.js';
import { normal, randomRewards, rng } from './helpers/data.js';
import { scratchDir } from './helpers/scratch.js';

describe('gvpoFromHiddenTf on the cpu backend', async () => {
  const { tf } = await loadTf('cpu');

  it('loss and gradients for hidden and weight equal tfjs autodiff of matMul + logSoftmax + loss', () => {
    const N = 6,
      T = 3,
      H = 10,
      V = 13,
      k = 3,
      beta = 0.5,
      tau = 0.9;
    const r = rng(8);
    const h = tf.tensor2d(
      Float32Array.from({ length: N * T * H }, () => normal(r)),
      [N * T, H],
    );
    const w = tf.tensor2d(
      Float32Array.from({ length: V * H }, () => normal(r) * 0.5),
      [V, H],
    );
    const targets = Int32Array.from({ length: N * T }, () => Math.floor(r() * V));
    const mask = Float32Array.from({ length: N * T }, (_, i) => (i % T === 0 ? 0 : 1));
    const Sref = Float64Array.from({ length: N }, (_, n) => -6 - n * 0.4);
    const R = randomRewards(5, N);
    const ours = tf.valueAndGrads(
      (x: TF.Tensor, y: TF.Tensor) =>
        gvpoFromHiddenTf(tf, x, y as TF.Tensor2D, {
          targets,
          mask,
          sequences: N,
          tokens: T,
          referenceLogprobs: Sref,
          rewards: R,
          groups: { size: k },
          beta,
          temperature: tau,
        }).loss,
    )([h, w]);
    const theirs = tf.valueAndGrads((x: TF.Tensor, y: TF.Tensor) => {
      const z = tf.matMul(x as TF.Tensor2D, y as TF.Tensor2D, false, true).div(tau);
      const lp = tf
        .logSoftmax(z)
        .mul(tf.oneHot(tf.tensor1d(targets, 'int32'), V))
        .sum(1);
      const S = lp
        .reshape([N, T])
        .mul(tf.tensor2d(mask, [N, T]))
        .sum(1);
      const rr = S.sub(tf.tensor1d(Float32Array.from(Sref)))
        .mul(beta)
        .reshape([N / k, k]);
      const Rt = tf.tensor2d(Float32Array.from(R), [N / k, k]);
      const c = rr.sub(rr.mean(1, true)).sub(Rt.sub(Rt.mean(1, true)));
      return c
        .square()
        .sum()
        .div(2 * (k - 1))
        .div(N / k) as TF.Scalar;
    })([h, w]);
    expect(ours.value.dataSync()[0]).toBeCloseTo(theirs.value.dataSync()[0], 5);
    gradClose(ours.grads[0].dataSync(), theirs.grads[0].dataSync(), 1e-4, 1e-7);
    gradClose(ours.grads[1].dataSync(), theirs.grads[1].dataSync(), 1e-4, 1e-7);
    // the weight's gradient is the op's to return as a tensor: a destination for it is no option
    // (nor in GvpoFromHiddenTfArgs, which leaves gradWeight and accumulate out)
    const opts = { targets, mask, sequences: N, tokens: T, rewards: R, groups: { size: k }, beta };
    for (const extra of [{ gradWeight: new Float32Array(V * H) }, { accumulate: true }])
      expect(() => gvpoFromHiddenTf(tf, h, w, { ...opts, ...extra } as never)).toThrow(
        `gvpoFromHiddenTf: options has no field '${Object.keys(extra)[0]}'`,
      );
  });

  it('tokenLogprobsFromHiddenTf: l and H, and the gradients of any loss on them, equal tfjs autodiff of the materialized head', () => {
    const R = 14,
      H = 9,
      V = 23,
      tau = 0.8;
    const r = rng(12);
    const h = tf.tensor3d(
      Float32Array.from({ length: R * H }, () => normal(r)),
      [2, R / 2, H],
    ); // any shape ending in H
    const w = tf.tensor2d(
      Float32Array.from({ length: V * H }, () => normal(r) * 0.6),
      [V, H],
    );
    const targets = Int32Array.from({ length: R }, (_, i) => (i % 5 === 0 ? -1 : Math.floor(r() * V)));
    const mask = Float32Array.from({ length: R }, (_, i) => (i % 5 === 0 ? 0 : 1));
    const a = tf.tensor1d(Float32Array.from({ length: R }, () => normal(r))),
      b = tf.tensor1d(Float32Array.from({ length: R }, () => normal(r)));
    const live = tf.tensor1d(mask);
    // a loss on both outputs, nonlinear in l so that dL/dl varies (as a clipped ratio's would)
    const lossOf = (l: TF.Tensor, e: TF.Tensor) => l.mul(a).add(l.square().mul(0.1)).add(e.mul(b)).sum() as TF.Scalar;
    for (const entropy of [true, false]) {
      const ours = tf.valueAndGrads((x: TF.Tensor, y: TF.Tensor) => {
        const o = tokenLogprobsFromHiddenTf(tf, x, y as TF.Tensor2D, { targets, mask, temperature: tau, entropy });
        expect(o.entropy === undefined).toBe(!entropy);
        return lossOf(o.logprobs, o.entropy ?? tf.zeros([R]));
      })([h, w]);
      const theirs = tf.valueAndGrads((x: TF.Tensor, y: TF.Tensor) => {
        const logp = tf.logSoftmax(tf.matMul(x.reshape([R, H]) as TF.Tensor2D, y as TF.Tensor2D, false, true).div(tau));
        const l = logp
          .mul(
            tf.oneHot(
              tf.tensor1d(
                Int32Array.from(targets, (t) => Math.max(t, 0)),
                'int32',
              ),
              V,
            ),
          )
          .sum(1)
          .mul(live);
        const e = entropy ? logp.exp().mul(logp).sum(1).neg().mul(live) : tf.zeros([R]);
        return lossOf(l, e);
      })([h, w]);
      expect(ours.value.dataSync()[0]).toBeCloseTo(theirs.value.dataSync()[0], 4);
      expect(ours.grads[0].shape).toEqual([2, R / 2, H]);
      gradClose(ours.grads[0].dataSync(), theirs.grads[0].dataSync(), 1e-4, 1e-7);
      gradClose(ours.grads[1].dataSync(), theirs.grads[1].dataSync(), 1e-4, 1e-7);
    }
  });

  const task = new AdditionTask();
  const config = { vocab: task.vocab, window: 4, embed: 6, hidden: 12, maxTokens: task.maxTokens, eos: EOS, pad: PAD };

  it('the policy: fused loss and materialized logits + gvpoFromLogitsTf give the same variable gradients', () => {
    const p = new FusedHeadPolicy(tf, config, 3);
    const N = 4,
      T = p.maxTokens,
      r = rng(2);
    const prompts = Array.from({ length: N }, () => [2, 3, 4]);
    const responses = Int32Array.from({ length: N * T }, () => Math.floor(r() * p.vocab));
    const mask = Float32Array.from({ length: N * T }, (_, i) => (i % T < 3 ? 1 : 0));
    const loss = {
      targets: responses,
      mask,
      sequences: N,
      referenceLogprobs: new Float64Array(N).fill(-9),
      rewards: [1, 0, 0, 1],
      groups: { size: 2 },
      beta: 0.3,
    };
    const fused = tf.variableGrads(() => fusedHeadLoss(tf, p, prompts, responses, loss), p.variables);
    const dense = tf.variableGrads(
      () => gvpoFromLogitsTf(tf, p.logits(prompts, responses), { ...loss, tokens: T, vocab: p.vocab }).loss,
      p.variables,
    );
    expect(fused.value.dataSync()[0]).toBeCloseTo(dense.value.dataSync()[0], 5);
    for (const v of p.variables) gradClose(fused.grads[v.name].dataSync(), dense.grads[v.name].dataSync(), 1e-4, 1e-7);
  });

  it('the policy: the fused loss at per-sequence temperatures equals the logits path at those temperatures', () => {
    const p = new FusedHeadPolicy(tf, config, 5);
    const N = 4,
      T = p.maxTokens,
      r = rng(7);
    const prompts = Array.from({ length: N }, () => [5, 10, 6, 11]);
    const responses = Int32Array.from({ length: N * T }, () => Math.floor(r() * p.vocab));
    const mask = Float32Array.from({ length: N * T }, (_, i) => (i % T < 2 ? 1 : 0));
    const temperatures = Float64Array.from([0.6, 0.6, 1.3, 1.3]);
    const loss = {
      targets: responses,
      mask,
      sequences: N,
      referenceLogprobs: new Float64Array(N).fill(-7),
      rewards: [1, 0, 0, 1],
      groups: { size: 2 },
      beta: 0.2,
    };
    const fused = tf.variableGrads(
      () => fusedHeadLoss(tf, p, prompts, responses, { ...loss, temperatures }),
      p.variables,
    );
    const scale = tf.tensor2d(
      Float32Array.from({ length: N * T }, (_, i) => 1 / temperatures[Math.floor(i / T)]),
      [N * T, 1],
    );
    const dense = tf.variableGrads(
      () => gvpoFromLogitsTf(tf, p.logits(prompts, responses).mul(scale), { ...loss, tokens: T, vocab: p.vocab }).loss,
      p.variables,
    );
    expect(fused.value.dataSync()[0]).toBeCloseTo(dense.value.dataSync()[0], 5);
    for (const v of p.variables) gradClose(fused.grads[v.name].dataSync(), dense.grads[v.name].dataSync(), 1e-4, 1e-7);
    // one shared temperature goes to the kernel as is
    const shared = tf.variableGrads(
      () => fusedHeadLoss(tf, p, prompts, responses, { ...loss, temperature: 0.6 }),
      p.variables,
    );
    const shared2 = tf.variableGrads(
      () => fusedHeadLoss(tf, p, prompts, responses, { ...loss, temperatures: new Float64Array(N).fill(0.6) }),
      p.variables,
    );
    expect(shared.value.dataSync()[0]).toBe(shared2.value.dataSync()[0]);
    expect(shared.value.dataSync()[0]).not.toBeCloseTo(fused.value.dataSync()[0], 3);
  });

  it('every algorithm trains through the fused head as the logits path does (same seed, same weights after a step)', async () => {
    for (const algo of ['gvpo', 'grpo', 'drgrpo', 'reinforce'] as const) {
      const fused = new FusedHeadPolicy(tf, config, 6);
      const plain = new FusedHeadPolicy(tf, config, 6);
      // the same policy seen through the logits only: the trainer cannot take the fused path
      const viaLogits = {
        kind: plain.kind,
        vocab: plain.vocab,
        maxTokens: plain.maxTokens,
        variables: plain.variables,
        logits: plain.logits.bind(plain),
        sample: plain.sample.bind(plain),
        clone: () => plain.clone(),
        getWeights: () => plain.getWeights(),
        save: plain.save.bind(plain),
      };
      const opts = {
        tf,
        task,
        algo,
        groupSize: 4,
        promptsPerStep: 4,
        miniBatches: 2,
        learningRate: 0.02,
        seed: 9,
        temperature: 0.7,
        ...(algo === 'gvpo' ? {} : { klCoef: 0.1, klIn: 'loss' as const }),
        rewards: [{ fn: (_q: number[], r: number[]) => (r[0] + (r[1] ?? 0)) / 20 }],
      };
      const a = await new GVPOTrainer({ ...opts, policy: fused }).step();
      const b = await new GVPOTrainer({ ...opts, policy: viaLogits }).step();
      expect(a.loss).toBeCloseTo(b.loss, 5);
      const wa = fused.getWeights(),
        wb = plain.getWeights();
      wa.forEach((w, i) => gradClose(w, wb[i], 1e-4, 1e-6));
      expect(wa[3].some((x, i) => x !== new FusedHeadPolicy(tf, config, 6).getWeights()[3][i])).toBe(true);
    }
  });

  it('a GVPO trainer step goes through the fused head; save and load keep the policy', async () => {
    const p = new FusedHeadPolicy(tf, config, 4);
    const before = p.getWeights();
    // a reward with variance inside every group (an untrained policy never adds correctly)
    const t = new GVPOTrainer({
      tf,
      policy: p,
      task,
      groupSize: 4,
      promptsPerStep: 2,
      learningRate: 0.05,
      seed: 3,
      rewards: [{ fn: (_q, r) => r[0] / 10 }],
    });
    const m = await t.step();
    expect(Number.isFinite(m.loss)).toBe(true);
    expect(m.zeroVarianceGroups).toBe(0);
    expect(p.getWeights()[3].some((x, i) => x !== before[3][i])).toBe(true); // the head moved
    const path = join(scratchDir('gvpo-'), 'fused.json');
    p.save(path);
    const q = loadPolicy(tf, path);
    expect(q.kind).toBe('fused-head');
    expect(q.getWeights()[3]).toEqual(p.getWeights()[3]);
  });
});

describe("the tfjs ops refuse by their own names; what a backward reads is the forward's", async () => {
  const { tf } = await loadTf('cpu');
  const task = new AdditionTask();
  const config = { vocab: task.vocab, window: 4, embed: 6, hidden: 12, maxTokens: task.maxTokens, eos: EOS, pad: PAD };

  it('fusedHeadLoss checks per-sequence temperatures, its policy and its args, and names itself', () => {
    const p = new FusedHeadPolicy(tf, config, 2);
    const N = 4;
    const T = p.maxTokens;
    const prompts = Array.from({ length: N }, () => [2, 3, 4]);
    const responses = new Int32Array(N * T).fill(3);
    const base = {
      targets: responses,
      mask: new Float32Array(N * T).fill(1),
      sequences: N,
      referenceLogprobs: new Float64Array(N).fill(-9),
      rewards: [1, 0, 0, 1],
      groups: { size: 2 },
      beta: 0.3,
    };
    const run = (o: object) => () => fusedHeadLoss(tf, p, prompts, responses, { ...base, ...o } as never);
    // mixed values divided the hidden states: 0 gave NaN, -1 a loss with its sign flipped
    for (const [temperatures, message] of [
      [
        [1, 1, 1, 0],
        /fusedHeadLoss: temperatures\[3\] must be a finite number > 0 whose float32 reciprocal is finite, got 0/,
      ],
      [[1, 1, -1, -1], /temperatures\[2\] must be .*, got -1/],
      [[1, 1, NaN, 1], /temperatures\[2\] must be .*, got NaN/],
      [[0, 0, 0, 0], /temperatures\[0\] must be/],
      [[1, 2], /fusedHeadLoss: temperatures must be one per sequence, 4, got length 2/],
      [[1, 2, 1, 2, 1], /got length 5/],
    ] as const) {
      expect(run({ temperatures: Float64Array.from(temperatures) })).toThrow(RangeError);
      expect(run({ temperatures: Float64Array.from(temperatures) })).toThrow(message);
    }
    expect(run({ temperatures: 'hot' })).toThrow(TypeError);
    expect(run({ temperatures: [1, '1', 1, 1] })).toThrow(/temperatures\[1\] must be a finite number > 0, got '1'/);
    expect(() => fusedHeadLoss(tf, null as never, prompts, responses, base)).toThrow(
      /fusedHeadLoss: policy must be a fused-head policy/,
    );
    expect(() => fusedHeadLoss(tf, p, prompts, responses, null as never)).toThrow(/fusedHeadLoss: args must be/);
    // the op's own refusals, named as the function called
    expect(run({ beta: 0 })).toThrow(/^fusedHeadLoss: beta must be/);
    // valid mixed temperatures still train
    expect(Number.isFinite(run({ temperatures: Float64Array.from([1, 1, 1, 2]) })().dataSync()[0])).toBe(true);
    p.dispose();
  });

  it('gvpoLossTf calls S by its name; an empty head weight is the weight; a look-alike tensor is refused by name', () => {
    const args = { referenceLogprobs: [-1, -2, -3, -4], rewards: [1, 0, 1, 0], groups: { size: 2 }, beta: 0.1 };
    expect(() => gvpoLossTf(tf, tf.tensor1d([NaN, 0, 0, 0]), args)).toThrow(/^gvpoLossTf: S must be finite numbers/);
    const head = { targets: new Int32Array(3), mask: new Float32Array([1, 1, 1]), sequences: 3, tokens: 1 };
    const loss = { ...head, rewards: [1, 0, 0], groups: { size: 3 }, beta: 0.1 };
    expect(() => gvpoFromHiddenTf(tf, tf.zeros([3, 4]), tf.zeros([0, 4]) as TF.Tensor2D, loss)).toThrow(
      /gvpoFromHiddenTf: weight must be a non-empty \[vocab, hiddenSize\] tensor, got shape \[0, 4\]/,
    );
    expect(() =>
      tokenLogprobsFromHiddenTf(tf, tf.zeros([3, 4]), tf.zeros([0, 4]) as TF.Tensor2D, { targets: new Int32Array(3) }),
    ).toThrow(/tokenLogprobsFromHiddenTf: weight must be a non-empty/);
    // it passed the check and failed inside tf.customGrad with a plain Error
    const fake = { shape: [3, 5], rank: 2, dataSync: () => new Float32Array(15), dtype: 'float32', isDisposed: false };
    for (const f of [
      () => gvpoFromLogitsTf(tf, fake as never, { ...loss, vocab: 5 }),
      () => tokenLogprobsTf(tf, fake as never, new Int32Array(3)),
      () => gvpoLossTf(tf, fake as never, args),
      () => gvpoFromHiddenTf(tf, fake as never, tf.zeros([5, 5]) as TF.Tensor2D, loss),
    ]) {
      expect(f).toThrow(TypeError);
      expect(f).toThrow(/must be a tf\.Tensor.* of the tf module passed, got an object that is not one/);
    }
  });

  it('tokenLogprobsTf and tokenLogprobsFromHiddenTf differentiate the targets of the forward, whatever is written to them after', async () => {
    const logits = tf.tensor2d([1, 2, 0.5, -1, 0, 3], [2, 3]);
    const grad = (mutate: boolean) => {
      const targets = new Int32Array([0, 1]);
      return tf
        .grad((z: TF.Tensor) => {
          const l = tokenLogprobsTf(tf, z as TF.Tensor2D, targets);
          if (mutate) targets.set([2, 7]); // between the forward and the gradient
          return l.sum();
        })(logits)
        .arraySync();
    };
    expect(grad(true)).toEqual(grad(false));
    const hidden = tf.tensor2d([0.3, -0.2, 0.5, 0.1], [2, 2]);
    const weight = tf.tensor2d([1, 0, 0, 1, 1, 1], [3, 2]);
    const headGrad = (mutate: boolean) => {
      const targets = new Int32Array([0, 2]);
      const mask = new Float32Array([1, 1]);
      return tf
        .grads((h: TF.Tensor, w: TF.Tensor) => {
          const l = tokenLogprobsFromHiddenTf(tf, h, w as TF.Tensor2D, { targets, mask }).logprobs;
          if (mutate) {
            targets.set([1, 1]);
            mask.set([0, 0]);
          }
          return l.sum();
        })([hidden, weight])
        .map((g) => g.arraySync());
    };
    expect(headGrad(true)).toEqual(headGrad(false));
    // targets of another realm are copied too
    const { runInNewContext } = await import('node:vm');
    const foreign = (mutate: boolean) => {
      const targets = runInNewContext('new Int32Array([0, 2])') as Int32Array;
      return tf
        .grads((h: TF.Tensor, w: TF.Tensor) => {
          const l = tokenLogprobsFromHiddenTf(tf, h, w as TF.Tensor2D, { targets }).logprobs;
          if (mutate) targets.set([1, 1]);
          return l.sum();
        })([hidden, weight])
        .map((g) => g.arraySync());
    };
    expect(foreign(true)).toEqual(foreign(false));
  });
});
