// The small policies the experiments solve exactly or train fast:
//   TabularPolicy: one logit per response per prompt (a response is one token); pi = softmax.
//   CharPolicy:    a small autoregressive character model: an MLP over a window of the last
//                  `window` tokens (prompt then response so far), one-hot, to next-token logits.
import type * as TF from '@tensorflow/tfjs';
import {
  checkConfig,
  checkSeed,
  checkTokenIds,
  checkWeights,
  drawToken,
  MAX_PARAMETERS,
  type Policy,
  PolicyBase,
  variableOf,
} from './policy.js';

type Tf = typeof TF;

export class TabularPolicy extends PolicyBase implements Policy {
  readonly kind = 'tabular';
  readonly maxTokens = 1;
  readonly theta: TF.Variable;
  get variables() {
    return [this.theta];
  }
  constructor(
    tf: Tf,
    readonly prompts: number,
    readonly vocab: number,
    init?: Float32Array,
  ) {
    super(tf);
    checkConfig('TabularPolicy', { prompts, vocab }, ['prompts', 'vocab']);
    if (prompts * vocab > MAX_PARAMETERS)
      throw new RangeError(
        `TabularPolicy: prompts x vocab must be at most 2^26 = ${MAX_PARAMETERS} parameters, got ${prompts} x ${vocab} = ${prompts * vocab}`,
      );
    if (init) checkWeights('TabularPolicy', [[prompts, vocab]], [init]);
    this.theta = variableOf(tf, () => (init ? tf.tensor2d(init, [prompts, vocab]) : tf.zeros([prompts, vocab])));
  }
  /** The prompt ids (each prompt is one token, its row of theta). */
  private rows(prompts: number[][]): number[] {
    return prompts.map((p) => {
      if (p.length !== 1) throw new RangeError(`TabularPolicy: a prompt is one token (its id), got ${p.length} tokens`);
      checkTokenIds('TabularPolicy', 'a prompt', p, this.prompts, 1, "the policy's prompt ids");
      return p[0];
    });
  }
  logits(prompts: number[][]): TF.Tensor2D {
    this.live('logits');
    // a one-hot [N, P] times theta [P, V] rather than tf.gather, whose gradient (a segment sum)
    // the wasm backend lacks
    const onehot = new Float32Array(prompts.length * this.prompts);
    this.rows(prompts).forEach((p, n) => {
      onehot[n * this.prompts + p] = 1;
    });
    return this.tf.tidy(() => this.tf.matMul(this.tf.tensor2d(onehot, [prompts.length, this.prompts]), this.theta));
  }
  /** pi(.|prompt) as probabilities, from the current logits. */
  probs(): Float64Array[] {
    this.live('probs');
    const t = this.theta.dataSync();
    return Array.from({ length: this.prompts }, (_, p) => {
      const row = Float64Array.from(t.subarray(p * this.vocab, (p + 1) * this.vocab));
      const m = row.reduce((a, x) => Math.max(a, x), -Infinity); // a spread of a long row overflows the stack
      let s = 0;
      for (let v = 0; v < row.length; v++) s += row[v] = Math.exp(row[v] - m);
      return row.map((x) => x / s);
    });
  }
  sample(prompts: number[][], temperature: number, rand: () => number): number[][] {
    const fn = this.checkSample(temperature, rand);
    const t = this.theta.dataSync() as Float32Array;
    return this.rows(prompts).map((p) => [drawToken(t, p * this.vocab, this.vocab, temperature, rand, fn)]);
  }
  clone(): TabularPolicy {
    return new TabularPolicy(this.tf, this.prompts, this.vocab, this.getWeights()[0]);
  }
  save(path: string): void {
    this.write(path, this.kind, { prompts: this.prompts, vocab: this.vocab });
  }
}

export interface CharPolicyConfig {
  vocab: number;
  window: number;
  hidden: number;
  maxTokens: number;
  eos: number;
  /** Token that fills the window before the prompt starts. */
  pad: number;
}

