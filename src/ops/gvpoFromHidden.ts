// gvpoFromHidden: the fused LM head. The logits z = hidden * weight^T are never materialised
// (the native kernel computes them one tile at a time); then everything of gvpoFromLogits, with
// gradients for the hidden states and the head's weight. Its two phases for sharded batches:
// gvpoFromHiddenForward (-> S, logZ) and gvpoFromHiddenBackward (dL/dS -> dL/dhidden, dL/dweight).
import {
  gvpoFromHiddenBackwardRef, gvpoFromHiddenForwardRef, gvpoFromHiddenRef,
} from '../reference/gvpoFromHidden.js';
import type {
  DType, GvpoFromHiddenArgs, GvpoFromHiddenBackwardArgs, GvpoFromHiddenForwardArgs,
  GvpoFromHiddenForwardResult, GvpoFromHiddenGrads, GvpoFromHiddenResult, Logits,
} from '../types.js';
import {
  checkOptions, checkTargets, dim, dtypeOf, expectLength, maskOf, numbersOf, product, temperatureOf,
  threads, typed,
} from '../validate.js';
import { allocate, normalizeLoss, normalizeReference, type LossOpts } from './normalize.js';
import { runAsync, runSync } from './run.js';

/** The checked batch, with the field names native/addon/hidden_ops.cc reads. */
export interface HiddenBatchOpts {
  hidden: Logits;
  weight: Logits;
  dtype: DType;
  targets: Int32Array;
  mask: Float32Array;
  sequences: number;
  tokens: number;
  rows: number;
  hiddenSize: number;
  vocab: number;
  temperature: number;
  threads?: number;
  referenceTokenLogprobs?: Float64Array;
  referenceLogprobs?: Float64Array;
}
export type FromHiddenOpts = HiddenBatchOpts & LossOpts & GvpoFromHiddenGrads;
export interface HiddenBackwardOpts extends HiddenBatchOpts, GvpoFromHiddenGrads {
  logZ: Float32Array;
  gradLogprobs: Float64Array;
}

const BATCH_KEYS = [
  'hidden', 'weight', 'dtype', 'targets', 'mask', 'sequences', 'tokens', 'hiddenSize', 'vocab',
  'temperature', 'threads', 'referenceTokenLogprobs', 'referenceLogprobs',
];
// The phases accept the fused op's options too, so one object serves all three calls.
const FUSED_KEYS = [...BATCH_KEYS, 'rewards', 'groups', 'beta', 'reduction'];
const BACKWARD_KEYS = [...FUSED_KEYS, 'logZ', 'gradLogprobs'];

function matrixOf(fn: string, name: string, v: unknown, dtype: DType): Logits {
  return dtype === 'float32' ? typed(fn, name, v, Float32Array) : typed(fn, name, v, Uint16Array);
}

function normalizeHidden(fn: string, a: unknown, keys: readonly string[]): HiddenBatchOpts {
  checkOptions(fn, a, keys);
  const sequences = dim(fn, 'sequences', a.sequences);
  const tokens = dim(fn, 'tokens', a.tokens);
  const rows = product(fn, 'sequences*tokens', [sequences, tokens]);
  const dtype = dtypeOf(fn, a.dtype);
  const hiddenSize = dim(fn, 'hiddenSize', a.hiddenSize);
  const vocab = dim(fn, 'vocab', a.vocab);
  const hidden = matrixOf(fn, 'hidden', a.hidden, dtype);
  expectLength(fn, 'hidden', hidden.length, product(fn, 'hidden', [rows, hiddenSize]), 'sequences*tokens*hiddenSize');
  const weight = matrixOf(fn, 'weight', a.weight, dtype);
  expectLength(fn, 'weight', weight.length, product(fn, 'weight', [vocab, hiddenSize]), 'vocab*hiddenSize');
  const targets = typed(fn, 'targets', a.targets, Int32Array);
  expectLength(fn, 'targets', targets.length, rows, 'sequences*tokens');
  const mask = maskOf(fn, a.mask, false) as Float32Array;
  expectLength(fn, 'mask', mask.length, rows, 'sequences*tokens');
  const temperature = temperatureOf(fn, a.temperature);
  const th = threads(fn, a.threads);
  checkTargets(fn, targets, mask, vocab);
  const b = { hidden, weight, dtype, targets, mask, sequences, tokens, rows, hiddenSize, vocab, temperature, threads: th };
  return { ...b, ...normalizeReference(fn, a, b) };
}

