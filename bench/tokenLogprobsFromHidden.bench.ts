// tokenLogprobsFromHidden (the fused LM head for any loss) at rows = 4096, H = 512, V = 32768,
// float32 and bfloat16, with the entropy and a loss on both outputs (every row live): the
// forward (1 GEMM pass of 2*rows*H*V flops) and the forward + backward (3 more) against the
// same-run FMA peak probe; PyTorch CPU eager (linear + log_softmax + gather + entropy, backward)
// and PyTorch chunked (1024-row chunks, recomputed in the backward, as TRL's chunked loss does);
// TensorFlow.js (matMul + logSoftmax + gather + entropy, autodiff) on wasm and cpu at fewer rows
// with the time scaled linearly; peak memory against the float32 logits.
// Alone: node --import tsx bench/tokenLogprobsFromHidden.bench.ts [--quick]
//   (--native-only <dtype> --json: the native rows alone as one JSON line, for the AVX2 child)
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type * as TF from '@tensorflow/tfjs';
import { backendInfo, tokenLogprobsFromHidden, tokenLogprobsFromHiddenBackward } from '../src/index.js';
import type { DType } from '../src/types.js';
import { headPeak, narrowerLabel, narrowerSets, timeAgainstProbe } from './gvpoFromHidden.bench.js';
import { makeHeadInputs, type HeadInputs } from './hiddenInputs.js';
import { fmtMs, table, timeSlowAsync, type Timing } from './lib.js';
import { tfjsWithBackend } from './peers/tfjs.js';

const here = dirname(fileURLToPath(import.meta.url));
const PY = '/usr/bin/python3';
const ROWS = 4096,
  H = 512,
  V = 32768;
type Row = Array<string | number>;

/** The native forward alone and forward + backward, each against the probes around it (the
 *  head's peak: vdpbf16ps for bfloat16 on the avx512bf16 level, FMA otherwise). */
function native(x: HeadInputs, dtype: DType, threads: number, reps: number) {
  const pass = 2 * x.rows * x.H * x.V;
  const peak = headPeak(dtype).peak;
  const gradWeight = new Float32Array(x.V * x.H); // reused, as a training loop would
  const fwd = timeAgainstProbe(() => void tokenLogprobsFromHidden({ ...x.args, threads }), pass, reps, threads, peak);
  const both = timeAgainstProbe(
    () => {
      const f = tokenLogprobsFromHidden({ ...x.args, threads });
      tokenLogprobsFromHiddenBackward({
        ...x.args,
        threads,
        logZ: f.logZ,
        entropy: f.entropy,
        gradTokenLogprobs: x.gradTokenLogprobs,
        gradEntropy: x.gradEntropy,
        gradWeight,
      });
    },
    4 * pass,
    reps,
    threads,
    peak,
  );
  return { fwd, both, pass };
}

interface TorchRun {
  forward: number;
  forwardSpread: number;
  forwardBackward: number;
  forwardBackwardSpread: number;
  added: number;
  torch: string;
}

