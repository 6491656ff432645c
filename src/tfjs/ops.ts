// The GVPO losses as TensorFlow.js ops with exact gradients through tf.customGrad, computed by
// gvpo's kernels (native when loaded, TypeScript otherwise): the tfjs graph never materializes
// softmax, log-softmax or one-hot arrays of size N*T*V.
import type * as TF from '@tensorflow/tfjs';
import { gvpoFromHidden } from '../ops/gvpoFromHidden.js';
import { gvpoFromLogits } from '../ops/gvpoFromLogits.js';
import { gvpoLoss } from '../ops/gvpoLoss.js';
import { tokenLogprobs, tokenLogprobsBackward } from '../ops/tokenLogprobs.js';
import { tokenLogprobsFromHidden, tokenLogprobsFromHiddenBackward } from '../ops/tokenLogprobsFromHidden.js';
import { KEYS } from '../ops/normalize.js';
import { isKind, rangeError, snapshot, typed, typeError } from '../validate.js';
import type {
  GvpoFromHiddenArgs,
  GvpoFromHiddenResult,
  GvpoFromLogitsArgs,
  GvpoFromLogitsResult,
  GvpoLossArgs,
  GvpoLossResult,
  TokenLogprobsFromHiddenArgs,
} from '../types.js';

type Tf = typeof TF;

type OneInput = (x: TF.Tensor) => { value: TF.Tensor; gradFunc: (dy: TF.Tensor) => TF.Tensor };

/** tf.customGrad for a function of one tensor. */
function customGrad1(tf: Tf, f: OneInput): (x: TF.Tensor) => TF.Tensor {
  const g = tf.customGrad(((x: TF.Tensor) => f(x)) as unknown as Parameters<Tf['customGrad']>[0]);
  return (x) => g(x) as TF.Tensor;
}

/** The option names of `op` that a tfjs op takes from its caller (the rest come from its tensors). */
function tfKeys(op: keyof typeof KEYS, fromTensors: readonly string[]): string[] {
  return KEYS[op].filter((k) => !fromTensors.includes(k));
}
const FROM_LOGITS_TF_KEYS = tfKeys('gvpoFromLogits', ['logits', 'dtype', 'inPlace', 'out']);
const FROM_HIDDEN_TF_KEYS = tfKeys('gvpoFromHidden', [
  'hidden',
  'weight',
  'dtype',
  'hiddenSize',
  'vocab',
  'gradWeight',
  'accumulate',
]);
const HEAD_TF_KEYS = tfKeys('tokenLogprobsFromHidden', ['hidden', 'weight', 'dtype', 'rows', 'hiddenSize', 'vocab']);
const LOSS_TF_KEYS = ['referenceLogprobs', 'rewards', 'groups', 'beta', 'reduction'];

/** The tfjs module the op builds its tensors with, or a TypeError. */
function tfArg(fn: string, tf: unknown): void {
  const t = tf as Partial<Tf> | null | undefined;
  if (typeof t?.customGrad !== 'function' || typeof t.tensor !== 'function' || typeof t.Tensor !== 'function')
    typeError(fn, 'tf', 'the @tensorflow/tfjs module (see loadTf())', tf);
}

/** A live float32 tfjs tensor (of the given rank, when one is given) of the module `tf`, or an
 *  error naming the argument. tf.customGrad takes only what its `instanceof tf.Tensor` passes, so
 *  this check is that one: an object without a tensor's methods is refused here by name. (tfjs's
 *  instanceof is itself a test of methods: an object with data(), dataSync() and
 *  throwIfDisposed() passes it, and tfjs then reads it as a tensor.) */
function tensorArg(tf: Tf, fn: string, name: string, t: unknown, rank?: number, shape = ''): void {
  const x = t as TF.Tensor;
  if (!(t instanceof tf.Tensor)) {
    const looksLike = typeof t === 'object' && t !== null && Array.isArray(x.shape) && typeof x.dataSync === 'function';
    if (!looksLike) typeError(fn, name, `a tf.Tensor${shape}`, t);
    throw new TypeError(
      `${fn}: ${name} must be a tf.Tensor${shape} of the tf module passed, got an object that is not one (a look-alike, or an object of another tfjs)`,
    );
  }
  const refuse = (expected: string, got: string): never => {
    throw new TypeError(`${fn}: ${name} must be ${expected}, got ${got}`);
  };
  if (x.isDisposed) refuse(`a tf.Tensor${shape}`, 'a disposed tensor');
  if (x.dtype !== 'float32')
    refuse(`a float32 tf.Tensor${shape}`, `${/^[aeiou]/.test(x.dtype) ? 'an' : 'a'} ${x.dtype} tensor`);
  if (rank !== undefined && x.rank !== rank) {
    rangeError(fn, name, `a ${rank}-D tf.Tensor${shape}`, `a ${x.rank}-D tensor`);
  }
}

