// The package's `install` step (also what `npm rebuild gvpo` runs):
//   GVPO_CUDA=1                 build the CUDA variant from source (CMake + nvcc); a failure fails
//   a prebuilt binary that loads prebuilds/<platform>-<arch>/gvpo.node (made by `npm pack`):
//                               nothing to build, and an earlier source build (build/, which
//                               the loader would try first) is removed (GVPO_BUILD_FROM_SOURCE=1
//                               or npm's --build-from-source builds anyway)
//   otherwise                   a source build with node-gyp
// A failed source build does not fail the install (gvpo then uses the prebuilt binary if it
// loads, else its TypeScript backend, and backendInfo().loadErrors says why) unless
// GVPO_REQUIRE_NATIVE=1, as CI sets it. A checkout of
// the repository always builds from source, so a stale prebuilt binary never stands in for it.
import { spawnSync } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const env = process.env;
const cuda = env.GVPO_CUDA === '1';
const strict = cuda || env.GVPO_REQUIRE_NATIVE === '1';
const fromSource = env.GVPO_BUILD_FROM_SOURCE === '1' || env.npm_config_build_from_source === 'true';

/** Why the prebuilt binary cannot serve, or undefined when it loads. */
function prebuiltProblem() {
  const path = join(root, 'prebuilds', `${process.platform}-${process.arch}`, 'gvpo.node');
  if (!existsSync(path)) return `no prebuilt binary for ${process.platform}-${process.arch}`;
  try {
    createRequire(import.meta.url)(path).nativeInfo();
    return undefined;
  } catch (e) {
    return `the prebuilt binary ${path} does not load here (${String(e.message).split('\n')[0]})`;
  }
}

function build(args, why) {
  console.log(`gvpo: ${why}; building the native addon from source`);
  const r = spawnSync(process.execPath, [join(root, 'scripts', 'build-native.mjs'), ...args], { stdio: 'inherit' });
  if (r.status === 0) return;
  const help = cuda
    ? 'the CUDA build needs cmake (>= 3.18), nvcc and a C++ compiler'
    : 'a source build needs a C++ compiler, make and python3';
  const instead = cuda
    ? ''
    : prebuiltProblem()
      ? '; gvpo will run on its TypeScript backend'
      : '; the prebuilt binary stays in use';
  console.warn(`gvpo: the native build failed (${help})${strict ? '' : instead}`);
  process.exit(strict ? 1 : 0);
}

if (cuda) build(['--cuda'], 'GVPO_CUDA=1');
else if (existsSync(join(root, '.git'))) build([], 'a checkout of the repository');
else if (fromSource) build([], 'a source build was asked for');
else {
  const problem = prebuiltProblem();
  if (problem) build([], problem);
  else rmSync(join(root, 'build'), { recursive: true, force: true });
}
