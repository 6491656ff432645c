// `gvpo experiment <name>`: each experiment runs, then replaces its own section of EXPERIMENTS.md
// (between its begin/end markers, nothing else) and writes its SVG charts to experiments/<name>/.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { makeDirs } from '../dirs.js';
import type { TfChoice } from '../../tfjs/tf.js';
import type { Experiment, ExperimentContext } from './common.js';
import { optimum } from './optimum.js';
import { robustnessExperiment, termsExperiment } from './robustness.js';
import { offPolicyExperiment, text } from './text.js';
import { Pool } from './pool.js';

export type { ExperimentContext };

export const EXPERIMENTS: Record<string, Experiment> = {
  optimum,
  text,
  'off-policy': offPolicyExperiment,
  robustness: robustnessExperiment,
  terms: termsExperiment,
};

/** What the command passes: the context without its pool (runExperiment makes one per experiment). */
export type ExperimentOptions = Omit<ExperimentContext, 'pool'> & { tf: TfChoice; processes?: number };

const HEADER = `# Experiments

When is GVPO worth choosing? Each section below is written by \`gvpo experiment <name>\` (the
command is printed in it; in the gvpo repository, \`npm run experiment -- <name>\` writes into
this file) and holds the settings, seeds, tables with means and 95% intervals
(t-distribution) over seeds, charts, and the wall time under which it ran. The text between a
section's markers is replaced when the experiment runs again; the conclusions after the markers
are written by hand from the committed run.
`;

export function sectionMarkers(name: string): [string, string] {
  return [`<!-- begin experiment ${name} -->`, `<!-- end experiment ${name} -->`];
}

/** Replaces the section of `name` in `doc` (appending it, with a title, when absent). */
export function replaceSection(doc: string, name: string, title: string, body: string): string {
  const [begin, end] = sectionMarkers(name);
  const block = `${begin}\n${body.trim()}\n${end}`;
  const i = doc.indexOf(begin);
  const j = doc.indexOf(end);
  if (i >= 0 && j > i) return doc.slice(0, i) + block + doc.slice(j + end.length);
  return `${doc.trimEnd()}\n\n## ${title}\n\n${block}\n`;
}

export async function runExperiment(name: string, o: ExperimentOptions): Promise<void> {
  const e = EXPERIMENTS[name];
  const pool = new Pool(o.tf, o.processes);
  const ctx: ExperimentContext = { ...o, pool };
  const log = (line: string) => {
    if (ctx.progress !== 'none') process.stderr.write(`[${name}] ${line}\n`);
  };
  const t0 = performance.now();
  log(`${ctx.quick ? 'quick size' : 'full size'}, started ${new Date().toISOString()}`);
  const r = await e.run(ctx, log).finally(() => pool.close());
  const seconds = (performance.now() - t0) / 1000;
  const dir = join(ctx.out, 'experiments', name);
  makeDirs(dir);
  for (const [file, svg] of Object.entries(r.charts)) writeFileSync(join(dir, file), svg);
  const path = join(ctx.out, 'EXPERIMENTS.md');
  const doc = existsSync(path) ? readFileSync(path, 'utf8') : HEADER;
  const stamp = `Wall time: ${(seconds / 60).toFixed(1)} min (${seconds.toFixed(0)} s)${ctx.quick ? ', **quick size: a smoke test, the numbers mean nothing**' : ''}; finished ${new Date().toISOString().slice(0, 16)} UTC.`;
  writeFileSync(path, replaceSection(doc, name, e.title, `${r.markdown.trim()}\n\n${stamp}`));
  log(`wrote ${path} and ${Object.keys(r.charts).length} chart(s) in ${dir} (${seconds.toFixed(0)} s)`);
}
