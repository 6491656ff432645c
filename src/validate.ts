// Argument checks shared by every op, before any work (docs/DESIGN.md, "Bad input"). This layer
// owns every rule and every message: "<fn>: <field> must be <expected>, got <what came>". The
// native addon re-checks only what addresses memory. Checks never modify inputs; normalization
// (mask to Float32Array, groups to offsets) makes copies. Typed arrays are recognized by their
// internal kind (node:util types), so arrays from another realm (a vm context, a worker) pass
// and a Proxy around one does not reach native code.
import { types } from 'node:util';
import type { DType, FloatArray, MaskLike, NumbersLike, Reduction } from './types.js';

const TYPED_NAMES = new Set([
  'Int8Array',
  'Uint8Array',
  'Uint8ClampedArray',
  'Int16Array',
  'Uint16Array',
  'Int32Array',
  'Uint32Array',
  'Float32Array',
  'Float64Array',
  'BigInt64Array',
  'BigUint64Array',
]);

// %TypedArray%.prototype[Symbol.toStringTag]: the kind name of any typed array (of any realm).
const TYPED_ARRAY_TAG = Object.getOwnPropertyDescriptor(
  Object.getPrototypeOf(Uint8Array.prototype) as object,
  Symbol.toStringTag,
)!.get!;

export function describe(v: unknown): string {
  if (types.isProxy(v)) return 'a Proxy';
  if (v === undefined) return 'undefined';
  if (v === null) return 'null';
  if (typeof v === 'number') return String(v);
  if (typeof v === 'string') return `'${v}'`;
  if (typeof v === 'boolean') return String(v);
  if (typeof v === 'symbol') return v.toString();
  if (ArrayBuffer.isView(v)) {
    if (types.isDataView(v)) return 'DataView';
    // the kind its internal slots say (of any realm), and the class when it is another (a Buffer)
    const kind = TYPED_ARRAY_TAG.call(v) as string;
    const name: unknown = v.constructor?.name;
    if (typeof name !== 'string' || name === '' || name === kind || TYPED_NAMES.has(name)) return kind;
    return `${name} (${article(kind)})`;
  }
  if (Array.isArray(v)) return 'Array';
  if (typeof v === 'function') return 'function';
  return typeof v === 'bigint' ? `${v}n` : 'object';
}

export function typeError(fn: string, name: string, expected: string, got: unknown): never {
  throw new TypeError(`${fn}: ${name} must be ${expected}, got ${describe(got)}`);
}
export function rangeError(fn: string, name: string, expected: string, got: string): never {
  throw new RangeError(`${fn}: ${name} must be ${expected}, got ${got}`);
}

/** An options object whose every key is one of `known`: a typo such as `temprature` is refused
 *  with the closest known name rather than silently ignored. */
export function checkOptions(
  fn: string,
  opts: unknown,
  known: readonly string[],
  aliases: Readonly<Record<string, string>> = {},
): asserts opts is Record<string, unknown> {
  // isProxy first: Array.isArray throws on a revoked Proxy
  if (typeof opts !== 'object' || opts === null || types.isProxy(opts) || Array.isArray(opts)) {
    throw new TypeError(`${fn}: options must be an object, got ${describe(opts)}`);
  }
  for (const key of optionKeys(opts)) {
    if (!known.includes(key)) {
      const near = Object.hasOwn(aliases, key) ? aliases[key] : closest(key, known);
      throw new TypeError(`${fn}: options has no field '${key}' (did you mean '${near}'?)`);
    }
  }
}

// Object.prototype (of this realm or another) holds no options: a name put there (prototype
// pollution, `Object.prototype.inPlace = true`) would otherwise reach every call. It is the end
// of a chain that has the `__proto__` accessor of its own (a null-prototype object of the
// caller's does not, and its options count).
function isChainRoot(o: object): boolean {
  return Object.getPrototypeOf(o) === null && Object.getOwnPropertyDescriptor(o, '__proto__')?.get !== undefined;
}

/** The option names an object gives: its own (enumerable or not), and those it inherits short of
 *  Object.prototype, enumerable or accessors (a class's getters; not its methods or constructor). */
