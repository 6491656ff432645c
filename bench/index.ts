// `npm run bench [-- --write] [-- --quick] [-- --threads N]`: every op at a few sizes, native
// and TypeScript, float32 and bfloat16, with medians, spread, GB/s and the ratio to the roofline
// measured in this run; peers (PyTorch CPU eager, TensorFlow.js cpu and wasm) on the same inputs
// and threads; peak memory per path in child processes. --write regenerates bench/RESULTS.md.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { backendInfo } from '../src/index.js';
import { benchGvpoFromHidden } from './gvpoFromHidden.bench.js';
import { benchGvpoFromLogits } from './gvpoFromLogits.bench.js';
import { fmtGB, fmtMs, makeInputs, roofline, table, type Inputs, type Timing, timeSlowAsync } from './lib.js';
import { type ProbedLogits, probedLogits, type Spread } from './logitsProbed.js';
import { tfjsWithBackend, tfjsPeer } from './peers/tfjs.js';
import { benchTokenLogprobs } from './tokenLogprobs.bench.js';
import { benchTokenLogprobsFromHidden } from './tokenLogprobsFromHidden.bench.js';

const argv = process.argv.slice(2);
const WRITE = argv.includes('--write');
const QUICK = argv.includes('--quick');
const threadsArg = argv.indexOf('--threads');
const THREADS = threadsArg >= 0 ? Number(argv[threadsArg + 1]) : os.cpus().length;
const here = dirname(fileURLToPath(import.meta.url));
const PY = '/usr/bin/python3';

interface Case {
  label: string;
  N: number;
  T: number;
  V: number;
  k: number;
  reference: boolean;
  torch: boolean;
  tfjs: boolean;
  memory: boolean;
}
const CASES: Case[] = [
  { label: 'small', N: 16, T: 16, V: 4096, k: 4, reference: true, torch: true, tfjs: true, memory: false },
  { label: 'main', N: 16, T: 128, V: 32768, k: 4, reference: true, torch: true, tfjs: true, memory: true },
  ...(QUICK
    ? []
    : [
        {
          label: 'large vocab',
          N: 8,
          T: 64,
          V: 151936,
          k: 4,
          reference: false,
          torch: false,
          tfjs: false,
          memory: false,
        },
      ]),
];

const out: string[] = [];
const log = (s = '') => {
  console.log(s);
  out.push(s);
};

function machine(): string {
  const info = backendInfo();
  let torch = 'not installed';
  try {
    torch = execFileSync(PY, ['-c', 'import torch; print(torch.__version__)'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    }).trim();
  } catch {
    /* peer skipped below with the reason */
  }
  return [
    `- CPU: ${os.cpus()[0].model}${cpuFamily()}, ${os.cpus().length} cores visible, SIMD level used: ${info.simd ?? 'n/a'}`,
    `- memory: ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB; OS: ${os.type()} ${os.release()}`,
    `- Node ${process.version}; gvpo backend ${info.active} (compiled: ${info.compiled.join(', ')}); threads for every path: ${THREADS}`,
    `- PyTorch (${PY}): ${torch}; TensorFlow.js: ${tfjsVersion()}`,
  ].join('\n');
}

// " (family 25, model 1)" from /proc/cpuinfo: a virtual machine's model name ("AMD EPYC") does not
// tell one generation from the next.
function cpuFamily(): string {
  try {
    const info = readFileSync('/proc/cpuinfo', 'utf8');
    const family = /^cpu family\s*:\s*(\d+)/m.exec(info)?.[1];
    const model = /^model\s*:\s*(\d+)/m.exec(info)?.[1];
    return family !== undefined && model !== undefined ? ` (family ${family}, model ${model})` : '';
  } catch {
    return '';
  }
}

function tfjsVersion(): string {
  try {
    return execFileSync(process.execPath, ['-p', "require('@tensorflow/tfjs-core/package.json').version"], {
      encoding: 'utf8',
    }).trim();
  } catch {
    return 'not installed';
  }
}

function writeInputs(x: Inputs, dir: string) {
  const f = (name: string, a: ArrayBufferView) => {
    const p = join(dir, name);
    writeFileSync(p, new Uint8Array(a.buffer, a.byteOffset, a.byteLength));
    return p;
  };
  return {
    logits: f('logits.bin', x.logits),
    targets: f('targets.bin', x.targets),
    mask: f('mask.bin', x.mask),
    ref: f('ref.bin', x.referenceTokenLogprobs),
    rewards: f('rewards.bin', x.rewards),
  };
}

