// The trainer's options: their types, every default, and the one place they are checked and
// resolved (GVPOTrainer calls resolveTrainerOptions once, in its constructor). The defaults follow
// the official GVPO recipe (jszkc/GVPO, run_qwen2-7b_math_gvpo.sh): beta 0.1, k = 4 responses per
// prompt, the batch split into 4 mini-batches of whole groups (one optimizer update each, so the
// last three run against a pi_theta' that is already stale), one epoch, the previous step's policy
// as reference, rewards centered by the group mean only.
import type * as TF from '@tensorflow/tfjs';
import type { Task } from '../tasks/task.js';
import { checkOptions, closest, describe, optionKeys, readOptions, samplingTemperatureOf } from '../validate.js';
import type { Policy } from './policy.js';
import type { EvalSplit } from './batch.js';

type Tf = typeof TF;

/**
 * gvpo: the GVPO loss. grpo: std-normalized advantages, ratio clipped at 1 +- clip against the
 * distribution that sampled each sequence. drgrpo: mean-centered advantages, the same clipped
 * ratio, a constant normalizer. reinforce: the group-mean baseline policy gradient (RLOO's
 * scaling), importance-weighted and truncated when importanceCap > 0.
 */
export type Algo = 'gvpo' | 'grpo' | 'drgrpo' | 'reinforce';
/** Where the policy-gradient baselines put the KL to the reference: the k3 term of the loss, or an
 *  exact log-ratio penalty in the reward (verl's use_kl_in_reward). */
export type KlPlacement = 'loss' | 'reward';

/**
 * Responses from outside the policy for one prompt (demonstrations, a fixed distribution), with,
 * where the sampler's probabilities are known, its token log-probs per response (one for each
 * token of that response, at the temperature it sampled at); no other field. A response whose log-probs are not given is
 * treated as if the current policy had sampled it (its ratio is 1 at the first update).
 */
export interface ExternalGroup {
  responses: number[][];
  tokenLogprobs?: Array<ArrayLike<number> | null | undefined>;
}
/** A sampler of k responses for a prompt, synchronous or async; responses may be typed arrays. */
export type ExternalSampler = (
  prompt: number[],
  k: number,
  rand: () => number,
) => number[][] | ExternalGroup | Promise<number[][] | ExternalGroup>;
/** Which of GVPO's terms the loss keeps: all (the GVPO loss), or one of the paper's ablations. */
export type TermsAblation = 'all' | 'no-variance' | 'no-trust-region';

/** A reward function, its weight in the sum (default 1), and a name of the caller's (a label the
 *  trainer keeps and does not read). Any other field is refused as a typo. */
export interface RewardSpec {
  fn: (prompt: number[], response: number[]) => number | Promise<number>;
  weight?: number;
  name?: string;
}

