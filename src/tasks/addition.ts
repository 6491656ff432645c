// Two-digit addition as a verifiable text task: the prompt "37+45=" as characters, the response
// the sum's digits then EOS; reward 1 for exactly the right digits, else 0. (A per-digit partial
// credit was tried: it raised the reward while greedy exact-match fell; bench/NOTES.md.)
import type { Task } from './task.js';

export const PLUS = 10; // tokens 0-9 are the digits
export const EQUALS = 11;
export const EOS = 12;
export const PAD = 13;
export const ADDITION_VOCAB = 14;

const CHARS = '0123456789+=$_';

export class AdditionTask implements Task {
  readonly name = 'addition';
  readonly vocab = ADDITION_VOCAB;
  readonly maxTokens = 4; // up to 3 digits (99+99=198) and EOS
  constructor(readonly maxOperand = 99) {}

  static prompt(a: number, b: number): number[] {
    return [...`${a}+${b}=`].map((c) => CHARS.indexOf(c));
  }
  samplePrompts(n: number, rand: () => number): number[][] {
    return Array.from({ length: n }, () =>
      AdditionTask.prompt(Math.floor(rand() * (this.maxOperand + 1)), Math.floor(rand() * (this.maxOperand + 1))));
  }
  answer(prompt: number[]): number[] {
    const s = this.decode(prompt);
    const [a, b] = s.slice(0, -1).split('+').map(Number);
    return [...String(a + b)].map((c) => CHARS.indexOf(c)).concat(EOS);
  }
  reward(prompt: number[], response: number[]): number {
    const want = this.answer(prompt);
    return want.length === response.length && want.every((t, i) => t === response[i]) ? 1 : 0;
  }
  decode(tokens: number[]): string {
    return tokens.map((t) => CHARS[t] ?? '?').join('');
  }
}
