// One backend's answers (the environment picks it: GVPO_BACKEND, GVPO_SIMD) to the hostile-realm
// cases of test/pollution.test.ts, as JSON on stdout. Run in a child process: it writes to
// Object.prototype and Array.prototype, which would leak into any test sharing its process.
import * as g from '../../src/index.ts';

const N = 4;
const T = 2;
const V = 5;
const R = N * T;
const H = 3;
const logits = Float32Array.from({ length: R * V }, (_, i) => Math.sin(i));
const targets = Int32Array.from({ length: R }, (_, i) => i % V);
const mask = Float32Array.from({ length: R }, (_, i) => (i % 3 ? 1 : 0));
const hidden = Float32Array.from({ length: R * H }, (_, i) => Math.cos(i));
const weight = Float32Array.from({ length: V * H }, (_, i) => Math.sin(3 * i));
const loss = { rewards: [1, 0, 1, 0], groups: { size: 2 }, beta: 0.1 };
const batch = { targets, mask, sequences: N, tokens: T, vocab: V };
const head = { ...batch, hidden, weight, hiddenSize: H };
const rowHead = { hidden, weight, targets, rows: R, vocab: V, hiddenSize: H };
// logZ copies: a backward given a copy takes no kept parts (the path that reads rowMax / rowLse)
const logZ = () => g.tokenLogprobs({ logits, targets, rows: R, vocab: V }).logZ.slice();
const calls = {
  tokenLogprobs: () => g.tokenLogprobs({ logits, targets, rows: R, vocab: V }),
  tokenLogprobsBackward: () =>
    g.tokenLogprobsBackward({
      logits,
      targets,
      rows: R,
      vocab: V,
      logZ: logZ(),
      gradTokenLogprobs: new Float32Array(R).fill(1),
    }),
  sequenceLogprobs: () =>
    g.sequenceLogprobs({ tokenLogprobs: new Float32Array(R).fill(-1), mask, sequences: N, tokens: T }),
  gvpoFromLogits: () => g.gvpoFromLogits({ logits, ...batch, ...loss }),
  gvpoForward: () => g.gvpoForward({ logits, ...batch }),
  gvpoBackward: () => g.gvpoBackward({ logits, ...batch, logZ: logZ(), gradLogprobs: [1, 2, 3, 4] }),
  gvpoFromHidden: () => g.gvpoFromHidden({ ...head, ...loss }),
  gvpoFromHiddenForward: () => g.gvpoFromHiddenForward(head),
  gvpoFromHiddenBackward: () => g.gvpoFromHiddenBackward({ ...head, logZ: logZ(), gradLogprobs: [1, 2, 3, 4] }),
  tokenLogprobsFromHidden: () => g.tokenLogprobsFromHidden({ ...rowHead, entropy: true }),
  tokenLogprobsFromHiddenBackward: () =>
    g.tokenLogprobsFromHiddenBackward({ ...rowHead, logZ: logZ(), gradTokenLogprobs: new Float32Array(R).fill(1) }),
  gvpoLoss: () => g.gvpoLoss({ policyLogprobs: [1, 2, 3, 4], referenceLogprobs: [0, 0, 0, 0], ...loss }),
  groupCenter: () => g.groupCenter({ values: [1, 2, 3, 5], groups: { size: 2 } }),
  gvpoFromLogitsAsync: () => g.gvpoFromLogitsAsync({ logits, ...batch, ...loss }),
  gvpoFromHiddenBackwardAsync: () =>
    g.gvpoFromHiddenBackwardAsync({ ...head, logZ: logZ(), gradLogprobs: [1, 2, 3, 4] }),
};
const digest = (r) => JSON.stringify(r, (_k, v) => (ArrayBuffer.isView(v) ? Array.from(v) : v));
async function outcome(f) {
  try {
    return digest(await f());
  } catch (e) {
    return `${e.constructor.name}: ${e.message}`;
  }
}
const answers = { backend: g.backendInfo().active, simd: g.backendInfo().simd, polluted: {}, lengths: {} };

