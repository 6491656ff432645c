// The argument and result types of the public surface (docs/DESIGN.md, "The public surface").

/** How logits, hidden states and weights are stored: float32 values, or bfloat16 / float16 bit patterns. */
export type DType = 'float32' | 'bfloat16' | 'float16';
/** float32 values as a Float32Array; bfloat16 / float16 as their bit patterns in a Uint16Array
 *  (logits, hidden states, a head's weight: whatever `dtype` describes). */
export type FloatArray = Float32Array | Uint16Array;
/** Equal groups of `size` consecutive sequences, or ragged groups by offsets (length G+1). */
export type Groups = { size: number } | { offsets: Int32Array };
/** 'mean' (the default): the loss over groups of size >= 2 averaged; 'sum': summed (the official
 *  recipe's compute_policy_loss_gvpo). */
export type Reduction = 'mean' | 'sum';
/** A mask: 0 skips a token, anything else weights it. Converted to Float32Array once. */
export type MaskLike = Float32Array | Float64Array | Uint8Array | Int32Array;
/** Per-sequence numbers (rewards, sequence log-probs): read as float64, every value finite. */
export type NumbersLike = Float64Array | Float32Array | number[];

/** Rows of logits (`rows` x `vocab`) and the target token of each row. */
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
/** Per row: the token log-prob l and the log-normalizer logZ = logsumexp(z/tau), both float32. */
export interface TokenLogprobsResult {
  logprobs: Float32Array;
  logZ: Float32Array;
  /** Rows whose log-normalizer is not finite (their logprob is NaN). */
  nonFiniteRows: number;
}

/** tokenLogprobs' inputs, its logZ, and the upstream gradient dL/dl per row. */
export interface TokenLogprobsBackwardArgs extends TokenLogprobsArgs {
  logZ: Float32Array;
  /** dLoss/dl per row (token). Rows whose mask is 0 get no gradient whatever this holds. */
  gradTokenLogprobs: Float32Array;
  inPlace?: boolean;
  out?: Float32Array;
}

/** Token log-probs (N*T) and the mask that weights them: S[n] = sum_t m[n,t] * l[n,t]. */
export interface SequenceLogprobsArgs {
  tokenLogprobs: Float32Array | Float64Array;
  mask: MaskLike;
  sequences: number;
  tokens: number;
}

/** Values (one per sequence) and their groups. */
export interface GroupCenterArgs {
  values: NumbersLike;
  groups: Groups;
}
/** Each value minus its group's mean, and the means (one per group). */
export interface GroupCenterResult {
  centered: Float64Array;
  means: Float64Array;
}

/** The GVPO loss read as the paper's three terms plus a constant, reduced like the loss; they add up to it. */
export interface GvpoTerms {
  advantage: number;
  trustRegion: number;
  variance: number;
  constant: number;
}

/** Sequence log-probs under the policy (S) and the reference (Sref), rewards, groups and beta. */
export interface GvpoLossArgs {
  policyLogprobs: NumbersLike;
  referenceLogprobs: NumbersLike;
  rewards: NumbersLike;
  groups: Groups;
  beta: number;
  reduction?: Reduction;
}
/** The loss, dL/dS per sequence (`gradLogprobs`), the residuals c and the terms. */
export interface GvpoLossResult {
  loss: number;
  gradLogprobs: Float64Array;
  residuals: Float64Array;
  terms: GvpoTerms;
}

/** A batch of N sequences x T tokens of logits over a vocabulary of V, their targets and mask. */
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

/** The loss options of the one-shot ops, which their phases accept (so that one options object
 *  serves the op and both phases) and check by the op's rules, without using them. */
export interface PhaseLossArgs {
  rewards?: NumbersLike;
  groups?: Groups;
  beta?: number;
  reduction?: Reduction;
}

/** Phase 1's inputs: the batch and, optionally, the reference policy's log-probs. It also takes
 *  gvpoFromLogits' other options (checked, unused). */
export interface GvpoForwardArgs extends LogitsBatchArgs, PhaseLossArgs {
  /** Per-token log-probs under pi_theta' (N*T); summed under the mask into Sref. */
  referenceTokenLogprobs?: Float32Array | Float64Array;
  /** Or Sref per sequence (N). With neither, Sref = S: pi_theta' is the current policy. */
  referenceLogprobs?: NumbersLike;
  inPlace?: boolean;
  out?: Float32Array;
}
/** Phase 1's results: S and Sref per sequence (float64), token log-probs and logZ per token (float32). */
export interface GvpoForwardResult {
  policyLogprobs: Float64Array;
  referenceLogprobs: Float64Array;
  tokenLogprobs: Float32Array;
  logZ: Float32Array;
  nonFiniteRows: number;
}

