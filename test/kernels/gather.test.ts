// gather.ts launchers on raw buffers, against plain JS loops: gather (strided x, broadcast index,
// out-of-range handling), gather keys, and the deterministic scatter-add by key.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDevice, type Device } from '../../src/gpu/device.js';
import type { DType } from '../../src/gpu/dtype.js';
import { contiguousStrides, numel } from '../../src/gpu/shape.js';
import { Params, fill, paramsDecl, setAdapterOverride, wgslSource, type View } from '../../src/kernels/kernel.js';
import { runGather, runGatherKeys, runScatterAddByKey } from '../../src/kernels/gather.js';

let dev: Device;

beforeAll(async () => {
  dev = await createDevice();
});

afterAll(() => {
  dev?.destroy();
});

// ---- helpers ------------------------------------------------------------------------------------

function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function freshSeed(): number {
  return (Math.random() * 2 ** 32) >>> 0;
}

/** Nonzero random f32 in ±[0.5, 1.5). */
function randNonzero(r: () => number): number {
  return Math.fround((r() < 0.5 ? -1 : 1) * (0.5 + r()));
}

function upload(data: Float32Array | Int32Array | Uint32Array): GPUBuffer {
  const buf = dev.alloc(Math.max(data.byteLength, 4));
  dev.write(buf, data);
  return buf;
}

async function readF32(buf: GPUBuffer, offset: number, n: number): Promise<Float32Array> {
  return new Float32Array(await dev.read('test', buf, offset * 4, n * 4));
}

async function readI32(buf: GPUBuffer, offset: number, n: number): Promise<Int32Array> {
  return new Int32Array(await dev.read('test', buf, offset * 4, n * 4));
}

function view(buffer: GPUBuffer, dtype: DType, shape: readonly number[], strides: readonly number[] = contiguousStrides(shape), offset = 0): View {
  return { buffer, dtype, shape, strides, offset };
}

/** Multi-index of linear position i in row-major `shape`. */
function unravel(i: number, shape: readonly number[]): number[] {
  const pos = new Array<number>(shape.length);
  for (let d = shape.length - 1; d >= 0; d--) {
    pos[d] = i % shape[d];
    i = Math.floor(i / shape[d]);
  }
  return pos;
}

function dot(pos: readonly number[], strides: readonly number[]): number {
  let o = 0;
  for (let d = 0; d < pos.length; d++) o += pos[d] * strides[d];
  return o;
}

/**
 * A strided x of logical `shape` stored as the permutation `perm` of it (base[j] has extent
 * shape[perm[j]]) after `pad` leading elements; returns the host copy of the logical values too.
 */
function permutedSource(r: () => number, shape: readonly number[], perm: readonly number[], pad: number, dtype: DType) {
  const baseShape = perm.map((p) => shape[p]);
  const baseStrides = contiguousStrides(baseShape);
  const strides = new Array<number>(shape.length);
  perm.forEach((p, j) => (strides[p] = baseStrides[j]));
  const n = numel(shape);
  const store = dtype === 'f32' ? new Float32Array(pad + n) : new Int32Array(pad + n);
  for (let k = 0; k < store.length; k++) store[k] = dtype === 'f32' ? randNonzero(r) : 1 + Math.floor(r() * 1000);
  return { data: store, strides, offset: pad };
}

// ---- gather -------------------------------------------------------------------------------------

interface GatherCase {
  xShape: number[];
  axis: number;
  /** extent of the output along axis */
  m: number;
  perm: number[];
  /** '1d': an indexSelect-style 1-D index with stride 0 elsewhere; 'full': an index of shape S, permuted */
  index: '1d' | 'full';
  dtype?: DType;
}

