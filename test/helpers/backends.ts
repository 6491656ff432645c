// The configurations a differential test runs in child processes, one label each: the CUDA backend
// where a device makes it active, each CPU instruction set from the best this machine has down to
// SSE2 (forced to the CPU where CUDA is active), and the TypeScript backend. A forced
// GVPO_BACKEND=js or GVPO_SIMD in the environment narrows to it.
import { backendInfo } from '../../src/index.js';

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
