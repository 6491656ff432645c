// A contextual bandit whose optimum is known in closed form: P prompts, K responses each (one
// token), fixed rewards R[p][k]. Under the KL-constrained objective with reference pi_ref the
// optimum is pi*(k|p) = pi_ref(k|p) exp(R[p][k]/beta) / Z(p) (GVPO's Theorem 1).
import { seeded, taskNumber, type Task } from './task.js';

const MAX_ARMS = 2 ** 26;

export class BanditTask implements Task {
  readonly name = 'bandit';
  readonly maxTokens = 1;
  readonly rewards: number[][];
  constructor(
    readonly prompts = 4,
    readonly vocab = 6,
    seed = 7,
  ) {
    const count = (x: number) => Number.isInteger(x) && x >= 1;
    taskNumber('BanditTask', 'prompts', prompts, 'an integer >= 1', count);
    taskNumber('BanditTask', 'vocab', vocab, 'an integer >= 1', count);
    // the table of rewards, held as arrays of numbers: as large as a TabularPolicy may be
    if (prompts * vocab > MAX_ARMS)
      throw new RangeError(
        `BanditTask: prompts x vocab must be at most 2^26 = ${MAX_ARMS} rewards, got ${prompts} x ${vocab} = ${prompts * vocab}`,
      );
    const r = seeded(seed, 'BanditTask');
    this.rewards = Array.from({ length: prompts }, () =>
      Array.from({ length: vocab }, () => Math.round(r() * 10) / 10),
    );
  }
  samplePrompts(n: number, rand: () => number): number[][] {
    return Array.from({ length: n }, () => [Math.floor(rand() * this.prompts)]);
  }
  reward(prompt: number[], response: number[]): number {
    const [p] = prompt;
    const [arm] = response;
    if (prompt.length !== 1 || !Number.isInteger(p) || p < 0 || p >= this.prompts)
      throw new RangeError(
        `BanditTask.reward: prompt [${prompt.join(', ')}] is not one of the ${this.prompts} prompts ([p], p in [0, ${this.prompts}))`,
      );
    // a policy with more tokens than the bandit has arms (a TabularPolicy of vocab 8 on 6 arms)
    // draws responses that have no reward: refused by name rather than scored undefined
    if (response.length !== 1 || !Number.isInteger(arm) || arm < 0 || arm >= this.vocab)
      throw new RangeError(
        `BanditTask.reward: response [${response.join(', ')}] is not one of the ${this.vocab} arms ([a], a in [0, ${this.vocab})); a policy for this bandit needs vocab ${this.vocab}`,
      );
    return this.rewards[p][arm];
  }
  answer(prompt: number[]): number[] {
    // the first best response; a loop, not Math.max(...row), which overflows the stack on a long row
    const row = this.rewards[prompt[0]];
    let best = 0;
    for (let k = 1; k < row.length; k++) if (row[k] > row[best]) best = k;
    return [best];
  }
}

/**
 * pi*(.|p) proportional to ref(.|p) * exp(scale * R[p][.] / beta), per prompt. `ref` holds one
 * distribution per prompt (finite weights >= 0, not all 0; they need not sum to 1) and `rewards`
 * one finite reward per entry of it; anything else is refused (it had no optimum to give: NaN).
 */
export function tiltedOptimum(ref: ArrayLike<number>[], rewards: number[][], beta: number, scale = 1): Float64Array[] {
  taskNumber('tiltedOptimum', 'beta', beta, 'a finite number > 0', (x) => Number.isFinite(x) && x > 0);
  taskNumber('tiltedOptimum', 'scale', scale, 'a finite number', Number.isFinite);
  if (ref.length !== rewards.length) {
    throw new RangeError(
      `tiltedOptimum: rewards must have one row per row of ref (${ref.length}), got ${rewards.length}`,
    );
  }
  return ref.map((row, p) => {
    const R = rewards[p];
    if (R?.length !== row.length)
      throw new RangeError(
        `tiltedOptimum: rewards[${p}] must hold one reward per entry of ref[${p}] (${row.length}), got ${R?.length ?? String(R)}`,
      );
    // a loop, not Math.max(...): a spread of a long row (2e5 entries) overflows the call stack
    const logits = new Float64Array(row.length);
    let m = -Infinity;
    for (let k = 0; k < row.length; k++) {
      const q = row[k];
      if (!(Number.isFinite(q) && q >= 0))
        throw new RangeError(
          `tiltedOptimum: ref[${p}] must be a distribution (finite weights >= 0), got ${q} at index ${k}`,
        );
      const tilt = (scale * R[k]) / beta;
      if (!Number.isFinite(tilt))
        throw new RangeError(
          `tiltedOptimum: scale * rewards[${p}][${k}] / beta must be finite, got ${scale} * ${R[k]} / ${beta}`,
        );
      logits[k] = Math.log(q) + tilt;
      if (logits[k] > m) m = logits[k];
    }
    if (m === -Infinity)
      throw new RangeError(`tiltedOptimum: ref[${p}] must be a distribution with some weight > 0, got none`);
    let s = 0;
    for (let k = 0; k < row.length; k++) s += logits[k] = Math.exp(logits[k] - m);
    return logits.map((x) => x / s);
  });
}

/** KL(p || q) summed over prompts' distributions (mean over prompts). */
export function meanKl(p: ArrayLike<number>[], q: ArrayLike<number>[]): number {
  if (
    !Array.isArray(p) ||
    !Array.isArray(q) ||
    p.length !== q.length ||
    p.some((row, i) => row?.length !== q[i]?.length)
  ) {
    throw new RangeError('meanKl: p and q must be arrays of distributions of the same shapes');
  }
  // the mean over no prompts is 0/0
  if (p.length === 0) throw new RangeError('meanKl: p and q must hold at least one distribution each, got none');
  let kl = 0;
  p.forEach((row, i) => {
    for (let k = 0; k < row.length; k++) if (row[k] > 0) kl += row[k] * Math.log(row[k] / q[i][k]);
  });
  return kl / p.length;
}
