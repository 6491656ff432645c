// Shared bench plumbing: benchmark.js timing (median and spread of its samples), seeded inputs,
// the native roofline probe, and table formatting.
import Benchmark from 'benchmark';
import { createRequire } from 'node:module';
import { encodeHalf as toHalf } from '../src/reference/dtype.js';
import type { DType } from '../src/types.js';

export interface Timing {
  median: number; // seconds
  spread: number; // max - min of the samples, seconds
  samples: number;
}

/** Time fn with benchmark.js (synchronous fn); at least minSamples samples. */
export function time(name: string, fn: () => void, opts: { minSamples?: number; maxTime?: number } = {}): Timing {
  const b = new Benchmark(name, fn, {
    minSamples: opts.minSamples ?? 7,
    maxTime: opts.maxTime ?? 3,
    initCount: 1,
    async: false,
  });
  b.run();
  if (b.error) throw b.error;
  const s = [...b.stats.sample].sort((x, y) => x - y);
  return { median: s[Math.floor(s.length / 2)], spread: s[s.length - 1] - s[0], samples: s.length };
}

/** Plain median of `reps` timed calls after one warm-up, for slow peers (seconds per call). */
export function timeSlow(fn: () => void, reps: number): Timing {
  fn();
  const t: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t0 = process.hrtime.bigint();
    fn();
    t.push(Number(process.hrtime.bigint() - t0) / 1e9);
  }
  t.sort((x, y) => x - y);
  return { median: t[Math.floor(t.length / 2)], spread: t[t.length - 1] - t[0], samples: reps };
}

/** Like timeSlow for async work; `warmup: false` for peers whose single call takes minutes. */
export async function timeSlowAsync(fn: () => Promise<void>, reps: number, warmup = true): Promise<Timing> {
  if (warmup) await fn();
  const t: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t0 = process.hrtime.bigint();
    await fn();
    t.push(Number(process.hrtime.bigint() - t0) / 1e9);
  }
  t.sort((x, y) => x - y);
  return { median: t[Math.floor(t.length / 2)], spread: t[t.length - 1] - t[0], samples: reps };
}

export interface Inputs {
  N: number;
  T: number;
  V: number;
  k: number;
  dtype: DType;
  logits: Float32Array | Uint16Array;
  targets: Int32Array;
  mask: Float32Array;
  referenceTokenLogprobs: Float64Array;
  rewards: Float64Array;
  beta: number;
  temperature: number;
}

/** A seeded uniform [0, 1) generator (an LCG: fast enough to draw tens of millions of values). */
export function seededRandom(seed: number): () => number {
  let s = seed >>> 0;
  return () => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 4294967296;
}

/** The per-token and per-sequence inputs every bench batch shares: targets uniform in [0, V), 1/4
 *  of each sequence masked as prompt, reference token log-probs near -10, 0/1 rewards. */
export function tokenInputs(next: () => number, N: number, T: number, V: number) {
  const targets = new Int32Array(N * T);
  const mask = new Float32Array(N * T);
  const prompt = Math.floor(T / 4);
  for (let i = 0; i < N * T; i++) {
    targets[i] = Math.floor(next() * V);
    mask[i] = i % T >= prompt ? 1 : 0;
  }
  const referenceTokenLogprobs = Float64Array.from({ length: N * T }, () => -10 - next());
  const rewards = Float64Array.from({ length: N }, () => (next() < 0.5 ? 1 : 0));
  return { targets, mask, referenceTokenLogprobs, rewards };
}

/** Logits ~ 3 * uniform noise (fast to draw at 67M elements), then tokenInputs. */
export function makeInputs(N: number, T: number, V: number, k: number, dtype: DType, seed = 1): Inputs {
  const next = seededRandom(seed);
  const f = new Float32Array(N * T * V);
  for (let i = 0; i < f.length; i++) f[i] = (next() + next() + next() - 1.5) * 3;
  return {
    N,
    T,
    V,
    k,
    dtype,
    logits: dtype === 'float32' ? f : toHalf(f, dtype),
    ...tokenInputs(next, N, T, V),
    beta: 0.1,
    temperature: 1,
  };
}

/** The fused op's options for these inputs (only the fields it knows: unknown ones are refused). */
export function fusedArgs(x: Inputs, threads?: number) {
  const { logits, dtype, targets, mask, referenceTokenLogprobs, rewards, beta, temperature } = x;
  return {
    logits,
    dtype,
    targets,
    mask,
    referenceTokenLogprobs,
    rewards,
    beta,
    temperature,
    sequences: x.N,
    tokens: x.T,
    vocab: x.V,
    groups: { size: x.k },
    threads,
  };
}

interface Probe {
  streamProbe(o: { data: Float32Array; threads?: number; write?: boolean }): { seconds: number };
}

export function addon(): Probe | undefined {
  try {
    return createRequire(import.meta.url)('../build/Release/gvpo.node') as Probe;
  } catch {
    return undefined;
  }
}

/** Same-run streaming read and write bandwidth (bytes/s) over a buffer of `bytes`, same threads. */
export function roofline(bytes: number, threads: number): { read: number; write: number } {
  const a = addon();
  if (!a) return { read: NaN, write: NaN };
  const data = new Float32Array(Math.ceil(bytes / 4)).fill(1);
  const med = (write: boolean) => {
    a.streamProbe({ data, threads, write });
    const t = Array.from({ length: 9 }, () => a.streamProbe({ data, threads, write }).seconds).sort((x, y) => x - y);
    return data.byteLength / t[4];
  };
  return { read: med(false), write: med(true) };
}

export const fmtMs = (s: number) => (s * 1e3).toFixed(s < 0.01 ? 2 : 1);
export const fmtGB = (bps: number) => (bps / 1e9).toFixed(1);

export { markdownTable as table } from '../src/app/report.js';
