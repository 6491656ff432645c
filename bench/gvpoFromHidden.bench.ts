// gvpoFromHidden (the fused LM head) at N*T = 4096, H = 512, V = 32768, float32 and bfloat16:
// native time against the same-run FMA peak probe (4 GEMM-sized passes of 2*N*T*H*V flops:
// forward, recompute, dH, dW), PyTorch CPU eager (linear + log_softmax + gather + loss +
// backward), TensorFlow.js (matMul + the loss, autodiff) on wasm and cpu at smaller N*T with the
// time scaled linearly in N*T, peak memory against the float32 logits, and a whole tfjs training
// step at V = 32768 (bench/trainStep.ts) with the fused head, a Dense head + gvpoFromLogitsTf and a
// plain tfjs loss.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type * as TF from '@tensorflow/tfjs';
import { backendInfo, gvpoFromHidden, gvpoFromHiddenForward } from '../src/index.js';
import type { DType } from '../src/types.js';
import { makeHiddenInputs, type HiddenInputs } from './hiddenInputs.js';
import { fmtMs, table, timeSlowAsync, type Timing } from './lib.js';
import { tfjsWithBackend } from './peers/tfjs.js';

const here = dirname(fileURLToPath(import.meta.url));
const PY = '/usr/bin/python3';
type Row = Array<string | number>;

type Probe = (o: { iterations: number; threads?: number }) => { seconds: number; flops: number };
interface PeakAddon {
  fmaProbe: Probe;
  bf16DotProbe: Probe;
}
const peakAddon = () => createRequire(import.meta.url)('../build/Release/gvpo.node') as PeakAddon;

function peakOf(probe: Probe, threads: number): number {
  probe({ iterations: 1e6, threads });
  const r = Array.from({ length: 7 }, () => probe({ iterations: 2e7, threads }))
    .map((x) => x.flops / x.seconds)
    .sort((x, y) => x - y);
  return r[3];
}

/** Same-run FMA peak (flop/s) with the GEMM's instruction set and the same threads. */
export function fmaPeak(threads: number): number {
  return peakOf(peakAddon().fmaProbe, threads);
}

/** Same-run bfloat16 dot-product peak (vdpbf16ps, flop/s), same threads; 0 without AVX512_BF16. */
export function dotPeak(threads: number): number {
  return peakOf(peakAddon().bf16DotProbe, threads);
}

/** The peak the head's GEMM runs against: vdpbf16ps for bfloat16 inputs on the avx512bf16 level. */
export function headPeak(dtype: DType): { peak: (threads: number) => number; name: string } {
  return dtype === 'bfloat16' && backendInfo().simd === 'avx512bf16'
    ? { peak: dotPeak, name: 'bf16 dot-product peak (register-resident vdpbf16ps loop)' }
    : { peak: fmaPeak, name: "FMA peak (register-resident FMA loop, the GEMM's instruction set)" };
}

/** The narrower instruction sets a head's bench also runs on this machine, a child process each
 *  (the set is picked at load) against its own probe: float32 products on AVX-512 for bfloat16
 *  where the bfloat16 products are the default, and AVX2. */
export function narrowerSets(simd: string | undefined, dtype: DType): string[] {
  if (simd === 'avx512bf16') return dtype === 'bfloat16' ? ['avx512', 'avx2'] : ['avx2'];
  return simd === 'avx512' ? ['avx2'] : [];
}

/** A narrower set's row label. */
export function narrowerLabel(isa: string): string {
  return isa === 'avx512' ? 'avx512, GVPO_SIMD=avx512: float32 products' : `${isa}, GVPO_SIMD=${isa}`;
}

/** fn timed against a peak probe: a probe right before and right after each call (the machine's
 *  FMA rate drifts within seconds on a shared host), the call's rate over their mean; medians of
 *  the times and of those ratios. */
export function timeAgainstProbe(
  fn: () => void,
  flops: number,
  reps: number,
  threads: number,
  peak: (threads: number) => number = fmaPeak,
): { t: Timing; ofPeak: number; peak: number } {
  fn();
  const times: number[] = [],
    ratios: number[] = [],
    peaks: number[] = [];
  let before = peak(threads);
  for (let i = 0; i < reps; i++) {
    const t0 = process.hrtime.bigint();
    fn();
    const s = Number(process.hrtime.bigint() - t0) / 1e9;
    const after = peak(threads);
    times.push(s);
    peaks.push((before + after) / 2);
    ratios.push(flops / s / ((before + after) / 2));
    before = after;
  }
  const med = (xs: number[]) => [...xs].sort((x, y) => x - y)[xs.length >> 1];
  return {
    t: { median: med(times), spread: Math.max(...times) - Math.min(...times), samples: reps },
    ofPeak: med(ratios),
    peak: med(peaks),
  };
}