function torchPeer(x: HeadInputs, mode: 'eager' | 'chunked', threads: number, reps: number): TorchRun | string {
  if (!existsSync(PY) || spawnSync(PY, ['-c', 'import torch']).status !== 0) return 'python3-torch is not installed';
  const dir = mkdtempSync(join(os.tmpdir(), 'gvpo-bench-'));
  try {
    const f = (name: string, a: ArrayBufferView) => {
      writeFileSync(join(dir, name), new Uint8Array(a.buffer, a.byteOffset, a.byteLength));
      return join(dir, name);
    };
    const cfg = {
      hidden: f('hidden.bin', x.args.hidden),
      weight: f('weight.bin', x.args.weight),
      targets: f('targets.bin', x.args.targets),
      gl: f('gl.bin', x.gradTokenLogprobs),
      gh: f('gh.bin', x.gradEntropy),
      rows: x.rows,
      H: x.H,
      V: x.V,
      tau: 1,
      threads,
      reps,
      dtype: x.dtype,
      mode,
    };
    const r = spawnSync(PY, [join(here, 'peers', 'torch_token_logprobs_from_hidden.py'), JSON.stringify(cfg)], {
      encoding: 'utf8',
      env: { ...process.env, OMP_NUM_THREADS: String(threads), OPENBLAS_NUM_THREADS: String(threads) },
    });
    if (r.status !== 0) return `PyTorch ${mode} failed: ${r.stderr.split('\n').slice(-3).join(' ')}`;
    const j = JSON.parse(r.stdout.trim().split('\n').pop()!);
    return { ...j, added: j.peakRssBytes - j.baselineRssBytes };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** tfjs: matMul(hidden, weight^T) + logSoftmax + one-hot gather + entropy, the loss sum(gl l + gH H)
 *  differentiated to both inputs (a one-hot product: the gather's gradient is missing on wasm). */
async function tfjsPeer(backend: 'cpu' | 'wasm', x: HeadInputs): Promise<Timing> {
  const tf = await tfjsWithBackend(backend);
  const { rows, H: h, V: v } = x;
  const hid = tf.tensor2d(x.args.hidden as Float32Array, [rows, h]),
    w = tf.tensor2d(x.args.weight as Float32Array, [v, h]);
  const oneHot = tf.oneHot(tf.tensor1d(x.args.targets, 'int32'), v);
  const gl = tf.tensor1d(x.gradTokenLogprobs),
    gh = tf.tensor1d(x.gradEntropy);
  const loss = (hh: TF.Tensor, ww: TF.Tensor) => {
    const logp = tf.logSoftmax(tf.matMul(hh as TF.Tensor2D, ww as TF.Tensor2D, false, true));
    const l = logp.mul(oneHot).sum(1),
      ent = logp.exp().mul(logp).sum(1).neg();
    return l.mul(gl).add(ent.mul(gh)).sum() as TF.Scalar;
  };
  const grads = tf.grads(loss);
  const t = await timeSlowAsync(
    async () => {
      const g = tf.tidy(() => grads([hid, w]));
      await Promise.all(g.map((t: TF.Tensor) => t.data()));
      tf.dispose(g);
    },
    1,
    backend === 'wasm',
  );
  tf.dispose([hid, w, oneHot, gl, gh]);
  return t;
}

export async function benchTokenLogprobsFromHidden(
  log: (s?: string) => void,
  threads: number,
  quick: boolean,
): Promise<void> {
  const logitsBytes = ROWS * V * 4;
  const mib = (b: number) => (b / 2 ** 20).toFixed(0);
  const reps = quick ? 1 : 5;
  for (const dtype of ['float32', 'bfloat16'] as const) {
    const x = makeHeadInputs(ROWS, H, V, dtype);
    const n = native(x, dtype, threads, reps);
    const simd = backendInfo().simd;
    log();
    log(
      `## tokenLogprobsFromHidden (fused LM head for any loss): rows = ${ROWS}, H = ${H}, V = ${V}, ${dtype}, with the entropy`,
    );
    log();
    log(
      `Work: a forward of 1 GEMM-sized pass and a backward of 3 more (recompute, dH, dW), each 2*rows*H*V = ${(n.pass / 1e9).toFixed(1)} ` +
        `GFLOP; every row live; the loss differentiated is sum(gl * l + gH * H). ${headPeak(dtype).name}, same run, ` +
        `${threads} threads, ${simd}: ${(n.both.peak / 1e9).toFixed(0)} GFLOP/s, probes taken right before and after each timed call; a ` +
        `path's % of peak is the median over calls of its rate against the mean of the probes around it.`,
    );
    const rate = (flops: number, s: number) =>
      `${(flops / s / 1e9).toFixed(0)} GFLOP/s, ${((flops / s / n.both.peak) * 100).toFixed(0)}% of peak`;
    const probed = (flops: number, r: { t: Timing; ofPeak: number }) =>
      `${(flops / r.t.median / 1e9).toFixed(0)} GFLOP/s, ${(r.ofPeak * 100).toFixed(0)}% of peak`;
    const rows: Row[] = [
      [`native cpu (${simd}), forward`, fmtMs(n.fwd.t.median), fmtMs(n.fwd.t.spread), probed(n.pass, n.fwd), '1.0'],
      [
        `native cpu (${simd}), forward + backward`,
        fmtMs(n.both.t.median),
        fmtMs(n.both.t.spread),
        probed(4 * n.pass, n.both),
        '1.0',
      ],
    ];
    for (const isa of narrowerSets(simd, dtype)) {
      const r = spawnSync(
        process.execPath,
        [
          '--import',
          'tsx',
          join(here, 'tokenLogprobsFromHidden.bench.ts'),
          '--native-only',
          dtype,
          '--json',
          '--reps',
          String(reps),
        ],
        { encoding: 'utf8', env: { ...process.env, GVPO_SIMD: isa } },
      );
      const a = r.status === 0 ? JSON.parse(r.stdout.trim().split('\n').pop()!) : undefined;
      const what = narrowerLabel(isa);
      const ofIsa = (f: number) => `${(f * 100).toFixed(0)}% of the ${isa.toUpperCase()} FMA peak`;
      if (a) {
        rows.push([
          `native cpu (${what}), forward`,
          fmtMs(a.fwd),
          '',
          `${(n.pass / a.fwd / 1e9).toFixed(0)} GFLOP/s, ${ofIsa(a.fwdOfPeak)} (${(a.peak / 1e9).toFixed(0)} GFLOP/s)`,
          (a.fwd / n.fwd.t.median).toFixed(2),
        ]);
        rows.push([
          `native cpu (${what}), forward + backward`,
          fmtMs(a.both),
          '',
          `${((4 * n.pass) / a.both / 1e9).toFixed(0)} GFLOP/s, ${ofIsa(a.bothOfPeak)}`,
          (a.both / n.both.t.median).toFixed(2),
        ]);
      } else
        rows.push([`native cpu (${isa})`, 'failed', '', (r.stderr ?? '').split('\n').filter(Boolean).pop() ?? '', '']);
    }
    const mem: Row[] = [];
    for (const mode of ['eager', 'chunked'] as const) {
      // bfloat16 in PyTorch 1.13 on this CPU runs at a few GFLOP/s (minutes a call): one timed call
      const t = torchPeer(x, mode, threads, quick || dtype === 'bfloat16' ? 1 : 3);
      if (typeof t === 'string') {
        rows.push([`PyTorch ${mode}`, 'skipped', '', t, '']);
        continue;
      }
      const what =
        mode === 'eager'
          ? 'eager (linear + log_softmax + gather + entropy)'
          : 'chunked (1024 rows, recomputed in the backward)';
      rows.push([
        `PyTorch ${t.torch} ${what}, forward`,
        fmtMs(t.forward),
        fmtMs(t.forwardSpread),
        rate(n.pass, t.forward),
        (t.forward / n.fwd.t.median).toFixed(1),
      ]);
      rows.push([
        `PyTorch ${t.torch} ${what}, forward + backward`,
        fmtMs(t.forwardBackward),
        fmtMs(t.forwardBackwardSpread),
        rate(4 * n.pass, t.forwardBackward),
        (t.forwardBackward / n.both.t.median).toFixed(1),
      ]);
      if (dtype === 'float32')
        mem.push([
          `PyTorch ${t.torch} ${mode}`,
          mib(t.added),
          (t.added / logitsBytes).toFixed(2),
          "both timed calls, the backward's peak",
        ]);
    }
    if (dtype === 'float32' && !quick) {
      // tfjs takes minutes at full size: a fraction of the rows, time scaled linearly in rows.
      for (const [backend, r] of [
        ['wasm', 256],
        ['cpu', 64],
      ] as const) {
        try {
          const tt = await tfjsPeer(backend, makeHeadInputs(r, H, V, 'float32'));
          const scale = ROWS / r;
          const est = tt.median * scale;
          rows.push([
            `TensorFlow.js ${backend} (matMul + logSoftmax + gather + entropy, autodiff, 1 thread; rows = ${r}, time x${scale}), forward + backward`,
            fmtMs(est),
            fmtMs(tt.spread * scale),
            rate(4 * n.pass, est),
            (est / n.both.t.median).toFixed(0),
          ]);
        } catch (e) {
          rows.push([`TensorFlow.js ${backend}`, 'failed', '', (e as Error).message.split('\n')[0], '']);
        }
      }
    }
    log();
    log(table(['path', 'median ms', 'spread ms', 'rate', 'x native time'], rows));
    if (dtype === 'float32') {
      const r = spawnSync(
        process.execPath,
        ['--import', 'tsx', join(here, 'memory.ts'), 'head', String(ROWS), String(V), String(H)],
        { encoding: 'utf8' },
      );
      if (r.status === 0) {
        const m = JSON.parse(r.stdout.trim().split('\n').pop()!);
        const added = m.peakRssBytes - m.baselineRssBytes;
        mem.unshift([
          'native cpu, forward + backward',
          mib(added),
          (added / logitsBytes).toFixed(2),
          `includes the outputs: dL/dweight ${mib(V * H * 4)} MiB, dL/dhidden ${mib(ROWS * H * 4)} MiB`,
        ]);
      } else mem.unshift(['native cpu', 'failed', '', (r.stderr ?? '').split('\n').filter(Boolean).pop() ?? '']);
      log();
      log(
        `### Peak memory added by a forward + backward (child process per path; float32 logits of this batch: ${mib(logitsBytes)} MiB)`,
      );
      log();
      log(table(['path', 'MiB added', 'x float32 logits', 'note'], mem));
    }
  }
}

const argv = process.argv.slice(2);
if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const threads = 2;
  if (argv.includes('--native-only')) {
    const dtype = argv[argv.indexOf('--native-only') + 1] as DType;
    const reps = Number(argv[argv.indexOf('--reps') + 1] ?? 3);
    const n = native(makeHeadInputs(ROWS, H, V, dtype), dtype, threads, reps);
    console.log(
      JSON.stringify({
        simd: backendInfo().simd,
        fwd: n.fwd.t.median,
        both: n.both.t.median,
        fwdOfPeak: n.fwd.ofPeak,
        bothOfPeak: n.both.ofPeak,
        peak: n.both.peak,
      }),
    );
  } else {
    await benchTokenLogprobsFromHidden((s = '') => console.log(s), threads, argv.includes('--quick'));
  }
}
