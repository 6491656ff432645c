// The per-mini-batch losses the trainer differentiates, besides the fused GVPO op:
//   gvpoTermsLoss   GVPO written as its three-term decomposition on S, so that a term can be
//                   dropped (the paper's ablations);
//   policyGradientLoss  GRPO (std-normalised advantages, ratio clipped at 1 +- eps, per-sequence
//                   token mean) and Dr.GRPO (mean-centred advantages, a constant normaliser).
// Shapes: N = G*k sequences in whole groups of k, padded to T tokens; logits [N*T, V].
import type * as TF from '@tensorflow/tfjs';
import { gvpoFromHiddenTf, tokenLogprobsTf } from './ops.js';
import type { FusedLossArgs } from './policy.js';
import type { TermsAblation } from './trainerOptions.js';

type Tf = typeof TF;

export interface MiniBatchTensors {
  /** Logits [N*T, V] of the policy being trained (differentiated). */
  logits: TF.Tensor2D;
  targets: Int32Array;
  /** [N*T] response mask. */
  mask: Float32Array;
  rewards: Float64Array;
  groupSize: number;
  tokens: number;
  /** The temperature the log-probs are taken at (the responses' sampling temperature). */
  temperature: number;
}

/**
 * Rows [N*T, *] of logits, or of the hidden states of a bias-free head (z = h W^T is linear in h),
 * ready for a kernel taking one temperature: a temperature every sequence shares is passed on as
 * is; mixed ones (replayed groups sampled at another) divide each sequence's rows by its own, and
 * the kernel runs at 1.
 */
export function atTemperatures(tf: Tf, x: TF.Tensor2D, temperatures: Float64Array, tokens: number): { x: TF.Tensor2D; temperature: number } {
  if (temperatures.every((t) => t === temperatures[0])) return { x, temperature: temperatures[0] };
  const inv = Float32Array.from({ length: temperatures.length * tokens }, (_, r) => 1 / temperatures[Math.floor(r / tokens)]);
  return { x: x.mul(tf.tensor2d(inv, [inv.length, 1])) as TF.Tensor2D, temperature: 1 };
}

/** The GVPO loss of hidden states [N*T, H] through the head [V, H], at the args' temperatures. */
export function fusedHeadLoss(tf: Tf, hidden: TF.Tensor2D, head: TF.Tensor2D, tokens: number, args: FusedLossArgs): TF.Scalar {
  const { temperatures, ...rest } = args;
  const t = temperatures ? atTemperatures(tf, hidden, temperatures, tokens) : { x: hidden, temperature: args.temperature };
  return gvpoFromHiddenTf(tf, t.x, head, { ...rest, temperature: t.temperature, tokens }).loss;
}

/** S[n] = sum_t m[n,t] l[n,t] as a differentiable [N] tensor. */
export function sequenceLogprobsTf(tf: Tf, mb: MiniBatchTensors): TF.Tensor1D {
  const N = mb.rewards.length;
  const l = tokenLogprobsTf(tf, mb.logits, mb.targets, mb.temperature).reshape([N, mb.tokens]);
  return l.mul(tf.tensor2d(mb.mask, [N, mb.tokens])).sum(1) as TF.Tensor1D;
}

function centred(x: ArrayLike<number>, k: number): Float32Array {
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
export function gvpoTermsLoss(tf: Tf, S: TF.Tensor1D, Sref: ArrayLike<number>, mb: MiniBatchTensors, beta: number, terms: TermsAblation): TF.Scalar {
  const k = mb.groupSize;
  const G = mb.rewards.length / k;
  const a = centred(mb.rewards, k);
  const q = centred(Sref, k);
  let constant = 0;
  for (let n = 0; n < a.length; n++) constant += (a[n] + beta * q[n]) ** 2 / 2;
  const Sg = S.reshape([G, k]);
  const p = Sg.sub(Sg.mean(1, true));
  let sum = p.mul(tf.tensor2d(a, [G, k])).sum().mul(-beta).add(constant);
  if (terms !== 'no-trust-region') sum = sum.sub(p.mul(tf.tensor2d(q, [G, k])).sum().mul(beta * beta));
  if (terms !== 'no-variance') sum = sum.add(p.square().sum().mul((beta * beta) / 2));
  return sum.div((k - 1) * G) as TF.Scalar;
}

export interface PolicyGradientOptions {
  algo: 'grpo' | 'drgrpo';
  /** Token log-probs [N*T] of the policy that sampled each sequence (the importance ratio's denominator). */
  behaviourTokens: Float32Array;
  /** Token log-probs [N*T] under pi_theta', for the optional k3 KL penalty. */
  referenceTokens: Float32Array;
  clip: number;
  klCoef: number;
  /** Receives the fraction of response tokens whose ratio left [1 - clip, 1 + clip]. */
  onClipFraction?: (f: number) => void;
}

/** Advantages per token [N*T]: R - mean R, divided by the group's std for GRPO. */
function advantages(rewards: Float64Array, k: number, T: number, normalise: boolean): Float32Array {
  const adv = new Float32Array(rewards.length * T);
  const a = centred(rewards, k);
  for (let g = 0; g < rewards.length; g += k) {
    let v = 0;
    for (let i = 0; i < k; i++) v += a[g + i] ** 2 / (k - 1);
    const scale = normalise ? 1 / (Math.sqrt(v) + 1e-6) : 1;
    for (let i = 0; i < k; i++) adv.fill(a[g + i] * scale, (g + i) * T, (g + i + 1) * T);
  }
  return adv;
}

/** GRPO's clipped surrogate, or Dr.GRPO's; returns the scalar to minimise. */
export function policyGradientLoss(tf: Tf, mb: MiniBatchTensors, o: PolicyGradientOptions): TF.Scalar {
  const N = mb.rewards.length;
  const T = mb.tokens;
  const lp = tokenLogprobsTf(tf, mb.logits, mb.targets, mb.temperature).reshape([N, T]);
  const old = tf.tensor2d(o.behaviourTokens, [N, T]);
  const mask = tf.tensor2d(mb.mask, [N, T]);
  const A = tf.tensor2d(advantages(mb.rewards, mb.groupSize, T, o.algo === 'grpo'), [N, T]);
  const ratio = tf.exp(lp.sub(old));
  if (o.onClipFraction) {
    const r = ratio.dataSync();
    let clipped = 0;
    let count = 0;
    for (let i = 0; i < r.length; i++) {
      if (!mb.mask[i]) continue;
      count++;
      if (Math.abs(r[i] - 1) > o.clip) clipped++;
    }
    o.onClipFraction(count ? clipped / count : 0);
  }
  let perTok = tf.minimum(ratio.mul(A), tf.clipByValue(ratio, 1 - o.clip, 1 + o.clip).mul(A)).neg();
  if (o.klCoef) {
    const d = tf.tensor2d(o.referenceTokens, [N, T]).sub(lp); // k3 estimator of KL(pi || pi_theta')
    perTok = perTok.add(tf.exp(d).sub(d).sub(1).mul(o.klCoef));
  }
  const masked = perTok.mul(mask);
  if (o.algo === 'grpo') return masked.sum(1).div(mask.sum(1).maximum(1)).mean() as TF.Scalar;
  return masked.sum().div(N * T) as TF.Scalar;
}
