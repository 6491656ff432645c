// The ops' batches, checked (validate.ts owns the rules and messages) and normalized into the
// types of src/checked.ts. One normalizer per batch shape: rows (tokenLogprobs,
// tokenLogprobsFromHidden), and a batch of sequences x tokens (every fused GVPO op), each with
// logits that come either as an array or as hidden states times a head's weight. The fused ops
// and their two phases share the option names of their shape, so one options object serves all three calls:
// a phase checks every option of its one-shot op by the one-shot op's rules, those it does not use included.
import { types } from 'node:util';
import { loadedAddon } from '../backend.js';
import type {
  BackwardOpts,
  ForwardOpts,
  FromHiddenOpts,
  FromLogitsOpts,
  GradDest,
  HeadGradDest,
  HiddenBackwardOpts,
  HiddenBatchOpts,
  HiddenRowsBackwardOpts,
  HiddenRowsOpts,
  LogitsBatchOpts,
  LossOpts,
  PhaseTwoOpts,
  ReferenceOpts,
  RowsOpts,
  SequenceOpts,
} from '../checked.js';
import type { DType, FloatArray } from '../types.js';
import {
  boolean,
  checkTargets,
  dim,
  dtypeOf,
  expectLength,
  floatsOf,
  isKind,
  liveView,
  maskOf,
  numbersOf,
  offsetsOf,
  plain,
  positive,
  product,
  rangeError,
  reductionOf,
  snapshot,
  temperatureOf,
  threads,
  typed,
  typeError,
  vocabHint,
} from '../validate.js';

// The option names each op knows; anything else is refused (checkOptions).
const ROWS_KEYS = ['logits', 'dtype', 'targets', 'mask', 'rows', 'vocab', 'temperature', 'threads'];
const HIDDEN_ROWS_KEYS = [
  'hidden',
  'weight',
  'dtype',
  'targets',
  'mask',
  'rows',
  'hiddenSize',
  'vocab',
  'temperature',
  'threads',
  'entropy',
];
const SEQUENCE_KEYS = ['targets', 'mask', 'sequences', 'tokens', 'vocab', 'temperature', 'threads'];
const REFERENCE_KEYS = ['referenceTokenLogprobs', 'referenceLogprobs'];
const LOSS_KEYS = ['rewards', 'groups', 'beta', 'reduction'];
const DEST_KEYS = ['inPlace', 'out'];
const PHASE_TWO_KEYS = ['logZ', 'gradLogprobs'];
const FROM_LOGITS_KEYS = ['logits', 'dtype', ...SEQUENCE_KEYS, ...REFERENCE_KEYS, ...LOSS_KEYS, ...DEST_KEYS];
const HEAD_GRAD_KEYS = ['gradWeight', 'accumulate'];
// (phase 1 accepts gradWeight and accumulate, unused and checked, as both phases accept the loss options)
const FROM_HIDDEN_KEYS = [
  'hidden',
  'weight',
  'dtype',
  'hiddenSize',
  ...SEQUENCE_KEYS,
  ...REFERENCE_KEYS,
  ...LOSS_KEYS,
  ...HEAD_GRAD_KEYS,
];
export const KEYS = {
  tokenLogprobs: ROWS_KEYS,
  tokenLogprobsBackward: [...ROWS_KEYS, 'logZ', 'gradTokenLogprobs', ...DEST_KEYS],
  tokenLogprobsFromHidden: HIDDEN_ROWS_KEYS,
  tokenLogprobsFromHiddenBackward: [...HIDDEN_ROWS_KEYS, 'logZ', 'gradTokenLogprobs', 'gradEntropy', ...HEAD_GRAD_KEYS],
  gvpoFromLogits: FROM_LOGITS_KEYS,
  gvpoForward: FROM_LOGITS_KEYS,
  gvpoBackward: [...FROM_LOGITS_KEYS, ...PHASE_TWO_KEYS],
  gvpoFromHidden: FROM_HIDDEN_KEYS,
  gvpoFromHiddenForward: FROM_HIDDEN_KEYS,
  gvpoFromHiddenBackward: [...FROM_HIDDEN_KEYS, ...PHASE_TWO_KEYS],
};

type Options = Record<string, unknown>;

