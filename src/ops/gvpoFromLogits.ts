// gvpoFromLogits: the fused drop-in (token log-probs, S, centering, loss, dL/dz), and its two
// phases for sharded batches: gvpoForward (logits -> S, logZ) and gvpoBackward (dL/dS -> dL/dz).
import { gvpoBackwardRef, gvpoForwardRef, gvpoFromLogitsRef } from '../reference/gvpoFromLogits.js';
import type {
  GvpoBackwardArgs,
  GvpoForwardArgs,
  GvpoForwardResult,
  GvpoFromLogitsArgs,
  GvpoFromLogitsResult,
} from '../types.js';
import { keepParts, partsOf, withParts } from './logZParts.js';
import { normalizeBackward, normalizeForward, normalizeFromLogits } from './normalize.js';
import { runAsync, runSync } from './run.js';

/** Forward, loss and gradient with respect to the logits in one call (two reads, one write). */
export function gvpoFromLogits(args: GvpoFromLogitsArgs): GvpoFromLogitsResult {
  const o = normalizeFromLogits(args);
  return runSync('gvpoFromLogits', o, () => gvpoFromLogitsRef(o));
}

export async function gvpoFromLogitsAsync(args: GvpoFromLogitsArgs): Promise<GvpoFromLogitsResult> {
  const o = normalizeFromLogits(args);
  return runAsync('gvpoFromLogits', o, () => gvpoFromLogitsRef(o));
}

/** Phase 1: S (and Sref) per sequence, token log-probs and logZ for phase 2 (which is exact when
 *  given this very logZ array: logZParts.ts). */
export function gvpoForward(args: GvpoForwardArgs): GvpoForwardResult {
  const o = normalizeForward(args);
  return keepParts(
    runSync('gvpoForward', { ...o, split: true }, () => gvpoForwardRef(o)),
    o.temperature,
  );
}

export async function gvpoForwardAsync(args: GvpoForwardArgs): Promise<GvpoForwardResult> {
  const o = normalizeForward(args);
  return keepParts(await runAsync('gvpoForward', { ...o, split: true }, () => gvpoForwardRef(o)), o.temperature);
}

/** Phase 2: dL/dS (from gvpoLoss, possibly over combined shards) to dL/dz. */
export function gvpoBackward(args: GvpoBackwardArgs): Float32Array {
  const o = normalizeBackward(args);
  const parts = partsOf(o.logZ, o.temperature);
  return runSync('gvpoBackward', withParts(o, parts), () => ({ gradLogits: gvpoBackwardRef(o, parts) })).gradLogits;
}

export async function gvpoBackwardAsync(args: GvpoBackwardArgs): Promise<Float32Array> {
  const o = normalizeBackward(args);
  const parts = partsOf(o.logZ, o.temperature);
  const r = await runAsync('gvpoBackward', withParts(o, parts), () => ({ gradLogits: gvpoBackwardRef(o, parts) }));
  return r.gradLogits;
}