// 1. Names on Object.prototype: every option an op reads (optional ones above all), and the names
//    the backends pass among themselves (rowMax, rowLse, split), with values that would change
//    an answer or be refused. Each op's answer must stay as it was without them, and the values
//    put there must stay untouched.
const clean = {};
for (const [op, f] of Object.entries(calls)) clean[op] = await outcome(f);
const pollution = {
  referenceLogprobs: Float64Array.of(-9, -9, 0, 0),
  referenceTokenLogprobs: new Float64Array(R).fill(-3),
  rowMax: new Float32Array(R).fill(50),
  rowLse: new Float32Array(R).fill(0.1),
  split: true,
  entropy: new Float32Array(R).fill(1),
  gradEntropy: new Float32Array(R).fill(5),
  gradLogprobs: [9, 9, 9, 9],
  gradTokenLogprobs: new Float32Array(R).fill(7),
  mask: new Float32Array(R),
  inPlace: true,
  out: new Float32Array(R * V),
  accumulate: true,
  gradWeight: new Float32Array(V * H).fill(1),
  gradHidden: new Float32Array(R * H).fill(1),
  threads: 1,
  temperature: 0.5,
  dtype: 'bfloat16',
  reduction: 'sum',
  beta: 7,
  offsets: Int32Array.of(0, 4),
  logZ: new Float32Array(R).fill(3),
  hidden: new Float32Array(7),
  weight: new Float32Array(7),
  hiddenSize: 3,
  rows: 3,
  sequences: 2,
  tokens: 3,
  vocab: 2,
  size: 3,
  rewards: [9, 9, 9, 9],
};
// and names that only act together (a size and the array it sizes)
const together = {
  'hidden + hiddenSize': { hidden: new Float32Array(7), hiddenSize: 3 },
  'weight + hiddenSize': { weight: new Float32Array(7), hiddenSize: 3 },
  'sequences + tokens': { sequences: 2, tokens: 3 },
};
const cases = [...Object.entries(pollution).map(([name, v]) => [name, { [name]: v }]), ...Object.entries(together)];
for (const [name, names] of cases) {
  const before = digest(names);
  Object.assign(Object.prototype, names);
  const changed = [];
  try {
    for (const [op, f] of Object.entries(calls)) {
      const got = await outcome(f);
      if (got !== clean[op]) changed.push(`${op}: ${got.slice(0, 160)}`);
    }
  } finally {
    for (const k of Object.keys(names)) delete Object.prototype[k];
  }
  // nor is it written to (a destination found there was once filled)
  if (digest(names) !== before) changed.push('the value on Object.prototype was written');
  answers.polluted[name] = changed;
}

// 2. A plain array whose element getter changes its length after the length was checked.
function resizing(change) {
  const a = [1, 0, 1, 0];
  Object.defineProperty(a, 1, {
    enumerable: true,
    get() {
      change(a);
      return 0;
    },
  });
  return a;
}
// Each case with the array as its getter changes it, and as plain [1, 0, 1, 0] (what was checked).
const shrink = (a) => (a.length = 1);
const append = (a) => a.push(5, 5, 5);
const sequences = { policyLogprobs: [1, 2, 3, 4], referenceLogprobs: [0, 0, 0, 0], ...loss };
const lengthCases = {
  'gvpoLoss rewards shrunk': (r) => g.gvpoLoss({ ...sequences, rewards: r(shrink) }),
  'gvpoLoss rewards appended': (r) => g.gvpoLoss({ ...sequences, rewards: r(append) }),
  'gvpoFromLogits rewards appended': (r) => g.gvpoFromLogits({ logits, ...batch, ...loss, rewards: r(append) }),
  'gvpoBackward gradLogprobs appended': (r) =>
    g.gvpoBackward({ logits, ...batch, logZ: logZ(), gradLogprobs: r(append) }),
  'groupCenter values shrunk': (r) => g.groupCenter({ values: r(shrink), groups: { size: 2 } }),
  'groupCenter values appended': (r) => g.groupCenter({ values: r(append), groups: { size: 2 } }),
};
for (const [name, f] of Object.entries(lengthCases)) {
  answers.lengths[name] = {
    got: await outcome(() => f(resizing)),
    checked: await outcome(() => f(() => [1, 0, 1, 0])),
  };
}

// 3. Logits over a growable SharedArrayBuffer (a length-tracking view), grown by a getter of the
//    rewards, read after the logits' check.
{
  const sab = new SharedArrayBuffer(R * V * 4, { maxByteLength: 4 * R * V * 4 });
  const grown = new Float32Array(sab);
  grown.set(logits);
  const rewards = [1, 0, 1, 0];
  Object.defineProperty(rewards, 0, {
    enumerable: true,
    get() {
      if (sab.byteLength === R * V * 4) sab.grow(2 * R * V * 4);
      return 1;
    },
  });
  answers.grown = await outcome(() => g.gvpoFromLogits({ logits: grown, ...batch, ...loss, rewards }));
}

// 4. A hole of a sparse number[] given to toHalf, with Array.prototype holding its index.
Array.prototype[0] = 2;
try {
  answers.hole = await outcome(() => g.toHalf([, 1], 'float16')); // eslint-disable-line no-sparse-arrays
} finally {
  delete Array.prototype[0];
}
process.stdout.write(JSON.stringify(answers));
