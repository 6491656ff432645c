// README.md runs as written: every ```ts block in it is a complete program (imports included). Each
// is written to build-doctest/, type-checked by tsc against the package's own types (dist/*.d.ts,
// reached as 'gvpo' and 'gvpo/tfjs' the way an app reaches them) together with examples/, then
// run as a child process. A snippet that drifts from the API fails here with its README line.
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = join(import.meta.dirname, '..');
const OUT = join(ROOT, 'build-doctest');
const LIMIT_MS = 60_000;

/** The ```ts blocks of a markdown text, with the line each starts on. */
export function tsBlocks(markdown: string): Array<{ line: number; code: string }> {
  const out: Array<{ line: number; code: string }> = [];
  const lines = markdown.split('\n');
  for (let i = 0; i < lines.length; i++) {
    if (lines[i].trim() !== '```ts') continue;
    const start = i + 1;
    let end = start;
    while (end < lines.length && lines[end].trim() !== '```') end++;
    out.push({ line: start + 1, code: lines.slice(start, end).join('\n') });
    i = end;
  }
  return out;
}

const blocks = tsBlocks(readFileSync(join(ROOT, 'README.md'), 'utf8'));
const fileOf = (line: number) => join(OUT, `readme-line-${line}.ts`);

rmSync(OUT, { recursive: true, force: true });
mkdirSync(OUT, { recursive: true });
for (const b of blocks) writeFileSync(fileOf(b.line), `${b.code}\n`);
// The checkout's own settings (NodeNext, strict) over the snippets and examples/; 'gvpo' resolves
// to this package through its exports, as in an app that installed it.
writeFileSync(
  join(OUT, 'tsconfig.json'),
  JSON.stringify(
    {
      extends: '../tsconfig.json',
      compilerOptions: { noEmit: true, rootDir: '..', declaration: false, sourceMap: false },
      include: ['*.ts', '../examples/*.ts'],
    },
    null,
    2,
  ),
);

describe('README.md', () => {
  it('has ts blocks, each a program that imports what it uses', () => {
    expect(blocks.length).toBeGreaterThanOrEqual(6);
    for (const b of blocks) expect(b.code, `README.md line ${b.line}`).toMatch(/^import .* from 'gvpo(\/tfjs)?';$/m);
  });

  it('its ts blocks and examples/ type-check against the package types', () => {
    const tsc = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
    const r = spawnSync(process.execPath, [tsc, '-p', join(OUT, 'tsconfig.json')], {
      cwd: ROOT,
      encoding: 'utf8',
      timeout: 120_000,
    });
    // tsc names build-doctest/readme-line-<n>.ts: map it back to README.md's line
    const report = r.stdout.replace(
      /build-doctest\/readme-line-(\d+)\.ts\((\d+),/g,
      (_, start, l) => `README.md(${Number(start) + Number(l) - 1},`,
    );
    expect(report).toBe('');
    expect(r.status).toBe(0);
  }, 120_000);

  for (const b of blocks) {
    it(
      `the block at line ${b.line} runs`,
      () => {
        const r = spawnSync(process.execPath, ['--import', 'tsx', relative(ROOT, fileOf(b.line))], {
          cwd: ROOT,
          encoding: 'utf8',
          timeout: LIMIT_MS,
        });
        expect(r.error, `did not finish in ${LIMIT_MS / 1000} s`).toBeUndefined();
        expect(r.status, `README.md line ${b.line}:\n${r.stderr}`).toBe(0);
        expect(r.stderr).toBe('');
      },
      LIMIT_MS + 10_000,
    );
  }
});
