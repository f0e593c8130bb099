// Launcher for matmul.wgsl: batched, strided, broadcast-batch matrix product with a fused
// bias + GELU epilogue, in three variants chosen per adapter and shape (see the .wgsl header).
import type { Device } from '../gpu/device.js';
import { TrimpiError } from '../gpu/errors.js';
import { Params, View, bindingDecls, fill, fixedSubgroupSize, paramsDecl, wgslSource } from './kernel.js';
import { runReduce } from './reduce.js';
import { runMap } from './elementwise.js';
import { runRandom, seededKey } from './random.js';
import { MatmulCase, MatmulTile, MatmulTuneResult, ensureMatmulTilesLoaded, matmulShapeClass, matmulTiles, setMatmulTiles } from './matmul_tuning.js';

/** The matmul kernel variants: 'simd' (CPU-SIMD adapters), 'tiled' (shared memory, GPUs), 'gemv' (M <= 4). */
export type MatmulVariant = 'simd' | 'tiled' | 'gemv';

export interface MatmulEpilogue {
  /** Added to every row: a (N,) view. */
  bias?: View | null;
  activation?: 'none' | 'gelu';
}

/** A full choice of kernel; unspecified fields come from the heuristics in chooseConfig(). */
export interface MatmulConfig {
  variant: MatmulVariant;
  /** simd: row blocks of SG rows per workgroup. */
  rb: number;
  /** simd: column units per lane (a unit is 4 columns when B is contiguous along N, else 1). */
  tnc: number;
  /** K slices summed by a deterministic reduction (1 = none). */
  splits: number;
}

let forced: Partial<MatmulConfig> | null = null;
/** Forces (parts of) the kernel choice, e.g. for tests and benchmarks; null restores the heuristics. */
export function setMatmulConfig(cfg: Partial<MatmulConfig> | null): void {
  forced = cfg;
}

/** The subgroup size if the adapter runs one fixed, narrow subgroup per SIMD unit (CPU-like), else 0. */
function simdWidth(dev: Device): number {
  const sg = fixedSubgroupSize(dev);
  return sg <= 16 ? sg : 0;
}

type AMode = 'vec4' | 'scalar';
type BMode = 'n4' | 'k4' | 'scalar';

const aligned = (...xs: number[]): boolean => xs.every((x) => x % 4 === 0);

function modes(a: View, b: View, N: number): { aMode: AMode; bMode: BMode } {
  const r = a.shape.length;
  const rb = r - 2;
  const aB = a.strides.slice(0, rb);
  const bB = b.strides.slice(0, rb);
  const aMode: AMode = a.strides[r - 1] === 1 && aligned(a.offset, a.strides[r - 2], ...aB) ? 'vec4' : 'scalar';
  let bMode: BMode = 'scalar';
  if (b.strides[r - 1] === 1 && aligned(N, b.offset, b.strides[r - 2], ...bB)) bMode = 'n4';
  else if (b.strides[r - 2] === 1 && aligned(b.offset, b.strides[r - 1], ...bB)) bMode = 'k4';
  return { aMode, bMode };
}

