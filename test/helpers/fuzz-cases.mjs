// The hostile calls of the fuzzer (test/helpers/fuzz-worker.mjs): a valid call of one entry point
// (public op, async twin, helper, or the native addon called directly with the normalized options
// of src/ops/normalize.ts), then up to three hostile edits. Case i of a seed is always the same call.
import { types } from 'node:util';
import { encodeHalf as toHalf } from '../../src/reference/dtype.ts';

function mulberry32(a) {
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const HIDDEN_OPS = ['gvpoFromHidden', 'gvpoFromHiddenForward', 'gvpoFromHiddenBackward'];
const HEAD_OPS = ['tokenLogprobsFromHidden', 'tokenLogprobsFromHiddenBackward'];
const OPS = [
  'tokenLogprobs',
  'tokenLogprobsBackward',
  'sequenceLogprobs',
  'groupCenter',
  'gvpoLoss',
  'gvpoForward',
  'gvpoBackward',
  'gvpoFromLogits',
  ...HIDDEN_OPS,
  ...HEAD_OPS,
];
const LOGITS_OPS = ['tokenLogprobs', 'tokenLogprobsBackward', 'gvpoForward', 'gvpoBackward', 'gvpoFromLogits'];
/** The op's large input: what the use-after-free probe and the mid-call transfer aim at. */
const bigInput = (op) =>
  HIDDEN_OPS.includes(op) || HEAD_OPS.includes(op) ? 'hidden' : LOGITS_OPS.includes(op) ? 'logits' : undefined;
const SCALARS = [
  undefined,
  null,
  NaN,
  Infinity,
  -Infinity,
  -0,
  0,
  1,
  -1,
  0.5,
  1e-50,
  2 ** 31 - 1,
  2 ** 31,
  -(2 ** 31),
  2 ** 53,
  1e308,
  'abc',
  '3',
  'sum',
  'float16',
  true,
  5n,
  {},
  [],
  [1, 2],
  Symbol('s'),
  () => 1,
];
const BAD_TARGETS = [-1, 'V', 2 ** 31 - 1, -(2 ** 31)];

export function detach(v) {
  const b = v.buffer; // (an array from a vm context has that realm's ArrayBuffer: no instanceof)
  if (types.isArrayBuffer(b) && !(b.detached ?? false)) structuredClone(b, { transfer: [b] });
}

function resizable(v) {
  const K = v.constructor;
  const r = new K(new ArrayBuffer(v.byteLength, { maxByteLength: v.byteLength + 64 }));
  r.set(v);
  return r;
}

function makeRng(seed, i) {
  const r = mulberry32((seed ^ Math.imul(i + 1, 0x9e3779b1)) >>> 0);
  const pick = (xs) => xs[Math.floor(r() * xs.length)];
  const int = (n) => Math.floor(r() * n);
  const normal = () => Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r());
  return { r, pick, int, normal };
}

function groupsFor(g, N) {
  if (g.r() < 0.5) {
    const divisors = [...Array(N).keys()].map((k) => k + 1).filter((k) => N % k === 0);
    return { size: g.pick(divisors) };
  }
  const cuts = [0];
  while (cuts[cuts.length - 1] < N) cuts.push(Math.min(N, cuts[cuts.length - 1] + 1 + g.int(3)));
  return { offsets: Int32Array.from(cuts) };
}

