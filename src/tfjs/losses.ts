// The per-mini-batch losses the trainer differentiates besides the fused GVPO ops. Each takes the
// current policy's token log-probs as a differentiable [N*T] tensor (from the logits or from the
// fused head), taken at the temperature the responses were sampled at:
//   gvpoTermsLoss       GVPO written as its three-term decomposition on S, so that a term can be
//                       dropped (the paper's ablations);
//   policyGradientLoss  GRPO (std-normalized advantages, ratio clipped at 1 +- eps against the
//                       sampling policy, per-sequence token mean), Dr.GRPO (mean-centered
//                       advantages, a constant normalizer) and REINFORCE with the group-mean
//                       baseline (optionally importance-weighted, truncated), each with the KL to
//                       the reference either as the k3 term of the loss or as an exact log-ratio
//                       penalty in the reward (verl's use_kl_in_reward).
// Shapes: N = G*k sequences in whole groups of k, padded to T tokens.
import type * as TF from '@tensorflow/tfjs';
import { asOp, gvpoFromHiddenTf, type GvpoFromHiddenTfArgs } from './ops.js';
import { rangeError, reciprocalFits32, typeError } from '../validate.js';
import type { FusedHead } from './policy.js';
import type { KlPlacement, TermsAblation } from './trainerOptions.js';

type Tf = typeof TF;

/** The fixed (non-differentiated) data of a mini-batch of whole groups. */
export interface GroupBatch {
  targets: Int32Array;
  /** [N*T] response mask. */
  mask: Float32Array;
  rewards: Float64Array;
  groupSize: number;
  tokens: number;
}

/**
 * Rows [N*T, *] of logits, or of the hidden states of a bias-free head (z = h W^T is linear in h),
 * ready for a kernel taking one temperature: a temperature every sequence shares is passed on as
 * is; mixed ones (replayed groups sampled at another) divide each sequence's rows by its own, and
 * the kernel runs at 1.
 */
export function atTemperatures(
  tf: Tf,
  x: TF.Tensor2D,
  temperatures: Float64Array,
  tokens: number,
): { x: TF.Tensor2D; temperature: number } {
  if (temperatures.every((t) => t === temperatures[0])) return { x, temperature: temperatures[0] };
  const inv = Float32Array.from(
    { length: temperatures.length * tokens },
    (_, r) => 1 / temperatures[Math.floor(r / tokens)],
  );
  return { x: x.mul(tf.tensor2d(inv, [inv.length, 1])) as TF.Tensor2D, temperature: 1 };
}

/**
 * The GVPO loss of a fused-head policy's responses through gvpoFromHiddenTf, with the temperature
 * either shared (`temperature`) or per sequence (`temperatures` [N], each sequence's log-probs at
 * the temperature it was sampled at; it wins over `temperature`).
 */
export function fusedHeadLoss(
  tf: Tf,
  policy: FusedHead & { maxTokens: number },
  prompts: number[][],
  responses: Int32Array,
  args: Omit<GvpoFromHiddenTfArgs, 'tokens'> & { temperatures?: Float64Array },
): TF.Scalar {
  const fn = 'fusedHeadLoss';
  const p = policy as Partial<FusedHead> | null;
  if (typeof p !== 'object' || p === null || typeof p.hiddenStates !== 'function' || typeof p.head !== 'object')
    typeError(fn, 'policy', 'a fused-head policy (with hiddenStates() and head)', policy);
  if (typeof args !== 'object' || args === null)
    typeError(fn, 'args', "an object of gvpoFromHiddenTf's options (less tokens) and temperatures", args);
  const { temperatures, ...rest } = args;
  const per = temperatures === undefined ? undefined : temperaturesOf(fn, temperatures, rest.sequences);
  // the op's refusals (beta, groups, a length) named as this function, which the caller called
  return asOp(fn, 'gvpoFromHiddenTf', () => {
    const hidden = policy.hiddenStates(prompts, responses);
    const t = per ? atTemperatures(tf, hidden, per, policy.maxTokens) : { x: hidden, temperature: args.temperature };
    return gvpoFromHiddenTf(tf, t.x, policy.head as TF.Tensor2D, {
      ...rest,
      temperature: t.temperature,
      tokens: policy.maxTokens,
    }).loss;
  });
}

