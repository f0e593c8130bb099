// The simd matmul's tuned tiles (rb row blocks × tnc column units) per device and shape class, and the
// small JSON file that keeps them by adapter, loaded at the device's first matmul. The sweep that finds
// them is tuneMatmulTiles (matmul.ts). A tile changes which lane computes which output, never the
// order of an output's K sum: tuned and untuned results are bitwise equal.
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import type { Device } from '../gpu/device.js';
import { TrimpiError } from '../gpu/errors.js';

/** A tuned simd tile. */
export interface MatmulTile {
  rb: number;
  tnc: number;
}

const pow2 = (x: number): number => 2 ** Math.ceil(Math.log2(Math.max(1, x)));

/**
 * The shape class a tuned tile applies to: B's layout ('n4': rows of N contiguous, 'k4': columns of K
 * contiguous, 'scalar'), A's ('vec4' or 'scalar') and M, N, K and the batch rounded up to powers of two.
 */
export function matmulShapeClass(M: number, N: number, K: number, batch: number, aMode: 'vec4' | 'scalar', bMode: 'n4' | 'k4' | 'scalar'): string {
  return `${bMode}|${aMode}|m${pow2(M)}|n${pow2(N)}|k${pow2(K)}|b${pow2(batch)}`;
}

const tuned = new WeakMap<Device, ReadonlyMap<string, MatmulTile>>();
const NO_TILES: ReadonlyMap<string, MatmulTile> = new Map();

/** Sets (or with null clears) the device's tuned tiles, by shape class (matmulShapeClass). */
export function setMatmulTiles(dev: Device, tiles: ReadonlyMap<string, MatmulTile> | null): void {
  if (tiles) tuned.set(dev, tiles);
  else tuned.delete(dev);
}

/** The device's tuned tiles (empty when none were set). */
export function matmulTiles(dev: Device): ReadonlyMap<string, MatmulTile> {
  return tuned.get(dev) ?? NO_TILES; // asked at every matmul: no allocation
}

/**
 * One shape to tune: out (batch, M, N) = A (batch, M, K) @ B with A contiguous and B either (K, N)
 * row-major ('rows': a Linear's forward, x @ W) or the transpose of a row-major (N, K) ('transposed':
 * a Linear's input gradient, dy @ Wᵀ).
 */
export interface MatmulCase {
  M: number;
  N: number;
  K: number;
  batch?: number;
  b?: 'rows' | 'transposed';
}

/** What the sweep measured for one shape class: the winning tile and its time beside the untuned tile's. */
export interface MatmulTuneResult {
  shapeClass: string;
  /** The cases of this class that were timed (their times summed). */
  cases: Required<MatmulCase>[];
  /** The winner, or null where no candidate beat the untuned tile by the sweep's minGain. */
  tile: MatmulTile | null;
  /** Median milliseconds of one pass over the cases: the tile kept (the winner, or the untuned one) and the untuned tile, in the same rounds. */
  ms: number;
  heuristicMs: number;
  candidates: number;
}

/** "M x K -> N, rows (+2 more)": a result's first case and how many others share its class (for tables). */
export function describeTuneCases(r: MatmulTuneResult): string {
  const c = r.cases[0];
  return `${c.M} x ${c.K} -> ${c.N}${c.batch > 1 ? ` (batch ${c.batch})` : ''}, ${c.b}${r.cases.length > 1 ? ` (+${r.cases.length - 1} more)` : ''}`;
}

/** "rb x tnc" of a result's tile, or "heuristic" where the untuned tile won (for tables). */
export function describeTuneTile(r: MatmulTuneResult): string {
  return r.tile ? `${r.tile.rb} x ${r.tile.tnc}` : 'heuristic';
}

