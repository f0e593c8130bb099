// AdamW (fused kernel) and global-norm clipping against a float64 implementation.
import { beforeAll, describe, expect, it } from 'vitest';
import * as t from '../src/index.js';
import { AdamW, globalGradNorm } from '../src/nn/optim.js';
import { expectClose, freshSeed } from './helpers.js';
import { Rng } from './reference/ref.js';

beforeAll(async () => {
  await t.init();
});

/** float64 AdamW over flat arrays, the textbook formulas. */
function adamwRef(p: number[][], grads: number[][][], o: { lr: number; b1: number; b2: number; eps: number; wd: number[]; maxNorm: number }): number[][] {
  const m = p.map((x) => x.map(() => 0));
  const v = p.map((x) => x.map(() => 0));
  const out = p.map((x) => [...x]);
  grads.forEach((gs, step) => {
    const t1 = step + 1;
    const norm = Math.sqrt(gs.flat().reduce((s, g) => s + g * g, 0));
    const clip = o.maxNorm > 0 ? Math.min(1, o.maxNorm / (norm + 1e-6)) : 1;
    out.forEach((x, k) => x.forEach((pi, i) => {
      const g = gs[k][i] * clip;
      m[k][i] = o.b1 * m[k][i] + (1 - o.b1) * g;
      v[k][i] = o.b2 * v[k][i] + (1 - o.b2) * g * g;
      const mh = m[k][i] / (1 - o.b1 ** t1);
      const vh = v[k][i] / (1 - o.b2 ** t1);
      x[i] = pi - o.lr * (o.wd[k] * pi + mh / (Math.sqrt(vh) + o.eps));
    }));
  });
  return out;
}

describe('AdamW', () => {
  for (const maxNorm of [0, 0.5]) {
    it(`matches float64 over 5 steps (weight-decay groups, clipping ${maxNorm})`, async () => {
      const rng = new Rng(freshSeed());
      const sizes = [7, 257, 2600]; // 2,600: several workgroups of 1,024 elements and a tail
      const init = sizes.map((n) => Array.from({ length: n }, () => rng.normal()));
      const grads = Array.from({ length: 5 }, () => sizes.map((n) => Array.from({ length: n }, () => rng.normal())));
      const params = init.map((x) => t.tensor(x, { requiresGrad: true }));
      const opt = new AdamW([{ params: [params[0], params[1]] }, { params: [params[2]], weightDecay: 0 }], { lr: 0.01, weightDecay: 0.1, maxGradNorm: maxNorm });
      const norms: number[] = [];
      for (const gs of grads) {
        params.forEach((p, k) => { p.zeroGrad(); p.grad = t.tensor(Float32Array.from(gs[k])).keep(); });
        const norm = opt.stepUpdate();
        norms.push(await norm.item());
        norm.dispose();
      }
      const want = adamwRef(init.map((x) => Array.from(Float32Array.from(x))), grads.map((s) => s.map((g) => Array.from(Float32Array.from(g)))),
        { lr: 0.01, b1: 0.9, b2: 0.999, eps: 1e-8, wd: [0.1, 0.1, 0], maxNorm });
      for (let k = 0; k < params.length; k++) expectClose(`param ${k}`, await params[k].toArray(), want[k], { rtol: 1e-4, atol: 1e-5 });
      expectClose('grad norms', norms, grads.map((gs) => Math.sqrt(gs.flat().reduce((s, g) => s + Math.fround(g) ** 2, 0))), { rtol: 1e-4, atol: 1e-5 });
      opt.dispose();
    });
  }
  it('a step issues no readback and clipping stays on the GPU', async () => {
    const p = t.randn([64], { requiresGrad: true });
    const opt = new AdamW([p], { maxGradNorm: 1 });
    p.mul(p).sum().backward();
    const before = t.execStats().readbacks;
    t.tidy(() => { opt.stepUpdate(); });
    expect(t.execStats().readbacks).toBe(before);
    const n = await globalGradNorm([p]).item();
    expect(n).toBeGreaterThan(0);
  });
  it('rejects parameters that cannot be updated in place', () => {
    expect(() => new AdamW([t.randn([4, 4], { requiresGrad: true }).T])).toThrow(/AdamW: parameter .* must be a contiguous f32 tensor/);
    expect(() => new AdamW([t.randn([4])])).toThrow(/requiresGrad/);
  });
});