/** Phase 2's inputs: the batch, phase 1's logZ and dL/dS per sequence. It also takes
 *  gvpoFromLogits' other options (checked, unused). */
export interface GvpoBackwardArgs extends LogitsBatchArgs, PhaseLossArgs {
  referenceTokenLogprobs?: Float32Array | Float64Array;
  referenceLogprobs?: NumbersLike;
  logZ: Float32Array;
  /** dL/dS per sequence (N). */
  gradLogprobs: NumbersLike;
  inPlace?: boolean;
  /** Where to write the gradient (N*T*V float32); reused buffers skip first-touch page faults. */
  out?: Float32Array;
}

/** The fused op's inputs: the batch, the reference, rewards, groups, beta, and where the gradient goes. */
export interface GvpoFromLogitsArgs extends GvpoForwardArgs {
  rewards: NumbersLike;
  groups: Groups;
  beta: number;
  reduction?: Reduction;
  inPlace?: boolean;
  out?: Float32Array;
}
/** The fused op's results: the loss and its reading, dL/dlogits (float32, N*T*V), and phase 1's values. */
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
/** The fused head's phase 1 takes the batch of hidden states and the head's weight, and
 *  gvpoFromHidden's other options (checked, unused). */
export type GvpoFromHiddenForwardArgs = HiddenBatchArgs & PhaseLossArgs & GradWeightDest;
/** The fused head's phase 1 gives what gvpoForward gives. */
export type GvpoFromHiddenForwardResult = GvpoForwardResult;
/** Where a fused head's dL/dweight goes: a buffer of the caller's (reused across steps, or
 *  shared by the shards of a batch), or a new array. */
export interface GradWeightDest {
  /** dL/dweight goes here (V*H float32): overwritten, or added to with `accumulate: true`. */
  gradWeight?: Float32Array;
  accumulate?: boolean;
}
/** The fused head's phase 2: the batch, phase 1's logZ and dL/dS per sequence, and
 *  gvpoFromHidden's loss options (checked, unused). */
export interface GvpoFromHiddenBackwardArgs extends HiddenBatchArgs, GradWeightDest, PhaseLossArgs {
  logZ: Float32Array;
  /** dL/dS per sequence (N). */
  gradLogprobs: NumbersLike;
}
/** The gradients of the fused head's inputs. */
/** A fused head's gradients (gvpoFromHidden's and tokenLogprobsFromHidden's backward). */
export interface GvpoFromHiddenGrads {
  /** dL/dhidden, float32, one row of H per token (N*T*H, or rows*H for the per-token op); 0 on
   *  masked rows. */
  gradHidden: Float32Array;
  /** dL/dweight, V*H float32: the caller's gradWeight when given. */
  gradWeight: Float32Array;
}
/** The fused head's inputs: hidden states and the head's weight, the batch, reference, rewards, groups, beta. */
export interface GvpoFromHiddenArgs extends HiddenBatchArgs, GradWeightDest {
  rewards: NumbersLike;
  groups: Groups;
  beta: number;
  reduction?: Reduction;
}
/** The fused head's results: the loss and its reading, both gradients, and phase 1's values. */
export interface GvpoFromHiddenResult extends GvpoLossResult, GvpoFromHiddenGrads {
  policyLogprobs: Float64Array;
  referenceLogprobs: Float64Array;
  tokenLogprobs: Float32Array;
  logZ: Float32Array;
  nonFiniteRows: number;
}

/** The fused LM head for any loss: rows of hidden states and the head's weight, the logits
 *  hidden * weight^T never materialized. */
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
export interface TokenLogprobsFromHiddenBackwardArgs
  extends Omit<TokenLogprobsFromHiddenArgs, 'entropy'>, GradWeightDest {
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
}
/** The per-token head's gradients: the same two arrays as gvpoFromHidden's. */
export type TokenLogprobsFromHiddenGrads = GvpoFromHiddenGrads;

export interface BackendInfo {
  active: 'cuda' | 'cpu' | 'js';
  compiled: string[];
  device?: string;
  threads: number;
  simd?: string;
  loadErrors: string[];
}
