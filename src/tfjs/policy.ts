// What every policy offers the trainer: teacher-forced logits for every response position (what the
// losses need), sampling, variables, cloning and save/load; and what a policy whose LM head goes
// through the fused kernels offers besides (FusedHead). The shared pieces of the implementations
// (weights as arrays, the saved JSON, drawing a token) live here too.
import { writeFileSync } from 'node:fs';
import type * as TF from '@tensorflow/tfjs';
import { describe, rangeError, samplingTemperatureOf, typeError } from '../validate.js';

type Tf = typeof TF;

export interface Policy {
  readonly kind: string;
  readonly vocab: number;
  /** T: every response is padded to this many tokens. */
  readonly maxTokens: number;
  readonly variables: TF.Variable[];
  /** Logits [N*T, V] for each response position, given prompts and responses (N*T, padded). */
  logits(prompts: number[][], responses: Int32Array): TF.Tensor2D;
  /** One response per prompt, sampled at `temperature`; stops at EOS or after maxTokens. */
  sample(prompts: number[][], temperature: number, rand: () => number): number[][];
  clone(): Policy;
  getWeights(): Float32Array[];
  save(path: string): void;
  /** Frees the policy's tensors (the built-in policies have it); the policy is unusable after. */
  dispose?(): void;
}

/**
 * A policy whose LM head is a bias-free linear map the fused kernels can take over: the trainer
 * hands its hidden states and head weight to gvpoFromHiddenTf / tokenLogprobsFromHiddenTf, so
 * the [N*T, V] logits and their gradient never exist as tensors. logits() still gives them (for
 * sampling).
 */
export interface FusedHead {
  /** Hidden states [N*T, H] that the head reads at each response position (differentiable). */
  hiddenStates(prompts: number[][], responses: Int32Array): TF.Tensor2D;
  /** The head's weight [V, H], vocab-major (as LLM checkpoints store an lm_head). */
  readonly head: TF.Variable;
}

export function hasFusedHead(p: Policy): p is Policy & FusedHead {
  if (typeof p !== 'object' || p === null) return false;
  return typeof (p as Partial<FusedHead>).hiddenStates === 'function' && (p as Partial<FusedHead>).head !== undefined;
}

/**
 * Refuses a token id that is not an integer in [0, vocab): `ids` are the tokens a policy is about
 * to read (a prompt, a response; its first `n`), which would otherwise land in the wrong one-hot
 * column or embedding row.
 */
export function checkTokenIds(
  kind: string,
  what: string,
  ids: ArrayLike<number>,
  vocab: number,
  n = ids.length,
  range = "the policy's vocabulary",
): void {
  for (let i = 0; i < n; i++) {
    const t = ids[i];
    if (!Number.isInteger(t) || t < 0 || t >= vocab) {
      throw new RangeError(
        `${kind}: ${what} holds token ${String(t)} at position ${i}, outside ${range} [0, ${vocab})`,
      );
    }
  }
}

/**
 * The most parameters a built-in policy is built with: 2^26 (256 MiB of float32, and as much again
 * for each of Adam's moments and every copy the trainer keeps), far above what trains on a CPU. A
 * larger config is refused before anything is allocated, rather than failing inside TensorFlow.js
 * or V8 with an allocation error that names neither the policy nor its sizes.
 */
export const MAX_PARAMETERS = 2 ** 26;

/**
 * Refuses a config whose sizes (`sizes`: integers in [1, 2^31)) or token ids (`tokens`: integers in
 * [0, config.vocab)) are not, before any weight is built; `name` prefixes the message.
 */
export function checkConfig(
  name: string,
  config: Record<string, unknown>,
  sizes: readonly string[],
  tokens: readonly string[] = [],
): void {
  if (typeof config !== 'object' || config === null) throw new TypeError(`${name}: config must be an object`);
  for (const k of sizes) {
    const v = config[k];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v >= 2 ** 31)
      throw new RangeError(`${name}: config.${k} must be an integer in [1, 2^31), got ${String(v)}`);
  }
  const vocab = config.vocab as number;
  for (const k of tokens) {
    const v = config[k];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v >= vocab)
      throw new RangeError(`${name}: config.${k} must be a token id in [0, ${vocab}), got ${String(v)}`);
  }
}

/** A policy's seed for its initial weights: an integer in [0, 2^32), as the trainer's (NaN or 1.5
 *  would give weights that no seed reproduces). */
export function checkSeed(name: string, seed: unknown): number {
  if (typeof seed !== 'number') typeError(name, 'seed', 'an integer in [0, 2^32)', seed);
  if (!Number.isInteger(seed) || seed < 0 || seed >= 2 ** 32)
    rangeError(name, 'seed', 'an integer in [0, 2^32)', String(seed));
  return seed;
}

/** Refuses weights that do not fit `shapes`: another count, another size, a non-finite value. */
export function checkWeights(name: string, shapes: readonly number[][], weights: readonly ArrayLike<number>[]): void {
  if (weights.length !== shapes.length)
    throw new RangeError(`${name}: expected ${shapes.length} weight arrays for this config, got ${weights.length}`);
  shapes.forEach((shape, i) => {
    const size = shape.reduce((a, b) => a * b, 1);
    const w = weights[i];
    if (w.length !== size)
      throw new RangeError(
        `${name}: weights[${i}] must hold ${size} values (shape [${shape.join(', ')}]), got ${w.length}`,
      );
    for (let j = 0; j < w.length; j++)
      if (!Number.isFinite(w[j])) throw new RangeError(`${name}: weights[${i}] holds ${w[j]} at index ${j}`);
  });
}