function chooseConfig(dev: Device, M: number, N: number, K: number, batch: number, aMode: AMode, bMode: BMode): MatmulConfig {
  const sg = simdWidth(dev);
  const natural: MatmulVariant = sg ? 'simd' : M <= 4 ? 'gemv' : 'tiled';
  // a forced gemv only applies where it can (M <= 4)
  const variant: MatmulVariant = forced?.variant === 'gemv' && M > 4 ? natural : forced?.variant ?? natural;
  // a tuned tile (matmul_tuning.ts) where the sweep measured one for this shape class; `splits` stays
  // with the heuristics below (it changes the summation order, a tile does not)
  const tiles = matmulTiles(dev);
  const tile = variant === 'simd' && tiles.size ? tiles.get(matmulShapeClass(M, N, K, batch, aMode, bMode)) : undefined;
  // unrolled code size (and lavapipe's compile time) grows with rb * tnc: keep it bounded
  const rb = forced?.rb ?? (bMode === 'n4' ? (M * batch >= 256 ? 4 : M * batch > 8 ? 2 : 1) : (M * batch > 8 ? 2 : 1));
  const tnc = forced?.tnc ?? (bMode === 'n4' ? 1 : 2);
  // split K when the output is too small to keep the device busy (from the untuned tile, so that a
  // tuned one never changes the summation order)
  let workgroups: number;
  if (variant === 'simd') workgroups = Math.ceil(M / ((sg || 8) * rb)) * Math.ceil(N / ((sg || 8) * tnc * (bMode === 'n4' ? 4 : 1))) * batch;
  else if (variant === 'tiled') workgroups = Math.ceil(M / 64) * Math.ceil(N / 64) * batch;
  else workgroups = Math.ceil(N / 64) * batch;
  const splits = forced?.splits ?? (workgroups < 8 && K >= 1024 ? Math.min(8, Math.floor(K / 256)) : 1);
  const useTile = tile && forced?.rb === undefined && forced?.tnc === undefined;
  return { variant, rb: useTile ? tile.rb : rb, tnc: useTile ? tile.tnc : tnc, splits };
}

// ---- code generation ------------------------------------------------------------------------------

function accessors(aMode: AMode, bMode: BMode): string {
  return [
    aMode === 'vec4' ? 'fn a_at(i: u32) -> f32 { return A4[i >> 2u][i & 3u]; }' : 'fn a_at(i: u32) -> f32 { return A[i]; }',
    bMode === 'scalar' ? 'fn b_at(i: u32) -> f32 { return B[i]; }' : 'fn b_at(i: u32) -> f32 { return B4[i >> 2u][i & 3u]; }',
  ].join('\n');
}

