// Makes the prebuilt binary the npm package ships: prebuilds/<platform>-<arch>/gvpo.node for the
// machine it runs on (run by `prepack`; `npm run prebuild` alone; --force rebuilds even when the
// binary is newer than its sources). One Node-API binary serves every Node version, and the CPU
// kernels pick AVX-512 / AVX2 / SSE2 at run time, so one x64 binary serves every x64 CPU (never
// build it with -march=native). Other platforms: run this there and gather each
// prebuilds/<platform>-<arch>/ directory into the package before `npm publish`.
//
// It runs scripts/build-native.mjs, the build `npm install` runs, on a copy of binding.gyp and
// native/ in build-prebuild/ (so build/, which may hold a CUDA or debug build, is left alone). On
// Linux the result is checked: it may need only the C library and the C++ runtime that Node itself
// links (libstdc++, libgcc_s), with no symbol version newer than FLOOR. libstdc++ stays dynamic on
// purpose: linking it statically on Debian 12 pulls in glibc 2.34-2.36 symbols (arc4random,
// pthread_create, _dl_find_object), a higher floor than the dynamic build's.
import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const target = `${process.platform}-${process.arch}`;
const out = join(root, 'prebuilds', target, 'gvpo.node');
const inputs = ['binding.gyp', 'native', 'package.json', 'scripts/build-native.mjs', 'scripts/prebuild.mjs'];
// The newest symbol versions the Linux binary may need; README's install section states them.
// Built on Debian 12 with g++ 12 it needs glibc 2.32 (__libc_single_threaded, from libstdc++'s
// headers) and GLIBCXX 3.4.26 (GCC 9); 3.4.29 is GCC 11's, older than any glibc-2.32 system's.
const FLOOR = { GLIBC: '2.32', GLIBCXX: '3.4.29' };

function fail(msg) {
  console.error(`prebuild: ${msg}`);
  process.exit(1);
}

function newestMtime(path) {
  const st = statSync(path);
  if (!st.isDirectory()) return st.mtimeMs;
  return Math.max(st.mtimeMs, ...readdirSync(path).map((f) => newestMtime(join(path, f))));
}

/** '2.32' > '2.4', numerically by part. */
function newer(a, b) {
  const x = a.split('.').map(Number),
    y = b.split('.').map(Number);
  for (let i = 0; i < Math.max(x.length, y.length); i++)
    if ((x[i] ?? 0) !== (y[i] ?? 0)) return (x[i] ?? 0) > (y[i] ?? 0);
  return false;
}

function checkLinux(path) {
  const ldd = execFileSync('ldd', [path], { encoding: 'utf8' });
  const libs = [...ldd.matchAll(/^\s*(\S+)/gm)].map((m) => m[1]);
  const extra = libs.filter(
    (l) => !/^(linux-vdso\.so|\/?\S*ld-linux[-\w]*\.so|lib(c|m|dl|pthread|rt|stdc\+\+|gcc_s)\.so)/.test(l),
  );
  if (extra.length) fail(`${path} needs ${extra.join(', ')}, which a fresh machine may lack:\n${ldd}`);
  const dyn = execFileSync('objdump', ['-T', path], { encoding: 'utf8' });
  const found = [];
  for (const [lib, floor] of Object.entries(FLOOR)) {
    const newest = [...dyn.matchAll(new RegExp(`\\(${lib}_([\\d.]+)\\)`, 'g'))]
      .map((m) => m[1])
      .reduce((a, b) => (newer(b, a) ? b : a), '0');
    if (newer(newest, floor))
      fail(`${path} needs ${lib}_${newest}, newer than the ${floor} promised: build on an older system`);
    found.push(`${lib} ${newest}`);
  }
  return `needs ${found.join(', ')}; links ${libs
    .filter((l) => !l.startsWith('linux-vdso'))
    .map((l) => l.replace(/^.*\//, ''))
    .join(' ')}`;
}

if (
  !process.argv.includes('--force') &&
  existsSync(out) &&
  statSync(out).mtimeMs > Math.max(...inputs.map((p) => newestMtime(join(root, p))))
) {
  console.log(`prebuild: ${out} is newer than its sources`);
  process.exit(0);
}

const scratch = join(root, 'build-prebuild');
rmSync(scratch, { recursive: true, force: true });
for (const p of ['binding.gyp', 'native', 'scripts/build-native.mjs'])
  cpSync(join(root, p), join(scratch, p), { recursive: true });
// The compiler flags are binding.gyp's alone: none from this shell (a CXXFLAGS=-march=native here
// would make a binary that faults on older CPUs).
const env = { ...process.env };
for (const k of ['CFLAGS', 'CXXFLAGS', 'CPPFLAGS', 'LDFLAGS']) delete env[k];
const r = spawnSync(process.execPath, [join(scratch, 'scripts', 'build-native.mjs')], {
  cwd: scratch,
  env,
  stdio: 'inherit',
});
if (r.status !== 0) fail('the native build failed');
const built = join(scratch, 'build', 'Release', 'gvpo.node');
const makefiles = readdirSync(join(scratch, 'build')).filter((f) => f.endsWith('.mk') || f === 'Makefile');
for (const f of makefiles) {
  if (/-m(arch|tune|cpu)=native/.test(readFileSync(join(scratch, 'build', f), 'utf8')))
    fail(`build/${f} builds for this machine's CPU only (-march=native)`);
}

const info = JSON.parse(
  execFileSync(process.execPath, ['-p', `JSON.stringify(require(${JSON.stringify(built)}).nativeInfo())`], {
    encoding: 'utf8',
  }),
);
if (info.compiled.includes('cuda')) fail('the prebuilt binary must be the CPU build');
const checked = process.platform === 'linux' ? checkLinux(built) : 'not checked on this platform';
mkdirSync(dirname(out), { recursive: true });
copyFileSync(built, out);
rmSync(scratch, { recursive: true, force: true });
console.log(
  `prebuild: ${out} (${(statSync(out).size / 1e6).toFixed(2)} MB; ${checked}; loads, SIMD here ${info.simd})`,
);
