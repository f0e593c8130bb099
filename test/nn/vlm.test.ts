// The vision-language model: the expanded layout of <image> places, the forward's logits and the
// gradient of every parameter against the float64 reference model (test/nn/ref_vlm.ts), module
// bookkeeping (names, decay flags, train/eval, dispose) and argument errors.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as t from '../../src/index.js';
import { TrimpiError } from '../../src/index.js';
import { expectClose } from '../helpers.js';
import { Ref, Rng } from '../reference/ref.js';
import { refParams, refVlmLogits } from './ref_vlm.js';

const { nn } = t;
const IMG = 4;

export function tinyConfig(overrides: Partial<t.nn.VlmConfig> = {}): t.nn.VlmConfig {
  return { ...nn.preset('tiny', 50).model, ...overrides };
}

beforeAll(async () => {
  await t.init();
});

let model: t.nn.VisionLanguageModel | null = null;
afterAll(() => model?.dispose());

describe('VisionLanguageModel', () => {
  it('expands each <image> to P patch positions and maps masks onto them', () => {
    model = new nn.VisionLanguageModel(tinyConfig());
    expect(model.patchesPerImage).toBe(4);
    const l = model.layout([1, 7, IMG, 8, IMG, 2]);
    expect(l.ids).toEqual([1, 7, IMG, IMG, IMG, IMG, 8, IMG, IMG, IMG, IMG, 2]);
    expect(l.visual).toEqual([0, 0, 1, 1, 1, 1, 0, 1, 1, 1, 1, 0]);
    expect(l.positionOf).toEqual([0, 1, 2, 6, 7, 11]);
    expect(l.images).toBe(2);
    const b = model.prepareBatch([[1, IMG, 9], [1, 9, 9, 9, 9, 9, 9, 9]], { padSide: 'left' });
    expect([b.B, b.T, b.numImages]).toEqual([2, 8, 1]);
    expect(b.padBefore).toEqual([2, 0]);
    expect(Array.from(b.imageRow.subarray(0, 8))).toEqual([-1, -1, -1, 0, 1, 2, 3, -1]);
    expect(Array.from(b.positions.subarray(0, 8))).toEqual([0, 0, 0, 1, 2, 3, 4, 5]);
    expect(model.textMask(b)[0]).toEqual([0, 0, 1, 0, 0, 0, 0, 1]);
    expect(model.expandPerToken(b, [[0, 0, 1], [0, 0, 0, 0, 0, 0, 1, 1]])).toEqual([[0, 0, 0, 0, 0, 0, 0, 1], [0, 0, 0, 0, 0, 0, 1, 1]]);
  });

  it.each([
    ['8-px patches', {}],
    ['4-px patches merged 2 x 2', { patchSize: 4, mergeSize: 2 }],
    ['rotary positions', { positionEncoding: 'rope' }],
  ] as const)('logits and the gradient of every parameter match the float64 reference (2 images in one sequence, padding; %s)', async (_, over) => {
    const cfg = tinyConfig({ initStd: 0.1, seed: 11, ...over });
    const m = new nn.VisionLanguageModel(cfg);
    try {
      const rng = new Rng(5);
      const batch = m.prepareBatch([[1, 9, IMG, 12, 13, IMG, 20], [1, IMG, 30, 31]]); // right padding: row 1 is padded
      expect(batch.numImages).toBe(3);
      const imgData = Float32Array.from({ length: 3 * 3 * 16 * 16 }, () => rng.uniform(0, 1));
      const cot = Float32Array.from({ length: batch.B * batch.T * cfg.vocabSize }, () => rng.normal());
      const images = t.tensor(imgData, { shape: [3, 3, 16, 16] });
      const logits = t.tidy(() => {
        const inputs = m.toInputs(batch, images);
        const out = m.forward(inputs);
        out.backward(t.tensor(cot, { shape: out.shape }));
        return out;
      });
      const ps = await refParams(m);
      const ref = refVlmLogits(ps, cfg, batch, new Ref(imgData, [3, 3, 16, 16]));
      expect([...logits.shape]).toEqual(ref.shape);
      expectClose('logits', await logits.toArray(), ref.data, { rtol: 1e-4, atol: 1e-5 });
      ref.backward(Float64Array.from(cot));
      let compared = 0;
      for (const [name, p] of m.namedParameters()) {
        const want = ps.get(name)!.grad ?? new Float64Array(p.value.numel);
        const got = p.value.grad ? await p.value.grad.toArray() : new Float32Array(p.value.numel);
        expectClose(`grad of ${name}`, got, want, { rtol: 2e-3, atol: 2e-5 });
        compared++;
      }
      expect(compared).toBe(m.namedParameters().length);
      // the vision tower is reached through the image slots
      expect(m.vision.patchEmbed.proj.weight.grad).not.toBeNull();
      logits.dispose();
      images.dispose();
    } finally {
      m.dispose();
    }
  });

  it('names parameters, flags decay, switches train/eval and frees its memory', () => {
    const before = t.memoryStats().bytesInUse;
    const m = new nn.VisionLanguageModel(tinyConfig({ dropout: 0.1 }));
    const names = m.namedParameters().map(([n]) => n);
    expect(names).toContain('decoder.blocks.0.attn.qkv.weight');
    expect(names).toContain('vision.blocks.0.mlp.fc.bias');
    expect(names).toContain('projector.weight');
    expect(names).not.toContain('decoder.lm_head.weight'); // tied to decoder.wte.weight
    const decay = new Map(m.namedParameters().map(([n, p]) => [n, p.decay]));
    expect(decay.get('decoder.blocks.1.mlp.proj.weight')).toBe(true);
    expect(decay.get('decoder.blocks.1.mlp.proj.bias')).toBe(false);
    expect(decay.get('decoder.ln_f.weight')).toBe(false);
    expect(decay.get('decoder.wte.weight')).toBe(false);
    expect(decay.get('vision.pos')).toBe(false);
    expect(m.decoder.blocks[0].mlp.drop.training).toBe(true);
    m.eval();
    expect(m.decoder.blocks[0].mlp.drop.training).toBe(false);
    expect(m.training).toBe(false);
    m.dispose();
    expect(t.memoryStats().bytesInUse).toBe(before);
  });

  it('refuses bad inputs with errors that name the function and the shapes', () => {
    const m = model!;
    const b = m.prepareBatch([[1, IMG, 5]]);
    expect(() => m.toInputs(b, null)).toThrow(/toInputs: the batch has 1 <image> place\(s\) but no images were given/);
    const wrong = t.zeros([2, 3, 16, 16]);
    expect(() => m.toInputs(b, wrong)).toThrow(/images must be \(N, C, H, W\) = \[1, 3, 16, 16\].*got \(\[2, 3, 16, 16\], f32\)/);
    wrong.dispose();
    expect(() => m.prepareBatch([[1, 99]])).toThrow(TrimpiError);
    expect(() => m.prepareBatch([Array(70).fill(5)])).toThrow(/needs 70 positions but the decoder has 64/);
    expect(() => new nn.VisionLanguageModel(tinyConfig({ dim: 33 }))).toThrow(/widths must be multiples of the head counts/);
    expect(() => new nn.VisionLanguageModel(tinyConfig({ mergeSize: 4 }))).toThrow(/mergeSize 4 must divide the 2 patches per side/);
    expect(() => new nn.VisionLanguageModel(tinyConfig({ patchSize: 4, mergeSize: 3 }))).toThrow(/mergeSize 3 must divide the 4 patches per side/);
    expect(() => new nn.VisionLanguageModel(tinyConfig({ mergeSize: 0 }))).toThrow(/mergeSize must be a positive integer, got 0/);
    expect(() => new nn.VisionLanguageModel(tinyConfig({ positionEncoding: 'alibi' as 'rope' }))).toThrow(/positionEncoding must be 'learned' or 'rope', got alibi/);
    expect(() => nn.preset('huge', 50)).toThrow(/unknown preset 'huge' \(expected one of tiny, cpu, gpu\)/);
  });

  it('a config that fails half-way through construction leaks no GPU memory', () => {
    const base = t.memoryStats().liveStorages;
    // vision tower, projector and token embedding are built before the 1e9-row position table fails
    expect(() => new nn.VisionLanguageModel(tinyConfig({ maxPositions: 1e9 }))).toThrow(/randn: a tensor of shape \[1000000000, 32\] .* exceeds the device's maxStorageBufferBindingSize/);
    expect(() => new nn.VisionLanguageModel(tinyConfig({ layers: 2, mlpRatio: 2 ** 40 }))).toThrow(TrimpiError);
    expect(() => new nn.VisionLanguageModel(null as unknown as t.nn.VlmConfig)).toThrow(/VlmConfig: the config must be an object/);
    expect(t.memoryStats().liveStorages).toBe(base);
  });
});
