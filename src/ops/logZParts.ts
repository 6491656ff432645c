// Each row's exact parts of its log-normalizer, logZ = max/tau + lse, carried from a two-phase
// op's forward to its backward. logZ is returned in float32, which holds it to |logZ| 2^-24 only:
// where z/tau runs into the thousands, or a target's 1 - p is below that, a backward that takes
// p = exp(z/tau - logZ) is off by as much, and the target's gradient c (1 - p) most of all (a row
// of logits [1000, 999.99, 3] at tau 0.01 gave 26.838 where it is 26.875). The fused ops keep the
// parts between their phases; the two-phase ops keep them here, beside the logZ array the forward
// returned (a WeakMap: nothing for the caller to hold or free), with a copy of that logZ and the
// temperature. A backward given the same array at the same temperature takes its exponent
// (z - max)/tau - lse from the parts, on every row whose value is unchanged; an edited row, another
// temperature, and any other logZ (a copy, one from another process), give it z/tau - logZ. The map
// is one per process, not per copy of this module: a forward imported from the ES build and a
// backward required from the CommonJS one see the same parts.
import { activeBackend } from '../backend.js';

export interface LogZParts {
  /** Each row's largest logit, in the logits' own units (0 on masked rows). */
  rowMax: Float32Array | Float64Array;
  /** Each row's log sum_v exp((z - max)/tau) (logZ itself where logZ is not finite). */
  rowLse: Float32Array | Float64Array;
}

interface Kept extends LogZParts {
  logZ: Uint32Array; // the bits the forward returned
  backend: string; // the parts' kind is the backend's (float32 native, float64 TypeScript)
  temperature: number; // max and lse are of z/tau at the forward's tau only
}

const KEY = Symbol.for('gvpo.logZParts');
const shared = globalThis as { [KEY]?: WeakMap<Float32Array, Kept> };
const kept = (shared[KEY] ??= new WeakMap<Float32Array, Kept>());

/** A forward's result without its parts, which are kept beside its logZ. A row whose float32 logZ
 *  is not finite keeps logZ itself as its parts (max 0, lse = logZ), so that its backward is NaN
 *  as the forward's l is: its max and lse can be finite where max/tau + lse overflowed. */
export function keepParts<R extends { logZ: Float32Array }>(result: R, temperature: number): R {
  const { rowMax, rowLse, ...rest } = result as R & Partial<LogZParts>;
  if (rowMax && rowLse) {
    const logZ = result.logZ;
    for (let r = 0; r < logZ.length; r++) {
      if (Number.isFinite(logZ[r])) continue;
      rowMax[r] = 0;
      rowLse[r] = logZ[r];
    }
    const bits = new Uint32Array(logZ.buffer, logZ.byteOffset, logZ.length);
    kept.set(logZ, { rowMax, rowLse, logZ: bits.slice(), backend: activeBackend(), temperature });
  }
  return rest as unknown as R;
}

/** The parts kept for `logZ`, when a forward of this backend at this temperature returned this
 *  very array; a row whose value has changed since gets parts that say logZ alone (max 0,
 *  lse = logZ). */
export function partsOf(logZ: Float32Array, temperature: number): LogZParts | undefined {
  const k = kept.get(logZ);
  if (!k || k.backend !== activeBackend() || k.temperature !== temperature) return undefined;
  if (k.logZ.length !== logZ.length) return undefined;
  const bits = new Uint32Array(logZ.buffer, logZ.byteOffset, logZ.length);
  let parts: LogZParts = k;
  for (let r = 0; r < bits.length; r++) {
    if (bits[r] === k.logZ[r]) continue;
    if (parts === k) parts = { rowMax: k.rowMax.slice(), rowLse: k.rowLse.slice() };
    parts.rowMax[r] = 0;
    parts.rowLse[r] = logZ[r];
  }
  return parts;
}

/** The backward's options to the addon: with the parts (rowMax, rowLse) when there are. */
export function withParts<O extends object>(o: O, parts: LogZParts | undefined): O {
  return parts ? { ...o, rowMax: parts.rowMax, rowLse: parts.rowLse } : o;
}
