// The CUDA backend: on a machine with a device, the CUDA twins against the float64 reference;
// everywhere, a CUDA build must load, say it was compiled with CUDA, and say why it is not active.
import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { backendInfo } from '../src/index.js';
import { gvpoFromHiddenRef } from '../src/reference/gvpoFromHidden.js';
import { gvpoFromLogitsRef } from '../src/reference/gvpoFromLogits.js';
import { tokenLogprobsF64 } from '../src/reference/tokenLogprobs.js';
import type { DType } from '../src/types.js';
import { allclose, gradClose } from './helpers/allclose.js';
import { batch, randomRewards } from './helpers/data.js';

const require = createRequire(import.meta.url);
type Native = Record<string, (o: object) => Record<string, unknown>> & {
  nativeInfo(): { compiled: string[]; cudaDevices?: number; cudaError?: string };
};
let addon: Native | undefined;
try {
  addon = require('../build/Release/gvpo.node');
} catch {
  addon = undefined;
}
const info = addon?.nativeInfo();
const compiledCuda = !!info?.compiled.includes('cuda');
const device = compiledCuda && (info?.cudaDevices ?? 0) > 0;

describe('CUDA build', () => {
  it.runIf(process.env.GVPO_EXPECT_CUDA_BUILD === '1')(
    'loads, reports cuda as compiled, and says why it is not active',
    () => {
      expect(compiledCuda).toBe(true);
      const b = backendInfo();
      expect(b.compiled).toContain('cuda');
      for (const op of [
        'cudaTokenLogprobs',
        'cudaGvpoFromLogits',
        'cudaGvpoFromHidden',
        'cudaGvpoFromHiddenForward',
        'cudaGvpoFromHiddenBackward',
      ]) {
        expect(typeof addon![op], op).toBe('function');
        expect(typeof addon![`${op}Async`], `${op}Async`).toBe('function');
      }
      if (!device) {
        expect(b.active).not.toBe('cuda');
        expect(b.loadErrors.join('\n')).toMatch(/cuda: compiled in, but/);
      }
    },
  );
});

describe.skipIf(!device)(
  `CUDA kernels on a device (${device ? 'present' : 'skipped: no CUDA device or no CUDA build'})`,
  () => {
    for (const dtype of ['float32', 'bfloat16', 'float16'] as DType[]) {
      it(`${dtype}: cudaTokenLogprobs and cudaGvpoFromLogits equal the float64 reference`, () => {
        const N = 6,
          T = 5,
          V = 4099;
        const b = batch(17, N, T, V, dtype, 2, 1);
        const tok = addon!.cudaTokenLogprobs({
          logits: b.logits,
          dtype,
          targets: b.targets,
          rows: N * T,
          vocab: V,
          temperature: 1,
        });
        const want = tokenLogprobsF64({
          logits: b.logits,
          dtype,
          targets: b.targets,
          rows: N * T,
          vocab: V,
          temperature: 1,
        });
        allclose(tok.logZ as Float32Array, want.logZ, { atol: 2e-5, rtol: 2e-5 }, 'logZ');
        const offsets = Int32Array.from([0, 2, 3, 6]);
        const o = {
          ...b,
          dtype,
          temperature: 1,
          rewards: randomRewards(2, N),
          offsets,
          beta: 0.1,
          reduction: 'mean' as const,
          referenceLogprobs: Float64Array.from({ length: N }, (_, n) => -40 - n),
        };
        const got = addon!.cudaGvpoFromLogits(o);
        const ref = gvpoFromLogitsRef({ ...o, inPlace: false });
        expect(got.loss as number).toBeCloseTo(ref.loss, 5);
        gradClose(got.gradLogits as Float32Array, ref.gradLogits, 1e-4);
        expect(Object.keys(got.cudaTimings as object)).toEqual(['h2dMs', 'kernelMs', 'd2hMs']);
      });

      it(`${dtype}: cudaGvpoFromHidden equals the float64 reference`, () => {
        const N = 6,
          T = 5,
          H = 37,
          V = 4099,
          rows = N * T;
        const b = batch(23, N, T, H, dtype, 1, 1); // hidden: N*T x H values in dtype
        const w = batch(29, V, 1, H, dtype, 0.2, 1); // weight: V x H values in dtype
        const o = {
          hidden: b.logits,
          weight: w.logits,
          dtype,
          targets: Int32Array.from({ length: rows }, (_, i) => (i * 7919) % V),
          mask: b.mask,
          sequences: N,
          tokens: T,
          rows,
          hiddenSize: H,
          vocab: V,
          temperature: 0.9,
          rewards: randomRewards(3, N),
          offsets: Int32Array.from([0, 2, 3, 6]),
          beta: 0.1,
          reduction: 'mean' as const,
          referenceLogprobs: Float64Array.from({ length: N }, (_, n) => -40 - n),
        };
        const got = addon!.cudaGvpoFromHidden(o);
        const ref = gvpoFromHiddenRef({
          ...o,
          gradHidden: new Float32Array(rows * H),
          gradWeight: new Float32Array(V * H),
          accumulate: false,
        });
        expect(got.loss as number).toBeCloseTo(ref.loss, 5);
        gradClose(got.gradHidden as Float32Array, ref.gradHidden, 1e-4);
        gradClose(got.gradWeight as Float32Array, ref.gradWeight, 1e-4);
        expect(Object.keys(got.cudaTimings as object)).toEqual(['h2dMs', 'kernelMs', 'd2hMs']);
      });
    }
  },
);
