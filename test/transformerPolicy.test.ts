// TransformerPolicy on the cpu and wasm backends: the fused-head GVPO loss gives the same variable
// gradients as tfjs autodiff of the plain GVPO formula on the materialized logits (nothing from
// gvpo in that path), also at per-sequence temperatures; logits are causal and independent of the
// batch a sequence is in; sampling stops at EOS or maxTokens; save/load keeps every weight; a
// trainer step runs through the fused head.
import { statSync } from 'node:fs';
import { join } from 'node:path';
import type * as TF from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import {
  AdditionTask,
  fusedHeadLoss,
  GVPOTrainer,
  loadPolicy,
  loadTf,
  TransformerPolicy,
  type TransformerPolicyConfig,
} from '../src/tfjs/index.js';
import { transformerParameters } from '../src/tfjs/transformerPolicy.js';
import { EOS, PAD } from '../src/tasks/addition.js';
import { seeded } from '../src/tasks/task.js';
import { gradClose } from './helpers/allclose.js';
import { scratchDir } from './helpers/scratch.js';
import { tfOn } from './helpers/tfBackend.js';

const task = new AdditionTask();
const config: TransformerPolicyConfig = {
  vocab: task.vocab,
  maxTokens: task.maxTokens,
  eos: EOS,
  pad: PAD,
  promptTokens: task.promptTokens,
  width: 16,
  heads: 2,
  layers: 2,
  mlp: 24,
};

/** The GVPO loss ('mean' over groups of k) from logits [N*T, V] in plain tfjs ops, at per-sequence temperatures. */
function plainGvpo(
  tf: typeof TF,
  z: TF.Tensor2D,
  a: {
    targets: Int32Array;
    mask: Float32Array;
    N: number;
    T: number;
    k: number;
    Sref: number[];
    R: number[];
    beta: number;
    tau: number[];
  },
) {
  const V = z.shape[1];
  const scale = tf.tensor2d(
    Float32Array.from({ length: a.N * a.T }, (_, i) => 1 / a.tau[Math.floor(i / a.T)]),
    [a.N * a.T, 1],
  );
  const lp = tf
    .logSoftmax(z.mul(scale))
    .mul(tf.oneHot(tf.tensor1d(a.targets, 'int32'), V))
    .sum(1);
  const S = lp
    .reshape([a.N, a.T])
    .mul(tf.tensor2d(a.mask, [a.N, a.T]))
    .sum(1);
  const r = S.sub(tf.tensor1d(a.Sref))
    .mul(a.beta)
    .reshape([a.N / a.k, a.k]);
  const R = tf.tensor2d(a.R, [a.N / a.k, a.k]);
  const c = r.sub(r.mean(1, true)).sub(R.sub(R.mean(1, true)));
  return c
    .square()
    .sum()
    .div(2 * (a.k - 1))
    .div(a.N / a.k) as TF.Scalar;
}

/** Prompts of several lengths (left-padded by the policy) and random responses with ragged masks. */
function data(N: number, seed: number) {
  const r = seeded(seed),
    T = config.maxTokens;
  const prompts = Array.from({ length: N }, () => AdditionTask.prompt(Math.floor(r() * 100), Math.floor(r() * 100)));
  const targets = Int32Array.from({ length: N * T }, () => Math.floor(r() * config.vocab));
  const mask = Float32Array.from({ length: N * T }, (_, i) => (i % T < 1 + (((i / T) | 0) % T) ? 1 : 0));
  return { prompts, targets, mask };
}

