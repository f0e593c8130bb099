// The source folders form one-way layers, low to high:
//
//   src/gpu → src/kernels → src/tensor → src/nn → src/trimpi (data, losses, ...) → src/*.ts (cli, index)
//
// A file may import its own folder and the folders below it, never one above; and the folders (each
// subfolder of src/trimpi counted on its own) form no cycle. This reads every .ts file under src,
// takes its static imports, `export ... from` and dynamic `import('...')` specifiers (with the
// TypeScript scanner, so comments and strings are no trouble), and lists every offending edge.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, posix } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');

/** The layers, low to high. `root` is the files directly in src (cli.ts, index.ts). */
const LAYERS = ['gpu', 'kernels', 'tensor', 'nn', 'trimpi', 'root'] as const;
type Layer = (typeof LAYERS)[number] | 'outside';

/** The layer of a path relative to the repository root (posix separators). */
function layerOf(path: string): Layer {
  const parts = path.split('/');
  if (parts[0] !== 'src') return 'outside';
  if (parts.length === 2) return 'root';
  const l = parts[1] as Layer;
  return (LAYERS as readonly string[]).includes(l) && l !== 'root' ? l : 'outside';
}

/** The folder of a path for the cycle check: the layer, or trimpi/<subfolder>. */
function folderOf(path: string): string {
  const parts = path.split('/');
  const layer = layerOf(path);
  return layer === 'trimpi' && parts.length > 3 ? `trimpi/${parts[2]}` : layer;
}

/** Relative specifiers of a file's imports and re-exports (static and dynamic). */
function specifiers(source: string): string[] {
  const info = ts.preProcessFile(source, true, true);
  return info.importedFiles.map((f) => f.fileName).filter((s) => s.startsWith('./') || s.startsWith('../'));
}

interface Edge {
  /** Importing file, relative to the repository root. */
  file: string;
  /** The specifier as written. */
  spec: string;
  /** The imported path, relative to the repository root. */
  target: string;
}

function resolveEdge(file: string, spec: string): Edge {
  return { file, spec, target: posix.normalize(posix.join(posix.dirname(file), spec)) };
}

/** Why an edge breaks the layering, or null when it is allowed. */
function violation(e: Edge): string | null {
  const from = layerOf(e.file);
  const to = layerOf(e.target);
  if (to === 'outside') return `imports ${e.target}, outside the layered folders of src`;
  if (from === 'outside') return null;
  if (LAYERS.indexOf(to) > LAYERS.indexOf(from)) return `${from} imports ${to}, a higher layer`;
  return null;
}

/** Cycles in the folder graph (one path per cycle found, as folder names). */
function folderCycles(edges: readonly Edge[]): string[][] {
  const graph = new Map<string, Set<string>>();
  for (const e of edges) {
    const a = folderOf(e.file);
    const b = folderOf(e.target);
    if (a === b || b === 'outside') continue;
    if (!graph.has(a)) graph.set(a, new Set());
    graph.get(a)!.add(b);
  }
  const cycles: string[][] = [];
  const state = new Map<string, 'open' | 'done'>();
  const stack: string[] = [];
  const visit = (n: string): void => {
    state.set(n, 'open');
    stack.push(n);
    for (const m of graph.get(n) ?? []) {
      if (state.get(m) === 'open') cycles.push([...stack.slice(stack.indexOf(m)), m]);
      else if (!state.has(m)) visit(m);
    }
    stack.pop();
    state.set(n, 'done');
  };
  for (const n of [...graph.keys()].sort()) if (!state.has(n)) visit(n);
  return cycles;
}

function sourceFiles(dir: string, out: string[] = []): string[] {
  for (const name of readdirSync(join(ROOT, dir)).sort()) {
    const p = `${dir}/${name}`;
    if (statSync(join(ROOT, p)).isDirectory()) sourceFiles(p, out);
    else if (name.endsWith('.ts')) out.push(p);
  }
  return out;
}

