// gvpo/tfjs: the kernel-backed ops' values and gradients equal TensorFlow.js's own autodiff of a
// plain tfjs formulation of the formulas in docs/DESIGN.md, on the cpu and wasm backends.
import type * as TF from '@tensorflow/tfjs';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { runInNewContext } from 'node:vm';
import { describe, expect, it } from 'vitest';
import {
  gvpoFromHiddenTf,
  gvpoFromLogitsTf,
  gvpoLossTf,
  loadTf,
  tokenLogprobsFromHiddenTf,
  tokenLogprobsTf,
} from '../src/tfjs/index.js';
import { gvpoFromLogits } from '../src/index.js';
import { allclose, gradClose } from './helpers/allclose.js';
import { batch, randomRewards } from './helpers/data.js';
import { tfOn } from './helpers/tfBackend.js';

const ROOT = join(import.meta.dirname, '..');

// The math of docs/DESIGN.md in tfjs ops, nothing from gvpo: logSoftmax, one-hot gather, masked sums,
// group centring by reshape, the loss ('mean' over groups of equal size k).
function plainLoss(
  tf: typeof TF,
  z: TF.Tensor,
  a: {
    targets: Int32Array;
    mask: Float32Array;
    N: number;
    T: number;
    V: number;
    k: number;
    Sref: Float64Array;
    R: Float64Array;
    beta: number;
    tau: number;
  },
) {
  const lp = tf
    .logSoftmax(z.reshape([a.N * a.T, a.V]).div(a.tau))
    .mul(tf.oneHot(tf.tensor1d(a.targets, 'int32'), a.V))
    .sum(1);
  const S = lp
    .reshape([a.N, a.T])
    .mul(tf.tensor2d(a.mask, [a.N, a.T]))
    .sum(1);
  const r = S.sub(tf.tensor1d(Float32Array.from(a.Sref)))
    .mul(a.beta)
    .reshape([a.N / a.k, a.k]);
  const R = tf.tensor2d(Float32Array.from(a.R), [a.N / a.k, a.k]);
  const c = r.sub(r.mean(1, true)).sub(R.sub(R.mean(1, true)));
  return c
    .square()
    .sum()
    .div(2 * (a.k - 1))
    .div(a.N / a.k) as TF.Scalar;
}

