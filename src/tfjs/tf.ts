// Which TensorFlow.js runs: @tensorflow/tfjs-node-gpu or @tensorflow/tfjs-node when installed
// (optional peers, detected at run time, never required), else @tensorflow/tfjs on its 'cpu'
// backend, with 'wasm' from @tensorflow/tfjs-backend-wasm on request. TensorFlow.js is an optional
// peer of the package (the kernels need none of it): when missing, the error says what to install.
import type * as TF from '@tensorflow/tfjs';

export type TfChoice = 'auto' | 'node-gpu' | 'node' | 'cpu' | 'wasm';

export interface LoadedTf {
  tf: typeof TF;
  /** The package and backend in use, e.g. '@tensorflow/tfjs (cpu)'. */
  backend: string;
}

let cached: Promise<LoadedTf> | undefined;
let cachedChoice: TfChoice | undefined;

async function tryImport(name: string): Promise<typeof TF | undefined> {
  try {
    return (await import(name)) as typeof TF;
  } catch {
    return undefined;
  }
}

/** Import an optional peer; when it is not installed, say so and what to run. */
async function importPeer(pkg: string, forWhat: string): Promise<unknown> {
  try {
    return await import(pkg);
  } catch (e) {
    const { code, message } = e as { code?: string; message?: string };
    const missing = (code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND') && String(message).includes(pkg);
    if (!missing) throw e;
    throw new Error(`${pkg} is not installed: \`npm install ${pkg}\` (${forWhat})`);
  }
}

async function load(choice: TfChoice): Promise<LoadedTf> {
  if (choice === 'node-gpu' || choice === 'node' || choice === 'auto') {
    const order = choice === 'auto' ? ['node-gpu', 'node'] : [choice];
    for (const c of order) {
      const pkg = `@tensorflow/tfjs-${c}`;
      const tf = await tryImport(pkg);
      if (tf) return { tf, backend: `${pkg} (${tf.getBackend()})` };
      if (choice !== 'auto') {
        throw new Error(`${pkg} was asked for but is not installed: \`npm install ${pkg}\` (it downloads libtensorflow at install time), or use --tf cpu|wasm`);
      }
    }
  }
  const why = 'gvpo/tfjs and the gvpo trainer run on TensorFlow.js, an optional peer dependency of gvpo';
  const tf = (await importPeer('@tensorflow/tfjs', why)) as typeof TF;
  const backend = choice === 'wasm' ? 'wasm' : 'cpu';
  if (backend === 'wasm') await importPeer('@tensorflow/tfjs-backend-wasm', "the 'wasm' backend of TensorFlow.js");
  await tf.setBackend(backend);
  await tf.ready();
  return { tf, backend: `@tensorflow/tfjs (${backend})` };
}

/** Load TensorFlow.js once per process (the first choice wins). */
export function loadTf(choice: TfChoice = 'auto'): Promise<LoadedTf> {
  if (!cached || cachedChoice !== choice) {
    cachedChoice = choice;
    cached = load(choice);
  }
  return cached;
}