for (const backend of ['cpu', 'wasm'] as const) {
  describe(`TransformerPolicy on the ${backend} backend`, async () => {
    const tf = await tfOn(backend);

    for (const tau of [
      [1, 1, 1, 1, 1, 1],
      [0.7, 0.7, 0.7, 0.7, 0.7, 0.7],
      [0.6, 0.6, 0.6, 1.3, 1.3, 1.3],
    ]) {
      it(`fused-head GVPO gradients equal autodiff of the plain formula on the logits (temperatures ${[...new Set(tau)].join(', ')})`, () => {
        const p = new TransformerPolicy(tf, config, 3);
        const N = 6,
          T = p.maxTokens,
          k = 3;
        const { prompts, targets, mask } = data(N, 5);
        const Sref = [-6, -7.5, -5, -9, -4, -8],
          R = [1, 0, 0, 1, 1, 0],
          beta = 0.3;
        const shared = tau.every((t) => t === tau[0]);
        const args = {
          targets,
          mask,
          sequences: N,
          referenceLogprobs: Sref,
          rewards: R,
          groups: { size: k },
          beta,
          ...(shared ? { temperature: tau[0] } : { temperatures: Float64Array.from(tau) }),
        };
        const fused = tf.variableGrads(() => fusedHeadLoss(tf, p, prompts, targets, args), p.variables);
        const plain = tf.variableGrads(
          () => plainGvpo(tf, p.logits(prompts, targets), { targets, mask, N, T, k, Sref, R, beta, tau }),
          p.variables,
        );
        expect(fused.value.dataSync()[0]).toBeCloseTo(plain.value.dataSync()[0], 5);
        for (const v of p.variables)
          gradClose(fused.grads[v.name].dataSync(), plain.grads[v.name].dataSync(), 2e-4, 1e-7);
        // every parameter gets a gradient (none disconnected)
        for (const v of p.variables) expect(fused.grads[v.name].abs().max().dataSync()[0], v.name).toBeGreaterThan(0);
      });
    }

    it('a large vocabulary (the gather embedding) gives the same fused and plain gradients', () => {
      const big = { ...config, vocab: 600 };
      const p = new TransformerPolicy(tf, big, 9);
      const N = 4,
        T = p.maxTokens,
        r = seeded(4);
      const prompts = Array.from({ length: N }, () => [Math.floor(r() * 600), 5, 599]);
      const targets = Int32Array.from({ length: N * T }, () => Math.floor(r() * 600));
      const mask = new Float32Array(N * T).fill(1);
      const a = {
        targets,
        mask,
        N,
        T,
        k: 2,
        Sref: [-20, -21, -19, -22],
        R: [1, 0, 0, 1],
        beta: 0.5,
        tau: [0.9, 0.9, 0.9, 0.9],
      };
      const fused = tf.variableGrads(
        () =>
          fusedHeadLoss(tf, p, prompts, targets, {
            targets,
            mask,
            sequences: N,
            referenceLogprobs: a.Sref,
            rewards: a.R,
            groups: { size: 2 },
            beta: 0.5,
            temperature: 0.9,
          }),
        p.variables,
      );
      const plain = tf.variableGrads(() => plainGvpo(tf, p.logits(prompts, targets), a), p.variables);
      for (const v of p.variables)
        gradClose(fused.grads[v.name].dataSync(), plain.grads[v.name].dataSync(), 2e-4, 1e-7);
      expect(fused.grads[p.variables[0].name].abs().max().dataSync()[0]).toBeGreaterThan(0);
    });

    it('logits are causal and do not depend on the other sequences of the batch', () => {
      const p = new TransformerPolicy(tf, config, 4);
      const T = p.maxTokens,
        V = p.vocab;
      const { prompts, targets } = data(5, 9);
      const all = p.logits(prompts, targets).dataSync();
      // sequence 3 alone, and with its last response token changed
      const one = targets.slice(3 * T, 4 * T);
      const alone = p.logits([prompts[3]], one).dataSync();
      for (let i = 0; i < T * V; i++) expect(alone[i]).toBeCloseTo(all[3 * T * V + i], 5);
      const changed = one.slice();
      changed[T - 1] = (changed[T - 1] + 1) % V;
      changed[T - 2] = (changed[T - 2] + 1) % V;
      const after = p.logits([prompts[3]], changed).dataSync();
      // positions 0..T-2 read response tokens before T-2 only: unchanged; position T-1 reads token T-2
      for (let i = 0; i < (T - 1) * V; i++) expect(after[i]).toBe(alone[i]);
      expect(Array.from(after.slice((T - 1) * V))).not.toEqual(Array.from(alone.slice((T - 1) * V)));
    });

    it('sampling stops at EOS, never exceeds maxTokens, and is reproducible from its seed', () => {
      const p = new TransformerPolicy(tf, config, 5);
      const prompts = data(40, 2).prompts;
      // hidden states fixed at e_0 (final LayerNorm gain 0, bias e_0): the logits are head[:, 0]
      const w = p.getWeights();
      const n = p.variables.length;
      const D = config.width,
        V = config.vocab;
      w[n - 3].fill(0);
      w[n - 2].fill(0);
      w[n - 2][0] = 1;
      const setHead = (logit: (v: number) => number) => {
        w[n - 1].fill(0);
        for (let v = 0; v < V; v++) w[n - 1][v * D] = logit(v);
        p.setWeights(w);
      };
      setHead((v) => (v === EOS ? 50 : 0));
      expect(p.sample(prompts, 1, seeded(1)).every((r) => r.length === 1 && r[0] === EOS)).toBe(true);
      setHead((v) => (v === EOS ? -50 : v === 3 ? 5 : 0));
      const long = p.sample(prompts, 1, seeded(1));
      expect(long.every((r) => r.length === config.maxTokens && !r.includes(EOS))).toBe(true);
      // EOS or 3 with probability 1/2 each: every length from 1 to maxTokens, EOS only at the end
      setHead((v) => (v === EOS || v === 3 ? 0 : -50));
      const mixed = p.sample(prompts, 1, seeded(2));
      expect(
        mixed.every(
          (r) =>
            r.length >= 1 &&
            r.length <= config.maxTokens &&
            r.every((t, i) => (t === EOS) === (i === r.length - 1 && t === EOS) && (t === EOS || t === 3)),
        ),
      ).toBe(true);
      expect(new Set(mixed.map((r) => r.length)).size).toBeGreaterThan(2);
      expect(p.sample(prompts, 1, seeded(2))).toEqual(mixed);
    });

    it('refuses a prompt longer than promptTokens and a width that the heads do not divide', () => {
      const p = new TransformerPolicy(tf, config, 6);
      expect(() => p.sample([Array.from({ length: config.promptTokens + 1 }, () => 1)], 1, seeded(1))).toThrow(
        RangeError,
      );
      expect(() => new TransformerPolicy(tf, { ...config, width: 15 })).toThrow(RangeError);
      expect(() => new TransformerPolicy(tf, { ...config, eos: config.vocab })).toThrow(RangeError);
    });

    it('refuses a config of more than 2^26 parameters before building a weight, counting them as size does', () => {
      expect(new TransformerPolicy(tf, config, 6).size).toBe(transformerParameters(config));
      // a width of 2^20 would ask TensorFlow.js for 8.8e12 floats; a million layers for 1.3e8 arrays
      expect(() => new TransformerPolicy(tf, { ...config, width: 2 ** 20 })).toThrow(
        /TransformerPolicy: the config \(width 1048576, layers 2, mlp 24, vocab 14\) has \d+ parameters, more than 2\^26 = 67108864/,
      );
      expect(() => new TransformerPolicy(tf, { ...config, layers: 1e6 })).toThrow(/more than 2\^26/);
    });

    it('save and loadPolicy keep every weight and the logits', () => {
      const p = new TransformerPolicy(tf, config, 7);
      const path = join(scratchDir('gvpo-'), 'transformer.json');
      p.save(path);
      const q = loadPolicy(tf, path);
      expect(q.kind).toBe('transformer');
      expect(q.getWeights()).toEqual(p.getWeights());
      const { prompts, targets } = data(3, 1);
      expect(Array.from(q.logits(prompts, targets).dataSync())).toEqual(
        Array.from(p.logits(prompts, targets).dataSync()),
      );
      expect(statSync(path).size).toBeLessThan(40_000);
      p.dispose();
      expect(() => p.logits(prompts, targets)).toThrow('TransformerPolicy.logits() after dispose()');
      expect(() => p.hiddenStates(prompts, targets)).toThrow('TransformerPolicy.hiddenStates() after dispose()');
      expect(() => p.clone()).toThrow('TransformerPolicy.getWeights() after dispose()');
    });

    it('a GVPO trainer step goes through the fused head and moves every block', async () => {
      const p = new TransformerPolicy(tf, config, 8);
      const before = p.getWeights();
      const t = new GVPOTrainer({
        tf,
        policy: p,
        task,
        groupSize: 4,
        promptsPerStep: 4,
        learningRate: 1e-2,
        temperature: 0.8,
        seed: 3,
        rewards: [{ fn: (_q, r) => r[0] % 2 }],
      });
      const m = await t.step();
      expect(Number.isFinite(m.loss)).toBe(true);
      const after = p.getWeights();
      const moved = after.filter((w, i) => w.some((x, j) => x !== before[i][j])).length;
      expect(moved).toBe(after.length);
      // and a step leaves no tensor behind
      const live = tf.memory().numTensors;
      await t.step();
      expect(tf.memory().numTensors).toBe(live);
    });
  });
}

