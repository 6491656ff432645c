// Which TensorFlow.js runs: @tensorflow/tfjs-node-gpu or @tensorflow/tfjs-node when installed
// (optional peers, detected at run time, never required), else @tensorflow/tfjs on its 'cpu'
// backend, with 'wasm' from @tensorflow/tfjs-backend-wasm on request. TensorFlow.js is an optional
// peer of the package (the kernels need none of it): when missing, the error says what to install
// and what to use instead.
import type * as TF from '@tensorflow/tfjs';

/** Which TensorFlow.js loadTf loads: auto (tfjs-node-gpu, then tfjs-node, else tfjs on cpu), one
 *  of those, or tfjs on its cpu or wasm backend. */
export type TfChoice = 'auto' | 'node-gpu' | 'node' | 'cpu' | 'wasm';
const TF_CHOICES: readonly string[] = ['auto', 'node-gpu', 'node', 'cpu', 'wasm'];

/** What loadTf gives: the tf namespace and which package and backend it runs on. */
export interface LoadedTf {
  tf: typeof TF;
  /** The package and backend in use, e.g. '@tensorflow/tfjs (cpu)'. */
  backend: string;
}

// One load per process, not per copy of this module: the ES and CommonJS builds of gvpo/tfjs, both
// loaded in one process, share it (as they share TensorFlow.js itself).
const KEY = Symbol.for('gvpo.loadTf');
const shared = globalThis as { [KEY]?: Promise<LoadedTf> };

async function tryImport(name: string): Promise<typeof TF | undefined> {
  try {
    return (await import(name)) as typeof TF;
  } catch {
    return undefined;
  }
}

/** The error loadTf throws when an optional peer is not installed; `code` tells it apart. */
export class MissingPeerError extends Error {
  readonly code = 'GVPO_MISSING_PEER';
  constructor(
    readonly peer: string,
    message: string,
  ) {
    super(message);
    this.name = 'MissingPeerError';
  }
}

/** Import an optional peer; when it is not installed, say so, what to run, and what else works. */
async function importPeer(pkg: string, forWhat: string, instead: string): Promise<unknown> {
  try {
    return await import(pkg);
  } catch (e) {
    const { code, message } = e as { code?: string; message?: string };
    const missing = (code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND') && String(message).includes(pkg);
    if (!missing) throw e;
    throw new MissingPeerError(pkg, `${pkg} is not installed: \`npm install ${pkg}\` (${forWhat}), ${instead}`);
  }
}

/**
 * tfjs's cpu backend greets Node.js users on its first tensor with a console.warn that advises
 * installing tfjs-node; its `firstUse` flag guards that line and nothing else, so clearing it
 * silences the greeting and leaves every other warning of TensorFlow.js alone.
 */
function skipNodeGreeting(tf: typeof TF): void {
  const cpu = tf.findBackend('cpu') as { firstUse?: unknown } | null;
  if (cpu && cpu.firstUse === true) cpu.firstUse = false;
}

async function load(choice: TfChoice): Promise<LoadedTf> {
  if (choice === 'node-gpu' || choice === 'node' || choice === 'auto') {
    const order = choice === 'auto' ? ['node-gpu', 'node'] : [choice];
    for (const c of order) {
      const pkg = `@tensorflow/tfjs-${c}`;
      const tf = await tryImport(pkg);
      if (tf) return { tf, backend: `${pkg} (${tf.getBackend()})` };
      if (choice !== 'auto') {
        throw new MissingPeerError(
          pkg,
          `${pkg} was asked for but is not installed: \`npm install ${pkg}\` (it downloads libtensorflow at install time), or use TensorFlow.js's cpu or wasm backend instead (loadTf('cpu'), \`gvpo --tf cpu\`)`,
        );
      }
    }
  }
  const why = 'gvpo/tfjs and the gvpo trainer run on TensorFlow.js, an optional peer dependency of gvpo';
  const tf = (await importPeer(
    '@tensorflow/tfjs',
    why,
    'or `npm install @tensorflow/tfjs-node`, which brings it',
  )) as typeof TF;
  const backend = choice === 'wasm' ? 'wasm' : 'cpu';
  if (backend === 'wasm') {
    await importPeer(
      '@tensorflow/tfjs-backend-wasm',
      "the 'wasm' backend of TensorFlow.js",
      "or use the cpu backend, which @tensorflow/tfjs includes (loadTf('cpu'), `gvpo --tf cpu`; slower)",
    );
  }
  skipNodeGreeting(tf);
  await tf.setBackend(backend);
  await tf.ready();
  return { tf, backend: `@tensorflow/tfjs (${backend})` };
}

/**
 * Load TensorFlow.js once per process (the first choice wins). TensorFlow.js has one backend per
 * process, shared by every tensor: a later call with another choice returns the first call's
 * LoadedTf unchanged (switching would move the first caller's tensors onto a backend it did not
 * ask for); `backend` says what runs. A first load that fails (a peer not installed) is not kept,
 * so that a later call may choose again.
 */
export function loadTf(choice: TfChoice = 'auto'): Promise<LoadedTf> {
  if (!TF_CHOICES.includes(choice)) {
    return Promise.reject(
      new RangeError(`loadTf: choice must be ${TF_CHOICES.map((c) => `'${c}'`).join(' | ')}, got ${String(choice)}`),
    );
  }
  let loading = shared[KEY];
  if (!loading) {
    const mine = load(choice);
    shared[KEY] = loading = mine;
    mine.catch(() => {
      if (shared[KEY] === mine) delete shared[KEY];
    });
  }
  return loading;
}
