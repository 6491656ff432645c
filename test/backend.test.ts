// Backend choice and backendInfo(): what runs, what was compiled in, and every load error.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { backendInfo } from '../src/index.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

// Run a snippet against the built package in a fresh process with the given environment.
function probe(
  env: Record<string, string>,
  code = "import('./dist/index.js').then(g => console.log(JSON.stringify(g.backendInfo())))",
) {
  const clean = { ...process.env };
  delete clean.GVPO_BACKEND;
  delete clean.GVPO_ADDON_PATH;
  return execFileSync(process.execPath, ['-e', code], {
    cwd: root,
    env: { ...clean, ...env },
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

describe('backendInfo', () => {
  it('reports active, compiled, threads and load errors', () => {
    const info = backendInfo();
    expect(['cuda', 'cpu', 'js']).toContain(info.active);
    expect(info.compiled).toContain('js');
    expect(info.threads).toBeGreaterThanOrEqual(1);
    expect(Array.isArray(info.loadErrors)).toBe(true);
    if (process.env.GVPO_BACKEND) expect(info.active).toBe(process.env.GVPO_BACKEND);
    if (info.active === 'cpu') expect(['avx512bf16', 'avx512', 'avx2', 'sse2', 'generic']).toContain(info.simd);
  });

  it.runIf(process.env.GVPO_REQUIRE_NATIVE === '1' && !process.env.GVPO_BACKEND)(
    'the native CPU backend is active where it is required (CI)',
    () => {
      expect(backendInfo().active).not.toBe('js');
      expect(backendInfo().compiled).toContain('cpu');
    },
  );

  it('falls back to js when the addon cannot load, and says why', () => {
    const info = JSON.parse(probe({ GVPO_ADDON_PATH: '/nonexistent/gvpo.node' }));
    expect(info.active).toBe('js');
    expect(info.loadErrors.join('\n')).toContain('/nonexistent/gvpo.node');
  });

  it.runIf(existsSync(join(root, 'build', 'Release', 'gvpo.node')))(
    'a binary cut short falls back to js with the reason, where dlopen would die of SIGBUS',
    () => {
      const dir = mkdtempSync(join(tmpdir(), 'gvpo-cut-'));
      const whole = readFileSync(join(root, 'build', 'Release', 'gvpo.node'));
      for (const size of [1024, 100_000, whole.length - 1]) {
        const cut = join(dir, `gvpo-${size}.node`);
        writeFileSync(cut, whole.subarray(0, size));
        const info = JSON.parse(probe({ GVPO_ADDON_PATH: cut }));
        expect(info.active, `${size} bytes`).toBe('js');
        expect(info.loadErrors.join('\n')).toContain(`${cut}: truncated: ${size} bytes, its ELF headers need`);
      }
      rmSync(dir, { recursive: true, force: true });
    },
  );

  it('a forced backend that cannot load throws with every load error', () => {
    let msg = '';
    try {
      probe({ GVPO_ADDON_PATH: '/nonexistent/gvpo.node', GVPO_BACKEND: 'cpu' });
    } catch (e) {
      msg = String((e as { stderr?: string }).stderr);
    }
    expect(msg).toContain('GVPO_BACKEND=cpu cannot be used');
    expect(msg).toContain('/nonexistent/gvpo.node');
  });

  it('GVPO_BACKEND=js forces the reference', () => {
    expect(JSON.parse(probe({ GVPO_BACKEND: 'js' })).active).toBe('js');
  });
});