export function optionKeys(opts: object): string[] {
  const keys = new Set(Object.getOwnPropertyNames(opts));
  for (
    let p = Object.getPrototypeOf(opts) as object | null;
    p !== null && !isChainRoot(p);
    p = Object.getPrototypeOf(p)
  ) {
    for (const [key, d] of Object.entries(Object.getOwnPropertyDescriptors(p))) {
      if (d.enumerable || d.get !== undefined || d.set !== undefined) keys.add(key);
    }
  }
  return [...keys];
}

/** Whether `key` is the caller's (own, or from a prototype short of the chain's root). */
function givenOption(opts: object, key: string): boolean {
  for (let p: object | null = opts; p !== null; p = Object.getPrototypeOf(p)) {
    if (Object.prototype.hasOwnProperty.call(p, key)) return p === opts || !isChainRoot(p);
  }
  return false;
}

/** The known options an object gives (own, or its class's; never Object.prototype's), each read
 *  once, into an object that inherits nothing. */
export function readOptions(opts: object, known: readonly string[]): Record<string, unknown> {
  const s: Record<string, unknown> = Object.create(null) as Record<string, unknown>;
  for (const key of known) if (givenOption(opts, key)) s[key] = (opts as Record<string, unknown>)[key];
  return s;
}

/** A normalized options object with no prototype: the backends read an option that
 *  normalization left out (an optional array) as absent, never as a name put on Object.prototype
 *  (prototype pollution). */
export function plain<T extends object>(o: T): T {
  return Object.assign(Object.create(null) as T, o);
}

/**
 * The options checked (checkOptions) and read once each: a plain object holding every known
 * option the caller gave (own or inherited short of Object.prototype, enumerable or not), so that
 * every later rule sees the same values the kernels get (a getter returning a different array on
 * its second read cannot slip past a check). `groups` is read once the same way.
 */
export function snapshot(fn: string, opts: unknown, known: readonly string[]): Record<string, unknown> {
  checkOptions(fn, opts, known);
  const s: Record<string, unknown> = Object.create(null) as Record<string, unknown>; // inherits nothing
  for (const key of known) {
    if (!givenOption(opts, key)) continue;
    const v = opts[key];
    if (v !== undefined) s[key] = key === 'groups' ? groupsSnapshot(v) : v;
  }
  return s;
}

function groupsSnapshot(g: unknown): unknown {
  if (typeof g !== 'object' || g === null || types.isProxy(g) || Array.isArray(g)) return g;
  const s: Record<string, unknown> = Object.create(null) as Record<string, unknown>; // inherits nothing
  for (const key of Object.keys(g)) s[key] = (g as Record<string, unknown>)[key];
  for (const key of optionKeys(g)) if (!(key in s) && key !== 'size' && key !== 'offsets') s[key] = undefined; // named, refused later
  for (const key of ['size', 'offsets']) {
    if (!(key in s) && givenOption(g, key)) {
      const v = (g as Record<string, unknown>)[key];
      if (v !== undefined) s[key] = v;
    }
  }
  return s;
}

/** The known name nearest to `key` in edit distance. */
export function closest(key: string, known: readonly string[]): string {
  let best = known[0],
    bestD = Infinity;
  for (const k of known) {
    const d = editDistance(key.toLowerCase(), k.toLowerCase());
    if (d < bestD) [best, bestD] = [k, d];
  }
  return best;
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = cur;
  }
  return prev[b.length];
}

type TypedCtor =
  | Float32ArrayConstructor
  | Float64ArrayConstructor
  | Int32ArrayConstructor
  | Uint16ArrayConstructor
  | Uint8ArrayConstructor;

const IS_KIND = new Map<TypedCtor, (v: unknown) => boolean>([
  [Float32Array, types.isFloat32Array],
  [Float64Array, types.isFloat64Array],
  [Int32Array, types.isInt32Array],
  [Uint16Array, types.isUint16Array],
  [Uint8Array, types.isUint8Array],
]);