/** Per-sequence temperatures: one for each of `sequences`, each as the kernels take a temperature
 *  (positive, it and its reciprocal finite in float32). Mixed ones divide each sequence's hidden
 *  states by its own, where 0 gave NaN and -1 a loss with its sign flipped. */
function temperaturesOf(fn: string, v: unknown, sequences: unknown): Float64Array {
  const list = v as ArrayLike<unknown>;
  if (typeof v !== 'object' || v === null || typeof list.length !== 'number')
    typeError(fn, 'temperatures', 'an array of one temperature per sequence', v);
  if (list.length !== sequences)
    rangeError(fn, 'temperatures', `one per sequence, ${String(sequences)}`, `length ${list.length}`);
  const out = new Float64Array(list.length);
  for (let i = 0; i < list.length; i++) {
    const t = list[i];
    const name = `temperatures[${i}]`;
    if (typeof t !== 'number') typeError(fn, name, 'a finite number > 0', t);
    if (!(t > 0) || !Number.isFinite(t) || !reciprocalFits32(t))
      rangeError(fn, name, 'a finite number > 0 whose float32 reciprocal is finite', String(t));
    out[i] = t;
  }
  return out;
}

/** S[n] = sum_t m[n,t] l[n,t] as a differentiable [N] tensor, from token log-probs [N*T]. */
export function sequenceSums(tf: Tf, lp: TF.Tensor, mask: Float32Array, tokens: number): TF.Tensor1D {
  const N = mask.length / tokens;
  return lp
    .reshape([N, tokens])
    .mul(tf.tensor2d(mask, [N, tokens]))
    .sum(1) as TF.Tensor1D;
}

function centered(x: ArrayLike<number>, k: number): Float32Array {
  const out = new Float32Array(x.length);
  for (let g = 0; g < x.length; g += k) {
    let m = 0;
    for (let i = 0; i < k; i++) m += x[g + i] / k;
    for (let i = 0; i < k; i++) out[g + i] = x[g + i] - m;
  }
  return out;
}

/**
 * GVPO as the sum of its terms, 'mean' reduction (over the G groups). With a = R - mean R,
 * p = S - mean S, q = Sref - mean Sref, per group:
 *   L = [ -beta sum a p  - beta^2 sum p q  + beta^2/2 sum p^2  + 1/2 sum (a + beta q)^2 ] / (k-1)
 * and dL/dS = beta/(k-1) * (beta (p - q) - a), the GVPO gradient. Dropping the trust-region term
 * leaves dL/dS = beta/(k-1) (beta p - a): S is pulled to R/beta up to a constant, with no anchor
 * to pi_theta'. Dropping the variance term leaves dL/dS = -beta/(k-1) (a + beta q), constant in S:
 * a policy gradient with nothing to stop it (the loss is linear in S, unbounded below).
 */
export function gvpoTermsLoss(
  tf: Tf,
  S: TF.Tensor1D,
  Sref: ArrayLike<number>,
  rewards: Float64Array,
  k: number,
  beta: number,
  ablation: TermsAblation,
): TF.Scalar {
  const G = rewards.length / k;
  const a = centered(rewards, k);
  const q = centered(Sref, k);
  let constant = 0;
  for (let n = 0; n < a.length; n++) constant += (a[n] + beta * q[n]) ** 2 / 2;
  const Sg = S.reshape([G, k]);
  const p = Sg.sub(Sg.mean(1, true));
  let sum = p
    .mul(tf.tensor2d(a, [G, k]))
    .sum()
    .mul(-beta)
    .add(constant);
  if (ablation !== 'no-trust-region')
    sum = sum.sub(
      p
        .mul(tf.tensor2d(q, [G, k]))
        .sum()
        .mul(beta * beta),
    );
  if (ablation !== 'no-variance')
    sum = sum.add(
      p
        .square()
        .sum()
        .mul((beta * beta) / 2),
    );
  return sum.div((k - 1) * G) as TF.Scalar;
}