/** What the caller passes: everything but tf, policy and task may be left out. */
export interface TrainerOptions {
  tf: Tf;
  policy: Policy;
  task: Task;
  algo?: Algo;
  beta?: number;
  groupSize?: number;
  promptsPerStep?: number;
  /** Optimizer updates per pass over the step's G groups: mini-batches of ceil(G / miniBatches) whole
   *  groups, so fewer updates where G is not a multiple of it. */
  miniBatches?: number;
  epochs?: number;
  /** Adam's learning rate (default 1e-3); not with `optimizer`. */
  learningRate?: number;
  /** An optimizer of the caller's, in place of Adam(learningRate). */
  optimizer?: TF.Optimizer;
  /** Sampling temperature of the current policy; the losses' log-probs are taken at it too. */
  temperature?: number;
  reference?: 'previous' | 'frozen';
  /** The frozen reference (default: a copy of the policy at construction). */
  referencePolicy?: Policy;
  /** Reward functions whose weighted sum scores the sampled responses in place of task.reward
   *  (each may be async). Evaluation (evaluateReward, a step's evalReward) keeps task.reward. */
  rewards?: RewardSpec[];
  /** Share of each step's groups drawn from a buffer of earlier policies' groups: ratio x
   *  promptsPerStep of them in expectation (its whole part, and one more with the probability of
   *  its fraction), once the buffer holds them; capacity: the latest groups it keeps (256). */
  replay?: { ratio: number; capacity?: number };
  /** Externally supplied responses (demonstrations, a fixed distribution): k per prompt. */
  externalResponses?: ExternalSampler;
  /** Share of the non-replayed groups taken from externalResponses (1: all), in expectation: its
   *  fraction of a group is drawn at random each step, as replay's. */
  externalRatio?: number;
  /** GRPO / Dr.GRPO: clip range of the ratio, which is clipped to [1 - clip, 1 + clip] (0.2);
   *  Infinity: no clip, the plain importance-weighted surrogate (the clip's ablation). */
  clip?: number;
  /** GRPO / Dr.GRPO / REINFORCE: the KL coefficient to the reference (pi_theta', or the frozen
   *  policy), and where it goes (the k3 term of the loss, or a penalty in the reward). */
  klCoef?: number;
  klIn?: KlPlacement;
  /** REINFORCE: truncation of the per-sequence importance weight pi/pi_b (0: no weights). */
  importanceCap?: number;
  /** GVPO: keep all terms, or drop the variance or trust-region term (ablations). */
  terms?: TermsAblation;
  seed?: number;
  /**
   * Every `evalEvery` steps (0: never), on `evalPrompts` evaluation prompts (the task's held-out
   * split where it has one): greedy exact-match accuracy and the reward sampled at temperature 1.
   */
  evalEvery?: number;
  evalPrompts?: number;
  /**
   * Which prompts evaluate() and evaluateReward() draw: 'test' (default), the task's held-out
   * prompts; 'validation', the task's validation prompts (a split apart from both the training and
   * the held-out ones, for tuning; the task must have validationPrompts).
   */
  evalSplit?: EvalSplit;
  /** Called with each step's metrics after its updates; an async one is awaited. */
  onMetrics?: (m: StepMetrics) => unknown;
}

export interface StepMetrics {
  step: number;
  algo: Algo;
  /** The loss minimized, averaged over the step's mini-batch updates. */
  loss: number;
  /** GVPO's terms at each update (for every algorithm: a diagnostic), averaged like the loss. */
  advantage: number;
  trustRegion: number;
  variance: number;
  constant: number;
  /** Mean and std of the rewards of all the step's groups (replayed and external included). */
  rewardMean: number;
  rewardStd: number;
  /** Mean reward of the groups the current policy sampled this step (NaN when none). */
  rewardPolicy: number;
  /** How far the policy after the step's updates (pi) moved from pi_theta' and from the initial
   *  policy: k3 estimates of KL(pi || pi_theta') and KL(pi || pi_init) on sequences pi_theta'
   *  sampled (taken as samples of pi, which one step moves little), the mean of r - 1 - log r
   *  with r = pi_theta'(y)/pi(y) (resp. pi_init(y)/pi(y)). Never negative, and unbiased for the KL
   *  on samples of pi, but one step's value is noisy: where pi has grown peaked, the rare
   *  responses it gives low probability carry large r, so most steps read below the KL and a few
   *  far above it. Average over steps for a trend. The sequences are the step's groups that the
   *  policy sampled (external and replayed ones are not samples of it); a step with none of those
   *  draws k responses per prompt from pi_theta' for this measure alone, from a random stream
   *  that training never reads. */
  klPrevious: number;
  klInitial: number;
  entropy: number;
  /** GRPO / Dr.GRPO: share of response tokens whose clip binds (ratio above 1 + clip with a
   *  positive advantage, or below 1 - clip with a negative one: no gradient); REINFORCE: share of
   *  sequences whose importance weight was truncated. */
  clipFraction: number;
  /** Share of the step's groups whose rewards are all equal: no learning signal in them. */
  zeroVarianceGroups: number;
  updates: number;
  /** On evaluation steps: greedy exact-match accuracy (where the task has answer()) and the
   *  task's reward (task.reward, not `rewards`, awaited where it is async) sampled at
   *  temperature 1. */
  accuracy?: number;
  evalReward?: number;
  tokensPerSecond: number;
  seconds: number;
}

export const TRAINER_DEFAULTS = {
  algo: 'gvpo' as Algo,
  beta: 0.1,
  groupSize: 4,
  promptsPerStep: 8,
  miniBatches: 4,
  epochs: 1,
  learningRate: 1e-3,
  temperature: 1,
  reference: 'previous' as 'previous' | 'frozen',
  replayRatio: 0,
  replayCapacity: 256,
  externalRatio: 1,
  /** GRPO / Dr.GRPO: PPO clip range; the baselines' KL coefficient and where it goes. */
  clip: 0.2,
  klCoef: 0,
  klIn: 'loss' as KlPlacement,
  importanceCap: 0,
  terms: 'all' as TermsAblation,
  seed: 1,
  /** Greedy accuracy every N steps (0: never). */
  evalEvery: 0,
  evalPrompts: 200,
  evalSplit: 'test' as EvalSplit,
};

