// Runs an experiment's independent training runs on every core: a pool of child processes (one
// per core, each with its own TensorFlow.js), each run seeded, so the results do not depend on
// which process ran what or in which order. The policies here are small and TensorFlow.js runs
// a process's work on one thread, so one process per core is what uses the machine.
import { type ChildProcess, fork } from 'node:child_process';
import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import type { TfChoice } from '../../tfjs/tf.js';
import { type Job, runJob } from './jobs.js';

interface Pending {
  resolve: (r: unknown) => void;
  reject: (e: Error) => void;
}

export class Pool {
  private readonly children: ChildProcess[] = [];
  private readonly idle: ChildProcess[] = [];
  private readonly queue: Array<{ job: Job; done: Pending }> = [];
  private readonly pending = new Map<number, Pending>();
  private nextId = 0;
  private busy = false;

  /** `size` processes (default: one per core); 1, or no compiled worker (tests from src/), runs in this process. */
  constructor(
    private readonly tf: TfChoice,
    size = availableParallelism(),
  ) {
    const worker = fileURLToPath(new URL('./worker.js', import.meta.url));
    if (size <= 1 || !existsSync(worker)) return;
    for (let i = 0; i < size; i++) {
      // one thread each: the runs' kernels are small, and the processes already fill the cores
      const child = fork(worker, [tf], {
        serialization: 'advanced',
        env: { ...process.env, GVPO_NUM_THREADS: '1' },
        stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
      });
      child.on('message', (m: { id: number; result?: unknown; error?: string }) => {
        const p = this.pending.get(m.id)!;
        this.pending.delete(m.id);
        if (m.error !== undefined) p.reject(new Error(m.error));
        else p.resolve(m.result);
        this.idle.push(child);
        this.drain();
      });
      child.on('exit', (code) => {
        if (code !== 0 && this.pending.size)
          for (const p of this.pending.values()) p.reject(new Error(`an experiment worker exited with code ${code}`));
      });
      this.children.push(child);
      this.idle.push(child);
    }
  }

  /** The results of `jobs`, in their order. */
  run<R>(jobs: Job[]): Promise<R[]> {
    return Promise.all(
      jobs.map(
        (job) =>
          new Promise<R>((resolve, reject) => {
            this.queue.push({ job, done: { resolve: resolve as (r: unknown) => void, reject } });
            this.drain();
          }),
      ),
    );
  }

  private drain(): void {
    if (!this.children.length) {
      // in-process: one job at a time, in order
      if (this.busy) return;
      const next = this.queue.shift();
      if (!next) return;
      this.busy = true;
      void runJob(this.tf, next.job)
        .then(next.done.resolve, next.done.reject)
        .finally(() => {
          this.busy = false;
          this.drain();
        });
      return;
    }
    while (this.idle.length && this.queue.length) {
      const child = this.idle.shift()!;
      const { job, done } = this.queue.shift()!;
      const id = this.nextId++;
      this.pending.set(id, done);
      child.send({ id, job });
    }
  }

  close(): void {
    for (const c of this.children) c.kill();
  }
}
