// Every public export of src/index.ts has a doc comment: the top-level exports and the members of
// the namespaces it re-exports (nn, data, losses, stages, evaluation, pipeline), walked with the
// TypeScript compiler API (aliases resolved to their declarations). `npm run docs` builds the API
// reference from these comments with TypeDoc.
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const INDEX = join(ROOT, 'src', 'index.ts');
const NAMESPACES = ['nn', 'data', 'losses', 'stages', 'evaluation', 'pipeline'];

/**
 * Exports still without a doc comment, all declared in files that were under concurrent edit when
 * this test was written (src/trimpi/** and src/nn/generate.ts). Document them and delete their names
 * here: the test fails on any other undocumented export, and on a name here that is now documented
 * or gone (so the list only shrinks).
 */
const PENDING = new Set<string>([]);

interface Entry {
  /** The public name: `add`, `nn.Linear`. */
  name: string;
  /** Where it is declared, relative to the repository root. */
  file: string;
  documented: boolean;
}

/** A symbol's doc comment text (or a doc comment on the export statement that re-exports it). */
function hasDoc(sym: ts.Symbol, checker: ts.TypeChecker): boolean {
  if (sym.getDocumentationComment(checker).some((p) => p.text.trim().length > 0)) return true;
  // `export const f = ...`: the comment sits on the variable statement; `export * as ns`: on the export
  for (const d of sym.declarations ?? []) {
    const host = ts.isVariableDeclaration(d) ? d.parent.parent : d;
    const docs = ts.getJSDocCommentsAndTags(host).filter(ts.isJSDoc);
    if (docs.some((j) => (typeof j.comment === 'string' ? j.comment : ts.getTextOfJSDocComment(j.comment) ?? '').trim().length > 0)) return true;
    // a leading /** */ block of a namespace export declaration is not attached as JSDoc by the parser
    if (ts.isNamespaceExport(d) || ts.isExportDeclaration(d)) {
      const stmt = ts.isNamespaceExport(d) ? d.parent : d;
      const text = stmt.getSourceFile().getFullText();
      const ranges = ts.getLeadingCommentRanges(text, stmt.getFullStart()) ?? [];
      if (ranges.some((r) => text.slice(r.pos, r.end).startsWith('/**'))) return true;
    }
  }
  return false;
}

function collect(): Entry[] {
  const program = ts.createProgram([INDEX], { target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.NodeNext, moduleResolution: ts.ModuleResolutionKind.NodeNext, strict: true, skipLibCheck: true, noEmit: true });
  const checker = program.getTypeChecker();
  const moduleSym = checker.getSymbolAtLocation(program.getSourceFile(INDEX)!)!;
  const entries: Entry[] = [];
  const rel = (s: ts.Symbol): string => {
    const f = s.declarations?.[0]?.getSourceFile().fileName ?? '';
    return f.startsWith(ROOT) ? f.slice(ROOT.length + 1) : f;
  };
  const walk = (exports: ts.Symbol[], prefix: string): void => {
    for (const sym of exports) {
      const name = prefix + sym.getName();
      const target = sym.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(sym) : sym;
      const isNamespace = prefix === '' && NAMESPACES.includes(sym.getName());
      if (isNamespace) {
        // the namespace itself (its export line) and each member
        entries.push({ name, file: 'src/index.ts', documented: hasDoc(sym, checker) });
        walk(checker.getExportsOfModule(target), `${name}.`);
        continue;
      }
      entries.push({ name, file: rel(target), documented: hasDoc(target, checker) || hasDoc(sym, checker) });
    }
  };
  walk(checker.getExportsOfModule(moduleSym), '');
  return entries;
}

describe('API documentation', () => {
  const entries = collect();

  it('walks the exports and the namespaces', () => {
    expect(entries.length).toBeGreaterThan(100);
    for (const ns of NAMESPACES) expect(entries.some((e) => e.name.startsWith(`${ns}.`)), ns).toBe(true);
    for (const name of ['Tensor', 'add', 'crossEntropy', 'nn.Linear', 'nn.AdamW']) expect(entries.some((e) => e.name === name), name).toBe(true);
  });

  it('every public export has a doc comment', () => {
    const missing = entries.filter((e) => !e.documented && !PENDING.has(e.name)).map((e) => `${e.name} (${e.file})`);
    expect(missing, `exports without a doc comment:\n  ${missing.join('\n  ')}`).toEqual([]);
  });

  it('the pending list holds only exports that still lack a doc comment', () => {
    const undocumented = new Set(entries.filter((e) => !e.documented).map((e) => e.name));
    const stale = [...PENDING].filter((n) => !undocumented.has(n));
    expect(stale, `documented or no longer exported: delete from PENDING in test/docs_coverage.test.ts:\n  ${stale.join('\n  ')}`).toEqual([]);
  });
});