/** A valid call: its options (public form, or the addon's normalized form) and what to check. */
function base(g, op, native, probe) {
  const big = probe || g.r() < 0.08;
  const N = big ? 16 : 1 + g.int(4),
    T = big ? 4 : 1 + g.int(3),
    rows = N * T;
  const V = big ? 4099 : g.pick([1, 2, 3, 5, 17, 33]);
  const dtype = g.pick(['float32', 'float32', 'bfloat16', 'float16']);
  const hasLogits = LOGITS_OPS.includes(op);
  const f = new Float32Array(hasLogits ? rows * V : 0);
  for (let k = 0; k < f.length; k++) f[k] = big ? g.r() * 12 - 6 : g.normal() * 3;
  const maskVals = Float32Array.from({ length: rows }, () => g.pick([1, 1, 0, 0.5, 2]));
  const maskKind = native ? Float32Array : g.pick([Float32Array, Float64Array, Int32Array, Float32Array]);
  const mask = maskKind === Int32Array ? Int32Array.from(maskVals, (m) => (m ? 1 : 0)) : maskKind.from(maskVals);
  const targets = Int32Array.from({ length: rows }, () => g.int(V));
  const logits = dtype === 'float32' ? f : toHalf(f, dtype);
  const lg = { logits, ...(dtype !== 'float32' || g.r() < 0.5 ? { dtype } : {}), targets, vocab: V };
  if (g.r() < 0.5) lg.temperature = g.pick([1e-6, 0.3, 1, 2.7]);
  const f64 = (n, s = 3, off = 0) => Float64Array.from({ length: n }, () => off + g.normal() * s);
  const numbers = (n, s, off) =>
    native ? f64(n, s, off) : g.pick([(x) => x, Array.from, Float32Array.from.bind(Float32Array)])(f64(n, s, off));
  const groups = groupsFor(g, N);
  const offsets = groups.offsets ?? Int32Array.from({ length: N / groups.size + 1 }, (_, k) => k * groups.size);
  const grp = native ? { offsets } : { groups };
  const loss = {
    rewards: numbers(N, 1),
    ...grp,
    beta: g.pick([1e-3, 0.1, 10]),
    ...(g.r() < 0.5 ? { reduction: g.pick(['mean', 'sum']) } : {}),
  };
  const meta = { rows, V, N, T, dtype, grad: ['tokenLogprobsBackward', 'gvpoBackward', 'gvpoFromLogits'].includes(op) };
  if (HIDDEN_OPS.includes(op) || HEAD_OPS.includes(op))
    return hiddenBase(g, op, { native, big, N, T, V, dtype, mask, targets, f64, numbers, loss, meta });
  switch (op) {
    case 'tokenLogprobs':
      return { a: { ...lg, rows, ...(g.r() < 0.7 ? { mask } : {}) }, meta, lp: 'logprobs' };
    case 'tokenLogprobsBackward':
      return {
        a: {
          ...lg,
          rows,
          ...(g.r() < 0.7 ? { mask } : {}),
          logZ: Float32Array.from(f64(rows, 3, Math.log(V))),
          gradTokenLogprobs: Float32Array.from(f64(rows)),
        },
        meta,
        grad: native ? 'gradLogits' : '.',
      };
    case 'sequenceLogprobs':
      return {
        a: {
          tokenLogprobs: g.pick([Float32Array, Float64Array]).from(f64(rows, 1, -2)),
          mask,
          sequences: N,
          tokens: T,
        },
        meta: { N },
      };
    case 'groupCenter':
      return { a: { values: numbers(N, 2), ...grp }, meta: { N } };
    case 'gvpoLoss':
      return { a: { policyLogprobs: numbers(N, 5, -20), referenceLogprobs: numbers(N, 5, -20), ...loss }, meta: { N } };
    default: {
      const a = { ...lg, mask, sequences: N, tokens: T };
      const ref = g.int(3);
      if (op !== 'gvpoBackward' && ref === 1)
        a.referenceTokenLogprobs = (native ? Float64Array : g.pick([Float32Array, Float64Array])).from(
          f64(rows, 1, -2),
        );
      if (op !== 'gvpoBackward' && ref === 2) a.referenceLogprobs = numbers(N, 5, -20);
      if (op === 'gvpoForward') return { a, meta, lp: 'tokenLogprobs' };
      if (op === 'gvpoBackward') {
        Object.assign(a, { logZ: Float32Array.from(f64(rows, 3, Math.log(V))), gradLogprobs: numbers(N, 1) });
        return { a, meta, grad: native ? 'gradLogits' : '.' };
      }
      Object.assign(a, loss);
      if (dtype === 'float32' && g.r() < 0.2) a.inPlace = true;
      else if (g.r() < 0.2) a.out = new Float32Array(rows * V);
      return { a, meta, lp: 'tokenLogprobs', grad: 'gradLogits' };
    }
  }
}

