// A hostile realm, on every backend and instruction set (in child processes, since it writes to
// Object.prototype and Array.prototype: test/helpers/pollution-worker.mjs):
// - names put on Object.prototype reached the kernels and the TypeScript reference through the
//   normalized options' optional fields (referenceLogprobs changed the loss with no error, rowMax
//   and rowLse a backward's gradient); no answer may change;
// - a plain array whose element getter shrinks or appends to it after its length was checked gave
//   the TypeScript backend NaN losses or 7 rewards for 4 sequences;
// - logits over a growable SharedArrayBuffer grown after their check gave the TypeScript backend a
//   gradient of the grown length;
// - toHalf read a hole through Array.prototype.
import { describe, expect, it } from 'vitest';
import { backendConfigs, workerAnswers } from './helpers/backends.js';

interface Answers {
  backend: string;
  polluted: Record<string, string[]>;
  lengths: Record<string, { got: string; checked: string }>;
  grown: string;
  hole: string;
}

const answersOf = (env: Record<string, string>) => workerAnswers<Answers>('test/helpers/pollution-worker.mjs', env);

describe('a hostile realm', () => {
  for (const env of backendConfigs()) {
    const label = Object.entries(env)
      .map(([k, v]) => `${k}=${v}`)
      .join(' ');
    it(`${label}: Object.prototype holds no options, arrays keep their checked length, toHalf reads no prototype`, () => {
      const a = answersOf(env);
      expect(Object.keys(a.polluted).length).toBeGreaterThan(30);
      for (const [name, changed] of Object.entries(a.polluted))
        expect({ name, changed }).toEqual({ name, changed: [] });
      // shrunk: the elements past the new length are holes, refused by name; appended: the call
      // takes the elements it checked, as it would the array [1, 0, 1, 0]
      expect(a.lengths['gvpoLoss rewards shrunk'].got).toBe(
        'TypeError: gvpoLoss: rewards[2] must be a number, got undefined',
      );
      expect(a.lengths['groupCenter values shrunk'].got).toBe(
        'TypeError: groupCenter: values[2] must be a number, got undefined',
      );
      for (const name of [
        'gvpoLoss rewards appended',
        'gvpoFromLogits rewards appended',
        'gvpoBackward gradLogprobs appended',
        'groupCenter values appended',
      ]) {
        const { got, checked } = a.lengths[name];
        expect(checked).not.toMatch(/Error/);
        expect({ name, got }).toEqual({ name, got: checked });
      }
      expect(a.grown).toMatch(/^RangeError: gvpoFromLogits: logits must be of length .*40, got length 80/);
      expect(a.hole).toBe('TypeError: toHalf: values[0] must be a number, got undefined');
    });
  }
});
