// A child process of the experiment pool (pool.ts): loads TensorFlow.js once, then runs the jobs
// it is sent, one at a time, and sends back each result or error.
import type { TfChoice } from '../../tfjs/tf.js';
import { quietTf } from '../runs.js';
import { type Job, runJob } from './jobs.js';

const tf = process.argv[2] as TfChoice;
await quietTf(tf);
process.on('message', (m: { id: number; job: Job }) => {
  runJob(tf, m.job).then(
    (result) => process.send!({ id: m.id, result }),
    (e: Error) => process.send!({ id: m.id, error: e.stack ?? String(e) }),
  );
});
