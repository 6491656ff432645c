// Fuzz worker, run by test/fuzz.test.ts as `node --expose-gc --import tsx` in a child process so
// that a crash costs one failed case, not the test run. Cases [FUZZ_START, FUZZ_START+FUZZ_COUNT)
// of seed GVPO_FUZZ_SEED are drawn independently (case i depends only on seed and i, so one case
// re-runs alone with FUZZ_COUNT=1). Each case writes "B <i> <what>" before its call and
// "E <i> ok|fail <why>" after it, synchronously, so the parent knows which call a dying process
// was running. A call passes when it returns results that keep the invariants (l <= 0 on live
// rows, exactly 0 and a zero gradient on masked rows, V = 1 gives l = 0 and gradient 0) or throws
// (async: rejects) a TypeError or RangeError, with its inputs unmodified when refused or not
// written in place.
import { writeSync } from 'node:fs';
import { types } from 'node:util';
import vm from 'node:vm';
import { nativeAddon } from '../../src/backend.ts';
import * as gvpo from '../../src/index.ts';
import { hostileCall } from './fuzz-cases.mjs';

const SEED = Number(process.env.GVPO_FUZZ_SEED ?? 20261122);
const START = Number(process.env.FUZZ_START ?? 0);
const COUNT = Number(process.env.FUZZ_COUNT ?? 100);
const info = gvpo.backendInfo();
const addon = nativeAddon(); // the addon the backend loaded (undefined on the TypeScript backend)
const line = (s) => writeSync(1, `${s.replace(/\n/g, ' ')}\n`);

/** Every typed array among the arguments, read without running getters. */
function arrays(args) {
  const found = [];
  const visit = (name, v, depth) => {
    if (ArrayBuffer.isView(v) && !types.isProxy(v)) {
      const b = v.buffer;
      if (!(b.detached ?? false) && b.byteLength > 0) found.push([name, v]);
    } else if (depth < 1 && v && typeof v === 'object' && !types.isProxy(v)) {
      for (const [k, d] of Object.entries(Object.getOwnPropertyDescriptors(v)))
        if ('value' in d) visit(`${name}.${k}`, d.value, depth + 1);
    }
  };
  for (const [i, a] of args.entries()) visit(`arg${i}`, a, 0);
  return found;
}
const bytes = (v) => {
  try {
    return Buffer.from(new Uint8Array(v.buffer, v.byteOffset, v.byteLength));
  } catch {
    return undefined; // detached by the call (a getter of the case)
  }
};

function checkUnmodified(snap, except) {
  for (const [name, v, before] of snap) {
    if (except.includes(name)) continue;
    const after = bytes(v);
    // (a getter of the case may have detached or shrunk it: then there is nothing to compare)
    if (after && after.length === before.length && !after.equals(before)) return `${name} was modified`;
  }
  return '';
}

// The invariants of a returned result; `c` carries the effective mask, V and which outputs hold
// token log-probs and gradients.
function checkResult(r, c) {
  if (!c.rows) return '';
  const { mask, V, rows } = c;
  const lp = c.lpField && r?.[c.lpField];
  if (lp && lp.length === rows) {
    for (let i = 0; i < rows; i++) {
      const live = !mask || Math.fround(mask[i]) !== 0;
      if (!live && lp[i] !== 0) return `${c.lpField}[${i}] = ${lp[i]} on a masked row`;
      if (live && lp[i] > 0) return `${c.lpField}[${i}] = ${lp[i]} > 0`;
      if (live && V === 1 && lp[i] !== 0 && !Number.isNaN(lp[i])) return `${c.lpField}[${i}] = ${lp[i]} with V = 1`;
    }
  }
  // the gradient's rows: V logits, or H hidden units (the fused head)
  const g = c.gradField === '.' ? r : c.gradField && r?.[c.gradField],
    W = c.gradWidth ?? V;
  if (g && g.length === rows * W) {
    for (let i = 0; i < rows; i++) {
      const live = !mask || Math.fround(mask[i]) !== 0;
      if (live && V !== 1) continue;
      for (let v = 0; v < W; v++) {
        if (g[i * W + v] !== 0)
          return `${c.gradField}[${i * W + v}] = ${g[i * W + v]} on a ${live ? 'V = 1' : 'masked'} row`;
      }
    }
  }
  return '';
}

function judgeError(e, c) {
  if (e === c.sentinel) return ''; // a getter's own exception propagates unchanged
  if (c.allowDetachedError && e instanceof Error && /was detached/.test(e.message)) return '';
  if (!(e instanceof TypeError || e instanceof RangeError))
    return `threw ${e?.constructor?.name ?? typeof e}: ${e?.message ?? e}`;
  if (c.fnName && !e.message.startsWith(`${c.fnName}: `)) return `message does not name the function: ${e.message}`;
  if (/Cannot read|is not a function|undefined is not|Cannot convert/.test(e.message))
    return `an engine message: ${e.message}`;
  return '';
}

async function runCase(i) {
  let c;
  try {
    c = hostileCall(SEED, i, { gvpo, addon, vm });
  } catch (e) {
    line(`B ${i} (drawing the case)`);
    line(`E ${i} fail the fuzzer's own error: ${e?.stack ?? e}`);
    return;
  }
  line(`B ${i} ${c.what}`);
  const snap = arrays(c.args).map(([n, v]) => [n, v, bytes(v)]);
  let verdict;
  try {
    let r;
    if (c.async) {
      let p;
      try {
        p = c.call();
      } catch (e) {
        if (!c.mayThrowSync) throw Object.assign(new Error('async twin threw synchronously'), { sync: e });
        throw e;
      }
      p?.catch?.(() => {}); // judged below; never an unhandled rejection
      if (c.afterCall) c.afterCall();
      r = await p;
    } else {
      r = c.call();
    }
    verdict =
      (c.mustRefuse ? `returned where a refusal was required (${c.mustRefuse})` : '') ||
      checkResult(r, c) ||
      checkUnmodified(snap, c.writes ?? []);
  } catch (e) {
    if (e?.sync) verdict = `async twin threw synchronously: ${e.sync?.constructor?.name}: ${e.sync?.message}`;
    else {
      // an input transferred mid-call: the work ran and wrote the caller's destinations, then the
      // result was discarded; every other input must still be unmodified
      const ran = c.allowDetachedError && e instanceof Error && /was detached/.test(e.message);
      verdict =
        (c.mustAccept ? `refused a valid call (${c.mustAccept}): ${e?.message}` : '') ||
        judgeError(e, c) ||
        checkUnmodified(snap, ran ? (c.writes ?? []) : []);
    }
  }
  line(`E ${i} ${verdict ? 'fail' : 'ok'} ${verdict}`);
}

for (let i = START; i < START + COUNT; i++) await runCase(i);
line('DONE');