async function checkGather(c: GatherCase, seed: number): Promise<void> {
  const r = rng(seed);
  const dtype = c.dtype ?? 'f32';
  const { xShape, axis, m } = c;
  const S = xShape.map((d, k) => (k === axis ? m : d));
  const n = numel(S);
  const src = permutedSource(r, xShape, c.perm, 3, dtype);
  const xBuf = upload(src.data);
  const x = view(xBuf, dtype, xShape, src.strides, src.offset);

  // index values: in range [0, xShape[axis])
  let idxHost: Int32Array;
  let idxStrides: number[];
  let idxOffset: number;
  if (c.index === '1d') {
    idxOffset = 2;
    idxHost = new Int32Array(idxOffset + m);
    for (let k = 0; k < idxHost.length; k++) idxHost[k] = Math.floor(r() * xShape[axis]);
    idxStrides = S.map((_, k) => (k === axis ? 1 : 0));
  } else {
    // stored as the reversed permutation of S, after an offset
    idxOffset = 5;
    const rev = S.map((_, k) => S.length - 1 - k);
    const baseStrides = contiguousStrides(rev.map((p) => S[p]));
    idxStrides = new Array<number>(S.length);
    rev.forEach((p, j) => (idxStrides[p] = baseStrides[j]));
    idxHost = new Int32Array(idxOffset + n);
    for (let k = 0; k < idxHost.length; k++) idxHost[k] = Math.floor(r() * xShape[axis]);
  }
  const index = view(upload(idxHost), 'i32', S, idxStrides, idxOffset);

  const outOffset = 4;
  const outBuf = dev.alloc((outOffset + n) * 4);
  const flag = upload(new Uint32Array([0, 0, 0, 0]));
  runGather(dev, 'gather', view(outBuf, dtype, S, contiguousStrides(S), outOffset), x, index, axis, { buffer: flag, word: 0 });
  const keysBuf = dev.alloc(n * 4);
  runGatherKeys(dev, 'gatherKeys', view(keysBuf, 'i32', S), xShape, index, axis);

  const got = dtype === 'f32' ? await readF32(outBuf, outOffset, n) : await readI32(outBuf, outOffset, n);
  const keys = await readI32(keysBuf, 0, n);
  const flagV = new Uint32Array(await dev.read('test', flag, 0, 4));
  const xStridesC = contiguousStrides(xShape);
  const want = dtype === 'f32' ? new Float32Array(n) : new Int32Array(n);
  const wantKeys = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const pos = unravel(i, S);
    const j = idxHost[idxOffset + dot(pos, idxStrides)];
    const xp = pos.slice();
    xp[axis] = j;
    want[i] = src.data[src.offset + dot(xp, src.strides)];
    wantKeys[i] = dot(xp, xStridesC);
  }
  const msg = `seed ${seed}, case ${JSON.stringify(c)}`;
  expect(Array.from(got), msg).toEqual(Array.from(want));
  expect(Array.from(keys), msg).toEqual(Array.from(wantKeys));
  expect(flagV[0], msg).toBe(0);
  for (const b of [xBuf, index.buffer, outBuf, flag, keysBuf]) dev.pool.release(b);
}

