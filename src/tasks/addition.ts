// Two-digit addition as a verifiable text task: the prompt "37+45=" as characters, the response
// the sum's digits then EOS. Reward: the fraction of the answer's positions (digits and EOS) that
// are right, so 1 exactly for the right digits; exact-match accuracy is reported separately.
import type { Task } from './task.js';

export const DIGITS = 10;
export const PLUS = 10;
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
    let right = 0;
    for (let i = 0; i < want.length; i++) right += response[i] === want[i] ? 1 : 0;
    // a longer response than the answer is wrong past its end
    return right / Math.max(want.length, response.length);
  }
  decode(tokens: number[]): string {
    return tokens.map((t) => CHARS[t] ?? '?').join('');
  }
}