/**
 * Rewards with the exact KL penalty in them, as verl's use_kl_in_reward computes it: per sequence,
 * R - coef * sum_t m (log pi_old - log pi_ref) at the sampled tokens, with pi_old the policy before
 * this step's updates (verl's old_log_prob, recomputed by the actor). Sampled from pi_old, its
 * expectation is E[R] - coef KL(pi_old || pi_ref) and its policy gradient is that objective's,
 * unlike the gradient of the k3 term as a loss. At the optimum pi* = pi_ref exp(R/coef)/Z it is the
 * same for every response, so the group-centered signal vanishes whoever sampled the responses.
 */
export function klPenalizedRewards(
  rewards: Float64Array,
  oldTokens: ArrayLike<number>,
  referenceTokens: ArrayLike<number>,
  mask: Float32Array,
  coef: number,
): Float64Array {
  const T = mask.length / rewards.length;
  return rewards.map((r, n) => {
    let d = 0;
    for (let t = n * T; t < (n + 1) * T; t++) if (mask[t]) d += mask[t] * (oldTokens[t] - referenceTokens[t]);
    return r - coef * d;
  });
}

export type PolicyGradientAlgo = 'grpo' | 'drgrpo' | 'reinforce';

export interface PolicyGradientOptions {
  algo: PolicyGradientAlgo;
  /** Token log-probs [N*T] of the distribution that sampled each sequence (the ratio's denominator). */
  behaviorTokens: Float32Array;
  /** Token log-probs [N*T] under the policy before this step's updates (the KL in the reward). */
  oldTokens: Float32Array;
  /** Token log-probs [N*T] under the reference (pi_theta' or a frozen model), for the KL. */
  referenceTokens: Float32Array;
  /** The ratio's clip range: 1 +- clip; Infinity: none. */
  clip: number;
  /** The KL coefficient; 0: no KL. */
  klCoef: number;
  /** Where the KL goes: the k3 term of the loss, or an exact penalty in the reward. */
  klIn: KlPlacement;
  /** REINFORCE: importance weights min(pi/pi_b, cap) per sequence, not differentiated; 0: none. */
  importanceCap: number;
  /** Receives the share of response tokens (GRPO, Dr.GRPO) whose clip binds (the ratio past
   *  1 + clip with a positive advantage, or below 1 - clip with a negative one: the token's
   *  gradient is zero), or of sequences (REINFORCE) whose importance weight was truncated. */
  onClipFraction?: (f: number) => void;
}

/** The largest token log-ratio log pi - log pi_b that GRPO's and Dr.GRPO's ratio takes (verl's
 *  clamp): e^20 is 5e8, far past any clip, and float32's exp() overflows from about 88. */
export const MAX_LOG_RATIO = 20;

/** Advantages per sequence: R - mean R, divided by the group's std for GRPO. */
function advantages(rewards: Float64Array, k: number, normalize: boolean): Float32Array {
  const a = centered(rewards, k);
  if (!normalize) return a;
  for (let g = 0; g < rewards.length; g += k) {
    let v = 0;
    for (let i = 0; i < k; i++) v += a[g + i] ** 2 / (k - 1);
    for (let i = 0; i < k; i++) a[g + i] /= Math.sqrt(v) + 1e-6;
  }
  return a;
}

/** Per-token rows [N, T] of a per-sequence array. */
function perToken(x: ArrayLike<number>, T: number): Float32Array {
  const out = new Float32Array(x.length * T);
  for (let n = 0; n < x.length; n++) out.fill(x[n], n * T, (n + 1) * T);
  return out;
}

/** k3 estimate of KL(pi || pi_ref) per token [N, T]: exp(d) - d - 1 with d = log pi_ref - log pi. */
function k3(tf: Tf, lp: TF.Tensor2D, referenceTokens: Float32Array): TF.Tensor2D {
  const d = tf.tensor2d(referenceTokens, lp.shape).sub(lp);
  return tf.exp(d).sub(d).sub(1) as TF.Tensor2D;
}

