// A contextual bandit whose optimum is known in closed form: P prompts, K responses each (one
// token), fixed rewards R[p][k]. Under the KL-constrained objective with reference pi_ref the
// optimum is pi*(k|p) = pi_ref(k|p) exp(R[p][k]/beta) / Z(p) (GVPO's Theorem 1).
import { seeded, type Task } from './task.js';

export class BanditTask implements Task {
  readonly name = 'bandit';
  readonly maxTokens = 1;
  readonly rewards: number[][];
  constructor(
    readonly prompts = 4,
    readonly vocab = 6,
    seed = 7,
  ) {
    for (const [name, v] of [
      ['prompts', prompts],
      ['vocab', vocab],
    ] as const) {
      if (!Number.isInteger(v) || v < 1) throw new RangeError(`BanditTask: ${name} must be an integer >= 1, got ${v}`);
    }
    const r = seeded(seed);
    this.rewards = Array.from({ length: prompts }, () =>
      Array.from({ length: vocab }, () => Math.round(r() * 10) / 10),
    );
  }
  samplePrompts(n: number, rand: () => number): number[][] {
    return Array.from({ length: n }, () => [Math.floor(rand() * this.prompts)]);
  }
  reward(prompt: number[], response: number[]): number {
    return this.rewards[prompt[0]][response[0]];
  }
  answer(prompt: number[]): number[] {
    const row = this.rewards[prompt[0]];
    return [row.indexOf(Math.max(...row))];
  }
}

/** pi*(.|p) proportional to ref(.|p) * exp(scale * R[p][.] / beta), per prompt. */
export function tiltedOptimum(ref: ArrayLike<number>[], rewards: number[][], beta: number, scale = 1): Float64Array[] {
  if (!(Number.isFinite(beta) && beta > 0))
    throw new RangeError(`tiltedOptimum: beta must be a finite number > 0, got ${beta}`);
  if (ref.length !== rewards.length) {
    throw new RangeError(
      `tiltedOptimum: rewards must have one row per row of ref (${ref.length}), got ${rewards.length}`,
    );
  }
  return ref.map((row, p) => {
    const logits = Array.from(row, (q, k) => Math.log(q) + (scale * rewards[p][k]) / beta);
    const m = Math.max(...logits);
    const e = logits.map((l) => Math.exp(l - m));
    const s = e.reduce((a, b) => a + b);
    return Float64Array.from(e, (x) => x / s);
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
  let kl = 0;
  p.forEach((row, i) => {
    for (let k = 0; k < row.length; k++) if (row[k] > 0) kl += row[k] * Math.log(row[k] / q[i][k]);
  });
  return kl / p.length;
}
