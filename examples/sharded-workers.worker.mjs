// A worker of examples/sharded-workers.ts: phase 1 on its shard of the batch (workerData), then,
// once the main thread sends dL/dS for its sequences, phase 2; logZ stays here between the two.
import { parentPort, workerData } from 'node:worker_threads';
import { gvpoBackward, gvpoForward } from 'gvpo';

const f = gvpoForward(workerData);
parentPort.postMessage({ policyLogprobs: f.policyLogprobs, referenceLogprobs: f.referenceLogprobs });
parentPort.once('message', (gradLogprobs) => {
  const gradLogits = gvpoBackward({ ...workerData, logZ: f.logZ, gradLogprobs });
  parentPort.postMessage(gradLogits, [gradLogits.buffer]);
});