/** The logits as given: `rows` x vocab values in `dtype`. */
function logitsSource(fn: string, a: Options, rows: number, what: string) {
  const dtype = dtypeOf(fn, a.dtype);
  const vocab = dim(fn, 'vocab', a.vocab);
  const total = product(fn, 'logits', [rows, vocab]);
  const logits = floatsOf(fn, 'logits', a.logits, dtype);
  expectLength(
    fn,
    'logits',
    logits.length,
    total,
    `${what}*vocab`,
    vocabHint(logits.length, rows, vocab, 'rows x vocab'),
  );
  return { dtype, vocab, logits };
}

/** The logits as hidden (rows x H) times weight^T (weight V x H, vocab-major), both in `dtype`. */
function hiddenSource(fn: string, a: Options, rows: number, what: string) {
  const dtype = dtypeOf(fn, a.dtype);
  const hiddenSize = dim(fn, 'hiddenSize', a.hiddenSize);
  const vocab = dim(fn, 'vocab', a.vocab);
  const hidden = floatsOf(fn, 'hidden', a.hidden, dtype);
  expectLength(fn, 'hidden', hidden.length, product(fn, 'hidden', [rows, hiddenSize]), `${what}*hiddenSize`);
  const weight = floatsOf(fn, 'weight', a.weight, dtype);
  expectLength(
    fn,
    'weight',
    weight.length,
    product(fn, 'weight', [vocab, hiddenSize]),
    'vocab*hiddenSize',
    vocabHint(weight.length, hiddenSize, vocab, 'vocab x hiddenSize'),
  );
  return { dtype, vocab, hidden, weight, hiddenSize };
}

/** The targets as a copy the call owns, checked against the vocabulary later: the caller's array
 *  could change after the check (code run by a getter of another argument, or an async call's
 *  caller), and the kernels index the logits by them. */
function targetsOf(fn: string, v: unknown, rows: number, what: string): Int32Array {
  const targets = typed(fn, 'targets', v, Int32Array);
  expectLength(fn, 'targets', targets.length, rows, what);
  return new Int32Array(targets);
}

/** Rows, one token each: their number, the source of their logits (read by `source`, which also
 *  gives the vocabulary) and the per-row arrays; the mask is optional (absent: all rows live). */
function rowsBatch<S extends { vocab: number }>(fn: string, a: Options, source: (a: Options, rows: number) => S) {
  const rows = dim(fn, 'rows', a.rows);
  const s = source(a, rows);
  const targets = targetsOf(fn, a.targets, rows, 'rows');
  const mask = maskOf(fn, a.mask, true);
  if (mask) expectLength(fn, 'mask', mask.length, rows, 'rows');
  const temperature = temperatureOf(fn, a.temperature);
  const th = threads(fn, a.threads);
  checkTargets(fn, targets, mask, s.vocab);
  return { ...s, targets, mask, rows, temperature, threads: th };
}

/** Rows of logits from options already read by `snapshot`. */
export function normalizeRows(fn: string, o: Options): RowsOpts {
  const r = rowsBatch(fn, o, (o, rows) => logitsSource(fn, o, rows, 'rows'));
  settle(fn, o);
  return sizesHold(fn, plain(r));
}

export function normalizeHiddenRows(a: unknown): HiddenRowsOpts {
  const fn = 'tokenLogprobsFromHidden';
  const o = snapshot(fn, a, KEYS.tokenLogprobsFromHidden);
  const b = rowsBatch(fn, o, (o, rows) => hiddenSource(fn, o, rows, 'rows'));
  const r = { ...b, entropy: boolean(fn, 'entropy', o.entropy) };
  settle(fn, o);
  return sizesHold(fn, plain(r));
}

/** The head's backward: the forward's logZ (and entropy values, when given), the upstream
 *  gradients, and where dL/dweight goes (headGrads). */
