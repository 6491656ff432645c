// The checked, normalised form of every op's arguments: exactly what the native addon takes
// (native/addon/ops.cc reads these field names) and what the TypeScript reference computes on.
import type { DType, Logits, Reduction } from './types.js';

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

export interface BatchOpts {
  logits: Logits;
  dtype: DType;
  targets: Int32Array;
  mask: Float32Array;
  sequences: number;
  tokens: number;
  vocab: number;
  temperature: number;
  threads?: number;
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

export interface GradDest {
  inPlace: boolean;
  out?: Float32Array;
}

export interface BackwardOpts extends BatchOpts, GradDest {
  logZ: Float32Array;
  gradLogprobs: Float64Array;
}

export type FromLogitsOpts = ForwardOpts & LossOpts & GradDest;