/** A valid call of the fused LM head or one of its phases: hidden (N*T x H) and weight (V x H). */
function hiddenBase(g, op, { native, big, N, T, V, dtype, mask, targets, f64, numbers, loss, meta }) {
  // big: hidden of 1 MiB (the probes' size), with a small vocabulary so the weight stays small
  const rows = N * T,
    H = big ? 4096 : g.pick([1, 3, 8, 17]);
  if (big) {
    V = 33;
    targets = Int32Array.from({ length: rows }, () => g.int(V));
    meta = { ...meta, V };
  }
  const mat = (n, s) => {
    const f = Float32Array.from({ length: n }, () => g.normal() * s);
    return dtype === 'float32' ? f : toHalf(f, dtype);
  };
  const head = {
    hidden: mat(rows * H, 1),
    weight: mat(V * H, 1 / Math.sqrt(H)),
    ...(dtype !== 'float32' || g.r() < 0.5 ? { dtype } : {}),
    targets,
    hiddenSize: H,
    vocab: V,
  };
  if (g.r() < 0.5) head.temperature = g.pick([1e-6, 0.3, 1, 2.7]);
  if (HEAD_OPS.includes(op)) return headBase(g, op, { native, rows, H, V, head, mask, f64, meta });
  const a = { ...head, mask, sequences: N, tokens: T, ...(native ? { rows } : {}) };
  const ref = g.int(3);
  if (op !== 'gvpoFromHiddenBackward' && ref === 1)
    a.referenceTokenLogprobs = (native ? Float64Array : g.pick([Float32Array, Float64Array])).from(f64(rows, 1, -2));
  if (op !== 'gvpoFromHiddenBackward' && ref === 2) a.referenceLogprobs = numbers(N, 5, -20);
  const m = { ...meta, H, V, grad: op !== 'gvpoFromHiddenForward', weightGrad: op !== 'gvpoFromHiddenForward' };
  if (op === 'gvpoFromHiddenForward') return { a, meta: m, lp: 'tokenLogprobs' };
  if (native && g.r() < 0.2)
    Object.assign(a, { gradHidden: new Float32Array(rows * H), gradWeight: new Float32Array(V * H) }); // the addon's destinations
  if (g.r() < 0.3)
    Object.assign(a, { gradWeight: Float32Array.from(f64(V * H)), ...(g.r() < 0.5 ? { accumulate: true } : {}) });
  if (op === 'gvpoFromHiddenBackward') {
    Object.assign(a, { logZ: Float32Array.from(f64(rows, 3, Math.log(V))), gradLogprobs: numbers(N, 1) });
    return { a, meta: m, grad: 'gradHidden', gradWidth: H };
  }
  Object.assign(a, loss);
  return { a, meta: m, lp: 'tokenLogprobs', grad: 'gradHidden', gradWidth: H };
}

/** A valid call of the fused head for any loss (rows of hidden states) or its backward. */
function headBase(g, op, { native, rows, H, V, head, mask, f64, meta }) {
  const a = { ...head, rows, ...(g.r() < 0.7 ? { mask } : {}), ...(g.r() < 0.5 ? { entropy: g.r() < 0.7 } : {}) };
  const m = {
    ...meta,
    H,
    V,
    grad: op === 'tokenLogprobsFromHiddenBackward',
    weightGrad: op === 'tokenLogprobsFromHiddenBackward',
  };
  if (op === 'tokenLogprobsFromHidden') return { a, meta: m, lp: 'logprobs' };
  Object.assign(a, {
    logZ: Float32Array.from(f64(rows, 3, Math.log(V))),
    gradTokenLogprobs: Float32Array.from(f64(rows)),
  });
  if (g.r() < 0.5) a.gradEntropy = Float32Array.from(f64(rows));
  if (g.r() < 0.3) a.entropy = Float32Array.from(f64(rows, 1, 1)); // the forward's values (any, here)
  if (g.r() < 0.3)
    Object.assign(a, { gradWeight: Float32Array.from(f64(V * H)), ...(g.r() < 0.5 ? { accumulate: true } : {}) });
  if (native && g.r() < 0.2) a.gradHidden = new Float32Array(rows * H); // the addon's destination
  return { a, meta: m, grad: 'gradHidden', gradWidth: H };
}

const typedFields = (a) =>
  Object.keys(a).filter((k) => ArrayBuffer.isView(Object.getOwnPropertyDescriptor(a, k)?.value));

/** One hostile edit of the options `a`; returns its name and whether the public API must refuse
 *  it ('refuse'), must accept it ('accept') or either. */
