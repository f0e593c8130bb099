// Training-loop pieces: the warmup + cosine schedule, AdamW groups (no decay on norms, biases,
// embeddings), gradient accumulation (two micro-batches = one batch), bit-for-bit determinism from a
// seed, and the tiny VLM overfitting a small batch with the VM-CPT loss.
import { beforeAll, describe, expect, it } from 'vitest';
import * as t from '../../src/index.js';
import { Example, makeExamples, microBatches, vmcptLossOf } from './fixtures.js';

const { nn } = t;
const disposeAll = (exs: Example[]): void => exs.forEach((e) => e.images?.dispose());

beforeAll(async () => {
  await t.init();
});

const tiny = (o: Partial<t.nn.VlmConfig> = {}): t.nn.VlmConfig => ({ ...nn.preset('tiny', 50).model, ...o });

describe('training', () => {
  it('warmup + cosine schedule', () => {
    const o = { lr: 1, minLr: 0.1, warmupSteps: 4, totalSteps: 14 };
    expect([0, 1, 2, 3].map((s) => nn.warmupCosine(s, o))).toEqual([0.25, 0.5, 0.75, 1]);
    expect(nn.warmupCosine(9, o)).toBeCloseTo(0.55, 12); // half way down the cosine
    expect(nn.warmupCosine(14, o)).toBeCloseTo(0.1, 12);
    expect(nn.warmupCosine(100, o)).toBeCloseTo(0.1, 12);
  });

  it('setTotalSteps changes the schedule after construction (a time- or epoch-budgeted run)', async () => {
    const m = new nn.VisionLanguageModel(tiny({ seed: 3 }));
    const exs = microBatches(m, makeExamples(m, 2, 5), 2);
    const o = { lr: 1, minLr: 0.1, warmupSteps: 2, totalSteps: 10 };
    const tr = new nn.Trainer<Example>(m, o);
    expect(tr.totalSteps).toBe(10);
    expect(tr.lrAt(6)).toBe(nn.warmupCosine(6, o));
    const r0 = tr.trainStep(exs, vmcptLossOf(m));
    expect(r0.lr).toBe(0.5);
    tr.setTotalSteps(40); // the budget turned out to allow 40 steps
    expect(tr.totalSteps).toBe(40);
    expect(tr.options.totalSteps).toBe(40);
    expect(o.totalSteps).toBe(10); // the caller's object is not modified
    for (const s of [1, 6, 21, 39, 40, 100]) expect(tr.lrAt(s)).toBe(nn.warmupCosine(s, { ...o, totalSteps: 40 }));
    const r1 = tr.trainStep(exs, vmcptLossOf(m));
    expect(r1.step).toBe(1);
    expect(r1.lr).toBe(1);
    const r2 = tr.trainStep(exs, vmcptLossOf(m));
    expect(r2.lr).toBe(nn.warmupCosine(2, { ...o, totalSteps: 40 }));
    tr.setTotalSteps(2); // shorter than the steps taken: minLr from now on
    const r3 = tr.trainStep(exs, vmcptLossOf(m));
    expect(r3.lr).toBeCloseTo(0.1, 12);
    for (const bad of [0, -3, 2.5, NaN, Infinity]) expect(() => tr.setTotalSteps(bad)).toThrow(/Trainer: totalSteps must be a positive integer/);
    expect(tr.totalSteps).toBe(2);
    for (const r of [r0, r1, r2, r3]) [r.loss, r.gradNorm, r.skipped].forEach((x) => x.dispose());
    disposeAll(exs);
    tr.dispose();
    m.dispose();
  });

  it('refuses invalid options up front', () => {
    const m = new nn.VisionLanguageModel(tiny());
    const base = { lr: 1e-3, totalSteps: 10 };
    const bad: [Partial<t.nn.TrainerOptions>, RegExp][] = [
      [{ warmupSteps: NaN }, /Trainer: warmupSteps must be an integer >= 0, got NaN/],
      [{ warmupSteps: -1 }, /warmupSteps must be an integer >= 0, got -1/],
      [{ lr: NaN }, /Trainer: lr must be a finite number > 0, got NaN/],
      [{ lr: -1e-3 }, /lr must be a finite number > 0, got -0.001/],
      [{ lr: Infinity }, /lr must be a finite number > 0/],
      [{ minLr: -1 }, /minLr must be a finite number >= 0, got -1/],
      [{ totalSteps: 0 }, /totalSteps must be a positive integer, got 0/],
      [{ totalSteps: NaN }, /totalSteps must be a positive integer, got NaN/],
      [{ seed: 1.5 }, /seed must be an integer, got 1.5/],
      [{ maxConsecutiveSkips: 0 }, /maxConsecutiveSkips must be a positive integer or Infinity, got 0/],
      [{ betas: [] as unknown as [number, number] }, /AdamW: betas must be two numbers in \[0, 1\)/],
      [{ betas: [0.9, 1.5] }, /AdamW: betas must be two numbers in \[0, 1\)/],
      [{ eps: 0 }, /AdamW: eps must be a finite number > 0, got 0/],
      [{ eps: -1e-8 }, /AdamW: eps must be a finite number > 0/],
      [{ weightDecay: -0.1 }, /AdamW: weightDecay must be a finite number >= 0, got -0.1/],
      [{ maxGradNorm: -1 }, /AdamW: maxGradNorm must be a finite number >= 0/],
      [{ maxGradNorm: NaN }, /AdamW: maxGradNorm must be a finite number >= 0/],
    ];
    for (const [o, re] of bad) {
      const opts = { ...base, ...o } as t.nn.TrainerOptions;
      expect(() => new nn.Trainer(m, opts), JSON.stringify(o)).toThrow(t.TrimpiError);
      expect(() => new nn.Trainer(m, opts), JSON.stringify(o)).toThrow(re);
    }
    new nn.Trainer(m, { ...base, maxConsecutiveSkips: Infinity, warmupSteps: 0, minLr: 0 }).dispose();
    m.dispose();
  });

  it('AdamW groups: decay on matrices only', () => {
    const m = new nn.VisionLanguageModel(tiny());
    const [decay, none] = nn.parameterGroups(m, 0.1);
    expect(decay.weightDecay).toBe(0.1);
    expect(none.weightDecay).toBe(0);
    expect(decay.params.every((p) => p.ndim === 2)).toBe(true);
    expect(none.params).toContain(m.decoder.tokenEmbedding.weight);
    expect(none.params).toContain(m.decoder.positionEmbedding!.weight);
    expect(none.params).toContain(m.vision.positions);
    expect(none.params).toContain(m.decoder.lnFinal.weight);
    expect(none.params).toContain(m.projector.bias);
    expect(decay.params).toContain(m.projector.weight);
    expect(decay.params.length + none.params.length).toBe(m.namedParameters().length);
    m.dispose();
  });

  it('gradient accumulation over two micro-batches equals one batch', async () => {
    const run = async (size: number): Promise<number[]> => {
      const m = new nn.VisionLanguageModel(tiny({ seed: 4 }));
      const data = makeExamples(m, 4, 21);
      const exs = microBatches(m, data, size);
      const tr = new nn.Trainer<Example>(m, { lr: 1e-2, warmupSteps: 0, totalSteps: 10, seed: 1 });
      const out: number[] = [];
      for (let s = 0; s < 2; s++) {
        const r = tr.trainStep(exs, vmcptLossOf(m));
        out.push(await r.loss.item(), await r.gradNorm.item());
        r.loss.dispose();
        r.gradNorm.dispose();
        r.skipped.dispose();
      }
      disposeAll(exs);
      tr.dispose();
      m.dispose();
      return out;
    };
    const whole = await run(4);
    const split = await run(2);
    for (let i = 0; i < whole.length; i++) expect(split[i]).toBeCloseTo(whole[i], 4);
  });

  it('the tiny VLM overfits a small batch (loss < 0.05), deterministically, with memory flat', async () => {
    const train = async (steps: number, totalSteps = 100): Promise<number[]> => {
      const m = new nn.VisionLanguageModel(tiny({ seed: 7, dropout: 0.1 }));
      const data = makeExamples(m, 4, 3);
      const exs = microBatches(m, data, 4);
      const tr = new nn.Trainer<Example>(m, { lr: 1e-2, minLr: 1e-3, warmupSteps: 10, totalSteps, weightDecay: 0.01, seed: 5 });
      const losses: number[] = [];
      let bytes = 0;
      for (let s = 0; s < steps; s++) {
        const r = tr.trainStep(exs, vmcptLossOf(m));
        if (s % 10 === 0 || s === steps - 1) losses.push(await r.loss.item());
        r.loss.dispose();
        r.gradNorm.dispose();
        r.skipped.dispose();
        if (s === 5) bytes = t.memoryStats().bytesInUse;
      }
      expect(t.memoryStats().bytesInUse).toBe(bytes); // nothing leaks per step
      disposeAll(exs);
      tr.dispose();
      m.dispose();
      return losses;
    };
    const a = await train(100);
    console.log('overfit losses', a.map((x) => x.toFixed(4)).join(' '));
    expect(a[0]).toBeGreaterThan(3);
    expect(a[a.length - 1]).toBeLessThan(0.05);
    // same seed, same device: the same losses bit for bit (dropout on)
    const b = await train(21);
    expect(b).toEqual(a.slice(0, 3));
  });
});

describe('benchmarkPreset', () => {
  it('builds a preset model and times training steps and sampling', async () => {
    const r = await nn.benchmarkPreset({ preset: 'tiny', vocabSize: 50, batchSize: 2, textTokens: 12, trainSteps: 2, sampleTokens: 4 });
    expect(r.trainStepMs.length).toBe(2);
    expect(r.positionsPerSequence).toBe(12 + 4);
    expect(r.trainPositionsPerSec).toBeGreaterThan(0);
    expect(r.sampleTokensPerSec).toBeGreaterThan(0);
    expect(r.trainFlopsPerStep).toBeGreaterThan(6 * r.batchSize * r.positionsPerSequence * 50 * 32);
  });
});