/** The fused head's sizes from its tensors: weight [V, H] and hidden of any shape ending in H. */
function headSizes(
  tf: Tf,
  fn: string,
  hidden: unknown,
  weight: unknown,
): { vocab: number; hiddenSize: number; rows: number } {
  tensorArg(tf, fn, 'hidden', hidden, undefined, ' [..., hiddenSize]');
  tensorArg(tf, fn, 'weight', weight, 2, ' [vocab, hiddenSize]');
  const [vocab, hiddenSize] = (weight as TF.Tensor2D).shape;
  // the op has no vocab of its own: an empty weight is named as what it is
  if (vocab === 0 || hiddenSize === 0)
    rangeError(fn, 'weight', 'a non-empty [vocab, hiddenSize] tensor', `shape [${vocab}, ${hiddenSize}]`);
  const { shape, size } = hidden as TF.Tensor;
  if (shape.length === 0 || shape[shape.length - 1] !== hiddenSize || size === 0) {
    rangeError(
      fn,
      'hidden',
      `a non-empty tensor whose last dimension is hiddenSize = ${hiddenSize} (weight's 2nd dimension)`,
      `shape [${shape.join(', ')}]`,
    );
  }
  return { vocab, hiddenSize, rows: size / hiddenSize };
}

/**
 * Runs the kernel behind a tfjs op with the kernel's refusals (a bad option value: beta, groups,
 * temperature, a length) named as the op the caller called: `gvpoFromLogitsTf: beta ...`, not
 * `gvpoFromLogits: beta ...`, and an argument the op names otherwise by its name (`renames`). The
 * message and the error's class are otherwise the kernel's own.
 */
export function asOp<T>(fn: string, kernel: string, run: () => T, renames: Record<string, string> = {}): T {
  try {
    return run();
  } catch (e) {
    const prefix = `${kernel}: `;
    if ((e instanceof TypeError || e instanceof RangeError) && e.message.startsWith(prefix)) {
      const Refusal = e instanceof TypeError ? TypeError : RangeError;
      // an argument the op calls by another name (gvpoLossTf's S is the kernel's policyLogprobs)
      let rest = e.message.slice(prefix.length);
      for (const [from, to] of Object.entries(renames))
        if (rest.startsWith(`${from} `)) rest = `${to}${rest.slice(from.length)}`;
      throw new Refusal(`${fn}: ${rest}`);
    }
    throw e;
  }
}

/** Float32 values of a tensor (copied only where the backend must). */
function values(t: TF.Tensor): Float32Array {
  return t.dataSync() as Float32Array;
}

/**
 * GVPO loss of sequence log-probs S (a tensor, differentiated) against fixed Sref and rewards.
 * Returns the scalar loss and, once evaluated, the kernel's full result (terms, residuals).
 */
export function gvpoLossTf(
  tf: Tf,
  S: TF.Tensor1D,
  args: Omit<GvpoLossArgs, 'policyLogprobs'>,
): { loss: TF.Scalar; result: () => GvpoLossResult } {
  tfArg('gvpoLossTf', tf);
  tensorArg(tf, 'gvpoLossTf', 'S', S, 1, ' [sequences]');
  const o = snapshot('gvpoLossTf', args, LOSS_TF_KEYS) as typeof args;
  // the lengths against S, named as this op names them (the kernel would say policyLogprobs)
  for (const name of ['referenceLogprobs', 'rewards'] as const) {
    const v = o[name] as unknown;
    const n = (v as { length?: unknown } | null)?.length;
    if (typeof n === 'number' && n !== S.shape[0])
      rangeError('gvpoLossTf', name, `of length S's size = ${S.shape[0]}`, `length ${n}`);
  }
  let result: GvpoLossResult | undefined;
  const op = customGrad1(tf, (s) => {
    const r = asOp('gvpoLossTf', 'gvpoLoss', () => gvpoLoss({ ...o, policyLogprobs: values(s) }), {
      policyLogprobs: 'S',
    });
    result = r;
    return { value: tf.scalar(r.loss), gradFunc: (dy) => tf.tensor1d(Float32Array.from(r.gradLogprobs)).mul(dy) };
  });
  const loss = op(S) as TF.Scalar;
  return { loss, result: () => result! };
}

/** gvpoFromLogits' options except the logits (a tensor here), their dtype and the gradient's destination. */
export type GvpoFromLogitsTfArgs = Omit<GvpoFromLogitsArgs, 'logits' | 'dtype' | 'inPlace' | 'out'>;

