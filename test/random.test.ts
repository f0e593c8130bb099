// The counter-based RNG: Threefry-2x32-20 known answers, GPU = JS, determinism per seed, and the
// distributions' moments.
import { beforeAll, describe, expect, it } from 'vitest';
import * as t from '../src/index.js';
import { threefry2x32 } from '../src/kernels/random.js';

beforeAll(async () => {
  await t.init();
});

describe('random', () => {
  it('Threefry-2x32-20 matches the Random123 known-answer vectors', () => {
    expect(threefry2x32(0, 0, 0, 0)).toEqual([0x6b200159, 0x99ba4efe]);
    expect(threefry2x32(0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff)).toEqual([0x1cb996fc, 0xbb002be7]);
    expect(threefry2x32(0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344)).toEqual([0xc4923a9c, 0x483df7a0]);
  });
  it('the GPU draws the same bits as the JS generator', async () => {
    const u = await t.rand([1000], { seed: 42 }).toArray();
    const key = [42, 0x9e3779b9];
    for (const i of [0, 1, 517, 999]) {
      const [x0] = threefry2x32(i, 0, key[0], key[1]);
      expect(u[i]).toBe(Math.fround((x0 >>> 8) * 2 ** -24));
    }
  });
  it('the same seed gives the same tensor; the global generator advances', async () => {
    t.manualSeed(7);
    const a = await t.randn([257]).toArray();
    const b = await t.randn([257]).toArray();
    t.manualSeed(7);
    const c = await t.randn([257]).toArray();
    expect([...c]).toEqual([...a]);
    expect([...b]).not.toEqual([...a]);
  });
  it('moments of uniform, normal and bernoulli (dropout) draws', async () => {
    const n = 1 << 18;
    const u = Array.from(await t.rand([n], { low: -1, high: 3, seed: 1 }).toArray());
    const g = Array.from(await t.randn([n], { mean: 2, std: 0.5, seed: 2 }).toArray());
    const mean = (a: number[]): number => a.reduce((s, v) => s + v, 0) / a.length;
    const vr = (a: number[]): number => { const m = mean(a); return mean(a.map((v) => (v - m) ** 2)); };
    expect(u.reduce((m, v) => Math.min(m, v), Infinity)).toBeGreaterThanOrEqual(-1);
    expect(u.reduce((m, v) => Math.max(m, v), -Infinity)).toBeLessThan(3);
    expect(mean(u)).toBeCloseTo(1, 2);
    expect(vr(u)).toBeCloseTo(16 / 12, 2);
    expect(mean(g)).toBeCloseTo(2, 2);
    expect(vr(g)).toBeCloseTo(0.25, 2);
    const kept = await t.ones([n]).dropout(0.25).toArray();
    const frac = kept.filter((v) => v !== 0).length / n;
    expect(frac).toBeCloseTo(0.75, 2);
    expect(kept.every((v) => v === 0 || Math.abs(v - 4 / 3) < 1e-6)).toBe(true);
  });
  it('dropout is seeded and the identity in eval mode', async () => {
    const x = t.randn([100]);
    t.manualSeed(3);
    const a = await x.dropout(0.5).toArray();
    t.manualSeed(3);
    const b = await x.dropout(0.5).toArray();
    expect([...a]).toEqual([...b]);
    expect(x.dropout(0.5, false)).toBe(x);
  });
});
