// scripts/build-native.mjs (what `npm install` runs in a checkout, and `npm rebuild gvpo` where no
// prebuilt binary fits) is quiet: a build that succeeds prints one line, one that fails prints the
// log of the step that failed. Each run builds a copy of the sources in a scratch folder, as
// scripts/prebuild.mjs does, so the checkout's own build/ is never touched. The failing build stops
// at its first compile (the compiler is `false`); the successful one compiles everything, so only
// the full run (`npm run test:full`) makes it.
import { spawnSync } from 'node:child_process';
import { cpSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const ROOT = join(import.meta.dirname, '..');
const FULL = process.env.GVPO_TEST_QUICK !== '1';
const scratches: string[] = [];

function buildCopy(name: string, env: Record<string, string>) {
  const scratch = join(ROOT, `build-${name}`);
  rmSync(scratch, { recursive: true, force: true });
  scratches.push(scratch);
  for (const p of ['binding.gyp', 'native', 'scripts/build-native.mjs'])
    cpSync(join(ROOT, p), join(scratch, p), { recursive: true });
  const r = spawnSync(process.execPath, [join(scratch, 'scripts', 'build-native.mjs')], {
    cwd: scratch,
    encoding: 'utf8',
    timeout: 600_000,
    env: { ...process.env, GVPO_BUILD_VERBOSE: '', ...env },
  });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

afterAll(() => {
  for (const s of scratches) rmSync(s, { recursive: true, force: true });
});

describe('scripts/build-native.mjs', () => {
  it('a failed build shows the log of the step that failed, then one line saying so', () => {
    const r = buildCopy('quiet-fail', { CC: 'false', CXX: 'false' });
    expect(r.code).toBe(1);
    expect(r.out).toBe('');
    expect(r.err).toMatch(/gyp info/); // the log, shown because the step failed
    expect(r.err).toMatch(/gyp ERR!/);
    expect(r.err.trim().split('\n').at(-1)).toMatch(
      /^gvpo: the native build \(gyp\) failed: .*node-gyp.* rebuild exited with 1$/,
    );
  }, 120_000);

  it.runIf(FULL)(
    'a build that succeeds prints one line',
    () => {
      const r = buildCopy('quiet-ok', {});
      expect(r.err).toBe('');
      expect(r.out).toMatch(/^gvpo: built build\/Release\/gvpo.node \(node-gyp, \d+ s\)\n$/);
    },
    600_000,
  );
});