interface TorchResult {
  tokenLogprobs: number;
  tokenLogprobsSpread: number;
  gvpoFromLogits: number;
  gvpoFromLogitsSpread: number;
  peakRssBytes: number;
  baselineRssBytes: number;
  torch: string;
}

function torchPeer(x: Inputs): TorchResult | string {
  if (!existsSync(PY)) return `${PY} not found`;
  const probe = spawnSync(PY, ['-c', 'import torch'], { encoding: 'utf8' });
  if (probe.status !== 0) return 'python3-torch is not installed (apt-get install python3-torch)';
  const dir = mkdtempSync(join(os.tmpdir(), 'gvpo-bench-'));
  try {
    const files = writeInputs(x, dir);
    const cfg = {
      ...files,
      N: x.N,
      T: x.T,
      V: x.V,
      k: x.k,
      beta: x.beta,
      tau: x.temperature,
      threads: THREADS,
      reps: QUICK ? 3 : 7,
      dtype: x.dtype,
    };
    const r = spawnSync(PY, [join(here, 'peers', 'torch_gvpo.py'), JSON.stringify(cfg)], {
      encoding: 'utf8',
      env: { ...process.env, OMP_NUM_THREADS: String(THREADS) },
    });
    if (r.status !== 0) return `PyTorch peer failed: ${r.stderr.split('\n').slice(-3).join(' ')}`;
    return JSON.parse(r.stdout.trim().split('\n').pop()!);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function tfjsPeers(x: Inputs): Promise<Array<{ path: string; tok?: Timing; step?: Timing; note?: string }>> {
  const res: Array<{ path: string; tok?: Timing; step?: Timing; note?: string }> = [];
  for (const backend of ['wasm', 'cpu'] as const) {
    try {
      const tf = await tfjsWithBackend(backend);
      const p = tfjsPeer(tf, x, backend);
      // wasm: one warm-up and 3 timed calls; cpu (a gradient call takes tens of seconds): one cold call
      const slow = backend === 'cpu';
      const tok = await timeSlowAsync(() => p.tokenLogprobs(), slow ? 1 : 3, !slow);
      const step = await timeSlowAsync(() => p.gvpoFromLogits(), slow || QUICK ? 1 : 3, !slow);
      p.dispose();
      res.push({ path: `TensorFlow.js ${backend} (1 thread${slow ? ', 1 cold call' : ''})`, tok, step });
    } catch (e) {
      res.push({ path: `TensorFlow.js ${backend}`, note: `failed: ${(e as Error).message.split('\n')[0]}` });
    }
  }
  return res;
}

function memoryRows(c: Case): Array<Array<string | number>> {
  const rows: Array<Array<string | number>> = [];
  const paths: Array<[string, Record<string, string>]> = [
    ['native-inplace', {}],
    ['native', {}],
    ['tfjs-cpu', {}],
  ];
  for (const [path, env] of paths) {
    const r = spawnSync(
      process.execPath,
      ['--import', 'tsx', join(here, 'memory.ts'), path, String(c.N), String(c.T), String(c.V), String(c.k)],
      { encoding: 'utf8', env: { ...process.env, ...env } },
    );
    if (r.status !== 0) {
      rows.push([path, 'failed', '', r.stderr.split('\n').filter(Boolean).pop() ?? '']);
      continue;
    }
    const m = JSON.parse(r.stdout.trim().split('\n').pop()!);
    const added = m.peakRssBytes - m.baselineRssBytes;
    const mib = (b: number) => (b / 2 ** 20).toFixed(0);
    rows.push([
      path,
      mib(added),
      (added / m.logitsBytes).toFixed(2),
      `peak ${mib(m.peakRssBytes)} MiB over ${mib(m.baselineRssBytes)} MiB with the inputs`,
    ]);
  }
  return rows;
}

/** The logits kernels at the main size against probes around each call, per dtype and
 *  instruction set (AVX2 in a child process with GVPO_SIMD=avx2 where the machine has AVX-512). */
function probedSection() {
  const reps = QUICK ? 3 : 9;
  const results: ProbedLogits[] = [];
  const simd = backendInfo().simd ?? 'js';
  for (const dtype of ['float32', 'bfloat16', 'float16'] as const) {
    results.push(probedLogits(makeInputs(16, 128, 32768, 4, dtype), THREADS, reps));
  }
  if (simd.startsWith('avx512')) {
    for (const dtype of ['float32', 'bfloat16', 'float16'] as const) {
      const r = spawnSync(
        process.execPath,
        ['--import', 'tsx', join(here, 'logitsProbed.ts'), dtype, String(reps), '--json'],
        { encoding: 'utf8', env: { ...process.env, GVPO_SIMD: 'avx2' } },
      );
      if (r.status === 0) results.push(JSON.parse(r.stdout.trim().split('\n').pop()!));
      else log(`\nAVX2 child (${dtype}) failed: ${(r.stderr ?? '').split('\n').filter(Boolean).pop() ?? ''}`);
    }
  }
  const pct = (x: Spread) => `${(x.median * 100).toFixed(0)}% [${(x.lo * 100).toFixed(0)}-${(x.hi * 100).toFixed(0)}]`;
  const ms = (x: Spread) => `${fmtMs(x.median)} [${fmtMs(x.lo)}-${fmtMs(x.hi)}]`;
  const gbs = (x: Spread) => `${x.median.toFixed(1)} [${x.lo.toFixed(1)}-${x.hi.toFixed(1)}]`;
  const n = 2048 * 32768;
  log();
  log(`## The logits kernels against same-run probes: N*T = 2048, V = 32768, ${THREADS} threads, ${reps} calls each`);
  log();
  log(
    "Probes right before and after every timed call: the streaming read of as many bytes as the logits (tokenLogprobs' roofline), the " +
      "streaming write of the float32 gradient, and the exp-throughput probe (the forward sweep's own term, 2^((x - m) c) with its " +
      'multiplication by c, on register-resident vectors, the same instruction set). Each percentage is the median over calls of the ' +
      'call against the mean of the probes around it, [min-max] over calls. "Bound by" names the slower of the two probes in ' +
      "logits per second (the read probe's bytes over the logit's size, or the exp probe): the forward can run no faster than it. " +
      'gvpoFromLogits writes into a reused `out`; its floor is 2 reads of the logits + 1 float32 write.',
  );
  log();
  log(
    table(
      [
        'instruction set',
        'dtype',
        'read probe GB/s',
        'exp probe G/s',
        'bound by',
        'tokenLogprobs ms',
        'G logits/s',
        'of read roofline',
        'of exp probe',
        'gvpoFromLogits ms',
        'of 2 reads + 1 write',
      ],
      results.map((r) => [
        r.simd,
        r.dtype,
        gbs(r.readGBs),
        gbs(r.expGs),
        r.expGs.median < r.readGBs.median / (r.dtype === 'float32' ? 4 : 2) ? 'exp' : 'memory',
        ms(r.tokSeconds),
        (n / r.tokSeconds.median / 1e9).toFixed(2),
        pct(r.tokOfRoof),
        pct(r.tokOfExp),
        ms(r.stepSeconds),
        pct(r.stepOfFloor),
      ]),
    ),
  );
}

async function main() {
  log('# gvpo benchmark results');
  log();
  log(
    `Generated by \`npm run bench -- --write\` on ${new Date().toISOString().slice(0, 10)}. Medians of benchmark.js samples (native) or of timed calls (slow paths); spread is max - min. Never hand-edited.`,
  );
  log();
  log(machine());
  for (const dtype of ['float32', 'bfloat16'] as const) {
    for (const c of CASES) {
      const x = makeInputs(c.N, c.T, c.V, c.k, dtype);
      const bytes = x.logits.byteLength;
      const gradBytes = c.N * c.T * c.V * 4;
      const roof = roofline(bytes, THREADS);
      const floorTok = bytes / roof.read;
      const floorStep = (2 * bytes) / roof.read + gradBytes / roof.write;
      log();
      log(
        `## ${c.label}: N*T = ${c.N * c.T} (N = ${c.N}, T = ${c.T}, k = ${c.k}), V = ${c.V}, ${dtype} (${(bytes / 2 ** 20).toFixed(0)} MiB of logits)`,
      );
      log();
      log(
        `Roofline, same run, ${THREADS} threads: streaming read ${fmtGB(roof.read)} GB/s, write ${fmtGB(roof.write)} GB/s. ` +
          `Floors: tokenLogprobs ${fmtMs(floorTok)} ms (1 read); gvpoFromLogits ${fmtMs(floorStep)} ms (2 reads + 1 float32 write).`,
      );
      const tok = benchTokenLogprobs(x, THREADS, c.reference && dtype === 'float32');
      const step = benchGvpoFromLogits(x, THREADS, c.reference && dtype === 'float32');
      let torch: TorchResult | string | undefined;
      let tf: Awaited<ReturnType<typeof tfjsPeers>> = [];
      if (c.torch) torch = torchPeer(x);
      if (c.tfjs && dtype === 'float32') tf = await tfjsPeers(x);
      const nativeTok = tok[0].t.median;
      const nativeStep = step[0].t.median;
      const rowsTok: Array<Array<string | number>> = tok.map((r) => [
        r.path,
        fmtMs(r.t.median),
        fmtMs(r.t.spread),
        fmtGB(bytes / r.t.median),
        `${((floorTok / r.t.median) * 100).toFixed(0)}%`,
        (r.t.median / nativeTok).toFixed(1),
      ]);
      const rowsStep: Array<Array<string | number>> = step.map((r) => [
        r.path,
        fmtMs(r.t.median),
        fmtMs(r.t.spread),
        fmtGB(bytes / r.t.median),
        `${((floorStep / r.t.median) * 100).toFixed(0)}%`,
        (r.t.median / nativeStep).toFixed(1),
      ]);
      if (typeof torch === 'object') {
        rowsTok.push([
          `PyTorch ${torch.torch} eager`,
          fmtMs(torch.tokenLogprobs),
          fmtMs(torch.tokenLogprobsSpread),
          fmtGB(bytes / torch.tokenLogprobs),
          `${((floorTok / torch.tokenLogprobs) * 100).toFixed(0)}%`,
          (torch.tokenLogprobs / nativeTok).toFixed(1),
        ]);
        rowsStep.push([
          `PyTorch ${torch.torch} eager`,
          fmtMs(torch.gvpoFromLogits),
          fmtMs(torch.gvpoFromLogitsSpread),
          fmtGB(bytes / torch.gvpoFromLogits),
          `${((floorStep / torch.gvpoFromLogits) * 100).toFixed(0)}%`,
          (torch.gvpoFromLogits / nativeStep).toFixed(1),
        ]);
      }
      for (const p of tf) {
        if (p.tok && p.step) {
          rowsTok.push([
            p.path,
            fmtMs(p.tok.median),
            fmtMs(p.tok.spread),
            fmtGB(bytes / p.tok.median),
            `${((floorTok / p.tok.median) * 100).toFixed(1)}%`,
            (p.tok.median / nativeTok).toFixed(0),
          ]);
          rowsStep.push([
            p.path,
            fmtMs(p.step.median),
            fmtMs(p.step.spread),
            fmtGB(bytes / p.step.median),
            `${((floorStep / p.step.median) * 100).toFixed(1)}%`,
            (p.step.median / nativeStep).toFixed(0),
          ]);
        }
      }
      const head = ['path', 'median ms', 'spread ms', 'GB/s of logits', 'of roofline', 'x native time'];
      log();
      log('### tokenLogprobs');
      log();
      log(table(head, rowsTok));
      log();
      log('### gvpoFromLogits (forward + loss + gradient)');
      log();
      log(table(head, rowsStep));
      if (typeof torch === 'string') log(`\nPyTorch peer skipped: ${torch}`);
      for (const p of tf) if (p.note) log(`\n${p.path} ${p.note}`);
      if (c.memory && dtype === 'float32' && !QUICK) {
        log();
        log('### Peak memory added by one gvpoFromLogits call (child process per path, resident set)');
        log();
        const mem = memoryRows(c);
        if (typeof torch === 'object') {
          const added = torch.peakRssBytes - torch.baselineRssBytes;
          mem.push([
            `PyTorch ${torch.torch} eager`,
            (added / 2 ** 20).toFixed(0),
            (added / bytes).toFixed(2),
            `peak ${(torch.peakRssBytes / 2 ** 20).toFixed(0)} MiB over ${(torch.baselineRssBytes / 2 ** 20).toFixed(0)} MiB with the inputs`,
          ]);
        }
        log(table(['path', 'MiB added', 'x logits size', 'note'], mem));
      }
    }
  }
  probedSection();
  await benchGvpoFromHidden(log, THREADS, QUICK);
  await benchTokenLogprobsFromHidden(log, THREADS, QUICK);
  if (WRITE) {
    writeFileSync(join(here, 'RESULTS.md'), `${out.join('\n')}\n`);
    console.log(`\nwrote ${join(here, 'RESULTS.md')}`);
  }
}

await main();