function simdBody(SG: number, RB: number, TNC: number, aMode: AMode, bMode: BMode): string {
  const rows = SG * RB;
  const n4 = bMode === 'n4';
  const acc = n4 ? 'vec4<f32>' : 'f32';
  const L: string[] = [];
  const ln = (s: string): number => L.push('  ' + s);
  ln('let M = word(0u); let N = word(1u);');
  ln('let bo = batch_offsets(wid.z); let aoff = bo.x; let boff = bo.y;');
  ln('let ars = word(5u); let aks = word(6u); let bks = word(8u); let bcs = word(9u);');
  ln(`let r0 = wid.x * ${rows}u;`);
  ln(`let c0 = wid.y * ${SG * TNC}u + lane;`);
  for (let b = 0; b < RB; b++) ln(`let ra${b} = aoff + min(r0 + ${b * SG}u + lane, M - 1u) * ars;`);
  for (let j = 0; j < TNC; j++) ln(n4 ? `let nu${j} = min(c0 + ${j * SG}u, N / 4u - 1u);` : `let nc${j} = min(c0 + ${j * SG}u, N - 1u);`);
  for (let i = 0; i < rows; i++) for (let j = 0; j < TNC; j++) ln(`var c${i}_${j} = ${acc}(0.0);`);
  ln('let kb = word(11u); let ke = word(12u);');
  ln('let k4e = ke / 4u;');
  ln('for (var k4 = kb / 4u; k4 < k4e; k4++) {');
  ln('  let k = k4 * 4u;');
  for (let b = 0; b < RB; b++) {
    ln(aMode === 'vec4' ? `  let x${b} = A4[(ra${b} >> 2u) + k4];`
      : `  let x${b} = vec4<f32>(a_at(ra${b} + k * aks), a_at(ra${b} + (k + 1u) * aks), a_at(ra${b} + (k + 2u) * aks), a_at(ra${b} + (k + 3u) * aks));`);
  }
  for (let j = 0; j < TNC; j++) {
    if (n4) for (let u = 0; u < 4; u++) ln(`  let y${u}_${j} = B4[((boff + (k + ${u}u) * bks) >> 2u) + nu${j}];`);
    else if (bMode === 'k4') ln(`  let z${j} = B4[((boff + nc${j} * bcs) >> 2u) + k4];`);
    else ln(`  let z${j} = vec4<f32>(b_at(boff + k * bks + nc${j} * bcs), b_at(boff + (k + 1u) * bks + nc${j} * bcs), b_at(boff + (k + 2u) * bks + nc${j} * bcs), b_at(boff + (k + 3u) * bks + nc${j} * bcs));`);
  }
  for (let u = 0; u < 4; u++) {
    for (let b = 0; b < RB; b++) {
      for (let i = 0; i < SG; i++) {
        const row = b * SG + i;
        const terms = Array.from({ length: TNC }, (_, j) =>
          n4 ? `c${row}_${j} = fma(vec4<f32>(s), y${u}_${j}, c${row}_${j});` : `c${row}_${j} = fma(s, z${j}[${u}], c${row}_${j});`);
        ln(`  { let s = subgroupBroadcast(x${b}[${u}], ${i}u); ${terms.join(' ')} }`);
      }
    }
  }
  ln('}');
  // K tail (K % 4 != 0, or a split boundary): scalar steps
  ln('for (var k = max(k4e * 4u, kb); k < ke; k++) {');
  for (let b = 0; b < RB; b++) ln(`  let x${b} = a_at(ra${b} + k * aks);`);
  for (let j = 0; j < TNC; j++) {
    ln(n4 ? `  let y${j} = B4[((boff + k * bks) >> 2u) + nu${j}];` : `  let z${j} = b_at(boff + k * bks + nc${j} * bcs);`);
  }
  for (let b = 0; b < RB; b++) {
    for (let i = 0; i < SG; i++) {
      const row = b * SG + i;
      const terms = Array.from({ length: TNC }, (_, j) =>
        n4 ? `c${row}_${j} = fma(vec4<f32>(s), y${j}, c${row}_${j});` : `c${row}_${j} = fma(s, z${j}, c${row}_${j});`);
      ln(`  { let s = subgroupBroadcast(x${b}, ${i}u); ${terms.join(' ')} }`);
    }
  }
  ln('}');
  ln('let obase = word(13u) + wid.z * M * N;');
  for (let i = 0; i < rows; i++) {
    ln(`if (r0 + ${i}u < M) {`);
    ln(`  let o = obase + (r0 + ${i}u) * N;`);
    for (let j = 0; j < TNC; j++) {
      if (n4) {
        ln(`  if (c0 + ${j * SG}u < N / 4u) { let n = 4u * (c0 + ${j * SG}u); let v = c${i}_${j};`);
        ln('    out[o + n] = epilogue(v.x, n); out[o + n + 1u] = epilogue(v.y, n + 1u); out[o + n + 2u] = epilogue(v.z, n + 2u); out[o + n + 3u] = epilogue(v.w, n + 3u); }');
      } else {
        ln(`  if (c0 + ${j * SG}u < N) { let n = c0 + ${j * SG}u; out[o + n] = epilogue(c${i}_${j}, n); }`);
      }
    }
    ln('}');
  }
  return `@compute @workgroup_size(${SG})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(subgroup_invocation_id) lane: u32) {
${L.join('\n')}
}`;
}

