// A task: prompts to draw, a reward for a response, and (where one exists) the right answer.
import { rangeError, typeError } from '../validate.js';

export interface Task {
  readonly name: string;
  readonly vocab: number;
  /** The longest response the task expects: the trainer refuses a policy that cannot write it (a
   *  task of plain JavaScript may leave it out; the policy's maxTokens then bounds the responses). */
  readonly maxTokens: number;
  /** Training prompts. */
  samplePrompts(n: number, rand: () => number): number[][];
  /** Prompts samplePrompts never draws, for held-out evaluation (where the task has a split). */
  heldOutPrompts?(n: number, rand: () => number): number[][];
  /** Prompts neither samplePrompts nor heldOutPrompts draws: a validation split for choosing
   *  hyper-parameters apart from the held-out prompts whose figures are reported. */
  validationPrompts?(n: number, rand: () => number): number[][];
  reward(prompt: number[], response: number[]): number;
  /** The correct response, for demonstrations and exact-match accuracy. */
  answer?(prompt: number[]): number[];
  decode?(tokens: number[]): string;
}

/** A task's numeric argument: a TypeError when it is not a number (named and quoted as it came),
 *  a RangeError when `ok` refuses it. */
export function taskNumber(fn: string, name: string, v: unknown, expected: string, ok: (x: number) => boolean): number {
  if (typeof v !== 'number') typeError(fn, name, expected, v);
  if (!ok(v)) rangeError(fn, name, expected, String(v));
  return v;
}

/** mulberry32: the trainer's and tasks' seeded generator. */
export function seeded(seed: number, fn = 'seeded'): () => number {
  taskNumber(fn, 'seed', seed, 'an integer', Number.isInteger);
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
