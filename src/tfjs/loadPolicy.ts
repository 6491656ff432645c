// Reading back a policy written by save(): the file names its kind, its config and its weights.
import { readFileSync } from 'node:fs';
import type * as TF from '@tensorflow/tfjs';
import { FusedHeadPolicy, type FusedHeadPolicyConfig } from './fusedHeadPolicy.js';
import { CharPolicy, type CharPolicyConfig, TabularPolicy } from './policies.js';
import type { Policy } from './policy.js';
import { TransformerPolicy, type TransformerPolicyConfig } from './transformerPolicy.js';

/** Load a policy written by save(). */
export function loadPolicy(tf: typeof TF, path: string): Policy {
  const j = JSON.parse(readFileSync(path, 'utf8')) as { kind: string; config: Record<string, number>; weights: Array<{ data: string }> };
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
