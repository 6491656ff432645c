// 16-bit float bit patterns <-> numbers. bfloat16 is the top half of a float32; float16 is
// IEEE binary16. Encoders round to nearest even.

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

export function bfloat16ToNumber(h: number): number {
  u32[0] = h << 16;
  return f32[0];
}

export function float16ToNumber(h: number): number {
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  const v = e === 0 ? m * 2 ** -24 : e === 31 ? (m ? NaN : Infinity) : (1 + m / 1024) * 2 ** (e - 15);
  return h & 0x8000 ? -v : v;
}

export function numberToBfloat16(x: number): number {
  if (Number.isNaN(x)) return 0x7fc0;
  f32[0] = x;
  const b = u32[0];
  // A number that is not a float32 is rounded once, not twice: where its float32 rounding landed
  // exactly halfway between two bfloat16 values, the number itself says which side it is on.
  if ((b & 0xffff) === 0x8000 && f32[0] !== x && Number.isFinite(f32[0])) {
    return (Math.abs(x) > Math.abs(f32[0]) ? (b >>> 16) + 1 : b >>> 16) & 0xffff;
  }
  return ((b + 0x7fff + ((b >>> 16) & 1)) >>> 16) & 0xffff;
}

export function numberToFloat16(x: number): number {
  if (Number.isNaN(x)) return 0x7e00;
  const sign = x < 0 || Object.is(x, -0) ? 0x8000 : 0;
  let a = Math.abs(x);
  if (a >= 65520) return sign | 0x7c00; // rounds to infinity
  if (a < 2 ** -14) {
    // subnormal: units of 2^-24, round half to even
    const q = a / 2 ** -24;
    let n = Math.floor(q);
    const rest = q - n;
    if (rest > 0.5 || (rest === 0.5 && n & 1)) n++;
    return sign | n;
  }
  let e = Math.floor(Math.log2(a));
  if (2 ** e > a) e--;
  if (2 ** (e + 1) <= a) e++;
  const q = (a / 2 ** e - 1) * 1024;
  let m = Math.floor(q);
  const rest = q - m;
  if (rest > 0.5 || (rest === 0.5 && m & 1)) m++;
  if (m === 1024) {
    m = 0;
    e++;
  }
  a = 0;
  return sign | ((e + 15) << 10) | m;
}

/** Encode numbers as 16-bit bit patterns (unchecked: the public toHalf in src/ops/half.ts checks). */
export function encodeHalf(values: ArrayLike<number>, dtype: 'bfloat16' | 'float16'): Uint16Array {
  const enc = dtype === 'bfloat16' ? numberToBfloat16 : numberToFloat16;
  const out = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = enc(values[i]);
  return out;
}

/** Decode 16-bit bit patterns to a Float32Array (exact: every bfloat16/float16 is a float32). */
export function decodeHalf(bits: Uint16Array, dtype: 'bfloat16' | 'float16'): Float32Array {
  const dec = dtype === 'bfloat16' ? bfloat16ToNumber : float16ToNumber;
  const out = new Float32Array(bits.length);
  for (let i = 0; i < bits.length; i++) out[i] = dec(bits[i]);
  return out;
}

/** Element reader for any logits dtype. */
export function reader(logits: Float32Array | Uint16Array, dtype: string): (i: number) => number {
  if (dtype === 'float32') return (i) => (logits as Float32Array)[i];
  const dec = dtype === 'bfloat16' ? bfloat16ToNumber : float16ToNumber;
  return (i) => dec(logits[i]);
}

/** Whether x is finite once returned in float32 (past float32's range it is +-inf there). */
export function finite32(x: number): boolean {
  return Number.isFinite(Math.fround(x));
}

/** The largest float32 at or below x (x > 0, finite): a bound such as log V that a float32 result
 *  must not pass, which rounding to nearest could. */
export function float32Below(x: number): number {
  const f = Math.fround(x);
  if (f <= x) return f;
  const bits = new Uint32Array(Float32Array.of(f).buffer);
  bits[0] -= 1;
  return new Float32Array(bits.buffer)[0];
}
