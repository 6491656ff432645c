// Arguments of the logits ops: checked (validate.ts) and normalised into exactly what the native
// addon takes (native/addon/parse.cc reads these field names) and what the TypeScript reference
// computes on. The checked forms are the types below.
import type { DType, Logits, Reduction } from '../types.js';
import {
  boolean, checkOptions, checkTargets, dim, dtypeOf, expectLength, isKind, logitsOf, maskOf,
  numbersOf, offsetsOf, positive, product, rangeError, temperatureOf, reductionOf, threads, typed, typeError,
} from '../validate.js';

export interface RowsOpts {
  logits: Logits;
  dtype: DType;
  targets: Int32Array;
  mask?: Float32Array;
  rows: number;
  vocab: number;
  temperature: number;
  threads?: number;
}

export interface BatchOpts extends Omit<RowsOpts, 'rows'> {
  mask: Float32Array;
  sequences: number;
  tokens: number;
  /** sequences * tokens (set by normalizeBatch; options built by hand may leave it out) */
  rows?: number;
}

export interface ForwardOpts extends BatchOpts {
  referenceTokenLogprobs?: Float64Array;
  referenceLogprobs?: Float64Array;
}

export interface LossOpts {
  rewards: Float64Array;
  offsets: Int32Array;
  beta: number;
  reduction: Reduction;
}

/** Where the gradient goes: over the float32 logits (inPlace) or into `out` (the caller's, or
 *  allocated here). */
export interface GradDest {
  inPlace: boolean;
  out?: Float32Array;
}

export interface BackwardOpts extends BatchOpts, GradDest {
  logZ: Float32Array;
  /** dL/dS per sequence (N). */
  gradLogprobs: Float64Array;
}

export type FromLogitsOpts = ForwardOpts & LossOpts & GradDest;

// The option names each op knows; anything else is refused (checkOptions). The two phases are
// parts of the fused op and accept its options too, so one object serves all three calls.
const ROWS_KEYS = ['logits', 'dtype', 'targets', 'mask', 'rows', 'vocab', 'temperature', 'threads'];
const FUSED_KEYS = [
  'logits', 'dtype', 'targets', 'mask', 'sequences', 'tokens', 'vocab', 'temperature', 'threads',
  'referenceTokenLogprobs', 'referenceLogprobs', 'rewards', 'groups', 'beta', 'reduction', 'inPlace', 'out',
];
export const KEYS = {
  tokenLogprobs: ROWS_KEYS,
  tokenLogprobsBackward: [...ROWS_KEYS, 'logZ', 'gradTokenLogprobs', 'inPlace', 'out'],
  gvpoForward: FUSED_KEYS,
  gvpoBackward: [...FUSED_KEYS, 'logZ', 'gradLogprobs'],
  gvpoFromLogits: FUSED_KEYS,
};

function logitsAndTargets(fn: string, a: Record<string, unknown>, rows: number, what: string) {
  const dtype = dtypeOf(fn, a.dtype);
  const vocab = dim(fn, 'vocab', a.vocab);
  const total = product(fn, 'logits', [rows, vocab]);
  const logits = logitsOf(fn, a.logits, dtype);
  expectLength(fn, 'logits', logits.length, total, `${what}*vocab`);
  const targets = typed(fn, 'targets', a.targets, Int32Array);
  expectLength(fn, 'targets', targets.length, rows, what);
  return { dtype, vocab, logits, targets };
}

export function normalizeRows(fn: string, a: unknown, keys: readonly string[]): RowsOpts {
  checkOptions(fn, a, keys);
  const rows = dim(fn, 'rows', a.rows);
  const { dtype, vocab, logits, targets } = logitsAndTargets(fn, a, rows, 'rows');
  const mask = maskOf(fn, a.mask, true);
  if (mask) expectLength(fn, 'mask', mask.length, rows, 'rows');
  const temperature = temperatureOf(fn, a.temperature);
  const th = threads(fn, a.threads);
  checkTargets(fn, targets, mask, vocab);
  return { logits, dtype, targets, mask, rows, vocab, temperature, threads: th };
}

