// Non-finite steps never reach the weights: a NaN pixel (NaN loss and gradients) or a NaN loss with
// finite gradients makes the Trainer's step a no-op on the GPU (parameters, AdamW moments and bias
// corrections bit for bit, no readback inside the step), counted by StepResult.skipped and the
// Trainer's counters; checkNonFinite() raises after maxConsecutiveSkips skips in a row.
import { beforeAll, describe, expect, it } from 'vitest';
import * as t from '../../src/index.js';
import { Example, makeExamples, microBatches, vmcptLossOf } from './fixtures.js';

const { nn } = t;
const tiny = (o: Partial<t.nn.VlmConfig> = {}): t.nn.VlmConfig => ({ ...nn.preset('tiny', 50).model, ...o });

beforeAll(async () => {
  await t.init();
});

/** Every parameter, every AdamW moment and the bias corrections, read back. */
async function snapshot(m: t.nn.Module, opt: t.nn.AdamW): Promise<Map<string, Float32Array>> {
  const out = new Map<string, Float32Array>();
  for (const [name, p] of m.namedParameters()) out.set(name, (await p.value.toArray()) as Float32Array);
  for (const [name, p] of m.namedParameters()) {
    const { m: m1, v } = opt.moments(p.value);
    out.set(`m.${name}`, (await m1.toArray()) as Float32Array);
    out.set(`v.${name}`, (await v.toArray()) as Float32Array);
  }
  out.set('bias_correction', (await opt.biasCorrection.toArray()) as Float32Array);
  return out;
}

function expectSame(a: Map<string, Float32Array>, b: Map<string, Float32Array>, what: string): void {
  expect([...b.keys()]).toEqual([...a.keys()]);
  for (const [k, x] of a) {
    const y = b.get(k)!;
    // bit for bit (NaN-safe): compare the raw words
    expect(new Uint32Array(y.buffer, y.byteOffset, y.length), `${what}: ${k}`).toEqual(new Uint32Array(x.buffer, x.byteOffset, x.length));
  }
}

describe('non-finite steps', () => {
  it('a NaN pixel or a NaN loss skips the step (weights, moments, bias corrections bit for bit); checkNonFinite raises after maxConsecutiveSkips', async () => {
    const m = new nn.VisionLanguageModel(tiny({ seed: 6, dropout: 0.1 }));
    const data = makeExamples(m, 4, 11);
    const good = microBatches(m, data, 2);
    const nanImages = Float32Array.from(data.images);
    nanImages[123] = NaN; // one pixel
    const bad = microBatches(m, { ...data, images: nanImages }, 2);
    const tr = new nn.Trainer<Example>(m, { lr: 1e-2, warmupSteps: 1, totalSteps: 20, seed: 3, maxConsecutiveSkips: 3 });
    const nanLossOf = (ex: Example): t.Tensor => t.add(vmcptLossOf(m)(ex), t.tensor(NaN)); // NaN loss, finite gradients
    const step = async (exs: Example[], lossOf = vmcptLossOf(m)): Promise<{ skipped: number; loss: number; norm: number }> => {
      const before = t.execStats().readbacks;
      const r = tr.trainStep(exs, lossOf);
      expect(t.execStats().readbacks).toBe(before); // no readback inside the step
      const out = { skipped: await r.skipped.item(), loss: await r.loss.item(), norm: await r.gradNorm.item() };
      [r.loss, r.gradNorm, r.skipped].forEach((x) => x.dispose());
      return out;
    };
    try {
      for (let i = 0; i < 2; i++) expect((await step(good)).skipped).toBe(0);
      expect(await tr.checkNonFinite()).toEqual({ consecutive: 0, total: 0 });

      let before = await snapshot(m, tr.optimizer);
      const r = await step(bad);
      expect(r.skipped).toBe(1);
      expect(r.loss).toBeNaN();
      expect(r.norm).toBeNaN();
      expectSame(before, await snapshot(m, tr.optimizer), 'NaN pixel');
      expect(tr.step).toBe(3); // the step index advances (schedule, seeds)
      expect(await tr.checkNonFinite()).toEqual({ consecutive: 1, total: 1 });

      const r2 = await step(good, nanLossOf);
      expect(r2.skipped).toBe(1);
      expect(Number.isFinite(r2.norm)).toBe(true); // the gradients were finite: the loss alone decides
      expectSame(before, await snapshot(m, tr.optimizer), 'NaN loss');
      expect(await tr.checkNonFinite()).toEqual({ consecutive: 2, total: 2 });

      // a finite step resets the run of skips and trains again
      const r3 = await step(good);
      expect(r3.skipped).toBe(0);
      expect(Number.isFinite(r3.loss)).toBe(true);
      const after = await snapshot(m, tr.optimizer);
      expect(after.get('decoder.wte.weight')).not.toEqual(before.get('decoder.wte.weight'));
      expect(await tr.checkNonFinite()).toEqual({ consecutive: 0, total: 2 });

      before = after;
      for (let i = 0; i < 2; i++) expect((await step(bad)).skipped).toBe(1);
      expect(await tr.checkNonFinite()).toEqual({ consecutive: 2, total: 4 });
      expect((await step(bad)).skipped).toBe(1);
      expectSame(before, await snapshot(m, tr.optimizer), 'three NaN steps');
      const err = await tr.checkNonFinite().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(t.TrimpiError);
      expect((err as Error).message).toMatch(/Trainer: the last 3 steps \(5 to 7\) were all skipped: their loss or gradient norm was NaN or Inf \(maxConsecutiveSkips 3; 5 skipped in all\)/);
    } finally {
      [...good, ...bad].forEach((e) => e.images?.dispose());
      tr.dispose();
      m.dispose();
    }
  });

  it('memory stays flat over skipped and applied steps', async () => {
    const m = new nn.VisionLanguageModel(tiny({ seed: 2 }));
    const data = makeExamples(m, 2, 4);
    const good = microBatches(m, data, 2);
    const nanImages = Float32Array.from(data.images);
    nanImages[0] = Infinity;
    const bad = microBatches(m, { ...data, images: nanImages }, 2);
    const tr = new nn.Trainer<Example>(m, { lr: 1e-3, totalSteps: 10, maxConsecutiveSkips: Infinity });
    let bytes = 0;
    for (let s = 0; s < 8; s++) {
      t.tidy(() => { tr.trainStep(s % 2 ? bad : good, vmcptLossOf(m)); });
      if (s === 1) bytes = t.memoryStats().bytesInUse;
    }
    expect(t.memoryStats().bytesInUse).toBe(bytes);
    expect(await tr.checkNonFinite()).toEqual({ consecutive: 1, total: 4 });
    [...good, ...bad].forEach((e) => e.images?.dispose());
    tr.dispose();
    m.dispose();
  });
});
