// Bad input (docs/DESIGN.md, "Bad input"): every row refused before any work, with the exact
// error class and message, through the public API (whichever backend is active); and the native
// addon called directly, which re-checks what addresses memory, with the process alive.
import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import {
  backendInfo,
  fromHalf,
  gvpoBackward,
  gvpoForward,
  gvpoForwardAsync,
  gvpoFromHidden,
  gvpoFromHiddenBackward,
  gvpoFromHiddenForward,
  gvpoFromLogits,
  gvpoLoss,
  groupCenter,
  sequenceLogprobs,
  tokenLogprobs,
  tokenLogprobsFromHidden,
  tokenLogprobsFromHiddenBackward,
  tokenLogprobsFromHiddenBackwardAsync,
  toHalf,
} from '../src/index.js';
import { batch } from './helpers/data.js';

const N = 4,
  T = 3,
  V = 11;
function good() {
  const b = batch(1, N, T, V);
  return { ...b, rewards: [1, 0, 1, 0], groups: { size: 2 } as { size: number } | { offsets: Int32Array }, beta: 0.1 };
}

type Row = [string, (a: ReturnType<typeof good>) => Record<string, unknown>, ErrorConstructor, string];

const FN = 'gvpoFromLogits';
// [what, how the arguments are broken, class, exact message]
const TABLE: Row[] = [
  ['options not an object', () => 42 as never, TypeError, `${FN}: options must be an object, got 42`],
  [
    'logits of the wrong kind',
    (a) => ({ ...a, logits: new Float64Array(N * T * V) }),
    TypeError,
    `${FN}: logits must be a Float32Array, got Float64Array`,
  ],
  [
    '16-bit logits as Float32Array',
    (a) => ({ ...a, dtype: 'bfloat16' }),
    TypeError,
    `${FN}: logits must be a Uint16Array of bfloat16 bit patterns (toHalf(values, 'bfloat16') makes them from float32 values), got Float32Array`,
  ],
  [
    '16-bit bit patterns without their dtype',
    (a) => ({ ...a, logits: new Uint16Array(N * T * V) }),
    TypeError,
    `${FN}: logits must be a Float32Array (16-bit bit patterns need dtype: 'bfloat16' or 'float16'), got Uint16Array`,
  ],
  [
    'float16 logits of the wrong kind',
    (a) => ({ ...a, dtype: 'float16', logits: new Int32Array(N * T * V) }),
    TypeError,
    `${FN}: logits must be a Uint16Array of float16 bit patterns, got Int32Array`,
  ],
  [
    'unknown dtype',
    (a) => ({ ...a, dtype: 'fp8' }),
    RangeError,
    `${FN}: dtype must be 'float32' | 'bfloat16' | 'float16', got 'fp8'`,
  ],
  [
    'logits length off by one',
    (a) => ({ ...a, logits: new Float32Array(N * T * V - 1) }),
    RangeError,
    `${FN}: logits must be of length sequences*tokens*vocab = ${N * T * V}, got length ${N * T * V - 1}`,
  ],
  [
    'logits for another vocabulary',
    (a) => ({ ...a, logits: new Float32Array(N * T * (V + 1)) }),
    RangeError,
    `${FN}: logits must be of length sequences*tokens*vocab = ${N * T * V}, got length ${N * T * (V + 1)} (${N * T} rows of ${V + 1}: is vocab ${V + 1}, not ${V}?)`,
  ],
  [
    'targets of the wrong kind',
    (a) => ({ ...a, targets: new Float32Array(N * T) }),
    TypeError,
    `${FN}: targets must be an Int32Array, got Float32Array`,
  ],
  [
    'targets length',
    (a) => ({ ...a, targets: new Int32Array(N * T + 1) }),
    RangeError,
    `${FN}: targets must be of length sequences*tokens = ${N * T}, got length ${N * T + 1}`,
  ],
  [
    'mask length',
    (a) => ({ ...a, mask: new Float32Array(2) }),
    RangeError,
    `${FN}: mask must be of length sequences*tokens = ${N * T}, got length 2`,
  ],
  [
    'mask of the wrong kind',
    (a) => ({ ...a, mask: [1, 1] }),
    TypeError,
    `${FN}: mask must be a Float32Array, Float64Array, Uint8Array or Int32Array, got Array`,
  ],
  [
    'zero sequences',
    (a) => ({ ...a, sequences: 0 }),
    RangeError,
    `${FN}: sequences must be an integer in [1, 2147483647], got 0`,
  ],
  ['zero vocab', (a) => ({ ...a, vocab: 0 }), RangeError, `${FN}: vocab must be an integer in [1, 2147483647], got 0`],
  [
    'fractional tokens',
    (a) => ({ ...a, tokens: 2.5 }),
    RangeError,
    `${FN}: tokens must be an integer in [1, 2147483647], got 2.5`,
  ],
  ['tokens as a string', (a) => ({ ...a, tokens: '3' }), TypeError, `${FN}: tokens must be an integer >= 1, got '3'`],
  [
    'sizes whose product overflows (N*T)',
    (a) => ({ ...a, sequences: 2147483647, tokens: 2147483647 }),
    RangeError,
    `${FN}: sequences*tokens must be a product of sizes below 2^53, got an overflowing product`,
  ],
  [
    'sizes whose product overflows (N*T*V)',
    (a) => ({ ...a, sequences: 2 ** 20, tokens: 2 ** 20, vocab: 2 ** 20 }),
    RangeError,
    `${FN}: logits must be a product of sizes below 2^53, got an overflowing product`,
  ],
  [
    'target out of range under the mask',
    (a) => ({ ...a, targets: Int32Array.from({ length: N * T }, (_, i) => (i === 4 ? V : 0)) }),
    RangeError,
    `${FN}: targets must be token ids in [0, ${V}) where the mask is non-zero, got ${V} at index 4`,
  ],
  [
    'negative target under the mask',
    (a) => ({ ...a, targets: Int32Array.from({ length: N * T }, (_, i) => (i === 2 ? -1 : 0)) }),
    RangeError,
    `${FN}: targets must be token ids in [0, ${V}) where the mask is non-zero, got -1 at index 2`,
  ],
  [
    'temperature 0',
    (a) => ({ ...a, temperature: 0 }),
    RangeError,
    `${FN}: temperature must be a finite number > 0, got 0`,
  ],
  [
    'temperature NaN',
    (a) => ({ ...a, temperature: NaN }),
    RangeError,
    `${FN}: temperature must be a finite number > 0, got NaN`,
  ],
  ['beta 0', (a) => ({ ...a, beta: 0 }), RangeError, `${FN}: beta must be a finite number > 0, got 0`],
  ['beta negative', (a) => ({ ...a, beta: -0.1 }), RangeError, `${FN}: beta must be a finite number > 0, got -0.1`],
  [
    'beta infinite',
    (a) => ({ ...a, beta: Infinity }),
    RangeError,
    `${FN}: beta must be a finite number > 0, got Infinity`,
  ],
  [
    'beta missing',
    (a) => ({ ...a, beta: undefined }),
    TypeError,
    `${FN}: beta must be a finite number > 0, got undefined`,
  ],
  [
    'rewards length',
    (a) => ({ ...a, rewards: [1, 2, 3] }),
    RangeError,
    `${FN}: rewards must be of length sequences = ${N}, got length 3`,
  ],
  [
    'non-finite reward',
    (a) => ({ ...a, rewards: [1, NaN, 0, 0] }),
    RangeError,
    `${FN}: rewards must be finite numbers, got NaN at index 1`,
  ],
  [
    'non-finite reference log-prob',
    (a) => ({ ...a, referenceLogprobs: [0, 0, -Infinity, 0] }),
    RangeError,
    `${FN}: referenceLogprobs must be finite numbers, got -Infinity at index 2`,
  ],
  [
    'reference of the wrong length',
    (a) => ({ ...a, referenceLogprobs: [0, 0] }),
    RangeError,
    `${FN}: referenceLogprobs must be of length sequences = ${N}, got length 2`,
  ],
  [
    'group size not dividing N',
    (a) => ({ ...a, groups: { size: 3 } }),
    RangeError,
    `${FN}: groups.size must be a divisor of the number of sequences ${N}, got 3`,
  ],
  [
    'offsets not covering N',
    (a) => ({ ...a, groups: { offsets: Int32Array.from([0, 2, 3]) } }),
    RangeError,
    `${FN}: groups.offsets must be offsets ending at the number of sequences ${N}, got 3`,
  ],
  [
    'offsets not starting at 0',
    (a) => ({ ...a, groups: { offsets: Int32Array.from([1, 2, 4]) } }),
    RangeError,
    `${FN}: groups.offsets must be offsets starting at 0, got 1 at index 0`,
  ],
  [
    'offsets not increasing',
    (a) => ({ ...a, groups: { offsets: Int32Array.from([0, 2, 2, 4]) } }),
    RangeError,
    `${FN}: groups.offsets must be strictly increasing offsets, got 2 after 2 at index 2`,
  ],
  [
    'offsets of the wrong kind',
    (a) => ({ ...a, groups: { offsets: [0, 4] } }),
    TypeError,
    `${FN}: groups.offsets must be an Int32Array, got Array`,
  ],
  [
    'reduction unknown',
    (a) => ({ ...a, reduction: 'max' }),
    RangeError,
    `${FN}: reduction must be 'mean' | 'sum', got 'max'`,
  ],
  [
    'inPlace for 16-bit logits',
    (a) => ({ ...batch(1, N, T, V, 'bfloat16'), rewards: a.rewards, groups: a.groups, beta: 0.1, inPlace: true }),
    RangeError,
    `${FN}: inPlace must be false for 16-bit logits (the gradient is float32), got true`,
  ],
  [
    'threads negative',
    (a) => ({ ...a, threads: -1 }),
    RangeError,
    `${FN}: threads must be an integer in [0, 1024], got -1`,
  ],
];