/** The weights' shapes: two hidden layers over the one-hot window, then the logits. */
export function charShapes(c: CharPolicyConfig): number[][] {
  checkConfig(
    'CharPolicy',
    c as unknown as Record<string, unknown>,
    ['vocab', 'window', 'hidden', 'maxTokens'],
    ['eos', 'pad'],
  );
  const { vocab: V, window: W, hidden: H } = c;
  return [[W * V, H], [H], [H, H], [H], [H, V], [V]];
}

export class CharPolicy extends PolicyBase implements Policy {
  readonly kind = 'char-mlp';
  readonly variables: TF.Variable[];
  get vocab() {
    return this.config.vocab;
  }
  get maxTokens() {
    return this.config.maxTokens;
  }
  constructor(
    tf: Tf,
    readonly config: CharPolicyConfig,
    seed = 1,
    weights?: Float32Array[],
  ) {
    super(tf);
    checkSeed('CharPolicy', seed);
    const shapes = charShapes(config);
    if (weights) checkWeights('CharPolicy', shapes, weights);
    this.variables = shapes.map((shape, i) => {
      if (weights) return variableOf(tf, () => tf.tensor(weights[i], shape));
      if (shape.length === 1) return variableOf(tf, () => tf.zeros(shape));
      return variableOf(tf, () => tf.randomNormal(shape, 0, Math.sqrt(2 / shape[0]), 'float32', seed + i));
    });
  }

  /** One-hot window rows [rows, W*V]: for each row, the W tokens before the predicted one. */
  private windows(contexts: number[][]): TF.Tensor2D {
    const { vocab: V, window: W, pad } = this.config;
    const x = new Float32Array(contexts.length * W * V);
    contexts.forEach((ctx, r) => {
      checkTokenIds('CharPolicy', 'a prompt and response', ctx, V);
      for (let j = 0; j < W; j++) {
        const i = ctx.length - W + j;
        x[r * W * V + j * V + (i >= 0 ? ctx[i] : pad)] = 1;
      }
    });
    return this.tf.tensor2d(x, [contexts.length, W * V]);
  }

  private forward(x: TF.Tensor2D): TF.Tensor2D {
    const [w1, b1, w2, b2, w3, b3] = this.variables;
    const tf = this.tf;
    const h1 = tf.relu(tf.matMul(x, w1).add(b1));
    const h2 = tf.relu(tf.matMul(h1, w2).add(b2));
    return tf.matMul(h2, w3).add(b3) as TF.Tensor2D;
  }

  logits(prompts: number[][], responses: Int32Array): TF.Tensor2D {
    this.live('logits');
    const T = this.maxTokens;
    const contexts: number[][] = [];
    prompts.forEach((p, n) => {
      for (let t = 0; t < T; t++) contexts.push([...p, ...Array.from(responses.subarray(n * T, n * T + t))]);
    });
    return this.tf.tidy(() => this.forward(this.windows(contexts)));
  }

  sample(prompts: number[][], temperature: number, rand: () => number): number[][] {
    const fn = this.checkSample(temperature, rand);
    const out = prompts.map(() => [] as number[]);
    const live = prompts.map((_, i) => i);
    for (let t = 0; t < this.maxTokens && live.length; t++) {
      const logits = this.tf.tidy(() => this.forward(this.windows(live.map((i) => [...prompts[i], ...out[i]]))));
      const data = logits.dataSync() as Float32Array;
      logits.dispose();
      for (let j = live.length - 1; j >= 0; j--) {
        const tok = drawToken(data, j * this.vocab, this.vocab, temperature, rand, fn);
        out[live[j]].push(tok);
        if (tok === this.config.eos) live.splice(j, 1);
      }
    }
    return out;
  }

  clone(): CharPolicy {
    return new CharPolicy(this.tf, this.config, 1, this.getWeights());
  }
  save(path: string): void {
    this.write(path, this.kind, this.config);
  }
}