export function normalizeHiddenRowsBackward(a: unknown): HiddenRowsBackwardOpts {
  const fn = 'tokenLogprobsFromHiddenBackward';
  const o = snapshot(fn, a, KEYS.tokenLogprobsFromHiddenBackward);
  const b = rowsBatch(fn, o, (o, rows) => hiddenSource(fn, o, rows, 'rows'));
  const perRow = (name: string, v: unknown) => {
    const x = typed(fn, name, v, Float32Array);
    expectLength(fn, name, x.length, b.rows, 'rows');
    return x;
  };
  const logZ = perRow('logZ', o.logZ);
  const gradTokenLogprobs = perRow('gradTokenLogprobs', o.gradTokenLogprobs);
  const gradEntropy = o.gradEntropy === undefined ? undefined : perRow('gradEntropy', o.gradEntropy);
  if (o.entropy !== undefined && typeof o.entropy !== 'boolean' && !isKind(o.entropy, Float32Array)) {
    typeError(fn, 'entropy', "a Float32Array (the forward's entropy) or a boolean", o.entropy);
  }
  const entropy = typeof o.entropy === 'boolean' || o.entropy === undefined ? undefined : perRow('entropy', o.entropy);
  const r = { ...b, logZ, entropy, gradTokenLogprobs, gradEntropy, ...headGrads(fn, o, b) };
  settle(fn, o);
  return sizesHold(fn, plain(r));
}

/**
 * A batch of sequences x tokens: its sizes, the source of its logits (read by `source`, which
 * also gives the vocabulary), the per-token arrays, and the reference, always checked and given
 * when `reference` is set (gvpoBackward accepts the reference options but does not use them).
 */
function sequenceBatch<S extends { vocab: number }>(
  fn: string,
  a: Options,
  source: (a: Options, rows: number) => S,
  reference: boolean,
): SequenceOpts & S & ReferenceOpts & { rows: number } {
  const sequences = dim(fn, 'sequences', a.sequences);
  const tokens = dim(fn, 'tokens', a.tokens);
  const rows = product(fn, 'sequences*tokens', [sequences, tokens]);
  const s = source(a, rows);
  const targets = targetsOf(fn, a.targets, rows, 'sequences*tokens');
  const mask = maskOf(fn, a.mask, false) as Float32Array;
  expectLength(fn, 'mask', mask.length, rows, 'sequences*tokens');
  const temperature = temperatureOf(fn, a.temperature);
  const th = threads(fn, a.threads);
  checkTargets(fn, targets, mask, s.vocab);
  const b = { ...s, targets, mask, rows, sequences, tokens, temperature, threads: th };
  const ref = normalizeReference(fn, a, b);
  return reference ? { ...b, ...ref } : b;
}

function logitsBatch(fn: string, a: Options, reference: boolean): LogitsBatchOpts & ReferenceOpts {
  return sequenceBatch(fn, a, (o, rows) => logitsSource(fn, o, rows, 'sequences*tokens'), reference);
}

function hiddenBatch(fn: string, a: Options, reference: boolean): HiddenBatchOpts {
  return sequenceBatch(fn, a, (o, rows) => hiddenSource(fn, o, rows, 'sequences*tokens'), reference);
}

/** The reference policy's log-probs: per token (summed under the mask later) or per sequence,
 *  at most one of them; with neither, Sref = S. */
function normalizeReference(
  fn: string,
  o: Options,
  b: { mask: Float32Array; rows: number; sequences: number },
): ReferenceOpts {
  const out: ReferenceOpts = { referenceTokenLogprobs: undefined, referenceLogprobs: undefined };
  const hasTok = o.referenceTokenLogprobs !== undefined && o.referenceTokenLogprobs !== null;
  const hasSeq = o.referenceLogprobs !== undefined && o.referenceLogprobs !== null;
  if (hasTok && hasSeq) rangeError(fn, 'referenceLogprobs', 'absent when referenceTokenLogprobs is given', 'both');
  if (hasTok) {
    const r = o.referenceTokenLogprobs;
    if (!isKind(r, Float32Array) && !isKind(r, Float64Array)) {
      typeError(fn, 'referenceTokenLogprobs', 'a Float32Array or Float64Array', r);
    }
    liveView(fn, 'referenceTokenLogprobs', r as ArrayBufferView);
    const src = r as Float32Array | Float64Array;
    expectLength(fn, 'referenceTokenLogprobs', src.length, b.rows, 'sequences*tokens');
    const ref = new Float64Array(b.rows);
    for (let i = 0; i < b.rows; i++) {
      if (b.mask[i] === 0) continue; // masked: never read, may hold anything
      if (!Number.isFinite(src[i])) {
        rangeError(
          fn,
          'referenceTokenLogprobs',
          'finite numbers where the mask is non-zero',
          `${src[i]} at index ${i}`,
        );
      }
      ref[i] = src[i];
    }
    out.referenceTokenLogprobs = ref;
  }
  if (hasSeq) out.referenceLogprobs = numbersOf(fn, 'referenceLogprobs', o.referenceLogprobs, b.sequences, 'sequences');
  return out;
}

