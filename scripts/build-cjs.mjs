// The CommonJS build behind `require('gvpo')` (dist/cjs), made from tsc's ES module output in
// dist/ (one build for every Node >= 20: Node before 20.19 cannot require() an ES module). Each
// file is converted on its own by esbuild, no bundling; dynamic import() is kept (TensorFlow.js
// stays an optional, lazily loaded peer); import.meta.url is the URL of the file's ES module twin
// in dist/, so paths relative to it (build/, prebuilds/, checkpoints/) hold in both builds. The
// declarations are copied beside it with a package.json that marks the directory CommonJS, so
// TypeScript types `require` callers as such.
import { transformSync } from 'esbuild';
import { cpSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const dist = join(dirname(fileURLToPath(import.meta.url)), '..', 'dist');
const cjs = join(dist, 'cjs');
const tmp = `${cjs}.tmp`;

function files(dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = join(dir, e.name);
    if (e.isDirectory()) return p === cjs || p === tmp ? [] : files(p);
    return [p];
  });
}

rmSync(tmp, { recursive: true, force: true });
for (const esm of files(dist)) {
  const out = join(tmp, relative(dist, esm));
  mkdirSync(dirname(out), { recursive: true });
  // The application (the gvpo command, bin: dist/app/cli.js) is ES module only: no library
  // module imports it.
  if (esm.startsWith(join(dist, 'app') + sep)) continue;
  if (esm.endsWith('.d.ts')) cpSync(esm, out);
  if (!esm.endsWith('.js')) continue;
  const twin = JSON.stringify(relative(dirname(join(cjs, relative(dist, esm))), esm));
  const { code, warnings } = transformSync(readFileSync(esm, 'utf8'), {
    format: 'cjs',
    platform: 'node',
    target: 'node20',
    supported: { 'dynamic-import': true },
    // ES modules are strict mode code; the CommonJS twin must be too.
    banner: `'use strict';\nconst __esmTwinUrl = require('node:url').pathToFileURL(require('node:path').join(__dirname, ${twin})).href;`,
    define: { 'import.meta.url': '__esmTwinUrl' },
    sourcefile: esm,
  });
  if (warnings.length) throw new Error(`${esm}: ${warnings.map((w) => w.text).join('; ')}`);
  writeFileSync(out, code);
}
writeFileSync(join(tmp, 'package.json'), '{ "type": "commonjs" }\n');
rmSync(cjs, { recursive: true, force: true });
renameSync(tmp, cjs);
