// Comparison helpers: elementwise |a - b| <= atol + rtol*|b|, NaN positions must match, infinities
// must match exactly. Reports the worst element, so a failure says where and by how much.
import { expect } from 'vitest';

export interface Tol {
  atol: number;
  rtol: number;
}

/** Tolerances per logits dtype for values of order 1 computed from those logits. */
export const TOL: Record<string, Tol> = {
  float32: { atol: 1e-5, rtol: 1e-5 },
  // Inputs are exact 16-bit values in both paths, so only float32 accumulation differs.
  bfloat16: { atol: 1e-5, rtol: 1e-5 },
  float16: { atol: 1e-5, rtol: 1e-5 },
};

export function allclose(got: ArrayLike<number>, want: ArrayLike<number>, tol: Tol, what = 'value'): void {
  expect(got.length, `${what}: length`).toBe(want.length);
  let worst = -1;
  let worstExcess = 0;
  for (let i = 0; i < want.length; i++) {
    const a = got[i];
    const b = want[i];
    if (Number.isNaN(b) || Number.isNaN(a)) {
      if (Number.isNaN(a) !== Number.isNaN(b)) throw new Error(`${what}[${i}]: got ${a}, want ${b} (NaN mismatch)`);
      continue;
    }
    if (!Number.isFinite(b) || !Number.isFinite(a)) {
      if (a !== b) throw new Error(`${what}[${i}]: got ${a}, want ${b}`);
      continue;
    }
    const excess = Math.abs(a - b) - (tol.atol + tol.rtol * Math.abs(b));
    if (excess > worstExcess) {
      worstExcess = excess;
      worst = i;
    }
  }
  if (worst >= 0) {
    throw new Error(`${what}[${worst}]: got ${got[worst]}, want ${want[worst]} (atol ${tol.atol}, rtol ${tol.rtol})`);
  }
}

/** ||a - b|| / ||b||: for gradients, where tiny entries make elementwise rtol meaningless. */
export function relErr(got: ArrayLike<number>, want: ArrayLike<number>): number {
  let e = 0;
  let n = 0;
  for (let i = 0; i < want.length; i++) {
    e += (got[i] - want[i]) ** 2;
    n += want[i] ** 2;
  }
  return Math.sqrt(e) / Math.max(Math.sqrt(n), 1e-6);
}

/** Gradient check: relative error below rtol, or (for a gradient that is zero up to rounding) every
 *  element within atol. */
export function gradClose(got: ArrayLike<number>, want: ArrayLike<number>, rtol = 1e-5, atol = 1e-6): void {
  const rel = relErr(got, want);
  if (rel < rtol) return;
  let worst = 0;
  for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(got[i] - want[i]));
  if (!(worst <= atol))
    throw new Error(`gradient: relative error ${rel} (> ${rtol}), max abs diff ${worst} (> ${atol})`);
}
