// Addition as a verifiable text task: the prompt "37+45=" as characters, the response the sum's
// digits then EOS; reward 1 for exactly the right digits, else 0. (A per-digit partial credit
// was tried: it raised the reward while greedy exact-match fell; bench/NOTES.md.)
//
// Operands have up to `digits` digits. The pairs are split once and for all by a fixed hash of the
// unordered pair {a, b}: a `heldOut` share of them is never drawn by samplePrompts (training, the
// supervised warm-up included) and only by heldOutPrompts (evaluation), so held-out figures are
// on prompts the policy has never been trained on, in either order.
import type { Task } from './task.js';

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

  constructor(o: AdditionOptions = {}) {
    this.digits = o.digits ?? 2;
    this.heldOut = o.heldOut ?? 0.2;
    if (!Number.isInteger(this.digits) || this.digits < 1 || this.digits > 6)
      throw new RangeError(`AdditionTask: digits must be an integer in [1, 6], got ${this.digits}`);
    if (!(this.heldOut >= 0 && this.heldOut < 1))
      throw new RangeError(`AdditionTask: heldOut must lie in [0, 1), got ${this.heldOut}`);
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

  private draw(n: number, rand: () => number, heldOut: boolean): number[][] {
    const out: number[][] = [];
    while (out.length < n) {
      const a = Math.floor(rand() * (this.maxOperand + 1));
      const b = Math.floor(rand() * (this.maxOperand + 1));
      if (this.isHeldOut(a, b) === heldOut) out.push(AdditionTask.prompt(a, b));
    }
    return out;
  }
  /** Training prompts: uniform operand pairs outside the held-out split. */
  samplePrompts(n: number, rand: () => number): number[][] {
    return this.draw(n, rand, false);
  }
  /** Evaluation prompts: uniform operand pairs of the held-out split only. */
  heldOutPrompts(n: number, rand: () => number): number[][] {
    if (!(this.heldOut > 0))
      throw new RangeError('AdditionTask.heldOutPrompts: this task holds no prompts out (heldOut = 0)');
    return this.draw(n, rand, true);
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
