// Calls the native addon directly with options whose getters change arrays under it, one mode per
// process (run by test/fuzz.test.ts with --expose-gc --import tsx). Prints the outcome as its last line. The
// logits are 4 MiB, memory the allocator maps and unmaps, so a stale read faults.
import { nativeAddon } from '../../src/backend.ts';

const addon = nativeAddon(); // the addon the backend loaded
const R = 16,
  V = 65536;
const targets = new Int32Array(R);
const mode = process.argv[2];

function call() {
  if (mode === 'detach-sync') {
    // logits are read first; the targets getter then transfers them and collects the garbage
    const logits = new Float32Array(R * V).fill(1);
    const get = () => {
      structuredClone(logits.buffer, { transfer: [logits.buffer] });
      gc();
      return targets;
    };
    return addon.tokenLogprobs(
      Object.defineProperty({ logits, rows: R, vocab: V }, 'targets', { get, enumerable: true }),
    );
  }
  if (mode === 'fresh-async') {
    // every read of logits makes a new array that nothing keeps: the one read must be held
    const opts = {
      get logits() {
        return new Float32Array(R * V).fill(1);
      },
      targets,
      rows: R,
      vocab: V,
      logZ: new Float32Array(R),
      gradTokenLogprobs: new Float32Array(R).fill(1),
    };
    const p = addon.tokenLogprobsBackwardAsync(opts);
    gc();
    gc();
    return p;
  }
  // shrink: logits on a resizable buffer, shrunk by the targets getter (sync) or after the call (async)
  const ab = new ArrayBuffer(R * V * 4, { maxByteLength: R * V * 4 });
  const logits = new Float32Array(ab).fill(1);
  if (mode === 'shrink-sync') {
    const get = () => {
      ab.resize(0);
      return targets;
    };
    return addon.tokenLogprobs(
      Object.defineProperty({ logits, rows: R, vocab: V }, 'targets', { get, enumerable: true }),
    );
  }
  const p = addon.tokenLogprobsAsync({ logits, targets, rows: R, vocab: V });
  ab.resize(0);
  return p;
}

try {
  await call();
  console.log('fulfilled');
} catch (e) {
  console.log(`${e.constructor.name}: ${e.message}`);
}
