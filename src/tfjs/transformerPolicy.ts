// A small causal transformer policy (GPT-style, pre-LayerNorm): token and learned position
// embeddings, `layers` blocks of causal multi-head self-attention and a ReLU MLP, each inside a
// residual with a LayerNorm before it, a final LayerNorm, and a bias-free LM head [V, D]
// (vocab-major, as LLM checkpoints store it). The trainer hands hiddenStates() and the head to
// gvpo's fused kernels: the [N*T, V] logits and their gradient never exist as tensors, for the
// loss or for the no-gradient passes. logits() gives them, for sampling.
//
// Layout: a prompt is left-padded with `pad` to `promptTokens` tokens, so a token sits at the same
// position whatever batch its sequence is in, and its logits depend on its own sequence alone
// (sampling, the no-gradient passes and the loss see the same numbers). Response token t is
// predicted from position promptTokens - 1 + t. Every op used (BatchMatMul, Softmax, Transpose,
// Slice, Mean, Rsqrt, Relu, SplitV, ...) has kernels and gradients on tfjs 'cpu' and 'wasm'; the
// token embedding's gradient is a scatter-add in JS (wasm has no UnsortedSegmentSum).
import type * as TF from '@tensorflow/tfjs';
import { readOptions } from '../validate.js';
import { embed } from './fusedHeadPolicy.js';
import {
  checkConfig,
  checkSeed,
  checkTokenIds,
  checkWeights,
  drawToken,
  type FusedHead,
  MAX_PARAMETERS,
  type Policy,
  PolicyBase,
  variableOf,
} from './policy.js';

type Tf = typeof TF;

export interface TransformerPolicyConfig {
  vocab: number;
  /** T: responses are padded to this many tokens (EOS included). */
  maxTokens: number;
  eos: number;
  /** Fills prompts on the left up to promptTokens. */
  pad: number;
  /** The longest prompt the policy reads. */
  promptTokens: number;
  /** D: the width of the residual stream and of the hidden states the head reads. */
  width: number;
  heads: number;
  layers: number;
  /** Width of each block's MLP. */
  mlp: number;
}

const LAYER_PARAMS = [
  'ln1.gain',
  'ln1.bias',
  'attn.wqkv',
  'attn.bqkv',
  'attn.wo',
  'attn.bo',
  'ln2.gain',
  'ln2.bias',
  'mlp.w1',
  'mlp.b1',
  'mlp.w2',
  'mlp.b2',
] as const;

/** How many weight arrays a config of `layers` blocks has (found before any shape is listed). */
export function transformerWeightCount(layers: number): number {
  return 5 + LAYER_PARAMS.length * layers;
}

/** Every parameter's name and shape, in the order of `variables` (the head last). */
export function transformerShapes(c: TransformerPolicyConfig): Array<[string, number[]]> {
  const { vocab: V, width: D, mlp: M } = c;
  const layer: Record<(typeof LAYER_PARAMS)[number], number[]> = {
    'ln1.gain': [D],
    'ln1.bias': [D],
    'attn.wqkv': [D, 3 * D],
    'attn.bqkv': [3 * D],
    'attn.wo': [D, D],
    'attn.bo': [D],
    'ln2.gain': [D],
    'ln2.bias': [D],
    'mlp.w1': [D, M],
    'mlp.b1': [M],
    'mlp.w2': [M, D],
    'mlp.b2': [D],
  };
  const out: Array<[string, number[]]> = [
    ['tokens', [V, D]],
    ['positions', [c.promptTokens + c.maxTokens - 1, D]],
  ];
  for (let l = 0; l < c.layers; l++) for (const p of LAYER_PARAMS) out.push([`block${l}.${p}`, layer[p]]);
  out.push(['lnf.gain', [D]], ['lnf.bias', [D]], ['head', [V, D]]);
  return out;
}

/** The number of parameters of a config, counted without listing its shapes (a config may ask
 *  for millions of layers). */
export function transformerParameters(c: TransformerPolicyConfig): number {
  const { vocab: V, width: D, mlp: M } = c;
  const layer = 4 * D * D + 2 * D * M + 9 * D + M;
  return 2 * V * D + (c.promptTokens + c.maxTokens - 1) * D + 2 * D + c.layers * layer;
}

/** The config's sizes and token ids, and width a multiple of heads. */
const CONFIG_KEYS = ['vocab', 'maxTokens', 'eos', 'pad', 'promptTokens', 'width', 'heads', 'layers', 'mlp'];

export function checkTransformerConfig(c: TransformerPolicyConfig): void {
  checkConfig(
    'TransformerPolicy',
    c as unknown as Record<string, unknown>,
    ['vocab', 'maxTokens', 'promptTokens', 'width', 'heads', 'layers', 'mlp'],
    ['eos', 'pad'],
  );
  if (c.width % c.heads)
    throw new RangeError(
      `TransformerPolicy: config.width (${c.width}) must be a multiple of config.heads (${c.heads})`,
    );
}

