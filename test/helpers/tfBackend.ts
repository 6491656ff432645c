// TensorFlow.js on one backend for a block of tests. loadTf keeps its first choice for the whole
// process, so a file that tests both cpu and wasm switches tfjs's one backend itself, before each
// block's tests run (tf.setBackend in the block's beforeAll; the wasm backend is registered by
// importing its package, as loadTf('wasm') does).
import type * as TF from '@tensorflow/tfjs';
import { beforeAll, expect } from 'vitest';
import { loadTf } from '../../src/tfjs/index.js';

/** Call inside a describe block: the tf module, on `backend` while that block's tests run. */
export async function tfOn(backend: 'cpu' | 'wasm'): Promise<typeof TF> {
  const { tf } = await loadTf('cpu');
  if (backend === 'wasm') await import('@tensorflow/tfjs-backend-wasm');
  beforeAll(async () => {
    await tf.setBackend(backend);
    await tf.ready();
    expect(tf.getBackend()).toBe(backend);
  });
  return tf;
}