/** Every option resolved: what the trainer reads, never the caller's object. */
export interface TrainerConfig {
  algo: Algo;
  beta: number;
  groupSize: number;
  promptsPerStep: number;
  miniBatches: number;
  epochs: number;
  /** Adam's rate (not used with a caller's optimizer). */
  learningRate: number;
  temperature: number;
  reference: 'previous' | 'frozen';
  replayRatio: number;
  replayCapacity: number;
  externalResponses?: ExternalSampler;
  externalRatio: number;
  clip: number;
  klCoef: number;
  klIn: KlPlacement;
  importanceCap: number;
  terms: TermsAblation;
  seed: number;
  evalEvery: number;
  evalPrompts: number;
  evalSplit: EvalSplit;
  rewards?: RewardSpec[];
  onMetrics?: (m: StepMetrics) => unknown;
}

/**
 * Upper bounds on the sizes a step works on. They are far above what a run on a CPU uses, and keep
 * a typo (1e9 for 1e3) from becoming a process that allocates until V8 aborts or that never ends:
 * a step holds every one of its sequences (prompts x group size) in memory at once, and an
 * evaluation all of its prompts.
 */
export const TRAINER_LIMITS = {
  groupSize: 4096,
  promptsPerStep: 65536,
  /** promptsPerStep x groupSize. */
  sequencesPerStep: 2 ** 20,
  miniBatches: 65536,
  epochs: 1024,
  evalPrompts: 65536,
};

export const ALGOS: readonly Algo[] = ['gvpo', 'grpo', 'drgrpo', 'reinforce'];

/** The options only some algorithms read, and which: given with another algorithm, one would be
 *  accepted and do nothing, so it is refused (a run that meant to set it would not). */
export const ALGO_OPTIONS: Readonly<Record<'clip' | 'klCoef' | 'klIn' | 'importanceCap' | 'terms', readonly Algo[]>> = {
  clip: ['grpo', 'drgrpo'],
  klCoef: ['grpo', 'drgrpo', 'reinforce'],
  klIn: ['grpo', 'drgrpo', 'reinforce'],
  importanceCap: ['reinforce'],
  terms: ['gvpo'],
};

/** Why an option `key` set to be read by `algos` does nothing with `algo` (GVPO's own names for
 *  what the baselines' options set). */
export function notReadBy(key: keyof typeof ALGO_OPTIONS, algo: Algo): string {
  const why =
    algo === 'gvpo' && (key === 'klCoef' || key === 'klIn')
      ? " (GVPO's KL strength is beta)"
      : algo === 'gvpo' && key === 'importanceCap'
        ? ' (GVPO takes responses from any sampler with no importance weights)'
        : '';
  return `${key} is read by ${ALGO_OPTIONS[key].join(', ')} only: with algo '${algo}' it would do nothing${why}`;
}
const ABLATIONS: readonly TermsAblation[] = ['all', 'no-variance', 'no-trust-region'];

function fail(name: string, expected: string, got: unknown): never {
  throw new RangeError(`GVPOTrainer: ${name} must be ${expected}, got ${describe(got)}`);
}
/** A value of the wrong kind (null, a string for a number) is a TypeError, one out of range a
 *  RangeError: null is no default (the kernels refuse it too), only undefined is. */