function grads(fn: string, o: HiddenBatchOpts): GvpoFromHiddenGrads {
  return {
    gradHidden: allocate(fn, o.rows * o.hiddenSize),
    gradWeight: allocate(fn, o.vocab * o.hiddenSize),
  };
}

function normalizeFromHidden(a: GvpoFromHiddenArgs): FromHiddenOpts {
  const fn = 'gvpoFromHidden';
  const b = normalizeHidden(fn, a, FUSED_KEYS);
  return { ...b, ...normalizeLoss(fn, a as unknown as Record<string, unknown>, b.sequences), ...grads(fn, b) };
}

function normalizeBackward(a: GvpoFromHiddenBackwardArgs): HiddenBackwardOpts {
  const fn = 'gvpoFromHiddenBackward';
  const b = normalizeHidden(fn, a, BACKWARD_KEYS);
  const logZ = typed(fn, 'logZ', a.logZ, Float32Array);
  expectLength(fn, 'logZ', logZ.length, b.rows, 'sequences*tokens');
  const gradLogprobs = numbersOf(fn, 'gradLogprobs', a.gradLogprobs, b.sequences, 'sequences');
  return { ...b, logZ, gradLogprobs, ...grads(fn, b) };
}

/** Loss, dL/dhidden and dL/dweight in one call, the logits never held whole. */
export function gvpoFromHidden(args: GvpoFromHiddenArgs): GvpoFromHiddenResult {
  const o = normalizeFromHidden(args);
  return runSync('gvpoFromHidden', o, () => gvpoFromHiddenRef(o));
}

export async function gvpoFromHiddenAsync(args: GvpoFromHiddenArgs): Promise<GvpoFromHiddenResult> {
  const o = normalizeFromHidden(args);
  return runAsync('gvpoFromHidden', o, () => gvpoFromHiddenRef(o));
}

/** Phase 1: S (and Sref) per sequence, token log-probs and logZ for phase 2. */
export function gvpoFromHiddenForward(args: GvpoFromHiddenForwardArgs): GvpoFromHiddenForwardResult {
  const o = normalizeHidden('gvpoFromHiddenForward', args, FUSED_KEYS);
  return runSync('gvpoFromHiddenForward', o, () => gvpoFromHiddenForwardRef(o));
}

export async function gvpoFromHiddenForwardAsync(args: GvpoFromHiddenForwardArgs): Promise<GvpoFromHiddenForwardResult> {
  const o = normalizeHidden('gvpoFromHiddenForward', args, FUSED_KEYS);
  return runAsync('gvpoFromHiddenForward', o, () => gvpoFromHiddenForwardRef(o));
}

/** Phase 2: dL/dS (from gvpoLoss, possibly over combined shards) to dL/dhidden and dL/dweight. */
export function gvpoFromHiddenBackward(args: GvpoFromHiddenBackwardArgs): GvpoFromHiddenGrads {
  const o = normalizeBackward(args);
  return runSync('gvpoFromHiddenBackward', o, () => gvpoFromHiddenBackwardRef(o));
}

export async function gvpoFromHiddenBackwardAsync(args: GvpoFromHiddenBackwardArgs): Promise<GvpoFromHiddenGrads> {
  const o = normalizeBackward(args);
  return runAsync('gvpoFromHiddenBackward', o, () => gvpoFromHiddenBackwardRef(o));
}
