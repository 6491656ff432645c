// `npm run format` writes, `npm run format:check` (CI) fails on any file that is not formatted:
// Prettier (.prettierrc.json) over the TypeScript and JavaScript, clang-format (.clang-format,
// the binary of the clang-format npm package) over the C++ and CUDA sources.
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import path from 'node:path';

const check = process.argv.includes('--check');
const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
const require = createRequire(import.meta.url);

function tracked(...patterns) {
  const r = spawnSync('git', ['ls-files', '--', ...patterns], { cwd: root, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`git ls-files failed: ${r.stderr}`);
  return r.stdout.split('\n').filter(Boolean);
}

function run(cmd, args) {
  const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit' });
  if (r.error) throw r.error;
  return r.status === 0;
}

const scripts = tracked('*.ts', '*.mts', '*.mjs', '*.js').filter((f) => !f.startsWith('experiments/'));
const prettier = path.join(path.dirname(require.resolve('prettier/package.json')), 'bin', 'prettier.cjs');
const prettierOk = run(process.execPath, [prettier, check ? '--check' : '--write', '--log-level', 'warn', ...scripts]);

const cxx = tracked('native/*.cc', 'native/*.h', 'native/*.cu', 'native/*.cuh');
const platform = process.platform === 'win32' ? 'win32' : `${process.platform}_${process.arch}`;
const clangFormat = path.join(
  path.dirname(require.resolve('clang-format/package.json')),
  'bin',
  platform,
  'clang-format',
);
const clangOk = run(clangFormat, check ? ['--dry-run', '--Werror', ...cxx] : ['-i', ...cxx]);

if (!prettierOk || !clangOk) {
  console.error(`format${check ? ':check' : ''}: ${check ? 'files are not formatted; run npm run format' : 'failed'}`);
  process.exit(1);
}