function wrongKind(name: string, expected: string, got: unknown): never {
  throw new TypeError(`GVPOTrainer: ${name} must be ${expected}, got ${describe(got)}`);
}
function integer(name: string, v: unknown, min: number, max = Infinity): number {
  const expected = max === Infinity ? `an integer >= ${min}` : `an integer in [${min}, ${max}]`;
  if (typeof v !== 'number') wrongKind(name, expected, v);
  if (!Number.isInteger(v) || v < min || v > max) fail(name, expected, v);
  return v;
}
/** A seed: the generator (mulberry32) keeps 32 bits, so a larger one would repeat a smaller one's run. */
export function seedOf(name: string, v: unknown): number {
  if (typeof v !== 'number') wrongKind(name, 'an integer in [0, 2^32)', v);
  if (!Number.isInteger(v) || v < 0 || v >= 2 ** 32) fail(name, 'an integer in [0, 2^32)', v);
  return v;
}
function inRange(name: string, v: unknown, ok: (x: number) => boolean, expected: string): number {
  if (typeof v !== 'number') wrongKind(name, expected, v);
  if (!ok(v)) fail(name, expected, v);
  return v;
}
/** One of `allowed` (a string), else a TypeError for another kind or a RangeError for another name. */
function oneOf<T extends string>(name: string, v: unknown, allowed: readonly T[]): T {
  const expected = allowed.map((a) => `'${a}'`).join(' | ');
  if (typeof v !== 'string') wrongKind(name, expected, v);
  if (!(allowed as readonly string[]).includes(v)) fail(name, expected, v);
  return v as T;
}
const finitePositive = (x: number) => Number.isFinite(x) && x > 0;
/** A sampling temperature: the rule of validate.ts's samplingTemperatureOf, which the command and
 *  the policies' sample() share. */
export function checkTemperature(name: string, v: unknown): number {
  return samplingTemperatureOf('GVPOTrainer', name, v);
}
function isFunction(name: string, v: unknown): void {
  if (v !== undefined && typeof v !== 'function')
    throw new TypeError(`GVPOTrainer: ${name} must be a function, got ${describe(v)}`);
}
/** `v` has each of `methods` as a function: what the trainer calls on a tf module, a policy, a task. */
function hasMethods(name: string, v: unknown, methods: readonly string[], what: string): void {
  const o = v as Record<string, unknown> | null | undefined;
  const missing = typeof o === 'object' && o !== null ? methods.find((m) => typeof o[m] !== 'function') : methods[0];
  if (missing !== undefined)
    throw new TypeError(`GVPOTrainer: ${name} must be ${what} (with ${missing}()), got ${describe(v)}`);
}
const POLICY_METHODS = ['logits', 'sample', 'clone'] as const;

// What a policy reads besides its vocabulary and maxTokens: the prompt ids of a TabularPolicy
// (`prompts`), and the token conventions of the others' configs (end of sequence, the pad that
// fills a prompt, the longest prompt read). The sizes of the layers may differ.
const READS = ['prompts'] as const;
const READS_CONFIG = ['eos', 'pad', 'promptTokens'] as const;

/** A frozen reference scores the policy's prompts and responses: where both policies say what they
 *  read (READS, READS_CONFIG), the reference must read the same, else the first step would fail
 *  (a prompt id past the reference's table) or score the responses under other conventions. */
function checkReferenceFits(policy: Policy, r: Policy): void {
  const field = (p: unknown, key: string): unknown =>
    typeof p === 'object' && p !== null ? (p as Record<string, unknown>)[key] : undefined;
  const pairs = [
    ...READS.map((k) => [k, field(policy, k), field(r, k)] as const),
    ...READS_CONFIG.map(
      (k) => [`config.${k}`, field(field(policy, 'config'), k), field(field(r, 'config'), k)] as const,
    ),
  ];
  for (const [name, mine, theirs] of pairs) {
    if (typeof mine === 'number' && theirs !== undefined && theirs !== mine)
      throw new RangeError(
        `GVPOTrainer: referencePolicy.${name} must be the policy's, ${mine}, got ${describe(theirs)} (the reference scores the policy's prompts and responses)`,
      );
  }
}

/** What the trainer works on, each read once from the caller's options. */
export interface TrainerParts {
  tf: Tf;
  policy: Policy;
  task: Task;
  referencePolicy?: Policy;
  optimizer?: TF.Optimizer;
}

/** The things the trainer works on: tf, the policy (and a frozen reference) and the task, which
 *  must fit each other (the policy reads and writes every token of the task's vocabulary). */