describe('runGather / runGatherKeys', () => {
  const cases: GatherCase[] = [
    { xShape: [1, 1, 1], axis: 0, m: 1, perm: [0, 1, 2], index: 'full' },
    { xShape: [7, 1, 1], axis: 0, m: 7, perm: [2, 1, 0], index: '1d' },
    { xShape: [1, 7, 1], axis: 1, m: 1, perm: [1, 0, 2], index: 'full' },
    { xShape: [5, 7, 3], axis: 0, m: 33, perm: [2, 0, 1], index: 'full' },
    { xShape: [5, 7, 3], axis: 1, m: 33, perm: [1, 2, 0], index: '1d' },
    { xShape: [5, 7, 3], axis: 2, m: 33, perm: [2, 1, 0], index: 'full' },
    { xShape: [257, 3, 2], axis: 0, m: 7, perm: [1, 0, 2], index: '1d' },
    { xShape: [2, 257, 3], axis: 1, m: 257, perm: [2, 0, 1], index: 'full' },
    { xShape: [3, 2, 257], axis: 2, m: 33, perm: [2, 1, 0], index: '1d' },
    { xShape: [40, 30, 20], axis: 0, m: 50, perm: [2, 0, 1], index: 'full' },
    { xShape: [40, 30, 20], axis: 1, m: 64, perm: [1, 2, 0], index: '1d' },
    { xShape: [40, 30, 20], axis: 2, m: 9, perm: [2, 1, 0], index: 'full' },
    { xShape: [33, 1, 257], axis: 2, m: 100, perm: [0, 1, 2], index: 'full', dtype: 'i32' },
    { xShape: [3000], axis: 0, m: 4001, perm: [0], index: 'full' },
  ];
  for (const c of cases) {
    it(`x ${JSON.stringify(c.xShape)} axis ${c.axis} -> ${c.m} (${c.index} index, perm ${c.perm.join('')}${c.dtype ? ', ' + c.dtype : ''})`, async () => {
      await checkGather(c, freshSeed());
    });
  }

  it('axis given as a negative number', async () => {
    await checkGather({ xShape: [4, 6, 5], axis: 2, m: 7, perm: [1, 0, 2], index: 'full' }, freshSeed());
    const seed = freshSeed();
    const r = rng(seed);
    const x = new Float32Array(4 * 6).map(() => randNonzero(r));
    const idx = new Int32Array(4 * 3).map(() => Math.floor(r() * 6));
    const out = dev.alloc(48);
    runGather(dev, 'gather', view(out, 'f32', [4, 3]), view(upload(x), 'f32', [4, 6]), view(upload(idx), 'i32', [4, 3]), -1);
    const got = await readF32(out, 0, 12);
    const want = Array.from({ length: 12 }, (_, i) => x[Math.floor(i / 3) * 6 + idx[i]]);
    expect(Array.from(got), `seed ${seed}`).toEqual(want);
  });

  it('out-of-range indices give 0 (gather) and 0xffffffff (keys), and set the error flag', async () => {
    const seed = freshSeed();
    const r = rng(seed);
    const xShape = [6, 9, 4];
    const axis = 1;
    const S = [6, 11, 4];
    const n = numel(S);
    const x = new Float32Array(numel(xShape)).map(() => randNonzero(r));
    const idx = new Int32Array(n).map(() => Math.floor(r() * 9));
    const bad = [0, 5, 17, 100, n - 1];
    const badVals = [-1, 9, -100, 1 << 30, -(2 ** 31)];
    bad.forEach((p, k) => (idx[p] = badVals[k]));
    const xBuf = upload(x);
    const iBuf = upload(idx);
    const outBuf = dev.alloc(n * 4);
    const keysBuf = dev.alloc(n * 4);
    const flag = upload(new Uint32Array(4));
    // the call's own word of the flag buffer (Device.assertFlag gives each checked call one)
    runGather(dev, 'gather', view(outBuf, 'f32', S), view(xBuf, 'f32', xShape), view(iBuf, 'i32', S), axis, { buffer: flag, word: 2 });
    runGatherKeys(dev, 'gatherKeys', view(keysBuf, 'i32', S), xShape, view(iBuf, 'i32', S), axis);
    const got = await readF32(outBuf, 0, n);
    const keys = new Uint32Array(await dev.read('test', keysBuf, 0, n * 4));
    expect([...new Uint32Array(await dev.read('test', flag, 0, 16))]).toEqual([0, 0, 1, 0]);
    for (let i = 0; i < n; i++) {
      const [a, , c] = unravel(i, S);
      const j = idx[i];
      if (bad.includes(i)) {
        expect(got[i], `seed ${seed} i ${i}`).toBe(0);
        expect(keys[i], `seed ${seed} i ${i}`).toBe(0xffffffff);
      } else {
        expect(got[i], `seed ${seed} i ${i}`).toBe(x[a * 36 + j * 4 + c]);
        expect(keys[i], `seed ${seed} i ${i}`).toBe(a * 36 + j * 4 + c);
      }
    }
    // without an error flag: still zeros, no binding needed
    const out2 = dev.alloc(n * 4);
    runGather(dev, 'gather', view(out2, 'f32', S), view(xBuf, 'f32', xShape), view(iBuf, 'i32', S), axis);
    expect(Array.from(await readF32(out2, 0, n))).toEqual(Array.from(got));
  });

  it('rejects mismatched shapes and dtypes', () => {
    const b = dev.alloc(64);
    const o = dev.alloc(64);
    expect(() => runGather(dev, 'gather', view(o, 'f32', [2, 3]), view(b, 'f32', [3, 3]), view(b, 'i32', [2, 3]), 1)).toThrow(/agree/);
    expect(() => runGather(dev, 'gather', view(o, 'f32', [2, 3]), view(b, 'f32', [2, 3]), view(b, 'f32', [2, 3]), 1)).toThrow(/i32/);
    expect(() => runGather(dev, 'gather', view(o, 'f32', [2, 3]), view(b, 'f32', [2, 3]), view(b, 'i32', [2, 3]), 2)).toThrow(/axis/);
  });
});

// ---- scatter-add by key -------------------------------------------------------------------------

