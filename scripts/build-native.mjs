// `npm install` step: build the native CPU addon with node-gyp. A failed build does not fail
// the install (gvpo then runs on its TypeScript backend and backendInfo().loadErrors says why),
// unless GVPO_REQUIRE_NATIVE=1, as CI sets it.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

const require = createRequire(import.meta.url);
let gyp;
try {
  gyp = require.resolve('node-gyp/bin/node-gyp.js');
} catch {
  console.warn('gvpo: node-gyp not found; skipping the native build (TypeScript backend only)');
  process.exit(process.env.GVPO_REQUIRE_NATIVE === '1' ? 1 : 0);
}
const env = { ...process.env };
// Build against the headers installed with this Node when they are there (no download needed).
const prefix = dirname(dirname(process.execPath));
if (!env.npm_config_nodedir && existsSync(join(prefix, 'include', 'node', 'node_api.h'))) {
  env.npm_config_nodedir = prefix;
}
const r = spawnSync(process.execPath, [gyp, 'rebuild'], { stdio: 'inherit', env });
if (r.status !== 0) {
  console.warn('gvpo: the native build failed; gvpo will run on its TypeScript backend');
  process.exit(process.env.GVPO_REQUIRE_NATIVE === '1' ? 1 : 0);
}