export function checkParts(options: TrainerOptions, reference: 'previous' | 'frozen'): TrainerParts {
  // each read once (a getter cannot show the checks one object and the trainer another), and
  // only the caller's: an optimizer on Object.prototype is not one
  const r = readOptions(options, ['tf', 'policy', 'task', 'referencePolicy', 'optimizer']) as Partial<TrainerParts>;
  const o = {
    tf: r.tf,
    policy: r.policy,
    task: r.task,
    referencePolicy: r.referencePolicy,
    optimizer: r.optimizer,
  } as TrainerParts;
  hasMethods('tf', o.tf, ['tidy', 'variable'], 'the @tensorflow/tfjs module (see loadTf())');
  if (typeof (o.tf as { train?: { adam?: unknown } }).train?.adam !== 'function')
    throw new TypeError('GVPOTrainer: tf must be the @tensorflow/tfjs module (see loadTf()), it has no train.adam()');
  hasMethods('policy', o.policy, POLICY_METHODS, 'a Policy');
  hasMethods('task', o.task, ['samplePrompts', 'reward'], 'a Task');
  const { policy, task } = o;
  if (!Number.isInteger(task.vocab) || task.vocab < 1) fail('task.vocab', 'an integer >= 1', task.vocab);
  if (!Number.isInteger(policy.vocab) || policy.vocab < task.vocab)
    fail('policy.vocab', `an integer >= the task's vocabulary (${task.vocab}) so that every token fits`, policy.vocab);
  if (!Number.isInteger(policy.maxTokens) || policy.maxTokens < 1)
    fail('policy.maxTokens', 'an integer >= 1', policy.maxTokens);
  // a policy that cannot write as many tokens as the task's answers take would train, and never
  // be right
  // (a task of plain JavaScript may leave maxTokens out: the policy's then bounds the responses)
  if (task.maxTokens !== undefined && (!Number.isInteger(task.maxTokens) || task.maxTokens < 1))
    fail('task.maxTokens', 'an integer >= 1 (or left out)', task.maxTokens);
  if (task.maxTokens !== undefined && policy.maxTokens < task.maxTokens)
    fail(
      'policy.maxTokens',
      `at least the task's maxTokens (${task.maxTokens}), the longest response it expects`,
      policy.maxTokens,
    );
  if (o.referencePolicy !== undefined) {
    if (reference !== 'frozen')
      throw new TypeError(
        "GVPOTrainer: referencePolicy is the frozen reference: it needs reference: 'frozen' (with 'previous' pi_theta' is the policy before each step)",
      );
    hasMethods('referencePolicy', o.referencePolicy, POLICY_METHODS, 'a Policy');
    const r = o.referencePolicy;
    if (r.vocab !== policy.vocab || r.maxTokens !== policy.maxTokens)
      throw new RangeError(
        `GVPOTrainer: referencePolicy must have the policy's vocab and maxTokens (${policy.vocab}, ${policy.maxTokens}), got (${r.vocab}, ${r.maxTokens})`,
      );
    checkReferenceFits(policy, r);
    // the policy itself would move with every update: a frozen reference must be another object
    if (r === policy)
      throw new TypeError(
        'GVPOTrainer: referencePolicy is the policy being trained, so it would not stay frozen; pass policy.clone() (or leave it out: the trainer clones the policy)',
      );
  }
  if (o.optimizer !== undefined) {
    hasMethods('optimizer', o.optimizer, ['minimize'], 'a tf.Optimizer');
    if (options.learningRate !== undefined)
      throw new TypeError(
        'GVPOTrainer: learningRate and optimizer contradict each other: an optimizer carries its own rate; pass one of them',
      );
  }
  return o;
}

/** The fields a reward spec may have: anything else is a typo (`wieght`), refused. */
const REWARD_FIELDS = ['fn', 'weight', 'name'] as const;

/** The fields an external sampler's group may have: anything else is a typo (`logprobs`), refused. */
export const EXTERNAL_GROUP_KEYS = ['responses', 'tokenLogprobs'] as const;

/** Refuses a field of `o` that is not one of `known`, naming the closest known one: `what` says
 *  which object of the caller's it is (a reward spec, an external sampler's group). */
export function checkFields(what: string, o: object, known: readonly string[]): void {
  for (const key of optionKeys(o)) {
    if (!known.includes(key))
      throw new TypeError(`GVPOTrainer: ${what} has no field '${key}' (did you mean '${closest(key, known)}'?)`);
  }
}

/** The functions the trainer calls back, checked by kind; a reward spec's fields are fn, weight
 *  and a name of the caller's, and its fn and weight must be what they say. */
