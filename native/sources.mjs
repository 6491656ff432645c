// Prints the addon's C++ sources (native/sources.txt, both kinds) for binding.gyp's `<!@(...)`:
// node-gyp runs this from the package root.
import { readFileSync } from 'node:fs';

const lines = readFileSync(new URL('./sources.txt', import.meta.url), 'utf8').split('\n');
console.log(
  lines
    .filter((l) => /^(cpu|addon) /.test(l))
    .map((l) => l.split(' ')[1])
    .join(' '),
);
