// Rows with a dominant token (one logit s above all the others, so that 1 - p is tiny) on
// whatever backend and instruction set this process was started with: prints one JSON line with
// l from tokenLogprobs and from the fused head (H = 1: the logits are the weight), dL/dz at the
// target from gvpoFromLogits and from the two-phase backwards (tokenLogprobsBackward,
// gvpoBackward, the head's tokenLogprobsFromHiddenBackward, each given its forward's logZ), and
// the head's entropy, for test/trust.test.ts to compare with float64 in relative terms (an
// absolute tolerance would pass a 1 - p that lost all its digits).
import {
  backendInfo,
  fromHalf,
  gvpoBackward,
  gvpoForward,
  gvpoFromLogits,
  toHalf,
  tokenLogprobs,
  tokenLogprobsBackward,
  tokenLogprobsFromHidden,
  tokenLogprobsFromHiddenBackward,
} from '../../src/index.js';
import type { DType } from '../../src/index.js';

export interface DominantCase {
  name: string;
  dtype: DType;
  vocab: number;
  /** The logits as the kernel sees them (rounded to dtype), one row. */
  z: number[];
  target: number;
  temperature: number;
}

/** One logit s at `at`, the others spread over [-spread, 0] (or all 0), in the given dtype. */
export function dominantCases(): DominantCase[] {
  const out: DominantCase[] = [];
  const shapes: Array<[number, number]> = [
    [2, 0],
    [8, 3],
    [9, 8],
    [33, 3],
    [33, 8],
    [64, 63],
    [1000, 517],
    [4099, 4098],
    [32768 + 7, 20000],
  ];
  for (const dtype of ['float32', 'bfloat16', 'float16'] as const)
    for (const [V, at] of shapes)
      for (const [s, spread, tau] of [
        [20, 0, 1],
        [16.625, 0, 1],
        [12, 2, 0.7],
        [28, 4, 1],
        [40, 0, 1], // 1 - p near 4e-18 (V = 2): below double's ulp of 1, where only a count apart keeps H
      ]) {
        if (dtype === 'float16' && V > 4099) continue;
        const z64 = Array.from({ length: V }, (_, v) => (v === at ? s : -spread * (((v * 7919) % 101) / 100)));
        const z =
          dtype === 'float32' ? Array.from(Float32Array.from(z64)) : Array.from(fromHalf(toHalf(z64, dtype), dtype));
        out.push({
          name: `${dtype} V=${V} max at ${at} s=${s} spread=${spread} tau=${tau}`,
          dtype,
          vocab: V,
          z,
          target: at,
          temperature: tau,
        });
      }
  return out;
}

if (process.argv[1]?.endsWith('dominant-worker.ts')) {
  const results = dominantCases().map((c) => {
    const logits = c.dtype === 'float32' ? Float32Array.from(c.z) : toHalf(c.z, c.dtype);
    const targets = Int32Array.of(c.target);
    const base = { logits, dtype: c.dtype, targets, vocab: c.vocab, temperature: c.temperature };
    const t = tokenLogprobs({ ...base, rows: 1 });
    const l = t.logprobs[0];
    // dl/dz[y] = (1 - p) / tau, from the forward's logZ
    const tokenGrad = tokenLogprobsBackward({ ...base, rows: 1, logZ: t.logZ, gradTokenLogprobs: Float32Array.of(1) });
    // Two sequences of one token, the same row twice: dL/dS = [-0.5, 0.5] with rewards [1, 0], beta 1.
    const two = c.dtype === 'float32' ? Float32Array.from([...c.z, ...c.z]) : toHalf([...c.z, ...c.z], c.dtype);
    const phases = {
      ...base,
      logits: two,
      targets: Int32Array.of(c.target, c.target),
      mask: Float32Array.of(1, 1),
      sequences: 2,
      tokens: 1,
    };
    const f = gvpoFromLogits({ ...phases, rewards: [1, 0], groups: { size: 2 }, beta: 1 });
    const p1 = gvpoForward(phases);
    const phaseGrad = gvpoBackward({ ...phases, logZ: p1.logZ, gradLogprobs: f.gradLogprobs });
    const headArgs = {
      hidden: Float32Array.of(1),
      weight: Float32Array.from(c.z),
      targets,
      rows: 1,
      hiddenSize: 1,
      vocab: c.vocab,
      temperature: c.temperature,
    };
    const head = c.dtype === 'float32' ? tokenLogprobsFromHidden({ ...headArgs, entropy: true }) : undefined;
    // hidden = [1]: dL/dweight[v] is dL/dz[v]
    const headGrad = head
      ? tokenLogprobsFromHiddenBackward({ ...headArgs, logZ: head.logZ, gradTokenLogprobs: Float32Array.of(1) })
      : undefined;
    return {
      name: c.name,
      l,
      gradTarget: f.gradLogits[c.target],
      phaseGradTarget: phaseGrad[c.target],
      tokenGradTarget: tokenGrad[c.target],
      dLdS: f.gradLogprobs[0],
      headL: head?.logprobs[0] ?? null,
      headH: head?.entropy?.[0] ?? null,
      headGradTarget: headGrad?.gradWeight[c.target] ?? null,
    };
  });
  process.stdout.write(JSON.stringify({ simd: backendInfo().simd ?? 'js', results }) + '\n');
}
