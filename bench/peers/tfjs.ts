// TensorFlow.js peer: the fastest formulations found. Token log-probs: logSoftmax over the
// vocabulary, then a flat gather at r*V + y (no one-hot array). The GVPO step differentiates a
// one-hot product instead: the gather's gradient (UnsortedSegmentSum) does not exist on wasm, and
// on the cpu backend it ran for minutes and held over 20 GiB at the main size, where the one-hot
// form takes tens of seconds.
import type * as TF from '@tensorflow/tfjs';
import type { Inputs } from '../lib.js';

export async function tfjsWithBackend(backend: 'cpu' | 'wasm'): Promise<typeof TF> {
  const tf = await import('@tensorflow/tfjs');
  if (backend === 'wasm') await import('@tensorflow/tfjs-backend-wasm');
  await tf.setBackend(backend);
  await tf.ready();
  return tf;
}

export function tfjsPeer(tf: typeof TF, x: Inputs, backend: 'cpu' | 'wasm') {
  const { N, T, V, k } = x;
  const R = N * T;
  const logitsF32 = x.logits instanceof Float32Array ? x.logits : null;
  if (!logitsF32) throw new Error('tfjs peer: float32 logits only');
  const z = tf.tensor2d(logitsF32, [R, V]);
  const flatIdx = tf.tensor1d(
    Int32Array.from(x.targets, (y, r) => r * V + y),
    'int32',
  );
  const mask = tf.tensor2d(x.mask, [N, T]);
  const refSeq = tf.tensor1d(
    Float32Array.from({ length: N }, (_, n) => {
      let s = 0;
      for (let t = 0; t < T; t++) s += x.mask[n * T + t] * x.referenceTokenLogprobs[n * T + t];
      return s;
    }),
  );
  const rewards = tf.tensor1d(Float32Array.from(x.rewards));
  const tokenLp = (zz: TF.Tensor2D) =>
    tf.gather(tf.logSoftmax(zz.div(x.temperature)).reshape([R * V]), flatIdx).reshape([N, T]);
  const targets = tf.tensor1d(x.targets, 'int32');
  const tokenLpOneHot = (zz: TF.Tensor2D) =>
    tf.logSoftmax(zz.div(x.temperature)).mul(tf.oneHot(targets, V)).sum(1).reshape([N, T]);
  const lossOf = (zz: TF.Tensor) => {
    const lp = tokenLpOneHot(zz as TF.Tensor2D);
    const S = lp.mul(mask).sum(1);
    const r = S.sub(refSeq).mul(x.beta);
    const rc = r.sub(
      r
        .reshape([N / k, k])
        .mean(1, true)
        .tile([1, k])
        .reshape([N]),
    );
    const a = rewards.sub(
      rewards
        .reshape([N / k, k])
        .mean(1, true)
        .tile([1, k])
        .reshape([N]),
    );
    return rc
      .sub(a)
      .square()
      .sum()
      .mul(0.5 / (k - 1)) as TF.Scalar;
  };
  const grad = tf.grad(lossOf);
  return {
    async tokenLogprobs() {
      const out = tf.tidy(() => tokenLp(z));
      await out.data();
      out.dispose();
    },
    async gvpoFromLogits() {
      const g = tf.tidy(() => grad(z));
      await g.data();
      g.dispose();
    },
    dispose() {
      tf.dispose([z, flatIdx, targets, mask, refSeq, rewards]);
    },
  };
}
