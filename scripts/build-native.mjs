// Builds the native addon.
//   node scripts/build-native.mjs          node-gyp (the `npm install` step): the CPU addon
//   node scripts/build-native.mjs --cuda   cmake-js with GVPO_CUDA=ON (`npm run build:cuda`)
//   node scripts/build-native.mjs --cmake  cmake-js, CUDA compiled in when nvcc is found
// A failed node-gyp build does not fail the install (gvpo then runs on its TypeScript backend and
// backendInfo().loadErrors says why) unless GVPO_REQUIRE_NATIVE=1, as CI sets it.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

const require = createRequire(import.meta.url);
const mode = process.argv.includes('--cuda') ? 'cuda' : process.argv.includes('--cmake') ? 'cmake' : 'gyp';
const strict = process.env.GVPO_REQUIRE_NATIVE === '1' || mode !== 'gyp';

const env = { ...process.env };
// Build against the headers installed with this Node when they are there (no download needed).
const prefix = dirname(dirname(process.execPath));
if (!env.npm_config_nodedir && existsSync(join(prefix, 'include', 'node', 'node_api.h'))) {
  env.npm_config_nodedir = prefix;
}

function fail(msg) {
  console.warn(`gvpo: ${msg}${strict ? '' : '; gvpo will run on its TypeScript backend'}`);
  process.exit(strict ? 1 : 0);
}

let tool;
try {
  tool = mode === 'gyp' ? require.resolve('node-gyp/bin/node-gyp.js') : require.resolve('cmake-js/bin/cmake-js');
} catch {
  fail(`${mode === 'gyp' ? 'node-gyp' : 'cmake-js'} not found; native build skipped`);
}
const args = mode === 'gyp' ? ['rebuild'] : ['rebuild', `--CDGVPO_CUDA=${mode === 'cuda' ? 'ON' : 'AUTO'}`];
const r = spawnSync(process.execPath, [tool, ...args], { stdio: 'inherit', env });
if (r.status !== 0) fail(`the native build (${mode}) failed`);
