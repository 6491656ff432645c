// The logits kernels at the main size (N*T = 2048, V = 32768) against probes taken in the same
// run right before and right after each timed call (on a shared machine bandwidth and clock drift
// within seconds): tokenLogprobs against the streaming read of as many bytes (its roofline) and
// against the exp-throughput probe (the row kernels' own exp, register-resident), gvpoFromLogits
// into a reused `out` against 2 reads + 1 float32 write at the probes' bandwidths. Each figure is
// the median over calls of the call's ratio to the mean of the probes around it, with the range.
// bench/index.ts runs it in-process and, on an AVX-512 machine, in a child with GVPO_SIMD=avx2:
//   node --import tsx bench/logitsProbed.ts <float32|bfloat16|float16> [reps] [--json]
import { createRequire } from 'node:module';
import { backendInfo, gvpoFromLogits, tokenLogprobs } from '../src/index.js';
import { fusedArgs, type Inputs, makeInputs } from './lib.js';

interface ProbeAddon {
  streamProbe(o: { data: Float32Array; threads?: number; write?: boolean }): { seconds: number };
  expProbe(o: { iterations: number; threads?: number }): { seconds: number; elements: number };
}

/** median and range of xs */
export interface Spread {
  median: number;
  lo: number;
  hi: number;
}
const spread = (xs: number[]): Spread => {
  const s = [...xs].sort((a, b) => a - b);
  return { median: s[s.length >> 1], lo: s[0], hi: s[s.length - 1] };
};

export interface ProbedLogits {
  simd: string;
  dtype: string;
  readGBs: Spread; // the read probe over the logits' bytes
  writeGBs: Spread; // the write probe over the gradient's bytes
  expGs: Spread; // the exp probe, G elements/s
  tokSeconds: Spread; // tokenLogprobs, seconds per call
  tokOfRoof: Spread; // its share of the read roofline
  tokOfExp: Spread; // its elements/s over the exp probe's
  stepSeconds: Spread;
  stepOfFloor: Spread; // gvpoFromLogits (reused out): of 2 reads + 1 write
}

/** Both ops on x, reps calls each, against the probes around every call. */
export function probedLogits(x: Inputs, threads: number, reps: number): ProbedLogits {
  const a = createRequire(import.meta.url)('../build/Release/gvpo.node') as ProbeAddon;
  const bytes = x.logits.byteLength,
    gradBytes = x.N * x.T * x.V * 4,
    n = x.N * x.T * x.V;
  const readBuf = new Float32Array(bytes / 4).fill(1),
    writeBuf = new Float32Array(gradBytes / 4);
  const read = () => bytes / a.streamProbe({ data: readBuf, threads }).seconds;
  const write = () => gradBytes / a.streamProbe({ data: writeBuf, threads, write: true }).seconds;
  const exp = () => {
    const r = a.expProbe({ iterations: 400000, threads });
    return r.elements / r.seconds;
  };
  const timed = (f: () => void) => {
    const t0 = process.hrtime.bigint();
    f();
    return Number(process.hrtime.bigint() - t0) / 1e9;
  };
  const tokArgs = { logits: x.logits, dtype: x.dtype, targets: x.targets, rows: x.N * x.T, vocab: x.V, threads };
  const out = new Float32Array(n);
  const stepArgs = { ...fusedArgs(x, threads), out };
  const tok = () => void tokenLogprobs(tokArgs);
  const step = () => void gvpoFromLogits(stepArgs);
  (tok(), step(), read(), write(), exp()); // warm: pages, code, clocks
  const rd: number[] = [],
    wr: number[] = [],
    ex: number[] = [],
    tt: number[] = [],
    st: number[] = [];
  const tokRoof: number[] = [],
    tokExp: number[] = [],
    stepFloor: number[] = [];
  for (let i = 0; i < reps; i++) {
    const r0 = read(),
      e0 = exp();
    const t1 = timed(tok);
    const r1 = read(),
      e1 = exp(),
      w1 = write();
    const t2 = timed(step);
    const r2 = read(),
      w2 = write();
    tokRoof.push(bytes / ((r0 + r1) / 2) / t1);
    tokExp.push(n / t1 / ((e0 + e1) / 2));
    stepFloor.push(((2 * bytes) / ((r1 + r2) / 2) + gradBytes / ((w1 + w2) / 2)) / t2);
    (rd.push(r0 / 1e9, r1 / 1e9, r2 / 1e9),
      wr.push(w1 / 1e9, w2 / 1e9),
      ex.push(e0 / 1e9, e1 / 1e9),
      tt.push(t1),
      st.push(t2));
  }
  return {
    simd: backendInfo().simd ?? 'js',
    dtype: x.dtype,
    readGBs: spread(rd),
    writeGBs: spread(wr),
    expGs: spread(ex),
    tokSeconds: spread(tt),
    tokOfRoof: spread(tokRoof),
    tokOfExp: spread(tokExp),
    stepSeconds: spread(st),
    stepOfFloor: spread(stepFloor),
  };
}

if (process.argv[1]?.endsWith('logitsProbed.ts')) {
  const dtype = (process.argv[2] ?? 'float32') as 'float32' | 'bfloat16' | 'float16';
  const reps = Number(process.argv[3] ?? 7);
  const r = probedLogits(makeInputs(16, 128, 32768, 4, dtype), 2, reps);
  if (process.argv.includes('--json')) console.log(JSON.stringify(r));
  else {
    const pct = (s: Spread) =>
      `${(s.median * 100).toFixed(0)}% [${(s.lo * 100).toFixed(0)}-${(s.hi * 100).toFixed(0)}]`;
    console.log(
      `${r.simd} ${dtype}: read ${r.readGBs.median.toFixed(1)} GB/s, exp ${r.expGs.median.toFixed(2)} G/s; ` +
        `tokenLogprobs ${(r.tokSeconds.median * 1e3).toFixed(1)} ms, ${pct(r.tokOfRoof)} of the read roofline, ${pct(r.tokOfExp)} of the exp probe; ` +
        `gvpoFromLogits ${(r.stepSeconds.median * 1e3).toFixed(1)} ms, ${pct(r.stepOfFloor)} of 2 reads + 1 write`,
    );
  }
}
