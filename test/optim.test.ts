// AdamW (fused kernel) and global-norm clipping against a float64 implementation; non-finite steps
// skipped on the GPU (parameters, moments and bias corrections bit for bit); option validation.
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
  it('skips a step with a NaN/Inf gradient or loss: parameters, moments and bias corrections bit for bit; later steps as if it never happened', async () => {
    const rng = new Rng(freshSeed());
    const sizes = [257, 8];
    const init = sizes.map((n) => Array.from({ length: n }, () => rng.normal()));
    const grads = Array.from({ length: 3 }, () => sizes.map((n) => Array.from({ length: n }, () => rng.normal())));
    const params = init.map((x) => t.tensor(x, { requiresGrad: true }));
    const opt = new AdamW(params, { lr: 0.01, weightDecay: 0.1, maxGradNorm: 0.5 });
    const setGrads = (gs: number[][]): void => params.forEach((p, k) => { p.zeroGrad(); p.grad = t.tensor(Float32Array.from(gs[k])).keep(); });
    const snapshot = async (): Promise<Float32Array[]> => {
      const out: Float32Array[] = [];
      for (const p of params) {
        const { m, v } = opt.moments(p);
        for (const x of [p, m, v]) out.push((await x.toArray()) as Float32Array);
      }
      out.push((await opt.biasCorrection.toArray()) as Float32Array);
      return out;
    };
    const step = async (loss?: t.Tensor): Promise<number> => {
      const r = opt.update({ loss });
      const skipped = await r.skipped.item();
      r.gradNorm.dispose();
      r.skipped.dispose();
      return skipped;
    };
    setGrads(grads[0]);
    expect(await step(t.tensor(1.5))).toBe(0);
    const before = await snapshot();
    const bad: [string, number[][], t.Tensor | undefined][] = [
      ['NaN gradient', grads[1].map((g, k) => (k === 0 ? g.map((x, i) => (i === 100 ? NaN : x)) : g)), undefined],
      ['+Inf gradient', grads[1].map((g, k) => (k === 1 ? g.map((x, i) => (i === 3 ? Infinity : x)) : g)), undefined],
      ['-Inf gradient', grads[1].map((g, k) => (k === 1 ? g.map((x, i) => (i === 0 ? -Infinity : x)) : g)), undefined],
      ['NaN loss, finite gradients', grads[1], t.tensor(NaN)],
      ['Inf loss, finite gradients', grads[1], t.tensor(Infinity)],
    ];
    for (const [what, gs, loss] of bad) {
      setGrads(gs);
      expect(await step(loss), what).toBe(1);
      const after = await snapshot();
      for (let i = 0; i < before.length; i++) expect(after[i], `${what}: state ${i}`).toEqual(before[i]);
    }
    expect(opt.step).toBe(1 + bad.length); // attempts are counted
    // the applied updates (steps 0 and 2 of `grads`) match a run that never saw the skipped steps
    setGrads(grads[1]);
    expect(await step(t.tensor(0.25))).toBe(0);
    setGrads(grads[2]);
    expect(await step()).toBe(0);
    const want = adamwRef(init.map((x) => Array.from(Float32Array.from(x))), grads.map((s) => s.map((g) => Array.from(Float32Array.from(g)))),
      { lr: 0.01, b1: 0.9, b2: 0.999, eps: 1e-8, wd: [0.1, 0.1], maxNorm: 0.5 });
    for (let k = 0; k < params.length; k++) expectClose(`param ${k}`, await params[k].toArray(), want[k], { rtol: 1e-4, atol: 1e-5 });
    const bc = await opt.biasCorrection.toArray();
    expectClose('bias corrections after 3 applied updates', bc, [1 - Math.fround(0.9) ** 3, 1 - Math.fround(0.999) ** 3], { rtol: 1e-6, atol: 0 });
    opt.dispose();
  });
  it('refuses invalid options', () => {
    const p = [t.randn([4], { requiresGrad: true })];
    const bad: [t.nn.AdamWOptions, RegExp][] = [
      [{ lr: NaN }, /AdamW: lr must be a finite number >= 0, got NaN/],
      [{ lr: -1 }, /lr must be a finite number >= 0, got -1/],
      [{ betas: [] as unknown as [number, number] }, /betas must be two numbers in \[0, 1\), got \[\]/],
      [{ betas: [0.9, 1] }, /betas must be two numbers in \[0, 1\), got \[0.9,1\]/],
      [{ betas: [-0.1, 0.9] }, /betas must be two numbers/],
      [{ betas: [NaN, 0.9] }, /betas must be two numbers/],
      [{ eps: 0 }, /eps must be a finite number > 0, got 0/],
      [{ eps: Infinity }, /eps must be a finite number > 0/],
      [{ weightDecay: -0.1 }, /weightDecay must be a finite number >= 0, got -0.1/],
      [{ weightDecay: NaN }, /weightDecay must be a finite number >= 0, got NaN/],
      [{ maxGradNorm: -1 }, /maxGradNorm must be a finite number >= 0 \(0: no clipping\), got -1/],
    ];
    for (const [o, re] of bad) {
      expect(() => new AdamW(p, o), JSON.stringify(o)).toThrow(t.TrimpiError);
      expect(() => new AdamW(p, o), JSON.stringify(o)).toThrow(re);
    }
    expect(() => new AdamW([{ params: p, weightDecay: -1 }])).toThrow(/weightDecay must be a finite number >= 0, got -1/);
    p[0].dispose();
  });
  it('rejects parameters that cannot be updated in place', () => {
    expect(() => new AdamW([t.randn([4, 4], { requiresGrad: true }).T])).toThrow(/AdamW: parameter .* must be a contiguous f32 tensor/);
    expect(() => new AdamW([t.randn([4])])).toThrow(/requiresGrad/);
  });
});
