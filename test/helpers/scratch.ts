// Scratch directories for tests, removed with their contents when the test that made them ends.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { onTestFinished } from 'vitest';

/** A fresh directory under the OS temp dir; call it inside a test. */
export function scratchDir(prefix = 'gvpo-'): string {
  const dir = mkdtempSync(join(os.tmpdir(), prefix));
  onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}
