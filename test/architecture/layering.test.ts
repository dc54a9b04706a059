/**
 * Dependencies point down only: every import of every file under src/ goes to its own layer or a lower one.
 * The order is the one ARCHITECTURE.md describes; a new folder must be given a layer here.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import test from 'node:test';
import { fileURLToPath } from 'node:url';

const SRC = fileURLToPath(new URL('../../src/', import.meta.url));

/** Lowest first. A folder (or a file at the top of src/) may import its own layer and the ones before it. */
export const LAYERS: readonly (readonly string[])[] = [
  ['runtime', 'log.ts'],
  ['protocol'],
  ['config'],
  ['metrics', 'policy', 'firewall', 'client', 'links'],
  ['cover', 'upstream', 'users'],
  ['session', 'cluster'],
  ['admin'],
  ['server'],
  ['workers'],
  ['tools', 'cli'],
];

function layerOf(relative: string): number {
  const top = relative.split('/')[0];
  return LAYERS.findIndex((names) => names.includes(top));
}

function sourceFiles(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) out.push(...sourceFiles(full));
    else if (entry.name.endsWith('.ts')) out.push(full);
  }
  return out;
}

/** Relative specifiers of every static import, `export ... from` and dynamic import() of a file. */
export function importsOf(text: string): string[] {
  const found: string[] = [];
  const code = text.replace(/\/\*[\s\S]*?\*\//g, '').replace(/\/\/.*$/gm, '');
  const pattern = /(?:\bfrom\s*|\bimport\s*\(\s*|^\s*import\s+)['"](\.{1,2}\/[^'"]+)['"]/gm;
  for (const m of code.matchAll(pattern)) found.push(m[1]);
  return found;
}

test('the import scanner sees static, re-exported, side-effect and dynamic imports', () => {
  const text = [
    "import a from './a.ts';",
    "import type { B } from '../b/b.ts';",
    "export { c } from './c.ts';",
    "import './d.ts';",
    "const e = await import('../e.ts');",
    "import x from 'node:fs';",
    "// from './not-an-import' is only text",
  ].join('\n');
  assert.deepEqual(importsOf(text), ['./a.ts', '../b/b.ts', './c.ts', './d.ts', '../e.ts']);
});

test('every src folder has a layer', () => {
  const tops = new Set(readdirSync(SRC).filter((name) => !name.endsWith('.json')));
  const missing = [...tops].filter((name) => layerOf(name) < 0);
  assert.deepEqual(missing, [], 'give these a place in LAYERS (and ARCHITECTURE.md)');
});

test('no file imports a layer above its own', () => {
  const upward: string[] = [];
  for (const file of sourceFiles(SRC)) {
    const from = path.relative(SRC, file).split(path.sep).join('/');
    const own = layerOf(from);
    for (const spec of importsOf(readFileSync(file, 'utf8'))) {
      const target = path
        .relative(SRC, path.resolve(path.dirname(file), spec))
        .split(path.sep)
        .join('/');
      if (target.startsWith('..')) continue; // package.json
      const theirs = layerOf(target);
      if (theirs > own) upward.push(`${from} -> ${target}`);
    }
  }
  assert.deepEqual(upward, [], 'move the imported code down, or the importing code up');
});

test('ARCHITECTURE.md gives this order, and it and the README layout table name every src folder', () => {
  const read = (name: string) =>
    readFileSync(fileURLToPath(new URL(`../../${name}`, import.meta.url)), 'utf8');
  const architecture = read('ARCHITECTURE.md');
  const order = /## Layer order[\s\S]*?```\n([\s\S]*?)```/.exec(architecture);
  assert.ok(order, 'ARCHITECTURE.md: no layer order block');
  const documented = order[1]
    .trim()
    .split('\n')
    .map((line) =>
      line
        .replace(/^\s*<\s*/, '')
        .split(',')
        .map((name) => name.trim())
        .sort(),
    );
  assert.deepEqual(
    documented,
    LAYERS.map((names) => [...names].sort()),
  );
  const readme = read('README.md');
  const layout = readme.slice(readme.indexOf('| Folder | Contents |'));
  const concerns = architecture.slice(architecture.indexOf('| Folder | Concern |'));
  for (const name of readdirSync(SRC).filter((n) => !n.endsWith('.json'))) {
    const cell = name.endsWith('.ts') ? `\`src/${name}\`` : `\`src/${name}/\``;
    assert.ok(layout.split('\n\n')[0].includes(cell), `README layout table: ${cell} missing`);
    assert.ok(concerns.split('\n\n')[0].includes(cell), `ARCHITECTURE.md table: ${cell} missing`);
  }
});