function edit(g, a, meta, ctx, native) {
  const keys = Object.keys(a);
  const field = g.pick(keys.length ? keys : ['logits']);
  const own = (k) => Object.getOwnPropertyDescriptor(a, k)?.value; // never runs an earlier edit's getter
  const v = own(field);
  const kind = g.int(14);
  const other = () => own(g.pick(typedFields(a).filter((k) => k !== field)) ?? field);
  switch (kind) {
    case 0:
      a[field] = g.pick(SCALARS);
      return { name: `${field}=${String(a[field])}` };
    case 1: {
      // wrong kind or length of a typed array
      if (!ArrayBuffer.isView(v)) {
        a[field] = new Float32Array(3);
        return { name: `${field}=Float32Array(3)` };
      }
      const n = Math.max(0, v.length + g.pick([-1, 1, -v.length]));
      const K = g.pick([Float32Array, Float64Array, Int32Array, Uint16Array, Uint8Array, BigInt64Array, v.constructor]);
      a[field] = new K(K === v.constructor ? n : v.length);
      return { name: `${field}=${K.name}(${a[field].length})` };
    }
    case 2:
      if (!isArr(v)) return { name: 'noop' };
      a[field] = v.slice();
      detach(a[field]);
      return { name: `${field} detached`, refuse: true };
    case 3:
      if (ArrayBuffer.isView(v)) a[field] = new Proxy(v, {});
      else a[field] = new Proxy({ ...v }, {});
      return { name: `${field} Proxy` };
    case 4: {
      // non-finite or extreme values inside an array
      if (!isArr(v)) return { name: 'noop' };
      const c = v.slice();
      const x = g.pick([NaN, Infinity, -Infinity, -0, 3e38, -3e38, 1e-45, 65504, 0x7f80, 0xffff]);
      for (let k = 0; k < 1 + g.int(3) && c.length; k++) c[g.int(c.length)] = x;
      a[field] = c;
      return { name: `${field}[..]=${x}` };
    }
    case 5: {
      // targets out of range, under the mask or outside it
      if (!isArr(a.targets) || !meta.rows) return { name: 'noop' };
      const t = a.targets.slice(),
        row = g.int(t.length),
        bad = g.pick(BAD_TARGETS);
      t[row] = bad === 'V' ? meta.V : bad;
      a.targets = t;
      const m = isArr(a.mask) ? Math.fround(a.mask[row]) : 1;
      return { name: `targets[${row}]=${t[row]} (mask ${m})`, targets: true };
    }
    case 6: {
      // float64 weights that round to 0 in float32, with a bad target there
      if (!isArr(a.targets) || !meta.rows || native || (a.mask !== undefined && !isArr(a.mask)))
        return { name: 'noop' };
      const m = Float64Array.from(a.mask ?? new Float64Array(meta.rows).fill(1)),
        t = a.targets.slice(),
        row = g.int(m.length);
      m[row] = g.pick([1e-50, -1e-50, 1e-46]);
      t[row] = g.pick([-1, meta.V, 2 ** 31 - 1]);
      Object.assign(a, { mask: m, targets: t });
      return { name: `mask[${row}]=${m[row]} with target ${t[row]}`, targets: true };
    }
    case 7: {
      // sizes
      const k = g.pick(['rows', 'sequences', 'tokens', 'vocab', 'hiddenSize'].filter((s) => s in a).concat(['vocab']));
      a[k] = g.pick([0, -1, 1.5, NaN, 2 ** 31 - 1, 2 ** 31, 2 ** 53 + 2, 1e308]);
      if (g.r() < 0.3 && 'sequences' in a) a.tokens = a.sequences = 2 ** 31 - 1;
      return { name: `${k}=${a[k]}`, refuse: true };
    }
    case 8: {
      // group layouts
      if (!('groups' in a || 'offsets' in a)) return { name: 'noop' };
      const N = meta.N ?? 2;
      const bad = g.pick([
        { size: 0 },
        { size: N + 1 },
        { size: NaN },
        { size: 1, offsets: Int32Array.of(0, N) },
        { size: 1, extra: 1 },
        { offsets: Int32Array.of(0, N, N) },
        { offsets: Int32Array.of(N, 0) },
        { offsets: Int32Array.of(0) },
        { offsets: Int32Array.of(0, N + 1) },
        { offsets: Int32Array.of(0, -5, N) },
        { offsets: Int32Array.of(0, 2 ** 31 - 1) },
        { offsets: [0, N] },
        {},
      ]);
      if (native) {
        const o = (a.offsets = ArrayBuffer.isView(bad.offsets) ? bad.offsets : Int32Array.of(-1));
        const ok = o.length >= 2 && o[0] === 0 && o[o.length - 1] === N && o.every((x, k) => k === 0 || x > o[k - 1]);
        return { name: `offsets=${o}`, refuse: !ok };
      }
      a.groups = bad;
      return {
        name: `groups=${JSON.stringify(bad, (_, x) => (ArrayBuffer.isView(x) ? Array.from(x) : x))}`,
        refuse: true,
      };
    }
    case 9: {
      const k = g.pick(['temprature', 'foo', native ? 'bar' : 'offsets', 'gradLogprobs', 'logprobs']);
      if (k in a) return { name: 'noop' };
      a[k] = 1;
      return { name: `unknown option ${k}`, refuse: !native };
    }
    case 10: {
      // out (or the head's gradWeight) overlapping an input, or inPlace with out
      if (meta.weightGrad && a.hidden instanceof Float32Array && a.hidden.length > 0) {
        const n = a.hidden.length,
          w = meta.V * meta.H,
          buf = new Float32Array(n + w + 1);
        buf.set(a.hidden);
        a.hidden = buf.subarray(0, n);
        const at = g.pick([0, 1, n - 1, n]);
        a.gradWeight = buf.subarray(at, at + w);
        return { name: `gradWeight overlapping hidden at ${at}`, refuse: !native && at < n, writesHidden: native };
      }
      if (!isArr(a.logits) || !meta.grad) return { name: 'noop' };
      const z = a.logits,
        n = z.length;
      if (g.r() < 0.5) {
        a.inPlace = true;
        a.out = new Float32Array(n);
        return { name: 'inPlace with out', refuse: !native };
      }
      const buf = new Float32Array(2 * n + 1);
      if (z instanceof Float32Array) {
        buf.set(z, 1);
        a.logits = buf.subarray(1, n + 1);
      }
      a.out = buf.subarray(g.pick([0, 1, n]), g.pick([0, 1, n]) + n);
      return {
        name: `out overlapping at ${a.out.byteOffset / 4}`,
        refuse: !native && z instanceof Float32Array && a.out.byteOffset / 4 <= n,
      };
    }
    case 11: {
      // getters: one that throws, one that detaches another input and collects it, one that returns a fresh array each read
      const sentinel = new Error('sentinel from a getter');
      const victim = other();
      const value = v;
      const mode = g.int(4);
      let shrink;
      if (mode === 3 && isArr(victim)) {
        // the victim moves onto a resizable buffer, which the getter shrinks
        const vf = typedFields(a).find((k) => own(k) === victim);
        const rb = resizable(victim);
        a[vf] = rb;
        shrink = rb.buffer;
      }
      const get =
        mode === 0
          ? () => {
              throw sentinel;
            }
          : mode === 1
            ? () => {
                if (ArrayBuffer.isView(victim)) detach(victim);
                ctx.gc();
                return value;
              }
            : mode === 2
              ? () => (isArr(value) ? value.slice() : value)
              : () => {
                  shrink?.resize(0);
                  return value;
                };
      Object.defineProperty(a, field, { get, enumerable: true, configurable: true });
      return {
        name: `${field} getter ${['throws', 'detaches another input', 'fresh copy', 'shrinks another input'][mode]}`,
        sentinel,
        getter: true,
      };
    }
    case 12: {
      // valid variants: SharedArrayBuffer or byte-offset views, arrays from a vm context
      if (!isArr(v)) return { name: 'noop' };
      if (g.r() < 0.25) {
        a[field] = resizable(v);
        return { name: `${field} on a resizable ArrayBuffer` };
      }
      const how = g.int(3),
        K = v.constructor,
        B = K.BYTES_PER_ELEMENT;
      if (how === 0) {
        const s = new K(new SharedArrayBuffer((v.length + 2) * B), 2 * B, v.length);
        s.set(v);
        a[field] = s;
      } else if (how === 1) {
        const s = new K(v.length + 3).subarray(3);
        s.set(v);
        a[field] = s;
      } else a[field] = ctx.vm.runInNewContext(`${K.name}.from(src)`, { src: v });
      return {
        name: `${field} ${['on a SharedArrayBuffer', 'at a byte offset', 'from a vm context'][how]}`,
        valid: true,
      };
    }
    default: {
      // a masked row's target anywhere, and -0 weights: accepted
      if (!isArr(a.targets) || !isArr(a.mask) || !meta.rows) return { name: 'noop' };
      const row = g.int(meta.rows);
      const m = a.mask.slice();
      m[row] = m instanceof Int32Array ? 0 : -0;
      const t = a.targets.slice();
      t[row] = g.pick([-1, meta.V, 2 ** 31 - 1, -(2 ** 31)]);
      Object.assign(a, { mask: m, targets: t });
      return { name: `masked row ${row} with target ${t[row]}`, targets: true };
    }
  }
}
const isArr = (x) => ArrayBuffer.isView(x) && !(x instanceof BigInt64Array) && x.length > 0 && x.buffer.byteLength > 0;

