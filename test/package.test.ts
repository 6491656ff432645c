// What `npm pack` would publish: the prebuilt binary for this platform, both module builds and
// their types, every source a source build needs, and nothing of the repository's working files
// (tests, benchmarks, build output, CI, runs). test/packageInstall.test.ts installs the tarball.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const prebuilt = `prebuilds/${process.platform}-${process.arch}/gvpo.node`;

let files: string[] = [];
let unpackedSize = 0;

// The fast loop (`npm test`) leaves the prebuilt binary's build (a minute of compiling when the
// native sources changed) to the full run and checks the rest of the listing.
const quick = process.env.GVPO_TEST_QUICK === '1';

beforeAll(() => {
  // The prebuilt binary is made by `prepack`; made here too (skipped when newer than its sources)
  // so that the listing below, taken without running scripts, shows what a real pack ships.
  if (!quick) execFileSync(process.execPath, [join(root, 'scripts', 'prebuild.mjs')], { cwd: root, stdio: 'pipe' });
  if (!existsSync(join(root, 'dist', 'cjs', 'index.js'))) throw new Error('dist/ is not built: run `npm run build`');
  const out = execFileSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], {
    cwd: root,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const [pack] = JSON.parse(out) as { files: { path: string }[]; unpackedSize: number }[];
  files = pack.files.map((f) => f.path);
  unpackedSize = pack.unpackedSize;
}, 240_000);

describe('npm pack contents', () => {
  it('ships the prebuilt binary, both module builds with types, LICENSE and the install scripts', () => {
    for (const f of [
      ...(quick ? [] : [prebuilt]),
      'dist/index.js',
      'dist/index.d.ts',
      'dist/tfjs/index.js',
      'dist/tfjs/index.d.ts',
      'dist/cjs/index.js',
      'dist/cjs/index.d.ts',
      'dist/cjs/tfjs/index.js',
      'dist/cjs/tfjs/index.d.ts',
      'dist/cjs/package.json',
      'dist/app/cli.js',
      'LICENSE',
      'README.md',
      'package.json',
      'scripts/install.mjs',
      'scripts/build-native.mjs',
      'binding.gyp',
      'CMakeLists.txt',
      'checkpoints/addition-warmup.json',
    ]) {
      expect(files, f).toContain(f);
    }
  });

  it('every path package.json points at is shipped', () => {
    const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
    const targets: string[] = [pkg.main, pkg.types, ...Object.values(pkg.bin as Record<string, string>)];
    const walk = (v: unknown): void => {
      if (typeof v === 'string') targets.push(v);
      else if (v && typeof v === 'object') Object.values(v).forEach(walk);
    };
    walk(pkg.exports);
    for (const t of targets) expect(files, t).toContain(t.replace(/^\.\//, ''));
  });

  it('ships every native source the source builds (binding.gyp, CMakeLists.txt) compile', () => {
    const gyp = readFileSync(join(root, 'binding.gyp'), 'utf8');
    const cmake = readFileSync(join(root, 'CMakeLists.txt'), 'utf8');
    const sources = [...`${gyp}\n${cmake}`.matchAll(/native\/[\w/]+\.(?:cc|cu|h)\b/g)]
      .map((m) => m[0])
      .filter((s) => !s.startsWith('native/tests/'));
    expect(sources.length).toBeGreaterThan(5);
    for (const s of new Set(sources)) expect(files, s).toContain(s);
  });

  it('leaves out tests, benchmarks, build output, CI, runs, sources of dist and source maps', () => {
    const bad = files.filter(
      (f) =>
        (/^(test|bench|build|build-[^/]*|\.ci|runs|src|node_modules|native\/tests|out)\//.test(f) &&
          !/^bench\/[A-Za-z-]+\.md$/.test(f)) || // the benchmarks' results and notes are documents
        /\.(tgz|log|map)$/.test(f) ||
        f.startsWith('.'),
    );
    expect(bad).toEqual([]);
    expect(unpackedSize).toBeLessThan(5e6);
  });

  it("every relative link of README.md leads to a shipped file (npm's page of the package shows it)", () => {
    const readme = readFileSync(join(root, 'README.md'), 'utf8');
    const links = [...readme.matchAll(/\]\(([^)#\s]+)(?:#[^)]*)?\)/g)]
      .map((m) => m[1])
      .filter((l) => !/^[a-z]+:/.test(l));
    expect(links.length).toBeGreaterThan(5);
    for (const l of new Set(links)) expect(files, l).toContain(l.replace(/^\.\//, ''));
  });

  it('every file in dist/ comes from a source file that exists (no leftovers of old builds)', () => {
    const orphans = files
      .filter((f) => f.startsWith('dist/') && !f.endsWith('package.json'))
      .filter((f) => {
        const src = f.replace(/^dist\/(cjs\/)?/, 'src/').replace(/\.(d\.ts|js)$/, '.ts');
        return !existsSync(join(root, src));
      });
    expect(orphans).toEqual([]);
  });
});
