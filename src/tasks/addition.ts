// Addition as a verifiable text task: the prompt "37+45=" as characters, the response the sum's
// digits then EOS; reward 1 for exactly the right digits, else 0. (A per-digit partial credit
// was tried: it raised the reward while greedy exact-match fell; bench/NOTES.md.)
//
// Operands have up to `digits` digits. The pairs are split once and for all by a fixed hash of the
// unordered pair {a, b}: a `heldOut` share of them is never drawn by samplePrompts (training, the
// supervised warm-up included) and only by heldOutPrompts (evaluation), so held-out figures are
// on prompts the policy has never been trained on, in either order. A second fixed hash splits the
// held-out pairs in halves: validationPrompts draws one (for tuning), heldOutPrompts the other (the
// figures reported), so that no reported figure is on the prompts a setting was chosen on.
import { checkOptions } from '../validate.js';
import { taskNumber, type Task } from './task.js';

export const PLUS = 10; // tokens 0-9 are the digits
export const EQUALS = 11;
export const EOS = 12;
export const PAD = 13;
export const ADDITION_VOCAB = 14;

const CHARS = '0123456789+=$_';

export interface AdditionOptions {
  /** Digits per operand (default 2: 0 to 99). */
  digits?: number;
  /** Share of the operand pairs held out of training (default 0.2). */
  heldOut?: number;
}

/** A fixed 32-bit mix (the murmur3 finalizer): the split must never change between releases. */
function mix(x: number): number {
  x = Math.imul(x ^ (x >>> 16), 0x85ebca6b);
  x = Math.imul(x ^ (x >>> 13), 0xc2b2ae35);
  return (x ^ (x >>> 16)) >>> 0;
}

type Split = 'train' | 'test' | 'validation';
/** Consecutive draws with no pair of the wanted split before giving up (more digits than are counted). */
const MAX_MISSES = 1e8;

export class AdditionTask implements Task {
  readonly name = 'addition';
  readonly vocab = ADDITION_VOCAB;
  readonly digits: number;
  readonly maxOperand: number;
  readonly heldOut: number;
  /** The sum's digits (one more than an operand's) and EOS. */
  readonly maxTokens: number;
  /** The longest prompt: two operands, '+' and '='. */
  readonly promptTokens: number;
  private splitSizes?: Record<Split, number>;

  constructor(o: AdditionOptions = {}) {
    checkOptions('AdditionTask', o as unknown, ['digits', 'heldOut']); // a misspelt option would be ignored
    this.digits = o.digits ?? 2;
    this.heldOut = o.heldOut ?? 0.2;
    taskNumber(
      'AdditionTask',
      'digits',
      this.digits,
      'an integer in [1, 6]',
      (x) => Number.isInteger(x) && x >= 1 && x <= 6,
    );
    taskNumber('AdditionTask', 'heldOut', this.heldOut, 'a number in [0, 1)', (x) => x >= 0 && x < 1);
    this.maxOperand = 10 ** this.digits - 1;
    this.maxTokens = this.digits + 2;
    this.promptTokens = 2 * this.digits + 2;
  }

  static prompt(a: number, b: number): number[] {
    return [...`${a}+${b}=`].map((c) => CHARS.indexOf(c));
  }
  /** The operands of a prompt. */
  static operands(prompt: number[]): [number, number] {
    const s = prompt.map((t) => CHARS[t] ?? '?').join('');
    const [a, b] = s.slice(0, -1).split('+').map(Number);
    return [a, b];
  }
  /** Whether the pair {a, b} belongs to the held-out split (the same for (a, b) and (b, a)). */
  isHeldOut(a: number, b: number): boolean {
    const [lo, hi] = a < b ? [a, b] : [b, a];
    return mix(lo * 1_000_003 + hi) / 2 ** 32 < this.heldOut;
  }

  /** Whether a held-out pair {a, b} belongs to the validation half (false for training pairs). */
  isValidation(a: number, b: number): boolean {
    const [lo, hi] = a < b ? [a, b] : [b, a];
    return this.isHeldOut(a, b) && mix((lo * 1_000_003 + hi) ^ 0x5bd1e995) / 2 ** 32 < 0.5;
  }

  private splitOf(a: number, b: number): Split {
    return !this.isHeldOut(a, b) ? 'train' : this.isValidation(a, b) ? 'validation' : 'test';
  }
  private draw(n: number, rand: () => number, split: Split): number[][] {
    this.checkNonEmpty(split);
    const out: number[][] = [];
    let misses = 0;
    while (out.length < n) {
      const a = Math.floor(rand() * (this.maxOperand + 1));
      const b = Math.floor(rand() * (this.maxOperand + 1));
      if (this.splitOf(a, b) === split) {
        out.push(AdditionTask.prompt(a, b));
        misses = 0;
      } else if (++misses > MAX_MISSES) {
        throw new RangeError(`AdditionTask: no ${split} pair in ${MAX_MISSES} draws (heldOut = ${this.heldOut})`);
      }
    }
    return out;
  }
  /** Up to 3 digits the pairs are counted once: a split with none (a heldOut near 0 or 1 on few
   *  pairs) is refused at once instead of drawn for ever. */
  private checkNonEmpty(split: Split): void {
    if (this.maxOperand > 999) return;
    if (!this.splitSizes) {
      const c = { train: 0, test: 0, validation: 0 };
      for (let a = 0; a <= this.maxOperand; a++) for (let b = 0; b <= this.maxOperand; b++) c[this.splitOf(a, b)]++;
      this.splitSizes = c;
    }
    if (this.splitSizes[split] === 0)
      throw new RangeError(
        `AdditionTask: the ${split} split holds no operand pair at digits = ${this.digits}, heldOut = ${this.heldOut}`,
      );
  }
  private checkHeldOut(name: string): void {
    if (!(this.heldOut > 0)) throw new RangeError(`AdditionTask.${name}: this task holds no prompts out (heldOut = 0)`);
  }
  /** Training prompts: uniform operand pairs outside the held-out split. */
  samplePrompts(n: number, rand: () => number): number[][] {
    return this.draw(n, rand, 'train');
  }
  /** Evaluation prompts: uniform operand pairs of the held-out split's test half. */
  heldOutPrompts(n: number, rand: () => number): number[][] {
    this.checkHeldOut('heldOutPrompts');
    return this.draw(n, rand, 'test');
  }
  /** Validation prompts (for tuning): uniform operand pairs of the held-out split's other half. */
  validationPrompts(n: number, rand: () => number): number[][] {
    this.checkHeldOut('validationPrompts');
    return this.draw(n, rand, 'validation');
  }
  /** The digits of `value` then EOS. */
  static response(value: number): number[] {
    return [...String(value)].map((c) => CHARS.indexOf(c)).concat(EOS);
  }
  answer(prompt: number[]): number[] {
    const [a, b] = AdditionTask.operands(prompt);
    return AdditionTask.response(a + b);
  }
  reward(prompt: number[], response: number[]): number {
    const want = this.answer(prompt);
    return want.length === response.length && want.every((t, i) => t === response[i]) ? 1 : 0;
  }
  decode(tokens: number[]): string {
    return tokens.map((t) => CHARS[t] ?? '?').join('');
  }
}