/** Whether v is a typed array of this kind, from this realm or another. */
export function isKind(v: unknown, ctor: TypedCtor): boolean {
  return !types.isProxy(v) && IS_KIND.get(ctor)!(v);
}

/** "a Float32Array", "an Int32Array": the article the kind's name takes. */
export function article(kind: string): string {
  return `${/^[AEIO]/.test(kind) ? 'an' : 'a'} ${kind}`; // a Uint16Array, an Int32Array
}

// The typed arrays' own getters (%TypedArray%.prototype's), which read the internal slots of an
// array from any realm: what `length`, `buffer`, `byteOffset` and `byteLength` must agree with.
const TYPED_ARRAY_PROTO = Object.getPrototypeOf(Uint8Array.prototype) as object;
const VIEW_GETTERS = (['length', 'buffer', 'byteOffset', 'byteLength'] as const).map(
  (key) => [key, Object.getOwnPropertyDescriptor(TYPED_ARRAY_PROTO, key)!.get!] as const,
);

const OWN_VIEW = 'a typed array whose length, buffer and offsets are its own (not shadowed by a property)';

// Whether `get` is a typed array's own accessor for `key` (of this realm or another): this realm's,
// or a built-in function of that name (a bound or user-written function prints otherwise).
function intrinsicGetter(get: unknown, key: string, ours: () => unknown): boolean {
  if (get === ours) return true;
  return (
    typeof get === 'function' &&
    get.name === `get ${key}` &&
    /^function get \w+\(\) \{\s*\[native code\]\s*\}$/.test(Function.prototype.toString.call(get))
  );
}

/** Whether v (a typed array) reports its size and memory as its internal slots hold them: an own
 *  property or a subclass's getter may not stand in for them (every check reads them by name, and
 *  a getter could answer truly once and lie after). The first holder of each name up v's
 *  prototype chain must hold the built-in accessor. */
function trueView(v: ArrayBufferView): boolean {
  return VIEW_GETTERS.every(([key, get]) => {
    let p: object | null = v;
    while (p !== null && !Object.prototype.hasOwnProperty.call(p, key)) p = Object.getPrototypeOf(p);
    const d = p === null || p === v ? undefined : Object.getOwnPropertyDescriptor(p, key);
    return d !== undefined && intrinsicGetter(d.get, key, get) && (v as never)[key] === get.call(v);
  });
}

/** A view the kernels may read: not detached, its own size and memory (trueView), and not over a
 *  resizable ArrayBuffer (which could shrink while a native kernel reads it; the addon refuses it
 *  too). */
export function liveView(fn: string, name: string, v: ArrayBufferView): void {
  if (isDetached(v)) typeError(fn, name, 'a typed array over a live (not detached) buffer', v);
  if (!trueView(v)) typeError(fn, name, OWN_VIEW, v);
  const buf = v.buffer as ArrayBuffer & { resizable?: boolean };
  if (buf.resizable === true && !types.isSharedArrayBuffer(buf)) {
    typeError(fn, name, 'a typed array over a fixed-length ArrayBuffer (not resizable)', v);
  }
}

export function typed<C extends TypedCtor>(fn: string, name: string, v: unknown, ctor: C, hint = ''): InstanceType<C> {
  if (!isKind(v, ctor)) typeError(fn, name, `${article(ctor.name)}${hint}`, v);
  liveView(fn, name, v as ArrayBufferView);
  return v as InstanceType<C>;
}

export function isDetached(v: ArrayBufferView): boolean {
  const b = v.buffer as ArrayBuffer & { detached?: boolean };
  if (typeof b.detached === 'boolean') return b.detached;
  try {
    new Uint8Array(b);
    return false;
  } catch {
    return true;
  }
}

export function dim(fn: string, name: string, v: unknown): number {
  if (typeof v !== 'number') typeError(fn, name, 'an integer >= 1', v);
  if (!(v >= 1) || !Number.isInteger(v) || v > 2147483647) {
    rangeError(fn, name, 'an integer in [1, 2147483647]', String(v));
  }
  return v;
}