export function normalizeBatch(fn: string, a: unknown, keys: readonly string[]): BatchOpts {
  checkOptions(fn, a, keys);
  const sequences = dim(fn, 'sequences', a.sequences);
  const tokens = dim(fn, 'tokens', a.tokens);
  const rows = product(fn, 'sequences*tokens', [sequences, tokens]);
  const { dtype, vocab, logits, targets } = logitsAndTargets(fn, a, rows, 'sequences*tokens');
  const mask = maskOf(fn, a.mask, false) as Float32Array;
  expectLength(fn, 'mask', mask.length, rows, 'sequences*tokens');
  const temperature = temperatureOf(fn, a.temperature);
  const th = threads(fn, a.threads);
  checkTargets(fn, targets, mask, vocab);
  return { logits, dtype, targets, mask, rows, sequences, tokens, vocab, temperature, threads: th };
}

export function normalizeForward(fn: string, a: unknown, keys: readonly string[]): ForwardOpts {
  const b = normalizeBatch(fn, a, keys);
  return { ...b, ...normalizeReference(fn, a as Record<string, unknown>, { ...b, rows: b.sequences * b.tokens }) };
}

/** The reference policy's log-probs: per token (summed under the mask later) or per sequence,
 *  at most one of them; with neither, Sref = S. */
export function normalizeReference(
  fn: string, o: Record<string, unknown>, b: { mask: Float32Array; rows: number; sequences: number },
): { referenceTokenLogprobs?: Float64Array; referenceLogprobs?: Float64Array } {
  const out: { referenceTokenLogprobs?: Float64Array; referenceLogprobs?: Float64Array } = {};
  const hasTok = o.referenceTokenLogprobs !== undefined && o.referenceTokenLogprobs !== null;
  const hasSeq = o.referenceLogprobs !== undefined && o.referenceLogprobs !== null;
  if (hasTok && hasSeq) rangeError(fn, 'referenceLogprobs', 'absent when referenceTokenLogprobs is given', 'both');
  if (hasTok) {
    const r = o.referenceTokenLogprobs;
    if (!isKind(r, Float32Array) && !isKind(r, Float64Array)) {
      typeError(fn, 'referenceTokenLogprobs', 'a Float32Array or Float64Array', r);
    }
    const src = r as Float32Array | Float64Array;
    expectLength(fn, 'referenceTokenLogprobs', src.length, b.rows, 'sequences*tokens');
    const ref = new Float64Array(b.rows);
    for (let i = 0; i < b.rows; i++) {
      if (b.mask[i] === 0) continue; // masked: never read, may hold anything
      if (!Number.isFinite(src[i])) {
        rangeError(fn, 'referenceTokenLogprobs', 'finite numbers where the mask is non-zero', `${src[i]} at index ${i}`);
      }
      ref[i] = src[i];
    }
    out.referenceTokenLogprobs = ref;
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

/** The gradient's destination. `out` must not overlap any input array (the kernels read the
 *  logits while they write the gradient); `inPlace` and `out` contradict each other. */
export function normalizeDest(fn: string, a: Record<string, unknown>, b: { logits: Logits; dtype: DType }): GradDest {
  const inPlace = boolean(fn, 'inPlace', a.inPlace);
  if (inPlace && a.out !== undefined) rangeError(fn, 'out', 'absent when inPlace is true', 'an out buffer as well');
  if (inPlace && b.dtype !== 'float32') {
    rangeError(fn, 'inPlace', 'false for 16-bit logits (the gradient is float32)', 'true');
  }
  if (inPlace) return { inPlace };
  if (a.out === undefined) return { inPlace, out: allocate(fn, b.logits.length) };
  const out = typed(fn, 'out', a.out, Float32Array);
  expectLength(fn, 'out', out.length, b.logits.length, "the logits' length");
  for (const [name, v] of Object.entries(a)) {
    if (name !== 'out' && ArrayBuffer.isView(v) && overlaps(out, v)) {
      rangeError(fn, 'out', `a buffer that does not overlap the inputs (use inPlace to write over the logits)`, `a view overlapping ${name}`);
    }
  }
  return { inPlace, out };
}

function overlaps(a: ArrayBufferView, b: ArrayBufferView): boolean {
  return a.buffer === b.buffer && a.byteOffset < b.byteOffset + b.byteLength && b.byteOffset < a.byteOffset + a.byteLength;
}

/** The gradient buffer, allocated here so that a size the machine cannot hold is a RangeError
 *  thrown by JavaScript rather than an out-of-memory abort inside V8's native allocation. */
export function allocate(fn: string, n: number): Float32Array {
  try {
    return new Float32Array(n);
  } catch {
    return rangeError(fn, 'gradLogits', 'an allocation that fits in memory', `${n * 4} bytes refused`);
  }
}