for (const backend of ['cpu', 'wasm'] as const) {
  describe(`gvpo/tfjs on the ${backend} backend`, async () => {
    const tf = await tfOn(backend);

    it('gvpoFromLogitsTf: loss and gradient equal tfjs autodiff of the plain formulation', () => {
      const N = 6,
        T = 3,
        V = 11,
        k = 3;
      const b = batch(21, N, T, V, 'float32', 2, 1);
      const Sref = Float64Array.from({ length: N }, (_, n) => -8 - n * 0.3);
      const R = randomRewards(4, N);
      const a = { targets: b.targets, mask: b.mask, N, T, V, k, Sref, R, beta: 0.5, tau: 0.9 };
      const z = tf.tensor3d(b.logits as Float32Array, [N, T, V]);
      const ours = tf.valueAndGrad(
        (x: TF.Tensor) =>
          gvpoFromLogitsTf(tf, x, {
            targets: b.targets,
            mask: b.mask,
            sequences: N,
            tokens: T,
            vocab: V,
            referenceLogprobs: Sref,
            rewards: R,
            groups: { size: k },
            beta: 0.5,
            temperature: 0.9,
          }).loss,
      )(z);
      const theirs = tf.valueAndGrad((x: TF.Tensor) => plainLoss(tf, x, a))(z);
      expect(ours.value.dataSync()[0]).toBeCloseTo(theirs.value.dataSync()[0], 5);
      gradClose(ours.grad.dataSync(), theirs.grad.dataSync(), 1e-4, 1e-7);
    });

    it('gvpoLossTf: dL/dS equals tfjs autodiff', () => {
      const S = tf.tensor1d([-3, -4, -2.5, -7, -1, -2]);
      const Sref = Float64Array.from([-3.2, -3.9, -2, -6, -1.5, -2.2]);
      const R = [1, 0, 0.5, 0, 1, 1];
      const ours = tf.valueAndGrad(
        (s: TF.Tensor) =>
          gvpoLossTf(tf, s as TF.Tensor1D, { referenceLogprobs: Sref, rewards: R, groups: { size: 3 }, beta: 0.2 })
            .loss,
      )(S);
      const theirs = tf.valueAndGrad((s: TF.Tensor) => {
        const r = s
          .sub(tf.tensor1d(Float32Array.from(Sref)))
          .mul(0.2)
          .reshape([2, 3]);
        const Rt = tf.tensor2d(R, [2, 3]);
        return r
          .sub(r.mean(1, true))
          .sub(Rt.sub(Rt.mean(1, true)))
          .square()
          .sum()
          .div(4)
          .div(2) as TF.Scalar;
      })(S);
      expect(ours.value.dataSync()[0]).toBeCloseTo(theirs.value.dataSync()[0], 6);
      allclose(ours.grad.dataSync(), theirs.grad.dataSync(), { atol: 1e-6, rtol: 1e-5 }, 'dL/dS');
    });

    it('tokenLogprobsTf: values and vector-Jacobian product equal autodiff', () => {
      const R = 7,
        V = 9;
      const b = batch(3, R, 1, V, 'float32', 2);
      const z = tf.tensor2d(b.logits as Float32Array, [R, V]);
      const dy = tf.tensor1d(Float32Array.from({ length: R }, (_, i) => Math.sin(i)));
      const f1 = (x: TF.Tensor) =>
        tokenLogprobsTf(tf, x as TF.Tensor2D, b.targets)
          .mul(dy)
          .sum() as TF.Scalar;
      const f2 = (x: TF.Tensor) =>
        tf
          .logSoftmax(x as TF.Tensor2D)
          .mul(tf.oneHot(tf.tensor1d(b.targets, 'int32'), V))
          .sum(1)
          .mul(dy)
          .sum() as TF.Scalar;
      expect(tf.grad(f1)(z).dataSync().length).toBe(R * V);
      gradClose(tf.grad(f1)(z).dataSync(), tf.grad(f2)(z).dataSync(), 1e-5, 1e-7);
      expect(f1(z).dataSync()[0]).toBeCloseTo(f2(z).dataSync()[0], 5);
    });
  });
}