/** Sums in increasing i: the f32 result the kernel must reproduce bit for bit, and the f64 one. */
function referenceSums(keys: Int32Array, vals: (i: number) => number, K: number): { f32: Float32Array; f64: Float64Array; abs: Float64Array } {
  const f32 = new Float32Array(K);
  const f64 = new Float64Array(K);
  const abs = new Float64Array(K);
  for (let i = 0; i < keys.length; i++) {
    const k = keys[i];
    if (k < 0 || k >= K) continue;
    const v = vals(i);
    f32[k] = Math.fround(f32[k] + v);
    f64[k] += v;
    abs[k] += Math.abs(v);
  }
  return { f32, f64, abs };
}

async function scatter(keys: Int32Array, valuesView: (buf: GPUBuffer) => View, valuesData: Float32Array, K: number, outOffset = 0): Promise<Float32Array> {
  const kBuf = upload(keys);
  const vBuf = upload(valuesData);
  const outBuf = upload(new Float32Array(outOffset + K).fill(123.5)); // garbage: must be overwritten
  runScatterAddByKey(dev, 'scatterAdd', view(outBuf, 'f32', [K], [1], outOffset), view(kBuf, 'i32', [keys.length]), valuesView(vBuf));
  const got = await readF32(outBuf, outOffset, K);
  for (const b of [kBuf, vBuf, outBuf]) dev.pool.release(b);
  return got;
}

function expectSums(got: Float32Array, ref: ReturnType<typeof referenceSums>, msg: string): void {
  const bits = new Uint32Array(got.buffer, got.byteOffset, got.length);
  const wantBits = new Uint32Array(ref.f32.buffer);
  for (let k = 0; k < got.length; k++) {
    if (bits[k] !== wantBits[k]) {
      throw new Error(`${msg}: out[${k}] = ${got[k]}, want ${ref.f32[k]} (sequential f32 sum in increasing i)`);
    }
    const tol = 1e-5 * Math.max(Math.abs(ref.f64[k]), ref.abs[k] * 1e-2, 1e-30);
    if (!(Math.abs(got[k] - ref.f64[k]) <= tol)) throw new Error(`${msg}: out[${k}] = ${got[k]}, f64 sum ${ref.f64[k]}`);
  }
}

