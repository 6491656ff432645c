// Reading back a policy written by save(): the file names its kind, its config and its weights.
// A file that is not one (another JSON file, a truncated download, a config edited by hand) is
// refused with its path and what is wrong, before any weight is built: the config's sizes are
// checked, the number of weight arrays and each one's shape and values against them.
import { readFileSync, statSync } from 'node:fs';
import type * as TF from '@tensorflow/tfjs';
import { FusedHeadPolicy, type FusedHeadPolicyConfig, fusedHeadShapes } from './fusedHeadPolicy.js';
import { CharPolicy, type CharPolicyConfig, charShapes, TabularPolicy } from './policies.js';
import { closest, typeError } from '../validate.js';
import { CONFIG_KEYS, checkConfig, checkTf, checkWeights, type Policy } from './policy.js';
import {
  checkTransformerConfig,
  TransformerPolicy,
  type TransformerPolicyConfig,
  transformerShapes,
  transformerWeightCount,
} from './transformerPolicy.js';

/** What save() writes: the policy's kind, its config, and each variable's shape and float32 values (base64). */
export interface PolicyFile {
  kind: string;
  config: Record<string, number>;
  weights: Array<{ shape?: number[]; data: string }>;
}

/** A policy file read and checked: its kind, its config, its weights decoded. */
export interface CheckedPolicyFile {
  kind: 'tabular' | 'char-mlp' | 'fused-head' | 'transformer';
  config: Record<string, number>;
  weights: Float32Array[];
}

/** The fields of a policy file and of each of its weights, as save() writes them (every version). */
const FILE_KEYS = ['kind', 'config', 'weights'];
const WEIGHT_KEYS = ['shape', 'data'];

const WRITTEN_BY = "a policy file is what a policy's save() or `gvpo warmup` writes";

/** The largest policy file read: the longest string V8 holds (2^29 - 24 characters, just under
 *  512 MiB), above the base64 of the largest policy built (2^26 float32 parameters, about
 *  342 MiB). */
export const MAX_POLICY_FILE_BYTES = 2 ** 29 - 24;

/** Each kind's weight shapes for a config, checked first; `count` is the number of arrays in the
 *  file (a transformer's depth is compared with it before its shapes are listed). */
const SHAPES: Record<CheckedPolicyFile['kind'], (config: Record<string, number>, count: number) => number[][]> = {
  tabular: (c) => {
    checkConfig('tabular', c, ['prompts', 'vocab']);
    return [[c.prompts, c.vocab]];
  },
  'char-mlp': (c) => charShapes(c as unknown as CharPolicyConfig),
  'fused-head': (c) => fusedHeadShapes(c as unknown as FusedHeadPolicyConfig),
  transformer: (c, count) => {
    const config = c as unknown as TransformerPolicyConfig;
    checkTransformerConfig(config);
    if (count !== transformerWeightCount(config.layers))
      throw new RangeError(
        `config.layers = ${config.layers} needs ${transformerWeightCount(config.layers)} weight arrays, the file holds ${count}`,
      );
    return transformerShapes(config).map(([, shape]) => shape);
  },
};

/** Reads `path` and checks that it holds a policy file that fits its config; the message names the
 *  file and what is wrong. */
