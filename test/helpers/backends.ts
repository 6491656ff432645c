// The configurations a differential test runs in child processes, one label each: the CUDA backend
// where a device makes it active, each CPU instruction set from the best this machine has down to
// SSE2 (forced to the CPU where CUDA is active), and the TypeScript backend. A forced
// GVPO_BACKEND=js or GVPO_SIMD in the environment narrows to it.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { expect } from 'vitest';
import { backendInfo } from '../../src/index.js';

const root = fileURLToPath(new URL('../..', import.meta.url));

/** A worker script's answers in one configuration: run under tsx in a child process (from the
 *  repository's root, `env` added), it must exit 0 with nothing on stderr and print them as JSON. */
export function workerAnswers<T>(script: string, env: Record<string, string>): T {
  const r = spawnSync(process.execPath, ['--import', 'tsx', script], {
    cwd: root,
    env: { ...process.env, ...env },
    encoding: 'utf8',
    timeout: 120_000,
    maxBuffer: 1 << 28,
  });
  expect({ status: r.status, signal: r.signal, stderr: r.stderr.slice(-2000) }).toEqual({
    status: 0,
    signal: null,
    stderr: '',
  });
  return JSON.parse(r.stdout) as T;
}

export function backendConfigs(): Array<Record<string, string>> {
  const info = backendInfo();
  if (info.active === 'js') return [{ GVPO_BACKEND: 'js' }];
  if (process.env.GVPO_SIMD) return [{ GVPO_SIMD: process.env.GVPO_SIMD }, { GVPO_BACKEND: 'js' }];
  const isas = ['avx512', 'avx2', 'sse2'];
  const best = Math.max(0, isas.indexOf(info.simd ?? 'sse2')); // avx512bf16: avx512's row kernels
  const cuda = info.active === 'cuda';
  const cpu = (s: string): Record<string, string> => (cuda ? { GVPO_BACKEND: 'cpu', GVPO_SIMD: s } : { GVPO_SIMD: s });
  return [...(cuda ? [{ GVPO_BACKEND: 'cuda' }] : []), ...isas.slice(best).map(cpu), { GVPO_BACKEND: 'js' }];
}