/** GRPO's clipped surrogate, Dr.GRPO's, or REINFORCE with the group-mean baseline; the scalar to minimize. */
export function policyGradientLoss(tf: Tf, lpTokens: TF.Tensor, mb: GroupBatch, o: PolicyGradientOptions): TF.Scalar {
  const N = mb.rewards.length;
  const T = mb.tokens;
  const k = mb.groupSize;
  const lp = lpTokens.reshape([N, T]) as TF.Tensor2D;
  const mask = tf.tensor2d(mb.mask, [N, T]);
  const rewards =
    o.klCoef && o.klIn === 'reward'
      ? klPenalizedRewards(mb.rewards, o.oldTokens, o.referenceTokens, mb.mask, o.klCoef)
      : mb.rewards;
  const klTerm = o.klCoef && o.klIn === 'loss' ? k3(tf, lp, o.referenceTokens).mul(o.klCoef) : undefined;
  if (o.algo === 'reinforce') {
    // -(1/G) sum_g 1/(k-1) sum_n w_n (R_n - mean_g R) S_n: the leave-one-out-scaled group baseline,
    // so that with the KL in the reward at coefficient beta it is GVPO's gradient divided by beta
    const S = lp.mul(mask).sum(1);
    const a = centered(rewards, k);
    const w = new Float32Array(N).fill(1);
    if (o.importanceCap > 0) {
      const s = S.dataSync();
      let truncated = 0;
      for (let n = 0; n < N; n++) {
        let b = 0;
        for (let t = n * T; t < (n + 1) * T; t++) if (mb.mask[t]) b += mb.mask[t] * o.behaviorTokens[t];
        const ratio = Math.exp(s[n] - b);
        if (ratio > o.importanceCap) truncated++;
        w[n] = Math.min(ratio, o.importanceCap);
      }
      o.onClipFraction?.(truncated / N);
    } else o.onClipFraction?.(0);
    const coef = Float32Array.from(a, (x, n) => (w[n] * x) / ((k - 1) * (N / k)));
    let loss = S.mul(tf.tensor1d(coef)).sum().neg();
    if (klTerm) loss = loss.add(klTerm.mul(mask).sum(1).div(mask.sum(1).maximum(1)).mean());
    return loss as TF.Scalar;
  }
  const adv = perToken(advantages(rewards, k, o.algo === 'grpo'), T);
  const A = tf.tensor2d(adv, [N, T]);
  // the log-ratio clamped to +-MAX_LOG_RATIO before exp(), as verl clamps it: a sampler whose
  // log-probs lie far below the policy's (an external one) would otherwise overflow float32 and
  // leave NaN weights. A clamped token gets no gradient, which its clip would give it anyway with
  // a positive advantage.
  const logRatio = lp.sub(tf.tensor2d(o.behaviorTokens, [N, T]));
  const ratio = tf.exp(tf.clipByValue(logRatio, -MAX_LOG_RATIO, MAX_LOG_RATIO));
  if (o.onClipFraction) {
    // A token counts where the clip binds, i.e. where min() takes the clipped term and its
    // gradient is zero: ratio above 1 + clip with a positive advantage, or below 1 - clip with a
    // negative one. (A ratio outside the band on the other side still gets its gradient.)
    const r = ratio.dataSync();
    let clipped = 0;
    let count = 0;
    for (let i = 0; i < r.length; i++) {
      if (!mb.mask[i]) continue;
      count++;
      if ((adv[i] > 0 && r[i] > 1 + o.clip) || (adv[i] < 0 && r[i] < 1 - o.clip)) clipped++;
    }
    o.onClipFraction(count ? clipped / count : 0);
  }
  // clip Infinity: the plain importance-weighted surrogate ratio * A (the clip's ablation)
  const surrogate = ratio.mul(A);
  let perTok = (
    o.clip === Infinity ? surrogate : tf.minimum(surrogate, tf.clipByValue(ratio, 1 - o.clip, 1 + o.clip).mul(A))
  ).neg();
  if (klTerm) perTok = perTok.add(klTerm);
  const masked = perTok.mul(mask);
  if (o.algo === 'grpo') return masked.sum(1).div(mask.sum(1).maximum(1)).mean() as TF.Scalar;
  return masked.sum().div(N * T) as TF.Scalar;
}
