// gvpoFromHidden: the fused LM head. The logits z = hidden * weight^T are never materialized
// (the native kernel computes them one tile at a time); then everything of gvpoFromLogits, with
// gradients for the hidden states and the head's weight. Its two phases for sharded batches:
// gvpoFromHiddenForward (-> S, logZ) and gvpoFromHiddenBackward (dL/dS -> dL/dhidden, dL/dweight).
import { gvpoFromHiddenBackwardRef, gvpoFromHiddenForwardRef, gvpoFromHiddenRef } from '../reference/gvpoFromHidden.js';
import type {
  GvpoFromHiddenArgs,
  GvpoFromHiddenBackwardArgs,
  GvpoFromHiddenForwardArgs,
  GvpoFromHiddenForwardResult,
  GvpoFromHiddenGrads,
  GvpoFromHiddenResult,
} from '../types.js';
import { keepParts, partsOf, withParts } from './logZParts.js';
import { normalizeFromHidden, normalizeHiddenBackward, normalizeHiddenForward } from './normalize.js';
import { runAsync, runSync } from './run.js';

/** Loss, dL/dhidden and dL/dweight in one call, the logits never held whole. */
export function gvpoFromHidden(args: GvpoFromHiddenArgs): GvpoFromHiddenResult {
  const o = normalizeFromHidden(args);
  return runSync('gvpoFromHidden', o, () => gvpoFromHiddenRef(o));
}

export async function gvpoFromHiddenAsync(args: GvpoFromHiddenArgs): Promise<GvpoFromHiddenResult> {
  const o = normalizeFromHidden(args);
  return runAsync('gvpoFromHidden', o, () => gvpoFromHiddenRef(o));
}

/** Phase 1: S (and Sref) per sequence, token log-probs and logZ for phase 2 (which is exact when
 *  given this very logZ array: logZParts.ts). */
export function gvpoFromHiddenForward(args: GvpoFromHiddenForwardArgs): GvpoFromHiddenForwardResult {
  const o = normalizeHiddenForward(args);
  return keepParts(
    runSync('gvpoFromHiddenForward', { ...o, split: true }, () => gvpoFromHiddenForwardRef(o)),
    o.temperature,
  );
}

export async function gvpoFromHiddenForwardAsync(
  args: GvpoFromHiddenForwardArgs,
): Promise<GvpoFromHiddenForwardResult> {
  const o = normalizeHiddenForward(args);
  return keepParts(
    await runAsync('gvpoFromHiddenForward', { ...o, split: true }, () => gvpoFromHiddenForwardRef(o)),
    o.temperature,
  );
}

/** Phase 2: dL/dS (from gvpoLoss, possibly over combined shards) to dL/dhidden and dL/dweight. */
export function gvpoFromHiddenBackward(args: GvpoFromHiddenBackwardArgs): GvpoFromHiddenGrads {
  const o = normalizeHiddenBackward(args);
  const parts = partsOf(o.logZ, o.temperature);
  return runSync('gvpoFromHiddenBackward', withParts(o, parts), () => gvpoFromHiddenBackwardRef(o, parts));
}

export async function gvpoFromHiddenBackwardAsync(args: GvpoFromHiddenBackwardArgs): Promise<GvpoFromHiddenGrads> {
  const o = normalizeHiddenBackward(args);
  const parts = partsOf(o.logZ, o.temperature);
  return runAsync('gvpoFromHiddenBackward', withParts(o, parts), () => gvpoFromHiddenBackwardRef(o, parts));
}
