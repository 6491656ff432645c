#!/usr/bin/env node
// The `gvpo` command:
//   gvpo info                      backendInfo() and the TensorFlow.js backend
//   gvpo train [options]           one run: progress bar, metrics.jsonl, plot.svg, report.md in --out
//   gvpo compare [options]         --algos a,b --seeds n: the same runs side by side, one table and chart
//   gvpo warmup [--out file]       the supervised warm-up that makes the addition reference policy
import { parseArgs } from 'node:util';
import { backendInfo } from './backend.js';
import { CHECKPOINT, compareRuns, summaryTable, trainRun, warmup } from './tfjs/runs.js';
import { loadTf, type TfChoice } from './tfjs/tf.js';
import type { Algo } from './tfjs/trainer.js';

const USAGE = `usage:
  gvpo info
  gvpo train   [--task addition|bandit] [--algo gvpo|grpo|drgrpo] [--steps N] [--group-size K]
               [--beta B] [--prompts P] [--lr LR] [--temperature T] [--seed S] [--out DIR]
               [--tf auto|cpu|wasm|node|node-gpu]
  gvpo compare [same options] [--algos gvpo,grpo] [--seeds 3]
  gvpo warmup  [--out FILE] [--steps N]`;

const { positionals, values } = parseArgs({
  allowPositionals: true,
  options: {
    task: { type: 'string', default: 'addition' },
    algo: { type: 'string', default: 'gvpo' },
    algos: { type: 'string', default: 'gvpo,grpo' },
    steps: { type: 'string' },
    'group-size': { type: 'string', default: '8' },
    beta: { type: 'string', default: '0.1' },
    prompts: { type: 'string' },
    temperature: { type: 'string' },
    lr: { type: 'string' },
    seed: { type: 'string', default: '1' },
    seeds: { type: 'string', default: '3' },
    out: { type: 'string' },
    tf: { type: 'string', default: 'auto' },
    help: { type: 'boolean', default: false },
  },
});

function num(name: string, v: string | undefined, fallback: number, integer = false): number {
  const x = v === undefined ? fallback : Number(v);
  if (!Number.isFinite(x) || (integer && !Number.isInteger(x))) {
    console.error(`gvpo: --${name} must be a${integer ? 'n integer' : ' number'}, got '${v}'`);
    process.exit(2);
  }
  return x;
}

function oneOf<T extends string>(name: string, v: string, allowed: readonly T[]): T {
  if (!allowed.includes(v as T)) {
    console.error(`gvpo: --${name} must be one of ${allowed.join(', ')}, got '${v}'`);
    process.exit(2);
  }
  return v as T;
}

async function main() {
  const cmd = positionals[0];
  if (values.help || !cmd) {
    console.log(USAGE);
    return;
  }
  if (cmd === 'info') {
    // The kernels need no TensorFlow.js: without it, info says what to install instead.
    const tfjs = await loadTf(oneOf('tf', values.tf!, ['auto', 'cpu', 'wasm', 'node', 'node-gpu'] as const))
      .then((t) => t.backend, (e: Error) => e.message);
    console.log(JSON.stringify({ ...backendInfo(), tfjs }, null, 2));
    return;
  }
  if (cmd === 'warmup') {
    const out = values.out ?? CHECKPOINT;
    const acc = await warmup(out, num('steps', values.steps, 300, true));
    console.log(`wrote ${out}; exact-match accuracy of the reference policy: ${acc.toFixed(3)}`);
    return;
  }
  const task = oneOf('task', values.task!, ['addition', 'bandit'] as const);
  const base = {
    task,
    steps: num('steps', values.steps, task === 'addition' ? 150 : 100, true),
    groupSize: num('group-size', values['group-size'], 8, true),
    beta: num('beta', values.beta, 0.1),
    promptsPerStep: values.prompts === undefined ? undefined : num('prompts', values.prompts, 0, true),
    temperature: values.temperature === undefined ? undefined : num('temperature', values.temperature, 1),
    learningRate: values.lr === undefined ? undefined : num('lr', values.lr, 0),
    tf: oneOf('tf', values.tf!, ['auto', 'cpu', 'wasm', 'node', 'node-gpu'] as const) as TfChoice,
    out: values.out ?? `runs/${task}-${cmd === 'compare' ? 'compare' : values.algo}`,
  };
  const info = backendInfo();
  console.error(`gvpo ${cmd}: kernels on ${info.active}${info.simd ? ` (${info.simd})` : ''}, ${info.threads} threads`);
  if (cmd === 'train') {
    const algo = oneOf('algo', values.algo!, ['gvpo', 'grpo', 'drgrpo'] as const);
    const r = await trainRun({ ...base, algo, seed: num('seed', values.seed, 1, true) });
    console.log(summaryTable([r]));
    console.log(`\nreport: ${base.out}/report.md, metrics: ${base.out}/metrics.jsonl, plot: ${base.out}/plot.svg`);
    return;
  }
  if (cmd === 'compare') {
    const algos = values.algos!.split(',').map((a) => oneOf('algos', a, ['gvpo', 'grpo', 'drgrpo'] as const)) as Algo[];
    const n = num('seeds', values.seeds, 3, true);
    const runs = await compareRuns(base, algos, Array.from({ length: n }, (_, i) => i + 1));
    console.log(summaryTable(runs));
    console.log(`\nreport: ${base.out}/compare.md, chart: ${base.out}/compare.svg`);
    return;
  }
  console.error(`gvpo: unknown command '${cmd}'\n${USAGE}`);
  process.exit(2);
}

main().catch((e) => {
  console.error(`gvpo: ${(e as Error).message}`);
  process.exit(1);
});
