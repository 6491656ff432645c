// The argument and result types of the public surface (docs/DESIGN.md, "The public surface").

export type DType = 'float32' | 'bfloat16' | 'float16';
/** float32 values as a Float32Array; bfloat16 / float16 as their bit patterns in a Uint16Array
 *  (logits, hidden states, a head's weight: whatever `dtype` describes). */
export type FloatArray = Float32Array | Uint16Array;
/** Equal groups of `size` consecutive sequences, or ragged groups by offsets (length G+1). */
export type Groups = { size: number } | { offsets: Int32Array };
export type Reduction = 'mean' | 'sum';
/** A mask: 0 skips a token, anything else weights it. Converted to Float32Array once. */
export type MaskLike = Float32Array | Float64Array | Uint8Array | Int32Array;
export type NumbersLike = Float64Array | Float32Array | number[];

export interface TokenLogprobsArgs {
  logits: FloatArray;
  dtype?: DType;
  targets: Int32Array;
  mask?: MaskLike;
  rows: number;
  vocab: number;
  temperature?: number;
  threads?: number;
}
export interface TokenLogprobsResult {
  logprobs: Float32Array;
  logZ: Float32Array;
  /** Rows whose log-normaliser is not finite (their logprob is NaN). */
  nonFiniteRows: number;
}

export interface TokenLogprobsBackwardArgs extends TokenLogprobsArgs {
  logZ: Float32Array;
  /** dLoss/dl per row (token). Rows whose mask is 0 get no gradient whatever this holds. */
  gradTokenLogprobs: Float32Array;
  inPlace?: boolean;
  out?: Float32Array;
}

export interface SequenceLogprobsArgs {
  tokenLogprobs: Float32Array | Float64Array;
  mask: MaskLike;
  sequences: number;
  tokens: number;
}

export interface GroupCenterArgs {
  values: NumbersLike;
  groups: Groups;
}
export interface GroupCenterResult {
  centered: Float64Array;
  means: Float64Array;
}

export interface GvpoTerms {
  advantage: number;
  trustRegion: number;
  variance: number;
  constant: number;
}

export interface GvpoLossArgs {
  policyLogprobs: NumbersLike;
  referenceLogprobs: NumbersLike;
  rewards: NumbersLike;
  groups: Groups;
  beta: number;
  reduction?: Reduction;
}
export interface GvpoLossResult {
  loss: number;
  gradLogprobs: Float64Array;
  residuals: Float64Array;
  terms: GvpoTerms;
}

export interface LogitsBatchArgs {
  logits: FloatArray;
  dtype?: DType;
  targets: Int32Array;
  mask: MaskLike;
  sequences: number;
  tokens: number;
  vocab: number;
  temperature?: number;
  threads?: number;
}

export interface GvpoForwardArgs extends LogitsBatchArgs {
  /** Per-token log-probs under pi_theta' (N*T); summed under the mask into Sref. */
  referenceTokenLogprobs?: Float32Array | Float64Array;
  /** Or Sref per sequence (N). With neither, Sref = S: pi_theta' is the current policy. */
  referenceLogprobs?: NumbersLike;
}
export interface GvpoForwardResult {
  policyLogprobs: Float64Array;
  referenceLogprobs: Float64Array;
  tokenLogprobs: Float32Array;
  logZ: Float32Array;
  nonFiniteRows: number;
}

export interface GvpoBackwardArgs extends LogitsBatchArgs {
  logZ: Float32Array;
  /** dL/dS per sequence (N). */
  gradLogprobs: NumbersLike;
  inPlace?: boolean;
  /** Where to write the gradient (N*T*V float32); reused buffers skip first-touch page faults. */
  out?: Float32Array;
}

export interface GvpoFromLogitsArgs extends GvpoForwardArgs {
  rewards: NumbersLike;
  groups: Groups;
  beta: number;
  reduction?: Reduction;
  inPlace?: boolean;
  out?: Float32Array;
}
export interface GvpoFromLogitsResult extends GvpoLossResult {
  gradLogits: Float32Array;
  policyLogprobs: Float64Array;
  referenceLogprobs: Float64Array;
  tokenLogprobs: Float32Array;
  logZ: Float32Array;
  nonFiniteRows: number;
}

