// GVPOTrainer on a task and a reward function of your own: the policy learns to answer a prompt
// (one letter) with the next two letters of the alphabet, then stop. The task says what a prompt
// is and how to score a response; the trainer samples k responses per prompt, scores them, and
// trains the policy with the GVPO loss on gvpo's kernels.
//
//   npx tsx examples/custom-task.ts          (in this repository, after `npm install`)
import { CharPolicy, GVPOTrainer, loadTf, type Task } from 'gvpo/tfjs';

const LETTERS = 8; // tokens 0..7 are the letters a..h
const EOS = 8; // ends a response
const PAD = 9; // fills the policy's window before the prompt

class NextLetters implements Task {
  readonly name = 'next-letters';
  readonly vocab = 10;
  readonly maxTokens = 3;
  samplePrompts(n: number, rand: () => number): number[][] {
    return Array.from({ length: n }, () => [Math.floor(rand() * (LETTERS - 2))]);
  }
  /** 1 for the right answer; partial credit for each right letter, so that groups differ early on. */
  reward(prompt: number[], response: number[]): number {
    const want = this.answer(prompt);
    let r = 0;
    for (let i = 0; i < want.length; i++) if (response[i] === want[i]) r += 1 / want.length;
    return r;
  }
  answer(prompt: number[]): number[] {
    return [prompt[0] + 1, prompt[0] + 2, EOS];
  }
  decode(tokens: number[]): string {
    return tokens.map((t) => (t === EOS ? '.' : String.fromCharCode(97 + t))).join('');
  }
}

const { tf } = await loadTf('cpu');
const task = new NextLetters();
const policy = new CharPolicy(
  tf,
  { vocab: task.vocab, window: 4, hidden: 32, maxTokens: task.maxTokens, eos: EOS, pad: PAD },
  1,
);
const trainer = new GVPOTrainer({
  tf,
  policy,
  task,
  groupSize: 8,
  promptsPerStep: 8,
  miniBatches: 2,
  learningRate: 0.005,
  beta: 0.1,
  seed: 1,
  // reward functions of your own, weighted and summed; each may be async (a model, a test run, a
  // web call). Without `rewards`, the trainer scores with task.reward alone.
  rewards: [
    { fn: (p, r) => task.reward(p, r) },
    { fn: async (_p, r) => (r.includes(EOS) ? 0 : -0.2), weight: 0.5 }, // a response that never stops costs
  ],
});

const before = trainer.evaluate(200); // greedy exact-match accuracy on 200 prompts
const rewards: number[] = [];
for (let s = 1; s <= 60; s++) {
  const m = await trainer.step();
  rewards.push(m.rewardMean);
  if (s % 10 === 0)
    console.log(`step ${s}: mean reward ${m.rewardMean.toFixed(3)}, KL to the start ${m.klInitial.toFixed(3)}`);
}
const after = trainer.evaluate(200);
const [sample] = policy.sample([[2]], 1e-4, Math.random); // temperature 1e-4: the greedy answer
console.log(`greedy accuracy ${before.toFixed(2)} -> ${after.toFixed(2)}; 'c' -> '${task.decode(sample)}'`);

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
const [first, last] = [mean(rewards.slice(0, 10)), mean(rewards.slice(-10))];
console.log(`mean reward over the first 10 steps ${first.toFixed(3)}, over the last 10 ${last.toFixed(3)}`);
if (!(last > first + 0.2)) throw new Error('the policy did not learn the task');
