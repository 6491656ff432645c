// Property tests (fast-check): random shapes, dtypes, masks, temperatures and ragged group
// layouts; the active backend must equal the float64 reference on every draw.
import fc from 'fast-check';
import { describe, it } from 'vitest';
import { gvpoFromHidden, gvpoFromLogits, tokenLogprobs } from '../src/index.js';
import { gvpoFromHiddenRef } from '../src/reference/gvpoFromHidden.js';
import { gvpoFromLogitsRef } from '../src/reference/gvpoFromLogits.js';
import { tokenLogprobsF64 } from '../src/reference/tokenLogprobs.js';
import type { DType } from '../src/types.js';
import { allclose, gradClose } from './helpers/allclose.js';
import { bf16Products, productClose, productSums } from './helpers/bf16Products.js';
import { batch, randomRewards, rng } from './helpers/data.js';

const RUNS = Number(process.env.GVPO_PROPERTY_RUNS ?? 1000);

const dtypeArb = fc.constantFrom<DType>('float32', 'bfloat16', 'float16');

// group sizes summing to N (ragged, size-1 groups allowed)
const layoutArb = fc.array(fc.integer({ min: 1, max: 4 }), { minLength: 1, maxLength: 4 });

function offsets(sizes: number[]): Int32Array {
  const off = new Int32Array(sizes.length + 1);
  sizes.forEach((k, g) => (off[g + 1] = off[g] + k));
  return off;
}

describe('property: native equals reference', () => {
  it(`gvpoFromLogits on ${RUNS} random shapes and layouts`, () => {
    fc.assert(
      fc.property(
        layoutArb,
        fc.integer({ min: 1, max: 4 }),
        fc.integer({ min: 1, max: 200 }),
        dtypeArb,
        fc.double({ min: 0.3, max: 3, noNaN: true }),
        fc.double({ min: 0.01, max: 2, noNaN: true }),
        fc.integer({ min: 0, max: 2 ** 30 }),
        fc.constantFrom<'mean' | 'sum'>('mean', 'sum'),
        (sizes, T, V, dtype, temperature, beta, seed, reduction) => {
          const N = sizes.reduce((a, b) => a + b);
          const b = batch(seed, N, T, V, dtype, 2);
          const r = rng(seed + 1);
          for (let i = 0; i < b.mask.length; i++) if (r() < 0.25) b.mask[i] = 0; // fully masked sequences happen
          const a = {
            ...b,
            rewards: randomRewards(seed, N),
            groups: { offsets: offsets(sizes) },
            beta,
            temperature,
            reduction,
          };
          const got = gvpoFromLogits(a);
          const want = gvpoFromLogitsRef({ ...a, offsets: a.groups.offsets, inPlace: false });
          allclose([got.loss], [want.loss], { atol: 1e-7, rtol: 1e-4 }, 'loss');
          allclose(got.policyLogprobs, want.policyLogprobs, { atol: 1e-5 * T * 10, rtol: 1e-5 }, 'S');
          // atol: a gradient that is 0 in exact arithmetic (V = 1) comes out as 1 - exp(x - logZ)
          // with logZ stored in float32: about |x| * 2^-24 * beta / tau, 1e-7 here
          gradClose(got.gradLogits, want.gradLogits, 1e-4, 1e-6);
        },
      ),
      { numRuns: RUNS, seed: 20261121 },
    );
  });

  it(`gvpoFromHidden on ${RUNS} random shapes and layouts`, () => {
    fc.assert(
      fc.property(
        layoutArb,
        fc.integer({ min: 1, max: 4 }),
        fc.integer({ min: 1, max: 40 }),
        fc.integer({ min: 1, max: 200 }),
        dtypeArb,
        fc.double({ min: 0.3, max: 3, noNaN: true }),
        fc.double({ min: 0.01, max: 2, noNaN: true }),
        fc.integer({ min: 0, max: 2 ** 30 }),
        fc.constantFrom<'mean' | 'sum'>('mean', 'sum'),
        (sizes, T, H, V, dtype, temperature, beta, seed, reduction) => {
          const N = sizes.reduce((a, b) => a + b);
          const h = batch(seed, N, T, H, dtype, 1); // N*T x H hidden states, with targets and mask
          const w = batch(seed + 2, V, 1, H, dtype, 1 / Math.sqrt(H)); // V x H weight
          const r = rng(seed + 1);
          const targets = Int32Array.from({ length: N * T }, () => Math.floor(r() * V));
          for (let i = 0; i < h.mask.length; i++) if (r() < 0.25) h.mask[i] = 0; // fully masked sequences happen
          const a = {
            hidden: h.logits,
            weight: w.logits,
            dtype,
            targets,
            mask: h.mask,
            sequences: N,
            tokens: T,
            hiddenSize: H,
            vocab: V,
            rewards: randomRewards(seed, N),
            groups: { offsets: offsets(sizes) },
            beta,
            temperature,
            reduction,
          };
          const got = gvpoFromHidden(a);
          const want = gvpoFromHiddenRef({
            ...a,
            rows: N * T,
            offsets: a.groups.offsets,
            gradHidden: new Float32Array(N * T * H),
            gradWeight: new Float32Array(V * H),
            accumulate: false,
          });
          allclose([got.loss], [want.loss], { atol: 1e-7, rtol: 1e-4 }, 'loss');
          allclose(got.policyLogprobs, want.policyLogprobs, { atol: 1e-5 * T * 10, rtol: 1e-5 }, 'S');
          if (bf16Products(dtype)) {
            // dZ rounded to bfloat16 where it meets the inputs
            const { aH, aW } = productSums(a, want.logZ, want.gradLogprobs);
            productClose(got.gradHidden, want.gradHidden, aH, 1e-4, 'dL/dhidden', 1e-6);
            productClose(got.gradWeight, want.gradWeight, aW, 1e-4, 'dL/dweight', 1e-6);
            return;
          }
          gradClose(got.gradHidden, want.gradHidden, 1e-4, 1e-6);
          gradClose(got.gradWeight, want.gradWeight, 1e-4, 1e-6);
        },
      ),
      { numRuns: RUNS, seed: 20261122 },
    );
  });

  it(`tokenLogprobs on ${RUNS} random shapes`, () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 16 }),
        fc.integer({ min: 1, max: 700 }),
        dtypeArb,
        fc.double({ min: 0.3, max: 3, noNaN: true }),
        fc.integer({ min: 0, max: 2 ** 30 }),
        (R, V, dtype, temperature, seed) => {
          const b = batch(seed, R, 1, V, dtype, 4);
          const a = { logits: b.logits, dtype, targets: b.targets, rows: R, vocab: V, temperature };
          const got = tokenLogprobs(a);
          const want = tokenLogprobsF64(a);
          allclose(got.logZ, want.logZ, { atol: 1e-5, rtol: 1e-5 }, 'logZ');
          allclose(got.logprobs, want.logprobs, { atol: 1e-4, rtol: 1e-5 }, 'logprobs');
        },
      ),
      { numRuns: RUNS, seed: 1121 },
    );
  });
});
