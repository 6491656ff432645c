// Which TensorFlow.js runs: @tensorflow/tfjs-node-gpu or @tensorflow/tfjs-node when installed
// (optional peers, detected at run time, never required), else @tensorflow/tfjs on its 'cpu'
// backend, with 'wasm' from @tensorflow/tfjs-backend-wasm on request.
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
  const tf = (await import('@tensorflow/tfjs')) as typeof TF;
  const backend = choice === 'wasm' ? 'wasm' : 'cpu';
  if (backend === 'wasm') await import('@tensorflow/tfjs-backend-wasm');
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