const TILED = `
var<workgroup> As: array<array<f32, 64>, 16>;
var<workgroup> Bs: array<array<f32, 64>, 16>;

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let M = word(0u); let N = word(1u);
  let bo = batch_offsets(wid.z); let aoff = bo.x; let boff = bo.y;
  let ars = word(5u); let aks = word(6u); let bks = word(8u); let bcs = word(9u);
  let kb = word(11u); let ke = word(12u);
  let m0 = wid.y * 64u; let n0 = wid.x * 64u;
  let tid = lid.y * 16u + lid.x;
  var acc: array<array<f32, 4>, 4>;
  for (var kt = kb; kt < ke; kt += 16u) {
    for (var q = 0u; q < 4u; q++) {
      let e = tid + q * 256u;
      let mm = e / 16u; let kk = e % 16u;
      let gm = m0 + mm; let gk = kt + kk;
      As[kk][mm] = select(0.0, a_at(aoff + min(gm, M - 1u) * ars + min(gk, ke - 1u) * aks), gm < M && gk < ke);
      let kk2 = e / 64u; let nn = e % 64u;
      let gk2 = kt + kk2; let gn = n0 + nn;
      Bs[kk2][nn] = select(0.0, b_at(boff + min(gk2, ke - 1u) * bks + min(gn, N - 1u) * bcs), gk2 < ke && gn < N);
    }
    workgroupBarrier();
    for (var kk = 0u; kk < 16u; kk++) {
      var av: array<f32, 4>;
      var bv: array<f32, 4>;
      for (var i = 0u; i < 4u; i++) { av[i] = As[kk][lid.y * 4u + i]; bv[i] = Bs[kk][lid.x * 4u + i]; }
      for (var i = 0u; i < 4u; i++) { for (var j = 0u; j < 4u; j++) { acc[i][j] = fma(av[i], bv[j], acc[i][j]); } }
    }
    workgroupBarrier();
  }
  let obase = word(13u) + wid.z * M * N;
  for (var i = 0u; i < 4u; i++) {
    let r = m0 + lid.y * 4u + i;
    for (var j = 0u; j < 4u; j++) {
      let n = n0 + lid.x * 4u + j;
      if (r < M && n < N) { out[obase + r * N + n] = epilogue(acc[i][j], n); }
    }
  }
}`;

const gemvBody = (MR: number): string => `
@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let M = word(0u); let N = word(1u);
  let bo = batch_offsets(wid.z); let aoff = bo.x; let boff = bo.y;
  let ars = word(5u); let aks = word(6u); let bks = word(8u); let bcs = word(9u);
  let n = wid.x * 64u + lid.x;
  let nc = min(n, N - 1u);
  var acc: array<f32, ${MR}>;
  for (var k = word(11u); k < word(12u); k++) {
    let bv = b_at(boff + k * bks + nc * bcs);
    for (var r = 0u; r < ${MR}u; r++) { acc[r] = fma(a_at(aoff + min(r, M - 1u) * ars + k * aks), bv, acc[r]); }
  }
  if (n < N) {
    for (var r = 0u; r < min(M, ${MR}u); r++) { out[word(13u) + (wid.z * M + r) * N + n] = epilogue(acc[r], n); }
  }
}`;

// ---- launch -----------------------------------------------------------------------------------------

/**
 * out (contiguous [...batch, M, N], offset 0) = epilogue(a @ b); a is [...batch, M, K] and b is
 * [...batch, K, N], both strided views already broadcast to the batch shape.
 */
