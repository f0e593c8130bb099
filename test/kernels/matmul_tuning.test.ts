// The per-adapter matmul tiles (kernels/matmul_tuning.ts, the sweep in kernels/matmul.ts): a tuned
// tile gives bitwise the untuned result (it never changes an output's summation order), the sweep
// returns one of its candidates with both timings, and the tiles file round-trips, skips bad entries
// and reports a corrupt file clearly.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as t from '../../src/index.js';
import { adapterKey, matmulShapeClass } from '../../src/kernels/matmul_tuning.js';

let dev: t.Device;
let dir: string;

beforeAll(async () => {
  dev = await t.init();
  dir = mkdtempSync(join(tmpdir(), 'trimpi-tiles-'));
});

afterAll(() => {
  t.setMatmulTiles(dev, null);
  rmSync(dir, { recursive: true, force: true });
});

const TILES: t.MatmulTile[] = [1, 2, 4].flatMap((rb) => [1, 2, 4].filter((tnc) => rb * tnc <= 8).map((tnc) => ({ rb, tnc })));

describe('matmul tiles', () => {
  it('a tuned tile gives bitwise the untuned result (rows and transposed B, odd sizes)', async () => {
    const seed = (Math.random() * 2 ** 31) >>> 0;
    // every tile is a pipeline to compile (seconds each on a cold lavapipe cache): a few per layout,
    // the largest unrolled bodies among them (the sweep's test below compiles every candidate)
    const cases: { a: number[]; b: number[]; transposed: boolean; tiles: t.MatmulTile[] }[] = [
      { a: [37, 20], b: [20, 44], transposed: false, tiles: [{ rb: 1, tnc: 1 }, { rb: 4, tnc: 2 }] },
      { a: [66, 128], b: [385, 128], transposed: true, tiles: [{ rb: 2, tnc: 2 }, { rb: 1, tnc: 4 }, { rb: 2, tnc: 4 }] },
    ];
    for (const [i, c] of cases.entries()) {
      const a = t.randn(c.a, { seed: seed + 2 * i });
      const b = t.randn(c.b, { seed: seed + 2 * i + 1 });
      try {
        const product = (): t.Tensor => (c.transposed ? a.matmul(b.T) : a.matmul(b));
        t.setMatmulTiles(dev, null);
        const untuned = await product().toArray();
        const M = c.a[c.a.length - 2];
        const K = c.a[c.a.length - 1];
        const N = c.transposed ? c.b[0] : c.b[c.b.length - 1];
        const batch = 1;
        for (const tile of c.tiles) {
          // the class the launcher computes, whatever A's and B's modes: every mode gets the tile
          const classes = (['vec4', 'scalar'] as const).flatMap((am) => (['n4', 'k4', 'scalar'] as const).map((bm) => matmulShapeClass(M, N, K, batch, am, bm)));
          t.setMatmulTiles(dev, new Map(classes.map((k) => [k, tile])));
          const tuned = await product().toArray();
          expect(tuned, `tile ${tile.rb}x${tile.tnc} on ${JSON.stringify(c)} (seed ${seed})`).toEqual(untuned);
        }
      } finally {
        t.setMatmulTiles(dev, null);
        a.dispose();
        b.dispose();
      }
    }
  });

  it('the sweep returns one of its candidates with both timings, and leaves the device untuned', async () => {
    // one layout (each candidate is a pipeline to compile): B transposed, a batch of 2; two cases of one class
    const r = await t.tuneMatmulTiles(dev, [{ M: 9, N: 12, K: 8, b: 'transposed', batch: 2 }, { M: 10, N: 11, K: 8, b: 'transposed', batch: 2 }], { rounds: 1, reps: 1 });
    const simd = dev.features.has('subgroups') && dev.adapter.subgroupMinSize === dev.adapter.subgroupMaxSize && dev.adapter.subgroupMinSize <= 16;
    if (!simd) {
      expect(r).toEqual([]);
      return;
    }
    expect(r).toHaveLength(1);
    for (const x of r) {
      if (x.tile) expect(TILES).toContainEqual(x.tile);
      else expect(x.ms).toBe(x.heuristicMs); // no candidate beat the heuristic by 3%
      expect(x.ms).toBeGreaterThan(0);
      expect(x.heuristicMs).toBeGreaterThan(0);
      expect(x.shapeClass).toMatch(/^(n4|k4|scalar)\|(vec4|scalar)\|m\d+\|n\d+\|k\d+\|b\d+$/);
    }
    expect(r[0].cases).toEqual([{ M: 9, N: 12, K: 8, b: 'transposed', batch: 2 }, { M: 10, N: 11, K: 8, b: 'transposed', batch: 2 }]);
    expect(t.matmulTiles(dev).size).toBe(0);
  });

  it('rejects a bad case naming the field', async () => {
    await expect(t.tuneMatmulTiles(dev, [{ M: 0, N: 4, K: 4 }])).rejects.toThrow(/tuneMatmulTiles.*M must be a positive integer, got 0/);
    await expect(t.tuneMatmulTiles(dev, [{ M: 4, N: 4, K: 4, b: 'cols' as 'rows' }])).rejects.toThrow(/b must be 'rows' or 'transposed'/);
  });

  it('the tiles file round-trips per adapter, keeps other adapters, skips bad entries', () => {
    const file = join(dir, 'tiles.json');
    writeFileSync(file, JSON.stringify({ 'other|adapter': { 'n4|vec4|m64|n128|k128|b1': { rb: 2, tnc: 1 } } }));
    const result: t.MatmulTuneResult = { cases: [{ M: 64, N: 128, K: 128, batch: 1, b: 'rows' }], shapeClass: 'n4|vec4|m64|n128|k128|b1', tile: { rb: 4, tnc: 2 }, ms: 1, heuristicMs: 2, candidates: 8 };
    t.saveMatmulTiles(dev, [result], file);
    const saved = JSON.parse(readFileSync(file, 'utf8')) as Record<string, Record<string, unknown>>;
    expect(Object.keys(saved).sort()).toEqual([adapterKey(dev), 'other|adapter'].sort());
    // a hand-edited bad tile is skipped, the good one loaded
    saved[adapterKey(dev)]['k4|vec4|m64|n64|k64|b1'] = { rb: 3, tnc: 1 };
    writeFileSync(file, JSON.stringify(saved));
    try {
      expect(t.loadMatmulTiles(dev, file)).toBe(1);
      expect(t.matmulTiles(dev).get('n4|vec4|m64|n128|k128|b1')).toEqual({ rb: 4, tnc: 2 });
      // a class the heuristic won loses its stale tile
      t.saveMatmulTiles(dev, [{ ...result, tile: null }], file);
      expect(t.loadMatmulTiles(dev, file)).toBe(0);
      writeFileSync(file, '{ not json');
      expect(() => t.loadMatmulTiles(dev, file)).toThrow(/tiles\.json is not valid JSON/);
    } finally {
      t.setMatmulTiles(dev, null);
    }
  });

  it('TRIMPI_MATMUL_TILES names the file or turns it off', () => {
    const before = process.env.TRIMPI_MATMUL_TILES;
    try {
      process.env.TRIMPI_MATMUL_TILES = 'off';
      expect(t.matmulTilesFile()).toBeNull();
      process.env.TRIMPI_MATMUL_TILES = join(dir, 'x.json');
      expect(t.matmulTilesFile()).toBe(join(dir, 'x.json'));
      delete process.env.TRIMPI_MATMUL_TILES;
      expect(t.matmulTilesFile()).toMatch(/\.cache\/trimpi\/matmul-tiles\.json$/);
    } finally {
      if (before === undefined) delete process.env.TRIMPI_MATMUL_TILES;
      else process.env.TRIMPI_MATMUL_TILES = before;
    }
  });
});
