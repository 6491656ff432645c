// Builds the native addon from source into build/Release/gvpo.node; exits non-zero on failure
// (scripts/install.mjs decides whether that fails an install).
//   node scripts/build-native.mjs          node-gyp (binding.gyp): the CPU addon
//   node scripts/build-native.mjs --cuda   CMake with GVPO_CUDA=ON: CPU and CUDA kernels in one addon
//   node scripts/build-native.mjs --cmake  CMake, CUDA compiled in when nvcc is found
// Works the same in a checkout and in an installed package (node_modules/gvpo): node-gyp is npm's
// own (npm_config_node_gyp) when no node-gyp is installed, and CMake is run directly, so neither
// is a dependency of the package.
// Quiet: a build that succeeds prints one line; one that fails prints the whole log of the step
// that failed. --verbose (or GVPO_BUILD_VERBOSE=1) shows everything as it comes.
import { spawnSync } from 'node:child_process';
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { availableParallelism, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);
const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const mode = process.argv.includes('--cuda') ? 'cuda' : process.argv.includes('--cmake') ? 'cmake' : 'gyp';
const verbose = process.argv.includes('--verbose') || process.env.GVPO_BUILD_VERBOSE === '1';
const started = performance.now();

// Node's own headers, when this Node was installed with them (official tarballs, distributions'
// nodejs packages): building against them needs no download.
const prefix = dirname(dirname(process.execPath));
const nodeInclude = join(prefix, 'include', 'node');
const haveNodeHeaders = existsSync(join(nodeInclude, 'node_api.h'));

function fail(msg) {
  console.error(`gvpo: ${msg}`);
  process.exit(1);
}

/** Runs a build step with its output (stdout and stderr, in order) in a log that is shown only
 *  when the step fails. */
function run(cmd, args, env = process.env) {
  const logDir = verbose ? undefined : mkdtempSync(join(tmpdir(), 'gvpo-build-'));
  const log = logDir && join(logDir, 'build.log');
  const fd = log ? openSync(log, 'w') : undefined;
  const r = spawnSync(cmd, args, { stdio: fd === undefined ? 'inherit' : ['ignore', fd, fd], cwd: root, env });
  if (fd !== undefined) closeSync(fd);
  const failed = r.error || r.status !== 0;
  if (failed && log) process.stderr.write(readFileSync(log, 'utf8'));
  if (logDir) rmSync(logDir, { recursive: true, force: true });
  if (r.error) fail(`could not run ${cmd}: ${r.error.message}`);
  if (r.status !== 0)
    fail(`the native build (${mode}) failed: ${cmd} ${args.join(' ')} exited with ${r.status ?? r.signal}`);
}

function nodeGyp() {
  try {
    return require.resolve('node-gyp/bin/node-gyp.js');
  } catch {
    // npm sets this for the scripts it runs (install, rebuild): the node-gyp it ships with.
    const bundled = process.env.npm_config_node_gyp;
    if (bundled && existsSync(bundled)) return bundled;
    return fail('node-gyp not found: run this through npm (`npm rebuild gvpo`) or install node-gyp');
  }
}

function buildGyp() {
  const env = { ...process.env };
  if (!env.npm_config_nodedir && haveNodeHeaders) env.npm_config_nodedir = prefix;
  run(process.execPath, [nodeGyp(), 'rebuild'], env);
}

// Node-API's C headers, which cmake-js would hand to CMakeLists.txt as CMAKE_JS_INC (CMakeLists.txt
// finds node-addon-api's C++ wrapper itself: a dependency of the package, so present wherever gvpo is).
function nodeApiHeaders() {
  if (haveNodeHeaders) return nodeInclude;
  try {
    return require('node-api-headers').include_dir;
  } catch {
    return fail(
      `Node's C headers were not found in ${nodeInclude} (install Node with its headers, or \`npm install node-api-headers\`)`,
    );
  }
}

function buildCmake() {
  const build = join(root, 'build');
  rmSync(build, { recursive: true, force: true });
  run('cmake', [
    '-S',
    root,
    '-B',
    build,
    '-DCMAKE_BUILD_TYPE=Release',
    `-DCMAKE_LIBRARY_OUTPUT_DIRECTORY=${join(build, 'Release')}`,
    // CMakeLists.txt adds the addon target when CMAKE_JS_INC names Node's headers.
    `-DCMAKE_JS_INC=${nodeApiHeaders()}`,
    `-DGVPO_CUDA=${mode === 'cuda' ? 'ON' : 'AUTO'}`,
  ]);
  run('cmake', ['--build', build, '--parallel', String(availableParallelism())]);
}

if (mode === 'gyp') buildGyp();
else buildCmake();
const seconds = ((performance.now() - started) / 1000).toFixed(0);
console.log(
  `gvpo: built ${join('build', 'Release', 'gvpo.node')} (${mode === 'gyp' ? 'node-gyp' : `CMake, ${mode === 'cuda' ? 'CUDA on' : 'CUDA if nvcc is found'}`}, ${seconds} s)`,
);