function torchPeer(
  x: HiddenInputs,
  threads: number,
  reps: number,
): { t: Timing; torch: string; added: number } | string {
  if (!existsSync(PY) || spawnSync(PY, ['-c', 'import torch']).status !== 0) return 'python3-torch is not installed';
  const dir = mkdtempSync(join(os.tmpdir(), 'gvpo-bench-'));
  try {
    const f = (name: string, a: ArrayBufferView) => {
      writeFileSync(join(dir, name), new Uint8Array(a.buffer, a.byteOffset, a.byteLength));
      return join(dir, name);
    };
    const a = x.args;
    const cfg = {
      hidden: f('hidden.bin', a.hidden),
      weight: f('weight.bin', a.weight),
      targets: f('targets.bin', a.targets),
      mask: f('mask.bin', a.mask),
      ref: f('ref.bin', x.referenceTokenLogprobs),
      rewards: f('rewards.bin', a.rewards as Float64Array),
      N: x.N,
      T: x.T,
      H: x.H,
      V: x.V,
      k: x.k,
      beta: a.beta,
      tau: 1,
      threads,
      reps,
      dtype: x.dtype,
    };
    const r = spawnSync(PY, [join(here, 'peers', 'torch_gvpo_hidden.py'), JSON.stringify(cfg)], {
      encoding: 'utf8',
      env: { ...process.env, OMP_NUM_THREADS: String(threads) },
    });
    if (r.status !== 0) return `PyTorch peer failed: ${r.stderr.split('\n').slice(-3).join(' ')}`;
    const j = JSON.parse(r.stdout.trim().split('\n').pop()!);
    return {
      t: { median: j.gvpoFromHidden, spread: j.spread, samples: reps },
      torch: j.torch,
      added: j.peakRssBytes - j.baselineRssBytes,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** tfjs: matMul(hidden, weight^T) + logSoftmax + one-hot gather + the loss, differentiated to both. */
async function tfjsPeer(backend: 'cpu' | 'wasm', x: HiddenInputs): Promise<Timing> {
  const tf = await tfjsWithBackend(backend);
  const { N, T, H, V, k } = x;
  const a = x.args;
  const h = tf.tensor2d(a.hidden as Float32Array, [N * T, H]),
    w = tf.tensor2d(a.weight as Float32Array, [V, H]);
  const oneHot = tf.oneHot(tf.tensor1d(a.targets, 'int32'), V);
  const mask = tf.tensor2d(a.mask as Float32Array, [N, T]);
  const refSeq = tf.tensor1d(
    Float32Array.from({ length: N }, (_, n) => {
      let s = 0;
      for (let t = 0; t < T; t++) s += (a.mask as Float32Array)[n * T + t] * x.referenceTokenLogprobs[n * T + t];
      return s;
    }),
  );
  const R = tf.tensor1d(Float32Array.from(a.rewards as Float64Array));
  const loss = (hh: TF.Tensor, ww: TF.Tensor) => {
    const lp = tf
      .logSoftmax(tf.matMul(hh as TF.Tensor2D, ww as TF.Tensor2D, false, true))
      .mul(oneHot)
      .sum(1)
      .reshape([N, T]);
    const r = lp.mul(mask).sum(1).sub(refSeq).mul(a.beta);
    const rc = r.sub(
      r
        .reshape([N / k, k])
        .mean(1, true)
        .tile([1, k])
        .reshape([N]),
    );
    const adv = R.sub(
      R.reshape([N / k, k])
        .mean(1, true)
        .tile([1, k])
        .reshape([N]),
    );
    return rc
      .sub(adv)
      .square()
      .sum()
      .mul(0.5 / (k - 1) / (N / k)) as TF.Scalar;
  };
  const grads = tf.grads(loss);
  const t = await timeSlowAsync(
    async () => {
      const g = tf.tidy(() => grads([h, w]));
      await Promise.all(g.map((t: TF.Tensor) => t.data()));
      tf.dispose(g);
    },
    1,
    backend === 'wasm',
  );
  tf.dispose([h, w, oneHot, mask, refSeq, R]);
  return t;
}

function child(script: string, args: string[]): Record<string, number> | string {
  const r = spawnSync(process.execPath, ['--import', 'tsx', join(here, script), ...args], { encoding: 'utf8' });
  if (r.status !== 0) return `failed: ${r.stderr.split('\n').filter(Boolean).pop() ?? ''}`;
  return JSON.parse(r.stdout.trim().split('\n').pop()!);
}

export async function benchGvpoFromHidden(log: (s?: string) => void, threads: number, quick: boolean): Promise<void> {
  const N = 16,
    T = 256,
    H = 512,
    V = 32768,
    k = 4;
  const logitsBytes = N * T * V * 4;
  let float32Seconds = NaN; // the float32 op's median, for the bfloat16 rows' "x float32 time"
  for (const dtype of ['float32', 'bfloat16'] as const) {
    const x = makeHiddenInputs(N, T, H, V, k, dtype);
    // Flops of the rows that count: prompt rows (mask 0) cost the kernel nothing.
    const live = (x.args.mask as Float32Array).reduce((n, m) => n + (m !== 0 ? 1 : 0), 0);
    const passFlops = 2 * live * H * V;
    const reps = quick ? 1 : 7; // the median of 7: the FMA rate of a shared machine drifts from one call to the next
    const hp = headPeak(dtype);
    const gradWeight = new Float32Array(V * H); // reused, as a training loop would
    const main = timeAgainstProbe(
      () => void gvpoFromHidden({ ...x.args, threads, gradWeight }),
      4 * passFlops,
      reps,
      threads,
      hp.peak,
    );
    const full = main.t,
      peak = main.peak;
    if (dtype === 'float32') float32Seconds = full.median;
    log();
    log(
      `## gvpoFromHidden (fused LM head): N*T = ${N * T} (N = ${N}, T = ${T}, k = ${k}), H = ${H}, V = ${V}, ${dtype}`,
    );
    log();
    log(
      `${hp.name[0].toUpperCase()}${hp.name.slice(1)}, same run, ${threads} threads, ${backendInfo().simd}: ` +
        `${(peak / 1e9).toFixed(0)} GFLOP/s, the median of probes taken right before and after each timed call (the op's % of peak is the ` +
        `median over calls of its rate against the mean of the probes around it). ` +
        `Work: 4 GEMM-sized passes (forward, recompute, dH, dW) of 2*rows*H*V = ${(passFlops / 1e9).toFixed(1)} GFLOP each over the ${live} rows ` +
        `with a non-zero mask (the other ${N * T - live} are prompt tokens and cost nothing); every rate below counts these flops. dL/dweight goes into a reused buffer (\`gradWeight\`), as a training loop would.`,
    );
    const fwd = timeAgainstProbe(
      () => void gvpoFromHiddenForward({ ...x.args, threads }),
      passFlops,
      reps,
      threads,
      hp.peak,
    );
    const rate = (flops: number, t: Timing) =>
      `${(flops / t.median / 1e9).toFixed(0)} GFLOP/s, ${((flops / t.median / peak) * 100).toFixed(0)}% of peak`;
    const probed = (flops: number, r: { t: Timing; ofPeak: number }) =>
      `${(flops / r.t.median / 1e9).toFixed(0)} GFLOP/s, ${(r.ofPeak * 100).toFixed(0)}% of peak`;
    const simd = backendInfo().simd;
    const vs32 = dtype === 'float32' ? '' : `, ${(full.median / float32Seconds).toFixed(2)}x the float32 op's time`;
    const rows: Row[] = [
      [
        `native cpu (${simd}), forward + loss + both gradients`,
        fmtMs(full.median),
        fmtMs(full.spread),
        probed(4 * passFlops, main) + vs32,
        '1.0',
      ],
      [
        `native cpu (${simd}), phase 1 only (forward)`,
        fmtMs(fwd.t.median),
        fmtMs(fwd.t.spread),
        probed(passFlops, fwd),
        '',
      ],
    ];
    for (const isa of narrowerSets(simd, dtype)) {
      const r = spawnSync(
        process.execPath,
        ['--import', 'tsx', join(here, 'hiddenQuick.ts'), dtype, String(reps), '--json'],
        { encoding: 'utf8', env: { ...process.env, GVPO_SIMD: isa } },
      );
      const last = r.status === 0 ? JSON.parse(r.stdout.trim().split('\n').pop()!) : undefined;
      const what = narrowerLabel(isa);
      rows.push(
        last
          ? [
              `native cpu (${what}), forward + loss + both gradients`,
              fmtMs(last.medianSeconds),
              fmtMs(last.spreadSeconds),
              `${((4 * passFlops) / last.medianSeconds / 1e9).toFixed(0)} GFLOP/s, ${(last.ofPeak * 100).toFixed(0)}% of the ${isa.toUpperCase()} FMA peak (${(last.peak / 1e9).toFixed(0)} GFLOP/s)`,
              (last.medianSeconds / full.median).toFixed(2),
            ]
          : [`native cpu (${isa})`, 'failed', '', (r.stderr ?? '').split('\n').filter(Boolean).pop() ?? '', ''],
      );
    }
    // PyTorch: float32 only, one timed step after a warm-up, to bound the run time (its peak
    // memory is over 2 GiB and one of the runs here stalled for minutes in it; bench/NOTES.md).
    const torch = dtype === 'float32' ? torchPeer(x, threads, 1) : 'run for float32 only, to bound the run time';
    if (typeof torch === 'object') {
      rows.push([
        `PyTorch ${torch.torch} eager (linear + log_softmax + gather + loss + backward)`,
        fmtMs(torch.t.median),
        fmtMs(torch.t.spread),
        rate(4 * passFlops, torch.t),
        (torch.t.median / full.median).toFixed(1),
      ]);
    }
    if (dtype === 'float32' && !quick) {
      // tfjs takes minutes at full size: a fraction of the rows, time scaled linearly in N*T.
      // tfjs-cpu's matMul runs at about 0.1 GFLOP/s: 64 rows; wasm: 256 rows.
      for (const [backend, n, t] of [
        ['wasm', 4, 64],
        ['cpu', 4, 16],
      ] as const) {
        try {
          const small = makeHiddenInputs(n, t, H, V, k, 'float32');
          const tt = await tfjsPeer(backend, small);
          const scale = (N * T) / (n * t);
          const est: Timing = { median: tt.median * scale, spread: tt.spread * scale, samples: tt.samples };
          rows.push([
            `TensorFlow.js ${backend} (matMul + loss, autodiff, 1 thread; N*T = ${n * t}, time x${scale})`,
            fmtMs(est.median),
            fmtMs(est.spread),
            rate(4 * passFlops, est),
            (est.median / full.median).toFixed(0),
          ]);
        } catch (e) {
          rows.push([`TensorFlow.js ${backend}`, 'failed', '', (e as Error).message.split('\n')[0], '']);
        }
      }
    }
    log();
    log(table(['path', 'median ms', 'spread ms', 'rate', 'x native time'], rows));
    if (typeof torch === 'string') log(`\nPyTorch peer skipped: ${torch}`);
    if (dtype === 'float32' && !quick) {
      const mem: Row[] = [];
      const m = child('memory.ts', ['hidden', String(N), String(T), String(V), String(k), String(H)]);
      const mib = (b: number) => (b / 2 ** 20).toFixed(0);
      if (typeof m === 'string') mem.push(['native cpu', m, '', '']);
      else {
        const added = m.peakRssBytes - m.baselineRssBytes;
        mem.push([
          'native cpu',
          mib(added),
          (added / logitsBytes).toFixed(2),
          `includes the outputs: dL/dweight ${mib(V * H * 4)} MiB, dL/dhidden ${mib(N * T * H * 4)} MiB`,
        ]);
      }
      if (typeof torch === 'object')
        mem.push([`PyTorch ${torch.torch} eager`, mib(torch.added), (torch.added / logitsBytes).toFixed(2), '']);
      log();
      log(
        `### Peak memory added by one gvpoFromHidden call (child process per path; float32 logits of this batch: ${mib(logitsBytes)} MiB)`,
      );
      log();
      log(table(['path', 'MiB added', 'x float32 logits', 'note'], mem));
    }
  }
  if (quick) return;
  log();
  log('## A tfjs GVPO training step with V = 32768 (tfjs cpu backend; gvpo native; child process per head)');
  log();
  const rows: Row[] = [];
  let base: Record<string, number> | undefined;
  for (const head of ['fused', 'dense', 'plain']) {
    const r = child('trainStep.ts', [head]);
    if (typeof r === 'string') {
      rows.push([head, r, '', '', '']);
      continue;
    }
    base ??= r;
    const mib = (b: number) => (b / 2 ** 20).toFixed(0);
    rows.push([
      r.label as unknown as string,
      fmtMs(r.stepSeconds),
      mib(r.peakRssBytes - r.baselineRssBytes),
      (r.stepSeconds / base.stepSeconds).toFixed(1),
      ((r.peakRssBytes - r.baselineRssBytes) / (base.peakRssBytes - base.baselineRssBytes)).toFixed(1),
    ]);
  }
  log(table(['LM head and loss', 'median step ms', 'peak MiB added', 'x fused time', 'x fused memory'], rows));
}
