// The ops' arguments once checked and normalized (src/ops/normalize.ts makes them): exactly what
// the native addon reads (native/addon/parse.cc and hidden_ops.cc read these field names) and
// what the TypeScript reference computes on. Below both src/ops/ and src/reference/, so neither
// imports the other's types.
import type { DType, FloatArray, GvpoFromHiddenGrads, Reduction } from './types.js';

/** Rows of logits, one token each (tokenLogprobs and its backward). */
export interface RowsOpts {
  logits: FloatArray;
  dtype: DType;
  targets: Int32Array;
  mask?: Float32Array;
  rows: number;
  vocab: number;
  temperature: number;
  threads?: number;
}

/** Rows of hidden states through a head's weight, one token each (tokenLogprobsFromHidden). */
export interface HiddenRowsOpts {
  hidden: FloatArray;
  weight: FloatArray;
  dtype: DType;
  targets: Int32Array;
  /** Live rows (non-zero), or absent: all live. */
  mask?: Float32Array;
  rows: number;
  hiddenSize: number;
  vocab: number;
  temperature: number;
  threads?: number;
  /** Whether the forward returns the entropy. */
  entropy: boolean;
}

/** The fused heads' gradient destinations: gradWeight the caller's or allocated, added to with
 *  accumulate. */
export interface HeadGradDest extends GvpoFromHiddenGrads {
  accumulate: boolean;
}

/** Its backward: the forward's logZ (and entropy, when given as values), the upstream gradients,
 *  and the gradients' destinations (gradWeight the caller's or allocated, added to with accumulate). */
export interface HiddenRowsBackwardOpts extends Omit<HiddenRowsOpts, 'entropy'>, HeadGradDest {
  logZ: Float32Array;
  entropy?: Float32Array;
  gradTokenLogprobs: Float32Array;
  gradEntropy?: Float32Array;
}

/** What every batch of N sequences x T tokens holds, whatever feeds its logits. */
export interface SequenceOpts {
  targets: Int32Array;
  mask: Float32Array;
  sequences: number;
  tokens: number;
  /** sequences * tokens (set by the normalizers; options built by hand may leave it out). */
  rows?: number;
  vocab: number;
  temperature: number;
  threads?: number;
}

/** pi_theta': per token (summed under the mask) or per sequence, at most one; with neither, Sref = S. */
export interface ReferenceOpts {
  referenceTokenLogprobs?: Float64Array;
  referenceLogprobs?: Float64Array;
}

/** A batch whose logits are given (gvpoFromLogits and its phases). */
export interface LogitsBatchOpts extends SequenceOpts {
  logits: FloatArray;
  dtype: DType;
}

/** A batch whose logits are hidden * weight^T, never materialized (the fused LM head). */
export interface HiddenBatchOpts extends SequenceOpts, ReferenceOpts {
  hidden: FloatArray;
  weight: FloatArray;
  dtype: DType;
  rows: number;
  hiddenSize: number;
}

export interface ForwardOpts extends LogitsBatchOpts, ReferenceOpts {}

export interface LossOpts {
  rewards: Float64Array;
  offsets: Int32Array;
  beta: number;
  reduction: Reduction;
}

/** Where the logits' gradient goes: over the float32 logits (inPlace) or into `out` (the
 *  caller's, or allocated by the normalizer). */
export interface GradDest {
  inPlace: boolean;
  out?: Float32Array;
}

/** Phase 2 of either head: dL/dS per sequence and phase 1's logZ per token. */
export interface PhaseTwoOpts {
  logZ: Float32Array;
  gradLogprobs: Float64Array;
}

export interface BackwardOpts extends LogitsBatchOpts, GradDest, PhaseTwoOpts {}
export type FromLogitsOpts = ForwardOpts & LossOpts & GradDest;

export type FromHiddenOpts = HiddenBatchOpts & LossOpts & HeadGradDest;
export interface HiddenBackwardOpts extends HiddenBatchOpts, HeadGradDest, PhaseTwoOpts {}