export function positive(fn: string, name: string, v: unknown, fallback?: number): number {
  if (v === undefined && fallback !== undefined) return fallback;
  if (typeof v !== 'number') typeError(fn, name, 'a finite number > 0', v);
  if (!(v > 0) || !Number.isFinite(v)) rangeError(fn, name, 'a finite number > 0', String(v));
  return v;
}

/** Whether a temperature and its float32 reciprocal are finite and nonzero in float32, as the
 *  kernels need them (1/tau scales the logits in float32; below about 2.9e-39 it is infinite,
 *  above float32's max tau is): the one rule every layer checks. */
export function reciprocalFits32(t: number): boolean {
  const r = Math.fround(1 / Math.fround(t));
  return Number.isFinite(r) && r > 0;
}

/** The temperature (default 1): positive, and both it and its reciprocal finite and nonzero in
 * float32, since the kernels scale the logits by 1/tau in float32 (below about 2.9e-39 that is
 * infinite; above float32's max, about 3.4e38, tau itself is infinite and 1/tau 0). */
export function temperatureOf(fn: string, v: unknown): number {
  const t = positive(fn, 'temperature', v, 1);
  if (!reciprocalFits32(t)) {
    rangeError(
      fn,
      'temperature',
      "a number whose float32 value and reciprocal are finite (about 2.9e-39 to float32's max, 3.4e38)",
      String(t),
    );
  }
  return t;
}

/**
 * The lowest temperature the trainer, the command and the policies' sample() take (the kernels
 * take down to about 2.9e-39, where 1/tau stops being finite). Every log-prob the trainer uses is
 * the logits divided by the temperature in float32, and its losses square the differences of
 * those (GVPO's variance term; Adam squares gradients, which carry 1/tau once more): logits of up
 * to 1e4 in magnitude divided by 1e-6 stay within 1e10, squares within 1e20, far inside float32's
 * 3.4e38. A GVPO step on the addition checkpoint with demonstrations diverged at 1e-30 (and ran
 * at 1e-20); at 1e-38 the log-probs themselves were NaN. 1e-6 samples the argmax as greedy
 * decoding does, so nothing below it is needed.
 */
export const MIN_SAMPLING_TEMPERATURE = 1e-6;

/** What a sampling temperature must be, as every message says it. */
export const SAMPLING_TEMPERATURE =
  "a number from 1e-6 to float32's max, about 3.4e38 (logits divided by a smaller one overflow the float32 losses)";

/** Whether `t` is a sampling temperature: the rule the trainer, the command and sample() share. */
export function isSamplingTemperature(t: number): boolean {
  return Number.isFinite(t) && t >= MIN_SAMPLING_TEMPERATURE && reciprocalFits32(t);
}

/** A sampling temperature (isSamplingTemperature), else a TypeError (not a number) or a
 *  RangeError naming `fn` and `name`. */
export function samplingTemperatureOf(fn: string, name: string, v: unknown): number {
  if (typeof v !== 'number') typeError(fn, name, SAMPLING_TEMPERATURE, v);
  if (!isSamplingTemperature(v)) rangeError(fn, name, SAMPLING_TEMPERATURE, String(v));
  return v;
}

export function threads(fn: string, v: unknown): number | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== 'number') typeError(fn, 'threads', 'an integer >= 0', v);
  if (!(v >= 0) || !Number.isInteger(v) || v > 1024) rangeError(fn, 'threads', 'an integer in [0, 1024]', String(v));
  return v;
}

export function boolean(fn: string, name: string, v: unknown): boolean {
  if (v === undefined) return false;
  if (typeof v !== 'boolean') typeError(fn, name, 'a boolean', v);
  return v;
}

export function dtypeOf(fn: string, v: unknown): DType {
  if (v === undefined) return 'float32';
  if (v === 'float32' || v === 'bfloat16' || v === 'float16') return v;
  const expected = "'float32' | 'bfloat16' | 'float16'";
  if (typeof v !== 'string') typeError(fn, 'dtype', expected, v);
  return rangeError(fn, 'dtype', expected, describe(v));
}

