// End-to-end checks on the built package (npm test builds dist/ first): the process exits by
// itself, `trimpi doctor` works, and the README's example runs and its loss falls.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const root = join(import.meta.dirname, '..');
const built = existsSync(join(root, 'dist/src/index.js'));

function node(args: string[], cwd = root): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, args, { cwd, encoding: 'utf8', timeout: 120_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe.skipIf(!built)('built package', () => {
  it('a script exits by itself when its GPU work is done (no destroy, no process.exit)', () => {
    const r = node(['--input-type=module', '-e',
      "import * as t from 'trimpi-webgpu'; await t.init(); const x = t.randn([100, 100]); console.log('sum', (await x.matmul(x).sum().item()) !== 0);"]);
    expect(r.stdout.trim()).toBe('sum true');
    expect(r.status).toBe(0);
  });

  it('trimpi doctor prints the adapter, backend, limits and features and passes its self-test', () => {
    const r = node(['dist/src/cli.js', 'doctor']);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^adapter: /m);
    expect(r.stdout).toMatch(/^backend: /m);
    expect(r.stdout).toMatch(/maxStorageBufferBindingSize\s+\d+/);
    expect(r.stdout).toMatch(/^features: /m);
    expect(r.stdout).toMatch(/self-test: sum\(x\*x\) for x = \[1, 2, 3, 4\] = 30 \(ok\)/);
    expect(node(['dist/src/cli.js', 'nonsense']).status).toBe(2);
  });

  it('trimpi tune sweeps a preset\'s matmul tiles, saves them under the adapter, and refuses bad flags', () => {
    expect(node(['dist/src/cli.js', 'tune', '--rounds', '0']).status).toBe(2);
    expect(node(['dist/src/cli.js', 'tune', '--preset', 'huge']).stderr).toMatch(/unknown preset 'huge'/);
    const dir = mkdtempSync(join(tmpdir(), 'trimpi-tune-'));
    try {
      const file = join(dir, 'tiles.json');
      const r = spawnSync(process.execPath, ['dist/src/cli.js', 'tune', '--preset', 'tiny', '--rounds', '1', '--save'],
        { cwd: root, encoding: 'utf8', timeout: 300_000, env: { ...process.env, TRIMPI_MATMUL_TILES: file } });
      expect(r.status, r.stderr).toBe(0);
      if (/no tunable matmul tile/.test(r.stdout)) return; // a GPU: the tiled variant has no tiles
      expect(r.stdout).toMatch(/untuned ms\s+tuned ms/);
      const saved = JSON.parse(readFileSync(file, 'utf8')) as Record<string, Record<string, { rb: number; tnc: number }>>;
      const [tiles] = Object.values(saved);
      expect(Object.keys(tiles).length).toBeGreaterThan(0);
      for (const t of Object.values(tiles)) expect([1, 2, 4]).toContain(t.rb);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 300_000);

  it("the README's API example runs and its loss falls", () => {
    const readme = readFileSync(join(root, 'README.md'), 'utf8');
    const block = readme.match(/```ts\n([\s\S]*?)```/)?.[1];
    expect(block).toBeTruthy();
    const js = ts.transpileModule(block!, { compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 } }).outputText;
    mkdirSync(join(root, '.tmp'), { recursive: true });
    const dir = mkdtempSync(join(root, '.tmp', 'readme-')); // inside the package, so 'trimpi-webgpu' resolves to itself
    try {
      writeFileSync(join(dir, 'example.mjs'), js);
      const r = node([join(dir, 'example.mjs')]);
      expect(r.status, r.stderr).toBe(0);
      const losses = r.stdout.trim().split('\n').map((l) => Number(l.split(' ')[1]));
      expect(losses.length).toBe(5);
      expect(losses.every(Number.isFinite)).toBe(true);
      expect(losses[4]).toBeLessThan(losses[0] * 0.5);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