function checkCallbacks(o: TrainerOptions): void {
  isFunction('externalResponses', o.externalResponses);
  isFunction('onMetrics', o.onMetrics);
  if (o.rewards !== undefined) {
    if (!Array.isArray(o.rewards) || o.rewards.length === 0)
      throw new TypeError(
        `GVPOTrainer: rewards must be a non-empty array of { fn, weight? }, got ${describe(o.rewards)}`,
      );
    // each spec's fn and weight read once, and only its own (or its class's)
    o.rewards = o.rewards.map((spec: Partial<RewardSpec> | null, i) => {
      if (typeof spec !== 'object' || spec === null)
        throw new TypeError(`GVPOTrainer: rewards[${i}] must be { fn, weight? }, got ${describe(spec)}`);
      checkFields(`rewards[${i}]`, spec, REWARD_FIELDS);
      const r = readOptions(spec, REWARD_FIELDS) as Partial<RewardSpec>;
      if (typeof r.fn !== 'function')
        throw new TypeError(`GVPOTrainer: rewards[${i}].fn must be a function, got ${describe(r.fn)}`);
      if (r.weight !== undefined) inRange(`rewards[${i}].weight`, r.weight, Number.isFinite, 'a finite number');
      if (r.name !== undefined && typeof r.name !== 'string') wrongKind(`rewards[${i}].name`, 'a string', r.name);
      return { fn: r.fn, weight: r.weight, name: r.name };
    });
  }
}

// Every option name TrainerOptions has: anything else (a typo such as `bta`) is refused with the
// closest name, never silently left at its default.
const TRAINER_KEYS: readonly string[] = [
  'tf',
  'policy',
  'task',
  'algo',
  'beta',
  'groupSize',
  'promptsPerStep',
  'miniBatches',
  'epochs',
  'learningRate',
  'optimizer',
  'temperature',
  'reference',
  'referencePolicy',
  'rewards',
  'replay',
  'externalResponses',
  'externalRatio',
  'clip',
  'klCoef',
  'klIn',
  'importanceCap',
  'terms',
  'seed',
  'evalEvery',
  'evalPrompts',
  'evalSplit',
  'onMetrics',
];

// Names other trainers use for the same options (an edit distance would send 'lr' to 'tf').
const TRAINER_ALIASES: Readonly<Record<string, string>> = {
  lr: 'learningRate',
  learning_rate: 'learningRate',
  k: 'groupSize',
  group_size: 'groupSize',
  num_generations: 'groupSize',
  kl_coef: 'klCoef',
  epsilon: 'clip',
  cliprange: 'clip',
  ppo_epochs: 'epochs',
  num_mini_batches: 'miniBatches',
};

/** An option's value, or its default where it is undefined (only there: null is a value, refused). */
const or = <T>(v: T | undefined, fallback: T): unknown => (v === undefined ? fallback : v);

