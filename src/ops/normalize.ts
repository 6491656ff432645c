// Arguments of the logits ops, checked (validate.ts) and normalised (normalized.ts), in the same
// order as native/addon/ops.cc checks them.
import type { BatchOpts, ForwardOpts, GradDest, LossOpts, RowsOpts } from '../normalized.js';
import type { DType, Logits } from '../types.js';
import {
  checkOptions, checkTargets, dim, dtypeOf, expectLength, logitsOf, maskOf, numbersOf, offsetsOf,
  positive, product, rangeError, reductionOf, threads, typed, boolean,
} from '../validate.js';

export function normalizeRows(fn: string, a: unknown): RowsOpts {
  checkOptions(fn, a);
  const dtype = dtypeOf(fn, a.dtype);
  const rows = dim(fn, 'rows', a.rows);
  const vocab = dim(fn, 'vocab', a.vocab);
  const total = product(fn, 'logits', [rows, vocab]);
  const logits = logitsOf(fn, a.logits, dtype);
  expectLength(fn, 'logits', logits.length, total, 'rows*vocab');
  const targets = typed(fn, 'targets', a.targets, Int32Array);
  expectLength(fn, 'targets', targets.length, rows, 'rows');
  const mask = maskOf(fn, a.mask, true);
  if (mask) expectLength(fn, 'mask', mask.length, rows, 'rows');
  const temperature = positive(fn, 'temperature', a.temperature, 1);
  const th = threads(fn, a.threads);
  checkTargets(fn, targets, mask, vocab);
  return { logits, dtype, targets, mask, rows, vocab, temperature, threads: th };
}

export function normalizeBatch(fn: string, a: unknown): BatchOpts {
  checkOptions(fn, a);
  const dtype = dtypeOf(fn, a.dtype);
  const sequences = dim(fn, 'sequences', a.sequences);
  const tokens = dim(fn, 'tokens', a.tokens);
  const rows = product(fn, 'sequences*tokens', [sequences, tokens]);
  const vocab = dim(fn, 'vocab', a.vocab);
  const total = product(fn, 'logits', [rows, vocab]);
  const logits = logitsOf(fn, a.logits, dtype);
  expectLength(fn, 'logits', logits.length, total, 'sequences*tokens*vocab');
  const targets = typed(fn, 'targets', a.targets, Int32Array);
  expectLength(fn, 'targets', targets.length, rows, 'sequences*tokens');
  const mask = maskOf(fn, a.mask, false) as Float32Array;
  expectLength(fn, 'mask', mask.length, rows, 'sequences*tokens');
  const temperature = positive(fn, 'temperature', a.temperature, 1);
  const th = threads(fn, a.threads);
  checkTargets(fn, targets, mask, vocab);
  return { logits, dtype, targets, mask, sequences, tokens, vocab, temperature, threads: th };
}

export function normalizeForward(fn: string, a: unknown): ForwardOpts {
  const b = normalizeBatch(fn, a);
  const o = a as Record<string, unknown>;
  const rows = b.sequences * b.tokens;
  const out: ForwardOpts = { ...b };
  const hasTok = o.referenceTokenLogprobs !== undefined && o.referenceTokenLogprobs !== null;
  const hasSeq = o.referenceLogprobs !== undefined && o.referenceLogprobs !== null;
  if (hasTok && hasSeq) rangeError(fn, 'referenceLogprobs', 'absent when referenceTokenLogprobs is given', 'both');
  if (hasTok) {
    const r = o.referenceTokenLogprobs;
    if (!(r instanceof Float32Array || r instanceof Float64Array)) {
      typed(fn, 'referenceTokenLogprobs', r, Float64Array);
    }
    const src = r as Float32Array | Float64Array;
    expectLength(fn, 'referenceTokenLogprobs', src.length, rows, 'sequences*tokens');
    for (let i = 0; i < rows; i++) {
      if (b.mask[i] !== 0 && !Number.isFinite(src[i])) {
        rangeError(fn, 'referenceTokenLogprobs', 'finite numbers where the mask is non-zero', `a non-finite value at index ${i}`);
      }
    }
    out.referenceTokenLogprobs = Float64Array.from(src);
  }
  if (hasSeq) out.referenceLogprobs = numbersOf(fn, 'referenceLogprobs', o.referenceLogprobs, b.sequences, 'sequences');
  return out;
}

export function normalizeLoss(fn: string, a: Record<string, unknown>, sequences: number): LossOpts {
  const rewards = numbersOf(fn, 'rewards', a.rewards, sequences, 'sequences');
  const offsets = offsetsOf(fn, a.groups, sequences);
  const beta = positive(fn, 'beta', a.beta);
  const reduction = reductionOf(fn, a.reduction);
  return { rewards, offsets, beta, reduction };
}

export function normalizeDest(fn: string, a: Record<string, unknown>, b: { logits: Logits; dtype: DType }): GradDest {
  const inPlace = boolean(fn, 'inPlace', a.inPlace);
  if (inPlace && b.dtype !== 'float32') {
    rangeError(fn, 'inPlace', 'false for 16-bit logits (the gradient is float32)', 'true');
  }
  if (inPlace) return { inPlace };
  if (a.out === undefined) return { inPlace, out: allocate(fn, b.logits.length) };
  const out = typed(fn, 'out', a.out, Float32Array);
  expectLength(fn, 'out', out.length, b.logits.length, "the logits' length");
  return { inPlace, out };
}

/** The gradient buffer, allocated here so that a size the machine cannot hold is a RangeError
 *  thrown by JavaScript rather than an out-of-memory abort inside V8's native allocation. */
function allocate(fn: string, n: number): Float32Array {
  try {
    return new Float32Array(n);
  } catch {
    return rangeError(fn, 'gradLogits', 'an allocation that fits in memory', `${n * 4} bytes refused`);
  }
}