describe('TransformerPolicy config read once', () => {
  it('a getter that passes the checks with one value cannot size the model with another', async () => {
    const { tf } = await loadTf();
    let reads = 0;
    const lying = {
      ...config,
      get mlp() {
        return ++reads <= 1 ? 32 : 2 ** 30;
      },
    };
    expect(() => new TransformerPolicy(tf, lying, 1)).toThrow(/has \d+ parameters, more than 2\^26|mlp must be/);
  });
});

describe('TransformerPolicy.sample refuses what would draw the pad token or the last id', () => {
  const RULE =
    "a number from 1e-6 to float32's max, about 3.4e38 (logits divided by a smaller one overflow the float32 losses)";
  const prompt = AdditionTask.prompt(12, 34);

  it('a temperature the trainer refuses, the same rule and error class, naming TransformerPolicy.sample', async () => {
    const { tf } = await loadTf('cpu');
    const p = new TransformerPolicy(tf, config, 1);
    // 0, NaN and a negative temperature returned the pad token (or the last id) for every draw
    for (const bad of [0, -1, Number.NaN, 1e-38, Number.POSITIVE_INFINITY])
      expect(() => p.sample([prompt], bad, Math.random)).toThrow(
        new RangeError(`TransformerPolicy.sample: temperature must be ${RULE}, got ${bad}`),
      );
    expect(() => p.sample([prompt], undefined as never, Math.random)).toThrow(
      new TypeError(`TransformerPolicy.sample: temperature must be ${RULE}, got undefined`),
    );
    const out = p.sample([prompt, prompt], 1e-6, Math.random); // the lowest the trainer takes
    expect(out.every((r) => r.length >= 1 && r.every((t) => t >= 0 && t < config.vocab))).toBe(true);
    p.dispose();
  });

  it('a random source whose draw is not in [0, 1), naming it', async () => {
    const { tf } = await loadTf('cpu');
    const p = new TransformerPolicy(tf, config, 1);
    for (const draw of [Number.NaN, 1, 2, -0.5])
      expect(() => p.sample([prompt], 1, () => draw)).toThrow(
        new RangeError(
          `TransformerPolicy.sample: rand must be a random source returning numbers in [0, 1), got a draw of ${draw}`,
        ),
      );
    expect(() => p.sample([prompt], 1, null as never)).toThrow(
      new TypeError('TransformerPolicy.sample: rand must be a random source returning numbers in [0, 1), got null'),
    );
    p.dispose();
  });

  it('a tf that is not the tfjs module is refused naming tf, not "Cannot read properties of null"', () => {
    for (const [bad, got] of [
      [null, 'null'],
      [{ tidy: () => 0 }, 'object'],
    ] as const)
      expect(() => new TransformerPolicy(bad as never, config, 1)).toThrow(
        new TypeError(`TransformerPolicy: tf must be the @tensorflow/tfjs module (see loadTf()), got ${got}`),
      );
  });
});
