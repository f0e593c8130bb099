// Sequences longer than the models' context: supervised stages leave them out and count them (a
// depth-4 policy with its image and CoT passes 1,024 positions for VM-CPT), and `trimpi run` refuses,
// before its first stage, a setting whose prompts with the policy in context leave no room for a response.
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as t from '../../src/index.js';

const work = mkdtempSync(join(tmpdir(), 'trimpi-context-'));
const tok = t.data.defaultTokenizer();

beforeAll(async () => {
  await t.init();
});

afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('the context budget of a run', () => {
  it('supervisedSequences leaves out exactly the sequences longer than the context, and throws when none fits', async () => {
    const cfg = t.nn.preset('tiny', tok.size, { maxPositions: 1024 }).model;
    const data = await t.stages.MpiData.open(join(work, 'data'), { setting: 'clevr-t', depth: 2, seed: 0, policies: 2, train: 32, test: 2, imageSize: cfg.imageSize });
    const wide = new t.nn.VisionLanguageModel(cfg);
    const all = t.stages.supervisedSequences('vm-cpt', data, tok, wide);
    wide.dispose();
    expect(all.dropped).toBe(0);
    // positions counted by hand: tokens, and P - 1 more for every <image>
    const P = (cfg.imageSize / cfg.patchSize) ** 2;
    const lengths = all.seqs.map((s) => s.prompt.length + s.response.length + [...s.prompt, ...s.response].filter((id) => id === cfg.imageTokenId).length * (P - 1));
    expect(all.longest).toBe(Math.max(...lengths));
    const sorted = [...lengths].sort((a, b) => a - b);
    const cut = sorted[Math.floor((sorted.length - 1) / 2)]; // about half the sequences fit
    expect(sorted[0]).toBeLessThan(sorted[sorted.length - 1]);
    const narrow = new t.nn.VisionLanguageModel({ ...cfg, maxPositions: cut });
    try {
      const some = t.stages.supervisedSequences('vm-cpt', data, tok, narrow);
      expect(some.dropped).toBe(lengths.filter((n) => n > cut).length);
      expect(some.dropped).toBeGreaterThan(0);
      expect(some.seqs.length).toBe(lengths.filter((n) => n <= cut).length);
      for (const s of some.seqs) expect(t.stages.sequencePositions(narrow, s)).toBeLessThanOrEqual(cut);
      expect(some.images.length).toBe(some.seqs.length);
      // the kept sequences train: one VM-CPT step on them does not hit the context check
      const trainer = new t.nn.Trainer<{ tb: t.stages.TargetBatch; keys: string[] }>(narrow, { lr: 1e-3, warmupSteps: 0, totalSteps: 10 });
      try {
        let loss = NaN;
        await t.stages.trainSupervised(narrow, trainer, data, tok, { kind: 'vm-cpt', epochs: 1, batchSize: 8, lr: 1e-3, warmupFraction: 0, seed: 0, microBatchPositions: 4096 },
          { onStep: (p) => { loss = p.loss; }, logEvery: 1 });
        expect(Number.isFinite(loss)).toBe(true);
      } finally {
        trainer.dispose();
      }
    } finally {
      narrow.dispose();
    }
    const tooShort = new t.nn.VisionLanguageModel({ ...cfg, maxPositions: sorted[0] - 1 });
    try {
      expect(() => t.stages.supervisedSequences('vm-cpt', data, tok, tooShort)).toThrow(/supervisedSequences: vm-cpt: none of the \d+ training sequences fits the decoder's \d+ positions/);
    } finally {
      tooShort.dispose();
    }
  });

  it('trimpi run refuses a base too short for the prompts with the policy in context before training anything', async () => {
    const base = join(work, 'base-short');
    const model = new t.nn.VisionLanguageModel(t.nn.preset('tiny', tok.size, { maxPositions: 64 }).model);
    await t.nn.saveCheckpoint(base, model);
    model.dispose();
    const out = join(work, 'run-short');
    await expect(t.pipeline.runPipeline({ setting: 'clevr-t', depth: 2, seed: 0, methods: ['in-context', 'direct-sft'], scale: 'tiny', base, out }, tok,
      { log: () => undefined, progress: null, suite: false, report: false }))
      .rejects.toThrow(/trimpi run: clevr-t-d2: a prompt with the policy in context needs \d+ positions, but the models have 64/);
    expect(existsSync(join(out, 'clevr-t-d2', 'stages'))).toBe(false);
  });
});