describe('optional peers', () => {
  // In child processes: a fresh TensorFlow.js whose first tensor would greet, without the wasm
  // peer, or not loaded yet (this process keeps the backend its first loadTf chose).
  const node = (code: string, flags: string[] = []) =>
    spawnSync(process.execPath, [...flags, '--input-type=module', '-e', code], {
      cwd: ROOT,
      encoding: 'utf8',
      timeout: 60_000,
    });

  it('asking for @tensorflow/tfjs-node when it is absent says what to do', async () => {
    let installed = true;
    try {
      await import('@tensorflow/tfjs-node' as string);
    } catch {
      installed = false;
    }
    if (installed) return; // nothing to check where the peer is really there
    const r = node(`import { loadTf } from './dist/tfjs/index.js';
      for (let i = 0; i < 2; i++) await loadTf('node').catch((e) => console.log(e.code, e.peer, e.message));`);
    const lines = r.stdout.trim().split('\n');
    expect(lines).toHaveLength(2);
    for (const line of lines)
      expect(line).toMatch(
        /^GVPO_MISSING_PEER @tensorflow\/tfjs-node @tensorflow\/tfjs-node was asked for but is not installed.*loadTf\('cpu'\)/,
      );
  });

  it("loadTf('cpu') drops tfjs's 'install tfjs-node' greeting and keeps its other warnings", () => {
    const r = node(`import { loadTf } from './dist/tfjs/index.js';
      const { tf } = await loadTf('cpu');
      tf.tensor1d([1, 2]).square().dataSync();
      tf.backend_util.warn('a warning of TensorFlow.js itself');
      console.log('done');`);
    expect(r.stdout.trim()).toBe('done');
    expect(r.stderr).not.toMatch(/Hi, looks like|tfjs-node/);
    expect(r.stderr).toContain('a warning of TensorFlow.js itself');
  });

  it('loadTf keeps the first choice: a later, different one gets the same LoadedTf and moves no backend', () => {
    const r = node(`import { loadTf } from './dist/tfjs/index.js';
      const a = await loadTf('wasm');
      const b = await loadTf('cpu');
      console.log(a === b, a.tf.getBackend(), a.backend, b.backend);`);
    expect(r.stdout.trim()).toBe('true wasm @tensorflow/tfjs (wasm) @tensorflow/tfjs (wasm)');
    // once per process: the CommonJS build, loaded beside the ES one, gets the same LoadedTf
    const both = node(`import { createRequire } from 'node:module';
      import { loadTf } from './dist/tfjs/index.js';
      const cjs = createRequire(import.meta.url)('./dist/cjs/tfjs/index.js');
      const a = await loadTf('wasm');
      const b = await cjs.loadTf('cpu');
      console.log(a === b, b.backend);`);
    expect(both.stdout.trim()).toBe('true @tensorflow/tfjs (wasm)');
    // a first choice that failed to load is not kept: the next may choose again (the command's
    // fallback from wasm to cpu)
    const retry = node(
      `import { loadTf } from './dist/tfjs/index.js';
      await loadTf('wasm').catch((e) => console.log(e.code));
      const { tf, backend } = await loadTf('cpu');
      console.log(tf.getBackend(), backend);`,
      ['--import', './test/helpers/without-wasm.mjs'],
    );
    expect(retry.stdout.trim()).toBe('GVPO_MISSING_PEER\ncpu @tensorflow/tfjs (cpu)');
  });

  it("loadTf('wasm') without its peer names what to install and the cpu backend instead", () => {
    const r = node(
      `import { loadTf } from './dist/tfjs/index.js';
      await loadTf('wasm').catch((e) => console.log(e.code, e.message));`,
      ['--import', './test/helpers/without-wasm.mjs'],
    );
    expect(r.stdout).toMatch(
      /^GVPO_MISSING_PEER @tensorflow\/tfjs-backend-wasm is not installed: `npm install @tensorflow\/tfjs-backend-wasm` .*or use the cpu backend.*loadTf\('cpu'\)/,
    );
  });
});