export function normalizeLoss(fn: string, a: Options, sequences: number): LossOpts {
  const rewards = numbersOf(fn, 'rewards', a.rewards, sequences, 'sequences');
  const offsets = offsetsOf(fn, a.groups, sequences);
  const beta = positive(fn, 'beta', a.beta);
  const reduction = reductionOf(fn, a.reduction);
  return { rewards, offsets, beta, reduction };
}

/** The loss options a phase accepts and does not use (so that the one-shot op's options object
 *  serves it too): each one given checked by normalizeLoss's rules. */
function checkLoss(fn: string, a: Options, sequences: number): void {
  if (a.rewards !== undefined) numbersOf(fn, 'rewards', a.rewards, sequences, 'sequences');
  if (a.groups !== undefined) offsetsOf(fn, a.groups, sequences);
  if (a.beta !== undefined) positive(fn, 'beta', a.beta);
  reductionOf(fn, a.reduction);
}

/** Phase 2's inputs: logZ per token and dL/dS per sequence. */
function phaseTwo(fn: string, a: Options, b: { rows: number; sequences: number }): PhaseTwoOpts {
  const logZ = typed(fn, 'logZ', a.logZ, Float32Array);
  expectLength(fn, 'logZ', logZ.length, b.rows, 'sequences*tokens');
  const gradLogprobs = numbersOf(fn, 'gradLogprobs', a.gradLogprobs, b.sequences, 'sequences');
  return { logZ, gradLogprobs };
}

/** The gradient's destination. `out` must not overlap any input array (the kernels read the
 *  logits while they write the gradient); `inPlace` and `out` contradict each other. */
export function normalizeDest(fn: string, a: Options, b: { logits: FloatArray; dtype: DType }): GradDest {
  const d = checkDest(fn, a, b);
  return d.inPlace || d.out !== undefined ? d : { inPlace: false, out: allocate(fn, 'gradLogits', b.logits.length) };
}

/** normalizeDest's checks, with nothing allocated: `out` only when the caller gave one (phase 1
 *  checks the destination options it accepts this way). */
function checkDest(fn: string, a: Options, b: { logits: FloatArray; dtype: DType }): GradDest {
  const inPlace = boolean(fn, 'inPlace', a.inPlace);
  if (inPlace && a.out !== undefined) rangeError(fn, 'out', 'absent when inPlace is true', 'an out buffer as well');
  if (inPlace && b.dtype !== 'float32') {
    rangeError(fn, 'inPlace', 'false for 16-bit logits (the gradient is float32)', 'true');
  }
  if (inPlace) {
    refuseOverlap(fn, 'logits', a, IN_PLACE);
    return { inPlace, out: undefined };
  }
  // out: undefined, not left out: a later read must not find Object.prototype's
  if (a.out === undefined) return { inPlace, out: undefined };
  const out = typed(fn, 'out', a.out, Float32Array);
  expectLength(fn, 'out', out.length, b.logits.length, "the logits' length");
  refuseOverlap(fn, 'out', a, 'a buffer that does not overlap the inputs (use inPlace to write over the logits)');
  return { inPlace, out };
}

/**
 * The inputs' lengths as their checks found them, once every option has been read: a view that
 * tracks the length of a growable SharedArrayBuffer, grown by a getter read after its check,
 * would hand the backends more than rows x vocab logits (the addon checks again; the TypeScript
 * reference sized its gradient from them).
 */
