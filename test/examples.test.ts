// Every program in examples/ runs as its header says, as a child process with a time limit, and
// succeeds: each checks its own result (a model that learns, a sharded result equal to the one-call
// one) and throws otherwise. They import 'gvpo' and 'gvpo/tfjs', which resolve to dist/ here.
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = join(import.meta.dirname, '..');
const DIR = join(ROOT, 'examples');
const programs = readdirSync(DIR)
  .filter((f) => f.endsWith('.ts'))
  .sort();
const LIMIT_MS = 90_000;

describe('examples/', () => {
  it('has the programs examples/README.md lists, each with its command at the top', () => {
    const readme = readFileSync(join(DIR, 'README.md'), 'utf8');
    expect(programs.length).toBeGreaterThanOrEqual(4);
    for (const f of programs) {
      expect(readme, f).toContain(`\`npx tsx examples/${f}\``);
      expect(readFileSync(join(DIR, f), 'utf8').split('\n').slice(0, 20).join('\n'), f).toContain(
        `npx tsx examples/${f}`,
      );
    }
  });

  for (const f of programs) {
    it(
      `${f} runs and checks its result`,
      () => {
        // `npx tsx file` is `node --import tsx file`, without npx's start-up
        const r = spawnSync(process.execPath, ['--import', 'tsx', join('examples', f)], {
          cwd: ROOT,
          encoding: 'utf8',
          timeout: LIMIT_MS,
        });
        expect(r.error, `${f} did not finish in ${LIMIT_MS / 1000} s`).toBeUndefined();
        expect(r.stderr, f).not.toMatch(/Hi, looks like|Error/);
        expect(r.status, `${f}:\n${r.stdout}\n${r.stderr}`).toBe(0);
        expect(r.stdout.trim().length).toBeGreaterThan(0);
      },
      LIMIT_MS + 10_000,
    );
  }
});