export class TransformerPolicy extends PolicyBase implements Policy, FusedHead {
  readonly kind = 'transformer';
  readonly variables: TF.Variable[];
  private readonly index = new Map<string, number>();
  /** Additive causal masks [L, L] (0 on and below the diagonal, -1e9 above), one per length. */
  private readonly masks = new Map<number, TF.Tensor2D>();

  get vocab() {
    return this.config.vocab;
  }
  get maxTokens() {
    return this.config.maxTokens;
  }
  /** The LM head's weight [V, D]. */
  get head(): TF.Variable {
    return this.variables[this.variables.length - 1];
  }
  /** Frees the variables and the cached causal masks. */
  override dispose(): void {
    super.dispose();
    for (const m of this.masks.values()) m.dispose();
    this.masks.clear();
  }

  /** The config as read at construction (each field once: a getter cannot pass the checks with
   *  one value and build the model with another). */
  readonly config: TransformerPolicyConfig;

  constructor(tf: Tf, config: TransformerPolicyConfig, seed = 1, weights?: Float32Array[]) {
    super(tf);
    checkSeed('TransformerPolicy', seed);
    // the names and values as given, then the values again on a copy read once (what the model is
    // built from: a getter cannot pass the checks with one value and size the model with another)
    checkTransformerConfig(config);
    config = { ...readOptions(config, CONFIG_KEYS) } as unknown as TransformerPolicyConfig;
    this.config = config;
    checkTransformerConfig(config);
    const parameters = transformerParameters(config);
    if (parameters > MAX_PARAMETERS)
      throw new RangeError(
        `TransformerPolicy: the config (width ${config.width}, layers ${config.layers}, mlp ${config.mlp}, vocab ${config.vocab}) has ${parameters} parameters, more than 2^26 = ${MAX_PARAMETERS}`,
      );
    if (weights && weights.length !== transformerWeightCount(config.layers)) {
      throw new RangeError(
        `TransformerPolicy: expected ${transformerWeightCount(config.layers)} weight arrays for this config, got ${weights.length}`,
      );
    }
    const shapes = transformerShapes(config);
    if (weights)
      checkWeights(
        'TransformerPolicy',
        shapes.map(([, shape]) => shape),
        weights,
      );
    // GPT-2's initialization: N(0, 0.02) weights, the residual projections scaled by
    // 1/sqrt(2 layers), LayerNorm gains 1, biases 0
    this.variables = shapes.map(([name, shape], i) => {
      this.index.set(name, i);
      if (weights) {
        return variableOf(tf, () => tf.tensor(weights[i], shape));
      }
      if (name.endsWith('gain')) return variableOf(tf, () => tf.ones(shape));
      if (shape.length === 1) return variableOf(tf, () => tf.zeros(shape));
      const std = name.endsWith('wo') || name.endsWith('w2') ? 0.02 / Math.sqrt(2 * config.layers) : 0.02;
      return variableOf(tf, () => tf.randomNormal(shape, 0, std, 'float32', seed * 1000 + i));
    });
  }

  private v(name: string): TF.Variable {
    return this.variables[this.index.get(name)!];
  }

  private mask(L: number): TF.Tensor2D {
    let m = this.masks.get(L);
    if (!m) {
      const a = new Float32Array(L * L);
      for (let i = 0; i < L; i++) for (let j = i + 1; j < L; j++) a[i * L + j] = -1e9;
      m = this.tf.keep(this.tf.tensor2d(a, [L, L]));
      this.masks.set(L, m);
    }
    return m;
  }

  private layerNorm(x: TF.Tensor2D, name: string): TF.Tensor2D {
    const tf = this.tf;
    const mean = x.mean(1, true);
    const centered = x.sub(mean);
    const inv = tf.rsqrt(centered.square().mean(1, true).add(1e-5));
    return centered
      .mul(inv)
      .mul(this.v(`${name}.gain`))
      .add(this.v(`${name}.bias`)) as TF.Tensor2D;
  }