export function hostileCall(seed, i, ctx) {
  const g = makeRng(seed, i);
  const { gvpo, addon } = ctx;
  ctx.gc = globalThis.gc ?? (() => {});
  const roll = g.r();
  if (roll < 0.08) return helperCase(g, gvpo, ctx);
  const native = !!addon && roll < 0.38;
  const op = g.pick(OPS);
  const isAsync = g.r() < 0.5;
  const name = `${native ? 'addon.' : ''}${op}${isAsync ? 'Async' : ''}`;
  // A use-after-free probe: logits of 1 MiB (memory the allocator maps and unmaps, so a stale
  // read faults), read first; then a getter read later detaches them and collects the garbage,
  // or the logits getter itself returns a fresh copy on every read and the garbage is collected
  // while an async call runs.
  const large = bigInput(op);
  const probe = native && large && g.r() < 0.2;
  const b = base(g, op, native, probe);
  let a = b.a;
  const edits = [];
  if (probe) {
    const z = a[large];
    if (g.r() < 0.5) {
      const t = a.targets;
      Object.defineProperty(a, 'targets', {
        get: () => {
          detach(z);
          ctx.gc();
          return t;
        },
        enumerable: true,
      });
      edits.push({ name: `targets getter detaches the ${large} and collects them`, getter: true });
    } else {
      Object.defineProperty(a, large, { get: () => z.slice(), enumerable: true });
      edits.push({ name: `${large} getter returns a fresh copy`, getter: true });
    }
  }
  const nEdits = probe ? 0 : g.pick([0, 1, 1, 1, 2, 3]);
  for (let k = 0; k < nEdits; k++) {
    edits.push(edit(g, a, b.meta, ctx, native));
    if (edits[k].getter) break; // later edits would run it
  }
  const whole = !edits.some((e) => e.getter) && g.r() < 0.04 ? g.pick(['Proxy', 'vm', 'null', 'number', 'array']) : '';
  if (whole === 'Proxy') a = new Proxy(a, {});
  else if (whole === 'vm') a = ctx.vm.runInNewContext('Object.assign({}, src)', { src: a });
  else if (whole) a = { null: null, number: 5, array: [a] }[whole];
  const c = {
    what: `${name} ${edits.map((e) => e.name).join('; ') || 'valid'}${whole ? `; options ${whole}` : ''}`,
    args: [a],
    async: isAsync,
  };
  const getter = edits.some((e) => e.getter);
  c.sentinel = edits.find((e) => e.sentinel)?.sentinel;
  const realEdits = edits.filter((e) => e.name !== 'noop' && !e.valid);
  // Target edits are judged on the final arrays: refused iff a live row (float32 weight != 0,
  // NaN included) holds a target outside [0, V).
  const targetEdits = realEdits.filter((e) => e.targets);
  if (targetEdits.length && !getter) {
    const t = Object.getOwnPropertyDescriptor(b.a, 'targets')?.value,
      m = Object.getOwnPropertyDescriptor(b.a, 'mask')?.value;
    const V = Object.getOwnPropertyDescriptor(b.a, 'vocab')?.value;
    if (
      isArr(t) &&
      (m === undefined || isArr(m)) &&
      t.length === b.meta.rows &&
      (!m || m.length === b.meta.rows) &&
      V === b.meta.V
    ) {
      const row = t.findIndex((y, r) => (!m || Math.fround(m[r]) !== 0) && (y < 0 || y >= V));
      for (const e of targetEdits)
        if (row >= 0) e.refuse = true;
        else e.accept = 'targets outside [0, V) only on masked rows';
    }
  }
  if (!whole || whole === 'vm') {
    if (!realEdits.length) c.mustAccept = 'valid options';
    else if (realEdits.every((e) => e.accept)) c.mustAccept = realEdits.map((e) => e.accept).join(', ');
  }
  if (!native && (whole === 'Proxy' || whole === 'null' || whole === 'array' || whole === 'number'))
    c.mustRefuse = 'options not a plain object';
  else if (!native && realEdits.some((e) => e.refuse)) c.mustRefuse = realEdits.find((e) => e.refuse).name;
  else if (native && realEdits.some((e) => e.refuse && (e.targets || /detached|offsets/.test(e.name))))
    c.mustRefuse = 'a memory-relevant bad value';
  if (getter || c.mustAccept === undefined) delete c.mustAccept;
  if (c.mustAccept) delete c.mustRefuse;
  if (!native) c.fnName = op;
  if (native) c.mayThrowSync = true; // the addon's async form throws argument errors synchronously
  const fn = native ? addon[`${op}${isAsync ? 'Async' : ''}`] : gvpo[`${op}${isAsync ? 'Async' : ''}`];
  c.call = () => fn(a);
  if (probe && isAsync)
    c.afterCall = () => {
      ctx.gc();
      ctx.gc();
    };
  // a public async call whose logits are transferred (and collected) while it runs
  if (isAsync && !native && !whole && !realEdits.length && !getter && large && g.r() < 0.1) {
    const z = a[large];
    c.afterCall = () => {
      detach(z);
      ctx.gc();
    };
    c.allowDetachedError = true;
    delete c.mustAccept;
    c.what += `; ${large} transferred mid-call`;
  }
  if (!getter && a && typeof a === 'object' && !whole) {
    const m = a.mask;
    if (b.lp || b.grad)
      Object.assign(c, {
        rows: b.meta.rows,
        V: b.meta.V,
        mask: ArrayBuffer.isView(m) && !(m instanceof BigInt64Array) ? m : undefined,
        lpField: b.lp,
        gradField: b.grad,
        gradWidth: b.gradWidth ?? b.meta.V,
      });
  }
  if (!whole || whole === 'vm') {
    const own = (k) => Object.getOwnPropertyDescriptor(b.a, k)?.value;
    if (b.grad && own('inPlace') === true) c.writes = ['arg0.logits'];
    if (own('out') !== undefined) c.writes = ['arg0.out', 'arg0.logits'];
    if (own('gradHidden') !== undefined || own('gradWeight') !== undefined)
      c.writes = ['arg0.gradHidden', 'arg0.gradWeight'];
    // the addon called directly writes where it is told, an input included (memory it owns)
    if (edits.some((e) => e.writesHidden)) c.writes.push('arg0.hidden');
  }
  return c;
}

