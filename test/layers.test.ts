// The import graph of src/ is one-way: no circles (type-only imports count: a circle of types is
// a boundary in the wrong place too), the library never imports the application (src/app/), and
// the kernels' layer (ops, reference, checked options, validation, backend) knows nothing of
// TensorFlow.js or the trainer. A new import that breaks any of these fails here.
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const SRC = resolve(import.meta.dirname, '..', 'src');

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = join(dir, e.name);
    return e.isDirectory() ? sources(p) : e.name.endsWith('.ts') ? [p] : [];
  });
}

/** Every relative module a file imports or re-exports, statically or with import(), as src-relative paths. */
export function importsOf(file: string, text: string): string[] {
  const specs = [
    ...text.matchAll(/^\s*(?:import|export)\b[^;'"]*?\bfrom\s+['"]([^'"]+)['"]/gms),
    ...text.matchAll(/^\s*import\s+['"]([^'"]+)['"]/gm),
    ...text.matchAll(/\bimport\(\s*['"]([^'"]+)['"]\s*\)/g),
  ].map((m) => m[1]);
  return specs
    .filter((s) => s.startsWith('.'))
    .map((s) => relative(SRC, resolve(dirname(file), s.replace(/\.js$/, '.ts'))));
}

function graph(): Map<string, string[]> {
  const g = new Map<string, string[]>();
  for (const f of sources(SRC)) g.set(relative(SRC, f), importsOf(f, readFileSync(f, 'utf8')));
  return g;
}

/** Strongly connected components with more than one file, or a file importing itself (Tarjan). */
export function circles(g: Map<string, string[]>): string[][] {
  let index = 0;
  const idx = new Map<string, number>(),
    low = new Map<string, number>(),
    on = new Set<string>();
  const stack: string[] = [],
    out: string[][] = [];
  const visit = (v: string) => {
    idx.set(v, index);
    low.set(v, index++);
    stack.push(v);
    on.add(v);
    for (const w of g.get(v) ?? []) {
      if (!g.has(w)) continue;
      if (!idx.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (on.has(w)) low.set(v, Math.min(low.get(v)!, idx.get(w)!));
    }
    if (low.get(v) === idx.get(v)) {
      const c: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        on.delete(w);
        c.push(w);
      } while (w !== v);
      if (c.length > 1 || (g.get(v) ?? []).includes(v)) out.push(c.sort());
    }
  };
  for (const v of g.keys()) if (!idx.has(v)) visit(v);
  return out;
}

const KERNEL_LAYER = /^(ops\/|reference\/|checked\.ts|validate\.ts|types\.ts|backend\.ts|index\.ts)/;

describe('the import graph of src/', () => {
  const g = graph();

  it('has no import circles', () => {
    expect(circles(g)).toEqual([]);
  });

  it('the library never imports the application (src/app/)', () => {
    const bad = [...g].flatMap(([f, deps]) =>
      f.startsWith('app/') ? [] : deps.filter((d) => d.startsWith('app/')).map((d) => `${f} -> ${d}`),
    );
    expect(bad).toEqual([]);
  });

  it('the kernels layer imports neither TensorFlow.js code nor the tasks', () => {
    const bad = [...g].flatMap(([f, deps]) =>
      KERNEL_LAYER.test(f)
        ? deps.filter((d) => d.startsWith('tfjs/') || d.startsWith('tasks/')).map((d) => `${f} -> ${d}`)
        : [],
    );
    expect(bad).toEqual([]);
  });

  it('finds a circle and an upward import when there is one (the checks can fail)', () => {
    const g2 = new Map([
      ['a.ts', ['b.ts']],
      ['b.ts', ['c.ts']],
      ['c.ts', ['a.ts']],
      ['d.ts', ['d.ts']],
      ['e.ts', []],
    ]);
    expect(circles(g2)).toEqual([['a.ts', 'b.ts', 'c.ts'], ['d.ts']]);
    const f = join(SRC, 'tfjs', 'x.ts');
    expect(
      importsOf(
        f,
        "import type { A } from '../app/runs.js';\nconst m = await import('./y.js');\nexport { b } from '../ops/z.js';",
      ),
    ).toEqual(['app/runs.ts', 'ops/z.ts', 'tfjs/y.ts']);
  });
});
