// The `gvpo` command against hostile input, spawned from the built package: sizes that would
// exhaust memory or never end, Object.prototype's names as commands or flags, numbers in forms
// Number() takes but nobody means, files that are not files. Each is refused with one line and
// exit code 2 before TensorFlow.js loads (--tf node-gpu is not installed here: had it loaded
// first, that would be the error, with exit code 1).
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { scratchDir } from './helpers/scratch.js';

vi.setConfig({ testTimeout: 120_000 });

const CLI = join(import.meta.dirname, '..', 'dist', 'app', 'cli.js');

/** The command, stopped after 30 s: before these fixes some cases never ended or aborted. */
function gvpo(...args: string[]) {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 30_000 });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

function expectUsageError(r: ReturnType<typeof gvpo>, message: RegExp | string) {
  expect(r.code).toBe(2);
  expect(r.err).toMatch(message);
  expect(r.err.trim().split('\n')[0]).toMatch(/^gvpo: /);
  expect(r.err).not.toMatch(/\n\s+at /); // no stack trace
}

const TRAIN = ['train', '--tf', 'node-gpu', '--task', 'bandit', '--steps', '2', '--quiet'];

describe('gvpo refuses hostile input before any work', () => {
  it('sizes that would exhaust memory: group size, prompts, their product, epochs, evaluation prompts, seeds, width', () => {
    const out = ['--out', join(scratchDir('gvpo-hostile-'), 'run')];
    expectUsageError(
      gvpo(...TRAIN, ...out, '--group-size', '1e9'),
      "gvpo: --group-size must be an integer in [2, 4096], written in decimal digits, got '1e9'",
    );
    expectUsageError(
      gvpo(...TRAIN, ...out, '--group-size', '2147483648'),
      "--group-size must be an integer in [2, 4096], got '2147483648'",
    );
    expectUsageError(gvpo(...TRAIN, ...out, '--prompts', '1e9'), /--prompts must be an integer in \[1, 65536\]/);
    expectUsageError(
      gvpo(...TRAIN, ...out, '--prompts', '2147483647'),
      "--prompts must be an integer in [1, 65536], got '2147483647'",
    );
    expectUsageError(
      gvpo(...TRAIN, ...out, '--prompts', '65536', '--group-size', '4096'),
      '--prompts x --group-size must be at most 2^20 = 1048576 sequences per step, got 65536 x 4096 = 268435456',
    );
    expectUsageError(gvpo(...TRAIN, ...out, '--epochs', '1e9'), /--epochs must be an integer in \[1, 1024\]/);
    expectUsageError(
      gvpo(...TRAIN, ...out, '--mini-batches', '100000'),
      /--mini-batches must be an integer in \[1, 65536\]/,
    );
    expectUsageError(
      gvpo(...TRAIN, ...out, '--eval-prompts', '1e9'),
      /--eval-prompts must be an integer in \[1, 65536\]/,
    );
    // --steps may be large, but a count a double holds exactly
    expectUsageError(gvpo(...TRAIN, ...out, '--steps', '1e300'), /--steps must be an integer in \[1, 2\^53 - 1\]/);
    expectUsageError(
      gvpo(...TRAIN, ...out, '--steps', '99999999999999999999'),
      "--steps must be an integer in [1, 2^53 - 1], got '99999999999999999999'",
    );
    expectUsageError(
      gvpo('compare', '--tf', 'node-gpu', '--seeds', '1e9'),
      /--seeds must be an integer in \[1, 1000\]/,
    );
    expectUsageError(gvpo('experiment', 'optimum', '--seeds', '5000'), /--seeds must be an integer in \[2, 1000\]/);
    const w = join(scratchDir('gvpo-hostile-'), 'w.json');
    expectUsageError(
      gvpo('warmup', '--tf', 'node-gpu', '--out', w, '--hidden', '1e9'),
      "--hidden must be an integer in [4, 1024], written in decimal digits, got '1e9'",
    );
    expectUsageError(gvpo('warmup', '--tf', 'node-gpu', '--out', w, '--hidden', '2048'), /in \[4, 1024\], got '2048'/);
    expect(existsSync(w)).toBe(false);
  });

  it('--init that is not a regular file (a device would be read without end, a directory)', () => {
    if (existsSync('/dev/zero'))
      expectUsageError(
        gvpo('train', '--tf', 'node-gpu', '--task', 'addition', '--init', '/dev/zero'),
        "--init must be a regular file (not a directory or device), got '/dev/zero'",
      );
    const dir = scratchDir('gvpo-hostile-');
    expectUsageError(
      gvpo('train', '--tf', 'node-gpu', '--init', dir),
      `--init must be a regular file (not a directory or device), got '${dir}'`,
    );
  });

  it("Object.prototype's names are unknown commands and flags", () => {
    for (const name of ['__proto__', 'constructor', 'toString', 'valueOf', 'hasOwnProperty']) {
      expectUsageError(gvpo(name), `gvpo: unknown command '${name}'`);
      expectUsageError(gvpo('help', name), `gvpo: no help for '${name}': commands are train, compare`);
    }
    for (const [flag, value] of [
      ['__proto__', '1'],
      ['constructor', '1'],
      ['toString', 'x'],
      ['hasOwnProperty', 'x'],
    ])
      expectUsageError(gvpo(...TRAIN, `--${flag}`, value), `gvpo: unknown option --${flag} for \`gvpo train\``);
    // the closest known name is still offered where there is one
    expectUsageError(gvpo(...TRAIN, '--seeed', '1'), /unknown option --seeed for `gvpo train`; did you mean --seed\?/);
  });

  it('numbers are read strictly: decimal integers, decimal or scientific reals, nothing around them', () => {
    expectUsageError(
      gvpo(...TRAIN, '--lr', '0x10'),
      "--lr must be a number > 0, written in decimal or scientific notation (such as 0.001 or 1e-3), got '0x10'",
    );
    for (const v of ['0x2', ' 2', '2 ', '+2', '1e1', '2.0', '0b10'])
      expectUsageError(
        gvpo(...TRAIN, '--steps', v),
        `--steps must be an integer >= 1, written in decimal digits, got '${v}'`,
      );
    expectUsageError(
      gvpo(...TRAIN, '--seed', '-0'),
      "--seed must be an integer in [0, 4294967295], written in decimal digits, got '-0'",
    );
    for (const v of [' 0.1', 'Infinity', '1e', '.', '0.1.2'])
      expectUsageError(gvpo(...TRAIN, '--beta', v), `--beta must be a number > 0, written in decimal or scientific`);
    expectUsageError(gvpo(...TRAIN, '--beta', '1e999'), "--beta must be a number > 0, got '1e999'");
    // stray arguments after --version and help <command>, as after any command
    expectUsageError(gvpo('--version', 'x'), "gvpo: unexpected argument 'x' for `gvpo --version`");
    expectUsageError(gvpo('help', 'train', 'x'), "gvpo: unexpected argument 'x' for `gvpo help`");
  });

  it('well-formed numbers still run: .5e-1, 1E-1, 007, 0', () => {
    const out = join(scratchDir('gvpo-hostile-'), 'run');
    const r = gvpo(
      'train',
      '--tf',
      'cpu',
      '--task',
      'bandit',
      '--steps',
      '1',
      '--quiet',
      '--out',
      out,
      '--lr',
      '.5e-1',
      '--beta',
      '1E-1',
      '--group-size',
      '007',
      '--seed',
      '0',
      '--eval-every',
      '0',
    );
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    expect(existsSync(join(out, 'report.md'))).toBe(true);
  });
});
