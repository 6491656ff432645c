// The runs an experiment hands to the pool (pool.ts): a bandit run or a text run, described by
// plain data so that a child process can run it and send the result back.
import type { TfChoice } from '../../tfjs/tf.js';
import type { RunOptions, RunSummary } from '../runOptions.js';
import { trainRun } from '../runs.js';
import { type BanditResult, banditRun, type BanditSpec } from './bandit.js';

export type Job = { kind: 'bandit'; spec: BanditSpec } | { kind: 'text'; spec: RunOptions };
export type JobResult = BanditResult | RunSummary;

export async function runJob(tf: TfChoice, job: Job): Promise<JobResult> {
  if (job.kind === 'bandit') return banditRun(tf, job.spec);
  return trainRun({ ...job.spec, tf, out: undefined, progress: 'none' });
}