export function runMatmul(dev: Device, op: string, out: View, a: View, b: View, epi: MatmulEpilogue = {}): void {
  const r = a.shape.length;
  const [M, K] = a.shape.slice(-2);
  const N = b.shape[r - 1];
  const batchShape = a.shape.slice(0, -2);
  const batch = batchShape.reduce((x, y) => x * y, 1);
  if (M * N * batch === 0) return;
  if (K === 0) throw new TrimpiError(op, 'inner dimension K = 0 (empty product) is not supported');
  const maxWg = dev.limits.maxComputeWorkgroupsPerDimension;
  if (batch > maxWg) throw new TrimpiError(op, `batch of ${batch} matrices exceeds the dispatch limit ${maxWg}; reshape into fewer, larger matrices`);
  const { aMode, bMode } = modes(a, b, N);
  ensureMatmulTilesLoaded(dev);
  const cfg = chooseConfig(dev, M, N, K, batch, aMode, bMode);
  const sg = simdWidth(dev) || 8;
  const variant = cfg.variant === 'simd' && !dev.features.has('subgroups') ? 'tiled' : cfg.variant;
  const gemvRows = Math.min(M, 4);
  if (variant === 'gemv' && M > 4) throw new TrimpiError(op, `the gemv variant handles M <= 4, got M = ${M}`);
  const rb = batchShape.length;
  const splits = Math.max(1, Math.min(cfg.splits, Math.floor(K / 4)));
  const epilogueCode = [epi.bias ? '  v = v + bias[word(10u) + n];' : '', epi.activation === 'gelu' ? '  v = gelu_erf(v);' : '']
    .filter(Boolean).join('\n');
  // with split-K the epilogue runs after the reduction
  const kernelEpi = splits > 1 ? '' : epilogueCode;
  const bindings = [
    { name: 'out', type: 'f32', write: true },
    aMode === 'vec4' && variant === 'simd' ? { name: 'A4', type: 'vec4<f32>' } : { name: 'A', type: 'f32' },
    bMode !== 'scalar' && variant === 'simd' ? { name: 'B4', type: 'vec4<f32>' } : { name: 'B', type: 'f32' },
    ...(kernelEpi.includes('bias') ? [{ name: 'bias', type: 'f32' }] : []),
  ];
  const am: AMode = variant === 'simd' ? aMode : 'scalar';
  const bm: BMode = variant === 'simd' ? bMode : 'scalar';
  const scratch = splits > 1 ? dev.alloc(splits * batch * M * N * 4, `${op} split-K`) : null;
  const key = `matmul|${variant}|${variant === 'simd' ? `${sg}x${cfg.rb}x${cfg.tnc}|${am}|${bm}` : variant === 'gemv' ? gemvRows : ''}|rb${rb}|${kernelEpi}`;
  const pipe = dev.pipeline(key, op, () =>
    fill(wgslSource('matmul'), {
      ENABLE: variant === 'simd' ? 'enable subgroups;' : '',
      PARAMS: paramsDecl(Math.ceil((16 + 3 * rb) / 4)),
      BINDINGS: bindingDecls(bindings) + '\n' + accessors(am, bm),
      MATH: wgslSource('math'),
      EPILOGUE: kernelEpi,
      // generated on a cache miss only (the simd body is a few hundred unrolled lines)
      BODY: variant === 'simd' ? simdBody(sg, cfg.rb, cfg.tnc, aMode, bMode) : variant === 'tiled' ? TILED : gemvBody(gemvRows),
    }),
  );
  const grid: [number, number, number] =
    variant === 'simd' ? [Math.ceil(M / (sg * cfg.rb)), Math.ceil((bMode === 'n4' ? N / 4 : N) / (sg * cfg.tnc)), batch]
      : variant === 'tiled' ? [Math.ceil(N / 64), Math.ceil(M / 64), batch]
        : [Math.ceil(N / 64), 1, batch];
  const slice = Math.ceil(K / splits / 4) * 4;
  for (let s = 0; s < splits; s++) {
    const kb = s * slice;
    const ke = Math.min(K, kb + slice);
    if (kb >= ke) continue;
    const prm = new Params()
      .u(M, N, K, rb, a.offset, a.strides[r - 2], a.strides[r - 1], b.offset, b.strides[r - 2], b.strides[r - 1])
      .u(epi.bias?.offset ?? 0, kb, ke, scratch ? s * batch * M * N : out.offset, 0, 0)
      .u(...batchShape, ...a.strides.slice(0, rb), ...b.strides.slice(0, rb));
    const buffers = [scratch ?? out.buffer, a.buffer, b.buffer];
    if (kernelEpi.includes('bias') && epi.bias) buffers.push(epi.bias.buffer);
    dev.dispatch(op, pipe, prm.u32s, buffers, grid);
  }
  if (scratch) {
    // sum the K slices in a fixed order, then the epilogue
    const total = batch * M * N;
    const partial: View = { buffer: scratch, dtype: 'f32', shape: [total, splits], strides: [1, total], offset: 0 };
    const sumView: View = { buffer: out.buffer, dtype: 'f32', shape: [total], strides: [1], offset: out.offset };
    runReduce(dev, op, 'sum', sumView, partial, 1);
    if (epilogueCode) applyEpilogue(dev, op, out, M, N, batch, epi);
    dev.pool.release(scratch);
  }
}