function helperCase(g, gvpo, ctx) {
  const to = g.r() < 0.5;
  const good = to
    ? Float32Array.from({ length: 5 }, () => g.normal() * 1e4)
    : Uint16Array.from({ length: 5 }, () => g.int(65536));
  const values = g.pick([
    good,
    good,
    good,
    Array.from(good),
    new Proxy(good, {}),
    'abc',
    null,
    5,
    undefined,
    {},
    to ? new Uint16Array(3) : Float32Array.of(1.5, 2),
    ctx.vm.runInNewContext(`${good.constructor.name}.from(src)`, { src: good }),
    (() => {
      const d = good.slice();
      detach(d);
      return d;
    })(),
  ]);
  const dtype = g.pick(['bfloat16', 'float16', 'bfloat16', 'float16', 'float32', 'fp16', undefined, 5, null]);
  const detached = ArrayBuffer.isView(values) && values.length === 0;
  const okValues =
    values === good ||
    (ArrayBuffer.isView(values) && values.constructor.name === good.constructor.name && values.length === 5) ||
    (to && Array.isArray(values));
  const okDtype = dtype === 'bfloat16' || dtype === 'float16';
  const name = to ? 'toHalf' : 'fromHalf';
  const c = {
    what: `${name}(${ArrayBuffer.isView(values) ? values.constructor.name : typeof values}, ${String(dtype)})`,
    args: [values],
    async: false,
  };
  c.call = () => gvpo[name](values, dtype);
  if (okValues && okDtype) c.mustAccept = 'valid arguments';
  else if (!okDtype) c.mustRefuse = `dtype ${String(dtype)}`;
  else if (
    !(to && detached) &&
    !(to && values && typeof values === 'object' && !ArrayBuffer.isView(values) && !Array.isArray(values))
  )
    c.mustRefuse = 'values of the wrong kind';
  return c;
}