/** Applies a sweep's results to the device in this process (winners set, classes the heuristic won cleared). */
export function applyMatmulTuneResults(dev: Device, results: readonly MatmulTuneResult[]): void {
  const tiles = new Map(matmulTiles(dev));
  for (const r of results) {
    if (r.tile) tiles.set(r.shapeClass, r.tile);
    else tiles.delete(r.shapeClass);
  }
  setMatmulTiles(dev, tiles.size ? tiles : null);
}

// ---- the file ----------------------------------------------------------------------------------------

/** Identifies an adapter in the tiles file (vendor, architecture, device, description, backend). */
export function adapterKey(dev: Device): string {
  const a = dev.adapter;
  return [a.vendor, a.architecture, a.device, a.description, a.backend].join('|');
}

/**
 * The tiles file: env TRIMPI_MATMUL_TILES (a path, or 'off' for none), else
 * ~/.cache/trimpi/matmul-tiles.json. One object per adapter key, each mapping shape classes to tiles.
 */
export function matmulTilesFile(): string | null {
  const env = process.env.TRIMPI_MATMUL_TILES;
  if (env === 'off') return null;
  return env || join(homedir(), '.cache', 'trimpi', 'matmul-tiles.json');
}

type TilesFile = Record<string, Record<string, MatmulTile & { ms?: number; heuristicMs?: number }>>;

function readTilesFile(file: string): TilesFile {
  if (!existsSync(file)) return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new TrimpiError('matmul tiles', `${file} is not valid JSON (${(e as Error).message}); delete it or run \`trimpi tune\` again`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new TrimpiError('matmul tiles', `${file} must hold an object of adapters`);
  return parsed as TilesFile;
}

const validTile = (t: unknown): t is MatmulTile => {
  const x = t as MatmulTile;
  return typeof t === 'object' && t !== null && [1, 2, 4].includes(x.rb) && [1, 2, 4].includes(x.tnc);
};

/**
 * Loads this adapter's tiles from `file` into the device (replacing its tiles); returns how many.
 * Entries that are not a valid tile are skipped, so a hand-edited file cannot produce a bad kernel.
 */
export function loadMatmulTiles(dev: Device, file: string | null = matmulTilesFile()): number {
  if (!file) return 0;
  const mine = readTilesFile(file)[adapterKey(dev)] ?? {};
  const tiles = new Map(Object.entries(mine).filter(([, t]) => validTile(t)).map(([k, t]) => [k, { rb: t.rb, tnc: t.tnc }]));
  setMatmulTiles(dev, tiles.size ? tiles : null);
  return tiles.size;
}

/** Writes the winners of a sweep under this adapter's key (other adapters' entries kept; a class the heuristic won is removed; atomic rename). */
export function saveMatmulTiles(dev: Device, results: readonly MatmulTuneResult[], file: string | null = matmulTilesFile()): void {
  if (!file) throw new TrimpiError('saveMatmulTiles', 'no tiles file (TRIMPI_MATMUL_TILES=off)');
  const all = readTilesFile(file);
  const mine = { ...(all[adapterKey(dev)] ?? {}) };
  for (const r of results) {
    if (r.tile) mine[r.shapeClass] = { ...r.tile, ms: r.ms, heuristicMs: r.heuristicMs };
    else delete mine[r.shapeClass]; // the heuristic won: no stale tile
  }
  all[adapterKey(dev)] = mine;
  mkdirSync(dirname(file), { recursive: true });
  const tmp = `${file}.tmp${process.pid}`;
  writeFileSync(tmp, JSON.stringify(all, null, 1) + '\n');
  renameSync(tmp, file);
}

// the launcher asks once per device, at its first matmul
const asked = new WeakSet<Device>();
/** @internal Loads the tiles file for `dev` once (runMatmul's first call on a device). */
export function ensureMatmulTilesLoaded(dev: Device): void {
  if (asked.has(dev)) return;
  asked.add(dev);
  try {
    loadMatmulTiles(dev);
  } catch {
    // an unreadable tiles file only costs the tuning, never a matmul
  }
}