/**
 * A token drawn from softmax(logits[offset .. offset+V) / temperature), `fn` naming the caller.
 * A draw from `rand` outside [0, 1) (NaN, 1, a negative) is refused: it would fall through every
 * token's share and silently return the last id.
 */
export function drawToken(
  logits: ArrayLike<number>,
  offset: number,
  V: number,
  temperature: number,
  rand: () => number,
  fn = 'drawToken',
): number {
  let m = -Infinity;
  for (let v = 0; v < V; v++) m = Math.max(m, logits[offset + v] / temperature);
  let s = 0;
  const p = new Float64Array(V);
  for (let v = 0; v < V; v++) s += p[v] = Math.exp(logits[offset + v] / temperature - m);
  const r: unknown = rand();
  if (typeof r !== 'number') typeError(fn, 'rand', 'a random source returning numbers in [0, 1)', r);
  if (!(r >= 0 && r < 1))
    rangeError(fn, 'rand', 'a random source returning numbers in [0, 1)', `a draw of ${describe(r)}`);
  let u = r * s;
  for (let v = 0; v < V; v++) if ((u -= p[v]) <= 0) return v;
  return V - 1;
}

/** A variable holding `init()`'s value, with no other tensor left behind (tf.variable keeps the
 *  tensor it was made from counted until that is disposed). */
export function variableOf(tf: Tf, init: () => TF.Tensor): TF.Variable {
  return tf.tidy(() => tf.variable(init()));
}

/** Refuses a `tf` that is not the TensorFlow.js module, before any weight is built: a null one
 *  would fail inside the first tf call with a message that names neither `fn` nor `tf`. */
export function checkTf(fn: string, tf: unknown): void {
  const t = tf as Partial<Tf> | null | undefined;
  if (typeof t?.tidy !== 'function' || typeof t.variable !== 'function' || typeof t.tensor !== 'function')
    typeError(fn, 'tf', 'the @tensorflow/tfjs module (see loadTf())', tf);
}

/** The config fields of each kind's policy file: save() writes these (not whatever else the
 *  config object given to the constructor held), loadPolicy() refuses any other. */
export const CONFIG_KEYS = {
  tabular: ['prompts', 'vocab'],
  'char-mlp': ['vocab', 'window', 'hidden', 'maxTokens', 'eos', 'pad'],
  'fused-head': ['vocab', 'window', 'embed', 'hidden', 'maxTokens', 'eos', 'pad'],
  transformer: ['vocab', 'maxTokens', 'eos', 'pad', 'promptTokens', 'width', 'heads', 'layers', 'mlp'],
} as const satisfies Record<string, readonly string[]>;

/** Weights as arrays and the JSON that save() writes and loadPolicy() reads. */
export abstract class PolicyBase {
  abstract readonly variables: TF.Variable[];
  constructor(protected readonly tf: Tf) {
    checkTf(new.target.name, tf);
  }
  private disposed = false;
  getWeights(): Float32Array[] {
    this.live('getWeights');
    return this.variables.map((v) => Float32Array.from(v.dataSync() as Float32Array));
  }
  /** Frees the policy's variables (a sweep of many policies in one process); unusable after:
   *  every method then throws, naming itself. */
  dispose(): void {
    this.disposed = true;
    for (const v of this.variables) if (!v.isDisposed) v.dispose();
  }
  /** Throws for a call after dispose(), instead of TensorFlow.js's "Tensor is disposed". */
  protected live(method: string): void {
    if (this.disposed) throw new Error(`${this.constructor.name}.${method}() after dispose()`);
  }
  /**
   * What sample() checks before drawing: the policy is live, the temperature is one the trainer
   * takes (samplingTemperatureOf: 0, NaN or a negative one would otherwise give the last id or
   * the pad token for every draw) and `rand` is a function. Returns the name drawToken's messages
   * carry.
   */
  protected checkSample(temperature: unknown, rand: unknown): string {
    this.live('sample');
    const fn = `${this.constructor.name}.sample`;
    samplingTemperatureOf(fn, 'temperature', temperature);
    if (typeof rand !== 'function') typeError(fn, 'rand', 'a random source returning numbers in [0, 1)', rand);
    return fn;
  }
  /**
   * What save() does: the policy file (dump) written to `path`. A path that is not a string is a
   * TypeError (a number would be taken for a file descriptor); a file that cannot be written is an
   * Error naming the method and the path, with the system's error as its cause.
   */
  protected write(path: unknown, kind: keyof typeof CONFIG_KEYS, config: object): void {
    this.live('save');
    const fn = `${this.constructor.name}.save`;
    if (typeof path !== 'string') typeError(fn, 'path', 'a string (the path of the file to write)', path);
    const c = config as Record<string, unknown>;
    const text = this.dump(kind, Object.fromEntries(CONFIG_KEYS[kind].map((k) => [k, c[k]])));
    try {
      writeFileSync(path, text);
    } catch (e) {
      throw new Error(`${fn}: cannot write ${path}: ${(e as Error).message}`, { cause: e });
    }
  }
  protected dump(kind: string, config: object): string {
    const weights = this.getWeights().map((w, i) => ({
      shape: this.variables[i].shape,
      data: Buffer.from(w.buffer).toString('base64'),
    }));
    return JSON.stringify({ kind, config, weights });
  }
}