export function reductionOf(fn: string, v: unknown): Reduction {
  if (v === undefined) return 'mean';
  if (v === 'mean' || v === 'sum') return v;
  if (typeof v !== 'string') typeError(fn, 'reduction', "'mean' | 'sum'", v);
  return rangeError(fn, 'reduction', "'mean' | 'sum'", describe(v));
}

export function product(fn: string, what: string, dims: number[]): number {
  let p = 1;
  for (const d of dims) {
    p *= d;
    if (p > 2 ** 53) rangeError(fn, what, 'a product of sizes below 2^53', 'an overflowing product');
  }
  return p;
}

export function expectLength(fn: string, name: string, got: number, want: number, what: string, hint = ''): void {
  if (got !== want) rangeError(fn, name, `of length ${what} = ${want}`, `length ${got}${hint}`);
}

/**
 * When an array of `got` elements that should hold `vocab` x `other` values holds a whole number
 * of `other`-sized pieces, that count is most likely the real vocabulary: say so, in terms of
 * vocab. `layout` names the array's shape: logits are rows x vocab, a head's weight vocab x H.
 */
export function vocabHint(
  got: number,
  other: number,
  vocab: number,
  layout: 'rows x vocab' | 'vocab x hiddenSize',
): string {
  const v = got / other;
  if (!Number.isInteger(v) || v < 1 || v === vocab) return '';
  const shape = layout === 'rows x vocab' ? `${other} rows of ${v}` : `${v} rows of hiddenSize ${other}`;
  return ` (${shape}: is vocab ${v}, not ${vocab}?)`;
}

/** An array in `dtype`: a Float32Array for float32, 16-bit bit patterns in a Uint16Array otherwise.
 *  The usual mix-up (float32 values with a 16-bit dtype, or the reverse) gets its remedy named. */
export function floatsOf(fn: string, name: string, v: unknown, dtype: DType): FloatArray {
  if (dtype === 'float32') {
    const hint = isKind(v, Uint16Array) ? " (16-bit bit patterns need dtype: 'bfloat16' or 'float16')" : '';
    return typed(fn, name, v, Float32Array, hint);
  }
  const hint =
    isKind(v, Float32Array) || isKind(v, Float64Array)
      ? ` of ${dtype} bit patterns (toHalf(values, '${dtype}') makes them from float32 values)`
      : ` of ${dtype} bit patterns`;
  return typed(fn, name, v, Uint16Array, hint);
}

const MASK_KINDS = [Float32Array, Float64Array, Uint8Array, Int32Array] as const;

/** The mask as a Float32Array (the caller's own array when it already is one). A weight that
 *  rounds to 0 in float32 becomes 0, and the token is then masked everywhere, targets included. */
export function maskOf(fn: string, v: unknown, optional: boolean): Float32Array | undefined {
  if (optional && (v === undefined || v === null)) return undefined;
  if (!MASK_KINDS.some((k) => isKind(v, k))) {
    typeError(fn, 'mask', 'a Float32Array, Float64Array, Uint8Array or Int32Array', v);
  }
  liveView(fn, 'mask', v as ArrayBufferView);
  // Always a copy, read once: the kernels get float32 weights no caller can change mid-call, over
  // memory of their own (whatever buffer the caller's mask lives on).
  const m = v as MaskLike;
  const f = new Float32Array(m.length);
  for (let i = 0; i < m.length; i++) {
    f[i] = m[i];
    // finite once narrowed to the float32 the kernels read (1e300 in a Float64Array is not)
    if (!Number.isFinite(f[i])) rangeError(fn, 'mask', 'finite float32 weights', `${m[i]} at index ${i}`);
  }
  return f;
}

