// A row's gradient depends on its own inputs only, on every backend and instruction set (each in a
// child process, test/helpers/rows-worker.mjs): one sequence's dL/dS past float32's range (GVPO at
// a huge beta) once made the fused head's scaling flush every other row's dL/dhidden to 0, and a
// NaN target logit between the forward and the backward gave a gradient of -0 where the
// TypeScript backend gave NaN.
import { describe, expect, it } from 'vitest';
import { backendConfigs, workerAnswers } from './helpers/backends.js';

type Value = number | string;
interface Answers {
  backend: string;
  simd: string;
  cases: Array<{ name: string; values: Value[] }>;
}

const answers = (env: Record<string, string>) => workerAnswers<Answers>('test/helpers/rows-worker.mjs', env);

const H = 4;
const num = (v: Value) => (typeof v === 'string' ? Number(v) : v);
const byName = (a: Answers) => new Map(a.cases.map((c) => [c.name, c.values.map(num)]));

/** Finite values within tol of want's largest finite magnitude; non-finite ones the same. */
function close(got: number[], want: number[], tol: number, what: string): void {
  expect(got.length, what).toBe(want.length);
  const scale = Math.max(...want.filter(Number.isFinite).map(Math.abs), 1e-30);
  got.forEach((x, i) => {
    if (!Number.isFinite(want[i])) expect(String(x), `${what} [${i}]`).toBe(String(want[i]));
    else expect(Math.abs(x - want[i]), `${what} [${i}]: ${x} vs ${want[i]}`).toBeLessThanOrEqual(tol * scale);
  });
}

const reference = answers({ GVPO_BACKEND: 'js' });

describe('a row of a gradient depends on its own inputs only', () => {
  for (const env of backendConfigs()) {
    const label = Object.entries(env)
      .map(([k, v]) => `${k}=${v}`)
      .join(' ');
    // one child process per configuration, shared by its two tests
    let cached: Map<string, number[]> | undefined;
    const mine = () => (cached ??= byName(answers(env)));
    it(`${label}: the head's other rows at any upstream of row 0`, () => {
      const got = mine();
      const want = byName(reference);
      for (const [op, key] of [
        ['gvpoFromHiddenBackward', 'dL/dS0'],
        ['tokenLogprobsFromHiddenBackward', 'g0'],
      ] as const) {
        const base = got.get(`${op} dH, ${key} = 0`)!;
        for (const [name, dH] of got) {
          if (!name.startsWith(`${op} dH`)) continue;
          // rows 1 and 2: what they are when row 0's upstream is 0 (they were flushed to 0)
          close(dH.slice(H), base.slice(H), 1e-6, `${label} ${name}, rows 1-2`);
          expect(dH.slice(H).every(Number.isFinite), name).toBe(true);
          // and every element, dW included, as the float64-accumulating TypeScript backend gives it
          close(dH, want.get(name)!, 1e-5, `${label} ${name}`);
          const dW = name.replace(' dH', ' dW');
          close(got.get(dW)!, want.get(dW)!, 1e-5, `${label} ${dW}`);
        }
      }
    });
    it(`${label}: a NaN logit, at the target or elsewhere, gives NaN there and nowhere else`, () => {
      const got = mine();
      const want = byName(reference);
      let seen = 0;
      for (const [name, grad] of got) {
        const at = /NaN at (\d)/.exec(name);
        if (!at) continue;
        // NaN at the element that was NaN and nowhere else; the rest as the TypeScript backend's
        grad.forEach((x, i) => expect(Number.isNaN(x), `${label} ${name} [${i}] = ${x}`).toBe(i === Number(at[1])));
        close(grad, want.get(name)!, 1e-6, `${label} ${name}`);
        seen++;
      }
      expect(seen, 'cases with a NaN logit').toBe(6);
    });
  }
});
