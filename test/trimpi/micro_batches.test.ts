// A step's batch is aggregated as one batch however it is split into micro-batches (for memory):
// microBatchScales against the whole-batch aggregate, then the RL update and a supervised stage,
// whose step loss and gradient must not depend on the micro-batch size.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as t from '../../src/index.js';

const EOS = 2;
const work = mkdtempSync(join(tmpdir(), 'trimpi-micro-'));

beforeAll(async () => {
  await t.init();
});

afterAll(() => rmSync(work, { recursive: true, force: true }));

/** A (B, T) 0/1 mask with row b holding lengths[b] leading ones (lengths may be 0). */
function maskOf(lengths: number[], T: number): Float32Array {
  const m = new Float32Array(lengths.length * T);
  lengths.forEach((n, b) => m.fill(1, b * T, b * T + n));
  return m;
}

describe('microBatchScales', () => {
  it('the scaled mean of the micro-batch aggregates is the aggregate of the whole batch, for every mode and uneven splits', async () => {
    const T = 7;
    for (const mode of t.losses.LOSS_AGGS) {
      // lengths 0..T (an empty row included), split 3 / 1 / 5 rows
      const lengths = Array.from({ length: 9 }, (_, b) => (b * 5 + 3) % (T + 1));
      const loss = Array.from({ length: 9 * T }, () => Math.random() * 4 - 2);
      const whole = t.losses.aggregateLoss(t.tensor(loss, { shape: [9, T] }), t.tensor(maskOf(lengths, T), { shape: [9, T] }), mode);
      const splits = [[0, 3], [3, 4], [4, 9]];
      const counts = splits.map(([a, b]) => lengths.slice(a, b));
      const scales = t.losses.microBatchScales(mode, counts);
      let mean = 0;
      for (const [i, [a, b]] of splits.entries()) {
        const part = t.losses.aggregateLoss(t.tensor(loss.slice(a * T, b * T), { shape: [b - a, T] }), t.tensor(maskOf(lengths.slice(a, b), T), { shape: [b - a, T] }), mode);
        mean += (scales[i] * (await part.item())) / splits.length;
      }
      expect(mean, mode).toBeCloseTo(await whole.item(), 5);
    }
    expect(t.losses.microBatchScales('token-mean', [[0], [0, 0]])).toEqual([0, 0]);
    expect(() => t.losses.microBatchScales('mean' as t.losses.LossAgg, [[1]])).toThrow(/microBatchScales: mode must be one of/);
  });
});

function toyModel(seed: number): t.nn.VisionLanguageModel {
  return new t.nn.VisionLanguageModel({
    vocabSize: 16, imageTokenId: 4, padId: 0, imageSize: 16, patchSize: 8, channels: 3, visionDim: 16, visionLayers: 1, visionHeads: 2,
    dim: 32, layers: 2, heads: 2, maxPositions: 32, mlpRatio: 4, dropout: 0, layerNormEps: 1e-5, initStd: 0.02, seed,
  });
}

/** Responses of 1 to 4 tokens (maxNewTokens 4): the rows' token counts differ. */
const toyTask: t.stages.RlTask = {
  prompts: (_step, _batch, n) => Array.from({ length: n }, (_, i) => ({ noPolicy: { tokens: [1, 5 + (i % 3)], images: [] } })),
  images: () => null,
  score: (_item, r) => ({ accuracy: r[0] === 7 ? 1 : 0, format: r[r.length - 1] === EOS ? 1 : 0 }),
};

describe('micro-batches do not change a step', () => {
  it('RL: the update loss and gradient norm are the same with one micro-batch per mini-batch and with uneven ones', async () => {
    const run = async (microRows: number): Promise<{ loss: number; gradNorm: number; pgLoss: number }> => {
      const model = toyModel(4);
      const runner = new t.stages.RlRunner(model, null, toyTask, {
        algorithm: t.losses.DAPO, poro: false, steps: 1, prompts: 6, G: 4, miniBatches: 1, lr: 1e-2, maxNewTokens: 4, temperature: 1, seed: 5, microRows,
      }, EOS);
      try {
        const m = await runner.rolloutStep(0);
        return { loss: m.loss, gradNorm: m.gradNorm, pgLoss: m.pgLoss };
      } finally {
        runner.dispose();
        model.dispose();
      }
    };
    const one = await run(1000);
    const uneven = await run(5); // 24 rows (fewer when DAPO drops all-equal groups): chunks of 5 and a remainder
    expect(uneven.loss).toBeCloseTo(one.loss, 5);
    expect(uneven.pgLoss).toBeCloseTo(one.pgLoss, 5);
    expect(uneven.gradNorm).toBeCloseTo(one.gradNorm, 4);
    expect(one.gradNorm).toBeGreaterThan(0);
  });

  it('supervised: the step loss of CoT SFT and VM-CPT is the same with one micro-batch and with many', async () => {
    const tok = t.data.defaultTokenizer();
    const cfg = t.nn.preset('tiny', tok.size, { maxPositions: 1024 }).model;
    const data = await t.stages.MpiData.open(join(work, 'data'), { setting: 'clevr-t', depth: 2, seed: 0, policies: 2, train: 8, test: 2, imageSize: cfg.imageSize });
    for (const kind of ['cot-sft', 'vm-cpt'] as const) {
      const stepLoss = async (microBatchPositions: number): Promise<number> => {
        // a large init: per-token losses far from uniform, so a wrong weighting shows
        const model = new t.nn.VisionLanguageModel({ ...cfg, seed: 3, initStd: 0.5 });
        const trainer = new t.nn.Trainer<{ tb: t.stages.TargetBatch; keys: string[] }>(model, { lr: 1e-3, warmupSteps: 0, totalSteps: 100 });
        let loss = NaN;
        try {
          await t.stages.trainSupervised(model, trainer, data, tok, { kind, epochs: 1, batchSize: 6, lr: 1e-3, warmupFraction: 0, seed: 1, microBatchPositions },
            { onStep: (p) => { if (p.step === 1) loss = p.loss; }, logEvery: 1 });
        } finally {
          trainer.dispose();
          model.dispose();
        }
        return loss;
      };
      const whole = await stepLoss(1 << 20);
      const split = await stepLoss(1); // every sequence its own micro-batch
      expect(Number.isFinite(whole), kind).toBe(true);
      expect(split, kind).toBeCloseTo(whole, 4);
    }
  });
});