export function readPolicyFile(path: string): CheckedPolicyFile {
  // a number would be read as a file descriptor
  if (typeof path !== 'string') typeError('loadPolicy', 'path', 'a string (the path of a policy file)', path);
  let text: string;
  try {
    // a device (/dev/zero), a pipe or a directory would be read without end, or block: only a
    // regular file of a bounded size is read, and its size is known before reading
    const st = statSync(path);
    if (!st.isFile())
      throw new Error(`it is not a regular file (${st.isDirectory() ? 'a directory' : 'a device, pipe or socket'})`);
    if (st.size > MAX_POLICY_FILE_BYTES)
      throw new Error(
        `it holds ${st.size} bytes, more than the ${MAX_POLICY_FILE_BYTES} (just under 512 MiB) a policy file may hold`,
      );
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
  // what save() writes and nothing else: a field of another meaning would be silently dropped
  const unknown = (fields: string[], known: readonly string[], where: string) => {
    const key = fields.find((k) => !known.includes(k));
    if (key !== undefined) throw bad(`${where} has no field '${key}' (did you mean '${closest(key, known)}'?)`);
  };
  // a file with no kind (a package.json) is no policy file at all, whatever else it holds
  if (typeof o.kind !== 'string') throw bad("it has no 'kind' (a string)");
  unknown(Object.keys(o), FILE_KEYS, 'it');
  if (!Object.hasOwn(SHAPES, o.kind)) throw bad(`its kind '${o.kind}' is none of ${Object.keys(SHAPES).join(', ')}`);
  if (typeof o.config !== 'object' || o.config === null || Array.isArray(o.config))
    throw bad("it has no 'config' (an object)");
  if (!Array.isArray(o.weights)) throw bad("it has no 'weights' (an array)");
  const kind = o.kind as CheckedPolicyFile['kind'];
  const config = o.config as Record<string, number>;
  unknown(Object.keys(config), CONFIG_KEYS[kind], `its ${kind} config`);
  let shapes: number[][];
  try {
    shapes = SHAPES[kind](config, o.weights.length);
  } catch (e) {
    throw bad(`its ${kind} config does not hold: ${(e as Error).message.replace(/^[\w-]+: /, '')}`);
  }
  if (o.weights.length !== shapes.length)
    throw bad(`a ${kind} policy has ${shapes.length} weight arrays, the file holds ${o.weights.length}`);
  const weights = o.weights.map((w: unknown, i) => {
    const x = w as { shape?: unknown; data?: unknown } | null;
    if (typeof x?.data !== 'string') throw bad(`weights[${i}] has no 'data' (base64 float32 values)`);
    unknown(Object.keys(x), WEIGHT_KEYS, `weights[${i}]`);
    const shape = x.shape;
    if (shape !== undefined && !(Array.isArray(shape) && shape.every((d) => Number.isInteger(d) && d >= 0)))
      throw bad(`weights[${i}].shape is not a list of sizes`);
    const want = shapes[i];
    if (shape !== undefined && (shape.length !== want.length || shape.some((d, k) => d !== want[k])))
      throw bad(`weights[${i}] has shape [${shape.join(', ')}] where the config gives [${want.join(', ')}]`);
    const bytes = Buffer.byteLength(x.data, 'base64');
    const size = 4 * want.reduce((a, b) => a * b, 1);
    if (bytes !== size) throw bad(`weights[${i}] holds ${bytes} bytes, not the ${size} of shape [${want.join(', ')}]`);
    const b = Buffer.from(x.data, 'base64');
    if (b.byteLength !== size) throw bad(`weights[${i}] is not valid base64 of ${size} bytes`);
    return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
  });
  try {
    checkWeights(kind, shapes, weights);
  } catch (e) {
    throw bad((e as Error).message.replace(/^[\w-]+: /, ''));
  }
  return { kind, config, weights };
}

/** Load a policy written by save(). */
export function loadPolicy(tf: typeof TF, path: string): Policy {
  checkTf('loadPolicy', tf); // before the file is read, which may take a while
  const { kind, config, weights: w } = readPolicyFile(path);
  if (kind === 'tabular') return new TabularPolicy(tf, config.prompts, config.vocab, w[0]);
  if (kind === 'char-mlp') return new CharPolicy(tf, config as unknown as CharPolicyConfig, 1, w);
  if (kind === 'fused-head') return new FusedHeadPolicy(tf, config as unknown as FusedHeadPolicyConfig, 1, w);
  return new TransformerPolicy(tf, config as unknown as TransformerPolicyConfig, 1, w);
}