describe('bad input (public API)', () => {
  for (const [what, broken, cls, message] of TABLE) {
    it(`${what}: ${cls.name}`, () => {
      const a = good();
      const snapshot = Float32Array.from(a.logits as Float32Array);
      const args = broken(a);
      let err: unknown;
      try {
        gvpoFromLogits(args as never);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(cls);
      expect((err as Error).message).toBe(message);
      expect(Array.from(a.logits as Float32Array)).toEqual(Array.from(snapshot));
    });
  }

  it('the other entry points name themselves and their arguments', () => {
    expect(() => tokenLogprobs({ logits: new Float32Array(6), targets: new Int32Array(2), rows: 2, vocab: 4 })).toThrow(
      new RangeError(
        'tokenLogprobs: logits must be of length rows*vocab = 8, got length 6 (2 rows of 3: is vocab 3, not 4?)',
      ),
    );
    expect(() =>
      tokenLogprobs({ logits: new Float32Array(12), targets: new Int32Array(2), rows: 2, vocab: 4 }),
    ).toThrow(
      new RangeError(
        'tokenLogprobs: logits must be of length rows*vocab = 8, got length 12 (2 rows of 6: is vocab 6, not 4?)',
      ),
    );
    expect(() =>
      gvpoFromHidden({
        hidden: new Float32Array(6),
        weight: new Float32Array(15),
        targets: new Int32Array(2),
        mask: new Float32Array(2),
        sequences: 2,
        tokens: 1,
        hiddenSize: 3,
        vocab: 4,
        rewards: [0, 1],
        groups: { size: 2 },
        beta: 0.1,
      }),
    ).toThrow(
      new RangeError(
        'gvpoFromHidden: weight must be of length vocab*hiddenSize = 12, got length 15 (5 rows of hiddenSize 3: is vocab 5, not 4?)',
      ),
    );
    expect(() =>
      sequenceLogprobs({
        tokenLogprobs: new Int32Array(4) as never,
        mask: new Float32Array(4),
        sequences: 2,
        tokens: 2,
      }),
    ).toThrow(new TypeError('sequenceLogprobs: tokenLogprobs must be a Float32Array or Float64Array, got Int32Array'));
    expect(() => groupCenter({ values: [1, 2, 3], groups: { size: 2 } })).toThrow(
      new RangeError('groupCenter: groups.size must be a divisor of the number of sequences 3, got 2'),
    );
    expect(() =>
      gvpoLoss({ policyLogprobs: [1, 2], referenceLogprobs: [1], rewards: [0, 1], groups: { size: 2 }, beta: 1 }),
    ).toThrow(new RangeError('gvpoLoss: referenceLogprobs must be of length policyLogprobs.length = 2, got length 1'));
    expect(() =>
      gvpoLoss({ policyLogprobs: [1, NaN], referenceLogprobs: [1, 1], rewards: [0, 1], groups: { size: 2 }, beta: 1 }),
    ).toThrow(new RangeError('gvpoLoss: policyLogprobs must be finite numbers, got NaN at index 1'));
    const a = good();
    expect(() =>
      gvpoBackward({ ...a, groups: undefined, logZ: new Float32Array(N * T), gradLogprobs: [1, 2] } as never),
    ).toThrow(new RangeError('gvpoBackward: gradLogprobs must be of length sequences = 4, got length 2'));
  });

  it('async twins reject (never throw synchronously) with the same errors', async () => {
    const { gvpoFromLogitsAsync } = await import('../src/index.js');
    const a = good();
    await expect(gvpoFromLogitsAsync({ ...a, beta: -1 })).rejects.toThrow(
      new RangeError(`${FN}: beta must be a finite number > 0, got -1`),
    );
  });
});

// The two phases take every option of the one-shot op (one options object serves all three
// calls) and check each by its rules, those they do not use included: the table's refusals are
// theirs too, under their own names. Only the loss options' presence is not required of them.
describe('bad input (the two phases)', () => {
  const PHASE_ROWS: Row[] = [
    ...TABLE.filter(([what]) => what !== 'beta missing'),
    [
      'rewards a string',
      (a) => ({ ...a, rewards: 'x' }),
      TypeError,
      `${FN}: rewards must be a Float64Array, Float32Array or number[], got 'x'`,
    ],
    [
      'reduction not a string',
      (a) => ({ ...a, reduction: 1 }),
      TypeError,
      `${FN}: reduction must be 'mean' | 'sum', got 1`,
    ],
    [
      'inPlace not a boolean',
      (a) => ({ ...a, inPlace: 'yes' }),
      TypeError,
      `${FN}: inPlace must be a boolean, got 'yes'`,
    ],
    [
      'out of the wrong kind',
      (a) => ({ ...a, out: new Float64Array(1) }),
      TypeError,
      `${FN}: out must be a Float32Array, got Float64Array`,
    ],
    [
      'out of the wrong length',
      (a) => ({ ...a, out: new Float32Array(1) }),
      RangeError,
      `${FN}: out must be of length the logits' length = ${N * T * V}, got length 1`,
    ],
    [
      'inPlace and out',
      (a) => ({ ...a, inPlace: true, out: new Float32Array(N * T * V) }),
      RangeError,
      `${FN}: out must be absent when inPlace is true, got an out buffer as well`,
    ],
    [
      'reference token log-probs of the wrong length',
      (a) => ({ ...a, referenceTokenLogprobs: new Float32Array(1) }),
      RangeError,
      `${FN}: referenceTokenLogprobs must be of length sequences*tokens = ${N * T}, got length 1`,
    ],
  ];
  const phase2 = { logZ: new Float32Array(N * T), gradLogprobs: [0.1, -0.1, 0.2, -0.2] };
  const phases: Array<[string, (args: unknown) => unknown]> = [
    ['gvpoForward', (args) => gvpoForward(args as never)],
    ['gvpoBackward', (args) => gvpoBackward({ ...(args as object), ...phase2 } as never)],
  ];
  for (const [what, broken, cls, message] of PHASE_ROWS) {
    for (const [fn, call] of phases) {
      if (what === 'options not an object' && fn === 'gvpoBackward') continue; // phase 2's extras make it one
      it(`${fn}, ${what}: ${cls.name}`, () => {
        const a = good();
        const snapshot = Float32Array.from(a.logits as Float32Array);
        let err: unknown;
        try {
          call(broken(a));
        } catch (e) {
          err = e;
        }
        expect(err).toBeInstanceOf(cls);
        expect((err as Error).message).toBe(message.replace(FN, fn));
        expect(Array.from(a.logits as Float32Array)).toEqual(Array.from(snapshot));
      });
    }
  }

  it("the fused head's phases check the loss options and gradWeight alike", () => {
    const H = 2;
    const b = good();
    const head = {
      hidden: Float32Array.from({ length: N * T * H }, (_, i) => Math.sin(i)),
      weight: Float32Array.from({ length: V * H }, (_, i) => Math.cos(i)),
      targets: b.targets,
      mask: b.mask,
      sequences: N,
      tokens: T,
      hiddenSize: H,
      vocab: V,
      rewards: b.rewards,
      groups: b.groups,
      beta: 0.1,
    };
    const f = gvpoFromHiddenForward(head);
    const back = { ...head, logZ: f.logZ, gradLogprobs: [0.1, -0.1, 0.2, -0.2] };
    expect(gvpoFromHiddenBackward(back).gradHidden.length).toBe(N * T * H);
    for (const [fn, call] of [
      ['gvpoFromHiddenForward', (o: object) => gvpoFromHiddenForward(o as never)],
      ['gvpoFromHiddenBackward', (o: object) => gvpoFromHiddenBackward({ ...back, ...o } as never)],
    ] as const) {
      const base = fn === 'gvpoFromHiddenForward' ? head : back;
      expect(() => call({ ...base, beta: -1 })).toThrow(
        new RangeError(`${fn}: beta must be a finite number > 0, got -1`),
      );
      expect(() => call({ ...base, rewards: 'x' })).toThrow(
        new TypeError(`${fn}: rewards must be a Float64Array, Float32Array or number[], got 'x'`),
      );
      expect(() => call({ ...base, groups: { size: 3 } })).toThrow(
        new RangeError(`${fn}: groups.size must be a divisor of the number of sequences ${N}, got 3`),
      );
      expect(() => call({ ...base, reduction: 'avg' })).toThrow(
        new RangeError(`${fn}: reduction must be 'mean' | 'sum', got 'avg'`),
      );
      expect(() => call({ ...base, referenceLogprobs: [NaN, 0, 0, 0] })).toThrow(
        new RangeError(`${fn}: referenceLogprobs must be finite numbers, got NaN at index 0`),
      );
      expect(() => call({ ...base, gradWeight: new Float64Array(2) })).toThrow(
        new TypeError(`${fn}: gradWeight must be a Float32Array, got Float64Array`),
      );
      expect(() => call({ ...base, accumulate: 'no' })).toThrow(
        new TypeError(`${fn}: accumulate must be a boolean, got 'no'`),
      );
      expect(() => call({ ...base, accumulate: true })).toThrow(
        new RangeError(`${fn}: gradWeight must be a Float32Array to add to when accumulate is true, got undefined`),
      );
    }
  });

  it('one valid options object serves the one-shot op and both phases', async () => {
    const a = {
      ...good(),
      referenceLogprobs: [-1, -2, -3, -4],
      reduction: 'sum' as const,
      out: new Float32Array(N * T * V),
    };
    const whole = gvpoFromLogits(a);
    const f = gvpoForward(a);
    expect(Array.from(f.policyLogprobs)).toEqual(Array.from(whole.policyLogprobs));
    const grad = gvpoBackward({
      ...a,
      out: new Float32Array(N * T * V),
      logZ: f.logZ,
      gradLogprobs: whole.gradLogprobs,
    });
    expect(Math.max(...grad.map((x, i) => Math.abs(x - whole.gradLogits[i])))).toBeLessThan(1e-6);
    await expect(gvpoForwardAsync({ ...a, beta: -1 })).rejects.toThrow(
      new RangeError('gvpoForward: beta must be a finite number > 0, got -1'),
    );
  });
});

// The fused head for any loss: rows x H hidden states, a V x H weight.
const R = 4,
  HS = 3,
  HV = 6;
function goodHead() {
  const buf = new Float32Array(R * HS + HV * HS); // hidden and weight side by side in one buffer
  buf.forEach((_, i) => {
    buf[i] = Math.sin(i);
  });
  return {
    hidden: buf.subarray(0, R * HS),
    weight: buf.subarray(R * HS),
    targets: Int32Array.of(0, 5, 2, 3),
    rows: R,
    hiddenSize: HS,
    vocab: HV,
    logZ: new Float32Array(R).fill(2),
    gradTokenLogprobs: new Float32Array(R).fill(1),
  };
}
type HeadRow = [string, (a: ReturnType<typeof goodHead>) => Record<string, unknown>, ErrorConstructor, string];
const HF = 'tokenLogprobsFromHidden',
  HB = 'tokenLogprobsFromHiddenBackward';
// [what, how the arguments are broken, class, exact message]; the forward ignores logZ and the
// upstream gradients, so its rows drop them.
const HEAD_FORWARD: HeadRow[] = [
  ['options not an object', () => 42 as never, TypeError, `${HF}: options must be an object, got 42`],
  [
    'a typo of entropy',
    (a) => ({ ...a, entropi: true }),
    TypeError,
    `${HF}: options has no field 'entropi' (did you mean 'entropy'?)`,
  ],
  [
    'a backward option',
    (a) => ({ ...a, accumulate: true }),
    TypeError,
    `${HF}: options has no field 'accumulate' (did you mean 'mask'?)`,
  ],
  [
    'hidden of the wrong kind',
    (a) => ({ ...a, hidden: new Float64Array(R * HS) }),
    TypeError,
    `${HF}: hidden must be a Float32Array, got Float64Array`,
  ],
  [
    '16-bit hidden as Float32Array',
    (a) => ({ ...a, dtype: 'float16' }),
    TypeError,
    `${HF}: hidden must be a Uint16Array of float16 bit patterns (toHalf(values, 'float16') makes them from float32 values), got Float32Array`,
  ],
  [
    'hidden length',
    (a) => ({ ...a, hidden: a.hidden.subarray(1) }),
    RangeError,
    `${HF}: hidden must be of length rows*hiddenSize = ${R * HS}, got length ${R * HS - 1}`,
  ],
  [
    'weight length',
    (a) => ({ ...a, weight: a.weight.subarray(1) }),
    RangeError,
    `${HF}: weight must be of length vocab*hiddenSize = ${HV * HS}, got length ${HV * HS - 1}`,
  ],
  ['zero rows', (a) => ({ ...a, rows: 0 }), RangeError, `${HF}: rows must be an integer in [1, 2147483647], got 0`],
  [
    'fractional hiddenSize',
    (a) => ({ ...a, hiddenSize: 1.5 }),
    RangeError,
    `${HF}: hiddenSize must be an integer in [1, 2147483647], got 1.5`,
  ],
  [
    'sizes whose product overflows',
    (a) => ({ ...a, rows: 2147483647, hiddenSize: 2147483647, vocab: 2147483647 }),
    RangeError,
    `${HF}: hidden must be a product of sizes below 2^53, got an overflowing product`,
  ],
  [
    'target out of range (no mask: every row live)',
    (a) => ({ ...a, targets: Int32Array.of(0, 6, 0, 0) }),
    RangeError,
    `${HF}: targets must be token ids in [0, ${HV}) where the mask is non-zero, got 6 at index 1`,
  ],
  [
    'target out of range on a live row',
    (a) => ({ ...a, targets: Int32Array.of(-1, 0, 0, 0), mask: Float32Array.of(0.5, 0, 1, 1) }),
    RangeError,
    `${HF}: targets must be token ids in [0, ${HV}) where the mask is non-zero, got -1 at index 0`,
  ],
  [
    'mask length',
    (a) => ({ ...a, mask: new Float32Array(2) }),
    RangeError,
    `${HF}: mask must be of length rows = ${R}, got length 2`,
  ],
  [
    'temperature 0',
    (a) => ({ ...a, temperature: 0 }),
    RangeError,
    `${HF}: temperature must be a finite number > 0, got 0`,
  ],
  [
    'entropy not a boolean',
    (a) => ({ ...a, entropy: 'yes' }),
    TypeError,
    `${HF}: entropy must be a boolean, got 'yes'`,
  ],
  [
    'threads negative',
    (a) => ({ ...a, threads: -1 }),
    RangeError,
    `${HF}: threads must be an integer in [0, 1024], got -1`,
  ],
];
const HEAD_BACKWARD: HeadRow[] = [
  ['logZ missing', (a) => ({ ...a, logZ: undefined }), TypeError, `${HB}: logZ must be a Float32Array, got undefined`],
  [
    'logZ length',
    (a) => ({ ...a, logZ: new Float32Array(3) }),
    RangeError,
    `${HB}: logZ must be of length rows = ${R}, got length 3`,
  ],
  [
    'gradTokenLogprobs of the wrong kind',
    (a) => ({ ...a, gradTokenLogprobs: new Float64Array(R) }),
    TypeError,
    `${HB}: gradTokenLogprobs must be a Float32Array, got Float64Array`,
  ],
  [
    'gradEntropy length',
    (a) => ({ ...a, gradEntropy: new Float32Array(R + 1) }),
    RangeError,
    `${HB}: gradEntropy must be of length rows = ${R}, got length ${R + 1}`,
  ],
  [
    'entropy of the wrong kind',
    (a) => ({ ...a, entropy: new Float64Array(R) }),
    TypeError,
    `${HB}: entropy must be a Float32Array (the forward's entropy) or a boolean, got Float64Array`,
  ],
  [
    'entropy length',
    (a) => ({ ...a, entropy: new Float32Array(2) }),
    RangeError,
    `${HB}: entropy must be of length rows = ${R}, got length 2`,
  ],
  [
    'accumulate without gradWeight',
    (a) => ({ ...a, accumulate: true }),
    RangeError,
    `${HB}: gradWeight must be a Float32Array to add to when accumulate is true, got undefined`,
  ],
  [
    'accumulate not a boolean',
    (a) => ({ ...a, accumulate: 1 }),
    TypeError,
    `${HB}: accumulate must be a boolean, got 1`,
  ],
  [
    'gradWeight of the wrong kind',
    (a) => ({ ...a, gradWeight: new Float64Array(HV * HS) }),
    TypeError,
    `${HB}: gradWeight must be a Float32Array, got Float64Array`,
  ],
  [
    'gradWeight length',
    (a) => ({ ...a, gradWeight: new Float32Array(HV * HS - 1) }),
    RangeError,
    `${HB}: gradWeight must be of length vocab*hiddenSize = ${HV * HS}, got length ${HV * HS - 1}`,
  ],
  [
    'gradWeight is the weight',
    (a) => ({ ...a, gradWeight: a.weight }),
    RangeError,
    `${HB}: gradWeight must be a buffer that does not overlap the inputs, got a view overlapping weight`,
  ],
  [
    'gradWeight overlapping hidden',
    (a) => ({ ...a, gradWeight: new Float32Array(a.hidden.buffer, 4, HV * HS) }),
    RangeError,
    `${HB}: gradWeight must be a buffer that does not overlap the inputs, got a view overlapping hidden`,
  ],
  [
    'a typo of gradEntropy',
    (a) => ({ ...a, gradEntorpy: a.logZ }),
    TypeError,
    `${HB}: options has no field 'gradEntorpy' (did you mean 'gradEntropy'?)`,
  ],
];

describe('bad input (the fused head for any loss)', () => {
  const cases: Array<[string, HeadRow]> = [
    ...HEAD_FORWARD.map((r): [string, HeadRow] => [HF, r]),
    ...HEAD_BACKWARD.map((r): [string, HeadRow] => [HB, r]),
  ];
  for (const [fn, [what, broken, cls, message]] of cases) {
    it(`${fn}: ${what}: ${cls.name}`, () => {
      const a = goodHead();
      const snapshot = Float32Array.from(new Float32Array(a.hidden.buffer));
      let args = broken(a);
      if (fn === HF && typeof args === 'object') {
        const { logZ: _l, gradTokenLogprobs: _g, ...rest } = args;
        args = rest;
      }
      let err: unknown;
      try {
        if (fn === HF) tokenLogprobsFromHidden(args as never);
        else tokenLogprobsFromHiddenBackward(args as never);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(cls);
      expect((err as Error).message).toBe(message);
      expect(Array.from(new Float32Array(a.hidden.buffer))).toEqual(Array.from(snapshot)); // nothing written
    });
  }

  it('the async twin rejects with the same error', async () => {
    await expect(tokenLogprobsFromHiddenBackwardAsync({ ...goodHead(), accumulate: true })).rejects.toThrow(
      new RangeError(`${HB}: gradWeight must be a Float32Array to add to when accumulate is true, got undefined`),
    );
  });
});

// The addon checks again on its own: call it directly with normalized options broken the same way.
const require = createRequire(import.meta.url);
let addon: Record<string, (o: unknown) => unknown> | undefined;
try {
  addon = require('../build/Release/gvpo.node');
} catch {
  addon = undefined;
}

describe.skipIf(!addon)('bad input (native addon called directly)', () => {
  function nativeOpts() {
    const b = batch(1, N, T, V);
    return {
      ...b,
      dtype: 'float32',
      temperature: 1,
      rewards: Float64Array.from([1, 0, 1, 0]),
      offsets: Int32Array.from([0, 2, 4]),
      beta: 0.1,
      reduction: 'mean',
    };
  }
  // Only what addresses memory is checked here (kinds, lengths, sizes, targets, offsets): the
  // rules about values (beta > 0, finite rewards, ...) belong to the TypeScript layer alone.
  const NATIVE: Array<[string, Record<string, unknown>, ErrorConstructor, string]> = [
    [
      'logits kind',
      { logits: new Float64Array(N * T * V) },
      TypeError,
      `${FN}: logits must be a Float32Array, got Float64Array`,
    ],
    [
      'logits length',
      { logits: new Float32Array(5) },
      RangeError,
      `${FN}: logits must be of length ${N * T * V}, got length 5`,
    ],
    [
      'targets range',
      { targets: new Int32Array(N * T).fill(V) },
      RangeError,
      `${FN}: targets must be token ids in [0, ${V}) where the mask is non-zero, got ${V} at index 0`,
    ],
    [
      'targets 2^31-1',
      { targets: new Int32Array(N * T).fill(2147483647) },
      RangeError,
      `${FN}: targets must be token ids in [0, ${V}) where the mask is non-zero, got 2147483647 at index 0`,
    ],
    [
      'offsets',
      { offsets: Int32Array.from([0, 3, 3, 4]) },
      RangeError,
      `${FN}: offsets must be strictly increasing from 0 to ${N}, got other values`,
    ],
    [
      'offsets cover',
      { offsets: Int32Array.from([0, 2]) },
      RangeError,
      `${FN}: offsets must be strictly increasing from 0 to ${N}, got other values`,
    ],
    [
      'offsets past N',
      { offsets: Int32Array.from([0, 2, 400]) },
      RangeError,
      `${FN}: offsets must be strictly increasing from 0 to ${N}, got other values`,
    ],
    [
      'rewards length',
      { rewards: new Float64Array(2) },
      RangeError,
      `${FN}: rewards must be of length ${N}, got length 2`,
    ],
    [
      'reference length',
      { referenceLogprobs: new Float64Array(1) },
      RangeError,
      `${FN}: referenceLogprobs must be of length ${N}, got length 1`,
    ],
    ['vocab 0', { vocab: 0 }, RangeError, `${FN}: vocab must be an integer in [1, 2147483647], got 0.000000`],
    [
      'overflow',
      { sequences: 2 ** 20, tokens: 2 ** 20, vocab: 2 ** 20 },
      RangeError,
      `${FN}: logits must be a product of sizes below 2^53, got an overflowing product`,
    ],
    ['dtype', { dtype: 'int8' }, TypeError, `${FN}: dtype must be 'float32' | 'bfloat16' | 'float16', got a string`],
    [
      'bfloat16 over Float32Array',
      { dtype: 'bfloat16' },
      TypeError,
      `${FN}: logits must be a Uint16Array, got Float32Array`,
    ],
    [
      'mask kind',
      { mask: new Uint8Array(N * T) },
      TypeError,
      `${FN}: mask must be a Float32Array, got another typed array`,
    ],
    ['out length', { out: new Float32Array(3) }, RangeError, `${FN}: out must be of length ${N * T * V}, got length 3`],
    ['threads', { threads: 1e9 }, RangeError, `${FN}: threads must be an integer in [0, 1024], got 1000000000.000000`],
  ];
  for (const [what, patch, cls, message] of NATIVE) {
    it(`${what}: ${cls.name}`, () => {
      const o = { ...nativeOpts(), ...patch };
      let err: unknown;
      try {
        addon!.gvpoFromLogits(o);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(cls);
      expect((err as Error).message).toBe(message);
    });
  }
  it('tokenLogprobsBackward: a masked row may hold any target and gets no gradient; a live one is checked', () => {
    const o = (y0: number, m0: number) => ({
      logits: Float32Array.of(1, 2, 3, 4, 0.1, 0.2, 0.3, 0.4),
      targets: Int32Array.of(y0, 0),
      mask: Float32Array.of(m0, 1),
      rows: 2,
      vocab: 4,
      logZ: Float32Array.of(4.5, 1.6),
      gradTokenLogprobs: Float32Array.of(1, 1),
    });
    for (const y of [-1, 4, 2147483647, -2147483648]) {
      const r = addon!.tokenLogprobsBackward(o(y, 0)) as { gradLogits: Float32Array };
      expect(Array.from(r.gradLogits.slice(0, 4))).toEqual([0, 0, 0, 0]);
      expect(() => addon!.tokenLogprobsBackward(o(y, 1))).toThrow(RangeError);
    }
    // no mask at all: every row is live, so every target is checked
    expect(() => addon!.tokenLogprobsBackward({ ...o(-1, 1), mask: undefined })).toThrow(
      new RangeError(
        'tokenLogprobsBackward: targets must be token ids in [0, 4) where the mask is non-zero, got -1 at index 0',
      ),
    );
  });

  it("the fused head for any loss: lengths, targets of live rows, the gradients' destinations", () => {
    const o = () => ({ ...goodHead(), dtype: 'float32', temperature: 1 });
    expect(() => addon!.tokenLogprobsFromHidden({ ...o(), hidden: new Float32Array(5) })).toThrow(
      new RangeError(`${HF}: hidden must be of length ${R * HS}, got length 5`),
    );
    expect(() => addon!.tokenLogprobsFromHidden({ ...o(), targets: Int32Array.of(0, 0, 0, HV) })).toThrow(
      new RangeError(`${HF}: targets must be token ids in [0, ${HV}) where the mask is non-zero, got ${HV} at index 3`),
    );
    expect(() => addon!.tokenLogprobsFromHiddenBackward({ ...o(), logZ: new Float32Array(1) })).toThrow(
      new RangeError(`${HB}: logZ must be of length ${R}, got length 1`),
    );
    expect(() => addon!.tokenLogprobsFromHiddenBackward({ ...o(), gradWeight: new Float32Array(2) })).toThrow(
      new RangeError(`${HB}: gradWeight must be of length ${HV * HS}, got length 2`),
    );
    expect(() => addon!.tokenLogprobsFromHiddenBackward({ ...o(), entropy: new Float32Array(2) })).toThrow(
      new RangeError(`${HB}: entropy must be of length ${R}, got length 2`),
    );
    // a masked row may hold any target, and gets nothing whatever its upstream
    const r = addon!.tokenLogprobsFromHiddenBackward({
      ...o(),
      targets: Int32Array.of(0, 2147483647, 0, 1),
      mask: Float32Array.of(1, 0, 1, 1),
      gradTokenLogprobs: Float32Array.of(1, NaN, 1, 1),
    }) as { gradHidden: Float32Array };
    expect(Array.from(r.gradHidden.subarray(HS, 2 * HS))).toEqual([0, 0, 0]);
    expect(r.gradHidden.every(Number.isFinite)).toBe(true);
  });

  it('an empty array is present, and refused by its length (napi gives it a null data pointer)', () => {
    // each of these read the null pointer of an empty array as "absent" and went on (a segfault
    // for a mask or logZ; a fresh array in place of an out)
    const empty = new Float32Array(0);
    const rows = N * T;
    for (const [op, patch, name, want] of [
      ['gvpoFromLogits', { mask: empty }, 'mask', rows],
      ['gvpoForward', { mask: empty }, 'mask', rows],
      ['gvpoFromLogits', { out: empty }, 'out', rows * V],
      ['gvpoFromLogits', { referenceLogprobs: new Float64Array(0) }, 'referenceLogprobs', N],
    ] as const) {
      expect(() => addon![op]({ ...nativeOpts(), ...patch }), `${op} ${name}`).toThrow(
        new RangeError(`${op}: ${name} must be of length ${want}, got length 0`),
      );
    }
    const o = () => ({ ...goodHead(), dtype: 'float32', temperature: 1 });
    for (const [name, want] of [
      ['logZ', R],
      ['gradTokenLogprobs', R],
      ['gradEntropy', R],
      ['gradWeight', HV * HS],
      ['gradHidden', R * HS],
    ] as const) {
      expect(() => addon!.tokenLogprobsFromHiddenBackward({ ...o(), [name]: empty }), name).toThrow(
        new RangeError(`${HB}: ${name} must be of length ${want}, got length 0`),
      );
    }
  });

  it('refuses a non-object', () => {
    expect(() => addon!.tokenLogprobs(undefined)).toThrow(new TypeError('tokenLogprobs: options must be an object'));
  });
});

describe("a typed array's length, buffer and offsets are read from the array itself", () => {
  // every check reads them by name: an own property or a subclass's getter could make a short
  // array pass (the js backend then read past its end; the addon read an empty one's null pointer)
  const shadow = <A extends ArrayBufferView>(a: A, key: string, value: unknown): A =>
    Object.defineProperty(a, key, { value });
  class Longer extends Float32Array {
    override get length() {
      return super.length + 8;
    }
  }
  it('refuses a shadowed length, buffer or byteOffset in the ops, naming the argument', () => {
    const o = () => ({ ...goodHead() });
    expect(() => tokenLogprobsFromHiddenBackward({ ...o(), logZ: shadow(new Float32Array(0), 'length', R) })).toThrow(
      new TypeError(
        `${HB}: logZ must be a typed array whose length, buffer and offsets are its own (not shadowed by a property), got Float32Array`,
      ),
    );
    const b = batch(1, N, T, V);
    const rows = N * T;
    const fake = shadow(b.logits.slice(0, 7), 'length', rows * V);
    expect(() => tokenLogprobs({ logits: fake, targets: b.targets, rows, vocab: V })).toThrow(
      /tokenLogprobs: logits must be a typed array whose length, buffer and offsets are its own/,
    );
    const elsewhere = shadow(b.logits.subarray(0), 'buffer', new ArrayBuffer(8));
    expect(() => tokenLogprobs({ logits: elsewhere, targets: b.targets, rows, vocab: V })).toThrow(/logits must be/);
    expect(() =>
      tokenLogprobs({ logits: shadow(b.logits.slice(), 'byteOffset', 4), targets: b.targets, rows, vocab: V }),
    ).toThrow(/logits must be/);
    expect(() => tokenLogprobs({ logits: new Longer(7), targets: b.targets, rows: 1, vocab: 15 })).toThrow(
      /logits must be a typed array whose length/,
    );
    expect(() =>
      gvpoLoss({
        policyLogprobs: shadow(new Float64Array(2), 'length', 4),
        referenceLogprobs: [0, 0, 0, 0],
        rewards: [1, 0, 1, 0],
        groups: { size: 2 },
        beta: 0.1,
      }),
    ).toThrow(/gvpoLoss: policyLogprobs must be a typed array whose length/);
  });
  it('a revoked Proxy as a list of numbers gets the usual TypeError', () => {
    const { proxy, revoke } = Proxy.revocable([1, 0, 1, 0], {});
    revoke();
    expect(() =>
      gvpoLoss({
        policyLogprobs: proxy,
        referenceLogprobs: [0, 0, 0, 0],
        rewards: [1, 0, 1, 0],
        groups: { size: 2 },
        beta: 0.1,
      }),
    ).toThrow(new TypeError('gvpoLoss: policyLogprobs must be a Float64Array, Float32Array or number[], got a Proxy'));
  });
});

describe('options and arrays that change or hide what they are', () => {
  it('a subclass getter that answers truly once and lies after is refused; a plain subclass is not', () => {
    class Liar extends Float32Array {
      n = 0;
      override get length() {
        return ++this.n <= 1 ? super.length : 100000;
      }
    }
    expect(() => tokenLogprobs({ logits: new Liar(5), targets: new Int32Array([4]), rows: 1, vocab: 5 })).toThrow(
      /tokenLogprobs: logits must be a typed array whose length, buffer and offsets are its own/,
    );
    class LiesAboutOffset extends Float32Array {
      n = 0;
      override get byteOffset() {
        return ++this.n <= 1 ? super.byteOffset : 1e9;
      }
    }
    const a = good();
    const out = new LiesAboutOffset((a.logits as Float32Array).buffer as ArrayBuffer);
    expect(() => gvpoFromLogits({ ...a, out })).toThrow(/gvpoFromLogits: out must be a typed array whose length/);
    expect(() =>
      fromHalf(
        new (class extends Uint16Array {
          override get length() {
            return 1e6;
          }
        })(2),
        'float16',
      ),
    ).toThrow(/fromHalf: bits must be a typed array whose length/);
    class Plain extends Float32Array {}
    const r = tokenLogprobs({ logits: Plain.from([1, 2, 3]), targets: new Int32Array([1]), rows: 1, vocab: 3 });
    expect(r.logprobs[0]).toBeLessThan(0);
  });
  it('an out over the same shared memory as the logits, through a second SharedArrayBuffer object', () => {
    const a = good();
    const sab = new SharedArrayBuffer((a.logits as Float32Array).byteLength);
    const logits = new Float32Array(sab);
    logits.set(a.logits as Float32Array);
    const alias = new Float32Array(structuredClone(sab)); // another object over the same memory
    alias[0] = 123;
    const same = logits[0] === 123; // true where structuredClone shares the memory (it does in Node 20)
    logits[0] = (a.logits as Float32Array)[0];
    const before = Float32Array.from(logits);
    if (same && backendInfo().compiled.includes('cpu')) {
      expect(() => gvpoFromLogits({ ...a, logits, out: alias })).toThrow(
        /gvpoFromLogits: out must be a buffer that does not overlap the inputs .*got a view overlapping logits/,
      );
      expect(Array.from(logits)).toEqual(Array.from(before));
    }
    // a second object over other memory is fine
    expect(() =>
      gvpoFromLogits({ ...a, logits, out: new Float32Array(new SharedArrayBuffer(sab.byteLength)) }),
    ).not.toThrow();
  });
  it('a targets array changed by a getter of another argument: the call computes on what was checked', () => {
    const a = good();
    const targets = Int32Array.from(a.targets);
    const rewards = [1, 0, 0.5, 1];
    Object.defineProperty(rewards, 0, {
      get() {
        targets[0] = 2 ** 31 - 1;
        return 1;
      },
    });
    const got = gvpoFromLogits({ ...a, targets, rewards });
    const want = gvpoFromLogits({ ...a, targets: Int32Array.from(a.targets), rewards: [1, 0, 0.5, 1] });
    expect(got.loss).toBe(want.loss);
    expect(Array.from(got.gradLogits)).toEqual(Array.from(want.gradLogits));
  });
  it('option names: inherited and non-enumerable typos are refused; Object.prototype is never read', () => {
    const b = batch(1, 1, 1, 3);
    const base = { logits: b.logits, targets: b.targets, rows: 1, vocab: 3 };
    const inherited = Object.assign(Object.create({ temprature: 1e-30 }) as object, base);
    expect(() => tokenLogprobs(inherited as never)).toThrow(
      new TypeError("tokenLogprobs: options has no field 'temprature' (did you mean 'temperature'?)"),
    );
    const hidden = Object.defineProperty({ ...base }, 'temprature', { value: 1e-30 });
    expect(() => tokenLogprobs(hidden)).toThrow(/options has no field 'temprature'/);
    const proto = Object.prototype as Record<string, unknown>;
    try {
      proto.inPlace = true;
      proto.temprature = 2;
      const a = good();
      const logits = Float32Array.from(a.logits as Float32Array);
      const r = gvpoFromLogits({ ...a, logits });
      expect(r.gradLogits).not.toBe(logits);
      expect(Array.from(logits)).toEqual(Array.from(a.logits as Float32Array));
    } finally {
      delete proto.inPlace;
      delete proto.temprature;
    }
    // a class's accessors are options (its methods and constructor are not names it gives)
    class Opts {
      logits = b.logits;
      targets = b.targets;
      rows = 1;
      get vocab() {
        return 3;
      }
    }
    expect(tokenLogprobs(new Opts() as never).logprobs[0]).toBeLessThanOrEqual(0);
  });
  it('a detached mask is a TypeError saying so; toHalf names itself for a revoked Proxy and a huge sparse array', () => {
    const a = good();
    const mask = Float32Array.from(a.mask);
    structuredClone(mask.buffer, { transfer: [mask.buffer] });
    expect(() => gvpoFromLogits({ ...a, mask })).toThrow(
      new TypeError('gvpoFromLogits: mask must be a typed array over a live (not detached) buffer, got Float32Array'),
    );
    const { proxy, revoke } = Proxy.revocable([1], {});
    revoke();
    expect(() => toHalf(proxy, 'float16')).toThrow(
      new TypeError('toHalf: values must be a Float32Array, Float64Array or number[], got a Proxy'),
    );
    const sparse = [1, 2];
    sparse.length = 2 ** 32 - 1;
    expect(() => toHalf(sparse, 'float16')).toThrow(
      new RangeError('toHalf: values must be at most 2147483647 numbers, got length 4294967295'),
    );
    // number[] inputs whose length no other argument bounds: the first hole is named before
    // anything of the claimed length is allocated (it was a bare "Array buffer allocation failed")
    expect(() => groupCenter({ values: sparse, groups: { size: 1 } })).toThrow(
      new TypeError('groupCenter: values[2] must be a number, got undefined'),
    );
    expect(() =>
      gvpoLoss({ policyLogprobs: sparse, referenceLogprobs: [0, 0], rewards: [0, 0], groups: { size: 2 }, beta: 1 }),
    ).toThrow(new TypeError('gvpoLoss: policyLogprobs[2] must be a number, got undefined'));
  });
});

describe('what the second outside run found', () => {
  it("a temperature above float32's max is refused (its float32 value is inf, 1/tau 0)", () => {
    const b = batch(1, 1, 1, 3);
    for (const t of [1e300, 3.5e38, Number.MAX_VALUE]) {
      expect(() => tokenLogprobs({ logits: b.logits, targets: b.targets, rows: 1, vocab: 3, temperature: t })).toThrow(
        new RangeError(
          `tokenLogprobs: temperature must be a number whose float32 value and reciprocal are finite (about 2.9e-39 to float32's max, 3.4e38), got ${t}`,
        ),
      );
    }
    expect(
      tokenLogprobs({ logits: b.logits, targets: b.targets, rows: 1, vocab: 3, temperature: 3e38 }).nonFiniteRows,
    ).toBe(0);
  });
  it('an array that passed its checks and was changed by a later getter is caught before the kernels', () => {
    const lie = (
      f: (logits: Float32Array) => void,
      refusal = /logits must be a typed array whose length, buffer and offsets are its own/,
    ) => {
      const a = good();
      const logits = Float32Array.from(a.logits as Float32Array);
      const before = Float32Array.from(logits);
      const rewards = [1, 0, 1, 0];
      Object.defineProperty(rewards, 0, {
        get() {
          f(logits);
          return 1;
        },
      });
      expect(() => gvpoFromLogits({ ...a, logits, rewards, out: new Float32Array(logits.buffer) })).toThrow(refusal);
      expect(Array.from(logits)).toEqual(Array.from(before));
    };
    lie((l) => Object.defineProperty(l, 'byteOffset', { value: 1e9 }));
    lie((l) => Object.defineProperty(l, 'length', { value: 1e7 }), /gvpoFromLogits: (logits|out) must be/);
    lie((l) =>
      Object.setPrototypeOf(
        l,
        class extends Float32Array {
          override get byteOffset() {
            return 1e9;
          }
        }.prototype,
      ),
    );
  });
  it("names from a class's accessors and inside groups are checked; holes are not filled from Array.prototype", () => {
    const b = batch(1, 1, 1, 3);
    class Opts {
      logits = b.logits;
      targets = b.targets;
      rows = 1;
      vocab = 3;
      get temprature() {
        return 2;
      }
    }
    expect(() => tokenLogprobs(new Opts() as never)).toThrow(/options has no field 'temprature'/);
    const a = good();
    expect(() =>
      gvpoFromLogits({ ...a, groups: Object.assign(Object.create({ sise: 2 }) as object, { size: 2 }) }),
    ).toThrow(/groups must be \{ size \} or \{ offsets \} \(no field 'sise'\)/);
    expect(() => gvpoFromLogits({ ...a, groups: Object.defineProperty({ size: 2 }, 'offset', { value: 1 }) })).toThrow(
      /no field 'offset'/,
    );
    const proto = Array.prototype as unknown as Record<number, unknown>;
    try {
      proto[1] = 99;
      // eslint-disable-next-line no-sparse-arrays
      expect(() => gvpoFromLogits({ ...a, rewards: [1, , 1, 0] as number[] })).toThrow(
        new TypeError('gvpoFromLogits: rewards[1] must be a number, got undefined'),
      );
    } finally {
      delete proto[1];
    }
    // options on a null-prototype parent are the caller's
    const base = Object.assign(Object.create(null) as object, {
      logits: b.logits,
      targets: b.targets,
      rows: 1,
      vocab: 3,
    });
    expect(tokenLogprobs(Object.create(base) as never).logprobs[0]).toBeLessThanOrEqual(0);
  });
});
