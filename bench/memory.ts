// Peak resident memory of one gvpoFromLogits path, in a child process of its own:
//   tsx bench/memory.ts <native-inplace|native|js|tfjs-cpu> N T V k
// or of one gvpoFromHidden call (logitsBytes: the float32 logits it never materializes):
//   tsx bench/memory.ts hidden N T V k H
// or of one tokenLogprobsFromHidden forward (with the entropy) and its backward (dL/dl and dL/dH):
//   tsx bench/memory.ts head R V H
// Prints JSON: the peak RSS after the inputs exist (baseline) and after one call, in bytes.
import { readFileSync } from 'node:fs';
import {
  gvpoFromHidden,
  gvpoFromLogits,
  tokenLogprobsFromHidden,
  tokenLogprobsFromHiddenBackward,
} from '../src/index.js';
import { makeHeadInputs, makeHiddenInputs } from './hiddenInputs.js';
import { fusedArgs, makeInputs } from './lib.js';
import { tfjsWithBackend, tfjsPeer } from './peers/tfjs.js';

const [path, ...dims] = process.argv.slice(2);
const [N, T, V, k, H] = dims.map(Number);
// VmHWM, the resident high-water mark of this process image.
const vmhwm = () => Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'))![1]) * 1024;
if (path === 'hidden') {
  const h = makeHiddenInputs(N, T, H, V, k, 'float32');
  const base = vmhwm();
  gvpoFromHidden(h.args);
  console.log(JSON.stringify({ path, baselineRssBytes: base, peakRssBytes: vmhwm(), logitsBytes: N * T * V * 4 }));
  process.exit(0);
}
if (path === 'head') {
  const [R, HV, HH] = dims.map(Number);
  const h = makeHeadInputs(R, HH, HV, 'float32');
  const base = vmhwm();
  const f = tokenLogprobsFromHidden(h.args);
  tokenLogprobsFromHiddenBackward({
    ...h.args,
    entropy: f.entropy,
    logZ: f.logZ,
    gradTokenLogprobs: h.gradTokenLogprobs,
    gradEntropy: h.gradEntropy,
  });
  console.log(JSON.stringify({ path, baselineRssBytes: base, peakRssBytes: vmhwm(), logitsBytes: R * HV * 4 }));
  process.exit(0);
}
const x = makeInputs(N, T, V, k, 'float32');
// VmHWM, the resident high-water mark of this process image. (getrusage's maxrss is not usable
// here: Linux carries it across exec from the forking parent, so a child of a large bench process
// starts with the parent's peak.)
const peak = () => Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'))![1]) * 1024;
const baseline = peak();
const args = fusedArgs(x);
if (path === 'native-inplace') gvpoFromLogits({ ...args, inPlace: true });
else if (path === 'native' || path === 'js') gvpoFromLogits(args);
else if (path === 'tfjs-cpu') {
  const tf = await tfjsWithBackend('cpu');
  await tfjsPeer(tf, x, 'cpu').gvpoFromLogits();
} else throw new Error(`unknown path ${path}`);
console.log(
  JSON.stringify({ path, baselineRssBytes: baseline, peakRssBytes: peak(), logitsBytes: x.logits.byteLength }),
);
