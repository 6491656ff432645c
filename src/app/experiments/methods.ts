// The methods the experiments compare, each an algorithm of the trainer with its KL placement:
// GVPO, and the baselines as their authors run them or as the RL literature would (SPEC of the
// experiments in EXPERIMENTS.md's preamble). `coef` is the method's KL strength: GVPO's beta, the
// baselines' KL coefficient to the same reference.
import type { Algo, KlPlacement, TrainerOptions } from '../../tfjs/trainerOptions.js';

export type MethodId =
  | 'gvpo'
  | 'grpo-k3'
  | 'grpo-kl-reward'
  | 'grpo-k3-noclip'
  | 'drgrpo'
  | 'drgrpo-noclip'
  | 'drgrpo-k3'
  | 'drgrpo-kl-reward'
  | 'reinforce'
  | 'reinforce-kl-reward'
  | 'reinforce-is';

export interface Method {
  label: string;
  algo: Algo;
  /** Where the KL goes, or none (the method runs without one). */
  kl?: KlPlacement;
  /** Truncation of REINFORCE's importance weights (used where the sampler's probabilities are known). */
  importanceCap?: number;
  /** GRPO / Dr.GRPO: the ratio's clip range where it is not the trainer's 0.2 (Infinity: none). */
  clip?: number;
}

export const METHODS: Record<MethodId, Method> = {
  gvpo: { label: 'GVPO', algo: 'gvpo' },
  'grpo-k3': { label: 'GRPO, KL as k3 loss', algo: 'grpo', kl: 'loss' },
  'grpo-kl-reward': { label: 'GRPO, KL in reward', algo: 'grpo', kl: 'reward' },
  'grpo-k3-noclip': { label: 'GRPO, KL as k3 loss, no clip', algo: 'grpo', kl: 'loss', clip: Infinity },
  drgrpo: { label: 'Dr.GRPO, no KL', algo: 'drgrpo' },
  'drgrpo-noclip': { label: 'Dr.GRPO, no KL, no clip', algo: 'drgrpo', clip: Infinity },
  'drgrpo-k3': { label: 'Dr.GRPO, KL as k3 loss', algo: 'drgrpo', kl: 'loss' },
  'drgrpo-kl-reward': { label: 'Dr.GRPO, KL in reward', algo: 'drgrpo', kl: 'reward' },
  reinforce: { label: 'REINFORCE, group baseline, no KL', algo: 'reinforce' },
  'reinforce-kl-reward': { label: 'REINFORCE, group baseline, KL in reward', algo: 'reinforce', kl: 'reward' },
  'reinforce-is': { label: 'REINFORCE, KL in reward, truncated IS', algo: 'reinforce', kl: 'reward', importanceCap: 5 },
};

/** The trainer options of `id` at KL strength `coef` (GVPO's beta; the baselines' KL coefficient):
 *  only those its algorithm reads (the trainer refuses the others). */
export function methodOptions(
  id: MethodId,
  coef: number,
): Pick<TrainerOptions, 'algo' | 'beta' | 'klCoef' | 'klIn' | 'importanceCap' | 'clip'> {
  const m = METHODS[id];
  if (m.algo === 'gvpo') return { algo: m.algo, beta: coef };
  return {
    algo: m.algo,
    beta: coef,
    klCoef: m.kl ? coef : 0,
    klIn: m.kl ?? 'loss',
    ...(m.algo === 'reinforce' ? { importanceCap: m.importanceCap ?? 0 } : {}),
    ...(m.clip === undefined ? {} : { clip: m.clip }),
  };
}