describe('runScatterAddByKey', () => {
  const sizes: [number, number][] = [
    [1, 1], [1, 7], [7, 3], [7, 7], [33, 5], [33, 100], [257, 17], [257, 257], [4000, 300], [4000, 1], [3000, 2500],
  ];
  /** Random keys (10% skipped) and non-zero values, scattered and checked against the sequential sums. */
  const randomCase = async (M: number, K: number): Promise<void> => {
    const seed = freshSeed();
    const r = rng(seed);
    const keys = new Int32Array(M).map(() => (r() < 0.1 ? -1 : Math.floor(r() * K)));
    const vals = new Float32Array(M).map(() => randNonzero(r));
    const got = await scatter(keys, (b) => view(b, 'f32', [M]), vals, K, 3);
    expectSums(got, referenceSums(keys, (i) => vals[i], K), `seed ${seed}`);
  };
  for (const [M, K] of sizes) it(`M=${M} values into K=${K} keys (with skipped keys)`, () => randomCase(M, K));
  // the cases above take the subgroup scan where the adapter has a fixed subgroup size (lavapipe);
  // these take the workgroup-memory scan that other adapters use
  for (const [M, K] of [[300, 37], [3000, 2500]]) {
    it(`M=${M} values into K=${K} keys with the workgroup-memory scan (no fixed subgroup size)`, async () => {
      setAdapterOverride({ subgroups: false });
      try {
        await randomCase(M, K);
      } finally {
        setAdapterOverride(null);
      }
    });
  }

  it('5000 values into 7 keys, deterministic across runs', async () => {
    const seed = freshSeed();
    const r = rng(seed);
    const M = 5000;
    const K = 7;
    const keys = new Int32Array(M).map(() => Math.floor(r() * K));
    const vals = new Float32Array(M).map(() => 0.5 + r()); // positive: the f64 check is a relative one
    const a = await scatter(keys, (b) => view(b, 'f32', [M]), vals, K);
    const b = await scatter(keys, (b) => view(b, 'f32', [M]), vals, K);
    expect(Array.from(new Uint32Array(b.buffer)), `seed ${seed}`).toEqual(Array.from(new Uint32Array(a.buffer)));
    const ref = referenceSums(keys, (i) => vals[i], K);
    expectSums(a, ref, `seed ${seed}`);
    for (let k = 0; k < K; k++) expect(Math.abs(a[k] - ref.f64[k]) / ref.f64[k]).toBeLessThan(1e-5);
  });

  it('a bucket of 2000 entries among scattered small ones', async () => {
    const seed = freshSeed();
    const r = rng(seed);
    const M = 6000;
    const K = 500;
    const keys = new Int32Array(M).map(() => Math.floor(r() * K));
    // 2000 distinct random positions hold key 42
    const perm = Array.from({ length: M }, (_, i) => i);
    for (let i = M - 1; i > 0; i--) {
      const j = Math.floor(r() * (i + 1));
      [perm[i], perm[j]] = [perm[j], perm[i]];
    }
    for (let k = 0; k < M; k++) if (keys[k] === 42) keys[k] = 43;
    for (let k = 0; k < 2000; k++) keys[perm[k]] = 42;
    const vals = new Float32Array(M).map(() => randNonzero(r));
    const got = await scatter(keys, (b) => view(b, 'f32', [M]), vals, K);
    expectSums(got, referenceSums(keys, (i) => vals[i], K), `seed ${seed}`);
  });

  it('one bucket holding every element (the serial worst case)', async () => {
    const seed = freshSeed();
    const r = rng(seed);
    const M = 30000;
    const keys = new Int32Array(M).fill(2);
    for (let k = 0; k < 50; k++) keys[Math.floor(r() * M)] = -1;
    const vals = new Float32Array(M).map(() => 0.5 + r());
    const got = await scatter(keys, (b) => view(b, 'f32', [M]), vals, 4);
    const ref = referenceSums(keys, (i) => vals[i], 4);
    expectSums(got, ref, `seed ${seed}`);
    expect(got[0]).toBe(0);
    expect(got[3]).toBe(0);
  });

  it('outNumel much larger than M; all keys skipped; M = 0', async () => {
    const seed = freshSeed();
    const r = rng(seed);
    const M = 300;
    const K = 20000;
    const keys = new Int32Array(M).map(() => Math.floor(r() * K));
    const vals = new Float32Array(M).map(() => randNonzero(r));
    expectSums(await scatter(keys, (b) => view(b, 'f32', [M]), vals, K, 1), referenceSums(keys, (i) => vals[i], K), `seed ${seed}`);

    const none = new Int32Array(M).fill(-1);
    expect(Array.from(await scatter(none, (b) => view(b, 'f32', [M]), vals, 33))).toEqual(new Array(33).fill(0));

    const outBuf = upload(new Float32Array(10).fill(7));
    runScatterAddByKey(dev, 'scatterAdd', view(outBuf, 'f32', [9], [1], 1), view(dev.alloc(16), 'i32', [0]), view(dev.alloc(16), 'f32', [0, 5]));
    expect(Array.from(await readF32(outBuf, 0, 10))).toEqual([7, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
  });

  it('strided values: transposed, broadcast (stride 0) and offset views', async () => {
    const seed = freshSeed();
    const r = rng(seed);
    const R = 37;
    const C = 29;
    const M = R * C;
    const K = 61;
    const keys = new Int32Array(M).map(() => (r() < 0.05 ? -1 : Math.floor(r() * K)));
    // logical [R, C] stored as [C, R] after 2 pad elements
    const store = new Float32Array(2 + M).map(() => randNonzero(r));
    const tGot = await scatter(keys, (b) => view(b, 'f32', [R, C], [1, R], 2), store, K);
    const tVal = (i: number) => store[2 + (i % C) * R + Math.floor(i / C)];
    expectSums(tGot, referenceSums(keys, tVal, K), `seed ${seed} (transposed)`);
    // broadcast: [R, C] read from a [R] vector with stride 0 on the columns
    const bGot = await scatter(keys, (b) => view(b, 'f32', [R, C], [1, 0], 5), store, K);
    expectSums(bGot, referenceSums(keys, (i) => store[5 + Math.floor(i / C)], K), `seed ${seed} (broadcast)`);
    // size-1 dims and a 3-D permutation
    const cGot = await scatter(keys, (b) => view(b, 'f32', [C, 1, R], [1, 999, C], 0), store, K);
    expectSums(cGot, referenceSums(keys, (i) => store[(i % R) * C + Math.floor(i / R)], K), `seed ${seed} (3-D)`);
  });

  it('the sum stage sorts scrambled buckets (insertion sort and heapsort paths)', async () => {
    // The atomics of the place stage hand out slots nearly in order (on lavapipe exactly in order),
    // so drive the sum stage directly with hand-made buckets in scrambled order.
    const seed = freshSeed();
    const r = rng(seed);
    const sizes = [0, 1, 2, 3, 5, 17, 40, 0, 300, 2000, 3000, 1];
    const orders = ['rev', 'rand', 'rand', 'rev', 'rand', 'rand', 'near', 'rand', 'rev', 'rev', 'rand', 'rand'];
    const M = sizes.reduce((a, b) => a + b, 0);
    const K = sizes.length;
    // element ids 0..M-1 dealt to buckets at random, then each bucket scrambled
    const ids = Array.from({ length: M }, (_, i) => i);
    for (let i = M - 1; i > 0; i--) {
      const j = Math.floor(r() * (i + 1));
      [ids[i], ids[j]] = [ids[j], ids[i]];
    }
    const offs = new Uint32Array(K);
    const list = new Uint32Array(M);
    const keys = new Int32Array(M);
    let at = 0;
    sizes.forEach((n, k) => {
      const b = ids.slice(at, at + n).sort((a, c) => a - c);
      if (orders[k] === 'rev') b.reverse();
      else if (orders[k] === 'rand') {
        for (let i = n - 1; i > 0; i--) {
          const j = Math.floor(r() * (i + 1));
          [b[i], b[j]] = [b[j], b[i]];
        }
      } else for (let i = 0; i + 1 < n; i += 7) [b[i], b[i + 1]] = [b[i + 1], b[i]];
      list.set(b, at);
      for (const i of b) keys[i] = k;
      at += n;
      offs[k] = at;
    });
    const vals = new Float32Array(M).map(() => randNonzero(r));
    const src = wgslSource('scatter').split(/^\/\/@stage (\w+)[ \t]*$/m);
    const prm = new Params().u(K, 0, 0, 0);
    const code = fill(src[0] + src[src.indexOf('sum') + 1], { ENABLE: '', PARAMS: paramsDecl(prm.vec4s), VRANK: 0, VCONTIG: 'true' });
    const pipe = dev.pipeline(`test-scatter-sum|${code}`, 'test sum', () => code);
    const outBuf = dev.alloc(K * 4);
    const listBuf = upload(list);
    dev.dispatch('test sum', pipe, prm.bytes(), [outBuf, upload(offs), listBuf, upload(vals)], [1, 1, 1]);
    const got = await readF32(outBuf, 0, K);
    const sorted = new Uint32Array(await dev.read('test', listBuf, 0, M * 4));
    at = 0;
    sizes.forEach((n) => {
      const want = Array.from(list.subarray(at, at + n)).sort((a, c) => a - c);
      expect(Array.from(sorted.subarray(at, at + n)), `seed ${seed}`).toEqual(want);
      at += n;
    });
    expectSums(got, referenceSums(keys, (i) => vals[i], K), `seed ${seed}`);
  });

  it('gather backward: keys + scatter-add equal a JS index_add over a broadcast index', async () => {
    const seed = freshSeed();
    const r = rng(seed);
    const xShape = [12, 50, 8];
    const axis = 1;
    const m = 70;
    const S = [12, m, 8];
    const n = numel(S);
    const idx1 = new Int32Array(m).map(() => Math.floor(r() * 50));
    const index = view(upload(idx1), 'i32', S, [0, 1, 0]);
    const keysBuf = dev.alloc(n * 4);
    runGatherKeys(dev, 'gatherKeys', view(keysBuf, 'i32', S), xShape, index, axis);
    const grad = new Float32Array(n).map(() => randNonzero(r));
    const gBuf = upload(grad);
    const K = numel(xShape);
    const outBuf = dev.alloc(K * 4);
    runScatterAddByKey(dev, 'scatterAdd', view(outBuf, 'f32', xShape), view(keysBuf, 'i32', [n]), view(gBuf, 'f32', S));
    const got = await readF32(outBuf, 0, K);
    const keys = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      const [a, b, c] = unravel(i, S);
      keys[i] = a * 400 + idx1[b] * 8 + c;
    }
    expectSums(got, referenceSums(keys, (i) => grad[i], K), `seed ${seed}`);
  });
});