function projectEdges(): Edge[] {
  return sourceFiles('src').flatMap((file) =>
    specifiers(readFileSync(join(ROOT, file), 'utf8')).map((spec) => resolveEdge(file, spec)));
}

describe('layers', () => {
  it('the classifier finds upward edges and cycles, and allows downward ones', () => {
    const src = `
      import type { Device } from '../gpu/device.js';
      import { Tensor } from '../tensor/tensor.js'; // a kernel reaching up
      export { x } from './kernel.js';
      import {
        a,
        b,
      } from "../nn/module.js";
      // import { notAnImport } from '../trimpi/losses/index.js';
      const s = "import { alsoNot } from '../trimpi/data/index.js'";
      const lazy = await import('../trimpi/data/render.js');
      import 'gl-matrix';
      import { readFileSync } from 'node:fs';
    `;
    const specs = specifiers(src);
    expect(specs).toEqual(['../gpu/device.js', '../tensor/tensor.js', './kernel.js', '../nn/module.js', '../trimpi/data/render.js']);
    const edges = specs.map((s) => resolveEdge('src/kernels/fake.ts', s));
    expect(edges.map(violation)).toEqual([
      null,
      'kernels imports tensor, a higher layer',
      null,
      'kernels imports nn, a higher layer',
      'kernels imports trimpi, a higher layer',
    ]);
    // downward and sideways edges are fine; root may import anything in src; src may not leave src
    expect(violation(resolveEdge('src/tensor/ops.ts', '../kernels/matmul.js'))).toBeNull();
    expect(violation(resolveEdge('src/trimpi/data/render.ts', '../../kernels/render.js'))).toBeNull();
    expect(violation(resolveEdge('src/trimpi/pipeline/stage.ts', '../losses/index.js'))).toBeNull();
    expect(violation(resolveEdge('src/index.ts', './trimpi/data/index.js'))).toBeNull();
    expect(violation(resolveEdge('src/nn/bench.ts', '../trimpi/losses/vmcpt.js'))).toBe('nn imports trimpi, a higher layer');
    expect(violation(resolveEdge('src/gpu/device.ts', '../index.js'))).toBe('gpu imports root, a higher layer');
    expect(violation(resolveEdge('src/nn/x.ts', '../../test/helpers.js'))).toMatch(/outside the layered folders/);
    // cycles between trimpi's subfolders (the same layer) are caught too
    const cyc = folderCycles([
      resolveEdge('src/trimpi/data/a.ts', '../losses/b.js'),
      resolveEdge('src/trimpi/losses/b.ts', '../data/a.js'),
      resolveEdge('src/trimpi/losses/b.ts', '../../tensor/ops.js'),
    ]);
    expect(cyc).toEqual([['trimpi/data', 'trimpi/losses', 'trimpi/data']]);
    expect(folderCycles([resolveEdge('src/tensor/ops.ts', '../kernels/matmul.js')])).toEqual([]);
  });

  it('no file in src imports a higher layer, and the folders form no cycle', () => {
    const edges = projectEdges();
    expect(edges.length).toBeGreaterThan(100); // the scan did find the imports
    const bad = edges
      .map((e) => ({ e, why: violation(e) }))
      .filter((x) => x.why !== null)
      .map(({ e, why }) => `${e.file} → '${e.spec}': ${why}`);
    expect(bad, `imports against the layering (${LAYERS.join(' → ')}):\n${bad.join('\n')}`).toEqual([]);
    const cycles = folderCycles(edges).map((c) => c.join(' → '));
    expect(cycles, `cycles between folders:\n${cycles.join('\n')}`).toEqual([]);
  });

  it('every file under src belongs to a layer', () => {
    const stray = sourceFiles('src').filter((f) => layerOf(f) === 'outside');
    expect(stray, `files outside ${LAYERS.join(', ')}: ${stray.join(', ')}`).toEqual([]);
  });
});