function sizesHold<R extends { rows?: number; sequences?: number; tokens?: number; vocab: number }>(
  fn: string,
  r: R,
): R {
  // (r has no prototype: a name left out is not read from Object.prototype)
  const batch = r.sequences !== undefined;
  const rows = batch ? (r.sequences ?? NaN) * (r.tokens ?? NaN) : (r.rows ?? NaN);
  const what = batch ? 'sequences*tokens' : 'rows';
  const H = (r as { hiddenSize?: number }).hiddenSize ?? NaN;
  const sizes: Array<[string, number, string]> = [
    ['logits', rows * r.vocab, `${what}*vocab`],
    ['hidden', rows * H, `${what}*hiddenSize`],
    ['weight', r.vocab * H, 'vocab*hiddenSize'],
    ['targets', rows, what],
    ['mask', rows, what],
  ];
  for (const [name, want, what] of sizes) {
    const v = (r as Record<string, unknown>)[name];
    if (ArrayBuffer.isView(v) && Number.isInteger(want)) expectLength(fn, name, (v as Float32Array).length, want, what);
  }
  return r;
}

/**
 * The last check of a call's options, once every argument has been read (a plain array's element
 * getter runs code while it is read, and could have given an array that passed its check an own
 * `byteOffset`, or another prototype, since): every view is its own again (liveView) and no
 * destination overlaps an input. After this no caller code runs before the kernels.
 */
export function settle(fn: string, a: Options): void {
  const g = a.groups as { offsets?: unknown } | undefined;
  const offsets = typeof g === 'object' && g !== null ? g.offsets : undefined;
  for (const [name, v] of [...Object.entries(a), ['groups.offsets', offsets]] as Array<[string, unknown]>) {
    if (ArrayBuffer.isView(v)) liveView(fn, name, v);
  }
  if (a.inPlace === true) refuseOverlap(fn, 'logits', a, IN_PLACE);
  for (const dest of ['out', 'gradWeight']) if (ArrayBuffer.isView(a[dest])) refuseOverlap(fn, dest, a, NO_OVERLAP);
}

const IN_PLACE = 'an array that no other input overlaps when inPlace is true (the gradient is written over it)';
const NO_OVERLAP = 'a buffer that does not overlap the inputs';

/** A destination (the option `dest` of `a`, a snapshot) may not share memory with any other array
 *  of the call, groups.offsets included: the kernels read the inputs while they write it. */
function refuseOverlap(fn: string, dest: string, a: Options, expected: string): void {
  const d = a[dest] as ArrayBufferView;
  const g = a.groups as { offsets?: unknown } | undefined;
  const arrays = [
    ...Object.entries(a),
    ['groups.offsets', typeof g === 'object' && g !== null ? g.offsets : undefined],
  ];
  for (const [name, v] of arrays) {
    if (name !== dest && ArrayBuffer.isView(v) && overlaps(d, v)) {
      rangeError(fn, dest, expected, `a view overlapping ${name}`);
    }
  }
}

// Two SharedArrayBuffer objects may hold the same memory (structuredClone of one, or one posted
// to a worker and back): for those the addon compares the views' addresses. Without the addon
// (the TypeScript backend with no addon loaded) such an alias cannot be seen from JavaScript.
function overlaps(a: ArrayBufferView, b: ArrayBufferView): boolean {
  if (a.buffer === b.buffer) {
    return a.byteOffset < b.byteOffset + b.byteLength && b.byteOffset < a.byteOffset + a.byteLength;
  }
  const address = loadedAddon()?.viewAddress as ((v: ArrayBufferView) => number) | undefined;
  if (!types.isSharedArrayBuffer(a.buffer) || !types.isSharedArrayBuffer(b.buffer) || !address) return false;
  const pa = address(a),
    pb = address(b);
  return a.byteLength > 0 && b.byteLength > 0 && pa < pb + b.byteLength && pb < pa + a.byteLength;
}

/** A gradient buffer, allocated here so that a size the machine cannot hold is a RangeError
 *  thrown by JavaScript rather than an out-of-memory abort inside V8's native allocation. */
export function allocate(fn: string, name: string, n: number): Float32Array {
  try {
    return new Float32Array(n);
  } catch {
    return rangeError(fn, name, 'an allocation that fits in memory', `${n * 4} bytes refused`);
  }
}

/** The fused heads' gradients: dL/dhidden allocated; dL/dweight into the caller's gradWeight
 *  (overwritten, or added to with accumulate) or allocated. gradWeight must not overlap an input
 *  (the kernel reads them while it writes it); accumulate without a gradWeight to add to is a
 *  contradiction. */
