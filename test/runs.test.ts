// The command's runs with external samplers (the off-policy experiment's sources): the fixed
// sampler and the demonstrations hand the trainer one log-prob per response token, and a run on
// them trains. The fixed sampler once handed maxTokens values per response, which the trainer
// refuses; no quick experiment drew from it.
import { describe, expect, it } from 'vitest';
import { resolveRunOptions } from '../src/app/runOptions.js';
import { trainRun } from '../src/app/runs.js';

const small = { task: 'addition', steps: 2, promptsPerStep: 4, groupSize: 4, miniBatches: 1, evalPrompts: 8 } as const;

describe('runs with external samplers', () => {
  it('a fixed sampler (the starting policy) gives the ratio 1 at the first update: GRPO clips no token', async () => {
    const r = await trainRun(resolveRunOptions({ ...small, algo: 'grpo', fixedSampler: 1, tf: 'cpu' }));
    expect(r.metrics).toHaveLength(2);
    // every group external: none sampled by the policy, and step 1's one update starts at the sampler
    expect(Number.isNaN(r.metrics[0].rewardPolicy)).toBe(true);
    expect(r.metrics[0].clipFraction).toBe(0);
    expect(r.metrics.every((m) => Number.isFinite(m.loss))).toBe(true);
  }, 120_000);

  it('demonstrations in every group train GVPO and REINFORCE with truncated weights', async () => {
    for (const algo of ['gvpo', 'reinforce'] as const) {
      const r = await trainRun(resolveRunOptions({ ...small, algo, demonstrations: 1, tf: 'cpu' }));
      expect(r.metrics.every((m) => Number.isFinite(m.loss))).toBe(true);
    }
  }, 120_000);
});