/** Numbers as a Float64Array (copied), all finite. */
export function numbersOf(fn: string, name: string, v: unknown, length?: number, what?: string): Float64Array {
  // isProxy first: Array.isArray throws on a revoked Proxy
  if (!(isKind(v, Float64Array) || isKind(v, Float32Array) || (!types.isProxy(v) && Array.isArray(v)))) {
    typeError(fn, name, 'a Float64Array, Float32Array or number[]', v);
  }
  if (ArrayBuffer.isView(v)) liveView(fn, name, v);
  const src = v as NumbersLike;
  if (length !== undefined) expectLength(fn, name, src.length, length, what ?? 'N');
  // read up to the length checked: a getter of an element may change it (shrink or append), and a
  // view over a growable SharedArrayBuffer may grow
  const n = length ?? src.length;
  if (!Array.isArray(src)) {
    const out = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      const x = src[i]; // read once: another thread may write a shared buffer meanwhile
      if (!Number.isFinite(x)) rangeError(fn, name, 'finite numbers', `${x} at index ${i}`);
      out[i] = x;
    }
    return out;
  }
  // A sparse array may claim up to 2^32 - 1 elements: its numbers are read (each once, so a getter
  // cannot change one between the check and the copy) before anything of that length is allocated.
  const read: number[] = [];
  for (let i = 0; i < n; i++) {
    // a hole is a hole, not whatever Array.prototype or Object.prototype holds at that index
    const x: unknown = Object.prototype.hasOwnProperty.call(src, i) ? src[i] : undefined;
    if (typeof x !== 'number') typeError(fn, `${name}[${i}]`, 'a number', x);
    if (!Number.isFinite(x)) rangeError(fn, name, 'finite numbers', `${x} at index ${i}`);
    read.push(x);
  }
  return Float64Array.from(read);
}

export function checkTargets(fn: string, y: Int32Array, mask: Float32Array | undefined, vocab: number): void {
  for (let r = 0; r < y.length; r++) {
    if ((!mask || mask[r] !== 0) && (y[r] < 0 || y[r] >= vocab)) {
      rangeError(fn, 'targets', `token ids in [0, ${vocab}) where the mask is non-zero`, `${y[r]} at index ${r}`);
    }
  }
}

export function checkOffsets(fn: string, name: string, off: Int32Array, n: number): void {
  if (off.length < 2) rangeError(fn, name, 'group offsets of length G+1 >= 2', `length ${off.length}`);
  if (off[0] !== 0) rangeError(fn, name, 'offsets starting at 0', `${off[0]} at index 0`);
  for (let g = 1; g < off.length; g++) {
    if (off[g] <= off[g - 1]) {
      rangeError(fn, name, 'strictly increasing offsets', `${off[g]} after ${off[g - 1]} at index ${g}`);
    }
  }
  if (off[off.length - 1] !== n) {
    rangeError(fn, name, `offsets ending at the number of sequences ${n}`, String(off[off.length - 1]));
  }
}

/**
 * Either layout as offsets (length G+1), always a copy that the call owns: the kernels index
 * memory by the offsets, so they are checked once and then never read from the caller's array
 * again (an async caller could rewrite it before the work runs).
 */
export function offsetsOf(fn: string, groups: unknown, n: number): Int32Array {
  if (typeof groups !== 'object' || groups === null) typeError(fn, 'groups', '{ size } or { offsets }', groups);
  let keys: string[] = [];
  try {
    keys = optionKeys(groups);
  } catch {
    typeError(fn, 'groups', '{ size } or { offsets }', groups); // a revoked Proxy
  }
  for (const key of keys) {
    if (key !== 'size' && key !== 'offsets') {
      typeError(fn, 'groups', `{ size } or { offsets } (no field '${key}')`, groups);
    }
  }
  const { size, offsets } = groups as Partial<{ size: unknown; offsets: unknown }>;
  if (offsets !== undefined && size !== undefined) {
    rangeError(fn, 'groups', 'either { size } or { offsets }', 'both');
  }
  if (offsets !== undefined) {
    const off = new Int32Array(typed(fn, 'groups.offsets', offsets, Int32Array));
    checkOffsets(fn, 'groups.offsets', off, n);
    return off;
  }
  if (size === undefined) typeError(fn, 'groups', '{ size } or { offsets }', groups);
  const k = dim(fn, 'groups.size', size);
  if (n % k !== 0) rangeError(fn, 'groups.size', `a divisor of the number of sequences ${n}`, String(k));
  const off = new Int32Array(n / k + 1);
  for (let i = 0; i < off.length; i++) off[i] = i * k;
  return off;
}