/**
 * The fused GVPO loss from float32 logits (a tensor of N*T*V elements, any shape), with the
 * gradient to the logits computed in the same kernel call as the loss.
 */
export function gvpoFromLogitsTf(
  tf: Tf,
  logits: TF.Tensor,
  args: GvpoFromLogitsTfArgs,
): { loss: TF.Scalar; result: () => GvpoFromLogitsResult } {
  tfArg('gvpoFromLogitsTf', tf);
  tensorArg(tf, 'gvpoFromLogitsTf', 'logits', logits, undefined, ' of sequences*tokens*vocab float32 logits');
  const o = snapshot('gvpoFromLogitsTf', args, FROM_LOGITS_TF_KEYS) as typeof args;
  let result: GvpoFromLogitsResult | undefined;
  const op = customGrad1(tf, (z) => {
    const r = asOp('gvpoFromLogitsTf', 'gvpoFromLogits', () => gvpoFromLogits({ ...o, logits: values(z) }));
    result = r;
    return { value: tf.scalar(r.loss), gradFunc: (dy) => tf.tensor(r.gradLogits, z.shape).mul(dy) };
  });
  const loss = op(logits) as TF.Scalar;
  return { loss, result: () => result! };
}

/** gvpoFromHidden's options except what the tensors give (hidden, weight, dtype, hiddenSize, vocab)
 *  and the weight gradient's destination (the op returns it as a tensor). */
export type GvpoFromHiddenTfArgs = Omit<
  GvpoFromHiddenArgs,
  'hidden' | 'weight' | 'dtype' | 'hiddenSize' | 'vocab' | 'gradWeight' | 'accumulate'
>;

/**
 * The fused LM head: the GVPO loss of the logits hidden * weight^T (hidden: N*T*H float32, any
 * shape ending in H; weight: [V, H], vocab-major, no bias) without the logits ever existing as a
 * tensor, with gradients for both inputs from the same kernel call.
 */
export function gvpoFromHiddenTf(
  tf: Tf,
  hidden: TF.Tensor,
  weight: TF.Tensor2D,
  args: GvpoFromHiddenTfArgs,
): { loss: TF.Scalar; result: () => GvpoFromHiddenResult } {
  tfArg('gvpoFromHiddenTf', tf);
  const { vocab, hiddenSize } = headSizes(tf, 'gvpoFromHiddenTf', hidden, weight);
  const o = snapshot('gvpoFromHiddenTf', args, FROM_HIDDEN_TF_KEYS) as typeof args;
  let result: GvpoFromHiddenResult | undefined;
  const op = tf.customGrad(((h: TF.Tensor, w: TF.Tensor) => {
    const r = asOp('gvpoFromHiddenTf', 'gvpoFromHidden', () =>
      gvpoFromHidden({ ...o, hidden: values(h), weight: values(w), hiddenSize, vocab }),
    );
    result = r;
    return {
      value: tf.scalar(r.loss),
      gradFunc: (dy: TF.Tensor) => [tf.tensor(r.gradHidden, h.shape).mul(dy), tf.tensor(r.gradWeight, w.shape).mul(dy)],
    };
  }) as unknown as Parameters<Tf['customGrad']>[0]);
  const loss = op(hidden, weight) as TF.Scalar;
  return { loss, result: () => result! };
}

/** Token log-probs l[r] of float32 logits [R, V] (a tensor), differentiable. */
export function tokenLogprobsTf(tf: Tf, logits: TF.Tensor2D, targets: Int32Array, temperature = 1): TF.Tensor1D {
  tfArg('tokenLogprobsTf', tf);
  tensorArg(tf, 'tokenLogprobsTf', 'logits', logits, 2, ' [rows, vocab]');
  const [rows, vocab] = logits.shape;
  if (rows === 0 || vocab === 0)
    rangeError('tokenLogprobsTf', 'logits', 'a non-empty [rows, vocab] tensor', `shape [${rows}, ${vocab}]`);
  typed('tokenLogprobsTf', 'targets', targets, Int32Array, ` of rows = ${rows} token ids`); // of any realm
  if (targets.length !== rows)
    rangeError(
      'tokenLogprobsTf',
      'targets',
      `of length rows = ${rows} (logits' 1st dimension)`,
      `length ${targets.length}`,
    );
  // a copy: the gradient is the forward's, whatever the caller writes to its array in between
  const ids = Int32Array.from(targets);
  const op = customGrad1(tf, (z) => {
    const zv = values(z);
    const r = asOp('tokenLogprobsTf', 'tokenLogprobs', () =>
      tokenLogprobs({ logits: zv, targets: ids, rows, vocab, temperature }),
    );
    return {
      value: tf.tensor1d(r.logprobs),
      gradFunc: (dy) => {
        const g = asOp('tokenLogprobsTf', 'tokenLogprobsBackward', () =>
          tokenLogprobsBackward({
            logits: zv,
            targets: ids,
            rows,
            vocab,
            temperature,
            logZ: r.logZ,
            gradTokenLogprobs: values(dy),
          }),
        );
        return tf.tensor2d(g, [rows, vocab]);
      },
    };
  });
  return op(logits) as TF.Tensor1D;
}

