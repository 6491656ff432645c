// docs/API.md, generated from the types: every export of 'gvpo' (src/index.ts) and 'gvpo/tfjs'
// (src/tfjs/index.ts), read with the TypeScript compiler API, with its declaration as written
// (signatures, interface members and their comments; function and method bodies left out) and
// its doc comment.
//   node scripts/api-docs.mjs           writes docs/API.md (npm run docs:api)
//   node scripts/api-docs.mjs --check   exits 1 when docs/API.md is not what it would write
// test/api.test.ts runs the check and fails on an export without a doc comment.
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
export const ENTRY_POINTS = [
  {
    name: 'gvpo',
    file: 'src/index.ts',
    about: 'The kernels: the GVPO loss and its gradient, fused, and their pieces. No dependency besides the addon.',
  },
  {
    name: 'gvpo/tfjs',
    file: 'src/tfjs/index.ts',
    about:
      'The ops as differentiable TensorFlow.js functions, policies, tasks and the trainer. Needs `@tensorflow/tfjs` (an optional peer).',
  },
];
const KINDS = ['function', 'class', 'constant', 'type'];
const HEADINGS = { function: 'Functions', class: 'Classes', constant: 'Constants', type: 'Types' };

function kindOf(decl) {
  if (ts.isFunctionDeclaration(decl)) return 'function';
  if (ts.isClassDeclaration(decl)) return 'class';
  if (ts.isVariableDeclaration(decl)) return 'constant';
  return 'type';
}

/** The declaration as written, without function and method bodies or property initializers. */
function declarationText(decl, checker) {
  const src = decl.getSourceFile();
  if (ts.isVariableDeclaration(decl)) {
    const type = checker.typeToString(
      checker.getTypeAtLocation(decl.name),
      decl,
      ts.TypeFormatFlags.NoTruncation | ts.TypeFormatFlags.MultilineObjectLiterals,
    );
    return `const ${decl.name.getText(src)}: ${type}`;
  }
  const cut = [];
  const hidden = (n) =>
    ts.isClassElement(n) &&
    ts.canHaveModifiers(n) &&
    (ts.getModifiers(n) ?? []).some(
      (m) => m.kind === ts.SyntaxKind.PrivateKeyword || m.kind === ts.SyntaxKind.ProtectedKeyword,
    );
  const visit = (n) => {
    if (hidden(n)) {
      // private members are not the surface: cut with their comments (the leading trivia)
      cut.push([n.getFullStart(), n.getEnd(), '']);
      return;
    }
    if (
      (ts.isFunctionDeclaration(n) ||
        ts.isMethodDeclaration(n) ||
        ts.isConstructorDeclaration(n) ||
        ts.isGetAccessor(n) ||
        ts.isSetAccessor(n)) &&
      n.body
    ) {
      cut.push([n.body.getFullStart(), n.body.getEnd(), ';']);
    } else if (ts.isPropertyDeclaration(n) && n.initializer) {
      const type = n.type ? '' : `: ${checker.typeToString(checker.getTypeAtLocation(n.name), n)}`;
      cut.push([n.name.getEnd(), n.initializer.getEnd(), type]);
    }
    ts.forEachChild(n, visit);
  };
  visit(decl);
  let text = src.text.slice(decl.getStart(src), decl.getEnd());
  const base = decl.getStart(src);
  for (const [a, b, put] of cut.sort((x, y) => y[0] - x[0]))
    text = text.slice(0, a - base) + put + text.slice(b - base);
  // private members are not the surface
  text = text
    .split('\n')
    .filter((l) => !/^\s*(private|protected)\b/.test(l))
    .join('\n');
  return text.replace(/^export (default )?/, '').replace(/^declare /, '');
}

function docOf(symbol, checker) {
  return ts.displayPartsToString(symbol.getDocumentationComment(checker)).trim();
}

/** Every export of each entry point: name, kind, declaration text, doc comment, source file. */
export function collect() {
  const config = ts.getParsedCommandLineOfConfigFile(
    join(ROOT, 'tsconfig.json'),
    {},
    { ...ts.sys, onUnRecoverableConfigFileDiagnostic: () => {} },
  );
  const program = ts.createProgram(
    ENTRY_POINTS.map((e) => join(ROOT, e.file)),
    { ...config.options, noEmit: true },
  );
  const checker = program.getTypeChecker();
  return ENTRY_POINTS.map((entry) => {
    const module = checker.getSymbolAtLocation(program.getSourceFile(join(ROOT, entry.file)));
    const items = checker.getExportsOfModule(module).map((exp) => {
      const symbol = exp.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(exp) : exp;
      const decls = symbol.getDeclarations() ?? [];
      const decl = decls.find((d) => !ts.isFunctionDeclaration(d) || !d.body) ?? decls[0];
      const kind = kindOf(decl);
      let doc = docOf(symbol, checker);
      // an ...Async twin without a comment of its own is described by its sync form's
      if (!doc && kind === 'function' && exp.name.endsWith('Async')) {
        doc = `The async twin of \`${exp.name.slice(0, -5)}\`: the same work on the libuv thread pool, a Promise of the same result; bad input rejects it, never throws.`;
      }
      const text = decls
        .filter((d) => kindOf(d) === kind)
        .map((d) => declarationText(d, checker))
        .join('\n');
      return { name: exp.name, kind, doc, text, file: relative(ROOT, decl.getSourceFile().fileName) };
    });
    return { ...entry, items };
  });
}

export function render(entries) {
  const out = [
    '# API reference',
    '',
    'Every export of `gvpo` and `gvpo/tfjs`, generated from the types by `npm run docs:api`',
    '(`scripts/api-docs.mjs`); `test/api.test.ts` fails when an export is missing from this file, has',
    'no doc comment, or this file is out of date. [README.md](../README.md) shows them at work and',
    '[DESIGN.md](DESIGN.md) has the math, the contract and the layers.',
    '',
  ];
  for (const e of entries) out.push(`- [\`${e.name}\`](#${e.name.replace(/\//g, '')}): ${e.about}`);
  for (const e of entries) {
    out.push('', `## ${e.name}`, '', e.about, '', `\`\`\`ts\nimport { ... } from '${e.name}';\n\`\`\``);
    for (const kind of KINDS) {
      const items = e.items.filter((i) => i.kind === kind);
      if (!items.length) continue;
      out.push('', `### ${HEADINGS[kind]} (${e.name})`, '');
      out.push(items.map((i) => `[\`${i.name}\`](#${anchor(e, i)})`).join(' · '));
      for (const i of items) {
        out.push('', `<a id="${anchor(e, i)}"></a>`, `#### \`${i.name}\``, '');
        if (i.doc) out.push(i.doc, '');
        out.push('```ts', i.text, '```', '', `Source: [${i.file}](../${i.file})`);
      }
    }
  }
  return `${out.join('\n')}\n`;
}

function anchor(entry, item) {
  return `${entry.name.replace(/\//g, '-')}-${item.name}`;
}

const API_MD = join(ROOT, 'docs', 'API.md');

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const md = render(collect());
  if (process.argv.includes('--check')) {
    const same = readFileSync(API_MD, 'utf8') === md;
    if (!same) console.error('docs/API.md is out of date: run `npm run docs:api`');
    process.exit(same ? 0 : 1);
  }
  writeFileSync(API_MD, md);
  console.log(`wrote ${relative(ROOT, API_MD)}`);
}
