// Dispatch to the native addon or the TypeScript reference, sync or async. Async native
// errors surface on the libuv thread's completion, with no JavaScript frames of the caller; the
// caller's stack is captured before the call and grafted onto the error (sharp's pattern).
import { activeBackend, nativeAddon } from '../backend.js';
import { isDetached, typeError } from '../validate.js';

type NativeFn<R> = (opts: object) => R;

/** The addon's name for an op: its CUDA twin (cudaTokenLogprobs, cudaGvpoFromLogits) when the
 *  CUDA backend is active and has one, else the CPU op. */
function nativeName(op: string): string {
  const cuda = `cuda${op[0].toUpperCase()}${op.slice(1)}`;
  return activeBackend() === 'cuda' && typeof nativeAddon()?.[cuda] === 'function' ? cuda : op;
}

/** The normalized options' arrays are still live: a getter of the caller's options, run while
 *  they were read, may have detached an array checked before it. */
function checkLive(op: string, opts: object): void {
  for (const [name, v] of Object.entries(opts)) {
    if (ArrayBuffer.isView(v) && isDetached(v)) {
      typeError(
        op,
        name,
        'a typed array over a live (not detached) buffer (it was detached while the options were read)',
        v,
      );
    }
  }
}

export function runSync<R>(op: string, opts: object, reference: () => R): R {
  checkLive(op, opts);
  const addon = nativeAddon();
  if (!addon) return reference();
  return (addon[nativeName(op)] as NativeFn<R>)(opts);
}

export async function runAsync<R>(op: string, opts: object, reference: () => R): Promise<R> {
  const caller = new Error();
  checkLive(op, opts);
  const addon = nativeAddon();
  if (!addon) {
    // The reference runs on the main thread; yield once so the call is never synchronous.
    await new Promise((resolve) => setImmediate(resolve));
    // As the addon does (native/addon/baton.h): an input transferred meanwhile is not computed on.
    const moved = Object.entries(opts).find(([, v]) => ArrayBuffer.isView(v) && isDetached(v));
    if (moved)
      throw graft(
        new Error(`${moved[0]} was detached (transferred) while the call was running; the result is discarded`),
        caller,
      );
    return reference();
  }
  try {
    return await (addon[`${nativeName(op)}Async`] as NativeFn<Promise<R>>)(opts);
  } catch (e) {
    throw graft(e, caller);
  }
}

function graft(e: unknown, caller: Error): unknown {
  if (!(e instanceof Error)) return e;
  const Ctor = e instanceof RangeError ? RangeError : e instanceof TypeError ? TypeError : Error;
  const out = new Ctor(e.message);
  const frames = (caller.stack ?? '').split('\n').slice(1).join('\n');
  out.stack = `${Ctor.name}: ${e.message}\n${frames}`;
  return out;
}
