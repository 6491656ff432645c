// toHalf / fromHalf: float32 values <-> bfloat16 or float16 bit patterns (Uint16Array), the form
// 16-bit logits take. Checked like every entry point: the wrong dtype name or the wrong kind of
// array is refused rather than silently encoded or reinterpreted.
import { types } from 'node:util';
import { decodeHalf, encodeHalf } from '../reference/dtype.js';
import { describe, isKind, rangeError, typed, typeError } from '../validate.js';

type HalfDType = 'bfloat16' | 'float16';

function halfDtype(fn: string, v: unknown): HalfDType {
  if (v === 'bfloat16' || v === 'float16') return v;
  if (typeof v !== 'string') typeError(fn, 'dtype', "'bfloat16' | 'float16'", v);
  return rangeError(fn, 'dtype', "'bfloat16' | 'float16'", describe(v));
}

/** Round float32 values (or finite or non-finite numbers) to 16-bit bit patterns, to nearest even. */
export function toHalf(values: Float32Array | Float64Array | number[], dtype: HalfDType): Uint16Array {
  const fn = 'toHalf';
  const d = halfDtype(fn, dtype);
  // isProxy first: Array.isArray throws on a revoked Proxy
  const ok =
    isKind(values, Float32Array) || isKind(values, Float64Array) || (!types.isProxy(values) && Array.isArray(values));
  if (!ok) typeError(fn, 'values', 'a Float32Array, Float64Array or number[]', values);
  if (!Array.isArray(values)) {
    typed(fn, 'values', values, isKind(values, Float32Array) ? Float32Array : Float64Array); // not detached
    return encodeHalf(values, d);
  }
  // A sparse array may claim up to 2^32 - 1 elements: no typed array that long is made.
  if (values.length > 2147483647) rangeError(fn, 'values', 'at most 2147483647 numbers', `length ${values.length}`);
  // Each element read once (a getter cannot change it between the check and the encoding); a hole
  // reads as undefined, not as what Array.prototype holds at its index, and is refused like any
  // other non-number.
  const copy = new Float64Array(values.length);
  for (let i = 0; i < copy.length; i++) {
    const x: unknown = Object.prototype.hasOwnProperty.call(values, i) ? values[i] : undefined;
    if (typeof x !== 'number') typeError(fn, `values[${i}]`, 'a number', x);
    copy[i] = x;
  }
  return encodeHalf(copy, d);
}

/** Decode 16-bit bit patterns (a Uint16Array) to float32, exactly. */
export function fromHalf(bits: Uint16Array, dtype: HalfDType): Float32Array {
  const fn = 'fromHalf';
  const d = halfDtype(fn, dtype);
  return decodeHalf(typed(fn, 'bits', bits, Uint16Array), d);
}