describe('tfjs ops and the trainer refuse what they do not take', () => {
  it('an option the tf op does not know (inPlace would write over the tensor), and tensors of the wrong rank', async () => {
    const { tf } = await loadTf('cpu');
    const b = batch(5, 4, 2, 8, 'float32', 1, 2);
    const z = tf.tensor(b.logits as Float32Array);
    const before = (b.logits as Float32Array).slice();
    const opts = {
      targets: b.targets,
      mask: b.mask,
      sequences: 4,
      tokens: 2,
      vocab: 8,
      rewards: randomRewards(5, 4),
      groups: { size: 2 },
      beta: 0.1,
    };
    expect(() => gvpoFromLogitsTf(tf, z, { ...opts, inPlace: true } as never)).toThrow(
      /gvpoFromLogitsTf: options has no field 'inPlace'/,
    );
    expect(z.dataSync()).toEqual(before);
    expect(() => tokenLogprobsTf(tf, tf.tensor1d([1, 2]) as never, new Int32Array(1))).toThrow(
      'tokenLogprobsTf: logits must be a 2-D tf.Tensor [rows, vocab], got a 1-D tensor',
    );
    expect(() => tokenLogprobsTf(tf, null as never, new Int32Array(1))).toThrow(
      /tokenLogprobsTf: logits must be a tf\.Tensor/,
    );
    // sizes named as the tfjs ops name them, not as the kernels behind them do
    expect(() => tokenLogprobsTf(tf, tf.zeros([0, 5]) as TF.Tensor2D, new Int32Array(0))).toThrow(
      'tokenLogprobsTf: logits must be a non-empty [rows, vocab] tensor, got shape [0, 5]',
    );
    expect(() => tokenLogprobsTf(tf, tf.zeros([2, 5]) as TF.Tensor2D, new Int32Array(3))).toThrow(
      "tokenLogprobsTf: targets must be of length rows = 2 (logits' 1st dimension), got length 3",
    );
    expect(() => tokenLogprobsTf(tf, tf.zeros([2, 5]) as TF.Tensor2D, [0, 1] as never)).toThrow(
      /tokenLogprobsTf: targets must be an Int32Array of rows = 2 token ids/,
    );
    // an Int32Array of another realm (a vm context, a worker's structured clone) is one
    const foreign = runInNewContext('new Int32Array([1, 0])') as Int32Array;
    expect(foreign instanceof Int32Array).toBe(false);
    const z2 = tf.tensor2d([2, 0, 1, 0, 3, -1], [2, 3]);
    expect(Array.from(tokenLogprobsTf(tf, z2, foreign).dataSync())).toEqual(
      Array.from(tokenLogprobsTf(tf, z2, Int32Array.from([1, 0])).dataSync()),
    );
    const S7 = tf.zeros([7]) as TF.Tensor1D;
    const lossArgs = {
      referenceLogprobs: new Float64Array(8),
      rewards: new Float64Array(7),
      groups: { size: 7 },
      beta: 1,
    };
    expect(() => gvpoLossTf(tf, S7, lossArgs)).toThrow(
      "gvpoLossTf: referenceLogprobs must be of length S's size = 7, got length 8",
    );
    expect(() => gvpoLossTf(tf, S7, { ...lossArgs, referenceLogprobs: new Float64Array(7), rewards: [1] })).toThrow(
      "gvpoLossTf: rewards must be of length S's size = 7, got length 1",
    );
    await expect(loadTf('bogus' as never)).rejects.toThrow(/loadTf: choice must be 'auto'/);
    // an option value the kernel behind the op refuses is named as the op the caller called, in
    // the kernel's class and words
    const refusal = (f: () => unknown): Error => {
      try {
        f();
      } catch (e) {
        return e as Error;
      }
      throw new Error('not refused');
    };
    const cases: [() => unknown, typeof RangeError, string][] = [
      [
        () => gvpoFromLogitsTf(tf, z, { ...opts, beta: -1 }),
        RangeError,
        'gvpoFromLogitsTf: beta must be a finite number > 0, got -1',
      ],
      [
        () => gvpoFromLogitsTf(tf, z, { ...opts, groups: { size: 3 } }),
        RangeError,
        'gvpoFromLogitsTf: groups.size must be a divisor of the number of sequences 4, got 3',
      ],
      [
        () => tokenLogprobsTf(tf, tf.zeros([2, 5]) as TF.Tensor2D, new Int32Array(2), 0),
        RangeError,
        'tokenLogprobsTf: temperature must be a finite number > 0, got 0',
      ],
      [
        () => gvpoLossTf(tf, S7, { ...lossArgs, referenceLogprobs: new Float64Array(7), beta: '1' as never }),
        TypeError,
        "gvpoLossTf: beta must be a finite number > 0, got '1'",
      ],
      [
        () =>
          tokenLogprobsFromHiddenTf(tf, tf.zeros([2, 3]), tf.zeros([4, 3]) as TF.Tensor2D, {
            targets: Int32Array.from([0, 4]),
          }),
        RangeError,
        'tokenLogprobsFromHiddenTf: targets must be token ids in [0, 4) where the mask is non-zero, got 4 at index 1',
      ],
    ];
    for (const [f, Class, message] of cases) {
      const e = refusal(f);
      expect(e).toBeInstanceOf(Class);
      expect(e.message).toBe(message);
    }
    z.dispose();
  });

  it('options are read as the core ops read them (inherited, non-enumerable); tensors must be live float32, a head input end in H', async () => {
    const { tf } = await loadTf('cpu');
    const b = batch(7, 4, 2, 8, 'float32', 1, 2);
    const logits = b.logits as Float32Array;
    const own = {
      targets: b.targets,
      mask: b.mask,
      sequences: 4,
      tokens: 2,
      vocab: 8,
      rewards: randomRewards(7, 4),
      groups: { size: 2 },
      beta: 0.1,
    };
    // temperature and reduction on the prototype, beta non-enumerable: none may fall back to a default
    const args = Object.create({ temperature: 0.3, reduction: 'sum' });
    Object.assign(args, { ...own, beta: undefined });
    delete args.beta;
    Object.defineProperty(args, 'beta', { value: 0.5, enumerable: false });
    const want = gvpoFromLogits({ ...own, logits, beta: 0.5, temperature: 0.3, reduction: 'sum' }).loss;
    expect(gvpoFromLogits(Object.assign(Object.create(args), { logits })).loss).toBe(want); // the core op
    const z = tf.tensor(logits);
    const got = gvpoFromLogitsTf(tf, z, args);
    expect(got.loss.dataSync()[0]).toBeCloseTo(want, 4);
    got.loss.dispose();
    // an inherited mask masks rows in the fused head too
    const w = tf.tensor2d(
      Float32Array.from({ length: 8 * 3 }, (_, i) => Math.sin(i)),
      [8, 3],
    );
    const h = tf.tensor2d(
      Float32Array.from({ length: 4 * 3 }, (_, i) => Math.cos(i)),
      [4, 3],
    );
    const headArgs = Object.assign(Object.create({ mask: Float32Array.from([1, 0, 1, 0]) }), {
      targets: Int32Array.from([1, 2, 3, 4]),
    });
    const l = tokenLogprobsFromHiddenTf(tf, h, w, headArgs).logprobs.dataSync();
    expect([l[1], l[3]]).toEqual([0, 0]);
    expect(l[0]).toBeLessThan(0);
    // hidden must end in H = 3: a transposed [3, 4] has 12 elements too
    expect(() =>
      tokenLogprobsFromHiddenTf(tf, h.transpose() as never, w, { targets: Int32Array.from([1, 2, 3, 4]) }),
    ).toThrow(
      "tokenLogprobsFromHiddenTf: hidden must be a non-empty tensor whose last dimension is hiddenSize = 3 (weight's 2nd dimension), got shape [3, 4]",
    );
    expect(() => gvpoFromHiddenTf(tf, tf.scalar(1) as never, tf.tensor2d([[1]]), own as never)).toThrow(
      /gvpoFromHiddenTf: hidden must be a non-empty tensor whose last dimension is hiddenSize = 1 .*, got shape \[\]/,
    );
    expect(() => gvpoFromLogitsTf(tf, tf.tensor(Int32Array.from(logits, Math.round), undefined, 'int32'), own)).toThrow(
      'gvpoFromLogitsTf: logits must be a float32 tf.Tensor of sequences*tokens*vocab float32 logits, got an int32 tensor',
    );
    const gone = tf.tensor(logits);
    gone.dispose();
    expect(() => gvpoFromLogitsTf(tf, gone, own)).toThrow(
      /gvpoFromLogitsTf: logits must be a tf.Tensor .*, got a disposed tensor/,
    );
    expect(() => gvpoFromLogitsTf(undefined as never, z, own)).toThrow(
      'gvpoFromLogitsTf: tf must be the @tensorflow/tfjs module (see loadTf()), got undefined',
    );
    // the head with entropy: the stacked [rows, 2] output is not left behind
    const before = tf.memory().numTensors;
    for (let i = 0; i < 20; i++) {
      const r = tokenLogprobsFromHiddenTf(tf, h, w, { ...headArgs, targets: headArgs.targets, entropy: true });
      r.logprobs.dispose();
      r.entropy!.dispose();
    }
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([z, w, h]);
  });

  it('a misspelled trainer option is refused with the closest name', async () => {
    const { resolveTrainerOptions } = await import('../src/tfjs/index.js');
    expect(() => resolveTrainerOptions({ bta: 0.5 } as never)).toThrow(
      "GVPOTrainer: options has no field 'bta' (did you mean 'beta'?)",
    );
    expect(() => resolveTrainerOptions({ replay: { ratio: 0.5, capacty: 4 } } as never)).toThrow(/no field 'capacty'/);
    expect(() => resolveTrainerOptions(null as never)).toThrow('GVPOTrainer: options must be an object, got null');
    expect(resolveTrainerOptions({ beta: 0.5 } as never).beta).toBe(0.5);
  });
});