/** The fused LM head: hidden states and the head's weight instead of logits. */
export interface HiddenBatchArgs {
  /** N*T*H hidden states (float32, or 16-bit bit patterns as Uint16Array). */
  hidden: FloatArray;
  /** V*H, vocab-major (an lm_head's weight as checkpoints store it), same dtype as hidden. */
  weight: FloatArray;
  dtype?: DType;
  targets: Int32Array;
  mask: MaskLike;
  sequences: number;
  tokens: number;
  hiddenSize: number;
  vocab: number;
  temperature?: number;
  threads?: number;
  referenceTokenLogprobs?: Float32Array | Float64Array;
  referenceLogprobs?: NumbersLike;
}
export type GvpoFromHiddenForwardArgs = HiddenBatchArgs;
export type GvpoFromHiddenForwardResult = GvpoForwardResult;
export interface GvpoFromHiddenBackwardArgs extends HiddenBatchArgs {
  logZ: Float32Array;
  /** dL/dS per sequence (N). */
  gradLogprobs: NumbersLike;
}
export interface GvpoFromHiddenGrads {
  /** dL/dhidden, N*T*H float32. */
  gradHidden: Float32Array;
  /** dL/dweight, V*H float32. */
  gradWeight: Float32Array;
}
export interface GvpoFromHiddenArgs extends HiddenBatchArgs {
  rewards: NumbersLike;
  groups: Groups;
  beta: number;
  reduction?: Reduction;
}
export interface GvpoFromHiddenResult extends GvpoLossResult, GvpoFromHiddenGrads {
  policyLogprobs: Float64Array;
  referenceLogprobs: Float64Array;
  tokenLogprobs: Float32Array;
  logZ: Float32Array;
  nonFiniteRows: number;
}

/** The fused LM head for any loss: rows of hidden states and the head's weight, the logits
 *  hidden * weight^T never materialised. */
export interface TokenLogprobsFromHiddenArgs {
  /** rows*H hidden states (float32, or 16-bit bit patterns as Uint16Array). */
  hidden: FloatArray;
  /** V*H, vocab-major (an lm_head's weight as checkpoints store it), same dtype as hidden. */
  weight: FloatArray;
  dtype?: DType;
  targets: Int32Array;
  /** Live rows: non-zero = live (its values are not weights here). A masked row gets l = 0,
   *  H = 0, no gradient, costs nothing, and its target may hold anything. Absent: all live. */
  mask?: MaskLike;
  rows: number;
  hiddenSize: number;
  vocab: number;
  temperature?: number;
  /** Also return H[r] = -sum_v p log p of softmax(z[r,:]/tau). */
  entropy?: boolean;
  threads?: number;
}
export interface TokenLogprobsFromHiddenResult {
  /** l[r] = z[r,y]/tau - logZ[r] <= 0 (0 on masked rows and when V = 1). */
  logprobs: Float32Array;
  logZ: Float32Array;
  /** H[r] >= 0, with `entropy: true` (NaN where logZ is not finite). */
  entropy?: Float32Array;
  /** Live rows whose l is NaN (a non-finite logZ). */
  nonFiniteRows: number;
}
export interface TokenLogprobsFromHiddenBackwardArgs extends Omit<TokenLogprobsFromHiddenArgs, 'entropy'> {
  /** The forward's logZ. */
  logZ: Float32Array;
  /** dL/dl per row. Masked rows get no gradient whatever this holds. */
  gradTokenLogprobs: Float32Array;
  /** dL/dH per row, for a loss on the entropy. */
  gradEntropy?: Float32Array;
  /** The forward's entropy (used with gradEntropy; without it the backward recomputes H, one more
   *  GEMM pass), or the forward's boolean flag, accepted so that one options object serves both
   *  calls. */
  entropy?: boolean | Float32Array;
  /** dL/dweight goes here (V*H float32): overwritten, or added to with `accumulate: true`. */
  gradWeight?: Float32Array;
  accumulate?: boolean;
}
export interface TokenLogprobsFromHiddenGrads {
  /** dL/dhidden, rows*H float32 (0 on masked rows). */
  gradHidden: Float32Array;
  /** dL/dweight, V*H float32: the caller's gradWeight when given. */
  gradWeight: Float32Array;
}

export interface BackendInfo {
  active: 'cuda' | 'cpu' | 'js';
  compiled: string[];
  device?: string;
  threads: number;
  simd?: string;
  loadErrors: string[];
}