function headGrads(fn: string, o: Options, b: { rows: number; vocab: number; hiddenSize: number }): HeadGradDest {
  const { accumulate, gradWeight: given } = checkHeadGrads(fn, o, b);
  const gradWeight = given ?? allocate(fn, 'gradWeight', product(fn, 'gradWeight', [b.vocab, b.hiddenSize]));
  const gradHidden = allocate(fn, 'gradHidden', product(fn, 'gradHidden', [b.rows, b.hiddenSize]));
  return { gradHidden, gradWeight, accumulate };
}

/** headGrads' checks, with nothing allocated (phase 1 checks the options it accepts this way). */
function checkHeadGrads(
  fn: string,
  o: Options,
  b: { vocab: number; hiddenSize: number },
): { accumulate: boolean; gradWeight?: Float32Array } {
  const accumulate = boolean(fn, 'accumulate', o.accumulate);
  const size = product(fn, 'gradWeight', [b.vocab, b.hiddenSize]);
  if (o.gradWeight === undefined) {
    if (accumulate) rangeError(fn, 'gradWeight', 'a Float32Array to add to when accumulate is true', 'undefined');
    return { accumulate, gradWeight: undefined };
  }
  const gradWeight = typed(fn, 'gradWeight', o.gradWeight, Float32Array);
  expectLength(fn, 'gradWeight', gradWeight.length, size, 'vocab*hiddenSize');
  refuseOverlap(fn, 'gradWeight', o, NO_OVERLAP);
  return { accumulate, gradWeight };
}

export function normalizeFromLogits(a: unknown): FromLogitsOpts {
  const fn = 'gvpoFromLogits';
  const o = snapshot(fn, a, KEYS.gvpoFromLogits);
  const f = logitsBatch(fn, o, true);
  const r = { ...f, ...normalizeLoss(fn, o, f.sequences), ...normalizeDest(fn, o, f) };
  settle(fn, o);
  return sizesHold(fn, plain(r));
}

export function normalizeForward(a: unknown): ForwardOpts {
  const fn = 'gvpoForward';
  const o = snapshot(fn, a, KEYS.gvpoForward);
  const r = logitsBatch(fn, o, true);
  checkLoss(fn, o, r.sequences);
  checkDest(fn, o, r);
  settle(fn, o);
  return sizesHold(fn, plain(r));
}

export function normalizeBackward(a: unknown): BackwardOpts {
  const fn = 'gvpoBackward';
  const o = snapshot(fn, a, KEYS.gvpoBackward);
  const b = logitsBatch(fn, o, false) as LogitsBatchOpts & { rows: number };
  checkLoss(fn, o, b.sequences);
  const r = { ...b, ...phaseTwo(fn, o, b), ...normalizeDest(fn, o, b) };
  settle(fn, o);
  return sizesHold(fn, plain(r));
}

export function normalizeFromHidden(a: unknown): FromHiddenOpts {
  const fn = 'gvpoFromHidden';
  const o = snapshot(fn, a, KEYS.gvpoFromHidden);
  const b = hiddenBatch(fn, o, true);
  const r = { ...b, ...normalizeLoss(fn, o, b.sequences), ...headGrads(fn, o, b) };
  settle(fn, o);
  return sizesHold(fn, plain(r));
}

export function normalizeHiddenForward(a: unknown): HiddenBatchOpts {
  const fn = 'gvpoFromHiddenForward';
  const o = snapshot(fn, a, KEYS.gvpoFromHiddenForward);
  const r = hiddenBatch(fn, o, true);
  checkLoss(fn, o, r.sequences);
  checkHeadGrads(fn, o, r);
  settle(fn, o);
  return sizesHold(fn, plain(r));
}

export function normalizeHiddenBackward(a: unknown): HiddenBackwardOpts {
  const fn = 'gvpoFromHiddenBackward';
  const o = snapshot(fn, a, KEYS.gvpoFromHiddenBackward);
  const b = hiddenBatch(fn, o, true);
  checkLoss(fn, o, b.sequences);
  const r = { ...b, ...phaseTwo(fn, o, b), ...headGrads(fn, o, b) };
  settle(fn, o);
  return sizesHold(fn, plain(r));
}