export type TokenLogprobsFromHiddenTfArgs = Omit<
  TokenLogprobsFromHiddenArgs,
  'hidden' | 'weight' | 'dtype' | 'rows' | 'hiddenSize' | 'vocab'
>;

/**
 * The fused LM head for any loss: the per-token log-probs l (and, with `entropy: true`, the
 * entropies H) of the logits hidden * weight^T / tau (hidden: float32, any shape ending in H, one
 * row per token; weight: [V, H], vocab-major, no bias), differentiable in both inputs, the logits
 * never a tensor. Any tfjs loss on l and H (GRPO, Dr.GRPO, DPO, an entropy bonus) trains through
 * it: the gradient's upstream dL/dl and dL/dH go to the kernel's backward in one call. Masked rows
 * (mask 0) give l = H = 0 and no gradient.
 */
export function tokenLogprobsFromHiddenTf(
  tf: Tf,
  hidden: TF.Tensor,
  weight: TF.Tensor2D,
  args: TokenLogprobsFromHiddenTfArgs,
): { logprobs: TF.Tensor1D; entropy?: TF.Tensor1D } {
  tfArg('tokenLogprobsFromHiddenTf', tf);
  const { vocab, hiddenSize, rows } = headSizes(tf, 'tokenLogprobsFromHiddenTf', hidden, weight);
  const o = snapshot('tokenLogprobsFromHiddenTf', args, HEAD_TF_KEYS) as typeof args;
  if (o.entropy !== undefined && typeof o.entropy !== 'boolean') {
    typeError('tokenLogprobsFromHiddenTf', 'entropy', 'a boolean', o.entropy);
  }
  const withEntropy = o.entropy === true;
  // copies of the index arrays: the backward is the forward's, whatever the caller writes to its
  // arrays in between (a wrong kind is left for the kernel to refuse by name)
  for (const key of ['targets', 'mask'] as const) {
    const v = o[key] as unknown;
    if (isKind(v, Int32Array)) (o as Record<string, unknown>)[key] = Int32Array.from(v as Int32Array);
    else if (isKind(v, Float32Array)) (o as Record<string, unknown>)[key] = Float32Array.from(v as Float32Array);
  }
  // One output tensor (customGrad takes one): l, or [l, H] per row; dy splits the same way.
  const op = tf.customGrad(((h: TF.Tensor, w: TF.Tensor) => {
    const head = { ...o, hidden: values(h), weight: values(w), rows, hiddenSize, vocab };
    const f = asOp('tokenLogprobsFromHiddenTf', 'tokenLogprobsFromHidden', () =>
      tokenLogprobsFromHidden({ ...head, entropy: withEntropy }),
    );
    const value = withEntropy
      ? tf.stack([tf.tensor1d(f.logprobs), tf.tensor1d(f.entropy!)], 1)
      : tf.tensor1d(f.logprobs);
    return {
      value,
      gradFunc: (dy: TF.Tensor) => {
        const d = values(dy);
        const gl = withEntropy ? Float32Array.from({ length: rows }, (_, r) => d[2 * r]) : Float32Array.from(d);
        const gh = withEntropy ? Float32Array.from({ length: rows }, (_, r) => d[2 * r + 1]) : undefined;
        const g = tokenLogprobsFromHiddenBackward({
          ...head,
          logZ: f.logZ,
          entropy: f.entropy,
          gradTokenLogprobs: gl,
          ...(gh ? { gradEntropy: gh } : {}),
        });
        return [tf.tensor(g.gradHidden, h.shape), tf.tensor(g.gradWeight, w.shape)];
      },
    };
  }) as unknown as Parameters<Tf['customGrad']>[0]);
  const out = op(hidden, weight) as TF.Tensor;
  if (!withEntropy) return { logprobs: out as TF.Tensor1D };
  const [logprobs, entropy] = tf.unstack(out, 1) as TF.Tensor1D[];
  out.dispose(); // the caller holds l and H; a gradient tape needs only their ids
  return { logprobs, entropy };
}