  /** Hidden states [B*L, D] after the final LayerNorm, of B sequences of L token ids (row-major). */
  private hidden(ids: Int32Array, B: number, L: number): TF.Tensor2D {
    const tf = this.tf;
    const { width: D, heads: Hn } = this.config;
    const dh = D / Hn;
    const pos = this.v('positions').slice([0, 0], [L, D]);
    let x = embed(tf, this.v('tokens'), ids)
      .reshape([B, L, D])
      .add(pos)
      .reshape([B * L, D]) as TF.Tensor2D;
    const heads = (t: TF.Tensor) => t.reshape([B, L, Hn, dh]).transpose([0, 2, 1, 3]);
    for (let l = 0; l < this.config.layers; l++) {
      const p = (n: string) => this.v(`block${l}.${n}`);
      const qkv = tf.matMul(this.layerNorm(x, `block${l}.ln1`), p('attn.wqkv')).add(p('attn.bqkv'));
      const [q, k, val] = tf.split(qkv, 3, 1);
      const scores = tf
        .matMul(heads(q), heads(k), false, true)
        .mul(1 / Math.sqrt(dh))
        .add(this.mask(L));
      const att = tf
        .matMul(tf.softmax(scores), heads(val))
        .transpose([0, 2, 1, 3])
        .reshape([B * L, D]);
      x = x.add(tf.matMul(att as TF.Tensor2D, p('attn.wo')).add(p('attn.bo'))) as TF.Tensor2D;
      const h = tf.relu(tf.matMul(this.layerNorm(x, `block${l}.ln2`), p('mlp.w1')).add(p('mlp.b1')));
      x = x.add(tf.matMul(h as TF.Tensor2D, p('mlp.w2')).add(p('mlp.b2'))) as TF.Tensor2D;
    }
    return this.layerNorm(x, 'lnf');
  }

  /** Token ids [B, P + t]: each prompt left-padded to P = promptTokens, then `upTo` response tokens. */
  private sequences(prompts: number[][], responses: (n: number) => ArrayLike<number>, upTo: number): Int32Array {
    const { promptTokens: P, pad } = this.config;
    const L = P + upTo;
    const ids = new Int32Array(prompts.length * L).fill(pad);
    prompts.forEach((p, n) => {
      if (p.length > P)
        throw new RangeError(`TransformerPolicy: a prompt holds at most promptTokens = ${P} tokens, got ${p.length}`);
      checkTokenIds('TransformerPolicy', 'a prompt', p, this.vocab);
      ids.set(p, n * L + P - p.length);
      const r = responses(n);
      checkTokenIds('TransformerPolicy', 'a response', r, this.vocab, upTo);
      for (let t = 0; t < upTo; t++) ids[n * L + P + t] = r[t];
    });
    return ids;
  }

  /** Hidden states [N*T, D] at the positions that predict response tokens 0..T-1. */
  hiddenStates(prompts: number[][], responses: Int32Array): TF.Tensor2D {
    this.live('hiddenStates');
    const { promptTokens: P, maxTokens: T, width: D } = this.config;
    const N = prompts.length;
    if (responses.length !== N * T)
      throw new RangeError(
        `TransformerPolicy: responses must hold prompts.length * maxTokens = ${N * T} ids, got ${responses.length}`,
      );
    const L = P + T - 1;
    const h = this.hidden(
      this.sequences(prompts, (n) => responses.subarray(n * T, (n + 1) * T), T - 1),
      N,
      L,
    );
    return h
      .reshape([N, L, D])
      .slice([0, P - 1, 0], [N, T, D])
      .reshape([N * T, D]) as TF.Tensor2D;
  }

  logits(prompts: number[][], responses: Int32Array): TF.Tensor2D {
    this.live('logits');
    return this.tf.tidy(() => this.tf.matMul(this.hiddenStates(prompts, responses), this.head, false, true));
  }

  /**
   * One response per prompt at `temperature`, all prompts decoded together: each of the T steps
   * is one forward pass over the sequences still running (no cache: the sequences are short).
   */
  sample(prompts: number[][], temperature: number, rand: () => number): number[][] {
    const fn = this.checkSample(temperature, rand);
    const tf = this.tf;
    const { promptTokens: P, width: D, eos } = this.config;
    const V = this.vocab;
    const out = prompts.map(() => [] as number[]);
    let live = prompts.map((_, i) => i);
    for (let t = 0; t < this.maxTokens && live.length; t++) {
      const B = live.length;
      const L = P + t;
      const ids = this.sequences(
        live.map((i) => prompts[i]),
        (j) => out[live[j]],
        t,
      );
      const logits = tf.tidy(() => {
        const last = this.hidden(ids, B, L)
          .reshape([B, L, D])
          .slice([0, L - 1, 0], [B, 1, D])
          .reshape([B, D]);
        return tf.matMul(last as TF.Tensor2D, this.head, false, true);
      });
      const z = logits.dataSync() as Float32Array;
      logits.dispose();
      live.forEach((i, j) => out[i].push(drawToken(z, j * V, V, temperature, rand, fn)));
      live = live.filter((i) => out[i][t] !== eos);
    }
    return out;
  }

  clone(): TransformerPolicy {
    return new TransformerPolicy(this.tf, this.config, 1, this.getWeights());
  }
  setWeights(w: Float32Array[]): void {
    this.live('setWeights');
    this.variables.forEach((v, i) => v.assign(this.tf.tensor(w[i], v.shape)));
  }
  /** Parameters in all. */
  get size(): number {
    return this.variables.reduce((a, v) => a + v.size, 0);
  }
  save(path: string): void {
    this.write(path, this.kind, this.config);
  }
}
