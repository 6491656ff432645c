// The row parts of logZ that a two-phase op's forward keeps for its backward: used only by a
// backward at the forward's temperature, on the forward's own array; seen by both module builds.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import {
  gvpoBackward,
  gvpoForward,
  gvpoFromHiddenBackward,
  gvpoFromHiddenForward,
  tokenLogprobs,
  tokenLogprobsBackward,
  tokenLogprobsFromHidden,
  tokenLogprobsFromHiddenBackward,
} from '../src/index.js';
import { lossBetweenPhases } from './helpers/phases.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const bits = (a: Float32Array) => Array.from(new Uint32Array(a.buffer, a.byteOffset, a.length));

// Two rows of three logits; the hidden forms take them as H = 1 heads (logit = hidden * weight).
const rows = {
  logits: Float32Array.from([2, 0, 1, 0, 3, -1]),
  targets: Int32Array.from([0, 1]),
  rows: 2,
  vocab: 3,
};
const head = {
  hidden: Float32Array.from([2, -1]),
  weight: Float32Array.from([1, 0, 0.5]),
  targets: Int32Array.from([0, 1]),
  rows: 2,
  hiddenSize: 1,
  vocab: 3,
};
const batch = {
  rewards: [1, 0],
  groups: { size: 2 },
  beta: 0.5,
  mask: Float32Array.from([1, 1]),
  sequences: 2,
  tokens: 1,
};

// A row whose z/tau is near 1e5, and its target's exact gradient (1 - p)/tau, p = 1/(1 + e^-d).
const TIGHT = {
  logits: Float32Array.from([1000, 999.99, 3]),
  targets: Int32Array.from([0]),
  rows: 1,
  vocab: 3,
  temperature: 0.01,
};
const TIGHT_GRAD = (1 - 1 / (1 + Math.exp(-(1000 - Math.fround(999.99)) / 0.01))) / 0.01;

describe('a backward at another temperature than its forward', () => {
  // The parts are max and lse of z/tau at the forward's tau: a backward at tau' given the
  // forward's own logZ array took (z - max)/tau' - lse, an order-1 error (0.67 where a copy of
  // logZ gave 0 on row 0's target). It must compute what it computes from a copy: z/tau' - logZ.
  const TAUS: Array<[number, number]> = [
    [1, 0.5],
    [0.5, 1],
    [1, 2],
  ];
  for (const [tau, tau2] of TAUS) {
    it(`forward at ${tau}, backward at ${tau2}: the forward's own array gives what a copy gives`, () => {
      const grad = Float32Array.from([1, 1]);
      const tl = tokenLogprobs({ ...rows, temperature: tau }).logZ;
      const b = { ...rows, temperature: tau2, gradTokenLogprobs: grad };
      expect(bits(tokenLogprobsBackward({ ...b, logZ: tl }))).toEqual(
        bits(tokenLogprobsBackward({ ...b, logZ: tl.slice() })),
      );

      const hl = tokenLogprobsFromHidden({ ...head, temperature: tau }).logZ;
      const hb = { ...head, temperature: tau2, gradTokenLogprobs: grad };
      const hOwn = tokenLogprobsFromHiddenBackward({ ...hb, logZ: hl });
      const hCopy = tokenLogprobsFromHiddenBackward({ ...hb, logZ: hl.slice() });
      expect(bits(hOwn.gradWeight)).toEqual(bits(hCopy.gradWeight));
      expect(bits(hOwn.gradHidden)).toEqual(bits(hCopy.gradHidden));

      const g = { ...rows, ...batch, temperature: tau };
      delete (g as { rows?: number }).rows;
      const gf = gvpoForward(g);
      const gl = lossBetweenPhases(gf, g).gradLogprobs;
      const gb = { ...g, temperature: tau2, gradLogprobs: gl };
      expect(bits(gvpoBackward({ ...gb, logZ: gf.logZ }))).toEqual(
        bits(gvpoBackward({ ...gb, logZ: gf.logZ.slice() })),
      );

      const f = { ...head, ...batch, temperature: tau };
      delete (f as { rows?: number }).rows;
      const ff = gvpoFromHiddenForward(f);
      const fl = lossBetweenPhases(ff, f).gradLogprobs;
      const fb = { ...f, temperature: tau2, gradLogprobs: fl };
      const fOwn = gvpoFromHiddenBackward({ ...fb, logZ: ff.logZ });
      const fCopy = gvpoFromHiddenBackward({ ...fb, logZ: ff.logZ.slice() });
      expect(bits(fOwn.gradWeight)).toEqual(bits(fCopy.gradWeight));
      expect(bits(fOwn.gradHidden)).toEqual(bits(fCopy.gradHidden));
    });
  }

  it('at the same temperature the parts are still used (the exact gradient, not the copy)', () => {
    // z/tau near 1e5: logZ's float32 rounding moves p by 1e-3, so a copy of logZ is that far off
    const a = { ...TIGHT, gradTokenLogprobs: Float32Array.from([1]) };
    const logZ = tokenLogprobs(TIGHT).logZ;
    expect(tokenLogprobsBackward({ ...a, logZ })[0]).toBeCloseTo(TIGHT_GRAD, 4);
    expect(Math.abs(tokenLogprobsBackward({ ...a, logZ: logZ.slice() })[0] - TIGHT_GRAD)).toBeGreaterThan(1e-2);
  });
});

describe('the two module builds', () => {
  it.skipIf(!existsSync(join(root, 'dist', 'cjs', 'index.js')))(
    'a forward from the ES build and a backward from the CommonJS build share the parts',
    () => {
      const script = `
        import { createRequire } from 'node:module';
        import { tokenLogprobs } from ${JSON.stringify(join(root, 'dist', 'index.js'))};
        const cjs = createRequire(import.meta.url)(${JSON.stringify(join(root, 'dist', 'cjs', 'index.js'))});
        const a = ${JSON.stringify({ ...TIGHT, logits: Array.from(TIGHT.logits), targets: [0] })};
        a.logits = Float32Array.from(a.logits);
        a.targets = Int32Array.from(a.targets);
        const logZ = tokenLogprobs(a).logZ;
        const b = { ...a, gradTokenLogprobs: Float32Array.from([1]) };
        console.log(JSON.stringify([cjs.tokenLogprobsBackward({ ...b, logZ })[0], cjs.tokenLogprobsBackward({ ...b, logZ: logZ.slice() })[0]]));
      `;
      const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], {
        cwd: root,
        encoding: 'utf8',
      });
      const [own, copy] = JSON.parse(out.trim()) as [number, number];
      expect(own).toBeCloseTo(TIGHT_GRAD, 4);
      expect(Math.abs(copy - TIGHT_GRAD)).toBeGreaterThan(1e-2);
    },
  );
});
