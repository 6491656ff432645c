// Backend choice: cuda -> cpu -> js. The native addon is looked for in each place in turn (a
// source build in build/, then the prebuilt binary the npm package ships for this platform and
// architecture) and every failure is kept; GVPO_BACKEND=cuda|cpu|js forces one, and a forced
// backend that cannot load throws one error listing every attempt and what to do.
import { closeSync, existsSync, fstatSync, openSync, readSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { BackendInfo } from './types.js';

/** The addon's exports (native/addon): ops take the normalized options of src/ops/normalize.ts. */
export interface NativeAddon {
  nativeInfo(): {
    threads: number;
    simd: string;
    compiled: string[];
    cudaDevices?: number;
    device?: string;
    cudaError?: string;
  };
  [op: string]: unknown;
}

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..');

/** GVPO_ADDON_PATH, when set, is the only place tried. A source build comes first: it is what
 * `npm rebuild gvpo` or a CUDA build made, and the prebuilt binary is the CPU build. */
function candidates(): string[] {
  if (process.env.GVPO_ADDON_PATH) return [process.env.GVPO_ADDON_PATH];
  const build = [join(root, 'build', 'Release', 'gvpo.node'), join(root, 'build', 'Debug', 'gvpo.node')];
  const prebuilt = join(root, 'prebuilds', `${process.platform}-${process.arch}`, 'gvpo.node');
  return [...build.filter((p) => existsSync(p)), prebuilt];
}

// What to run, from an app (first) or in a checkout of the repository.
const BUILD_CPU = '`npm rebuild gvpo`, or `npm run build:native` in the repository';
const BUILD_CUDA = '`GVPO_CUDA=1 npm rebuild gvpo`, or `npm run build:cuda` in the repository';

interface Loaded {
  addon?: NativeAddon;
  errors: string[];
}

let loaded: Loaded | undefined;

/**
 * Why a 64-bit little-endian ELF file cannot be whole (its headers or loaded segments reach past
 * its end), or undefined. dlopen maps such a file and the process dies of SIGBUS on the first
 * page past the end (a download or copy cut short), where require() would otherwise throw.
 */
function truncatedElf(path: string): string | undefined {
  let fd: number | undefined;
  try {
    fd = openSync(path, 'r');
    const size = fstatSync(fd).size;
    const head = Buffer.alloc(64);
    if (readSync(fd, head, 0, 64, 0) < 64 || head.readUInt32BE(0) !== 0x7f454c46 || head[4] !== 2 || head[5] !== 1)
      return undefined; // not ELF64 LE: left to require()
    const phoff = Number(head.readBigUInt64LE(0x20)),
      shoff = Number(head.readBigUInt64LE(0x28));
    const phsize = head.readUInt16LE(0x36),
      phnum = head.readUInt16LE(0x38);
    let need = Math.max(phoff + phsize * phnum, shoff + head.readUInt16LE(0x3a) * head.readUInt16LE(0x3c));
    if (need <= size && phsize >= 40) {
      const ph = Buffer.alloc(phsize * phnum);
      readSync(fd, ph, 0, ph.length, phoff);
      for (let i = 0; i < phnum; i++) {
        const at = i * phsize; // PT_LOAD: p_offset + p_filesz bytes of the file are mapped
        if (ph.readUInt32LE(at) === 1)
          need = Math.max(need, Number(ph.readBigUInt64LE(at + 8)) + Number(ph.readBigUInt64LE(at + 32)));
      }
    }
    return need > size ? `truncated: ${size} bytes, its ELF headers need ${need}` : undefined;
  } catch {
    return undefined; // unreadable: require() says why
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

function loadAddon(): Loaded {
  if (loaded) return loaded;
  const require = createRequire(import.meta.url);
  const errors: string[] = [];
  for (const path of candidates()) {
    try {
      const cut = truncatedElf(path);
      if (cut) throw new Error(cut);
      const addon = require(path) as NativeAddon;
      loaded = { addon, errors };
      return loaded;
    } catch (e) {
      errors.push(`${path}: ${(e as Error).message.split('\n')[0]}`);
    }
  }
  loaded = { errors };
  return loaded;
}

type Active = BackendInfo['active'];

// GVPO_SIMD's values: the native kernels use the widest instruction set at most this one (tests
// force the narrower paths with it); 'generic' is the portable build's.
const SIMD_LEVELS = ['avx512bf16', 'avx512', 'avx2', 'sse2', 'generic'];

let chosen: { active: Active; addon?: NativeAddon; loaded?: NativeAddon; info: BackendInfo } | undefined;

function choose() {
  if (chosen) return chosen;
  const { addon, errors } = loadAddon();
  const forced = process.env.GVPO_BACKEND;
  const loadErrors = [...errors];
  const ni = addon?.nativeInfo();
  const compiled = ni ? ['js', ...ni.compiled] : ['js'];
  const cudaReady =
    !!ni &&
    ni.compiled.includes('cuda') &&
    (ni.cudaDevices ?? 0) > 0 &&
    typeof addon?.cudaGvpoFromLogits === 'function';
  if (ni && ni.compiled.includes('cuda') && !cudaReady) {
    loadErrors.push(
      `cuda: compiled in, but ${ni.cudaError ? `the CUDA runtime said: ${ni.cudaError}` : 'no CUDA device is present'}`,
    );
  } else if (ni && !ni.compiled.includes('cuda')) {
    loadErrors.push(`cuda: not compiled in (where cmake and nvcc are: ${BUILD_CUDA})`);
  }
  if (!addon) loadErrors.push(`cpu: no native addon loaded (with a C++ compiler, make and python3: ${BUILD_CPU})`);

  const simd = process.env.GVPO_SIMD;
  if (simd !== undefined && simd !== '' && !SIMD_LEVELS.includes(simd)) {
    throw new RangeError(`GVPO_SIMD must be ${SIMD_LEVELS.map((l) => `'${l}'`).join(' | ')}, got '${simd}'`);
  }
  // The kernels read GVPO_NUM_THREADS themselves (C's atoi, which would take '8abc' as 8 and
  // ignore 'abc'): what they may not take is refused here, as GVPO_SIMD is.
  const threads = process.env.GVPO_NUM_THREADS;
  if (threads !== undefined && threads !== '' && !/^[1-9][0-9]{0,8}$/.test(threads)) {
    throw new RangeError(`GVPO_NUM_THREADS must be a positive whole number (1 to 1024 are used), got '${threads}'`);
  }
  let active: Active;
  if (forced !== undefined && forced !== '') {
    if (forced !== 'cuda' && forced !== 'cpu' && forced !== 'js') {
      throw new RangeError(`GVPO_BACKEND must be 'cuda' | 'cpu' | 'js', got '${forced}'`);
    }
    const ok = forced === 'js' || (forced === 'cpu' && !!addon) || (forced === 'cuda' && cudaReady);
    if (!ok) {
      throw new Error(
        `GVPO_BACKEND=${forced} cannot be used. Load attempts:\n  ${loadErrors.join('\n  ')}\n` +
          `Build the addon from source (${BUILD_CPU}; CUDA: ${BUILD_CUDA}), or set GVPO_BACKEND=js.`,
      );
    }
    active = forced;
  } else {
    active = cudaReady ? 'cuda' : addon ? 'cpu' : 'js';
  }
  const info: BackendInfo = {
    active,
    compiled,
    threads: ni?.threads ?? 1,
    loadErrors,
    ...(ni?.simd ? { simd: ni.simd } : {}),
    ...(ni?.device ? { device: ni.device } : {}),
  };
  chosen = { active, addon: active === 'js' ? undefined : addon, loaded: addon, info };
  return chosen;
}

/** Which backend runs, what was compiled in, threads, SIMD level, and why anything is missing. */
export function backendInfo(): BackendInfo {
  const c = choose().info;
  return { ...c, compiled: [...c.compiled], loadErrors: [...c.loadErrors] };
}

/** The active backend, without copying backendInfo(). */
export function activeBackend(): Active {
  return choose().active;
}

/** The addon when one loaded, whichever backend is active (for its helpers, not its ops). */
export function loadedAddon(): NativeAddon | undefined {
  return choose().loaded;
}

/** The native addon when a native backend is active, else undefined (use the reference). */
export function nativeAddon(): NativeAddon | undefined {
  return choose().addon;
}
