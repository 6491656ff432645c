// A policy whose LM head goes through gvpoFromHiddenTf: token embeddings of the last `window`
// tokens, concatenated, one ReLU layer to hidden states h [rows, H], and a bias-free head
// weight [V, H] (vocab-major, as LLM checkpoints store it). The trainer hands hiddenStates() and
// the head to the fused kernels, so the [N*T, V] logits and their gradient never exist as
// tensors; logits() still gives them, for sampling.
import type * as TF from '@tensorflow/tfjs';
import {
  checkConfig,
  checkSeed,
  checkTokenIds,
  checkWeights,
  drawToken,
  type FusedHead,
  type Policy,
  PolicyBase,
  variableOf,
} from './policy.js';

type Tf = typeof TF;

export interface FusedHeadPolicyConfig {
  vocab: number;
  window: number;
  /** Embedding width per window token. */
  embed: number;
  /** H: the width of the hidden states the head reads. */
  hidden: number;
  maxTokens: number;
  eos: number;
  /** Token that fills the window before the prompt starts. */
  pad: number;
}

/**
 * Rows of `table` [V, E] at `ids`, with a scatter-add gradient: tfjs-cpu's own gather gradient
 * (UnsortedSegmentSum) takes minutes on a V = 32768 table, and wasm has none. For a small
 * vocabulary the rows come from a one-hot product instead, which gives the same values exactly
 * (one 1, the rest 0) where wasm's GatherV2 took a third of a small transformer's forward pass.
 */
export function embed(tf: Tf, table: TF.Tensor, ids: Int32Array): TF.Tensor2D {
  const [V, E] = table.shape as [number, number];
  const rows = (t: TF.Tensor): TF.Tensor => {
    if (V > 512) return tf.gather(t, tf.tensor1d(ids, 'int32'));
    const onehot = new Float32Array(ids.length * V);
    ids.forEach((id, r) => {
      onehot[r * V + id] = 1;
    });
    return tf.matMul(tf.tensor2d(onehot, [ids.length, V]), t as TF.Tensor2D);
  };
  const op = tf.customGrad(((t: TF.Tensor) => ({
    value: rows(t),
    gradFunc: (dy: TF.Tensor) => {
      const g = new Float32Array(V * E),
        d = dy.dataSync();
      ids.forEach((id, r) => {
        for (let e = 0; e < E; e++) g[id * E + e] += d[r * E + e];
      });
      return tf.tensor2d(g, [V, E]);
    },
  })) as unknown as Parameters<Tf['customGrad']>[0]);
  return op(table) as TF.Tensor2D;
}

/** The weights' shapes: embeddings [V, E], the layer [W*E, H] and its bias [H], the head [V, H]. */
export function fusedHeadShapes(c: FusedHeadPolicyConfig): number[][] {
  checkConfig(
    'FusedHeadPolicy',
    c as unknown as Record<string, unknown>,
    ['vocab', 'window', 'embed', 'hidden', 'maxTokens'],
    ['eos', 'pad'],
  );
  const { vocab: V, window: W, embed: E, hidden: H } = c;
  return [[V, E], [W * E, H], [H], [V, H]];
}

export class FusedHeadPolicy extends PolicyBase implements Policy, FusedHead {
  readonly kind = 'fused-head';
  readonly variables: TF.Variable[];
  get vocab() {
    return this.config.vocab;
  }
  get maxTokens() {
    return this.config.maxTokens;
  }
  /** The head's weight [V, H]. */
  get head(): TF.Variable {
    return this.variables[3];
  }

  constructor(
    tf: Tf,
    readonly config: FusedHeadPolicyConfig,
    seed = 1,
    weights?: Float32Array[],
  ) {
    super(tf);
    checkSeed('FusedHeadPolicy', seed);
    const shapes = fusedHeadShapes(config);
    if (weights) checkWeights('FusedHeadPolicy', shapes, weights);
    const { window: W, embed: E, hidden: H } = config;
    const scales = [1, Math.sqrt(2 / (W * E)), 0, Math.sqrt(1 / H)];
    this.variables = shapes.map((shape, i) => {
      if (weights) return variableOf(tf, () => tf.tensor(weights[i], shape));
      if (scales[i] === 0) return variableOf(tf, () => tf.zeros(shape));
      return variableOf(tf, () => tf.randomNormal(shape, 0, scales[i], 'float32', seed + i));
    });
  }

  /** Token ids of the window before each predicted token, row-major [rows, W]. */
  private windows(contexts: number[][]): Int32Array {
    const { window: W, pad } = this.config;
    const ids = new Int32Array(contexts.length * W);
    contexts.forEach((ctx, r) => {
      checkTokenIds('FusedHeadPolicy', 'a prompt and response', ctx, this.vocab);
      for (let j = 0; j < W; j++) {
        const i = ctx.length - W + j;
        ids[r * W + j] = i >= 0 ? ctx[i] : pad;
      }
    });
    return ids;
  }

  /** Hidden states [rows, H] of the contexts. */
  private hiddenOf(contexts: number[][]): TF.Tensor2D {
    const tf = this.tf;
    const [emb, w1, b1] = this.variables;
    const { window: W, embed: E } = this.config;
    const x = embed(tf, emb, this.windows(contexts)).reshape([contexts.length, W * E]);
    return tf.relu(tf.matMul(x as TF.Tensor2D, w1 as TF.Tensor2D).add(b1)) as TF.Tensor2D;
  }

  private contexts(prompts: number[][], responses: Int32Array): number[][] {
    const T = this.maxTokens,
      out: number[][] = [];
    prompts.forEach((p, n) => {
      for (let t = 0; t < T; t++) out.push([...p, ...Array.from(responses.subarray(n * T, n * T + t))]);
    });
    return out;
  }

  logits(prompts: number[][], responses: Int32Array): TF.Tensor2D {
    this.live('logits');
    return this.tf.tidy(() => this.tf.matMul(this.hiddenStates(prompts, responses), this.head, false, true));
  }

  hiddenStates(prompts: number[][], responses: Int32Array): TF.Tensor2D {
    this.live('hiddenStates');
    return this.hiddenOf(this.contexts(prompts, responses));
  }

  sample(prompts: number[][], temperature: number, rand: () => number): number[][] {
    const fn = this.checkSample(temperature, rand);
    const out = prompts.map(() => [] as number[]);
    const live = prompts.map((_, i) => i);
    const V = this.vocab;
    for (let t = 0; t < this.maxTokens && live.length; t++) {
      const logits = this.tf.tidy(() =>
        this.tf.matMul(this.hiddenOf(live.map((i) => [...prompts[i], ...out[i]])), this.head, false, true),
      );
      const z = logits.dataSync() as Float32Array;
      logits.dispose();
      for (let j = live.length - 1; j >= 0; j--) {
        const tok = drawToken(z, j * V, V, temperature, rand, fn);
        out[live[j]].push(tok);
        if (tok === this.config.eos) live.splice(j, 1);
      }
    }
    return out;
  }

  clone(): FusedHeadPolicy {
    return new FusedHeadPolicy(this.tf, this.config, 1, this.getWeights());
  }
  setWeights(w: Float32Array[]): void {
    this.live('setWeights');
    this.variables.forEach((v, i) => v.assign(this.tf.tensor(w[i], v.shape)));
  }
  save(path: string): void {
    this.write(path, this.kind, this.config);
  }
}