/** Each option checked once and given its default once. */
export function resolveTrainerOptions(given: TrainerOptions): TrainerConfig {
  checkOptions('GVPOTrainer', given, TRAINER_KEYS, TRAINER_ALIASES);
  // each option read once, and only the caller's (a name on Object.prototype is not an option)
  const o = readOptions(given, TRAINER_KEYS) as unknown as TrainerOptions;
  if (o.replay !== undefined) {
    if (typeof o.replay !== 'object' || o.replay === null) {
      throw new TypeError(`GVPOTrainer: replay must be { ratio, capacity? }, got ${describe(o.replay)}`);
    }
    checkOptions('GVPOTrainer: replay', o.replay, ['ratio', 'capacity'], { cap: 'capacity', size: 'capacity' });
    o.replay = readOptions(o.replay, ['ratio', 'capacity']) as unknown as TrainerOptions['replay'];
  }
  const d = TRAINER_DEFAULTS;
  const algo = oneOf('algo', or(o.algo, d.algo), ALGOS);
  const terms = oneOf('terms', or(o.terms, d.terms), ABLATIONS);
  const klIn = oneOf('klIn', or(o.klIn, d.klIn), ['loss', 'reward'] as const);
  const reference = oneOf('reference', or(o.reference, d.reference), ['previous', 'frozen'] as const);
  const evalSplit = oneOf('evalSplit', or(o.evalSplit, d.evalSplit), ['test', 'validation'] as const);
  checkCallbacks(o);
  // without a sampler there is nothing to take that share from: a ratio alone is a mistake
  if (o.externalRatio !== undefined && o.externalResponses === undefined)
    throw new TypeError(
      `GVPOTrainer: externalRatio is the share of fresh groups taken from externalResponses: it needs externalResponses, got externalRatio ${describe(o.externalRatio)} and no sampler`,
    );
  const L = TRAINER_LIMITS;
  const groupSize = integer('groupSize', or(o.groupSize, d.groupSize), 2, L.groupSize);
  const promptsPerStep = integer('promptsPerStep', or(o.promptsPerStep, d.promptsPerStep), 1, L.promptsPerStep);
  if (groupSize * promptsPerStep > L.sequencesPerStep)
    throw new RangeError(
      `GVPOTrainer: promptsPerStep x groupSize must be at most 2^20 = ${L.sequencesPerStep} sequences per step, got ${promptsPerStep} x ${groupSize} = ${promptsPerStep * groupSize}`,
    );
  const config: TrainerConfig = {
    algo,
    beta: inRange('beta', or(o.beta, d.beta), finitePositive, 'a finite number > 0'),
    groupSize,
    promptsPerStep,
    miniBatches: integer('miniBatches', or(o.miniBatches, d.miniBatches), 1, L.miniBatches),
    epochs: integer('epochs', or(o.epochs, d.epochs), 1, L.epochs),
    learningRate: inRange('learningRate', or(o.learningRate, d.learningRate), finitePositive, 'a finite number > 0'),
    temperature: checkTemperature('temperature', or(o.temperature, d.temperature)),
    reference,
    replayRatio: inRange(
      'replay.ratio',
      or(o.replay?.ratio, d.replayRatio),
      (x) => x >= 0 && x < 1,
      'a number in [0, 1)',
    ),
    replayCapacity: integer('replay.capacity', or(o.replay?.capacity, d.replayCapacity), 1, Number.MAX_SAFE_INTEGER),
    externalResponses: o.externalResponses,
    externalRatio: inRange(
      'externalRatio',
      or(o.externalRatio, d.externalRatio),
      (x) => x >= 0 && x <= 1,
      'a number in [0, 1]',
    ),
    clip: inRange(
      'clip',
      or(o.clip, d.clip),
      (x) => (x > 0 && x < 1) || x === Infinity,
      'a number in (0, 1), or Infinity',
    ),
    klCoef: inRange('klCoef', or(o.klCoef, d.klCoef), (x) => Number.isFinite(x) && x >= 0, 'a finite number >= 0'),
    klIn,
    importanceCap: inRange(
      'importanceCap',
      or(o.importanceCap, d.importanceCap),
      (x) => x === 0 || (Number.isFinite(x) && x >= 1),
      '0 or a finite number >= 1',
    ),
    terms,
    seed: seedOf('seed', or(o.seed, d.seed)),
    evalEvery: integer('evalEvery', or(o.evalEvery, d.evalEvery), 0),
    evalPrompts: integer('evalPrompts', or(o.evalPrompts, d.evalPrompts), 1, L.evalPrompts),
    evalSplit,
    rewards: o.rewards,
    onMetrics: o.onMetrics,
  };
  checkApplies(o, algo);
  if (config.klIn === 'reward' && config.klCoef > 0 && config.reference === 'previous')
    throw new TypeError(
      "GVPOTrainer: klIn 'reward' with reference 'previous' would do nothing: the penalty is klCoef x log(pi_old / pi_ref) at the step's start, where pi_ref is pi_old; use reference 'frozen', or klIn 'loss'",
    );
  return config;
}

/** Each option given is one the algorithm reads (its value is checked first, by the caller). */
function checkApplies(o: TrainerOptions, algo: Algo): void {
  for (const key of Object.keys(ALGO_OPTIONS) as Array<keyof typeof ALGO_OPTIONS>) {
    if (o[key] !== undefined && !ALGO_OPTIONS[key].includes(algo))
      throw new TypeError(`GVPOTrainer: ${notReadBy(key, algo)}; leave it out`);
  }
  if (o.klIn !== undefined && o.klCoef === undefined)
    throw new TypeError(
      `GVPOTrainer: klIn places the KL term whose coefficient is klCoef: it needs klCoef, got klIn ${describe(o.klIn)} and no klCoef`,
    );
  if (o.replay !== undefined && o.replay.ratio === undefined)
    throw new TypeError(
      "GVPOTrainer: replay needs its ratio (the share of each step's groups replayed); replay.capacity alone replays nothing",
    );
}