/** bias + activation in place over the contiguous [batch*M, N] result (after split-K). */
function applyEpilogue(dev: Device, op: string, out: View, M: number, N: number, batch: number, epi: MatmulEpilogue): void {
  const shape = [batch * M, N];
  const o: View = { buffer: out.buffer, dtype: 'f32', shape, strides: [N, 1], offset: out.offset };
  const z = epi.bias ? 'a + b' : 'a';
  const expr = epi.activation === 'gelu' ? `gelu_erf(${z})` : z;
  const operands: View[] = [o];
  if (epi.bias) operands.push({ buffer: epi.bias.buffer, dtype: 'f32', shape, strides: [0, epi.bias.strides[0]], offset: epi.bias.offset });
  runMap(dev, op, { expr, compute: 'f32' }, o, operands);
}

// ---- tuning: the sweep --------------------------------------------------------------------------------

/** Candidate tiles: rb 1, 2, 4 row blocks × tnc 1, 2 (and 4 where B's columns are scalar units), rb·tnc ≤ 8. */
function candidates(b: 'rows' | 'transposed'): MatmulTile[] {
  const tncs = b === 'rows' ? [1, 2] : [1, 2, 4];
  return [1, 2, 4].flatMap((rb) => tncs.filter((tnc) => rb * tnc <= 8).map((tnc) => ({ rb, tnc })));
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[xs.length >> 1];

/**
 * Times every candidate tile (and the untuned choice) per shape class of the cases (a class's time is
 * the sum over its cases): `rounds` rounds, candidates interleaved within a round so that the
 * device's drift hits them alike, each timing `reps` passes and one sync. A class's winner must beat
 * the untuned tile by `minGain` (default 3%), else its result has tile null (keep the heuristic).
 * Applies nothing (setMatmulTiles / saveMatmulTiles do). Only the simd variant (CPU-SIMD adapters)
 * has tiles: elsewhere it returns [].
 */
export async function tuneMatmulTiles(dev: Device, cases: readonly MatmulCase[], opts: { rounds?: number; reps?: number; minGain?: number } = {}): Promise<MatmulTuneResult[]> {
  const op = 'tuneMatmulTiles';
  const rounds = opts.rounds ?? 5;
  const reps = opts.reps ?? 4;
  const minGain = opts.minGain ?? 0.03;
  if (!(minGain >= 0 && minGain < 1)) throw new TrimpiError(op, `minGain must be in [0, 1), got ${String(minGain)}`);
  for (const c of cases) {
    for (const k of ['M', 'N', 'K'] as const) {
      if (!Number.isInteger(c[k]) || c[k] < 1) throw new TrimpiError(op, `${k} must be a positive integer, got ${String(c[k])} in ${JSON.stringify(c)}`);
    }
    if (c.batch !== undefined && (!Number.isInteger(c.batch) || c.batch < 1)) throw new TrimpiError(op, `batch must be a positive integer, got ${String(c.batch)}`);
    if (c.b !== undefined && c.b !== 'rows' && c.b !== 'transposed') throw new TrimpiError(op, `b must be 'rows' or 'transposed', got ${String(c.b)}`);
  }
  if (!Number.isInteger(rounds) || rounds < 1 || !Number.isInteger(reps) || reps < 1) throw new TrimpiError(op, `rounds and reps must be positive integers, got ${rounds} and ${reps}`);
  if (!dev.features.has('subgroups') || !simdWidth(dev)) return [];

  ensureMatmulTilesLoaded(dev); // the file's tiles first, so that it cannot load over a candidate
  const saved = matmulTiles(dev);
  const results: MatmulTuneResult[] = [];
  const buffers: GPUBuffer[] = [];
  try {
    // every case's operands, grouped by shape class: a class gets one tile, timed over all its cases
    const classes = new Map<string, { cases: Required<MatmulCase>[]; views: { a: View; b: View; out: View }[] }>();
    for (const [i, raw] of cases.entries()) {
      const c: Required<MatmulCase> = { batch: 1, b: 'rows', ...raw };
      const { M, N, K, batch } = c;
      const [bufA, bufB, bufOut] = [batch * M * K, batch * K * N, batch * M * N].map((n, j) => {
        const buf = dev.alloc(n * 4, `${op} ${'ABC'[j]}`);
        buffers.push(buf);
        return buf;
      });
      const a: View = { buffer: bufA, dtype: 'f32', shape: [batch, M, K], strides: [M * K, K, 1], offset: 0 };
      const b: View = c.b === 'rows'
        ? { buffer: bufB, dtype: 'f32', shape: [batch, K, N], strides: [K * N, N, 1], offset: 0 }
        : { buffer: bufB, dtype: 'f32', shape: [batch, K, N], strides: [K * N, 1, K], offset: 0 };
      const out: View = { buffer: bufOut, dtype: 'f32', shape: [batch, M, N], strides: [M * N, N, 1], offset: 0 };
      // operands drawn on the device (uniform in [-0.5, 0.5)), B's memory as a contiguous block either way
      runRandom(dev, op, a, 'uniform', seededKey(2 * i + 1), 0, -0.5, 0.5);
      runRandom(dev, op, { buffer: bufB, dtype: 'f32', shape: [batch * K * N], strides: [1], offset: 0 }, 'uniform', seededKey(2 * i + 2), 0, -0.5, 0.5);
      const { aMode, bMode } = modes(a, b, N);
      const key = matmulShapeClass(M, N, K, batch, aMode, bMode);
      const group = classes.get(key) ?? { cases: [], views: [] };
      group.cases.push(c);
      group.views.push({ a, b, out });
      classes.set(key, group);
    }
    for (const [shapeClass, group] of classes) {
      const tiles: (MatmulTile | null)[] = [null, ...candidates(group.cases[0].b)]; // null: the heuristic tile
      const run = async (tile: MatmulTile | null, n: number): Promise<number> => {
        setMatmulTiles(dev, tile ? new Map([[shapeClass, tile]]) : null);
        const t0 = performance.now();
        for (let r = 0; r < n; r++) for (const v of group.views) runMatmul(dev, op, v.out, v.a, v.b);
        await dev.sync();
        return (performance.now() - t0) / n;
      };
      for (const t of tiles) await run(t, 1); // compiles every pipeline before timing
      const times = tiles.map(() => [] as number[]);
      for (let r = 0; r < rounds; r++) for (const [j, t] of tiles.entries()) times[j].push(await run(t, reps));
      const med = times.map(median);
      let best = 1;
      for (let j = 2; j < tiles.length; j++) if (med[j] < med[best]) best = j;
      // a tile must beat the heuristic by minGain, else the class keeps the heuristic (no churn from noise)
      const wins = med[best] < (1 - minGain) * med[0];
      results.push({ cases: group.cases, shapeClass, tile: wins ? tiles[best] : null, ms: wins ? med[best] : med[0], heuristicMs: med[0], candidates: tiles.length - 1 });
    }
  } finally {
    setMatmulTiles(dev, saved.size ? saved : null);
    for (const b of buffers) dev.pool.release(b);
  }
  return results;
}

