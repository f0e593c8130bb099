// Launcher for random.wgsl, and the same Threefry-2x32-20 in JS for tests.
import type { Device } from '../gpu/device.js';
import { Params, View, fill, grid1d, paramsDecl, wgslSource } from './kernel.js';

export type RandomKind = 'uniform' | 'normal' | 'bernoulli';

const MAIN: Record<RandomKind, string> = {
  uniform: '  out[i] = a + (b - a) * f32(x.x >> 8u) * 5.9604644775390625e-8;',
  normal: `  let u1 = f32((x.x >> 8u) + 1u) * 5.9604644775390625e-8;
  let u2 = f32(x.y >> 8u) * 5.9604644775390625e-8;
  out[i] = a + b * sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);`,
  bernoulli: '  out[i] = select(0.0, 1.0, f32(x.x >> 8u) * 5.9604644775390625e-8 < a);',
};

/** The Threefry key of an explicit seed (a draw with a seed starts at counter 0 under this key). */
export function seededKey(seed: number): [number, number] {
  return [seed >>> 0, (Math.floor(seed / 2 ** 32) >>> 0 ^ 0x9e3779b9) >>> 0];
}

/**
 * Fills `out` (contiguous f32, offset 0) with draws for counters counter..counter+numel-1 under `key`.
 * a, b: (low, high) for uniform, (mean, std) for normal, (p, unused) for bernoulli.
 */
export function runRandom(dev: Device, op: string, out: View, kind: RandomKind, key: readonly [number, number], counter: number, a: number, b: number): void {
  const n = out.shape.reduce((x, y) => x * y, 1);
  if (n === 0) return;
  const prm = new Params().u(n, key[0], key[1], counter % 2 ** 32, Math.floor(counter / 2 ** 32)).f(a, b);
  const pipe = dev.pipeline(`random|${kind}`, op, () => fill(wgslSource('random'), { PARAMS: paramsDecl(prm.vec4s), THREEFRY: wgslSource('threefry'), MAIN: MAIN[kind] }));
  dev.dispatch(op, pipe, prm.u32s, [out.buffer], grid1d(n, 256, dev.limits.maxComputeWorkgroupsPerDimension));
}

/** Reference Threefry-2x32 with 20 rounds (for tests). */
export function threefry2x32(c0: number, c1: number, k0: number, k1: number): [number, number] {
  const ks = [k0 >>> 0, k1 >>> 0, (0x1bd11bda ^ k0 ^ k1) >>> 0];
  const rot = [13, 15, 26, 6, 17, 29, 16, 24];
  let x0 = (c0 + ks[0]) >>> 0;
  let x1 = (c1 + ks[1]) >>> 0;
  for (let r = 0; r < 20; r++) {
    x0 = (x0 + x1) >>> 0;
    x1 = ((x1 << rot[r % 8]) | (x1 >>> (32 - rot[r % 8]))) >>> 0;
    x1 = (x1 ^ x0) >>> 0;
    if (r % 4 === 3) {
      const s = (r + 1) / 4;
      x0 = (x0 + ks[s % 3]) >>> 0;
      x1 = (x1 + ks[(s + 1) % 3] + s) >>> 0;
    }
  }
  return [x0, x1];
}
