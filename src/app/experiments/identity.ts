// GVPO's gradient against REINFORCE's, measured on a text batch. With a frozen reference, per
// sequence (dL/dS, 'mean' reduction over G groups of k, a = R - mean R, p = S - mean S,
// q = Sref - mean Sref, p_old the centered S of the policy that sampled the batch):
//   GVPO                           dL/dS = beta/((k-1) G) (beta (p - q) - a)
//   REINFORCE, KL in the reward    dL/dS = -1/((k-1) G) (a - beta (p_old - q))
// so GVPO's gradient is beta times REINFORCE's plus beta^2/((k-1) G) (p - p_old): equal at the first
// update on freshly sampled groups, apart as the policy moves within a step, by the gradient of
// the variance term's pull back to where the batch was sampled. This measures both claims with the
// library's own losses, on the shipped checkpoint after a few steps away from it.
import { gvpoLoss } from '../../ops/gvpoLoss.js';
import { AdditionTask } from '../../tasks/addition.js';
import { seeded } from '../../tasks/task.js';
import { logprobsOf, packBatch } from '../../tfjs/batch.js';
import { policyGradientLoss } from '../../tfjs/losses.js';
import { loadPolicy } from '../../tfjs/loadPolicy.js';
import { tokenLogprobsTf } from '../../tfjs/ops.js';
import { loadTf, type TfChoice } from '../../tfjs/tf.js';
import { GVPOTrainer } from '../../tfjs/trainer.js';
import { markdownTable } from '../report.js';
import { CHECKPOINT } from '../runOptions.js';

const norm = (x: ArrayLike<number>) => Math.sqrt(Array.from(x).reduce((a, v) => a + v * v, 0));

export async function gradientIdentity(tfChoice: TfChoice, beta: number, lr: number): Promise<string> {
  const { tf } = await loadTf(tfChoice);
  const task = new AdditionTask();
  const reference = loadPolicy(tf, CHECKPOINT);
  const policy = reference.clone();
  const k = 8,
    G = 16,
    T = policy.maxTokens;
  // a few GVPO steps away from the frozen reference, so that S != Sref
  const away = new GVPOTrainer({
    tf,
    policy,
    task,
    reference: 'frozen',
    referencePolicy: reference,
    beta,
    groupSize: k,
    promptsPerStep: G,
    learningRate: lr,
    seed: 5,
  });
  for (let s = 0; s < 10; s++) await away.step();
  // a fresh batch sampled by the current policy at temperature 1
  const rand = seeded(17);
  const prompts = task.samplePrompts(G, rand);
  const responses = policy.sample(
    prompts.flatMap((p) => Array(k).fill(p)),
    1,
    rand,
  );
  const groups = prompts.map((prompt, g) => {
    const rs = responses.slice(g * k, (g + 1) * k);
    return {
      prompt,
      responses: rs,
      rewards: rs.map((r) => task.reward(prompt, r)),
      source: 'policy' as const,
      temperature: 1,
    };
  });
  const b = packBatch(groups, k, T);
  const old = logprobsOf(tf, policy, b);
  const ref = logprobsOf(tf, reference, b);
  const optimizer = tf.train.adam(lr);
  const rows: string[][] = [];
  for (let update = 0; update <= 3; update++) {
    const now = logprobsOf(tf, policy, b);
    const gvpo = gvpoLoss({
      policyLogprobs: now.seq,
      referenceLogprobs: ref.seq,
      rewards: b.rewards,
      groups: { size: k },
      beta,
    }).gradLogprobs;
    // REINFORCE's dL/dl per token from the library's loss; a sequence's dL/dS is that of any live token
    const perToken = tf
      .grad((lp) =>
        policyGradientLoss(
          tf,
          lp,
          { targets: b.targets, mask: b.mask, rewards: b.rewards, groupSize: k, tokens: T },
          {
            algo: 'reinforce',
            behaviorTokens: old.token,
            oldTokens: old.token,
            referenceTokens: ref.token,
            clip: 0.2,
            klCoef: beta,
            klIn: 'reward',
            importanceCap: 0,
          },
        ),
      )(tf.tensor1d(now.token))
      .dataSync();
    const reinforce = Float64Array.from({ length: b.rewards.length }, (_, n) => perToken[n * T] / b.mask[n * T]);
    const center = (x: Float64Array) =>
      Float64Array.from(
        x,
        (v, n) => v - x.subarray(Math.floor(n / k) * k, Math.floor(n / k) * k + k).reduce((a, y) => a + y, 0) / k,
      );
    const p = center(now.seq),
      pOld = center(old.seq);
    const gap = gvpo.map((g, n) => g - beta * reinforce[n]);
    const predicted = p.map((x, n) => (beta * beta * (x - pOld[n])) / ((k - 1) * G));
    rows.push([
      String(update),
      norm(p.map((x, n) => x - pOld[n])).toExponential(2),
      (norm(gap) / norm(gvpo)).toExponential(2),
      (norm(gap.map((x, n) => x - predicted[n])) / norm(gvpo)).toExponential(2),
    ]);
    // one GVPO update on the batch
    optimizer.minimize(
      () => {
        const lp = tokenLogprobsTf(tf, policy.logits(b.prompts, b.targets), b.targets);
        const S = lp
          .reshape([b.rewards.length, T])
          .mul(tf.tensor2d(b.mask, [b.rewards.length, T]))
          .sum(1);
        const g = tf.tensor1d(
          Float32Array.from(
            gvpoLoss({
              policyLogprobs: Float64Array.from(S.dataSync()),
              referenceLogprobs: ref.seq,
              rewards: b.rewards,
              groups: { size: k },
              beta,
            }).gradLogprobs,
          ),
        );
        return S.mul(g).sum() as never; // a surrogate whose gradient is dL/dS . dS/dtheta
      },
      false,
      policy.variables,
    );
  }
  return markdownTable(
    [
      'updates on the batch so far',
      '‖p - p_old‖ (policy moved)',
      '‖GVPO - beta REINFORCE‖ / ‖GVPO‖',
      '‖GVPO - beta REINFORCE - beta²/((k-1)G) (p - p_old)‖ / ‖GVPO‖',
    ],
    rows,
  );
}
