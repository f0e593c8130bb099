// The device and the execution engine: raised limits, features, batched submits, the pipeline
// cache, strided printing, and readback helpers.
import { beforeAll, describe, expect, it } from 'vitest';
import * as t from '../src/index.js';

let dev: t.Device;
beforeAll(async () => {
  dev = await t.init();
});

describe('device', () => {
  it('requests the adapter maxima and the useful features', () => {
    expect(dev.limits.maxStorageBufferBindingSize).toBeGreaterThanOrEqual(128 * 1024 * 1024);
    expect(dev.limits.maxComputeInvocationsPerWorkgroup).toBeGreaterThanOrEqual(256);
    for (const f of ['shader-f16', 'subgroups', 'timestamp-query']) {
      // enabled exactly when offered (lavapipe offers all three)
      if (dev.features.has(f)) expect(dev.gpu.features.has(f)).toBe(true);
    }
    expect(dev.adapter.description.length + dev.adapter.device.length).toBeGreaterThan(0);
  });
  it('batches many dispatches into few submits and caches pipelines by structure', async () => {
    const x = t.randn([64]);
    await dev.sync();
    const s0 = t.execStats();
    let y = x;
    for (let i = 0; i < 100; i++) y = y.mul(1.001).add(0.001);
    await y.sum().item();
    const s1 = t.execStats();
    expect(s1.dispatches - s0.dispatches).toBe(201);
    expect(s1.submits - s0.submits).toBeLessThanOrEqual(3);
    expect(s1.pipelinesCompiled - s0.pipelinesCompiled).toBeLessThanOrEqual(3);
    expect(s1.pipelineCacheHits - s0.pipelineCacheHits).toBeGreaterThanOrEqual(198);
  });
  it('profile: the GPU time of every dispatch, per kernel, and the device unprofiled after it', async () => {
    if (!dev.features.has('timestamp-query')) {
      await expect(t.profile(() => 0)).rejects.toThrow(/profile: the device has no timestamp-query feature/);
      return;
    }
    const a = t.randn([64, 96]);
    const b = t.randn([96, 80]);
    const rep = await t.profile(async () => {
      const y = a.matmul(b).relu().add(1);
      const s = y.sum();
      const v = await s.item();
      for (const z of [y, s]) z.dispose();
      return v;
    });
    expect(Number.isFinite(rep.result)).toBe(true);
    // matmul, relu, add, sum (one or two passes)
    expect(rep.dispatches.map((d) => d.op).slice(0, 3)).toEqual(['matmul', 'relu', 'add']);
    expect(rep.dispatches.every((d) => d.ms >= 0 && d.kernel.length > 0)).toBe(true);
    expect(rep.kernels.reduce((n, k) => n + k.calls, 0)).toBe(rep.dispatches.length);
    expect(rep.gpuMs).toBeCloseTo(rep.dispatches.reduce((x, d) => x + d.ms, 0), 9);
    expect(rep.kernels.find((k) => k.op === 'matmul')!.kernel).toMatch(/^matmul\|/);
    expect(t.formatProfile(rep)).toMatch(/^GPU time [\d.]+ ms in \d+ dispatches\n/);
    expect(t.formatProfile(rep)).toContain('matmul|');
    // more dispatches than one query set holds (2,048 timestamps): resolved in segments
    const many = await t.profile(() => {
      let y = a;
      for (let i = 0; i < 1100; i++) y = y.mul(1.0001);
      return y.sum().item();
    });
    expect(many.dispatches.length).toBeGreaterThanOrEqual(1101);
    // a throwing fn stops profiling, and profiling again works
    await expect(t.profile(() => { throw new Error('boom'); })).rejects.toThrow('boom');
    const again = await t.profile(async () => a.add(1).sum().item());
    expect(again.dispatches.length).toBeGreaterThan(0);
    a.dispose();
    b.dispose();
  });
  it('readback: toArray, item, toNested, format', async () => {
    const x = t.tensor([[1, 2, 3], [4, 5, 6]]);
    expect(await x.toNested()).toEqual([[1, 2, 3], [4, 5, 6]]);
    expect(await x.T.toNested()).toEqual([[1, 4], [2, 5], [3, 6]]);
    expect(await x.slice(1, 1, 3).toNested()).toEqual([[2, 3], [5, 6]]);
    expect(await x.sum().item()).toBe(21);
    await expect(x.item()).rejects.toThrow(/item: expected a tensor with one element, got shape \[2, 3\]/);
    expect(await x.format({ precision: 1 })).toBe('[[1.0, 2.0, 3.0],\n [4.0, 5.0, 6.0]]');
    expect(await t.arange(10).format({ maxPerDim: 4 })).toBe('[0, 1, ..., 8, 9]');
    expect(String(x)).toBe('Tensor([2, 3], f32)');
    expect(await t.tensor(3.5).toNested()).toBe(3.5);
    expect(await t.arange(2, 11, 3).toNested()).toEqual([2, 5, 8]);
    expect(await t.arange(0, 1, 0.25).toNested()).toEqual([0, 0.25, 0.5, 0.75]);
    expect(await t.full([2], 7, { dtype: 'i32' }).toNested()).toEqual([7, 7]);
  });
  it('i32 arithmetic stays integer; mixed with f32 promotes', async () => {
    const i = t.tensor([1, 2, 3], { dtype: 'i32' });
    expect(i.add(1).dtype).toBe('i32');
    expect(await i.mul(i).toNested()).toEqual([1, 4, 9]);
    expect(i.add(0.5).dtype).toBe('f32');
    expect(i.div(2).dtype).toBe('f32');
    expect(await i.div(2).toNested()).toEqual([0.5, 1, 1.5]);
    expect(await t.tensor([1.7, -1.7]).cast('i32').toNested()).toEqual([1, -1]);
    expect(await i.sum().toNested()).toBe(6);
  });
  it('large 1-D grids fold into 2-D dispatches', async () => {
    // strided maps do one element per invocation (256 per workgroup); contiguous ones do 4, which
    // folds only past 67M elements (larger than lavapipe's 128 MiB binding limit)
    const m = 65535 * 256 + 1000; // more workgroups than one dimension allows
    const s = t.ones([2, m / 2]).T; // a transposed view: the strided map
    const ys = s.mul(2);
    expect(await ys.sum().item()).toBe(2 * m);
    for (const z of [s, ys]) z.dispose();
  });
});
