// docs/API.md covers every export of 'gvpo' and 'gvpo/tfjs' and is what scripts/api-docs.mjs
// writes from the current types. The list of exports is taken twice: from the compiler (types
// included) and, independently, from the built modules at run time.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
// @ts-expect-error: a JavaScript module of the repository's scripts, without declarations
import { collect, render } from '../scripts/api-docs.mjs';

const ROOT = join(import.meta.dirname, '..');
const API_MD = readFileSync(join(ROOT, 'docs', 'API.md'), 'utf8');
type Entry = { name: string; items: Array<{ name: string; kind: string; doc: string; text: string }> };
const entries: Entry[] = collect();
const heading = (entry: string, name: string) => `<a id="${entry.replace(/\//g, '-')}-${name}"></a>\n#### \`${name}\``;

describe('docs/API.md', () => {
  it('is up to date (npm run docs:api writes it)', () => {
    expect(API_MD === render(entries), 'docs/API.md is out of date: run `npm run docs:api`').toBe(true);
  }, 60_000);

  it('has a section for every export the compiler sees, with its declaration', () => {
    for (const e of entries) {
      expect(e.items.length).toBeGreaterThan(10);
      for (const i of e.items) {
        expect(API_MD, `${e.name}: ${i.name}`).toContain(heading(e.name, i.name));
        expect(i.text, `${e.name}: ${i.name}`).toMatch(new RegExp(`\\b${i.name}\\b`));
      }
    }
  });

  it('has a section for every value the built modules export at run time', async () => {
    for (const [name, path] of [
      ['gvpo', '../dist/index.js'],
      ['gvpo/tfjs', '../dist/tfjs/index.js'],
    ]) {
      const runtime = Object.keys(await import(path)).filter((k) => k !== 'default');
      expect(runtime.length).toBeGreaterThan(10);
      for (const k of runtime) expect(API_MD, `${name}: ${k}`).toContain(heading(name, k));
    }
  });

  it("documents every function of 'gvpo' (a doc comment, or its sync twin's)", () => {
    const undocumented = entries[0].items.filter((i) => i.kind === 'function' && !i.doc).map((i) => i.name);
    expect(undocumented).toEqual([]);
  });
});
