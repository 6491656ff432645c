// Folders for reports and checkpoints.
import { existsSync, mkdirSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';

/** `mkdir -p dir`, one level at a time from the nearest folder that exists. Node 20's
 *  `mkdirSync(dir, { recursive: true })` never returns for a path under /proc, where mkdir answers
 *  ENOENT for a parent that exists; this throws that error instead. */
export function makeDirs(dir: string): void {
  const missing: string[] = [];
  let p = resolve(dir);
  for (; !existsSync(p); p = dirname(p)) {
    missing.push(p);
    if (dirname(p) === p) break;
  }
  if (!missing.length && !statSync(p).isDirectory()) mkdirSync(p); // EEXIST, as mkdir -p says
  for (const d of missing.reverse()) {
    try {
      mkdirSync(d);
    } catch (e) {
      // made meanwhile by another process: fine if it is a folder (the next mkdir says if not)
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
  }
}
