// The layout DESIGN.md promises: no import cycle among the sources (runtime imports; `import type`
// is erased), and the library entry point does not load the command line.
import * as fs from 'fs';
import * as path from 'path';

const SRC = path.resolve(__dirname, '..', 'src');

function sources(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? sources(p) : e.name.endsWith('.ts') ? [p] : [];
  });
}

/** The project files a source imports at run time (static and dynamic imports, re-exports; not `import type`). */
function runtimeImports(file: string): string[] {
  const text = fs.readFileSync(file, 'utf8');
  const specs = new Set<string>();
  const re = /(?:^|\n)\s*(?:import|export)\s+(?!type\b)(?:[^'";]*?\s+from\s+)?['"](\.[^'"]+)['"]|import\(\s*['"](\.[^'"]+)['"]\s*\)/g;
  for (let m = re.exec(text); m; m = re.exec(text)) specs.add(m[1] ?? m[2]);
  return Array.from(specs, (s) => {
    const base = path.resolve(path.dirname(file), s);
    for (const c of [`${base}.ts`, path.join(base, 'index.ts')]) if (fs.existsSync(c)) return c;
    return null;
  }).filter((x): x is string => x !== null);
}

function findCycle(graph: Map<string, string[]>): string[] | null {
  const state = new Map<string, 'open' | 'done'>();
  const stack: string[] = [];
  const visit = (n: string): string[] | null => {
    if (state.get(n) === 'done') return null;
    if (state.get(n) === 'open') return [...stack.slice(stack.indexOf(n)), n];
    state.set(n, 'open');
    stack.push(n);
    for (const m of graph.get(n) ?? []) {
      const c = visit(m);
      if (c) return c;
    }
    stack.pop();
    state.set(n, 'done');
    return null;
  };
  for (const n of graph.keys()) {
    const c = visit(n);
    if (c) return c;
  }
  return null;
}

const graph = new Map(sources(SRC).map((f) => [f, runtimeImports(f)]));

test('the import-cycle finder finds a planted cycle (it can fail)', () => {
  expect(findCycle(new Map([['a', ['b']], ['b', ['c']], ['c', ['a']]]))).toEqual(['a', 'b', 'c', 'a']);
  expect(findCycle(new Map([['a', ['b']], ['b', []]]))).toBeNull();
});

test('no runtime import cycle among the sources in src/', () => {
  const cycle = findCycle(graph);
  expect(cycle?.map((f) => path.relative(SRC, f)) ?? null).toBeNull();
});

test('src/index.ts does not load the command line (src/cli) or commander', () => {
  const seen = new Set<string>();
  const walk = (f: string) => {
    if (seen.has(f)) return;
    seen.add(f);
    for (const g of graph.get(f) ?? []) walk(g);
  };
  walk(path.join(SRC, 'index.ts'));
  expect(Array.from(seen, (f) => path.relative(SRC, f)).filter((f) => f.startsWith('cli'))).toEqual([]);
  for (const f of seen) expect(`${path.relative(SRC, f)}: ${/from ['"]commander['"]/.test(fs.readFileSync(f, 'utf8'))}`).toBe(`${path.relative(SRC, f)}: false`);
});
