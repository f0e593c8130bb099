// The RL loop: a GRPO sanity run on a toy task whose best answer is known, and PoRo's rows scored
// under the no-policy prompt (their log-probs equal a direct forward of (Q, I, o)).
import { beforeAll, describe, expect, it } from 'vitest';
import * as t from '../../src/index.js';

const { RlRunner, rolloutRows, responseLogProbs, targetBatch } = t.stages;
const EOS = 2;

beforeAll(async () => {
  await t.init();
});

function toyModel(seed = 0): t.nn.VisionLanguageModel {
  return new t.nn.VisionLanguageModel({
    vocabSize: 16, imageTokenId: 4, padId: 0, imageSize: 16, patchSize: 8, channels: 3, visionDim: 16, visionLayers: 1, visionHeads: 2,
    dim: 32, layers: 2, heads: 2, maxPositions: 32, mlpRatio: 4, dropout: 0, layerNormEps: 1e-5, initStd: 0.02, seed,
  });
}

/** Prompt [1, 5] (or, "with the policy", [1, 9, 5]); the best response is [7, <eos>]. */
const toyTask: t.stages.RlTask = {
  prompts: (_step, _batch, n) => Array.from({ length: n }, () => ({ noPolicy: { tokens: [1, 5], images: [] }, withPolicy: { tokens: [1, 9, 5], images: [] } })),
  images: () => null,
  score: (_item, r) => ({ accuracy: r[0] === 7 ? 1 : 0, format: r.length === 2 && r[1] === EOS ? 1 : 0 }),
};

describe('RL loop', () => {
  it('GRPO raises the mean reward of a toy task from below 0.3 to above 0.8 within 40 rollout steps', async () => {
    const model = toyModel(1);
    const reference = toyModel(1);
    const runner = new RlRunner(model, reference, toyTask, {
      algorithm: t.losses.GRPO, poro: false, steps: 40, prompts: 4, G: 8, miniBatches: 2, lr: 1e-2, maxNewTokens: 2, temperature: 1, seed: 3,
    }, EOS);
    const rewards: number[] = [];
    try {
      for (let step = 0; step < 40; step++) {
        const m = await runner.rolloutStep(step);
        rewards.push(m.reward);
        expect(Number.isFinite(m.loss) && Number.isFinite(m.approxKl) && m.klRef !== null).toBe(true);
        if (step >= 3 && rewards.slice(-3).every((r) => r > 0.8)) break;
      }
    } finally {
      runner.dispose();
      model.dispose();
      reference.dispose();
    }
    expect(rewards[0]).toBeLessThan(0.3);
    expect(Math.max(...rewards.slice(-3))).toBeGreaterThan(0.8);
  });

  it('PoRo: policy-in-context responses become rows under the no-policy prompt, scored by a direct forward', async () => {
    const model = toyModel(2);
    try {
      const group: t.losses.PoRoGroup = {
        prompt: [1, 5],
        noPolicy: [{ tokens: [7, EOS], reward: 1 }, { tokens: [8, 9, EOS], reward: 0 }],
        withPolicy: [{ tokens: [7, 3, EOS], reward: 0.9 }, { tokens: [11, EOS], reward: 0.1 }],
      };
      const rows = rolloutRows([{ group, images: [] }], t.losses.GRPO, 0, EOS);
      expect(rows.map((r) => r.seq.prompt)).toEqual([[1, 5], [1, 5], [1, 5], [1, 5]]);
      expect(rows.map((r) => r.seq.response)).toEqual([[7, EOS], [8, 9, EOS], [7, 3, EOS], [11, EOS]]);
      // one pooled group of 2G: the advantages are normalised over all four rewards
      const mean = (1 + 0 + 0.9 + 0.1) / 4;
      expect(Math.sign(rows[2].advantage)).toBe(Math.sign(0.9 - mean));
      const tb = targetBatch(model, rows.map((r) => r.seq));
      const [lp] = responseLogProbs(model, toyTask, [{ tb, keys: [] }]);
      const got = await lp.toArray();
      lp.dispose();
      // direct: full logits of each row alone, log-softmax on the host, the response tokens read off
      for (let b = 0; b < rows.length; b++) {
        const seq = [...rows[b].seq.prompt, ...rows[b].seq.response];
        const batch = model.prepareBatch([seq]);
        const logits = t.noGrad(() => t.tidy(() => model.forward(model.toInputs(batch, null))));
        const L = await logits.toArray();
        logits.dispose();
        const V = 16;
        rows[b].seq.response.forEach((tok, j) => {
          const pos = rows[b].seq.prompt.length + j - 1;
          const row = Array.from(L.subarray(pos * V, (pos + 1) * V));
          const m = Math.max(...row);
          const lse = m + Math.log(row.reduce((s, x) => s + Math.exp(x - m), 0));
          expect(got[b * tb.R + j]).toBeCloseTo(row[tok] - lse, 5);
        });
      }
    } finally {
      model.dispose();
    }
  });
});
