// A task: prompts to draw, a reward for a response, and (where one exists) the right answer.
export interface Task {
  readonly name: string;
  readonly vocab: number;
  readonly maxTokens: number;
  /** Training prompts. */
  samplePrompts(n: number, rand: () => number): number[][];
  /** Prompts samplePrompts never draws, for held-out evaluation (where the task has a split). */
  heldOutPrompts?(n: number, rand: () => number): number[][];
  /** Prompts neither samplePrompts nor heldOutPrompts draws: a validation split for choosing
   *  hyper-parameters apart from the held-out prompts whose figures are reported. */
  validationPrompts?(n: number, rand: () => number): number[][];
  reward(prompt: number[], response: number[]): number;
  /** The correct response, for demonstrations and exact-match accuracy. */
  answer?(prompt: number[]): number[];
  decode?(tokens: number[]): string;
}

/** mulberry32: the trainer's and tasks' seeded generator. */
export function seeded(seed: number): () => number {
  if (!Number.isInteger(seed)) throw new RangeError(`seeded: seed must be an integer, got ${String(seed)}`);
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
