// Reading back a policy written by save(): the file names its kind, its config and its weights.
// A file that is not one (another JSON file, a truncated download) is refused with its path and
// what is wrong, before any weight is built.
import { readFileSync } from 'node:fs';
import type * as TF from '@tensorflow/tfjs';
import { FusedHeadPolicy, type FusedHeadPolicyConfig } from './fusedHeadPolicy.js';
import { CharPolicy, type CharPolicyConfig, TabularPolicy } from './policies.js';
import type { Policy } from './policy.js';
import { TransformerPolicy, type TransformerPolicyConfig } from './transformerPolicy.js';

/** What save() writes: the policy's kind, its config, and each variable's shape and float32 values (base64). */
export interface PolicyFile {
  kind: string;
  config: Record<string, number>;
  weights: Array<{ shape?: number[]; data: string }>;
}

const WRITTEN_BY = "a policy file is what a policy's save() or `gvpo warmup` writes";

/** Reads `path` and checks that it holds a policy file; the message names the file and what is wrong. */
export function readPolicyFile(path: string): PolicyFile {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new Error(`loadPolicy: cannot read ${path}: ${(e as Error).message}`);
  }
  let j: unknown;
  try {
    j = JSON.parse(text);
  } catch (e) {
    throw new SyntaxError(`loadPolicy: ${path} is not valid JSON (${(e as Error).message}); ${WRITTEN_BY}`);
  }
  const bad = (what: string) => new TypeError(`loadPolicy: ${path} is not a policy file: ${what}; ${WRITTEN_BY}`);
  if (typeof j !== 'object' || j === null || Array.isArray(j))
    throw bad(`it holds ${Array.isArray(j) ? 'an array' : j === null ? 'null' : `a ${typeof j}`}, not an object`);
  const o = j as Record<string, unknown>;
  if (typeof o.kind !== 'string') throw bad("it has no 'kind' (a string)");
  if (typeof o.config !== 'object' || o.config === null || Array.isArray(o.config))
    throw bad("it has no 'config' (an object)");
  if (!Array.isArray(o.weights)) throw bad("it has no 'weights' (an array)");
  o.weights.forEach((w: unknown, i) => {
    const x = w as { shape?: unknown; data?: unknown } | null;
    if (typeof x?.data !== 'string') throw bad(`weights[${i}] has no 'data' (base64 float32 values)`);
    const bytes = Buffer.byteLength(x.data, 'base64');
    const shape = x.shape;
    if (shape !== undefined && !(Array.isArray(shape) && shape.every((d) => Number.isInteger(d) && d >= 0)))
      throw bad(`weights[${i}].shape is not a list of sizes`);
    const want = shape === undefined ? undefined : 4 * (shape as number[]).reduce((a, b) => a * b, 1);
    if (bytes % 4 !== 0 || (want !== undefined && bytes !== want)) {
      throw bad(
        `weights[${i}] holds ${bytes} bytes, ${want === undefined ? 'not a whole number of float32 values' : `not the ${want} of shape [${(shape as number[]).join(', ')}]`}`,
      );
    }
  });
  return o as unknown as PolicyFile;
}

/** Load a policy written by save(). */
export function loadPolicy(tf: typeof TF, path: string): Policy {
  const j = readPolicyFile(path);
  const w = j.weights.map((x) => {
    const b = Buffer.from(x.data, 'base64');
    return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
  });
  if (j.kind === 'tabular') return new TabularPolicy(tf, j.config.prompts, j.config.vocab, w[0]);
  if (j.kind === 'char-mlp') return new CharPolicy(tf, j.config as unknown as CharPolicyConfig, 1, w);
  if (j.kind === 'fused-head') return new FusedHeadPolicy(tf, j.config as unknown as FusedHeadPolicyConfig, 1, w);
  if (j.kind === 'transformer') return new TransformerPolicy(tf, j.config as unknown as TransformerPolicyConfig, 1, w);
  throw new Error(`loadPolicy: unknown policy kind '${j.kind}' in ${path}`);
}
